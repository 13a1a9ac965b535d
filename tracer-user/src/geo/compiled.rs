//! A loaded database ([`GeoData`]) and its compiled form with the local networks overlaid
//! ([`CompiledGeo`]), which answers lookups exactly as the kernel will.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracer_common::CountryId;

use super::{
    GeoError, compact,
    dxr::{Dxr, DxrBuilder, for_each_segment},
    local::{local_networks, overlay_local},
    ranges::{Address, RangeMap, Run, cidr_blocks, cidr_count, lookup_runs, runs_are_valid},
    segments::{Overlay, Segments, SegmentsBuilder},
};

/// A country database: sorted, disjoint, merged runs per family, plus where it came from.
///
/// Addresses outside every run are unknown. Country ids are ISO codes ([`CountryId`]); the
/// database itself holds no [`CountryId::LOCAL`] runs (those are added by [`CompiledGeo`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoData {
    /// Description of the source (file name, package and version...).
    pub source: String,
    /// When the data was built, if known (free text, e.g. `2026-06-17`).
    pub build_date: Option<String>,
    /// Attribution the data's license requires, if any.
    pub attribution: Option<String>,
    /// IPv4 runs, sorted and disjoint.
    pub v4: Vec<Run<u32>>,
    /// IPv6 runs, sorted and disjoint.
    pub v6: Vec<Run<u128>>,
}

impl GeoData {
    /// Whether the database holds no ranges at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Applies `later` over this database: its ranges override the addresses they cover, its
    /// gaps leave this database's answers alone (e.g. an IPv4 file, then an IPv6 file, then a
    /// file of corrections). Sources are joined with ` + `; the later build date wins if set.
    pub fn apply(&mut self, later: GeoData) {
        self.v4 = overlay_runs(&self.v4, &later.v4);
        self.v6 = overlay_runs(&self.v6, &later.v6);
        self.source = match (self.source.is_empty(), later.source.is_empty()) {
            (_, true) => std::mem::take(&mut self.source),
            (true, false) => later.source,
            (false, false) => format!("{} + {}", self.source, later.source),
        };
        if later.build_date.is_some() {
            self.build_date = later.build_date;
        }
        match (&mut self.attribution, later.attribution) {
            (Some(mine), Some(theirs)) if *mine != theirs => *mine = format!("{mine}; {theirs}"),
            (mine @ None, theirs) => *mine = theirs,
            _ => {}
        }
    }

    /// The database's own answer for `addr`, without the local networks.
    pub fn lookup(&self, addr: IpAddr) -> CountryId {
        match addr {
            IpAddr::V4(a) => lookup_runs(&self.v4, u32::from(a)),
            IpAddr::V6(a) => lookup_runs(&self.v6, u128::from(a)),
        }
    }
}

/// `base` with `top` applied over it.
fn overlay_runs<A: Address>(base: &[Run<A>], top: &[Run<A>]) -> Vec<Run<A>> {
    if top.is_empty() {
        return base.to_vec();
    }
    if base.is_empty() {
        return top.to_vec();
    }
    let mut map = RangeMap::from_runs(base);
    for run in top {
        map.insert(run.first, run.last, run.id);
    }
    map.into_runs()
}

/// Sizes of a compiled database, for logs and `geo-info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoStats {
    /// IPv4 runs, local networks included.
    pub v4_runs: usize,
    /// IPv6 runs, local networks included.
    pub v6_runs: usize,
    /// IPv4 CIDR prefixes (the LPM trie's entries).
    pub v4_prefixes: usize,
    /// IPv6 CIDR prefixes (the LPM trie's entries).
    pub v6_prefixes: usize,
    /// Nodes of the IPv4 compact structure.
    pub v4_nodes: usize,
    /// Ranges of the IPv4 compact structure (without the padding of the last line).
    pub v4_ranges: usize,
    /// Bytes of the IPv4 compact structure's values (root, nodes, range lines).
    pub v4_bytes: usize,
    /// Nodes of the IPv6 compact structure.
    pub v6_nodes: usize,
    /// Ranges of the IPv6 compact structure.
    pub v6_ranges: usize,
    /// Bytes of the IPv6 compact structure's values.
    pub v6_bytes: usize,
}

/// Where a database came from: [`GeoData`] without its runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoMeta {
    /// Description of the source (file name, package and version...).
    pub source: String,
    /// When the data was built, if known (free text, e.g. `2026-06-17`).
    pub build_date: Option<String>,
    /// Attribution the data's license requires, if any.
    pub attribution: Option<String>,
}

/// One family compiled: its compact structure, sizes, and the overlaid segments if kept.
#[derive(Clone, Debug)]
struct Family<A> {
    dxr: Dxr,
    runs: usize,
    prefixes: usize,
    segments: Option<Segments<A>>,
}

/// Where a family's segments come from: called with the sink to push them into, in address
/// order.
type Feed<'f> = &'f mut dyn FnMut(
    &mut dyn FnMut(u128, CountryId) -> Result<(), GeoError>,
) -> Result<(), GeoError>;

impl<A: Address> Family<A> {
    /// Builds the compact structure of the segments `feed` pushes, with `local` overlaid,
    /// counting runs and prefixes on the way; the segments are collected only if `keep`.
    fn compile(feed: Feed<'_>, local: &[Run<A>], keep: bool) -> Result<Self, GeoError> {
        let mut dxr = DxrBuilder::<A>::new();
        let mut kept = keep.then(SegmentsBuilder::<A>::new);
        let (mut runs, mut prefixes) = (0usize, 0usize);
        let mut count = |first: u128, last: u128, id: CountryId| {
            if id != CountryId::UNKNOWN {
                runs += 1;
                prefixes += cidr_count(A::from_u128(first), A::from_u128(last));
            }
        };
        // The segment in effect (consecutive ones of one id are one).
        let mut current: Option<(u128, CountryId)> = None;
        {
            let mut sink = |start: u128, id: CountryId| -> Result<(), GeoError> {
                if current.is_some_and(|(_, in_effect)| in_effect == id) {
                    return Ok(());
                }
                dxr.push(start, id)?;
                if let Some((first, previous)) = current.replace((start, id)) {
                    count(first, start - 1, previous);
                }
                if let Some(kept) = &mut kept {
                    kept.push(start, id);
                }
                Ok(())
            };
            let mut overlay = Overlay::new(local);
            feed(&mut |start, id| overlay.push(start, id, &mut sink))?;
            overlay.finish(&mut sink)?;
        }
        if let Some((first, id)) = current {
            count(first, A::MAX.to_u128(), id);
        }
        Ok(Self { dxr: dxr.finish()?, runs, prefixes, segments: kept.map(SegmentsBuilder::finish) })
    }

    /// [`compile`](Self::compile) of the next family of a compact database's `stream`; sets
    /// `known` if it has any segment of a country.
    fn streamed(
        stream: &mut compact::Stream<'_>,
        what: &str,
        local: &[Run<A>],
        keep: bool,
        known: &mut bool,
    ) -> Result<Self, GeoError> {
        let mut feed = |each: &mut dyn FnMut(u128, CountryId) -> Result<(), GeoError>| {
            stream.family::<A>(what, |start, id| {
                *known |= id != CountryId::UNKNOWN;
                each(start, id)
            })
        };
        Family::compile(&mut feed, local, keep)
    }

    fn runs(&self) -> Vec<Run<A>> {
        self.segments
            .as_ref()
            .expect("the runs of a CompiledGeo built with keep_runs")
            .runs()
            .collect()
    }
}

/// A database with the local networks overlaid as [`CountryId::LOCAL`], and its compact lookup
/// structures ([`tracer_common::geo_dxr`]).
///
/// The overlaid runs are kept only if asked ([`new`](Self::new) keeps them,
/// [`with_runs`](Self::with_runs) and [`from_compact`](Self::from_compact) take a flag):
/// the agent needs only the compact structures, and not holding the runs keeps its peak memory
/// low.
#[derive(Clone, Debug)]
pub struct CompiledGeo {
    meta: GeoMeta,
    local: Vec<IpNet>,
    v4: Family<u32>,
    v6: Family<u128>,
}

/// The local networks as sorted runs of each family.
fn local_runs(local: &[IpNet]) -> (Vec<Run<u32>>, Vec<Run<u128>>) {
    let (mut v4, mut v6) = (RangeMap::new(), RangeMap::new());
    overlay_local(&mut v4, &mut v6, local);
    (v4.into_runs(), v6.into_runs())
}

impl CompiledGeo {
    /// Overlays the built-in local networks and `extra_local` (e.g. the LAN prefixes) on
    /// `data` and builds the compact structure of each family, keeping the runs.
    pub fn new(data: GeoData, extra_local: &[IpNet]) -> Result<Self, GeoError> {
        Self::with_runs(data, extra_local, true)
    }

    /// Like [`new`](Self::new), keeping the overlaid runs only if `keep_runs` (needed for
    /// [`v4_runs`](Self::v4_runs) and the other run and prefix accessors).
    pub fn with_runs(
        mut data: GeoData,
        extra_local: &[IpNet],
        keep_runs: bool,
    ) -> Result<Self, GeoError> {
        if let Some(id) = (data.v6.iter().map(|run| run.id))
            .chain(data.v4.iter().map(|run| run.id))
            .find(|id| id.0 >= CountryId::NUM_IDS)
        {
            return Err(GeoError::InvalidId { id: id.0 });
        }
        let local = local_networks(extra_local);
        let (v4_local, v6_local) = local_runs(&local);
        fn valid<A: Address>(runs: Vec<Run<A>>) -> Result<Vec<Run<A>>, GeoError> {
            if runs_are_valid(&runs) {
                Ok(runs)
            } else {
                Err(GeoError::InvalidRuns { family: if A::BITS == 32 { "IPv4" } else { "IPv6" } })
            }
        }
        // Each family's runs are dropped once compiled.
        let v4 = {
            let runs = valid(std::mem::take(&mut data.v4))?;
            Family::compile(&mut |each| for_each_segment(&runs, each), &v4_local, keep_runs)?
        };
        let v6 = {
            let runs = valid(std::mem::take(&mut data.v6))?;
            Family::compile(&mut |each| for_each_segment(&runs, each), &v6_local, keep_runs)?
        };
        let GeoData { source, build_date, attribution, .. } = data;
        Ok(Self { meta: GeoMeta { source, build_date, attribution }, local, v4, v6 })
    }

    /// Decodes the compact database `bytes` (named `name` in errors) and compiles it like
    /// [`with_runs`](Self::with_runs), each family's segments going from the decoder through
    /// the local networks' overlay into the compact structure's builder as they are decoded:
    /// neither the decompressed body nor the runs are held (unless `keep_runs`).
    pub fn from_compact(
        name: &str,
        bytes: &[u8],
        extra_local: &[IpNet],
        keep_runs: bool,
    ) -> Result<Self, GeoError> {
        let local = local_networks(extra_local);
        let (v4_local, v6_local) = local_runs(&local);
        let (mut stream, meta) = compact::Stream::open(name, bytes)?;
        let mut known = false;
        let v4 = Family::streamed(&mut stream, "IPv4", &v4_local, keep_runs, &mut known)?;
        let v6 = Family::streamed(&mut stream, "IPv6", &v6_local, keep_runs, &mut known)?;
        stream.finish()?;
        if !known {
            return Err(GeoError::Empty { name: name.to_owned() });
        }
        Ok(Self { meta, local, v4, v6 })
    }

    /// Where the database came from.
    pub fn meta(&self) -> &GeoMeta {
        &self.meta
    }

    /// The local networks overlaid (built-in ones, then the extra ones).
    pub fn local_networks(&self) -> &[IpNet] {
        &self.local
    }

    /// Whether the overlaid runs were kept (see [`with_runs`](Self::with_runs)).
    pub fn has_runs(&self) -> bool {
        self.v4.segments.is_some()
    }

    /// IPv4 runs with the local networks overlaid.
    ///
    /// # Panics
    ///
    /// If the runs were not kept (see [`with_runs`](Self::with_runs)).
    pub fn v4_runs(&self) -> Vec<Run<u32>> {
        self.v4.runs()
    }

    /// IPv6 runs with the local networks overlaid.
    ///
    /// # Panics
    ///
    /// If the runs were not kept (see [`with_runs`](Self::with_runs)).
    pub fn v6_runs(&self) -> Vec<Run<u128>> {
        self.v6.runs()
    }

    /// The id the kernel will find for `addr`: read from the compact structure by the same walk
    /// as the eBPF program ([`tracer_common::geo_dxr::lookup`]).
    pub fn lookup(&self, addr: IpAddr) -> CountryId {
        match addr {
            IpAddr::V4(a) => self.v4.dxr.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.v6.dxr.lookup_v6(u128::from(a)),
        }
    }

    /// The IPv4 runs as a minimal set of CIDR prefixes per run (local ones with
    /// [`CountryId::LOCAL`]; unknown gaps are not emitted), in address order.
    ///
    /// # Panics
    ///
    /// If the runs were not kept (see [`with_runs`](Self::with_runs)).
    pub fn v4_prefixes(&self) -> Vec<(Ipv4Net, CountryId)> {
        prefixes(&self.v4_runs(), |addr, len| Ipv4Net::new(addr.into(), len).ok())
    }

    /// The IPv6 runs as a minimal set of CIDR prefixes per run, like
    /// [`v4_prefixes`](Self::v4_prefixes).
    ///
    /// # Panics
    ///
    /// If the runs were not kept (see [`with_runs`](Self::with_runs)).
    pub fn v6_prefixes(&self) -> Vec<(Ipv6Net, CountryId)> {
        prefixes(&self.v6_runs(), |addr, len| Ipv6Net::new(addr.into(), len).ok())
    }

    /// The IPv4 compact structure.
    pub fn v4_dxr(&self) -> &Dxr {
        &self.v4.dxr
    }

    /// The IPv6 compact structure.
    pub fn v6_dxr(&self) -> &Dxr {
        &self.v6.dxr
    }

    /// Sizes, for reporting (counted while compiling).
    pub fn stats(&self) -> GeoStats {
        GeoStats {
            v4_runs: self.v4.runs,
            v6_runs: self.v6.runs,
            v4_prefixes: self.v4.prefixes,
            v6_prefixes: self.v6.prefixes,
            v4_nodes: self.v4.dxr.nodes.len(),
            v4_ranges: self.v4.dxr.used_ranges(),
            v4_bytes: self.v4.dxr.bytes(),
            v6_nodes: self.v6.dxr.nodes.len(),
            v6_ranges: self.v6.dxr.used_ranges(),
            v6_bytes: self.v6.dxr.bytes(),
        }
    }
}

/// CIDR decomposition of `runs`; `net` builds a prefix (always valid for our lengths).
fn prefixes<A: Address, N>(
    runs: &[Run<A>],
    net: impl Fn(A, u8) -> Option<N>,
) -> Vec<(N, CountryId)> {
    runs.iter()
        .flat_map(|run| {
            cidr_blocks(run.first, run.last)
                .filter_map(|(addr, len)| net(addr, len))
                .map(move |prefix| (prefix, run.id))
        })
        .collect()
}

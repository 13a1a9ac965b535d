//! A loaded database ([`GeoData`]) and its compiled form with the local networks overlaid
//! ([`CompiledGeo`]), which answers lookups exactly as the kernel will.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracer_common::CountryId;

use super::{
    GeoError,
    dxr::{Dxr, build_dxr},
    local::{local_networks, overlay_local},
    ranges::{Address, RangeMap, Run, cidr_blocks, lookup_runs},
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

/// Sorted, disjoint `runs` with sorted, disjoint `top` applied over them, in one pass (touching
/// runs of one id merged): what a [`RangeMap`] gives, without building one.
pub(crate) fn overlay_sorted<A: Address>(runs: &[Run<A>], top: &[Run<A>]) -> Vec<Run<A>> {
    let mut out: Vec<Run<A>> = Vec::with_capacity(runs.len() + 2 * top.len());
    let push = |out: &mut Vec<Run<A>>, first: u128, last: u128, id: CountryId| match out.last_mut()
    {
        Some(prev) if prev.id == id && prev.last.to_u128() + 1 == first => {
            prev.last = A::from_u128(last);
        }
        _ => out.push(Run::new(A::from_u128(first), A::from_u128(last), id)),
    };
    // `emitted` top runs are in `out`; `k` is the first top run that may meet the current run.
    let (mut emitted, mut k) = (0, 0);
    let piece = |out: &mut Vec<Run<A>>, emitted: &mut usize, first: u128, last: u128, id| {
        while let Some(t) = top.get(*emitted).filter(|t| t.first.to_u128() < first) {
            push(out, t.first.to_u128(), t.last.to_u128(), t.id);
            *emitted += 1;
        }
        push(out, first, last, id);
    };
    for run in runs {
        let (mut cur, last) = (run.first.to_u128(), run.last.to_u128());
        while top.get(k).is_some_and(|t| t.last.to_u128() < cur) {
            k += 1;
        }
        let mut j = k;
        loop {
            match top.get(j) {
                Some(t) if t.first.to_u128() <= last => {
                    if t.first.to_u128() > cur {
                        piece(&mut out, &mut emitted, cur, t.first.to_u128() - 1, run.id);
                    }
                    if t.last.to_u128() >= last {
                        break;
                    }
                    cur = t.last.to_u128() + 1;
                    j += 1;
                }
                _ => {
                    piece(&mut out, &mut emitted, cur, last, run.id);
                    break;
                }
            }
        }
    }
    for t in &top[emitted..] {
        push(&mut out, t.first.to_u128(), t.last.to_u128(), t.id);
    }
    out
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

/// A database with the local networks overlaid as [`CountryId::LOCAL`], and its compact lookup
/// structures ([`tracer_common::geo_dxr`]).
#[derive(Clone, Debug)]
pub struct CompiledGeo {
    data: GeoData,
    local: Vec<IpNet>,
    v4_local: Vec<Run<u32>>,
    v6_local: Vec<Run<u128>>,
    v4_dxr: Dxr,
    v6_dxr: Dxr,
}

impl CompiledGeo {
    /// Overlays the built-in local networks and `extra_local` (e.g. the LAN prefixes) on
    /// `data` and builds the compact structure of each family.
    pub fn new(data: GeoData, extra_local: &[IpNet]) -> Result<Self, GeoError> {
        if let Some(id) = (data.v6.iter().map(|run| run.id))
            .chain(data.v4.iter().map(|run| run.id))
            .find(|id| id.0 >= CountryId::NUM_IDS)
        {
            return Err(GeoError::InvalidId { id: id.0 });
        }
        let local = local_networks(extra_local);
        let (mut v4, mut v6) = (RangeMap::new(), RangeMap::new());
        overlay_local(&mut v4, &mut v6, &local);
        let (v4_local, v6_local) = (v4.into_runs(), v6.into_runs());
        // One family at a time, the overlaid copy dropped once built: the database's runs are
        // held once (in `data`), which keeps the peak memory of a load low.
        let v4_dxr = build_dxr(&overlay_sorted(&data.v4, &v4_local))?;
        let v6_dxr = build_dxr(&overlay_sorted(&data.v6, &v6_local))?;
        Ok(Self { data, local, v4_local, v6_local, v4_dxr, v6_dxr })
    }

    /// The database as loaded (metadata and runs without the local networks).
    pub fn data(&self) -> &GeoData {
        &self.data
    }

    /// The local networks overlaid (built-in ones, then the extra ones).
    pub fn local_networks(&self) -> &[IpNet] {
        &self.local
    }

    /// IPv4 runs with the local networks overlaid (computed on each call).
    pub fn v4_runs(&self) -> Vec<Run<u32>> {
        overlay_sorted(&self.data.v4, &self.v4_local)
    }

    /// IPv6 runs with the local networks overlaid (computed on each call).
    pub fn v6_runs(&self) -> Vec<Run<u128>> {
        overlay_sorted(&self.data.v6, &self.v6_local)
    }

    /// The id the kernel will find for `addr`: read from the compact structure by the same walk
    /// as the eBPF program ([`tracer_common::geo_dxr::lookup`]).
    pub fn lookup(&self, addr: IpAddr) -> CountryId {
        match addr {
            IpAddr::V4(a) => self.v4_dxr.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.v6_dxr.lookup_v6(u128::from(a)),
        }
    }

    /// The IPv4 runs as a minimal set of CIDR prefixes per run (local ones with
    /// [`CountryId::LOCAL`]; unknown gaps are not emitted), in address order.
    pub fn v4_prefixes(&self) -> Vec<(Ipv4Net, CountryId)> {
        prefixes(&self.v4_runs(), |addr, len| Ipv4Net::new(addr.into(), len).ok())
    }

    /// The IPv6 runs as a minimal set of CIDR prefixes per run, like
    /// [`v4_prefixes`](Self::v4_prefixes).
    pub fn v6_prefixes(&self) -> Vec<(Ipv6Net, CountryId)> {
        prefixes(&self.v6_runs(), |addr, len| Ipv6Net::new(addr.into(), len).ok())
    }

    /// The IPv4 compact structure.
    pub fn v4_dxr(&self) -> &Dxr {
        &self.v4_dxr
    }

    /// The IPv6 compact structure.
    pub fn v6_dxr(&self) -> &Dxr {
        &self.v6_dxr
    }

    /// Sizes, for reporting.
    pub fn stats(&self) -> GeoStats {
        // One family's overlaid runs at a time, so reporting does not raise the peak memory.
        fn sizes<A: Address>(runs: &[Run<A>]) -> (usize, usize) {
            let prefixes = runs.iter().map(|run| cidr_blocks(run.first, run.last).count());
            (runs.len(), prefixes.sum())
        }
        let (v4_runs, v4_prefixes) = sizes(&self.v4_runs());
        let (v6_runs, v6_prefixes) = sizes(&self.v6_runs());
        GeoStats {
            v4_runs,
            v6_runs,
            v4_prefixes,
            v6_prefixes,
            v4_nodes: self.v4_dxr.nodes.len(),
            v4_ranges: self.v4_dxr.used_ranges(),
            v4_bytes: self.v4_dxr.bytes(),
            v6_nodes: self.v6_dxr.nodes.len(),
            v6_ranges: self.v6_dxr.used_ranges(),
            v6_bytes: self.v6_dxr.bytes(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_sorted_is_the_range_map_overlay() {
        // Deterministic pseudo-random runs over a small space, so overlaps of every shape occur.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n)) as u32
        };
        for _ in 0..300 {
            let mut make = |count: u32, ids: u16| {
                let mut map = RangeMap::<u32>::new();
                for _ in 0..count {
                    let first = next(400);
                    let last = first + next(40);
                    map.insert(first, last, CountryId(1 + next(u32::from(ids)) as u16));
                }
                map.into_runs()
            };
            let (base, top) = (make(12, 3), make(4, 2));
            let mut expected = RangeMap::from_runs(&base);
            for run in &top {
                expected.insert(run.first, run.last, run.id);
            }
            assert_eq!(overlay_sorted(&base, &top), expected.into_runs(), "{base:?} + {top:?}");
        }
    }
}

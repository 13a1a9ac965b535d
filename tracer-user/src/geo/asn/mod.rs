//! ASN databases for `--asn FILE`: which autonomous system (number and organisation) an address
//! belongs to.
//!
//! Formats, judged by content (never by file name), each optionally gzip-compressed:
//! - **MaxMind DB** (GeoLite2-ASN, DB-IP ASN lite, ip-location-db `asn.mmdb`): the MMDB metadata
//!   marker is within the last 128 KiB. Records need `autonomous_system_number`
//!   ([`mmdb`]).
//! - **TSV** (iptoasn.com `ip2asn-v4.tsv`, `-v6`, `-combined`, `-v4-u32`): the first content
//!   line has a tab before any comma ([`text`]).
//! - **CSV** (ip-location-db `asn-ipv4.csv`, `-ipv6`, `-num` variants; DB-IP ASN lite CSV;
//!   GeoLite2-ASN-Blocks CSV): the first content line has a comma ([`text`]).
//!
//! Anything else (binary data, other compression formats, text without separators) is refused
//! as [`AsnError::UnknownFormat`].
//!
//! Merging: rows are applied in order, file after file in the order given, and a later row
//! overrides exactly the addresses it covers, so **a later file wins** where files overlap (and
//! within a file, a later row wins: ip-location-db's own IPv4 file has such an overlap).
//! Addresses no row covers have no AS; AS 0 rows are skipped and erase nothing.
//!
//! In memory: per family, one sorted vector of range starts (`u32` for IPv4, `u128` for IPv6,
//! gaps stored as boundaries of their own) and a parallel vector of `u32` entry indexes,
//! searched by binary search; entries are (AS number, organisation index) pairs, each distinct
//! organisation name stored once in a single `String`. Organisation names are valid UTF-8 with
//! control characters replaced and at most [`MAX_ORG_BYTES`] long ([`clean_org`]); they are not
//! otherwise escaped.

mod builder;
pub mod error;
pub mod input;
pub mod mmdb;
pub mod text;

#[cfg(test)]
mod npm_data_tests;
#[cfg(test)]
mod tests;

use std::{fmt, net::IpAddr, path::Path};

pub use builder::{MAX_ORG_BYTES, clean_org};
pub use error::AsnError;
pub use input::MAX_INPUT_BYTES;

use builder::{Builder, Table};
use text::Sep;

/// The marker that precedes the metadata section of a MaxMind DB file.
const MMDB_METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// The marker is within this many bytes of the end of an MMDB file (per the MMDB spec).
const MMDB_METADATA_SEARCH: usize = 128 * 1024;

/// The autonomous system an address belongs to, borrowed from an [`AsnDb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Asn<'a> {
    /// The AS number (never 0).
    pub number: u32,
    /// The organisation's name as the source gives it (cleaned by [`clean_org`]; may be empty).
    pub org: &'a str,
}

/// The format of a database's bytes, judged by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A gzip stream (decompressed, then judged again).
    Gzip,
    /// A MaxMind DB file.
    Mmdb,
    /// Tab-separated ranges (iptoasn.com).
    Tsv,
    /// Comma-separated ranges or networks (ip-location-db, DB-IP, GeoLite2 CSV).
    Csv,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gzip => "gzip",
            Self::Mmdb => "MMDB",
            Self::Tsv => "TSV",
            Self::Csv => "CSV",
        })
    }
}

/// Magic numbers of formats that are recognised only to be refused with a clear reason.
const REFUSED_MAGIC: [(&[u8], &str); 5] = [
    (b"PK\x03\x04", "a zip archive (unpack it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed (decompress it, or use gzip)"),
    (b"BZh", "bzip2-compressed (decompress it, or use gzip)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (decompress it, or use gzip)"),
    (b"ETGEO\x01", "a compact country database (geo), not an ASN database"),
];

/// Judges the format of `bytes` by content, or says why it is none of the supported ones.
fn sniff(bytes: &[u8]) -> Result<Format, String> {
    if input::is_gzip(bytes) {
        return Ok(Format::Gzip);
    }
    let tail = &bytes[bytes.len().saturating_sub(MMDB_METADATA_SEARCH)..];
    if memfind(tail, MMDB_METADATA_MARKER) {
        return Ok(Format::Mmdb);
    }
    if let Some((_, reason)) = REFUSED_MAGIC.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Err((*reason).to_owned());
    }
    if bytes[..bytes.len().min(4096)].contains(&0) {
        return Err("binary content (NUL bytes) that is neither gzip nor MaxMind DB".to_owned());
    }
    let Some(line) = text::first_line(bytes) else {
        return Ok(Format::Csv); // no rows: reported as empty
    };
    let tab = line.iter().position(|&b| b == b'\t');
    let comma = line.iter().position(|&b| b == b',');
    match (tab, comma) {
        (Some(tab), Some(comma)) if tab < comma => Ok(Format::Tsv),
        (Some(_), None) => Ok(Format::Tsv),
        (_, Some(_)) => Ok(Format::Csv),
        (None, None) => Err("the first line has neither commas nor tabs".to_owned()),
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The format of `bytes` judged by content, or `None` if it is none of the supported ones.
pub fn detect_format(bytes: &[u8]) -> Option<Format> {
    sniff(bytes).ok()
}

/// One source of an [`AsnDb`], as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsnSource {
    /// The source's name (the file path for [`AsnDb::load`]).
    pub name: String,
    /// Its format, after decompression ([`Format::Mmdb`], [`Format::Tsv`] or [`Format::Csv`]).
    pub format: Format,
    /// Whether it was gzip-compressed.
    pub gzipped: bool,
    /// Rows (or MMDB networks) applied from it, not counting skipped ones (AS 0, headers).
    pub rows: usize,
    /// The MMDB metadata's `database_type` (e.g. `GeoLite2-ASN`); `None` for text sources.
    pub database_type: Option<String>,
}

/// An (AS number, organisation) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    number: u32,
    /// Index into [`AsnDb::org_ends`].
    org: u32,
}

/// An address -> autonomous system database, merged from one or more sources (a later source
/// wins where sources overlap; see the [module docs](self)).
///
/// `Debug` prints a summary (sources, counts, memory), not the tables.
#[derive(Clone)]
pub struct AsnDb {
    v4: Table<u32>,
    v6: Table<u128>,
    entries: Vec<Entry>,
    /// End offset in `orgs` of each organisation name; its start is the previous end (or 0).
    org_ends: Vec<u32>,
    orgs: String,
    sources: Vec<AsnSource>,
}

impl AsnDb {
    /// Loads and merges `paths` in order (a later file wins where files overlap), e.g. the IPv4
    /// and the IPv6 file of one source, or a base database followed by corrections.
    ///
    /// Each file is read (at most [`MAX_INPUT_BYTES`], also after decompression), parsed and
    /// dropped before the next is read. Fails on the first bad file, on a file without AS
    /// ranges ([`AsnError::Empty`]), and on an empty `paths` ([`AsnError::NoFiles`]).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<AsnDb, AsnError> {
        let mut builder = Builder::new();
        for path in paths {
            let path = path.as_ref();
            let bytes = input::read_file(path)?;
            add_source(&mut builder, &path.display().to_string(), &bytes)?;
        }
        builder.finish()
    }

    /// A database from one in-memory source named `name` in errors.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<AsnDb, AsnError> {
        Self::from_sources(&[(name, bytes)])
    }

    /// A database from in-memory `(name, bytes)` sources merged in order, like
    /// [`load`](Self::load).
    pub fn from_sources(sources: &[(&str, &[u8])]) -> Result<AsnDb, AsnError> {
        let mut builder = Builder::new();
        for &(name, bytes) in sources {
            if bytes.len() as u64 > MAX_INPUT_BYTES {
                return Err(crate::base::input::InputError::too_large(name, MAX_INPUT_BYTES).into());
            }
            add_source(&mut builder, name, bytes)?;
        }
        builder.finish()
    }

    /// The autonomous system of `ip`, if some source covers it. IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) are looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<Asn<'_>> {
        let index = match ip {
            IpAddr::V4(v4) => self.v4.get(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.get(v4.into()),
                None => self.v6.get(v6.into()),
            },
        }?;
        let entry = self.entries.get(index as usize)?;
        Some(Asn { number: entry.number, org: self.org(entry.org) })
    }

    fn org(&self, index: u32) -> &str {
        let index = index as usize;
        let offset = |i: usize| self.org_ends.get(i).map_or(0, |&end| end as usize);
        let start = index.checked_sub(1).map_or(0, offset);
        // Offsets are taken after whole names were pushed, so they are char boundaries.
        self.orgs.get(start..offset(index)).unwrap_or("")
    }

    /// Number of address ranges held, IPv4 and IPv6 together (after merging: touching ranges of
    /// the same AS and organisation count once).
    pub fn ranges(&self) -> usize {
        self.v4.ranges() + self.v6.ranges()
    }

    /// Number of IPv4 and of IPv6 ranges, as in [`ranges`](Self::ranges).
    pub fn ranges_by_family(&self) -> (usize, usize) {
        (self.v4.ranges(), self.v6.ranges())
    }

    /// Number of distinct (AS number, organisation) pairs.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Approximate heap bytes held by the lookup structures (not counting [`sources`]).
    ///
    /// [`sources`]: Self::sources
    pub fn memory_bytes(&self) -> usize {
        self.v4.heap_bytes()
            + self.v6.heap_bytes()
            + self.entries.capacity() * size_of::<Entry>()
            + self.org_ends.capacity() * size_of::<u32>()
            + self.orgs.capacity()
    }

    /// The sources merged, in order.
    pub fn sources(&self) -> &[AsnSource] {
        &self.sources
    }
}

impl fmt::Debug for AsnDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v4, v6) = self.ranges_by_family();
        f.debug_struct("AsnDb")
            .field("sources", &self.sources)
            .field("v4_ranges", &v4)
            .field("v6_ranges", &v6)
            .field("entries", &self.entries.len())
            .field("organisations", &self.org_ends.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// Parses one source into `builder`, detecting its format (and decompressing gzip once).
fn add_source(builder: &mut Builder, name: &str, bytes: &[u8]) -> Result<(), AsnError> {
    let unknown = |reason| AsnError::UnknownFormat { name: name.to_owned(), reason };
    let mut format = sniff(bytes).map_err(unknown)?;
    let decompressed;
    let (bytes, gzipped) = if format == Format::Gzip {
        decompressed = input::gunzip(name, bytes, MAX_INPUT_BYTES)?;
        format = sniff(&decompressed).map_err(unknown)?;
        if format == Format::Gzip {
            return Err(unknown("gzip inside gzip".to_owned()));
        }
        (&decompressed[..], true)
    } else {
        (bytes, false)
    };
    let database_type = match format {
        Format::Mmdb => Some(mmdb::parse_mmdb(name, bytes, builder)?),
        Format::Tsv => {
            text::parse_text(name, bytes, Sep::Tab, builder)?;
            None
        }
        Format::Csv | Format::Gzip => {
            text::parse_text(name, bytes, Sep::Comma, builder)?;
            None
        }
    };
    builder.end_source(AsnSource { name: name.to_owned(), format, gzipped, rows: 0, database_type })
}

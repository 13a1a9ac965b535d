//! Country databases: loading (CSV ranges, gzip, the compact embedded form), merging ranges in
//! file order, overlaying the local networks, and compiling the kernel's lookup structures.
//!
//! ```text
//! file bytes --load_file/parse_csv/compact::decode--> GeoData (merged runs + metadata)
//!            --CompiledGeo::new(data, lan prefixes)--> segments with LOCAL overlaid, per family
//!            --> lookup(), v4_dxr()/v6_dxr() (compact structures), v4_prefixes()/v6_prefixes() (LPM tries)
//! compact bytes --CompiledGeo::from_compact--> the same, decoded and compiled one family at a time
//! ```

pub mod asn;
pub mod compact;
pub mod compiled;
pub mod csv;
pub mod dxr;
pub mod error;
pub mod input;
pub mod local;
pub mod mmdb;
pub mod ranges;
pub mod regions;
pub mod segments;

use std::path::Path;

pub use compact::{NRO_ATTRIBUTION, decode, encode};
pub use compiled::{CompiledGeo, GeoData, GeoMeta, GeoStats};
pub use csv::parse_csv;
pub use dxr::{Dxr, DxrBuilder, build_dxr};
pub use error::GeoError;
pub use input::MAX_INPUT_BYTES;
pub use local::{default_local_networks, local_networks};
pub use ranges::{Address, RangeMap, Run, lookup_runs};
pub use segments::Segments;

/// The marker that precedes the metadata section of a MaxMind DB file.
const MMDB_METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// The marker is within this many bytes of the end of an MMDB file (per the MMDB spec).
const MMDB_METADATA_SEARCH: usize = 128 * 1024;

/// Which format a database's bytes are in, judged by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The compact form ([`compact`]).
    Compact,
    /// A gzip stream (decompressed, then judged again).
    Gzip,
    /// A MaxMind DB file (GeoLite2/GeoIP2, ip-location-db MMDB).
    Mmdb,
    /// CSV ranges ([`csv`]): anything else.
    Csv,
}

/// Detects the format of `bytes` by content.
pub fn detect_format(bytes: &[u8]) -> Format {
    if compact::is_compact(bytes) {
        Format::Compact
    } else if input::is_gzip(bytes) {
        Format::Gzip
    } else if bytes[bytes.len().saturating_sub(MMDB_METADATA_SEARCH)..]
        .windows(MMDB_METADATA_MARKER.len())
        .any(|w| w == MMDB_METADATA_MARKER)
    {
        Format::Mmdb
    } else {
        Format::Csv
    }
}

/// Parses database bytes named `name` in errors, detecting the format by content.
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Result<GeoData, GeoError> {
    match detect_format(bytes) {
        Format::Compact => compact::decode_named(name, bytes),
        Format::Gzip => {
            let inner = input::gunzip(name, bytes, MAX_INPUT_BYTES)?;
            match detect_format(&inner) {
                Format::Gzip => {
                    Err(GeoError::Unsupported { name: name.to_owned(), format: "doubly gzipped" })
                }
                _ => parse_bytes(name, &inner),
            }
        }
        Format::Mmdb => mmdb::parse_mmdb(name, bytes),
        Format::Csv => parse_csv(name, bytes),
    }
}

/// Loads a database file of any supported format (CSV, gzipped CSV, compact).
pub fn load_file(path: &Path) -> Result<GeoData, GeoError> {
    let bytes = input::read_file(path)?;
    parse_bytes(&path.display().to_string(), &bytes)
}

/// Loads several files and applies them in order (later files override the addresses they
/// cover, see [`GeoData::apply`]), e.g. the IPv4 and the IPv6 file of one source.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<GeoData, GeoError> {
    let mut merged = GeoData::default();
    for path in paths {
        merged.apply(load_file(path.as_ref())?);
    }
    Ok(merged)
}

//! The compact binary form of a [`GeoData`], used for the embedded default database.
//!
//! Layout: the magic `ETGEO\x01`, then one zlib (deflate + Adler-32) stream holding:
//!
//! ```text
//! string source              string = varint byte length, UTF-8 bytes
//! option build_date          option = varint 0 (none) or 1 + byte length, UTF-8 bytes
//! option attribution
//! family v4, family v6       family = varint n, then n varint start deltas, then n varint ids
//! ```
//!
//! A family lists the segments that tile its whole address space: the first starts at 0 (delta
//! 0), each later one at the previous start plus its (non-zero) delta, and each lasts until the
//! next start (the last one to the end of the space). Unknown gaps are segments of id 0, so
//! starts alone suffice. Deltas and ids are stored as two columns, which deflate compresses
//! better than interleaved pairs. Varints are LEB128.
//!
//! [`decode`] checks everything (magic, checksum, lengths against the bytes actually present,
//! ordering, ids, trailing bytes). Its memory is bounded whatever the input claims: the
//! decompressed body is capped at [`MAX_BODY_BYTES`], a family at [`MAX_SEGMENTS`] segments,
//! and a family's vector is reserved for the segments actually present (each takes at least two
//! bytes of the body), never for a count taken on trust.

use std::io::Write as _;

use flate2::{Compression, read::ZlibDecoder, write::ZlibEncoder};
use tracer_common::CountryId;

use super::{
    GeoData, GeoError,
    input::read_limited,
    ranges::{Address, Run},
};

/// The first bytes of a compact database.
pub const MAGIC: &[u8; 6] = b"ETGEO\x01";

/// The attribution the embedded default database (geo-whois-asn-country) requires.
pub const NRO_ATTRIBUTION: &str =
    "CC BY 4.0, Number Resource Organization (NRO), via ip-location-db geo-whois-asn-country";

/// Longest metadata string accepted by [`decode`].
const MAX_STRING: usize = 64 * 1024;

/// Largest decompressed body accepted by [`decode`] (the full geo-whois-asn-country data
/// needs a few MB).
pub const MAX_BODY_BYTES: u64 = 256 << 20;

/// Most segments accepted per family by [`decode`] (the full geo-whois-asn-country data has
/// well under a million per family).
pub const MAX_SEGMENTS: usize = 1 << 22;

/// Whether `bytes` start with the compact magic.
pub fn is_compact(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encodes `data` (runs must be sorted and disjoint, as [`GeoData`] guarantees).
pub fn encode(data: &GeoData) -> Vec<u8> {
    let mut body = Vec::new();
    put_string(&mut body, &data.source);
    put_option(&mut body, data.build_date.as_deref());
    put_option(&mut body, data.attribution.as_deref());
    put_family(&mut body, &data.v4);
    put_family(&mut body, &data.v6);
    let mut out = ZlibEncoder::new(MAGIC.to_vec(), Compression::best());
    out.write_all(&body).and_then(|()| out.finish()).expect("compressing into a Vec cannot fail")
}

/// Decodes a compact database (named "compact database" in errors).
pub fn decode(bytes: &[u8]) -> Result<GeoData, GeoError> {
    decode_named("compact database", bytes)
}

/// Decodes a compact database, naming it `name` in errors.
pub fn decode_named(name: &str, bytes: &[u8]) -> Result<GeoData, GeoError> {
    let compressed = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| GeoError::compact(name, "bad magic (not an ETGEO\\x01 file)"))?;
    let body = read_limited(
        name,
        ZlibDecoder::new(compressed),
        MAX_BODY_BYTES,
        compressed.len().saturating_mul(4).min(64 << 20),
        |e| GeoError::compact(name, format!("corrupt or truncated compressed data: {e}")),
    )?;
    let mut reader = Reader { bytes: &body };
    let err = |reason: String| GeoError::compact(name, reason);
    let source = reader.string("source").map_err(err)?;
    let build_date = reader.option("build date").map_err(err)?;
    let attribution = reader.option("attribution").map_err(err)?;
    let v4 = reader.family::<u32>("IPv4").map_err(err)?;
    let v6 = reader.family::<u128>("IPv6").map_err(err)?;
    if !reader.bytes.is_empty() {
        return Err(err(format!("{} unexpected trailing bytes", reader.bytes.len())));
    }
    let data = GeoData { source, build_date, attribution, v4, v6 };
    if data.is_empty() {
        return Err(GeoError::Empty { name: name.to_owned() });
    }
    Ok(data)
}

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u128);
    out.extend_from_slice(s.as_bytes());
}

fn put_option(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_varint(out, 0),
        Some(s) => {
            put_varint(out, s.len() as u128 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Writes the segments tiling the space: runs, with id-0 segments for the gaps.
fn put_family<A: Address>(out: &mut Vec<u8>, runs: &[Run<A>]) {
    let mut segments: Vec<(u128, u16)> = Vec::with_capacity(runs.len() * 2 + 1);
    let mut next = Some(0u128); // first address not yet covered; None past the end
    for run in runs {
        let first = run.first.to_u128();
        if next.is_some_and(|n| first > n) {
            segments.extend(next.map(|n| (n, CountryId::UNKNOWN.0)));
        }
        if segments.last().is_none_or(|&(_, id)| id != run.id.0) {
            segments.push((first, run.id.0));
        }
        next = (run.last < A::MAX).then(|| run.last.to_u128() + 1);
    }
    if let Some(n) = next
        && !runs.is_empty()
    {
        segments.push((n, CountryId::UNKNOWN.0));
    }
    put_varint(out, segments.len() as u128);
    let mut previous = 0;
    for &(start, _) in &segments {
        put_varint(out, start - previous);
        previous = start;
    }
    for &(_, id) in &segments {
        put_varint(out, u128::from(id));
    }
}

/// A cursor over the decompressed body; every read checks the bytes that remain.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn varint(&mut self, what: &str) -> Result<u128, String> {
        let mut value = 0u128;
        for (i, &byte) in self.bytes.iter().enumerate().take(19) {
            let bits = u128::from(byte & 0x7f);
            if i == 18 && bits > 0x3 {
                return Err(format!("{what}: varint overflows 128 bits"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(format!("{what}: truncated or overlong varint"))
    }

    /// The start of segment `i`, whose predecessor started at `previous`.
    fn start<A: Address>(&mut self, i: usize, previous: u128, what: &str) -> Result<u128, String> {
        let delta = self.varint(what)?;
        if (i == 0) != (delta == 0) {
            return Err(format!("{what}: segment {i} does not start after the previous"));
        }
        previous
            .checked_add(delta)
            .filter(|&s| s <= A::MAX.to_u128())
            .ok_or_else(|| format!("{what}: segment {i} starts beyond the address space"))
    }

    fn take(&mut self, len: u128, what: &str) -> Result<&[u8], String> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.bytes.len() && len <= MAX_STRING)
            .ok_or_else(|| format!("{what}: length {len} exceeds the data"))?;
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what}: not valid UTF-8"))
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = self.varint(what)?;
        Self::utf8(self.take(len, what)?, what)
    }

    fn option(&mut self, what: &str) -> Result<Option<String>, String> {
        match self.varint(what)? {
            0 => Ok(None),
            len => Self::utf8(self.take(len - 1, what)?, what).map(Some),
        }
    }

    fn family<A: Address>(&mut self, what: &str) -> Result<Vec<Run<A>>, String> {
        let count = self.varint(what)?;
        // Each segment takes at least two bytes (a delta and an id).
        let count = usize::try_from(count)
            .ok()
            .filter(|&n| n <= self.bytes.len() / 2 && n <= MAX_SEGMENTS)
            .ok_or_else(|| format!("{what}: segment count {count} exceeds the data or limit"))?;
        // Two cursors, one over the starts column and one over the ids column (found by
        // skipping the starts), so no column is held in memory.
        let mut starts = Reader { bytes: self.bytes };
        for _ in 0..count {
            self.varint(what)?;
        }
        // Segments of a known id bound the runs: reserving that many (every one of them is in
        // the data, at least two bytes each) avoids the doubling copies of a growing vector.
        let mut ids = Reader { bytes: self.bytes };
        let mut known = 0usize;
        for _ in 0..count {
            known += usize::from(ids.varint(what)? != 0);
        }
        let mut runs: Vec<Run<A>> = Vec::with_capacity(known);
        let mut next_start = if count > 0 { Some(starts.start::<A>(0, 0, what)?) } else { None };
        for i in 0..count {
            let first = next_start.expect("read ahead for every segment");
            next_start =
                if i + 1 < count { Some(starts.start::<A>(i + 1, first, what)?) } else { None };
            let id = self.varint(what)?;
            let id = u16::try_from(id)
                .ok()
                .filter(|&id| id <= CountryId::MAX_COUNTRY)
                .map(CountryId)
                .ok_or_else(|| format!("{what}: invalid country id {id}"))?;
            // Starts are strictly increasing, so `next - 1` does not underflow.
            let last = next_start.map_or(A::MAX.to_u128(), |next| next - 1);
            if id == CountryId::UNKNOWN {
                continue;
            }
            match runs.last_mut() {
                Some(prev) if prev.id == id && prev.last.to_u128() + 1 == first => {
                    prev.last = A::from_u128(last);
                }
                _ => runs.push(Run::new(A::from_u128(first), A::from_u128(last), id)),
            }
        }
        Ok(runs)
    }
}

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
//! [`decode`] checks everything (magic, checksum, lengths, ordering, ids, trailing bytes). It
//! reads the body as a stream ([`Stream`]), never holding it decompressed: a family's segments
//! are handed on as they are decoded (which is how the agent compiles the embedded database
//! without holding its runs, [`super::CompiledGeo::from_compact`]). Its memory is bounded whatever the input claims: the decompressed body is
//! capped at [`MAX_BODY_BYTES`], a family at [`MAX_SEGMENTS`] segments, and a family's vectors
//! grow with the segments actually read, never reserved for a count taken on trust.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};

use flate2::{Compression, bufread::ZlibDecoder, write::ZlibEncoder};
use tracer_common::CountryId;

use super::{
    GeoData, GeoError,
    compiled::GeoMeta,
    ranges::{Address, Run},
    segments::SegmentsBuilder,
};
use crate::base::input::InputError;

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
    let (mut stream, meta) = Stream::open(name, bytes)?;
    let v4 = stream.runs::<u32>("IPv4")?;
    let v6 = stream.runs::<u128>("IPv6")?;
    stream.finish()?;
    let GeoMeta { source, build_date, attribution } = meta;
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

/// Bytes of decompressed body buffered at a time.
const STREAM_BUFFER: usize = 16 * 1024;

/// A compact database being decoded: [`open`](Self::open) reads the metadata, then
/// [`family`](Self::family) each family in order (IPv4, then IPv6), then
/// [`finish`](Self::finish) checks that nothing follows and that the checksum holds. Only a
/// small buffer of the decompressed body is held at a time.
pub struct Stream<'a> {
    name: String,
    compressed: &'a [u8],
    body: BufReader<ZlibDecoder<&'a [u8]>>,
    /// Body bytes consumed so far.
    read: u64,
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("name", &self.name).field("read", &self.read).finish()
    }
}

impl<'a> Stream<'a> {
    /// Checks the magic and reads the metadata of the compact database `bytes`, naming it
    /// `name` in errors.
    pub fn open(name: &str, bytes: &'a [u8]) -> Result<(Self, GeoMeta), GeoError> {
        let compressed = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| GeoError::compact(name, "bad magic (not an ETGEO\\x01 file)"))?;
        let mut stream = Self::new(name, compressed);
        let source = stream.string("source")?;
        let build_date = stream.option("build date")?;
        let attribution = stream.option("attribution")?;
        Ok((stream, GeoMeta { source, build_date, attribution }))
    }

    /// A stream at the start of the body.
    fn new(name: &str, compressed: &'a [u8]) -> Self {
        Self {
            name: name.to_owned(),
            compressed,
            body: BufReader::with_capacity(STREAM_BUFFER, ZlibDecoder::new(compressed)),
            read: 0,
        }
    }

    fn err(&self, reason: String) -> GeoError {
        GeoError::compact(&self.name, reason)
    }

    /// The next byte of the body, `None` at its end.
    fn byte(&mut self) -> Result<Option<u8>, GeoError> {
        let name = &self.name;
        let buf = self.body.fill_buf().map_err(|e| {
            GeoError::compact(name, format!("corrupt or truncated compressed data: {e}"))
        })?;
        let Some(&byte) = buf.first() else {
            return Ok(None);
        };
        self.consume(1)?;
        Ok(Some(byte))
    }

    /// Consumes `len` bytes of the buffer, counting them against [`MAX_BODY_BYTES`].
    fn consume(&mut self, len: usize) -> Result<(), GeoError> {
        self.body.consume(len);
        self.read += len as u64;
        if self.read > MAX_BODY_BYTES {
            return Err(InputError::too_large(&self.name, MAX_BODY_BYTES).into());
        }
        Ok(())
    }

    fn varint(&mut self, what: &str) -> Result<u128, GeoError> {
        // Fast path: the whole varint is in the buffer (and within 19 bytes).
        let buffered = self.body.buffer();
        if let Some(end) = buffered.iter().take(19).position(|&byte| byte & 0x80 == 0) {
            if end == 18 && buffered[18] > 0x3 {
                return Err(self.err(format!("{what}: varint overflows 128 bits")));
            }
            // Up to 9 bytes (63 bits: every id, nearly every start) fold in 64 bits.
            let bytes = &buffered[..=end];
            let value = if end < 9 {
                u128::from(bytes.iter().rev().fold(0u64, |v, &b| v << 7 | u64::from(b & 0x7f)))
            } else {
                bytes.iter().rev().fold(0u128, |v, &b| v << 7 | u128::from(b & 0x7f))
            };
            self.consume(end + 1)?;
            return Ok(value);
        }
        let mut value = 0u128;
        for i in 0..19 {
            let Some(byte) = self.byte()? else {
                break;
            };
            let bits = u128::from(byte & 0x7f);
            if i == 18 && bits > 0x3 {
                return Err(self.err(format!("{what}: varint overflows 128 bits")));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err(format!("{what}: truncated or overlong varint")))
    }

    /// The start of segment `i`, whose predecessor started at `previous`.
    fn start<A: Address>(
        &mut self,
        i: usize,
        previous: u128,
        what: &str,
    ) -> Result<u128, GeoError> {
        let delta = self.varint(what)?;
        if (i == 0) != (delta == 0) {
            return Err(self.err(format!("{what}: segment {i} does not start after the previous")));
        }
        previous
            .checked_add(delta)
            .filter(|&s| s <= A::MAX.to_u128())
            .ok_or_else(|| self.err(format!("{what}: segment {i} starts beyond the address space")))
    }

    fn utf8(&mut self, len: u128, what: &str) -> Result<String, GeoError> {
        let exceeds = |stream: &Self| stream.err(format!("{what}: length {len} exceeds the data"));
        let len = usize::try_from(len).ok().filter(|&len| len <= MAX_STRING);
        let Some(len) = len else {
            return Err(exceeds(self));
        };
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            match self.byte()? {
                Some(byte) => bytes.push(byte),
                None => return Err(exceeds(self)),
            }
        }
        String::from_utf8(bytes).map_err(|_| self.err(format!("{what}: not valid UTF-8")))
    }

    fn string(&mut self, what: &str) -> Result<String, GeoError> {
        let len = self.varint(what)?;
        self.utf8(len, what)
    }

    fn option(&mut self, what: &str) -> Result<Option<String>, GeoError> {
        match self.varint(what)? {
            0 => Ok(None),
            len => self.utf8(len - 1, what).map(Some),
        }
    }

    /// Reads the next family (`what` names it in errors: "IPv4", "IPv6"), handing the start
    /// and id of each segment to `each` in address order (consecutive ones may have one id).
    ///
    /// The starts column and the ids column are read side by side, by a second decoder over
    /// the same data moved to the ids (decompressing the body up to there once more), so
    /// neither column is held.
    pub fn family<A: Address>(
        &mut self,
        what: &str,
        mut each: impl FnMut(u128, CountryId) -> Result<(), GeoError>,
    ) -> Result<(), GeoError> {
        let count = self.varint(what)?;
        let count =
            usize::try_from(count).ok().filter(|&n| n <= MAX_SEGMENTS).ok_or_else(|| {
                self.err(format!("{what}: segment count {count} exceeds the data or limit"))
            })?;
        let mut ids = Self::new(&self.name, self.compressed);
        ids.skip(self.read)?;
        ids.skip_varints(count, what)?;
        let mut previous = 0u128;
        for i in 0..count {
            let start = self.start::<A>(i, previous, what)?;
            previous = start;
            let id = ids.varint(what)?;
            let id = u16::try_from(id)
                .ok()
                .filter(|&id| id <= CountryId::MAX_COUNTRY)
                .map(CountryId)
                .ok_or_else(|| ids.err(format!("{what}: invalid country id {id}")))?;
            each(start, id)?;
        }
        // The ids decoder is where the next family starts.
        *self = ids;
        Ok(())
    }

    /// The next family's segments (see [`family`](Self::family)) as runs.
    fn runs<A: Address>(&mut self, what: &str) -> Result<Vec<Run<A>>, GeoError> {
        let mut segments = SegmentsBuilder::<A>::new();
        self.family::<A>(what, |start, id| {
            segments.push(start, id);
            Ok(())
        })?;
        Ok(segments.finish().runs().collect())
    }

    /// Skips `count` varints (their values are read, and checked, by the other decoder).
    fn skip_varints(&mut self, mut count: usize, what: &str) -> Result<(), GeoError> {
        while count > 0 {
            let name = &self.name;
            let buffered = self.body.fill_buf().map_err(|e| {
                GeoError::compact(name, format!("corrupt or truncated compressed data: {e}"))
            })?;
            if buffered.is_empty() {
                return Err(self.err(format!("{what}: truncated or overlong varint")));
            }
            // Up to and including the last byte of the `count`-th varint in the buffer.
            let mut len = buffered.len();
            for (i, &byte) in buffered.iter().enumerate() {
                if byte & 0x80 == 0 {
                    count -= 1;
                    if count == 0 {
                        len = i + 1;
                        break;
                    }
                }
            }
            self.consume(len)?;
        }
        Ok(())
    }

    /// Skips the first `bytes` bytes of the body (fewer than were read before).
    fn skip(&mut self, bytes: u64) -> Result<(), GeoError> {
        let skipped = std::io::copy(&mut (&mut self.body).take(bytes), &mut std::io::sink())
            .map_err(|e| self.err(format!("corrupt or truncated compressed data: {e}")))?;
        if skipped != bytes {
            return Err(self.err("truncated compressed data".to_owned()));
        }
        self.read = bytes;
        Ok(())
    }

    /// Checks that the body ends here (and, reading to its end, its checksum).
    pub fn finish(mut self) -> Result<(), GeoError> {
        let mut trailing = 0u64;
        while self.byte()?.is_some() {
            trailing += 1;
        }
        if trailing > 0 {
            return Err(self.err(format!("{trailing} unexpected trailing bytes")));
        }
        Ok(())
    }
}

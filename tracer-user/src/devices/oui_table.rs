//! The embedded IEEE OUI table: packed at build time from the `oui-data` crate
//! (`build/oui_table.rs` describes the format), unpacked on the first lookup.

use std::{io::Read as _, sync::LazyLock};

/// The packed table.
static PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui.bin"));

/// The unpacked table.
static TABLE: LazyLock<Table> = LazyLock::new(|| {
    unpack(PACKED).unwrap_or_else(|e| {
        tracing::warn!(error = e, "the embedded OUI table is damaged: no vendors");
        Table::default()
    })
});

/// Organisation names and the blocks assigned to them.
#[derive(Debug, Default)]
struct Table {
    names: Vec<Box<str>>,
    /// (prefix length in bits, prefix, index into `names`), sorted.
    entries: Vec<(u8, u64, u32)>,
}

/// The organisation the longest matching IEEE block (36, 28, then 24 bits) of `mac` is
/// assigned to. The caller handles the flag bits.
pub(super) fn lookup(mac: [u8; 6]) -> Option<&'static str> {
    let table: &'static Table = &TABLE;
    let value = mac.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
    [36u8, 28, 24].into_iter().find_map(|bits| {
        let key = (bits, value >> (48 - bits));
        let i = table.entries.binary_search_by_key(&key, |&(b, p, _)| (b, p)).ok()?;
        table.names.get(table.entries[i].2 as usize).map(|n| &**n)
    })
}

/// How many blocks the table holds.
#[cfg(test)]
fn len() -> usize {
    TABLE.entries.len()
}

/// Unpacks the table; errors name what is wrong.
fn unpack(packed: &[u8]) -> Result<Table, &'static str> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(packed).read_to_end(&mut raw).map_err(|_| "not zlib")?;
    let mut r = Reader(&raw);
    if r.take(4)? != b"OUI1" {
        return Err("bad magic");
    }
    let count = r.u32()? as usize;
    let mut names = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let len = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| "short")?);
        let name = std::str::from_utf8(r.take(len.into())?).map_err(|_| "name not UTF-8")?;
        names.push(Box::from(name));
    }
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let bits = r.take(1)?[0];
        let mut prefix = [0u8; 8];
        prefix[3..].copy_from_slice(r.take(5)?);
        let name = r.u32()?;
        if name as usize >= names.len() {
            return Err("name index out of range");
        }
        entries.push((bits, u64::from_be_bytes(prefix), name));
    }
    if !r.0.is_empty() {
        return Err("trailing bytes");
    }
    if !entries.is_sorted() {
        return Err("entries not sorted");
    }
    Ok(Table { names, entries })
}

/// Reads from the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_is_whole_and_small() {
        assert!(len() > 50_000, "{} blocks", len());
        assert!(PACKED.len() < 1 << 20, "{} bytes packed", PACKED.len());
        assert!(
            TABLE
                .entries
                .iter()
                .all(|&(bits, p, _)| [24, 28, 36].contains(&bits) && p >> bits == 0)
        );
    }

    #[test]
    fn the_longest_block_wins() {
        // 8c:1f:64 is an MA-L block of the IEEE RA itself, sub-assigned as MA-S blocks.
        assert_eq!(
            lookup([0x8c, 0x1f, 0x64, 0xaf, 0xa0, 0x01]),
            Some("DATA ELECTRONIC DEVICES, INC")
        );
        assert_eq!(
            lookup([0x8c, 0x1f, 0x64, 0x9b, 0x90, 0x01]),
            Some("QUERCUS TECHNOLOGIES, S.L.")
        );
        // An MA-M block.
        assert_eq!(lookup([0xc8, 0x5c, 0xe2, 0x70, 0, 1]), Some("SYNERGY SYSTEMS AND SOLUTIONS"));
        assert_eq!(lookup([0x50, 0xa6, 0xd8, 1, 2, 3]), Some("Apple, Inc."));
        assert_eq!(lookup([0xfc, 0xff, 0xff, 0, 0, 1]), None);
    }

    #[test]
    fn damaged_tables_are_refused() {
        assert_eq!(unpack(b"junk").unwrap_err(), "not zlib");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(PACKED).read_to_end(&mut raw).unwrap();
        let pack = |raw: &[u8]| {
            use std::io::Write as _;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(raw).unwrap();
            z.finish().unwrap()
        };
        assert!(unpack(&pack(&raw)).is_ok());
        assert_eq!(unpack(&pack(&raw[..raw.len() - 1])).unwrap_err(), "truncated");
        let mut extra = raw.clone();
        extra.push(0);
        assert_eq!(unpack(&pack(&extra)).unwrap_err(), "trailing bytes");
        assert_eq!(unpack(&pack(b"OUI0")).unwrap_err(), "bad magic");
    }
}

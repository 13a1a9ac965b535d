//! The direct-indexed lookup tables: a few array reads per address, whatever the database.
//!
//! A table is an array of [`Block`]s of 256 entries, walked one address byte at a time. Blocks
//! `0..256` are the root: the entry for an address starting with bytes `a.b` is
//! `blocks[a].entries[b]` (one entry per /16). An entry below [`CountryId::NUM_IDS`] is the
//! answer for everything below it; an entry at or above it points to the block
//! `entry - NUM_IDS`, indexed by the next address byte, and so on.
//!
//! IPv4 tables resolve all four bytes (at most three reads). IPv6 tables resolve the first
//! [`V6_TABLE_BYTES`] bytes (down to /64, at most seven reads); where the database is finer than
//! that, the entry is [`CountryId::FALLBACK`] and the LPM trie of those few finer prefixes
//! answers. The agent builds the tables from merged runs (`tracer-user`'s `geo::table`) and
//! deduplicates identical blocks.
//!
//! [`lookup`] is the one definition of how a table is read, used by the eBPF program and by
//! `egress-tracer lookup`, so both decide the same way.

use crate::CountryId;

/// Entries per block (one per value of an address byte).
pub const BLOCK_ENTRIES: usize = 256;
/// Number of root blocks (one per first byte).
pub const ROOT_BLOCKS: u32 = 256;
/// Largest number of blocks a table can have (pointers are `u16`).
pub const MAX_BLOCKS: u32 = u16::MAX as u32 + 1 - CountryId::NUM_IDS as u32;

/// One level of the table for 256 consecutive values of one address byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// Country ids, or pointers (`>= NUM_IDS`) to the next level's block.
    pub entries: [u16; BLOCK_ENTRIES],
}

impl Block {
    /// A block answering `id` for every value.
    pub const fn filled(id: CountryId) -> Self {
        Self { entries: [id.0; BLOCK_ENTRIES] }
    }
}

/// Encodes a pointer to block `index` as a table entry.
pub const fn pointer(index: u32) -> u16 {
    (index + CountryId::NUM_IDS as u32) as u16
}

/// Address bytes an IPv6 table resolves (a /64); finer data is left to the LPM trie.
pub const V6_TABLE_BYTES: usize = 8;

/// Looks up the address whose leading bytes are `addr` in a table whose blocks `block(i)`
/// returns.
///
/// Returns [`CountryId::UNKNOWN`] if a block is missing or the walk runs out of bytes (an
/// inconsistent table never misattributes traffic, it only leaves it unclassified), and
/// [`CountryId::FALLBACK`] where the table says "finer than I resolve".
#[inline(always)]
pub fn lookup<'a, const N: usize>(
    addr: &[u8; N],
    block: impl Fn(u32) -> Option<&'a Block>,
) -> CountryId {
    let mut entry = match block(u32::from(addr[0])) {
        Some(b) => b.entries[usize::from(addr[1])],
        None => return CountryId::UNKNOWN,
    };
    let mut level = 2;
    while level < N {
        if entry < CountryId::NUM_IDS {
            return CountryId(entry);
        }
        entry = match block(u32::from(entry - CountryId::NUM_IDS)) {
            Some(b) => b.entries[usize::from(addr[level])],
            None => return CountryId::UNKNOWN,
        };
        level += 1;
    }
    if entry < CountryId::NUM_IDS { CountryId(entry) } else { CountryId::UNKNOWN }
}

/// Looks an IPv4 address (host order) up; see [`lookup`].
#[inline(always)]
pub fn lookup_v4<'a>(addr: u32, block: impl Fn(u32) -> Option<&'a Block>) -> CountryId {
    lookup(&addr.to_be_bytes(), block)
}

/// Looks an IPv6 address up by its first [`V6_TABLE_BYTES`] bytes; see [`lookup`].
#[inline(always)]
pub fn lookup_v6<'a>(addr: &[u8; 16], block: impl Fn(u32) -> Option<&'a Block>) -> CountryId {
    let mut prefix = [0u8; V6_TABLE_BYTES];
    prefix.copy_from_slice(&addr[..V6_TABLE_BYTES]);
    lookup(&prefix, block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_levels() {
        let cn = CountryId::from_code(*b"CN").unwrap();
        let us = CountryId::from_code(*b"US").unwrap();
        let mut blocks = [Block::filled(CountryId::UNKNOWN); 258];
        blocks[36].entries[110] = cn.0; // 36.110.0.0/16
        blocks[8].entries[8] = pointer(256); // 8.8.0.0/16 is mixed
        blocks[256].entries[8] = pointer(257); // 8.8.8.0/24 is mixed
        blocks[257].entries[8] = us.0; // 8.8.8.8/32
        let get = |i: u32| blocks.get(i as usize);
        assert_eq!(lookup_v4(u32::from_be_bytes([36, 110, 7, 1]), get), cn);
        assert_eq!(lookup_v4(u32::from_be_bytes([8, 8, 8, 8]), get), us);
        assert_eq!(lookup_v4(u32::from_be_bytes([8, 8, 8, 9]), get), CountryId::UNKNOWN);
        assert_eq!(lookup_v4(u32::from_be_bytes([8, 8, 4, 4]), get), CountryId::UNKNOWN);
    }

    #[test]
    fn ipv6_walks_to_the_fallback() {
        let cn = CountryId::from_code(*b"CN").unwrap();
        let mut blocks = [Block::filled(CountryId::UNKNOWN); 262];
        blocks[0x24].entries[0x0e] = cn.0; // 240e::/16
        blocks[0x20].entries[0x01] = pointer(256); // 2001::/16 mixed
        for (next, byte) in (256u32..).zip(2..V6_TABLE_BYTES) {
            let target =
                if byte + 1 == V6_TABLE_BYTES { CountryId::FALLBACK.0 } else { pointer(next + 1) };
            blocks[next as usize].entries[0x11] = target;
        }
        let get = |i: u32| blocks.get(i as usize);
        let mut addr = [0u8; 16];
        addr[..2].copy_from_slice(&[0x24, 0x0e]);
        assert_eq!(lookup_v6(&addr, get), cn);
        addr[..V6_TABLE_BYTES].copy_from_slice(&[0x20, 0x01, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11]);
        assert_eq!(lookup_v6(&addr, get), CountryId::FALLBACK);
        addr[5] = 0x12;
        assert_eq!(lookup_v6(&addr, get), CountryId::UNKNOWN);
    }

    #[test]
    fn missing_block_is_unknown() {
        let mut blocks = [Block::filled(CountryId::UNKNOWN); 256];
        blocks[1].entries[0] = pointer(999);
        let get = |i: u32| blocks.get(i as usize);
        assert_eq!(lookup_v4(0x0100_0001, get), CountryId::UNKNOWN);
    }
}

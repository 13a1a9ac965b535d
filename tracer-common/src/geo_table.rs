//! The IPv4 direct-indexed lookup table: at most three array reads per address.
//!
//! The table is an array of [`Block`]s of 256 entries. Blocks `0..256` are the root: the entry
//! for `a.b.c.d` is `blocks[a].entries[b]` (one entry per /16). An entry below
//! [`CountryId::NUM_IDS`] is the answer for the whole /16; an entry at or above it points to the
//! block `entry - NUM_IDS`, indexed by `c` (one entry per /24), whose entries again are either an
//! answer or a pointer to a block indexed by `d`. The agent builds the table from merged
//! prefixes (`tracer-user`'s `geo::table`) and deduplicates identical blocks.
//!
//! [`lookup_v4`] is the one definition of how the table is read, used by the eBPF program and by
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
        Self {
            entries: [id.0; BLOCK_ENTRIES],
        }
    }
}

/// Encodes a pointer to block `index` as a table entry.
pub const fn pointer(index: u32) -> u16 {
    (index + CountryId::NUM_IDS as u32) as u16
}

/// Looks `addr` (host order) up in a table whose blocks `block(i)` returns.
///
/// Returns [`CountryId::UNKNOWN`] if a block is missing (an inconsistent table never
/// misattributes traffic, it only leaves it unclassified).
#[inline(always)]
pub fn lookup_v4<'a>(addr: u32, block: impl Fn(u32) -> Option<&'a Block>) -> CountryId {
    let mut entry = match block(addr >> 24) {
        Some(b) => b.entries[((addr >> 16) & 0xff) as usize],
        None => return CountryId::UNKNOWN,
    };
    if entry >= CountryId::NUM_IDS {
        entry = match block((entry - CountryId::NUM_IDS) as u32) {
            Some(b) => b.entries[((addr >> 8) & 0xff) as usize],
            None => return CountryId::UNKNOWN,
        };
        if entry >= CountryId::NUM_IDS {
            entry = match block((entry - CountryId::NUM_IDS) as u32) {
                Some(b) => b.entries[(addr & 0xff) as usize],
                None => return CountryId::UNKNOWN,
            };
            if entry >= CountryId::NUM_IDS {
                return CountryId::UNKNOWN;
            }
        }
    }
    CountryId(entry)
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
        assert_eq!(
            lookup_v4(u32::from_be_bytes([8, 8, 8, 9]), get),
            CountryId::UNKNOWN
        );
        assert_eq!(
            lookup_v4(u32::from_be_bytes([8, 8, 4, 4]), get),
            CountryId::UNKNOWN
        );
    }

    #[test]
    fn missing_block_is_unknown() {
        let mut blocks = [Block::filled(CountryId::UNKNOWN); 256];
        blocks[1].entries[0] = pointer(999);
        let get = |i: u32| blocks.get(i as usize);
        assert_eq!(lookup_v4(0x0100_0001, get), CountryId::UNKNOWN);
    }
}

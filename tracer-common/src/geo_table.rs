//! The root of the compact lookup structure ([`crate::geo_dxr`]): 2^16 `u16` entries, one per
//! value of an address's first 16 bits, stored as 256 [`Block`]s of 256 entries (an array map
//! element of 512 bytes, indexed by the first address byte, then the second).

use crate::CountryId;

/// Entries per block (one per value of an address byte).
pub const BLOCK_ENTRIES: usize = 256;
/// Number of root blocks (one per first byte).
pub const ROOT_BLOCKS: u32 = 256;

/// 256 consecutive root entries: country ids, or pointers (`>= NUM_IDS`) to nodes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Block {
    /// Country ids, or pointers (`>= NUM_IDS`) to nodes.
    pub entries: [u16; BLOCK_ENTRIES],
}

impl Block {
    /// A block answering `id` for every value.
    pub const fn filled(id: CountryId) -> Self {
        Self { entries: [id.0; BLOCK_ENTRIES] }
    }
}

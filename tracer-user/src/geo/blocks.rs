//! The blocks of a table under construction, with identical non-root blocks stored once.
//!
//! The index maps a block's hash to the blocks with that hash, so deduplication costs a few
//! bytes per block rather than a second copy of every block.

use std::{
    collections::HashMap,
    hash::{BuildHasher as _, RandomState},
};

use tracer_common::{
    CountryId,
    geo_table::{Block, MAX_BLOCKS, ROOT_BLOCKS, pointer},
};

use super::GeoError;

/// Blocks `0..ROOT_BLOCKS` are the root; later ones are interned.
pub(super) struct BlockStore {
    /// All blocks, root first.
    pub blocks: Vec<Block>,
    index: HashMap<u64, Vec<u32>>,
    hasher: RandomState,
}

impl BlockStore {
    /// A store holding the root blocks, all unknown.
    pub fn with_roots() -> Self {
        Self {
            blocks: vec![Block::filled(CountryId::UNKNOWN); ROOT_BLOCKS as usize],
            index: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    /// The pointer entry for `block`, adding it unless an identical block exists.
    pub fn intern(&mut self, block: Block) -> Result<u16, GeoError> {
        let hash = self.hasher.hash_one(block.entries);
        let same = self.index.entry(hash).or_default();
        if let Some(&index) = same.iter().find(|&&i| self.blocks[i as usize] == block) {
            return Ok(pointer(index));
        }
        let index = self.blocks.len() as u32;
        if index >= MAX_BLOCKS {
            return Err(GeoError::TableTooLarge { max: MAX_BLOCKS });
        }
        self.blocks.push(block);
        same.push(index);
        Ok(pointer(index))
    }

    /// Sets root entry `slash16` (the first two address bytes).
    pub fn set_root(&mut self, slash16: u32, entry: u16) {
        self.blocks[(slash16 >> 8) as usize].entries[(slash16 & 0xff) as usize] = entry;
    }
}

//! Building the IPv4 direct-indexed table ([`tracer_common::geo_table`]) from merged runs.
//!
//! Root blocks `0..256` hold one entry per /16. A /16 that maps to one id everywhere gets that id;
//! otherwise it points to a block with one entry per /24, and a /24 that is not uniform points to
//! a block with one entry per address. Identical non-root blocks are stored once, which keeps
//! the kernel map small (many /24 blocks are alike).

use tracer_common::{
    CountryId,
    geo_table::{BLOCK_ENTRIES, Block, ROOT_BLOCKS},
};

use super::{
    GeoError,
    blocks::BlockStore,
    ranges::{Run, runs_are_valid},
};

/// The whole IPv4 space as maximal segments `(start, id)`: each lasts until the next start (the
/// last one until `255.255.255.255`); unknown gaps are segments of id 0.
struct Segments {
    starts: Vec<u32>,
    ids: Vec<u16>,
    /// Index of the segment holding the last address sought.
    at: usize,
}

impl Segments {
    fn new(runs: &[Run<u32>]) -> Self {
        let mut segments = Self {
            starts: Vec::with_capacity(runs.len() * 2 + 1),
            ids: Vec::with_capacity(runs.len() * 2 + 1),
            at: 0,
        };
        let mut next: u64 = 0;
        for run in runs {
            if u64::from(run.first) > next {
                segments.push(next as u32, CountryId::UNKNOWN.0);
            }
            segments.push(run.first, run.id.0);
            next = u64::from(run.last) + 1;
        }
        if next <= u64::from(u32::MAX) {
            segments.push(next as u32, CountryId::UNKNOWN.0);
        }
        segments
    }

    fn push(&mut self, start: u32, id: u16) {
        if self.ids.last() != Some(&id) {
            self.starts.push(start);
            self.ids.push(id);
        }
    }

    /// Moves to the segment holding `addr`; addresses must be sought in increasing order.
    fn seek(&mut self, addr: u32) {
        while self.starts.get(self.at + 1).is_some_and(|&start| start <= addr) {
            self.at += 1;
        }
    }

    /// The id of the current segment.
    fn id(&self) -> u16 {
        self.ids.get(self.at).copied().unwrap_or(CountryId::UNKNOWN.0)
    }

    /// Whether the current segment reaches `last` (so `sought..=last` is uniform).
    fn reaches(&self, last: u32) -> bool {
        self.starts.get(self.at + 1).is_none_or(|&next| u64::from(next) > u64::from(last))
    }
}

/// Builds the table for sorted, disjoint `runs` (gaps are unknown).
///
/// Fails if a run's id is not below [`CountryId::NUM_IDS`], if the runs are not sorted and
/// disjoint, or if more than [`MAX_BLOCKS`] blocks would be needed.
pub fn build_v4_table(runs: &[Run<u32>]) -> Result<Vec<Block>, GeoError> {
    if !runs_are_valid(runs) {
        return Err(GeoError::InvalidRuns { family: "IPv4" });
    }
    if let Some(run) = runs.iter().find(|run| run.id.0 >= CountryId::NUM_IDS) {
        return Err(GeoError::InvalidId { id: run.id.0 });
    }
    let mut segments = Segments::new(runs);
    let mut builder = BlockStore::with_roots();
    for slash16 in 0..(ROOT_BLOCKS * BLOCK_ENTRIES as u32) {
        let base = slash16 << 16;
        segments.seek(base);
        let entry = if segments.reaches(base | 0xffff) {
            segments.id()
        } else {
            let mut level24 = Block::filled(CountryId::UNKNOWN);
            for (c, slot) in (0u32..).zip(level24.entries.iter_mut()) {
                let base24 = base | (c << 8);
                segments.seek(base24);
                *slot = if segments.reaches(base24 | 0xff) {
                    segments.id()
                } else {
                    let mut level32 = Block::filled(CountryId::UNKNOWN);
                    for (d, slot) in (0u32..).zip(level32.entries.iter_mut()) {
                        segments.seek(base24 | d);
                        *slot = segments.id();
                    }
                    builder.intern(level32)?
                };
            }
            builder.intern(level24)?
        };
        builder.set_root(slash16, entry);
    }
    Ok(builder.blocks)
}

/// Bytes of kernel memory the table's values take (`blocks * 512`).
pub fn table_bytes(blocks: &[Block]) -> usize {
    std::mem::size_of_val(blocks)
}

#[cfg(test)]
mod tests {
    use tracer_common::geo_table::lookup_v4;

    use super::*;

    #[test]
    fn uniform_space_needs_only_the_root() {
        let id = CountryId(5);
        let table = build_v4_table(&[Run::new(0, u32::MAX, id)]).expect("fits");
        assert_eq!(table.len(), ROOT_BLOCKS as usize);
        assert!(table.iter().all(|b| *b == Block::filled(id)));
    }

    #[test]
    fn identical_blocks_are_shared() {
        // The same /25 split in two different /16s: one /24 block and one /32 block in total.
        let (a, b) = (CountryId(1), CountryId(2));
        let runs = [
            Run::new(0x0101_0000, 0x0101_007f, a),
            Run::new(0x0101_0080, 0x0101_00ff, b),
            Run::new(0x0202_0000, 0x0202_007f, a),
            Run::new(0x0202_0080, 0x0202_00ff, b),
        ];
        let table = build_v4_table(&runs).expect("fits");
        assert_eq!(table.len(), ROOT_BLOCKS as usize + 2);
        let get = |i: u32| table.get(i as usize);
        assert_eq!(lookup_v4(0x0202_0001, get), a);
        assert_eq!(lookup_v4(0x0202_00f0, get), b);
        assert_eq!(lookup_v4(0x0202_0100, get), CountryId::UNKNOWN);
    }

    #[test]
    fn rejects_pointer_ids_and_unsorted_runs() {
        let bad = [Run::new(0, 1, CountryId(CountryId::NUM_IDS))];
        assert!(matches!(build_v4_table(&bad), Err(GeoError::InvalidId { .. })));
        let unsorted = [Run::new(5, 6, CountryId(1)), Run::new(0, 1, CountryId(1))];
        assert!(matches!(build_v4_table(&unsorted), Err(GeoError::InvalidRuns { .. })));
    }

    #[test]
    fn too_many_blocks_is_an_error() {
        // 70,000 /24s whose first two addresses form distinct pairs: as many distinct /32
        // blocks, more than MAX_BLOCKS.
        let id = |v: u32| CountryId((v % 600 + 1) as u16);
        let runs: Vec<_> = (0u32..70_000)
            .flat_map(|i| {
                let base = i << 8;
                [Run::new(base, base, id(i)), Run::new(base + 1, base + 1, id(i / 600))]
            })
            .collect();
        assert!(matches!(build_v4_table(&runs), Err(GeoError::TableTooLarge { .. })));
    }
}

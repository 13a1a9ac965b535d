//! Building the direct-indexed tables ([`tracer_common::geo_table`]) from merged runs.
//!
//! Root blocks `0..256` hold one entry per /16 (the first two address bytes). A node (the
//! addresses sharing `k` leading bytes) that maps to one id everywhere gets that id; otherwise
//! it points to a block with one entry per value of byte `k`, down to `depth_bytes` bytes. A node
//! at the last level that is still mixed (only possible when the table stops short of the full
//! address, as the IPv6 table does at /64) gets [`CountryId::FALLBACK`], and its span is
//! recorded: the runs inside those spans are what the LPM trie next to the table must hold.
//! Identical non-root blocks are stored once, which keeps the kernel maps small (many blocks are
//! alike).
//!
//! The build is linear in the number of runs plus the number of blocks (each block's 256 children
//! are found by one scan over the runs meeting the block), never per address.

use tracer_common::{
    CountryId,
    geo_table::{BLOCK_ENTRIES, Block, ROOT_BLOCKS},
};

use super::{
    GeoError,
    blocks::BlockStore,
    ranges::{Address, Run, cidr_blocks, runs_are_valid},
};

/// A table built by [`build_table`], with the spans of its [`CountryId::FALLBACK`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table<A> {
    /// The blocks, root first ([`ROOT_BLOCKS`] of them, then the interned ones).
    pub blocks: Vec<Block>,
    /// `(first, last)` of every node whose entry is [`CountryId::FALLBACK`], in address order.
    /// Each is a whole node at the table's last level (a /64 for the IPv6 table).
    pub fallback: Vec<(A, A)>,
    /// Non-root blocks the build produced that were identical to a block already stored (and
    /// so share it): the blocks deduplication saved.
    pub shared_blocks: usize,
}

impl<A: Address> Table<A> {
    /// Bytes of kernel memory the table's values take (`blocks * 512`).
    pub fn bytes(&self) -> usize {
        table_bytes(&self.blocks)
    }

    /// `runs` (those the table was built from) cut to the [`fallback`](Self::fallback) spans:
    /// exactly the data the table leaves to the LPM trie. Gaps stay gaps (unknown).
    pub fn fallback_runs(&self, runs: &[Run<A>]) -> Vec<Run<A>> {
        let mut out = Vec::new();
        let mut start = 0;
        for &(first, last) in &self.fallback {
            start += runs[start..].partition_point(|run| run.last < first);
            for run in runs[start..].iter().take_while(|run| run.first <= last) {
                out.push(Run::new(run.first.max(first), run.last.min(last), run.id));
            }
        }
        out
    }

    /// The CIDR decomposition of [`fallback_runs`](Self::fallback_runs), as `(network address,
    /// prefix length, id)` in address order: the entries of the LPM trie next to the table.
    pub fn fallback_prefixes(&self, runs: &[Run<A>]) -> Vec<(A, u8, CountryId)> {
        self.fallback_runs(runs)
            .iter()
            .flat_map(|run| cidr_blocks(run.first, run.last).map(|(a, len)| (a, len, run.id)))
            .collect()
    }
}

/// A run with its bounds widened to `u128`, for the family-independent build.
#[derive(Clone, Copy, Debug)]
struct Span {
    first: u128,
    last: u128,
    id: u16,
}

/// `2^bits - 1` for `bits < 128`.
const fn low_mask(bits: u32) -> u128 {
    (1u128 << bits) - 1
}

/// Calls `f(index, base, runs meeting the child)` for the `count` children of `base`, each
/// spanning `child_bits` bits, in order. `runs` are sorted, disjoint and meet the parent only.
fn for_children(
    base: u128,
    child_bits: u32,
    count: u32,
    runs: &[Span],
    mut f: impl FnMut(usize, u128, &[Span]) -> Result<(), GeoError>,
) -> Result<(), GeoError> {
    let mut lo = 0;
    for index in 0..count {
        let child = base | (u128::from(index) << child_bits);
        let child_last = child | low_mask(child_bits);
        while runs.get(lo).is_some_and(|run| run.last < child) {
            lo += 1;
        }
        let mut hi = lo;
        while runs.get(hi).is_some_and(|run| run.first <= child_last) {
            hi += 1;
        }
        f(index as usize, child, &runs[lo..hi])?;
    }
    Ok(())
}

struct Builder {
    store: BlockStore,
    /// Address bits (`A::BITS`).
    bits: u32,
    /// Bytes the table resolves: nodes of this many bytes are the last level.
    depth: usize,
    fallback: Vec<(u128, u128)>,
    /// Non-root blocks built (before deduplication).
    built: usize,
}

impl Builder {
    /// The entry for the node of `bytes` leading bytes at `base`; `runs` are the runs meeting it.
    fn entry(&mut self, base: u128, bytes: usize, runs: &[Span]) -> Result<u16, GeoError> {
        let rest = self.bits - 8 * bytes as u32;
        let last = base | low_mask(rest);
        match runs {
            [] => return Ok(CountryId::UNKNOWN.0),
            [run] if run.first <= base && run.last >= last => return Ok(run.id),
            _ => {}
        }
        if bytes == self.depth {
            // Mixed below the last level: only when `rest > 0` (a single address is uniform).
            self.fallback.push((base, last));
            return Ok(CountryId::FALLBACK.0);
        }
        let mut block = Block::filled(CountryId::UNKNOWN);
        for_children(base, rest - 8, BLOCK_ENTRIES as u32, runs, |i, child, inside| {
            block.entries[i] = self.entry(child, bytes + 1, inside)?;
            Ok(())
        })?;
        self.built += 1;
        self.store.intern(block)
    }
}

/// Builds the table resolving the first `depth_bytes` bytes of an address for sorted, disjoint
/// `runs` (gaps are unknown).
///
/// With `depth_bytes` equal to the address size (4 for IPv4) every address is resolved and no
/// entry is [`CountryId::FALLBACK`]; with fewer (IPv6: [`V6_TABLE_BYTES`]), mixed nodes at the
/// last level are FALLBACK and listed in [`Table::fallback`]. Touching runs of the same id are
/// treated as one.
///
/// Fails if a run's id is [`CountryId::FALLBACK`] or not below [`CountryId::NUM_IDS`], if the
/// runs are not sorted and disjoint, or if more than [`MAX_BLOCKS`] blocks would be needed.
///
/// # Panics
///
/// If `depth_bytes` is below 2 (the root resolves two bytes) or above the address size.
///
/// [`V6_TABLE_BYTES`]: tracer_common::geo_table::V6_TABLE_BYTES
/// [`MAX_BLOCKS`]: tracer_common::geo_table::MAX_BLOCKS
pub fn build_table<A: Address>(runs: &[Run<A>], depth_bytes: usize) -> Result<Table<A>, GeoError> {
    assert!(
        (2..=A::BITS as usize / 8).contains(&depth_bytes),
        "a table resolves 2..={} bytes, not {depth_bytes}",
        A::BITS / 8
    );
    if !runs_are_valid(runs) {
        let family = if A::BITS == 32 { "IPv4" } else { "IPv6" };
        return Err(GeoError::InvalidRuns { family });
    }
    if let Some(run) =
        runs.iter().find(|run| run.id.0 >= CountryId::NUM_IDS || run.id == CountryId::FALLBACK)
    {
        return Err(GeoError::InvalidId { id: run.id.0 });
    }
    // Touching runs of one id are one span, so that a node they cover together is uniform.
    let mut spans: Vec<Span> = Vec::with_capacity(runs.len());
    for run in runs {
        let (first, last) = (run.first.to_u128(), run.last.to_u128());
        match spans.last_mut() {
            Some(prev) if prev.id == run.id.0 && prev.last + 1 == first => prev.last = last,
            _ => spans.push(Span { first, last, id: run.id.0 }),
        }
    }
    let mut builder = Builder {
        store: BlockStore::with_roots(),
        bits: A::BITS,
        depth: depth_bytes,
        fallback: Vec::new(),
        built: 0,
    };
    let slash16s = ROOT_BLOCKS * BLOCK_ENTRIES as u32;
    for_children(0, A::BITS - 16, slash16s, &spans, |slash16, base, inside| {
        let entry = builder.entry(base, 2, inside)?;
        builder.store.set_root(slash16 as u32, entry);
        Ok(())
    })?;
    let stored = builder.store.blocks.len() - ROOT_BLOCKS as usize;
    Ok(Table {
        blocks: builder.store.blocks,
        fallback: (builder.fallback.into_iter())
            .map(|(first, last)| (A::from_u128(first), A::from_u128(last)))
            .collect(),
        shared_blocks: builder.built - stored,
    })
}

/// Builds the IPv4 table (all four bytes resolved) for sorted, disjoint `runs`; see
/// [`build_table`].
pub fn build_v4_table(runs: &[Run<u32>]) -> Result<Vec<Block>, GeoError> {
    build_table(runs, 4).map(|table| table.blocks)
}

/// Bytes of kernel memory the table's values take (`blocks * 512`).
pub fn table_bytes(blocks: &[Block]) -> usize {
    std::mem::size_of_val(blocks)
}

#[cfg(test)]
mod tests {
    use tracer_common::geo_table::{V6_TABLE_BYTES, lookup_v4, lookup_v6};

    use super::*;
    use crate::geo::ranges::lookup_runs;

    #[test]
    fn uniform_space_needs_only_the_root() {
        let id = CountryId(5);
        let table = build_v4_table(&[Run::new(0, u32::MAX, id)]).expect("fits");
        assert_eq!(table.len(), ROOT_BLOCKS as usize);
        assert!(table.iter().all(|b| *b == Block::filled(id)));
        let table = build_table(&[Run::new(0, u128::MAX, id)], V6_TABLE_BYTES).expect("fits");
        assert_eq!(table.blocks.len(), ROOT_BLOCKS as usize);
        assert!(table.fallback.is_empty());
    }

    #[test]
    fn touching_runs_of_one_id_are_uniform() {
        let id = CountryId(5);
        let runs = [Run::new(0x0101_0000, 0x0101_0010, id), Run::new(0x0101_0011, 0x0101_ffff, id)];
        let table = build_v4_table(&runs).expect("fits");
        assert_eq!(table.len(), ROOT_BLOCKS as usize);
        assert_eq!(table[1].entries[1], id.0);
    }

    #[test]
    fn identical_blocks_are_shared() {
        // The same /25 split in two different /16s: one /24 block and one /32 block in total.
        let (a, b) = (CountryId(1), CountryId(2));
        let runs = [
            Run::new(0x0101_0000_u32, 0x0101_007f, a),
            Run::new(0x0101_0080, 0x0101_00ff, b),
            Run::new(0x0202_0000, 0x0202_007f, a),
            Run::new(0x0202_0080, 0x0202_00ff, b),
        ];
        let table = build_table(&runs, 4).expect("fits");
        assert_eq!(table.blocks.len(), ROOT_BLOCKS as usize + 2);
        assert_eq!(table.shared_blocks, 2);
        let get = |i: u32| table.blocks.get(i as usize);
        assert_eq!(lookup_v4(0x0202_0001, get), a);
        assert_eq!(lookup_v4(0x0202_00f0, get), b);
        assert_eq!(lookup_v4(0x0202_0100, get), CountryId::UNKNOWN);
    }

    #[test]
    fn finer_than_the_last_level_is_fallback() {
        let (a, b) = (CountryId(1), CountryId(2));
        let slash64 = 0x2a00_1450_0000_0001_u128 << 64;
        let runs = [
            Run::new(0x2a00_u128 << 112, slash64 - 1, a),
            Run::new(slash64, slash64 + 0xff, b), // a /120
            Run::new(slash64 + 0x100, (0x2a01_u128 << 112) - 1, a),
        ];
        let table = build_table(&runs, V6_TABLE_BYTES).expect("fits");
        assert_eq!(table.fallback, [(slash64, slash64 | u128::from(u64::MAX))]);
        // 2a00::/16 -> /24 -> ... -> /64: six blocks below the root, none alike.
        assert_eq!(table.blocks.len(), ROOT_BLOCKS as usize + 6);
        assert_eq!(
            table.fallback_runs(&runs),
            [
                Run::new(slash64, slash64 + 0xff, b),
                Run::new(slash64 + 0x100, slash64 | u128::from(u64::MAX), a)
            ]
        );
        assert_eq!(table.fallback_prefixes(&runs)[0], (slash64, 120, b));
        let get = |i: u32| table.blocks.get(i as usize);
        for addr in [slash64, slash64 + 0x100, slash64 | u128::from(u64::MAX)] {
            assert_eq!(lookup_v6(&addr.to_be_bytes(), get), CountryId::FALLBACK);
        }
        for addr in [slash64 - 1, slash64 + (1 << 64), 0x2a00_u128 << 112, 0] {
            assert_eq!(lookup_v6(&addr.to_be_bytes(), get), lookup_runs(&runs, addr));
        }
    }

    #[test]
    fn rejects_pointer_ids_and_unsorted_runs() {
        let bad = [Run::new(0, 1, CountryId(CountryId::NUM_IDS))];
        assert!(matches!(build_v4_table(&bad), Err(GeoError::InvalidId { .. })));
        let fallback = [Run::new(0u128, 1, CountryId::FALLBACK)];
        assert!(matches!(build_table(&fallback, 8), Err(GeoError::InvalidId { .. })));
        let unsorted = [Run::new(5, 6, CountryId(1)), Run::new(0, 1, CountryId(1))];
        assert!(matches!(build_v4_table(&unsorted), Err(GeoError::InvalidRuns { .. })));
    }

    #[test]
    #[should_panic(expected = "a table resolves")]
    fn depth_past_the_address_panics() {
        let _ = build_table::<u32>(&[], 5);
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

//! Building the compact lookup structure ([`tracer_common::geo_dxr`]) from merged runs.
//!
//! A node covers the addresses sharing its leading digits; its range list cuts the values of
//! the next digit into maximal runs with one entry each: the id of a run of digit values whose
//! addresses all map to one id (a gap: unknown), or, for a digit value whose addresses are
//! mixed, a pointer to the node built for it. Consecutive digit values with the same entry
//! (the same id, or identical subtrees) are one range. Identical nodes are stored once.
//!
//! The build ([`DxrBuilder`]) is one pass over the segments tiling the space (runs and the gaps
//! between them), in address order, linear in their number plus the number of ranges: a run of
//! digit values of one id is written as one range, never per digit value or per address, and
//! the segments are not held.

use std::{collections::HashMap, hash::BuildHasher as _};

use tracer_common::{
    CountryId,
    geo_dxr::{
        DIGIT_BITS, LINE_RANGES, MAX_NODES, Node, Range, RangeLine, V4_DIGITS, V6_DIGITS, lookup,
        pointer, v4_digits, v6_digits,
    },
    geo_table::{BLOCK_ENTRIES, Block, ROOT_BLOCKS},
};

use super::{
    GeoError,
    ranges::{Address, Run, runs_are_valid},
};

/// Most ranges a structure may hold (2^24: 64 MiB of range array, far above any real data).
pub const MAX_RANGES: usize = 1 << 24;

/// A built structure: the kernel maps' contents for one family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dxr {
    /// The root: one entry per value of the first 16 bits ([`ROOT_BLOCKS`] blocks).
    pub root: Vec<Block>,
    /// The nodes, in the order built (children before their parents).
    pub nodes: Vec<Node>,
    /// The range array, padded with unused ranges to whole [`RangeLine`]s.
    pub ranges: Vec<Range>,
    /// Nodes the build produced that were identical to one already stored (and share it).
    pub shared_nodes: usize,
}

impl Dxr {
    /// The range array as the kernel's elements.
    pub fn lines(&self) -> &[RangeLine] {
        let (lines, rest) = self.ranges.as_chunks::<LINE_RANGES>();
        debug_assert!(rest.is_empty(), "the range array is padded to whole lines");
        lines
    }

    /// Ranges actually used by nodes (without the padding of the last line).
    pub fn used_ranges(&self) -> usize {
        self.nodes.iter().map(|n| (n.base + n.count) as usize).max().unwrap_or(0)
    }

    /// Bytes of kernel memory the values take: root, nodes and range lines.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.root.as_slice())
            + std::mem::size_of_val(self.nodes.as_slice())
            + std::mem::size_of_val(self.ranges.as_slice())
    }

    /// The id of the address with the 16-bit `digits`, read with the kernel's own walk.
    pub fn lookup_digits<const N: usize>(&self, digits: &[u16; N]) -> CountryId {
        lookup(
            digits,
            |i| self.root.get(i as usize),
            |i| self.nodes.get(i as usize),
            |i| self.lines().get(i as usize),
        )
    }

    /// The id of an IPv4 address (host order).
    pub fn lookup_v4(&self, addr: u32) -> CountryId {
        self.lookup_digits::<V4_DIGITS>(&v4_digits(&addr.to_be_bytes()))
    }

    /// The id of an IPv6 address (host order).
    pub fn lookup_v6(&self, addr: u128) -> CountryId {
        self.lookup_digits::<V6_DIGITS>(&v6_digits(&addr.to_be_bytes()))
    }
}

/// `2^bits - 1` for `bits <= 128`.
const fn mask(bits: u32) -> u128 {
    if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 }
}

/// The nodes stored so far, identical ones once.
struct Builder {
    nodes: Vec<Node>,
    ranges: Vec<Range>,
    index: HashMap<u64, Vec<u32>>,
    /// foldhash: SipHash over every node's range list was 4% of the agent's start.
    hasher: foldhash::fast::RandomState,
    built: usize,
}

impl Builder {
    /// Stores a node with range list `list` (or finds an identical one): its pointer.
    fn store(&mut self, list: Vec<Range>) -> Result<u16, GeoError> {
        self.built += 1;
        let hash = self.hasher.hash_one(&list);
        let same = self.index.entry(hash).or_default();
        for &index in same.iter() {
            let node = self.nodes[index as usize];
            let start = node.base as usize;
            if self.ranges[start..start + node.count as usize] == list[..] {
                return Ok(pointer(index));
            }
        }
        let index = self.nodes.len() as u32;
        if index >= MAX_NODES || self.ranges.len() + list.len() > MAX_RANGES {
            return Err(GeoError::TableTooLarge { max: MAX_NODES });
        }
        self.nodes.push(Node { base: self.ranges.len() as u32, count: list.len() as u32 });
        self.ranges.extend_from_slice(&list);
        same.push(index);
        Ok(pointer(index))
    }
}

/// Builds the structure for sorted, disjoint `runs` (gaps are unknown), exact for every
/// address of the family.
///
/// Fails if a run's id is [`CountryId::FALLBACK`] or not below [`CountryId::NUM_IDS`], if the
/// runs are not sorted and disjoint, or if more than [`MAX_NODES`] nodes (or [`MAX_RANGES`]
/// ranges) would be needed.
pub fn build_dxr<A: Address>(runs: &[Run<A>]) -> Result<Dxr, GeoError> {
    if !runs_are_valid(runs) {
        let family = if A::BITS == 32 { "IPv4" } else { "IPv6" };
        return Err(GeoError::InvalidRuns { family });
    }
    let mut builder = DxrBuilder::<A>::new();
    for_each_segment(runs, |start, id| builder.push(start, id))?;
    builder.finish()
}

/// Calls `each` with the start and id of every segment tiling the space of sorted, disjoint
/// `runs` (gaps as [`CountryId::UNKNOWN`]), in address order.
pub(crate) fn for_each_segment<A: Address>(
    runs: &[Run<A>],
    mut each: impl FnMut(u128, CountryId) -> Result<(), GeoError>,
) -> Result<(), GeoError> {
    // First address not yet covered; None past the end of the space.
    let mut next = Some(0u128);
    for run in runs {
        let first = run.first.to_u128();
        if let Some(n) = next
            && first > n
        {
            each(n, CountryId::UNKNOWN)?;
        }
        each(first, run.id)?;
        next = (run.last < A::MAX).then(|| run.last.to_u128() + 1);
    }
    match next {
        Some(n) => each(n, CountryId::UNKNOWN),
        None => Ok(()),
    }
}

/// A node whose range list is being written: the children before `next` are done.
struct Open {
    base: u128,
    child_bits: u32,
    next: u32,
    list: Vec<Range>,
}

impl Open {
    fn new(base: u128, child_bits: u32) -> Self {
        Self { base, child_bits, next: 0, list: Vec::new() }
    }

    fn last(&self) -> u128 {
        self.base | mask(self.child_bits + DIGIT_BITS)
    }

    /// The digit value of `addr` (inside the node).
    fn digit(&self, addr: u128) -> u32 {
        ((addr - self.base) >> self.child_bits) as u32
    }

    fn push(&mut self, digit: u32, entry: u16) {
        if self.list.last().is_none_or(|r| r.entry != entry) {
            self.list.push(Range { start: digit as u16, entry });
        }
    }

    /// The children from `next` up to (not including) `until` all map to `id`.
    fn fill(&mut self, until: u32, id: u16) {
        if self.next < until {
            self.push(self.next, id);
            self.next = until;
        }
    }
}

/// Builds the compact structure of one family from the segments tiling its space, given in
/// address order ([`push`](Self::push)), without holding them: only the nodes being written
/// (one per level) and the structure built so far. The result is the one of [`build_dxr`] for
/// the same addresses and ids, node for node.
///
/// A node's child (a digit value) is mixed exactly when a segment starts strictly inside it;
/// such a child gets a node, opened when that start arrives and closed (stored, or shared with
/// an identical one) when a start beyond it arrives, so children are stored before their
/// parents, in address order.
pub struct DxrBuilder<A> {
    store: Builder,
    /// The root, then each open mixed child's node.
    open: Vec<Open>,
    /// The id of the segment in effect; None before the first.
    id: Option<u16>,
    /// Start of the segment in effect.
    start: u128,
    _family: std::marker::PhantomData<A>,
}

impl<A: Address> std::fmt::Debug for DxrBuilder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DxrBuilder")
            .field("nodes", &self.store.nodes.len())
            .field("open", &self.open.len())
            .finish()
    }
}

impl<A: Address> Default for DxrBuilder<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Address> DxrBuilder<A> {
    /// A builder expecting the segment starting at address 0 first.
    pub fn new() -> Self {
        Self {
            store: Builder {
                nodes: Vec::new(),
                ranges: Vec::new(),
                index: HashMap::new(),
                hasher: foldhash::fast::RandomState::default(),
                built: 0,
            },
            open: vec![Open::new(0, A::BITS - DIGIT_BITS)],
            id: None,
            start: 0,
            _family: std::marker::PhantomData,
        }
    }

    /// The next segment: it starts at `start` (the first at 0, each later one after the
    /// previous) and its addresses map to `id` (unknown ones to [`CountryId::UNKNOWN`]).
    /// A segment of the previous one's id extends it.
    pub fn push(&mut self, start: u128, id: CountryId) -> Result<(), GeoError> {
        if id.0 >= CountryId::NUM_IDS || id == CountryId::FALLBACK {
            return Err(GeoError::InvalidId { id: id.0 });
        }
        let Some(current) = self.id else {
            if start != 0 {
                return Err(self.invalid());
            }
            self.id = Some(id.0);
            return Ok(());
        };
        if start <= self.start || start > A::MAX.to_u128() {
            return Err(self.invalid());
        }
        if id.0 == current {
            return Ok(());
        }
        // Close the nodes that end before `start`: the rest of each is `current`.
        while self.open.len() > 1 && self.open.last().is_some_and(|node| node.last() < start) {
            self.close(current)?;
        }
        // Down from the deepest open node holding `start`: the children before it are
        // `current`; the one holding it is mixed unless `start` is its first address.
        loop {
            let node = self.open.last_mut().expect("the root stays open");
            let digit = node.digit(start);
            node.fill(digit, current);
            let child = node.base | (u128::from(digit) << node.child_bits);
            if child == start {
                break;
            }
            let child_bits = node.child_bits - DIGIT_BITS;
            self.open.push(Open::new(child, child_bits));
        }
        self.id = Some(id.0);
        self.start = start;
        Ok(())
    }

    fn invalid(&self) -> GeoError {
        GeoError::InvalidRuns { family: if A::BITS == 32 { "IPv4" } else { "IPv6" } }
    }

    /// Stores the deepest open node (its remaining children `id`) and enters it in its parent.
    fn close(&mut self, id: u16) -> Result<(), GeoError> {
        let mut node = self.open.pop().expect("a node below the root");
        node.fill(1 << DIGIT_BITS, id);
        let entry = self.store.store(node.list)?;
        let parent = self.open.last_mut().expect("the root stays open");
        let digit = parent.digit(node.base);
        debug_assert_eq!(parent.next, digit);
        parent.push(digit, entry);
        parent.next = digit + 1;
        Ok(())
    }

    /// The structure, once every segment has been pushed.
    pub fn finish(mut self) -> Result<Dxr, GeoError> {
        let id = self.id.unwrap_or(CountryId::UNKNOWN.0);
        while self.open.len() > 1 {
            self.close(id)?;
        }
        let mut root_node = self.open.pop().expect("the root");
        root_node.fill(1 << DIGIT_BITS, id);
        let top = root_node.list;
        let mut root = vec![Block::filled(CountryId::UNKNOWN); ROOT_BLOCKS as usize];
        for (k, range) in top.iter().enumerate() {
            let end = top
                .get(k + 1)
                .map_or(ROOT_BLOCKS as usize * BLOCK_ENTRIES, |r| usize::from(r.start));
            for value in usize::from(range.start)..end {
                root[value / BLOCK_ENTRIES].entries[value % BLOCK_ENTRIES] = range.entry;
            }
        }
        drop(top);
        let Builder { mut nodes, mut ranges, built, .. } = self.store;
        ranges.resize(ranges.len().div_ceil(LINE_RANGES).max(1) * LINE_RANGES, Range::default());
        ranges.shrink_to_fit();
        nodes.shrink_to_fit();
        let shared_nodes = built - nodes.len();
        Ok(Dxr { root, nodes, ranges, shared_nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::ranges::lookup_runs;

    fn check<A: Address>(runs: &[Run<A>], dxr: &Dxr, addrs: impl IntoIterator<Item = u128>) {
        for a in addrs {
            let got = if A::BITS == 32 { dxr.lookup_v4(a as u32) } else { dxr.lookup_v6(a) };
            assert_eq!(got, lookup_runs(runs, A::from_u128(a)), "{a:#x}");
        }
    }

    #[test]
    fn uniform_space_needs_only_the_root() {
        let id = CountryId(5);
        let dxr = build_dxr(&[Run::new(0u32, u32::MAX, id)]).expect("fits");
        assert!(dxr.nodes.is_empty() && dxr.root.iter().all(|b| *b == Block::filled(id)));
        let dxr = build_dxr(&[Run::new(0u128, u128::MAX, id)]).expect("fits");
        assert!(dxr.nodes.is_empty());
        let dxr = build_dxr::<u32>(&[]).expect("fits");
        assert!(dxr.root.iter().all(|b| *b == Block::filled(CountryId::UNKNOWN)));
    }

    #[test]
    fn touching_runs_of_one_id_are_one_range() {
        let id = CountryId(5);
        let runs =
            [Run::new(0x0101_0000_u32, 0x0101_0010, id), Run::new(0x0101_0011, 0x0101_ffff, id)];
        let dxr = build_dxr(&runs).expect("fits");
        assert!(dxr.nodes.is_empty());
        assert_eq!(dxr.root[1].entries[1], id.0);
    }

    #[test]
    fn identical_nodes_are_shared_and_adjacent_ones_merged() {
        let (a, b) = (CountryId(1), CountryId(2));
        let runs = [
            Run::new(0x0101_0000_u32, 0x0101_007f, a),
            Run::new(0x0101_0080, 0x0101_ffff, b),
            Run::new(0x0202_0000, 0x0202_007f, a),
            Run::new(0x0202_0080, 0x0202_ffff, b),
        ];
        let dxr = build_dxr(&runs).expect("fits");
        assert_eq!((dxr.nodes.len(), dxr.shared_nodes), (1, 1));
        check(&runs, &dxr, [0x0101_0000, 0x0101_007f, 0x0101_0080, 0x0202_00ff, 0x0203_0000]);
        // IPv6: the same mixed /48 under two consecutive /32s gives one range in the /16's
        // node for both.
        let r = |hi: u128, lo: u128, id| Run::new(hi << 64 | lo, hi << 64 | lo, id);
        let runs = [r(0x2001_0001_0000_0000, 1, a), r(0x2001_0002_0000_0000, 1, a)];
        let dxr = build_dxr(&runs).expect("fits");
        check(&runs, &dxr, [runs[0].first, runs[1].first, runs[1].first + 1, 0]);
        assert_eq!(dxr.shared_nodes, 6);
    }

    #[test]
    fn rejects_pointer_ids_and_unsorted_runs() {
        let bad = [Run::new(0u32, 1, CountryId(CountryId::NUM_IDS))];
        assert!(matches!(build_dxr(&bad), Err(GeoError::InvalidId { .. })));
        let fallback = [Run::new(0u128, 1, CountryId::FALLBACK)];
        assert!(matches!(build_dxr(&fallback), Err(GeoError::InvalidId { .. })));
        let unsorted = [Run::new(5u32, 6, CountryId(1)), Run::new(0, 1, CountryId(1))];
        assert!(matches!(build_dxr(&unsorted), Err(GeoError::InvalidRuns { .. })));
    }
}

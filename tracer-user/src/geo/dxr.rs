//! Building the compact lookup structure ([`tracer_common::geo_dxr`]) from merged runs.
//!
//! A node covers the addresses sharing its leading digits; its range list cuts the values of
//! the next digit into maximal runs with one entry each: the id of a run of digit values whose
//! addresses all map to one id (a gap: unknown), or, for a digit value whose addresses are
//! mixed, a pointer to the node built for it. Consecutive digit values with the same entry
//! (the same id, or identical subtrees) are one range. Identical nodes are stored once.
//!
//! The build is linear in the number of runs plus the number of ranges: each node's list is
//! found by one pass over the runs meeting the node, jumping over whole runs and gaps, never
//! per digit value or per address.

use std::{
    collections::HashMap,
    hash::{BuildHasher as _, RandomState},
};

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
    ranges::{Address, Run},
    segments::Segments,
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

/// A window of consecutive segments: those meeting one node. The last of them ends at
/// `tail_last` (where the next segment, outside the window, starts, minus one).
#[derive(Clone, Copy)]
struct View<'a, A> {
    starts: &'a [A],
    ids: &'a [CountryId],
    tail_last: u128,
}

impl<A: Address> View<'_, A> {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn last(&self, i: usize) -> u128 {
        self.starts.get(i + 1).map_or(self.tail_last, |next| next.to_u128() - 1)
    }

    /// Segments `from..to`.
    fn window(&self, from: usize, to: usize) -> Self {
        Self {
            starts: &self.starts[from..to],
            ids: &self.ids[from..to],
            tail_last: self.last(to - 1),
        }
    }

    /// The segment at `i` extended over the following ones of the same id: `(last, id)`.
    /// (Consecutive segments of one id are already one in [`Segments`]; this keeps the build
    /// exact for windows of any segments.)
    fn merged(&self, i: usize) -> (u128, u16) {
        let id = self.ids[i];
        let mut j = i + 1;
        while j < self.len() && self.ids[j] == id {
            j += 1;
        }
        (self.last(j - 1), id.0)
    }
}

struct Builder {
    nodes: Vec<Node>,
    ranges: Vec<Range>,
    index: HashMap<u64, Vec<u32>>,
    hasher: RandomState,
    built: usize,
}

impl Builder {
    /// The range list of the node at `base` whose digit values each span `child_bits` bits;
    /// `segments` are those meeting the node.
    fn list<A: Address>(
        &mut self,
        base: u128,
        child_bits: u32,
        segments: View<'_, A>,
    ) -> Result<Vec<Range>, GeoError> {
        let node_last = base | mask(child_bits + DIGIT_BITS);
        let mut out: Vec<Range> = Vec::new();
        let push = |out: &mut Vec<Range>, digit: u128, entry: u16| {
            if out.last().is_none_or(|r| r.entry != entry) {
                out.push(Range { start: digit as u16, entry });
            }
        };
        let mut digit = 0u128;
        let mut i = 0;
        while digit <= u128::from(u16::MAX) {
            let child = base | (digit << child_bits);
            let child_last = child | mask(child_bits);
            // The segments tile the node, so one of them holds `child`.
            while segments.last(i) < child {
                i += 1;
            }
            let (last, id) = segments.merged(i);
            if last >= child_last {
                // One id over this digit value and on up to the one holding `last + 1`.
                push(&mut out, digit, id);
                if last >= node_last {
                    break;
                }
                digit = (last + 1 - base) >> child_bits;
                continue;
            }
            // Mixed: a node for this digit value, over the segments meeting it.
            let end = i + segments.starts[i..].partition_point(|s| s.to_u128() <= child_last);
            let entry = self.node(child, child_bits, segments.window(i, end))?;
            push(&mut out, digit, entry);
            digit += 1;
        }
        Ok(out)
    }

    /// The pointer to the node at `base` spanning `bits` bits (mixed, so `bits >= 16`).
    fn node<A: Address>(
        &mut self,
        base: u128,
        bits: u32,
        segments: View<'_, A>,
    ) -> Result<u16, GeoError> {
        let list = self.list(base, bits - DIGIT_BITS, segments)?;
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
    build_dxr_segments(&Segments::from_runs(runs)?)
}

/// Builds the structure for `segments`, like [`build_dxr`] for their runs.
pub fn build_dxr_segments<A: Address>(segments: &Segments<A>) -> Result<Dxr, GeoError> {
    if let Some(&id) =
        segments.ids().iter().find(|id| id.0 >= CountryId::NUM_IDS || **id == CountryId::FALLBACK)
    {
        return Err(GeoError::InvalidId { id: id.0 });
    }
    let mut builder = Builder {
        nodes: Vec::new(),
        ranges: Vec::new(),
        index: HashMap::new(),
        hasher: RandomState::new(),
        built: 0,
    };
    let all = View { starts: segments.starts(), ids: segments.ids(), tail_last: A::MAX.to_u128() };
    let top = builder.list(0, A::BITS - DIGIT_BITS, all)?;
    let mut root = vec![Block::filled(CountryId::UNKNOWN); ROOT_BLOCKS as usize];
    for (k, range) in top.iter().enumerate() {
        let end =
            top.get(k + 1).map_or(ROOT_BLOCKS as usize * BLOCK_ENTRIES, |r| usize::from(r.start));
        for value in usize::from(range.start)..end {
            root[value / BLOCK_ENTRIES].entries[value % BLOCK_ENTRIES] = range.entry;
        }
    }
    let Builder { nodes, mut ranges, built, .. } = builder;
    // Dropped before the range array is padded and shrunk, so the build's peak is lower.
    drop(top);
    ranges.resize(ranges.len().div_ceil(LINE_RANGES).max(1) * LINE_RANGES, Range::default());
    ranges.shrink_to_fit();
    let mut nodes = nodes;
    nodes.shrink_to_fit();
    let shared_nodes = built - nodes.len();
    Ok(Dxr { root, nodes, ranges, shared_nodes })
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

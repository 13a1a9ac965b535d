//! The compact lookup structure (DXR-style: Zec, Rizzo, Mikuc, SIGCOMM CCR 2012): a 2^16-entry
//! direct root, then sorted lists of 16-bit range starts, binary-searched with a bounded loop.
//!
//! An address is read as 16-bit digits, most significant first (2 for IPv4, 8 for IPv6). The
//! root has one `u16` entry per value of the first digit (stored as 256 [`Block`]s, the same
//! layout as the direct tables of [`crate::geo_table`]). An entry below [`CountryId::NUM_IDS`]
//! is the answer for every address below it; an entry at or above it points to the [`Node`]
//! `entry - NUM_IDS`, which covers the addresses sharing the digits read so far.
//!
//! A node is `count` consecutive [`Range`]s (from `base`) of the node's range array: the
//! values of the next digit are cut into runs, each run starting at `start` and lasting until
//! the next one's start (the last until `0xffff`); the first always starts at 0. A run's
//! `entry` is, again, a country id or a pointer to the node for the next digit (only a single
//! digit value, or several whose subtrees are identical, share a pointer). So IPv4 resolves in
//! the root plus one search, IPv6 in the root plus at most seven; no answer is ever "finer than
//! I resolve": the structure is exact to /32 and /128.
//!
//! A search over at most 65,536 ranges takes at most [`SEARCH_STEPS`] (16) halvings, each one
//! branch-free (the verifier sees no data-dependent fork), and stops once one range remains.
//!
//! The ranges are stored [`LINE_RANGES`] to an array element ([`RangeLine`], 64 bytes: one
//! cache line, and no per-element padding in the kernel's array map).
//!
//! [`lookup`] is the one definition of how the structure is read, used by the eBPF program and
//! by `egress-tracer lookup`, so both decide the same way.

use crate::{CountryId, geo_table::Block};

/// Bits of one digit: the root is indexed by the first, each node by the next.
pub const DIGIT_BITS: u32 = 16;
/// Ranges per element of the range array.
pub const LINE_RANGES: usize = 16;
/// Most halvings a search takes (`log2` of the 65,536 values a digit has).
pub const SEARCH_STEPS: usize = 16;
/// Largest number of nodes a structure can have (pointers are `u16`).
pub const MAX_NODES: u32 = u16::MAX as u32 + 1 - CountryId::NUM_IDS as u32;
/// Digits of an IPv4 address.
pub const V4_DIGITS: usize = 2;
/// Digits of an IPv6 address.
pub const V6_DIGITS: usize = 8;

/// One run of digit values: from `start` until the next range's start.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Range {
    /// First digit value of the run.
    pub start: u16,
    /// A country id, or a pointer (`>= NUM_IDS`) to the node for the next digit.
    pub entry: u16,
}

/// One element of the range array: [`LINE_RANGES`] consecutive ranges (64 bytes).
pub type RangeLine = [Range; LINE_RANGES];

/// Where a node's ranges are in the range array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    /// Index of the node's first range.
    pub base: u32,
    /// Number of ranges, `1..=65536`.
    pub count: u32,
}

const _: () = assert!(core::mem::size_of::<Range>() == 4);
const _: () = assert!(core::mem::size_of::<RangeLine>() == 64);
const _: () = assert!(core::mem::size_of::<Node>() == 8);

/// Encodes a pointer to node `index` as an entry.
pub const fn pointer(index: u32) -> u16 {
    (index + CountryId::NUM_IDS as u32) as u16
}

#[inline(always)]
fn range_at<'a>(line: &impl Fn(u32) -> Option<&'a RangeLine>, index: u32) -> Option<Range> {
    let l = line(index / LINE_RANGES as u32)?;
    Some(l[(index % LINE_RANGES as u32) as usize])
}

/// The entry of the range of `node` that holds `key`: the last one whose start is `<= key`.
///
/// `None` if a range line is missing (an inconsistent structure).
#[inline(always)]
pub fn search<'a>(
    node: &Node,
    key: u16,
    line: &impl Fn(u32) -> Option<&'a RangeLine>,
) -> Option<u16> {
    // 1..=65536 whatever the map holds, so the halvings below always end within 16 steps.
    let mut len = (node.count.wrapping_sub(1) & 0xffff) + 1;
    let mut pos = node.base;
    let key = i64::from(key);
    let mut step = 0;
    // Invariant: the answer is in pos..pos + len, and ranges[pos].start <= key.
    while step < SEARCH_STEPS && len > 1 {
        let half = len / 2;
        let probe = pos.wrapping_add(half);
        let start = i64::from(range_at(line, probe)?.start);
        // All ones when key < start (keep pos), zero otherwise (move to probe): no branch.
        // LLVM would turn this back into a conditional jump (BPF has no conditional move),
        // and the verifier would walk both ways at every halving. Through `black_box` (in BPF
        // a stack store and load) the difference is opaque and the arithmetic stays: it halves
        // what the verifier walks in the IPv6 lookup (15,323 -> 7,808 instructions on 6.18).
        let keep = (core::hint::black_box(key - start) >> 63) as u32;
        pos = probe ^ ((probe ^ pos) & keep);
        len -= half;
        step += 1;
    }
    Some(range_at(line, pos)?.entry)
}

/// Looks up the address whose 16-bit digits (most significant first) are `digits`, in the
/// structure whose root blocks, nodes and range lines the closures return.
///
/// Returns [`CountryId::UNKNOWN`] if anything is missing or the walk runs out of digits (an
/// inconsistent structure never misattributes traffic, it only leaves it unclassified).
#[inline(always)]
pub fn lookup<'a, const N: usize>(
    digits: &[u16; N],
    root: impl Fn(u32) -> Option<&'a Block>,
    node: impl Fn(u32) -> Option<&'a Node>,
    line: impl Fn(u32) -> Option<&'a RangeLine>,
) -> CountryId {
    let top = digits[0];
    let mut entry = match root(u32::from(top >> 8)) {
        Some(b) => b.entries[usize::from(top & 0xff)],
        None => return CountryId::UNKNOWN,
    };
    let mut level = 1;
    while level < N {
        if entry < CountryId::NUM_IDS {
            return CountryId(entry);
        }
        let Some(n) = node(u32::from(entry - CountryId::NUM_IDS)) else {
            return CountryId::UNKNOWN;
        };
        entry = match search(n, digits[level], &line) {
            Some(e) => e,
            None => return CountryId::UNKNOWN,
        };
        level += 1;
    }
    if entry < CountryId::NUM_IDS { CountryId(entry) } else { CountryId::UNKNOWN }
}

/// The digits of an IPv4 address in network byte order.
#[inline(always)]
pub fn v4_digits(addr: &[u8; 4]) -> [u16; V4_DIGITS] {
    [u16::from_be_bytes([addr[0], addr[1]]), u16::from_be_bytes([addr[2], addr[3]])]
}

/// The digits of an IPv6 address in network byte order.
#[inline(always)]
pub fn v6_digits(addr: &[u8; 16]) -> [u16; V6_DIGITS] {
    let mut d = [0u16; V6_DIGITS];
    let mut i = 0;
    while i < V6_DIGITS {
        d[i] = u16::from_be_bytes([addr[2 * i], addr[2 * i + 1]]);
        i += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPv4 walk over in-memory tables.
    fn walk_v4(root: &[Block], nodes: &[Node], store: &[RangeLine], a: [u8; 4]) -> CountryId {
        lookup(
            &v4_digits(&a),
            |i| root.get(i as usize),
            |i| nodes.get(i as usize),
            |i| store.get(i as usize),
        )
    }

    fn lines(ranges: &[Range]) -> [RangeLine; 2] {
        let mut out = [[Range::default(); LINE_RANGES]; 2];
        for (i, r) in ranges.iter().enumerate() {
            out[i / LINE_RANGES][i % LINE_RANGES] = *r;
        }
        out
    }

    #[test]
    fn search_finds_the_last_start_not_above_the_key() {
        // Node at base 3 with 20 ranges starting at 0, 100, 200, ...: crosses a line.
        let mut ranges = [Range::default(); 32];
        for i in 0..20u16 {
            ranges[3 + usize::from(i)] = Range { start: i * 100, entry: i + 1 };
        }
        let store = lines(&ranges);
        let line = |i: u32| store.get(i as usize);
        let node = Node { base: 3, count: 20 };
        for key in [0u16, 1, 99, 100, 101, 1899, 1900, 1901, u16::MAX] {
            let want = (key / 100).min(19) + 1;
            assert_eq!(search(&node, key, &line), Some(want), "key {key}");
        }
        // A missing line is None, a single range needs no probe.
        assert_eq!(search(&Node { base: 40, count: 2 }, 5, &line), None);
        assert_eq!(search(&Node { base: 3, count: 1 }, u16::MAX, &line), Some(1));
    }

    #[test]
    fn ipv4_walk() {
        let cn = CountryId::from_code(*b"CN").unwrap();
        let us = CountryId::from_code(*b"US").unwrap();
        let mut root = [Block::filled(CountryId::UNKNOWN); 256];
        root[36].entries[110] = cn.0; // 36.110.0.0/16
        root[8].entries[8] = pointer(0); // 8.8.0.0/16 is mixed
        let ranges = [
            Range { start: 0, entry: 0 },
            Range { start: 0x0808, entry: us.0 }, // 8.8.8.8/32
            Range { start: 0x0809, entry: 0 },
        ];
        let store = lines(&ranges);
        let nodes = [Node { base: 0, count: 3 }];
        let get = |a: [u8; 4]| walk_v4(&root, &nodes, &store, a);
        assert_eq!(get([36, 110, 7, 1]), cn);
        assert_eq!(get([8, 8, 8, 8]), us);
        assert_eq!(get([8, 8, 8, 9]), CountryId::UNKNOWN);
        assert_eq!(get([8, 8, 8, 7]), CountryId::UNKNOWN);
        assert_eq!(get([1, 1, 1, 1]), CountryId::UNKNOWN);
    }

    #[test]
    fn missing_node_or_running_out_of_digits_is_unknown() {
        let mut root = [Block::filled(CountryId::UNKNOWN); 256];
        root[1].entries[0] = pointer(999);
        root[2].entries[0] = pointer(0);
        let store = lines(&[Range { start: 0, entry: pointer(0) }]);
        let nodes = [Node { base: 0, count: 1 }];
        let get = |a: [u8; 4]| walk_v4(&root, &nodes, &store, a);
        assert_eq!(get([1, 0, 0, 1]), CountryId::UNKNOWN);
        assert_eq!(get([2, 0, 0, 1]), CountryId::UNKNOWN);
    }

    #[test]
    fn digits() {
        assert_eq!(v4_digits(&[1, 2, 3, 4]), [0x0102, 0x0304]);
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = 0xff;
        assert_eq!(v6_digits(&a), [0x2001, 0, 0, 0, 0, 0, 0, 0x00ff]);
    }
}

//! Range maps over an address space, applied in order (later ranges override earlier ones).
//!
//! Country databases such as geo-whois-asn-country list inclusive ranges that may overlap (a
//! geofeed refinement nested in a registry allocation, or a partial overlap). The meaning is
//! "apply the rows in file order, each later row overriding exactly the addresses it covers";
//! "narrowest range wins" gives different answers. [`RangeMap`] implements the former with a
//! `BTreeMap` of disjoint intervals that are split on insert, so each insert costs
//! `O(log n + k)` for `k` intervals it touches.

use std::{collections::BTreeMap, fmt::Debug, hash::Hash};

use tracer_common::CountryId;

mod sealed {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u128 {}
}

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6 (host order).
pub trait Address: sealed::Sealed + Copy + Ord + Hash + Debug + Send + Sync + 'static {
    /// Bits in an address.
    const BITS: u32;
    /// The largest address.
    const MAX: Self;
    /// The address as a `u128` (zero-extended).
    fn to_u128(self) -> u128;
    /// The address from a `u128`; the value must fit (higher bits are dropped).
    fn from_u128(value: u128) -> Self;
}

impl Address for u32 {
    const BITS: u32 = 32;
    const MAX: Self = u32::MAX;
    fn to_u128(self) -> u128 {
        u128::from(self)
    }
    fn from_u128(value: u128) -> Self {
        value as u32
    }
}

impl Address for u128 {
    const BITS: u32 = 128;
    const MAX: Self = u128::MAX;
    fn to_u128(self) -> u128 {
        self
    }
    fn from_u128(value: u128) -> Self {
        value
    }
}

/// An inclusive address range with one country id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Run<A> {
    /// First address of the range.
    pub first: A,
    /// Last address of the range (inclusive, `>= first`).
    pub last: A,
    /// The id every address of the range maps to.
    pub id: CountryId,
}

impl<A: Address> Run<A> {
    /// A run of `id` over `first..=last`.
    pub const fn new(first: A, last: A, id: CountryId) -> Self {
        Self { first, last, id }
    }
}

/// Disjoint address intervals with their ids, built by applying ranges in order.
///
/// Addresses not covered by any interval are unknown; inserting [`CountryId::UNKNOWN`] erases.
#[derive(Clone, Debug, Default)]
pub struct RangeMap<A> {
    /// Interval start -> (interval end, id); intervals are disjoint and never hold UNKNOWN.
    map: BTreeMap<A, (A, CountryId)>,
}

impl<A: Address> RangeMap<A> {
    /// An empty map (every address unknown).
    pub fn new() -> Self {
        Self { map: BTreeMap::new() }
    }

    /// A map holding `runs`, applied in order.
    pub fn from_runs(runs: &[Run<A>]) -> Self {
        let mut map = Self::new();
        for run in runs {
            map.insert(run.first, run.last, run.id);
        }
        map
    }

    /// Sets every address of `first..=last` to `id`, overriding what was there and leaving
    /// every other address unchanged. Does nothing if `first > last`.
    pub fn insert(&mut self, first: A, last: A, id: CountryId) {
        if first > last {
            return;
        }
        let (first_u, last_u) = (first.to_u128(), last.to_u128());
        // An interval that starts before `first` and reaches into the range: keep its head
        // (and its tail, if it also reaches past `last`).
        if let Some((&start, &(end, old))) = self.map.range(..first).next_back()
            && end >= first
        {
            // `start < first`, so `first - 1` does not underflow.
            self.map.insert(start, (A::from_u128(first_u - 1), old));
            if end > last {
                // `last < end <= MAX`, so `last + 1` does not overflow.
                self.map.insert(A::from_u128(last_u + 1), (end, old));
            }
        }
        // Intervals that start inside the range: drop them, keeping a tail past `last`.
        while let Some((&start, &(end, old))) = self.map.range(first..=last).next() {
            self.map.remove(&start);
            if end > last {
                self.map.insert(A::from_u128(last_u + 1), (end, old));
            }
        }
        if id != CountryId::UNKNOWN {
            self.map.insert(first, (last, id));
        }
    }

    /// Forces `first..=last` to `id` (e.g. [`CountryId::LOCAL`] for local networks): the same
    /// as [`insert`](Self::insert), named for the callers that apply it after the database.
    pub fn overlay(&mut self, first: A, last: A, id: CountryId) {
        self.insert(first, last, id);
    }

    /// Number of disjoint intervals currently held (before merging).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether every address is unknown.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The sorted, disjoint runs, with touching runs of the same id merged. Unknown addresses
    /// (gaps) are not emitted.
    pub fn into_runs(self) -> Vec<Run<A>> {
        let mut runs: Vec<Run<A>> = Vec::with_capacity(self.map.len());
        for (first, (last, id)) in self.map {
            match runs.last_mut() {
                Some(prev) if prev.id == id && prev.last.to_u128() + 1 == first.to_u128() => {
                    prev.last = last;
                }
                _ => runs.push(Run::new(first, last, id)),
            }
        }
        runs
    }
}

/// The id of `addr` in sorted, disjoint `runs` (binary search); unknown if no run covers it.
pub fn lookup_runs<A: Address>(runs: &[Run<A>], addr: A) -> CountryId {
    let index = runs.partition_point(|run| run.last < addr);
    match runs.get(index) {
        Some(run) if run.first <= addr => run.id,
        _ => CountryId::UNKNOWN,
    }
}

/// Whether `runs` are sorted, disjoint and each has `first <= last`.
pub fn runs_are_valid<A: Address>(runs: &[Run<A>]) -> bool {
    runs.iter().all(|run| run.first <= run.last)
        && runs.windows(2).all(|pair| pair[0].last < pair[1].first)
}

/// The minimal list of CIDR blocks covering exactly `first..=last`, as `(network address,
/// prefix length)`, in address order. Empty if `first > last`.
pub fn cidr_blocks<A: Address>(first: A, last: A) -> CidrBlocks<A> {
    CidrBlocks {
        next: (first <= last).then_some(first.to_u128()),
        last: last.to_u128(),
        _family: std::marker::PhantomData,
    }
}

/// How many blocks [`cidr_blocks`] yields for `first..=last`, without walking them. With `k`
/// the highest bit where `first` and `last` differ and `m` the multiple of `2^k` between
/// them, the blocks from `first` up to `m` are the set bits of `m - first` (each as aligned as
/// its start allows) and the blocks from `m` on are those of `last + 1 - m`; unless the range
/// is one aligned block of `2^(k+1)`.
pub fn cidr_count<A: Address>(first: A, last: A) -> usize {
    let (first, last) = (first.to_u128(), last.to_u128());
    if first >= last {
        return usize::from(first == last);
    }
    let k = 127 - (first ^ last).leading_zeros();
    let below = low_mask(k);
    if first & below == 0 && last & below == below {
        return 1;
    }
    let m = last & !below;
    ((m - first).count_ones() + (last - m + 1).count_ones()) as usize
}

/// Iterator returned by [`cidr_blocks`].
#[derive(Clone, Debug)]
pub struct CidrBlocks<A> {
    next: Option<u128>,
    last: u128,
    _family: std::marker::PhantomData<A>,
}

/// `2^bits - 1`, saturating at `u128::MAX`.
fn low_mask(bits: u32) -> u128 {
    if bits >= 128 { u128::MAX } else { (1u128 << bits) - 1 }
}

impl<A: Address> Iterator for CidrBlocks<A> {
    type Item = (A, u8);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next?;
        let align = if start == 0 { A::BITS } else { start.trailing_zeros().min(A::BITS) };
        let span = self.last - start; // number of addresses minus one
        let fits = if span == u128::MAX { 128 } else { (span + 1).ilog2() };
        let bits = align.min(fits);
        let end = start + low_mask(bits);
        self.next = (end < self.last).then(|| end + 1);
        // `bits <= A::BITS <= 128`, so the prefix length fits in a u8.
        Some((A::from_u128(start), (A::BITS - bits) as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`cidr_count`] is what walking [`cidr_blocks`] counts: edges of both spaces, and random
    /// ranges of every width.
    #[test]
    fn cidr_count_is_the_number_of_blocks() {
        let v4 = [(0u32, u32::MAX), (0, 0), (u32::MAX, u32::MAX), (1, u32::MAX), (0, u32::MAX - 1)];
        for (first, last) in v4.into_iter().chain([(5, 5), (4, 7), (3, 8), (10, 3)]) {
            assert_eq!(cidr_count(first, last), cidr_blocks(first, last).count(), "{first} {last}");
        }
        let v6 = [(0u128, u128::MAX), (1, u128::MAX), (0, u128::MAX - 1), (u128::MAX, u128::MAX)];
        for (first, last) in v6 {
            assert_eq!(cidr_count(first, last), cidr_blocks(first, last).count(), "{first} {last}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let bits = next() % 33;
            let a = next() as u32;
            let b = a.saturating_add((next() as u32) & (((1u64 << bits) - 1) as u32));
            assert_eq!(cidr_count(a, b), cidr_blocks(a, b).count(), "{a} {b}");
            let wide = (u128::from(next()) << 64 | u128::from(next())) >> (next() % 128);
            let c = u128::from(next()) << 64 | u128::from(next());
            let d = c.saturating_add(wide);
            assert_eq!(cidr_count(c, d), cidr_blocks(c, d).count(), "{c} {d}");
        }
    }

    const A: CountryId = CountryId(1);
    const B: CountryId = CountryId(2);

    #[test]
    fn later_rows_override_exactly_what_they_cover() {
        let mut map = RangeMap::<u32>::new();
        map.insert(10, 100, A);
        map.insert(20, 30, B); // nested
        map.insert(90, 120, B); // partial overlap at the end
        map.insert(5, 12, B); // partial overlap at the start
        let runs = map.into_runs();
        assert_eq!(
            runs,
            vec![
                Run::new(5, 12, B),
                Run::new(13, 19, A),
                Run::new(20, 30, B),
                Run::new(31, 89, A),
                Run::new(90, 120, B),
            ]
        );
    }

    #[test]
    fn unknown_erases_and_edges_do_not_overflow() {
        let mut map = RangeMap::<u32>::new();
        map.insert(0, u32::MAX, A);
        map.insert(0, 0, B);
        map.insert(u32::MAX, u32::MAX, B);
        map.insert(7, 8, CountryId::UNKNOWN);
        assert_eq!(
            map.into_runs(),
            vec![
                Run::new(0, 0, B),
                Run::new(1, 6, A),
                Run::new(9, u32::MAX - 1, A),
                Run::new(u32::MAX, u32::MAX, B),
            ]
        );
    }

    #[test]
    fn cidr_decomposition_is_minimal() {
        let blocks: Vec<_> = cidr_blocks::<u32>(1, 6).collect();
        assert_eq!(blocks, vec![(1, 32), (2, 31), (4, 31), (6, 32)]);
        assert_eq!(cidr_blocks::<u32>(0, u32::MAX).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(cidr_blocks::<u128>(0, u128::MAX).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(cidr_blocks::<u32>(u32::MAX, u32::MAX).count(), 1);
        assert_eq!(cidr_blocks::<u32>(2, 1).count(), 0);
        // 1.0.0.0 - 1.0.3.255 is one /22.
        assert_eq!(
            cidr_blocks::<u32>(0x0100_0000, 0x0100_03ff).collect::<Vec<_>>(),
            [(0x0100_0000, 22)]
        );
    }
}

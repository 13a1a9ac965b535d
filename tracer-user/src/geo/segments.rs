//! A family's runs as the segments that tile its address space, in two columns.
//!
//! A [`Run`] of IPv6 takes 48 bytes (two `u128` and an id, padded to the `u128` alignment).
//! [`Segments`] stores only where each segment starts and its id, in separate vectors (18 bytes
//! per IPv6 segment, 6 per IPv4 one); a segment lasts until the next one starts, and unknown
//! gaps are segments of [`CountryId::UNKNOWN`]. This is the form the compact database stores, so
//! it is decoded into it directly, the local networks are overlaid in place, and the compact
//! lookup structure is built from it ([`super::dxr`]).

use tracer_common::CountryId;

use super::{
    GeoError,
    ranges::{Address, Run, runs_are_valid},
};

/// Sorted segments tiling a whole address space.
///
/// Invariants: at least one segment, the first starts at 0, starts strictly increase, and two
/// consecutive segments never have the same id (touching runs of one id are one segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments<A> {
    starts: Vec<A>,
    ids: Vec<CountryId>,
}

impl<A: Address> Default for Segments<A> {
    fn default() -> Self {
        Self { starts: vec![A::from_u128(0)], ids: vec![CountryId::UNKNOWN] }
    }
}

impl<A: Address> Segments<A> {
    /// Segments from their columns as read: `starts` strictly increasing from 0, one id each.
    /// Consecutive segments of one id are merged; an empty family is one unknown segment.
    pub(crate) fn from_columns(mut starts: Vec<A>, mut ids: Vec<CountryId>) -> Self {
        debug_assert_eq!(starts.len(), ids.len());
        debug_assert!(starts.first().is_none_or(|s| s.to_u128() == 0));
        let mut kept = 0;
        for i in 0..ids.len() {
            if kept > 0 && ids[kept - 1] == ids[i] {
                continue;
            }
            starts[kept] = starts[i];
            ids[kept] = ids[i];
            kept += 1;
        }
        if kept == 0 {
            return Self::default();
        }
        starts.truncate(kept);
        ids.truncate(kept);
        starts.shrink_to_fit();
        ids.shrink_to_fit();
        Self { starts, ids }
    }

    /// The segments of sorted, disjoint `runs` (gaps unknown). Fails if they are not sorted
    /// and disjoint.
    pub fn from_runs(runs: &[Run<A>]) -> Result<Self, GeoError> {
        if !runs_are_valid(runs) {
            let family = if A::BITS == 32 { "IPv4" } else { "IPv6" };
            return Err(GeoError::InvalidRuns { family });
        }
        let mut segments = Self { starts: Vec::new(), ids: Vec::new() };
        // First address not yet covered; None past the end of the space.
        let mut next = Some(0u128);
        for run in runs {
            let first = run.first.to_u128();
            if let Some(n) = next
                && first > n
            {
                segments.push(n, CountryId::UNKNOWN);
            }
            segments.push(first, run.id);
            next = (run.last < A::MAX).then(|| run.last.to_u128() + 1);
        }
        if let Some(n) = next {
            segments.push(n, CountryId::UNKNOWN);
        }
        segments.starts.shrink_to_fit();
        segments.ids.shrink_to_fit();
        Ok(segments)
    }

    /// Appends a segment at `start` (after the last one), merged into the last if of one id.
    fn push(&mut self, start: u128, id: CountryId) {
        if self.ids.last() != Some(&id) {
            self.starts.push(A::from_u128(start));
            self.ids.push(id);
        }
    }

    /// Number of segments (unknown ones included).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Always false: the segments tile the whole space (an empty family is one unknown
    /// segment).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The start of every segment.
    pub fn starts(&self) -> &[A] {
        &self.starts
    }

    /// The id of every segment.
    pub fn ids(&self) -> &[CountryId] {
        &self.ids
    }

    /// The last address of segment `i`.
    pub fn last(&self, i: usize) -> A {
        self.starts.get(i + 1).map_or(A::MAX, |next| A::from_u128(next.to_u128() - 1))
    }

    /// The runs (segments of a known id), in address order.
    pub fn runs(&self) -> impl Iterator<Item = Run<A>> + '_ {
        (0..self.len())
            .filter(|&i| self.ids[i] != CountryId::UNKNOWN)
            .map(|i| Run::new(self.starts[i], self.last(i), self.ids[i]))
    }

    /// Number of runs (segments of a known id).
    pub fn run_count(&self) -> usize {
        self.ids.iter().filter(|&&id| id != CountryId::UNKNOWN).count()
    }

    /// Whether every address is unknown.
    pub fn all_unknown(&self) -> bool {
        self.ids.iter().all(|&id| id == CountryId::UNKNOWN)
    }

    /// The id of `addr`.
    pub fn lookup(&self, addr: A) -> CountryId {
        // The first segment starts at 0, so the one holding `addr` exists.
        self.ids[self.starts.partition_point(|&start| start <= addr) - 1]
    }

    /// Applies sorted, disjoint `top` over the segments, in place: every address of a run of
    /// `top` gets its id, the others keep theirs (e.g. the local networks as
    /// [`CountryId::LOCAL`]).
    pub fn overlay(&mut self, top: &[Run<A>]) {
        debug_assert!(runs_are_valid(top));
        if top.is_empty() {
            return;
        }
        // Each run of `top` adds at most two segments (its own and the resumption after it),
        // so with the segments moved up by `2 * top.len()` the output, written from the front,
        // never overtakes the segment being read.
        let n = self.len();
        let gap = 2 * top.len();
        self.starts.reserve_exact(gap);
        self.ids.reserve_exact(gap);
        self.starts.resize(n + gap, A::from_u128(0));
        self.ids.resize(n + gap, CountryId::UNKNOWN);
        self.starts.copy_within(0..n, gap);
        self.ids.copy_within(0..n, gap);
        let mut written = 0;
        let mut emit = |starts: &mut [A], ids: &mut [CountryId], start: u128, id: CountryId| {
            if written == 0 || ids[written - 1] != id {
                starts[written] = A::from_u128(start);
                ids[written] = id;
                written += 1;
            }
        };
        let mut t = 0;
        // The last address of the latest emitted run of `top`, while it reaches past the
        // segment it started in.
        let mut covered: Option<u128> = None;
        for i in 0..n {
            let read = gap + i;
            let (first, id) = (self.starts[read].to_u128(), self.ids[read]);
            let last = self.starts.get(read + 1).map_or(A::MAX.to_u128(), |s| s.to_u128() - 1);
            let mut pos = first;
            if let Some(end) = covered.take() {
                if end >= last {
                    covered = (end > last).then_some(end);
                    continue;
                }
                pos = end + 1;
            }
            loop {
                match top.get(t) {
                    Some(run) if run.first.to_u128() <= last => {
                        let (run_first, run_last) = (run.first.to_u128(), run.last.to_u128());
                        if run_first > pos {
                            emit(&mut self.starts, &mut self.ids, pos, id);
                        }
                        emit(&mut self.starts, &mut self.ids, run_first, run.id);
                        t += 1;
                        if run_last >= last {
                            covered = (run_last > last).then_some(run_last);
                            break;
                        }
                        pos = run_last + 1;
                    }
                    _ => {
                        emit(&mut self.starts, &mut self.ids, pos, id);
                        break;
                    }
                }
            }
        }
        self.starts.truncate(written);
        self.ids.truncate(written);
        self.starts.shrink_to_fit();
        self.ids.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::ranges::RangeMap;

    #[test]
    fn overlay_in_place_is_the_range_map_overlay() {
        // Deterministic pseudo-random runs over a small space, so overlaps of every shape occur.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n)) as u32
        };
        for round in 0..600 {
            let mut make = |count: u32, ids: u16| {
                let mut map = RangeMap::<u32>::new();
                for _ in 0..count {
                    let first = next(400);
                    let last = first + next(40);
                    map.insert(first, last, CountryId(1 + next(u32::from(ids)) as u16));
                }
                map.into_runs()
            };
            let (mut base, mut top) = (make(12, 3), make(4, 2));
            if round % 7 == 0 {
                base.push(Run::new(u32::MAX - 5, u32::MAX, CountryId(1)));
            }
            if round % 5 == 0 {
                top.push(Run::new(u32::MAX - 2, u32::MAX, CountryId(9)));
            }
            if round % 11 == 0 {
                top.insert(0, Run::new(0, 0, CountryId(9)));
            }
            let mut expected = RangeMap::from_runs(&base);
            for run in &top {
                expected.insert(run.first, run.last, run.id);
            }
            let mut segments = Segments::from_runs(&base).expect("valid");
            segments.overlay(&top);
            let expected = expected.into_runs();
            assert_eq!(segments.runs().collect::<Vec<_>>(), expected, "{base:?} + {top:?}");
            assert_eq!(segments, Segments::from_runs(&expected).expect("valid"));
        }
    }

    #[test]
    fn round_trip_and_lookup() {
        let runs = [
            Run::new(0u128, 4, CountryId(1)),
            Run::new(5, 9, CountryId(2)),
            Run::new(20, u128::MAX, CountryId(2)),
        ];
        let segments = Segments::from_runs(&runs).expect("valid");
        assert_eq!(segments.len(), 4);
        assert_eq!(segments.runs().collect::<Vec<_>>(), runs);
        assert_eq!(segments.lookup(12), CountryId::UNKNOWN);
        assert_eq!(segments.lookup(u128::MAX), CountryId(2));
        assert_eq!(Segments::<u32>::from_runs(&[]).expect("valid"), Segments::default());
        assert!(Segments::<u32>::default().all_unknown());
        let unsorted = [Run::new(5u32, 6, CountryId(1)), Run::new(0, 1, CountryId(1))];
        assert!(Segments::from_runs(&unsorted).is_err());
    }
}

//! A family's runs as the segments that tile its address space, in two columns.
//!
//! A [`Run`] of IPv6 takes 48 bytes (two `u128` and an id, padded to the `u128` alignment).
//! [`Segments`] stores only where each segment starts and its id, in separate vectors (18 bytes
//! per IPv6 segment, 6 per IPv4 one); a segment lasts until the next one starts, and unknown
//! gaps are segments of [`CountryId::UNKNOWN`]. This is the form the compact database stores;
//! a compiled database keeps its runs in it when asked. [`Overlay`] applies the local networks
//! to a stream of segments, on their way to the compact structure's builder
//! ([`super::dxr::DxrBuilder`]), so a family is compiled without holding its segments.

use tracer_common::CountryId;

use super::{
    GeoError,
    dxr::for_each_segment,
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
        let mut segments = SegmentsBuilder::new();
        for_each_segment(runs, |start, id| {
            segments.push(start, id);
            Ok(())
        })?;
        Ok(segments.finish())
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
}

/// Collects [`Segments`] from segments pushed in address order.
#[derive(Debug)]
pub(crate) struct SegmentsBuilder<A> {
    starts: Vec<A>,
    ids: Vec<CountryId>,
}

impl<A: Address> SegmentsBuilder<A> {
    pub(crate) fn new() -> Self {
        Self { starts: Vec::new(), ids: Vec::new() }
    }

    /// The next segment (merged into the previous one if of its id).
    pub(crate) fn push(&mut self, start: u128, id: CountryId) {
        if self.ids.last() != Some(&id) {
            self.starts.push(A::from_u128(start));
            self.ids.push(id);
        }
    }

    pub(crate) fn finish(self) -> Segments<A> {
        Segments::from_columns(self.starts, self.ids)
    }
}

/// Applies sorted, disjoint runs over a stream of segments (later ones win, e.g. the local
/// networks as [`CountryId::LOCAL`]): [`push`](Self::push) the segments tiling the space in
/// address order, then [`finish`](Self::finish); the segments of the result are handed to a
/// sink as they are known (consecutive ones may have one id). Nothing is held but the segment
/// in progress.
#[derive(Debug)]
pub struct Overlay<'a, A> {
    top: &'a [Run<A>],
    /// The first run of `top` not emitted yet.
    next: usize,
    /// The last address of the latest emitted run of `top`, while it reaches past the segment
    /// it started in.
    covered: Option<u128>,
    /// The segment pushed last (its end is known when the next one starts).
    pending: Option<(u128, CountryId)>,
}

impl<'a, A: Address> Overlay<'a, A> {
    /// An overlay of `top` (sorted, disjoint).
    pub fn new(top: &'a [Run<A>]) -> Self {
        debug_assert!(runs_are_valid(top));
        Self { top, next: 0, covered: None, pending: None }
    }

    /// The next segment of the base (the first at 0, each later one after the previous).
    pub fn push(
        &mut self,
        start: u128,
        id: CountryId,
        out: &mut impl FnMut(u128, CountryId) -> Result<(), GeoError>,
    ) -> Result<(), GeoError> {
        if let Some((first, previous)) = self.pending.replace((start, id)) {
            // Starts increase (checked by the sink), so `start - 1` does not underflow.
            self.segment(first, start.saturating_sub(1), previous, out)?;
        }
        Ok(())
    }

    /// Ends the base: its last segment reaches the end of the space.
    pub fn finish(
        mut self,
        out: &mut impl FnMut(u128, CountryId) -> Result<(), GeoError>,
    ) -> Result<(), GeoError> {
        if let Some((first, id)) = self.pending.take() {
            self.segment(first, A::MAX.to_u128(), id, out)?;
        }
        Ok(())
    }

    /// The base segment `first..=last` of `id`, with `top` applied.
    fn segment(
        &mut self,
        first: u128,
        last: u128,
        id: CountryId,
        out: &mut impl FnMut(u128, CountryId) -> Result<(), GeoError>,
    ) -> Result<(), GeoError> {
        let mut pos = first;
        if let Some(end) = self.covered.take() {
            if end >= last {
                self.covered = (end > last).then_some(end);
                return Ok(());
            }
            pos = end + 1;
        }
        while let Some(run) = self.top.get(self.next).filter(|run| run.first.to_u128() <= last) {
            let (run_first, run_last) = (run.first.to_u128(), run.last.to_u128());
            if run_first > pos {
                out(pos, id)?;
            }
            out(run_first, run.id)?;
            self.next += 1;
            if run_last >= last {
                self.covered = (run_last > last).then_some(run_last);
                return Ok(());
            }
            pos = run_last + 1;
        }
        out(pos, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::ranges::RangeMap;

    #[test]
    fn overlay_is_the_range_map_overlay() {
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
            let (mut starts, mut ids) = (Vec::new(), Vec::new());
            let mut sink = |start: u128, id: CountryId| {
                if ids.last() != Some(&id) {
                    starts.push(start as u32);
                    ids.push(id);
                }
                Ok(())
            };
            let mut overlay = Overlay::new(&top);
            for_each_segment(&base, |start, id| overlay.push(start, id, &mut sink)).expect("valid");
            overlay.finish(&mut sink).expect("valid");
            let segments = Segments::from_columns(starts, ids);
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
        assert_eq!(segments.ids()[2], CountryId::UNKNOWN);
        assert_eq!(segments.last(2), 19);
        assert_eq!(Segments::<u32>::from_runs(&[]).expect("valid"), Segments::default());
        let unsorted = [Run::new(5u32, 6, CountryId(1)), Run::new(0, 1, CountryId(1))];
        assert!(Segments::from_runs(&unsorted).is_err());
    }
}

//! Building an [`AsnDb`]: rows are applied in order to one overlay map per family (a later row
//! overrides exactly the addresses it covers, whichever file it comes from), organisation names
//! and (AS number, organisation) pairs are interned, and [`Builder::finish`] flattens the
//! overlays into the sorted boundary vectors that [`AsnDb::lookup`] binary-searches.

use std::{borrow::Cow, collections::BTreeMap, collections::HashMap, fmt::Debug};

use super::{AsnDb, AsnError, AsnSource, Entry};

/// Longest organisation name kept, in bytes; longer names are cut at a character boundary.
pub const MAX_ORG_BYTES: usize = 128;

/// The value of a boundary that starts a gap (addresses no source covers).
pub(super) const NONE: u32 = u32::MAX;

/// Start of the IPv4-mapped IPv6 block `::ffff:0:0/96`.
const V4_MAPPED: u128 = 0xffff_0000_0000;

mod sealed {
    pub(crate) trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for u128 {}
}

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6 (host order).
pub(super) trait Addr: sealed::Sealed + Copy + Ord + Debug {
    /// The largest address.
    const MAX: Self;
    /// `self - 1`; only called with `self > 0`.
    fn prev(self) -> Self;
    /// `self + 1`; only called with `self < MAX`.
    fn next(self) -> Self;
}

impl Addr for u32 {
    const MAX: Self = u32::MAX;
    fn prev(self) -> Self {
        self - 1
    }
    fn next(self) -> Self {
        self + 1
    }
}

impl Addr for u128 {
    const MAX: Self = u128::MAX;
    fn prev(self) -> Self {
        self - 1
    }
    fn next(self) -> Self {
        self + 1
    }
}

/// Disjoint inclusive intervals with an entry index each, built by applying ranges in order.
///
/// Sources are nearly always sorted and disjoint, so a range that starts after every range so
/// far ends is appended to `runs`. Any other range goes to `patch`, a `BTreeMap` of disjoint
/// intervals that are split on insert (`O(log n + k)` for `k` intervals touched), which is laid
/// over `runs` at the end. That is the same as applying every range in order: a range in
/// `runs` overlaps no range before it, so where a run and a patch interval overlap, the patch
/// interval is the later one.
#[derive(Debug)]
struct Overlay<A> {
    /// Sorted, disjoint `(first, last, entry index)` intervals.
    runs: Vec<(A, A, u32)>,
    /// Interval start -> (interval end, entry index): the ranges that overlapped earlier ones.
    patch: BTreeMap<A, (A, u32)>,
    /// The largest `last` inserted so far.
    max_end: Option<A>,
}

impl<A: Addr> Overlay<A> {
    fn new() -> Self {
        Self { runs: Vec::new(), patch: BTreeMap::new(), max_end: None }
    }

    /// Sets `first..=last` (`first <= last`) to `value`, overriding what was there.
    fn insert(&mut self, first: A, last: A, value: u32) {
        let fresh = self.max_end.is_none_or(|end| end < first);
        self.max_end = Some(self.max_end.map_or(last, |end| end.max(last)));
        if fresh {
            self.runs.push((first, last, value));
            return;
        }
        let map = &mut self.patch;
        // An interval that starts before `first` and reaches into the range: keep its head
        // (and its tail, if it also reaches past `last`).
        if let Some((&start, &(end, old))) = map.range(..first).next_back()
            && end >= first
        {
            // `start < first`, so `first > 0`.
            map.insert(start, (first.prev(), old));
            if end > last {
                // `last < end <= MAX`.
                map.insert(last.next(), (end, old));
            }
        }
        // Intervals that start inside the range: drop them, keeping a tail past `last`.
        while let Some((&start, &(end, old))) = map.range(first..=last).next() {
            map.remove(&start);
            if end > last {
                map.insert(last.next(), (end, old));
            }
        }
        map.insert(first, (last, value));
    }

    /// The intervals in address order: `runs` with `patch` laid over them.
    fn into_sorted(self) -> Vec<(A, A, u32)> {
        if self.patch.is_empty() {
            return self.runs;
        }
        let patch: Vec<(A, A, u32)> = self.patch.into_iter().map(|(a, (b, v))| (a, b, v)).collect();
        // The parts of the runs that no patch interval covers (sorted, as the runs are).
        let mut pieces = Vec::with_capacity(self.runs.len() + patch.len());
        let mut next_patch = 0;
        for (first, last, value) in self.runs {
            // Skip patch intervals that end before this run.
            while patch.get(next_patch).is_some_and(|p| p.1 < first) {
                next_patch += 1;
            }
            let mut from = Some(first);
            let mut index = next_patch;
            while let (Some(start), Some(&(p_first, p_last, _))) = (from, patch.get(index))
                && p_first <= last
            {
                if p_first > start {
                    // `p_first > start >= 0`.
                    pieces.push((start, p_first.prev(), value));
                }
                // `p_last < last <= MAX` when the run goes on past this patch interval.
                from = (p_last < last).then(|| p_last.next());
                index += 1;
            }
            if let Some(start) = from {
                pieces.push((start, last, value));
            }
        }
        // Merge the two sorted, mutually disjoint lists.
        let mut merged = Vec::with_capacity(pieces.len() + patch.len());
        let (mut pieces, mut patch) = (pieces.into_iter().peekable(), patch.into_iter().peekable());
        loop {
            let take_piece = match (pieces.peek(), patch.peek()) {
                (Some(a), Some(b)) => a.0 < b.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            merged.extend(if take_piece { pieces.next() } else { patch.next() });
        }
        merged
    }

    /// The boundary table: touching intervals of the same entry merged, gaps as [`NONE`].
    fn into_table(self) -> Table<A> {
        let intervals = self.into_sorted();
        debug_assert!(intervals.windows(2).all(|w| w[0].1 < w[1].0));
        let mut starts: Vec<A> = Vec::with_capacity(intervals.len() + intervals.len() / 4);
        let mut values: Vec<u32> = Vec::with_capacity(starts.capacity());
        let mut ranges = 0;
        // The last address covered so far, if any.
        let mut covered_to: Option<A> = None;
        for (first, last, value) in intervals {
            let touching = covered_to.is_some_and(|end| end < A::MAX && end.next() == first);
            if touching && values.last() == Some(&value) {
                covered_to = Some(last);
                continue;
            }
            if let Some(end) = covered_to
                && !touching
            {
                // `end < first <= MAX`, so `end + 1` is the first address of the gap.
                starts.push(end.next());
                values.push(NONE);
            }
            starts.push(first);
            values.push(value);
            ranges += 1;
            covered_to = Some(last);
        }
        if let Some(end) = covered_to
            && end < A::MAX
        {
            starts.push(end.next());
            values.push(NONE);
        }
        starts.shrink_to_fit();
        values.shrink_to_fit();
        Table { starts, values, ranges }
    }
}

/// The address table of one family: `values[i]` holds for `starts[i]..starts[i + 1]` (the last
/// boundary reaches to the end of the address space); addresses below `starts[0]` are unknown.
#[derive(Clone, Debug, Default)]
pub(super) struct Table<A> {
    starts: Vec<A>,
    values: Vec<u32>,
    /// Boundaries whose value is not [`NONE`].
    ranges: usize,
}

impl<A: Addr> Table<A> {
    /// The entry index of `addr`, if a range covers it.
    pub(super) fn get(&self, addr: A) -> Option<u32> {
        let index = self.starts.partition_point(|&start| start <= addr);
        let value = *self.values.get(index.checked_sub(1)?)?;
        (value != NONE).then_some(value)
    }

    /// Number of ranges (touching ranges of the same AS and organisation counted once).
    pub(super) fn ranges(&self) -> usize {
        self.ranges
    }

    /// The boundaries (for tests that walk every range edge).
    #[cfg(test)]
    pub(super) fn starts(&self) -> &[A] {
        &self.starts
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.starts.capacity() * size_of::<A>() + self.values.capacity() * size_of::<u32>()
    }
}

/// Cleans an organisation name: invalid UTF-8 and control characters become U+FFFD, surrounding
/// whitespace is trimmed, and the result is cut to [`MAX_ORG_BYTES`] at a character boundary.
/// Everything else (quotes, backslashes, non-ASCII letters) is kept as it is: the agent escapes
/// names where it prints them.
pub fn clean_org(raw: &[u8]) -> Cow<'_, str> {
    let plain = raw.len() <= MAX_ORG_BYTES
        && raw.iter().all(|b| (0x20..0x7f).contains(b))
        && raw.first().is_none_or(|&b| b != b' ')
        && raw.last().is_none_or(|&b| b != b' ');
    if plain {
        // Printable ASCII is valid UTF-8.
        return String::from_utf8_lossy(raw);
    }
    let lossy = String::from_utf8_lossy(raw);
    let replaced: String = lossy
        .chars()
        .map(|c| if c.is_control() { char::REPLACEMENT_CHARACTER } else { c })
        .collect();
    let trimmed = replaced.trim();
    let mut end = trimmed.len().min(MAX_ORG_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(trimmed[..end].trim_end().to_owned())
}

/// Accumulates the rows of all sources, in order.
#[derive(Debug)]
pub(super) struct Builder {
    v4: Overlay<u32>,
    v6: Overlay<u128>,
    /// Organisation name -> index in `org_ends`.
    org_ids: HashMap<Box<str>, u32>,
    /// All distinct organisation names, concatenated.
    orgs: String,
    /// End offset in `orgs` of each organisation name (its start is the previous end).
    org_ends: Vec<u32>,
    /// (AS number, organisation index) -> index in `entries`.
    entry_ids: HashMap<(u32, u32), u32>,
    entries: Vec<Entry>,
    sources: Vec<AsnSource>,
    /// Rows applied since the current source started.
    rows: usize,
}

impl Builder {
    pub(super) fn new() -> Self {
        Self {
            v4: Overlay::new(),
            v6: Overlay::new(),
            org_ids: HashMap::new(),
            orgs: String::new(),
            org_ends: Vec::new(),
            entry_ids: HashMap::new(),
            entries: Vec::new(),
            sources: Vec::new(),
            rows: 0,
        }
    }

    /// The entry index of (`number`, `org`), adding it if new; `org` is cleaned first.
    fn intern(&mut self, number: u32, org: &[u8]) -> Result<u32, AsnError> {
        let org = clean_org(org);
        let org_id = match self.org_ids.get(&*org) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.org_ends.len())
                    .map_err(|_| AsnError::Capacity { what: "organisation names" })?;
                self.orgs.push_str(&org);
                let end = u32::try_from(self.orgs.len())
                    .map_err(|_| AsnError::Capacity { what: "organisation name bytes" })?;
                self.org_ends.push(end);
                self.org_ids.insert(org.into(), id);
                id
            }
        };
        if let Some(&id) = self.entry_ids.get(&(number, org_id)) {
            return Ok(id);
        }
        let id = u32::try_from(self.entries.len())
            .ok()
            .filter(|&id| id != NONE)
            .ok_or(AsnError::Capacity { what: "AS entries" })?;
        self.entries.push(Entry { number, org: org_id });
        self.entry_ids.insert((number, org_id), id);
        Ok(id)
    }

    /// Applies an IPv4 range (`first <= last`) of AS `number` (not 0) with raw `org` bytes.
    pub(super) fn insert_v4(
        &mut self,
        first: u32,
        last: u32,
        number: u32,
        org: &[u8],
    ) -> Result<(), AsnError> {
        let id = self.intern(number, org)?;
        self.v4.insert(first, last, id);
        self.rows += 1;
        Ok(())
    }

    /// Applies an IPv6 range (`first <= last`); one inside `::ffff:0:0/96` (IPv4-mapped) is
    /// applied to IPv4 as the embedded IPv4 range.
    pub(super) fn insert_v6(
        &mut self,
        first: u128,
        last: u128,
        number: u32,
        org: &[u8],
    ) -> Result<(), AsnError> {
        if first >> 32 == V4_MAPPED >> 32 && last >> 32 == V4_MAPPED >> 32 {
            // Both ends are inside ::ffff:0:0/96: the low 32 bits are the IPv4 address.
            return self.insert_v4(first as u32, last as u32, number, org);
        }
        let id = self.intern(number, org)?;
        self.v6.insert(first, last, id);
        self.rows += 1;
        Ok(())
    }

    /// Records a finished source; fails with [`AsnError::Empty`] if it applied no rows.
    pub(super) fn end_source(&mut self, mut source: AsnSource) -> Result<(), AsnError> {
        if self.rows == 0 {
            return Err(AsnError::Empty { name: source.name });
        }
        source.rows = self.rows;
        self.rows = 0;
        self.sources.push(source);
        Ok(())
    }

    /// The finished database.
    pub(super) fn finish(self) -> Result<AsnDb, AsnError> {
        if self.sources.is_empty() {
            return Err(AsnError::NoFiles);
        }
        let (mut orgs, mut org_ends, mut entries) = (self.orgs, self.org_ends, self.entries);
        orgs.shrink_to_fit();
        org_ends.shrink_to_fit();
        entries.shrink_to_fit();
        Ok(AsnDb {
            v4: self.v4.into_table(),
            v6: self.v6.into_table(),
            entries,
            org_ends,
            orgs,
            sources: self.sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_ranges_override_exactly_what_they_cover() {
        let mut map = Overlay::<u32>::new();
        map.insert(10, 100, 1);
        map.insert(20, 30, 2); // nested
        map.insert(90, 120, 2); // partial overlap at the end
        map.insert(5, 12, 2); // partial overlap at the start
        let table = map.into_table();
        assert_eq!(table.starts, [5, 13, 20, 31, 90, 121]);
        assert_eq!(table.values, [2, 1, 2, 1, 2, NONE]);
        assert_eq!(table.ranges(), 5);
        assert_eq!(table.get(4), None);
        assert_eq!(table.get(5), Some(2));
        assert_eq!(table.get(13), Some(1));
        assert_eq!(table.get(120), Some(2));
        assert_eq!(table.get(121), None);
    }

    /// Applies random ranges over a small address space to an overlay and to a plain array and
    /// compares every address.
    #[test]
    fn overlay_matches_a_naive_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut random = move |bound: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(bound)) as u32
        };
        for round in 0..500 {
            let mut map = Overlay::<u32>::new();
            let mut model = [NONE; 300];
            let mut next = 0;
            for value in 0..random(40) {
                // Mostly sorted, disjoint ranges, sometimes an arbitrary one.
                let (first, last) = if round % 3 != 0 && random(4) != 0 {
                    let first = next + random(5);
                    (first, first + random(6))
                } else {
                    let first = random(290);
                    (first, first + random(10))
                };
                if last >= 300 {
                    continue;
                }
                next = next.max(last + 1);
                map.insert(first, last, value);
                model[first as usize..=last as usize].fill(value);
            }
            let table = map.into_table();
            for (addr, expected) in model.iter().enumerate() {
                let expected = (*expected != NONE).then_some(*expected);
                assert_eq!(table.get(addr as u32), expected, "round {round}, address {addr}");
            }
        }
    }

    #[test]
    fn touching_ranges_merge_and_edges_do_not_overflow() {
        let mut map = Overlay::<u32>::new();
        map.insert(0, 9, 1);
        map.insert(10, 19, 1);
        map.insert(30, u32::MAX, 2);
        map.insert(u32::MAX, u32::MAX, 3);
        let table = map.into_table();
        assert_eq!(table.starts, [0, 20, 30, u32::MAX]);
        assert_eq!(table.values, [1, NONE, 2, 3]);
        assert_eq!(table.get(0), Some(1));
        assert_eq!(table.get(19), Some(1));
        assert_eq!(table.get(25), None);
        assert_eq!(table.get(u32::MAX - 1), Some(2));
        assert_eq!(table.get(u32::MAX), Some(3));

        let mut map = Overlay::<u128>::new();
        map.insert(0, u128::MAX, 7);
        map.insert(0, 0, 8);
        let table = map.into_table();
        assert_eq!(table.get(0), Some(8));
        assert_eq!(table.get(u128::MAX), Some(7));
        assert_eq!(Table::<u128>::default().get(5), None);
    }

    #[test]
    fn org_names_are_cleaned() {
        assert!(matches!(clean_org(b"Cloudflare, Inc."), Cow::Borrowed("Cloudflare, Inc.")));
        assert_eq!(clean_org(b"  LLC \"SPUTNIK\"  "), "LLC \"SPUTNIK\"");
        assert_eq!(
            clean_org(b"evil\x1b[31m\r\nname\x7f"),
            "evil\u{fffd}[31m\u{fffd}\u{fffd}name\u{fffd}"
        );
        assert_eq!(clean_org(b"bad \xff\xfe utf8"), "bad \u{fffd}\u{fffd} utf8");
        assert_eq!(
            clean_org("LINAGE COMUNICACIONES\u{a0}SAS".as_bytes()),
            "LINAGE COMUNICACIONES\u{a0}SAS"
        );
        let long = "é".repeat(100); // 200 bytes
        let cut = clean_org(long.as_bytes());
        assert_eq!(cut.len(), MAX_ORG_BYTES);
        assert_eq!(cut, "é".repeat(64));
        let long = format!("a{}", "é".repeat(100)); // the cut falls inside a character
        assert_eq!(clean_org(long.as_bytes()).len(), MAX_ORG_BYTES - 1);
        assert_eq!(clean_org(b""), "");
    }
}

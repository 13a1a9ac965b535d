//! The on-disk format of [`History`]: a small versioned binary.
//!
//! ```text
//! magic "EGTH", version u8 (1), then LEB128 varints:
//! max_pairs, max_points, latest (Unix s), series count, per series:
//!   mac [6], country [2], tracker flag u8 (0/1) [+ up, down, blocked, age s],
//!   day points: count, per point: age in buckets before the newest, up, down, blocked
//!   week points: the same
//! folded count, per folded pair: mac [6], country [2], up, down, blocked, age s
//! ```
//!
//! Keys are strictly ascending and point ages strictly descending, which the
//! reader checks along with every count and limit.

use std::collections::VecDeque;

use super::{
    Bytes, Country, DAY_BUCKETS, DAY_STEP_SECS, History, HistoryError, MAX_PAIRS_CEILING,
    MAX_POINTS_CEILING, MAX_TIME, PairKey, Point, Series, Tracker, WEEK_BUCKETS, WEEK_STEP_SECS,
    bucket_start,
};

pub(super) const MAGIC: [u8; 4] = *b"EGTH";
pub(super) const FORMAT_VERSION: u8 = 1;

impl History {
    /// Serializes the history, including the last cumulative value of every
    /// pair, in the versioned binary format described in the module docs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.series.len() * 24 + self.points * 14);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        put_varint(&mut out, self.max_pairs as u64);
        put_varint(&mut out, self.max_points as u64);
        put_varint(&mut out, self.latest);
        put_varint(&mut out, self.series.len() as u64);
        for (key, series) in &self.series {
            put_key(&mut out, key);
            match &series.tracker {
                None => out.push(0),
                Some(tracker) => {
                    out.push(1);
                    put_tracker(&mut out, tracker, self.latest);
                }
            }
            put_points(&mut out, &series.day, DAY_STEP_SECS, self.latest);
            put_points(&mut out, &series.week, WEEK_STEP_SECS, self.latest);
        }
        put_varint(&mut out, self.folded.len() as u64);
        for (key, tracker) in &self.folded {
            put_key(&mut out, key);
            put_tracker(&mut out, tracker, self.latest);
        }
        out
    }

    /// Loads what [`History::to_bytes`] wrote, validating everything, then
    /// drops what is outside the windows at `now`. The caps are the ones
    /// saved in the file (see [`History::set_limits`]).
    pub fn from_bytes(bytes: &[u8], now: u64) -> Result<History, HistoryError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.array::<4>().map_err(|_| HistoryError::BadMagic)? != MAGIC {
            return Err(HistoryError::BadMagic);
        }
        let version = r.byte()?;
        if version != FORMAT_VERSION {
            return Err(HistoryError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let max_pairs = r.count(MAX_PAIRS_CEILING, "max_pairs out of range")?;
        let max_points = r.count(MAX_POINTS_CEILING, "max_points out of range")?;
        if max_pairs == 0 || max_points == 0 {
            return Err(HistoryError::Corrupt("zero limit"));
        }
        let max_len = max_encoded_len(max_pairs, max_points);
        if bytes.len() > max_len {
            return Err(HistoryError::TooLarge { len: bytes.len(), max: max_len });
        }
        let mut h = History::new(max_pairs, max_points);
        h.latest = r.varint()?;
        if h.latest > MAX_TIME {
            return Err(HistoryError::Corrupt("time out of range"));
        }

        let n_series = r.count(max_pairs * 2, "too many series")?;
        let mut prev = None;
        for _ in 0..n_series {
            let key = r.key(&mut prev)?;
            let tracker = match r.byte()? {
                0 => None,
                1 => Some(r.tracker(h.latest)?),
                _ => return Err(HistoryError::Corrupt("bad tracker flag")),
            };
            let day = r.points(h.latest, DAY_STEP_SECS, DAY_BUCKETS)?;
            let week = r.points(h.latest, WEEK_STEP_SECS, WEEK_BUCKETS)?;
            h.points += day.len() + week.len();
            if h.points > max_points {
                return Err(HistoryError::Corrupt("more points than max_points"));
            }
            h.series.insert(key, Series { tracker, day, week });
        }

        let n_folded = r.count(max_pairs, "too many folded pairs")?;
        let mut prev = None;
        for _ in 0..n_folded {
            let key = r.key(&mut prev)?;
            if key.country == Country::OTHER || h.series.contains_key(&key) {
                return Err(HistoryError::Corrupt(
                    "folded pair is an other pair or has its own series",
                ));
            }
            if !h.series.contains_key(&key.fold_target()) {
                return Err(HistoryError::Corrupt("folded pair without its other series"));
            }
            let tracker = r.tracker(h.latest)?;
            h.folded.insert(key, tracker);
        }
        if r.pos != bytes.len() {
            return Err(HistoryError::Corrupt("trailing bytes"));
        }
        h.set_clock(now);
        h.prune();
        Ok(h)
    }
}

// Largest encodings, used to bound the accepted input length.
const VARINT_MAX: usize = 10;
const HEADER_MAX: usize = MAGIC.len() + 1 + 5 * VARINT_MAX;
const TRACKER_MAX: usize = 4 * VARINT_MAX;
const SERIES_MAX: usize = 8 + 1 + TRACKER_MAX + 2 * VARINT_MAX;
const FOLDED_MAX: usize = 8 + TRACKER_MAX;
const POINT_MAX: usize = 4 * VARINT_MAX;
/// Smallest encoding of a point (age + three counters).
const POINT_MIN: usize = 4;

fn max_encoded_len(max_pairs: usize, max_points: usize) -> usize {
    HEADER_MAX
        .saturating_add(max_pairs.saturating_mul(2 * SERIES_MAX + FOLDED_MAX))
        .saturating_add(max_points.saturating_mul(POINT_MAX))
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, key: &PairKey) {
    out.extend_from_slice(&key.mac);
    out.extend_from_slice(&key.country.0);
}

fn put_bytes(out: &mut Vec<u8>, b: Bytes) {
    put_varint(out, b.up);
    put_varint(out, b.down);
    put_varint(out, b.blocked);
}

fn put_tracker(out: &mut Vec<u8>, tracker: &Tracker, latest: u64) {
    put_bytes(out, tracker.last);
    put_varint(out, latest.saturating_sub(tracker.last_seen));
}

/// Points oldest first, each as its age in buckets before the newest bucket.
fn put_points(out: &mut Vec<u8>, points: &VecDeque<Point>, step: u64, latest: u64) {
    let newest = bucket_start(latest, step);
    put_varint(out, points.len() as u64);
    for p in points {
        put_varint(out, newest.saturating_sub(p.start) / step);
        put_bytes(out, p.bytes);
    }
}

/// Bounds-checked cursor over the input.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, HistoryError> {
        let b = *self.bytes.get(self.pos).ok_or(HistoryError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], HistoryError> {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.byte()?;
        }
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, HistoryError> {
        let mut v = 0u64;
        for i in 0..VARINT_MAX {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == VARINT_MAX - 1 && bits > 1 {
                return Err(HistoryError::Corrupt("varint overflow"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(HistoryError::Corrupt("varint too long"))
    }

    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, HistoryError> {
        usize::try_from(self.varint()?)
            .ok()
            .filter(|n| *n <= max)
            .ok_or(HistoryError::Corrupt(what))
    }

    /// Reads a key that must sort after `prev`.
    fn key(&mut self, prev: &mut Option<PairKey>) -> Result<PairKey, HistoryError> {
        let mac = self.array::<6>()?;
        let country = Country::from_raw(self.array::<2>()?)
            .ok_or(HistoryError::Corrupt("invalid country"))?;
        let key = PairKey { mac, country };
        if prev.is_some_and(|p| p >= key) {
            return Err(HistoryError::Corrupt("keys not sorted or duplicated"));
        }
        *prev = Some(key);
        Ok(key)
    }

    fn bytes3(&mut self) -> Result<Bytes, HistoryError> {
        Ok(Bytes { up: self.varint()?, down: self.varint()?, blocked: self.varint()? })
    }

    fn tracker(&mut self, latest: u64) -> Result<Tracker, HistoryError> {
        let last = self.bytes3()?;
        let age = self.varint()?;
        let last_seen =
            latest.checked_sub(age).ok_or(HistoryError::Corrupt("pair seen before time zero"))?;
        Ok(Tracker { last, last_seen })
    }

    fn points(
        &mut self,
        latest: u64,
        step: u64,
        max_len: usize,
    ) -> Result<VecDeque<Point>, HistoryError> {
        let remaining = self.bytes.len() - self.pos;
        let n = self.count(max_len, "too many points in a series")?;
        if n > remaining / POINT_MIN {
            return Err(HistoryError::Truncated);
        }
        let newest = bucket_start(latest, step);
        let mut points = VecDeque::with_capacity(n);
        let mut prev_age = None;
        for _ in 0..n {
            let age = self.varint()?;
            if age >= max_len as u64 || prev_age.is_some_and(|p| age >= p) {
                return Err(HistoryError::Corrupt("bucket out of window or out of order"));
            }
            prev_age = Some(age);
            let start = newest
                .checked_sub(age * step)
                .ok_or(HistoryError::Corrupt("bucket before time zero"))?;
            let bytes = self.bytes3()?;
            if bytes.is_zero() {
                return Err(HistoryError::Corrupt("empty bucket stored"));
            }
            points.push_back(Point { start, bytes });
        }
        Ok(points)
    }
}

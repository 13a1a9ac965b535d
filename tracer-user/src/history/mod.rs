//! Bounded traffic history per (LAN device, destination country).
//!
//! The agent reads exact *cumulative* byte counters from the kernel; this module
//! turns them into sparse per-bucket deltas for the web page's charts and the
//! `GET /api/v1/history?mac=&country=&range=24h|7d` API.
//!
//! # Feeding it
//!
//! Call [`History::record`] each time the agent reads the kernel maps (every
//! ~10 s is fine; anything up to 5 min works, a longer period only lumps more
//! traffic into one bucket), passing the cumulative totals of **every** pair
//! the kernel currently reports. For each (device, country) pair the history
//! keeps the last cumulative value and adds the difference to the current
//! 5-minute bucket (24 h view) and the current 1-hour bucket (7 d view):
//!
//! - **Increase**: the difference is added.
//! - **Any of the three counters went down**: the counters were reset (agent
//!   `reset` command, reboot, kernel map entry recreated). The new values are
//!   the traffic since the reset and are added as they are: never negative,
//!   never a wrap-around.
//! - **Pair never seen before**: its whole cumulative value goes into the
//!   current bucket. With a record every ~10 s a new pair's counters only hold
//!   the traffic since the previous record, so this is exact. The one case where
//!   it is wrong is a start with no saved history (first run, or a corrupt file
//!   set aside) while the kernel counters have been running for a while: call
//!   [`History::record_baseline`] once at start-up in that case, so the traffic
//!   since boot is not dumped into one bucket.
//! - **Restart**: the last cumulative value of every pair is saved with the
//!   history ([`History::to_bytes`]), so a restart that loads it continues
//!   exactly, with no double counting. When the kernel counters restarted
//!   although they may have grown past the saved values (the agent found no
//!   pinned counter map: a reboot, or `egress-tracer reset`), call
//!   [`History::mark_counters_reset`] before the next record (`HistoryStore::open`
//!   does).
//!   Traffic between the last save and a restart is not lost: it lands in
//!   the first bucket after the restart. Save every few minutes (5 min is a
//!   good fit) and at shutdown.
//! - A pair the agent has not reported for 7 days is forgotten (including its
//!   last cumulative); if it comes back it counts as new.
//!
//! The history is a plain value: the agent owns it behind its own lock
//! (`record` takes `&mut self`, `query` and `to_bytes` take `&self`). A record
//! costs O(pairs) (every series is checked for expired buckets).
//!
//! Time: buckets are aligned to Unix time (`t - t % 300`, `t - t % 3600`).
//! A clock that goes backwards never moves data: time is held at the newest
//! time seen, so deltas go into the newest bucket until the clock catches up,
//! and query windows end at that newest bucket too. One exception: a jump
//! back by more than a week means the clock was wrong before (a router
//! without a real-time clock); the stored points are dropped (counted in
//! [`Stats::dropped_points`]), the baselines kept, and time restarts at the
//! new clock rather than recording into a bucket in the future for months.
//! When the clock jumps forward, buckets that fall out of the windows are
//! dropped at that record; pairs reported in it keep their baselines.
//!
//! # Caps
//!
//! Storage is sparse: only non-zero buckets are stored, and idle pairs cost
//! no points. Two caps bound memory:
//!
//! - `max_pairs` (default 8192): number of pairs that get their own series.
//!   Once reached, a new pair is *folded*: its deltas go into its device's
//!   `(mac, "other")` series, created if needed, so there are at most
//!   `2 * max_pairs` series. A folded pair still keeps its own last
//!   cumulative value (about 60 bytes) to compute exact deltas; at most
//!   `max_pairs` pairs are folded. A sample of a new pair beyond that has no
//!   exact delta and is ignored (counted in [`Stats::untracked_samples`]).
//!   Totals stay exact while folding: only the split by country is lost.
//! - `max_points` (default 100 000): number of stored non-zero buckets over
//!   both resolutions. When exceeded at the end of a record, the buckets that
//!   ended longest ago (over all series and both resolutions) are dropped
//!   early, so the 7 d view shortens before the 24 h view does;
//!   [`Stats::dropped_points`] counts them.
//!
//! # Memory
//!
//! One stored point (bucket start + three `u64` counters) costs **32 bytes**,
//! plus the spare capacity of its series' buffer (grown by a quarter, never
//! doubled, and shrunk when points go): about 40 bytes per point in practice.
//! A series costs about 170 bytes, a folded pair about 60 bytes.
//!
//! Worst case, 100 devices x 50 countries (5000 pairs) all active in every
//! bucket, measured by the `measure_100x50` test:
//!
//! | | points | memory |
//! |---|---|---|
//! | 7 days, no point cap | 2 280 000 (456 per pair) | 73.8 MB |
//! | 24 hours, no point cap | 1 560 000 | 50.9 MB |
//! | default `max_points` (100 000) | 100 000 | 5.0 MB |
//!
//! With the default cap such a load keeps only the newest ~1.5 hours (5000
//! pairs fill 13 points an hour). A typical home, a few hundred pairs active
//! part of the time, stays far below the cap. Size `max_points` at ~40 bytes
//! a point: 1 000 000 points is about 40 MB.
//!
//! # Disk
//!
//! [`History::to_bytes`] writes a small versioned binary format (see the
//! `codec` module: magic `EGTH`, version byte, LEB128 varints, bucket times as
//! ages), about 12 bytes per point with realistic counters. 100 x 50 pairs
//! fully active for 24 h: **18.8 MB** with no point cap, **1.3 MB** with the
//! default cap (measured by `measure_100x50`). [`History::from_bytes`]
//! validates everything (magic, version, limits, length, key order, bucket
//! ages, counts, times) and returns an error, never panics, on corrupt input;
//! what it allocates is proportional to the input length, which is itself
//! bounded by the limits stored in the header.
//!
//! # Query
//!
//! [`History::query`] returns dense arrays (zeros filled) of exactly
//! `buckets` entries ending with the current bucket. Series are sorted by
//! their bytes (upload + download + blocked) in the window, descending; pairs
//! with no traffic in the window are left out. Beyond `limit` series the rest
//! is summed into one last series with `"mac": "other", "country": "other"`
//! (a chart stacks it as "everything else"), and `other_series` says how many
//! series it holds. `total` is the exact sum of everything that matched the
//! filter. A country filter matches stored series only: traffic of a folded
//! pair is found under its device's `"other"` country. One query allocates
//! at most `(limit + 2) x buckets x 24` bytes for its arrays (under 1.4 MB).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::mem::size_of;
use std::str::FromStr;

use serde::Serialize;

/// Width of a bucket of the 24-hour view, in seconds.
pub const DAY_STEP_SECS: u64 = 300;
/// Number of buckets of the 24-hour view.
pub const DAY_BUCKETS: usize = 288;
/// Width of a bucket of the 7-day view, in seconds.
pub const WEEK_STEP_SECS: u64 = 3600;
/// Number of buckets of the 7-day view.
pub const WEEK_BUCKETS: usize = 168;
/// Default for `max_pairs` in [`History::new`].
pub const DEFAULT_MAX_PAIRS: usize = 8192;
/// Default for `max_points` in [`History::new`].
pub const DEFAULT_MAX_POINTS: usize = 100_000;
/// Largest accepted `max_pairs` (also when loading a file).
pub const MAX_PAIRS_CEILING: usize = 1 << 20;
/// Largest accepted `max_points` (also when loading a file).
pub const MAX_POINTS_CEILING: usize = 1 << 25;
/// Default [`Query::limit`].
pub const DEFAULT_LIMIT: usize = 50;
/// Largest [`Query::limit`]: bounds the memory of one query.
pub const MAX_LIMIT: usize = 200;

/// How long a pair that is no longer reported keeps its last cumulative value.
const WEEK_SECS: u64 = WEEK_STEP_SECS * WEEK_BUCKETS as u64;
/// Times are clamped to this (year 36812), so bucket arithmetic cannot overflow.
const MAX_TIME: u64 = 1 << 40;

/// Errors from loading a history or parsing query parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The bytes do not start with the history file magic.
    #[error("not a history file (bad magic)")]
    BadMagic,
    /// The file was written by another format version.
    #[error("unsupported history format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version byte found in the file.
        found: u8,
        /// The only version this build reads.
        supported: u8,
    },
    /// The input is longer than its own limits allow.
    #[error("history data is {len} bytes, more than the {max} bytes its limits allow")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// Largest length the header's limits allow.
        max: usize,
    },
    /// The input ends in the middle of a record.
    #[error("history data is truncated")]
    Truncated,
    /// The input is structurally invalid; the text says what is wrong.
    #[error("history data is corrupt: {0}")]
    Corrupt(&'static str),
    /// A `range` parameter other than `24h` or `7d`.
    #[error("invalid range {0:?}: expected \"24h\" or \"7d\"")]
    InvalidRange(String),
    /// A MAC address that is not six hex bytes.
    #[error("invalid MAC address {0:?}: expected six hex bytes like aa:bb:cc:dd:ee:ff")]
    InvalidMac(String),
    /// A country that is not a two-letter code, `unknown` or `other`.
    #[error("invalid country {0:?}: expected a two-letter ISO code, \"unknown\" or \"other\"")]
    InvalidCountry(String),
    /// A `limit` parameter that is not a number in range.
    #[error("invalid limit {value:?}: expected a number from 0 to {max}")]
    InvalidLimit {
        /// The parameter as given.
        value: String,
        /// Largest accepted limit.
        max: usize,
    },
}

/// Keeps error messages short when a parameter is long or hostile.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Destination country, stored in 2 bytes: an ISO 3166 alpha-2 code
/// (upper case), [`Country::UNKNOWN`] or [`Country::OTHER`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// No country known for the destination (`"unknown"`).
    pub const UNKNOWN: Country = Country(*b"??");
    /// Everything else: folded pairs and the agent's own `"other"` (`"other"`).
    pub const OTHER: Country = Country(*b"**");
    const MIN: Country = Country([0, 0]);
    const MAX: Country = Country([u8::MAX, u8::MAX]);

    /// Country from the two ASCII letters the kernel side stores (any case).
    /// Anything that is not two letters becomes [`Country::UNKNOWN`].
    pub fn from_code(code: [u8; 2]) -> Country {
        if code.iter().all(u8::is_ascii_alphabetic) {
            Country(code.map(|b| b.to_ascii_uppercase()))
        } else {
            Country::UNKNOWN
        }
    }

    /// `"CN"`, `"unknown"` or `"other"`.
    pub fn as_str(&self) -> &str {
        match *self {
            Country::UNKNOWN => "unknown",
            Country::OTHER => "other",
            _ => std::str::from_utf8(&self.0).unwrap_or("unknown"),
        }
    }

    /// The stored form, as found in a file; `None` if it is not valid.
    fn from_raw(raw: [u8; 2]) -> Option<Country> {
        let country = Country(raw);
        let valid = country == Country::UNKNOWN
            || country == Country::OTHER
            || raw.iter().all(u8::is_ascii_uppercase);
        valid.then_some(country)
    }
}

impl FromStr for Country {
    type Err = HistoryError;

    /// Strict parse of `"CN"` (any case), `"unknown"` or `"other"`.
    fn from_str(s: &str) -> Result<Country, HistoryError> {
        if s.eq_ignore_ascii_case("unknown") {
            return Ok(Country::UNKNOWN);
        }
        if s.eq_ignore_ascii_case("other") {
            return Ok(Country::OTHER);
        }
        match *s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Country::from_code([a, b]))
            }
            _ => Err(HistoryError::InvalidCountry(clip(s))),
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Country({})", self.as_str())
    }
}

/// One pair's cumulative counters, as read from the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// LAN device.
    pub mac: [u8; 6],
    /// Destination country.
    pub country: Country,
    /// Bytes sent by the device since the counters started.
    pub upload_bytes: u64,
    /// Bytes received by the device since the counters started.
    pub download_bytes: u64,
    /// Bytes blocked since the counters started.
    pub blocked_bytes: u64,
}

/// Three byte counters, cumulative or per bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bytes {
    up: u64,
    down: u64,
    blocked: u64,
}

impl Bytes {
    /// Traffic since `prev`; if any counter went down, the counters were
    /// reset and `self` is all the traffic since the reset.
    fn since(self, prev: Bytes) -> Bytes {
        if self.up < prev.up || self.down < prev.down || self.blocked < prev.blocked {
            self
        } else {
            Bytes {
                up: self.up - prev.up,
                down: self.down - prev.down,
                blocked: self.blocked - prev.blocked,
            }
        }
    }

    fn is_zero(self) -> bool {
        self == Bytes::default()
    }

    fn sum(self) -> u64 {
        self.up.saturating_add(self.down).saturating_add(self.blocked)
    }

    fn add(&mut self, other: Bytes) {
        self.up = self.up.saturating_add(other.up);
        self.down = self.down.saturating_add(other.down);
        self.blocked = self.blocked.saturating_add(other.blocked);
    }
}

impl From<&Sample> for Bytes {
    fn from(s: &Sample) -> Bytes {
        Bytes { up: s.upload_bytes, down: s.download_bytes, blocked: s.blocked_bytes }
    }
}

/// A (device, country) pair: 8 bytes, ordered by device then country.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PairKey {
    mac: [u8; 6],
    country: Country,
}

impl PairKey {
    /// Where the deltas of a folded pair go.
    fn fold_target(self) -> PairKey {
        PairKey { mac: self.mac, country: Country::OTHER }
    }
}

/// One non-zero bucket: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    /// Bucket start, Unix seconds, aligned to the resolution's step.
    start: u64,
    bytes: Bytes,
}

/// Last cumulative value of a pair and when it was last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tracker {
    last: Bytes,
    last_seen: u64,
}

impl Tracker {
    /// Stores the new cumulative value and returns the delta.
    fn update(&mut self, value: Bytes, t: u64) -> Bytes {
        let delta = value.since(self.last);
        self.last = value;
        self.last_seen = t;
        delta
    }

    fn is_stale(&self, t: u64) -> bool {
        t.saturating_sub(self.last_seen) > WEEK_SECS
    }
}

/// A chart line: sparse points of both resolutions, oldest first.
#[derive(Clone, Debug, Default)]
struct Series {
    /// `None` for a pure fold target, or once the pair went stale.
    tracker: Option<Tracker>,
    day: VecDeque<Point>,
    week: VecDeque<Point>,
}

impl Series {
    /// Adds a delta at time `t`; returns how many points were created.
    fn add(&mut self, t: u64, delta: Bytes) -> usize {
        let day = push_point(&mut self.day, bucket_start(t, DAY_STEP_SECS), delta, DAY_BUCKETS);
        let week = push_point(&mut self.week, bucket_start(t, WEEK_STEP_SECS), delta, WEEK_BUCKETS);
        usize::from(day) + usize::from(week)
    }

    fn points(&self, range: Range) -> &VecDeque<Point> {
        match range {
            Range::Day => &self.day,
            Range::Week => &self.week,
        }
    }

    fn has_points(&self) -> bool {
        !self.day.is_empty() || !self.week.is_empty()
    }
}

fn bucket_start(t: u64, step: u64) -> u64 {
    t - t % step
}

/// Adds `delta` to the bucket at `start`, appending a point if needed.
/// Buffers grow by a quarter (not doubling) and never beyond `max_len`.
fn push_point(points: &mut VecDeque<Point>, start: u64, delta: Bytes, max_len: usize) -> bool {
    // Time never goes backwards here (see `History::ingest`); should a
    // point be newer anyway, the delta still goes into the newest bucket.
    if let Some(last) = points.back_mut()
        && last.start >= start
    {
        last.bytes.add(delta);
        return false;
    }
    if points.len() == points.capacity() {
        let room = max_len.saturating_sub(points.len()).max(1);
        points.reserve_exact((points.len() / 4).max(4).min(room));
    }
    points.push_back(Point { start, bytes: delta });
    true
}

/// Drops points that start before `min_start`; returns how many.
fn drop_before(points: &mut VecDeque<Point>, min_start: u64) -> usize {
    let before = points.len();
    while points.front().is_some_and(|p| p.start < min_start) {
        points.pop_front();
    }
    if points.capacity() > points.len() + points.len() / 2 + 8 {
        points.shrink_to(points.len() + points.len() / 4);
    }
    before - points.len()
}

/// Which view a query reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Range {
    /// Last 24 hours in 5-minute buckets (`"24h"`).
    #[default]
    #[serde(rename = "24h")]
    Day,
    /// Last 7 days in 1-hour buckets (`"7d"`).
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    /// Bucket width in seconds.
    pub fn step_secs(self) -> u64 {
        match self {
            Range::Day => DAY_STEP_SECS,
            Range::Week => WEEK_STEP_SECS,
        }
    }

    /// Number of buckets in the view.
    pub fn buckets(self) -> usize {
        match self {
            Range::Day => DAY_BUCKETS,
            Range::Week => WEEK_BUCKETS,
        }
    }
}

impl FromStr for Range {
    type Err = HistoryError;

    /// Parses `"24h"` or `"7d"`.
    fn from_str(s: &str) -> Result<Range, HistoryError> {
        match s {
            "24h" => Ok(Range::Day),
            "7d" => Ok(Range::Week),
            _ => Err(HistoryError::InvalidRange(clip(s))),
        }
    }
}

/// What to chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Only this device, if set.
    pub mac: Option<[u8; 6]>,
    /// Only this country, if set.
    pub country: Option<Country>,
    /// Which view.
    pub range: Range,
    /// Most series returned on their own (at most [`MAX_LIMIT`]); the rest is
    /// summed into one `"other"` series.
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Query {
        Query { mac: None, country: None, range: Range::Day, limit: DEFAULT_LIMIT }
    }
}

impl Query {
    /// Builds a query from the API's parameters; a missing or empty
    /// parameter means no filter (or the default range / limit).
    pub fn from_params(
        mac: Option<&str>,
        country: Option<&str>,
        range: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Query, HistoryError> {
        fn given(p: Option<&str>) -> Option<&str> {
            p.map(str::trim).filter(|s| !s.is_empty())
        }
        let limit = match given(limit) {
            None => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_LIMIT)
                .ok_or_else(|| HistoryError::InvalidLimit { value: clip(s), max: MAX_LIMIT })?,
        };
        Ok(Query {
            mac: given(mac)
                .map(|m| {
                    crate::base::text::parse_mac(m).ok_or_else(|| HistoryError::InvalidMac(clip(m)))
                })
                .transpose()?,
            country: given(country).map(str::parse).transpose()?,
            range: given(range).map(str::parse).transpose()?.unwrap_or_default(),
            limit,
        })
    }

    fn matches(&self, key: &PairKey) -> bool {
        self.mac.is_none_or(|m| m == key.mac) && self.country.is_none_or(|c| c == key.country)
    }
}

/// Dense per-bucket byte arrays, oldest bucket first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Columns {
    /// Upload bytes per bucket.
    pub upload_bytes: Vec<u64>,
    /// Download bytes per bucket.
    pub download_bytes: Vec<u64>,
    /// Blocked bytes per bucket.
    pub blocked_bytes: Vec<u64>,
}

impl Columns {
    fn zeros(n: usize) -> Columns {
        Columns { upload_bytes: vec![0; n], download_bytes: vec![0; n], blocked_bytes: vec![0; n] }
    }

    fn add(&mut self, i: usize, b: Bytes) {
        for (column, v) in [
            (&mut self.upload_bytes, b.up),
            (&mut self.download_bytes, b.down),
            (&mut self.blocked_bytes, b.blocked),
        ] {
            if let Some(x) = column.get_mut(i) {
                *x = x.saturating_add(v);
            }
        }
    }
}

/// One chart line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeriesView {
    /// `"aa:bb:cc:dd:ee:ff"`, or `"other"` for the summed rest.
    pub mac: String,
    /// `"CN"`, `"unknown"` or `"other"`.
    pub country: String,
    /// The per-bucket bytes.
    #[serde(flatten)]
    pub bytes: Columns,
}

/// Answer to a [`Query`], serializable as the API's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    /// The view queried.
    pub range: Range,
    /// Bucket width in seconds.
    pub step_secs: u64,
    /// Start of the first bucket, Unix seconds.
    pub start: u64,
    /// End of the last (current) bucket, exclusive, Unix seconds.
    pub end: u64,
    /// Number of entries of every array.
    pub buckets: usize,
    /// Chart lines, biggest first, then the summed rest if any.
    pub series: Vec<SeriesView>,
    /// How many series were summed into the last `"other"` line (0: none).
    pub other_series: usize,
    /// Exact sum of everything that matched the filter.
    pub total: Columns,
}

/// Size and health counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Stored series (pairs with their own chart line, and `other` lines).
    pub pairs: usize,
    /// Pairs currently folded into their device's `other` series.
    pub folded_pairs: usize,
    /// Stored non-zero buckets.
    pub points: usize,
    /// Buckets dropped early to stay under `max_points` (since start/load).
    pub dropped_points: u64,
    /// Samples ignored because no more pairs could be tracked (since start/load).
    pub untracked_samples: u64,
    /// Approximate heap and inline memory of the history, in bytes.
    pub approx_bytes: usize,
}

/// Bounded traffic history; see the module documentation.
#[derive(Clone, Debug)]
pub struct History {
    max_pairs: usize,
    max_points: usize,
    /// Newest time seen (the clock as far as the history is concerned).
    latest: u64,
    series: BTreeMap<PairKey, Series>,
    /// Trackers of folded pairs; their deltas go to `series[fold_target]`.
    folded: BTreeMap<PairKey, Tracker>,
    /// Number of points in `series`.
    points: usize,
    dropped_points: u64,
    untracked_samples: u64,
}

impl Default for History {
    fn default() -> History {
        History::new(DEFAULT_MAX_PAIRS, DEFAULT_MAX_POINTS)
    }
}

impl History {
    /// Empty history with the given caps (clamped to 1..=the ceilings).
    pub fn new(max_pairs: usize, max_points: usize) -> History {
        History {
            max_pairs: max_pairs.clamp(1, MAX_PAIRS_CEILING),
            max_points: max_points.clamp(1, MAX_POINTS_CEILING),
            latest: 0,
            series: BTreeMap::new(),
            folded: BTreeMap::new(),
            points: 0,
            dropped_points: 0,
            untracked_samples: 0,
        }
    }

    /// Changes the caps (e.g. from the configuration after loading a file,
    /// which keeps the caps it was saved with). Lowering `max_points` drops
    /// the oldest points now; series beyond a lowered `max_pairs` stay until
    /// they expire, but no new ones are created meanwhile.
    pub fn set_limits(&mut self, max_pairs: usize, max_points: usize) {
        self.max_pairs = max_pairs.clamp(1, MAX_PAIRS_CEILING);
        self.max_points = max_points.clamp(1, MAX_POINTS_CEILING);
        self.enforce_point_cap();
    }

    /// Records the cumulative totals of every pair the kernel reports, read
    /// at `now_unix`; adds each pair's increase to the current buckets.
    pub fn record(&mut self, now_unix: u64, totals: impl IntoIterator<Item = Sample>) {
        self.ingest(now_unix, totals, true);
    }

    /// Like [`History::record`] but only stores the cumulative values, adding
    /// nothing: use it once at start-up when there was no saved history.
    pub fn record_baseline(&mut self, now_unix: u64, totals: impl IntoIterator<Item = Sample>) {
        self.ingest(now_unix, totals, false);
    }

    /// Forgets the last cumulative values, so that the next sample of every
    /// pair counts in full: call it when the kernel counters are known to
    /// have restarted (e.g. the boot id changed).
    pub fn mark_counters_reset(&mut self) {
        let trackers = self.series.values_mut().filter_map(|s| s.tracker.as_mut());
        for tracker in trackers.chain(self.folded.values_mut()) {
            tracker.last = Bytes::default();
        }
    }

    /// Size and health counters.
    pub fn stats(&self) -> Stats {
        let entry = |value: usize| (size_of::<PairKey>() + value) * 3 / 2; // B-tree slack
        let point_slots: usize =
            self.series.values().map(|s| s.day.capacity() + s.week.capacity()).sum();
        Stats {
            pairs: self.series.len(),
            folded_pairs: self.folded.len(),
            points: self.points,
            dropped_points: self.dropped_points,
            untracked_samples: self.untracked_samples,
            approx_bytes: size_of::<History>()
                + self.series.len() * entry(size_of::<Series>())
                + self.folded.len() * entry(size_of::<Tracker>())
                + point_slots * size_of::<Point>(),
        }
    }

    /// Charts the traffic matching `q` in the window ending with the bucket
    /// of `now` (or of the newest time recorded, if the clock went back).
    pub fn query(&self, q: &Query, now: u64) -> HistoryView {
        let step = q.range.step_secs();
        let n = q.range.buckets();
        let last = bucket_start(now.min(MAX_TIME).max(self.latest), step);
        let start = last.saturating_sub(step * (n as u64 - 1));
        let in_window = |p: &&Point| p.start >= start && p.start <= last;

        let mut matched: Vec<(u64, &PairKey, &VecDeque<Point>)> = self
            .series
            .iter()
            .filter(|(key, _)| q.matches(key))
            .filter_map(|(key, series)| {
                let points = series.points(q.range);
                let sum = points
                    .iter()
                    .filter(in_window)
                    .fold(0u64, |acc, p| acc.saturating_add(p.bytes.sum()));
                (sum > 0).then_some((sum, key, points))
            })
            .collect();
        matched.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));

        let limit = q.limit.min(MAX_LIMIT);
        let mut series = Vec::with_capacity(matched.len().min(limit + 1));
        let mut rest = Columns::zeros(n);
        let mut total = Columns::zeros(n);
        for (i, (_, key, points)) in matched.iter().enumerate() {
            let mut own = (i < limit).then(|| Columns::zeros(n));
            for p in points.iter().filter(in_window) {
                let idx = usize::try_from((p.start - start) / step).unwrap_or(usize::MAX);
                total.add(idx, p.bytes);
                own.as_mut().unwrap_or(&mut rest).add(idx, p.bytes);
            }
            if let Some(bytes) = own {
                series.push(SeriesView {
                    mac: crate::base::text::format_mac(key.mac),
                    country: key.country.as_str().to_owned(),
                    bytes,
                });
            }
        }
        let other_series = matched.len().saturating_sub(limit);
        if other_series > 0 {
            series.push(SeriesView {
                mac: "other".to_owned(),
                country: "other".to_owned(),
                bytes: rest,
            });
        }
        HistoryView {
            range: q.range,
            step_secs: step,
            start,
            end: start.saturating_add(step * n as u64),
            buckets: n,
            series,
            other_series,
            total,
        }
    }

    fn ingest(&mut self, now: u64, totals: impl IntoIterator<Item = Sample>, count: bool) {
        self.set_clock(now);
        let t = self.latest;
        for sample in totals {
            self.ingest_one(t, &sample, count);
        }
        // Pruning after the samples keeps the baseline of every pair just
        // reported, even when the clock jumped forward by more than a week.
        self.prune();
        self.enforce_point_cap();
    }

    fn ingest_one(&mut self, t: u64, sample: &Sample, count: bool) {
        let key = PairKey { mac: sample.mac, country: sample.country };
        let value = Bytes::from(sample);

        // A pair with its own series (possibly seen again after going stale).
        if let Some(series) = self.series.get_mut(&key) {
            let delta = match &mut series.tracker {
                Some(tracker) => tracker.update(value, t),
                None => {
                    series.tracker = Some(Tracker { last: value, last_seen: t });
                    value
                }
            };
            if count && !delta.is_zero() {
                self.points += series.add(t, delta);
            }
            return;
        }

        // A folded pair: its fold target exists as long as it is folded.
        if let Some(tracker) = self.folded.get_mut(&key) {
            let delta = tracker.update(value, t);
            if count && !delta.is_zero() {
                let target = self.series.entry(key.fold_target()).or_default();
                self.points += target.add(t, delta);
            }
            return;
        }

        // A new pair: its whole cumulative value is new traffic.
        let tracker = Tracker { last: value, last_seen: t };
        let series_cap = self.max_pairs.saturating_mul(2);
        let own_cap = if key.country == Country::OTHER { series_cap } else { self.max_pairs };
        let target_key = if self.series.len() < own_cap {
            key
        } else {
            let target_key = key.fold_target();
            let target_fits =
                self.series.contains_key(&target_key) || self.series.len() < series_cap;
            if key.country == Country::OTHER || self.folded.len() >= self.max_pairs || !target_fits
            {
                self.untracked_samples += 1;
                return;
            }
            self.folded.insert(key, tracker);
            target_key
        };
        let target = self.series.entry(target_key).or_default();
        if target_key == key {
            target.tracker = Some(tracker);
        }
        if count && !value.is_zero() {
            self.points += target.add(t, value);
        }
    }

    /// Moves the history's clock to `now`. It never goes backwards, except
    /// that a jump back by more than a week means the clock was wrong before
    /// (e.g. a router without a real-time clock that booted in the future):
    /// rather than record into a bucket in the future for that long, the
    /// points are dropped (counted in `dropped_points`) and time restarts at
    /// `now`. The baselines are kept, so nothing is counted twice.
    fn set_clock(&mut self, now: u64) {
        let now = now.min(MAX_TIME);
        if now.saturating_add(WEEK_SECS) >= self.latest {
            self.latest = self.latest.max(now);
            return;
        }
        let mut removed = 0;
        for series in self.series.values_mut() {
            removed += series.day.len() + series.week.len();
            series.day = VecDeque::new();
            series.week = VecDeque::new();
            if let Some(tracker) = &mut series.tracker {
                tracker.last_seen = now;
            }
        }
        for tracker in self.folded.values_mut() {
            tracker.last_seen = now;
        }
        self.points -= removed;
        self.dropped_points += removed as u64;
        self.latest = now;
    }

    /// Drops points outside the windows, forgets pairs not reported for a
    /// week, and removes series left with nothing.
    fn prune(&mut self) {
        let t = self.latest;
        let day_min =
            bucket_start(t, DAY_STEP_SECS).saturating_sub(DAY_STEP_SECS * (DAY_BUCKETS as u64 - 1));
        let week_min = bucket_start(t, WEEK_STEP_SECS)
            .saturating_sub(WEEK_STEP_SECS * (WEEK_BUCKETS as u64 - 1));
        self.folded.retain(|_, tracker| !tracker.is_stale(t));
        let folded = &self.folded;
        let mut removed = 0;
        self.series.retain(|key, series| {
            removed += drop_before(&mut series.day, day_min);
            removed += drop_before(&mut series.week, week_min);
            if series.tracker.is_some_and(|tr| tr.is_stale(t)) {
                series.tracker = None;
            }
            series.has_points()
                || series.tracker.is_some()
                || (key.country == Country::OTHER && has_folded(folded, key.mac))
        });
        self.points -= removed;
    }

    /// Drops the buckets that ended longest ago (over all series and both
    /// resolutions) until the number of points is within `max_points`.
    /// Ordering by end time keeps the current hourly bucket to the last.
    fn enforce_point_cap(&mut self) {
        if self.points <= self.max_points {
            return;
        }
        let excess = self.points - self.max_points;
        // Count points per end time. Ends are multiples of 300 s within the
        // week before the current bucket's end: a small dense array.
        let newest_end = bucket_start(self.latest, WEEK_STEP_SECS).saturating_add(WEEK_STEP_SECS);
        let base = newest_end.saturating_sub(WEEK_SECS);
        let slots = (WEEK_SECS / DAY_STEP_SECS) as usize + 1;
        let mut per_end = vec![0usize; slots];
        let slot = |end: u64| {
            let i = usize::try_from(end.saturating_sub(base) / DAY_STEP_SECS).unwrap_or(usize::MAX);
            i.min(slots - 1)
        };
        for series in self.series.values() {
            let day = series.day.iter().map(|p| p.start.saturating_add(DAY_STEP_SECS));
            let week = series.week.iter().map(|p| p.start.saturating_add(WEEK_STEP_SECS));
            for end in day.chain(week) {
                if let Some(n) = per_end.get_mut(slot(end)) {
                    *n += 1;
                }
            }
        }
        let mut freed = 0;
        let mut cutoff = base;
        for (i, n) in per_end.iter().enumerate() {
            freed += n;
            cutoff = base + i as u64 * DAY_STEP_SECS;
            if freed >= excess {
                break;
            }
        }
        // Drop every point whose end is <= cutoff.
        let mut removed = 0;
        for series in self.series.values_mut() {
            removed += drop_before(
                &mut series.day,
                cutoff.saturating_add(1).saturating_sub(DAY_STEP_SECS),
            );
            removed += drop_before(
                &mut series.week,
                cutoff.saturating_add(1).saturating_sub(WEEK_STEP_SECS),
            );
        }
        self.points -= removed;
        self.dropped_points += removed as u64;
    }
}

/// Whether any folded pair of device `mac` exists.
fn has_folded(folded: &BTreeMap<PairKey, Tracker>, mac: [u8; 6]) -> bool {
    let lo = PairKey { mac, country: Country::MIN };
    let hi = PairKey { mac, country: Country::MAX };
    folded.range(lo..=hi).next().is_some()
}

mod codec;
mod store;

pub use store::{HistoryStore, RECORD_EVERY, SAVE_EVERY};
#[cfg(test)]
mod tests;

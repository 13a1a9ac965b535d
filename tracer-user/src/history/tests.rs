use super::*;
use codec::{FORMAT_VERSION, MAGIC, put_varint};

/// An hour-aligned time.
const T0: u64 = 1_699_999_200;
const DAY: u64 = 86_400;

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn cc(s: &str) -> Country {
    s.parse().unwrap()
}

fn sample(m: u8, country: &str, up: u64, down: u64, blocked: u64) -> Sample {
    Sample {
        mac: mac(m),
        country: cc(country),
        upload_bytes: up,
        download_bytes: down,
        blocked_bytes: blocked,
    }
}

fn query(range: Range) -> Query {
    Query { range, ..Query::default() }
}

fn sum(v: &[u64]) -> u64 {
    v.iter().sum()
}

/// Sum of upload + download + blocked over a whole view.
fn grand_total(view: &HistoryView) -> u64 {
    sum(&view.total.upload_bytes) + sum(&view.total.download_bytes) + sum(&view.total.blocked_bytes)
}

fn find<'a>(view: &'a HistoryView, m: &str, c: &str) -> &'a SeriesView {
    view.series
        .iter()
        .find(|s| s.mac == m && s.country == c)
        .unwrap_or_else(|| panic!("no series {m} {c} in {view:?}"))
}

/// Internal consistency of a history.
fn check_invariants(h: &History) {
    let mut points = 0;
    for (key, s) in &h.series {
        for (deque, max) in [(&s.day, DAY_BUCKETS), (&s.week, WEEK_BUCKETS)] {
            assert!(deque.len() <= max);
            assert!(deque.iter().zip(deque.iter().skip(1)).all(|(a, b)| a.start < b.start));
            assert!(deque.iter().all(|p| !p.bytes.is_zero()));
            points += deque.len();
        }
        assert!(!h.folded.contains_key(key));
    }
    for key in h.folded.keys() {
        assert!(h.series.contains_key(&key.fold_target()));
    }
    assert_eq!(points, h.points);
    assert!(h.points <= h.max_points);
    assert!(h.series.len() <= 2 * h.max_pairs);
    assert!(h.folded.len() <= h.max_pairs);
}

/// Tiny deterministic generator for test traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn deltas_land_in_right_buckets() {
    let mut h = History::default();
    h.record(T0 + 10, [sample(1, "CN", 100, 1000, 0)]);
    h.record(T0 + 400, [sample(1, "CN", 150, 1500, 5)]);
    h.record(T0 + 3700, [sample(1, "CN", 170, 1600, 5)]);
    let now = T0 + 3700;

    let d = h.query(&query(Range::Day), now);
    assert_eq!(d.step_secs, 300);
    assert_eq!(d.start, T0 + 3600 - 287 * 300);
    assert_eq!(d.end, T0 + 3600 + 300);
    let s = find(&d, "02:00:00:00:00:01", "CN");
    let idx = |t: u64| ((t - d.start) / 300) as usize;
    assert_eq!(idx(T0 + 3600), 287);
    assert_eq!(s.bytes.upload_bytes[idx(T0)], 100);
    assert_eq!(s.bytes.upload_bytes[idx(T0 + 300)], 50);
    assert_eq!(s.bytes.download_bytes[idx(T0 + 300)], 500);
    assert_eq!(s.bytes.blocked_bytes[idx(T0 + 300)], 5);
    assert_eq!(s.bytes.upload_bytes[idx(T0 + 3600)], 20);
    assert_eq!(sum(&s.bytes.upload_bytes), 170);
    assert_eq!(sum(&s.bytes.download_bytes), 1600);

    let w = h.query(&query(Range::Week), now);
    assert_eq!(w.step_secs, 3600);
    assert_eq!(w.start, T0 + 3600 - 167 * 3600);
    let s = find(&w, "02:00:00:00:00:01", "CN");
    assert_eq!(s.bytes.upload_bytes[166], 150);
    assert_eq!(s.bytes.download_bytes[166], 1500);
    assert_eq!(s.bytes.upload_bytes[167], 20);
    assert_eq!(sum(&s.bytes.blocked_bytes), 5);
    assert_eq!(h.stats().points, 5);
    check_invariants(&h);
}

#[test]
fn bucket_totals_equal_cumulative_increase() {
    let mut h = History::default();
    let mut rng = Rng(7);
    let keys = [(1, "CN"), (1, "US"), (2, "DE"), (3, "unknown")];
    let mut cum = [[0u64; 3]; 4];
    // Baseline first, then 6 hours of records every 10 s.
    h.record_baseline(T0, keys.map(|(m, c)| sample(m, c, 0, 0, 0)));
    for step in 1..=2160u64 {
        for c in &mut cum {
            c[0] += rng.next(5_000);
            c[1] += rng.next(50_000);
            c[2] += rng.next(3) * rng.next(100);
        }
        let samples = keys.iter().zip(&cum).map(|(&(m, c), v)| sample(m, c, v[0], v[1], v[2]));
        h.record(T0 + step * 10, samples);
    }
    let now = T0 + 21_600;
    for range in [Range::Day, Range::Week] {
        let view = h.query(&query(range), now);
        for (i, &(m, c)) in keys.iter().enumerate() {
            let s = find(&view, &crate::base::text::format_mac(mac(m)), Country::as_str(&cc(c)));
            assert_eq!(sum(&s.bytes.upload_bytes), cum[i][0]);
            assert_eq!(sum(&s.bytes.download_bytes), cum[i][1]);
            assert_eq!(sum(&s.bytes.blocked_bytes), cum[i][2]);
        }
        let all: u64 = cum.iter().flatten().sum();
        assert_eq!(grand_total(&view), all);
    }
    check_invariants(&h);
}

#[test]
fn counter_reset_counts_new_value() {
    let mut h = History::default();
    h.record(T0, [sample(1, "CN", 1000, 100, 0)]);
    h.record(T0 + 10, [sample(1, "CN", 1500, 150, 0)]); // +500 +50
    h.record(T0 + 20, [sample(1, "CN", 200, 20, 0)]); // reset: +200 +20
    h.record(T0 + 30, [sample(1, "CN", 300, 30, 0)]); // +100 +10
    // Only upload went down: the whole sample is traffic since the reset.
    h.record(T0 + 40, [sample(1, "CN", 5, 60, 0)]); // +5 +60
    let view = h.query(&query(Range::Day), T0 + 40);
    assert_eq!(sum(&view.total.upload_bytes), 1000 + 500 + 200 + 100 + 5);
    assert_eq!(sum(&view.total.download_bytes), 100 + 50 + 20 + 10 + 60);

    // Known reset where counters already grew past the old values.
    h.mark_counters_reset();
    h.record(T0 + 50, [sample(1, "CN", 10, 70, 0)]);
    let view = h.query(&query(Range::Day), T0 + 50);
    assert_eq!(sum(&view.total.upload_bytes), 1805 + 10);
    assert_eq!(sum(&view.total.download_bytes), 240 + 70);
    check_invariants(&h);
}

#[test]
fn baseline_counts_nothing_then_deltas() {
    let mut h = History::default();
    h.record_baseline(T0, [sample(1, "CN", 1_000_000, 5_000_000, 10)]);
    assert_eq!(h.stats().points, 0);
    h.record(T0 + 10, [sample(1, "CN", 1_000_100, 5_000_200, 10)]);
    let view = h.query(&query(Range::Day), T0 + 10);
    assert_eq!(grand_total(&view), 300);
}

/// Drives a history over `steps` records of 5 pairs from `start`.
fn drive(h: &mut History, rng: &mut Rng, cum: &mut [[u64; 3]; 5], start: u64, steps: u64) {
    for step in 0..steps {
        for c in cum.iter_mut() {
            c[0] += rng.next(1000);
            c[1] += rng.next(9000);
            c[2] += rng.next(2);
        }
        let samples = cum
            .iter()
            .enumerate()
            .map(|(i, v)| sample(i as u8 % 2, ["CN", "US", "FR", "DE", "JP"][i], v[0], v[1], v[2]));
        h.record(start + step * 37, samples);
    }
}

#[test]
fn restart_continues_exactly() {
    let mut cum_a = [[0u64; 3]; 5];
    let mut cum_b = [[0u64; 3]; 5];
    let (mut rng_a, mut rng_b) = (Rng(3), Rng(3));
    let mut a = History::new(3, 100_000); // small max_pairs: some pairs folded
    let mut b = a.clone();
    drive(&mut a, &mut rng_a, &mut cum_a, T0, 500);
    drive(&mut b, &mut rng_b, &mut cum_b, T0, 500);
    assert!(b.stats().folded_pairs > 0);

    // Restart b: save, load, continue.
    let saved = b.to_bytes();
    let mut b = History::from_bytes(&saved, T0 + 499 * 37).unwrap();
    check_invariants(&b);
    assert_eq!(b.to_bytes(), saved);
    drive(&mut a, &mut rng_a, &mut cum_a, T0 + 500 * 37, 500);
    drive(&mut b, &mut rng_b, &mut cum_b, T0 + 500 * 37, 500);

    assert_eq!(a.to_bytes(), b.to_bytes());
    let now = T0 + 1000 * 37;
    let view = b.query(&query(Range::Day), now);
    assert_eq!(view, a.query(&query(Range::Day), now));
    let all: u64 = cum_b.iter().flatten().sum();
    assert_eq!(grand_total(&view), all);
    check_invariants(&b);
}

#[test]
fn day_window_rolls_week_keeps() {
    let mut h = History::default();
    h.record(T0, [sample(1, "CN", 1000, 0, 0)]);
    let day_total = |h: &History, now| grand_total(&h.query(&query(Range::Day), now));
    let week_total = |h: &History, now| grand_total(&h.query(&query(Range::Week), now));

    assert_eq!(day_total(&h, T0 + DAY - 1), 1000);
    assert_eq!(day_total(&h, T0 + DAY), 0);
    assert_eq!(week_total(&h, T0 + DAY), 1000);

    // The same after records prune the stored points.
    h.record(T0 + DAY - 1, [sample(1, "CN", 1000, 0, 0)]);
    assert_eq!(h.stats().points, 2);
    h.record(T0 + DAY, [sample(1, "CN", 1000, 0, 0)]);
    assert_eq!(h.stats().points, 1);
    assert_eq!(day_total(&h, T0 + DAY), 0);
    assert_eq!(week_total(&h, T0 + DAY), 1000);

    h.record(T0 + 7 * DAY - 1, [sample(1, "CN", 1000, 0, 0)]);
    assert_eq!(week_total(&h, T0 + 7 * DAY - 1), 1000);
    h.record(T0 + 7 * DAY, [sample(1, "CN", 1000, 0, 0)]);
    assert_eq!(week_total(&h, T0 + 7 * DAY), 0);
    assert_eq!(h.stats().points, 0);
    // Still reported: the pair keeps its baseline, nothing is recounted.
    assert_eq!(h.stats().pairs, 1);
    h.record(T0 + 7 * DAY + 10, [sample(1, "CN", 1010, 0, 0)]);
    assert_eq!(day_total(&h, T0 + 7 * DAY + 10), 10);
    check_invariants(&h);
}

#[test]
fn clock_jump_forward_drops_everything_old() {
    let mut h = History::default();
    h.record(T0, [sample(1, "CN", 1000, 0, 0)]);
    h.record(T0 + 365 * DAY, [sample(1, "CN", 1500, 0, 0)]);
    assert_eq!(h.stats().points, 2);
    let view = h.query(&query(Range::Week), T0 + 365 * DAY);
    assert_eq!(grand_total(&view), 500);
    check_invariants(&h);
}

#[test]
fn pair_gone_for_a_week_is_forgotten() {
    let mut h = History::default();
    h.record(T0, [sample(1, "CN", 1000, 0, 0)]);
    h.record(T0 + 7 * DAY, [sample(2, "US", 1, 0, 0)]);
    assert_eq!(h.stats().pairs, 2);
    h.record(T0 + 7 * DAY + 1, [sample(2, "US", 1, 0, 0)]);
    assert_eq!(h.stats().pairs, 1);
    check_invariants(&h);
}

#[test]
fn max_pairs_folds_into_other_keeping_totals() {
    let mut h = History::new(2, 10_000);
    let round = |k: u64| {
        [
            sample(1, "CN", 100 * k, 10 * k, 0),
            sample(1, "US", 200 * k, 20 * k, k),
            sample(1, "DE", 300 * k, 30 * k, 0), // folded into (1, other)
            sample(2, "FR", 400 * k, 40 * k, 0), // folded into (2, other)
            sample(1, "JP", 500 * k, 50 * k, 0), // no room to track
        ]
    };
    for k in 1..=10 {
        h.record(T0 + k * 10, round(k));
    }
    let stats = h.stats();
    assert_eq!(stats.pairs, 4);
    assert_eq!(stats.folded_pairs, 2);
    assert_eq!(stats.untracked_samples, 10);

    let view = h.query(&query(Range::Day), T0 + 100);
    assert_eq!(sum(&view.total.upload_bytes), (100 + 200 + 300 + 400) * 10);
    assert_eq!(sum(&view.total.download_bytes), (10 + 20 + 30 + 40) * 10);
    assert_eq!(sum(&view.total.blocked_bytes), 10);
    let other1 = find(&view, "02:00:00:00:00:01", "other");
    assert_eq!(sum(&other1.bytes.upload_bytes), 3000);
    let other2 = find(&view, "02:00:00:00:00:02", "other");
    assert_eq!(sum(&other2.bytes.upload_bytes), 4000);
    check_invariants(&h);

    // Folding survives a restart without double counting.
    let mut h = History::from_bytes(&h.to_bytes(), T0 + 100).unwrap();
    h.record(T0 + 110, round(11));
    let view = h.query(&query(Range::Day), T0 + 110);
    assert_eq!(sum(&view.total.upload_bytes), (100 + 200 + 300 + 400) * 11);
    check_invariants(&h);
}

#[test]
fn max_points_drops_oldest_and_counts() {
    let mut h = History::new(100, 10);
    // 30 records 5 minutes apart: 30 five-minute points, 3 hourly points.
    for k in 1..=30u64 {
        h.record(T0 + (k - 1) * 300, [sample(1, "CN", k * 1000, 0, 0)]);
        check_invariants(&h);
    }
    let stats = h.stats();
    assert!(stats.points <= 10);
    assert_eq!(stats.points as u64 + stats.dropped_points, 30 + 3);
    // What is left is the newest buckets: the newest 5-minute ones are
    // contiguous at the end of the day view.
    let view = h.query(&query(Range::Day), T0 + 29 * 300);
    let ups = &view.total.upload_bytes;
    let kept = ups.iter().filter(|v| **v > 0).count();
    assert!(kept > 0);
    assert!(ups[DAY_BUCKETS - kept..].iter().all(|v| *v == 1000));
    // The 7 d view lost its oldest hours first.
    let week = h.query(&query(Range::Week), T0 + 29 * 300);
    assert_eq!(week.total.upload_bytes[WEEK_BUCKETS - 3], 0);
}

#[test]
fn lowering_max_points_drops_now() {
    let mut h = History::default();
    for k in 1..=50u64 {
        h.record(T0 + k * 300, [sample(1, "CN", k, 0, 0)]);
    }
    h.set_limits(DEFAULT_MAX_PAIRS, 20);
    assert!(h.stats().points <= 20);
    assert!(h.stats().dropped_points > 0);
    check_invariants(&h);
}

#[test]
fn clock_backwards_goes_into_newest_bucket() {
    let mut h = History::default();
    h.record(T0 + 1000, [sample(1, "CN", 100, 0, 0)]); // bucket T0 + 900
    h.record(T0 + 100, [sample(1, "CN", 150, 0, 0)]); // clock went back
    let view = h.query(&query(Range::Day), T0 + 100);
    assert_eq!(view.end, T0 + 1200, "window ends at the newest bucket");
    assert_eq!(view.total.upload_bytes[DAY_BUCKETS - 1], 150);
    assert_eq!(sum(&view.total.upload_bytes), 150);
    assert_eq!(h.stats().points, 2);

    // Back to normal once the clock passes the newest time.
    h.record(T0 + 1300, [sample(1, "CN", 170, 0, 0)]);
    let view = h.query(&query(Range::Day), T0 + 1300);
    assert_eq!(view.total.upload_bytes[DAY_BUCKETS - 2], 150);
    assert_eq!(view.total.upload_bytes[DAY_BUCKETS - 1], 20);
    // A file saved with a future clock loads fine at an earlier `now`.
    let h = History::from_bytes(&h.to_bytes(), T0).unwrap();
    assert_eq!(grand_total(&h.query(&query(Range::Day), T0)), 170);
    check_invariants(&h);
}

#[test]
fn clock_back_by_more_than_a_week_restarts_time() {
    let mut h = History::default();
    h.record(T0 + 30 * DAY, [sample(1, "CN", 1000, 0, 0)]);
    h.record(T0 + 30 * DAY + 10, [sample(1, "CN", 1100, 0, 0)]);
    assert_eq!(h.stats().points, 2);
    // NTP corrects a clock that was a month ahead.
    h.record(T0, [sample(1, "CN", 1150, 0, 0)]);
    assert_eq!(h.stats().dropped_points, 2);
    let view = h.query(&query(Range::Day), T0);
    assert_eq!(view.end, T0 + 300);
    assert_eq!(grand_total(&view), 50);
    h.record(T0 + 10, [sample(1, "CN", 1160, 0, 0)]);
    assert_eq!(grand_total(&h.query(&query(Range::Day), T0 + 10)), 60);
    check_invariants(&h);
}

#[test]
fn extreme_times_and_counters_do_not_panic() {
    let mut h = History::new(4, 8);
    for now in [0, 1, u64::MAX - 3600, u64::MAX - 1, u64::MAX] {
        h.record(now, [sample(1, "CN", u64::MAX, u64::MAX, u64::MAX)]);
        h.record(now, [sample(2, "CN", 1, 0, 0), sample(1, "CN", 0, 0, 0)]);
        h.record(now, (0..20).map(|i| sample(i, "US", u64::MAX - u64::from(i), 1, 1)));
        for range in [Range::Day, Range::Week] {
            let view = h.query(&query(range), now);
            assert_eq!(view.total.upload_bytes.len(), range.buckets());
        }
        check_invariants(&h);
        let again = History::from_bytes(&h.to_bytes(), now).unwrap();
        assert_eq!(again.to_bytes(), h.to_bytes());
        check_invariants(&h);
    }
    h.set_limits(0, 0); // clamped to 1 and 1
    assert!(h.stats().points <= 1);
}

fn populated() -> History {
    let mut h = History::new(3, 1000);
    let mut rng = Rng(11);
    let mut cum = [[0u64; 3]; 5];
    drive(&mut h, &mut rng, &mut cum, T0, 100);
    h
}

#[test]
fn corrupt_truncated_oversized_input_is_error() {
    let good = populated().to_bytes();
    assert!(History::from_bytes(&good, T0).is_ok());

    for len in 0..good.len() {
        assert!(History::from_bytes(&good[..len], T0).is_err(), "prefix {len}");
    }
    assert_eq!(History::from_bytes(b"", T0).unwrap_err(), HistoryError::BadMagic);
    assert_eq!(History::from_bytes(b"{\"json\": 1}", T0).unwrap_err(), HistoryError::BadMagic);

    let mut v2 = good.clone();
    v2[4] = 2;
    assert_eq!(
        History::from_bytes(&v2, T0).unwrap_err(),
        HistoryError::UnsupportedVersion { found: 2, supported: 1 }
    );
    assert!(History::from_bytes(&v2, T0).unwrap_err().to_string().contains("version 2"));

    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        History::from_bytes(&trailing, T0).unwrap_err(),
        HistoryError::Corrupt("trailing bytes")
    );

    // Tiny limits in the header and a long body.
    let mut big = MAGIC.to_vec();
    big.extend([FORMAT_VERSION, 1, 1]);
    big.resize(10_000, 0);
    assert!(matches!(History::from_bytes(&big, T0), Err(HistoryError::TooLarge { .. })));

    // Huge claimed counts with no body behind them.
    let mut claim = MAGIC.to_vec();
    claim.push(FORMAT_VERSION);
    put_varint(&mut claim, MAX_PAIRS_CEILING as u64);
    put_varint(&mut claim, MAX_POINTS_CEILING as u64);
    put_varint(&mut claim, T0);
    put_varint(&mut claim, 2 * MAX_PAIRS_CEILING as u64);
    assert_eq!(History::from_bytes(&claim, T0).unwrap_err(), HistoryError::Truncated);
    let mut claim_limits = MAGIC.to_vec();
    claim_limits.push(FORMAT_VERSION);
    put_varint(&mut claim_limits, u64::MAX);
    assert!(matches!(History::from_bytes(&claim_limits, T0), Err(HistoryError::Corrupt(_))));
    let mut overflow = claim.clone();
    overflow.truncate(5);
    overflow.extend([0xff; 11]);
    assert!(History::from_bytes(&overflow, T0).is_err());

    // Random multi-byte corruptions and splices: never a panic.
    let mut rng = Rng(99);
    for _ in 0..3000 {
        let mut bad = good.clone();
        for _ in 0..1 + rng.next(4) {
            let i = rng.next(bad.len() as u64) as usize;
            bad[i] = rng.next(256) as u8;
        }
        if rng.next(4) == 0 {
            let cut = rng.next(bad.len() as u64) as usize;
            bad.truncate(cut);
            bad.extend_from_slice(&good[good.len() / 2..]);
        }
        if let Ok(h) = History::from_bytes(&bad, T0) {
            check_invariants(&h);
        }
    }

    // Every single-byte corruption is rejected or loads a valid history.
    for i in 0..good.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            if let Ok(h) = History::from_bytes(&bad, T0) {
                check_invariants(&h);
                let _ = h.query(&query(Range::Week), T0);
            }
        }
    }
}

#[test]
fn query_filters_by_mac_and_country() {
    let mut h = History::default();
    h.record(T0, [sample(1, "CN", 10, 0, 0), sample(1, "US", 20, 0, 0), sample(2, "CN", 40, 0, 0)]);
    let run = |mac: Option<&str>, country: Option<&str>| {
        let q = Query::from_params(mac, country, Some("24h"), None).unwrap();
        let view = h.query(&q, T0);
        (view.series.len(), sum(&view.total.upload_bytes))
    };
    assert_eq!(run(None, None), (3, 70));
    assert_eq!(run(Some(""), Some("")), (3, 70));
    assert_eq!(run(Some("02:00:00:00:00:01"), None), (2, 30));
    assert_eq!(run(None, Some("cn")), (2, 50));
    assert_eq!(run(Some("02-00-00-00-00-02"), Some("CN")), (1, 40));
    assert_eq!(run(Some("02:00:00:00:00:02"), Some("US")), (0, 0));
    assert_eq!(run(None, Some("unknown")), (0, 0));
}

#[test]
fn dense_arrays_have_exact_length() {
    let mut h = History::default();
    for range in [Range::Day, Range::Week] {
        for now in [0, 5, T0] {
            let view = h.query(&query(range), now);
            assert_eq!(view.buckets, range.buckets());
            assert_eq!(view.total.upload_bytes.len(), range.buckets());
            assert_eq!(view.end - view.start, range.step_secs() * range.buckets() as u64);
        }
    }
    for m in 0..20 {
        h.record(T0 + u64::from(m), [sample(m, "CN", 1 + u64::from(m), 2, 3)]);
    }
    for range in [Range::Day, Range::Week] {
        let q = Query { range, limit: 5, ..Query::default() };
        let view = h.query(&q, T0 + 3600);
        assert_eq!(view.series.len(), 6);
        for s in &view.series {
            for column in [&s.bytes.upload_bytes, &s.bytes.download_bytes, &s.bytes.blocked_bytes] {
                assert_eq!(column.len(), range.buckets());
            }
        }
    }
}

#[test]
fn limit_sums_the_rest_and_total_stays_exact() {
    let mut h = History::default();
    let samples: Vec<Sample> =
        (1..=10u8).map(|m| sample(m, "CN", u64::from(m) * 100, u64::from(m), 0)).collect();
    h.record(T0, samples);
    let q = Query { limit: 3, ..Query::default() };
    let view = h.query(&q, T0);
    let macs: Vec<&str> = view.series.iter().map(|s| s.mac.as_str()).collect();
    assert_eq!(macs, ["02:00:00:00:00:0a", "02:00:00:00:00:09", "02:00:00:00:00:08", "other"]);
    assert_eq!(view.other_series, 7);
    let rest = &view.series[3];
    assert_eq!(rest.country, "other");
    assert_eq!(sum(&rest.bytes.upload_bytes), (1..=7).sum::<u64>() * 100);
    assert_eq!(sum(&view.total.upload_bytes), 5500);
    assert_eq!(sum(&view.total.download_bytes), 55);

    let none = h.query(&Query { limit: 0, ..q }, T0);
    assert_eq!(none.series.len(), 1);
    assert_eq!(none.total, view.total);
    assert_eq!(none.series[0].bytes, view.total);
}

#[test]
fn params_and_json_shape() {
    assert_eq!("24h".parse::<Range>(), Ok(Range::Day));
    assert_eq!("7d".parse::<Range>(), Ok(Range::Week));
    let err = "1y".parse::<Range>().unwrap_err();
    assert_eq!(err.to_string(), "invalid range \"1y\": expected \"24h\" or \"7d\"");
    assert!(Query::from_params(Some("zz"), None, None, None).is_err());
    assert!(Query::from_params(Some("02:00:00:00:00:01:03"), None, None, None).is_err());
    assert!(Query::from_params(None, Some("CHN"), None, None).is_err());
    assert!(Query::from_params(None, None, None, Some("201")).is_err());
    assert!(Query::from_params(None, None, None, Some("-1")).is_err());
    let q = Query::from_params(None, Some("Other"), Some("7d"), Some("10")).unwrap();
    assert_eq!(q.country, Some(Country::OTHER));
    assert_eq!((q.range, q.limit), (Range::Week, 10));
    assert_eq!(Query::from_params(None, None, None, None).unwrap(), Query::default());
    assert_eq!(Country::from_code(*b"cn").as_str(), "CN");
    assert_eq!(Country::from_code([0, b'x']), Country::UNKNOWN);

    let mut h = History::default();
    h.record(T0, [sample(0xaa, "CN", 1, 2, 3)]);
    let json = serde_json::to_value(h.query(&Query::default(), T0)).unwrap();
    assert_eq!(json["range"], "24h");
    assert_eq!(json["step_secs"], 300);
    assert_eq!(json["buckets"], 288);
    assert_eq!(json["start"], T0 - 287 * 300);
    assert_eq!(json["end"], T0 + 300);
    assert_eq!(json["series"][0]["mac"], "02:00:00:00:00:aa");
    assert_eq!(json["series"][0]["country"], "CN");
    assert_eq!(json["series"][0]["blocked_bytes"][287], 3);
    assert_eq!(json["total"]["download_bytes"].as_array().unwrap().len(), 288);
    let stats = serde_json::to_value(h.stats()).unwrap();
    assert_eq!(stats["points"], 2);
}

/// Builds 100 devices x 50 countries, all active in every 5-minute bucket,
/// and prints the memory and disk figures quoted in the module docs.
/// `full_week`: also fill the 6 days before (hourly records).
fn build_100x50(max_points: usize, full_week: bool) -> History {
    let countries: Vec<Country> =
        (0..50u8).map(|i| Country::from_code([b'A' + i / 26, b'A' + i % 26])).collect();
    let mut h = History::new(DEFAULT_MAX_PAIRS, max_points);
    let mut rng = Rng(5);
    let mut cum = vec![[0u64; 3]; 5000];
    let end = T0 + 7 * DAY;
    let mut times: Vec<u64> = Vec::new();
    if full_week {
        times.extend((0..144).map(|i| end - 7 * DAY + i * 3600 + 60));
    }
    times.extend((0..288).map(|i| end - DAY + i * 300 + 60));
    for t in times {
        let samples = (0..5000usize).map(|i| {
            let c = &mut cum[i];
            c[0] += 1 + rng.next(5_000_000); // up to 5 MB up per bucket
            c[1] += 1 + rng.next(50_000_000); // up to 50 MB down
            c[2] += 1 + rng.next(100_000); // up to 100 kB blocked
            Sample {
                mac: [2, 0, 0, 0, 0, (i / 50) as u8],
                country: countries[i % 50],
                upload_bytes: c[0],
                download_bytes: c[1],
                blocked_bytes: c[2],
            }
        });
        h.record(t, samples);
    }
    h
}

#[test]
fn measure_100x50() {
    let mb = |b: usize| b as f64 / 1e6;
    for (label, max_points) in [("uncapped", 3_000_000), ("default cap", DEFAULT_MAX_POINTS)] {
        let day = build_100x50(max_points, false);
        let disk = day.to_bytes().len();
        let s = day.stats();
        println!(
            "100x50 active 24h, {label}: points {}, disk {disk} bytes ({:.1} MB, {:.1} B/point), memory {:.1} MB",
            s.points,
            mb(disk),
            disk as f64 / s.points as f64,
            mb(s.approx_bytes),
        );
        let week = build_100x50(max_points, true);
        let s = week.stats();
        println!(
            "100x50 active 7d, {label}: points {}, memory {:.1} MB ({:.1} B/point), dropped {}",
            s.points,
            mb(s.approx_bytes),
            s.approx_bytes as f64 / s.points as f64,
            s.dropped_points
        );
        check_invariants(&week);
        if max_points == DEFAULT_MAX_POINTS {
            assert!(s.points <= DEFAULT_MAX_POINTS);
            assert!(s.approx_bytes < 10_000_000);
        } else {
            assert_eq!(s.points, 5000 * (DAY_BUCKETS + WEEK_BUCKETS));
        }
    }
}

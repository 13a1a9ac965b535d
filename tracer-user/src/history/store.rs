//! The agent's history: fed from the kernel counters every [`RECORD_EVERY`], saved under the
//! state directory every [`SAVE_EVERY`] and at shutdown (`history.bin`, atomically; a file that
//! cannot be loaded is kept aside with the reason), served by `GET /api/v1/history`.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use tracer_common::CountryId;

use super::{Country, History, HistoryView, Query, Sample, Stats};
use crate::base::sync::Locked;
use crate::kernel::CounterSnapshot;

/// How often the counters are recorded.
pub const RECORD_EVERY: Duration = Duration::from_secs(10);
/// How often the history is written to disk (and at shutdown).
pub const SAVE_EVERY: Duration = Duration::from_secs(300);
/// The file under the state directory.
pub(super) const FILE: &str = "history.bin";

/// The history and where it is saved.
#[derive(Debug)]
pub struct HistoryStore {
    history: Mutex<History>,
    dir: PathBuf,
}

/// Per (device, country) cumulative bytes of a snapshot: upload and download let through,
/// blocked in both directions.
pub(super) fn samples(snapshot: &CounterSnapshot) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    for (pair, traffic) in &snapshot.traffic {
        let sample = match out.last_mut() {
            Some(s) if s.mac == pair.mac && s.country == country(pair.country) => s,
            _ => {
                out.push(Sample {
                    mac: pair.mac,
                    country: country(pair.country),
                    upload_bytes: 0,
                    download_bytes: 0,
                    blocked_bytes: 0,
                });
                out.last_mut().expect("just pushed")
            }
        };
        sample.upload_bytes += traffic.upload.bytes;
        sample.download_bytes += traffic.download.bytes;
        sample.blocked_bytes += traffic.blocked.bytes;
    }
    out
}

fn country(id: u16) -> Country {
    match crate::base::text::country_label(CountryId(id)).as_bytes() {
        &[a, b] => Country::from_code([a, b]),
        _ => Country::UNKNOWN,
    }
}

impl HistoryStore {
    /// Loads `dir/history.bin` (caps from the arguments), or starts an empty history whose
    /// baseline is `now_counters` (so the traffic counted before is not put in one bucket).
    /// `counters_restarted`: the kernel counters started from zero since the file was saved (a
    /// reboot or `egress-tracer reset`), so the cumulative values it remembers are void and the
    /// next record counts every pair in full, even one that already grew past its saved value.
    /// Returns the problem with the file, if there was one (the file is then kept aside).
    pub fn open(
        dir: &Path,
        max_pairs: usize,
        max_points: usize,
        now: u64,
        now_counters: &CounterSnapshot,
        counters_restarted: bool,
    ) -> (Self, Option<String>) {
        const FRESH: &str = "an empty history";
        let file = dir.join(FILE);
        let (loaded, problem) = match crate::base::state_file::read(&file, now, FRESH) {
            Ok(None) => (None, None),
            Err(problem) => (None, Some(problem)),
            Ok(Some(bytes)) => match History::from_bytes(&bytes, now) {
                Ok(h) => (Some(h), None),
                Err(e) => (
                    None,
                    Some(crate::base::state_file::keep_aside(
                        &file,
                        now,
                        &format!("is not a history file: {e}"),
                        FRESH,
                    )),
                ),
            },
        };
        let history = match loaded {
            Some(mut h) => {
                h.set_limits(max_pairs, max_points);
                if counters_restarted {
                    h.mark_counters_reset();
                }
                h
            }
            None => {
                let mut h = History::new(max_pairs, max_points);
                h.record_baseline(now, samples(now_counters));
                h
            }
        };
        (Self { history: Mutex::new(history), dir: dir.to_owned() }, problem)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.locked()
    }

    /// Records the counters as of `now`.
    pub fn record(&self, now: u64, snapshot: &CounterSnapshot) {
        self.lock().record(now, samples(snapshot));
    }

    /// Writes the history to disk.
    pub fn save(&self) -> anyhow::Result<()> {
        let bytes = self.lock().to_bytes();
        crate::base::state_file::write_atomic(&self.dir, FILE, &bytes)
    }

    /// Answers a query.
    pub fn query(&self, query: &Query, now: u64) -> HistoryView {
        self.lock().query(query, now)
    }

    /// Sizes and what the caps refused.
    pub fn stats(&self) -> Stats {
        self.lock().stats()
    }
}

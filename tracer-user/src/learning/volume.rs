//! Upload volume: per `--upload-alert` rule and device, the bytes uploaded to the rule's
//! regions within its sliding window, from the exact kernel counters; crossing the size raises
//! a `volume` alert, once per window, then a summary if the device went on uploading.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tracer_common::{CountryId, Direction, maps::verdict};

use crate::base::sync::Locked;
use crate::{
    alerts::{Alert, AlertBook, AlertKind, Enricher},
    kernel::CounterSnapshot,
};

/// A compiled volume rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRule {
    /// How the rule reads: `CN:10MB/1h`.
    pub label: String,
    /// The countries it sums; `None`: every destination (`any`).
    pub countries: Option<std::collections::BTreeSet<CountryId>>,
    /// The size that raises an alert.
    pub bytes: u64,
    /// The sliding window.
    pub window: Duration,
    /// Only devices of this group.
    pub group: Option<String>,
    /// Only this device.
    pub device: Option<[u8; 6]>,
}

/// Samples kept per (rule, device): the window's resolution is a 64th of its length.
const SAMPLES: u32 = 64;

/// (rule, device) pairs watched at most: devices beyond it (a MAC flood) are not watched.
pub const MAX_TRACKS: usize = 4096;

#[derive(Debug, Default)]
struct Track {
    /// (when, cumulative upload bytes to the rule's regions).
    samples: VecDeque<(Instant, u64)>,
    /// An alert was raised: until then, at this total.
    alerted: Option<(Instant, u64)>,
}

/// Watches the counters against the rules.
pub struct VolumeWatch {
    rules: Vec<VolumeRule>,
    /// Whether the first look happened: what was counted before it is not in any window.
    primed: std::sync::atomic::AtomicBool,
    tracks: Mutex<HashMap<(usize, [u8; 6]), Track>>,
    book: Arc<AlertBook>,
    enricher: Arc<dyn Enricher>,
}

impl std::fmt::Debug for VolumeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeWatch").field("rules", &self.rules).finish_non_exhaustive()
    }
}

impl VolumeWatch {
    /// Watches `rules`.
    pub fn new(rules: Vec<VolumeRule>, book: Arc<AlertBook>, enricher: Arc<dyn Enricher>) -> Self {
        Self {
            rules,
            primed: std::sync::atomic::AtomicBool::new(false),
            tracks: Mutex::default(),
            book,
            enricher,
        }
    }

    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One look at the counters.
    pub fn check(&self, snapshot: &CounterSnapshot) {
        let now = Instant::now();
        // Per (rule, device): cumulative upload to the rule's regions, let through.
        let mut totals: HashMap<(usize, [u8; 6]), (u64, u16)> = HashMap::new();
        for (key, value) in &snapshot.counters {
            if key.direction != Direction::Upload as u8 || key.verdict != verdict::PASSED {
                continue;
            }
            for (i, rule) in self.rules.iter().enumerate() {
                if !rule.covers(CountryId(key.country)) {
                    continue;
                }
                if rule.device.is_some_and(|d| d != key.mac) {
                    continue;
                }
                if let Some(group) = &rule.group
                    && self.enricher.device(key.mac).group.as_deref() != Some(group.as_str())
                {
                    continue;
                }
                let slot = totals.entry((i, key.mac)).or_insert((0, key.country));
                slot.0 += value.bytes;
                if value.bytes > 0 {
                    slot.1 = key.country;
                }
            }
        }
        let first = !self.primed.swap(true, std::sync::atomic::Ordering::Relaxed);
        let mut tracks = self.tracks.locked();
        tracks.retain(|k, _| totals.contains_key(k));
        for ((i, mac), (total, country)) in totals {
            if tracks.len() >= MAX_TRACKS && !tracks.contains_key(&(i, mac)) {
                continue;
            }
            let rule = &self.rules[i];
            let track = tracks.entry((i, mac)).or_insert_with(|| {
                // A (rule, device) that appears after the first look: all of it is new.
                let mut t = Track::default();
                if !first {
                    t.samples.push_back((now, 0));
                }
                t
            });
            let step = rule.window / SAMPLES;
            if track.samples.back().is_none_or(|(t, _)| now.duration_since(*t) >= step) {
                track.samples.push_back((now, total));
            }
            // Keep one sample at or before the window's start.
            while track.samples.len() > 1
                && track.samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= rule.window)
            {
                track.samples.pop_front();
            }
            let base = track.samples.front().map_or(total, |(_, b)| *b);
            let in_window = total.saturating_sub(base);
            match track.alerted {
                Some((until, at)) if now >= until => {
                    track.alerted = None;
                    let more = total.saturating_sub(at);
                    if more > 0 && in_window >= rule.bytes {
                        self.raise(AlertKind::Summary, rule, mac, CountryId(country), in_window);
                    }
                }
                Some(_) => {}
                None if in_window >= rule.bytes => {
                    track.alerted = Some((now + rule.window, total));
                    self.raise(AlertKind::Volume, rule, mac, CountryId(country), in_window);
                }
                None => {}
            }
        }
    }

    fn raise(
        &self,
        kind: AlertKind,
        rule: &VolumeRule,
        mac: [u8; 6],
        country: CountryId,
        bytes: u64,
    ) {
        let device = self.enricher.device_now(mac);
        let decision = self.enricher.decide(mac, country);
        let so_far = self.enricher.so_far(mac, country);
        let window = humantime::format_duration(rule.window).to_string();
        let rule_text = format!(
            "--upload-alert {}: {bytes} bytes uploaded within {window} (limit {})",
            rule.label, rule.bytes
        );
        self.book.raise(|id| Alert {
            rule: rule_text,
            action: decision.action.as_str(),
            window_secs: Some(rule.window.as_secs()),
            upload_bytes: Some(bytes),
            ..Alert::new(id, kind, SystemTime::now(), device, Some(country), so_far)
        });
    }
}

/// How often the counters are looked at for volume rules.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

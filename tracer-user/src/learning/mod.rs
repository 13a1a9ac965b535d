//! Learning mode: what each device normally reaches, learned in its own window, then alerts on
//! what is new — a country outside a device's baseline (`new_country`), a MAC first seen after
//! the network's learning period (`new_device`) — and on upload volume ([`volume`]).
//!
//! The kernel reports every new (device, country) counter entry at once (a `NEW_PAIR` event on
//! the alert ring buffer), so a new country alerts within a second of its first packet; a
//! periodic pass over the counters catches what the event budget refused or what was counted
//! while no agent ran. The baseline is kept under `--state-dir` ([`state`]).

pub mod state;
pub mod volume;

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use tracer_common::{CountryId, Direction, policy::AlertEvent};

use crate::base::atomic::AtomicU64;
use crate::base::sync::Locked;
use crate::{
    alerts::{Alert, AlertBook, AlertKind, Enricher, PairSink, RemoteEnd},
    base::clock::rfc3339,
    base::text::{country_label, format_mac},
    geo::regions::continent_of,
    kernel::CounterSnapshot,
};

/// Devices a baseline holds at most; MACs beyond it (a MAC flood) are not learned (counted).
pub const MAX_DEVICES: usize = 4096;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn time_of(unix: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(unix))
}

/// Counts for the metrics.
#[derive(Debug, Default)]
pub struct LearningStats {
    /// Devices not learned because the baseline is full.
    pub refused_devices: AtomicU64,
    /// Baseline writes that failed.
    pub save_errors: AtomicU64,
}

struct Inner {
    baseline: state::Baseline,
    dirty: bool,
    /// (device, country) pairs already handled this run.
    seen: HashSet<([u8; 6], u16)>,
}

/// The learner.
pub struct Learner {
    inner: Mutex<Inner>,
    dir: PathBuf,
    period: Duration,
    book: Arc<AlertBook>,
    enricher: Arc<dyn Enricher>,
    /// Counts for the metrics.
    pub stats: LearningStats,
}

impl std::fmt::Debug for Learner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learner")
            .field("dir", &self.dir)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// One device in `GET /api/v1/baseline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Its name, if known (escaped).
    pub name: Option<String>,
    /// When its window began and ends (RFC 3339).
    pub learning_since: String,
    /// When its window ends.
    pub learning_until: String,
    /// Whether it is still learning.
    pub learning: bool,
    /// The baseline: countries reached during the window.
    pub countries: Vec<LearnedView>,
    /// Continents of the baseline.
    pub continents: Vec<String>,
    /// Countries first reached after the window and not approved, "new since".
    pub new: Vec<NewView>,
    /// Countries approved after the window.
    pub approved: Vec<String>,
}

/// A country of a baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedView {
    /// ISO code or `unknown`.
    pub country: String,
    /// The device's first packet to it.
    pub first_seen: String,
    /// Bytes during the learning window.
    pub bytes: u64,
}

/// A new country.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// ISO code or `unknown`.
    pub country: String,
    /// When it first appeared.
    pub since: String,
}

/// `GET /api/v1/baseline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineView {
    /// The learning period, in seconds.
    pub period_secs: u64,
    /// When the network's learning period ends: MACs first seen later are new devices.
    pub network_learning_until: String,
    /// Every device of the baseline.
    pub devices: Vec<DeviceView>,
}

impl Learner {
    /// Reads the baseline under `dir` (a corrupt file is kept aside and reported).
    pub fn start(
        dir: PathBuf,
        period: Duration,
        book: Arc<AlertBook>,
        enricher: Arc<dyn Enricher>,
    ) -> Self {
        let (baseline, problem) = state::load(&dir, unix(SystemTime::now()));
        match problem {
            Some(problem) => tracing::error!("learned baseline: {problem}"),
            None => tracing::info!(
                devices = baseline.devices.len(),
                file = %state::path(&dir).display(),
                "learned baseline loaded"
            ),
        }
        let dirty = !state::path(&dir).exists();
        Self {
            inner: Mutex::new(Inner { baseline, dirty, seen: HashSet::new() }),
            dir,
            period,
            book,
            enricher,
            stats: LearningStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.locked()
    }

    /// Writes the baseline if it changed (called every few seconds and on stop).
    pub fn save(&self) {
        let mut inner = self.lock();
        if !inner.dirty {
            return;
        }
        match state::save(&self.dir, &inner.baseline) {
            Ok(()) => inner.dirty = false,
            Err(err) => {
                self.stats.save_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("saving the learned baseline failed: {err:#}");
            }
        }
    }

    /// A device's first packet to a country (from the kernel's event, or found by
    /// [`Self::reconcile`]).
    fn pair(
        &self,
        mac: [u8; 6],
        country: CountryId,
        remote: Option<RemoteEnd>,
        direction: Option<Direction>,
        at: SystemTime,
    ) {
        let now = unix(at);
        let code = country_label(country).to_owned();
        let mut inner = self.lock();
        if !inner.seen.insert((mac, country.0)) {
            return;
        }
        let network_until = inner.baseline.network_since + self.period.as_secs();
        let key = format_mac(mac);
        let known = inner.baseline.devices.contains_key(&key);
        if !known && inner.baseline.devices.len() >= MAX_DEVICES {
            self.stats.refused_devices.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let device = inner.baseline.devices.entry(key).or_insert_with(|| state::DeviceBaseline {
            first_seen: now,
            ..state::DeviceBaseline::default()
        });
        let until = device.first_seen + self.period.as_secs();
        let mut raise: Option<AlertKind> = None;
        if now < until {
            if !device.learned.contains_key(&code) {
                device.learned.insert(code.clone(), state::Learned { first_seen: now, bytes: 0 });
            }
        } else if !device.learned.contains_key(&code)
            && !device.approved.contains(&code)
            && !device.new.contains_key(&code)
            && !self.enricher.decide(mac, country).explicit
        {
            device.new.insert(code.clone(), now);
            raise = Some(AlertKind::NewCountry);
        }
        let baseline_list: Vec<String> = device.learned.keys().cloned().collect();
        inner.dirty = true;
        let new_device = !known && now >= network_until;
        drop(inner);
        if new_device {
            self.alert(
                AlertKind::NewDevice,
                mac,
                country,
                remote.clone(),
                direction,
                at,
                String::new(),
            );
        }
        if let Some(kind) = raise {
            let rule = format!(
                "learned baseline: {code} is new for this device (baseline: {})",
                if baseline_list.is_empty() {
                    "nothing".to_owned()
                } else {
                    baseline_list.join(", ")
                }
            );
            self.alert(kind, mac, country, remote, direction, at, rule);
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the fields of one alert")]
    fn alert(
        &self,
        kind: AlertKind,
        mac: [u8; 6],
        country: CountryId,
        remote: Option<RemoteEnd>,
        direction: Option<Direction>,
        at: SystemTime,
        rule: String,
    ) {
        let device = self.enricher.device_now(mac);
        let decision = self.enricher.decide(mac, country);
        let so_far = self.enricher.so_far(mac, country);
        let rule = if kind == AlertKind::NewDevice {
            let what = match device.vendor.as_deref() {
                Some("locally administered") => {
                    "a new device with a randomised (locally administered) MAC".to_owned()
                }
                Some(v) => format!("a new device ({v})"),
                None => "a new device".to_owned(),
            };
            format!(
                "{what}, first seen after the network's learning period; first remote in {}",
                country_label(country)
            )
        } else {
            rule
        };
        self.book.raise(|id| Alert {
            remote,
            rule,
            action: decision.action.as_str(),
            blocked: decision.action == tracer_common::policy::Action::Block,
            direction: direction.map_or("upload", Direction::as_str),
            ..Alert::new(id, kind, at, device, Some(country), so_far)
        });
    }

    /// Finds the pairs of `snapshot` no event reported (a full budget, or counted while no
    /// agent ran), and adds each device's bytes during its window.
    pub fn reconcile(&self, snapshot: &CounterSnapshot) {
        let now = SystemTime::now();
        let mut pairs: std::collections::BTreeMap<([u8; 6], u16), u64> =
            std::collections::BTreeMap::new();
        for (key, value) in &snapshot.counters {
            *pairs.entry((key.mac, key.country)).or_default() += value.bytes;
        }
        let unseen: Vec<([u8; 6], u16)> = {
            let inner = self.lock();
            pairs.keys().filter(|k| !inner.seen.contains(k)).copied().collect()
        };
        for (mac, country) in unseen {
            self.pair(mac, CountryId(country), None, None, now);
        }
        let mut inner = self.lock();
        let now = unix(now);
        let period = self.period.as_secs();
        let mut changed = false;
        for ((mac, country), bytes) in pairs {
            let Some(device) = inner.baseline.devices.get_mut(&format_mac(mac)) else { continue };
            if now >= device.first_seen + period {
                continue;
            }
            if let Some(learned) = device.learned.get_mut(country_label(CountryId(country)))
                && learned.bytes != bytes
            {
                learned.bytes = bytes;
                changed = true;
            }
        }
        inner.dirty |= changed;
    }

    /// Approves `countries` (ISO codes) for `mac`: they stop being new. Returns those that
    /// were new.
    pub fn approve(&self, mac: [u8; 6], countries: &[String]) -> Vec<String> {
        let mut inner = self.lock();
        let device = inner.baseline.devices.entry(format_mac(mac)).or_default();
        let mut approved = Vec::new();
        for c in countries {
            let code = c.to_ascii_uppercase();
            let code = if code == "UNKNOWN" { "unknown".to_owned() } else { code };
            if device.new.remove(&code).is_some() {
                approved.push(code.clone());
            }
            device.approved.insert(code);
        }
        inner.dirty = true;
        drop(inner);
        self.save();
        approved
    }

    /// When `country` became new for `mac`, if it is (not approved yet).
    pub fn new_since(&self, mac: [u8; 6], country: CountryId) -> Option<String> {
        let inner = self.lock();
        let since =
            inner.baseline.devices.get(&format_mac(mac))?.new.get(country_label(country))?;
        Some(time_of(*since))
    }

    /// Devices still learning, and countries in baselines (for the metrics).
    pub fn sizes(&self) -> (usize, usize, usize) {
        let now = unix(SystemTime::now());
        let inner = self.lock();
        let devices = &inner.baseline.devices;
        let learning =
            devices.values().filter(|d| now < d.first_seen + self.period.as_secs()).count();
        let countries = devices.values().map(|d| d.learned.len()).sum();
        (learning, countries, devices.len())
    }

    /// The baseline as `GET /api/v1/baseline` serves it.
    pub fn view(&self) -> BaselineView {
        let now = unix(SystemTime::now());
        let period = self.period.as_secs();
        let inner = self.lock();
        let devices = inner
            .baseline
            .devices
            .iter()
            .map(|(mac, d)| {
                let name =
                    crate::base::text::parse_mac(mac).and_then(|m| self.enricher.device(m).name);
                let mut continents: Vec<String> = d
                    .learned
                    .keys()
                    .filter_map(|c| CountryId::from_code(c.as_bytes().try_into().ok()?))
                    .filter_map(|id| continent_of(id).map(str::to_owned))
                    .collect();
                continents.sort();
                continents.dedup();
                DeviceView {
                    mac: mac.clone(),
                    name,
                    learning_since: time_of(d.first_seen),
                    learning_until: time_of(d.first_seen + period),
                    learning: now < d.first_seen + period,
                    countries: d
                        .learned
                        .iter()
                        .map(|(c, l)| LearnedView {
                            country: c.clone(),
                            first_seen: time_of(l.first_seen),
                            bytes: l.bytes,
                        })
                        .collect(),
                    continents,
                    new: d
                        .new
                        .iter()
                        .map(|(c, t)| NewView { country: c.clone(), since: time_of(*t) })
                        .collect(),
                    approved: d.approved.iter().cloned().collect(),
                }
            })
            .collect();
        BaselineView {
            period_secs: period,
            network_learning_until: time_of(inner.baseline.network_since + period),
            devices,
        }
    }
}

impl PairSink for Learner {
    fn new_pair(&self, event: &AlertEvent) {
        let remote = crate::alerts::remote_end(event, self.enricher.as_ref());
        let at = crate::base::clock::wall_time(event.time_ns);
        self.pair(
            event.mac,
            CountryId(event.country),
            Some(remote),
            Direction::from_raw(event.direction),
            at,
        );
    }
}

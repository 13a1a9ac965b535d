//! The agent's record of alerts: violation counts, suppression windows, the recent list.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant, SystemTime},
};

use tracer_common::policy::AlertEvent;

use super::{Alert, AlertKind, Alertmanager, Enricher, Webhook, event};
use crate::base::clock::rfc3339;
use crate::base::sync::Locked;

/// How alerts are kept and repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertSettings {
    /// Repeats for the same (device, country) within this window are summarised at its end.
    pub suppress: Duration,
    /// How many recent alerts are kept.
    pub keep: usize,
}

/// Violations seen for a (device, country): every kernel event, reported or suppressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The device.
    pub mac: [u8; 6],
    /// The country id.
    pub country: u16,
    /// How many.
    pub count: u64,
}

/// A suppression window: open since the last reported alert for a (device, country).
#[derive(Debug)]
struct Window {
    ends: Instant,
    first: Alert,
    repeats: u64,
    addresses: Vec<IpAddr>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    by_kind: [u64; AlertKind::ALL.len()],
    recent: VecDeque<Alert>,
    violations: BTreeMap<([u8; 6], u16), u64>,
    windows: HashMap<([u8; 6], u16), Window>,
    /// Events neither reported nor summarised: [`MAX_PAIRS`] windows were open.
    unreported: u64,
}

/// (device, country) pairs the book keeps violation counts and suppression windows for; the
/// counts of further pairs are kept per country under the metrics' `mac="other"`, and their
/// events are counted as unreported while every window is open (a device forging MACs or
/// scanning a country cannot grow the agent's memory).
pub(super) const MAX_PAIRS: usize = 4096;

/// Shared between the event reader, the periodic tick, the API and the metrics.
#[derive(Debug)]
pub struct AlertBook {
    settings: Mutex<AlertSettings>,
    state: Mutex<State>,
    webhook: Option<Webhook>,
    alertmanager: Option<Alertmanager>,
}

/// Addresses a summary lists at most.
const SUMMARY_ADDRESSES: usize = 8;

impl AlertBook {
    /// An empty book delivering to stdout and, if given, a webhook.
    pub fn new(
        settings: AlertSettings,
        webhook: Option<Webhook>,
        alertmanager: Option<Alertmanager>,
    ) -> Self {
        Self { settings: Mutex::new(settings), state: Mutex::default(), webhook, alertmanager }
    }

    /// The Alertmanager client's delivery counts, if one is configured.
    pub fn alertmanager(&self) -> Option<&Alertmanager> {
        self.alertmanager.as_ref()
    }

    /// Raises an alert the agent decided on (learning, volume): `build` gets its id.
    pub fn raise(&self, build: impl FnOnce(u64) -> Alert) {
        let settings = self.settings();
        let mut state = self.state();
        state.next_id += 1;
        let alert = build(state.next_id);
        self.record(&mut state, alert, settings);
    }

    /// The suppression window.
    pub fn suppress(&self) -> Duration {
        self.settings().suppress
    }

    /// Alerts raised so far, per kind (in [`AlertKind::ALL`] order).
    pub fn by_kind(&self) -> [u64; AlertKind::ALL.len()] {
        self.state().by_kind
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    fn settings(&self) -> AlertSettings {
        *self.settings.locked()
    }

    /// New settings (a reload); open windows keep their end.
    pub fn set_settings(&self, settings: AlertSettings) {
        *self.settings.locked() = settings;
    }

    /// The webhook's delivery counts, if one is configured.
    pub fn webhook(&self) -> Option<&Webhook> {
        self.webhook.as_ref()
    }

    /// Handles one kernel event: counts it, and reports it unless a window for its (device,
    /// country) is open, in which case it is summarised when the window ends.
    pub fn handle(&self, raw: &AlertEvent, enricher: &dyn Enricher) {
        let settings = self.settings();
        let mut key = (raw.mac, raw.country);
        let mut state = self.state();
        if !state.violations.contains_key(&key) && state.violations.len() >= MAX_PAIRS {
            key = (crate::base::text::OTHER_MAC, raw.country);
        }
        *state.violations.entry(key).or_default() += 1;
        let now = Instant::now();
        if !state.windows.contains_key(&key) && state.windows.len() >= MAX_PAIRS {
            self.close_over(&mut state, now, settings);
            if state.windows.len() >= MAX_PAIRS {
                state.unreported += 1;
                return;
            }
        }
        if let Some(window) = state.windows.get_mut(&key)
            && window.ends > now
        {
            window.repeats += 1;
            let addr = event::remote_address(raw);
            if window.addresses.len() < SUMMARY_ADDRESSES && !window.addresses.contains(&addr) {
                window.addresses.push(addr);
            }
            return;
        }
        state.next_id += 1;
        let alert = event::to_alert(raw, enricher, state.next_id);
        let window = Window {
            ends: now + settings.suppress,
            first: alert.clone(),
            repeats: 0,
            addresses: Vec::new(),
        };
        if let Some(old) = state.windows.insert(key, window) {
            self.close(&mut state, old, settings);
        }
        self.record(&mut state, alert, settings);
    }

    /// Ends the windows that are over, summarising their repeats.
    pub fn tick(&self) {
        let settings = self.settings();
        let mut state = self.state();
        self.close_over(&mut state, Instant::now(), settings);
    }

    /// Events not reported because every suppression window was taken.
    pub fn unreported(&self) -> u64 {
        self.state().unreported
    }

    fn close_over(&self, state: &mut State, now: Instant, settings: AlertSettings) {
        let over: Vec<_> =
            state.windows.iter().filter(|(_, w)| w.ends <= now).map(|(k, _)| *k).collect();
        for key in over {
            if let Some(window) = state.windows.remove(&key) {
                self.close(state, window, settings);
            }
        }
    }

    fn close(&self, state: &mut State, window: Window, settings: AlertSettings) {
        if window.repeats == 0 {
            return;
        }
        state.next_id += 1;
        let summary = Alert {
            id: state.next_id,
            kind: AlertKind::Summary,
            time: rfc3339(SystemTime::now()),
            remote: None,
            repeats: Some(window.repeats),
            repeat_addresses: Some(window.addresses),
            window_secs: Some(settings.suppress.as_secs()),
            ..window.first
        };
        self.record(state, summary, settings);
    }

    fn record(&self, state: &mut State, alert: Alert, settings: AlertSettings) {
        if let Some(i) = AlertKind::ALL.iter().position(|k| *k == alert.kind) {
            state.by_kind[i] += 1;
        }
        if let Some(am) = &self.alertmanager
            && alert.kind != AlertKind::Summary
        {
            am.push(&alert, settings.suppress);
        }
        match serde_json::to_string(&alert) {
            Ok(line) => {
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                if let Some(webhook) = &self.webhook {
                    webhook.send(line);
                }
            }
            Err(err) => tracing::warn!(%err, "cannot serialise an alert"),
        }
        state.recent.push_back(alert);
        while state.recent.len() > settings.keep {
            state.recent.pop_front();
        }
    }

    /// The recent alerts, newest first.
    pub fn recent(&self) -> Vec<Alert> {
        self.state().recent.iter().rev().cloned().collect()
    }

    /// Violations counted per (device, country).
    pub fn violations(&self) -> Vec<Violation> {
        self.state()
            .violations
            .iter()
            .map(|(&(mac, country), &count)| Violation { mac, country, count })
            .collect()
    }
}

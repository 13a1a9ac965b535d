//! MAC churn: the kernel counts source MACs seen sending egress traffic for the first time
//! (`Stat::NewMac`); more than `--mac-flood-rate` per second, averaged over [`WINDOW`], raises a
//! `mac_flood` alert, at most one per suppression window (`--alert-suppress-secs`).

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use super::{Alert, AlertBook, AlertKind};
use crate::base::sync::Locked;
use crate::devices::DeviceInfo;
use tracer_common::CounterValue;

/// The window the rate is averaged over.
pub(super) const WINDOW: Duration = Duration::from_secs(10);

/// How often [`MacFloodWatch::check`] should be called.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    /// (when, cumulative new MACs), covering at least [`WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    /// No further alert before this.
    quiet_until: Option<Instant>,
}

/// Watches the kernel's count of new MACs.
#[derive(Debug)]
pub struct MacFloodWatch {
    rate: AtomicU32,
    state: Mutex<State>,
}

impl MacFloodWatch {
    /// Alerts above `rate` new MACs per second (0: never).
    pub fn new(rate: u32) -> Self {
        Self { rate: AtomicU32::new(rate), state: Mutex::default() }
    }

    /// A new threshold (a reload).
    pub fn set_rate(&self, rate: u32) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Looks at the cumulative count `total` at `now`; returns the new MACs within the window
    /// when that raised an alert in `book`.
    pub fn check(&self, book: &AlertBook, total: u64, now: Instant) -> Option<u64> {
        let rate = self.rate.load(Ordering::Relaxed);
        let mut state = self.state.locked();
        state.samples.push_back((now, total));
        // Keep one sample at or before the window's start.
        while state.samples.len() > 2
            && state.samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            state.samples.pop_front();
        }
        let base = state.samples.front().map_or(total, |(_, n)| *n);
        // A reset of the pinned maps makes the count go down: start again from there.
        let new = total.saturating_sub(base);
        let limit = u64::from(rate) * WINDOW.as_secs();
        if rate == 0 || new <= limit || state.quiet_until.is_some_and(|t| now < t) {
            return None;
        }
        let suppress = book.suppress();
        state.quiet_until = Some(now + suppress);
        drop(state);
        book.raise(|id| Alert {
            rule: format!(
                "--mac-flood-rate {rate}: {new} new source MACs within {}s (more than {limit}); \
                 the next alert after {}s",
                WINDOW.as_secs(),
                suppress.as_secs()
            ),
            window_secs: Some(WINDOW.as_secs()),
            new_macs: Some(new),
            ..Alert::new(
                id,
                AlertKind::MacFlood,
                SystemTime::now(),
                DeviceInfo { mac: "other".to_owned(), ..DeviceInfo::default() },
                None,
                CounterValue::default(),
            )
        });
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertSettings;

    #[test]
    fn one_alert_per_suppression_window_above_the_rate() {
        let book = AlertBook::new(
            AlertSettings { suppress: Duration::from_secs(60), keep: 10 },
            None,
            None,
        );
        let watch = MacFloodWatch::new(20);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(watch.check(&book, 1_000, at(0)), None, "the first look only primes");
        assert_eq!(watch.check(&book, 1_150, at(1)), None, "150 within 10 s: below 200");
        assert_eq!(watch.check(&book, 1_201, at(2)), Some(201));
        assert_eq!(watch.check(&book, 9_000, at(3)), None, "suppressed");
        // The window slides: 10 s later the old samples no longer count.
        assert_eq!(watch.check(&book, 9_100, at(20)), None, "suppressed until 62 s");
        assert_eq!(watch.check(&book, 9_300, at(63)), None, "exactly 200 since 20 s: not more");
        assert_eq!(watch.check(&book, 9_302, at(64)), Some(202));
        let recent = book.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[1].kind, AlertKind::MacFlood);
        assert_eq!(recent[1].new_macs, Some(201));
        assert_eq!(recent[1].device.mac, "other");
        let quiet = MacFloodWatch::new(0);
        assert_eq!(quiet.check(&book, 0, at(0)), None);
        assert_eq!(quiet.check(&book, 1_000_000, at(1)), None, "0: off");
    }
}

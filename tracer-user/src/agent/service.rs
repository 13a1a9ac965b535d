//! Talking to a service manager (systemd `Type=notify`, sd_notify(3)): readiness, reloads,
//! shutdown, a status line and watchdog pings. Every call is a no-op when `NOTIFY_SOCKET` is
//! unset (procd, a shell, the tests without one), and a failed send is only logged: the agent
//! never stops counting because its service manager went away.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use sd_notify::NotifyState;

use crate::base::atomic::AtomicU64;

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!(%err, "sd_notify failed");
    }
}

/// Tells the service manager the agent is up (`READY=1`) with a status line: call it once the
/// programs are attached, the maps filled and the HTTP server bound.
pub fn ready(status_text: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status_text)]);
}

/// Sets the free-form status line `systemctl status` shows.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// Tells the service manager the agent is shutting down (`STOPPING=1`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("detaching and exiting")]);
}

/// A reload in progress: `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` wants)
/// now, `READY=1` when dropped, whatever the reload's outcome (a rejected reload leaves the
/// running state in place, which is ready).
#[must_use = "READY=1 is sent when the guard is dropped"]
pub struct Reloading(());

/// Starts a [`Reloading`] period.
pub fn reloading() -> Reloading {
    let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
    Reloading(())
}

impl Drop for Reloading {
    fn drop(&mut self) {
        send(&[NotifyState::Ready, NotifyState::Status("running (reloaded)")]);
    }
}

/// The agent loop's heartbeat: the watchdog task pings the service manager only while the
/// loop has beaten recently, so a wedged loop gets the service restarted.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    started: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Heartbeat {
    fn new() -> Heartbeat {
        Heartbeat { started: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    /// Records that the loop is alive.
    pub fn beat(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// When `WATCHDOG_USEC` is set for this process (systemd `WatchdogSec=`), spawns a task that
/// sends `WATCHDOG=1` every half period as long as the returned heartbeat was beaten within
/// the period. Without a watchdog the heartbeat is returned all the same and beating it is
/// free. Must be called inside the tokio runtime.
pub fn spawn_watchdog() -> Heartbeat {
    let heartbeat = Heartbeat::new();
    heartbeat.beat();
    let Some(period) = sd_notify::watchdog_enabled() else {
        return heartbeat;
    };
    tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog enabled");
    let watched = heartbeat.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tick.tick().await;
            if watched.age() < period {
                send(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    stalled_ms = watched.age().as_millis() as u64,
                    "the agent loop is stalled: no watchdog ping"
                );
            }
        }
    });
    heartbeat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_age_grows_until_the_next_beat() {
        let hb = Heartbeat::new();
        hb.beat();
        std::thread::sleep(Duration::from_millis(30));
        assert!(hb.age() >= Duration::from_millis(25), "{:?}", hb.age());
        hb.beat();
        assert!(hb.age() < Duration::from_millis(25), "{:?}", hb.age());
    }
}

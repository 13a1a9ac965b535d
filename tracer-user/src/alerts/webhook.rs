//! Delivering alerts to a webhook without ever holding up the agent: a bounded queue and a
//! thread of its own; a slow or dead receiver only fills the queue, and what overflows it is
//! dropped and counted.

use std::{
    sync::{
        Arc,
        atomic::Ordering,
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};

use crate::base::atomic::AtomicU64;

/// Alerts waiting for delivery at most.
const QUEUE: usize = 256;
/// Attempts per alert.
const ATTEMPTS: u32 = 3;

/// Delivery counts.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Alerts the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Alerts given up on after every attempt failed.
    pub failed: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A webhook: POSTs each alert's JSON to a URL.
#[derive(Debug)]
pub struct Webhook {
    queue: SyncSender<String>,
    stats: Arc<WebhookStats>,
}

impl Webhook {
    /// Starts the delivery thread for `url`, each request limited to `timeout`.
    pub fn start(url: String, timeout: Duration) -> std::io::Result<Self> {
        let (queue, jobs) = sync_channel::<String>(QUEUE);
        let stats = Arc::new(WebhookStats::default());
        let counts = Arc::clone(&stats);
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
        std::thread::Builder::new().name("webhook".into()).spawn(move || {
            for body in jobs {
                let mut delay = Duration::from_millis(500);
                let mut delivered = false;
                for attempt in 1..=ATTEMPTS {
                    match agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_bytes())
                    {
                        Ok(_) => {
                            delivered = true;
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(%err, attempt, "webhook delivery failed");
                            if attempt < ATTEMPTS {
                                std::thread::sleep(delay);
                                delay *= 2;
                            }
                        }
                    }
                }
                let counter = if delivered { &counts.delivered } else { &counts.failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        Ok(Self { queue, stats })
    }

    /// Queues an alert; never blocks.
    pub fn send(&self, body: String) {
        match self.queue.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivery counts.
    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }
}

//! The agent's periodic pass over the remote table: export what is new to the IPFIX collector
//! (if any), then retire the entries idle for longer than `remote_idle` into their device's
//! expired total, in that order, so a retired entry's last counts are exported first.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::{Duration, UNIX_EPOCH},
};

use tracing::{debug, warn};

use crate::base::atomic::AtomicU64;
use crate::{
    base::clock::{monotonic_ns, wall_time},
    kernel::{RemoteReader, RemoteSnapshot},
    remotes::Enricher,
    remotes::ipfix::{self, Deltas, Exporter, FlowRecord},
};

/// Counters of the retirement and export passes, for the metrics.
#[derive(Debug, Default)]
pub struct RemoteStats {
    /// Entries retired into their device's expired total.
    pub retired: AtomicU64,
    /// Idle entries kept because the spill table had no room for their device's expired
    /// total.
    pub kept: AtomicU64,
    /// IPFIX messages sent.
    pub ipfix_messages: AtomicU64,
    /// IPFIX flow records sent.
    pub ipfix_records: AtomicU64,
    /// IPFIX sends that failed.
    pub ipfix_errors: AtomicU64,
}

/// What the pass needs.
pub struct Retirement {
    /// The remote table.
    pub reader: Arc<RemoteReader>,
    /// Device addresses for the flow records.
    pub enricher: Arc<dyn Enricher>,
    /// Idle time before an entry is retired.
    pub idle: Duration,
    /// The IPFIX collector and the time between exports.
    pub ipfix: Option<(SocketAddr, Duration)>,
    /// Where the counts go.
    pub stats: Arc<RemoteStats>,
}

impl Retirement {
    /// Runs the pass forever: every IPFIX interval when exporting, otherwise every
    /// `idle / 4` (between 1 and 30 s).
    pub async fn run(self) {
        let period = match self.ipfix {
            Some((_, every)) => every,
            None => (self.idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)),
        };
        let mut exporter = None;
        if let Some((collector, _)) = self.ipfix {
            match Exporter::connect(collector, observation_domain()).await {
                Ok(e) => exporter = Some(e),
                Err(e) => warn!(%collector, "IPFIX export disabled: {e}"),
            }
        }
        let mut deltas = Deltas::new();
        // What the pinned table holds already was counted before this agent: a previous agent
        // exported it (up to its last export). Start the deltas from it, so a collector never
        // sees the same traffic twice.
        if exporter.is_some()
            && let Ok(snapshot) = self.reader.snapshot()
        {
            deltas.update(&flow_records(&snapshot, self.enricher.as_ref()));
        }
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let snapshot = match self.reader.snapshot() {
                Ok(s) => s,
                Err(err) => {
                    warn!(%err, "reading the remote table failed");
                    continue;
                }
            };
            if let Some(exporter) = &mut exporter {
                let records = deltas.update(&flow_records(&snapshot, self.enricher.as_ref()));
                let now = std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32);
                match exporter.export(now, &records).await {
                    Ok(messages) => {
                        self.stats.ipfix_messages.fetch_add(messages as u64, Ordering::Relaxed);
                        self.stats.ipfix_records.fetch_add(records.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.stats.ipfix_errors.fetch_add(1, Ordering::Relaxed);
                        debug!("IPFIX export failed: {e}");
                    }
                }
            }
            let cutoff = monotonic_ns().saturating_sub(self.idle.as_nanos() as u64);
            // Off the runtime's threads: a retirement waits for an RCU grace period.
            let reader = Arc::clone(&self.reader);
            let retired =
                tokio::task::spawn_blocking(move || reader.retire(&snapshot, cutoff)).await;
            match retired {
                Ok(Ok(r)) => {
                    self.stats.retired.fetch_add(r.entries, Ordering::Relaxed);
                    self.stats.kept.fetch_add(r.kept, Ordering::Relaxed);
                    if r.no_grace_period > 0 {
                        debug!("membarrier refused: retired after a fixed wait instead");
                    }
                }
                Ok(Err(err)) => warn!(%err, "retiring idle remotes failed"),
                Err(err) => warn!(%err, "the retirement task failed"),
            }
        }
    }
}

/// An observation domain per agent process (collectors tell exporters apart by it and by the
/// source address).
fn observation_domain() -> u32 {
    std::process::id()
}

fn unix_ms(monotonic: u64) -> u64 {
    wall_time(monotonic).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Cumulative flow records (passed traffic, one per direction with any) of every live entry.
pub fn flow_records(snapshot: &RemoteSnapshot, enricher: &dyn Enricher) -> Vec<FlowRecord> {
    let mut devices: std::collections::HashMap<[u8; 6], (Option<IpAddr>, Option<IpAddr>)> =
        std::collections::HashMap::new();
    let mut records = Vec::with_capacity(snapshot.entries.len() * 2);
    for entry in &snapshot.entries {
        let (v4, v6) = *devices.entry(entry.key.mac).or_insert_with(|| {
            let d = enricher.device(entry.key.mac);
            let first = |list: &[String]| list.iter().find_map(|a| a.parse::<IpAddr>().ok());
            (first(&d.ipv4), first(&d.ipv6))
        });
        let remote = entry.address();
        let device = if remote.is_ipv4() { v4 } else { v6 };
        for (direction, traffic) in [
            (ipfix::Direction::Upload, entry.traffic[0]),
            (ipfix::Direction::Download, entry.traffic[1]),
        ] {
            if traffic.packets == 0 {
                continue;
            }
            records.push(FlowRecord {
                mac: entry.key.mac,
                device,
                remote,
                direction,
                protocol: entry.protocol,
                port: entry.port,
                octets: traffic.bytes,
                packets: traffic.packets,
                start_ms: unix_ms(entry.first_seen_ns),
                end_ms: unix_ms(entry.last_seen_ns),
            });
        }
    }
    records
}

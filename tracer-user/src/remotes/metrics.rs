//! Metrics of the remote table: bounded (never one series per remote address).

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use tracer_common::{CounterValue, Direction, remotes::traffic_index};

use super::RemoteStats;
use crate::kernel::{CounterReader, RemoteReader, RemoteTraffic};

/// Reads the remote table at scrape time.
#[derive(Debug)]
pub struct RemoteCollector {
    /// The remote table.
    pub remotes: Arc<RemoteReader>,
    /// The counters (for the unattributed stat).
    pub counters: Arc<CounterReader>,
    /// Retirements and IPFIX exports.
    pub stats: Arc<RemoteStats>,
}

fn by_direction(traffic: &RemoteTraffic, direction: Direction) -> CounterValue {
    let d = direction as u8;
    let mut v = traffic[traffic_index(0, d)];
    v += traffic[traffic_index(1, d)];
    v
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

impl Collector for RemoteCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(snapshot) = self.remotes.snapshot() else {
            tracing::warn!("reading the remote table for a scrape failed");
            return Ok(());
        };
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(metric)
        };
        gauge(
            &mut encoder,
            "remote_entries",
            "Live (device, remote address) entries in the remote table",
            snapshot.entries.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "remote_slots",
            "Slots in use in the remote table (a remote counted on several CPUs has one on each)",
            i64::from(snapshot.slots),
        )?;
        gauge(
            &mut encoder,
            "remote_capacity",
            "Slots of the remote table, all CPUs (--remote-entries per CPU)",
            i64::from(snapshot.capacity),
        )?;
        for (kind, help) in [
            ("expired", "retired from idle remote entries into their device's expired total"),
            (
                "overflow",
                "to remotes that did not fit in the full remote table (per-device overflow)",
            ),
        ] {
            for unit in ["packets", "bytes"] {
                let name = format!("remote_{kind}_{unit}");
                let help = format!("Traffic {help}, all devices");
                let mut metric =
                    encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
                for direction in Direction::ALL {
                    let total: u64 = snapshot
                        .spill
                        .values()
                        .map(|s| {
                            let t = if kind == "expired" { &s.expired } else { &s.overflow };
                            let v = by_direction(t, direction);
                            if unit == "packets" { v.packets } else { v.bytes }
                        })
                        .sum();
                    ConstCounter::new(total)
                        .encode(metric.encode_family(&[("direction", direction.as_str())])?)?;
                }
            }
        }
        counter(
            &mut encoder,
            "remote_retirements",
            "Idle remote entries retired into their device's expired total",
            self.stats.retired.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "remote_retirements_deferred",
            "Idle remote entries left live because the spill table had no room for their device",
            self.stats.kept.load(Ordering::Relaxed),
        )?;
        if let Ok(unattributed) = self.counters.snapshot_stat(tracer_common::Stat::RemoteOverflow) {
            let mut metric = encoder.encode_descriptor(
                "remote_unattributed_packets",
                "Packets counted per country but in no device's remote view (remote and spill tables full)",
                None,
                MetricType::Counter,
            )?;
            for (direction, v) in Direction::ALL.iter().zip(unattributed) {
                ConstCounter::new(v.packets)
                    .encode(metric.encode_family(&[("direction", direction.as_str())])?)?;
            }
        }
        for (name, help, value) in [
            ("ipfix_messages", "IPFIX messages sent to the collector", &self.stats.ipfix_messages),
            (
                "ipfix_records",
                "IPFIX flow records sent to the collector",
                &self.stats.ipfix_records,
            ),
            ("ipfix_errors", "IPFIX exports that failed to send", &self.stats.ipfix_errors),
        ] {
            counter(&mut encoder, name, help, value.load(Ordering::Relaxed))?;
        }
        Ok(())
    }
}

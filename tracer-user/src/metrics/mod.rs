//! Prometheus exposition, read from the kernel maps at scrape time.
//!
//! Nothing is copied in the background: every scrape reads the per-CPU counters afresh, so the
//! numbers can never be stale.

pub mod alerts;
pub mod cap;
pub mod process;

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tracer_common::{CountryId, Direction, Stat, maps::verdict};

use crate::base::sync::{Locked, ReadWrite};
use crate::{
    base::text::country_label, kernel::CounterSnapshot, state::Context, state::status::SharedStatus,
};

/// Content type of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The counters of one scrape, folded under the series caps.
#[derive(Debug)]
struct Scrape {
    snapshot: CounterSnapshot,
    folded: crate::metrics::cap::Folded,
}

/// The counters read once per scrape, shared by the collectors rendering it.
type ScrapeSlot = Arc<std::sync::Mutex<Option<Arc<Scrape>>>>;

/// The agent's metrics registries: the per-device packet counters render in a second registry
/// on a second thread, so a scrape of 100k series uses both cores.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    packets: Registry,
    ctx: Arc<Context>,
    slot: ScrapeSlot,
    /// Held for a whole scrape (one at a time); remembers which pairs have series.
    scraping: std::sync::Mutex<crate::metrics::cap::SeriesCap>,
}

impl Metrics {
    /// A registry whose counters come from the kernel maps at each scrape.
    pub fn new(ctx: Arc<Context>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(crate::metrics::process::ProcessCollector));
        let slot = ScrapeSlot::default();
        let ours = registry.sub_registry_with_prefix("egress_tracer");
        ours.register_collector(Box::new(StatusCollector { status: Arc::clone(&ctx.status) }));
        ours.register_collector(Box::new(crate::metrics::alerts::AlertCollector {
            ctx: Arc::clone(&ctx),
        }));
        ours.register_collector(Box::new(KernelCollector {
            slot: Arc::clone(&slot),
            packets: false,
            ctx: Arc::clone(&ctx),
        }));
        let mut packets = Registry::default();
        packets.sub_registry_with_prefix("egress_tracer").register_collector(Box::new(
            KernelCollector { slot: Arc::clone(&slot), packets: true, ctx: Arc::clone(&ctx) },
        ));
        ours.register_collector(Box::new(crate::remotes::RemoteCollector {
            remotes: Arc::clone(&ctx.remotes),
            counters: Arc::clone(&ctx.reader),
            stats: Arc::clone(&ctx.remote_stats),
        }));
        ours.register_collector(Box::new(crate::remotes::domains::NameCollector {
            book: Arc::clone(&ctx.names),
        }));
        ours.register_collector(Box::new(BuildInfo));
        Self { registry, packets, ctx, slot, scraping: std::sync::Mutex::default() }
    }

    /// Renders the Prometheus text exposition from one read of the kernel maps.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut cap = self.scraping.locked();
        let mut snapshot = self.ctx.reader.snapshot().map_err(|err| {
            tracing::error!(%err, "reading the counter maps for a scrape failed");
            std::fmt::Error
        })?;
        let caps = crate::metrics::cap::Caps {
            max_devices: self.ctx.metrics_max_devices.load(std::sync::atomic::Ordering::Relaxed),
            max_pairs: self.ctx.metrics_max_pairs.load(std::sync::atomic::Ordering::Relaxed),
        };
        let known = self.ctx.devices.reading().macs();
        let (counters, folded) =
            cap.fold(std::mem::take(&mut snapshot.counters), caps, &|mac| known.contains(&mac));
        snapshot.counters = counters;
        *self.slot.locked() = Some(Arc::new(Scrape { snapshot, folded }));
        let encode = |registry: &Registry| {
            let mut out = String::new();
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry).map(|()| out)
        };
        let (main, packets) = std::thread::scope(|s| {
            let packets = s.spawn(|| encode(&self.packets));
            (encode(&self.registry), packets.join())
        });
        *self.slot.locked() = None;
        let mut out = main?;
        out.push_str(&packets.map_err(|_| std::fmt::Error)??);
        Ok(out)
    }
}

#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(1i64);
        let mut metric = encoder.encode_descriptor(
            "build_info",
            "Version of the running egress-tracer agent (always 1)",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        gauge.encode(metric.encode_family(&labels)?)
    }
}

#[derive(Debug)]
struct StatusCollector {
    status: SharedStatus,
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.status.reading();
        let geo = &status.geo;
        let mut metric = encoder.encode_descriptor(
            "geo_database_info",
            "The country database in use (always 1): its source and build date",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("source", geo.source.clone()),
            ("build_date", geo.build_date.clone().unwrap_or_default()),
        ];
        ConstGauge::new(1i64).encode(metric.encode_family(&labels)?)?;
        let loaded = geo
            .loaded_at
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        for (name, help, value) in [
            (
                "geo_database_load_timestamp_seconds",
                "Unix time the country database was loaded into the kernel",
                loaded,
            ),
            (
                "geo_database_load_duration_seconds",
                "Seconds compiling and loading the country database took",
                geo.load_duration.as_secs_f64(),
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        let mut metric = encoder.encode_descriptor(
            "geo_database_ranges",
            "Address ranges (merged runs, local networks included) in the country database",
            None,
            MetricType::Gauge,
        )?;
        for (family, n) in [("ipv4", geo.runs.0), ("ipv6", geo.runs.1)] {
            ConstGauge::new(n as i64).encode(metric.encode_family(&[("family", family)])?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "reloads",
            "Reloads of the country database (SIGHUP or a changed file), by result",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in [("success", status.reloads_ok), ("failure", status.reloads_failed)] {
            ConstCounter::new(n).encode(metric.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct KernelCollector {
    slot: ScrapeSlot,
    /// Renders only `packets_total` (the second thread) rather than everything else.
    packets: bool,
    /// Device names and addresses for `device_info`.
    ctx: Arc<Context>,
}

impl Collector for KernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let slot = self.slot.locked().clone();
        let Some(scrape) = slot else {
            return Err(std::fmt::Error);
        };
        let snapshot = &scrape.snapshot;
        encode_device_counters(&mut encoder, snapshot, self.packets)?;
        if self.packets {
            return Ok(());
        }
        encode_blocked(&mut encoder, snapshot)?;
        encode_stats(&mut encoder, snapshot)?;
        crate::metrics::alerts::encode_device_info(&mut encoder, snapshot, &self.ctx)?;
        let gauges = [
            (
                "traffic_map_entries",
                "Entries in use in the traffic map (one per device and country, both directions; blocked traffic apart)",
                snapshot.map_entries as i64,
            ),
            (
                "traffic_map_capacity",
                "Capacity of the traffic map (--counter-entries)",
                i64::from(snapshot.capacity),
            ),
            (
                "metrics_folded_devices",
                "Devices in the traffic map without series of their own (over --metrics-max-devices): their traffic is under mac=\"other\"",
                scrape.folded.devices as i64,
            ),
            (
                "metrics_folded_pairs",
                "(device, country) pairs without series of their own (over --metrics-max-pairs): their traffic is under country=\"other\"",
                scrape.folded.pairs as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        Ok(())
    }
}

fn encode_device_counters(
    encoder: &mut DescriptorEncoder,
    snapshot: &CounterSnapshot,
    packets: bool,
) -> Result<(), std::fmt::Error> {
    let families = [
        (
            "bytes",
            "Bytes sent (upload) or received (download) by a LAN device, by country of the remote address",
            true,
        ),
        (
            "packets",
            "Packets sent (upload) or received (download) by a LAN device, by country of the remote address",
            false,
        ),
    ];
    for (name, help, bytes) in families.into_iter().filter(|(_, _, bytes)| *bytes != packets) {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        // Keys are sorted by MAC, so each device's label text is formatted once.
        let mut mac_text = (None, String::new());
        for (key, value) in &snapshot.counters {
            let Some(direction) = Direction::from_raw(key.direction) else {
                continue;
            };
            if key.verdict != verdict::PASSED {
                continue;
            }
            if mac_text.0 != Some(key.mac) {
                mac_text = (Some(key.mac), crate::base::text::mac_label(key.mac));
            }
            let labels = [
                ("mac", mac_text.1.as_str()),
                ("country", label(key.country)),
                ("direction", direction.as_str()),
            ];
            let v = if bytes { value.bytes } else { value.packets };
            ConstCounter::new(v).encode(metric.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// The `country` label: an ISO code, `unknown`, or `other` for pairs over the series cap.
fn label(country: u16) -> &'static str {
    if country == crate::metrics::cap::OTHER { "other" } else { country_label(CountryId(country)) }
}

/// Blocked packets and bytes per (device, country), both directions together.
fn encode_blocked(
    encoder: &mut DescriptorEncoder,
    snapshot: &CounterSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut blocked: Vec<([u8; 6], u16, u64, u64)> = Vec::new();
    for (key, value) in snapshot.counters.iter().filter(|(k, _)| k.verdict == verdict::BLOCKED) {
        match blocked.last_mut() {
            Some(last) if last.0 == key.mac && last.1 == key.country => {
                last.2 += value.packets;
                last.3 += value.bytes;
            }
            _ => blocked.push((key.mac, key.country, value.packets, value.bytes)),
        }
    }
    for (name, help, bytes) in [
        (
            "blocked_packets",
            "Packets dropped in the kernel by a block policy, by LAN device and country of the remote address",
            false,
        ),
        (
            "blocked_bytes",
            "Bytes of the packets counted in egress_tracer_blocked_packets_total",
            true,
        ),
    ] {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (mac, country, packets, byte_count) in &blocked {
            let mac = crate::base::text::mac_label(*mac);
            let labels = [("mac", mac.as_str()), ("country", label(*country))];
            ConstCounter::new(if bytes { *byte_count } else { *packets })
                .encode(metric.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_stats(
    encoder: &mut DescriptorEncoder,
    snapshot: &CounterSnapshot,
) -> Result<(), std::fmt::Error> {
    for (name, help, bytes) in [
        (
            "overflow_packets",
            "Packets not counted per device because the counter map was full",
            false,
        ),
        ("overflow_bytes", "Bytes not counted per device because the counter map was full", true),
    ] {
        let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        let total = Direction::ALL
            .iter()
            .map(|d| snapshot.stat(Stat::Overflow, *d))
            .fold(0u64, |acc, v| acc.wrapping_add(if bytes { v.bytes } else { v.packets }));
        ConstCounter::new(total).encode(metric)?;
    }
    let metric = encoder.encode_descriptor(
        "events_suppressed",
        "Alert events the kernel did not send: over the per-CPU rate limit (--events-per-second) or the ring buffer was full",
        None,
        MetricType::Counter,
    )?;
    let suppressed = Direction::ALL
        .iter()
        .map(|d| snapshot.stat(Stat::EventsSuppressed, *d).packets)
        .sum::<u64>();
    ConstCounter::new(suppressed).encode(metric)?;
    let metric = encoder.encode_descriptor(
        "new_macs",
        "Source MACs seen sending egress traffic for the first time (not among the last 4096 such MACs): new devices, MAC randomisation, or a device forging source addresses",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(snapshot.stat(Stat::NewMac, Direction::Upload).packets).encode(metric)?;
    let metric = encoder.encode_descriptor(
        "captures_suppressed",
        "DNS answers and TLS segments the kernel did not hand to the agent for naming: over the per-CPU rate limit (--capture-rate) or the ring buffer was full (the packets are counted as usual)",
        None,
        MetricType::Counter,
    )?;
    let suppressed = Direction::ALL
        .iter()
        .map(|d| snapshot.stat(Stat::CapturesSuppressed, *d).packets)
        .sum::<u64>();
    ConstCounter::new(suppressed).encode(metric)?;
    for (name, help, bytes) in [
        (
            "uncounted_packets",
            "Packets seen on LAN interfaces that are not egress: reason is local (destination inside local networks), other (not IPv4/IPv6) or malformed (truncated or invalid headers)",
            false,
        ),
        (
            "uncounted_bytes",
            "Bytes of the packets counted in egress_tracer_uncounted_packets_total",
            true,
        ),
    ] {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for stat in [Stat::Local, Stat::Other, Stat::Malformed] {
            for direction in Direction::ALL {
                let v = snapshot.stat(stat, direction);
                let labels = [("reason", stat.as_str()), ("direction", direction.as_str())];
                ConstCounter::new(if bytes { v.bytes } else { v.packets })
                    .encode(metric.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

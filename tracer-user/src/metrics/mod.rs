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
use tracer_common::{CounterValue, CountryId, Direction, Stat};

use crate::base::sync::{Locked, ReadWrite};
use crate::{
    base::text::country_label,
    kernel::{CounterSnapshot, Pair},
    state::Context,
    state::status::SharedStatus,
};

/// Content type of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The counters of one scrape, folded under the series caps.
#[derive(Debug)]
struct Scrape {
    snapshot: CounterSnapshot,
    folded: crate::metrics::cap::Folded,
}

/// The agent's metrics. Each scrape reads the kernel maps once and builds two registries whose
/// collectors hold that read: the per-device packet counters render in the second on a second
/// thread, so a scrape of 100k series uses both cores.
#[derive(Debug)]
pub struct Metrics {
    ctx: Arc<Context>,
    /// Held for a whole scrape (one at a time); remembers which pairs have series.
    scraping: std::sync::Mutex<crate::metrics::cap::SeriesCap>,
    /// The text sizes of the last scrape (everything else, `packets_total`): the next one
    /// reserves that much up front instead of growing its buffers by copying (a third of a
    /// large scrape's time); the first estimates from its series.
    last_sizes: [std::sync::atomic::AtomicUsize; 2],
}

impl Metrics {
    /// Metrics whose counters come from the kernel maps at each scrape.
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx, scraping: std::sync::Mutex::default(), last_sizes: Default::default() }
    }

    /// The two registries of one scrape: everything but `packets_total`, and `packets_total`.
    fn registries(&self, scrape: &Arc<Scrape>) -> (Registry, Registry) {
        let ctx = &self.ctx;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(crate::metrics::process::ProcessCollector));
        let ours = registry.sub_registry_with_prefix("egress_tracer");
        ours.register_collector(Box::new(StatusCollector { status: Arc::clone(&ctx.status) }));
        ours.register_collector(Box::new(crate::metrics::alerts::AlertCollector {
            ctx: Arc::clone(ctx),
        }));
        ours.register_collector(Box::new(KernelCollector {
            scrape: Arc::clone(scrape),
            ctx: Arc::clone(ctx),
        }));
        ours.register_collector(Box::new(crate::remotes::RemoteCollector {
            remotes: Arc::clone(&ctx.remotes),
            counters: Arc::clone(&ctx.reader),
            stats: Arc::clone(&ctx.remote_stats),
        }));
        ours.register_collector(Box::new(crate::remotes::domains::NameCollector {
            book: Arc::clone(&ctx.names),
        }));
        ours.register_collector(Box::new(BuildInfo));
        let mut packets = Registry::default();
        packets
            .sub_registry_with_prefix("egress_tracer")
            .register_collector(Box::new(PacketsCollector { scrape: Arc::clone(scrape) }));
        (registry, packets)
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
        let (traffic, folded) =
            cap.fold(std::mem::take(&mut snapshot.traffic), caps, &|mac| known.contains(&mac));
        snapshot.traffic = traffic;
        // The first scrape has no last size: it reserves what its series take at most (a
        // `bytes`/`packets` line is under 96 bytes: the name, three labels, a number).
        let [main_size, packets_size] = self.last_sizes.each_ref().map(|size| {
            match size.load(std::sync::atomic::Ordering::Relaxed) {
                0 => snapshot.series() * 96,
                last => last,
            }
        });
        let (registry, packets) = self.registries(&Arc::new(Scrape { snapshot, folded }));
        let encode = |registry: &Registry, reserve: usize| {
            // A little over last time's size, so a scrape that grew a bit still fits.
            let mut out = String::with_capacity(reserve + reserve / 16);
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry).map(|()| out)
        };
        let (main, packets) = std::thread::scope(|s| {
            let packets = s.spawn(|| encode(&packets, packets_size));
            (encode(&registry, main_size + packets_size), packets.join())
        });
        let mut out = main?;
        let packets = packets.map_err(|_| std::fmt::Error)??;
        for (size, len) in self.last_sizes.iter().zip([out.len(), packets.len()]) {
            size.store(len, std::sync::atomic::Ordering::Relaxed);
        }
        out.push_str(&packets);
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

/// Everything read from the counter maps but `packets_total` (see [`PacketsCollector`]).
#[derive(Debug)]
struct KernelCollector {
    scrape: Arc<Scrape>,
    /// Device names and addresses for `device_info`.
    ctx: Arc<Context>,
}

impl Collector for KernelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let scrape = &self.scrape;
        let snapshot = &scrape.snapshot;
        encode_device_counters(&mut encoder, snapshot, Family::Bytes)?;
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

/// `packets_total`, rendered in a registry of its own on a second thread.
#[derive(Debug)]
struct PacketsCollector {
    scrape: Arc<Scrape>,
}

impl Collector for PacketsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_device_counters(&mut encoder, &self.scrape.snapshot, Family::Packets)
    }
}

/// Which of the per-device counter families to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Bytes,
    Packets,
}

fn encode_device_counters(
    encoder: &mut DescriptorEncoder,
    snapshot: &CounterSnapshot,
    family: Family,
) -> Result<(), std::fmt::Error> {
    let (name, help) = match family {
        Family::Bytes => (
            "bytes",
            "Bytes sent (upload) or received (download) by a LAN device, by country of the remote address",
        ),
        Family::Packets => (
            "packets",
            "Packets sent (upload) or received (download) by a LAN device, by country of the remote address",
        ),
    };
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    // Pairs are sorted by MAC, so each device's label text is formatted once.
    let mut mac_text = (None, String::new());
    for (pair, traffic) in &snapshot.traffic {
        for (direction, value) in
            [(Direction::Upload, traffic.upload), (Direction::Download, traffic.download)]
        {
            // A direction that saw nothing has no series.
            if value == CounterValue::default() {
                continue;
            }
            if mac_text.0 != Some(pair.mac) {
                mac_text = (Some(pair.mac), crate::base::text::mac_label(pair.mac));
            }
            let labels = [
                ("mac", mac_text.1.as_str()),
                ("country", label(pair.country)),
                ("direction", direction.as_str()),
            ];
            let v = if family == Family::Bytes { value.bytes } else { value.packets };
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
    let blocked: Vec<(&Pair, CounterValue)> = snapshot
        .traffic
        .iter()
        .map(|(pair, traffic)| (pair, traffic.blocked))
        .filter(|(_, blocked)| *blocked != CounterValue::default())
        .collect();
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
        for (pair, blocked) in &blocked {
            let mac = crate::base::text::mac_label(pair.mac);
            let labels = [("mac", mac.as_str()), ("country", label(pair.country))];
            ConstCounter::new(if bytes { blocked.bytes } else { blocked.packets })
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

//! Metrics of the policy and the alerts: violations and webhook deliveries.

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use tracer_common::CountryId;

use crate::base::sync::ReadWrite;
use crate::{
    alerts::Enricher as _, base::text::country_label, kernel::CounterSnapshot, state::Context,
};

/// `device_info{mac,name,vendor,group,ipv4,ipv6} 1` for every device in the traffic map or the
/// configuration. Names live here and not on the counters, so a renamed device keeps its
/// counter series.
pub fn encode_device_info(
    encoder: &mut DescriptorEncoder,
    snapshot: &CounterSnapshot,
    ctx: &Context,
) -> Result<(), std::fmt::Error> {
    // Folded devices (`mac="other"`) have no info series: their number is bounded by the cap.
    let mut macs: Vec<[u8; 6]> = snapshot
        .counters
        .keys()
        .map(|k| k.mac)
        .filter(|mac| *mac != crate::base::text::OTHER_MAC)
        .collect();
    macs.extend(ctx.devices.reading().macs());
    macs.sort_unstable();
    macs.dedup();
    let mut metric = encoder.encode_descriptor(
        "device_info",
        "A LAN device (always 1): name (config or DHCP lease, escaped), vendor (from the MAC's OUI), group, and current addresses (comma-separated)",
        None,
        MetricType::Gauge,
    )?;
    for mac in macs {
        let d = ctx.device(mac);
        let labels = [
            ("mac", d.mac),
            ("name", d.name.unwrap_or_default()),
            ("vendor", d.vendor.unwrap_or_default()),
            ("group", d.group.unwrap_or_default()),
            ("ipv4", d.ipv4.join(",")),
            ("ipv6", d.ipv6.join(",")),
        ];
        ConstGauge::new(1i64).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Collects from the alert book at scrape time.
#[derive(Debug)]
pub struct AlertCollector {
    /// The agent's shared state.
    pub ctx: Arc<Context>,
}

impl Collector for AlertCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "policy_violations",
            "Contacts of a LAN device with a new remote address in a region its policy does not approve (kernel events received, reported or summarised)",
            None,
            MetricType::Counter,
        )?;
        for v in self.ctx.alerts.violations() {
            let mac = crate::base::text::mac_label(v.mac);
            let labels = [("mac", mac.as_str()), ("country", country_label(CountryId(v.country)))];
            ConstCounter::new(v.count).encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "alerts",
            "Alerts raised, by kind: violation, summary, new_country, new_device, volume, mac_flood",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in crate::alerts::AlertKind::ALL.iter().zip(self.ctx.alerts.by_kind()) {
            ConstCounter::new(n).encode(metric.encode_family(&[("kind", kind.as_str())])?)?;
        }
        let metric = encoder.encode_descriptor(
            "alerts_unreported",
            "Violation events neither reported nor summarised because 4096 suppression windows were open (a device forging MACs)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.ctx.alerts.unreported()).encode(metric)?;
        if let Some(learner) = self.ctx.learner.get() {
            let (learning, countries, devices) = learner.sizes();
            for (name, help, v) in [
                ("learning_devices", "Devices still in their learning window", learning),
                ("baseline_devices", "Devices in the learned baseline", devices),
                (
                    "baseline_countries",
                    "(device, country) pairs in the learned baselines",
                    countries,
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v as i64).encode(metric)?;
            }
            let metric = encoder.encode_descriptor(
                "baseline_devices_refused",
                "MACs not learned because the baseline holds its maximum of devices",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(learner.stats.refused_devices.load(Ordering::Relaxed))
                .encode(metric)?;
        }
        if let Some(history) = self.ctx.history.get() {
            let s = history.stats();
            for (name, help, v) in [
                (
                    "history_points",
                    "Stored non-zero buckets of the traffic history (--history-points caps them)",
                    s.points,
                ),
                (
                    "history_series",
                    "Series of the traffic history ((device, country) pairs and per-device other)",
                    s.pairs,
                ),
                (
                    "history_memory_bytes",
                    "Approximate memory of the traffic history",
                    s.approx_bytes,
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v as i64).encode(metric)?;
            }
            for (name, help, v) in [
                (
                    "history_dropped_points",
                    "History buckets dropped early to stay under --history-points (the oldest first)",
                    s.dropped_points,
                ),
                (
                    "history_untracked_samples",
                    "Counter readings of (device, country) pairs the history could not track (over its pair cap)",
                    s.untracked_samples,
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(v).encode(metric)?;
            }
        }
        let http = &self.ctx.http;
        let metric = encoder.encode_descriptor(
            "http_connections",
            "HTTP connections open now (at most 256; the oldest idle one is closed for a new one)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(http.open.load(Ordering::Relaxed) as i64).encode(metric)?;
        for (name, help, n) in [
            ("http_connections_accepted", "HTTP connections accepted", &http.accepted),
            (
                "http_connections_evicted",
                "Idle HTTP connections closed to make room for a new one",
                &http.evicted,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(metric)?;
        }
        if let Some(am) = self.ctx.alerts.alertmanager() {
            encode_deliveries(
                &mut encoder,
                "alertmanager_alerts",
                "Alerts pushed to Alertmanager",
                am.stats(),
            )?;
        }
        if let Some(webhook) = self.ctx.alerts.webhook() {
            encode_deliveries(
                &mut encoder,
                "webhook_alerts",
                "Alerts handed to the webhook",
                webhook.stats(),
            )?;
        }
        Ok(())
    }
}

/// `name_total{result}` for a delivery channel (webhook, Alertmanager).
fn encode_deliveries(
    encoder: &mut DescriptorEncoder,
    name: &str,
    what: &str,
    stats: &crate::alerts::WebhookStats,
) -> Result<(), std::fmt::Error> {
    let help =
        format!("{what}, by result: delivered, failed (after retries) or dropped (queue full)");
    let mut metric = encoder.encode_descriptor(name, &help, None, MetricType::Counter)?;
    for (result, n) in
        [("delivered", &stats.delivered), ("failed", &stats.failed), ("dropped", &stats.dropped)]
    {
        ConstCounter::new(n.load(Ordering::Relaxed))
            .encode(metric.encode_family(&[("result", result)])?)?;
    }
    Ok(())
}

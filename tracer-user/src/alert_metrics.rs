//! Metrics of the policy and the alerts: violations and webhook deliveries.

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
};
use tracer_common::CountryId;

use crate::{
    context::Context,
    names::{country_label, format_mac},
};

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
            let mac = format_mac(v.mac);
            let labels = [("mac", mac.as_str()), ("country", country_label(CountryId(v.country)))];
            ConstCounter::new(v.count).encode(metric.encode_family(&labels)?)?;
        }
        if let Some(webhook) = self.ctx.alerts.webhook() {
            let mut metric = encoder.encode_descriptor(
                "webhook_alerts",
                "Alerts handed to the webhook, by result: delivered, failed (after retries) or dropped (queue full)",
                None,
                MetricType::Counter,
            )?;
            let stats = webhook.stats();
            for (result, n) in [
                ("delivered", &stats.delivered),
                ("failed", &stats.failed),
                ("dropped", &stats.dropped),
            ] {
                ConstCounter::new(n.load(Ordering::Relaxed))
                    .encode(metric.encode_family(&[("result", result)])?)?;
            }
        }
        Ok(())
    }
}

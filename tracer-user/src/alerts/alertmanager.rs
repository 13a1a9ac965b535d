//! Pushing alerts to Alertmanager (`POST /api/v2/alerts`), with the webhook's delivery thread:
//! a bounded queue, retries with backoff, never holding up the agent.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::{Alert, AlertKind, Webhook, WebhookStats};
use crate::base::clock::rfc3339;

/// The Alertmanager client.
#[derive(Debug)]
pub struct Alertmanager {
    sender: Webhook,
}

/// The `alertname` label of each kind.
fn alertname(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Violation => "EgressTracerViolation",
        AlertKind::Summary => "EgressTracerRepeats",
        AlertKind::NewCountry => "EgressTracerNewCountry",
        AlertKind::NewDevice => "EgressTracerNewDevice",
        AlertKind::Volume => "EgressTracerUploadVolume",
        AlertKind::MacFlood => "EgressTracerMacFlood",
    }
}

impl Alertmanager {
    /// Starts pushing to the Alertmanager at `base` (e.g. `http://alertmanager:9093`).
    pub fn start(base: &str, timeout: Duration) -> std::io::Result<Self> {
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        Ok(Self { sender: Webhook::start(url, timeout)? })
    }

    /// Queues `alert`, firing until `resolve_after` from now (the suppression window: a
    /// repeat within it is summarised, not pushed again).
    pub fn push(&self, alert: &Alert, resolve_after: Duration) {
        let remote = alert.remote.as_ref();
        let names = remote.map(|r| r.names.join(", ")).unwrap_or_default();
        let address = remote.map(|r| r.address.to_string()).unwrap_or_default();
        let who = alert.device.name.clone().unwrap_or_else(|| alert.device.mac.clone());
        let to = match (names.is_empty(), address.is_empty()) {
            (false, _) => format!("{names} ({address}, {})", alert.country),
            (true, false) => format!("{address} ({})", alert.country),
            (true, true) => alert.country.clone(),
        };
        let ends = SystemTime::now() + resolve_after;
        let body = json!([{
            "labels": {
                "alertname": alertname(alert.kind),
                "mac": alert.device.mac,
                "name": alert.device.name.clone().unwrap_or_default(),
                "country": alert.country,
                "group": alert.device.group.clone().unwrap_or_default(),
            },
            "annotations": {
                "summary": format!("{who} -> {to}"),
                "rule": alert.rule,
                "remote": address,
                "names": names,
            },
            "startsAt": alert.time,
            "endsAt": rfc3339(ends),
        }]);
        self.sender.send(body.to_string());
    }

    /// Delivery counts.
    pub fn stats(&self) -> &WebhookStats {
        self.sender.stats()
    }
}

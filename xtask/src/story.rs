//! The demo's closing story: what the gateway saw, told from the agent's own JSON API (the same
//! answers a user's script would get), device by device.

use std::fmt::Write as _;

use serde_json::Value;

/// The story of `devices` (`GET /api/v1/devices`) and `alerts` (`GET /api/v1/alerts`), and
/// `remotes`, the answer of `GET /api/v1/devices/{mac}/remotes` per device when the agent has
/// it.
pub(crate) fn tell(
    devices: &Value,
    alerts: &Value,
    remotes: &dyn Fn(&str) -> Option<Value>,
) -> String {
    let mut out = String::from("\n=== What the gateway saw\n");
    let empty = Vec::new();
    let list = devices["devices"].as_array().unwrap_or(&empty);
    for device in list {
        let mac = device["mac"].as_str().unwrap_or("?");
        let name = device["name"].as_str().unwrap_or("an unnamed device");
        let group = device["group"].as_str().map(|g| format!(", group {g}")).unwrap_or_default();
        let vendor = device["vendor"].as_str().map(|v| format!(", {v}")).unwrap_or_default();
        let _ = writeln!(out, "\n{name} ({mac}{group}{vendor})");
        for c in device["countries"].as_array().unwrap_or(&empty) {
            let _ = writeln!(out, "  {}", country_line(c));
        }
        if let Some(r) = remotes(mac) {
            for remote in r["remotes"].as_array().unwrap_or(&empty).iter().take(4) {
                let _ = writeln!(out, "      {}", remote_line(remote));
            }
        }
    }
    let alerts = alerts["alerts"].as_array().unwrap_or(&empty);
    let violations: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "violation").collect();
    let _ = writeln!(
        out,
        "\n{} alert(s) raised ({} violations, the rest summaries of repeats); the first ones:",
        alerts.len(),
        violations.len()
    );
    for a in violations.iter().rev().take(3) {
        let _ = writeln!(out, "  {}", alert_line(a));
    }
    out
}

fn traffic(v: &Value) -> (u64, u64) {
    (v["packets"].as_u64().unwrap_or(0), v["bytes"].as_u64().unwrap_or(0))
}

fn country_line(c: &Value) -> String {
    let code = c["country"].as_str().unwrap_or("?");
    let name = c["name"].as_str().unwrap_or(code);
    let (up_p, up_b) = traffic(&c["upload"]);
    let (down_p, down_b) = traffic(&c["download"]);
    let (blocked_p, _) = traffic(&c["blocked"]);
    let rule = c["rule"].as_str().unwrap_or("no rule");
    let verdict = match c["policy"].as_str() {
        Some("block") => format!("BLOCKED: {blocked_p} packets dropped ({rule})"),
        Some("alert") => format!("NOT APPROVED: alert raised ({rule})"),
        _ => "approved".to_owned(),
    };
    format!(
        "-> {code} {name:<14} sent {up_p} pkts / {up_b} B, received {down_p} pkts / {down_b} B: \
         {verdict}"
    )
}

fn remote_line(r: &Value) -> String {
    let address = r["address"].as_str().unwrap_or("?");
    let names: Vec<&str> = r["names"]
        .as_array()
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let org = r["asn"]["org"].as_str().map(|o| format!(" [{o}]")).unwrap_or_default();
    let names = if names.is_empty() { String::new() } else { format!(" {}", names.join(", ")) };
    let (up_p, up_b) = traffic(&r["upload"]);
    let (down_p, down_b) = traffic(&r["download"]);
    let (blocked, _) = traffic(&r["blocked"]);
    let blocked = if blocked > 0 { format!(", {blocked} pkts BLOCKED") } else { String::new() };
    format!(
        "{address}{names}{org} ({}): {up_p} pkts / {up_b} B up, {down_p} pkts / {down_b} B \
         down{blocked}",
        r["country"].as_str().unwrap_or("?")
    )
}

fn alert_line(a: &Value) -> String {
    let device = a["device"]["name"].as_str().or(a["device"]["mac"].as_str()).unwrap_or("?");
    let remote = a["remote"]["address"].as_str().unwrap_or("?");
    let country = a["country"].as_str().unwrap_or("?");
    let action = if a["blocked"].as_bool() == Some(true) { "dropped" } else { "alerted" };
    // "phone -> api.io.mi.com (36.110.0.1, CN)" when the agent learned the name.
    let target = match a["remote"]["names"].as_array().and_then(|n| n.first()?.as_str()) {
        Some(name) => format!("{name} ({remote}, {country})"),
        None => format!("{remote} ({country})"),
    };
    format!(
        "{} {device} -> {target}, {action}: {}",
        a["time"].as_str().unwrap_or(""),
        a["rule"].as_str().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn tells_the_policy_the_alert_and_the_blocked_packets() {
        let devices = json!({"devices": [{
        "mac": "02:00:00:00:00:01", "name": "living-room-tv", "group": "iot",
        "countries": [
            {"country": "CN", "name": "China", "upload": {"packets": 3, "bytes": 294},
             "download": {"packets": 0, "bytes": 0}, "blocked": {"packets": 3, "bytes": 294},
             "policy": "block", "rule": "group \"iot\": otherwise = block"},
            {"country": "US", "name": "United States", "upload": {"packets": 1, "bytes": 98},
             "download": {"packets": 1, "bytes": 98}, "policy": "allow"}
        ]}]});
        let alerts = json!({"alerts": [{"kind": "violation", "time": "t",
            "device": {"mac": "02:00:00:00:00:01", "name": "living-room-tv"},
            "remote": {"address": "36.110.0.1"}, "country": "CN", "blocked": true,
            "rule": "group \"iot\": otherwise = block"}]});
        let story = super::tell(&devices, &alerts, &|_| None);
        assert!(story.contains("living-room-tv (02:00:00:00:00:01, group iot)"), "{story}");
        assert!(story.contains("-> CN China"), "{story}");
        assert!(story.contains("BLOCKED: 3 packets dropped"), "{story}");
        assert!(story.contains("-> US United States  sent 1 pkts / 98 B"), "{story}");
        assert!(story.contains("living-room-tv -> 36.110.0.1 (CN), dropped"), "{story}");
        let named = json!({"alerts": [{"kind": "violation", "time": "t",
            "device": {"mac": "02:00:00:00:00:02", "name": "phone"},
            "remote": {"address": "36.110.0.1", "names": ["api.io.mi.com"]}, "country": "CN",
            "blocked": false, "rule": "r"}]});
        let story = super::tell(&devices, &named, &|_| None);
        assert!(story.contains("phone -> api.io.mi.com (36.110.0.1, CN), alerted"), "{story}");
    }
}

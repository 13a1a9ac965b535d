//! The JSON API and `egress-tracer status` against the agent in the lab: the same numbers as
//! the metrics, and a health report.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::process::Command;

use crate::support::{
    agent::{Agent, LISTEN, all_counts},
    netns_http,
};
use tracer_user::{http::routes::Health, state::report::Report};

const LAB_DB: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,US
193.0.0.0,193.0.7.255,NL
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US
";

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn api_status_and_metrics_agree() {
    let lab = support::lab("ea");
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().unwrap();
    let [d1, d2, ..] = lab.devices() else { panic!("devices") };
    lab.ping(d1, "36.110.0.1", 4).unwrap();
    lab.ping(d1, "8.8.8.8", 1).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 2).unwrap();
    lab.ping(d2, "45.0.0.1", 3).unwrap();

    let netns = lab.netns_path(&lab.gateway());
    let (code, body) = netns_http::get(&netns, LISTEN, "/api/v1/devices").unwrap();
    assert_eq!(code, 200, "{body}");
    let report: Report = serde_json::from_str(&body).expect("a device report");
    let mut from_api = Vec::new();
    for d in &report.devices {
        for c in &d.countries {
            for (direction, t) in [("upload", c.upload), ("download", c.download)] {
                from_api.push((
                    d.info.mac.clone(),
                    c.country.clone(),
                    direction.to_owned(),
                    t.packets as f64,
                    t.bytes as f64,
                ));
            }
        }
        let sum: u64 = d.countries.iter().map(|c| c.upload.bytes).sum();
        assert_eq!(d.upload.bytes, sum, "device totals add up");
    }
    from_api.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    assert_eq!(
        from_api,
        all_counts(&agent.scrape()),
        "the API and the metrics give the same numbers"
    );
    let d1_report = report.devices.iter().find(|d| d.info.mac == d1.mac).expect("d1 listed");
    assert_eq!(d1_report.countries[0].country, "CN", "most bytes first");
    assert_eq!(d1_report.countries[0].name.as_deref(), Some("China"));
    assert_eq!(d1_report.countries[0].continent.as_deref(), Some("AS"));

    let (code, body) = netns_http::get(&netns, LISTEN, "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");
    let health: Health = serde_json::from_str(&body).expect("health JSON");
    assert_eq!(health.status, "ok");
    assert_eq!(health.interfaces, ["br-lan", "lanv"]);
    assert!(health.geo_loaded_at.is_some() && health.geo_source.contains(".csv"), "{body}");
    let pairs: u64 = report.devices.iter().map(|d| d.countries.len() as u64).sum();
    assert_eq!(
        health.traffic_map.map(|m| m[0]),
        Some(pairs),
        "one map entry per (device, country)"
    );

    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_egress-tracer"))
        .args(["status", "--url", &format!("http://{LISTEN}")])
        .output()
        .expect("status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = table
        .lines()
        .find(|l| l.starts_with(&d1.mac) && l.contains(" CN "))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [d1.mac.as_str(), "CN", "392", "4", "392", "4"]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_egress-tracer"))
        .args(["status", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is `egress-tracer run` listening there?")
    );
    drop(agent);
}

//! The Prometheus files in `deploy/`: `promtool` checks the rules, runs their unit tests and
//! checks the example configuration; the rules and the Grafana dashboard only use metrics the
//! agent exports. (`cargo xtask setup` installs promtool; without it this test says so and
//! passes, so that plain `cargo test` works on a bare machine.)

use std::{collections::BTreeSet, path::PathBuf, process::Command};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every family `/metrics` serves (`lab_counts`/`prometheus` tests scrape them for real).
const EXPORTED: &[&str] = &[
    "egress_tracer_bytes_total",
    "egress_tracer_packets_total",
    "egress_tracer_uncounted_packets_total",
    "egress_tracer_uncounted_bytes_total",
    "egress_tracer_overflow_packets_total",
    "egress_tracer_overflow_bytes_total",
    "egress_tracer_traffic_map_entries",
    "egress_tracer_traffic_map_capacity",
    "egress_tracer_geo_database_info",
    "egress_tracer_geo_database_load_timestamp_seconds",
    "egress_tracer_geo_database_load_duration_seconds",
    "egress_tracer_geo_database_ranges",
    "egress_tracer_reloads_total",
    "egress_tracer_build_info",
    "egress_tracer_blocked_packets_total",
    "egress_tracer_blocked_bytes_total",
    "egress_tracer_policy_violations_total",
    "egress_tracer_events_suppressed_total",
    "egress_tracer_webhook_alerts_total",
    "egress_tracer_device_info",
];

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    Command::new("promtool").args(args).current_dir(deploy().join("prometheus")).output().ok()
}

#[test]
fn promtool_accepts_the_rules_their_tests_and_the_example_config() {
    let Some(out) = promtool(&["check", "rules", "egress-tracer.rules.yml"]) else {
        eprintln!("promtool not installed: skipped (cargo xtask setup installs it)");
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        &["test", "rules", "egress-tracer.rules.test.yml"][..],
        &["check", "config", "prometheus.yml"],
    ] {
        let out = promtool(args).expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let mut used = BTreeSet::new();
    for file in ["prometheus/egress-tracer.rules.yml", "grafana/egress-tracer.json"] {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("egress_tracer_") {
            let name: String =
                rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            used.insert(name.clone());
            rest = &rest[i + name.len()..];
        }
    }
    assert!(used.len() >= 5, "{used:?}");
    let unknown: Vec<_> = used.iter().filter(|n| !EXPORTED.contains(&n.as_str())).collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/egress-tracer.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 4));
    // The multi-gateway view has the page's map: a Geomap keyed by the `country` label.
    let geomap = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "geomap")
        .expect("a geomap panel");
    let layer = &geomap["options"]["layers"][0];
    assert_eq!(layer["location"]["mode"], "lookup");
    assert_eq!(layer["location"]["lookup"], "country");
    assert_eq!(layer["location"]["gazetteer"], "public/gazetteer/countries.json");
    let expr = geomap["targets"][0]["expr"].as_str().unwrap();
    assert!(expr.starts_with("sum by (country) ("), "{expr}");
    assert_eq!(geomap["targets"][0]["format"], "table");
}

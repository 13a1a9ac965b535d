//! Learning mode in the lab: a baseline per device, `new_country` within a second, the
//! baseline kept across SIGTERM and SIGKILL restarts, approval, a proposed policy that
//! `check-config` accepts, `new_device`, a corrupt state file kept aside, upload-volume alerts
//! with the exact byte count, and a real Alertmanager receiving the alerts.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::support::{LAB_DB, agent::Agent};
use serde_json::Value;
use tracer_lab::Lab;

fn lab() -> Lab {
    support::lab("ln")
}

fn state_dir(lab: &Lab) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("et-state-{}", lab.prefix()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn alerts_of(agent: &Agent, kind: &str) -> Vec<Value> {
    let alerts = agent.get_json("/api/v1/alerts");
    alerts["alerts"].as_array().unwrap().iter().filter(|a| a["kind"] == kind).cloned().collect()
}

/// Waits until `n` alerts of `kind` were raised; their list.
fn wait_alerts(agent: &Agent, kind: &str, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let found = alerts_of(agent, kind);
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < deadline, "no {n} {kind} alert(s) within {within:?}: {found:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli(lab: &Lab, args: &[&str]) -> String {
    let bin = support::agent::agent_bin();
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend(args);
    lab.exec(&lab.gateway(), &argv).unwrap_or_else(|e| panic!("egress-tracer {args:?}: {e:#}"))
}

fn baseline_device(agent: &Agent, mac: &str) -> Value {
    let view = agent.get_json("/api/v1/baseline");
    view["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["mac"] == mac)
        .cloned()
        .unwrap_or_else(|| panic!("{mac} not in the baseline: {view:#}"))
}

fn countries(device: &Value) -> Vec<String> {
    device["countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["country"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_baseline_then_new_countries_new_devices_restarts_and_approval() {
    let lab = lab();
    let dir = state_dir(&lab);
    let dir_arg = dir.display().to_string();
    let mut agent =
        Agent::start_with(&lab, LAB_DB, &["--learn-for", "3s", "--state-dir", &dir_arg]);
    lab.warm_up().expect("warm up");
    let [d1, d2, ..] = lab.devices() else { panic!("devices") };
    // Inside d1's window: NL and US form its baseline.
    lab.ping(d1, "193.0.0.1", 2).unwrap();
    lab.ping(d1, "8.8.8.8", 1).unwrap();
    let learning = baseline_device(&agent, &d1.mac);
    assert_eq!(learning["learning"], true, "{learning:#}");
    std::thread::sleep(Duration::from_millis(3500));
    // After it: NL raises nothing; CN raises one new_country alert within a second.
    lab.ping(d1, "193.0.0.1", 1).unwrap();
    let sent = Instant::now();
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    let alerts = wait_alerts(&agent, "new_country", 1, Duration::from_secs(1));
    assert!(sent.elapsed() < Duration::from_secs(1), "within a second of the packet");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["country"], "CN");
    assert_eq!(alerts[0]["device"]["mac"], d1.mac.as_str());
    assert_eq!(alerts[0]["remote"]["address"], "36.110.0.1");
    let rule = alerts[0]["rule"].as_str().unwrap();
    assert!(rule.contains("baseline: NL, US"), "{rule}");
    lab.ping(d1, "36.110.0.1", 2).unwrap();
    let report = agent.get_json("/api/v1/devices");
    let d1_report =
        report["devices"].as_array().unwrap().iter().find(|d| d["mac"] == d1.mac.as_str()).unwrap();
    let cn =
        d1_report["countries"].as_array().unwrap().iter().find(|c| c["country"] == "CN").unwrap();
    assert!(cn["new_since"].is_string(), "CN is new since: {cn:#}");
    let device = baseline_device(&agent, &d1.mac);
    assert_eq!(
        (device["learning"].as_bool(), countries(&device)),
        (Some(false), vec!["NL".to_owned(), "US".to_owned()])
    );
    assert_eq!(device["new"][0]["country"], "CN");

    // A MAC first seen after the network's learning period: one new_device alert.
    lab.ping(d2, "193.0.0.1", 1).unwrap();
    let new_devices = wait_alerts(&agent, "new_device", 1, Duration::from_secs(1));
    assert_eq!(new_devices.len(), 1);
    assert_eq!(new_devices[0]["device"]["mac"], d2.mac.as_str());
    let rule = new_devices[0]["rule"].as_str().unwrap();
    assert!(rule.contains("randomised (locally administered) MAC"), "{rule}");
    assert_eq!(new_devices[0]["country"], "NL", "its first remote's country");
    let d2_until = baseline_device(&agent, &d2.mac)["learning_until"].clone();

    // SIGTERM: the baseline and the windows are kept; CN does not alert again.
    agent.restart();
    let device = baseline_device(&agent, &d1.mac);
    assert_eq!(countries(&device), ["NL", "US"]);
    assert_eq!(device["new"][0]["country"], "CN");
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    // SIGKILL after the periodic save: nothing learned is lost.
    std::thread::sleep(Duration::from_millis(2500));
    agent.kill();
    agent.start_again();
    let d2_after = baseline_device(&agent, &d2.mac);
    assert_eq!(d2_after["learning_until"], d2_until, "d2's window continues where it was");
    assert_eq!(countries(&d2_after), ["NL"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alerts_of(&agent, "new_country").is_empty(), "no repeat after restarts");

    // Approval silences the country; the proposal is a valid configuration.
    let url = format!("http://{}", support::agent::LISTEN);
    let out = cli(&lab, &["baseline", "--url", &url, "approve", &d1.mac, "CN"]);
    assert!(out.contains("approved CN"), "{out}");
    let device = baseline_device(&agent, &d1.mac);
    assert_eq!(device["new"], serde_json::json!([]));
    assert_eq!(device["approved"], serde_json::json!(["CN"]));
    let table = cli(&lab, &["baseline", "--url", &url]);
    assert!(table.contains(&d1.mac) && table.contains("NL"), "{table}");
    let proposal = cli(&lab, &["baseline", "--url", &url, "propose"]);
    assert!(proposal.contains("allow = [\"CN\", \"NL\", \"US\"]"), "{proposal}");
    let file = dir.join("proposed.toml");
    std::fs::write(&file, &proposal).unwrap();
    let checked = cli(&lab, &["check-config", file.to_str().unwrap()]);
    assert!(checked.contains("OK"), "{checked}");
    let samples = agent.scrape();
    assert_eq!(
        support::prom::value(&samples, "egress_tracer_alerts_total", &[("kind", "new_country")]),
        0.0,
        "counted since this start"
    );
    assert_eq!(support::prom::value(&samples, "egress_tracer_baseline_devices", &[]), 2.0);
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_corrupt_state_file_is_kept_aside_and_the_agent_starts_empty() {
    let lab = lab();
    let dir = state_dir(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("baseline.json"), b"{\"version\": 1, \"devices\": {\"02:00").unwrap();
    let dir_arg = dir.display().to_string();
    let agent = Agent::start_with(&lab, LAB_DB, &["--learn-for", "1h", "--state-dir", &dir_arg]);
    let kept: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("baseline.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "kept aside: {kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        b"{\"version\": 1, \"devices\": {\"02:00",
        "unchanged"
    );
    let view = agent.get_json("/api/v1/baseline");
    assert_eq!(view["devices"], serde_json::json!([]), "an empty baseline");
    drop(agent);
    assert!(Path::new(&dir).join("baseline.json").exists(), "a new, valid file on stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root, network namespaces and prometheus-alertmanager: run by cargo xtask test"]
fn upload_volume_alerts_and_a_real_alertmanager_receives_them() {
    let lab = lab();
    let dir = state_dir(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n").unwrap();
    let mut am = lab
        .spawn_in(
            &lab.gateway(),
            &[
                "prometheus-alertmanager",
                &format!("--config.file={}", config.display()),
                &format!("--storage.path={}", dir.join("data").display()),
                "--web.listen-address=127.0.0.1:9093",
                "--cluster.listen-address=",
            ],
        )
        .expect("prometheus-alertmanager (setup installs it)");
    let gw = lab.netns_path(&lab.gateway());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !matches!(support::netns_http::get(&gw, "127.0.0.1:9093", "/-/ready"), Ok((200, _))) {
        assert!(Instant::now() < deadline, "Alertmanager did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent = Agent::start_with(
        &lab,
        LAB_DB,
        &[
            "--allow",
            "eu,US",
            "--upload-alert",
            "CN:3000B/1m",
            "--alertmanager",
            "http://127.0.0.1:9093",
        ],
    );
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("devices") };
    // Three 1,400-byte pings: 3 x (14 + 20 + 8 + 1400) = 4,326 bytes up to CN, past 3,000.
    lab.exec(
        &d1.netns,
        &["ping", "-4", "-n", "-q", "-c", "3", "-i", "0.01", "-s", "1400", "-W", "2", "36.110.0.1"],
    )
    .unwrap();
    let volume = wait_alerts(&agent, "volume", 1, Duration::from_secs(3));
    assert_eq!(volume[0]["upload_bytes"], 4326, "{volume:#?}");
    assert_eq!(volume[0]["country"], "CN");
    assert_eq!(volume[0]["window_secs"], 60);
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts_of(&agent, "volume").len(), 1, "once per window");

    // Alertmanager has the violation and the volume alert, with the right labels.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let (status, body) =
            support::netns_http::get(&gw, "127.0.0.1:9093", "/api/v2/alerts").unwrap();
        assert_eq!(status, 200, "{body}");
        let alerts: Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str())
            .collect();
        if names.contains(&"EgressTracerViolation") && names.contains(&"EgressTracerUploadVolume") {
            break alerts;
        }
        assert!(Instant::now() < deadline, "Alertmanager has {names:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let violation = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "EgressTracerViolation")
        .unwrap();
    assert_eq!(violation["labels"]["mac"], d1.mac.as_str());
    assert_eq!(violation["labels"]["country"], "CN");
    assert_eq!(violation["annotations"]["remote"], "36.110.0.1");
    let delivered = support::prom::value(
        &agent.scrape(),
        "egress_tracer_alertmanager_alerts_total",
        &[("result", "delivered")],
    );
    assert!(delivered >= 2.0, "{delivered}");
    drop(agent);
    let _ = am.kill();
    let _ = am.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

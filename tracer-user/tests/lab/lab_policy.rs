//! The policy in the lab, with the real agent: alerts (once, within a second, with the right
//! fields, repeats summarised), group and device rules, blocking in the kernel, dry runs,
//! webhooks (working and hung), and reloads with a broken configuration.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::time::{Duration, Instant};

use crate::support::{
    LAB_DB,
    agent::{Agent, counts, wait_for_metric, wait_for_reload},
    prom, webhook,
};
use serde_json::Value;
use tracer_lab::Lab;

const CN: &str = "36.110.0.1";
const CN6: &str = "240e::1";
const US: &str = "8.8.8.8";
const NL: &str = "193.0.0.1";

fn lab() -> Lab {
    let lab = support::lab("po");
    lab.warm_up().expect("warm up");
    lab
}

fn alerts(agent: &Agent) -> Vec<Value> {
    agent.get_json("/api/v1/alerts")["alerts"].as_array().cloned().unwrap_or_default()
}

/// Waits up to `limit` for the agent to hold `n` alerts; returns them and how long it took.
fn wait_for_alerts(agent: &Agent, n: usize, limit: Duration) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    loop {
        let list = alerts(agent);
        if list.len() >= n || started.elapsed() > limit {
            return (list, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pings that may go unanswered (blocked traffic); returns whether any reply came.
fn ping_lossy(lab: &Lab, netns: &str, addr: &str, count: u32) -> bool {
    let family = if addr.contains(':') { "-6" } else { "-4" };
    let count = count.to_string();
    lab.exec(netns, &["ping", family, "-n", "-q", "-c", &count, "-i", "0.05", "-W", "1", addr])
        .is_ok()
}

fn violations(agent: &Agent, mac: &str, country: &str) -> f64 {
    prom::value(
        &agent.scrape(),
        "egress_tracer_policy_violations_total",
        &[("mac", mac), ("country", country)],
    )
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn an_unapproved_country_alerts_once_within_a_second_and_repeats_are_summarised() {
    let lab = lab();
    let config = "[policy]\nallow = [\"eu\"]\n[alerts]\nsuppress_secs = 3\n";
    let agent = Agent::start_configured(&lab, LAB_DB, Some(config), &[]);
    let d1 = &lab.devices()[0];

    lab.ping(d1, NL, 3).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alerts(&agent).is_empty(), "NL is in eu: no alert");

    let sent = Instant::now();
    lab.ping(d1, CN, 1).unwrap();
    let (list, _) = wait_for_alerts(&agent, 1, Duration::from_secs(5));
    let latency = sent.elapsed();
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(latency < Duration::from_secs(1), "the alert took {latency:?}");
    let alert = &list[0];
    assert_eq!(alert["kind"], "violation");
    assert_eq!(alert["device"]["mac"], d1.mac.as_str());
    assert_eq!(alert["remote"]["address"], CN);
    assert_eq!(alert["remote"]["protocol"], "icmp");
    assert_eq!(alert["country"], "CN");
    assert_eq!(alert["country_name"], "China");
    assert_eq!(alert["direction"], "upload");
    assert_eq!(
        (alert["action"].as_str(), alert["blocked"].as_bool()),
        (Some("alert"), Some(false))
    );
    assert_eq!(alert["rule"], "[policy]: CN is not in allow (unlisted regions alert)");
    assert!(alert["bytes_so_far"].as_u64().unwrap() >= 98, "{alert}");
    let time = humantime::parse_rfc3339(alert["time"].as_str().unwrap()).unwrap();
    let age = std::time::SystemTime::now().duration_since(time).unwrap_or_default();
    assert!(age < Duration::from_secs(5), "alert time {time:?}");
    let log = agent.stdout();
    let line: Value = serde_json::from_str(log.lines().next().expect("a log line")).unwrap();
    assert_eq!(line["remote"]["address"], CN, "stdout carries the same alert as JSON");

    // The same address again: no new event. A new CN address (v6): suppressed, then summarised.
    lab.ping(d1, CN, 2).unwrap();
    lab.ping(d1, CN6, 2).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(alerts(&agent).len(), 1, "repeats are suppressed inside the window");
    assert_eq!(violations(&agent, &d1.mac, "CN"), 2.0, "two remote addresses, two violations");
    let (list, _) = wait_for_alerts(&agent, 2, Duration::from_secs(6));
    let summary = &list[0];
    assert_eq!(summary["kind"], "summary", "{list:?}");
    assert_eq!((summary["repeats"].as_u64(), summary["window_secs"].as_u64()), (Some(1), Some(3)));
    assert_eq!(summary["repeat_addresses"], serde_json::json!([CN6]));
    assert_eq!(summary["device"]["mac"], d1.mac.as_str());
    assert_eq!(violations(&agent, &d1.mac, "NL"), 0.0);
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn group_rules_and_device_overrides_decide() {
    let lab = lab();
    let [d1, d2, d3, _] = lab.devices() else { panic!("four devices") };
    let config = format!(
        r#"
[policy]
allow = ["eu", "US"]

[[group]]
name = "iot"
alert = ["US"]

[[device]]
mac = "{}"
name = "tv"
group = "iot"
allow = ["US"]

[[device]]
mac = "{}"
name = "camera"
group = "iot"
"#,
        d1.mac, d2.mac
    );
    let agent = Agent::start_configured(&lab, LAB_DB, Some(&config), &[]);
    for d in [d1, d2, d3] {
        lab.ping(d, US, 2).unwrap();
    }
    let (list, _) = wait_for_alerts(&agent, 2, Duration::from_secs(2));
    assert_eq!(list.len(), 1, "only the camera alerts: {list:?}");
    let alert = &list[0];
    assert_eq!(alert["device"]["mac"], d2.mac.as_str());
    assert_eq!(alert["device"]["name"], "camera");
    assert_eq!(alert["device"]["group"], "iot");
    assert_eq!(alert["rule"], "group \"iot\": alert US");
    let devices = agent.get_json("/api/v1/devices");
    let policy_of = |mac: &str| {
        devices["devices"].as_array().unwrap().iter().find(|d| d["mac"] == mac).unwrap()
            ["countries"][0]["policy"]
            .clone()
    };
    assert_eq!(
        [policy_of(&d1.mac), policy_of(&d2.mac), policy_of(&d3.mac)],
        ["allow", "alert", "allow"]
    );
    let samples = agent.scrape();
    let info = prom::matching(&samples, "egress_tracer_device_info", &[("mac", d2.mac.as_str())])
        .map(|(labels, v)| (labels.clone(), v))
        .collect::<Vec<_>>();
    assert_eq!(info.len(), 1, "{info:?}");
    let label = |k: &str| info[0].0.iter().find(|(lk, _)| lk == k).map(|(_, v)| v.clone());
    assert_eq!(
        (label("name"), label("group"), info[0].1),
        (Some("camera".into()), Some("iot".into()), 1.0)
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn block_mode_drops_exactly_the_blocked_packets() {
    let lab = lab();
    let agent = Agent::start_with(&lab, LAB_DB, &["--block", "CN,continent:AF"]);
    let [d1, d2, ..] = lab.devices() else { panic!("four devices") };
    assert!(!ping_lossy(&lab, &d1.netns, CN, 5), "CN is blocked: no replies");
    lab.ping(d1, US, 3).unwrap();
    lab.ping(d2, NL, 2).unwrap();
    let samples = agent.scrape();
    let blocked = |mac: &str, country: &str| {
        prom::value(
            &samples,
            "egress_tracer_blocked_packets_total",
            &[("mac", mac), ("country", country)],
        )
    };
    assert_eq!(blocked(&d1.mac, "CN"), 5.0, "each blocked echo request counted once");
    assert_eq!(counts(&samples, &d1.mac, "CN", "upload"), (0.0, 0.0), "nothing to CN got out");
    assert_eq!(counts(&samples, &d1.mac, "CN", "download"), (0.0, 0.0));
    assert_eq!(counts(&samples, &d1.mac, "US", "upload"), (3.0, 3.0 * 98.0));
    assert_eq!(counts(&samples, &d1.mac, "US", "download"), (3.0, 3.0 * 98.0));
    assert_eq!(counts(&samples, &d2.mac, "NL", "download"), (2.0, 2.0 * 98.0));
    assert_eq!(blocked(&d1.mac, "US") + blocked(&d2.mac, "NL"), 0.0);
    let (list, _) = wait_for_alerts(&agent, 1, Duration::from_secs(2));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0]["action"].as_str(), list[0]["blocked"].as_bool()),
        (Some("block"), Some(true))
    );
    assert_eq!(list[0]["rule"], "[policy]: block CN");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn dry_run_alerts_but_drops_nothing() {
    let lab = lab();
    let agent = Agent::start_with(&lab, LAB_DB, &["--block", "CN", "--dry-run"]);
    let d1 = &lab.devices()[0];
    lab.ping(d1, CN, 3).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, &d1.mac, "CN", "download"), (3.0, 3.0 * 98.0));
    assert_eq!(prom::matching(&samples, "egress_tracer_blocked_packets_total", &[]).count(), 0);
    let (list, _) = wait_for_alerts(&agent, 1, Duration::from_secs(2));
    assert_eq!(
        (list[0]["action"].as_str(), list[0]["blocked"].as_bool()),
        (Some("alert"), Some(false))
    );
    assert_eq!(list[0]["rule"], "[policy]: block CN (dry run: not dropped)");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_webhook_receives_each_alert_as_json() {
    let lab = lab();
    let gw = lab.netns_path(&lab.gateway());
    let receiver = webhook::start(&gw, false);
    let agent =
        Agent::start_with(&lab, LAB_DB, &["--allow", "eu,US", "--webhook", receiver.url.as_str()]);
    let [d1, d2, ..] = lab.devices() else { panic!("four devices") };
    lab.ping(d1, CN, 1).unwrap();
    lab.ping(d2, CN6, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.bodies().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got: Vec<(String, String)> = receiver
        .bodies()
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            (
                v["device"]["mac"].as_str().unwrap().to_owned(),
                v["remote"]["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, [(d1.mac.clone(), CN.to_owned()), (d2.mac.clone(), CN6.to_owned())]);
    // The receiver records a body before it answers; the agent counts it once the answer is in.
    wait_for_metric(&agent, "egress_tracer_webhook_alerts_total", &[("result", "delivered")], 2.0);
    let samples = agent.scrape();
    let delivered =
        prom::value(&samples, "egress_tracer_webhook_alerts_total", &[("result", "delivered")]);
    assert_eq!(delivered, 2.0, "two alerts, each delivered once");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_hung_webhook_delays_neither_counting_nor_alerts() {
    let lab = lab();
    let gw = lab.netns_path(&lab.gateway());
    let receiver = webhook::start(&gw, true);
    let agent = Agent::start_with(
        &lab,
        LAB_DB,
        &["--allow", "eu", "--webhook", receiver.url.as_str(), "--webhook-timeout-secs", "60"],
    );
    let [d1, d2, d3, d4] = lab.devices() else { panic!("four devices") };
    for (i, d) in [d1, d2, d3, d4].into_iter().enumerate() {
        lab.ping(d, CN, 1).unwrap();
        lab.ping(d, CN6, 1).unwrap();
        lab.ping(d, US, i as u32 + 1).unwrap();
    }
    let (list, took) = wait_for_alerts(&agent, 8, Duration::from_secs(2));
    assert!(list.len() >= 4, "alerts keep coming while the webhook hangs: {list:?} after {took:?}");
    let samples = agent.scrape();
    for (i, d) in [d1, d2, d3, d4].into_iter().enumerate() {
        let n = i as f64 + 1.0;
        assert_eq!(counts(&samples, &d.mac, "US", "upload"), (n, n * 98.0), "{}", d.name);
        assert_eq!(counts(&samples, &d.mac, "CN", "download"), (2.0, 98.0 + 118.0), "{}", d.name);
    }
    assert!(receiver.connections() >= 1, "the agent did try the webhook");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_broken_config_keeps_the_old_policy_and_a_good_one_applies() {
    let lab = lab();
    let agent = Agent::start_configured(&lab, LAB_DB, Some("[policy]\nallow = [\"eu\"]\n"), &[]);
    let [d1, d2, d3, _] = lab.devices() else { panic!("four devices") };
    agent.write_config("[policy]\nallow = [\"eu\", \"atlantis\"]\n");
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_reload(&agent, "failure", 1.0);
    lab.ping(d1, CN, 1).unwrap();
    let (list, _) = wait_for_alerts(&agent, 1, Duration::from_secs(2));
    assert_eq!(list.len(), 1, "the old policy still alerts on CN: {list:?}");

    // A good file is picked up by the file watch alone (no SIGHUP).
    agent.write_config("[policy]\nallow = [\"eu\", \"CN\"]\nblock = [\"US\"]\n");
    wait_for_reload(&agent, "success", 1.0);
    lab.ping(d2, CN, 1).unwrap();
    assert!(!ping_lossy(&lab, &d3.netns, US, 2), "the new policy blocks US");
    let (list, _) = wait_for_alerts(&agent, 2, Duration::from_secs(2));
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        (list[0]["device"]["mac"].as_str(), list[0]["country"].as_str()),
        (Some(d3.mac.as_str()), Some("US"))
    );
}

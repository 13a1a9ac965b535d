//! Device names in the lab: hostile hostnames from a DHCP lease file reach logs, JSON and
//! metrics only escaped; addresses come from the kernel's neighbour table; a changed lease file
//! renames a device without a restart.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::time::{Duration, Instant};

use crate::support::{
    LAB_DB,
    agent::{Agent, write_file},
    prom, promtool,
};
use serde_json::Value;

/// d1's hostname: quotes, backslashes, a carriage return, an escape sequence, invalid UTF-8.
const HOSTILE: &[u8] = b"ev\"il\\na\rme\x1b[31m\xff\xfe";
/// How [`HOSTILE`] must appear everywhere.
const HOSTILE_SHOWN: &str = r#"ev\"il\\na\rme\x1b[31m\xff\xfe"#;

fn leases(lab: &tracer_lab::Lab, d2_name: &[u8]) -> Vec<u8> {
    let [d1, d2, d3, _] = lab.devices() else { panic!("four devices") };
    let mut text = Vec::new();
    text.extend_from_slice(format!("1764000000 {} {} ", d1.mac, d1.ipv4).as_bytes());
    text.extend_from_slice(HOSTILE);
    text.extend_from_slice(b" *\n");
    text.extend_from_slice(format!("1764000000 {} {} ", d2.mac, d2.ipv4).as_bytes());
    text.extend_from_slice(d2_name);
    text.extend_from_slice(b" *\n");
    // A newline inside a name cannot smuggle in a device: the second half is not a lease.
    text.extend_from_slice(
        format!(
            "1764000000 {} {} split\n1 02:00:00:00:00:99 10.77.0.99 injected *\n",
            d3.mac, d3.ipv4
        )
        .as_bytes(),
    );
    text
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> &'a str {
    labels.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn hostile_hostnames_appear_escaped_in_logs_json_and_metrics() {
    let lab = support::lab("dv");
    lab.warm_up().expect("warm up");
    let [d1, d2, d3, _] = lab.devices() else { panic!("four devices") };
    let long = vec![b'L'; 1024];
    let file = write_file(&format!("{}.leases", lab.prefix()), "");
    std::fs::write(file.path(), leases(&lab, &long)).unwrap();
    let path = file.path().display().to_string();
    let agent = Agent::start_with(&lab, LAB_DB, &["--allow", "eu", "--leases", &path]);
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    lab.ping(d2, "36.110.0.1", 1).unwrap();
    lab.ping(d3, "193.0.0.1", 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while agent.get_json("/api/v1/alerts")["alerts"].as_array().map_or(0, Vec::len) < 2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }

    // JSON API: the alert and the device list carry the escaped, capped names.
    let alerts = agent.get_json("/api/v1/alerts");
    let name_of = |mac: &str| -> Option<String> {
        alerts["alerts"].as_array()?.iter().find(|a| a["device"]["mac"] == mac)?["device"]["name"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(name_of(&d1.mac).as_deref(), Some(HOSTILE_SHOWN));
    let capped = name_of(&d2.mac).unwrap();
    assert_eq!(capped, format!("{}…", "L".repeat(64)), "1 KiB names are capped");
    let devices = agent.get_json("/api/v1/devices");
    let listed: Vec<&Value> = devices["devices"].as_array().unwrap().iter().collect();
    let d1_entry = listed.iter().find(|d| d["mac"] == d1.mac.as_str()).unwrap();
    assert_eq!(d1_entry["name"], HOSTILE_SHOWN);
    assert!(
        d1_entry["ipv4"].as_array().unwrap().iter().any(|a| a == d1.ipv4.as_str()),
        "addresses from the neighbour table and the lease: {d1_entry}"
    );
    assert!(!listed.iter().any(|d| d["mac"] == "02:00:00:00:00:99"), "no injected device");
    assert!(
        d1_entry["ipv6"].as_array().unwrap().iter().any(|a| a == d1.ipv6.as_str()),
        "the IPv6 address is in no lease: it comes from the neighbour table: {d1_entry}"
    );

    // Logs: every stdout line is one JSON object; no raw control character got through.
    let log = agent.stdout();
    assert!(!log.bytes().any(|b| b == 0x1b || b == b'\r'), "raw control bytes in the log");
    let logged: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert!(logged.iter().any(|a| a["device"]["name"] == HOSTILE_SHOWN), "{log}");

    // Metrics: promtool accepts them, and device_info carries the same escaped names.
    let (_, exposition) =
        support::netns_http::get(agent.netns(), support::agent::LISTEN, "/metrics").unwrap();
    promtool::check_metrics(&exposition);
    let samples = prom::parse(&exposition);
    let info: Vec<_> = prom::matching(&samples, "egress_tracer_device_info", &[]).collect();
    let shown = |mac: &str| {
        info.iter().find(|(l, _)| label(l, "mac") == mac).map(|(l, _)| label(l, "name").to_owned())
    };
    assert_eq!(shown(&d1.mac).as_deref(), Some(HOSTILE_SHOWN));
    assert_eq!(shown(&d2.mac), Some(capped));
    assert_eq!(shown(&d3.mac).as_deref(), Some("split"));
    assert_eq!(label(info[0].0, "vendor"), "locally administered", "the lab's MACs are 02:...");

    // A changed lease file renames the device without a restart.
    std::fs::write(file.path(), leases(&lab, b"camera")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let devices = agent.get_json("/api/v1/devices");
        let d2_name = devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["mac"] == d2.mac.as_str())
            .map(|d| d["name"].clone());
        if d2_name == Some(Value::from("camera")) {
            break;
        }
        assert!(Instant::now() < deadline, "not renamed: {d2_name:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

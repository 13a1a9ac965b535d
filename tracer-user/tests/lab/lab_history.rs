//! The traffic history in the lab: exact bytes per (device, country) bucket, kept across a
//! restart of the agent (saved at SIGTERM, loaded at start), and a corrupt file kept aside.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::time::Duration;

use crate::support::{LAB_DB, agent::Agent};
use serde_json::Value;

/// Ethernet + IPv4 + ICMP header + 56 bytes of ping payload.
const PING4: u64 = 98;

/// Upload bytes of one (device, country) series over the whole range, and the series count.
fn upload(view: &Value, mac: &str, country: &str) -> u64 {
    view["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["mac"] == mac && s["country"] == country)
        .flat_map(|s| s["upload_bytes"].as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap())
        .sum()
}

/// Waits until the history (recorded every 10 s) holds `want` upload bytes for the pair.
fn wait_for(agent: &Agent, mac: &str, country: &str, want: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    loop {
        let view = agent.get_json(&format!("/api/v1/history?range=24h&mac={mac}"));
        if upload(&view, mac, country) == want {
            return view;
        }
        assert!(std::time::Instant::now() < deadline, "history never reached {want}: {view:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn the_history_is_exact_and_survives_a_restart_and_a_corrupt_file() {
    let lab = support::lab("hi");
    let dir = std::env::temp_dir().join(format!("et-history-{}", lab.prefix()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let mut agent = Agent::start_with(&lab, LAB_DB, &["--state-dir", &dir_arg]);
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("devices") };
    lab.ping(d1, "36.110.0.1", 4).unwrap();
    let view = wait_for(&agent, &d1.mac, "CN", 4 * PING4);
    assert_eq!(view["range"], "24h");
    assert_eq!(view["step_secs"], 300);
    assert_eq!(view["buckets"], 288);
    let total: u64 = view["total"]["download_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 4 * PING4, "replies, in the total");
    let week = agent.get_json(&format!("/api/v1/history?range=7d&mac={}", d1.mac));
    assert_eq!((week["step_secs"].as_u64(), week["buckets"].as_u64()), (Some(3600), Some(168)));
    assert_eq!(upload(&week, &d1.mac, "CN"), 4 * PING4, "the hourly view has it too");

    // SIGTERM saves; the next agent loads and continues without counting anything twice.
    agent.restart();
    assert!(dir.join("history.bin").is_file(), "saved at stop");
    assert_eq!(
        upload(&agent.get_json(&format!("/api/v1/history?mac={}", d1.mac)), &d1.mac, "CN"),
        4 * PING4
    );
    lab.ping(d1, "36.110.0.1", 2).unwrap();
    wait_for(&agent, &d1.mac, "CN", 6 * PING4);
    let size = std::fs::metadata(dir.join("history.bin")).unwrap().len();
    eprintln!("history.bin: {size} bytes");
    assert!(size < 4096, "two buckets of one pair: {size} bytes");

    // `egress-tracer reset` (or a reboot) between two runs: the counters start from zero while
    // the saved history remembers 6 pings. The 8 pings after it are all new traffic, though
    // the counter grows past the saved value (counted as 8 - 6 before the agent told them apart).
    agent.stop();
    let out = std::process::Command::new(support::agent::agent_bin())
        .arg("reset")
        .arg("--bpffs-dir")
        .arg(&agent.bpffs_dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("removed the pinned counters"), "{out}");
    agent.start_again();
    lab.ping(d1, "36.110.0.1", 8).unwrap();
    wait_for(&agent, &d1.mac, "CN", 14 * PING4);

    // A corrupt file is kept aside, reported, and the agent starts an empty history.
    agent.stop();
    std::fs::write(dir.join("history.bin"), b"EGTH\x01 truncated").unwrap();
    agent.start_again();
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("history.bin.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "kept aside");
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), b"EGTH\x01 truncated", "unchanged");
    let fresh = agent.get_json(&format!("/api/v1/history?mac={}", d1.mac));
    assert_eq!(
        upload(&fresh, &d1.mac, "CN"),
        0,
        "an empty history, the counts since boot not dumped in"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

//! One hostile LAN device against the agent's bounds, with default settings: a MAC flood
//! (100,000 forged source MACs) and an address scan (200,000 distinct addresses in a country
//! the policy does not approve). Every output stays bounded by the real devices, every packet
//! is accounted for exactly once, and the churn is visible (`new_macs_total`, one `mac_flood`
//! alert).
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{net::Ipv4Addr, time::Duration};

use crate::support::{
    agent::{Agent, LISTEN},
    frames::{Frame, IPV4},
    prom::{self, Samples},
};

/// What a scrape counted: (packets, bytes) over every upload series plus the overflow.
fn upload_accounted(samples: &Samples) -> (f64, f64) {
    let sum = |name: &str| -> f64 {
        prom::matching(samples, name, &[("direction", "upload")]).map(|(_, v)| v).sum()
    };
    (
        sum("egress_tracer_packets_total")
            + prom::value(samples, "egress_tracer_overflow_packets_total", &[]),
        sum("egress_tracer_bytes_total")
            + prom::value(samples, "egress_tracer_overflow_bytes_total", &[]),
    )
}

/// Resident and peak memory of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn get(agent: &Agent, path: &str) -> String {
    let (status, body) = support::netns_http::get(agent.netns(), LISTEN, path).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_mac_flood_is_bounded_counted_and_alerted_once() {
    const FLOOD: usize = 100_000;
    let lab = support::lab("mf");
    let agent = Agent::start(&lab, support::LAB_DB);
    lab.warm_up().expect("warm up");
    let [.., d4] = lab.devices() else { panic!("the lab has four devices") };
    let lanv = lab.mac(&lab.gateway(), "lanv").unwrap();
    // The real devices talk beyond the LAN before the flood, and a scrape sees them.
    for d in lab.devices() {
        lab.ping(d, "8.8.8.8", 1).unwrap();
    }
    let before = agent.scrape();
    let new_before = prom::value(&before, "egress_tracer_new_macs_total", &[]);
    let (packets_before, bytes_before) = upload_accounted(&before);

    // One frame from each of 100,000 distinct unicast, locally administered source MACs, to a
    // US and a CN address by turns, sent on the gateway's routed LAN port.
    let us: Ipv4Addr = "8.8.8.8".parse().unwrap();
    let cn: Ipv4Addr = "36.110.0.1".parse().unwrap();
    let lan_ip: Ipv4Addr = "10.77.100.14".parse().unwrap();
    let frames: Vec<Vec<u8>> = (0..FLOOD as u32)
        .map(|i| {
            let [_, a, b, c] = i.to_be_bytes();
            let src = [0x02, 0xf1, 0x00, a, b, c];
            let dst = if i % 2 == 0 { us } else { cn };
            Frame::eth(lanv, src).ethertype(IPV4).ipv4(lan_ip, dst, 5, 32).0
        })
        .collect();
    let frame_len = frames[0].len() as f64;
    // The traffic map holds this many (device, country) entries by default; the flood fills it
    // and the rest is overflow.
    let entries = f64::from(tracer_common::maps::DEFAULT_COUNTER_ENTRIES);
    tracer_lab::inject(&lab.netns_path(&d4.netns), "eth0", &frames).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Every frame is counted once: in a series (mac="other" for most) or as overflow.
    let metrics = get(&agent, "/metrics");
    let after = prom::parse(&metrics);
    let (packets, bytes) = upload_accounted(&after);
    assert_eq!(packets - packets_before, FLOOD as f64, "packets accounted");
    assert_eq!(bytes - bytes_before, FLOOD as f64 * frame_len, "bytes accounted");
    assert!(
        prom::value(&after, "egress_tracer_overflow_packets_total", &[]) > 0.0,
        "the traffic map filled"
    );
    let other_us = prom::value(
        &after,
        "egress_tracer_packets_total",
        &[("mac", "other"), ("country", "US"), ("direction", "upload")],
    );
    // Half the forged devices went to the US, and all but the real ones are folded.
    assert!(other_us > 0.45 * entries, "folded devices are summed per country: {other_us}");
    assert_eq!(
        prom::value(&after, "egress_tracer_new_macs_total", &[]) - new_before,
        FLOOD as f64,
        "each forged MAC is new once"
    );
    let folded = prom::value(&after, "egress_tracer_metrics_folded_devices", &[]);
    assert!(folded > 0.9 * entries, "the folded devices are said: {folded}");
    let series_macs: std::collections::BTreeSet<&str> =
        prom::matching(&after, "egress_tracer_packets_total", &[])
            .filter_map(|(labels, _)| {
                labels.iter().find(|(k, _)| k == "mac").map(|(_, v)| v.as_str())
            })
            .collect();
    assert!(series_macs.len() <= 256 + 1, "at most the device cap plus other");
    for d in lab.devices() {
        assert!(series_macs.contains(d.mac.as_str()), "the real device {} keeps its series", d.mac);
    }
    eprintln!("after the flood: /metrics {} bytes, {} devices folded", metrics.len(), folded);
    assert!(metrics.len() <= 2 << 20, "/metrics is {} bytes", metrics.len());

    // The devices API pages: bounded per page, the total says how many there are.
    let page = get(&agent, "/api/v1/devices");
    let page_len = page.len();
    assert!(page.len() <= 1 << 20, "/api/v1/devices is {} bytes", page.len());
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["devices"].as_array().unwrap().len(), 100);
    let total = page["total_devices"].as_u64().unwrap() as f64;
    assert!(total > 0.9 * entries, "{total} devices");
    let big = get(&agent, "/api/v1/devices?limit=1000&offset=30000");
    assert!(big.len() <= 1 << 20, "a page of 1000 is {} bytes", big.len());
    eprintln!("devices API: a page of 100 {} bytes, of 1000 {} bytes", page_len, big.len());

    // What the page loads, as a browser would: the page, its JSON, the first devices' remotes.
    get(&agent, "/");
    get(&agent, "/api/v1/alerts");
    for d in page["devices"].as_array().unwrap().iter().take(10) {
        get(&agent, &format!("/api/v1/devices/{}/remotes", d["mac"].as_str().unwrap()));
    }
    for _ in 0..3 {
        get(&agent, "/metrics");
    }
    let (rss, peak) = memory_kib(agent.pid());
    eprintln!("agent after the flood: RSS {rss} KiB, peak {peak} KiB");
    assert!(rss <= 48 << 10, "agent RSS {rss} KiB after a MAC flood");

    // Exactly one mac_flood alert, naming the rate.
    let alerts = agent.get_json("/api/v1/alerts");
    let floods: Vec<&serde_json::Value> =
        alerts["alerts"].as_array().unwrap().iter().filter(|a| a["kind"] == "mac_flood").collect();
    assert_eq!(floods.len(), 1, "{alerts:#}");
    assert!(floods[0]["new_macs"].as_u64().unwrap() > 200, "{:#}", floods[0]);
    assert!(floods[0]["rule"].as_str().unwrap().contains("--mac-flood-rate 20"));
    let s = agent.scrape();
    assert_eq!(prom::value(&s, "egress_tracer_alerts_total", &[("kind", "mac_flood")]), 1.0);
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn an_address_scan_under_an_alerting_policy_stays_bounded() {
    const SCAN: u32 = 200_000;
    let lab = support::lab("sc");
    // A database where all of 36.0.0.0/8 is CN, so the scan has 200,000 distinct CN addresses.
    let db = "36.0.0.0,36.255.255.255,CN\n8.8.8.0,8.8.8.255,US\n";
    let agent = Agent::start_with(&lab, db, &["--allow", "US", "--alert-suppress-secs", "3"]);
    lab.warm_up().expect("warm up");
    let [.., d4] = lab.devices() else { panic!("the lab has four devices") };
    let lanv = lab.mac(&lab.gateway(), "lanv").unwrap();
    let dev = lab.mac(&d4.netns, "eth0").unwrap();
    let lan_ip: Ipv4Addr = "10.77.100.14".parse().unwrap();
    let before = agent.scrape();
    let frames: Vec<Vec<u8>> = (0..SCAN)
        .map(|i| {
            let dst = Ipv4Addr::from(u32::from_be_bytes([36, 0, 0, 0]) + i * 7 + 1);
            Frame::eth(lanv, dev).ethertype(IPV4).ipv4(lan_ip, dst, 5, 16).0
        })
        .collect();
    let frame_len = frames[0].len() as f64;
    tracer_lab::inject(&lab.netns_path(&d4.netns), "eth0", &frames).unwrap();
    // The window (3 s) ends and the summary is written.
    std::thread::sleep(Duration::from_secs(5));
    let after = agent.scrape();
    let mac = d4.mac.as_str();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        prom::value(&after, name, labels) - prom::value(&before, name, labels)
    };
    let cn = [("mac", mac), ("country", "CN"), ("direction", "upload")];
    assert_eq!(delta("egress_tracer_packets_total", &cn), f64::from(SCAN));
    assert_eq!(delta("egress_tracer_bytes_total", &cn), f64::from(SCAN) * frame_len);
    // Each address is new: every packet asked for an event; the kernel sent at most its
    // budget and counted the rest.
    let received =
        delta("egress_tracer_policy_violations_total", &[("mac", mac), ("country", "CN")]);
    let suppressed = delta("egress_tracer_events_suppressed_total", &[]);
    assert_eq!(
        received + suppressed,
        f64::from(SCAN),
        "received {received}, suppressed {suppressed}"
    );
    assert!(received <= 2.0 * 100.0 * 10.0, "rate-limited: {received} events");
    // One alert and one summary of the repeats, with at most 8 addresses.
    let alerts = agent.get_json("/api/v1/alerts");
    let list = alerts["alerts"].as_array().unwrap();
    let of =
        |kind: &str| list.iter().filter(|a| a["kind"] == kind && a["device"]["mac"] == mac).count();
    assert_eq!((of("violation"), of("summary")), (1, 1), "{alerts:#}");
    let summary = list.iter().find(|a| a["kind"] == "summary").unwrap();
    assert_eq!(summary["repeats"].as_f64().unwrap(), received - 1.0);
    assert!(summary["repeat_addresses"].as_array().unwrap().len() <= 8);
    // The remote table filled; what did not fit is still counted, exactly.
    support::conservation::assert_conserved(&agent, "after the scan");
    let (rss, peak) = memory_kib(agent.pid());
    eprintln!("agent after the scan: RSS {rss} KiB, peak {peak} KiB");
    assert!(rss <= 48 << 10, "agent RSS {rss} KiB after an address scan");
    let page = get(&agent, "/api/v1/alerts");
    assert!(page.len() <= 1 << 20, "/api/v1/alerts is {} bytes", page.len());
}

//! The remote table in the lab: per (device, remote address) traffic is exact, and for every
//! device live + expired + overflow remotes sum exactly to its per-country counters, with many
//! addresses, a full table, idle expiry, and a SIGKILL + restart.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{collections::BTreeMap, time::Duration};

use crate::support::{
    LAB_DB,
    agent::{Agent, wait_for_reload},
    conservation::{assert_conserved, remote_totals, remotes, traffic},
};
use serde_json::Value;
use tracer_lab::Lab;

/// Ethernet + IPv4 + ICMP header + 56 bytes of ping payload.
const PING4: u64 = 98;
/// Ethernet + IPv6 + ICMPv6 header + 56 bytes of ping payload.
const PING6: u64 = 118;

/// The lab's ASN database (ip-location-db's asn CSV layout).
const LAB_ASN: &str = "\
36.110.0.0,36.110.255.255,4134,\"CHINANET-BACKBONE, No.31,Jin-rong Street\"
8.8.8.0,8.8.8.255,15169,Google LLC
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,4134,CHINANET-BACKBONE
";

fn lab() -> Lab {
    support::lab("rm")
}

fn answer_prefix(lab: &Lab, prefix: &str) {
    lab.answer_prefix(prefix).expect("local route in the internet namespace");
}

fn find<'a>(view: &'a Value, address: &str) -> &'a Value {
    support::agent::remote(view, address)
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn every_remote_is_counted_exactly_with_its_country_and_organisation() {
    let lab = lab();
    let asn = support::agent::write_file(&format!("{}-asn.csv", lab.prefix()), LAB_ASN);
    let asn_path = asn.path().display().to_string();
    let agent = Agent::start_with(&lab, LAB_DB, &["--asn", &asn_path]);
    answer_prefix(&lab, "36.110.1.0/24");
    answer_prefix(&lab, "240e:1::/64");
    lab.warm_up().expect("warm up");
    let [d1, d2, ..] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d1, "36.110.0.1", 3).unwrap();
    lab.ping(d1, "8.8.8.8", 2).unwrap();
    for i in 1..=20 {
        lab.ping(d1, &format!("36.110.1.{i}"), 1).unwrap();
    }
    lab.ping(d2, "193.0.0.1", 2).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 2).unwrap();
    for i in 1..=10 {
        lab.ping(d2, &format!("240e:1::{i:x}"), 1).unwrap();
    }

    let view = remotes(&agent, &d1.mac);
    assert_eq!(view["total"], 22, "{view:#}");
    let cn = find(&view, "36.110.0.1");
    assert_eq!(traffic(&cn["upload"]), (3, 3 * PING4));
    assert_eq!(traffic(&cn["download"]), (3, 3 * PING4));
    assert_eq!(traffic(&cn["blocked"]), (0, 0));
    assert_eq!(cn["country"], "CN");
    assert_eq!(cn["protocol"], "icmp");
    assert_eq!(cn["port"], Value::Null);
    assert_eq!(cn["asn"]["number"], 4134);
    assert_eq!(cn["asn"]["org"], "CHINANET-BACKBONE, No.31,Jin-rong Street");
    assert!(cn["first_seen"].as_str().unwrap() <= cn["last_seen"].as_str().unwrap());
    let us = find(&view, "8.8.8.8");
    assert_eq!((traffic(&us["upload"]), us["country"].as_str()), ((2, 2 * PING4), Some("US")));
    assert_eq!(us["asn"]["number"], 15169);
    assert_eq!(traffic(&find(&view, "36.110.1.17")["upload"]), (1, PING4));
    assert_eq!(view["remotes"][0]["address"], "36.110.0.1", "most bytes first");

    let view2 = remotes(&agent, &d2.mac);
    assert_eq!(view2["total"], 12, "{view2:#}");
    let nl = find(&view2, "193.0.0.1");
    assert_eq!((nl["country"].as_str(), &nl["asn"]), (Some("NL"), &Value::Null));
    let v6 = find(&view2, "240e:1::a");
    assert_eq!((traffic(&v6["download"]), v6["country"].as_str()), ((1, PING6), Some("CN")));
    assert_eq!(v6["protocol"], "icmpv6");

    let only_us = agent.get_json(&format!("/api/v1/devices/{}/remotes?country=us", d1.mac));
    assert_eq!(only_us["total"], 1, "{only_us:#}");
    let top = agent.get_json(&format!("/api/v1/devices/{}/remotes?limit=2", d1.mac));
    assert_eq!((top["total"].as_u64(), top["remotes"].as_array().unwrap().len()), (Some(22), 2));
    assert_conserved(&agent, "after traffic to 34 addresses");

    // `status --device` prints the same numbers.
    let out = lab
        .exec(
            &lab.gateway(),
            &[
                support::agent::agent_bin().to_str().unwrap(),
                "status",
                "--url",
                &format!("http://{}", support::agent::LISTEN),
                "--device",
                &d1.mac,
            ],
        )
        .expect("status --device");
    let line =
        out.lines().find(|l| l.starts_with("36.110.0.1 ")).unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "CN", "{line}");
    assert!(line.contains("AS4134"), "{line}");
    assert!(line.contains(&format!(" {} ", 3 * PING4)), "{line}");
    assert!(out.contains("remotes of"), "{out}");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_full_table_idle_expiry_and_a_sigkill_lose_nothing() {
    let lab = lab();
    let mut agent =
        Agent::start_with(&lab, LAB_DB, &["--remote-entries", "4", "--remote-idle", "2"]);
    lab.warm_up().expect("warm up");
    let [d1, d2, ..] = lab.devices() else { panic!("the lab has devices") };
    // Each CPU has 4 slots: d1's four remotes fill CPU 0's, and d2's remotes on CPU 0 find
    // no free slot, so they go to d2's overflow total.
    for (addr, n) in [("36.110.0.1", 2), ("8.8.8.8", 1), ("193.0.0.1", 1), ("45.0.0.1", 1)] {
        lab.ping_on_cpu(d1, addr, n, 0).unwrap();
    }
    lab.ping_on_cpu(d2, "240e::1", 3, 0).unwrap();
    lab.ping_on_cpu(d2, "2001:4860:4860::8888", 1, 0).unwrap();
    let full = remotes(&agent, &d2.mac);
    assert_eq!(full["total"], 0, "{full:#}");
    assert_eq!(traffic(&full["overflow"]["upload"]), (4, 4 * PING6), "{full:#}");
    assert_eq!(traffic(&full["overflow"]["download"]), (4, 4 * PING6), "{full:#}");
    assert_conserved(&agent, "with a full table");
    let samples = agent.scrape();
    assert_eq!(support::prom::value(&samples, "egress_tracer_remote_entries", &[]), 4.0);
    assert_eq!(support::prom::value(&samples, "egress_tracer_remote_slots", &[]), 4.0);
    let cpus = aya::util::nr_cpus().expect("possible CPUs");
    assert_eq!(
        support::prom::value(&samples, "egress_tracer_remote_capacity", &[]),
        (4 * cpus) as f64
    );

    // A reload swaps the programs; the new ones use the same pinned slots, full on CPU 0 (one
    // more packet overflows).
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_reload(&agent, "success", 1.0);
    lab.ping_on_cpu(d2, "2001:4860:4860::8888", 1, 0).unwrap();
    let full = remotes(&agent, &d2.mac);
    assert_eq!(traffic(&full["overflow"]["upload"]), (5, 5 * PING6), "{full:#}");

    // Idle for longer than --remote-idle: every entry is retired into its device's expired
    // total, and the freed room takes new remotes.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let view = remotes(&agent, &d1.mac);
        if view["total"] == 0 {
            assert_eq!(traffic(&view["expired"]["upload"]), (5, 5 * PING4), "{view:#}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not retired within 15 s: {view:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_conserved(&agent, "after idle expiry");
    lab.ping_on_cpu(d2, "240e::1", 2, 0).unwrap();
    let view = remotes(&agent, &d2.mac);
    assert_eq!(traffic(&find(&view, "240e::1")["upload"]), (2, 2 * PING6), "{view:#}");
    assert_conserved(&agent, "after new traffic into the freed room");
    let samples = agent.scrape();
    assert!(support::prom::value(&samples, "egress_tracer_remote_retirements_total", &[]) >= 4.0);

    // SIGKILL: the programs keep counting remotes into the pinned maps; the next agent reads
    // them on.
    agent.kill();
    lab.ping(d2, "240e::1", 3).unwrap();
    lab.ping(d1, "8.8.8.8", 2).unwrap();
    agent.start_again();
    let view = remotes(&agent, &d2.mac);
    // 5 overflowed, then 2 and 3 (while no agent ran) to 240e::1: live or expired by now.
    assert_eq!(remote_totals(&view)[0], (10, 10 * PING6), "counted while no agent ran: {view:#}");
    assert_conserved(&agent, "after a SIGKILL and a restart");
}

/// The IPFIX export read back by a real collector: Debian's nfcapd in the gateway namespace,
/// `nfdump -r` afterwards, per remote and direction, against the remotes API.
#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn nfdump_reads_back_the_exact_bytes_of_every_remote() {
    let lab = lab();
    let dir = std::env::temp_dir().join(format!("et-lab-ipfix-{}", lab.prefix()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.display().to_string();
    let mut nfcapd = lab
        .spawn_in(
            &lab.gateway(),
            &["nfcapd", "-b", "127.0.0.1", "-p", "4739", "-t", "3600", "-w", &dir_arg],
        )
        .expect("nfcapd (setup installs nfdump)");
    std::thread::sleep(Duration::from_millis(500));
    let agent =
        Agent::start_with(&lab, LAB_DB, &["--ipfix", "127.0.0.1:4739", "--ipfix-interval", "1"]);
    lab.warm_up().expect("warm up");
    let [d1, d2, ..] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d1, "36.110.0.1", 4).unwrap();
    lab.ping(d1, "8.8.8.8", 2).unwrap();
    lab.ping(d2, "240e::1", 3).unwrap();
    lab.ping(d2, "193.0.0.1", 1).unwrap();
    // Two export intervals with no traffic: everything counted has been exported.
    std::thread::sleep(Duration::from_millis(2500));
    let exported = support::prom::value(&agent.scrape(), "egress_tracer_ipfix_records_total", &[]);
    assert!(exported >= 8.0, "{exported} records exported");
    let mut want: BTreeMap<(String, String, u64), (u64, u64)> = BTreeMap::new();
    for device in [d1, d2] {
        for r in remotes(&agent, &device.mac)["remotes"].as_array().unwrap() {
            let address = r["address"].as_str().unwrap().to_owned();
            want.insert((device.mac.clone(), address.clone(), 1), traffic(&r["upload"]));
            want.insert((device.mac.clone(), address, 0), traffic(&r["download"]));
        }
    }
    assert_eq!(want.len(), 8);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(nfcapd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = nfcapd.wait();
    let mut got: BTreeMap<(String, String, u64), (u64, u64)> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("nfcapd.") || name.contains("current") {
            continue;
        }
        let out = std::process::Command::new("nfdump")
            .arg("-r")
            .arg(&path)
            .args(["-o", "json"])
            .output()
            .expect("nfdump");
        let text = String::from_utf8_lossy(&out.stdout);
        let flows: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        for f in flows.as_array().unwrap() {
            let dir = f["direction"].as_u64().unwrap();
            let addr = |k4: &str, k6: &str| f[k4].as_str().or(f[k6].as_str()).unwrap().to_owned();
            let remote = if dir == 1 {
                addr("dst4_addr", "dst6_addr")
            } else {
                addr("src4_addr", "src6_addr")
            };
            let mac = f["in_src_mac"].as_str().unwrap().to_owned();
            let slot = got.entry((mac, remote, dir)).or_default();
            slot.0 += f["in_packets"].as_u64().unwrap();
            slot.1 += f["in_bytes"].as_u64().unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(got, want, "nfdump's per-remote totals must equal the agent's");
}

/// A bad `--asn` file: refused at start with file, line and reason; on a SIGHUP reload the
/// running agent keeps the database it has.
#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_bad_asn_file_is_refused_and_the_running_database_stays() {
    let lab = lab();
    let bad = "36.110.0.0,36.110.255.255,4134,CHINANET\n8.8.8.9,8.8.8.1,15169,Google LLC\n";
    let bad_file = support::agent::write_file(&format!("{}-bad-asn.csv", lab.prefix()), bad);
    let out = lab
        .exec(
            &lab.gateway(),
            &[
                support::agent::agent_bin().to_str().unwrap(),
                "run",
                "--lan",
                "br-lan",
                "--bpffs-dir",
                &format!("/sys/fs/bpf/egress-tracer-test-{}-bad", lab.prefix()),
                "--asn",
                bad_file.path().to_str().unwrap(),
            ],
        )
        .expect_err("a bad ASN file stops the start");
    let message = format!("{out:#}");
    assert!(message.contains(&format!("{}:2:", bad_file.path().display())), "{message}");

    let asn = support::agent::write_file(&format!("{}-asn.csv", lab.prefix()), LAB_ASN);
    let asn_path = asn.path().display().to_string();
    let agent = Agent::start_with(&lab, LAB_DB, &["--asn", &asn_path]);
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d1, "36.110.0.1", 1).unwrap();
    std::fs::write(asn.path(), bad).unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    support::agent::wait_for_reload(&agent, "failure", 1.0);
    let cn = remotes(&agent, &d1.mac);
    assert_eq!(find(&cn, "36.110.0.1")["asn"]["number"], 4134, "the old database stays: {cn:#}");
    assert_eq!(find(&cn, "36.110.0.1")["asn"]["org"], "CHINANET-BACKBONE, No.31,Jin-rong Street");
}

//! The real agent in a network-namespace gateway lab: devices ping remote "countries" through
//! the gateway and the counters must be exact, per device, country and direction.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::time::Duration;

use crate::support::LAB_DB;
use crate::support::{
    agent::{Agent, all_counts, counts, wait_for_reload},
    prom::{self, Samples},
};
use tracer_lab::Lab;

/// The same with 8.8.8.0/24 moved to DE, for the reload test.
const LAB_DB_MOVED: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,DE
193.0.0.0,193.0.7.255,NL
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,CN
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US
";

/// Ethernet + IPv4 + ICMP header + 56 bytes of ping payload.
const PING4_FRAME: f64 = 98.0;
/// Ethernet + IPv6 + ICMPv6 header + 56 bytes of ping payload.
const PING6_FRAME: f64 = 118.0;

fn lab() -> Lab {
    support::lab("et")
}

fn expect_exact(samples: &Samples, expected: &[(&str, &str, f64, f64)]) {
    let mut want: Vec<(String, String, String, f64, f64)> = Vec::new();
    for (mac, country, packets, frame) in expected {
        for direction in ["upload", "download"] {
            want.push((
                (*mac).into(),
                (*country).into(),
                direction.into(),
                *packets,
                packets * frame,
            ));
        }
    }
    want.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    assert_eq!(all_counts(samples), want, "per-device counters must be exact");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn counts_every_device_country_and_direction_exactly() {
    let lab = lab();
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let before = agent.scrape();
    assert!(all_counts(&before).is_empty(), "nothing egress yet: {:?}", all_counts(&before));
    let local_before = prom::value(
        &before,
        "egress_tracer_uncounted_packets_total",
        &[("reason", "local"), ("direction", "upload")],
    );

    let [d1, d2, d3, d4] = lab.devices() else { panic!("the lab has four devices") };
    lab.ping(d1, "36.110.0.1", 5).unwrap();
    lab.ping(d1, "8.8.8.8", 3).unwrap();
    lab.ping(d2, "193.0.0.1", 4).unwrap();
    lab.ping(d2, "2001:4860:4860::8888", 2).unwrap();
    lab.ping(d3, "240e::1", 3).unwrap();
    lab.ping(d3, "45.0.0.1", 2).unwrap(); // not in the database: unknown
    lab.ping(d4, "8.8.8.8", 6).unwrap(); // on the second LAN interface
    lab.ping(d4, "240e::1", 1).unwrap();
    lab.ping(d1, "10.77.0.1", 4).unwrap(); // the gateway itself: local, not egress
    lab.ping(d2, "fd77::1", 4).unwrap();

    let after = agent.scrape();
    let (m1, m2, m3, m4) = (d1.mac.as_str(), d2.mac.as_str(), d3.mac.as_str(), d4.mac.as_str());
    expect_exact(
        &after,
        &[
            (m1, "CN", 5.0, PING4_FRAME),
            (m1, "US", 3.0, PING4_FRAME),
            (m2, "NL", 4.0, PING4_FRAME),
            (m2, "US", 2.0, PING6_FRAME),
            (m3, "CN", 3.0, PING6_FRAME),
            (m3, "unknown", 2.0, PING4_FRAME),
            (m4, "US", 6.0, PING4_FRAME),
            (m4, "CN", 1.0, PING6_FRAME),
        ],
    );
    let local_after = prom::value(
        &after,
        "egress_tracer_uncounted_packets_total",
        &[("reason", "local"), ("direction", "upload")],
    );
    assert!(
        local_after - local_before >= 8.0,
        "pings to the gateway count as local: {local_before} -> {local_after}"
    );
    assert_eq!(prom::value(&after, "egress_tracer_overflow_packets_total", &[]), 0.0);
    assert_eq!(
        prom::value(
            &after,
            "egress_tracer_uncounted_packets_total",
            &[("reason", "malformed"), ("direction", "upload")]
        ),
        0.0
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn reload_swaps_the_database_without_losing_counts_and_rejects_bad_files() {
    let lab = lab();
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("the lab has devices") };
    let mac = d1.mac.as_str();
    lab.ping(d1, "8.8.8.8", 3).unwrap();

    // A broken file is rejected (the watcher notices the change) and the old data stays.
    let geo_path = agent.geo.path().to_owned();
    std::fs::write(&geo_path, "8.8.8.0,8.8.7.255,US\n").unwrap();
    wait_for_reload(&agent, "failure", 1.0);
    lab.ping(d1, "8.8.8.8", 2).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, mac, "US", "upload"), (5.0, 5.0 * PING4_FRAME));

    // A good file moves 8.8.8.0/24 to DE: old counts stay, new packets go to DE.
    std::fs::write(&geo_path, LAB_DB_MOVED).unwrap();
    wait_for_reload(&agent, "success", 1.0);
    lab.ping(d1, "8.8.8.8", 4).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, mac, "US", "upload"), (5.0, 5.0 * PING4_FRAME));
    assert_eq!(counts(&samples, mac, "DE", "upload"), (4.0, 4.0 * PING4_FRAME));
    assert_eq!(counts(&samples, mac, "DE", "download"), (4.0, 4.0 * PING4_FRAME));

    // SIGHUP reloads too.
    std::fs::write(&geo_path, LAB_DB).unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_reload(&agent, "success", 2.0);
    lab.ping(d1, "8.8.8.8", 1).unwrap();
    let samples = agent.scrape();
    assert_eq!(counts(&samples, mac, "US", "upload"), (6.0, 6.0 * PING4_FRAME));
}

/// d4, the device on the routed LAN port `lanv`, with the MACs of its `eth0` and of the
/// gateway's `lanv`: the two ends of the wire frames are put on.
fn d4_wire(lab: &Lab) -> (&tracer_lab::Device, [u8; 6], [u8; 6]) {
    let [.., d4] = lab.devices() else { panic!("the lab has four devices") };
    let dev4 = lab.mac(&d4.netns, "eth0").expect("d4's MAC");
    let lanv = lab.mac(&lab.gateway(), "lanv").expect("lanv's MAC");
    (d4, dev4, lanv)
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn tagged_and_malformed_frames_on_the_wire() {
    use crate::support::frames::{DOT1AD, DOT1Q, Frame, IPV4};
    let lab = lab();
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let (d4, dev4, lanv) = d4_wire(&lab);
    let lan_ip = "10.77.100.14".parse().unwrap();
    let us = "8.8.8.8".parse().unwrap();
    let cn = "36.110.0.1".parse().unwrap();

    // Upload: 3 single-tagged and 2 double-tagged frames from d4. The receiving kernel moves
    // the outer tag into metadata before TC, so TC sees 4 bytes less than was sent for each.
    let single = Frame::eth(lanv, dev4).vlan(DOT1Q, 100).ethertype(IPV4).ipv4(lan_ip, us, 5, 64);
    let double = Frame::eth(lanv, dev4)
        .vlan(DOT1AD, 200)
        .vlan(DOT1Q, 100)
        .ethertype(IPV4)
        .ipv4(lan_ip, us, 6, 64);
    let mut up = vec![single.0.clone(); 3];
    up.extend(vec![double.0.clone(); 2]);
    tracer_lab::inject(&lab.netns_path(&d4.netns), "eth0", &up).unwrap();
    // Download: 4 single-tagged frames from the gateway to d4; TC egress sees the whole frame.
    let down = Frame::eth(dev4, lanv).vlan(DOT1Q, 100).ethertype(IPV4).ipv4(cn, lan_ip, 5, 32);
    tracer_lab::inject(&lab.netns_path(&lab.gateway()), "lanv", &vec![down.0.clone(); 4]).unwrap();
    // Malformed frames from d4 to the gateway: truncated IPv4, IHL 3, IPv6 header cut short.
    // (Sent on the routed port: the lab's bridge does not pass such frames up to br-lan.)
    let bad = [
        Frame::eth(lanv, dev4).ethertype(IPV4).ipv4(lan_ip, us, 5, 0).truncate(24),
        Frame::eth(lanv, dev4).ethertype(IPV4).ipv4(lan_ip, us, 5, 20).with_byte(14, 0x43),
        Frame::eth(lanv, dev4).ethertype(0x86dd).raw(&[0x60; 20]),
    ];
    let bad_bytes: usize = bad.iter().map(Frame::len).sum();
    tracer_lab::inject(
        &lab.netns_path(&d4.netns),
        "eth0",
        &bad.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let s = agent.scrape();
    let up_bytes = 3 * (single.len() - 4) + 2 * (double.len() - 4);
    assert_eq!(counts(&s, &d4.mac, "US", "upload"), (5.0, up_bytes as f64));
    assert_eq!(counts(&s, &d4.mac, "CN", "download"), (4.0, (4 * down.len()) as f64));
    let malformed = [("reason", "malformed"), ("direction", "upload")];
    assert_eq!(prom::value(&s, "egress_tracer_uncounted_packets_total", &malformed), 3.0);
    assert_eq!(
        prom::value(&s, "egress_tracer_uncounted_bytes_total", &malformed),
        bad_bytes as f64
    );
    assert!(all_counts(&s).iter().all(|(mac, ..)| *mac == d4.mac), "{:?}", all_counts(&s));
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn reloads_under_traffic_lose_no_packet() {
    let lab = lab();
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let [_, d2, ..] = lab.devices() else { panic!("the lab has devices") };
    let sent = 400;
    std::thread::scope(|s| {
        let pinger = s.spawn(|| lab.ping(d2, "8.8.8.8", sent));
        for n in 1..=4 {
            std::thread::sleep(Duration::from_millis(600));
            agent.signal(nix::sys::signal::Signal::SIGHUP);
            wait_for_reload(&agent, "success", f64::from(n));
        }
        pinger.join().expect("pinger").expect("every echo answered");
    });
    let s = agent.scrape();
    let expected = (f64::from(sent), f64::from(sent) * PING4_FRAME);
    assert_eq!(counts(&s, &d2.mac, "US", "upload"), expected);
    assert_eq!(counts(&s, &d2.mac, "US", "download"), expected);
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn netlink_clsact_attachment_counts_and_reloads_like_tcx() {
    let lab = lab();
    let agent = Agent::start_with(&lab, LAB_DB, &["--tc-attach", "netlink"]);
    let filters =
        lab.exec(&lab.gateway(), &["tc", "filter", "show", "dev", "br-lan", "ingress"]).unwrap();
    assert!(filters.contains("tc_upload"), "a cls_bpf filter on the clsact qdisc: {filters}");
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d1, "193.0.0.1", 3).unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_reload(&agent, "success", 1.0);
    lab.ping(d1, "193.0.0.1", 2).unwrap();
    let s = agent.scrape();
    assert_eq!(counts(&s, &d1.mac, "NL", "upload"), (5.0, 5.0 * PING4_FRAME));
    assert_eq!(counts(&s, &d1.mac, "NL", "download"), (5.0, 5.0 * PING4_FRAME));
    let filters =
        lab.exec(&lab.gateway(), &["tc", "filter", "show", "dev", "br-lan", "ingress"]).unwrap();
    assert_eq!(
        filters.lines().filter(|l| l.contains("tc_upload")).count(),
        1,
        "replaced, not added: {filters}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_restarted_agent_continues_the_pinned_counters() {
    let lab = lab();
    let mut agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let [_, _, d3, _] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d3, "240e::1", 3).unwrap();
    agent.restart();
    lab.ping(d3, "240e::1", 2).unwrap();
    let s = agent.scrape();
    assert_eq!(counts(&s, &d3.mac, "CN", "upload"), (5.0, 5.0 * PING6_FRAME));
    assert_eq!(counts(&s, &d3.mac, "CN", "download"), (5.0, 5.0 * PING6_FRAME));

    // `egress-tracer reset` clears them on purpose: after a restart, counting starts again.
    agent.stop();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_egress-tracer"))
        .args(["reset", "--bpffs-dir", agent.bpffs_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    agent.start_again();
    lab.ping(d3, "240e::1", 1).unwrap();
    assert_eq!(counts(&agent.scrape(), &d3.mac, "CN", "upload"), (1.0, PING6_FRAME));
}

/// A killed agent leaves its programs attached and counting into the pinned maps; the next
/// agent takes the attachment over (one filter or link, never two); a clean stop detaches.
fn killed_agent_keeps_counting(mode: &str) {
    let lab = lab();
    let mut agent = Agent::start_with(&lab, LAB_DB, &["--tc-attach", mode]);
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("the lab has devices") };
    lab.ping(d1, "8.8.8.8", 3).unwrap();
    agent.kill();
    lab.ping(d1, "8.8.8.8", 2).unwrap(); // no agent runs: the kernel keeps counting
    agent.start_again();
    lab.ping(d1, "8.8.8.8", 1).unwrap();
    let s = agent.scrape();
    assert_eq!(
        counts(&s, &d1.mac, "US", "upload"),
        (6.0, 6.0 * PING4_FRAME),
        "{mode}: nothing lost, nothing twice"
    );
    assert_eq!(counts(&s, &d1.mac, "US", "download"), (6.0, 6.0 * PING4_FRAME));
    if mode == "netlink" {
        let filters = lab
            .exec(&lab.gateway(), &["tc", "filter", "show", "dev", "br-lan", "ingress"])
            .unwrap();
        assert_eq!(filters.lines().filter(|l| l.contains("tc_upload")).count(), 1, "{filters}");
    }
    agent.stop(); // clean: detached, so these are not counted
    lab.ping(d1, "8.8.8.8", 4).unwrap();
    agent.start_again();
    lab.ping(d1, "8.8.8.8", 1).unwrap();
    assert_eq!(
        counts(&agent.scrape(), &d1.mac, "US", "upload"),
        (7.0, 7.0 * PING4_FRAME),
        "{mode}"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn killed_agent_keeps_counting_tcx() {
    killed_agent_keeps_counting("tcx");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn killed_agent_keeps_counting_netlink() {
    killed_agent_keeps_counting("netlink");
}

/// Frames from trafgen's TX ring reach TC as non-linear skbs (only the Ethernet header in the
/// linear area): the programs copy the headers out of the page fragments instead of reading
/// them in place, and must count exactly what they count for linear frames, remote port
/// included.
#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn paged_frames_count_exactly() {
    use crate::support::frames::{Frame, IPV4, IPV6};
    let lab = lab();
    let agent = Agent::start(&lab, LAB_DB);
    lab.warm_up().expect("warm up");
    let (d4, dev4, lanv) = d4_wire(&lab);
    let (v4, v6) = ("10.77.100.14".parse().unwrap(), "fd77:100::14".parse().unwrap());
    // On the routed port `lanv` (the bridge's netfilter would check IPv4 checksums). UDP with
    // a payload of 0xab bytes: both ports are 0xabab.
    let frames = [
        Frame::eth(lanv, dev4).ethertype(IPV4).ipv4(v4, "36.110.0.1".parse().unwrap(), 5, 64),
        Frame::eth(lanv, dev4).ethertype(IPV4).ipv4(v4, "8.8.8.8".parse().unwrap(), 6, 40),
        Frame::eth(lanv, dev4).ethertype(IPV6).ipv6(v6, "240e::1".parse().unwrap(), 48),
    ];
    let each = 50;
    let conf = support::agent::write_file(
        &format!("{}-paged.trafgen", lab.prefix()),
        &tracer_lab::trafgen::config(&frames.iter().map(|f| f.0.clone()).collect::<Vec<_>>()),
    );
    tracer_lab::trafgen::send(&lab, &d4.netns, "eth0", conf.path(), each * frames.len())
        .expect("trafgen");
    std::thread::sleep(Duration::from_millis(300));

    let s = agent.scrape();
    let n = each as f64;
    let cn_bytes = n * (frames[0].len() + frames[2].len()) as f64;
    assert_eq!(counts(&s, &d4.mac, "CN", "upload"), (2.0 * n, cn_bytes));
    assert_eq!(counts(&s, &d4.mac, "US", "upload"), (n, n * frames[1].len() as f64));
    let malformed = [("reason", "malformed"), ("direction", "upload")];
    assert_eq!(prom::value(&s, "egress_tracer_uncounted_packets_total", &malformed), 0.0);
    let view = agent.remotes(&d4.mac);
    for address in ["36.110.0.1", "8.8.8.8", "240e::1"] {
        let remote = support::agent::remote(&view, address);
        assert_eq!(remote["port"], 0xabab, "{address}: the port read from the fragments");
        assert_eq!(remote["protocol"], "udp", "{address}");
    }
}

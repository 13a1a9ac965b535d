//! The lab itself: every device reaches every remote over IPv4 and IPv6, neighbours are
//! resolved by the warm-up, the agent's way into the gateway keeps /sys/fs/bpf, and nothing is
//! left behind.
//!
//! Needs root: `#[ignore]`d for plain `cargo test`, run by `cargo xtask test`.

use std::collections::HashSet;

use tracer_lab::{Lab, REMOTES, run};

fn namespaces_with(prefix: &str) -> Vec<String> {
    run(&["ip", "netns", "list"])
        .expect("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

fn prefix(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn every_device_reaches_every_remote_and_cleanup_is_complete() {
    let prefix = prefix("tl");
    {
        let lab = Lab::create(&prefix).expect("create lab");
        let made: HashSet<String> = namespaces_with(&prefix).into_iter().collect();
        assert_eq!(made, lab.namespaces().into_iter().collect(), "exactly the lab's namespaces");
        for d in lab.devices() {
            let mac = lab.exec(&d.netns, &["cat", "/sys/class/net/eth0/address"]).unwrap();
            assert_eq!(mac.trim(), d.mac, "{}", d.name);
        }
        for iface in lab.lan_interfaces().into_iter().chain(["wan0"]) {
            lab.exec(&lab.gateway(), &["ip", "link", "show", "dev", iface]).expect(iface);
        }
        lab.warm_up().expect("warm up");
        let neigh = run(&["ip", "-n", &lab.gateway(), "neigh", "show"]).unwrap();
        for d in lab.devices() {
            for addr in [&d.ipv4, &d.ipv6] {
                assert!(
                    neigh.lines().any(|l| l.starts_with(&format!("{addr} "))
                        && l.contains(&d.mac)
                        && l.contains("REACHABLE")),
                    "{addr} REACHABLE with {}: {neigh}",
                    d.mac
                );
            }
        }
        for device in lab.devices() {
            for remote in REMOTES {
                lab.ping(device, remote.addr, 2)
                    .unwrap_or_else(|e| panic!("{} -> {}: {e:#}", device.name, remote.name));
            }
        }
        // A remote outside the internet namespace's table gets no answer: ping fails.
        assert!(lab.ping(&lab.devices()[0], "9.9.9.9", 1).is_err());
    }
    assert_eq!(namespaces_with(&prefix), Vec::<String>::new(), "namespaces left behind");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn spawn_in_keeps_host_mounts_and_enters_the_gateway() {
    let lab = Lab::create(&prefix("ts")).expect("create lab");
    let out = lab
        .command_in(&lab.gateway(), "sh")
        .args(["-c", "ip -o link show br-lan >/dev/null && cat /proc/self/mounts"])
        .output()
        .expect("nsenter");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inside = String::from_utf8_lossy(&out.stdout);
    let host = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let bpffs = |mounts: &str| mounts.lines().any(|l| l.contains(" /sys/fs/bpf bpf "));
    assert_eq!(bpffs(&inside), bpffs(&host), "nsenter must not hide /sys/fs/bpf:\n{inside}");
    let mut child = lab.spawn_in(&lab.gateway(), &["ip", "link", "show", "wan0"]).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(lab.spawn_in(&lab.gateway(), &[]).is_err());
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn stale_labs_are_removed_before_a_new_lab_is_built() {
    let prefix = prefix("tc");
    // A "crashed" earlier run: its lab is never dropped.
    std::mem::forget(Lab::create(&prefix).expect("create lab"));
    assert_eq!(namespaces_with(&prefix).len(), 6);
    // Creating a lab with the same prefix removes the leftovers first.
    let lab = Lab::create(&prefix).expect("create over leftovers");
    std::mem::forget(lab);
    assert_eq!(Lab::cleanup_stale(&prefix), 6);
    assert!(namespaces_with(&prefix).is_empty());
    assert_eq!(Lab::cleanup_stale(&prefix), 0);

    // A single leftover namespace (a run killed while building) is removed too.
    run(&["ip", "netns", "add", &format!("{prefix}-d2")]).unwrap();
    let lab = Lab::create(&prefix).expect("create over a partial leftover");
    assert_eq!(namespaces_with(&prefix).len(), 6);
    drop(lab);
    assert!(namespaces_with(&prefix).is_empty());

    // A bad prefix fails before anything is made.
    assert!(Lab::create("way-too-long-prefix").is_err());
}

/// `(rx, tx)` packet counters of `iface` in namespace `netns`.
fn packets(lab: &Lab, netns: &str, iface: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        let path = format!("/sys/class/net/{iface}/statistics/{what}_packets");
        lab.exec(netns, &["cat", &path]).unwrap().trim().parse().unwrap()
    };
    (read("rx"), read("tx"))
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn after_warm_up_only_the_measured_packets_cross_the_lan_ports() {
    let lab = Lab::create(&prefix("tq")).expect("create lab");
    let started = std::time::Instant::now();
    lab.warm_up().expect("warm up");
    let took = started.elapsed();
    assert!(took.as_secs() < 10, "warm-up took {took:?}");
    let gw = lab.gateway();
    let ports: Vec<_> = lab.devices().iter().zip(["lan1", "lan2", "lan3", "lanv"]).collect();
    let before: Vec<_> = ports.iter().map(|(_, port)| packets(&lab, &gw, port)).collect();
    for (d, _) in &ports {
        lab.ping(d, "8.8.8.8", 5).unwrap();
        lab.ping(d, "240e::1", 3).unwrap();
    }
    // Long enough for a delayed neighbour probe (1 s in the lab) to show up.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for ((d, port), (rx, tx)) in ports.iter().zip(before) {
        let (rx2, tx2) = packets(&lab, &gw, port);
        assert_eq!((rx2 - rx, tx2 - tx), (8, 8), "{port} ({}): only the 8 echoes each way", d.name);
    }
}

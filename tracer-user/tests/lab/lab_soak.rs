//! A soak: several devices talking, MAC churn (a pool of 1,000 MACs), a scrape and API calls
//! every second, SIGHUP reloads every 10 s and a bad configuration every minute (a third of the
//! run in the short version). Memory, open files and the agent's BPF objects stay flat (the slope is reported),
//! every packet is accounted for exactly, and no reload leaks a program or a map.
//!
//! `EGRESS_TRACER_SOAK_SECS` sets the length: 45 s in the test suite, 600 s in
//! `cargo xtask bench`.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::support::{
    LAB_DB,
    agent::{Agent, LISTEN, counts, wait_for_reload},
    frames::{Frame, IPV4},
    prom,
};

/// Distinct MACs the churn cycles through.
const CHURN_POOL: u32 = 1000;

const CONFIG: &str = "[policy]\nallow = [\"eu\", \"US\"]\n";
const BAD_CONFIG: &str = "[policy]\nallow = [\"eu\", \"US\"]\nblock = [\"XX-not-a-region\"]\n";

/// One sample of the agent process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: usize,
    bpf_progs: usize,
    bpf_maps: usize,
}

fn sample(pid: u32, started: Instant) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let (mut fds, mut bpf_progs, mut bpf_maps) = (0, 0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap().flatten() {
        fds += 1;
        let info = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if info.contains("\nprog_type:") {
            bpf_progs += 1;
        } else if info.contains("\nmap_type:") {
            bpf_maps += 1;
        }
    }
    Sample { secs: started.elapsed().as_secs_f64(), rss_kib, fds, bpf_progs, bpf_maps }
}

/// Least-squares slope of RSS over time, KiB per minute.
fn rss_slope(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    let (mx, my) = samples.iter().fold((0.0, 0.0), |(x, y), s| (x + s.secs, y + s.rss_kib as f64));
    let (mx, my) = (mx / n, my / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(a, b), s| {
        (a + (s.secs - mx) * (s.rss_kib as f64 - my), b + (s.secs - mx).powi(2))
    });
    if den == 0.0 { 0.0 } else { 60.0 * num / den }
}

/// Programs named `tc_upload`/`tc_download` loaded in the whole system (bpftool).
fn system_programs() -> usize {
    let out = std::process::Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(" name tc_upload") || l.contains(" name tc_download"))
        .count()
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn a_soak_keeps_memory_files_and_bpf_objects_flat_and_counts_exactly() {
    let secs: u64 =
        std::env::var("EGRESS_TRACER_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    let bad_every = Duration::from_secs(60.min(secs / 3).max(5));
    let lab = support::lab("so");
    let agent = Agent::start_configured(&lab, LAB_DB, Some(CONFIG), &[]);
    lab.warm_up().expect("warm up");
    let [d1, d2, d3, d4] = lab.devices() else { panic!("the lab has four devices") };
    let lanv = {
        let out = lab.exec(&lab.gateway(), &["cat", "/sys/class/net/lanv/address"]).unwrap();
        let mut mac = [0u8; 6];
        for (o, p) in mac.iter_mut().zip(out.trim().split(':')) {
            *o = u8::from_str_radix(p, 16).unwrap();
        }
        mac
    };
    // One reload first, so the objects a reload keeps are counted in the start sample.
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_reload(&agent, "success", 1.0);
    let started = Instant::now();
    let pid = agent.pid();
    let programs_before = system_programs();
    let first = sample(pid, started);
    let before = agent.scrape();
    let upload_before: f64 =
        prom::matching(&before, "egress_tracer_packets_total", &[("direction", "upload")])
            .map(|(_, v)| v)
            .sum::<f64>()
            + prom::value(&before, "egress_tracer_overflow_packets_total", &[]);

    let netns = agent.netns().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let pings = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let churned = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        // Three devices talk: d1 to CN (unapproved: alerts), d2 to NL, d3 to US over IPv6.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for (i, (d, to)) in
                    [(d1, "36.110.0.1"), (d2, "193.0.0.1"), (d3, "2001:4860:4860::8888")]
                        .into_iter()
                        .enumerate()
                {
                    lab.ping(d, to, 5).unwrap();
                    pings[i].fetch_add(5, Ordering::Relaxed);
                }
            }
        });
        // MAC churn: 50 source MACs every 2 s from d4's port, cycling through a pool of
        // CHURN_POOL (randomising phones come and go; distinct MACs without end are the flood
        // test's, where the caps bound what grows).
        s.spawn(|| {
            let mut next = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let frames: Vec<Vec<u8>> = (0..50)
                    .map(|_| {
                        next = next % CHURN_POOL + 1;
                        let [_, a, b, c] = next.to_be_bytes();
                        let dst = Ipv4Addr::new(8, 8, 8, 8);
                        Frame::eth(lanv, [0x02, 0x5c, 0, a, b, c])
                            .ethertype(IPV4)
                            .ipv4("10.77.100.14".parse().unwrap(), dst, 5, 32)
                            .0
                    })
                    .collect();
                tracer_lab::inject(&lab.netns_path(&d4.netns), "eth0", &frames).unwrap();
                churned.fetch_add(50, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        // A scrape and the page's API calls every second.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for path in [
                    "/metrics".to_owned(),
                    "/api/v1/devices".to_owned(),
                    "/api/v1/alerts".to_owned(),
                    "/api/v1/history?range=24h".to_owned(),
                    format!("/api/v1/devices/{}/remotes?limit=10", d1.mac),
                    "/".to_owned(),
                ] {
                    let (status, _) = support::netns_http::get(&netns, LISTEN, &path).unwrap();
                    assert_eq!(status, 200, "{path}");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        // The helpers stop when this thread does, also when an assertion fails.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);
        // SIGHUP every 10 s, a bad configuration every `bad_every`; samples every second.
        let mut samples = vec![first];
        let (mut hups, mut bad) = (0u32, 0u32);
        let mut last_hup = Instant::now();
        let mut last_bad = Instant::now();
        while started.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_secs(1));
            if last_hup.elapsed() >= Duration::from_secs(10) {
                agent.signal(nix::sys::signal::Signal::SIGHUP);
                hups += 1;
                last_hup = Instant::now();
            }
            if last_bad.elapsed() >= bad_every {
                bad += 1;
                let failures = prom::value(
                    &agent.scrape(),
                    "egress_tracer_reloads_total",
                    &[("result", "failure")],
                );
                agent.write_config(BAD_CONFIG);
                wait_for_reload(&agent, "failure", failures + 1.0);
                agent.write_config(CONFIG);
                last_bad = Instant::now();
            }
            samples.push(sample(pid, started));
        }
        stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(2));
        let last = sample(pid, started);
        samples.push(last);

        let half = &samples[samples.len() / 2..];
        let slope = rss_slope(half);
        let peak = samples.iter().map(|s| s.rss_kib).max().unwrap();
        eprintln!(
            "soak: {secs} s, {hups} SIGHUPs, {bad} bad configurations; RSS {} -> {} KiB (peak {peak}, \
             slope over the second half {slope:+.0} KiB/min); fds {} -> {}; BPF programs {} -> {}, \
             maps {} -> {}",
            first.rss_kib,
            last.rss_kib,
            first.fds,
            last.fds,
            first.bpf_progs,
            last.bpf_progs,
            first.bpf_maps,
            last.bpf_maps
        );
        assert!(bad >= 2 && hups >= 3, "the soak reloaded ({hups} SIGHUPs, {bad} bad files)");
        assert_eq!(
            (last.bpf_progs, last.bpf_maps),
            (first.bpf_progs, first.bpf_maps),
            "a reload leaked a program or a map in the agent"
        );
        assert_eq!(system_programs(), programs_before, "a reload left a program in the kernel");
        assert!(last.fds <= first.fds + 4, "open files grew: {} -> {}", first.fds, last.fds);
        // Flat once warm: the end is no higher than the first half's peak plus 4 MiB.
        let warm = samples[..samples.len() / 2].iter().map(|s| s.rss_kib).max().unwrap();
        assert!(
            last.rss_kib <= warm + 4 * 1024,
            "RSS grew: first half peak {warm} KiB, end {last:?}"
        );
    });

    // Every packet once: each ping's request and reply, each churned frame.
    let after = agent.scrape();
    let [p1, p2, p3] = [0, 1, 2].map(|i| pings[i].load(Ordering::Relaxed) as f64);
    assert_eq!(counts(&after, &d1.mac, "CN", "upload"), (p1, p1 * 98.0));
    assert_eq!(counts(&after, &d1.mac, "CN", "download"), (p1, p1 * 98.0));
    assert_eq!(counts(&after, &d2.mac, "NL", "upload"), (p2, p2 * 98.0));
    assert_eq!(counts(&after, &d3.mac, "US", "upload"), (p3, p3 * 118.0));
    let upload_after: f64 =
        prom::matching(&after, "egress_tracer_packets_total", &[("direction", "upload")])
            .map(|(_, v)| v)
            .sum::<f64>()
            + prom::value(&after, "egress_tracer_overflow_packets_total", &[]);
    let churn = churned.load(Ordering::Relaxed) as f64;
    assert_eq!(upload_after - upload_before, p1 + p2 + p3 + churn, "every upload packet once");
    support::conservation::assert_conserved(&agent, "after the soak");
    let entries = prom::value(&after, "egress_tracer_traffic_map_entries", &[]);
    eprintln!("soak: {p1}+{p2}+{p3} pings, {churn} churned MACs; traffic map {entries} entries");
}

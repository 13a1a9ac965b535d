//! The HTTP server under slow clients: 3,000 connections from a LAN device that send half a
//! request and wait. A scrape still answers within a second, the connections are closed (the
//! oldest idle ones to make room, the rest by the header timeout) and the agent's open files
//! stay bounded.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::{LAB_DB, agent::Agent};

const LISTEN: &str = "10.77.0.1:9977";
const SLOW_CLIENTS: usize = 3000;

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn slow_clients_cannot_hold_the_api() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, 16_384.min(hard), hard).unwrap();
    let lab = support::lab("ht");
    let probe: support::agent::Probe = Box::new(|netns: &std::path::Path| {
        matches!(support::netns_http::get(netns, LISTEN, "/healthz"), Ok((200, _)))
    });
    let agent = Agent::start_probed(
        &lab,
        LAB_DB,
        None,
        &["--listen", LISTEN, "--insecure-listen"],
        Some(probe),
    );
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("devices") };
    let netns = lab.netns_path(&d1.netns);
    let (took, status, closed) = std::thread::spawn(move || {
        tracer_lab::enter_netns(&netns).unwrap();
        let mut slow = Vec::with_capacity(SLOW_CLIENTS);
        for _ in 0..SLOW_CLIENTS {
            let mut s = TcpStream::connect(LISTEN).expect("connect");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n").unwrap();
            slow.push(s);
        }
        // Every slot is held by a half-sent request: a scrape still gets through.
        let started = Instant::now();
        let mut scrape = TcpStream::connect(LISTEN).unwrap();
        scrape.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        scrape
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = scrape.read_to_end(&mut answer);
        let took = started.elapsed();
        let status = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
        // After the header timeout every slow connection is closed by the agent.
        std::thread::sleep(Duration::from_secs(7));
        let mut closed = 0;
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(0) => closed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
                // A 408 answer to the half request also ends it.
                Ok(_) => closed += 1,
                Err(_) => {}
            }
        }
        (took, status, closed)
    })
    .join()
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(took < Duration::from_secs(1), "the scrape took {took:?}");
    assert_eq!(closed, SLOW_CLIENTS, "every slow connection closed");
    let (_, metrics) = support::netns_http::get(agent.netns(), LISTEN, "/metrics").unwrap();
    let samples = support::prom::parse(&metrics);
    let fds = support::prom::value(&samples, "process_open_fds", &[]);
    assert!(fds < 100.0, "the agent holds {fds} files");
    let evicted =
        support::prom::value(&samples, "egress_tracer_http_connections_evicted_total", &[]);
    assert!(evicted >= (SLOW_CLIENTS - 256) as f64, "{evicted} evicted");
}

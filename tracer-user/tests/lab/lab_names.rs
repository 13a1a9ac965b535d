//! Names in the lab, with real resolvers and real clients: Debian's dnsmasq on the gateway
//! (A, AAAA, a CNAME) and another in the "internet" namespace that a device asks directly;
//! `dig` over UDP and TCP; `openssl s_client` to an `openssl s_server` with no DNS at all; a
//! ClientHello split over two TCP segments; and thousands of hostile DNS answers and TLS
//! payloads through the real programs.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    io::Write as _,
    net::{SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::support::agent::Agent;
use serde_json::Value;
use tracer_lab::{KillOnDrop, Lab};

const DB: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,US
193.0.0.0,193.0.7.255,NL
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,CN
";

fn lab() -> Lab {
    support::lab("nm")
}

fn answer_prefix(lab: &Lab, prefix: &str) {
    lab.answer_prefix(prefix).expect("local route in the internet namespace");
}

/// dnsmasq in `netns`, answering only from `records` (no upstream, no hosts file).
fn dnsmasq(lab: &Lab, netns: &str, listen: &[&str], records: &[&str]) -> KillOnDrop {
    lab.dnsmasq(netns, listen, records).expect("dnsmasq")
}

fn dig(lab: &Lab, netns: &str, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+short", "+time=2", "+tries=1"];
    argv.extend(args);
    lab.exec(netns, &argv).unwrap_or_else(|e| panic!("dig {args:?}: {e:#}"))
}

fn remotes(agent: &Agent, mac: &str) -> Value {
    agent.remotes(mac)
}

fn remote<'a>(view: &'a Value, address: &str) -> &'a Value {
    support::agent::remote(view, address)
}

fn names(view: &Value, address: &str) -> Vec<String> {
    remote(view, address)["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

/// Runs `f` in a thread that joined the namespace at `netns`.
fn in_netns<T: Send + 'static>(netns: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        tracer_lab::enter_netns(&netns).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// A self-signed certificate and key for `openssl s_server`, in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-subj", "/CN=lab", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl req");
    assert!(status.success());
    (cert, key)
}

/// A TLS 1.2 ClientHello record for `name`, padded to about `pad` more bytes (the test's own
/// fixture: what a client with post-quantum key shares sends in two segments).
fn client_hello(name: &[u8], pad: usize) -> Vec<u8> {
    let mut sni = Vec::new();
    sni.extend(((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend(name);
    let mut ext = vec![0, 0];
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(&sni);
    ext.extend([0, 21]);
    ext.extend((pad as u16).to_be_bytes());
    ext.extend(std::iter::repeat_n(0u8, pad));
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 2, 0xc0, 0x2b, 1, 0]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(&ext);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(&body);
    let mut record = vec![22, 3, 1];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(&hs);
    record
}

#[test]
#[ignore = "needs root, network namespaces, dnsmasq, dig and openssl: run by cargo xtask test"]
fn dns_answers_and_tls_server_names_name_each_device_s_remotes() {
    let lab = lab();
    answer_prefix(&lab, "36.110.0.0/24");
    answer_prefix(&lab, "240e::/64");
    let gw = lab.gateway();
    let _gateway_dns = dnsmasq(
        &lab,
        &gw,
        &["10.77.0.1", "10.77.100.1", "fd77::1", "fd77:100::1"],
        &[
            "--host-record=api.io.mi.com.cdn.example,36.110.0.7",
            "--cname=api.io.mi.com,api.io.mi.com.cdn.example",
            "--host-record=a.example,36.110.0.20",
            "--host-record=b.example,36.110.0.20",
            "--host-record=v6only.example,240e::21",
        ],
    );
    let inet = lab.internet();
    let _outside_dns =
        dnsmasq(&lab, &inet, &["8.8.8.8"], &["--host-record=tracker.example.cn,36.110.0.9"]);
    let dir = std::env::temp_dir().join(format!("et-names-{}", lab.prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = certificate(&dir);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let _tls_server = KillOnDrop(
        lab.spawn_in(
            &inet,
            &["openssl", "s_server", "-accept", "443", "-cert", &cert, "-key", &key, "-quiet"],
        )
        .expect("openssl s_server"),
    );
    let agent = Agent::start_with(&lab, DB, &["--allow", "eu,US"]);
    lab.warm_up().expect("warm up");
    let [d1, d2, d3, d4] = lab.devices() else { panic!("four devices") };

    // Through the gateway's resolver, over UDP and TCP; the phone's CN upload is the story.
    assert_eq!(
        dig(&lab, &d1.netns, &["@10.77.0.1", "api.io.mi.com"]).lines().last(),
        Some("36.110.0.7")
    );
    assert_eq!(dig(&lab, &d1.netns, &["+tcp", "@10.77.0.1", "a.example"]).trim(), "36.110.0.20");
    assert_eq!(dig(&lab, &d2.netns, &["@10.77.0.1", "b.example"]).trim(), "36.110.0.20");
    // Directly to an outside resolver.
    assert_eq!(dig(&lab, &d3.netns, &["@8.8.8.8", "tracker.example.cn"]).trim(), "36.110.0.9");
    // IPv6, on the routed LAN port.
    assert_eq!(
        dig(&lab, &d4.netns, &["@fd77:100::1", "AAAA", "v6only.example"]).trim(),
        "240e::21"
    );
    lab.ping(d1, "36.110.0.7", 2).unwrap();
    lab.ping(d1, "36.110.0.20", 1).unwrap();
    lab.ping(d2, "36.110.0.20", 1).unwrap();
    lab.ping(d3, "36.110.0.9", 1).unwrap();
    lab.ping(d4, "240e::21", 1).unwrap();
    // TLS with no DNS at all: the SNI names the remote.
    let out = lab
        .exec(
            &d1.netns,
            &["sh", "-c", "openssl s_client -connect 36.110.0.30:443 -servername secret.example.cn </dev/null >/dev/null 2>&1; echo done"],
        )
        .unwrap();
    assert!(out.contains("done"));
    // A ClientHello in two TCP segments.
    let hello = client_hello(b"pq.example", 1700);
    in_netns(lab.netns_path(&d2.netns), move || {
        let mut s =
            TcpStream::connect_timeout(&"36.110.0.31:443".parse().unwrap(), Duration::from_secs(3))
                .expect("connect to the TLS server");
        s.set_nodelay(true).unwrap();
        s.write_all(&hello[..1000]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(&hello[1000..]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    std::thread::sleep(Duration::from_millis(300));

    let v1 = remotes(&agent, &d1.mac);
    assert_eq!(names(&v1, "36.110.0.7"), ["api.io.mi.com"], "{v1:#}");
    assert_eq!(
        remote(&v1, "36.110.0.7")["canonical"],
        serde_json::json!(["api.io.mi.com.cdn.example"])
    );
    assert_eq!(names(&v1, "36.110.0.20"), ["a.example"], "each device sees its own name");
    assert_eq!(names(&v1, "36.110.0.30"), ["secret.example.cn"], "SNI, no DNS: {v1:#}");
    let v2 = remotes(&agent, &d2.mac);
    assert_eq!(names(&v2, "36.110.0.20"), ["b.example"], "{v2:#}");
    assert_eq!(names(&v2, "36.110.0.31"), ["pq.example"], "a two-segment ClientHello: {v2:#}");
    let v3 = remotes(&agent, &d3.mac);
    assert_eq!(names(&v3, "36.110.0.9"), ["tracker.example.cn"], "{v3:#}");
    let v4 = remotes(&agent, &d4.mac);
    assert_eq!(names(&v4, "240e::21"), ["v6only.example"], "{v4:#}");

    let devices = agent.get_json("/api/v1/devices");
    let device = |mac: &str| {
        devices["devices"].as_array().unwrap().iter().find(|d| d["mac"] == mac).cloned().unwrap()
    };
    assert_eq!(device(&d1.mac)["resolvers"], serde_json::json!(["10.77.0.1"]));
    assert_eq!(device(&d3.mac)["resolvers"], serde_json::json!(["8.8.8.8"]));
    assert_eq!(device(&d4.mac)["resolvers"], serde_json::json!(["fd77:100::1"]));
    assert_eq!(device(&d1.mac)["encrypted_dns"], false);

    // The alert names the domain: "phone -> api.io.mi.com (36.110.0.7, CN)".
    let alerts = agent.get_json("/api/v1/alerts");
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["remote"]["address"] == "36.110.0.7")
        .unwrap_or_else(|| panic!("no alert for 36.110.0.7: {alerts:#}"));
    assert_eq!(alert["remote"]["names"], serde_json::json!(["api.io.mi.com"]), "{alert:#}");

    // status --device shows them.
    let out = lab
        .exec(
            &gw,
            &[
                support::agent::agent_bin().to_str().unwrap(),
                "status",
                "--url",
                &format!("http://{}", support::agent::LISTEN),
                "--device",
                &d1.mac,
            ],
        )
        .unwrap();
    let line =
        out.lines().find(|l| l.starts_with("36.110.0.7 ")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("api.io.mi.com"), "{line}");

    let samples = agent.scrape();
    let answers =
        support::prom::value(&samples, "egress_tracer_dns_answers_total", &[("result", "answer")]);
    assert!(answers >= 5.0, "{answers} DNS answers parsed");
    let sni =
        support::prom::value(&samples, "egress_tracer_tls_hellos_total", &[("result", "sni")]);
    assert!(sni >= 2.0, "{sni} server names");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn hostile_dns_and_tls_payloads_break_nothing_and_every_packet_is_counted() {
    use rand::{RngExt as _, SeedableRng as _};
    let lab = lab();
    answer_prefix(&lab, "36.110.0.0/16");
    let agent = Agent::start_with(&lab, DB, &["--dns-names", "256", "--capture-rate", "100000"]);
    lab.warm_up().expect("warm up");
    let [d1, ..] = lab.devices() else { panic!("devices") };
    let before_rss = rss_kib(agent.pid());
    let target: SocketAddr = format!("{}:5353", d1.ipv4).parse().unwrap();
    // The device listens (and never reads), so it answers nothing back.
    let d1_ns = lab.netns_path(&d1.netns);
    let listener = in_netns(d1_ns.clone(), move || UdpSocket::bind(target).unwrap());

    // Thousands of DNS answers from "8.8.8.8:53": garbage, hostile forms, and valid answers
    // with unique names (more than --dns-names).
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    for i in 0..3000u32 {
        let len = rng.random_range(0..1400usize);
        let mut d: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i % 3 == 0 && d.len() > 12 {
            d[2] = 0x81; // looks like a response: the parser goes further
            d[12] = 0xc0; // and meets a compression pointer
        }
        datagrams.push(d);
    }
    for i in 0..1000u32 {
        use hickory_proto::{
            op::{Message, MessageType, Query},
            rr::{Name, RData, Record, RecordType, rdata},
        };
        let name = Name::from_ascii(format!("u{i}.flood.example.")).unwrap();
        let mut m = Message::query();
        m.metadata.message_type = MessageType::Response;
        m.add_query(Query::query(name.clone(), RecordType::A));
        let addr = std::net::Ipv4Addr::new(36, 110, (i / 250) as u8 + 10, (i % 250) as u8 + 1);
        m.add_answer(Record::from_rdata(name, 60, RData::A(rdata::A(addr))));
        datagrams.push(m.to_vec().unwrap());
    }
    let sent = datagrams.len() as u64;
    // An empty datagram carries no DNS message: nothing to hand over.
    let with_payload = datagrams.iter().filter(|d| !d.is_empty()).count() as f64;
    let bytes: u64 = datagrams.iter().map(|d| d.len() as u64 + 14 + 20 + 8).sum();
    in_netns(lab.netns_path(&lab.internet()), move || {
        let socket = UdpSocket::bind("8.8.8.8:53").unwrap();
        for (i, d) in datagrams.iter().enumerate() {
            socket.send_to(d, target).unwrap();
            if i % 200 == 199 {
                std::thread::sleep(Duration::from_millis(5)); // let the device's queue drain
            }
        }
    });
    drop(listener);
    // Every DNS datagram was either parsed (whatever the result) or counted as suppressed, once
    // the agent has read its captures.
    let dns = |samples: &support::prom::Samples| -> f64 {
        ["answer", "no_address", "not_response", "malformed", "truncated"]
            .iter()
            .map(|r| {
                support::prom::value(samples, "egress_tracer_dns_answers_total", &[("result", r)])
            })
            .sum()
    };
    let suppressed = |samples: &support::prom::Samples| {
        support::prom::value(samples, "egress_tracer_captures_suppressed_total", &[])
    };
    let samples =
        support::agent::wait_for(&agent, "DNS payloads parsed or suppressed", with_payload, |s| {
            dns(s) + suppressed(s)
        });
    let (dns, suppressed) = (dns(&samples), suppressed(&samples));
    assert_eq!(dns + suppressed, with_payload, "every DNS payload parsed or counted as suppressed");
    assert!(dns > 0.0);
    let entries = support::prom::value(&samples, "egress_tracer_names_entries", &[]);
    assert!(entries <= 256.0, "the name book is bounded: {entries}");
    let evictions = support::prom::value(&samples, "egress_tracer_names_evictions_total", &[]);
    assert!(evictions > 0.0, "unique names evicted");
    // The counters stay exact: every datagram counted once, download from US.
    let (packets, counted) = support::agent::counts(&samples, &d1.mac, "US", "download");
    assert_eq!((packets, counted), (sent as f64, bytes as f64));

    // Garbage to TLS ports, one connection per address (1,000 remotes).
    let inet_ns = lab.netns_path(&lab.internet());
    let server = std::thread::spawn(move || {
        in_netns(inet_ns, || {
            let l = std::net::TcpListener::bind("0.0.0.0:443").unwrap();
            l.set_nonblocking(false).unwrap();
            for _ in 0..1000 {
                if let Ok((mut s, _)) = l.accept() {
                    let _ = std::io::copy(&mut s, &mut std::io::sink());
                }
            }
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    in_netns(d1_ns, move || {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        for i in 0..1000u32 {
            let addr: SocketAddr =
                format!("36.110.{}.{}:443", 5 + i / 250, i % 250 + 1).parse().unwrap();
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let len = rng.random_range(1..1400usize);
                let mut junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                junk[0] = 22; // a handshake record type, to reach the parser's depths
                let _ = s.write_all(&junk);
            }
        }
    });
    let _ = server.join();

    // Every garbage TLS payload parsed or counted as suppressed (wait_for panics otherwise).
    let hellos = |samples: &support::prom::Samples| -> f64 {
        ["sni", "no_sni", "partial", "not_hello"]
            .iter()
            .map(|r| {
                support::prom::value(samples, "egress_tracer_tls_hellos_total", &[("result", r)])
            })
            .sum()
    };
    support::agent::wait_for(&agent, "garbage TLS payloads parsed or suppressed", 1000.0, |s| {
        hellos(s) + support::prom::value(s, "egress_tracer_captures_suppressed_total", &[])
            - suppressed
    });
    let after_rss = rss_kib(agent.pid());
    assert!(after_rss < before_rss + 16 * 1024, "RSS grew from {before_rss} to {after_rss} KiB");
    drop(agent);
}

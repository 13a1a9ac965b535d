//! The IPFIX exporter against a real collector: Debian's nfdump tools. `nfcapd` listens on
//! 127.0.0.1 and writes into a temporary directory; two exports of cumulative totals go through
//! `Deltas` and `Exporter` (IPv4 and IPv6 remotes, both directions, a counter reset, enough
//! records to need several messages); SIGTERM makes nfcapd flush and close its file, and
//! `nfdump -r FILE -o json` reads it back: bytes, packets, ports, protocol, direction and MAC per
//! remote and direction, and nfcapd's own count of sequence errors.
//!
//! Skipped, saying so, when `nfcapd` is not installed (`apt-get install nfdump`). Tested with
//! Debian bookworm's nfdump 1.7.1. Only loopback is used.

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracer_user::remotes::ipfix::{Deltas, Direction, Exporter, FlowRecord};

const DEVICE_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const FILLER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xff];
const FILLERS: u64 = 60;

/// nfcapd on 127.0.0.1:`port`, writing into `dir`; killed and cleaned up on drop.
struct Nfcapd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nfcapd {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("et-ipfix-nfdump-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("flows")).unwrap();
        // A free port: bound by us, released, then handed to nfcapd.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("nfcapd.log")).unwrap();
        let child = Command::new("nfcapd")
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600", "-w"])
            .arg(dir.join("flows"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nfcapd");
        let mut nfcapd = Nfcapd { child, dir, port };
        nfcapd.wait_for("listening", |q| q.is_some());
        nfcapd
    }

    /// Polls its socket in /proc/net/udp (None while not bound) until `done`.
    fn wait_for(&mut self, what: &str, done: impl Fn(Option<UdpQueue>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nfcapd exited ({status}) before {what}: {}", self.log());
            }
            if done(udp_queue(self.port)) {
                return;
            }
            assert!(Instant::now() < deadline, "nfcapd not {what} after 10 s: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: nfcapd flushes, closes and renames its file, then exits.
    fn stop(&mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "nfcapd still running 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nfcapd.log")).unwrap_or_default()
    }

    /// The closed capture files (`nfcapd.YYYYMMDDhhmm`).
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.join("flows"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| file_name(p).starts_with("nfcapd.") && !file_name(p).contains("current"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// A UDP socket's receive queue (bytes) and drop count, from /proc/net/udp.
#[derive(Clone, Copy, Debug)]
struct UdpQueue {
    rx: u64,
    drops: u64,
}

fn udp_queue(port: u16) -> Option<UdpQueue> {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&local.as_str())).then(|| UdpQueue {
            rx: u64::from_str_radix(cols[4].split(':').nth(1).unwrap(), 16).unwrap(),
            drops: cols.last().unwrap().parse().unwrap(),
        })
    })
}

fn nfcapd_installed() -> bool {
    match Command::new("nfcapd").arg("-V").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("nfcapd -V: {e}"),
        Ok(_) => true,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of the expected nfdump record"
)]
fn flow(
    mac: [u8; 6],
    device: Option<&str>,
    remote: &str,
    direction: Direction,
    protocol: u8,
    port: u16,
    octets: u64,
    packets: u64,
) -> FlowRecord {
    FlowRecord {
        mac,
        device: device.map(|d| d.parse().unwrap()),
        remote: remote.parse().unwrap(),
        direction,
        protocol,
        port,
        octets,
        packets,
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_030_000,
    }
}

/// Cumulative totals at one export: the device's four flows and the fillers.
fn totals(export: u8) -> Vec<FlowRecord> {
    use Direction::{Download, Upload};
    let (v4, v6) = (Some("192.168.1.20"), Some("fd00::20"));
    let mut t = vec![
        flow(DEVICE_MAC, v4, "198.51.100.7", Upload, 6, 443, 1000, 10),
        flow(DEVICE_MAC, v4, "198.51.100.7", Download, 6, 443, 50_000, 40),
        flow(DEVICE_MAC, v6, "2001:db8::7", Upload, 17, 443, 300, 3),
        flow(DEVICE_MAC, None, "2001:db8::7", Download, 17, 443, 7000, 6),
    ];
    if export == 2 {
        t[0].octets = 1500; // +500
        t[0].packets = 12; // +2
        t[1].octets = 80_000; // +30,000
        t[1].packets = 65; // +25
        // t[2] unchanged: not exported again.
        t[3].octets = 100; // reset: +100
        t[3].packets = 1; // +1
    } else {
        // Enough IPv4 records for several messages.
        t.extend((0..FILLERS).map(|i| {
            let remote = format!("203.0.113.{}", i + 1);
            flow(FILLER_MAC, v4, &remote, Upload, 6, 80, i + 1, 1)
        }));
    }
    t
}

#[tokio::test]
async fn nfcapd_stores_what_the_exporter_sends() {
    if !nfcapd_installed() {
        eprintln!("skipped: nfcapd is not installed (apt-get install nfdump)");
        return;
    }
    let mut nfcapd = Nfcapd::start();
    let mut exporter = Exporter::connect(([127, 0, 0, 1], nfcapd.port).into(), 42).await.unwrap();
    let mut deltas = Deltas::new();
    let mut messages = 0;
    for export in [1u8, 2] {
        let records = deltas.update(&totals(export));
        messages += exporter.export(1_700_000_000 + u32::from(export), &records).await.unwrap();
    }
    assert!(messages >= 4, "{messages} messages: the fillers should need several");
    assert_eq!(u64::from(exporter.encoder().sequence()), 4 + FILLERS + 3);
    // Let nfcapd read every datagram before it is told to stop.
    nfcapd.wait_for("drained", |q| q.is_some_and(|q| q.rx == 0));
    let drops = udp_queue(nfcapd.port).unwrap().drops;
    std::thread::sleep(Duration::from_millis(300));
    nfcapd.stop();
    assert_eq!(drops, 0, "datagrams dropped by the kernel");

    let log = nfcapd.log();
    assert!(log.contains("Sequence Errors: 0"), "{log}");
    assert!(log.contains("Bad Packets: 0"), "{log}");
    assert!(log.contains(&format!("Flows: {}", 4 + FILLERS + 3)), "{log}");

    let files = nfcapd.files();
    assert!(!files.is_empty(), "no capture file: {log}");
    let mut flows = vec![];
    for file in &files {
        let out = Command::new("nfdump").arg("-r").arg(file).args(["-o", "json"]).output();
        let out = out.expect("nfdump");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "nfdump: {text}{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        flows.extend(json.as_array().unwrap().iter().cloned());
    }
    assert_eq!(flows.len() as u64, 4 + FILLERS + 3);

    // Sum per (source, destination, direction), as nfdump shows them.
    let mut sums: BTreeMap<(IpAddr, IpAddr, u64), Sums> = BTreeMap::new();
    for f in &flows {
        let addr = |k4: &str, k6: &str| -> IpAddr {
            f[k4].as_str().or(f[k6].as_str()).unwrap_or_else(|| panic!("{f}")).parse().unwrap()
        };
        let key =
            (addr("src4_addr", "src6_addr"), addr("dst4_addr", "dst6_addr"), num(f, "direction"));
        let s = sums.entry(key).or_default();
        s.bytes += num(f, "in_bytes");
        s.packets += num(f, "in_packets");
        s.flows += 1;
        s.detail.insert((
            f["in_src_mac"].as_str().unwrap().to_owned(),
            num(f, "proto"),
            num(f, "src_port"),
            num(f, "dst_port"),
        ));
    }
    let device_mac = "02:11:22:33:44:55".to_owned();
    let mut expect = |src: &str, dst: &str, dir: u64, sum: (u64, u64, u64), detail| {
        let key = (src.parse().unwrap(), dst.parse().unwrap(), dir);
        let s = sums.remove(&key).unwrap_or_else(|| panic!("no flow {src} > {dst}"));
        assert_eq!((s.bytes, s.packets, s.flows), sum, "{src} > {dst}: bytes, packets, flows");
        let (proto, sport, dport) = detail;
        let want = vec![(device_mac.clone(), proto, sport, dport)];
        assert_eq!(s.detail.into_iter().collect::<Vec<_>>(), want, "{src} > {dst}");
    };
    // Upload: device > remote, remote port as destination, direction 1 (egress).
    expect("192.168.1.20", "198.51.100.7", 1, (1500, 12, 2), (6, 0, 443));
    expect("fd00::20", "2001:db8::7", 1, (300, 3, 1), (17, 0, 443));
    // Download: remote > device, remote port as source, direction 0 (ingress); unknown device ::.
    expect("198.51.100.7", "192.168.1.20", 0, (80_000, 65, 2), (6, 443, 0));
    expect("2001:db8::7", "::", 0, (7100, 7, 2), (17, 443, 0));
    // The rest are the fillers, with their own MAC.
    assert_eq!(sums.len() as u64, FILLERS);
    let bytes: u64 = sums.values().map(|s| s.bytes).sum();
    assert_eq!(bytes, FILLERS * (FILLERS + 1) / 2);
    for s in sums.values() {
        assert_eq!(s.detail.iter().next().unwrap().0, "02:00:00:00:00:ff");
    }
}

#[derive(Default)]
struct Sums {
    bytes: u64,
    packets: u64,
    flows: u64,
    detail: std::collections::BTreeSet<(String, u64, u64, u64)>,
}

fn num(f: &serde_json::Value, key: &str) -> u64 {
    f[key].as_u64().unwrap_or_else(|| panic!("{key} in {f}"))
}

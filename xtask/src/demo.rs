//! `cargo xtask demo`: the agent on a network-namespace gateway lab, with devices talking to
//! a few "countries".

use std::{
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tracer_lab::Lab;

use crate::{
    run::{cargo_build_release_agent, is_root},
    setup::Ready,
};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Host port where /metrics is forwarded to.
    #[arg(long, default_value_t = 9977)]
    pub port: u16,
    /// Run this agent binary instead of building the release one (the test suite passes the
    /// static build of its dist step).
    #[arg(long, value_name = "FILE")]
    pub agent: Option<std::path::PathBuf>,
}

/// The demo's policy and names: the TV is an IoT device that may only reach the EU and the US
/// (anything else is dropped), the phone and the laptop alert outside the EU and the US.
fn demo_config(lab: &Lab) -> String {
    let d = lab.devices();
    format!(
        r#"[policy]
allow = ["eu", "US"]

[[group]]
name = "iot"
otherwise = "block"

[[device]]
mac = "{}"
name = "living-room-tv"
group = "iot"

[[device]]
mac = "{}"
name = "phone"
"#,
        d[0].mac, d[1].mac
    )
}

/// The third device is named by a DHCP lease, as dnsmasq writes them.
fn demo_leases(lab: &Lab) -> String {
    let d = &lab.devices()[2];
    format!("1893456000 {} {} laptop 01:{}\n", d.mac, d.ipv4, d.mac)
}

/// Who operates the lab's "internet" (the real operators of these ranges), in ip-location-db's
/// asn CSV layout: the demo names each remote's organisation.
const DEMO_ASN: &str = "\
36.110.0.0,36.110.255.255,4134,CHINANET-BACKBONE
8.8.8.0,8.8.8.255,15169,Google LLC
193.0.0.0,193.0.7.255,3333,Reseaux IP Europeens Network Coordination Centre (RIPE NCC)
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,4134,CHINANET-BACKBONE
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC
";

/// Who talks to whom, and how many pings per round.
const TRAFFIC: &[(usize, &str, u32)] = &[
    (0, "36.110.0.1", 3),
    (0, "8.8.8.8", 1),
    (1, "193.0.0.1", 2),
    (1, "2001:4860:4860::8888", 1),
    // The phone's vendor cloud: resolved through the gateway's resolver (see VENDOR_CLOUD).
    (1, "36.110.0.1", 2),
    (2, "240e::1", 2),
    (2, "45.0.0.1", 1),
    (3, "8.8.8.8", 2),
];

/// The name the phone resolves before uploading to CN, as the gateway's dnsmasq answers it.
const VENDOR_CLOUD: &str = "api.io.mi.com";

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Runs the demo until Ctrl-C or `--duration`.
pub(crate) fn run(ready: &Ready, args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_root(),
        "the demo creates network namespaces and loads eBPF programs: run it as root \
         (`sudo -E cargo xtask demo`, or a root shell)"
    );
    let agent_bin = match &args.agent {
        Some(bin) => bin.clone(),
        None => cargo_build_release_agent(ready)?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // A second demo in the same process (the test suite's smoke run) reuses the first handler.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));

    let prefix = format!("etdemo{}", args.port % 100);
    let lab = Lab::create(&prefix).context("creating the lab")?;
    let gw = lab.netns_path(&lab.gateway());
    let bpffs_dir = format!("/sys/fs/bpf/egress-tracer-{prefix}");
    println!("lab: gateway {}, LAN {:?}, devices:", lab.gateway(), lab.lan_interfaces());
    for d in lab.devices() {
        println!("  {}  {}  {} / {}", d.netns, d.mac, d.ipv4, d.ipv6);
    }
    let files = std::env::temp_dir().join(format!("egress-tracer-{prefix}"));
    std::fs::create_dir_all(&files)?;
    let config = files.join("config.toml");
    let leases = files.join("dhcp.leases");
    let asn = files.join("asn.csv");
    std::fs::write(&config, demo_config(&lab))?;
    std::fs::write(&leases, demo_leases(&lab))?;
    std::fs::write(&asn, DEMO_ASN)?;
    println!("policy ({}):\n{}", config.display(), demo_config(&lab));
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", gw.display())).arg("--").arg(&agent_bin).args([
        "run",
        "--interval",
        "5",
        "--listen",
        "127.0.0.1:9977",
        "--bpffs-dir",
        &bpffs_dir,
    ]);
    cmd.arg("--config").arg(&config).arg("--leases").arg(&leases).arg("--asn").arg(&asn);
    // The demo's history and baseline stay with its other files, not in /var/lib.
    cmd.arg("--state-dir").arg(files.join("state"));
    for lan in lab.lan_interfaces() {
        cmd.args(["--lan", lan]);
    }
    let agent = AgentProcess(cmd.spawn().context("starting the agent")?);
    let listen = format!("127.0.0.1:{}", args.port);
    tracer_lab::forward(&listen, &gw, "127.0.0.1:9977")?;
    std::thread::sleep(Duration::from_secs(2));
    lab.warm_up()?;
    // The gateway's own resolver, as on a home router: it knows the phone's vendor cloud.
    let record = format!("--host-record={VENDOR_CLOUD},36.110.0.1");
    let dns = lab.dnsmasq(&lab.gateway(), &["10.77.0.1"], &[&record])?;
    let phone = &lab.devices()[1];
    let answer = lab.exec(&phone.netns, &["dig", "+short", "@10.77.0.1", VENDOR_CLOUD])?;
    println!("phone: dig {VENDOR_CLOUD} @10.77.0.1 -> {}", answer.trim());
    println!("\nscrape it:  curl -s http://{listen}/metrics | grep ^egress_tracer_bytes");
    println!("alerts:     curl -s http://{listen}/api/v1/alerts   (and one JSON line each below)");
    println!("web page:   http://{listen}/");
    println!("Ctrl-C stops the demo and removes the lab.\n");

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs(d));
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        for (device, addr, count) in TRAFFIC {
            // The TV's pings to CN are dropped by its policy: no replies is expected.
            let _ = lab.ping(&lab.devices()[*device], addr, *count);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(dns);
    let metrics =
        http_get(&listen, "/metrics").context("scraping the agent through the port forward")?;
    let counted = sum_of(&metrics, "egress_tracer_bytes_total{");
    let blocked = sum_of(&metrics, "egress_tracer_blocked_packets_total{");
    let alerts = http_get(&listen, "/api/v1/alerts")?;
    anyhow::ensure!(counted > 0.0, "the agent counted no egress bytes: the demo is broken");
    anyhow::ensure!(blocked > 0.0, "the TV's traffic to CN was not blocked: the demo is broken");
    anyhow::ensure!(alerts.contains("\"kind\":\"violation\""), "no alert was raised: {alerts}");
    let devices: serde_json::Value = serde_json::from_str(&http_get(&listen, "/api/v1/devices")?)
        .context("parsing /api/v1/devices")?;
    let alerts: serde_json::Value =
        serde_json::from_str(&alerts).context("parsing /api/v1/alerts")?;
    let remotes = |mac: &str| {
        let body = http_get(&listen, &format!("/api/v1/devices/{mac}/remotes?limit=4")).ok()?;
        serde_json::from_str(&body).ok()
    };
    print!("{}", crate::story::tell(&devices, &alerts, &remotes));
    println!(
        "\nIn numbers: {counted} bytes counted, {blocked} packets blocked (scraped from \
         http://{listen}/metrics).\nWhile the demo runs: the page at http://{listen}/, the metrics \
         at http://{listen}/metrics, the JSON at http://{listen}/api/v1/devices and \
         /api/v1/alerts."
    );
    // SAFETY: signalling our own child: print the table one last time.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    drop(agent);
    drop(lab);
    let _ = std::fs::remove_dir_all(&bpffs_dir);
    let _ = std::fs::remove_dir_all(&files);
    println!("demo: stopped after {:.0}s; lab removed", started.elapsed().as_secs_f64());
    Ok(())
}

/// The body of `GET path` from `addr`; fails unless the answer is 200 OK.
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(status.split_whitespace().nth(1) == Some("200"), "GET {path}: {status}");
    Ok(body.to_owned())
}

/// Sum of the samples whose line starts with `prefix` (a metric name and `{`).
fn sum_of(exposition: &str, prefix: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

//! A real Prometheus (Debian's `prometheus` package) scrapes the agent in the lab: PromQL
//! returns exactly the bytes and packets the devices sent, and `promtool check metrics` accepts
//! the exposition.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::agent::{Agent, LISTEN};

const LAB_DB: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,US
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,CN
";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    web: String,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("et-prom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: egress-tracer\n    static_configs:\n      - targets: ['{target}']\n        labels:\n          gateway: lab\n"
            ),
        )
        .unwrap();
        let web = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (cargo xtask setup installs Debian's package)");
        Prometheus { child, dir, web }
    }

    /// The value of an instant query with one result, once Prometheus has it.
    fn query_value(&self, promql: &str, want: f64) -> f64 {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = f64::NAN;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.web) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(s, "GET /api/v1/query?query={encoded} HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                let json = body.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(json)
                    && let Some(value) = v["data"]["result"][0]["value"][1].as_str()
                {
                    last = value.parse().unwrap_or(f64::NAN);
                    if last == want {
                        return last;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs root, network namespaces and prometheus: run by cargo xtask test"]
fn prometheus_scrapes_exact_counts_and_promtool_accepts_the_exposition() {
    let lab = support::lab("ep");
    let agent = Agent::start(&lab, LAB_DB);
    let forward = format!("127.0.0.1:{}", free_port());
    tracer_lab::forward(&forward, &lab.netns_path(&lab.gateway()), LISTEN).unwrap();
    lab.warm_up().unwrap();
    let [d1, _, d3, _] = lab.devices() else { panic!("four devices") };
    lab.ping(d1, "36.110.0.1", 7).unwrap();
    lab.ping(d3, "240e::1", 3).unwrap();

    let exposition = http_get(&forward, "/metrics");
    assert!(exposition.contains("egress_tracer_bytes_total"), "{exposition}");
    support::promtool::check_metrics(&exposition);

    let prometheus = Prometheus::start(&forward);
    let q = |mac: &str, country: &str, direction: &str, what: &str| {
        format!(
            r#"egress_tracer_{what}_total{{mac="{mac}",country="{country}",direction="{direction}",gateway="lab"}}"#
        )
    };
    for direction in ["upload", "download"] {
        assert_eq!(prometheus.query_value(&q(&d1.mac, "CN", direction, "packets"), 7.0), 7.0);
        assert_eq!(
            prometheus.query_value(&q(&d1.mac, "CN", direction, "bytes"), 7.0 * 98.0),
            7.0 * 98.0
        );
        assert_eq!(prometheus.query_value(&q(&d3.mac, "CN", direction, "packets"), 3.0), 3.0);
        assert_eq!(
            prometheus.query_value(&q(&d3.mac, "CN", direction, "bytes"), 3.0 * 118.0),
            3.0 * 118.0
        );
    }
    let total = prometheus.query_value(r#"sum(egress_tracer_packets_total{country="CN"})"#, 20.0);
    assert_eq!(total, 20.0, "nothing else was counted towards CN");
    drop(agent);
}

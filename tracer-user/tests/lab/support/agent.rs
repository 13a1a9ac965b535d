//! The real agent, started in a lab's gateway namespace for a test, and reading its metrics.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tracer_lab::Lab;

use super::prom::{self, Samples};

/// Where the agent listens inside the gateway namespace.
pub(crate) const LISTEN: &str = "127.0.0.1:9977";

/// The agent running in the lab's gateway namespace; killed and unpinned on drop.
pub(crate) struct Agent {
    child: Child,
    netns: PathBuf,
    /// Where the agent pins its counters.
    pub bpffs_dir: PathBuf,
    args: Vec<String>,
    /// The database file the agent was started with.
    pub geo: tempfile_path::TempPath,
    /// The configuration file, if the agent was started with one.
    pub config: Option<tempfile_path::TempPath>,
    /// Where the agent's stdout (the alert log) goes.
    pub stdout: tempfile_path::TempPath,
    /// Tells whether the agent is up (given its namespace); `None`: plain `GET /healthz`.
    ready: Option<Probe>,
}

/// A readiness check for an agent that does not answer plain HTTP (TLS, authentication).
pub(crate) type Probe = Box<dyn Fn(&std::path::Path) -> bool>;

mod tempfile_path {
    //! A file removed on drop.
    use std::path::{Path, PathBuf};

    /// Owns a path and removes the file when dropped.
    pub(crate) struct TempPath(pub PathBuf);

    impl TempPath {
        /// The path.
        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn write_db(name: &str, contents: &str) -> tempfile_path::TempPath {
    write_file(&format!("{name}.csv"), contents)
}

/// The agent binary the lab tests run: `$EGRESS_TRACER_BIN` if set (e.g. the static musl
/// build, which `cargo xtask test` checks this way), else the one cargo built for this test.
pub(crate) fn agent_bin() -> PathBuf {
    std::env::var_os("EGRESS_TRACER_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_egress-tracer")), PathBuf::from)
}

/// Writes a file in the temporary directory, removed when the returned path is dropped.
pub(crate) fn write_file(name: &str, contents: &str) -> tempfile_path::TempPath {
    let path = std::env::temp_dir().join(format!("egress-tracer-{}-{name}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("create db");
    f.write_all(contents.as_bytes()).expect("write db");
    tempfile_path::TempPath(path)
}

impl Agent {
    pub(crate) fn start(lab: &Lab, db: &str) -> Agent {
        Self::start_with(lab, db, &[])
    }

    pub(crate) fn start_with(lab: &Lab, db: &str, extra: &[&str]) -> Agent {
        Self::start_configured(lab, db, None, extra)
    }

    /// Starts the agent with a configuration file holding `config` (and `extra` flags).
    pub(crate) fn start_configured(
        lab: &Lab,
        db: &str,
        config: Option<&str>,
        extra: &[&str],
    ) -> Agent {
        Self::start_probed(lab, db, config, extra, None)
    }

    /// Starts the agent and waits until `ready` (or plain `GET /healthz`) says it is up.
    pub(crate) fn start_probed(
        lab: &Lab,
        db: &str,
        config: Option<&str>,
        extra: &[&str],
        ready: Option<Probe>,
    ) -> Agent {
        let geo = write_db(&lab.prefix(), db);
        let config = config.map(|text| write_file(&format!("{}.toml", lab.prefix()), text));
        let stdout = write_file(&format!("{}.stdout", lab.prefix()), "");
        let netns = lab.netns_path(&lab.gateway());
        let bpffs_dir = PathBuf::from(format!("/sys/fs/bpf/egress-tracer-test-{}", lab.prefix()));
        let mut args: Vec<String> = ["run", "--interval", "0", "--watch-interval", "1"]
            .into_iter()
            .map(String::from)
            .collect();
        // A test may listen elsewhere (`extra` then has its own --listen).
        if !extra.contains(&"--listen") {
            args.extend(["--listen".to_owned(), LISTEN.to_owned()]);
        }
        args.extend(["--geo".into(), geo.path().display().to_string()]);
        args.extend(["--bpffs-dir".into(), bpffs_dir.display().to_string()]);
        // Each lab keeps its state (baseline, history) apart, unless the test names a place.
        if !extra.contains(&"--state-dir") {
            let dir = std::env::temp_dir().join(format!("et-agent-state-{}", lab.prefix()));
            let _ = std::fs::remove_dir_all(&dir);
            args.extend(["--state-dir".into(), dir.display().to_string()]);
        }
        for lan in lab.lan_interfaces() {
            args.extend(["--lan".into(), lan.into()]);
        }
        if let Some(config) = &config {
            args.extend(["--config".into(), config.path().display().to_string()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let child = Self::spawn(&netns, &args, stdout.path());
        let mut agent = Agent { child, netns, bpffs_dir, args, geo, config, stdout, ready };
        agent.wait_ready();
        agent
    }

    fn spawn(netns: &std::path::Path, args: &[String], stdout: &std::path::Path) -> Child {
        let out = std::fs::OpenOptions::new().append(true).open(stdout).expect("open stdout file");
        Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .arg("--")
            .arg(agent_bin())
            .args(args)
            .stdout(Stdio::from(out))
            .spawn()
            .expect("spawn agent")
    }

    /// What the agent printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout.path()).unwrap_or_default()
    }

    /// Rewrites the configuration file (the agent must have been started with one).
    pub(crate) fn write_config(&self, text: &str) {
        let path = self.config.as_ref().expect("the agent has a config file").path();
        // Atomically, as an editor saves: the agent's watcher never reads half a file.
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).expect("write the config");
        std::fs::rename(&tmp, path).expect("replace the config");
    }

    /// `GET path` from the agent's HTTP server, as JSON.
    pub(crate) fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = super::netns_http::get(&self.netns, LISTEN, path).expect("GET");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// `GET /api/v1/devices/{mac}/remotes`, all of them (up to 1,000).
    pub(crate) fn remotes(&self, mac: &str) -> serde_json::Value {
        self.get_json(&format!("/api/v1/devices/{mac}/remotes?limit=1000"))
    }

    /// The agent's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The namespace the agent runs in.
    pub(crate) fn netns(&self) -> &std::path::Path {
        &self.netns
    }

    /// Stops the agent (SIGTERM) and starts it again with the same arguments and pins.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the agent with SIGTERM; it must exit cleanly.
    pub(crate) fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().expect("wait for the agent");
        assert!(status.success(), "the agent exits cleanly on SIGTERM: {status}");
    }

    /// Kills the agent with SIGKILL: no clean-up runs.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the agent");
        let _ = self.child.wait();
    }

    /// Starts the agent again after [`stop`](Self::stop), with the same arguments.
    pub(crate) fn start_again(&mut self) {
        self.child = Self::spawn(&self.netns, &self.args, self.stdout.path());
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited during start-up: {status}");
            }
            let up = match &self.ready {
                Some(ready) => ready(&self.netns),
                None => {
                    matches!(super::netns_http::get(&self.netns, LISTEN, "/healthz"), Ok((200, _)))
                }
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the agent did not come up within 30 s");
    }

    pub(crate) fn scrape(&self) -> Samples {
        let (status, body) =
            super::netns_http::get(&self.netns, LISTEN, "/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        prom::parse(&body)
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal agent");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Not `signal`: the agent may have exited already (a failed start), and a panic here
        // would abort the test binary and leak its lab.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.bpffs_dir);
        // The per-lab state directory this support made (not one a test named).
        if let Some(i) = self.args.iter().position(|a| a == "--state-dir")
            && let Some(dir) = self.args.get(i + 1)
            && dir.contains("/et-agent-state-")
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `egress_tracer_{bytes,packets}_total` for one device, country and direction.
pub(crate) fn counts(samples: &Samples, mac: &str, country: &str, direction: &str) -> (f64, f64) {
    let labels = [("mac", mac), ("country", country), ("direction", direction)];
    (
        prom::value(samples, "egress_tracer_packets_total", &labels),
        prom::value(samples, "egress_tracer_bytes_total", &labels),
    )
}

/// Every per-country series, as (mac, country, direction) -> (packets, bytes).
pub(crate) fn all_counts(samples: &Samples) -> Vec<(String, String, String, f64, f64)> {
    let mut out = Vec::new();
    for (labels, packets) in prom::matching(samples, "egress_tracer_packets_total", &[]) {
        let get = |k: &str| {
            labels.iter().find(|(lk, _)| lk == k).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let (mac, country, direction) = (get("mac"), get("country"), get("direction"));
        let (_, bytes) = counts(samples, &mac, &country, &direction);
        out.push((mac, country, direction, packets, bytes));
    }
    out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    out
}

/// Waits until `egress_tracer_reloads_total{result}` reaches `at_least`.
pub(crate) fn wait_for_reload(agent: &Agent, result: &str, at_least: f64) {
    wait_for_metric(agent, "egress_tracer_reloads_total", &[("result", result)], at_least);
}

/// Waits up to 20 s until the sample `name{labels}` reaches `at_least`; panics with the last
/// value otherwise. For counters the agent bumps after an exchange the test already saw end.
pub(crate) fn wait_for_metric(agent: &Agent, name: &str, labels: &[(&str, &str)], at_least: f64) {
    wait_for(agent, &format!("{name}{labels:?}"), at_least, |s| prom::value(s, name, labels));
}

/// Scrapes every 100 ms, for up to 20 s, until `value` of the scrape reaches `at_least`, and
/// returns that scrape; panics with `what` and the last value otherwise. For what the agent
/// counts a moment after the traffic the test sent (a capture it parses, a delivery).
pub(crate) fn wait_for(
    agent: &Agent,
    what: &str,
    at_least: f64,
    value: impl Fn(&Samples) -> f64,
) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0.0;
    while Instant::now() < deadline {
        let samples = agent.scrape();
        last = value(&samples);
        if last >= at_least {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} is {last}, not {at_least}, after 20 s");
}

/// The remote `address` of a remotes answer; panics with the answer if it is not there.
pub(crate) fn remote<'a>(view: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    view["remotes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no remote {address} in {view:#}"))
}

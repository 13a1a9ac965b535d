//! The agent as a systemd `Type=notify` service, for real: a test-bound notify socket stands in
//! for systemd, and the agent runs in the lab with only the capabilities the unit grants
//! (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON as its bounding set, like `CapabilityBoundingSet=`).
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).

use crate::support;

use std::{
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{LAB_DB, agent::LISTEN};

/// The notify socket, the agent's stderr file and the agent; cleaned up on drop.
struct Notified {
    socket: UnixDatagram,
    dir: PathBuf,
    child: Child,
    bpffs_dir: PathBuf,
}

impl Notified {
    fn start(lab: &tracer_lab::Lab, watchdog_usec: u64) -> Notified {
        let dir = std::env::temp_dir().join(format!("et-notify-{}", lab.prefix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        std::fs::write(dir.join("geo.csv"), LAB_DB).unwrap();
        let bpffs_dir = PathBuf::from(format!("/sys/fs/bpf/egress-tracer-test-{}", lab.prefix()));
        let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", lab.netns_path(&lab.gateway()).display()))
            .args(["--", "setpriv", "--bounding-set=-all,+bpf,+net_admin,+perfmon", "--"])
            .arg(support::agent::agent_bin())
            .args(["run", "--interval", "0", "--listen", LISTEN, "--geo"])
            .arg(dir.join("geo.csv"))
            .arg("--bpffs-dir")
            .arg(&bpffs_dir);
        for lan in lab.lan_interfaces() {
            cmd.args(["--lan", lan]);
        }
        cmd.env("NOTIFY_SOCKET", &socket_path).env_remove("WATCHDOG_PID");
        if watchdog_usec > 0 {
            cmd.env("WATCHDOG_USEC", watchdog_usec.to_string());
        } else {
            cmd.env_remove("WATCHDOG_USEC");
        }
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn the agent");
        Notified { socket, dir, child, bpffs_dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Waits up to `timeout` for a datagram containing `field`; returns it with every datagram
    /// received before it.
    fn wait_for(&mut self, field: &str, timeout: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited: {status}\n{}", self.stderr());
            }
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == field) {
                    return (msg, before);
                }
                before.push(msg);
            }
        }
        panic!("no {field} within {timeout:?}; got {before:?}\n{}", self.stderr());
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the agent");
    }

    fn healthz(&self, lab: &tracer_lab::Lab) -> u16 {
        let netns = lab.netns_path(&lab.gateway());
        support::netns_http::get(&netns, LISTEN, "/healthz").map_or(0, |(code, _)| code)
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.bpffs_dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn ready_comes_after_attach_and_http_then_watchdog_reload_and_stop() {
    let lab = support::lab("sn");
    let mut agent = Notified::start(&lab, 1_000_000);
    let (ready, before) = agent.wait_for("READY=1", Duration::from_secs(30));
    // Everything the agent wrote before READY=1 is in the file now (same process, in order).
    let log = agent.stderr();
    for lan in lab.lan_interfaces() {
        assert!(
            log.lines().any(|l| l.contains("attached") && l.contains(lan)),
            "READY=1 before {lan} was attached:\n{log}"
        );
    }
    assert!(log.contains("serving metrics"), "READY=1 before the server was bound:\n{log}");
    assert!(ready.lines().any(|l| l.starts_with("STATUS=counting on")), "{ready}");
    assert!(!before.iter().any(|m| m.contains("READY=1")), "{before:?}");
    assert_eq!(agent.healthz(&lab), 200, "/healthz answers as soon as READY=1 is sent");

    // WATCHDOG_USEC=1 s: a ping every half second while the loop runs.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(2600) {
        let (_, _) = agent.wait_for("WATCHDOG=1", Duration::from_secs(2));
        pings += 1;
    }
    assert!((4..=7).contains(&pings), "{pings} watchdog pings in ~2.6 s at a 0.5 s period");

    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let (reloading, _) = agent.wait_for("RELOADING=1", Duration::from_secs(10));
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    agent.wait_for("READY=1", Duration::from_secs(30));

    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_for("STOPPING=1", Duration::from_secs(10));
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "clean exit with only the unit's capabilities: {status}");
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn no_watchdog_pings_without_watchdog_usec() {
    let lab = support::lab("sw");
    let mut agent = Notified::start(&lab, 0);
    agent.wait_for("READY=1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let mut buf = [0u8; 4096];
    while let Ok(n) = agent.socket.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!msg.contains("WATCHDOG=1"), "{msg}");
    }
}

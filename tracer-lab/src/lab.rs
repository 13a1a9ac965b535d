//! The [`Lab`]: creating, using and removing the namespaces.

use std::{
    ffi::OsStr,
    path::PathBuf,
    process::{Child, Command},
    time::Instant,
};

use anyhow::Context as _;

use crate::{
    run,
    topology::{self, Device, LAN_INTERFACES},
};

/// A running lab; dropping it deletes its namespaces (and with them every veth).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    devices: Vec<Device>,
    /// When the build finished (the warm-up lets the start-up multicast reports pass).
    pub(crate) built: Instant,
}

impl Lab {
    /// Builds the lab; namespace names start with `prefix-` and host-side temporary interface
    /// names with `prefix`, so `prefix` must be unique among running labs (e.g. made from the
    /// process id) and 1 to [`MAX_PREFIX_LEN`](crate::MAX_PREFIX_LEN) ASCII letters or digits.
    /// Leftovers of an earlier run with the same prefix are removed first; if building fails,
    /// whatever was built is removed again.
    pub fn create(prefix: &str) -> anyhow::Result<Lab> {
        topology::check_prefix(prefix)?;
        Self::cleanup_stale(prefix);
        let mut lab = Lab {
            prefix: prefix.to_owned(),
            devices: topology::devices(prefix),
            built: Instant::now(),
        };
        crate::wiring::build(&lab).with_context(|| format!("building the lab {prefix}"))?;
        lab.built = Instant::now();
        Ok(lab)
    }

    /// Deletes every namespace whose name starts with `prefix-` (leftovers of a crashed run)
    /// and returns how many there were. Best effort: never fails.
    pub fn cleanup_stale(prefix: &str) -> usize {
        let Ok(list) = run(&["ip", "netns", "list"]) else { return 0 };
        let start = format!("{prefix}-");
        list.lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| name.starts_with(&start))
            .filter(|name| delete_netns(name))
            .count()
    }

    /// The name prefix.
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// The gateway namespace, `<prefix>-gw`.
    pub fn gateway(&self) -> String {
        format!("{}-gw", self.prefix)
    }

    /// The internet namespace, `<prefix>-inet`.
    pub fn internet(&self) -> String {
        format!("{}-inet", self.prefix)
    }

    /// `/run/netns/<name>`, for `nsenter --net=` or `setns`.
    pub fn netns_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(name)
    }

    /// The gateway's LAN interfaces to attach to: `br-lan` and `lanv`.
    pub fn lan_interfaces(&self) -> [&'static str; 2] {
        LAN_INTERFACES
    }

    /// The devices, d1..d4 (d1-d3 on the bridge, d4 on the routed `lanv` port).
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Every namespace of the lab.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.devices.iter().map(|d| d.netns.clone()).collect();
        all.push(self.gateway());
        all.push(self.internet());
        all
    }

    /// Runs `args` (program first) inside namespace `netns` with `ip netns exec` and returns
    /// its stdout. `ip netns exec` remounts /sys, hiding /sys/fs/bpf: use
    /// [`spawn_in`](Self::spawn_in) for the agent.
    pub fn exec(&self, netns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// The MAC address of interface `iface` in namespace `netns`.
    pub fn mac(&self, netns: &str, iface: &str) -> anyhow::Result<[u8; 6]> {
        let out = self.exec(netns, &["cat", &format!("/sys/class/net/{iface}/address")])?;
        let parts: Vec<&str> = out.trim().split(':').collect();
        anyhow::ensure!(parts.len() == 6, "{iface} in {netns}: not a MAC address: {out:?}");
        let mut mac = [0u8; 6];
        for (o, part) in mac.iter_mut().zip(parts) {
            *o = u8::from_str_radix(part, 16)
                .with_context(|| format!("{iface} in {netns}: not a MAC address: {out:?}"))?;
        }
        Ok(mac)
    }

    /// A command that runs `program` inside namespace `netns` with
    /// `nsenter --net=/run/netns/<netns> --`: only the network namespace changes, so the
    /// host's mounts (/sys/fs/bpf) stay visible. Add arguments and spawn it.
    pub fn command_in(&self, netns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path(netns).display())).arg("--").arg(program);
        c
    }

    /// Starts `args` (program first) inside namespace `netns` (see
    /// [`command_in`](Self::command_in)) with inherited stdio; the caller owns the child.
    pub fn spawn_in(&self, netns: &str, args: &[&str]) -> anyhow::Result<Child> {
        let (program, rest) = args.split_first().context("spawn_in: empty command")?;
        self.command_in(netns, program)
            .args(rest)
            .spawn()
            .with_context(|| format!("starting `{}` in {netns} with nsenter", args.join(" ")))
    }

    /// Starts dnsmasq in `netns` as a resolver on the `listen` addresses, answering only from
    /// `records` (dnsmasq options such as `--host-record=name,addr` or `--cname=a,b`; no
    /// upstream, no hosts file); it is killed when the returned guard drops.
    pub fn dnsmasq(
        &self,
        netns: &str,
        listen: &[&str],
        records: &[&str],
    ) -> anyhow::Result<crate::KillOnDrop> {
        let mut args: Vec<String> = [
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--user=root",
            "--port=53",
            "--log-facility=/dev/null",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let pid_file = std::env::temp_dir().join(format!("et-dnsmasq-{netns}.pid"));
        args.push(format!("--pid-file={}", pid_file.display()));
        args.extend(listen.iter().map(|a| format!("--listen-address={a}")));
        args.extend(records.iter().map(|r| (*r).to_owned()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .spawn_in(netns, &argv)
            .context("starting dnsmasq (cargo xtask setup installs dnsmasq-base)")?;
        // Until it listens.
        std::thread::sleep(std::time::Duration::from_millis(400));
        Ok(crate::KillOnDrop(child))
    }

    /// Makes the internet namespace answer every address of `prefix` (a local route on its
    /// `lo`), for traffic to many remote addresses.
    pub fn answer_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        let family = if prefix.contains(':') { "-6" } else { "-4" };
        self.exec(&self.internet(), &["ip", family, "route", "add", "local", prefix, "dev", "lo"])
            .map(drop)
    }

    /// Sends exactly `count` pings (10 ms apart) from `device` to `addr` (IPv4 or IPv6) and
    /// requires every reply.
    pub fn ping(&self, device: &Device, addr: &str, count: u32) -> anyhow::Result<()> {
        self.ping_from(&device.netns, addr, count)
    }

    /// Like [`ping`](Self::ping), from any namespace of the lab.
    pub fn ping_from(&self, netns: &str, addr: &str, count: u32) -> anyhow::Result<()> {
        self.ping_with(netns, &[], addr, count)
    }

    /// Like [`ping`](Self::ping), with the ping process on CPU `cpu`: its packets and their
    /// replies are handled on that CPU (a veth hands them to the sending CPU's backlog), for
    /// tests of per-CPU state.
    pub fn ping_on_cpu(
        &self,
        device: &Device,
        addr: &str,
        count: u32,
        cpu: u32,
    ) -> anyhow::Result<()> {
        let cpu = cpu.to_string();
        self.ping_with(&device.netns, &["taskset", "-c", &cpu], addr, count)
    }

    /// `prefix ping ...` in `netns`.
    fn ping_with(
        &self,
        netns: &str,
        prefix: &[&str],
        addr: &str,
        count: u32,
    ) -> anyhow::Result<()> {
        let family = if addr.contains(':') { "-6" } else { "-4" };
        let count = count.to_string();
        let ping = ["ping", family, "-n", "-q", "-c", &count, "-i", "0.01", "-W", "2", addr];
        let argv: Vec<&str> = prefix.iter().copied().chain(ping).collect();
        self.exec(netns, &argv).with_context(|| format!("ping {addr} from {netns}"))?;
        Ok(())
    }

    /// Resolves the neighbours (ARP and ND) between every device and the gateway, and between
    /// the gateway and the internet namespace, and waits until all of them are REACHABLE (they
    /// then stay so for about an hour), no resolution is under way in any namespace and the
    /// multicast reports that follow the build are over, so that measured traffic is not mixed
    /// with other packets on the LAN ports. Takes about half a second. Only local traffic is sent: pings to the gateway's own addresses and across
    /// the WAN link. Call it before taking a counter baseline; never ping remote addresses to
    /// "warm up" after the baseline, since those pings are egress and are counted.
    pub fn warm_up(&self) -> anyhow::Result<()> {
        crate::neigh::warm_up(self).with_context(|| format!("warming up the lab {}", self.prefix))
    }
}

/// `ip netns del name`; reports a failure on stderr and returns whether it succeeded.
fn delete_netns(name: &str) -> bool {
    match run(&["ip", "netns", "del", name]) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("tracer-lab: could not delete namespace {name}: {e:#}");
            false
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A failed build leaves some namespaces unmade: nothing to report for those.
        let existing = run(&["ip", "netns", "list"]).ok();
        let exists = |ns: &str| {
            existing
                .as_deref()
                .is_none_or(|list| list.lines().any(|l| l.split_whitespace().next() == Some(ns)))
        };
        for ns in self.namespaces() {
            if exists(&ns) {
                delete_netns(&ns);
            }
        }
    }
}

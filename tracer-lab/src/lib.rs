//! A gateway lab built from network namespaces, for egress-tracer's privileged tests and demo.
//!
//! ```text
//!  <p>-d1 ─┐                                          ┌─ 36.110.0.1 (CN)   240e::1 (CN)
//!  <p>-d2 ─┼─ br-lan ─ <p>-gw ─ wan0 ══ wan0 ─ <p>-inet ─┼─ 8.8.8.8 (US)    2001:4860:4860::8888 (US)
//!  <p>-d3 ─┘  10.77.0.1/24      198.18.0.1/30          ├─ 193.0.0.1 (NL)
//!  <p>-d4 ── lanv 10.77.100.1/24 (tagged frames injected)  └─ 45.0.0.1 (in no test database)
//! ```
//!
//! Devices have fixed MACs `02:00:00:00:00:0N`; the gateway routes (no NAT) between the LAN
//! and the "internet" namespace, which owns the remote addresses and answers pings. Everything
//! is removed when the [`Lab`] is dropped, also when a test panics.

mod cmd;
mod forward;
mod inject;

use std::path::PathBuf;

use anyhow::Context as _;
pub use cmd::run;
pub use forward::forward;
pub use inject::inject;

/// A device namespace on the LAN.
#[derive(Clone, Debug)]
pub struct Device {
    /// Namespace name.
    pub netns: String,
    /// MAC address of its LAN interface, `02:00:00:00:00:0N`.
    pub mac: String,
    /// IPv4 address.
    pub ipv4: String,
    /// IPv6 address.
    pub ipv6: String,
    /// Whether it sits on the second LAN port (`lanv`) rather than the bridge; tagged frames
    /// are injected there.
    pub vlan: bool,
}

/// A remote host in the lab's internet.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    /// Address.
    pub addr: &'static str,
    /// Country the lab's test databases give it (`None`: in no database).
    pub country: Option<&'static str>,
}

/// The remote addresses the internet namespace owns.
pub const REMOTES: &[Remote] = &[
    Remote { addr: "36.110.0.1", country: Some("CN") },
    Remote { addr: "8.8.8.8", country: Some("US") },
    Remote { addr: "193.0.0.1", country: Some("NL") },
    Remote { addr: "45.0.0.1", country: None },
    Remote { addr: "240e::1", country: Some("CN") },
    Remote { addr: "2001:4860:4860::8888", country: Some("US") },
];

/// The LAN interfaces of the gateway the programs attach to.
pub const LAN_INTERFACES: [&str; 2] = ["br-lan", "lanv"];

/// A running lab; dropping it deletes its namespaces.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    devices: Vec<Device>,
}

impl Lab {
    /// Builds the lab; namespace names start with `prefix` (keep it short and unique, e.g.
    /// from the process id). Leftovers of an earlier run with the same prefix are removed
    /// first.
    pub fn create(prefix: &str) -> anyhow::Result<Lab> {
        Self::cleanup_stale(prefix);
        let devices = (1..=4)
            .map(|n| Device {
                netns: format!("{prefix}-d{n}"),
                mac: format!("02:00:00:00:00:{n:02x}"),
                ipv4: if n == 4 { "10.77.100.14".into() } else { format!("10.77.0.1{n}") },
                ipv6: if n == 4 { "fd77:100::14".into() } else { format!("fd77::1{n}") },
                vlan: n == 4,
            })
            .collect();
        let lab = Lab { prefix: prefix.to_owned(), devices };
        lab.build().with_context(|| format!("building the lab {prefix}"))?;
        Ok(lab)
    }

    /// Deletes every namespace whose name starts with `prefix-`.
    pub fn cleanup_stale(prefix: &str) {
        let Ok(out) = std::process::Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name.starts_with(&format!("{prefix}-")) {
                let _ = std::process::Command::new("ip").args(["netns", "del", name]).status();
            }
        }
    }

    /// The name prefix.
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// The gateway namespace.
    pub fn gateway(&self) -> String {
        format!("{}-gw", self.prefix)
    }

    /// The internet namespace.
    pub fn internet(&self) -> String {
        format!("{}-inet", self.prefix)
    }

    /// `/run/netns/<name>`.
    pub fn netns_path(&self, name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(name)
    }

    /// The gateway's LAN interfaces to attach to.
    pub fn lan_interfaces(&self) -> [&'static str; 2] {
        LAN_INTERFACES
    }

    /// The devices, d1..d4 (d4 is on VLAN 100).
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = self.devices.iter().map(|d| d.netns.clone()).collect();
        all.push(self.gateway());
        all.push(self.internet());
        all
    }

    /// Runs `args` inside namespace `netns` (`ip netns exec`).
    pub fn exec(&self, netns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Sends exactly `count` pings from `device` to `addr` and requires every reply.
    pub fn ping(&self, device: &Device, addr: &str, count: u32) -> anyhow::Result<()> {
        let family = if addr.contains(':') { "-6" } else { "-4" };
        let count = count.to_string();
        self.exec(
            &device.netns,
            &["ping", family, "-n", "-q", "-c", &count, "-i", "0.01", "-W", "2", addr],
        )
        .with_context(|| format!("ping {addr} from {}", device.netns))?;
        Ok(())
    }

    /// Resolves every neighbour on the LAN (ARP/ND between devices and the gateway) so that
    /// measured traffic is not mixed with address resolution. Only local traffic is sent.
    pub fn warm_up(&self) -> anyhow::Result<()> {
        for d in &self.devices {
            let (gw4, gw6) =
                if d.vlan { ("10.77.100.1", "fd77:100::1") } else { ("10.77.0.1", "fd77::1") };
            self.ping(d, gw4, 1)?;
            self.ping(d, gw6, 1)?;
        }
        Ok(())
    }

    fn build(&self) -> anyhow::Result<()> {
        let p = &self.prefix;
        let (gw, inet) = (self.gateway(), self.internet());
        for ns in self.namespaces() {
            run(&["ip", "netns", "add", &ns])?;
            self.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
            for sysctl in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv6.conf.default.accept_ra=0",
                "net.ipv6.conf.all.autoconf=0",
                "net.ipv6.conf.default.autoconf=0",
            ] {
                self.exec(&ns, &["sysctl", "-qw", sysctl])?;
            }
        }
        for sysctl in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            self.exec(&gw, &["sysctl", "-qw", sysctl])?;
        }
        self.exec(&gw, &["ip", "link", "add", "br-lan", "type", "bridge"])?;
        self.exec(&gw, &["ip", "link", "set", "br-lan", "address", "02:00:00:00:01:fe", "up"])?;
        self.exec(&gw, &["ip", "addr", "add", "10.77.0.1/24", "dev", "br-lan"])?;
        self.exec(&gw, &["ip", "addr", "add", "fd77::1/64", "dev", "br-lan", "nodad"])?;
        for (n, d) in self.devices.iter().enumerate() {
            let n = n + 1;
            let port = if d.vlan { "lanv".to_owned() } else { format!("lan{n}") };
            let tmp = format!("{p}t{n}");
            run(&[
                "ip", "link", "add", &tmp, "netns", &d.netns, "type", "veth", "peer", "name",
                &port, "netns", &gw,
            ])?;
            self.exec(&d.netns, &["ip", "link", "set", &tmp, "name", "eth0"])?;
            self.exec(&d.netns, &["ip", "link", "set", "eth0", "address", &d.mac, "up"])?;
            let (gw4, gw6) = if d.vlan {
                // The lab's kernel may lack 802.1Q devices (CONFIG_VLAN_8021Q), so d4 sits on a
                // separate, routed LAN port; tagged frames are injected with `inject`.
                self.exec(&gw, &["ip", "link", "set", &port, "up"])?;
                self.exec(&gw, &["ip", "addr", "add", "10.77.100.1/24", "dev", &port])?;
                self.exec(&gw, &["ip", "addr", "add", "fd77:100::1/64", "dev", &port, "nodad"])?;
                ("10.77.100.1", "fd77:100::1")
            } else {
                self.exec(&gw, &["ip", "link", "set", &port, "master", "br-lan", "up"])?;
                ("10.77.0.1", "fd77::1")
            };
            let (v4, v6) = (format!("{}/24", d.ipv4), format!("{}/64", d.ipv6));
            self.exec(&d.netns, &["ip", "addr", "add", &v4, "dev", "eth0"])?;
            self.exec(&d.netns, &["ip", "addr", "add", &v6, "dev", "eth0", "nodad"])?;
            self.exec(&d.netns, &["ip", "route", "add", "default", "via", gw4])?;
            self.exec(&d.netns, &["ip", "-6", "route", "add", "default", "via", gw6])?;
        }
        let tmp = format!("{p}tw");
        run(&[
            "ip", "link", "add", &tmp, "netns", &gw, "type", "veth", "peer", "name", "wan0",
            "netns", &inet,
        ])?;
        self.exec(&gw, &["ip", "link", "set", &tmp, "name", "wan0"])?;
        for (ns, v4, v6) in
            [(&gw, "198.18.0.1/30", "fd00:ffff::1/64"), (&inet, "198.18.0.2/30", "fd00:ffff::2/64")]
        {
            self.exec(ns, &["ip", "link", "set", "wan0", "up"])?;
            self.exec(ns, &["ip", "addr", "add", v4, "dev", "wan0"])?;
            self.exec(ns, &["ip", "addr", "add", v6, "dev", "wan0", "nodad"])?;
        }
        self.exec(&gw, &["ip", "route", "add", "default", "via", "198.18.0.2"])?;
        self.exec(&gw, &["ip", "-6", "route", "add", "default", "via", "fd00:ffff::2"])?;
        for remote in REMOTES {
            let len = if remote.addr.contains(':') { "/128" } else { "/32" };
            self.exec(
                &inet,
                &["ip", "addr", "add", &format!("{}{len}", remote.addr), "dev", "lo"],
            )?;
        }
        self.exec(&inet, &["ip", "route", "add", "10.77.0.0/16", "via", "198.18.0.1"])?;
        self.exec(&inet, &["ip", "-6", "route", "add", "fd77::/16", "via", "fd00:ffff::1"])?;
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            let _ = std::process::Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

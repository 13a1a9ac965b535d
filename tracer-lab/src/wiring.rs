//! Building the lab's namespaces, links, addresses and routes with `ip`.

use crate::{
    Lab, REMOTES, run,
    topology::{GW_LAN_V4, GW_LAN_V6, GW_WAN_V4, GW_WAN_V6, INET_WAN_V4, INET_WAN_V6},
};

/// Per-namespace sysctls: no DAD (IPv6 addresses work at once), no router advertisements or
/// autoconfiguration (less stray traffic), and the unsolicited IGMP/MLD reports that follow
/// an interface or address coming up sent 50 ms apart instead of up to 1 s, so they are over
/// before [`Lab::warm_up`] returns.
const NS_SYSCTLS: &[&str] = &[
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
    "net.ipv6.conf.all.autoconf=0",
    "net.ipv6.conf.default.autoconf=0",
    "net.ipv4.conf.all.igmpv3_unsolicited_report_interval=50",
    "net.ipv4.conf.default.igmpv3_unsolicited_report_interval=50",
    "net.ipv6.conf.all.mldv2_unsolicited_report_interval=50",
    "net.ipv6.conf.default.mldv2_unsolicited_report_interval=50",
];

/// How long a confirmed neighbour stays REACHABLE (randomised by the kernel to 0.5-1.5x):
/// long enough that no ARP/ND probe crosses a LAN interface during a test.
const REACHABLE_MS: &str = "3600000";

/// Builds every namespace and link of `lab`.
pub(crate) fn build(lab: &Lab) -> anyhow::Result<()> {
    for ns in lab.namespaces() {
        run(&["ip", "netns", "add", &ns])?;
        lab.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
        let mut sysctl = vec!["sysctl", "-qw"];
        sysctl.extend_from_slice(NS_SYSCTLS);
        lab.exec(&ns, &sysctl)?;
    }
    gateway_lan(lab)?;
    for n in 0..lab.devices().len() {
        device(lab, n)?;
    }
    wan(lab)?;
    internet(lab)
}

/// Neighbour timing of one interface (namespaces have no `neigh.default` of their own): entries
/// stay REACHABLE for about an hour, and a STALE entry in use is probed at once rather than
/// after 5 s, so [`Lab::warm_up`] finishes quickly.
fn neighbour_timing(lab: &Lab, ns: &str, iface: &str) -> anyhow::Result<()> {
    let settings: Vec<String> = ["ipv4", "ipv6"]
        .iter()
        .flat_map(|family| {
            [
                format!("net.{family}.neigh.{iface}.base_reachable_time_ms={REACHABLE_MS}"),
                format!("net.{family}.neigh.{iface}.delay_first_probe_time=0"),
            ]
        })
        .collect();
    let mut args = vec!["sysctl", "-qw"];
    args.extend(settings.iter().map(String::as_str));
    lab.exec(ns, &args)?;
    Ok(())
}

fn gateway_lan(lab: &Lab) -> anyhow::Result<()> {
    let gw = lab.gateway();
    lab.exec(&gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
    lab.exec(&gw, &["ip", "link", "add", "br-lan", "type", "bridge"])?;
    lab.exec(&gw, &["ip", "link", "set", "br-lan", "address", "02:00:00:00:01:fe", "up"])?;
    lab.exec(&gw, &["ip", "addr", "add", &format!("{GW_LAN_V4}/24"), "dev", "br-lan"])?;
    lab.exec(&gw, &["ip", "addr", "add", &format!("{GW_LAN_V6}/64"), "dev", "br-lan", "nodad"])?;
    neighbour_timing(lab, &gw, "br-lan")
}

/// Device `n` (0-based): a veth pair, `eth0` in the device, `lanN` (bridged) or `lanv`
/// (routed) in the gateway.
fn device(lab: &Lab, n: usize) -> anyhow::Result<()> {
    let gw = lab.gateway();
    let d = &lab.devices()[n];
    let port = if d.vlan { "lanv".to_owned() } else { format!("lan{}", n + 1) };
    // Created under a unique name (the host-side names of parallel labs must not collide),
    // then renamed inside the device namespace.
    let tmp = format!("{}t{}", lab.prefix(), n + 1);
    run(&[
        "ip", "link", "add", &tmp, "netns", &d.netns, "type", "veth", "peer", "name", &port,
        "netns", &gw,
    ])?;
    lab.exec(&d.netns, &["ip", "link", "set", &tmp, "name", "eth0"])?;
    lab.exec(&d.netns, &["ip", "link", "set", "eth0", "address", &d.mac, "up"])?;
    neighbour_timing(lab, &d.netns, "eth0")?;
    if d.vlan {
        // The lab's kernel may lack 802.1Q devices (CONFIG_VLAN_8021Q), so d4 sits on a
        // separate, routed LAN port; tagged frames are injected with `inject`.
        lab.exec(&gw, &["ip", "link", "set", &port, "up"])?;
        let (v4, v6) = (format!("{}/24", d.gateway_ipv4()), format!("{}/64", d.gateway_ipv6()));
        lab.exec(&gw, &["ip", "addr", "add", &v4, "dev", &port])?;
        lab.exec(&gw, &["ip", "addr", "add", &v6, "dev", &port, "nodad"])?;
        neighbour_timing(lab, &gw, &port)?;
    } else {
        lab.exec(&gw, &["ip", "link", "set", &port, "master", "br-lan", "up"])?;
    }
    let (v4, v6) = (format!("{}/24", d.ipv4), format!("{}/64", d.ipv6));
    lab.exec(&d.netns, &["ip", "addr", "add", &v4, "dev", "eth0"])?;
    lab.exec(&d.netns, &["ip", "addr", "add", &v6, "dev", "eth0", "nodad"])?;
    lab.exec(&d.netns, &["ip", "route", "add", "default", "via", d.gateway_ipv4()])?;
    lab.exec(&d.netns, &["ip", "-6", "route", "add", "default", "via", d.gateway_ipv6()])?;
    Ok(())
}

fn wan(lab: &Lab) -> anyhow::Result<()> {
    let (gw, inet) = (lab.gateway(), lab.internet());
    let tmp = format!("{}tw", lab.prefix());
    run(&[
        "ip", "link", "add", &tmp, "netns", &gw, "type", "veth", "peer", "name", "wan0", "netns",
        &inet,
    ])?;
    lab.exec(&gw, &["ip", "link", "set", &tmp, "name", "wan0"])?;
    for (ns, v4, v6) in [(&gw, GW_WAN_V4, GW_WAN_V6), (&inet, INET_WAN_V4, INET_WAN_V6)] {
        lab.exec(ns, &["ip", "link", "set", "wan0", "up"])?;
        lab.exec(ns, &["ip", "addr", "add", &format!("{v4}/30"), "dev", "wan0"])?;
        lab.exec(ns, &["ip", "addr", "add", &format!("{v6}/64"), "dev", "wan0", "nodad"])?;
        neighbour_timing(lab, ns, "wan0")?;
    }
    lab.exec(&gw, &["ip", "route", "add", "default", "via", INET_WAN_V4])?;
    lab.exec(&gw, &["ip", "-6", "route", "add", "default", "via", INET_WAN_V6])?;
    Ok(())
}

/// The internet namespace owns the remote addresses and routes the LAN back to the gateway.
fn internet(lab: &Lab) -> anyhow::Result<()> {
    let inet = lab.internet();
    for remote in REMOTES {
        let len = if remote.is_ipv6() { "/128" } else { "/32" };
        let addr = format!("{}{len}", remote.addr);
        lab.exec(&inet, &["ip", "addr", "add", &addr, "dev", "lo"])?;
    }
    lab.exec(&inet, &["ip", "route", "add", "10.77.0.0/16", "via", GW_WAN_V4])?;
    lab.exec(&inet, &["ip", "-6", "route", "add", "fd77::/16", "via", GW_WAN_V6])?;
    Ok(())
}

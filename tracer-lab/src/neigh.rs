//! Resolving neighbours before measured traffic, so that no ARP/ND crosses a LAN interface
//! while a test counts.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    Lab,
    topology::{Device, GW_WAN_V4, GW_WAN_V6, INET_WAN_V4, INET_WAN_V6},
};

/// How long [`wait_settled`] waits at most.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How often it looks.
const POLL: Duration = Duration::from_millis(100);
/// How long after the build the warm-up returns at the earliest: the unsolicited IGMP/MLD
/// reports (two, 50 ms apart in the lab) are over by then.
const AFTER_BUILD: Duration = Duration::from_millis(500);

/// A neighbour entry a namespace must hold in state REACHABLE (or PERMANENT).
#[derive(Debug)]
struct Want {
    netns: String,
    iface: &'static str,
    addr: String,
}

/// See [`Lab::warm_up`].
pub(crate) fn warm_up(lab: &Lab) -> anyhow::Result<()> {
    for d in lab.devices() {
        lab.ping(d, d.gateway_ipv4(), 1)?;
        lab.ping(d, d.gateway_ipv6(), 1)?;
    }
    // The WAN link does not cross a LAN interface, but resolving it here keeps the first
    // measured packets to a remote free of resolution delays.
    for addr in [INET_WAN_V4, INET_WAN_V6] {
        lab.ping_from(&lab.gateway(), addr, 1)?;
    }
    wait_settled(lab, &wanted(lab))?;
    if let Some(rest) = AFTER_BUILD.checked_sub(lab.built.elapsed()) {
        std::thread::sleep(rest);
    }
    Ok(())
}

/// Every neighbour entry the warm-up must have made REACHABLE.
fn wanted(lab: &Lab) -> Vec<Want> {
    let want = |netns: &str, iface: &'static str, addr: &str| Want {
        netns: netns.to_owned(),
        iface,
        addr: addr.to_owned(),
    };
    let gw = lab.gateway();
    let mut all = Vec::new();
    for d in lab.devices() {
        all.push(want(&d.netns, Device::IFACE, d.gateway_ipv4()));
        all.push(want(&d.netns, Device::IFACE, d.gateway_ipv6()));
        all.push(want(&gw, d.lan_interface(), &d.ipv4));
        all.push(want(&gw, d.lan_interface(), &d.ipv6));
    }
    all.push(want(&gw, "wan0", INET_WAN_V4));
    all.push(want(&gw, "wan0", INET_WAN_V6));
    all.push(want(&lab.internet(), "wan0", GW_WAN_V4));
    all.push(want(&lab.internet(), "wan0", GW_WAN_V6));
    all
}

/// Whether `table` (`ip neigh show` output) holds `addr` on `iface` as REACHABLE or PERMANENT.
fn is_reachable(table: &str, iface: &str, addr: &str) -> bool {
    table.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.first() == Some(&addr)
            && words.windows(2).any(|w| w == ["dev", iface])
            && words.iter().any(|w| matches!(*w, "REACHABLE" | "PERMANENT"))
    })
}

/// Whether a line of `ip neigh show` is an entry being resolved or re-confirmed: the kernel
/// sends ARP/ND for it.
fn in_flux(line: &str) -> bool {
    line.split_whitespace().any(|w| matches!(w, "INCOMPLETE" | "DELAY" | "PROBE"))
}

/// Polls the lab's neighbour tables until every wanted entry is REACHABLE and nothing is
/// being resolved, three times in a row (a confirmation can set off another one: a unicast
/// probe from a link-local address makes the receiver resolve that address in turn).
fn wait_settled(lab: &Lab, wanted: &[Want]) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let mut quiet_polls = 0;
    loop {
        let mut problems = Vec::new();
        let mut tables = BTreeMap::new();
        for ns in lab.namespaces() {
            let table = crate::run(&["ip", "-n", &ns, "neigh", "show"])
                .with_context(|| format!("reading the neighbour table of {ns}"))?;
            problems.extend(table.lines().filter(|l| in_flux(l)).map(|l| format!("{ns}: {l}")));
            tables.insert(ns, table);
        }
        for w in wanted {
            if !is_reachable(&tables[&w.netns], w.iface, &w.addr) {
                problems.push(format!("{}: {} on {} not REACHABLE", w.netns, w.addr, w.iface));
            }
        }
        quiet_polls = if problems.is_empty() { quiet_polls + 1 } else { 0 };
        if quiet_polls == 3 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "neighbours not settled after {}s:\n{}",
                TIMEOUT.as_secs(),
                problems.join("\n")
            );
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::{in_flux, is_reachable};

    #[test]
    fn reads_neighbour_states() {
        let table = "\
10.77.0.11 dev br-lan lladdr 02:00:00:00:00:01 REACHABLE
10.77.0.12 dev br-lan lladdr 02:00:00:00:00:02 DELAY
fd77::11 dev br-lan lladdr 02:00:00:00:00:01 router STALE
198.18.0.2 dev wan0 lladdr 02:aa:bb:cc:dd:ee PERMANENT
";
        assert!(is_reachable(table, "br-lan", "10.77.0.11"));
        assert!(!is_reachable(table, "lanv", "10.77.0.11"));
        assert!(!is_reachable(table, "br-lan", "10.77.0.12"));
        assert!(!is_reachable(table, "br-lan", "fd77::11"));
        assert!(!is_reachable(table, "br-lan", "10.77.0.1"), "no prefix matches");
        assert!(is_reachable(table, "wan0", "198.18.0.2"));
        let flux: Vec<&str> = table.lines().filter(|l| in_flux(l)).collect();
        assert_eq!(flux, ["10.77.0.12 dev br-lan lladdr 02:00:00:00:00:02 DELAY"]);
        assert!(in_flux("10.77.0.9 dev br-lan INCOMPLETE"));
        assert!(in_flux("fe80::1 dev eth0 lladdr 02:00:00:00:00:01 router PROBE"));
    }
}

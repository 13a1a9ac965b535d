//! A gateway lab built from network namespaces, for egress-tracer's privileged tests and demo.
//!
//! ```text
//!  <p>-d1 ─┐ lan1                                          ┌─ 36.110.0.1 (CN)   240e::1 (CN)
//!  <p>-d2 ─┼─ br-lan ─ <p>-gw ─ wan0 ══ wan0 ─ <p>-inet ──┼─ 8.8.8.8 (US)      2001:4860:4860::8888 (US)
//!  <p>-d3 ─┘  10.77.0.1/24      198.18.0.1/30             ├─ 193.0.0.1 (NL)
//!             fd77::1/64        fd00:ffff::1/64           └─ 45.0.0.1 (in no test database)
//!  <p>-d4 ── lanv 10.77.100.1/24, fd77:100::1/64 ("VLAN 100": tagged frames are injected)
//! ```
//!
//! Devices have fixed MACs `02:00:00:00:00:0N` on their `eth0`, addresses `10.77.0.1N` /
//! `fd77::1N` (d4: `10.77.100.14` / `fd77:100::14`) and default routes via the gateway. The
//! gateway routes (no NAT) between the LAN and the "internet" namespace, which owns the
//! [`REMOTES`] on its `lo`, routes the LAN prefixes back and answers pings. IPv6 DAD, router
//! advertisements and autoconfiguration are off, so IPv6 works at once.
//!
//! The lab's kernel has no 802.1Q devices (`CONFIG_VLAN_8021Q` is not set), so d4 is not on a
//! `lanv.100` sub-interface: it sits untagged on the separate, routed LAN port `lanv`, and
//! tagged frames are put on that wire with [`inject`].
//!
//! Everything is removed when the [`Lab`] is dropped, also when a test panics;
//! [`Lab::cleanup_stale`] removes what a killed run left behind.
//!
//! Run the agent in the gateway with [`Lab::spawn_in`] / [`Lab::command_in`] (`nsenter`), not
//! with [`Lab::exec`]: `ip netns exec` remounts /sys and hides /sys/fs/bpf.

mod cmd;
mod forward;
mod inject;
mod lab;
mod neigh;
mod netns;
mod topology;
pub mod trafgen;
mod wiring;

pub use cmd::run;
pub use forward::forward;
pub use inject::inject;
pub use lab::Lab;
pub use netns::enter_netns;
pub use topology::{
    Device, GW_LAN_V4, GW_LAN_V6, GW_VLAN_V4, GW_VLAN_V6, GW_WAN_V4, GW_WAN_V6, INET_WAN_V4,
    INET_WAN_V6, LAN_INTERFACES, MAX_PREFIX_LEN, REMOTES, Remote, check_prefix,
};

/// A child process killed (and reaped) on drop: a server a test or the demo runs in the lab.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! The lab's fixed addressing plan: devices, gateway addresses, the remote "countries".

/// The gateway's address on the bridged LAN (`br-lan`).
pub const GW_LAN_V4: &str = "10.77.0.1";
/// The gateway's IPv6 address on the bridged LAN (`br-lan`).
pub const GW_LAN_V6: &str = "fd77::1";
/// The gateway's address on the second, routed LAN port (`lanv`, "VLAN 100").
pub const GW_VLAN_V4: &str = "10.77.100.1";
/// The gateway's IPv6 address on the second LAN port (`lanv`).
pub const GW_VLAN_V6: &str = "fd77:100::1";
/// The gateway's end of the WAN link (`wan0`).
pub const GW_WAN_V4: &str = "198.18.0.1";
/// The gateway's IPv6 end of the WAN link (`wan0`).
pub const GW_WAN_V6: &str = "fd00:ffff::1";
/// The internet namespace's end of the WAN link (`wan0`), the gateway's default route.
pub const INET_WAN_V4: &str = "198.18.0.2";
/// The internet namespace's IPv6 end of the WAN link, the gateway's IPv6 default route.
pub const INET_WAN_V6: &str = "fd00:ffff::2";

/// The gateway's LAN interfaces the programs attach to: the bridge and the routed port.
pub const LAN_INTERFACES: [&str; 2] = ["br-lan", "lanv"];

/// The longest prefix [`Lab::create`](crate::Lab::create) accepts: interface names made from
/// it (`<prefix>t1`) must fit the kernel's 15 characters.
pub const MAX_PREFIX_LEN: usize = 13;

/// A device namespace on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Short name, `d1`..`d4`.
    pub name: String,
    /// Namespace name, `<prefix>-dN`.
    pub netns: String,
    /// MAC address of its LAN interface `eth0`, `02:00:00:00:00:0N`.
    pub mac: String,
    /// IPv4 address (without prefix length).
    pub ipv4: String,
    /// IPv6 address (without prefix length).
    pub ipv6: String,
    /// Whether it sits on the second, routed LAN port (`lanv`, the "VLAN 100" subnet) rather
    /// than on the bridge. Its own traffic is untagged (the lab's kernel may lack 802.1Q
    /// devices); tagged frames are sent on that link with [`inject`](crate::inject).
    pub vlan: bool,
}

impl Device {
    /// The device's interface name inside its namespace.
    pub const IFACE: &'static str = "eth0";

    /// The gateway's IPv4 address on this device's subnet (its default route).
    pub fn gateway_ipv4(&self) -> &'static str {
        if self.vlan { GW_VLAN_V4 } else { GW_LAN_V4 }
    }

    /// The gateway's IPv6 address on this device's subnet (its IPv6 default route).
    pub fn gateway_ipv6(&self) -> &'static str {
        if self.vlan { GW_VLAN_V6 } else { GW_LAN_V6 }
    }

    /// The gateway interface this device's traffic crosses: `br-lan` or `lanv`.
    pub fn lan_interface(&self) -> &'static str {
        if self.vlan { LAN_INTERFACES[1] } else { LAN_INTERFACES[0] }
    }
}

/// The four devices of a lab with names starting with `prefix`.
pub(crate) fn devices(prefix: &str) -> Vec<Device> {
    (1..=4u8)
        .map(|n| {
            let vlan = n == 4;
            Device {
                name: format!("d{n}"),
                netns: format!("{prefix}-d{n}"),
                mac: format!("02:00:00:00:00:{n:02x}"),
                ipv4: if vlan { "10.77.100.14".into() } else { format!("10.77.0.1{n}") },
                ipv6: if vlan { "fd77:100::14".into() } else { format!("fd77::1{n}") },
                vlan,
            }
        })
        .collect()
}

/// A remote host in the lab's internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    /// A short name for messages.
    pub name: &'static str,
    /// Address (IPv4 or IPv6).
    pub addr: &'static str,
    /// Country the lab's test databases give it (`None`: in no database, "unknown").
    pub country: Option<&'static str>,
}

impl Remote {
    /// Whether the address is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.addr.contains(':')
    }
}

/// The remote addresses the internet namespace owns (on its `lo`).
pub const REMOTES: &[Remote] = &[
    Remote { name: "cn-v4", addr: "36.110.0.1", country: Some("CN") },
    Remote { name: "us-v4", addr: "8.8.8.8", country: Some("US") },
    Remote { name: "nl-v4", addr: "193.0.0.1", country: Some("NL") },
    Remote { name: "unknown-v4", addr: "45.0.0.1", country: None },
    Remote { name: "cn-v6", addr: "240e::1", country: Some("CN") },
    Remote { name: "us-v6", addr: "2001:4860:4860::8888", country: Some("US") },
];

/// Checks that `prefix` makes valid, recognisable names: 1 to [`MAX_PREFIX_LEN`] ASCII letters
/// or digits (no `-`, which separates the prefix from the rest of a namespace name).
pub fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "lab prefix {prefix:?} must be 1 to {MAX_PREFIX_LEN} ASCII letters or digits"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, net::IpAddr};

    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("et12345x0").is_ok());
        assert!(check_prefix("a234567890123").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a2345678901234").is_err(), "too long for <prefix>t1");
        assert!(check_prefix("et-1").is_err());
        assert!(check_prefix("et/1").is_err());
    }

    #[test]
    fn devices_have_fixed_unique_addresses() {
        let devices = devices("x");
        assert_eq!(devices.len(), 4);
        assert_eq!(devices[0].mac, "02:00:00:00:00:01");
        assert_eq!(devices[3].mac, "02:00:00:00:00:04");
        assert_eq!(devices[2].ipv4, "10.77.0.13");
        assert_eq!(devices[2].ipv6, "fd77::13");
        assert_eq!(devices[3].netns, "x-d4");
        assert!(devices[3].vlan && devices[..3].iter().all(|d| !d.vlan));
        assert_eq!(devices[3].gateway_ipv4(), GW_VLAN_V4);
        assert_eq!(devices[3].lan_interface(), "lanv");
        assert_eq!(devices[0].gateway_ipv6(), GW_LAN_V6);
        for d in &devices {
            d.ipv4.parse::<std::net::Ipv4Addr>().unwrap();
            d.ipv6.parse::<std::net::Ipv6Addr>().unwrap();
        }
        let macs: HashSet<_> = devices.iter().map(|d| &d.mac).collect();
        assert_eq!(macs.len(), 4);
    }

    #[test]
    fn remotes_are_public_unique_and_cover_both_families_and_unknown() {
        let addrs: HashSet<IpAddr> = REMOTES.iter().map(|r| r.addr.parse().unwrap()).collect();
        assert_eq!(addrs.len(), REMOTES.len());
        for addr in &addrs {
            match addr {
                IpAddr::V4(a) => assert!(!a.is_private() && !a.is_loopback() && !a.is_link_local()),
                IpAddr::V6(a) => assert!(!a.is_unique_local() && !a.is_loopback()),
            }
        }
        assert!(REMOTES.iter().any(Remote::is_ipv6));
        assert!(REMOTES.iter().any(|r| !r.is_ipv6()));
        assert!(REMOTES.iter().any(|r| r.country.is_none()));
        let names: HashSet<_> = REMOTES.iter().map(|r| r.name).collect();
        assert_eq!(names.len(), REMOTES.len());
    }
}

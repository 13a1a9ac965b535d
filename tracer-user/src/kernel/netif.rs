//! Network interfaces: existence and the prefixes configured on them.

use ipnet::IpNet;

/// The interface index of `name`, 0 if there is none.
pub fn index(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).unwrap_or(0)
}

/// The networks (address/prefix length, truncated to the network) configured on `names`:
/// the LAN's own prefixes, which are local rather than egress.
pub fn prefixes(names: &[String]) -> std::io::Result<Vec<IpNet>> {
    let mut out = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        if !names.iter().any(|n| belongs(&ifa.interface_name, n)) {
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let net = if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            IpNet::with_netmask(a.ip().into(), m.ip().into()).ok()
        } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            IpNet::with_netmask(a.ip().into(), m.ip().into()).ok()
        } else {
            None
        };
        if let Some(net) = net {
            out.push(net.trunc());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether `name` is `lan` itself or a VLAN sub-interface of it (`lan.100`).
fn belongs(name: &str, lan: &str) -> bool {
    name == lan || name.strip_prefix(lan).is_some_and(|rest| rest.starts_with('.'))
}

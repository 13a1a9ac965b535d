//! Local (non-egress) networks: private, loopback, link-local, multicast, reserved, the LAN's
//! own prefixes.
//!
//! They are overlaid with [`CountryId::LOCAL`] after the database, so they win even where the
//! database assigns a country (geo-whois-asn-country maps `192.168.0.0/16` to AU and
//! `2001:db8::/32` to JP).
//!
//! `64:ff9b::/96` (NAT64) is deliberately not local: its addresses stand for public IPv4 hosts
//! behind a NAT64 gateway, so traffic to them is egress. `2002::/16` (6to4) is not local either.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracer_common::CountryId;

use super::ranges::RangeMap;

/// The IPv4 networks that are never egress, as `(address, prefix length)`.
const V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // RFC 1918
    ([100, 64, 0, 0], 10),   // RFC 6598 shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local
    ([172, 16, 0, 0], 12),   // RFC 1918
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // TEST-NET-1
    ([192, 168, 0, 0], 16),  // RFC 1918
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // TEST-NET-2
    ([203, 0, 113, 0], 24),  // TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, including the broadcast 255.255.255.255
];

/// The IPv6 networks that are never egress, as `(segments, prefix length)`.
const V6: &[([u16; 8], u8)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    ([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),     // IPv4-mapped
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard-only
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local (RFC 4193)
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

/// The built-in local networks (IPv4 first, then IPv6).
pub fn default_local_networks() -> Vec<IpNet> {
    let v4 =
        V4.iter().filter_map(|&(octets, len)| Ipv4Net::new(octets.into(), len).ok().map(IpNet::V4));
    let v6 = V6
        .iter()
        .filter_map(|&(segments, len)| Ipv6Net::new(segments.into(), len).ok().map(IpNet::V6));
    v4.chain(v6).collect()
}

/// The built-in local networks plus `extra` (e.g. the LAN interfaces' prefixes, given as
/// interface addresses such as `192.168.1.1/24`: host bits are cleared).
pub fn local_networks(extra: &[IpNet]) -> Vec<IpNet> {
    let mut nets = default_local_networks();
    nets.extend(extra.iter().map(IpNet::trunc));
    nets
}

/// Sets every address of `nets` to [`CountryId::LOCAL`] in the per-family maps.
pub fn overlay_local(v4: &mut RangeMap<u32>, v6: &mut RangeMap<u128>, nets: &[IpNet]) {
    for net in nets {
        match net.trunc() {
            IpNet::V4(net) => {
                v4.overlay(net.network().into(), net.broadcast().into(), CountryId::LOCAL)
            }
            IpNet::V6(net) => {
                v6.overlay(net.network().into(), net.broadcast().into(), CountryId::LOCAL)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_all_valid() {
        let nets = default_local_networks();
        assert_eq!(nets.len(), V4.len() + V6.len());
        assert!(nets.iter().all(|net| *net == net.trunc()));
        assert!(nets.contains(&"2001:db8::/32".parse().unwrap()));
        let nat64: std::net::IpAddr = "64:ff9b::808:808".parse().unwrap();
        assert!(!nets.iter().any(|net| net.contains(&nat64)));
    }

    #[test]
    fn extras_are_truncated() {
        let nets = local_networks(&["2a01:db8:1::1/64".parse().unwrap()]);
        assert_eq!(nets.last(), Some(&"2a01:db8:1::/64".parse().unwrap()));
    }
}

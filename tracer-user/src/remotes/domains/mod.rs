//! Names of remote addresses, learned on the gateway without being anyone's resolver: from
//! the DNS answers devices receive (whatever resolver they use) and the TLS server names they
//! send (so HTTPS remotes are named even for devices that resolve over DoH).
//!
//! The programs hand the payloads over (`tracer_common::capture`); [`NameBook::handle`] parses
//! them ([`dns`] with hickory-proto, [`tls`] with tls-parser) and keeps (device, address) ->
//! names, bounded. Names are untrusted bytes: kept raw, escaped on output like DHCP hostnames.

mod book;
mod dns;
mod metrics;
mod tls;

use std::net::IpAddr;

pub use book::{BookSettings, DNS_RESULTS, NameBook, NameStats, Names, TLS_RESULTS};
pub use metrics::NameCollector;

/// Well-known DNS-over-HTTPS endpoints: a device talking to them on 443 likely resolves over
/// HTTPS, so its DNS answers (and some names) are not seen.
pub const DOH_ENDPOINTS: &[&str] = &[
    "1.1.1.1",
    "1.0.0.1",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "9.9.9.9",
    "149.112.112.112",
    "2620:fe::fe",
    "2620:fe::9",
    "94.140.14.14",
    "94.140.15.15",
    "208.67.222.222",
    "208.67.220.220",
    "45.90.28.0",
    "45.90.30.0",
];

/// Whether traffic to `address:port` (TCP or UDP) is encrypted DNS: DNS over TLS or QUIC
/// (853), or HTTPS to a well-known DoH endpoint.
pub fn is_encrypted_dns(address: IpAddr, port: u16) -> bool {
    port == 853 || port == 443 && DOH_ENDPOINTS.iter().any(|e| e.parse() == Ok(address))
}

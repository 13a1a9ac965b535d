//! From a kernel [`AlertEvent`] to an [`Alert`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracer_common::{CounterValue, CountryId, Direction, policy::AlertEvent};

use super::{Alert, AlertKind, RemoteEnd};
use crate::devices::DeviceInfo;
use crate::{
    base::clock::wall_time,
    base::text::protocol_name,
    policy::{Action, Decision},
};

/// What the agent knows beyond the event: the device, the policy, the counters.
pub trait Enricher: Send + Sync {
    /// The device as the cached lease and neighbour data know it (reports, metrics).
    fn device(&self, mac: [u8; 6]) -> DeviceInfo;
    /// The device, asking the kernel for its addresses if the cache has none (alerts: a device
    /// often alerts before the next refresh has seen it).
    fn device_now(&self, mac: [u8; 6]) -> DeviceInfo;
    /// The policy's decision and rule for (device, country).
    fn decide(&self, mac: [u8; 6], country: CountryId) -> Decision;
    /// Packets and bytes the device has exchanged with the country so far.
    fn so_far(&self, mac: [u8; 6], country: CountryId) -> CounterValue;
    /// The autonomous system of a remote address, if an ASN database knows it.
    fn asn(&self, address: IpAddr) -> Option<crate::remotes::AsnInfo>;
    /// The names `mac` used for `address` (DNS, TLS), if the agent learned any.
    fn names(&self, mac: [u8; 6], address: IpAddr) -> Option<crate::remotes::domains::Names>;
    /// Learning mode: since when `country` is new for `mac` (RFC 3339), until approved.
    fn new_since(&self, _mac: [u8; 6], _country: CountryId) -> Option<String> {
        None
    }
}

/// A boxed [`Enricher`], shared by the reader and the API.
pub type Enrichment = std::sync::Arc<dyn Enricher>;

/// The remote address of an event.
pub(super) fn remote_address(event: &AlertEvent) -> IpAddr {
    if event.family == 4 {
        let [a, b, c, d, ..] = event.addr;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(event.addr))
    }
}

/// The remote end of an event, with what the agent knows of it (organisation, names).
pub fn remote_end(event: &AlertEvent, enricher: &dyn Enricher) -> RemoteEnd {
    let address = remote_address(event);
    RemoteEnd {
        address,
        port: (event.port != 0).then_some(event.port),
        protocol: protocol_name(event.protocol),
        asn: enricher.asn(address),
        names: enricher.names(event.mac, address).map(|n| n.names).unwrap_or_default(),
    }
}

/// Where the kernel's `NEW_PAIR` events go (learning mode).
pub trait PairSink: Send + Sync {
    /// A (device, country) counter entry was just created.
    fn new_pair(&self, event: &AlertEvent);
}

/// Builds the alert for `event`.
pub(super) fn to_alert(event: &AlertEvent, enricher: &dyn Enricher, id: u64) -> Alert {
    let country = CountryId(event.country);
    let decision = enricher.decide(event.mac, country);
    let so_far = enricher.so_far(event.mac, country);
    let action = Action::from_raw(event.action);
    Alert {
        remote: Some(remote_end(event, enricher)),
        rule: decision.rule,
        action: action.as_str(),
        blocked: action == Action::Block,
        direction: Direction::from_raw(event.direction).map_or("upload", Direction::as_str),
        ..Alert::new(
            id,
            AlertKind::Violation,
            wall_time(event.time_ns),
            enricher.device_now(event.mac),
            Some(country),
            so_far,
        )
    }
}

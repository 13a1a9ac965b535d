//! From a kernel [`AlertEvent`] to an [`Alert`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tracer_common::{CountryId, Direction, policy::AlertEvent};

use super::{Alert, AlertKind, RemoteEnd};
use crate::remotes::Enricher;
use crate::{base::clock::wall_time, base::text::protocol_name, policy::Action};

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

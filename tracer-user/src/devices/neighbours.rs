//! The kernel's neighbour table (ARP and NDP) over rtnetlink: which addresses each MAC uses now.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Addresses per MAC.
pub(super) type Neighbours = BTreeMap<[u8; 6], BTreeSet<IpAddr>>;

/// Dumps the neighbour table, keeping entries on `ifindexes` (all if empty) that are usable
/// (not FAILED, INCOMPLETE or NOARP).
pub(super) fn dump(ifindexes: &[u32]) -> std::io::Result<Neighbours> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default())),
    );
    request.finalize();
    let mut buf = vec![0u8; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut out = Neighbours::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < data.len() {
            let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                .map_err(|e| std::io::Error::other(format!("rtnetlink: {e}")))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(std::io::Error::other(format!("rtnetlink: {e:?}")));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                    add(&mut out, &n, ifindexes);
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

fn add(out: &mut Neighbours, n: &NeighbourMessage, ifindexes: &[u32]) {
    if !ifindexes.is_empty() && !ifindexes.contains(&n.header.ifindex) {
        return;
    }
    if matches!(
        n.header.state,
        NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::Noarp
    ) {
        return;
    }
    let mut mac = None;
    let mut addr = None;
    for attribute in &n.attributes {
        match attribute {
            NeighbourAttribute::LinkLocalAddress(bytes) => {
                mac = <[u8; 6]>::try_from(&bytes[..]).ok()
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            _ => {}
        }
    }
    if let (Some(mac), Some(addr)) = (mac, addr) {
        out.entry(mac).or_default().insert(addr);
    }
}

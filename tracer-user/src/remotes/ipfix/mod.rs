//! IPFIX (RFC 7011) export of per-remote flow records, for `--ipfix HOST:PORT`: what each LAN
//! device sent to and received from each remote address since the last export, as flow records
//! over UDP to an existing collector (nfdump's nfcapd, GoFlow2, pmacct).
//!
//! - [`Deltas`] turns the agent's cumulative per-(device MAC, remote, direction) totals into the
//!   deltas since the previous export.
//! - [`Encoder`] writes [`FlowRecord`]s as IPFIX messages of at most [`MAX_MESSAGE_LEN`] bytes,
//!   with both templates at the head of every export and RFC 7011 sequence numbers.
//! - [`Exporter`] sends those messages from a UDP socket connected to the collector.
//!
//! # Records on the wire
//!
//! Two templates, [`TEMPLATE_ID_V4`] and [`TEMPLATE_ID_V6`], chosen by the remote's address
//! family, each with these Information Elements (IANA numbers, all fixed length):
//!
//! | IE | name | value |
//! | --- | --- | --- |
//! | 56 | sourceMacAddress | the LAN device's MAC, in both directions |
//! | 8 / 27 | sourceIPv4Address / sourceIPv6Address | device on upload, remote on download |
//! | 12 / 28 | destinationIPv4Address / destinationIPv6Address | remote on upload, device on download |
//! | 4 | protocolIdentifier | [`FlowRecord::protocol`] |
//! | 7 | sourceTransportPort | 0 on upload, the remote port on download |
//! | 11 | destinationTransportPort | the remote port on upload, 0 on download |
//! | 61 | flowDirection | 1 (egress) on upload, 0 (ingress) on download |
//! | 1 | octetDeltaCount | [`FlowRecord::octets`] |
//! | 2 | packetDeltaCount | [`FlowRecord::packets`] |
//! | 152 | flowStartMilliseconds | [`FlowRecord::start_ms`] |
//! | 153 | flowEndMilliseconds | [`FlowRecord::end_ms`] |
//!
//! When the device's address is unknown (or of the other family than the remote), it is sent as
//! the unspecified address, `0.0.0.0` or `::`. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! are sent as the IPv4 addresses they stand for.

mod deltas;
mod encoder;
mod exporter;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use deltas::Deltas;
pub use encoder::{Encoder, MAX_MESSAGE_LEN, TEMPLATE_ID_V4, TEMPLATE_ID_V6};
pub use exporter::Exporter;

/// One flow record: a LAN device's traffic with one remote address in one direction, over the
/// interval since the previous export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The LAN device's MAC, sent as sourceMacAddress (IE 56).
    pub mac: [u8; 6],
    /// The device's IPv4 or IPv6 address when known, of the same family as `remote`; `None` (or
    /// an address of the other family) is sent as `0.0.0.0` / `::`.
    pub device: Option<IpAddr>,
    /// The remote address; its family picks the IPv4 or the IPv6 template.
    pub remote: IpAddr,
    /// Which way the traffic went.
    pub direction: Direction,
    /// protocolIdentifier (IE 4): 6 for TCP, 17 for UDP, ...
    pub protocol: u8,
    /// The remote port (destinationTransportPort on upload, sourceTransportPort on download; the
    /// device's side is sent as 0), 0 if none.
    pub port: u16,
    /// octetDeltaCount (IE 1): bytes since the last export.
    pub octets: u64,
    /// packetDeltaCount (IE 2): packets since the last export.
    pub packets: u64,
    /// flowStartMilliseconds (IE 152), Unix milliseconds.
    pub start_ms: u64,
    /// flowEndMilliseconds (IE 153), Unix milliseconds.
    pub end_ms: u64,
}

/// The direction of a [`FlowRecord`], seen from the LAN device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Device to remote: the device is the source, flowDirection 1 (egress).
    Upload,
    /// Remote to device: the remote is the source, flowDirection 0 (ingress).
    Download,
}

impl Direction {
    /// The flowDirection (IE 61) value: 1 (egress) for upload, 0 (ingress) for download.
    pub fn flow_direction(self) -> u8 {
        match self {
            Direction::Upload => 1,
            Direction::Download => 0,
        }
    }
}

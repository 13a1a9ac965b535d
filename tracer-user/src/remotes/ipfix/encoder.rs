//! The RFC 7011 message encoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut as _, Bytes, BytesMut};

use super::{Direction, FlowRecord};

/// The largest IPFIX message [`Encoder::encode`] writes, in bytes: with IP and UDP headers it
/// stays within a 1,500-byte Ethernet MTU, also over IPv6 and a tunnel or two.
pub const MAX_MESSAGE_LEN: usize = 1400;

/// The Template ID of records whose remote is an IPv4 address.
pub const TEMPLATE_ID_V4: u16 = 256;

/// The Template ID of records whose remote is an IPv6 address.
pub const TEMPLATE_ID_V6: u16 = 257;

/// IPFIX's version number in the message header.
const VERSION: u16 = 10;
/// Message header: version, length, export time, sequence number, observation domain.
const HEADER_LEN: usize = 16;
/// Set header: set ID, length.
const SET_HEADER_LEN: usize = 4;
/// The Set ID of a Template Set.
const TEMPLATE_SET_ID: u16 = 2;

/// (Information Element ID, field length) of the IPv4 template, in record order.
const FIELDS_V4: [(u16, u16); 11] = [
    (56, 6),  // sourceMacAddress
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (4, 1),   // protocolIdentifier
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (61, 1),  // flowDirection
    (1, 8),   // octetDeltaCount
    (2, 8),   // packetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
];

/// The IPv6 template: the IPv4 one with sourceIPv6Address and destinationIPv6Address.
const FIELDS_V6: [(u16, u16); 11] = {
    let mut fields = FIELDS_V4;
    fields[1] = (27, 16);
    fields[2] = (28, 16);
    fields
};

const fn record_len(fields: &[(u16, u16)]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < fields.len() {
        len += fields[i].1 as usize;
        i += 1;
    }
    len
}

/// Bytes of one IPv4 data record.
const RECORD_LEN_V4: usize = record_len(&FIELDS_V4);
/// Bytes of one IPv6 data record.
const RECORD_LEN_V6: usize = record_len(&FIELDS_V6);
/// Bytes of the Template Set carrying both templates.
const TEMPLATE_SET_LEN: usize = SET_HEADER_LEN + 2 * (4 + 4 * FIELDS_V4.len());

// A message with the templates and one data record of either family must fit.
const _: () =
    assert!(HEADER_LEN + TEMPLATE_SET_LEN + SET_HEADER_LEN + RECORD_LEN_V6 <= MAX_MESSAGE_LEN);

/// Writes [`FlowRecord`]s as IPFIX messages for one Observation Domain, keeping the sequence
/// number of its Transport Session (one UDP socket to one collector).
#[derive(Debug, Clone)]
pub struct Encoder {
    observation_domain: u32,
    /// Data records sent in this session before the next message, modulo 2^32 (RFC 7011 3.1).
    sequence: u32,
}

impl Encoder {
    /// An encoder for `observation_domain` (the Observation Domain ID in every message header;
    /// collectors keep templates and sequence numbers per exporter and domain), starting at
    /// sequence number 0.
    pub fn new(observation_domain: u32) -> Self {
        Encoder { observation_domain, sequence: 0 }
    }

    /// An encoder whose next message carries `sequence`, to test the wrap-around.
    #[cfg(test)]
    pub(super) fn with_sequence(observation_domain: u32, sequence: u32) -> Self {
        Encoder { observation_domain, sequence }
    }

    /// The Observation Domain ID written in every message.
    pub fn observation_domain(&self) -> u32 {
        self.observation_domain
    }

    /// The sequence number the next message will carry: the data records encoded so far,
    /// modulo 2^32.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Encodes one export: one or more IPFIX messages, each at most [`MAX_MESSAGE_LEN`] bytes,
    /// to be sent in order as one UDP datagram each.
    ///
    /// The first message starts with the Template Set of both templates (collectors restart and
    /// UDP loses packets, so every export refreshes them); even with no records, that message is
    /// returned alone. IPv4 records come first, then IPv6, each family in input order. Every
    /// message's sequence number counts the data records of all earlier messages, as RFC 7011
    /// asks; `export_time_secs` (Unix seconds) is written in every header.
    pub fn encode(&mut self, export_time_secs: u32, records: &[FlowRecord]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut msg = Message::new();
        msg.put_templates();
        let v4 = records.iter().filter(|r| is_v4(r.remote));
        let v6 = records.iter().filter(|r| !is_v4(r.remote));
        for record in v4.chain(v6) {
            let (set_id, len) = if is_v4(record.remote) {
                (TEMPLATE_ID_V4, RECORD_LEN_V4)
            } else {
                (TEMPLATE_ID_V6, RECORD_LEN_V6)
            };
            let set_header = if msg.open_set == Some(set_id) { 0 } else { SET_HEADER_LEN };
            if msg.buf.len() + set_header + len > MAX_MESSAGE_LEN {
                out.push(self.finish(msg, export_time_secs));
                msg = Message::new();
            }
            msg.open(set_id);
            put_record(&mut msg.buf, record);
            msg.records += 1;
        }
        out.push(self.finish(msg, export_time_secs));
        out
    }

    /// Closes the open set, fills in the header and advances the sequence number.
    fn finish(&mut self, mut msg: Message, export_time_secs: u32) -> Bytes {
        msg.close();
        let len = msg.buf.len();
        debug_assert!(len <= MAX_MESSAGE_LEN);
        let header = &mut msg.buf[..HEADER_LEN];
        header[0..2].copy_from_slice(&VERSION.to_be_bytes());
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        header[4..8].copy_from_slice(&export_time_secs.to_be_bytes());
        header[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        header[12..16].copy_from_slice(&self.observation_domain.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(msg.records);
        msg.buf.freeze()
    }
}

/// A message being written: the header is filled in by [`Encoder::finish`].
struct Message {
    buf: BytesMut,
    /// The Set ID and start offset of the set being written.
    open_set: Option<u16>,
    set_start: usize,
    records: u32,
}

impl Message {
    fn new() -> Self {
        let mut buf = BytesMut::with_capacity(MAX_MESSAGE_LEN);
        buf.put_bytes(0, HEADER_LEN);
        Message { buf, open_set: None, set_start: 0, records: 0 }
    }

    /// Starts a set with `set_id` unless it is the one being written.
    fn open(&mut self, set_id: u16) {
        if self.open_set == Some(set_id) {
            return;
        }
        self.close();
        self.open_set = Some(set_id);
        self.set_start = self.buf.len();
        self.buf.put_u16(set_id);
        self.buf.put_u16(0); // length, filled in by close()
    }

    /// Writes the open set's length.
    fn close(&mut self) {
        if self.open_set.take().is_some() {
            let len = (self.buf.len() - self.set_start) as u16;
            self.buf[self.set_start + 2..self.set_start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// The Template Set with both templates.
    fn put_templates(&mut self) {
        self.open(TEMPLATE_SET_ID);
        for (id, fields) in [(TEMPLATE_ID_V4, &FIELDS_V4), (TEMPLATE_ID_V6, &FIELDS_V6)] {
            self.buf.put_u16(id);
            self.buf.put_u16(fields.len() as u16);
            for &(ie, len) in fields {
                self.buf.put_u16(ie);
                self.buf.put_u16(len);
            }
        }
        self.close();
        debug_assert_eq!(self.buf.len(), HEADER_LEN + TEMPLATE_SET_LEN);
    }
}

fn is_v4(addr: IpAddr) -> bool {
    addr.to_canonical().is_ipv4()
}

/// One data record, in the field order of [`FIELDS_V4`] / [`FIELDS_V6`].
fn put_record(buf: &mut BytesMut, r: &FlowRecord) {
    let remote = r.remote.to_canonical();
    let device = match (remote, r.device.map(|d| d.to_canonical())) {
        (IpAddr::V4(_), Some(d @ IpAddr::V4(_))) | (IpAddr::V6(_), Some(d @ IpAddr::V6(_))) => d,
        (IpAddr::V4(_), _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), _) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let (src, dst, src_port, dst_port) = match r.direction {
        Direction::Upload => (device, remote, 0, r.port),
        Direction::Download => (remote, device, r.port, 0),
    };
    buf.put_slice(&r.mac);
    put_addr(buf, src);
    put_addr(buf, dst);
    buf.put_u8(r.protocol);
    buf.put_u16(src_port);
    buf.put_u16(dst_port);
    buf.put_u8(r.direction.flow_direction());
    buf.put_u64(r.octets);
    buf.put_u64(r.packets);
    buf.put_u64(r.start_ms);
    buf.put_u64(r.end_ms);
}

fn put_addr(buf: &mut BytesMut, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => buf.put_slice(&a.octets()),
        IpAddr::V6(a) => buf.put_slice(&a.octets()),
    }
}

//! The encoder's messages decoded by an independent IPFIX parser (`netflow_parser`), the
//! splitting and sequence numbers, the deltas, and the UDP exporter on loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use netflow_parser::variable_versions::ipfix::FlowSetBody;
use netflow_parser::{DataNumber, FieldValue, IpfixField, NetflowPacket, NetflowParser};

use super::*;

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

fn record(remote: &str, direction: Direction, octets: u64, packets: u64) -> FlowRecord {
    FlowRecord {
        mac: MAC,
        device: None,
        remote: remote.parse().unwrap(),
        direction,
        protocol: 6,
        port: 443,
        octets,
        packets,
        start_ms: 1_700_000_000_123,
        end_ms: 1_700_000_060_456,
    }
}

/// A field value as the parser gives it, reduced to what the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Num(u64),
    Ip(IpAddr),
    Mac([u8; 6]),
}

fn value(v: &FieldValue) -> Value {
    match v {
        FieldValue::MacAddr(m) => Value::Mac(*m),
        FieldValue::Ip4Addr(a) => Value::Ip(IpAddr::V4(*a)),
        FieldValue::Ip6Addr(a) => Value::Ip(IpAddr::V6(*a)),
        FieldValue::ProtocolType(p) => Value::Num(u8::from(*p).into()),
        FieldValue::DataNumber(d) => Value::Num(match d {
            DataNumber::U8(n) => (*n).into(),
            DataNumber::U16(n) => (*n).into(),
            DataNumber::U32(n) => (*n).into(),
            DataNumber::U64(n) => *n,
            other => panic!("unexpected number {other:?}"),
        }),
        FieldValue::Duration(d) => Value::Num(match d {
            netflow_parser::variable_versions::field_value::DurationValue::Millis {
                value, ..
            } => *value,
            other => panic!("unexpected duration {other:?}"),
        }),
        FieldValue::Vec(b) if b.len() <= 8 => {
            Value::Num(b.iter().fold(0, |n, &byte| (n << 8) | u64::from(byte)))
        }
        other => panic!("unexpected value {other:?}"),
    }
}

/// One decoded data record: (IE, value) in wire order.
type Decoded = Vec<(u16, Value)>;

fn get(record: &Decoded, ie: u16) -> Value {
    record.iter().find(|(id, _)| *id == ie).unwrap_or_else(|| panic!("IE {ie}")).1.clone()
}

/// One decoded message: header fields, template IDs with their IEs, data records.
#[derive(Debug)]
struct Msg {
    length: u16,
    export_time: u32,
    sequence: u32,
    domain: u32,
    templates: Vec<(u16, Vec<(u16, u16)>)>,
    records: Vec<Decoded>,
}

const IES: [u16; 13] = [56, 8, 12, 27, 28, 4, 7, 11, 61, 1, 2, 152, 153];

fn decode_with(parser: &mut NetflowParser, message: &[u8]) -> Msg {
    let result = parser.parse_bytes(message);
    assert!(result.error.is_none(), "{:?}", result.error);
    assert_eq!(result.packets.len(), 1);
    let NetflowPacket::IPFix(ipfix) = &result.packets[0] else { panic!("not IPFIX") };
    assert_eq!(ipfix.header.version, 10);
    let mut msg = Msg {
        length: ipfix.header.length,
        export_time: ipfix.header.export_time,
        sequence: ipfix.header.sequence_number,
        domain: ipfix.header.observation_domain_id,
        templates: vec![],
        records: vec![],
    };
    for set in &ipfix.flowsets {
        match &set.body {
            FlowSetBody::Template(t) => msg.templates.push(template(t)),
            FlowSetBody::Templates(ts) => msg.templates.extend(ts.iter().map(template)),
            FlowSetBody::Data(data) => {
                for fields in &data.fields {
                    msg.records.push(
                        fields
                            .iter()
                            .map(|(field, v)| {
                                let ie = IES
                                    .into_iter()
                                    .find(|&ie| IpfixField::new(ie, None) == *field)
                                    .unwrap_or_else(|| panic!("unknown field {field:?}"));
                                (ie, value(v))
                            })
                            .collect(),
                    );
                }
            }
            other => panic!("unexpected set {other:?}"),
        }
    }
    msg
}

fn template(t: &netflow_parser::variable_versions::ipfix::Template) -> (u16, Vec<(u16, u16)>) {
    (t.template_id, t.fields.iter().map(|f| (f.field_type_number, f.field_length)).collect())
}

/// Decodes an export's messages in order, as one collector would.
fn decode(messages: &[Bytes]) -> Vec<Msg> {
    let mut parser = NetflowParser::default();
    messages.iter().map(|m| decode_with(&mut parser, m)).collect()
}

#[test]
fn records_decode_with_an_independent_parser() {
    let device4: IpAddr = "192.168.1.20".parse().unwrap();
    let device6: IpAddr = "fd00::20".parse().unwrap();
    let records = [
        FlowRecord { device: Some(device4), ..record("93.184.216.34", Direction::Upload, 1500, 3) },
        FlowRecord {
            device: Some(device4),
            port: 53,
            protocol: 17,
            ..record("1.1.1.1", Direction::Download, 9000, 7)
        },
        FlowRecord { device: Some(device6), ..record("2001:db8::1", Direction::Upload, 42, 1) },
        record("2001:db8::2", Direction::Download, u64::MAX, 1 << 40),
    ];
    let mut encoder = Encoder::new(7);
    let messages = encoder.encode(1_700_000_100, &records);
    assert_eq!(messages.len(), 1);
    let msg = &decode(&messages)[0];
    assert_eq!(usize::from(msg.length), messages[0].len());
    assert_eq!((msg.export_time, msg.sequence, msg.domain), (1_700_000_100, 0, 7));
    let v4: Vec<(u16, u16)> = vec![
        (56, 6),
        (8, 4),
        (12, 4),
        (4, 1),
        (7, 2),
        (11, 2),
        (61, 1),
        (1, 8),
        (2, 8),
        (152, 8),
        (153, 8),
    ];
    let mut v6 = v4.clone();
    v6[1] = (27, 16);
    v6[2] = (28, 16);
    assert_eq!(msg.templates, vec![(TEMPLATE_ID_V4, v4), (TEMPLATE_ID_V6, v6)]);
    assert_eq!(msg.records.len(), 4);
    assert_eq!(encoder.sequence(), 4);

    let ip = |s: &str| Value::Ip(s.parse().unwrap());
    let r = &msg.records[0];
    assert_eq!(get(r, 56), Value::Mac(MAC));
    assert_eq!((get(r, 8), get(r, 12)), (ip("192.168.1.20"), ip("93.184.216.34")));
    assert_eq!((get(r, 4), get(r, 7), get(r, 11)), (Value::Num(6), Value::Num(0), Value::Num(443)));
    assert_eq!(
        (get(r, 61), get(r, 1), get(r, 2)),
        (Value::Num(1), Value::Num(1500), Value::Num(3))
    );
    assert_eq!(get(r, 152), Value::Num(1_700_000_000_123));
    assert_eq!(get(r, 153), Value::Num(1_700_000_060_456));

    let r = &msg.records[1];
    assert_eq!((get(r, 8), get(r, 12)), (ip("1.1.1.1"), ip("192.168.1.20")));
    assert_eq!((get(r, 4), get(r, 7), get(r, 11)), (Value::Num(17), Value::Num(53), Value::Num(0)));
    assert_eq!(
        (get(r, 61), get(r, 1), get(r, 2)),
        (Value::Num(0), Value::Num(9000), Value::Num(7))
    );

    let r = &msg.records[2];
    assert_eq!((get(r, 27), get(r, 28)), (ip("fd00::20"), ip("2001:db8::1")));
    assert_eq!(
        (get(r, 7), get(r, 11), get(r, 61)),
        (Value::Num(0), Value::Num(443), Value::Num(1))
    );

    // Unknown device: `::` on the device's side.
    let r = &msg.records[3];
    assert_eq!((get(r, 27), get(r, 28)), (ip("2001:db8::2"), ip("::")));
    assert_eq!((get(r, 1), get(r, 2)), (Value::Num(u64::MAX), Value::Num(1 << 40)));
    assert_eq!(
        (get(r, 7), get(r, 11), get(r, 61)),
        (Value::Num(443), Value::Num(0), Value::Num(0))
    );
}

#[test]
fn the_header_and_sets_are_laid_out_as_rfc_7011_says() {
    let messages = Encoder::new(0x0102_0304)
        .encode(0x0a0b_0c0d, &[record("10.0.0.1", Direction::Upload, 1, 1)]);
    let m = &messages[0][..];
    // Header: version 10, length, export time, sequence 0, observation domain.
    assert_eq!(&m[..2], &[0, 10]);
    assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
    assert_eq!(&m[4..16], &[0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 0, 1, 2, 3, 4]);
    // Template Set (ID 2) of 4 + 2 * (4 + 11 * 4) bytes, then one data set of 4 + 52.
    assert_eq!(&m[16..20], &[0, 2, 0, 100]);
    assert_eq!(&m[20..24], &[1, 0, 0, 11]);
    assert_eq!(&m[116..120], &[1, 0, 0, 56]);
    assert_eq!(m.len(), 116 + 56);
    // sourceMacAddress first, then source (unknown device: 0.0.0.0) and destination.
    assert_eq!(&m[120..126], &MAC);
    assert_eq!(&m[126..134], &[0, 0, 0, 0, 10, 0, 0, 1]);
}

#[test]
fn large_exports_split_within_the_mtu_with_rfc_sequence_numbers() {
    let mut records = vec![];
    for i in 0..120u32 {
        let v4 = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        let v6 = IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)));
        // Interleaved on input; IPv4 first on output.
        records.push(FlowRecord { remote: v6, ..record("::1", Direction::Download, i.into(), 1) });
        records
            .push(FlowRecord { remote: v4, ..record("0.0.0.0", Direction::Upload, i.into(), 2) });
    }
    let mut encoder = Encoder::new(1);
    for export in 0..2u32 {
        let messages = encoder.encode(1000 + export, &records);
        assert!(messages.len() > 1);
        let decoded = decode(&messages);
        let mut sequence = export * 240;
        let mut all = vec![];
        for (i, (bytes, msg)) in messages.iter().zip(&decoded).enumerate() {
            assert!(bytes.len() <= MAX_MESSAGE_LEN, "{}", bytes.len());
            assert_eq!(usize::from(msg.length), bytes.len());
            assert_eq!(msg.sequence, sequence, "message {i}");
            assert_eq!(msg.export_time, 1000 + export);
            assert_eq!(msg.templates.len(), if i == 0 { 2 } else { 0 }, "message {i}");
            // Full: the next record would not have fitted (52 bytes, 76 with a new set header).
            if i + 1 < messages.len() {
                assert!(bytes.len() + 76 + 4 > MAX_MESSAGE_LEN, "{}", bytes.len());
            }
            sequence += msg.records.len() as u32;
            all.extend(msg.records.iter().cloned());
        }
        assert_eq!(encoder.sequence(), (export + 1) * 240);
        assert_eq!(all.len(), 240);
        for (i, r) in all.iter().enumerate() {
            let (n, family_ie) = if i < 120 { (i, 12) } else { (i - 120, 27) };
            assert_eq!(get(r, 1), Value::Num(n as u64), "record {i}");
            assert!(r.iter().any(|(ie, _)| *ie == family_ie), "record {i}: family");
        }
    }
}

#[test]
fn every_export_carries_the_templates_for_a_restarted_collector() {
    let mut encoder = Encoder::new(1);
    let records = [record("10.1.1.1", Direction::Upload, 5, 1)];
    let _ = encoder.encode(1, &records);
    // A collector that missed the first export decodes the second alone.
    let messages = encoder.encode(2, &records);
    let msg = decode(&messages).remove(0);
    assert_eq!((msg.sequence, msg.records.len()), (1, 1));
}

#[test]
fn an_empty_export_is_one_template_message() {
    let mut encoder = Encoder::new(1);
    let messages = encoder.encode(5, &[]);
    assert_eq!(messages.len(), 1);
    let msg = decode(&messages).remove(0);
    assert_eq!((msg.templates.len(), msg.records.len(), msg.sequence), (2, 0, 0));
    assert_eq!(encoder.sequence(), 0);
}

#[test]
fn sequence_numbers_wrap_modulo_2_32() {
    let records = vec![record("10.1.1.1", Direction::Upload, 5, 1); 30];
    let mut encoder = Encoder::with_sequence(1, u32::MAX - 9);
    let messages = encoder.encode(0, &records);
    let decoded = decode(&messages);
    assert_eq!(decoded[0].sequence, u32::MAX - 9);
    assert_eq!(decoded[1].sequence, (u32::MAX - 9).wrapping_add(decoded[0].records.len() as u32));
    assert_eq!(encoder.sequence(), 20);
}

#[test]
fn mapped_and_mismatched_addresses() {
    let records = [
        // An IPv4-mapped remote goes out as IPv4.
        FlowRecord {
            device: Some("::ffff:192.168.1.9".parse().unwrap()),
            ..record("::ffff:8.8.8.8", Direction::Upload, 1, 1)
        },
        // A device of the other family than the remote is sent as unspecified.
        FlowRecord {
            device: Some("192.168.1.9".parse().unwrap()),
            ..record("2001:db8::9", Direction::Upload, 1, 1)
        },
    ];
    let msg = decode(&Encoder::new(1).encode(0, &records)).remove(0);
    let ip = |s: &str| Value::Ip(s.parse().unwrap());
    assert_eq!(
        (get(&msg.records[0], 8), get(&msg.records[0], 12)),
        (ip("192.168.1.9"), ip("8.8.8.8"))
    );
    assert_eq!((get(&msg.records[1], 27), get(&msg.records[1], 28)), (ip("::"), ip("2001:db8::9")));
}

#[test]
fn deltas_between_exports() {
    let up = |octets, packets| record("10.0.0.1", Direction::Upload, octets, packets);
    let down = |octets, packets| record("10.0.0.1", Direction::Download, octets, packets);
    let other = |octets, packets| FlowRecord { mac: [2, 0, 0, 0, 0, 1], ..up(octets, packets) };
    let mut deltas = Deltas::new();
    assert!(deltas.is_empty());

    // First sight: the whole total.
    assert_eq!(deltas.update(&[up(100, 2), down(1000, 3)]), vec![up(100, 2), down(1000, 3)]);
    // Growth: the difference; no growth: left out; a new key (another MAC): whole.
    assert_eq!(
        deltas.update(&[up(150, 3), down(1000, 3), other(7, 1)]),
        vec![up(50, 1), other(7, 1)]
    );
    assert_eq!(deltas.len(), 3);
    // A counter going down is a reset: the new value is the delta.
    assert_eq!(
        deltas.update(&[up(20, 1), down(1500, 4), other(7, 1)]),
        vec![up(20, 1), down(500, 1)]
    );
    // Packets alone going down is a reset too.
    assert_eq!(deltas.update(&[up(30, 0)]), vec![up(30, 0)]);
    // Keys missing from an export are forgotten, and come back whole.
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas.update(&[down(1600, 5)]), vec![down(1600, 5)]);
    assert_eq!(deltas.len(), 1);
    // A repeated key in one call is ignored.
    assert_eq!(deltas.update(&[down(1700, 6), down(9999, 9)]), vec![down(100, 1)]);
    assert_eq!(deltas.update(&[down(1700, 6)]), vec![]);
    assert_eq!(deltas.update(&[]), vec![]);
    assert!(deltas.is_empty());
}

#[tokio::test]
async fn the_exporter_sends_each_message_as_one_datagram() {
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut exporter = Exporter::connect(collector.local_addr().unwrap(), 9).await.unwrap();
    assert_eq!(exporter.collector().unwrap(), collector.local_addr().unwrap());
    let records: Vec<_> = (0..40).map(|i| record("10.0.0.1", Direction::Upload, i, 1)).collect();
    let sent = exporter.export(77, &records).await.unwrap();
    assert_eq!(sent, 2);
    assert_eq!(exporter.encoder().sequence(), 40);
    let mut parser = NetflowParser::default();
    let mut got = 0;
    let mut buf = [0u8; 2048];
    for _ in 0..sent {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .expect("datagram")
            .unwrap();
        let msg = decode_with(&mut parser, &buf[..n]);
        assert_eq!((msg.domain, msg.export_time, msg.sequence), (9, 77, got));
        got += msg.records.len() as u32;
    }
    assert_eq!(got, 40);
}

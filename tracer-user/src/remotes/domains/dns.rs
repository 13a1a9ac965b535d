//! DNS answers (parsed with hickory-proto): which addresses each asked-for name resolved to,
//! through which CNAME chain, for how long.

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType},
    rr::{Name, RData},
};

/// How many CNAME hops are followed (a loop or an absurd chain stops there).
const MAX_CHAIN: usize = 8;

/// What a DNS message amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A response naming addresses.
    Answer(Vec<Resolved>),
    /// A response without A/AAAA records for the asked name (NXDOMAIN, only CNAMEs, ...).
    NoAddress,
    /// Not a response (a query travelling to the device, e.g. from a LAN server).
    NotResponse,
    /// Could not be parsed (malformed, or cut short).
    Malformed,
}

/// One address of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Resolved {
    /// The address.
    pub address: IpAddr,
    /// The name the device asked for (raw bytes, lower case, without the final dot).
    pub asked: Vec<u8>,
    /// The CNAME chain from the asked name to the address's owner, in order.
    pub canonical: Vec<Vec<u8>>,
    /// Seconds the answer may be kept: the smallest TTL along the chain.
    pub ttl: u32,
}

/// The name as bytes: labels joined by `.`, ASCII letters in lower case.
fn raw(name: &Name) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out
}

/// Parses a DNS message (for TCP, without its 2-byte length prefix).
pub(super) fn parse(message: &[u8]) -> Outcome {
    let Ok(message) = Message::from_vec(message) else {
        return Outcome::Malformed;
    };
    if message.metadata.message_type != MessageType::Response {
        return Outcome::NotResponse;
    }
    let Some(query) = message.queries.first() else {
        return Outcome::NoAddress;
    };
    let asked = raw(query.name());
    // Follow the chain from the asked name through the CNAMEs of the answer section.
    let mut chain: Vec<Vec<u8>> = Vec::new();
    let mut ttl = u32::MAX;
    let mut current = asked.clone();
    for _ in 0..MAX_CHAIN {
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if raw(&r.name) == current => Some((raw(&target.0), r.ttl)),
            _ => None,
        });
        match next {
            Some((target, t)) if target != current && !chain.contains(&target) => {
                ttl = ttl.min(t);
                chain.push(target.clone());
                current = target;
            }
            _ => break,
        }
    }
    let owners: Vec<&[u8]> =
        std::iter::once(asked.as_slice()).chain(chain.iter().map(Vec::as_slice)).collect();
    let resolved: Vec<Resolved> = message
        .answers
        .iter()
        .filter(|r| owners.contains(&raw(&r.name).as_slice()))
        .filter_map(|r| {
            let address = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => return None,
            };
            Some(Resolved {
                address,
                asked: asked.clone(),
                canonical: chain.clone(),
                ttl: ttl.min(r.ttl),
            })
        })
        .collect();
    if resolved.is_empty() { Outcome::NoAddress } else { Outcome::Answer(resolved) }
}

/// A DNS message over TCP: the 2-byte length prefix, then the message, which must be whole.
pub(super) fn parse_tcp(segment: &[u8]) -> Outcome {
    let [a, b, rest @ ..] = segment else { return Outcome::Malformed };
    let len = usize::from(u16::from_be_bytes([*a, *b]));
    match rest.get(..len) {
        Some(message) => parse(message),
        None => Outcome::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::{Message, MessageType, Query},
        rr::{Name, RData, Record, RecordType, rdata},
    };

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn answer(records: Vec<Record>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.message_type = MessageType::Response;
        m.add_query(Query::query(name("Api.IO.mi.com."), RecordType::A));
        for r in records {
            m.add_answer(r);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn follows_the_cname_chain_to_the_addresses() {
        let bytes = answer(vec![
            Record::from_rdata(
                name("api.io.mi.com."),
                300,
                RData::CNAME(rdata::CNAME(name("api.mi.cdn.example."))),
            ),
            Record::from_rdata(
                name("api.mi.cdn.example."),
                60,
                RData::CNAME(rdata::CNAME(name("edge7.cdn.example."))),
            ),
            Record::from_rdata(
                name("edge7.cdn.example."),
                120,
                RData::A(rdata::A("36.110.0.7".parse().unwrap())),
            ),
            Record::from_rdata(
                name("unrelated.example."),
                120,
                RData::A(rdata::A("36.110.0.8".parse().unwrap())),
            ),
        ]);
        let Outcome::Answer(got) = parse(&bytes) else { panic!("{:?}", parse(&bytes)) };
        assert_eq!(got.len(), 1, "only the chain's addresses: {got:?}");
        assert_eq!(got[0].address.to_string(), "36.110.0.7");
        assert_eq!(got[0].asked, b"api.io.mi.com");
        assert_eq!(
            got[0].canonical,
            vec![b"api.mi.cdn.example".to_vec(), b"edge7.cdn.example".to_vec()]
        );
        assert_eq!(got[0].ttl, 60);
        let mut tcp = (bytes.len() as u16).to_be_bytes().to_vec();
        tcp.extend(&bytes);
        assert_eq!(parse_tcp(&tcp), parse(&bytes));
        assert_eq!(parse_tcp(&tcp[..tcp.len() - 1]), Outcome::Malformed);
    }

    #[test]
    fn a_cname_loop_stops() {
        let bytes = answer(vec![
            Record::from_rdata(
                name("api.io.mi.com."),
                300,
                RData::CNAME(rdata::CNAME(name("b.example."))),
            ),
            Record::from_rdata(
                name("b.example."),
                300,
                RData::CNAME(rdata::CNAME(name("api.io.mi.com."))),
            ),
        ]);
        assert_eq!(parse(&bytes), Outcome::NoAddress);
    }

    #[test]
    fn hostile_messages_are_refused() {
        // A compression pointer to itself, a pointer past the end, a label of 64, lying counts.
        let header = [0u8, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        let mut looped = header.to_vec();
        looped.extend([0xc0, 12, 0, 1, 0, 1]);
        let mut past = header.to_vec();
        past.extend([0xc0, 0xff, 0, 1, 0, 1]);
        let mut long = header.to_vec();
        long.push(64);
        long.extend([b'a'; 64]);
        long.extend([0, 0, 1, 0, 1]);
        let mut lying = header.to_vec();
        lying[7] = 200;
        lying.extend([1, b'a', 0, 0, 1, 0, 1]);
        for bytes in [&looped[..], &past, &long, &lying, &[], &[0xff; 5]] {
            assert_eq!(parse(bytes), Outcome::Malformed, "{bytes:?}");
        }
        let mut query = Message::query();
        query.add_query(Query::query(name("x.example."), RecordType::A));
        assert_eq!(parse(&query.to_vec().unwrap()), Outcome::NotResponse);
    }
}

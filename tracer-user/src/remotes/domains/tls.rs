//! TLS ClientHellos (parsed with tls-parser): the server name a device asks for. A ClientHello
//! larger than one TCP segment (post-quantum key shares make them ~1.8 kB) is reassembled from
//! the device's first two segments to that remote; what does not fit there is counted.

use std::net::IpAddr;

use bytes::BytesMut;
use lru::LruCache;
use tls_parser::{
    SNIType, TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions,
    parse_tls_plaintext,
};

/// Bytes kept of a partial ClientHello (the two segments the kernel captures).
const MAX_PARTIAL: usize = 2 * tracer_common::capture::CAPTURE_DATA;

/// What a TLS segment amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A ClientHello with this server name (raw bytes, lower case).
    Sni(Vec<u8>),
    /// A ClientHello without a server name.
    NoSni,
    /// The start of a ClientHello; kept until its next segment.
    Partial,
    /// Not a ClientHello (the middle of an older connection, another protocol, garbage).
    NotHello,
}

/// The server name of a whole ClientHello record, if `data` is one.
pub(super) fn parse(data: &[u8]) -> Outcome {
    let record = match parse_tls_plaintext(data) {
        Ok((_, record)) => record,
        Err(tls_parser::nom::Err::Incomplete(_)) => return Outcome::Partial,
        Err(_) => return Outcome::NotHello,
    };
    for msg in &record.msg {
        if let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)) = msg {
            let Some(ext) = hello.ext else { return Outcome::NoSni };
            let Ok((_, extensions)) = parse_tls_extensions(ext) else { return Outcome::NoSni };
            for e in extensions {
                if let TlsExtension::SNI(names) = e
                    && let Some((_, name)) = names.iter().find(|(t, _)| *t == SNIType::HostName)
                {
                    return Outcome::Sni(name.iter().map(u8::to_ascii_lowercase).collect());
                }
            }
            return Outcome::NoSni;
        }
    }
    Outcome::NotHello
}

/// Where a partial ClientHello waits for its next segment.
type FlowKey = ([u8; 6], IpAddr, u16);

/// Partial ClientHellos, bounded (the least recently started ones are dropped).
#[derive(Debug)]
pub(super) struct Reassembly {
    partial: LruCache<FlowKey, (u32, BytesMut)>,
    /// Partial ClientHellos dropped unfinished (evicted, a gap, or too long).
    pub dropped: u64,
}

/// One captured segment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment<'a> {
    /// The device.
    pub mac: [u8; 6],
    /// The server.
    pub remote: IpAddr,
    /// The device's port.
    pub local_port: u16,
    /// TCP sequence number of `data[0]`.
    pub seq: u32,
    /// The captured payload.
    pub data: &'a [u8],
    /// Whether the payload was cut (the packet carried more than the capture holds).
    pub cut: bool,
}

impl Reassembly {
    /// Room for `flows` partial ClientHellos at a time.
    pub(super) fn new(flows: std::num::NonZeroUsize) -> Self {
        Self { partial: LruCache::new(flows), dropped: 0 }
    }

    /// Feeds one segment; a whole ClientHello (in one segment or two) gives its outcome.
    pub(super) fn feed(&mut self, s: Segment<'_>) -> Outcome {
        let key = (s.mac, s.remote, s.local_port);
        if let Some((next_seq, mut buf)) = self.partial.pop(&key) {
            if s.seq == next_seq && buf.len() + s.data.len() <= MAX_PARTIAL {
                buf.extend_from_slice(s.data);
                return match parse(&buf) {
                    Outcome::Partial => {
                        self.dropped += 1; // longer than two segments
                        Outcome::NotHello
                    }
                    other => other,
                };
            }
            self.dropped += 1;
        }
        match parse(s.data) {
            Outcome::Partial if !s.cut && s.data.len() < MAX_PARTIAL => {
                if self.partial.len() == self.partial.cap().get() {
                    self.dropped += 1;
                }
                let next = s.seq.wrapping_add(s.data.len() as u32);
                // Room for the second segment too: one allocation per partial ClientHello.
                let mut buf = BytesMut::with_capacity(MAX_PARTIAL);
                buf.extend_from_slice(s.data);
                self.partial.put(key, (next, buf));
                Outcome::Partial
            }
            Outcome::Partial => {
                self.dropped += 1;
                Outcome::NotHello
            }
            other => other,
        }
    }

    /// Partial ClientHellos waiting.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal TLS 1.2 ClientHello record for `name`, padded with an extension of `pad` bytes.
    pub(crate) fn client_hello(name: &[u8], pad: usize) -> Vec<u8> {
        let mut sni = Vec::new();
        let entry_len = (name.len() + 3) as u16;
        sni.extend(entry_len.to_be_bytes());
        sni.push(0);
        sni.extend((name.len() as u16).to_be_bytes());
        sni.extend(name);
        let mut ext = Vec::new();
        ext.extend([0, 0]);
        ext.extend((sni.len() as u16).to_be_bytes());
        ext.extend(&sni);
        ext.extend([0, 21]); // padding
        ext.extend((pad as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, pad));
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(&ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(&body);
        let mut record = vec![22, 3, 1];
        record.extend((hs.len() as u16).to_be_bytes());
        record.extend(&hs);
        record
    }

    fn seg(seq: u32, data: &[u8]) -> Segment<'_> {
        Segment {
            mac: [2, 0, 0, 0, 0, 1],
            remote: "36.110.0.1".parse().unwrap(),
            local_port: 40000,
            seq,
            data,
            cut: false,
        }
    }

    #[test]
    fn one_segment_and_two() {
        let hello = client_hello(b"Api.IO.mi.com", 10);
        assert_eq!(parse(&hello), Outcome::Sni(b"api.io.mi.com".to_vec()));
        let big = client_hello(b"pq.example", 1700);
        let mut r = Reassembly::new(std::num::NonZeroUsize::new(4).unwrap());
        assert_eq!(r.feed(seg(1000, &big[..1400])), Outcome::Partial);
        assert_eq!(r.feed(seg(1400 + 1000, &big[1400..])), Outcome::Sni(b"pq.example".to_vec()));
        assert_eq!(r.pending(), 0);
        // A gap: the second segment is not the next one.
        assert_eq!(r.feed(seg(5000, &big[..1400])), Outcome::Partial);
        assert_eq!(r.feed(seg(9999, &big[1400..])), Outcome::NotHello);
        assert_eq!(r.dropped, 1);
    }

    #[test]
    fn garbage_is_not_a_hello() {
        for data in [&b""[..], b"GET / HTTP/1.1\r\n", &[22, 3, 1, 0xff, 0xff, 1], &[0x16; 300]] {
            let got = parse(data);
            assert!(matches!(got, Outcome::NotHello | Outcome::Partial), "{data:?}: {got:?}");
        }
        let mut r = Reassembly::new(std::num::NonZeroUsize::new(2).unwrap());
        for i in 0..10u16 {
            let mut s = seg(0, &[22, 3, 1, 0x40, 0]);
            s.local_port = i;
            r.feed(s);
        }
        assert_eq!(r.pending(), 2, "bounded");
    }
}

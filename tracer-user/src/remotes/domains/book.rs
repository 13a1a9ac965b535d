//! What the agent learned: per (device, address) the names the device used, with the DNS TTL
//! and a minimum hold, bounded (least recently used entries are evicted, and counted); per
//! device the resolvers it got answers from.

use std::{
    net::IpAddr,
    num::NonZeroUsize,
    sync::{Mutex, MutexGuard, atomic::Ordering},
    time::{Duration, Instant},
};

use lru::LruCache;
use tracer_common::capture::{CaptureHeader, kind};

use super::{dns, tls};
use crate::base::atomic::AtomicU64;
use crate::base::sync::Locked;

/// Names kept per (device, address): the most recent ones.
const NAMES_PER_ADDRESS: usize = 4;
/// CNAME hops kept per (device, address).
const CANONICAL_PER_ADDRESS: usize = 4;
/// Resolvers remembered per device.
const RESOLVERS_PER_DEVICE: usize = 8;
/// Devices whose resolvers are remembered.
const RESOLVER_DEVICES: usize = 1024;
/// ClientHellos waiting for their second segment.
const PARTIAL_HELLOS: usize = 256;
/// Longest name kept, in bytes (a DNS name is at most 253 characters).
const MAX_NAME: usize = 253;

/// The names of one (device, address), escaped for output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// What the device asked for (DNS question names, TLS server names), most recent first.
    pub names: Vec<String>,
    /// The CNAME chain of the latest DNS answer, in order.
    pub canonical: Vec<String>,
}

/// How the book is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookSettings {
    /// (device, address) entries kept.
    pub entries: NonZeroUsize,
    /// Shortest time a name is kept, whatever its TTL.
    pub min_hold: Duration,
}

struct Entry {
    names: Vec<Box<[u8]>>,
    canonical: Vec<Box<[u8]>>,
    expires: Instant,
}

struct Inner {
    names: LruCache<([u8; 6], IpAddr), Entry>,
    resolvers: LruCache<[u8; 6], Vec<IpAddr>>,
    hellos: tls::Reassembly,
    min_hold: Duration,
}

/// Counters of what the captures amounted to, for the metrics.
#[derive(Debug, Default)]
pub struct NameStats {
    /// DNS messages by [`DNS_RESULTS`].
    pub dns: [AtomicU64; 5],
    /// TLS segments by [`TLS_RESULTS`].
    pub tls: [AtomicU64; 5],
    /// (device, address) entries evicted to make room.
    pub evictions: AtomicU64,
    /// Captures shorter than their header or of an unknown kind.
    pub bad_captures: AtomicU64,
}

/// Labels of [`NameStats::dns`].
pub const DNS_RESULTS: [&str; 5] =
    ["answer", "no_address", "not_response", "malformed", "truncated"];
/// Labels of [`NameStats::tls`].
pub const TLS_RESULTS: [&str; 5] = ["sni", "no_sni", "partial", "not_hello", "dropped_partial"];

/// The names the agent learned.
pub struct NameBook {
    inner: Mutex<Inner>,
    /// What the captures amounted to.
    pub stats: NameStats,
}

impl std::fmt::Debug for NameBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameBook").field("entries", &self.len()).finish_non_exhaustive()
    }
}

fn bounded(name: &[u8]) -> Box<[u8]> {
    name[..name.len().min(MAX_NAME)].into()
}

impl NameBook {
    /// An empty book.
    pub fn new(settings: BookSettings) -> Self {
        let n = |v: usize| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                names: LruCache::new(settings.entries),
                resolvers: LruCache::new(n(RESOLVER_DEVICES)),
                hellos: tls::Reassembly::new(n(PARTIAL_HELLOS)),
                min_hold: settings.min_hold,
            }),
            stats: NameStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.locked()
    }

    /// Changes the minimum hold (a reload); the size stays until a restart.
    pub fn set_min_hold(&self, hold: Duration) {
        self.lock().min_hold = hold;
    }

    /// (device, address) entries held.
    pub fn len(&self) -> usize {
        self.lock().names.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in (device, address) entries.
    pub fn capacity(&self) -> usize {
        self.lock().names.cap().get()
    }

    /// The names of (device, address), if any are still held.
    pub fn names(&self, mac: [u8; 6], address: IpAddr) -> Option<Names> {
        let mut inner = self.lock();
        let entry = inner.names.peek(&(mac, address))?;
        if entry.expires < Instant::now() {
            inner.names.pop(&(mac, address));
            return None;
        }
        let escape = |n: &[u8]| crate::base::text::escape_untrusted(n, MAX_NAME);
        Some(Names {
            names: entry.names.iter().map(|n| escape(n)).collect(),
            canonical: entry.canonical.iter().map(|n| escape(n)).collect(),
        })
    }

    /// Resolvers `mac` got DNS answers from, most recent first.
    pub fn resolvers(&self, mac: [u8; 6]) -> Vec<IpAddr> {
        self.lock().resolvers.peek(&mac).cloned().unwrap_or_default()
    }

    /// Takes one capture from the kernel.
    pub fn handle(&self, header: &CaptureHeader, data: &[u8]) {
        let remote = crate::kernel::address_of_bytes(header.family, header.addr);
        let cut = header.orig_len > header.len;
        match header.kind {
            kind::DNS => {
                let outcome = if cut {
                    None
                } else if header.protocol == 6 {
                    Some(dns::parse_tcp(data))
                } else {
                    Some(dns::parse(data))
                };
                let result = match &outcome {
                    None => 4,
                    Some(dns::Outcome::Answer(_)) => 0,
                    Some(dns::Outcome::NoAddress) => 1,
                    Some(dns::Outcome::NotResponse) => 2,
                    Some(dns::Outcome::Malformed) => 3,
                };
                self.stats.dns[result].fetch_add(1, Ordering::Relaxed);
                if let Some(dns::Outcome::Answer(resolved)) = outcome {
                    let mut inner = self.lock();
                    remember_resolver(&mut inner, header.mac, remote);
                    for r in resolved {
                        let hold = Duration::from_secs(u64::from(r.ttl)).max(inner.min_hold);
                        let canonical = r
                            .canonical
                            .iter()
                            .take(CANONICAL_PER_ADDRESS)
                            .map(|c| bounded(c))
                            .collect();
                        self.learn(
                            &mut inner,
                            header.mac,
                            r.address,
                            &r.asked,
                            Some(canonical),
                            hold,
                        );
                    }
                } else if matches!(outcome, Some(dns::Outcome::NoAddress)) {
                    remember_resolver(&mut self.lock(), header.mac, remote);
                }
            }
            kind::TLS => {
                let mut inner = self.lock();
                let dropped_before = inner.hellos.dropped;
                let outcome = inner.hellos.feed(tls::Segment {
                    mac: header.mac,
                    remote,
                    local_port: header.local_port,
                    seq: header.seq,
                    data,
                    cut,
                });
                let dropped = inner.hellos.dropped - dropped_before;
                self.stats.tls[4].fetch_add(dropped, Ordering::Relaxed);
                let result = match &outcome {
                    tls::Outcome::Sni(_) => 0,
                    tls::Outcome::NoSni => 1,
                    tls::Outcome::Partial => 2,
                    tls::Outcome::NotHello => 3,
                };
                self.stats.tls[result].fetch_add(1, Ordering::Relaxed);
                if let tls::Outcome::Sni(name) = outcome {
                    let hold = inner.min_hold;
                    self.learn(&mut inner, header.mac, remote, &name, None, hold);
                }
            }
            _ => {
                self.stats.bad_captures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds `name` to (device, address), most recent first; `canonical` replaces the chain when
    /// given (a DNS answer).
    fn learn(
        &self,
        inner: &mut Inner,
        mac: [u8; 6],
        address: IpAddr,
        name: &[u8],
        canonical: Option<Vec<Box<[u8]>>>,
        hold: Duration,
    ) {
        let expires = Instant::now() + hold;
        let name = bounded(name);
        if let Some(entry) = inner.names.get_mut(&(mac, address)) {
            entry.names.retain(|n| *n != name);
            entry.names.insert(0, name);
            entry.names.truncate(NAMES_PER_ADDRESS);
            if let Some(c) = canonical {
                entry.canonical = c;
            }
            entry.expires = entry.expires.max(expires);
            return;
        }
        let entry = Entry { names: vec![name], canonical: canonical.unwrap_or_default(), expires };
        if inner.names.push((mac, address), entry).is_some_and(|(k, _)| k != (mac, address)) {
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn remember_resolver(inner: &mut Inner, mac: [u8; 6], resolver: IpAddr) {
    let list = inner.resolvers.get_or_insert_mut(mac, Vec::new);
    list.retain(|r| *r != resolver);
    list.insert(0, resolver);
    list.truncate(RESOLVERS_PER_DEVICE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, addr: [u8; 4], len: usize) -> CaptureHeader {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&addr);
        CaptureHeader {
            addr: a,
            mac: [2, 0, 0, 0, 0, 1],
            kind,
            family: 4,
            remote_port: 443,
            local_port: 40000,
            len: len as u16,
            orig_len: len as u16,
            protocol: 6,
            ..CaptureHeader::default()
        }
    }

    #[test]
    fn tls_names_a_remote_and_the_book_is_bounded() {
        let book = NameBook::new(BookSettings {
            entries: NonZeroUsize::new(2).unwrap(),
            min_hold: Duration::from_secs(60),
        });
        let hello = super::super::tls::tests::client_hello(b"a.example\"\x1b[31m", 0);
        book.handle(&header(kind::TLS, [36, 110, 0, 1], hello.len()), &hello);
        let names = book.names([2, 0, 0, 0, 0, 1], "36.110.0.1".parse().unwrap()).unwrap();
        assert_eq!(names.names, vec!["a.example\\\"\\x1b[31m".to_owned()], "escaped");
        for last in 2..6u8 {
            let hello = super::super::tls::tests::client_hello(b"b.example", 0);
            book.handle(&header(kind::TLS, [36, 110, 0, last], hello.len()), &hello);
        }
        assert_eq!(book.len(), 2);
        assert_eq!(book.stats.evictions.load(Ordering::Relaxed), 3);
        book.handle(&header(9, [1, 1, 1, 1], 0), &[]);
        assert_eq!(book.stats.bad_captures.load(Ordering::Relaxed), 1);
    }
}

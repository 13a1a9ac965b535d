//! Ethernet / VLAN / IPv4 / IPv6 parsing: each header is read directly where the skb's linear
//! area holds it, and copied out (`bpf_skb_load_bytes`) where it does not (a non-linear skb:
//! packet rings, some drivers). The skb is never changed: pulling the headers into the linear
//! area (`bpf_skb_pull_data`) cost about 195 ns more a packet on paged skbs, in situ. The
//! benchmark also measures the alternatives: pulling ([`parse_pulled`]) and always copying
//! ([`parse_copied`]).

use aya_ebpf::programs::TcContext;
use tracer_common::Direction;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// Headers we may read: Ethernet, two VLAN tags, an IPv4 header with full options, and the
/// ports of the transport header.
const MAX_HEADERS: u32 = (ETH_HLEN + 2 * VLAN_HLEN + 60 + 4) as u32;

/// The remote address of an IP packet.
pub(crate) enum Remote {
    /// IPv4, in network byte order as read from the packet.
    V4([u8; 4]),
    /// IPv6, in network byte order.
    V6([u8; 16]),
}

/// A remote address as two words, as the packets' packed form and the lookups take it: `hi`
/// and `lo` are the address's big-endian halves as numbers (IPv4: `hi` is the address and
/// `lo` zero).
#[derive(Clone, Copy)]
pub(crate) struct Address {
    /// IPv6, not IPv4.
    pub(crate) v6: bool,
    /// The high 64 bits (IPv4: the address).
    pub(crate) hi: u64,
    /// The low 64 bits (IPv4: zero).
    pub(crate) lo: u64,
}

impl Address {
    /// The address of `remote`.
    #[inline(always)]
    pub(crate) fn of(remote: &Remote) -> Address {
        match remote {
            Remote::V4(a) => Address { v6: false, hi: u64::from(u32::from_be_bytes(*a)), lo: 0 },
            Remote::V6(a) => {
                let (hi, lo) = a.split_at(8);
                Address {
                    v6: true,
                    hi: u64::from_be_bytes(hi.try_into().unwrap_or_default()),
                    lo: u64::from_be_bytes(lo.try_into().unwrap_or_default()),
                }
            }
        }
    }

    /// The address family, 4 or 6, as map keys and events carry it.
    #[inline(always)]
    pub(crate) fn family(&self) -> u8 {
        if self.v6 { 6 } else { 4 }
    }

    /// The address in network byte order, IPv4 in the first four bytes, as map keys and
    /// events carry it. Built as two words (into 8-aligned keys, two stores), not sixteen
    /// bytes: the BPF backend would give each byte a stack slot of its own.
    #[inline(always)]
    pub(crate) fn key_bytes(&self) -> [u8; 16] {
        let words = if self.v6 {
            [self.hi.to_be(), self.lo.to_be()]
        } else {
            // The four address bytes first in memory, whatever the byte order.
            let v4 = u64::from((self.hi as u32).to_be());
            [if cfg!(target_endian = "big") { v4 << 32 } else { v4 }, 0]
        };
        // SAFETY: `[u64; 2]` and `[u8; 16]` have the same size, and any bits are valid.
        unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(words) }
    }
}

/// The transport header of an IP packet, for alert events (read only when one is sent).
#[derive(Clone, Copy)]
pub(crate) struct Transport {
    /// IP protocol number (IPv4 protocol, IPv6 next header).
    pub(crate) protocol: u8,
    /// Offset of the transport header in the frame; zero for non-first IPv4 fragments.
    pub(crate) offset: usize,
    /// Offset of the end of the IP packet in the frame (from the IP header's length field;
    /// Ethernet padding lies beyond it).
    pub(crate) end: usize,
}

/// What a frame turned out to be.
pub(crate) enum Parsed {
    /// An IP packet: the LAN device's MAC, the remote address and where its transport header is.
    Ip { mac: [u8; 6], remote: Remote, transport: Transport },
    /// Not IPv4/IPv6 (ARP, LLDP, three or more VLAN tags, ...).
    Other,
    /// A truncated or invalid header.
    Malformed,
}

/// `N` bytes of the frame at `offset`: read directly where the linear part holds them, copied
/// out where it does not, as [`parse`] reads headers.
#[inline(always)]
pub(crate) fn header<const N: usize>(ctx: &TcContext, offset: usize) -> Option<[u8; N]> {
    read::<N, { Read::DirectOrCopied as u8 }>(ctx, offset)
}

/// `N` bytes of the frame at `offset`, if the linear part holds them.
#[inline(always)]
fn bytes<const N: usize>(ctx: &TcContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data();
    if start + offset + N > ctx.data_end() {
        return None;
    }
    // SAFETY: the range was bounds-checked against data_end just above.
    Some(unsafe { *((start + offset) as *const [u8; N]) })
}

/// How a parse reads a header: directly from the linear part ([`bytes`]), copied out where
/// it is not there, or always copied out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Direct,
    DirectOrCopied,
    Copied,
}

/// `N` bytes of the frame at `offset`, read the way `MODE` ([`Read`] as a number) says.
#[inline(always)]
fn read<const N: usize, const MODE: u8>(ctx: &TcContext, offset: usize) -> Option<[u8; N]> {
    if MODE == Read::Copied as u8 {
        return ctx.load::<[u8; N]>(offset).ok();
    }
    let direct = bytes::<N>(ctx, offset);
    if MODE == Read::DirectOrCopied as u8 && direct.is_none() {
        return ctx.load::<[u8; N]>(offset).ok();
    }
    direct
}

/// How far the header reads of `MODE` may reach: the linear part, or the whole frame.
#[inline(always)]
fn readable<const MODE: u8>(ctx: &TcContext) -> usize {
    if MODE == Read::Direct as u8 { ctx.data_end() - ctx.data() } else { ctx.len() as usize }
}

/// Pulls the headers into the linear part of the skb when they are not there (the benchmark's
/// comparison).
#[inline(always)]
fn linearize(ctx: &TcContext) {
    let linear = (ctx.data_end() - ctx.data()) as u32;
    let wanted = if ctx.len() < MAX_HEADERS { ctx.len() } else { MAX_HEADERS };
    if linear < wanted {
        // Failure only means we parse what is linear and call the rest malformed.
        let _ = ctx.pull_data(wanted);
    }
}

/// The remote port of a TCP, UDP, UDP-Lite or SCTP packet (zero otherwise, or if truncated).
#[inline(always)]
pub(crate) fn remote_port(ctx: &TcContext, transport: Transport, direction: Direction) -> u16 {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const UDPLITE: u8 = 136;
    const SCTP: u8 = 132;
    if transport.offset == 0 || !matches!(transport.protocol, TCP | UDP | UDPLITE | SCTP) {
        return 0;
    }
    let Some(ports) = header::<4>(ctx, transport.offset) else {
        return 0;
    };
    match direction {
        Direction::Upload => u16::from_be_bytes([ports[2], ports[3]]),
        Direction::Download => u16::from_be_bytes([ports[0], ports[1]]),
    }
}

/// Parses a frame without touching the skb: directly where the linear part holds a header,
/// copied out (`bpf_skb_load_bytes`) where it does not; `direction` says which end is the LAN
/// device.
#[inline(always)]
pub(crate) fn parse(ctx: &TcContext, direction: Direction) -> Parsed {
    parse_headers::<{ Read::DirectOrCopied as u8 }>(ctx, direction)
}

/// Parses after pulling the headers into the linear part (the benchmark's `tc_parse_pull`).
#[inline(always)]
pub(crate) fn parse_pulled(ctx: &TcContext, direction: Direction) -> Parsed {
    linearize(ctx);
    parse_headers::<{ Read::Direct as u8 }>(ctx, direction)
}

/// Parses a frame without touching the skb: every header copied out with
/// `bpf_skb_load_bytes`, also where the linear area holds them (the benchmark's
/// `tc_parse_copy`).
#[inline(always)]
pub(crate) fn parse_copied(ctx: &TcContext, direction: Direction) -> Parsed {
    parse_headers::<{ Read::Copied as u8 }>(ctx, direction)
}

#[inline(always)]
fn parse_headers<const MODE: u8>(ctx: &TcContext, direction: Direction) -> Parsed {
    let Some(eth) = read::<ETH_HLEN, MODE>(ctx, 0) else {
        return Parsed::Malformed;
    };
    let mac_offset = match direction {
        Direction::Upload => 6,
        Direction::Download => 0,
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&eth[mac_offset..mac_offset + 6]);
    let mut proto = u16::from_be_bytes([eth[12], eth[13]]);
    let mut offset = ETH_HLEN;
    for _ in 0..2 {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let Some(tag) = read::<VLAN_HLEN, MODE>(ctx, offset) else {
            return Parsed::Malformed;
        };
        proto = u16::from_be_bytes([tag[2], tag[3]]);
        offset += VLAN_HLEN;
    }
    match proto {
        ETH_P_IPV4 => parse_ipv4::<MODE>(ctx, offset, direction, mac),
        ETH_P_IPV6 => parse_ipv6::<MODE>(ctx, offset, direction, mac),
        _ => Parsed::Other,
    }
}

#[inline(always)]
fn parse_ipv4<const MODE: u8>(
    ctx: &TcContext,
    offset: usize,
    direction: Direction,
    mac: [u8; 6],
) -> Parsed {
    let Some(hdr) = read::<IPV4_MIN_HLEN, MODE>(ctx, offset) else {
        return Parsed::Malformed;
    };
    let version = hdr[0] >> 4;
    let ihl = (hdr[0] & 0x0f) as usize * 4;
    if version != 4 || ihl < IPV4_MIN_HLEN || offset + ihl > readable::<MODE>(ctx) {
        return Parsed::Malformed;
    }
    let at = match direction {
        Direction::Upload => 16,
        Direction::Download => 12,
    };
    let remote = Remote::V4([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
    let first_fragment = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff == 0;
    let end = offset + usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
    let transport =
        Transport { protocol: hdr[9], offset: if first_fragment { offset + ihl } else { 0 }, end };
    Parsed::Ip { mac, remote, transport }
}

#[inline(always)]
fn parse_ipv6<const MODE: u8>(
    ctx: &TcContext,
    offset: usize,
    direction: Direction,
    mac: [u8; 6],
) -> Parsed {
    let Some(hdr) = read::<IPV6_HLEN, MODE>(ctx, offset) else {
        return Parsed::Malformed;
    };
    if hdr[0] >> 4 != 6 {
        return Parsed::Malformed;
    }
    let at = match direction {
        Direction::Upload => 24,
        Direction::Download => 8,
    };
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&hdr[at..at + 16]);
    let end = offset + IPV6_HLEN + usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    let transport = Transport { protocol: hdr[6], offset: offset + IPV6_HLEN, end };
    Parsed::Ip { mac, remote: Remote::V6(addr), transport }
}

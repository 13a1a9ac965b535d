//! The frames the in-situ benchmark sends from a LAN device: UDP over IPv4 to one hot
//! destination or to many random public ones, as raw frames (for a packet socket and for
//! `tracer_lab::trafgen`).

use std::net::Ipv4Addr;

/// Length of every frame (without FCS): Ethernet 14 + IPv4 20 + UDP 8 + 18 bytes of payload.
pub(crate) const FRAME_LEN: usize = 60;

/// One UDP frame from `src_mac`/`src` to `dst` through the gateway at `gw_mac`.
pub(crate) fn udp(gw_mac: [u8; 6], src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_LEN);
    f.extend_from_slice(&gw_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = (FRAME_LEN - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let checksum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    // A header with its checksum in place sums to all ones: the kernel will take it.
    assert_eq!(ipv4_checksum(&ip), 0, "IPv4 header checksum");
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&40_000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes()); // discard
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed for IPv4)
    f.resize(FRAME_LEN, 0xab);
    f
}

fn ipv4_checksum(header: &[u8; 20]) -> u16 {
    let mut sum: u32 =
        header.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `n` distinct pseudo-random public IPv4 addresses (a fixed seed: the same in every run),
/// spread over the whole space the way a scan or a P2P client's peers are.
pub(crate) fn random_public(n: usize) -> Vec<Ipv4Addr> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let addr = Ipv4Addr::from((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32);
        if is_public(addr) && seen.insert(addr) {
            out.push(addr);
        }
    }
    out
}

/// Not private, shared, loopback, link-local, documentation, benchmarking, multicast or
/// reserved: an address a device could reach on the internet.
fn is_public(a: Ipv4Addr) -> bool {
    let [o1, o2, o3, _] = a.octets();
    !(o1 == 0
        || o1 == 10
        || o1 == 127
        || o1 >= 224
        || (o1 == 100 && (64..128).contains(&o2))
        || (o1 == 169 && o2 == 254)
        || (o1 == 172 && (16..32).contains(&o2))
        || (o1 == 192 && o2 == 168)
        || (o1 == 192 && o2 == 0 && (o3 == 0 || o3 == 2))
        || (o1 == 198 && (o2 == 18 || o2 == 19))
        || (o1 == 198 && o2 == 51 && o3 == 100)
        || (o1 == 203 && o2 == 0 && o3 == 113))
}

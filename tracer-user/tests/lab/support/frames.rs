//! Builders for the Ethernet frames fed to the programs with `BPF_PROG_TEST_RUN`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// EtherType of IPv4.
pub(crate) const IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub(crate) const IPV6: u16 = 0x86dd;
/// EtherType of ARP.
pub(crate) const ARP: u16 = 0x0806;
/// 802.1Q tag protocol.
pub(crate) const DOT1Q: u16 = 0x8100;
/// 802.1ad (QinQ outer) tag protocol.
pub(crate) const DOT1AD: u16 = 0x88a8;

/// The MAC the gateway uses in test frames.
pub(crate) const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// A frame under construction.
#[derive(Clone, Debug)]
pub(crate) struct Frame(pub Vec<u8>);

impl Frame {
    /// Ethernet header with the given addresses; the EtherType comes from the next layer.
    pub(crate) fn eth(dst: [u8; 6], src: [u8; 6]) -> Self {
        let mut v = Vec::with_capacity(128);
        v.extend_from_slice(&dst);
        v.extend_from_slice(&src);
        Self(v)
    }

    /// Appends a VLAN tag (TPID, then TCI with `vid`).
    pub(crate) fn vlan(mut self, tpid: u16, vid: u16) -> Self {
        self.0.extend_from_slice(&tpid.to_be_bytes());
        self.0.extend_from_slice(&vid.to_be_bytes());
        self
    }

    /// Appends an EtherType.
    pub(crate) fn ethertype(mut self, ethertype: u16) -> Self {
        self.0.extend_from_slice(&ethertype.to_be_bytes());
        self
    }

    /// Appends an IPv4 header with `ihl` 32-bit words (options zeroed) and `payload` bytes.
    pub(crate) fn ipv4(mut self, src: Ipv4Addr, dst: Ipv4Addr, ihl: u8, payload: usize) -> Self {
        let hlen = usize::from(ihl.max(5)) * 4;
        let total = (hlen + payload) as u16;
        let mut h = vec![0u8; hlen];
        h[0] = 0x40 | (ihl & 0x0f);
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[8] = 64;
        h[9] = 17; // UDP
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        self.0.extend_from_slice(&h);
        self.0.extend(std::iter::repeat_n(0xab, payload));
        self
    }

    /// Appends an IPv6 header and `payload` bytes.
    pub(crate) fn ipv6(mut self, src: Ipv6Addr, dst: Ipv6Addr, payload: usize) -> Self {
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        h[6] = 17;
        h[7] = 64;
        h[8..24].copy_from_slice(&src.octets());
        h[24..40].copy_from_slice(&dst.octets());
        self.0.extend_from_slice(&h);
        self.0.extend(std::iter::repeat_n(0xab, payload));
        self
    }

    /// Appends raw bytes.
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Cuts the frame to `len` bytes.
    pub(crate) fn truncate(mut self, len: usize) -> Self {
        self.0.truncate(len);
        self
    }

    /// Overwrites the byte at `index`.
    pub(crate) fn with_byte(mut self, index: usize, value: u8) -> Self {
        self.0[index] = value;
        self
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

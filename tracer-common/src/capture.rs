//! Payloads the programs hand to the agent so it can name remote addresses: DNS answers
//! travelling to a device, and the first bytes a device sends to a TLS port (the ClientHello
//! with its server name).
//!
//! A [`Capture`] goes through the [`CAPTURES_MAP`] ring buffer, at most
//! [`crate::Settings::captures_per_sec`] per CPU per second ([`CAPTURE_BUDGET_MAP`]); what the
//! budget or a full ring buffer refuses is counted in [`crate::Stat::CapturesSuppressed`].
//! Only the agent parses them: the programs copy bytes, they never interpret a name.

/// Ring buffer of [`Capture`] (pinned, so a reload or restart reads the same one).
pub const CAPTURES_MAP: &str = "CAPTURES";
/// Per-CPU array with one [`crate::policy::EventBudget`]: captures sent this second (pinned).
pub const CAPTURE_BUDGET_MAP: &str = "CAPTURE_BUDGET";
/// Size of [`CAPTURES_MAP`] in bytes (a power of two, a multiple of the page size).
pub const CAPTURES_BYTES: u32 = 512 * 1024;
/// Payload bytes a capture holds at most: a DNS answer of the EDNS0 size most resolvers use
/// (1,232) fits, and so does a whole TCP segment of a standard 1,500-byte MTU.
pub const CAPTURE_DATA: usize = 1536;
/// Default of [`crate::Settings::captures_per_sec`].
pub const DEFAULT_CAPTURES_PER_SEC: u32 = 200;
/// TLS segments captured per (device, remote address) and CPU: a ClientHello of two segments
/// (post-quantum key shares make them ~1.8 kB) is reassembled by the agent.
pub const TLS_SEGMENTS: u8 = 2;

/// What a capture holds.
pub mod kind {
    /// A DNS message from source port 53 to the device (UDP, or one TCP segment).
    pub const DNS: u8 = 1;
    /// A TCP segment with payload from the device to port 443 or 853.
    pub const TLS: u8 = 2;
}

/// Fixed part of a [`Capture`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureHeader {
    /// When (ns, `bpf_ktime_get_ns`).
    pub time_ns: u64,
    /// The remote end: the resolver (DNS) or the server (TLS); IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    /// The LAN device.
    pub mac: [u8; 6],
    /// One of [`kind`].
    pub kind: u8,
    /// 4 or 6.
    pub family: u8,
    /// The remote port (53, 443, 853).
    pub remote_port: u16,
    /// The device's port.
    pub local_port: u16,
    /// TCP sequence number of the first payload byte (0 for UDP).
    pub seq: u32,
    /// Payload bytes copied into [`Capture::data`].
    pub len: u16,
    /// Payload bytes the packet carried (more than `len` when it was cut to [`CAPTURE_DATA`]).
    pub orig_len: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Always zero.
    pub reserved: [u8; 3],
}

/// One captured payload.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Capture {
    /// Who, what and how long.
    pub header: CaptureHeader,
    /// The payload's first [`CaptureHeader::len`] bytes.
    pub data: [u8; CAPTURE_DATA],
}

const _: () = assert!(core::mem::size_of::<CaptureHeader>() == 48);
const _: () = assert!(core::mem::size_of::<Capture>() == 48 + CAPTURE_DATA);

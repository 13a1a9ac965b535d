//! Map names, sizes and the `#[repr(C)]` layouts of their keys and values.
//!
//! Every struct here is free of implicit padding (checked by the size assertions below), so a
//! key built on either side compares byte for byte with the one the other side built.

/// Bumped whenever a pinned map's layout changes, so an agent never reuses pins it cannot read.
pub const LAYOUT_VERSION: u32 = 6;

/// Per-CPU hash: [`TrafficKey`] -> [`TrafficValue`], one entry per (device, country, verdict)
/// holding both directions (half the entries a scrape reads, compared to one per direction).
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Per-CPU array of [`CounterValue`] indexed by [`Stat::index`]: traffic not counted per country.
pub const STATS_MAP: &str = "STATS";
/// Array of 256 [`crate::geo_table::Block`]s: the root of the IPv4 compact structure
/// ([`crate::geo_dxr`]), one entry per /16.
pub const GEO_V4_TABLE_MAP: &str = "GEO_V4_TABLE";
/// Array of [`crate::geo_dxr::Node`]: the nodes of the IPv4 compact structure.
pub const GEO_V4_NODES_MAP: &str = "GEO_V4_NODES";
/// Array of [`crate::geo_dxr::RangeLine`]: the range array of the IPv4 compact structure.
pub const GEO_V4_RANGES_MAP: &str = "GEO_V4_RANGES";
/// LPM trie, IPv4 (big-endian `u32` data) -> country id: the reference structure.
pub const GEO_V4_LPM_MAP: &str = "GEO_V4_LPM";
/// Array of 256 [`crate::geo_table::Block`]s: the root of the IPv6 compact structure, one
/// entry per /16.
pub const GEO_V6_TABLE_MAP: &str = "GEO_V6_TABLE";
/// Array of [`crate::geo_dxr::Node`]: the nodes of the IPv6 compact structure.
pub const GEO_V6_NODES_MAP: &str = "GEO_V6_NODES";
/// Array of [`crate::geo_dxr::RangeLine`]: the range array of the IPv6 compact structure.
pub const GEO_V6_RANGES_MAP: &str = "GEO_V6_RANGES";
/// LPM trie, IPv6 (`[u8; 16]` data) -> country id: the reference structure.
pub const GEO_V6_LPM_MAP: &str = "GEO_V6_LPM";
/// Array with one [`Settings`] entry.
pub const SETTINGS_MAP: &str = "SETTINGS";
/// LRU hash: source MAC (`[u8; 6]`) -> `u8` (unused): the MACs recently seen sending egress
/// traffic, so a MAC is counted once in [`Stat::NewMac`] while it stays here.
pub const MACS_MAP: &str = "MACS";
/// Capacity of [`MACS_MAP`]: far more MACs than a household has, small enough for a router
/// (about 64 bytes per entry in the kernel: 256 KiB).
pub const MACS_ENTRIES: u32 = 4096;

/// Default capacity of [`COUNTERS_MAP`] (devices x countries, passed and blocked apart): 64
/// countries for each of 256 devices. Preallocated per CPU, so it is the largest map: 88 bytes
/// per entry plus 32 per CPU, 3.4 MiB on a 4-core router (the default 65,536 of earlier
/// versions took 13.5 MiB there; `cargo xtask bench` prints every map's memory).
pub const DEFAULT_COUNTER_ENTRIES: u32 = 16_384;
/// Capacity the geo nodes, ranges and LPM tries are declared with in the object; the agent sizes
/// them to the database before loading.
pub const PLACEHOLDER_GEO_ENTRIES: u32 = 1;

/// Which way a packet crosses the LAN interface.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Sent by a LAN device (TC ingress on the LAN interface); the remote is the destination.
    Upload = 0,
    /// Sent to a LAN device (TC egress on the LAN interface); the remote is the source.
    Download = 1,
}

impl Direction {
    /// Both directions, in index order.
    pub const ALL: [Self; 2] = [Self::Upload, Self::Download];

    /// The direction stored as `raw` in a key, if valid.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Upload),
            1 => Some(Self::Download),
            _ => None,
        }
    }

    /// The label used in metrics and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
        }
    }
}

/// Key of [`COUNTERS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrafficKey {
    /// The LAN device's MAC address (Ethernet source on upload, destination on download).
    pub mac: [u8; 6],
    /// [`crate::CountryId`] of the remote address.
    pub country: u16,
    /// What happened to the traffic: [`verdict::PASSED`] or [`verdict::BLOCKED`].
    pub verdict: u8,
    /// Always zero; makes the padding explicit.
    pub reserved: u8,
}

/// Value of [`COUNTERS_MAP`]: packets and bytes per direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficValue {
    /// Indexed by [`Direction`].
    pub directions: [CounterValue; 2],
}

/// Values of [`TrafficKey::verdict`].
pub mod verdict {
    /// The packets went through.
    pub const PASSED: u8 = 0;
    /// The packets were dropped by a `block` policy.
    pub const BLOCKED: u8 = 1;
}

/// Packets and bytes, as TC sees them (`skb->len`, link-layer header included; a GSO packet
/// counts as its number of segments).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct CounterValue {
    /// Packets (GSO segments).
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl core::ops::AddAssign for CounterValue {
    /// Adds packets and bytes (wrapping, like the kernel's counters).
    fn add_assign(&mut self, other: Self) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

impl core::iter::Sum for CounterValue {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |mut acc, v| {
            acc += v;
            acc
        })
    }
}

impl<'a> core::iter::Sum<&'a CounterValue> for CounterValue {
    fn sum<I: Iterator<Item = &'a Self>>(iter: I) -> Self {
        iter.copied().sum()
    }
}

/// Traffic that is not counted per (device, country): indexes [`STATS_MAP`] together with a
/// [`Direction`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Non-IP frames (ARP, LLDP, ...).
    Other = 0,
    /// IP packets to or from a local address (not egress).
    Local = 1,
    /// Packets that could not be counted per device because [`COUNTERS_MAP`] was full.
    Overflow = 2,
    /// Frames whose Ethernet, VLAN or IP header is truncated or invalid (IHL < 5, ...).
    Malformed = 3,
    /// Alert events not sent: over the per-second budget or the ring buffer was full.
    EventsSuppressed = 4,
    /// Packets counted per (device, country) but in no device's remote view: the remote
    /// table and the per-device spill table were both full.
    RemoteOverflow = 5,
    /// DNS answers and TLS segments not handed to the agent: over the per-second budget, or
    /// the ring buffer was full (the packets themselves are counted as usual).
    CapturesSuppressed = 6,
    /// Source MACs seen sending egress traffic for the first time (upload only; one event per
    /// MAC, no bytes): MAC churn, or a device forging source addresses. A MAC is "seen" while it
    /// stays in [`MACS_MAP`]'s LRU of [`MACS_ENTRIES`].
    NewMac = 7,
}

impl Stat {
    /// All stats, in index order.
    pub const ALL: [Self; 8] = [
        Self::Other,
        Self::Local,
        Self::Overflow,
        Self::Malformed,
        Self::EventsSuppressed,
        Self::RemoteOverflow,
        Self::CapturesSuppressed,
        Self::NewMac,
    ];
    /// Number of entries in [`STATS_MAP`].
    pub const ENTRIES: u32 = Self::ALL.len() as u32 * 2;

    /// Index into [`STATS_MAP`].
    pub const fn index(self, direction: Direction) -> u32 {
        self as u32 * 2 + direction as u32
    }

    /// Name used in metrics and output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Other => "other",
            Self::Local => "local",
            Self::Overflow => "overflow",
            Self::Malformed => "malformed",
            Self::EventsSuppressed => "events_suppressed",
            Self::RemoteOverflow => "remote_overflow",
            Self::CapturesSuppressed => "captures_suppressed",
            Self::NewMac => "new_mac",
        }
    }
}

/// How the program looks addresses up.
pub mod lookup_mode {
    /// The compact structure of [`crate::geo_dxr`] (the fast path, exact for both families).
    pub const TABLE: u32 = 0;
    /// The LPM tries only (the reference the tables are checked against).
    pub const LPM: u32 = 1;
}

/// Run-time settings the agent writes into [`SETTINGS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// One of the [`lookup_mode`] constants.
    pub lookup: u32,
    /// DNS answers and TLS ClientHellos each CPU may hand to the agent per second (see
    /// [`crate::capture`]); zero: none (names off).
    pub captures_per_sec: u32,
    /// Non-zero: count every packet in the remote table too (`crate::remotes`); zero:
    /// per-country counters only (`--remote-entries 0`).
    pub remotes: u32,
    /// log2 of the remote table's slots per CPU ([`crate::remotes::RemotesHeader::bits`]).
    pub remote_bits: u32,
    /// The remote table's hash seed ([`crate::remotes::RemotesHeader::seed`]).
    pub remote_seed: u64,
}

/// Key data of [`GEO_V6_LPM_MAP`]: the address bytes in network order.
pub type Ipv6LpmKey = [u8; 16];

const _: () = assert!(core::mem::size_of::<TrafficKey>() == 10);
const _: () = assert!(core::mem::size_of::<TrafficValue>() == 32);
const _: () = assert!(core::mem::size_of::<CounterValue>() == 16);
const _: () = assert!(core::mem::size_of::<Settings>() == 24);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` structs of integers without implicit padding (asserted above).
    unsafe impl aya::Pod for super::TrafficKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TrafficValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CounterValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Settings {}
    // SAFETY: an array of integers.
    unsafe impl aya::Pod for super::super::geo_table::Block {}
    // SAFETY: `#[repr(C)]` structs of integers without implicit padding (asserted in geo_dxr).
    unsafe impl aya::Pod for super::super::geo_dxr::Range {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::super::geo_dxr::Node {}
}

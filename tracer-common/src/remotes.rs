//! Per (device, remote address) accounting, beside the per (device, country) counters.
//!
//! Every packet the programs count in [`crate::maps::COUNTERS_MAP`] is also counted in exactly
//! one of three places, so that for every device the per-country totals equal
//! *live remotes + expired remotes + remote overflow*:
//! - its live entry in [`REMOTES_MAP`] (created on the device's first packet to the address);
//! - the device's [`spill::OVERFLOW`] entry in [`REMOTE_SPILL_MAP`], when [`REMOTES_MAP`] is
//!   full (written by the programs);
//! - the device's [`spill::EXPIRED`] entry in [`REMOTE_SPILL_MAP`], where the agent folds an
//!   idle entry's counts when it retires it (written by the agent only).
//!
//! When [`REMOTE_SPILL_MAP`] is full too (a MAC flood), the packet goes to
//! [`crate::Stat::RemoteOverflow`]: counted per country, but in no device's remote view.

use crate::CounterValue;

/// Per-CPU hash: [`RemoteKey`] -> [`RemoteValue`] (pinned; allocated on demand).
pub const REMOTES_MAP: &str = "REMOTES";
/// Per-CPU hash: [`SpillKey`] -> [`SpillValue`] (pinned).
pub const REMOTE_SPILL_MAP: &str = "REMOTE_SPILL";
/// Per-CPU array of one `u32`: how many more new remotes this CPU sends straight to the spill
/// table, without trying to insert them, after an insert into the full [`REMOTES_MAP`] failed
/// (written by the programs; the agent sets it to zero when it has retired entries).
pub const REMOTES_FULL_MAP: &str = "REMOTES_FULL";
/// What the programs set [`REMOTES_FULL_MAP`] to when an insert into the full table fails:
/// an insert into a full hash map takes the bucket's lock and sums the map's per-CPU element
/// counts before it fails, about 100 ns a packet in situ with a full table.
pub const FULL_SKIP: u32 = 64;

/// Default capacity of [`REMOTES_MAP`]: about 80 live remotes for each of 100 devices.
pub const DEFAULT_REMOTE_ENTRIES: u32 = 8192;
/// Capacity of [`REMOTE_SPILL_MAP`]: an overflow and an expired entry for 2,048 devices.
pub const SPILL_ENTRIES: u32 = 4096;

/// Key of [`REMOTES_MAP`].
// 8-aligned (which adds no padding): the programs then store the address as two words. At
// byte alignment the BPF backend stores it a byte at a time, through sixteen stack slots.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteKey {
    /// The remote address in network byte order; an IPv4 address fills the first 4 bytes.
    pub addr: [u8; 16],
    /// The LAN device's MAC address.
    pub mac: [u8; 6],
    /// 4 or 6.
    pub family: u8,
    /// Always zero.
    pub reserved: u8,
}

/// Index into [`RemoteValue::traffic`] and [`SpillValue::traffic`]: `verdict * 2 + direction`
/// (see [`crate::maps::verdict`] and [`crate::Direction`]).
pub const fn traffic_index(verdict: u8, direction: u8) -> usize {
    ((verdict as usize & 1) << 1) | (direction as usize & 1)
}

/// Value of [`REMOTES_MAP`], one per CPU; the agent sums the traffic, takes the earliest
/// `first_seen_ns` (whose CPU also has the first packet's protocol and port) and the latest
/// `last_seen_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteValue {
    /// Indexed by [`traffic_index`]: passed upload, passed download, blocked upload, blocked
    /// download.
    pub traffic: [CounterValue; 4],
    /// `bpf_ktime_get_ns` of this CPU's first packet (CLOCK_MONOTONIC); zero if none.
    pub first_seen_ns: u64,
    /// `bpf_ktime_get_ns` of this CPU's latest packet.
    pub last_seen_ns: u64,
    /// [`crate::CountryId`] of the address.
    pub country: u16,
    /// The remote port of this CPU's first packet (TCP, UDP, UDP-Lite, SCTP), else zero.
    pub port: u16,
    /// The IP protocol of this CPU's first packet.
    pub protocol: u8,
    /// The [`crate::Direction`] of this CPU's first packet.
    pub direction: u8,
    /// TLS segments this CPU captured for the agent (see [`crate::capture::TLS_SEGMENTS`]).
    pub captures: u8,
    /// Always zero.
    pub reserved: u8,
}

/// Key of [`REMOTE_SPILL_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpillKey {
    /// The LAN device's MAC address.
    pub mac: [u8; 6],
    /// [`spill::OVERFLOW`] or [`spill::EXPIRED`].
    pub kind: u8,
    /// Always zero.
    pub reserved: u8,
}

/// Kinds of [`SpillKey`].
pub mod spill {
    /// Packets not in [`super::REMOTES_MAP`] because it was full (written by the programs).
    pub const OVERFLOW: u8 = 0;
    /// Counts of retired entries (written by the agent, on CPU 0's slot).
    pub const EXPIRED: u8 = 1;
}

/// Value of [`REMOTE_SPILL_MAP`], one per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpillValue {
    /// Indexed by [`traffic_index`].
    pub traffic: [CounterValue; 4],
}

/// Array of [`BenchSlot`] (`cargo xtask bench` only): the least any table of remotes costs a
/// packet, one slot of a flat array found by hashing the key, holding key, counters and last
/// seen in one cache line (an open-addressed table hitting at its first probe). The agent's
/// object keeps one slot; the bench's [`BENCH_SLOTS_PER_CPU`] for each CPU.
pub const BENCH_SLOTS_MAP: &str = "BENCH_SLOTS";
/// Slots of [`BENCH_SLOTS_MAP`] for each CPU when the bench loads it: as many as the default
/// remote table holds, 512 KiB per CPU (the programs index CPU `c`'s part with
/// `c << BENCH_SLOT_BITS | hash`).
pub const BENCH_SLOTS_PER_CPU: u32 = 1 << BENCH_SLOT_BITS;
/// log2 of [`BENCH_SLOTS_PER_CPU`].
pub const BENCH_SLOT_BITS: u32 = 13;
const _: () = assert!(BENCH_SLOTS_PER_CPU == DEFAULT_REMOTE_ENTRIES);

/// Value of [`BENCH_SLOTS_MAP`].
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchSlot {
    /// The remote the slot counts.
    pub key: [u64; 3],
    /// Upload and download traffic.
    pub traffic: [CounterValue; 2],
    /// `bpf_ktime_get_coarse_ns` of the latest packet.
    pub last_seen_ns: u64,
}

const _: () = assert!(core::mem::size_of::<BenchSlot>() == 64);
const _: () = assert!(core::mem::size_of::<RemoteKey>() == 24);
const _: () = assert!(core::mem::size_of::<RemoteValue>() == 88);
const _: () = assert!(core::mem::size_of::<SpillKey>() == 8);
const _: () = assert!(core::mem::size_of::<SpillValue>() == 64);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` structs of integers without implicit padding (asserted above).
    unsafe impl aya::Pod for super::RemoteKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RemoteValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SpillKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SpillValue {}
}

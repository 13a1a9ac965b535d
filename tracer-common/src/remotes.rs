//! Per (device, remote address) accounting, beside the per (device, country) counters.
//!
//! Every packet the programs count in [`crate::maps::COUNTERS_MAP`] is also counted in exactly
//! one of three places, so that for every device the per-country totals equal
//! *live remotes + expired remotes + remote overflow*:
//! - its slot in [`REMOTES_MAP`] (taken on the device's first packet to the address on that
//!   CPU);
//! - the device's [`spill::OVERFLOW`] entry in [`REMOTE_SPILL_MAP`], when the probed slots all
//!   hold other remotes (written by the programs);
//! - the device's [`spill::EXPIRED`] entry in [`REMOTE_SPILL_MAP`], where the agent folds an
//!   idle remote's counts when it retires it (written by the agent only).
//!
//! When [`REMOTE_SPILL_MAP`] is full too (a MAC flood), the packet goes to
//! [`crate::Stat::RemoteOverflow`]: counted per country, but in no device's remote view.
//!
//! # The slot table
//!
//! [`REMOTES_MAP`] is a flat array, open-addressed: each CPU owns `1 << bits` slots of its own
//! (CPU `c`'s start at `c << bits`), written by the programs on that CPU without atomics, and
//! a packet's remote is found by hashing ([`slot_hash`]) its key and probing up to [`PROBES`]
//! consecutive slots. A hit costs one cache line (the key, the last packet's time and the
//! passed counters share the slot's first line), where a per-CPU hash map touches its bucket,
//! its element and this CPU's value. The hash is seeded ([`RemotesHeader::seed`], random per
//! table) so that a device cannot choose addresses that collide.
//!
//! Retirement is exact without a lookup-and-delete: the agent marks an idle slot
//! [`slot_state::RETIRING`] (through a shared mapping of the array), which no longer matches any
//! packet's key, so a packet for that remote takes a fresh slot; it waits for an RCU grace
//! period (`membarrier(MEMBARRIER_CMD_GLOBAL)`), after which no program that saw the slot live
//! is still running; then it adds the slot's counts to the device's expired total, marks it
//! [`slot_state::FOLDED`] and frees it.

use crate::CounterValue;

/// Array (`BPF_F_MMAPABLE`, pinned) of [`RemoteSlot`]: `cpus << bits` slots, then one
/// [`RemotesHeader`].
pub const REMOTES_MAP: &str = "REMOTES";
/// Per-CPU hash: [`SpillKey`] -> [`SpillValue`] (pinned).
pub const REMOTE_SPILL_MAP: &str = "REMOTE_SPILL";

/// Default slots per CPU in [`REMOTES_MAP`] (`--remote-entries`; rounded up to a power of two):
/// 1 MiB of kernel memory per CPU.
pub const DEFAULT_REMOTE_ENTRIES: u32 = 8192;
/// Most slots per CPU `--remote-entries` accepts (32 MiB per CPU).
pub const MAX_REMOTE_ENTRIES: u32 = 1 << 18;
/// Capacity of [`REMOTE_SPILL_MAP`]: an overflow and an expired entry for 2,048 devices.
pub const SPILL_ENTRIES: u32 = 4096;
/// Consecutive slots a packet's remote may be in (after its hash's slot, wrapping within the
/// CPU's slots). With random remotes the first that does not fit comes at 22-38% of a CPU's
/// slots, and 0.5% of them do not at half (docs/remotes.md, Memory); those go to their
/// device's overflow total.
pub const PROBES: u32 = 8;

/// log2 of the slots per CPU for `--remote-entries N`: `N` rounded up to a power of two, at
/// least one slot (the table is off at zero, but still exists).
pub const fn slot_bits(entries: u32) -> u32 {
    let n = if entries > MAX_REMOTE_ENTRIES { MAX_REMOTE_ENTRIES } else { entries };
    if n <= 1 { 0 } else { 32 - (n - 1).leading_zeros() }
}

/// Key of a remote: the part of a [`RemoteSlot`] a packet is matched on.
// 8-aligned (which adds no padding): the programs compare and store it as three words. At
// byte alignment the BPF backend stores it a byte at a time, through sixteen stack slots.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteKey {
    /// The remote address in network byte order; an IPv4 address fills the first 4 bytes.
    pub addr: [u8; 16],
    /// The LAN device's MAC address.
    pub mac: [u8; 6],
    /// 4 or 6; zero in an empty slot.
    pub family: u8,
    /// In a slot, one of [`slot_state`]; zero in the agent's keys.
    pub state: u8,
}

impl RemoteKey {
    /// The key as the three words the programs compare and hash.
    pub const fn words(self) -> [u64; 3] {
        // SAFETY: a `#[repr(C)]` struct of 24 bytes without padding (asserted below), 8-aligned.
        unsafe { core::mem::transmute::<RemoteKey, [u64; 3]>(self) }
    }
}

/// States of a [`RemoteSlot`] ([`RemoteKey::state`]). A slot is empty when the word holding the
/// MAC, family and state is zero.
pub mod slot_state {
    /// Counting its remote's packets.
    pub const LIVE: u8 = 1;
    /// Marked by the agent for retirement: matches no packet any more; its counts are not yet
    /// in the device's expired total.
    pub const RETIRING: u8 = 2;
    /// Its counts are in the device's expired total; the agent frees it next.
    pub const FOLDED: u8 = 3;
}

/// The slot of a key's hash among `1 << bits` ([`RemotesHeader::seed`] keyed): the word holding
/// the MAC and the state is hashed with the state of a live slot.
#[inline(always)]
pub const fn slot_hash(words: [u64; 3], seed: u64) -> u32 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let h = (words[0] ^ seed).wrapping_mul(K1);
    let h = (h ^ words[1]).rotate_left(31).wrapping_mul(K2);
    let h = (h ^ words[2]).wrapping_mul(K1);
    (h ^ (h >> 29) ^ (h >> 47)) as u32
}

/// Index into [`RemoteSlot::traffic`] and [`SpillValue::traffic`]: `verdict * 2 + direction`
/// (see [`crate::maps::verdict`] and [`crate::Direction`]).
pub const fn traffic_index(verdict: u8, direction: u8) -> usize {
    ((verdict as usize & 1) << 1) | (direction as usize & 1)
}

/// One slot of [`REMOTES_MAP`]: one remote's traffic on one CPU, two cache lines. The first
/// holds what every packet reads or writes (key, last seen, passed traffic); the second what
/// the first packet writes and blocked traffic. The agent sums a remote's slots over CPUs,
/// takes the earliest `first_seen_ns` (whose slot also has the first packet's protocol and
/// port) and the latest `last_seen_ns`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteSlot {
    /// The remote; its `state` says whether the slot is live.
    pub key: RemoteKey,
    /// `bpf_ktime_get_coarse_ns` of this CPU's latest packet (CLOCK_MONOTONIC).
    pub last_seen_ns: u64,
    /// Indexed by [`traffic_index`]: passed upload, passed download, blocked upload, blocked
    /// download.
    pub traffic: [CounterValue; 4],
    /// `bpf_ktime_get_coarse_ns` of this CPU's first packet.
    pub first_seen_ns: u64,
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
    /// Always zero: pads the slot to two cache lines.
    pub spare: [u64; 2],
}

/// The last element of [`REMOTES_MAP`], written by the agent when the table is new.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemotesHeader {
    /// [`RemotesHeader::MAGIC`] once written.
    pub magic: u64,
    /// The [`slot_hash`] seed of this table.
    pub seed: u64,
    /// log2 of the slots per CPU.
    pub bits: u32,
    /// The CPUs the table was sized for.
    pub cpus: u32,
    /// Always zero.
    pub spare: [u64; 13],
}

impl RemotesHeader {
    /// "egrsrmt1".
    pub const MAGIC: u64 = u64::from_le_bytes(*b"egrsrmt1");
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
const _: () = assert!(core::mem::size_of::<RemoteSlot>() == 128);
const _: () = assert!(core::mem::size_of::<RemotesHeader>() == 128);
const _: () = assert!(core::mem::offset_of!(RemoteSlot, traffic) + 32 == 64);
const _: () = assert!(core::mem::size_of::<SpillKey>() == 8);
const _: () = assert!(core::mem::size_of::<SpillValue>() == 64);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` structs of integers without implicit padding (asserted above).
    unsafe impl aya::Pod for super::RemoteKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RemoteSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RemotesHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SpillKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SpillValue {}
}

//! Reading the (device, remote address) slot table, and retiring idle remotes into each
//! device's expired total (see `tracer_common::remotes` for where every packet goes, and why
//! retirement loses nothing).

use std::{
    collections::{BTreeMap, BTreeSet},
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use aya::maps::{Array, MapData, PerCpuHashMap, PerCpuValues};
use tracer_common::{
    CounterValue,
    maps::verdict,
    remotes::{
        REMOTE_SPILL_MAP, REMOTES_MAP, RemoteKey, RemoteSlot, RemotesHeader, SpillKey, SpillValue,
        slot_state, spill, traffic_index,
    },
};

use super::{Kernel, KernelError, mapped::SharedArray};
use crate::base::sync::Locked;

/// Traffic of one remote place, indexed by `tracer_common::remotes::traffic_index` (passed
/// upload, passed download, blocked upload, blocked download).
pub type RemoteTraffic = [CounterValue; 4];

impl super::Traffic {
    /// One remote place's four counters in the counters' one shape (blocked: both directions).
    pub fn of_remote(traffic: &RemoteTraffic) -> Self {
        let at = |v, d| traffic[traffic_index(v, d)];
        let mut blocked = at(verdict::BLOCKED, 0);
        blocked += at(verdict::BLOCKED, 1);
        Self { upload: at(verdict::PASSED, 0), download: at(verdict::PASSED, 1), blocked }
    }
}

/// One live (device, remote address) entry, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// The key (device MAC, family, address).
    pub key: RemoteKey,
    /// Its traffic.
    pub traffic: RemoteTraffic,
    /// The earliest CPU's first packet (CLOCK_MONOTONIC ns).
    pub first_seen_ns: u64,
    /// The latest packet (CLOCK_MONOTONIC ns).
    pub last_seen_ns: u64,
    /// Country id.
    pub country: u16,
    /// IP protocol of the first packet.
    pub protocol: u8,
    /// Remote port of the first packet (0: none).
    pub port: u16,
}

impl RemoteEntry {
    /// An entry of no traffic yet for `key` (its state zero).
    fn new(key: RemoteKey) -> Self {
        RemoteEntry {
            key,
            traffic: RemoteTraffic::default(),
            first_seen_ns: 0,
            last_seen_ns: 0,
            country: 0,
            protocol: 0,
            port: 0,
        }
    }

    /// Adds one CPU's slot of the remote.
    fn add(&mut self, v: &RemoteSlot) {
        for (t, p) in self.traffic.iter_mut().zip(v.traffic) {
            *t += p;
        }
        if v.first_seen_ns != 0 && (self.first_seen_ns == 0 || v.first_seen_ns < self.first_seen_ns)
        {
            self.first_seen_ns = v.first_seen_ns;
            self.protocol = v.protocol;
            self.port = v.port;
            self.country = v.country;
        }
        self.last_seen_ns = self.last_seen_ns.max(v.last_seen_ns);
    }

    /// The remote address.
    pub fn address(&self) -> std::net::IpAddr {
        address_of(&self.key)
    }
}

/// The address in a [`RemoteKey`].
pub fn address_of(key: &RemoteKey) -> std::net::IpAddr {
    address_of_bytes(key.family, key.addr)
}

/// An address as the programs write it: family 4 or 6, IPv4 in the first 4 bytes.
pub fn address_of_bytes(family: u8, addr: [u8; 16]) -> std::net::IpAddr {
    if family == 4 {
        let [a, b, c, d, ..] = addr;
        std::net::Ipv4Addr::new(a, b, c, d).into()
    } else {
        std::net::Ipv6Addr::from(addr).into()
    }
}

/// A device's traffic that is in no live entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSpill {
    /// What did not fit in the table (written by the programs).
    pub overflow: RemoteTraffic,
    /// What the agent retired from idle entries.
    pub expired: RemoteTraffic,
}

/// The remote table at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteSnapshot {
    /// Every live remote, its slots on all CPUs summed, in key order.
    pub entries: Vec<RemoteEntry>,
    /// Per device MAC.
    pub spill: BTreeMap<[u8; 6], DeviceSpill>,
    /// Slots in use (a remote counted on several CPUs has a slot on each).
    pub slots: u32,
    /// Slots of the table, on all CPUs (`--remote-entries` per CPU).
    pub capacity: u32,
}

/// What one retirement pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retired {
    /// Remotes folded into their device's expired total, their slots freed.
    pub entries: u64,
    /// Idle remotes kept live because their device's expired entry could not be created (the
    /// spill table is full): retiring them would lose their counts.
    pub kept: u64,
    /// Passes that waited a fixed 100 ms instead of a grace period (`membarrier` refused:
    /// kernels without it, or with `nohz_full` CPUs).
    pub no_grace_period: u64,
}

/// Access to the slot table (through a shared mapping) and the spill table; both pinned,
/// valid across reloads.
pub struct RemoteReader {
    /// The slot table, mapped only while a snapshot or a retirement reads it: mapped for
    /// good, the pages it touched (1 MiB per CPU by default) would stay in the agent's RSS.
    map: MapData,
    /// The mapping's length: every slot and the header.
    len: usize,
    /// Also serialises a snapshot against a retirement's folding, so that no snapshot sees a
    /// remote's counts both in its slots and in the expired total.
    spill: Mutex<PerCpuHashMap<MapData, SpillKey, SpillValue>>,
    /// log2 of the slots per CPU.
    bits: u32,
    cpus: usize,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("bits", &self.bits)
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source: Box::new(source) }
}

fn sum_spill(values: &[SpillValue]) -> RemoteTraffic {
    let mut total = RemoteTraffic::default();
    for v in values {
        for (t, p) in total.iter_mut().zip(v.traffic) {
            *t += p;
        }
    }
    total
}

fn possible_cpus() -> Result<usize, KernelError> {
    aya::util::nr_cpus().map_err(|(_, e)| KernelError::Io {
        context: "reading the number of possible CPUs".into(),
        source: e,
    })
}

/// Byte offset of a slot's word holding the MAC, family and state (zero: the slot is free).
const STATE_WORD: usize = 16;
/// Byte offset of a slot's state.
const STATE_BYTE: usize = 23;
const _: () = assert!(core::mem::offset_of!(RemoteKey, mac) == STATE_WORD);
const _: () = assert!(core::mem::offset_of!(RemoteKey, state) == STATE_BYTE);

/// log2 of the slots per CPU of a slot table of `elements` (every CPU's slots and the header).
fn table_bits(elements: usize, cpus: usize) -> u32 {
    (elements.saturating_sub(1) / cpus.max(1)).max(1).ilog2()
}

impl Kernel {
    /// Reads the slot table's header, writing a fresh one (random hash seed) when the table is
    /// new, and tells the programs its size and seed; `on` turns the counting per remote on.
    pub fn set_remotes(&mut self, on: bool) -> Result<(), KernelError> {
        let cpus = possible_cpus()?;
        let mut map: Array<_, RemotesHeader> =
            Array::try_from(self.map_mut(REMOTES_MAP)?).map_err(map_err(REMOTES_MAP))?;
        let last = map.len().saturating_sub(1);
        let bits = table_bits(map.len() as usize, cpus);
        let mut header = map.get(&last, 0).map_err(map_err(REMOTES_MAP))?;
        if header.magic != RemotesHeader::MAGIC
            || header.bits != bits
            || header.cpus as usize != cpus
        {
            use std::hash::BuildHasher as _;
            header = RemotesHeader {
                magic: RemotesHeader::MAGIC,
                // Keyed from the OS's randomness: a LAN device cannot predict the slots.
                seed: std::collections::hash_map::RandomState::new().hash_one(last),
                bits,
                cpus: cpus as u32,
                ..RemotesHeader::default()
            };
            map.set(last, header, 0).map_err(map_err(REMOTES_MAP))?;
        }
        self.update_settings(|s| {
            s.remotes = u32::from(on);
            s.remote_bits = header.bits;
            s.remote_seed = header.seed;
        })
    }

    /// Takes the remote maps out of the object into a shareable reader.
    pub fn remote_reader(&mut self) -> Result<RemoteReader, KernelError> {
        let map = match self.take_map(REMOTES_MAP)? {
            aya::maps::Map::Array(data) => data,
            _ => return Err(KernelError::Missing { kind: "array map", name: REMOTES_MAP }),
        };
        let elements = map.info().map_err(map_err(REMOTES_MAP))?.max_entries() as usize;
        let cpus = possible_cpus()?;
        let bits = table_bits(elements, cpus);
        let spill = PerCpuHashMap::try_from(self.take_map(REMOTE_SPILL_MAP)?)
            .map_err(map_err(REMOTE_SPILL_MAP))?;
        let len = elements * size_of::<RemoteSlot>();
        Ok(RemoteReader { map, len, spill: Mutex::new(spill), bits, cpus })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

impl RemoteReader {
    fn slot_count(&self) -> usize {
        self.cpus << self.bits
    }

    /// The slot table, mapped until the view is dropped.
    fn slots(&self) -> Result<Slots, KernelError> {
        SharedArray::map(self.map.fd().as_fd().as_raw_fd(), self.len)
            .map(Slots)
            .map_err(|source| KernelError::Io { context: format!("mapping {REMOTES_MAP}"), source })
    }

    /// Reads both tables now.
    pub fn snapshot(&self) -> Result<RemoteSnapshot, KernelError> {
        let spill_map = lock(&self.spill);
        let slots = self.slots()?;
        let mut live: BTreeMap<RemoteKey, RemoteEntry> = BTreeMap::new();
        let mut in_use = 0;
        for i in 0..self.slot_count() {
            if slots.state_word(i) == 0 {
                continue;
            }
            let slot = slots.slot(i);
            // A slot being retired still holds counts that are in no expired total yet.
            if !matches!(slot.key.state, slot_state::LIVE | slot_state::RETIRING) {
                continue;
            }
            in_use += 1;
            let key = RemoteKey { state: 0, ..slot.key };
            live.entry(key).or_insert_with(|| RemoteEntry::new(key)).add(&slot);
        }
        let mut spill: BTreeMap<[u8; 6], DeviceSpill> = BTreeMap::new();
        for item in spill_map.iter() {
            let (key, values) = item.map_err(map_err(REMOTE_SPILL_MAP))?;
            let slot = spill.entry(key.mac).or_default();
            let total = sum_spill(&values);
            match key.kind {
                spill::OVERFLOW => slot.overflow = total,
                _ => slot.expired = total,
            }
        }
        Ok(RemoteSnapshot {
            entries: live.into_values().collect(),
            spill,
            slots: in_use,
            capacity: self.slot_count() as u32,
        })
    }

    /// Retires every remote of `snapshot` whose last packet is older than `cutoff_ns`
    /// (CLOCK_MONOTONIC): its slots stop matching packets, and once no program can still be
    /// writing them (an RCU grace period) their counts are added to the device's expired total
    /// and the slots freed. A packet arriving meanwhile takes a fresh slot. Slots an earlier
    /// pass (or an agent that was killed) left marked are finished too. Blocks for the grace
    /// period, 10-20 ms.
    pub fn retire(
        &self,
        snapshot: &RemoteSnapshot,
        cutoff_ns: u64,
    ) -> Result<Retired, KernelError> {
        let mut retired = Retired::default();
        let mut idle: BTreeSet<RemoteKey> =
            snapshot.entries.iter().filter(|e| e.last_seen_ns < cutoff_ns).map(|e| e.key).collect();
        // The expired entries first: once one exists, adding to it cannot fail for room.
        {
            let mut spill = lock(&self.spill);
            let macs: BTreeSet<[u8; 6]> = idle.iter().map(|k| k.mac).collect();
            for mac in macs {
                let key = SpillKey { mac, kind: spill::EXPIRED, reserved: 0 };
                if spill.get(&key, 0).is_err()
                    && write_expired(&mut spill, key, &RemoteTraffic::default(), self.cpus).is_err()
                {
                    let before = idle.len();
                    idle.retain(|k| k.mac != mac);
                    retired.kept += (before - idle.len()) as u64;
                }
            }
        }
        // Mark: from here no packet matches these slots.
        let slots = self.slots()?;
        let mut marked = Vec::new();
        for i in 0..self.slot_count() {
            if slots.state_word(i) == 0 {
                continue;
            }
            let slot = slots.slot(i);
            match slot.key.state {
                slot_state::LIVE
                    if slot.last_seen_ns < cutoff_ns
                        && idle.contains(&RemoteKey { state: 0, ..slot.key }) =>
                {
                    slots.set_state(i, slot_state::RETIRING);
                    marked.push(i);
                }
                slot_state::RETIRING => marked.push(i),
                slot_state::FOLDED => slots.free(i),
                _ => {}
            }
        }
        if marked.is_empty() {
            return Ok(retired);
        }
        if !grace_period() {
            retired.no_grace_period += 1;
        }
        // Fold: no program writes the marked slots any more.
        let mut per_device: BTreeMap<[u8; 6], (RemoteTraffic, Vec<usize>)> = BTreeMap::new();
        let mut remotes = BTreeSet::new();
        for &i in &marked {
            let slot = slots.slot(i);
            remotes.insert(RemoteKey { state: 0, ..slot.key });
            let (total, of_device) = per_device.entry(slot.key.mac).or_default();
            for (t, p) in total.iter_mut().zip(slot.traffic) {
                *t += p;
            }
            of_device.push(i);
        }
        let mut spill = lock(&self.spill);
        for (mac, (total, of_device)) in per_device {
            let key = SpillKey { mac, kind: spill::EXPIRED, reserved: 0 };
            let mut expired = spill.get(&key, 0).map(|v| sum_spill(&v)).unwrap_or_default();
            for (t, p) in expired.iter_mut().zip(total) {
                *t += p;
            }
            // On failure the slots stay marked: the next pass folds them.
            write_expired(&mut spill, key, &expired, self.cpus)?;
            for i in of_device {
                slots.set_state(i, slot_state::FOLDED);
            }
        }
        drop(spill);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        for &i in &marked {
            slots.free(i);
        }
        retired.entries += remotes.len() as u64;
        Ok(retired)
    }
}

/// A mapping of the slot table, for one snapshot or retirement.
struct Slots(SharedArray);

impl Slots {
    /// The key word of slot `i` that is zero when the slot is free.
    fn state_word(&self, i: usize) -> u64 {
        self.0.read::<u64>(i * size_of::<RemoteSlot>() + STATE_WORD)
    }

    fn slot(&self, i: usize) -> RemoteSlot {
        self.0.read(i * size_of::<RemoteSlot>())
    }

    fn set_state(&self, i: usize, state: u8) {
        self.0.write(i * size_of::<RemoteSlot>() + STATE_BYTE, state);
    }

    /// Frees a folded slot: the programs take a slot whose state word is zero, and write it
    /// whole.
    fn free(&self, i: usize) {
        self.0.write::<u64>(i * size_of::<RemoteSlot>() + STATE_WORD, 0);
    }
}

/// Waits until every program that may have seen a slot live has finished: an RCU grace period
/// (`membarrier(MEMBARRIER_CMD_GLOBAL)` is `synchronize_rcu()`, and the programs run inside RCU
/// read-side sections). Where the kernel refuses it, waits 100 ms, thousands of times a
/// program's run; says which.
fn grace_period() -> bool {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes no pointers.
    if unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) } == 0 {
        return true;
    }
    std::thread::sleep(Duration::from_millis(100));
    false
}

/// Writes a device's expired total (only the agent writes these entries: no race with the
/// programs), on CPU 0's slot.
fn write_expired(
    spill: &mut PerCpuHashMap<MapData, SpillKey, SpillValue>,
    key: SpillKey,
    total: &RemoteTraffic,
    cpus: usize,
) -> Result<(), KernelError> {
    let mut values = vec![SpillValue::default(); cpus];
    values[0].traffic = *total;
    let values = PerCpuValues::try_from(values).map_err(|source| KernelError::Io {
        context: format!("building per-CPU values for {REMOTE_SPILL_MAP}"),
        source,
    })?;
    spill.insert(key, values, 0).map_err(map_err(REMOTE_SPILL_MAP))
}

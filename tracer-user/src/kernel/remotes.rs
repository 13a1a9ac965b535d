//! Reading the per (device, remote address) table, and retiring its idle entries into each
//! device's expired total (see `tracer_common::remotes` for where every packet goes).

use std::{
    collections::BTreeMap,
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{Mutex, MutexGuard},
};

use aya::maps::{IterableMap as _, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use tracer_common::{
    CounterValue,
    maps::verdict,
    remotes::{
        REMOTE_SPILL_MAP, REMOTES_FULL_MAP, REMOTES_MAP, RemoteKey, RemoteValue, SpillKey,
        SpillValue, spill, traffic_index,
    },
};

use super::{Kernel, KernelError};
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
    /// Sums the per-CPU values of one entry.
    fn from_cpus(key: RemoteKey, values: &[RemoteValue]) -> Self {
        let mut entry = RemoteEntry {
            key,
            traffic: RemoteTraffic::default(),
            first_seen_ns: 0,
            last_seen_ns: 0,
            country: 0,
            protocol: 0,
            port: 0,
        };
        for v in values {
            for (t, p) in entry.traffic.iter_mut().zip(v.traffic) {
                *t += p;
            }
            if v.first_seen_ns != 0
                && (entry.first_seen_ns == 0 || v.first_seen_ns < entry.first_seen_ns)
            {
                entry.first_seen_ns = v.first_seen_ns;
                entry.protocol = v.protocol;
                entry.port = v.port;
                entry.country = v.country;
            }
            entry.last_seen_ns = entry.last_seen_ns.max(v.last_seen_ns);
        }
        entry
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
    /// Every live entry.
    pub entries: Vec<RemoteEntry>,
    /// Per device MAC.
    pub spill: BTreeMap<[u8; 6], DeviceSpill>,
    /// Capacity of the remote table.
    pub capacity: u32,
}

/// What one retirement pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retired {
    /// Entries folded into their device's expired total and deleted.
    pub entries: u64,
    /// Entries deleted with a separate read and delete (kernels before 5.14, no atomic
    /// lookup-and-delete): a packet between the two would be missing from the remote view.
    pub non_atomic: u64,
    /// Idle entries kept live because their device's expired entry could not be created (the
    /// spill table is full): retiring them would lose their counts.
    pub kept: u64,
}

/// Access to the remote table and the spill table (pinned: valid across reloads).
pub struct RemoteReader {
    remotes: Mutex<PerCpuHashMap<MapData, RemoteKey, RemoteValue>>,
    spill: Mutex<PerCpuHashMap<MapData, SpillKey, SpillValue>>,
    /// The programs' "table full, do not try to insert" countdown, cleared after retiring.
    full: Mutex<PerCpuArray<MapData, u32>>,
    capacity: u32,
    cpus: usize,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader").field("capacity", &self.capacity).finish_non_exhaustive()
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

impl Kernel {
    /// Takes the remote maps out of the object into a shareable reader.
    pub fn remote_reader(&mut self) -> Result<RemoteReader, KernelError> {
        let map = self.take_map(REMOTES_MAP)?;
        let capacity = match &map {
            aya::maps::Map::PerCpuHashMap(data) => {
                data.info().map_err(map_err(REMOTES_MAP))?.max_entries()
            }
            _ => 0,
        };
        let remotes = PerCpuHashMap::try_from(map).map_err(map_err(REMOTES_MAP))?;
        let spill = PerCpuHashMap::try_from(self.take_map(REMOTE_SPILL_MAP)?)
            .map_err(map_err(REMOTE_SPILL_MAP))?;
        let full = PerCpuArray::try_from(self.take_map(REMOTES_FULL_MAP)?)
            .map_err(map_err(REMOTES_FULL_MAP))?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Io {
            context: "reading the number of possible CPUs".into(),
            source: e,
        })?;
        Ok(RemoteReader {
            remotes: Mutex::new(remotes),
            spill: Mutex::new(spill),
            full: Mutex::new(full),
            capacity,
            cpus,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

impl RemoteReader {
    /// Reads both tables now.
    pub fn snapshot(&self) -> Result<RemoteSnapshot, KernelError> {
        let mut entries = Vec::new();
        let remotes = lock(&self.remotes);
        let fd = remotes.map().fd().as_fd().as_raw_fd();
        let batched = super::batch::read_all(fd, self.cpus, |key, values: &[RemoteValue]| {
            entries.push(RemoteEntry::from_cpus(key, values));
        })
        .map_err(|source| KernelError::Io { context: format!("reading {REMOTES_MAP}"), source })?;
        if batched.is_none() {
            for item in remotes.iter() {
                let (key, values) = item.map_err(map_err(REMOTES_MAP))?;
                entries.push(RemoteEntry::from_cpus(key, &values));
            }
        }
        drop(remotes);
        let mut spill: BTreeMap<[u8; 6], DeviceSpill> = BTreeMap::new();
        for item in lock(&self.spill).iter() {
            let (key, values) = item.map_err(map_err(REMOTE_SPILL_MAP))?;
            let slot = spill.entry(key.mac).or_default();
            let total = sum_spill(&values);
            match key.kind {
                spill::OVERFLOW => slot.overflow = total,
                _ => slot.expired = total,
            }
        }
        Ok(RemoteSnapshot { entries, spill, capacity: self.capacity })
    }

    /// Retires every entry of `snapshot` whose last packet is older than `cutoff_ns`
    /// (CLOCK_MONOTONIC): its counts at the moment of deletion are added to its device's
    /// expired total, then it is gone. A packet arriving later creates a fresh entry.
    pub fn retire(
        &self,
        snapshot: &RemoteSnapshot,
        cutoff_ns: u64,
    ) -> Result<Retired, KernelError> {
        let mut retired = Retired::default();
        let mut remotes = lock(&self.remotes);
        let mut spill = lock(&self.spill);
        let fd = remotes.map().fd().as_fd().as_raw_fd();
        for entry in snapshot.entries.iter().filter(|e| e.last_seen_ns < cutoff_ns) {
            // The expired entry first: once it exists, adding to it cannot fail for room.
            let key = SpillKey { mac: entry.key.mac, kind: spill::EXPIRED, reserved: 0 };
            let mut expired = match spill.get(&key, 0) {
                Ok(values) => sum_spill(&values),
                Err(_) => {
                    if write_expired(&mut spill, key, &RemoteTraffic::default(), self.cpus).is_err()
                    {
                        retired.kept += 1;
                        continue;
                    }
                    RemoteTraffic::default()
                }
            };
            let values: Option<Vec<RemoteValue>> =
                match super::batch::lookup_and_delete(fd, self.cpus, &entry.key) {
                    Ok(values) => values,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => {
                        retired.non_atomic += 1;
                        let values = remotes.get(&entry.key, 0).ok().map(|v| v.to_vec());
                        let _ = remotes.remove(&entry.key);
                        values
                    }
                    Err(source) => {
                        return Err(KernelError::Io {
                            context: format!("retiring an entry of {REMOTES_MAP}"),
                            source,
                        });
                    }
                };
            let Some(values) = values else { continue };
            let gone = RemoteEntry::from_cpus(entry.key, &values);
            for (t, p) in expired.iter_mut().zip(gone.traffic) {
                *t += p;
            }
            write_expired(&mut spill, key, &expired, self.cpus)?;
            retired.entries += 1;
        }
        if retired.entries > 0 {
            self.table_has_room()?;
        }
        Ok(retired)
    }

    /// Tells the programs that the remote table has room again: the next new remote on every
    /// CPU tries an insert (see [`REMOTES_FULL_MAP`]). A program counting down meanwhile at
    /// most skips one more insert.
    fn table_has_room(&self) -> Result<(), KernelError> {
        let zeros =
            PerCpuValues::try_from(vec![0u32; self.cpus]).map_err(|source| KernelError::Io {
                context: format!("building per-CPU values for {REMOTES_FULL_MAP}"),
                source,
            })?;
        lock(&self.full).set(0, zeros, 0).map_err(map_err(REMOTES_FULL_MAP))
    }
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

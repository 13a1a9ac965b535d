//! Reading the counters: summed over CPUs, at the moment of the call.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::{IterableMap as _, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{
    CounterValue, Direction, Stat, TrafficKey, TrafficValue,
    maps::{COUNTERS_MAP, STATS_MAP, verdict},
};

use super::{Kernel, KernelError};
use crate::base::sync::Locked;

/// Read access to the counter maps, shareable between the HTTP server and the reporter.
pub struct CounterReader {
    counters: PerCpuHashMap<MapData, TrafficKey, TrafficValue>,
    stats: PerCpuArray<MapData, CounterValue>,
    capacity: u32,
    /// The last snapshot [`CounterReader::recent`] read, and when.
    recent: Mutex<Option<(Instant, Arc<CounterSnapshot>)>>,
}

impl std::fmt::Debug for CounterReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterReader").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

/// A LAN device and a country: the key of [`CounterSnapshot::traffic`]. Ordered by MAC, then
/// country, so one device's countries are adjacent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pair {
    /// The LAN device's MAC address.
    pub mac: [u8; 6],
    /// [`tracer_common::CountryId`] of the remote addresses.
    pub country: u16,
}

impl Pair {
    /// Every pair of `mac`, as a range of [`CounterSnapshot::traffic`].
    pub fn of_device(mac: [u8; 6]) -> std::ops::RangeInclusive<Pair> {
        Pair { mac, country: 0 }..=Pair { mac, country: u16::MAX }
    }

    /// A `u64` that orders like the derived `Ord` (the MAC's 48 bits, then the country's 16):
    /// sorting the map's entries by it is much cheaper than comparing the structs.
    fn sort_key(self) -> u64 {
        let [a, b, c, d, e, f] = self.mac;
        u64::from_be_bytes([a, b, c, d, e, f, 0, 0]) | u64::from(self.country)
    }

    /// The pair [`Self::sort_key`] made `key` from.
    fn from_sort_key(key: u64) -> Pair {
        let [a, b, c, d, e, f, g, h] = key.to_be_bytes();
        Pair { mac: [a, b, c, d, e, f], country: u16::from_be_bytes([g, h]) }
    }
}

/// What a device exchanged with a country (or, in `remotes`, with one remote): let through per
/// direction, and dropped by a block policy (both directions together, as every consumer
/// reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    /// Sent by the device and let through.
    pub upload: CounterValue,
    /// Received by the device.
    pub download: CounterValue,
    /// Dropped by a block policy (both directions).
    pub blocked: CounterValue,
}

impl Traffic {
    /// Bytes in all: upload, download and blocked.
    pub fn bytes(&self) -> u64 {
        self.upload.bytes.wrapping_add(self.download.bytes).wrapping_add(self.blocked.bytes)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Self) {
        self.upload += other.upload;
        self.download += other.download;
        self.blocked += other.blocked;
    }
}

/// The counters at one moment: the one shape every consumer reads (metrics, the API, the table,
/// alerts, learning, history).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Per (device, country), summed over CPUs, passed and blocked entries of the map together;
    /// pairs with nothing counted are left out. A direction that saw nothing is zero.
    pub traffic: BTreeMap<Pair, Traffic>,
    /// Entries in use in the traffic map (each holds both directions; blocked traffic apart).
    pub map_entries: usize,
    /// Traffic not counted per country.
    pub stats: Vec<StatSnapshot>,
    /// Capacity of the counter map.
    pub capacity: u32,
}

/// One entry of [`CounterSnapshot::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatSnapshot {
    /// Which kind of traffic.
    pub stat: Stat,
    /// Which direction.
    pub direction: Direction,
    /// Packets and bytes.
    pub value: CounterValue,
}

impl CounterSnapshot {
    /// (pair, direction)s that saw traffic: the series of each of the exposition's per-device
    /// counters.
    pub fn series(&self) -> usize {
        let zero = CounterValue::default();
        (self.traffic.values())
            .map(|t| usize::from(t.upload != zero) + usize::from(t.download != zero))
            .sum()
    }

    /// The value of one stat.
    pub fn stat(&self, stat: Stat, direction: Direction) -> CounterValue {
        self.stats
            .iter()
            .find(|s| s.stat == stat && s.direction == direction)
            .map_or_else(CounterValue::default, |s| s.value)
    }
}

/// One entry of the traffic map, summed over CPUs, as [`Traffic`].
fn traffic_of(key: &TrafficKey, values: &[TrafficValue]) -> Traffic {
    let mut directions = [CounterValue::default(); 2];
    for v in values {
        for (t, p) in directions.iter_mut().zip(v.directions) {
            *t += p;
        }
    }
    let [upload, download] = directions;
    if key.verdict == verdict::PASSED {
        Traffic { upload, download, blocked: CounterValue::default() }
    } else {
        let mut blocked = upload;
        blocked += download;
        Traffic { blocked, ..Traffic::default() }
    }
}

impl Kernel {
    /// Takes the counter maps out of the object into a shareable reader. With pinned maps the
    /// reader stays valid across reloads (every object shares the same pinned counters).
    pub fn counter_reader(&mut self) -> Result<CounterReader, KernelError> {
        let err = |map| move |source| KernelError::Map { map, source: Box::new(source) };
        let map = self.take_map(COUNTERS_MAP)?;
        let capacity = match &map {
            aya::maps::Map::PerCpuHashMap(data) => {
                data.info().map_err(err(COUNTERS_MAP))?.max_entries()
            }
            _ => self.counter_entries,
        };
        let counters: PerCpuHashMap<MapData, TrafficKey, TrafficValue> =
            PerCpuHashMap::try_from(map).map_err(err(COUNTERS_MAP))?;
        let stats = PerCpuArray::try_from(self.take_map(STATS_MAP)?).map_err(err(STATS_MAP))?;
        Ok(CounterReader { counters, stats, capacity, recent: Mutex::default() })
    }
}

impl CounterReader {
    /// Reads every counter now.
    pub fn snapshot(&self) -> Result<CounterSnapshot, KernelError> {
        // (sort key, traffic): one per map entry; a pair's passed and blocked entries merge
        // once sorted.
        let mut entries: Vec<(u64, Traffic)> = Vec::new();
        let mut map_entries = 0;
        self.for_each_entry(|key, values| {
            map_entries += 1;
            let traffic = traffic_of(&key, values);
            if !traffic.is_empty() {
                entries.push((Pair { mac: key.mac, country: key.country }.sort_key(), traffic));
            }
        })?;
        // Built from a sorted list in bulk: much cheaper than 100k single inserts.
        entries.sort_unstable_by_key(|(key, _)| *key);
        entries.dedup_by(|(key, traffic), (kept, sum)| {
            let same = key == kept;
            if same {
                *sum += *traffic;
            }
            same
        });
        let traffic: BTreeMap<Pair, Traffic> =
            entries.into_iter().map(|(key, traffic)| (Pair::from_sort_key(key), traffic)).collect();
        let mut stats = Vec::new();
        for stat in Stat::ALL {
            for (direction, value) in Direction::ALL.into_iter().zip(self.snapshot_stat(stat)?) {
                stats.push(StatSnapshot { stat, direction, value });
            }
        }
        Ok(CounterSnapshot { traffic, map_entries, stats, capacity: self.capacity })
    }

    /// Calls `f` with every entry of the traffic map (its per-CPU values), read in batches
    /// where the kernel can (5.6+), else one lookup per key.
    fn for_each_entry(
        &self,
        mut f: impl FnMut(TrafficKey, &[TrafficValue]),
    ) -> Result<(), KernelError> {
        let fd = self.counters.map().fd().as_fd().as_raw_fd();
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Io {
            context: "reading the number of possible CPUs".into(),
            source: e,
        })?;
        let batched = super::batch::read_all(fd, cpus, &mut f).map_err(|source| {
            KernelError::Io { context: format!("reading {COUNTERS_MAP}"), source }
        })?;
        if batched.is_none() {
            for entry in self.counters.iter() {
                let (key, values) = entry.map_err(|source| KernelError::Map {
                    map: COUNTERS_MAP,
                    source: Box::new(source),
                })?;
                f(key, &values);
            }
        }
        Ok(())
    }
}

impl CounterReader {
    /// A snapshot at most `max_age` old: the one the last caller read if it is young enough,
    /// else a fresh one. The run loop's timed consumers (upload-volume rules every second,
    /// learning every 2 s, history every 10 s) share one read of the map this way; a scrape
    /// and an API request read their own.
    pub fn recent(&self, max_age: Duration) -> Result<Arc<CounterSnapshot>, KernelError> {
        let mut recent = self.recent.locked();
        if let Some((at, snapshot)) = recent.as_ref()
            && at.elapsed() <= max_age
        {
            return Ok(Arc::clone(snapshot));
        }
        let snapshot = Arc::new(self.snapshot()?);
        *recent = Some((Instant::now(), Arc::clone(&snapshot)));
        Ok(snapshot)
    }

    /// Entries in use in the traffic map now: read in batches and counted, nothing kept (what
    /// `/healthz` reports, without building a snapshot).
    pub fn entries(&self) -> Result<usize, KernelError> {
        let mut entries = 0;
        self.for_each_entry(|_, _| entries += 1)?;
        Ok(entries)
    }

    /// The capacity of the traffic map.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// One stat now, `[upload, download]`.
    pub fn snapshot_stat(&self, stat: Stat) -> Result<[CounterValue; 2], KernelError> {
        let mut out = [CounterValue::default(); 2];
        for (slot, direction) in out.iter_mut().zip(Direction::ALL) {
            let values = self
                .stats
                .get(&stat.index(direction), 0)
                .map_err(|source| KernelError::Map { map: STATS_MAP, source: Box::new(source) })?;
            *slot = values.iter().sum();
        }
        Ok(out)
    }

    /// What `mac` has exchanged with `country` so far (both directions, blocked included).
    pub fn device_country(&self, mac: [u8; 6], country: u16) -> CounterValue {
        let mut total = CounterValue::default();
        for v in [verdict::PASSED, verdict::BLOCKED] {
            let key = TrafficKey { mac, country, verdict: v, reserved: 0 };
            if let Ok(values) = self.counters.get(&key, 0) {
                total += values.iter().flat_map(|v| v.directions).sum();
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sort_key_orders_like_the_pair_and_gives_it_back() {
        let macs = [[0; 6], [0, 0, 0, 0, 0, 1], [0x02, 0xdd, 0, 0, 3, 0xe7], [0xff; 6]];
        let mut pairs: Vec<Pair> = macs
            .iter()
            .flat_map(|&mac| [0, 1, 0x0fff, 0x1000, u16::MAX].map(|country| Pair { mac, country }))
            .collect();
        pairs.reverse();
        let mut by_key = pairs.clone();
        by_key.sort_unstable_by_key(|p| p.sort_key());
        pairs.sort_unstable();
        assert_eq!(by_key, pairs);
        assert!(pairs.iter().all(|&p| Pair::from_sort_key(p.sort_key()) == p));
    }

    #[test]
    fn a_map_entry_is_summed_over_cpus_into_its_verdict() {
        let v = |packets, bytes| CounterValue { packets, bytes };
        let cpus = [
            TrafficValue { directions: [v(1, 10), v(2, 20)] },
            TrafficValue { directions: [v(3, 30), v(0, 0)] },
        ];
        let key =
            |verdict| TrafficKey { mac: [2, 0, 0, 0, 0, 1], country: 7, verdict, reserved: 0 };
        assert_eq!(
            traffic_of(&key(verdict::PASSED), &cpus),
            Traffic { upload: v(4, 40), download: v(2, 20), blocked: v(0, 0) }
        );
        assert_eq!(
            traffic_of(&key(verdict::BLOCKED), &cpus),
            Traffic { blocked: v(6, 60), ..Traffic::default() }
        );
    }
}

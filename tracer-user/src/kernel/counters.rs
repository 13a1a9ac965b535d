//! Reading the counters: summed over CPUs, at the moment of the call.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::{IterableMap as _, MapData, PerCpuArray, PerCpuHashMap};
use tracer_common::{
    CounterKey, CounterValue, Direction, Stat, TrafficKey, TrafficValue,
    maps::{COUNTERS_MAP, STATS_MAP},
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

/// The counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Per (device, country, direction, verdict), summed over CPUs; directions a map entry
    /// never saw are left out.
    pub counters: BTreeMap<CounterKey, CounterValue>,
    /// Entries in use in the traffic map (each holds both directions).
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
    /// The value of one stat.
    pub fn stat(&self, stat: Stat, direction: Direction) -> CounterValue {
        self.stats
            .iter()
            .find(|s| s.stat == stat && s.direction == direction)
            .map_or_else(CounterValue::default, |s| s.value)
    }
}

/// A `u64` that orders like [`CounterKey`]'s derived `Ord` (MAC, country, direction, verdict)
/// for every key the programs write (country ids below 4096, direction and verdict below 4):
/// sorting 100k entries by it takes half the time of comparing the structs.
fn sort_key(key: &CounterKey) -> u64 {
    let [a, b, c, d, e, f] = key.mac;
    let mac = u64::from_be_bytes([0, 0, a, b, c, d, e, f]);
    mac << 16
        | u64::from(key.country.min(0xfff)) << 4
        | u64::from(key.direction.min(3)) << 2
        | u64::from(key.verdict.min(3))
}

/// Both directions of a traffic entry, summed over CPUs.
fn sum_traffic(values: &[TrafficValue]) -> TrafficValue {
    let mut total = TrafficValue::default();
    for v in values {
        for (t, p) in total.directions.iter_mut().zip(v.directions) {
            *t += p;
        }
    }
    total
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
        let err = |map| move |source| KernelError::Map { map, source: Box::new(source) };
        let mut entries: Vec<(CounterKey, CounterValue)> = Vec::new();
        let mut map_entries = 0;
        let mut add = |key: TrafficKey, value: TrafficValue| {
            map_entries += 1;
            for direction in Direction::ALL {
                let v = value.directions[direction as usize];
                if v.packets != 0 || v.bytes != 0 {
                    let key = CounterKey {
                        mac: key.mac,
                        country: key.country,
                        direction: direction as u8,
                        verdict: key.verdict,
                    };
                    entries.push((key, v));
                }
            }
        };
        let fd = self.counters.map().fd().as_fd().as_raw_fd();
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Io {
            context: "reading the number of possible CPUs".into(),
            source: e,
        })?;
        let batched = super::batch::read_all(fd, cpus, |key, values: &[TrafficValue]| {
            add(key, sum_traffic(values));
        })
        .map_err(|source| KernelError::Io { context: format!("reading {COUNTERS_MAP}"), source })?;
        if batched.is_none() {
            for entry in self.counters.iter() {
                let (key, values) = entry.map_err(err(COUNTERS_MAP))?;
                add(key, sum_traffic(&values));
            }
        }
        // Built from a sorted list in bulk: much cheaper than 100k single inserts.
        entries.sort_unstable_by_key(|(key, _)| sort_key(key));
        let counters: BTreeMap<CounterKey, CounterValue> = entries.into_iter().collect();
        let mut stats = Vec::new();
        for stat in Stat::ALL {
            for direction in Direction::ALL {
                let values = self.stats.get(&stat.index(direction), 0).map_err(err(STATS_MAP))?;
                stats.push(StatSnapshot { stat, direction, value: values.iter().sum() });
            }
        }
        Ok(CounterSnapshot { counters, map_entries, stats, capacity: self.capacity })
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
        let fd = self.counters.map().fd().as_fd().as_raw_fd();
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| KernelError::Io {
            context: "reading the number of possible CPUs".into(),
            source: e,
        })?;
        let mut entries = 0;
        let batched = super::batch::read_all(fd, cpus, |_: TrafficKey, _: &[TrafficValue]| {
            entries += 1;
        })
        .map_err(|source| KernelError::Io { context: format!("reading {COUNTERS_MAP}"), source })?;
        if batched.is_none() {
            entries = self.counters.keys().count();
        }
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
        for verdict in [tracer_common::maps::verdict::PASSED, tracer_common::maps::verdict::BLOCKED]
        {
            let key = TrafficKey { mac, country, verdict, reserved: 0 };
            if let Ok(values) = self.counters.get(&key, 0) {
                total += values.iter().flat_map(|v| v.directions).sum();
            }
        }
        total
    }
}

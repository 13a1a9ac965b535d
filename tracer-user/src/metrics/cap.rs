//! The caps on per-device metric series, so that what a scrape returns is bounded by the real
//! devices and not by what a device can forge (a MAC flood fills the traffic map with 16,384
//! entries by default):
//!
//! - at most `max_devices` devices get series of their own; the traffic of every other MAC is
//!   summed per country under `mac="other"`;
//! - at most `max_pairs` (device, country) pairs get series of their own; the pairs of a device
//!   seen after that are summed per device under `country="other"`.
//!
//! The choices are sticky: a device or pair that has a series keeps it for the agent's
//! lifetime, so a series never moves into or out of `other` (which would make counters jump).
//! New devices are admitted in order of preference: devices the agent can name (configuration,
//! DHCP lease, neighbour table) first, then most bytes first.

use std::collections::{BTreeMap, HashSet};

use crate::base::text::OTHER_MAC;
use crate::kernel::{Pair, Traffic};

/// The country id the metrics label `other` (not a country, never written by the programs).
pub const OTHER: u16 = 1021;

/// The caps (0: no cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    /// Devices with series of their own.
    pub max_devices: usize,
    /// (device, country) pairs with series of their own.
    pub max_pairs: usize,
}

/// What [`SeriesCap::fold`] folded in one scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Devices whose traffic is under `mac="other"`.
    pub devices: usize,
    /// Pairs of devices with series whose traffic is under `country="other"`.
    pub pairs: usize,
}

/// The devices and pairs that have series of their own.
#[derive(Debug, Default)]
pub struct SeriesCap {
    devices: HashSet<[u8; 6]>,
    pairs: HashSet<([u8; 6], u16)>,
}

impl SeriesCap {
    /// Folds `traffic` under `caps`; `preferred` says which new devices to admit first.
    pub fn fold(
        &mut self,
        traffic: BTreeMap<Pair, Traffic>,
        caps: Caps,
        preferred: &dyn Fn([u8; 6]) -> bool,
    ) -> (BTreeMap<Pair, Traffic>, Folded) {
        if caps.max_devices > 0 {
            self.admit(&traffic, caps.max_devices, preferred);
        }
        if caps == Caps::default() {
            return (traffic, Folded::default()); // no caps: every pair keeps its series
        }
        let mut folded_devices: HashSet<[u8; 6]> = HashSet::new();
        let mut folded_pairs: HashSet<([u8; 6], u16)> = HashSet::new();
        let mut others: BTreeMap<Pair, Traffic> = BTreeMap::new();
        // In the input's order, so the map is built in bulk rather than by single inserts.
        let mut kept: Vec<(Pair, Traffic)> = Vec::with_capacity(traffic.len());
        for (key, value) in traffic {
            let pair = (key.mac, key.country);
            let target = if caps.max_devices > 0 && !self.devices.contains(&key.mac) {
                folded_devices.insert(key.mac);
                Pair { mac: OTHER_MAC, ..key }
            } else if caps.max_pairs == 0
                || self.pairs.contains(&pair)
                || (self.pairs.len() < caps.max_pairs && self.pairs.insert(pair))
            {
                kept.push((key, value));
                continue;
            } else {
                folded_pairs.insert(pair);
                Pair { country: OTHER, ..key }
            };
            *others.entry(target).or_default() += value;
        }
        let folded = Folded { devices: folded_devices.len(), pairs: folded_pairs.len() };
        let mut kept: BTreeMap<Pair, Traffic> = kept.into_iter().collect();
        for (key, value) in others {
            *kept.entry(key).or_default() += value;
        }
        (kept, folded)
    }

    /// Admits devices not yet admitted, up to `max`: preferred ones first, then most bytes.
    fn admit(
        &mut self,
        traffic: &BTreeMap<Pair, Traffic>,
        max: usize,
        preferred: &dyn Fn([u8; 6]) -> bool,
    ) {
        if self.devices.len() >= max {
            return;
        }
        let mut candidates: Vec<([u8; 6], u64)> = Vec::new();
        for (key, value) in traffic.iter().filter(|(k, _)| !self.devices.contains(&k.mac)) {
            match candidates.last_mut() {
                Some((mac, bytes)) if *mac == key.mac => *bytes += value.bytes(),
                _ => candidates.push((key.mac, value.bytes())),
            }
        }
        candidates.sort_by_cached_key(|(mac, bytes)| (!preferred(*mac), std::cmp::Reverse(*bytes)));
        let room = max - self.devices.len();
        self.devices.extend(candidates.into_iter().take(room).map(|(mac, _)| mac));
    }

    /// Whether `mac` has series of its own under a device cap.
    pub fn has_device(&self, mac: [u8; 6]) -> bool {
        self.devices.contains(&mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracer_common::CounterValue;

    fn key(mac: u8, country: u16) -> Pair {
        Pair { mac: [2, 0, 0, 0, 0, mac], country }
    }

    fn v(n: u64) -> Traffic {
        Traffic { upload: CounterValue { packets: n, bytes: n * 100 }, ..Traffic::default() }
    }

    fn pairs_only(max_pairs: usize) -> Caps {
        Caps { max_devices: 0, max_pairs }
    }

    #[test]
    fn pairs_beyond_the_cap_fold_into_other_and_choices_stick() {
        let mut cap = SeriesCap::default();
        let first = BTreeMap::from([(key(1, 10), v(1)), (key(1, 20), v(2)), (key(2, 10), v(3))]);
        let (out, folded) = cap.fold(first, pairs_only(2), &|_| false);
        assert_eq!(
            out.keys().copied().collect::<Vec<_>>(),
            [key(1, 10), key(1, 20), key(2, OTHER)]
        );
        assert_eq!(folded, Folded { devices: 0, pairs: 1 });
        // A pair that sorts first later still folds: the exported set does not change.
        let second = BTreeMap::from([
            (key(0, 5), v(1)),
            (key(1, 10), v(1)),
            (key(2, 10), v(4)),
            (key(2, 30), v(1)),
        ]);
        let (out, _) = cap.fold(second, pairs_only(2), &|_| false);
        assert_eq!(out[&key(0, OTHER)], v(1));
        assert_eq!(out[&key(2, OTHER)], v(5));
        assert_eq!(out.len(), 3);
        let (out, _) = cap.fold(BTreeMap::from([(key(9, 9), v(1))]), Caps::default(), &|_| false);
        assert_eq!(out.len(), 1, "0: no cap");
    }

    #[test]
    fn devices_beyond_the_cap_fold_into_mac_other_per_country_named_and_busy_ones_first() {
        let mut cap = SeriesCap::default();
        let caps = Caps { max_devices: 2, max_pairs: 0 };
        let counters = BTreeMap::from([
            (key(1, 10), v(1)),
            (key(2, 10), v(9)),
            (key(3, 10), v(5)),
            (key(3, 20), v(1)),
            (key(4, 20), v(2)),
        ]);
        let total = |t: &BTreeMap<Pair, Traffic>| t.values().map(Traffic::bytes).sum::<u64>();
        let before = total(&counters);
        // Device 4 is named; of the rest, device 2 has the most bytes.
        let (out, folded) = cap.fold(counters, caps, &|mac| mac[5] == 4);
        let other = |country| Pair { mac: OTHER_MAC, ..key(0, country) };
        assert_eq!(
            out.keys().copied().collect::<Vec<_>>(),
            [key(2, 10), key(4, 20), other(10), other(20)]
        );
        assert_eq!(out[&other(10)], v(6), "devices 1 and 3 to country 10");
        assert_eq!(out[&other(20)], v(1));
        assert_eq!(folded, Folded { devices: 2, pairs: 0 });
        assert_eq!(total(&out), before, "nothing lost");
        assert!(cap.has_device([2, 0, 0, 0, 0, 2]) && !cap.has_device([2, 0, 0, 0, 0, 3]));
        // Sticky: a busier device later does not displace an admitted one.
        let (out, _) = cap.fold(BTreeMap::from([(key(7, 10), v(99))]), caps, &|_| true);
        assert_eq!(out.keys().copied().collect::<Vec<_>>(), [other(10)]);
    }
}

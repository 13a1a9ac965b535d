//! The cap on per-device metric series: at most N (device, country) pairs get series of their
//! own; pairs seen after the cap is reached are summed per device under `country="other"`.
//!
//! The choice is sticky: a pair that has a series keeps it for the agent's lifetime, so a
//! series never moves into or out of `other` (which would make counters jump).

use std::collections::{BTreeMap, HashSet};

use tracer_common::{CounterKey, CounterValue};

/// The country id the metrics label `other` (not a country, never written by the programs).
pub const OTHER: u16 = 1021;

/// The pairs that have series of their own.
#[derive(Debug, Default)]
pub struct SeriesCap {
    exported: HashSet<([u8; 6], u16)>,
}

impl SeriesCap {
    /// Folds `counters` under a cap of `max_pairs` (0: no cap): pairs without a series of their
    /// own are summed into `(mac, OTHER, direction, verdict)`.
    pub fn fold(
        &mut self,
        counters: BTreeMap<CounterKey, CounterValue>,
        max_pairs: usize,
    ) -> BTreeMap<CounterKey, CounterValue> {
        if max_pairs == 0 {
            return counters;
        }
        let mut others: BTreeMap<CounterKey, CounterValue> = BTreeMap::new();
        let mut kept = BTreeMap::new();
        for (key, value) in counters {
            let pair = (key.mac, key.country);
            if self.exported.contains(&pair)
                || (self.exported.len() < max_pairs && self.exported.insert(pair))
            {
                kept.insert(key, value);
            } else {
                let slot = others.entry(CounterKey { country: OTHER, ..key }).or_default();
                slot.packets += value.packets;
                slot.bytes += value.bytes;
            }
        }
        kept.extend(others);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mac: u8, country: u16) -> CounterKey {
        CounterKey { mac: [2, 0, 0, 0, 0, mac], country, direction: 0, verdict: 0 }
    }

    #[test]
    fn pairs_beyond_the_cap_fold_into_other_and_choices_stick() {
        let mut cap = SeriesCap::default();
        let v = |n| CounterValue { packets: n, bytes: n * 100 };
        let first = BTreeMap::from([(key(1, 10), v(1)), (key(1, 20), v(2)), (key(2, 10), v(3))]);
        let out = cap.fold(first, 2);
        assert_eq!(
            out.keys().copied().collect::<Vec<_>>(),
            [key(1, 10), key(1, 20), key(2, OTHER)]
        );
        // A pair that sorts first later still folds: the exported set does not change.
        let second = BTreeMap::from([
            (key(0, 5), v(1)),
            (key(1, 10), v(1)),
            (key(2, 10), v(4)),
            (key(2, 30), v(1)),
        ]);
        let out = cap.fold(second, 2);
        assert_eq!(out[&key(0, OTHER)], v(1));
        assert_eq!(out[&key(2, OTHER)], v(5));
        assert_eq!(out.len(), 3);
        assert_eq!(cap.fold(BTreeMap::from([(key(9, 9), v(1))]), 0).len(), 1, "0: no cap");
    }
}

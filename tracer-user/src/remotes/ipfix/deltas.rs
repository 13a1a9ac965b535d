//! Cumulative totals to per-export deltas.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Direction, FlowRecord};

/// What identifies a counter: the device's MAC, the remote address, the direction.
type Key = ([u8; 6], IpAddr, Direction);

/// Turns cumulative per-(MAC, remote, direction) byte and packet totals into the deltas since
/// the previous export, for octetDeltaCount and packetDeltaCount.
///
/// It remembers only the totals of the latest [`Deltas::update`] call, so its memory is bounded
/// by the size of one export: a key missing from a call is forgotten, and if it comes back its
/// whole total is exported as the delta. A counter that went down (the kernel map entry was
/// evicted and recreated, or the agent restarted it) is taken as a reset: its new value is the
/// delta.
#[derive(Debug, Clone, Default)]
pub struct Deltas {
    last: HashMap<Key, (u64, u64)>,
}

impl Deltas {
    /// An empty memory: the first update exports every total in full.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys remembered from the latest update.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Takes records whose `octets` and `packets` are cumulative totals and returns them with
    /// the deltas since the previous update instead, in input order, leaving out those with
    /// nothing new (both deltas 0). The other fields, times included, are passed through as
    /// given.
    ///
    /// The totals replace the remembered ones: keys not in `totals` are forgotten. A key should
    /// appear once per call; a repeat is ignored.
    pub fn update(&mut self, totals: &[FlowRecord]) -> Vec<FlowRecord> {
        let mut next = HashMap::with_capacity(totals.len());
        let mut out = Vec::with_capacity(totals.len());
        for record in totals {
            let key = (record.mac, record.remote, record.direction);
            if next.contains_key(&key) {
                continue;
            }
            let now = (record.octets, record.packets);
            next.insert(key, now);
            let (octets, packets) = match self.last.get(&key) {
                Some(&(o, p)) if o <= now.0 && p <= now.1 => (now.0 - o, now.1 - p),
                _ => now,
            };
            if octets != 0 || packets != 0 {
                out.push(FlowRecord { octets, packets, ..*record });
            }
        }
        self.last = next;
        out
    }
}

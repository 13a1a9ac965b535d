//! Adds a frame to exactly one counter, after the policy has had its say.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};
use tracer_common::{
    CounterValue, CountryId, Direction, Stat, TrafficKey, TrafficValue, maps::verdict,
    policy::Action,
};

use crate::{
    classify::country_of,
    maps::{COUNTERS, STATS},
    parse::{Parsed, parse},
    policy::{self, Violation},
};

const EEXIST: i32 = 17;

/// Parses, classifies and counts one frame; returns the TC verdict (`TC_ACT_SHOT` only for
/// packets a `block` policy drops).
#[inline(always)]
pub fn account(ctx: &TcContext, direction: Direction) -> i32 {
    // SAFETY: reading a field of the context the kernel handed us.
    let segs = unsafe { (*ctx.skb.skb).gso_segs };
    let value =
        CounterValue { packets: if segs > 1 { segs as u64 } else { 1 }, bytes: ctx.len() as u64 };
    match parse(ctx, direction) {
        Parsed::Ip { mac, remote, transport } => {
            let country = country_of(&remote);
            if country == CountryId::LOCAL {
                add_stat(Stat::Local, direction, &value);
                return TC_ACT_OK;
            }
            let mut action = Action::Allow;
            if let Some(settings) = policy::settings() {
                action = policy::action(settings, &mac, country);
                if action != Action::Allow {
                    let violation = Violation {
                        ctx,
                        mac,
                        remote: &remote,
                        transport,
                        country,
                        direction,
                        action,
                    };
                    policy::report(&violation, settings);
                }
            }
            let blocked = action == Action::Block;
            let key = TrafficKey {
                mac,
                country: country.0,
                verdict: if blocked { verdict::BLOCKED } else { verdict::PASSED },
                reserved: 0,
            };
            add_counter(&key, direction, &value);
            return if blocked { TC_ACT_SHOT } else { TC_ACT_OK };
        }
        Parsed::Other => add_stat(Stat::Other, direction, &value),
        Parsed::Malformed => add_stat(Stat::Malformed, direction, &value),
    }
    TC_ACT_OK
}

/// Adds one packet of no size to a stat (events suppressed).
#[inline(always)]
pub fn add_stat_packet(stat: Stat, direction: Direction) {
    add_stat(stat, direction, &CounterValue { packets: 1, bytes: 0 });
}

#[inline(always)]
fn add(slot: *mut CounterValue, value: &CounterValue) {
    // SAFETY: `slot` is a map value of this CPU; per-CPU maps need no atomics.
    unsafe {
        (*slot).packets += value.packets;
        (*slot).bytes += value.bytes;
    }
}

#[inline(always)]
fn add_stat(stat: Stat, direction: Direction, value: &CounterValue) {
    if let Some(slot) = STATS.get_ptr_mut(stat.index(direction)) {
        add(slot, value);
    }
}

#[inline(always)]
fn add_counter(key: &TrafficKey, direction: Direction, value: &CounterValue) {
    let d = direction as usize & 1;
    if let Some(slot) = COUNTERS.get_ptr_mut(key) {
        // SAFETY: `slot` is this CPU's value of the entry.
        add(unsafe { &raw mut (*slot).directions[d] }, value);
        return;
    }
    let mut fresh = TrafficValue::default();
    fresh.directions[d] = *value;
    match COUNTERS.insert(key, fresh, BPF_NOEXIST as u64) {
        Ok(()) => {}
        // Another CPU created the entry between our lookup and insert.
        Err(e) if e == -EEXIST => match COUNTERS.get_ptr_mut(key) {
            // SAFETY: as above.
            Some(slot) => add(unsafe { &raw mut (*slot).directions[d] }, value),
            None => add_stat(Stat::Overflow, direction, value),
        },
        Err(_) => add_stat(Stat::Overflow, direction, value),
    }
}

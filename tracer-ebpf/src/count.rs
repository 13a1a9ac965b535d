//! Adds a frame to exactly one counter, after the policy has had its say.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
    helpers::bpf_ktime_get_coarse_ns,
    programs::TcContext,
};
use tracer_common::{
    CounterValue, CountryId, Direction, Stat, TrafficKey, TrafficValue,
    capture::TLS_SEGMENTS,
    maps::verdict,
    policy::Action,
    remotes::{RemoteKey, RemoteValue, SpillKey, SpillValue, spill, traffic_index},
};

use crate::{
    capture::{self, Captured},
    classify::country_of,
    maps::{COUNTERS, MACS, REMOTE_SCRATCH, REMOTE_SPILL, REMOTES, SETTINGS, STATS},
    parse::{Parsed, Remote, Transport, parse, remote_port},
    policy::{self, Reported, Violation},
};

const EEXIST: i32 = 17;

/// Parses, classifies and counts one frame; returns the TC verdict (`TC_ACT_SHOT` only for
/// packets a `block` policy drops).
#[inline(always)]
pub(crate) fn account(ctx: &TcContext, direction: Direction) -> i32 {
    // SAFETY: reading a field of the context the kernel handed us.
    let segs = unsafe { (*ctx.skb.skb).gso_segs };
    let value =
        CounterValue { packets: if segs > 1 { segs as u64 } else { 1 }, bytes: ctx.len() as u64 };
    match parse(ctx, direction) {
        Parsed::Ip { mac, remote, transport } => {
            // The agent's run-time settings, read once per packet.
            let settings = SETTINGS.get(0);
            // Before the local shortcut: the gateway's own resolver answers from a LAN address.
            if direction == Direction::Download
                && capture::dns_answer(ctx, &mac, &remote, transport) == Captured::Suppressed
            {
                add_stat(Stat::CapturesSuppressed, direction, &EVENT);
            }
            let country = country_of(&remote, settings);
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
                    if policy::report(&violation, settings) == Reported::Suppressed {
                        add_stat(Stat::EventsSuppressed, direction, &EVENT);
                    }
                }
            }
            let blocked = action == Action::Block;
            let key = TrafficKey {
                mac,
                country: country.0,
                verdict: if blocked { verdict::BLOCKED } else { verdict::PASSED },
                reserved: 0,
            };
            let counted = add_counter(&key, direction, &value);
            // Off the hot path: only a packet that found no (device, country) entry asks
            // whether its MAC is new.
            if direction == Direction::Upload && counted != Counted::Existing {
                note_mac(&mac);
            }
            if counted == Counted::Created {
                let pair =
                    Violation { ctx, mac, remote: &remote, transport, country, direction, action };
                if policy::new_pair(&pair) == Reported::Suppressed {
                    add_stat(Stat::EventsSuppressed, direction, &EVENT);
                }
            }
            let remotes = matches!(settings, Some(s) if s.remotes != 0);
            if remotes && counted != Counted::Overflow {
                // Computed here, where the direction is the program's constant.
                let index = traffic_index(key.verdict, direction as u8);
                let packet = Packet { ctx, transport, direction, index, value };
                if add_remote(&mac, &remote, country, &packet) {
                    match capture::tls_segment(ctx, &mac, &remote, transport) {
                        Captured::Sent => tls_captured(&mac, &remote),
                        Captured::Suppressed => {
                            add_stat(Stat::CapturesSuppressed, direction, &EVENT)
                        }
                        Captured::No => {}
                    }
                }
            }
            return if blocked { TC_ACT_SHOT } else { TC_ACT_OK };
        }
        Parsed::Other => add_stat(Stat::Other, direction, &value),
        Parsed::Malformed => add_stat(Stat::Malformed, direction, &value),
    }
    TC_ACT_OK
}

/// One event (a packet of no size), for [`Stat::EventsSuppressed`].
const EVENT: CounterValue = CounterValue { packets: 1, bytes: 0 };

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

/// Where [`add_counter`] put a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// In the (device, country, verdict) entry, which existed.
    Existing,
    /// In a new entry: the first packet of that (device, country, verdict).
    Created,
    /// In [`Stat::Overflow`]: the map is full.
    Overflow,
}

/// Adds the packet to its (device, country, verdict) entry, or to [`Stat::Overflow`] when the
/// map is full.
#[inline(always)]
fn add_counter(key: &TrafficKey, direction: Direction, value: &CounterValue) -> Counted {
    let d = direction as usize & 1;
    if let Some(slot) = COUNTERS.get_ptr_mut(key) {
        // SAFETY: `slot` is this CPU's value of the entry.
        add(unsafe { &raw mut (*slot).directions[d] }, value);
        return Counted::Existing;
    }
    let mut fresh = TrafficValue::default();
    fresh.directions[d] = *value;
    match COUNTERS.insert(key, fresh, BPF_NOEXIST as u64) {
        Ok(()) => return Counted::Created,
        // Another CPU created the entry between our lookup and insert.
        Err(e) if e == -EEXIST => {
            if let Some(slot) = COUNTERS.get_ptr_mut(key) {
                // SAFETY: as above.
                add(unsafe { &raw mut (*slot).directions[d] }, value);
                return Counted::Existing;
            }
        }
        Err(_) => {}
    }
    add_stat(Stat::Overflow, direction, value);
    Counted::Overflow
}

/// Counts `mac` in [`Stat::NewMac`] unless [`MACS`] remembers it.
#[inline(never)]
fn note_mac(mac: &[u8; 6]) {
    // Only the entry's presence matters: its value is never read.
    if MACS.get_ptr(mac).is_some() {
        return;
    }
    // BPF_NOEXIST: of two CPUs inserting the same new MAC, one counts it.
    if MACS.insert(mac, 0u8, BPF_NOEXIST as u64).is_ok() {
        add_stat(Stat::NewMac, Direction::Upload, &EVENT);
    }
}

/// A counted packet, as the remote table needs it.
struct Packet<'a> {
    ctx: &'a TcContext,
    transport: Transport,
    direction: Direction,
    /// `traffic_index(verdict, direction)`: below 4.
    index: usize,
    value: CounterValue,
}

/// Adds a packet already counted per (device, country) to exactly one remote place: the
/// (device, address) entry, else the device's overflow entry, else [`Stat::RemoteOverflow`].
/// Returns whether the packet may carry a TLS ClientHello worth capturing (an upload to TCP
/// 443 or 853 of a remote this CPU has captured fewer than `TLS_SEGMENTS` segments of).
/// A function of its own (a BPF subprogram): its stack is not added to the policy path's.
#[inline(never)]
fn add_remote(mac: &[u8; 6], remote: &Remote, country: CountryId, p: &Packet<'_>) -> bool {
    let (family, addr) = remote.family_and_bytes();
    let key = RemoteKey { addr, mac: *mac, family, reserved: 0 };
    // A subprogram's argument: the verifier needs the bound checked here.
    let index = p.index;
    if index > 3 {
        return false;
    }
    // The coarse clock (CLOCK_MONOTONIC at tick resolution) is enough for first and last seen,
    // and far cheaper than reading the clock source on every packet.
    // SAFETY: the kernel's clock helper has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if let Some(slot) = REMOTES.get_ptr_mut(key) {
        return seen(slot, index, now, p);
    }
    // The new value is built in a per-CPU scratch slot, not on the stack (the verifier's 512
    // bytes are shared by the whole call chain).
    let Some(fresh) = REMOTE_SCRATCH.get_ptr_mut(0) else {
        add_spill(mac, index, p);
        return false;
    };
    let port = remote_port(p.ctx, p.transport, p.direction);
    // SAFETY: this CPU's scratch slot; nothing else runs on this CPU meanwhile.
    let fresh = unsafe {
        *fresh = RemoteValue {
            first_seen_ns: now,
            last_seen_ns: now,
            country: country.0,
            port,
            protocol: p.transport.protocol,
            direction: p.direction as u8,
            ..RemoteValue::default()
        };
        (*fresh).traffic[index] = p.value;
        &*fresh
    };
    match REMOTES.insert(key, fresh, BPF_NOEXIST as u64) {
        Ok(()) => return tls_port(p, port, 0),
        Err(e) if e == -EEXIST => {
            if let Some(slot) = REMOTES.get_ptr_mut(key) {
                return seen(slot, index, now, p);
            }
        }
        Err(_) => {}
    }
    add_spill(mac, index, p);
    false
}

/// Whether an upload to `port` may be a TLS ClientHello still to capture.
#[inline(always)]
fn tls_port(p: &Packet<'_>, port: u16, captures: u8) -> bool {
    const TCP: u8 = 6;
    p.direction == Direction::Upload
        && p.transport.protocol == TCP
        && (port == 443 || port == 853)
        && captures < TLS_SEGMENTS
}

/// Counts a captured TLS segment in this CPU's slot of the remote entry.
#[inline(never)]
fn tls_captured(mac: &[u8; 6], remote: &Remote) {
    let (family, addr) = remote.family_and_bytes();
    let key = RemoteKey { addr, mac: *mac, family, reserved: 0 };
    if let Some(slot) = REMOTES.get_ptr_mut(key) {
        // SAFETY: this CPU's value of the entry.
        unsafe { (*slot).captures = (*slot).captures.saturating_add(1) };
    }
}

/// Adds the packet to this CPU's slot of an existing remote entry (whose other CPUs may have
/// created it: a zero `first_seen_ns` means this CPU's first packet); says whether it may be a
/// TLS ClientHello to capture.
#[inline(always)]
fn seen(slot: *mut RemoteValue, index: usize, now: u64, p: &Packet<'_>) -> bool {
    // SAFETY: `slot` is this CPU's value of the entry; per-CPU maps need no atomics.
    unsafe {
        add(&raw mut (*slot).traffic[index], &p.value);
        if (*slot).first_seen_ns == 0 {
            (*slot).first_seen_ns = now;
            (*slot).port = remote_port(p.ctx, p.transport, p.direction);
            (*slot).protocol = p.transport.protocol;
            (*slot).direction = p.direction as u8;
        }
        (*slot).last_seen_ns = now;
        tls_port(p, (*slot).port, (*slot).captures)
    }
}

/// The remote table is full: the device's overflow entry, else [`Stat::RemoteOverflow`].
#[inline(always)]
fn add_spill(mac: &[u8; 6], index: usize, p: &Packet<'_>) {
    let key = SpillKey { mac: *mac, kind: spill::OVERFLOW, reserved: 0 };
    if let Some(slot) = REMOTE_SPILL.get_ptr_mut(key) {
        // SAFETY: this CPU's value of the entry.
        add(unsafe { &raw mut (*slot).traffic[index] }, &p.value);
        return;
    }
    let mut fresh = SpillValue::default();
    fresh.traffic[index] = p.value;
    match REMOTE_SPILL.insert(key, fresh, BPF_NOEXIST as u64) {
        Ok(()) => return,
        Err(e) if e == -EEXIST => {
            if let Some(slot) = REMOTE_SPILL.get_ptr_mut(key) {
                // SAFETY: as above.
                add(unsafe { &raw mut (*slot).traffic[index] }, &p.value);
                return;
            }
        }
        Err(_) => {}
    }
    add_stat(Stat::RemoteOverflow, p.direction, &p.value);
}

//! Adds a frame to exactly one counter, after the policy has had its say.

use aya_ebpf::{
    bindings::{__sk_buff, BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
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

use core::mem::MaybeUninit;

use crate::{
    capture::{self, Captured},
    classify::country_of,
    maps::{COUNTERS, MACS, REMOTE_SCRATCH, REMOTE_SPILL, REMOTES, SETTINGS, STATS},
    parse::{Parsed, Remote, Transport, parse, remote_port},
    policy::{self, Reported, Violation},
    zeroed::{zero, zeroed_in},
};

const EEXIST: i32 = 17;

/// Parses, classifies and counts one frame; returns the TC verdict (`TC_ACT_SHOT` only for
/// packets a `block` policy drops).
///
/// An IP packet is counted by a BPF global function ([`account_upload`], [`account_download`])
/// that gets what the parse found packed into scalars: the verifier checks it once, whatever
/// the parse did. Inlined, it was walked again for every distinct outcome of the parse (each
/// VLAN depth, family and header length is a state of its own), and 6.1's verifier gave up
/// after a million instructions.
#[inline(always)]
pub(crate) fn account(ctx: &TcContext, direction: Direction) -> i32 {
    match parse(ctx, direction) {
        Parsed::Ip { mac, remote, transport } => {
            let [w0, w1, w2, w3] = Packed::pack(&mac, &remote, transport);
            match direction {
                Direction::Upload => account_upload(ctx.skb.skb, w0, w1, w2, w3),
                Direction::Download => account_download(ctx.skb.skb, w0, w1, w2, w3),
            }
        }
        Parsed::Other => {
            add_stat(Stat::Other, direction, &packet_value(ctx));
            TC_ACT_OK
        }
        Parsed::Malformed => {
            add_stat(Stat::Malformed, direction, &packet_value(ctx));
            TC_ACT_OK
        }
    }
}

/// The packets (GSO segments) and bytes a frame adds to a counter.
#[inline(always)]
fn packet_value(ctx: &TcContext) -> CounterValue {
    // SAFETY: reading a field of the context the kernel handed us.
    let segs = unsafe { (*ctx.skb.skb).gso_segs };
    CounterValue { packets: if segs > 1 { segs as u64 } else { 1 }, bytes: ctx.len() as u64 }
}

/// What [`parse`] found about an IP packet, as the four scalars a global function can take
/// (with the context, its fifth argument).
struct Packed;

/// Bit of the first word that says the address is IPv6.
const PACKED_V6: u64 = 1 << 56;
/// Largest transport offset the packed form keeps: more than any parse produces (Ethernet, two
/// VLAN tags and 60 bytes of IPv4 header are 82), and a bound the verifier needs for packet
/// pointers.
const PACKED_OFFSET_MASK: u64 = 0xfff;

impl Packed {
    /// `[mac | protocol << 48 | family bit, high address bits, low address bits, transport
    /// offset | end << 32]`; an IPv4 address is the low 32 bits of the second word.
    #[inline(always)]
    fn pack(mac: &[u8; 6], remote: &Remote, t: Transport) -> [u64; 4] {
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(mac);
        let mut w0 = u64::from_be_bytes(m) | u64::from(t.protocol) << 48;
        let (w1, w2) = match remote {
            Remote::V4(a) => (u64::from(u32::from_be_bytes(*a)), 0),
            Remote::V6(a) => {
                w0 |= PACKED_V6;
                let (hi, lo) = a.split_at(8);
                (
                    u64::from_be_bytes(hi.try_into().unwrap_or_default()),
                    u64::from_be_bytes(lo.try_into().unwrap_or_default()),
                )
            }
        };
        let w3 = (t.offset as u64 & PACKED_OFFSET_MASK) | (t.end as u64) << 32;
        [w0, w1, w2, w3]
    }

    /// The inverse of [`Packed::pack`].
    #[inline(always)]
    fn unpack(w0: u64, w1: u64, w2: u64, w3: u64) -> ([u8; 6], Remote, Transport) {
        let m = w0.to_be_bytes();
        let mac = [m[2], m[3], m[4], m[5], m[6], m[7]];
        let remote = if w0 & PACKED_V6 != 0 {
            // Two word stores (big-endian: the bytes in address order), not sixteen bytes
            // shifted out one at a time: the verifier walks a third fewer instructions (6.1:
            // tc_upload 55,941 -> 36,740).
            // SAFETY: `[u64; 2]` and `[u8; 16]` have the same size, and any bits are valid.
            Remote::V6(unsafe {
                core::mem::transmute::<[u64; 2], [u8; 16]>([w1.to_be(), w2.to_be()])
            })
        } else {
            Remote::V4((w1 as u32).to_be_bytes())
        };
        let transport = Transport {
            protocol: (w0 >> 48) as u8,
            offset: (w3 & PACKED_OFFSET_MASK) as usize,
            end: (w3 >> 32) as usize,
        };
        (mac, remote, transport)
    }
}

/// [`account_ip`] for `tc_upload`: a BPF global function (see [`account`]).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn account_upload(skb: *mut __sk_buff, w0: u64, w1: u64, w2: u64, w3: u64) -> i32 {
    let (mac, remote, transport) = Packed::unpack(w0, w1, w2, w3);
    account_ip(&TcContext::new(skb), Direction::Upload, mac, &remote, transport)
}

/// [`account_ip`] for `tc_download`: a BPF global function (see [`account`]).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn account_download(skb: *mut __sk_buff, w0: u64, w1: u64, w2: u64, w3: u64) -> i32 {
    let (mac, remote, transport) = Packed::unpack(w0, w1, w2, w3);
    account_ip(&TcContext::new(skb), Direction::Download, mac, &remote, transport)
}

/// Classifies and counts an IP packet of the device `mac` with the remote `remote`.
#[inline(always)]
fn account_ip(
    ctx: &TcContext,
    direction: Direction,
    mac: [u8; 6],
    remote: &Remote,
    transport: Transport,
) -> i32 {
    let value = packet_value(ctx);
    // The agent's run-time settings, read once per packet.
    let settings = SETTINGS.get(0);
    // Before the local shortcut: the gateway's own resolver answers from a LAN address.
    if direction == Direction::Download
        && capture::dns_answer(ctx, &mac, remote, transport) == Captured::Suppressed
    {
        add_stat(Stat::CapturesSuppressed, direction, &EVENT);
    }
    let country = country_of(remote, settings);
    if country == CountryId::LOCAL {
        add_stat(Stat::Local, direction, &value);
        return TC_ACT_OK;
    }
    let mut action = Action::Allow;
    if let Some(settings) = policy::settings() {
        action = policy::action(settings, &mac, country);
        if action != Action::Allow {
            let violation = Violation { ctx, mac, remote, transport, country, direction, action };
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
    // Off the hot path: only a packet that found no (device, country) entry asks whether its
    // MAC is new.
    if direction == Direction::Upload && counted != Counted::Existing {
        note_mac(&mac);
    }
    if counted == Counted::Created {
        let pair = Violation { ctx, mac, remote, transport, country, direction, action };
        if policy::new_pair(&pair) == Reported::Suppressed {
            add_stat(Stat::EventsSuppressed, direction, &EVENT);
        }
    }
    let remotes = matches!(settings, Some(s) if s.remotes != 0);
    if remotes && counted != Counted::Overflow {
        // Computed here, where the direction is the program's constant.
        let index = traffic_index(key.verdict, direction as u8);
        let packet = Packet { ctx, transport, direction, index, value };
        if add_remote(&mac, remote, country, &packet) {
            match capture::tls_segment(ctx, &mac, remote, transport) {
                Captured::Sent => tls_captured(&mac, remote),
                Captured::Suppressed => add_stat(Stat::CapturesSuppressed, direction, &EVENT),
                Captured::No => {}
            }
        }
    }
    if blocked { TC_ACT_SHOT } else { TC_ACT_OK }
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
    let mut slot = MaybeUninit::uninit();
    let fresh: &mut TrafficValue = zeroed_in(&mut slot);
    fresh.directions[d] = *value;
    // Passed as the reference it is (a by-value argument would copy it to the stack again).
    let fresh: &TrafficValue = fresh;
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
        zero(fresh);
        (*fresh).first_seen_ns = now;
        (*fresh).last_seen_ns = now;
        (*fresh).country = country.0;
        (*fresh).port = port;
        (*fresh).protocol = p.transport.protocol;
        (*fresh).direction = p.direction as u8;
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
    let mut slot = MaybeUninit::uninit();
    let fresh: &mut SpillValue = zeroed_in(&mut slot);
    fresh.traffic[index] = p.value;
    let fresh: &SpillValue = fresh;
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

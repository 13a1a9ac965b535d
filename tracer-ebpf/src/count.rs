//! Adds a frame to exactly one counter, after the policy has had its say.

use aya_ebpf::{
    bindings::{BPF_NOEXIST, TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_coarse_ns},
    programs::TcContext,
};
use tracer_common::{
    CounterValue, CountryId, Direction, Stat, TrafficKey, TrafficValue,
    capture::TLS_SEGMENTS,
    maps::Settings,
    maps::verdict,
    policy::Action,
    remotes::{
        BENCH_SLOT_BITS, PROBES, RemoteKey, RemoteSlot, SpillKey, SpillValue, slot_hash,
        slot_state, spill, traffic_index,
    },
};

use core::mem::MaybeUninit;

use crate::{
    capture::{self, Captured},
    classify::country_of,
    maps::{BENCH_SLOTS, COUNTERS, MACS, REMOTE_SPILL, REMOTES, SETTINGS, STATS},
    parse::{Address, Parsed, Remote, Transport, parse, remote_port},
    policy::{self, Reported, Violation},
    zeroed::{zero, zeroed_in},
};

const EEXIST: i32 = 17;

/// Parses, classifies and counts one frame; returns the TC verdict (`TC_ACT_SHOT` only for
/// packets a `block` policy drops).
///
/// An IP packet is counted by a BPF global function ([`account_upload`], [`account_download`])
/// that gets what the parse found packed into five scalars: the verifier checks it once,
/// whatever the parse did. Inlined, it was walked again for every distinct outcome of the
/// parse (each VLAN depth, family and header length is a state of its own), and 6.1's verifier
/// gave up after a million instructions.
///
/// The global functions do not take the context: whether an argument is the context is
/// decided from the kernel's own BTF (`struct bpf_ctx_convert`), which kernels built without
/// BTF (most OpenWrt images) lack and Debian's 32-bit kernels carry broken ("btf_vmlinux is
/// malformed", then "R1 type=ctx expected=fp"). What needs the packet itself (its length, the
/// remote port, the DNS and TLS payload copies) is done here, around the call.
#[inline(always)]
pub(crate) fn account(ctx: &TcContext, direction: Direction) -> i32 {
    match parse(ctx, direction) {
        Parsed::Ip { mac, remote, transport } => {
            let port = remote_port(ctx, transport, direction);
            let [w0, w1, w2, w3, w4] =
                Packed::pack(&mac, &remote, transport, port, &packet_value(ctx));
            // Before the local shortcut: the gateway's own resolver answers from a LAN address.
            if direction == Direction::Download {
                dns_capture(ctx, w0, w1, w2, w3);
            }
            let outcome = match direction {
                Direction::Upload => account_upload(w0, w1, w2, w3, w4),
                Direction::Download => account_download(w0, w1, w2, w3, w4),
            };
            if outcome & OUTCOME_TLS != 0 {
                tls_capture(ctx, w0, w1, w2, w3);
            }
            if outcome & OUTCOME_SHOT != 0 { TC_ACT_SHOT } else { TC_ACT_OK }
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

/// The bench's floor (`tc_floor`): the parse and one per-CPU hash update keyed by the device,
/// which any counting per device needs; no country, policy or remote.
#[inline(always)]
pub(crate) fn floor(ctx: &TcContext) -> i32 {
    if let Parsed::Ip { mac, .. } = parse(ctx, Direction::Upload) {
        let key = TrafficKey {
            mac,
            country: CountryId::UNKNOWN.0,
            verdict: verdict::PASSED,
            reserved: 0,
        };
        add_counter(&key, Direction::Upload, &packet_value(ctx));
    }
    TC_ACT_OK
}

/// The bench's `tc_floor_slot`: [`floor`], and the packet counted in one slot of a flat array
/// found by hashing (device, remote address), key, counters and last seen in one cache line,
/// taken over when it holds another key. What an open-addressed table of remotes would cost
/// at its first probe; nothing counts on these slots.
#[inline(always)]
pub(crate) fn floor_slot(ctx: &TcContext) -> i32 {
    if let Parsed::Ip { mac, remote, .. } = parse(ctx, Direction::Upload) {
        let key = TrafficKey {
            mac,
            country: CountryId::UNKNOWN.0,
            verdict: verdict::PASSED,
            reserved: 0,
        };
        let value = packet_value(ctx);
        add_counter(&key, Direction::Upload, &value);
        let a = Address::of(&remote);
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(&mac);
        let words = [a.hi, a.lo, u64::from_be_bytes(m) | u64::from(a.family()) << 56];
        let hash = (words[0] ^ words[1].rotate_left(32) ^ words[2])
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            >> (64 - BENCH_SLOT_BITS);
        // SAFETY: the helpers have no preconditions.
        let (cpu, now) = unsafe { (bpf_get_smp_processor_id(), bpf_ktime_get_coarse_ns()) };
        let index = (cpu << BENCH_SLOT_BITS) | hash as u32;
        if let Some(slot) = BENCH_SLOTS.get_ptr_mut(index) {
            // SAFETY: this CPU's part of the array; nothing else runs on this CPU meanwhile.
            unsafe {
                let k = (*slot).key;
                // Word by word: an array comparison may become a `bcmp` call, which BPF lacks.
                if k[0] != words[0] || k[1] != words[1] || k[2] != words[2] {
                    (*slot).key = words;
                    (*slot).traffic = [CounterValue { packets: 0, bytes: 0 }; 2];
                }
                add(&raw mut (*slot).traffic[0], &value);
                (*slot).last_seen_ns = now;
            }
        }
    }
    TC_ACT_OK
}

/// Bit of [`account_ip`]'s outcome: drop the packet (a `block` policy).
const OUTCOME_SHOT: u32 = 1;
/// Bit of [`account_ip`]'s outcome: the packet may carry a TLS ClientHello worth capturing.
const OUTCOME_TLS: u32 = 2;

/// The packets (GSO segments) and bytes a frame adds to a counter.
#[inline(always)]
fn packet_value(ctx: &TcContext) -> CounterValue {
    // SAFETY: reading a field of the context the kernel handed us.
    let segs = unsafe { (*ctx.skb.skb).gso_segs };
    CounterValue { packets: if segs > 1 { segs as u64 } else { 1 }, bytes: ctx.len() as u64 }
}

/// Hands a DNS message travelling to the device to the agent (see [`capture::dns_answer`]).
/// A subprogram of its own, taking the packed words: the parse's state is not kept on the
/// stack around the counting call, and its stack is not added to the counting path's.
#[inline(never)]
fn dns_capture(ctx: &TcContext, w0: u64, w1: u64, w2: u64, w3: u64) {
    let (p, transport) = Packed::unpack_with_transport(Direction::Download, w0, w1, w2, w3);
    if capture::dns_answer(ctx, &p.mac, &p.remote, transport) == Captured::Suppressed {
        add_stat(Stat::CapturesSuppressed, Direction::Download, &EVENT);
    }
}

/// Hands a TCP segment that may carry a TLS ClientHello to the agent (see
/// [`capture::tls_segment`]) and counts it in the remote's entry. A subprogram, as
/// [`dns_capture`].
#[inline(never)]
fn tls_capture(ctx: &TcContext, w0: u64, w1: u64, w2: u64, w3: u64) {
    let (p, transport) = Packed::unpack_with_transport(Direction::Upload, w0, w1, w2, w3);
    match capture::tls_segment(ctx, &p.mac, &p.remote, transport) {
        Captured::Sent => tls_captured(&p),
        Captured::Suppressed => add_stat(Stat::CapturesSuppressed, Direction::Upload, &EVENT),
        Captured::No => {}
    }
}

/// An IP packet as the counting needs it: what [`Packed`] carries.
pub(crate) struct Packet {
    /// The LAN device.
    pub(crate) mac: [u8; 6],
    /// IP protocol number.
    pub(crate) protocol: u8,
    /// Which way it goes.
    pub(crate) direction: Direction,
    /// The remote's TCP, UDP, UDP-Lite or SCTP port (zero for other protocols).
    pub(crate) port: u16,
    /// The remote address.
    pub(crate) remote: Address,
    /// Its packets (GSO segments) and bytes.
    pub(crate) value: CounterValue,
}

/// What [`parse`] found about an IP packet, with the remote port and the packet's size, as the
/// five scalars a global function can take.
struct Packed;

/// Bit of the first word that says the address is IPv6.
const PACKED_V6: u64 = 1 << 56;
/// Largest transport offset the packed form keeps: more than any parse produces (Ethernet, two
/// VLAN tags and 60 bytes of IPv4 header are 82), and a bound the verifier needs for packet
/// pointers.
const PACKED_OFFSET_MASK: u64 = 0xfff;

impl Packed {
    /// `[mac | protocol << 48 | family bit, high address bits, low address bits, remote port |
    /// transport offset << 16 | end << 32, bytes | packets << 32]` (see [`Address`]).
    #[inline(always)]
    fn pack(
        mac: &[u8; 6],
        remote: &Remote,
        t: Transport,
        port: u16,
        value: &CounterValue,
    ) -> [u64; 5] {
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(mac);
        let mut w0 = u64::from_be_bytes(m) | u64::from(t.protocol) << 48;
        let address = Address::of(remote);
        if address.v6 {
            w0 |= PACKED_V6;
        }
        let w3 = u64::from(port)
            | (t.offset as u64 & PACKED_OFFSET_MASK) << 16
            | (t.end as u64 & 0xffff_ffff) << 32;
        // A frame's length is a u32 and its GSO segments a u16: both fit.
        let w4 = (value.bytes & 0xffff_ffff) | value.packets << 32;
        [w0, address.hi, address.lo, w3, w4]
    }

    /// The inverse of [`Packed::pack`].
    #[inline(always)]
    fn unpack(direction: Direction, w0: u64, w1: u64, w2: u64, w3: u64, w4: u64) -> Packet {
        let m = w0.to_be_bytes();
        Packet {
            mac: [m[2], m[3], m[4], m[5], m[6], m[7]],
            protocol: (w0 >> 48) as u8,
            direction,
            port: w3 as u16,
            remote: Address { v6: w0 & PACKED_V6 != 0, hi: w1, lo: w2 },
            value: CounterValue { packets: w4 >> 32, bytes: w4 & 0xffff_ffff },
        }
    }

    /// [`Packed::unpack`] with the transport header's place, for the payload captures.
    #[inline(always)]
    fn unpack_with_transport(
        direction: Direction,
        w0: u64,
        w1: u64,
        w2: u64,
        w3: u64,
    ) -> (Packet, Transport) {
        let p = Packed::unpack(direction, w0, w1, w2, w3, 0);
        let transport = Transport {
            protocol: p.protocol,
            offset: (w3 >> 16 & PACKED_OFFSET_MASK) as usize,
            end: (w3 >> 32) as usize,
        };
        (p, transport)
    }
}

/// [`account_ip`] for `tc_upload`: a BPF global function (see [`account`]).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn account_upload(w0: u64, w1: u64, w2: u64, w3: u64, w4: u64) -> u32 {
    account_ip(&Packed::unpack(Direction::Upload, w0, w1, w2, w3, w4))
}

/// [`account_ip`] for `tc_download`: a BPF global function (see [`account`]).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn account_download(w0: u64, w1: u64, w2: u64, w3: u64, w4: u64) -> u32 {
    account_ip(&Packed::unpack(Direction::Download, w0, w1, w2, w3, w4))
}

/// Classifies and counts an IP packet; returns its outcome ([`OUTCOME_SHOT`],
/// [`OUTCOME_TLS`]).
#[inline(always)]
fn account_ip(p: &Packet) -> u32 {
    let direction = p.direction;
    // The agent's run-time settings, read once per packet.
    let settings = SETTINGS.get(0);
    let country = country_of(&p.remote, settings);
    if country == CountryId::LOCAL {
        add_stat(Stat::Local, direction, &p.value);
        return 0;
    }
    let mut action = Action::Allow;
    if let Some(settings) = policy::settings() {
        action = policy::action(settings, &p.mac, country);
        if action != Action::Allow {
            let violation = Violation { packet: p, country, action };
            if policy::report(&violation, settings) == Reported::Suppressed {
                add_stat(Stat::EventsSuppressed, direction, &EVENT);
            }
        }
    }
    let blocked = action == Action::Block;
    let key = TrafficKey {
        mac: p.mac,
        country: country.0,
        verdict: if blocked { verdict::BLOCKED } else { verdict::PASSED },
        reserved: 0,
    };
    let counted = add_counter(&key, direction, &p.value);
    // Off the hot path: only a packet that found no (device, country) entry asks whether its
    // MAC is new.
    if direction == Direction::Upload && counted != Counted::Existing {
        note_mac(&p.mac);
    }
    if counted == Counted::Created {
        let pair = Violation { packet: p, country, action };
        if policy::new_pair(&pair) == Reported::Suppressed {
            add_stat(Stat::EventsSuppressed, direction, &EVENT);
        }
    }
    let mut outcome = if blocked { OUTCOME_SHOT } else { 0 };
    if let Some(settings) = settings
        && settings.remotes != 0
        && counted != Counted::Overflow
    {
        // Computed here, where the direction is the program's constant.
        let index = traffic_index(key.verdict, direction as u8);
        if add_remote(p, settings, country, index) {
            outcome |= OUTCOME_TLS;
        }
    }
    outcome
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

/// Adds a packet already counted per (device, country) to exactly one remote place: the
/// remote's slot on this CPU (taken now if the probe meets a free slot first), else the
/// device's overflow entry, else [`Stat::RemoteOverflow`]. Returns whether the packet may carry
/// a TLS ClientHello worth capturing (an upload to TCP 443 or 853 of a remote this CPU has
/// captured fewer than `TLS_SEGMENTS` segments of).
/// Inlined into the global function: as a subprogram of its own it cost a call (through this
/// host's SRSO return thunk) per packet, 5-15 ns in BPF_PROG_TEST_RUN.
#[inline(always)]
fn add_remote(p: &Packet, settings: &Settings, country: CountryId, index: usize) -> bool {
    // The verifier needs the bound checked where the index is used.
    if index > 3 {
        return false;
    }
    // The coarse clock (CLOCK_MONOTONIC at tick resolution) is enough for first and last seen,
    // and far cheaper than reading the clock source on every packet.
    // SAFETY: the kernel's clock helper has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    match probe(p, settings) {
        Probe::Found(slot) => seen(slot, index, now, p),
        Probe::Free(slot, key) => {
            take(slot, key, country, index, now, p);
            tls_port(p, 0)
        }
        Probe::Full => {
            add_spill(index, p);
            false
        }
    }
}

/// Where [`probe`] found a packet's remote.
enum Probe {
    /// Its live slot on this CPU.
    Found(*mut RemoteSlot),
    /// Not found: the first free slot on the way, and the key to write in it.
    Free(*mut RemoteSlot, [u64; 3]),
    /// Not found, and every probed slot holds another remote.
    Full,
}

/// Looks for the packet's remote among this CPU's slots: the hash's slot and the next
/// [`PROBES`]` - 1`, up to the first free one (a live slot's key has [`slot_state::LIVE`], so a
/// slot the agent is retiring matches no packet).
#[inline(always)]
fn probe(p: &Packet, settings: &Settings) -> Probe {
    let words = remote_key(p).words();
    let bits = settings.remote_bits & 31;
    let mask = (1u32 << bits) - 1;
    // SAFETY: the helper has no preconditions.
    let base = unsafe { bpf_get_smp_processor_id() } << bits;
    let hash = slot_hash(words, settings.remote_seed);
    for i in 0..PROBES {
        let Some(slot) = REMOTES.get_ptr_mut(base | (hash.wrapping_add(i) & mask)) else {
            break;
        };
        // SAFETY: a slot of this CPU's part of the array; the agent writes only the state of a
        // live slot, and frees slots no program can still be writing.
        let k = unsafe { &*slot.cast::<[u64; 3]>() };
        // Word by word: an array comparison may become a `bcmp` call, which BPF lacks.
        if k[2] == words[2] && k[0] == words[0] && k[1] == words[1] {
            return Probe::Found(slot);
        }
        if k[2] == 0 {
            return Probe::Free(slot, words);
        }
    }
    Probe::Full
}

/// The packet's key as a live slot holds it.
#[inline(always)]
fn remote_key(p: &Packet) -> RemoteKey {
    RemoteKey {
        addr: p.remote.key_bytes(),
        mac: p.mac,
        family: p.remote.family(),
        state: slot_state::LIVE,
    }
}

/// Writes a free slot whole for the packet's remote; the word that makes it live goes last.
#[inline(always)]
fn take(
    slot: *mut RemoteSlot,
    key: [u64; 3],
    country: CountryId,
    index: usize,
    now: u64,
    p: &Packet,
) {
    // SAFETY: a free slot of this CPU's part of the array: nothing else writes it meanwhile.
    unsafe {
        // Its state word is zero already: the slot stays free until the last store.
        // Volatile stores throughout: LLVM keeps them in this order (the BPF backend has no
        // fence), so a reader that sees the slot live sees it written on strongly ordered CPUs.
        zero(slot);
        (&raw mut (*slot).last_seen_ns).write_volatile(now);
        (&raw mut (*slot).traffic[index]).write_volatile(p.value);
        (&raw mut (*slot).first_seen_ns).write_volatile(now);
        (&raw mut (*slot).country).write_volatile(country.0);
        (&raw mut (*slot).port).write_volatile(p.port);
        (&raw mut (*slot).protocol).write_volatile(p.protocol);
        (&raw mut (*slot).direction).write_volatile(p.direction as u8);
        let k = slot.cast::<u64>();
        k.write_volatile(key[0]);
        k.add(1).write_volatile(key[1]);
        k.add(2).write_volatile(key[2]);
    }
}

/// Whether an upload to `port` may be a TLS ClientHello still to capture.
#[inline(always)]
fn tls_port(p: &Packet, captures: u8) -> bool {
    const TCP: u8 = 6;
    p.direction == Direction::Upload
        && p.protocol == TCP
        && (p.port == 443 || p.port == 853)
        && captures < TLS_SEGMENTS
}

/// Counts a captured TLS segment in this CPU's slot of the remote.
#[inline(never)]
fn tls_captured(p: &Packet) {
    let Some(settings) = SETTINGS.get(0) else { return };
    if let Probe::Found(slot) = probe(p, settings) {
        // SAFETY: this CPU's live slot of the remote.
        unsafe { (*slot).captures = (*slot).captures.saturating_add(1) };
    }
}

/// Adds the packet to this CPU's live slot of its remote; says whether it may be a TLS
/// ClientHello to capture.
#[inline(always)]
fn seen(slot: *mut RemoteSlot, index: usize, now: u64, p: &Packet) -> bool {
    // SAFETY: `slot` is this CPU's live slot; nothing else writes its counters meanwhile.
    unsafe {
        add(&raw mut (*slot).traffic[index], &p.value);
        (*slot).last_seen_ns = now;
        tls_port(p, (*slot).captures)
    }
}

/// The remote table is full: the device's overflow entry, else [`Stat::RemoteOverflow`].
#[inline(always)]
fn add_spill(index: usize, p: &Packet) {
    let key = SpillKey { mac: p.mac, kind: spill::OVERFLOW, reserved: 0 };
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

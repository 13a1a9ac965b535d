//! The per-packet policy decision and the rate-limited alert events.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::{
    CountryId,
    policy::{Action, AlertEvent, AlertKey, PROFILE_ENTRIES, PolicySettings},
};

use crate::{
    count::Packet,
    maps::{ALERTED, DEVICE_PROFILE, EVENT_BUDGET, EVENTS, POLICY_SETTINGS, PROFILES},
};

/// The settings, if any profile can say anything but allow.
#[inline(always)]
pub(crate) fn settings() -> Option<&'static PolicySettings> {
    POLICY_SETTINGS.get(0).filter(|s| s.enabled != 0)
}

/// The action the device's profile gives the country.
#[inline(always)]
pub(crate) fn action(settings: &PolicySettings, mac: &[u8; 6], country: CountryId) -> Action {
    let index = if settings.devices == 0 {
        0
    } else {
        // SAFETY: a plain lookup; the value is copied out at once.
        unsafe { DEVICE_PROFILE.get(mac) }.copied().unwrap_or(0)
    };
    match PROFILES.get(index) {
        Some(profile) => {
            Action::from_raw(profile.actions[usize::from(country.0) & (PROFILE_ENTRIES - 1)])
        }
        None => Action::Allow,
    }
}

/// Everything an alert event says about the packet.
pub(crate) struct Violation<'a> {
    /// The packet: device, remote, protocol, port, direction and size.
    pub(crate) packet: &'a Packet,
    /// The remote's country.
    pub(crate) country: CountryId,
    /// What the policy said.
    pub(crate) action: Action,
}

/// What [`report`] did with a violation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reported {
    /// An event went to the agent, or one was sent for this remote recently.
    Sent,
    /// The per-CPU budget or a full ring buffer refused the event (the caller counts it).
    Suppressed,
}

/// Sends an event for the first packet to a remote address (again after `rearm_secs`), within
/// the per-CPU budget; says whether it was refused, for the caller to count. A BPF subprogram
/// of its own, so that its stack is not added to the counting path's.
#[inline(never)]
pub(crate) fn report(v: &Violation<'_>, settings: &PolicySettings) -> Reported {
    let remote = &v.packet.remote;
    let key = AlertKey {
        mac: v.packet.mac,
        family: remote.family(),
        reserved: 0,
        addr: remote.key_bytes(),
    };
    // SAFETY: the kernel's clock helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: a plain lookup; the value is copied out at once.
    if let Some(last) = unsafe { ALERTED.get(key) }.copied()
        && now.wrapping_sub(last) < u64::from(settings.rearm_secs) * crate::budget::NS_PER_SEC
    {
        return Reported::Sent;
    }
    if !crate::budget::take(&EVENT_BUDGET, now, settings.events_per_sec) {
        return Reported::Suppressed;
    }
    if emit(v, now, &key.addr, v.action as u8) == Reported::Suppressed {
        return Reported::Suppressed;
    }
    let _ = ALERTED.insert(key, now, 0);
    Reported::Sent
}

/// Tells the agent that `mac` just sent (or received) its first packet to `country`: the
/// (device, country) counter entry was created. Learning mode only; within the alert budget.
#[inline(never)]
pub(crate) fn new_pair(v: &Violation<'_>) -> Reported {
    let Some(settings) = POLICY_SETTINGS.get(0) else { return Reported::Sent };
    if settings.new_pairs == 0 {
        return Reported::Sent;
    }
    // SAFETY: the kernel's clock helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if !crate::budget::take(&EVENT_BUDGET, now, settings.events_per_sec) {
        return Reported::Suppressed;
    }
    emit(v, now, &v.packet.remote.key_bytes(), tracer_common::policy::NEW_PAIR)
}

/// Sends the agent an event about `v`'s packet, written in place in the ring buffer (built on
/// the stack and copied, it took 40 of the 512 bytes the call chain shares).
#[inline(always)]
fn emit(v: &Violation<'_>, now: u64, addr: &[u8; 16], action: u8) -> Reported {
    let Some(mut entry) = EVENTS.reserve::<AlertEvent>(0) else {
        return Reported::Suppressed;
    };
    let len = v.packet.value.bytes;
    let e = entry.as_mut_ptr();
    // SAFETY: `e` points at a reserved, writable `AlertEvent`; every field is written before
    // the entry is submitted.
    unsafe {
        (*e).time_ns = now;
        (*e).addr = *addr;
        (*e).mac = v.packet.mac;
        (*e).country = v.country.0;
        (*e).port = v.packet.port;
        (*e).direction = v.packet.direction as u8;
        (*e).family = v.packet.remote.family();
        (*e).protocol = v.packet.protocol;
        (*e).action = action;
        (*e).len = if len > 0xffff { 0xffff } else { len as u16 };
    }
    entry.submit(0);
    Reported::Sent
}

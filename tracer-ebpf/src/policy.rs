//! The per-packet policy decision and the rate-limited alert events.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use tracer_common::{
    CountryId, Direction,
    policy::{Action, AlertEvent, AlertKey, PROFILE_ENTRIES, PolicySettings},
};

use crate::{
    maps::{ALERTED, DEVICE_PROFILE, EVENT_BUDGET, EVENTS, POLICY_SETTINGS, PROFILES},
    parse::{Remote, Transport, remote_port},
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
    /// The frame.
    pub(crate) ctx: &'a TcContext,
    /// The device.
    pub(crate) mac: [u8; 6],
    /// The remote address.
    pub(crate) remote: &'a Remote,
    /// Where the ports are.
    pub(crate) transport: Transport,
    /// The remote's country.
    pub(crate) country: CountryId,
    /// Which way the packet goes.
    pub(crate) direction: Direction,
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
    let (family, addr) = v.remote.family_and_bytes();
    let key = AlertKey { mac: v.mac, family, reserved: 0, addr };
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
    let Some(mut entry) = EVENTS.reserve::<AlertEvent>(0) else {
        return Reported::Suppressed;
    };
    entry.write(event(v, now, family, addr, v.action as u8));
    entry.submit(0);
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
    let Some(mut entry) = EVENTS.reserve::<AlertEvent>(0) else {
        return Reported::Suppressed;
    };
    let (family, addr) = v.remote.family_and_bytes();
    entry.write(event(v, now, family, addr, tracer_common::policy::NEW_PAIR));
    entry.submit(0);
    Reported::Sent
}

/// The event for the agent about `v`'s packet.
#[inline(always)]
fn event(v: &Violation<'_>, now: u64, family: u8, addr: [u8; 16], action: u8) -> AlertEvent {
    let len = v.ctx.len();
    AlertEvent {
        time_ns: now,
        addr,
        mac: v.mac,
        country: v.country.0,
        port: remote_port(v.ctx, v.transport, v.direction),
        direction: v.direction as u8,
        family,
        protocol: v.transport.protocol,
        action,
        len: if len > 0xffff { 0xffff } else { len as u16 },
    }
}

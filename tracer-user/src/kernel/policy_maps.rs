//! Writing the compiled policy into the (pinned) policy maps, and the alert event ring buffer.

use aya::maps::{Array, HashMap, MapData, RingBuf};
use tracer_common::policy::{
    DEVICE_PROFILE_MAP, EVENTS_MAP, POLICY_SETTINGS_MAP, PROFILES_MAP, PolicySettings, Profile,
};

use super::{Kernel, KernelError};
use crate::policy::KernelPolicy;

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source: Box::new(source) }
}

/// Alert event limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Events each CPU may send per second.
    pub per_second: u32,
    /// Seconds before a (device, remote address) raises another event.
    pub rearm_secs: u32,
    /// Whether the programs report every new (device, country) pair (learning mode).
    pub new_pairs: bool,
}

impl Kernel {
    /// Writes the policy: profiles first, then the device assignments (stale ones removed),
    /// then the settings that switch it on. A device may see its new profile a moment before
    /// its new assignment; nothing is ever half-written.
    pub fn write_policy(
        &mut self,
        policy: &KernelPolicy,
        limits: EventLimits,
    ) -> Result<(), KernelError> {
        let mut profiles: Array<_, Profile> =
            Array::try_from(self.map_mut(PROFILES_MAP)?).map_err(map_err(PROFILES_MAP))?;
        for (slot, profile) in policy.profiles.iter().enumerate() {
            profiles.set(slot as u32, profile, 0).map_err(map_err(PROFILES_MAP))?;
        }
        let mut devices: HashMap<_, [u8; 6], u32> =
            HashMap::try_from(self.map_mut(DEVICE_PROFILE_MAP)?)
                .map_err(map_err(DEVICE_PROFILE_MAP))?;
        let stale: Vec<[u8; 6]> = devices
            .keys()
            .filter_map(Result::ok)
            .filter(|mac| !policy.devices.iter().any(|(m, _)| m == mac))
            .collect();
        for (mac, slot) in &policy.devices {
            devices.insert(mac, slot, 0).map_err(map_err(DEVICE_PROFILE_MAP))?;
        }
        for mac in stale {
            devices.remove(&mac).map_err(map_err(DEVICE_PROFILE_MAP))?;
        }
        let mut settings: Array<_, PolicySettings> =
            Array::try_from(self.map_mut(POLICY_SETTINGS_MAP)?)
                .map_err(map_err(POLICY_SETTINGS_MAP))?;
        let value = PolicySettings {
            enabled: u32::from(policy.enabled()),
            events_per_sec: limits.per_second,
            rearm_secs: limits.rearm_secs,
            devices: policy.devices.len() as u32,
            new_pairs: u32::from(limits.new_pairs),
        };
        settings.set(0, value, 0).map_err(map_err(POLICY_SETTINGS_MAP))
    }

    /// Takes the alert event ring buffer out of the object. It is pinned, so the reader stays
    /// valid across reloads and sees what a previous agent's programs sent.
    pub fn event_reader(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        RingBuf::try_from(self.take_map(EVENTS_MAP)?).map_err(map_err(EVENTS_MAP))
    }

    /// Takes the ring buffer of DNS answers and TLS segments (pinned: shared across reloads).
    pub fn capture_reader(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let name = tracer_common::capture::CAPTURES_MAP;
        RingBuf::try_from(self.take_map(name)?).map_err(map_err(name))
    }
}

//! The policy as the kernel applies it: one action per country id for each distinct layer stack.

use std::collections::HashMap;

use tracer_common::{
    CountryId,
    policy::{Action, MAX_POLICY_DEVICES, MAX_PROFILES, PROFILE_ENTRIES, Profile},
};

use super::{Policy, decide::decide_layers};

/// What goes into the policy maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPolicy {
    /// Profile 0 is the default; the others are referenced by [`Self::devices`].
    pub profiles: Vec<Profile>,
    /// Devices that do not follow the default profile.
    pub devices: Vec<([u8; 6], u32)>,
}

/// A policy the kernel maps cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// More distinct device policies than profile slots.
    #[error("the policy needs {0} distinct profiles; the kernel holds {MAX_PROFILES}")]
    Profiles(usize),
    /// More devices with their own policy than map entries.
    #[error("{0} devices have their own policy; the kernel holds {MAX_POLICY_DEVICES}")]
    Devices(usize),
}

impl KernelPolicy {
    /// Whether any profile says anything but allow (if not, the programs skip the policy).
    pub fn enabled(&self) -> bool {
        self.profiles.iter().any(|p| p.actions.iter().any(|&a| a != Action::Allow as u8))
    }
}

impl Policy {
    fn profile(&self, mac: Option<[u8; 6]>) -> Profile {
        let layers = match mac {
            Some(mac) => self.layers(mac),
            None => vec![&self.default],
        };
        let mut profile = Profile::default();
        for (id, slot) in profile.actions.iter_mut().enumerate().take(PROFILE_ENTRIES) {
            let country = CountryId(id as u16);
            if country == CountryId::LOCAL || country == CountryId::FALLBACK {
                continue;
            }
            let (configured, _, _) = decide_layers(&layers, country);
            *slot = self.enforced(configured) as u8;
        }
        profile
    }

    /// Compiles the policy for the kernel: identical profiles are stored once.
    pub fn kernel(&self) -> Result<KernelPolicy, CapacityError> {
        let default = self.profile(None);
        let mut index: HashMap<Profile, u32> = HashMap::from([(default, 0)]);
        let mut profiles = vec![default];
        let mut devices = Vec::new();
        for &mac in self.devices.keys() {
            let profile = self.profile(Some(mac));
            let next = profiles.len() as u32;
            let slot = *index.entry(profile).or_insert_with(|| {
                profiles.push(profile);
                next
            });
            if slot != 0 {
                devices.push((mac, slot));
            }
        }
        if profiles.len() > MAX_PROFILES as usize {
            return Err(CapacityError::Profiles(profiles.len()));
        }
        if devices.len() > MAX_POLICY_DEVICES as usize {
            return Err(CapacityError::Devices(devices.len()));
        }
        Ok(KernelPolicy { profiles, devices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn code(c: &str) -> CountryId {
        CountryId::from_code(c.as_bytes().try_into().unwrap()).unwrap()
    }

    fn compile(text: &str, dry_run: bool) -> Policy {
        let config = Config::parse("t.toml", text).unwrap();
        Policy::compile(&config.policy_source(), &config.regions().unwrap(), dry_run).unwrap()
    }

    const TV: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const CAM: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const PHONE: [u8; 6] = [2, 0, 0, 0, 0, 3];

    const LAYERED: &str = r#"
[policy]
allow = ["eu", "US"]
block = ["HU"]
[[group]]
name = "iot"
allow = ["NL"]
otherwise = "block"
[[device]]
mac = "02:00:00:00:00:01"
group = "iot"
allow = ["JP"]
[[device]]
mac = "02:00:00:00:00:02"
group = "iot"
"#;

    #[test]
    fn the_most_specific_layer_decides() {
        let p = compile(LAYERED, false);
        let a = |mac, c: &str| p.decide(mac, code(c)).action;
        // Default: eu and US approved, HU blocked inside eu, the rest alerts.
        assert_eq!(
            [a(PHONE, "DE"), a(PHONE, "US"), a(PHONE, "HU"), a(PHONE, "CN")],
            [Action::Allow, Action::Allow, Action::Block, Action::Alert]
        );
        assert_eq!(p.decide(PHONE, CountryId::UNKNOWN).action, Action::Alert);
        // The group approves NL and blocks what no layer lists; the default's lists still apply.
        assert_eq!(
            [a(CAM, "NL"), a(CAM, "CN"), a(CAM, "DE"), a(CAM, "HU")],
            [Action::Allow, Action::Block, Action::Allow, Action::Block]
        );
        // The device adds JP on top of its group.
        assert_eq!([a(TV, "JP"), a(CAM, "JP")], [Action::Allow, Action::Block]);
        assert_eq!(
            p.decide(CAM, code("CN")).rule,
            "group \"iot\": otherwise = block (CN is not listed)"
        );
        assert_eq!(p.decide(PHONE, code("HU")).rule, "[policy]: block HU");
        assert_eq!(p.decide(PHONE, code("FR")).rule, "[policy]: allow FR (as part of eu)");
    }

    #[test]
    fn kernel_profiles_match_decisions_and_are_shared() {
        let p = compile(LAYERED, false);
        let k = p.kernel().unwrap();
        assert_eq!(k.profiles.len(), 3);
        assert!(k.enabled());
        for (mac, slot) in [(TV, 1), (CAM, 2)] {
            assert!(k.devices.contains(&(mac, slot)));
            for id in 0..CountryId::MAX_COUNTRY {
                let expected = p.decide(mac, CountryId(id)).action as u8;
                assert_eq!(k.profiles[slot as usize].actions[usize::from(id)], expected);
            }
        }
        let nothing = compile("", false).kernel().unwrap();
        assert!(!nothing.enabled() && nothing.devices.is_empty());
    }

    #[test]
    fn dry_run_turns_blocks_into_alerts() {
        let p = compile(LAYERED, true);
        let d = p.decide(CAM, code("CN"));
        assert_eq!((d.action, d.configured), (Action::Alert, Action::Block));
        assert!(d.rule.ends_with("(dry run: not dropped)"), "{}", d.rule);
        let k = p.kernel().unwrap();
        assert!(k.profiles.iter().all(|p| p.actions.iter().all(|&a| a != Action::Block as u8)));
    }
}

//! Compiling the rules into layers and deciding a (device, country) with the rule that did.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;
use tracer_common::{CountryId, policy::Action};

use super::Rules;
use crate::{
    base::spanned::SpannedError,
    base::text::parse_mac,
    base::text::{country_label, format_mac},
    geo::regions::Regions,
};

/// One section's rules, with every region expanded to its countries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Layer {
    /// How the section is named in explanations: `[policy]`, `group "iot"`, `device aa:..`.
    label: String,
    /// For each action, the countries listed under it, with the region as written.
    lists: [BTreeMap<CountryId, String>; 3],
    otherwise: Option<Action>,
    unknown: Option<Action>,
    approves: bool,
}

/// The rules a policy is compiled from, as the configuration gives them: the default, the
/// groups and the devices, each with the place in the file errors point at.
#[derive(Clone, Debug)]
pub struct PolicySource<'a> {
    /// `[policy]`.
    pub default: &'a Rules,
    /// `[[group]]`s.
    pub groups: Vec<GroupSource<'a>>,
    /// `[[device]]`s.
    pub devices: Vec<DeviceSource<'a>>,
}

/// One `[[group]]` of a [`PolicySource`].
#[derive(Clone, Debug)]
pub struct GroupSource<'a> {
    /// Its name.
    pub name: &'a Spanned<String>,
    /// Its rules.
    pub rules: Rules,
}

/// One `[[device]]` of a [`PolicySource`].
#[derive(Clone, Debug)]
pub struct DeviceSource<'a> {
    /// Its MAC, as written.
    pub mac: &'a Spanned<String>,
    /// The group it names.
    pub group: Option<&'a Spanned<String>>,
    /// Its own rules.
    pub rules: Rules,
}

/// The outcome for a (device, country).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the kernel does (a `block` under `--dry-run` is an `alert`).
    pub action: Action,
    /// What the configuration says.
    pub configured: Action,
    /// The rule that decided, e.g. `group "iot": otherwise = block`.
    pub rule: String,
    /// Whether a rule lists the country (`allow`, `alert` or `block`), rather than the
    /// country falling through to `otherwise`: explicit rules win over learning.
    pub explicit: bool,
}

/// The compiled policy of every device.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub(super) default: Layer,
    pub(super) groups: BTreeMap<String, Layer>,
    pub(super) devices: BTreeMap<[u8; 6], (Layer, Option<String>)>,
    pub(super) dry_run: bool,
}

fn layer(label: String, rules: &Rules, regions: &Regions) -> Result<Layer, SpannedError> {
    let mut lists: [BTreeMap<CountryId, String>; 3] = Default::default();
    for (action, items) in [
        (Action::Allow, &rules.allow),
        (Action::Alert, &rules.alert),
        (Action::Block, &rules.block),
    ] {
        for item in items {
            let region = regions.parse(item.get_ref()).map_err(|e| SpannedError::at(item, e))?;
            for country in regions.expand(&region) {
                lists[action as usize].entry(country).or_insert_with(|| item.get_ref().clone());
            }
        }
    }
    let action = |a: &Option<Spanned<super::ActionName>>| a.as_ref().map(|a| (*a.get_ref()).into());
    Ok(Layer {
        label,
        approves: !rules.allow.is_empty(),
        lists,
        otherwise: action(&rules.otherwise),
        unknown: action(&rules.unknown),
    })
}

impl Policy {
    /// Compiles the configuration's policy, groups and devices; `dry_run` turns every block
    /// into an alert. Errors point at the offending value.
    pub fn compile(
        source: &PolicySource<'_>,
        regions: &Regions,
        dry_run: bool,
    ) -> Result<Self, SpannedError> {
        let default = layer("[policy]".to_owned(), source.default, regions)?;
        let mut groups = BTreeMap::new();
        for group in &source.groups {
            let name = group.name.get_ref();
            let layer = layer(format!("group {name:?}"), &group.rules, regions)?;
            if groups.insert(name.clone(), layer).is_some() {
                return Err(SpannedError::at(
                    group.name,
                    format!("group {name:?} is defined twice"),
                ));
            }
        }
        let mut devices = BTreeMap::new();
        for device in &source.devices {
            let mac = parse_mac(device.mac.get_ref()).ok_or_else(|| {
                SpannedError::at(
                    device.mac,
                    format!(
                        "{:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)",
                        device.mac.get_ref()
                    ),
                )
            })?;
            let group = match device.group {
                Some(g) if !groups.contains_key(g.get_ref()) => {
                    return Err(SpannedError::at(
                        g,
                        format!("no [[group]] named {:?}", g.get_ref()),
                    ));
                }
                Some(g) => Some(g.get_ref().clone()),
                None => None,
            };
            let layer = layer(format!("device {}", format_mac(mac)), &device.rules, regions)?;
            if devices.insert(mac, (layer, group)).is_some() {
                return Err(SpannedError::at(
                    device.mac,
                    format!("device {} is listed twice", format_mac(mac)),
                ));
            }
        }
        Ok(Self { default, groups, devices, dry_run })
    }

    /// The layers that apply to `mac`, most specific first.
    pub(super) fn layers(&self, mac: [u8; 6]) -> Vec<&Layer> {
        let mut layers = Vec::with_capacity(3);
        if let Some((device, group)) = self.devices.get(&mac) {
            layers.push(device);
            if let Some(group) = group.as_ref().and_then(|g| self.groups.get(g)) {
                layers.push(group);
            }
        }
        layers.push(&self.default);
        layers
    }

    /// The group of a device, if the configuration gives one.
    pub fn group_of(&self, mac: [u8; 6]) -> Option<&str> {
        self.devices.get(&mac).and_then(|(_, g)| g.as_deref())
    }

    /// The action enforced for a configured one: in a dry run a block only alerts.
    pub(super) fn enforced(&self, configured: Action) -> Action {
        if self.dry_run && configured == Action::Block { Action::Alert } else { configured }
    }

    /// Decides `country` for `mac`.
    pub fn decide(&self, mac: [u8; 6], country: CountryId) -> Decision {
        let (configured, rule, explicit) = decide_layers(&self.layers(mac), country);
        let action = self.enforced(configured);
        let rule =
            if action == configured { rule } else { format!("{rule} (dry run: not dropped)") };
        Decision { action, configured, rule, explicit }
    }

    /// Regions listed anywhere, as countries (for marking unapproved traffic in reports).
    pub fn mentioned(&self) -> BTreeSet<CountryId> {
        std::iter::once(&self.default)
            .chain(self.groups.values())
            .chain(self.devices.values().map(|(l, _)| l))
            .flat_map(|l| l.lists.iter().flat_map(|m| m.keys().copied()))
            .collect()
    }
}

/// The action and the rule for `country` under `layers` (most specific first), and whether a
/// list names the country.
pub(super) fn decide_layers(layers: &[&Layer], country: CountryId) -> (Action, String, bool) {
    let code = country_label(country);
    if country.is_country() {
        for layer in layers {
            for action in [Action::Block, Action::Alert, Action::Allow] {
                if let Some(region) = layer.lists[action as usize].get(&country) {
                    let via = if region.eq_ignore_ascii_case(code) {
                        String::new()
                    } else {
                        format!(" (as part of {region})")
                    };
                    let rule = format!("{}: {} {code}{via}", layer.label, action.as_str());
                    return (action, rule, true);
                }
            }
        }
    } else if let Some((layer, action)) = layers.iter().find_map(|l| l.unknown.map(|a| (l, a))) {
        return (action, format!("{}: unknown = {}", layer.label, action.as_str()), true);
    }
    if let Some((layer, action)) = layers.iter().find_map(|l| l.otherwise.map(|a| (l, a))) {
        return (
            action,
            format!("{}: otherwise = {} ({code} is not listed)", layer.label, action.as_str()),
            false,
        );
    }
    match layers.iter().find(|l| l.approves) {
        Some(layer) => (
            Action::Alert,
            format!("{}: {code} is not in allow (unlisted regions alert)", layer.label),
            false,
        ),
        None => (Action::Allow, "no rule (no policy restricts this device)".to_owned(), false),
    }
}

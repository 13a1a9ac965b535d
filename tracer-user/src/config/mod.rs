//! The TOML configuration file: agent settings, alert channels, the policy, named regions,
//! groups and devices. Unknown keys are refused, and every error names the line and the reason.

mod sections;
mod settings;
mod volume;

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use toml::Spanned;

pub use sections::{AgentSection, AlertsSection, DeviceSection, GroupSection};
pub use settings::{RunSettings, Unchangeable};
pub use volume::{VolumeRule, VolumeSection, parse_size};

use crate::{
    geo::regions::Regions,
    policy::{ActionName, Policy, Rules},
};

/// The configuration file's contents.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings of `run`, each with a command-line flag that overrides it.
    #[serde(default)]
    pub agent: AgentSection,
    /// Alert delivery.
    #[serde(default)]
    pub alerts: AlertsSection,
    /// The default policy of every device.
    #[serde(default)]
    pub policy: Rules,
    /// Named regions: `name = ["AT", "BE", ...]`.
    #[serde(default)]
    pub regions: BTreeMap<String, Vec<String>>,
    /// Groups of devices with their own policy (`[[group]]`).
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupSection>,
    /// Devices with a name, a group and possibly their own policy (`[[device]]`).
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceSection>,
    /// Learning mode (`[learning]`).
    #[serde(default)]
    pub learning: LearningSection,
    /// Upload-volume alerts (`[[volume]]`).
    #[serde(default, rename = "volume")]
    pub volumes: Vec<VolumeSection>,
    /// `policy`, `groups` and `devices` compiled: [`Config::parse`] validates the policy by
    /// compiling it, and the agent runs this compilation.
    #[serde(skip)]
    compiled: Policy,
}

/// `[learning]`: learn what each device reaches, then alert on what is new.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LearningSection {
    /// Each device's learning window (`--learn-for`), e.g. `"7d"`.
    pub period: Option<Spanned<String>>,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, does not match the schema, or says something impossible.
    #[error("{path}:{line}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

impl Config {
    /// The policy's rules as [`Policy::compile`] takes them.
    pub fn policy_source(&self) -> crate::policy::PolicySource<'_> {
        use crate::policy::{DeviceSource, GroupSource, PolicySource};
        PolicySource {
            default: &self.policy,
            groups: self
                .groups
                .iter()
                .map(|g| GroupSource { name: &g.name, rules: g.rules() })
                .collect(),
            devices: self
                .devices
                .iter()
                .map(|d| DeviceSource { mac: &d.mac, group: d.group.as_ref(), rules: d.rules() })
                .collect(),
        }
    }

    /// The policy compiled (as [`Config::parse`] validated it; no rules in
    /// [`Config::default`]), enforced as written (see [`Policy::with_dry_run`]).
    pub fn compiled_policy(&self) -> &Policy {
        &self.compiled
    }

    /// Applies the command-line shortcuts `--allow`, `--block` and `--unknown-action` to
    /// `[policy]` (see [`Rules::apply_shortcuts`]) and recompiles that layer of the compiled
    /// policy; without shortcuts nothing changes. On an error the configuration stays as it was.
    pub fn apply_shortcuts(
        &mut self,
        allow: Option<&[String]>,
        block: Option<&[String]>,
        unknown: Option<ActionName>,
        regions: &Regions,
    ) -> Result<(), SpannedError> {
        if allow.is_none() && block.is_none() && unknown.is_none() {
            return Ok(());
        }
        let mut rules = self.policy.clone();
        rules.apply_shortcuts(allow, block, unknown);
        self.compiled.replace_default(&rules, regions)?;
        self.policy = rules;
        Ok(())
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let invalid = |offset: usize, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            line: line_of(text, offset),
            reason,
        };
        let mut config: Config = toml::from_str(text)
            .map_err(|e| invalid(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
        let regions = config.regions().map_err(|e| {
            let at = text.find("[regions]").unwrap_or(0);
            invalid(at, e.to_string())
        })?;
        config.compiled = Policy::compile(&config.policy_source(), &regions)
            .map_err(|e| invalid(e.span.start, e.reason))?;
        for section in &config.volumes {
            VolumeRule::compile(section, &regions).map_err(|e| invalid(e.span.start, e.reason))?;
        }
        if let Some(period) = &config.learning.period {
            humantime::parse_duration(period.get_ref()).map_err(|e| {
                invalid(
                    period.span().start,
                    format!("{:?} is not a duration like 7d: {e}", period.get_ref()),
                )
            })?;
        }
        Ok(config)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The built-in regions plus the ones defined here.
    pub fn regions(&self) -> Result<Regions, crate::geo::regions::RegionError> {
        self.regions
            .iter()
            .try_fold(Regions::builtin(), |r, (name, codes)| r.with_custom(name, codes))
    }
}

/// `egress-tracer check-config FILE`: validates a file and summarises it.
pub fn check_command(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!(
        "{}: OK ({} named regions, {} groups, {} devices; default policy: {})",
        path.display(),
        config.regions.len(),
        config.groups.len(),
        config.devices.len(),
        config.policy.summary(),
    );
    let regions = config.regions()?;
    for section in &config.volumes {
        let rule = VolumeRule::compile(section, &regions).map_err(|e| anyhow::anyhow!(e.reason))?;
        println!(
            "upload alert: {} over {} bytes within {}",
            rule.label,
            rule.bytes,
            humantime::format_duration(rule.window)
        );
    }
    Ok(())
}

pub mod cli;

pub use crate::base::spanned::SpannedError;
#[cfg(test)]
mod tests;

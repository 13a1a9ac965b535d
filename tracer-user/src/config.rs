//! The TOML configuration file. For now it defines named regions; the policy sections build on
//! it. Unknown keys are refused, and every error names the line.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

use crate::regions::Regions;

/// The configuration file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named regions: `name = ["AT", "BE", ...]`.
    #[serde(default)]
    pub regions: BTreeMap<String, Vec<String>>,
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
    /// The file is not valid TOML or does not match the schema.
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

impl Config {
    /// Parses configuration text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: e.span().map_or(1, |s| text[..s.start.min(text.len())].lines().count().max(1)),
            reason: e.message().to_owned(),
        })?;
        config.regions().map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: text
                .lines()
                .position(|l| l.trim_start().starts_with("[regions]"))
                .map_or(1, |i| i + 1),
            reason: e.to_string(),
        })?;
        Ok(config)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The built-in regions plus the ones defined here.
    pub fn regions(&self) -> Result<Regions, crate::regions::RegionError> {
        self.regions
            .iter()
            .try_fold(Regions::builtin(), |r, (name, codes)| r.with_custom(name, codes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line() {
        let err =
            Config::parse("c.toml", "\n[regions]\nnordics = [\"SE\", \"NO\", 5]\n").unwrap_err();
        assert!(err.to_string().starts_with("c.toml:3:"), "{err}");
        let err = Config::parse("c.toml", "[regions]\nnordics = [\"SE\", \"XQ\"]\n").unwrap_err();
        assert!(err.to_string().contains("\"XQ\" is not an ISO"), "{err}");
        let err = Config::parse("c.toml", "colour = 1\n").unwrap_err();
        assert!(
            err.to_string().starts_with("c.toml:1:") && err.to_string().contains("unknown field"),
            "{err}"
        );
        let ok = Config::parse(
            "c.toml",
            "[regions]\nnordics = [\"SE\", \"NO\", \"DK\", \"FI\", \"IS\"]\n",
        )
        .unwrap();
        assert_eq!(
            ok.regions().unwrap().containing(tracer_common::CountryId::from_code(*b"SE").unwrap()),
            vec!["continent:EU", "eea", "eu", "nordics"]
        );
    }
}

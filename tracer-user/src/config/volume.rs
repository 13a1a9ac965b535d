//! Upload-volume alert rules: `--upload-alert REGIONS:SIZE/WINDOW` and `[[volume]]`.

use std::{collections::BTreeSet, time::Duration};

use serde::Deserialize;
use toml::Spanned;
use tracer_common::CountryId;

use super::SpannedError;
use crate::base::text::parse_mac;
use crate::geo::regions::Regions;
pub use crate::learning::volume::VolumeRule;

/// `[[volume]]`: alert when a device uploads more than `upload` to `regions` within `window`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSection {
    /// Regions (`CN`, `eu`, `continent:AS`, or `any`).
    pub regions: Vec<Spanned<String>>,
    /// Size: `10MB`, `1.5GB`, `512KiB`, `1000` (bytes).
    pub upload: Spanned<String>,
    /// Sliding window: `1h`, `30m`, `1d`.
    pub window: Spanned<String>,
    /// Only devices of this `[[group]]`.
    pub group: Option<Spanned<String>>,
    /// Only this device (MAC).
    pub device: Option<Spanned<String>>,
}

/// Parses `10MB` (decimal units B, kB, MB, GB, TB; binary KiB, MiB, GiB, TiB; a bare number is
/// bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a size like 10MB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!("{text:?}: unknown unit {other:?} (B, kB, MB, GB, KiB, MiB, GiB)"));
        }
    };
    let bytes = number * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("{text:?}: a size must be at least one byte"));
    }
    Ok(bytes.round() as u64)
}

fn parse_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 1h: {e}"))?;
    if window < Duration::from_secs(1) {
        return Err(format!("{text:?}: the window must be at least 1s"));
    }
    Ok(window)
}

fn countries(regions: &Regions, names: &[&str]) -> Result<Option<BTreeSet<CountryId>>, String> {
    if names.iter().any(|n| n.eq_ignore_ascii_case("any")) {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for name in names {
        let region = regions.parse(name).map_err(|e| e.to_string())?;
        set.extend(regions.expand(&region));
    }
    Ok(Some(set))
}

impl VolumeRule {
    /// `REGIONS:SIZE/WINDOW`, e.g. `CN:10MB/1h` or `eu,US:1GB/1d` (`--upload-alert`).
    pub fn from_flag(text: &str, regions: &Regions) -> Result<Self, String> {
        let (names, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("{text:?}: expected REGIONS:SIZE/WINDOW, e.g. CN:10MB/1h"))?;
        let (size, window) = rest
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected REGIONS:SIZE/WINDOW, e.g. CN:10MB/1h"))?;
        let names: Vec<&str> = names.split(',').map(str::trim).collect();
        Ok(Self {
            label: text.to_owned(),
            countries: countries(regions, &names)?,
            bytes: parse_size(size)?,
            window: parse_window(window)?,
            group: None,
            device: None,
        })
    }

    /// A `[[volume]]` section; errors point at the offending value.
    pub fn compile(section: &VolumeSection, regions: &Regions) -> Result<Self, SpannedError> {
        let names: Vec<&str> = section.regions.iter().map(|r| r.get_ref().as_str()).collect();
        let countries = countries(regions, &names)
            .map_err(|e| SpannedError::at(section.regions.first().unwrap_or(&section.upload), e))?;
        let bytes = parse_size(section.upload.get_ref())
            .map_err(|e| SpannedError::at(&section.upload, e))?;
        let window = parse_window(section.window.get_ref())
            .map_err(|e| SpannedError::at(&section.window, e))?;
        let device = match &section.device {
            Some(d) => Some(parse_mac(d.get_ref()).ok_or_else(|| {
                SpannedError::at(d, format!("{:?} is not a MAC address", d.get_ref()))
            })?),
            None => None,
        };
        Ok(Self {
            label: format!(
                "{}:{}/{}",
                names.join(","),
                section.upload.get_ref(),
                section.window.get_ref()
            ),
            countries,
            bytes,
            window,
            group: section.group.as_ref().map(|g| g.get_ref().clone()),
            device,
        })
    }

    /// Whether the rule counts traffic to `country`.
    pub fn covers(&self, country: CountryId) -> bool {
        self.countries.as_ref().is_none_or(|c| c.contains(&country))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_flags() {
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("512KiB"), Ok(524_288));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("0").is_err());
        let regions = Regions::builtin();
        let rule = VolumeRule::from_flag("CN:10MB/1h", &regions).unwrap();
        assert_eq!((rule.bytes, rule.window), (10_000_000, Duration::from_secs(3600)));
        assert!(rule.covers(CountryId::from_code(*b"CN").unwrap()));
        assert!(!rule.covers(CountryId::from_code(*b"US").unwrap()));
        let any = VolumeRule::from_flag("any:1GB/1d", &regions).unwrap();
        assert!(any.covers(CountryId::UNKNOWN));
        assert!(VolumeRule::from_flag("CN:10MB", &regions).is_err());
        assert!(VolumeRule::from_flag("XX:10MB/1h", &regions).is_err());
        assert!(VolumeRule::from_flag("CN:10MB/0s", &regions).is_err());
    }
}

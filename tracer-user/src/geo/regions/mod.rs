//! Regions of the world: ISO countries, the seven continents (`continent:AS`), the EU and EEA,
//! and named custom regions from the configuration.

mod countries;

use std::collections::{BTreeMap, BTreeSet};

use tracer_common::CountryId;

pub use countries::COUNTRIES;

/// The seven continents, as GeoNames and MaxMind assign countries to them.
pub const CONTINENTS: [(&str, &str); 7] = [
    ("AF", "Africa"),
    ("AN", "Antarctica"),
    ("AS", "Asia"),
    ("EU", "Europe"),
    ("NA", "North America"),
    ("OC", "Oceania"),
    ("SA", "South America"),
];

/// A region a policy or a lookup can name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Region {
    /// One country.
    Country(CountryId),
    /// A continent, by its two-letter code.
    Continent(&'static str),
    /// A named set of countries (built-in `eu`/`eea`, or from the configuration).
    Named(String),
}

/// Why a region name or definition was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegionError {
    /// Not a country, continent or known named region.
    #[error(
        "unknown region {0:?} (expected an ISO country code like CN, continent:AS, eu, eea, or a region defined in the config)"
    )]
    Unknown(String),
    /// A custom region lists something that is not an ISO country code.
    #[error("region {region:?}: {code:?} is not an ISO 3166-1 alpha-2 country code")]
    BadMember {
        /// The region being defined.
        region: String,
        /// The offending entry.
        code: String,
    },
    /// A custom region's name is taken by a country code, a continent or a built-in region.
    #[error("region name {0:?} is taken (by a country code, a continent or a built-in region)")]
    NameTaken(String),
}

/// The regions known to the agent.
#[derive(Clone, Debug)]
pub struct Regions {
    named: BTreeMap<String, BTreeSet<CountryId>>,
}

fn id(code: &str) -> Option<CountryId> {
    let bytes: [u8; 2] = code.as_bytes().try_into().ok()?;
    let id = CountryId::from_code(bytes)?;
    COUNTRIES.iter().any(|(c, _, _)| c.eq_ignore_ascii_case(code)).then_some(id)
}

fn entry(id: CountryId) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let code = id.code()?;
    COUNTRIES.iter().find(|(c, _, _)| c.as_bytes() == code)
}

/// The English short name of a country.
pub fn country_name(id: CountryId) -> Option<&'static str> {
    entry(id).map(|(_, name, _)| *name)
}

/// The continent code of a country.
pub fn continent_of(id: CountryId) -> Option<&'static str> {
    entry(id).map(|(_, _, c)| *c).filter(|c| !c.is_empty())
}

impl Default for Regions {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Regions {
    /// Countries, continents, `eu` and `eea`.
    pub fn builtin() -> Self {
        let set = |codes: &[&str]| codes.iter().filter_map(|c| id(c)).collect::<BTreeSet<_>>();
        let eu = set(countries::EU);
        let mut eea = eu.clone();
        eea.extend(set(countries::EEA_EXTRA));
        Self { named: BTreeMap::from([("eu".to_owned(), eu), ("eea".to_owned(), eea)]) }
    }

    /// Adds a custom named region.
    pub fn with_custom(mut self, name: &str, codes: &[String]) -> Result<Self, RegionError> {
        let key = name.to_ascii_lowercase();
        if id(name).is_some() || key.starts_with("continent:") || self.named.contains_key(&key) {
            return Err(RegionError::NameTaken(name.to_owned()));
        }
        let members = codes
            .iter()
            .map(|c| {
                id(c).ok_or_else(|| RegionError::BadMember {
                    region: name.to_owned(),
                    code: c.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        self.named.insert(key, members);
        Ok(self)
    }

    /// Parses `CN`, `cn`, `continent:AS`, `eu`, or a custom region's name. Named regions are
    /// lower case; `EU`/`AP` in upper case are the registries' pseudo-country codes.
    pub fn parse(&self, text: &str) -> Result<Region, RegionError> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("continent:").or_else(|| t.strip_prefix("Continent:")) {
            return CONTINENTS
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(rest))
                .map(|(c, _)| Region::Continent(c))
                .ok_or_else(|| RegionError::Unknown(text.to_owned()));
        }
        // A named region written in lower case wins over a country code: `eu` is the 27
        // member states, `EU` the registries' pseudo-country.
        if self.named.contains_key(t) {
            return Ok(Region::Named(t.to_owned()));
        }
        if let Some(id) = id(t) {
            return Ok(Region::Country(id));
        }
        let key = t.to_ascii_lowercase();
        if self.named.contains_key(&key) {
            return Ok(Region::Named(key));
        }
        Err(RegionError::Unknown(text.to_owned()))
    }

    /// The countries in a region.
    pub fn expand(&self, region: &Region) -> BTreeSet<CountryId> {
        match region {
            Region::Country(id) => BTreeSet::from([*id]),
            Region::Continent(c) => COUNTRIES
                .iter()
                .filter(|(_, _, cont)| cont == c)
                .filter_map(|(code, _, _)| id(code))
                .collect(),
            Region::Named(name) => self.named.get(name).cloned().unwrap_or_default(),
        }
    }

    /// The regions a country belongs to, besides itself: its continent, then named regions.
    pub fn containing(&self, country: CountryId) -> Vec<String> {
        let mut out: Vec<String> =
            continent_of(country).map(|c| format!("continent:{c}")).into_iter().collect();
        out.extend(
            self.named
                .iter()
                .filter(|(_, members)| members.contains(&country))
                .map(|(n, _)| n.clone()),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(code: &str) -> CountryId {
        id(code).unwrap()
    }

    #[test]
    fn parses_every_spelling() {
        let r = Regions::builtin();
        assert_eq!(r.parse("cn"), Ok(Region::Country(cc("CN"))));
        assert_eq!(r.parse("continent:as"), Ok(Region::Continent("AS")));
        assert_eq!(r.parse("EU"), Ok(Region::Country(cc("EU"))), "EU is the registry code");
        assert_eq!(r.parse("eu"), Ok(Region::Named("eu".into())));
        assert_eq!(r.parse("eea"), Ok(Region::Named("eea".into())));
        assert!(matches!(r.parse("atlantis"), Err(RegionError::Unknown(_))));
        assert!(matches!(r.parse("continent:XX"), Err(RegionError::Unknown(_))));
    }

    #[test]
    fn named_regions_and_continents() {
        let r = Regions::builtin();
        assert_eq!(r.expand(&Region::Named("eu".into())).len(), 27);
        assert_eq!(r.expand(&Region::Named("eea".into())).len(), 30);
        assert_eq!(r.containing(cc("DE")), vec!["continent:EU", "eea", "eu"]);
        assert_eq!(r.containing(cc("NO")), vec!["continent:EU", "eea"]);
        assert_eq!(r.containing(cc("CN")), vec!["continent:AS"]);
        let asia = r.expand(&Region::Continent("AS"));
        assert!(asia.contains(&cc("JP")) && !asia.contains(&cc("FR")));
        let all: usize =
            CONTINENTS.iter().map(|(c, _)| r.expand(&Region::Continent(c)).len()).sum();
        assert_eq!(all, COUNTRIES.len() - 2, "every country but EU/AP has one continent");
    }

    #[test]
    fn custom_regions_are_validated() {
        let r = Regions::builtin()
            .with_custom(
                "five-eyes",
                &["US".into(), "gb".into(), "CA".into(), "AU".into(), "NZ".into()],
            )
            .unwrap();
        assert_eq!(r.parse("Five-Eyes"), Ok(Region::Named("five-eyes".into())));
        assert_eq!(r.expand(&Region::Named("five-eyes".into())).len(), 5);
        assert!(matches!(
            Regions::builtin().with_custom("x", &["QQ".into()]),
            Err(RegionError::BadMember { .. })
        ));
        assert!(matches!(
            Regions::builtin().with_custom("eu", &[]),
            Err(RegionError::NameTaken(_))
        ));
        assert!(matches!(
            Regions::builtin().with_custom("CN", &[]),
            Err(RegionError::NameTaken(_))
        ));
    }
}

//! MaxMind DB sources: GeoLite2/GeoIP2 Country and City, DB-IP lite, and the ip-location-db
//! family, read with the `maxminddb` crate.
//!
//! The country of a network is `country.iso_code`, falling back to
//! `registered_country.iso_code` (MaxMind, DB-IP), or a flat `country_code` (ip-location-db).
//! In IPv6 databases the IPv4 space lives at `::/96`; its aliases (`::ffff:0:0/96`,
//! `2002::/16`) are skipped, so every network is read exactly once.

use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;
use tracer_common::CountryId;

use super::{GeoError, RangeMap, compiled::GeoData};

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// The fields of a record that can name a country; everything else is skipped.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    registered_country: Option<Named<'a>>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
}

impl Record<'_> {
    fn code(&self) -> Option<&str> {
        (self.country.as_ref().and_then(|c| c.iso_code))
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))
            .or(self.country_code)
    }
}

fn err(name: &str, reason: impl std::fmt::Display) -> GeoError {
    GeoError::Mmdb { name: name.to_owned(), reason: reason.to_string() }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
fn date(epoch_secs: u64) -> String {
    let z = (epoch_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Reads every network of an MMDB file into a [`GeoData`].
pub fn parse_mmdb(name: &str, bytes: &[u8]) -> Result<GeoData, GeoError> {
    let reader = Reader::from_source(bytes).map_err(|e| err(name, e))?;
    let mut v4 = RangeMap::<u32>::new();
    let mut v6 = RangeMap::<u128>::new();
    let (mut networks, mut with_country) = (0usize, 0usize);
    for item in reader.networks(WithinOptions::default()).map_err(|e| err(name, e))? {
        let item = item.map_err(|e| err(name, e))?;
        networks += 1;
        let Some(record) = item.decode::<Record<'_>>().map_err(|e| err(name, e))? else {
            continue;
        };
        let Some(id) = record
            .code()
            .and_then(|c| <[u8; 2]>::try_from(c.as_bytes()).ok())
            .and_then(CountryId::from_code)
        else {
            continue;
        };
        with_country += 1;
        match item.network().map_err(|e| err(name, e))? {
            ipnetwork::IpNetwork::V4(net) => {
                let first = u32::from(net.network());
                let last = first | u32::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                v4.insert(first, last, id);
            }
            ipnetwork::IpNetwork::V6(net) => {
                let first = u128::from(net.network());
                let last = first | u128::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                v6.insert(first, last, id);
            }
        }
    }
    if with_country == 0 {
        return Err(err(
            name,
            format!(
                "none of its {networks} networks has country.iso_code, registered_country.iso_code or country_code: not a country database?"
            ),
        ));
    }
    let meta = reader.metadata();
    Ok(GeoData {
        source: format!("{} ({name})", meta.database_type),
        build_date: (meta.build_epoch > 0).then(|| date(meta.build_epoch)),
        attribution: None,
        v4: v4.into_runs(),
        v6: v6.into_runs(),
    })
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_781_654_400), "2026-06-17");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}

//! MaxMind DB sources: GeoLite2-ASN, DB-IP ASN lite MMDB, ip-location-db's `asn.mmdb`, read with
//! the `maxminddb` crate.
//!
//! Each network's record must hold `autonomous_system_number` (and usually
//! `autonomous_system_organization`; a missing one reads as an empty name). Networks without a
//! number, and AS 0, are skipped; a database in which no network has a number (a country or
//! city database) is refused. In IPv6 databases the IPv4 space lives at `::/96`; its aliases
//! (`::ffff:0:0/96`, `2002::/16`) are skipped, so every network is read exactly once.

use std::net::IpAddr;

use maxminddb::{Reader, WithinOptions, geoip2};

use super::{AsnError, builder::Builder};

/// Applies every network of an MMDB file to `builder`; returns the database type from the
/// metadata (e.g. `GeoLite2-ASN`).
pub(super) fn parse_mmdb(
    name: &str,
    bytes: &[u8],
    builder: &mut Builder,
) -> Result<String, AsnError> {
    let err = |e: maxminddb::MaxMindDbError| AsnError::mmdb(name, e);
    let reader = Reader::from_source(bytes).map_err(err)?;
    let (mut networks, mut with_number) = (0usize, 0usize);
    for item in reader.networks(WithinOptions::default()).map_err(err)? {
        let item = item.map_err(err)?;
        networks += 1;
        let Some(record) = item.decode::<geoip2::Asn<'_>>().map_err(err)? else {
            continue;
        };
        let Some(number) = record.autonomous_system_number else {
            continue;
        };
        with_number += 1;
        if number == 0 {
            continue;
        }
        let org = record.autonomous_system_organization.unwrap_or("").as_bytes();
        let network = item.network().map_err(err)?;
        let host_bits = |bits: u32| bits.saturating_sub(u32::from(network.prefix()));
        match network.network() {
            IpAddr::V4(addr) => {
                let first = u32::from(addr);
                let last = first | u32::MAX.checked_shr(32 - host_bits(32)).unwrap_or(0);
                builder.insert_v4(first, last, number, org)?;
            }
            IpAddr::V6(addr) => {
                let first = u128::from(addr);
                let last = first | u128::MAX.checked_shr(128 - host_bits(128)).unwrap_or(0);
                builder.insert_v6(first, last, number, org)?;
            }
        }
    }
    let database_type = reader.metadata().database_type.clone();
    if with_number == 0 {
        return Err(AsnError::mmdb(
            name,
            format!(
                "none of its {networks} networks has autonomous_system_number: not an ASN \
                 database (database type {database_type:?})?"
            ),
        ));
    }
    Ok(database_type)
}

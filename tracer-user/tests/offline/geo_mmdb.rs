//! MMDB sources: databases written in the test (MaxMind-style `country.iso_code` with
//! `registered_country` fallback, ip-location-db-style `country_code`, IPv4-only and IPv6)
//! must compile to tables that answer exactly what the `maxminddb` reader answers; broken
//! files are refused with a reason. With `EGRESS_TRACER_REFERENCE_MMDB` (set by
//! `cargo xtask test`, which fetches ip-location-db's own MMDB build of the default data), the
//! CSV loader is also checked against that independent MMDB.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use maxminddb_writer::{Database, metadata::IpVersion, paths::IpAddrWithMask};
use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use serde::{Deserialize, Serialize};
use tracer_common::CountryId;
use tracer_user::{
    base::text::country_label,
    geo::{self, CompiledGeo, GeoError, default_local_networks},
};

#[derive(Serialize)]
struct IsoCode {
    iso_code: &'static str,
}

/// The three record shapes a country database can have.
#[derive(Serialize)]
#[serde(untagged)]
enum Written {
    MaxMind { country: IsoCode, registered_country: IsoCode },
    RegisteredOnly { registered_country: IsoCode },
    Flat { country_code: &'static str },
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Read<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    registered_country: Option<Named<'a>>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
}

const CODES: [&str; 8] = ["CN", "US", "NL", "DE", "RU", "BR", "JP", "IR"];

/// Random disjoint networks (prefix length 8..=28 for IPv4, 16..=64 for IPv6).
fn networks(rng: &mut SmallRng, v6: bool, n: usize) -> Vec<(IpAddr, u8)> {
    let mut taken: BTreeMap<u128, u128> = BTreeMap::new();
    let mut out = Vec::new();
    while out.len() < n {
        let (bits, len) =
            if v6 { (128, rng.random_range(16..=64u8)) } else { (32, rng.random_range(8..=28u8)) };
        let raw: u128 = if v6 {
            (0x2000u128 << 112) | (rng.random::<u128>() >> 3)
        } else {
            u128::from(rng.random::<u32>())
        };
        let host = (1u128 << (bits - u32::from(len))) - 1;
        let (first, last) = (raw & !host, raw | host);
        let overlaps = taken.range(..=last).next_back().is_some_and(|(_, l)| *l >= first);
        if overlaps {
            continue;
        }
        taken.insert(first, last);
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::from(first))
        } else {
            IpAddr::V4(Ipv4Addr::from(first as u32))
        };
        out.push((addr, len));
    }
    out
}

/// Writes an MMDB; IPv4 networks go to `::/96` in an IPv6 database.
fn write(
    rng: &mut SmallRng,
    version: IpVersion,
    v4: &[(IpAddr, u8)],
    v6: &[(IpAddr, u8)],
) -> Vec<u8> {
    let ipv6_db = matches!(version, IpVersion::V6);
    let mut db = Database::default();
    db.metadata.ip_version = version;
    db.metadata.database_type = "Test-Country".into();
    db.metadata.binary_format_major_version = 2;
    db.metadata.build_epoch = 1_781_654_400;
    for (addr, len) in v4.iter().chain(v6) {
        let code = CODES[rng.random_range(0..CODES.len())];
        let record = match rng.random_range(0..3) {
            0 => Written::MaxMind {
                country: IsoCode { iso_code: code },
                registered_country: IsoCode { iso_code: "AQ" },
            },
            1 => Written::RegisteredOnly { registered_country: IsoCode { iso_code: code } },
            _ => Written::Flat { country_code: code },
        };
        let data = db.insert_value(record).expect("insert value");
        let path = match addr {
            IpAddr::V4(a) if ipv6_db => {
                IpAddrWithMask::new(IpAddr::V6(a.to_ipv6_compatible()), len + 96)
            }
            _ => IpAddrWithMask::new(*addr, *len),
        };
        db.insert_node(path, data);
    }
    db.write_to(Vec::new()).expect("write mmdb")
}

/// What the reader says: the country, then the registered country, then `country_code`.
fn reader_answer(reader: &maxminddb::Reader<&[u8]>, addr: IpAddr) -> String {
    let found = reader.lookup(addr).expect("lookup");
    let code = found.decode::<Read<'_>>().expect("decode").and_then(|r| {
        (r.country.and_then(|c| c.iso_code))
            .or(r.registered_country.and_then(|c| c.iso_code))
            .or(r.country_code)
            .map(str::to_owned)
    });
    code.unwrap_or_else(|| "unknown".into())
}

fn random_probe(rng: &mut SmallRng, nets: &[(IpAddr, u8)], v6: bool) -> IpAddr {
    if rng.random_bool(0.5) || nets.is_empty() {
        return if v6 {
            IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | (rng.random::<u128>() >> 3)))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
        };
    }
    let (addr, len) = nets[rng.random_range(0..nets.len())];
    match addr {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) | (rng.random::<u32>() & host)))
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) | (rng.random::<u128>() & host)))
        }
    }
}

fn assert_agrees(bytes: &[u8], probes: &[IpAddr]) {
    let reader = maxminddb::Reader::from_source(bytes).expect("reader");
    let data = geo::parse_bytes("test.mmdb", bytes).expect("parse our way");
    let compiled = CompiledGeo::new(data, &[]).expect("compile");
    let locals = default_local_networks();
    let mut failures = Vec::new();
    for addr in probes {
        let got = compiled.lookup(*addr);
        if locals.iter().any(|n| n.contains(addr)) {
            assert_eq!(got, CountryId::LOCAL, "{addr}");
            continue;
        }
        let want = reader_answer(&reader, *addr);
        if country_label(got) != want {
            failures.push(format!("{addr}: got {}, the reader says {want}", country_label(got)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ: {:?}",
        failures.len(),
        probes.len(),
        &failures[..failures.len().min(10)]
    );
}

#[test]
fn ipv6_database_with_all_record_shapes_agrees_with_the_reader() {
    let mut rng = SmallRng::seed_from_u64(7);
    let (v4, v6) = (networks(&mut rng, false, 3000), networks(&mut rng, true, 3000));
    let bytes = write(&mut rng, IpVersion::V6, &v4, &v6);
    let mut probes: Vec<IpAddr> =
        (0..100_000).map(|_| random_probe(&mut rng, &v4, false)).collect();
    probes.extend((0..100_000).map(|_| random_probe(&mut rng, &v6, true)));
    assert_agrees(&bytes, &probes);
    let data = geo::parse_bytes("test.mmdb", &bytes).unwrap();
    assert_eq!(data.build_date.as_deref(), Some("2026-06-17"));
    assert!(data.source.contains("Test-Country"));
}

#[test]
fn ipv4_only_database_agrees_with_the_reader() {
    let mut rng = SmallRng::seed_from_u64(8);
    let v4 = networks(&mut rng, false, 3000);
    let bytes = write(&mut rng, IpVersion::V4, &v4, &[]);
    let probes: Vec<IpAddr> = (0..100_000).map(|_| random_probe(&mut rng, &v4, false)).collect();
    assert_agrees(&bytes, &probes);
}

#[test]
fn broken_mmdb_files_are_refused_with_a_reason() {
    let mut rng = SmallRng::seed_from_u64(9);
    let v4 = networks(&mut rng, false, 50);
    let good = write(&mut rng, IpVersion::V4, &v4, &[]);
    let marker = b"\xab\xcd\xefMaxMind.com";
    let marker_at = good.windows(marker.len()).rposition(|w| w == marker).unwrap();
    let mut garbage_tree = good.clone();
    for b in &mut garbage_tree[..marker_at / 2] {
        *b = 0xff;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("marker only", marker.to_vec()),
        ("truncated metadata", good[..marker_at + marker.len() + 3].to_vec()),
        ("tree cut off", good[marker_at / 3..].to_vec()),
        ("garbage tree", garbage_tree),
    ];
    for (what, bytes) in cases {
        match geo::parse_bytes("broken.mmdb", &bytes) {
            Err(GeoError::Mmdb { reason, .. }) => assert!(!reason.is_empty(), "{what}"),
            Err(other) => panic!("{what}: unexpected error kind {other}"),
            Ok(data) => panic!("{what}: accepted ({} + {} runs)", data.v4.len(), data.v6.len()),
        }
    }
    // A database without any country field is not a country database.
    let mut db = Database::default();
    db.metadata.binary_format_major_version = 2;
    let data = db.insert_value(BTreeMap::from([("city", "Paris")])).unwrap();
    db.insert_node(IpAddrWithMask::new("1.0.0.0".parse().unwrap(), 8), data);
    let bytes = db.write_to(Vec::new()).unwrap();
    let err = geo::parse_bytes("cities.mmdb", &bytes).unwrap_err().to_string();
    assert!(err.contains("not a country database"), "{err}");
}

#[test]
fn csv_loader_agrees_with_the_independent_mmdb_build_of_the_same_data() {
    let Some(path) = std::env::var_os("EGRESS_TRACER_REFERENCE_MMDB") else {
        eprintln!("EGRESS_TRACER_REFERENCE_MMDB not set: skipped (cargo xtask test sets it)");
        return;
    };
    let bytes = std::fs::read(&path).expect("reference MMDB set but unreadable");
    let reader = maxminddb::Reader::from_source(&bytes[..]).expect("reader");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/source");
    let csv = geo::load_files(&[
        dir.join("geo-whois-asn-country-ipv4.csv.gz"),
        dir.join("geo-whois-asn-country-ipv6.csv.gz"),
    ])
    .unwrap();
    let from_csv = CompiledGeo::new(csv, &[]).unwrap();
    let from_mmdb =
        CompiledGeo::new(geo::parse_bytes("reference.mmdb", &bytes).unwrap(), &[]).unwrap();
    let locals = default_local_networks();
    let mut rng = SmallRng::seed_from_u64(10);
    let mut failures = Vec::new();
    let mut probe = |addr: IpAddr| {
        if locals.iter().any(|n| n.contains(&addr)) {
            return;
        }
        let want = reader_answer(&reader, addr);
        for (what, geo) in [("CSV", &from_csv), ("MMDB", &from_mmdb)] {
            let got = country_label(geo.lookup(addr));
            if got != want {
                failures.push(format!("{what} {addr}: {got}, the reader says {want}"));
            }
        }
    };
    for run in from_csv.v4_runs() {
        for a in
            [Some(run.first), Some(run.last), run.first.checked_sub(1), run.last.checked_add(1)]
                .into_iter()
                .flatten()
        {
            probe(IpAddr::V4(Ipv4Addr::from(a)));
        }
    }
    for run in from_csv.v6_runs() {
        for a in
            [Some(run.first), Some(run.last), run.first.checked_sub(1), run.last.checked_add(1)]
                .into_iter()
                .flatten()
        {
            probe(IpAddr::V6(Ipv6Addr::from(a)));
        }
    }
    for _ in 0..100_000 {
        probe(IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())));
        probe(IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | (rng.random::<u128>() >> 3))));
    }
    assert!(
        failures.is_empty(),
        "{} differ: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

//! The compiled database: local networks win over the data, prefixes tile the runs, lookups
//! agree with the data (IPv6 through the compact structure as the kernel reads it, down to
//! single addresses), and files are recognised by content.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use ipnet::IpNet;
use tracer_common::CountryId;
use tracer_user::geo::{
    CompiledGeo, GeoData, GeoError, NRO_ATTRIBUTION, encode, load_file, load_files, parse_csv,
};

fn id(code: &[u8; 2]) -> CountryId {
    CountryId::from_code(*code).expect("valid code")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

const CSV: &str = "\
0.0.0.0,255.255.255.255,AU
8.8.8.0,8.8.8.255,US
36.110.0.0,36.110.255.255,CN
2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,JP
2000::,2fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,DE
240e::,240e:ffff:ffff:ffff:ffff:ffff:ffff:ffff,CN
";

fn compiled(extra: &[&str]) -> CompiledGeo {
    let data = parse_csv("test.csv", CSV.as_bytes()).expect("parses");
    let extra: Vec<IpNet> = extra.iter().map(|s| s.parse().expect("prefix")).collect();
    CompiledGeo::new(data, &extra).expect("compiles")
}

#[test]
fn local_networks_win_over_the_data() {
    let geo = compiled(&["203.0.114.7/24", "2a00:1:2:3::1/64"]);
    for (addr, expected) in [
        ("8.8.8.8", id(b"US")),
        ("8.8.9.8", id(b"AU")),
        ("36.110.0.1", id(b"CN")),
        ("192.168.1.1", CountryId::LOCAL),
        ("10.1.2.3", CountryId::LOCAL),
        ("100.64.0.1", CountryId::LOCAL),
        ("100.128.0.1", id(b"AU")),
        ("255.255.255.255", CountryId::LOCAL),
        ("224.0.0.251", CountryId::LOCAL),
        ("203.0.114.200", CountryId::LOCAL), // the extra LAN prefix
        ("203.0.115.1", id(b"AU")),
        ("2001:db8::1", CountryId::LOCAL),
        ("2001:db9::1", id(b"DE")),
        ("240e::1", id(b"CN")),
        ("2a00:1:2:3::99", CountryId::LOCAL),
        ("2a00:1:2:4::1", id(b"DE")),
        ("fe80::1", CountryId::LOCAL),
        ("fd00::1", CountryId::LOCAL),
        ("ff02::1", CountryId::LOCAL),
        ("::1", CountryId::LOCAL),
        ("::ffff:8.8.8.8", CountryId::LOCAL),
        ("64:ff9b::808:808", CountryId::UNKNOWN), // NAT64 is egress, and not in this data
        ("3000::1", CountryId::UNKNOWN),
    ] {
        assert_eq!(geo.lookup(ip(addr)), expected, "{addr}");
    }
    let data = parse_csv("test.csv", CSV.as_bytes()).expect("parses");
    assert_eq!(data.lookup(ip("192.168.1.1")), id(b"AU"), "the data itself says AU");
}

#[test]
fn prefixes_tile_the_runs() {
    let geo = compiled(&[]);
    let v4 = geo.v4_prefixes();
    let covered: u64 = v4.iter().map(|(net, _)| 1u64 << (32 - net.prefix_len())).sum();
    let in_runs: u64 = geo.v4_runs().iter().map(|r| u64::from(r.last - r.first) + 1).sum();
    assert_eq!(covered, in_runs);
    assert_eq!(in_runs, 1 << 32, "AU covers the whole space");
    for (net, expected) in &v4 {
        assert_eq!(geo.lookup(IpAddr::V4(net.network())), *expected, "{net}");
        assert_eq!(geo.lookup(IpAddr::V4(net.broadcast())), *expected, "{net}");
    }
    for (net, expected) in geo.v6_prefixes() {
        assert_eq!(geo.lookup(IpAddr::V6(net.network())), expected, "{net}");
        assert_eq!(geo.lookup(IpAddr::V6(net.broadcast())), expected, "{net}");
    }
    let stats = geo.stats();
    assert_eq!(stats.v4_prefixes, v4.len());
    assert_eq!(stats.v6_prefixes, geo.v6_prefixes().len());
    assert_eq!(stats.v4_nodes, geo.v4_dxr().nodes.len());
    assert_eq!(stats.v4_bytes, geo.v4_dxr().bytes());
    assert!(v4.contains(&("8.8.8.0/24".parse().expect("prefix"), id(b"US"))));
}

#[test]
fn later_files_override_earlier_ones() {
    let mut data = parse_csv("a.csv", CSV.as_bytes()).expect("parses");
    data.apply(parse_csv("b.csv", b"8.8.8.8,8.8.8.8,GB\n").expect("parses"));
    assert_eq!(data.source, "a.csv + b.csv");
    assert_eq!(data.lookup(ip("8.8.8.8")), id(b"GB"));
    assert_eq!(data.lookup(ip("8.8.8.9")), id(b"US"));
    assert_eq!(data.lookup(ip("240e::1")), id(b"CN"));
}

/// A file in the system temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("geo-test-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn files_are_recognised_by_content() {
    let mut data = parse_csv("x", CSV.as_bytes()).expect("parses");
    data.source = "test data".into();
    data.build_date = Some("2026-06-17".into());
    data.attribution = Some(NRO_ATTRIBUTION.into());
    let compact = TempFile::new("db.bin", &encode(&data));
    assert_eq!(load_file(&compact.0).expect("compact"), data);

    let csv = TempFile::new("ranges.txt", CSV.as_bytes());
    let loaded = load_file(&csv.0).expect("csv");
    assert_eq!((loaded.v4, loaded.v6), (data.v4.clone(), data.v6.clone()));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &encode(&data)).expect("in memory");
    let gz_compact = TempFile::new("db.bin.gz", &gz.finish().expect("in memory"));
    assert_eq!(load_file(&gz_compact.0).expect("gzipped compact"), data);

    let mut mmdb = vec![0u8; 64];
    mmdb.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    mmdb.extend_from_slice(&[0xe0; 32]);
    let mmdb = TempFile::new("country.mmdb", &mmdb);
    assert!(
        matches!(load_file(&mmdb.0), Err(GeoError::Mmdb { .. })),
        "garbage behind the MMDB marker"
    );

    let both = load_files(&[&csv.0, &compact.0]).expect("both");
    assert!(both.source.ends_with(" + test data"), "{}", both.source);
    assert_eq!(both.lookup(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))), id(b"US"));
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let big = TempFile::new("huge.csv", b"");
    let file = std::fs::OpenOptions::new().write(true).open(&big.0).expect("open");
    // A sparse file: no disk space used.
    file.set_len(tracer_user::geo::MAX_INPUT_BYTES + 1).expect("set_len");
    assert!(matches!(
        load_file(&big.0),
        Err(GeoError::Input(tracer_user::base::input::InputError::TooLarge { .. }))
    ));
}

#[test]
fn invalid_ids_are_refused() {
    let data = GeoData {
        v6: vec![tracer_user::geo::Run::new(1, 2, CountryId(CountryId::NUM_IDS))],
        ..GeoData::default()
    };
    assert!(matches!(CompiledGeo::new(data, &[]), Err(GeoError::InvalidId { .. })));
}

/// IPv6 data finer than /64 in places (a /120, a /128, a range ending mid-/64 and a gap inside a
/// /64), inside coarser allocations.
const FINE_V6: &str = "\
2a00::,2a00:ffff:ffff:ffff:ffff:ffff:ffff:ffff,DE
2a00:1450:4001:800::,2a00:1450:4001:800::ff,IE
2a00:1450:4001:800::1:0,2a00:1450:4001:800::1:0,FR
2a00:1450:4001:801::,2a00:1450:4001:801:8000::,NL
2a00:1450:4001:802::,2a00:1450:4001:802:ffff:ffff:ffff:ffff,US
2a01::,2a01::7fff:ffff:ffff:ffff,GB
2a01:0:0:1::,2a01:0:0:1:ffff:ffff:ffff:ffff,GB
";

#[test]
fn ipv6_answers_exactly_below_slash64() {
    let data = parse_csv("fine.csv", FINE_V6.as_bytes()).expect("parses");
    let geo = CompiledGeo::new(data, &["2a00:1450:4001:803::/64".parse().expect("prefix")])
        .expect("compiles");
    let slash64 = |s: &str| u128::from(s.parse::<Ipv6Addr>().expect("address"));
    // The /64s the data is finer in: ::/64 (local ::1 and ::ffff:0:0/96 amid unknown), the
    // three of the data, and 2a01::/64 (half GB, half a gap: unknown is an answer too).
    let fine = ["::", "2a00:1450:4001:800::", "2a00:1450:4001:801::", "2a01::"].map(slash64);
    let mut probes: Vec<u128> = vec![0, u128::MAX];
    let v6_runs = geo.v6_runs();
    for run in &v6_runs {
        probes.extend([run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)]);
    }
    for first in fine {
        let last = first | u128::from(u64::MAX);
        probes.extend((0..64).map(|bit| first | (1u128 << bit)));
        probes.extend([first, last, first + 0xff, first + 0x100, first + 0x1_0000]);
    }
    for addr in probes {
        let a = Ipv6Addr::from(addr);
        let runs = tracer_user::geo::lookup_runs(&v6_runs, addr);
        assert_eq!(geo.v6_dxr().lookup_v6(addr), runs, "{a}: compact structure vs runs");
        assert_eq!(geo.lookup(IpAddr::V6(a)), runs, "{a}: CompiledGeo::lookup vs runs");
    }
    for (addr, expected) in [
        ("2a00:1450:4001:800::80", id(b"IE")),
        ("2a00:1450:4001:800::100", id(b"DE")),
        ("2a00:1450:4001:800::1:0", id(b"FR")),
        ("2a00:1450:4001:801:8000::", id(b"NL")),
        ("2a00:1450:4001:801:8000::1", id(b"DE")),
        ("2a00:1450:4001:802::1", id(b"US")),
        ("2a00:1450:4001:803::1", CountryId::LOCAL),
        ("2a01::8000:0:0:0", CountryId::UNKNOWN),
        ("2a01::1:0:0:0", id(b"GB")),
        ("2a01:0:0:1::1", id(b"GB")),
        ("2a01::", id(b"GB")),
    ] {
        assert_eq!(geo.lookup(ip(addr)), expected, "{addr}");
    }
    let stats = geo.stats();
    assert_eq!(stats.v6_nodes, geo.v6_dxr().nodes.len());
    assert_eq!(stats.v6_bytes, geo.v6_dxr().bytes());
}

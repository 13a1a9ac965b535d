//! Tests of the ASN module: each format, range edges, merging order, gzip, bad rows with their
//! line numbers, hostile organisation names and refused inputs.

use std::{
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use flate2::{Compression, write::GzEncoder};
use maxminddb_writer::{Database, metadata::IpVersion, paths::IpAddrWithMask};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// The (number, org) of `addr` in `db`.
fn at(db: &AsnDb, addr: &str) -> Option<(u32, String)> {
    db.lookup(ip(addr)).map(|asn| (asn.number, asn.org.to_owned()))
}

fn some(number: u32, org: &str) -> Option<(u32, String)> {
    Some((number, org.to_owned()))
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

/// The error message of parsing `text` as one source named `t.csv`.
fn error_of(text: &str) -> String {
    AsnDb::from_bytes("t.csv", text.as_bytes()).expect_err("must be refused").to_string()
}

const IP_LOCATION_DB_V4: &str = "\
1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"
1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd
2.26.200.0,2.26.215.255,201907,\"LLC \"\"SPUTNIK\"\"\"
214.95.0.0,215.0.255.255,749,United States Department of Defense (DoD)
215.0.0.0,215.1.3.255,721,DoD Network Information Center
";

const IP_LOCATION_DB_V6: &str = "\
2001::,2001::ffff:ffff:ffff:ffff:ffff:ffff,6939,Hurricane Electric LLC
2001:200:1ba::,2001:200:1ba:ffff:ffff:ffff:ffff:ffff,24047,\"Internet Systems Consortium, Inc.\"
";

#[test]
fn ip_location_db_csv_v4_edges() {
    let db = AsnDb::from_bytes("asn-ipv4.csv", IP_LOCATION_DB_V4.as_bytes()).expect("parses");
    assert_eq!(at(&db, "0.255.255.255"), None);
    assert_eq!(at(&db, "1.0.0.0"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.0.255"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.1.0"), None);
    assert_eq!(at(&db, "1.0.3.255"), None);
    assert_eq!(at(&db, "1.0.4.0"), some(38803, "Gtelecom Pty Ltd"));
    assert_eq!(at(&db, "1.0.7.255"), some(38803, "Gtelecom Pty Ltd"));
    assert_eq!(at(&db, "1.0.8.0"), None);
    assert_eq!(at(&db, "2.26.210.1"), some(201907, "LLC \"SPUTNIK\""));
    // The real file's overlap: the later row wins for 215.0.0.0/16.
    assert_eq!(at(&db, "214.95.0.0"), some(749, "United States Department of Defense (DoD)"));
    assert_eq!(at(&db, "214.255.255.255"), some(749, "United States Department of Defense (DoD)"));
    assert_eq!(at(&db, "215.0.0.0"), some(721, "DoD Network Information Center"));
    assert_eq!(at(&db, "215.1.3.255"), some(721, "DoD Network Information Center"));
    assert_eq!(at(&db, "215.1.4.0"), None);
    assert_eq!(at(&db, "255.255.255.255"), None);
    // IPv4-mapped IPv6 is looked up as IPv4; other IPv6 is not.
    assert_eq!(at(&db, "::ffff:1.0.0.1"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "2001::1"), None);
    assert_eq!(db.ranges(), 5);
    assert_eq!(db.ranges_by_family(), (5, 0));
    assert_eq!(db.entries(), 5);
    let source = &db.sources()[0];
    assert_eq!((source.format, source.gzipped, source.rows), (Format::Csv, false, 5));
    assert!(db.memory_bytes() > 0);
    let debug = format!("{db:?}");
    assert!(debug.contains("v4_ranges: 5, v6_ranges: 0, entries: 5"), "{debug}");
}

#[test]
fn ip_location_db_csv_v6_edges() {
    let db = AsnDb::from_bytes("asn-ipv6.csv", IP_LOCATION_DB_V6.as_bytes()).expect("parses");
    assert_eq!(at(&db, "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None);
    assert_eq!(at(&db, "2001::"), some(6939, "Hurricane Electric LLC"));
    assert_eq!(
        at(&db, "2001::ffff:ffff:ffff:ffff:ffff:ffff"),
        some(6939, "Hurricane Electric LLC")
    );
    assert_eq!(at(&db, "2001:1::"), None);
    assert_eq!(at(&db, "2001:200:1b9:ffff:ffff:ffff:ffff:ffff"), None);
    assert_eq!(at(&db, "2001:200:1ba::"), some(24047, "Internet Systems Consortium, Inc."));
    assert_eq!(
        at(&db, "2001:200:1ba:ffff:ffff:ffff:ffff:ffff"),
        some(24047, "Internet Systems Consortium, Inc.")
    );
    assert_eq!(at(&db, "2001:200:1bb::"), None);
    assert_eq!(at(&db, "1.0.0.1"), None);
    assert_eq!(db.ranges_by_family(), (0, 2));
}

#[test]
fn numeric_csv_files_pick_the_family_per_file() {
    let v4 = "16777216,16777471,13335,\"Cloudflare, Inc.\"\n4294967295,4294967295,7,Top\n";
    let db = AsnDb::from_bytes("asn-ipv4-num.csv", v4.as_bytes()).expect("parses");
    assert_eq!(at(&db, "1.0.0.0"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.0.255"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.1.0"), None);
    assert_eq!(at(&db, "255.255.255.255"), some(7, "Top"));
    // One big integer makes every integer row of the file IPv6, small ones too.
    let v6 = "1,1,1,Low\n\
        42540528726795050063891204319802818560,42540528727329395276160870415022948351,2500,\
        WIDE Project\n";
    let db = AsnDb::from_bytes("asn-ipv6-num.csv", v6.as_bytes()).expect("parses");
    assert_eq!(at(&db, "::1"), some(1, "Low"));
    assert_eq!(at(&db, "0.0.0.1"), None);
    assert_eq!(at(&db, "2001:200::"), some(2500, "WIDE Project"));
    assert_eq!(at(&db, "2001:200:1b9:ffff:ffff:ffff:ffff:ffff"), some(2500, "WIDE Project"));
    assert_eq!(at(&db, "2001:200:1ba::"), None);
}

#[test]
fn geolite2_blocks_csv_with_header() {
    let text = "network,autonomous_system_number,autonomous_system_organization\n\
        1.0.0.0/24,13335,CLOUDFLARENET\n\
        2001:200::/32,2500,\"WIDE Project\"\n\
        ::ffff:8.8.8.0/120,15169,GOOGLE\n";
    let db = AsnDb::from_bytes("GeoLite2-ASN-Blocks.csv", text.as_bytes()).expect("parses");
    assert_eq!(at(&db, "1.0.0.255"), some(13335, "CLOUDFLARENET"));
    assert_eq!(at(&db, "1.0.1.0"), None);
    assert_eq!(at(&db, "2001:200:ffff:ffff:ffff:ffff:ffff:ffff"), some(2500, "WIDE Project"));
    assert_eq!(at(&db, "2001:201::"), None);
    // An IPv4-mapped network is IPv4.
    assert_eq!(at(&db, "8.8.8.8"), some(15169, "GOOGLE"));
    assert_eq!(db.ranges_by_family(), (2, 1));
    assert_eq!(db.sources()[0].rows, 3);
}

#[test]
fn iptoasn_tsv_skips_unrouted_rows() {
    let text = "0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n\
        1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET - Cloudflare, Inc.\n\
        1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\
        1.0.4.0\t1.0.7.255\t38803\tAU\tGTELECOM-AUSTRALIA Gtelecom Pty Ltd\n\
        2001:200::\t2001:200:ffff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE-BB WIDE Project\n\
        2001:201::\t2001:201::ff\t7\tJP\t\n";
    let db = AsnDb::from_bytes("ip2asn-combined.tsv", text.as_bytes()).expect("parses");
    assert_eq!(db.sources()[0].format, Format::Tsv);
    assert_eq!(db.sources()[0].rows, 4);
    assert_eq!(at(&db, "0.1.2.3"), None);
    assert_eq!(at(&db, "1.0.0.0"), some(13335, "CLOUDFLARENET - Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.2.0"), None);
    assert_eq!(at(&db, "1.0.7.255"), some(38803, "GTELECOM-AUSTRALIA Gtelecom Pty Ltd"));
    assert_eq!(at(&db, "2001:200::1"), some(2500, "WIDE-BB WIDE Project"));
    // An empty description is kept as an empty name.
    assert_eq!(at(&db, "2001:201::ff"), some(7, ""));
    // The numeric variant (ip2asn-v4-u32.tsv).
    let text = "16777216\t16777471\t13335\tUS\tCLOUDFLARENET\n";
    let db = AsnDb::from_bytes("ip2asn-v4-u32.tsv", text.as_bytes()).expect("parses");
    assert_eq!(at(&db, "1.0.0.128"), some(13335, "CLOUDFLARENET"));
    // Only unrouted rows: empty.
    let text = "0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n";
    assert_eq!(
        AsnDb::from_bytes("x.tsv", text.as_bytes()).unwrap_err().to_string(),
        "x.tsv: the database holds no AS ranges"
    );
}

#[derive(serde::Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

#[derive(serde::Serialize)]
struct NumberOnly {
    autonomous_system_number: u32,
}

#[derive(serde::Serialize)]
struct CountryRecord {
    country_code: &'static str,
}

/// An MMDB of `version` with `records` at `(network, prefix length)`; IPv4 networks go to
/// `::/96` in an IPv6 database.
fn mmdb<T: serde::Serialize>(version: IpVersion, records: Vec<(&str, u8, T)>) -> Vec<u8> {
    let v6_db = matches!(version, IpVersion::V6);
    let mut db = Database::default();
    db.metadata.ip_version = version;
    db.metadata.database_type = "Test-ASN".into();
    db.metadata.binary_format_major_version = 2;
    for (addr, len, record) in records {
        let data = db.insert_value(record).expect("insert value");
        let path = match ip(addr) {
            IpAddr::V4(a) if v6_db => {
                IpAddrWithMask::new(IpAddr::V6(a.to_ipv6_compatible()), len + 96)
            }
            addr => IpAddrWithMask::new(addr, len),
        };
        db.insert_node(path, data);
    }
    db.write_to(Vec::new()).expect("write mmdb")
}

fn rec(number: u32, org: &'static str) -> AsnRecord {
    AsnRecord { autonomous_system_number: number, autonomous_system_organization: org }
}

#[test]
fn mmdb_v4_and_v6() {
    let bytes = mmdb(
        IpVersion::V4,
        vec![
            ("1.0.0.0", 24, rec(13335, "Cloudflare, Inc.")),
            ("8.8.8.0", 24, rec(15169, "Google LLC")),
        ],
    );
    assert_eq!(detect_format(&bytes), Some(Format::Mmdb));
    let db = AsnDb::from_bytes("asn-v4.mmdb", &bytes).expect("parses");
    assert_eq!(at(&db, "0.255.255.255"), None);
    assert_eq!(at(&db, "1.0.0.0"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.0.255"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.1.0"), None);
    assert_eq!(at(&db, "8.8.8.8"), some(15169, "Google LLC"));
    assert_eq!(db.sources()[0].database_type.as_deref(), Some("Test-ASN"));

    let bytes = mmdb(
        IpVersion::V6,
        vec![
            ("1.0.0.0", 24, rec(13335, "Cloudflare, Inc.")),
            ("2001:200::", 32, rec(2500, "WIDE Project")),
            ("2606:4700::", 32, rec(13335, "Cloudflare, Inc.")),
            ("2a00::", 12, rec(0, "reserved")), // AS 0: skipped
        ],
    );
    let db = AsnDb::from_bytes("GeoLite2-ASN.mmdb", &bytes).expect("parses");
    assert_eq!(at(&db, "1.0.0.255"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "::ffff:1.0.0.7"), some(13335, "Cloudflare, Inc."));
    assert_eq!(at(&db, "1.0.1.0"), None);
    assert_eq!(at(&db, "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"), None);
    assert_eq!(at(&db, "2001:200::"), some(2500, "WIDE Project"));
    assert_eq!(at(&db, "2001:200:ffff:ffff:ffff:ffff:ffff:ffff"), some(2500, "WIDE Project"));
    assert_eq!(at(&db, "2001:201::"), None);
    assert_eq!(at(&db, "2a00::1"), None);
    assert_eq!(db.ranges_by_family(), (1, 2));
    // Two entries: the same AS and name in both families are interned once.
    assert_eq!(db.entries(), 2);

    // Gzipped MMDB.
    let db = AsnDb::from_bytes("GeoLite2-ASN.mmdb.gz", &gz(&bytes)).expect("parses");
    assert!(db.sources()[0].gzipped);
    assert_eq!(at(&db, "2001:200::1"), some(2500, "WIDE Project"));

    // A record without organisation reads as an empty name.
    let bytes =
        mmdb(IpVersion::V4, vec![("9.9.9.0", 24, NumberOnly { autonomous_system_number: 19281 })]);
    let db = AsnDb::from_bytes("n.mmdb", &bytes).expect("parses");
    assert_eq!(at(&db, "9.9.9.9"), some(19281, ""));
}

#[test]
fn mmdb_without_asn_fields_is_refused() {
    let bytes = mmdb(IpVersion::V4, vec![("1.0.0.0", 8, CountryRecord { country_code: "AU" })]);
    let message = AsnDb::from_bytes("country.mmdb", &bytes).unwrap_err().to_string();
    assert_eq!(
        message,
        "country.mmdb: invalid MaxMind DB: none of its 1 networks has autonomous_system_number: \
         not an ASN database (database type \"Test-ASN\")?"
    );
    // A truncated file (the marker survives, the tree does not).
    let message = AsnDb::from_bytes("cut.mmdb", &bytes[bytes.len() - 200..]).unwrap_err();
    assert!(message.to_string().starts_with("cut.mmdb: invalid MaxMind DB: "), "{message}");
}

#[test]
fn later_sources_win_where_they_overlap() {
    let base = "10.0.0.0,10.0.255.255,100,Base\n2001:db8::,2001:db8::ffff,100,Base\n";
    let fix = "10.0.1.0,10.0.1.255,200,\"Fix\"\n2001:db8::10,2001:db8::1f,200,Fix\n";
    let db = AsnDb::from_sources(&[("base.csv", base.as_bytes()), ("fix.csv", fix.as_bytes())])
        .expect("parses");
    assert_eq!(at(&db, "10.0.0.255"), some(100, "Base"));
    assert_eq!(at(&db, "10.0.1.0"), some(200, "Fix"));
    assert_eq!(at(&db, "10.0.1.255"), some(200, "Fix"));
    assert_eq!(at(&db, "10.0.2.0"), some(100, "Base"));
    assert_eq!(at(&db, "2001:db8::f"), some(100, "Base"));
    assert_eq!(at(&db, "2001:db8::10"), some(200, "Fix"));
    assert_eq!(at(&db, "2001:db8::1f"), some(200, "Fix"));
    assert_eq!(at(&db, "2001:db8::20"), some(100, "Base"));
    assert_eq!(db.ranges_by_family(), (3, 3));
    // The other order: the base covers the fix entirely.
    let db = AsnDb::from_sources(&[("fix.csv", fix.as_bytes()), ("base.csv", base.as_bytes())])
        .expect("parses");
    assert_eq!(at(&db, "10.0.1.0"), some(100, "Base"));
    assert_eq!(db.ranges(), 2);
    let names: Vec<_> = db.sources().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fix.csv", "base.csv"]);
}

#[test]
fn load_reads_files_in_order_and_names_missing_ones() {
    let dir = std::env::temp_dir().join(format!("asn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let base = dir.join("base.csv.gz");
    let fix = dir.join("fix.tsv");
    std::fs::write(&base, gz(b"10.0.0.0,10.0.255.255,100,Base\n")).expect("write");
    std::fs::write(&fix, "10.0.1.0\t10.0.1.255\t200\tZZ\tFix\n").expect("write");
    let db = AsnDb::load(&[base.clone(), fix.clone()]).expect("loads");
    assert_eq!(at(&db, "10.0.1.1"), some(200, "Fix"));
    assert_eq!(at(&db, "10.0.2.1"), some(100, "Base"));
    assert_eq!(db.sources()[0].name, base.display().to_string());
    assert!(db.sources()[0].gzipped);
    let missing = dir.join("missing.csv");
    let err = AsnDb::load(&[base, missing.clone()]).unwrap_err();
    assert!(
        matches!(&err, AsnError::Input(crate::base::input::InputError::Io { path, .. }) if *path == missing),
        "{err}"
    );
    assert!(err.to_string().starts_with(&format!("reading {}: ", missing.display())), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert!(matches!(AsnDb::load::<PathBuf>(&[]), Err(AsnError::NoFiles)));
    assert!(matches!(
        AsnDb::load(&[Path::new("/")]),
        Err(AsnError::Input(crate::base::input::InputError::Io { .. }))
    ));
}

#[test]
fn gzip_input() {
    let packed = gz(IP_LOCATION_DB_V4.as_bytes());
    assert_eq!(detect_format(&packed), Some(Format::Gzip));
    let db = AsnDb::from_bytes("asn-ipv4.csv.gz", &packed).expect("parses");
    assert_eq!(at(&db, "1.0.0.1"), some(13335, "Cloudflare, Inc."));
    assert_eq!((db.sources()[0].format, db.sources()[0].gzipped), (Format::Csv, true));
    // Gzip inside gzip, a truncated stream, and the output limit.
    let err = AsnDb::from_bytes("x.gz", &gz(&packed)).unwrap_err().to_string();
    assert_eq!(err, "x.gz: unknown ASN database format: gzip inside gzip");
    let err = AsnDb::from_bytes("x.gz", &packed[..packed.len() / 2]).unwrap_err();
    assert!(
        matches!(err, AsnError::Input(crate::base::input::InputError::Decompress { .. })),
        "{err}"
    );
    let big = gz(&vec![b'a'; 10_000]);
    assert!(matches!(
        input::gunzip("x", &big, 9_999),
        Err(AsnError::Input(crate::base::input::InputError::TooLarge { limit: 9_999, .. }))
    ));
    assert_eq!(input::gunzip("x", &big, 10_000).expect("fits").len(), 10_000);
}

#[test]
fn bad_rows_name_their_line() {
    // Line 1 is a header, 2 a comment, 3 blank: the bad row is line 5.
    let head = "start,end,asn,org\n# comment\n\n1.0.0.0,1.0.0.255,13335,Cloudflare\n";
    let cases = [
        ("1.0.0.x,1.0.0.255,1,A", "t.csv:5: bad address \"1.0.0.x\""),
        ("1.0.0.0,1.0.0.256,1,A", "t.csv:5: bad address \"1.0.0.256\""),
        (
            "1.0.1.9,1.0.1.1,1,A",
            "t.csv:5: first address \"1.0.1.9\" is after last address \"1.0.1.1\"",
        ),
        (
            "2001::9,2001::1,1,A",
            "t.csv:5: first address \"2001::9\" is after last address \"2001::1\"",
        ),
        (
            "1.0.0.0,2001::1,1,A",
            "t.csv:5: first address \"1.0.0.0\" and last address \"2001::1\" are of different \
             families",
        ),
        ("1.0.0.0,1.0.0.1,AU,A", "t.csv:5: bad AS number \"AU\""),
        ("1.0.0.0,1.0.0.1,-5,A", "t.csv:5: bad AS number \"-5\""),
        (
            "1.0.0.0,1.0.0.1,99999999999,A",
            "t.csv:5: bad AS number \"99999999999\": above 4294967295",
        ),
        (
            "1.0.0.0,1.0.0.1,7",
            "t.csv:5: missing column: expected 4 fields (first,last,AS number,organisation), \
             found 3",
        ),
        (
            "1.0.0.0/24,7",
            "t.csv:5: missing column: expected 3 fields (network,AS number,organisation), found 2",
        ),
        ("1.0.0.0/33,7,A", "t.csv:5: bad network \"1.0.0.0/33\""),
        ("1.0.0.0,1.0.0.1,7,\"Open", "t.csv:5: unterminated quote in field 4"),
        ("1.0.0.0,1.0.0.1,7,\"A\"B", "t.csv:5: unexpected text after quoted field 4"),
        ("start,end,asn,org", "t.csv:5: bad address \"start\""),
    ];
    for (row, expected) in cases {
        assert_eq!(error_of(&format!("{head}{row}\n")), expected, "row {row:?}");
        // The same with CRLF line endings.
        let crlf = format!("{head}{row}\n").replace('\n', "\r\n");
        assert_eq!(error_of(&crlf), expected, "row {row:?} with CRLF");
    }
    // TSV: the layout in the message is the TSV one.
    let text = "1.0.0.0\t1.0.0.255\t1\tUS\tA\n1.0.1.0\t1.0.1.255\t2\tUS\n";
    assert_eq!(
        AsnDb::from_bytes("t.tsv", text.as_bytes()).unwrap_err().to_string(),
        "t.tsv:2: missing column: expected 5 tab-separated fields (first, last, AS number, \
         country, description), found 4"
    );
    let text = "1.0.0.0\t1.0.0.255\t1\tUS\tA\n\n1.0.1.0\t1.0.1.255\tAS-X\tUS\tB\n";
    assert_eq!(
        AsnDb::from_bytes("t.tsv", text.as_bytes()).unwrap_err().to_string(),
        "t.tsv:3: bad AS number \"AS-X\""
    );
    // A parse error is structured too.
    let err = AsnDb::from_bytes("t.csv", b"1.0.0.0,1.0.0.1,7\n").unwrap_err();
    assert!(
        matches!(err, AsnError::Input(crate::base::input::InputError::Parse { line: 1, .. })),
        "{err}"
    );
}

#[test]
fn hostile_org_names_are_valid_bounded_utf8() {
    let mut text = Vec::new();
    text.extend_from_slice(b"1.0.0.0,1.0.0.255,1,\"quote \"\" comma, \\ backslash <b>\"\n");
    text.extend_from_slice(b"1.0.1.0,1.0.1.255,2,esc\x1b[2Jnul\x00tab\tdel\x7f\n");
    text.extend_from_slice(b"1.0.2.0,1.0.2.255,3,bad \xff\xfe utf8 \xe2\x82\n");
    text.extend_from_slice(b"1.0.3.0,1.0.3.255,4,");
    text.extend_from_slice("ü".repeat(200).as_bytes());
    text.extend_from_slice("\n1.0.4.0,1.0.4.255,5,\"\u{202e}rtl\u{200b}\"\n".as_bytes());
    text.extend_from_slice("1.0.5.0,1.0.5.255,6,\"line\u{2028}sep\u{85}\"\n".as_bytes());
    // The NUL is past the first 4 KiB that format detection looks at.
    let mut padded = "# padding\n".repeat(500).into_bytes();
    padded.extend_from_slice(&text);
    let db = AsnDb::from_bytes("evil.csv", &padded).expect("parses");
    assert_eq!(at(&db, "1.0.0.1"), some(1, "quote \" comma, \\ backslash <b>"));
    assert_eq!(at(&db, "1.0.1.1"), some(2, "esc\u{fffd}[2Jnul\u{fffd}tab\u{fffd}del\u{fffd}"));
    assert_eq!(at(&db, "1.0.2.1"), some(3, "bad \u{fffd}\u{fffd} utf8 \u{fffd}"));
    let long = db.lookup(ip("1.0.3.1")).expect("covered");
    assert_eq!(long.org, "ü".repeat(64));
    assert_eq!(long.org.len(), MAX_ORG_BYTES);
    // Format characters are not control characters: kept (the agent escapes on output).
    assert_eq!(at(&db, "1.0.4.1"), some(5, "\u{202e}rtl\u{200b}"));
    // U+0085 is a control character, U+2028 is not.
    assert_eq!(at(&db, "1.0.5.1"), some(6, "line\u{2028}sep\u{fffd}"));
    for asn in (0..6).filter_map(|i| db.lookup(IpAddr::V4(Ipv4Addr::new(1, 0, i, 1)))) {
        assert!(asn.org.len() <= MAX_ORG_BYTES);
        assert!(!asn.org.chars().any(char::is_control), "{:?}", asn.org);
    }
    // MMDB names are cleaned the same way.
    let bytes = mmdb(IpVersion::V4, vec![("1.0.0.0", 24, rec(1, " a\nb\u{7} "))]);
    let db = AsnDb::from_bytes("evil.mmdb", &bytes).expect("parses");
    assert_eq!(at(&db, "1.0.0.0"), some(1, "a\u{fffd}b\u{fffd}"));
}

#[test]
fn unknown_formats_and_empty_sources_are_refused() {
    let unknown = |bytes: &[u8]| AsnDb::from_bytes("x", bytes).unwrap_err().to_string();
    assert_eq!(
        unknown(b"\xfd7zXZ\x00\x00\x04"),
        "x: unknown ASN database format: xz-compressed (decompress it, or use gzip)"
    );
    assert_eq!(
        unknown(b"PK\x03\x04rest"),
        "x: unknown ASN database format: a zip archive (unpack it first)"
    );
    assert_eq!(
        unknown(b"ETGEO\x01..."),
        "x: unknown ASN database format: a compact country database (geo), not an ASN database"
    );
    assert_eq!(
        unknown(b"\x00\x01\x02garbage"),
        "x: unknown ASN database format: binary content (NUL bytes) that is neither gzip nor \
         MaxMind DB"
    );
    assert_eq!(
        unknown(b"hello world\n1 2 3\n"),
        "x: unknown ASN database format: the first line has neither commas nor tabs"
    );
    assert_eq!(detect_format(b"hello"), None);
    assert_eq!(
        detect_format(b"\xef\xbb\xbf# c\n1.0.0.0\t1.0.0.1\t1\tUS\tA, B\n"),
        Some(Format::Tsv)
    );
    assert_eq!(detect_format(b"1.0.0.0,1.0.0.1,1,\"A\tB\"\n"), Some(Format::Csv));
    // No rows at all, only a header, only comments.
    for text in ["", "\n\n", "# nothing\n", "start,end,asn,org\n"] {
        assert_eq!(unknown(text.as_bytes()), "x: the database holds no AS ranges", "{text:?}");
    }
    assert_eq!(unknown(&gz(b"")), "x: the database holds no AS ranges");
    assert!(matches!(AsnDb::from_sources(&[]), Err(AsnError::NoFiles)));
    // A country CSV given as --asn: the AS number column is a country code.
    assert_eq!(
        unknown(b"1.0.0.0,1.0.0.255,AU\n"),
        "x:1: missing column: expected 4 fields (first,last,AS number,organisation), found 3"
    );
}

#[test]
fn byte_order_mark_and_as_prefix() {
    let text = "\u{feff}1.0.0.0,1.0.0.255,AS13335,Cloudflare\n";
    let db = AsnDb::from_bytes("bom.csv", text.as_bytes()).expect("parses");
    assert_eq!(at(&db, "1.0.0.9"), some(13335, "Cloudflare"));
}

#[test]
fn interning_shares_names_and_merges_touching_ranges() {
    let mut text = String::new();
    for i in 0..200u32 {
        // Pairs of touching /24s of the same AS merge into one range.
        text.push_str(&format!("10.{}.0.0,10.{}.0.255,{},Same Org\n", i, i, 64_512 + i / 2));
        text.push_str(&format!("10.{}.1.0,10.{}.1.255,{},Same Org\n", i, i, 64_512 + i / 2));
    }
    let db = AsnDb::from_bytes("many.csv", text.as_bytes()).expect("parses");
    assert_eq!(db.ranges(), 200);
    assert_eq!(db.entries(), 100);
    assert_eq!(db.sources()[0].rows, 400);
    assert_eq!(db.orgs, "Same Org");
    assert_eq!(at(&db, "10.5.1.255"), some(64_514, "Same Org"));
    assert_eq!(at(&db, "10.5.2.0"), None);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(db.lookup(v6), None);
}

//! CSV range files: accepted layouts, file-order overrides, and errors with line and reason.

use std::io::Write as _;

use flate2::{Compression, write::GzEncoder};
use tracer_common::CountryId;
use tracer_user::geo::{GeoData, GeoError, Run, parse_csv};

fn id(code: &[u8; 2]) -> CountryId {
    CountryId::from_code(*code).expect("valid code")
}

fn v4(a: &str) -> u32 {
    a.parse::<std::net::Ipv4Addr>().expect("IPv4").into()
}

fn v6(a: &str) -> u128 {
    a.parse::<std::net::Ipv6Addr>().expect("IPv6").into()
}

fn parse(text: &str) -> GeoData {
    parse_csv("geo.csv", text.as_bytes()).expect("parses")
}

fn parse_err(text: &[u8]) -> String {
    parse_csv("geo.csv", text).expect_err("must fail").to_string()
}

#[test]
fn plain_quoted_commented_and_mixed_rows() {
    let data = parse(concat!(
        "\u{feff}first,last,country\r\n",
        "# a comment\n",
        "\n",
        "1.0.0.0,1.0.0.255,AU\r\n",
        "\"1.0.1.0\" , \"1.0.3.255\",\"cn\",\"China, People's Republic\"\n",
        "2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,JP,extra,columns\n",
        "  # indented comment\n",
    ));
    assert_eq!(data.source, "geo.csv");
    assert_eq!(data.build_date, None);
    assert_eq!(
        data.v4,
        vec![
            Run::new(v4("1.0.0.0"), v4("1.0.0.255"), id(b"AU")),
            Run::new(v4("1.0.1.0"), v4("1.0.3.255"), id(b"CN")),
        ]
    );
    assert_eq!(
        data.v6,
        vec![Run::new(v6("2001:200::"), v6("2001:200:ffff:ffff:ffff:ffff:ffff:ffff"), id(b"JP"))]
    );
}

#[test]
fn rows_apply_in_file_order_not_narrowest_first() {
    let data = parse(concat!(
        "10.0.0.0,10.0.0.255,US\n",
        "10.0.0.0,10.0.0.15,DE\n",    // nested refinement
        "10.0.0.8,10.0.1.7,FR\n",     // partial overlap, reaching past the first row
        "10.0.0.0,10.0.0.255,GB\n",   // a later wide row overrides the narrower earlier ones
        "10.0.0.128,10.0.0.128,ZZ\n", // unknown erases
        "10.0.0.129,10.0.0.255,gb\n", // same country as the neighbour: merged
    ));
    assert_eq!(
        data.v4,
        vec![
            Run::new(v4("10.0.0.0"), v4("10.0.0.127"), id(b"GB")),
            Run::new(v4("10.0.0.129"), v4("10.0.0.255"), id(b"GB")),
            Run::new(v4("10.0.1.0"), v4("10.0.1.7"), id(b"FR")),
        ]
    );
}

#[test]
fn pseudo_codes() {
    let data = parse(
        "1.0.0.0,1.0.0.255,EU\n2.0.0.0,2.0.0.255,AP\n3.0.0.0,3.0.0.255,XX\n4.0.0.0,4.0.0.0,--\n",
    );
    let ids: Vec<_> = data.v4.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(b"EU"), id(b"AP")]);
}

#[test]
fn integer_rows_are_ipv4_unless_the_file_has_big_integers() {
    let data = parse("\"16777216\",\"16777471\",\"AU\",\"Australia\"\n0,0,US\n");
    assert_eq!(
        data.v4,
        vec![Run::new(0, 0, id(b"US")), Run::new(16_777_216, 16_777_471, id(b"AU"))]
    );
    assert!(data.v6.is_empty());

    // ip2location's IPv6 layout: the IPv4-mapped rows go to IPv4, the others to IPv6.
    let data = parse(concat!(
        "\"0\",\"281470681743359\",\"-\",\"-\"\n",
        "\"281470698520576\",\"281470698520831\",\"AU\",\"Australia\"\n", // ::ffff:1.0.0.0/120
        "\"42540528726795050063891204319802818560\",\"42540528726795050063891204319802818560\",\"JP\",\"Japan\"\n",
    ));
    assert_eq!(data.v4, vec![Run::new(v4("1.0.0.0"), v4("1.0.0.255"), id(b"AU"))]);
    assert_eq!(data.v6, vec![Run::new(v6("2001:200::"), v6("2001:200::"), id(b"JP"))]);
}

#[test]
fn gzip_is_transparent() {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(b"1.0.0.0,1.0.0.255,AU\n").expect("in memory");
    let gz = enc.finish().expect("in memory");
    let data = parse_csv("geo.csv.gz", &gz).expect("parses");
    assert_eq!(data.v4, vec![Run::new(v4("1.0.0.0"), v4("1.0.0.255"), id(b"AU"))]);
}

#[test]
fn errors_name_the_line_and_reason() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"1.0.0.0,1.0.0.255,AU\n1.2.3.9,1.2.3.1,US\n",
            "geo.csv:2: first address 1.2.3.9 is after last address 1.2.3.1",
        ),
        (
            b"1.0.0.0,::1,AU\n",
            "geo.csv:1: first address 1.0.0.0 and last address ::1 are of different families",
        ),
        (b"1.0.0.0,1.0.0.255,AU\n1.0.0.256,1.0.1.0,AU\n", "geo.csv:2: bad address \"1.0.0.256\""),
        (b"1.0.0.0,1.0.0.x,AU\n", "geo.csv:1: bad address \"1.0.0.x\""),
        (
            b"1.0.0.0,1.0.0.255,A1B\n",
            "geo.csv:1: bad country code \"A1B\": expected two ASCII letters",
        ),
        (b"1.0.0.0,1.0.0.255,C3\n", "geo.csv:1: bad country code \"C3\""),
        (
            b"1.0.0.0,1.0.0.255\n",
            "geo.csv:1: expected at least 3 fields (first,last,country), found 2",
        ),
        (b"1.0.0.0,1.0.0.255,AU\n\n2.0.0.0,2.0.0.\xff,AU\n", "geo.csv:3: not valid UTF-8"),
        (b"1.0.0.0,1.0.0.255,AU\nfirst,last,cc\n", "geo.csv:2: bad address \"first\""),
        (b"\"1.0.0.0,1.0.0.255,AU\n", "geo.csv:1: unterminated quote in field 1"),
        (b"1,::5,AU\n", "geo.csv:1: first address 1 and last address ::5 are of different"),
        (b"first,last,cc\n# nothing\n", "geo.csv: the database holds no address ranges"),
        (b"", "geo.csv: the database holds no address ranges"),
    ];
    for (input, expected) in cases {
        let message = parse_err(input);
        assert!(message.starts_with(expected), "{message:?} should start with {expected:?}");
    }
}

#[test]
fn truncated_gzip_is_a_decompression_error() {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&b"1.0.0.0,1.0.0.255,AU\n".repeat(1000)).expect("in memory");
    let gz = enc.finish().expect("in memory");
    let err = parse_csv("geo.csv.gz", &gz[..gz.len() / 2]).expect_err("truncated");
    assert!(
        matches!(err, GeoError::Input(tracer_user::base::input::InputError::Decompress { .. })),
        "{err}"
    );
}

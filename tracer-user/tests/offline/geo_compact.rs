//! The compact form: exact round trips, and clean rejection of garbage, truncation and hostile
//! headers.

use std::io::Write as _;

use flate2::{Compression, write::ZlibEncoder};
use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::CountryId;
use tracer_user::geo::{
    GeoData, GeoError, NRO_ATTRIBUTION, RangeMap, Run,
    compact::{MAGIC, MAX_SEGMENTS, decode, encode},
};

fn sample(rng: &mut SmallRng) -> GeoData {
    let mut v4 = RangeMap::<u32>::new();
    let mut v6 = RangeMap::<u128>::new();
    v4.insert(0, 5, CountryId(1)); // touches the start of the space
    v6.insert(u128::MAX - 10, u128::MAX, CountryId(2)); // touches the end
    for _ in 0..2_000 {
        let a: u32 = rng.random();
        v4.insert(
            a,
            a.saturating_add(rng.random_range(0..1 << 20)),
            CountryId(rng.random_range(1..=676)),
        );
        let b: u128 = rng.random::<u128>() & !((1 << 64) - 1);
        v6.insert(
            b,
            b.saturating_add(rng.random_range(0..1u128 << 80)),
            CountryId(rng.random_range(1..=676)),
        );
    }
    GeoData {
        source: "geo-whois-asn-country 2.3.2026061719".into(),
        build_date: Some("2026-06-17".into()),
        attribution: Some(NRO_ATTRIBUTION.into()),
        v4: v4.into_runs(),
        v6: v6.into_runs(),
    }
}

#[test]
fn round_trips() {
    let mut rng = SmallRng::seed_from_u64(3);
    let data = sample(&mut rng);
    let bytes = encode(&data);
    assert!(bytes.starts_with(MAGIC));
    assert_eq!(decode(&bytes).expect("decodes"), data);

    let edges = GeoData {
        source: String::new(),
        build_date: None,
        attribution: None,
        v4: vec![Run::new(0, u32::MAX, CountryId(9))],
        v6: vec![],
    };
    assert_eq!(decode(&encode(&edges)).expect("decodes"), edges);
    let sparse = GeoData {
        v4: vec![Run::new(u32::MAX, u32::MAX, CountryId(9))],
        v6: vec![Run::new(1, 1, CountryId(1)), Run::new(2, 2, CountryId(2))],
        ..edges
    };
    assert_eq!(decode(&encode(&sparse)).expect("decodes"), sparse);
}

#[test]
fn rejects_garbage_and_every_truncation() {
    let bytes = encode(&sample(&mut SmallRng::seed_from_u64(5)));
    assert!(decode(b"").is_err());
    assert!(decode(b"ETGEO\x02whatever").is_err());
    assert!(decode(MAGIC).is_err());
    for len in (0..bytes.len()).step_by(97).chain(bytes.len() - 8..bytes.len()) {
        let err = decode(&bytes[..len]).expect_err("truncated");
        assert!(matches!(err, GeoError::Compact { .. }), "{len}: {err}");
    }
    let mut rng = SmallRng::seed_from_u64(6);
    for _ in 0..200 {
        let mut corrupt = bytes.clone();
        let at = rng.random_range(MAGIC.len()..corrupt.len());
        corrupt[at] ^= 1 << rng.random_range(0..8);
        assert!(decode(&corrupt).is_err(), "flipped bit at {at} went unnoticed");
    }
}

/// A compact file with a hand-made body (valid zlib, hostile content).
fn with_body(body: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(MAGIC.to_vec(), Compression::default());
    enc.write_all(body).expect("in memory");
    enc.finish().expect("in memory")
}

fn reason(body: &[u8]) -> String {
    match decode(&with_body(body)) {
        Err(GeoError::Compact { reason, .. }) => reason,
        other => panic!("expected a compact error, got {other:?}"),
    }
}

#[test]
fn rejects_hostile_bodies_with_a_reason() {
    // Empty metadata: source "", no build date, no attribution.
    let meta = [0u8, 0, 0];
    let huge_count = [&meta[..], &[0xff, 0xff, 0xff, 0xff, 0x0f]].concat();
    assert!(reason(&huge_count).contains("segment count"), "{}", reason(&huge_count));
    let huge_string = [0xff, 0xff, 0xff, 0xff, 0x0f, b'x'];
    assert!(reason(&huge_string).contains("exceeds the data"));
    let overlong_varint = [0xffu8; 30];
    assert!(reason(&overlong_varint).contains("varint"));
    // One IPv4 segment with country id 1023 (LOCAL is not stored in a database).
    let bad_id = [&meta[..], &[1, 0, 0xff, 0x07], &[0]].concat();
    assert!(reason(&bad_id).contains("invalid country id 1023"), "{}", reason(&bad_id));
    // Two IPv4 segments, the second not after the first.
    let unordered = [&meta[..], &[2, 0, 0, 1, 2], &[0]].concat();
    assert!(reason(&unordered).contains("does not start after"));
    // An IPv4 segment starting beyond 255.255.255.255.
    let beyond = [&meta[..], &[2, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 2], &[0]].concat();
    assert!(reason(&beyond).contains("beyond the address space"));
    let trailing = [&meta[..], &[1, 0, 1], &[0], &[7]].concat();
    assert!(reason(&trailing).contains("trailing"));
    // A count within the data but above the segment limit: refused before reading on.
    let over = MAX_SEGMENTS + 1;
    let mut many = meta.to_vec();
    let mut n = over;
    while n >= 0x80 {
        many.push((n as u8) | 0x80);
        n >>= 7;
    }
    many.push(n as u8);
    many.extend(std::iter::repeat_n(1u8, 2 * over));
    assert!(reason(&many).contains("exceeds the data or limit"), "{}", reason(&many));
    // Valid but holding nothing.
    let empty = [&meta[..], &[0], &[0]].concat();
    assert!(matches!(decode(&with_body(&empty)), Err(GeoError::Empty { .. })));
}

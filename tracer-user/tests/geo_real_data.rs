//! The real geo-whois-asn-country data, if present in ../shared/data (skipped otherwise):
//! load, merge, compile, check known addresses, and print sizes and timings.
//!
//! For release-mode timings: `cargo test --release -p tracer-user --test geo_real_data --
//! --nocapture`.

use std::{net::IpAddr, path::PathBuf, time::Instant};

use tracer_common::CountryId;
use tracer_user::geo::{CompiledGeo, NRO_ATTRIBUTION, decode, encode, load_files};

fn data_dir() -> PathBuf {
    std::env::var_os("EGRESS_TRACER_GEO_DATA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/data/geo-whois-asn-country")
        },
        PathBuf::from,
    )
}

#[test]
fn real_data_loads_merges_and_answers() {
    let dir = data_dir();
    let files = [
        dir.join("geo-whois-asn-country-ipv4.csv.gz"),
        dir.join("geo-whois-asn-country-ipv6.csv.gz"),
    ];
    if !files.iter().all(|f| f.exists()) {
        eprintln!("skipped: {} not found", dir.display());
        return;
    }

    let started = Instant::now();
    let mut data = load_files(&files).expect("loads");
    let loaded = started.elapsed();
    data.source = "geo-whois-asn-country 2.3.2026061719".into();
    data.attribution = Some(NRO_ATTRIBUTION.into());
    let geo = CompiledGeo::new(data.clone(), &[]).expect("compiles");
    let compiled = started.elapsed() - loaded;
    let v4_prefixes = geo.v4_prefixes();
    let v6_prefixes = geo.v6_prefixes();
    let total = started.elapsed();

    let encode_started = Instant::now();
    let compact = encode(&data);
    let encoded = encode_started.elapsed();
    let decode_started = Instant::now();
    let decoded = decode(&compact).expect("decodes");
    let decode_time = decode_started.elapsed();
    assert_eq!(decoded, data);

    let stats = geo.stats();
    println!("database runs: v4 {} v6 {}", data.v4.len(), data.v6.len());
    println!("with local: {stats:?}");
    println!("compact: {} bytes", compact.len());
    println!(
        "times: load+merge {loaded:?}, local+table {compiled:?}, prefixes {:?}, total {total:?}; \
         encode {encoded:?}, decode {decode_time:?}",
        total - loaded - compiled
    );

    assert!(data.v4.len() > 100_000 && data.v6.len() > 50_000);
    assert_eq!(stats.v4_prefixes, v4_prefixes.len());
    assert_eq!(stats.v6_prefixes, v6_prefixes.len());
    assert!(v4_prefixes.len() >= stats.v4_runs && v6_prefixes.len() >= stats.v6_runs);
    assert!(compact.len() < 4 << 20, "compact form is {} bytes", compact.len());

    let code = |addr: &str| {
        let id = geo.lookup(addr.parse::<IpAddr>().expect("address"));
        id.code().map_or_else(|| format!("{id:?}"), |c| String::from_utf8_lossy(&c).into_owned())
    };
    for (addr, expected) in [
        ("36.110.0.1", "CN"),
        ("8.8.8.8", "US"),
        ("193.0.0.1", "NL"),
        ("1.0.0.1", "AU"),
        ("240e::1", "CN"),
        ("2001:4860:4860::8888", "US"),
    ] {
        assert_eq!(code(addr), expected, "{addr}");
    }
    for local in ["192.168.1.1", "10.0.0.1", "2001:db8::1", "fe80::1"] {
        assert_eq!(geo.lookup(local.parse().expect("address")), CountryId::LOCAL, "{local}");
    }
    // The table answers as the runs do at every IPv4 run boundary.
    for run in geo.v4_runs() {
        for addr in [run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)] {
            let expected = tracer_user::geo::lookup_runs(geo.v4_runs(), addr);
            assert_eq!(geo.lookup(IpAddr::V4(addr.into())), expected, "{addr:#x}");
        }
    }
}

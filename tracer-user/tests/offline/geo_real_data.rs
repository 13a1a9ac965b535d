//! The real geo-whois-asn-country data, if present in ../shared/data (skipped otherwise):
//! load, merge, compile, check known addresses, check that the compact structures answer as
//! the runs do, and print sizes and timings.
//!
//! For release-mode timings: `cargo test --release -p tracer-user --test geo_real_data --
//! --nocapture`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::Instant,
};

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::CountryId;
use tracer_user::geo::{
    CompiledGeo, NRO_ATTRIBUTION, build_dxr, decode, encode, load_files, lookup_runs,
};

fn data_dir() -> PathBuf {
    std::env::var_os("EGRESS_TRACER_GEO_DATA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/data/geo-whois-asn-country")
        },
        PathBuf::from,
    )
}

/// The IPv4 and IPv6 files, if both are present.
fn data_files() -> Option<[PathBuf; 2]> {
    let dir = data_dir();
    let files = [
        dir.join("geo-whois-asn-country-ipv4.csv.gz"),
        dir.join("geo-whois-asn-country-ipv6.csv.gz"),
    ];
    if files.iter().all(|f| f.exists()) {
        Some(files)
    } else {
        eprintln!("skipped: {} not found", dir.display());
        None
    }
}

#[test]
fn real_data_loads_merges_and_answers() {
    let Some(files) = data_files() else { return };

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
    let v4_runs = geo.v4_runs();
    for run in &v4_runs {
        for addr in [run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)] {
            let expected = tracer_user::geo::lookup_runs(&v4_runs, addr);
            assert_eq!(geo.lookup(IpAddr::V4(addr.into())), expected, "{addr:#x}");
        }
    }
}

#[test]
fn real_compact_structures_answer_as_the_runs() {
    let Some(files) = data_files() else { return };
    let geo = CompiledGeo::new(load_files(&files).expect("loads"), &[]).expect("compiles");

    // The builds alone, timed (CompiledGeo::new did the same builds).
    let started = Instant::now();
    let v4 = build_dxr(&geo.v4_runs()).expect("fits");
    let v4_built = started.elapsed();
    let started = Instant::now();
    let v6 = build_dxr(&geo.v6_runs()).expect("fits");
    let v6_built = started.elapsed();
    assert_eq!(v4.nodes.len(), geo.v4_dxr().nodes.len());
    assert_eq!(v6.ranges, geo.v6_dxr().ranges);
    for (family, dxr, runs, built) in
        [("IPv4", &v4, geo.v4_runs().len(), v4_built), ("IPv6", &v6, geo.v6_runs().len(), v6_built)]
    {
        println!(
            "{family}: {runs} runs -> {} nodes ({} more shared by dedup), {} ranges, {} bytes \
             ({:.2} MiB); build {built:?}",
            dxr.nodes.len(),
            dxr.shared_nodes,
            dxr.used_ranges(),
            dxr.bytes(),
            dxr.bytes() as f64 / f64::from(1 << 20),
        );
    }
    assert!(v4.bytes() + v6.bytes() <= 4 << 20, "the kernel's geo maps fit in 4 MiB");

    let mut rng = SmallRng::seed_from_u64(0x0006_4064);
    let started = Instant::now();
    let mut checked = 0usize;
    let runs = geo.v4_runs();
    let mut probes: Vec<u32> = Vec::with_capacity(runs.len() * 4 + 100_000);
    for run in &runs {
        probes.extend([run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)]);
    }
    probes.extend((0..100_000).map(|_| rng.random::<u32>()));
    for addr in probes {
        let expected = lookup_runs(&runs, addr);
        assert_eq!(v4.lookup_v4(addr), expected, "{}", Ipv4Addr::from(addr));
        assert_eq!(geo.lookup(IpAddr::V4(addr.into())), expected, "{}", Ipv4Addr::from(addr));
        checked += 1;
    }
    let runs = geo.v6_runs();
    let mut probes: Vec<u128> = Vec::with_capacity(runs.len() * 4 + 100_000);
    for run in &runs {
        probes.extend([run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)]);
    }
    for i in 0..100_000 {
        probes.push(match i % 4 {
            0 => rng.random(),
            1 => (0x2000_u128 << 112) | rng.random_range(0..1u128 << 125), // 2000::/3
            2 => {
                // Inside a random run (the allocated space).
                let run = runs[rng.random_range(0..runs.len())];
                rng.random_range(run.first..=run.last)
            }
            _ => {
                // Just inside a random run's ends, where the data is finest.
                let run = runs[rng.random_range(0..runs.len())];
                run.last.saturating_sub(rng.random_range(0..0x1_0000))
            }
        });
    }
    for addr in probes {
        let expected = lookup_runs(&runs, addr);
        let a = Ipv6Addr::from(addr);
        assert_eq!(v6.lookup_v6(addr), expected, "{a}: compact structure vs runs");
        assert_eq!(geo.lookup(IpAddr::V6(a)), expected, "{a}: CompiledGeo::lookup vs runs");
        checked += 1;
    }
    println!(
        "checked {checked} addresses (every run boundary, 200000 random) in {:?}",
        started.elapsed()
    );
}

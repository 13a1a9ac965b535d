//! The real geo-whois-asn-country data, if present in ../shared/data (skipped otherwise):
//! load, merge, compile, check known addresses, check that the IPv6 table with its fallback
//! prefixes answers as the runs do, and print sizes and timings.
//!
//! For release-mode timings: `cargo test --release -p tracer-user --test geo_real_data --
//! --nocapture`.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
    time::Instant,
};

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::{
    CountryId,
    geo_table::{ROOT_BLOCKS, V6_TABLE_BYTES, lookup_v6},
};
use tracer_user::geo::{
    CompiledGeo, NRO_ATTRIBUTION, build_table, decode, encode, load_files, lookup_runs,
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
    for run in geo.v4_runs() {
        for addr in [run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)] {
            let expected = tracer_user::geo::lookup_runs(geo.v4_runs(), addr);
            assert_eq!(geo.lookup(IpAddr::V4(addr.into())), expected, "{addr:#x}");
        }
    }
}

/// A longest-prefix match over IPv6 prefixes, as the kernel's LPM trie answers.
struct Lpm {
    /// Networks by prefix length, longest first.
    by_len: Vec<(u8, HashMap<u128, CountryId>)>,
}

impl Lpm {
    fn new(prefixes: &[(ipnet::Ipv6Net, CountryId)]) -> Self {
        let mut by_len: BTreeMap<u8, HashMap<u128, CountryId>> = BTreeMap::new();
        for (net, id) in prefixes {
            let len = net.prefix_len();
            assert!(len >= 64, "{net} is coarser than the table's /64");
            let fresh = by_len.entry(len).or_default().insert(u128::from(net.network()), *id);
            assert!(fresh.is_none(), "{net} twice");
        }
        Self { by_len: by_len.into_iter().rev().collect() }
    }

    fn lookup(&self, addr: u128) -> CountryId {
        (self.by_len.iter())
            .find_map(|(len, nets)| nets.get(&(addr & (u128::MAX << (128 - len)))).copied())
            .unwrap_or(CountryId::UNKNOWN)
    }
}

#[test]
fn real_ipv6_table_and_fallback_answer_as_the_runs() {
    let Some(files) = data_files() else { return };
    let geo = CompiledGeo::new(load_files(&files).expect("loads"), &[]).expect("compiles");
    let runs = geo.v6_runs();

    // The build alone, timed (CompiledGeo::new did the same build).
    let started = Instant::now();
    let table = build_table(runs, V6_TABLE_BYTES).expect("fits");
    let built = started.elapsed();
    let started = Instant::now();
    let prefixes = geo.v6_fallback_prefixes();
    let listed = started.elapsed();
    assert_eq!(table.blocks, geo.v6_table());
    assert_eq!(table.fallback, geo.v6_fallback_nodes());
    let stats = geo.stats();
    assert_eq!(stats.v6_table_blocks, table.blocks.len());
    assert_eq!(stats.v6_table_bytes, table.bytes());
    assert_eq!(stats.v6_fallback_prefixes, prefixes.len());
    println!(
        "IPv6 table: {} runs -> {} blocks ({} root + {} deeper; {} more shared by dedup, {} \
         before), {} bytes ({:.1} MiB); {} FALLBACK /64s holding {} prefixes (of {} in the \
         full decomposition); build {built:?}, fallback prefixes {listed:?}",
        runs.len(),
        table.blocks.len(),
        ROOT_BLOCKS,
        table.blocks.len() - ROOT_BLOCKS as usize,
        table.shared_blocks,
        table.blocks.len() + table.shared_blocks,
        table.bytes(),
        table.bytes() as f64 / f64::from(1 << 20),
        table.fallback.len(),
        prefixes.len(),
        stats.v6_prefixes,
    );

    let lpm = Lpm::new(&prefixes);
    let mut rng = SmallRng::seed_from_u64(0x0006_4064);
    let mut probes: Vec<u128> = Vec::with_capacity(runs.len() * 4 + 100_000);
    for run in runs {
        probes.extend([run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)]);
    }
    let boundaries = probes.len();
    let nodes = geo.v6_fallback_nodes();
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
                let (first, last) = nodes[rng.random_range(0..nodes.len())];
                rng.random_range(first..=last)
            }
        });
    }
    let started = Instant::now();
    let mut fell_back = 0usize;
    for addr in &probes {
        let addr = *addr;
        let expected = lookup_runs(runs, addr);
        let kernel = match lookup_v6(&addr.to_be_bytes(), |i| table.blocks.get(i as usize)) {
            CountryId::FALLBACK => {
                fell_back += 1;
                lpm.lookup(addr)
            }
            id => id,
        };
        let a = Ipv6Addr::from(addr);
        assert_eq!(kernel, expected, "{a}: table + fallback trie vs runs");
        assert_eq!(geo.lookup(IpAddr::V6(a)), expected, "{a}: CompiledGeo::lookup vs runs");
    }
    println!(
        "checked {} addresses ({boundaries} run boundaries, 100000 random; {fell_back} went \
         to the fallback trie) in {:?}",
        probes.len(),
        started.elapsed()
    );
    assert!(fell_back > 25_000, "{fell_back}");
}

//! Proof that the country data the agent loads answers exactly what its source says:
//! the embedded default against its source CSV on every range boundary, and the tables inside
//! the kernel (read back, and through the program itself) against the CSV on random addresses.

use crate::support;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use crate::support::{
    csv_oracle::Oracle,
    frames::{Frame, GATEWAY_MAC, IPV4, IPV6},
};
use aya::programs::{TestRun as _, TestRunOptions};
use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::CountryId;
use tracer_user::{
    agent::database::{self, KernelTables},
    base::text::country_label,
    config::cli::GeoArgs,
    geo::{CompiledGeo, default_local_networks},
    kernel::{Kernel, LoadOptions, Lookup, programs},
};

fn source_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/source");
    vec![
        dir.join("geo-whois-asn-country-ipv4.csv.gz"),
        dir.join("geo-whois-asn-country-ipv6.csv.gz"),
    ]
}

fn oracle() -> Oracle {
    let files = source_files();
    Oracle::from_files(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

fn is_local(addr: IpAddr) -> bool {
    default_local_networks().iter().any(|net| net.contains(&addr))
}

/// Checks one answer: local networks are `local` whatever the CSV says; elsewhere the code
/// must be the CSV's (or `unknown` where no row covers the address).
fn check(what: &str, addr: IpAddr, got: CountryId, oracle: &Oracle) -> Result<(), String> {
    if is_local(addr) {
        return if got == CountryId::LOCAL {
            Ok(())
        } else {
            Err(format!("{what}: {addr} is local, got {}", country_label(got)))
        };
    }
    let want = oracle
        .answer(addr)
        .map_or("unknown".to_owned(), |cc| String::from_utf8_lossy(&cc).into_owned());
    if country_label(got) == want {
        Ok(())
    } else {
        Err(format!("{what}: {addr}: got {}, the CSV says {want}", country_label(got)))
    }
}

fn v4(a: u128) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a as u32))
}

fn v6(a: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

fn boundary_probes(rows: &[(u128, u128)], max: u128) -> impl Iterator<Item = u128> + '_ {
    rows.iter().flat_map(move |(first, last)| {
        [Some(*first), Some(*last), first.checked_sub(1), last.checked_add(1).filter(|a| *a <= max)]
            .into_iter()
            .flatten()
    })
}

fn embedded() -> CompiledGeo {
    database::compile(&GeoArgs::default(), &[]).expect("embedded database")
}

#[test]
fn embedded_default_matches_its_source_csv_on_every_range_boundary() {
    let oracle = oracle();
    let geo = embedded();
    let mut failures = Vec::new();
    let mut probes = 0usize;
    for a in boundary_probes(&oracle.rows_v4, u128::from(u32::MAX)) {
        probes += 1;
        failures.extend(check("embedded", v4(a), geo.lookup(v4(a)), &oracle).err());
    }
    for a in boundary_probes(&oracle.rows_v6, u128::MAX) {
        probes += 1;
        failures.extend(check("embedded", v6(a), geo.lookup(v6(a)), &oracle).err());
    }
    assert!(probes > 2_000_000, "every row's boundaries were probed ({probes})");
    assert!(
        failures.is_empty(),
        "{} of {probes} boundaries differ, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

/// Random addresses: half uniform, half inside a random row of the source.
fn random_addresses(oracle: &Oracle, n: usize, rng: &mut SmallRng) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let a = if i % 2 == 0 {
            u128::from(rng.random::<u32>())
        } else {
            let (first, last) = oracle.rows_v4[rng.random_range(0..oracle.rows_v4.len())];
            first + rng.random_range(0..=(last - first))
        };
        out.push(v4(a));
    }
    for i in 0..n {
        let a = if i % 4 == 0 {
            // Uniform over 2000::/3, where the allocations are.
            (0x2000u128 << 112) | (rng.random::<u128>() >> 3)
        } else {
            let (first, last) = oracle.rows_v6[rng.random_range(0..oracle.rows_v6.len())];
            first + rng.random_range(0..=(last - first))
        };
        out.push(v6(a));
    }
    out
}

fn load(tables: &KernelTables) -> Kernel {
    support::require_root();
    let mut kernel =
        Kernel::load(&LoadOptions { geo: tables.sizes(), ..LoadOptions::default() }).expect("load");
    tables.fill(&mut kernel).expect("fill");
    kernel
}

fn frame_to(addr: IpAddr, index: usize) -> Frame {
    let b = (index as u32).to_be_bytes();
    let mac = [0x02, 0xee, b[0], b[1], b[2], b[3]];
    match addr {
        IpAddr::V4(a) => {
            Frame::eth(GATEWAY_MAC, mac).ethertype(IPV4).ipv4(Ipv4Addr::new(10, 0, 0, 2), a, 5, 8)
        }
        IpAddr::V6(a) => {
            Frame::eth(GATEWAY_MAC, mac).ethertype(IPV6).ipv6("fd00::2".parse().unwrap(), a, 8)
        }
    }
}

/// Runs one frame per address through the upload program; returns the country each got.
fn through_program(kernel: &mut Kernel, addrs: &[IpAddr]) -> Vec<CountryId> {
    let reader = kernel.counter_reader().expect("reader");
    for (i, addr) in addrs.iter().enumerate() {
        let frame = frame_to(*addr, i);
        let opts = TestRunOptions { data_in: Some(&frame.0), ..Default::default() };
        let result = kernel.program(programs::UPLOAD).unwrap().test_run(opts).expect("test run");
        assert_eq!(result.return_value, 0);
    }
    let snapshot = reader.snapshot().expect("snapshot");
    let mut by_index = vec![CountryId::LOCAL; addrs.len()];
    for key in snapshot.counters.keys() {
        let i = u32::from_be_bytes([key.mac[2], key.mac[3], key.mac[4], key.mac[5]]) as usize;
        by_index[i] = CountryId(key.country);
    }
    by_index
}

#[test]
#[ignore = "needs root: run by cargo xtask test"]
fn kernel_tables_and_program_answer_what_the_csv_says() {
    let oracle = oracle();
    let geo = embedded();
    let mut rng = SmallRng::seed_from_u64(0x5eed_e9e5);
    let addrs = random_addresses(&oracle, 100_000, &mut rng);

    // The compact structures as the kernel holds them, read back.
    let tables = KernelTables::build(&geo, Lookup::Table);
    assert!(tables.v4.nodes.len() > 1000 && tables.v6.nodes.len() > 1000);
    let mut kernel = load(&tables);
    let kernel_geo = kernel.read_geo().expect("read back");
    let failures: Vec<String> = addrs
        .iter()
        .filter_map(|a| check("kernel tables", *a, kernel_geo.lookup(*a), &oracle).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} differ, e.g. {:?}",
        failures.len(),
        addrs.len(),
        &failures[..failures.len().min(10)]
    );

    // The program itself, on a sample, in table mode and in LPM reference mode.
    let sample: Vec<IpAddr> = addrs.iter().step_by(20).copied().collect();
    let mut reference = load(&KernelTables::build(&geo, Lookup::Lpm));
    reference.set_lookup(Lookup::Lpm).expect("lpm mode");
    let mut fast = load(&tables);
    let by_table = through_program(&mut fast, &sample);
    let by_lpm = through_program(&mut reference, &sample);
    for ((addr, table), lpm) in sample.iter().zip(&by_table).zip(&by_lpm) {
        assert_eq!(table, lpm, "{addr}: table and LPM reference disagree");
        let got = if *table == CountryId::LOCAL { CountryId::LOCAL } else { *table };
        if let Err(e) = check("program", *addr, got, &oracle) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_country_in_the_embedded_database_has_a_name_and_a_continent() {
    let geo = embedded();
    let mut missing = std::collections::BTreeSet::new();
    for id in geo.v4_runs().iter().map(|r| r.id).chain(geo.v6_runs().iter().map(|r| r.id)) {
        if id.is_country()
            && (tracer_user::geo::regions::country_name(id).is_none()
                || tracer_user::geo::regions::continent_of(id).is_none())
        {
            missing.insert(country_label(id));
        }
    }
    // EU and AP are registry pseudo-codes: named, but on no continent.
    missing.retain(|c| *c != "EU" && *c != "AP");
    assert!(missing.is_empty(), "codes without a name or continent: {missing:?}");
}

//! The IPv4 direct table answers exactly what a binary search over the runs answers, for random
//! addresses and at every run boundary.

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::{
    CountryId,
    geo_table::{Block, ROOT_BLOCKS, lookup_v4},
};
use tracer_user::geo::{RangeMap, Run, build_v4_table, lookup_runs};

/// Random runs at every granularity: /8-sized down to single addresses, clustered so that many
/// /16s and /24s are mixed, with a few runs touching 0 and 255.255.255.255.
fn random_runs(rng: &mut SmallRng) -> Vec<Run<u32>> {
    let mut map = RangeMap::<u32>::new();
    map.insert(0, 0xff, CountryId(3));
    map.insert(u32::MAX - 0x1_0000, u32::MAX, CountryId(4));
    for _ in 0..5_000 {
        let size_bits = rng.random_range(0..26);
        let first: u32 = if rng.random_bool(0.5) {
            rng.random()
        } else {
            // Cluster inside 100.0.0.0/8 so that neighbouring runs split /24s.
            0x6400_0000 | rng.random_range(0..0x0100_0000)
        };
        let last = first.saturating_add(rng.random_range(0..1u32 << size_bits));
        map.insert(first, last, CountryId(rng.random_range(0..=CountryId::MAX_COUNTRY)));
    }
    map.overlay(0x0a00_0000, 0x0aff_ffff, CountryId::LOCAL);
    map.into_runs()
}

fn check(runs: &[Run<u32>], table: &[Block], addr: u32) {
    let got = lookup_v4(addr, |i| table.get(i as usize));
    assert_eq!(got, lookup_runs(runs, addr), "address {addr:#010x}");
}

#[test]
fn table_equals_binary_search() {
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..3 {
        let runs = random_runs(&mut rng);
        let table = build_v4_table(&runs).expect("fits");
        assert!(table.len() > ROOT_BLOCKS as usize, "the data must need deeper levels");
        for run in &runs {
            for addr in [run.first, run.last] {
                check(&runs, &table, addr);
                check(&runs, &table, addr.wrapping_sub(1));
                check(&runs, &table, addr.wrapping_add(1));
            }
        }
        for _ in 0..200_000 {
            check(&runs, &table, rng.random());
        }
        for _ in 0..200_000 {
            check(&runs, &table, 0x6400_0000 | rng.random_range(0..0x0100_0000));
        }
    }
}

#[test]
fn blocks_are_deduplicated() {
    let runs = random_runs(&mut SmallRng::seed_from_u64(1));
    let table = build_v4_table(&runs).expect("fits");
    let mut deeper = table[ROOT_BLOCKS as usize..].to_vec();
    let before = deeper.len();
    deeper.sort_by_key(|block| block.entries);
    deeper.dedup();
    assert_eq!(deeper.len(), before, "no two non-root blocks are identical");
}

#[test]
fn empty_database_is_all_unknown() {
    let table = build_v4_table(&[]).expect("fits");
    assert_eq!(table.len(), ROOT_BLOCKS as usize);
    assert_eq!(lookup_v4(0x0808_0808, |i| table.get(i as usize)), CountryId::UNKNOWN);
}

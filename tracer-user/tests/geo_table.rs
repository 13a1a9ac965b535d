//! The direct tables answer exactly what a binary search over the runs answers, for random
//! addresses and at every run boundary: the IPv4 table alone, the IPv6 table (to /64) together
//! with a longest-prefix match over its fallback prefixes, as the kernel reads them.

use std::collections::{BTreeMap, HashMap};

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::{
    CountryId,
    geo_table::{Block, ROOT_BLOCKS, V6_TABLE_BYTES, lookup, lookup_v4, lookup_v6},
};
use tracer_user::geo::{GeoError, RangeMap, Run, build_table, build_v4_table, lookup_runs};

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

/// A longest-prefix match over `(network, length, id)` prefixes, as the kernel's LPM trie does.
struct Lpm {
    /// Prefixes by length, longest first.
    by_len: Vec<(u8, HashMap<u128, CountryId>)>,
}

impl Lpm {
    fn new(prefixes: impl IntoIterator<Item = (u128, u8, CountryId)>) -> Self {
        let mut by_len: BTreeMap<u8, HashMap<u128, CountryId>> = BTreeMap::new();
        for (net, len, id) in prefixes {
            assert_eq!(net & !mask(len), 0, "{net:#x}/{len} has host bits");
            assert!(by_len.entry(len).or_default().insert(net, id).is_none(), "duplicate prefix");
        }
        Self { by_len: by_len.into_iter().rev().collect() }
    }

    fn lookup(&self, addr: u128) -> CountryId {
        (self.by_len.iter())
            .find_map(|(len, nets)| nets.get(&(addr & mask(*len))).copied())
            .unwrap_or(CountryId::UNKNOWN)
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) }
}

/// What the kernel answers: the IPv6 table, then on FALLBACK the LPM trie.
fn kernel_v6(table: &[Block], lpm: &Lpm, addr: u128) -> CountryId {
    match lookup_v6(&addr.to_be_bytes(), |i| table.get(i as usize)) {
        CountryId::FALLBACK => lpm.lookup(addr),
        id => id,
    }
}

/// The 2a00:1450::/32 cluster most synthetic IPv6 runs fall in.
const CLUSTER: u128 = 0x2a00_1450_u128 << 96;

/// Random IPv6 runs of /48, /64, /96 and /128 granularity (a few units long, so they are not
/// aligned to coarser boundaries), most clustered in one /32 so that nodes are mixed at every
/// level and many /64s are finer than the table resolves; some runs start at arbitrary
/// addresses, and some touch `::` and the last address.
fn random_v6_runs(rng: &mut SmallRng) -> Vec<Run<u128>> {
    let mut map = RangeMap::<u128>::new();
    map.insert(0x2000_u128 << 112, (0x4000_u128 << 112) - 1, CountryId(7)); // 2000::/3
    map.insert(0, 0xffff, CountryId(3));
    map.insert(u128::MAX - (1 << 70), u128::MAX, CountryId(4));
    for _ in 0..6_000 {
        let unit_bits = [128 - 48, 128 - 64, 128 - 96, 0][rng.random_range(0..4)];
        let anywhere = rng.random_bool(0.1);
        let mut first: u128 =
            if anywhere { rng.random() } else { CLUSTER | rng.random_range(0..1u128 << 96) };
        if !rng.random_bool(0.05) {
            first &= !((1u128 << unit_bits) - 1);
        }
        let units = rng.random_range(1..=4u128);
        let last = first.saturating_add((units << unit_bits) - 1);
        map.insert(first, last, CountryId(rng.random_range(0..=CountryId::MAX_COUNTRY)));
    }
    map.overlay(0xfe80_u128 << 112, (0xfec0_u128 << 112) - 1, CountryId::LOCAL);
    map.into_runs()
}

/// Run boundaries (first, last, first - 1, last + 1 of every run) and random addresses: all
/// over the space, in the cluster, and inside the FALLBACK /64s.
fn v6_probes(runs: &[Run<u128>], fallback: &[(u128, u128)], rng: &mut SmallRng) -> Vec<u128> {
    let mut probes = vec![0, 1, u128::MAX - 1, u128::MAX];
    for run in runs {
        probes.extend([run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)]);
    }
    for _ in 0..100_000 {
        probes.push(rng.random());
        probes.push(CLUSTER | rng.random_range(0..1u128 << 96));
    }
    for _ in 0..100_000.min(fallback.len() * 50) {
        let (first, last) = fallback[rng.random_range(0..fallback.len())];
        probes.push(rng.random_range(first..=last));
    }
    probes
}

#[test]
fn v6_table_with_fallback_equals_binary_search() {
    let mut rng = SmallRng::seed_from_u64(6);
    for _ in 0..3 {
        let runs = random_v6_runs(&mut rng);
        let table = build_table(&runs, V6_TABLE_BYTES).expect("fits");
        assert!(table.blocks.len() > ROOT_BLOCKS as usize + 1000, "{}", table.blocks.len());
        assert!(table.fallback.len() > 500, "{} FALLBACK /64s", table.fallback.len());
        let prefixes = table.fallback_prefixes(&runs);
        let lpm = Lpm::new(prefixes.iter().copied());
        let mut fallbacks = 0;
        for addr in v6_probes(&runs, &table.fallback, &mut rng) {
            let expected = lookup_runs(&runs, addr);
            assert_eq!(kernel_v6(&table.blocks, &lpm, addr), expected, "address {addr:#034x}");
            if lookup_v6(&addr.to_be_bytes(), |i| table.blocks.get(i as usize))
                == CountryId::FALLBACK
            {
                fallbacks += 1;
            }
        }
        assert!(fallbacks > 10_000, "only {fallbacks} probes went to the LPM fallback");
    }
}

#[test]
fn v6_fallback_nodes_are_exactly_the_mixed_slash64s() {
    let runs = random_v6_runs(&mut SmallRng::seed_from_u64(7));
    let table = build_table(&runs, V6_TABLE_BYTES).expect("fits");
    let get = |i: u32| table.blocks.get(i as usize);
    for pair in table.fallback.windows(2) {
        assert!(pair[0].1 < pair[1].0, "sorted and disjoint");
    }
    for &(first, last) in &table.fallback {
        assert_eq!(first & u128::from(u64::MAX), 0, "{first:#x} is a /64");
        assert_eq!(last, first | u128::from(u64::MAX));
        assert_eq!(lookup_v6(&first.to_be_bytes(), get), CountryId::FALLBACK);
        // Mixed: the runs meeting it do not cover it with one id.
        let meeting: Vec<_> = runs.iter().filter(|r| r.last >= first && r.first <= last).collect();
        assert!(
            !matches!(meeting[..], [r] if r.first <= first && r.last >= last),
            "{first:#x}/64 is uniform"
        );
        assert!(!meeting.is_empty(), "{first:#x}/64 is all unknown");
    }
    // Every /64 a run boundary cuts is FALLBACK or resolved as the runs say; every /64 the
    // walk calls FALLBACK is listed.
    let listed: std::collections::HashSet<u128> = table.fallback.iter().map(|f| f.0).collect();
    for run in &runs {
        for addr in [run.first, run.last] {
            let slash64 = addr & !u128::from(u64::MAX);
            let walked = lookup_v6(&addr.to_be_bytes(), get) == CountryId::FALLBACK;
            assert_eq!(walked, listed.contains(&slash64), "{addr:#x}");
        }
    }
    // The fallback prefixes tile exactly the runs cut to those /64s.
    let cut = table.fallback_runs(&runs);
    let in_runs: u128 = cut.iter().map(|r| r.last - r.first + 1).sum();
    let prefixes = table.fallback_prefixes(&runs);
    let covered: u128 = prefixes.iter().map(|(_, len, _)| 1u128 << (128 - u32::from(*len))).sum();
    assert_eq!(covered, in_runs);
    for (net, len, _) in &prefixes {
        assert!(*len >= 64, "{net:#x}/{len} is coarser than a /64");
        assert!(listed.contains(&(net & !u128::from(u64::MAX))), "{net:#x}/{len} outside");
    }
}

#[test]
fn v6_blocks_are_deduplicated() {
    let runs = random_v6_runs(&mut SmallRng::seed_from_u64(8));
    let table = build_table(&runs, V6_TABLE_BYTES).expect("fits");
    let mut deeper = table.blocks[ROOT_BLOCKS as usize..].to_vec();
    let before = deeper.len();
    deeper.sort_by_key(|block| block.entries);
    deeper.dedup();
    assert_eq!(deeper.len(), before, "no two non-root blocks are identical");
    assert!(table.shared_blocks > 0, "many FALLBACK-only /56 blocks are alike");
}

#[test]
fn full_depth_v6_table_never_falls_back() {
    let mut rng = SmallRng::seed_from_u64(9);
    let runs: Vec<_> = random_v6_runs(&mut rng).into_iter().take(1_500).collect();
    let table = build_table(&runs, 16).expect("fits");
    assert!(table.fallback.is_empty());
    for addr in v6_probes(&runs, &[], &mut rng) {
        let found = lookup(&addr.to_be_bytes(), |i| table.blocks.get(i as usize));
        assert_eq!(found, lookup_runs(&runs, addr), "address {addr:#034x}");
    }
}

#[test]
fn v4_is_the_generic_build_at_depth_four() {
    let runs = random_runs(&mut SmallRng::seed_from_u64(3));
    let table = build_table(&runs, 4).expect("fits");
    assert!(table.fallback.is_empty());
    assert!(table.blocks.iter().flat_map(|b| b.entries).all(|e| e != CountryId::FALLBACK.0));
    assert_eq!(build_v4_table(&runs).expect("fits"), table.blocks);
    assert_eq!(table.bytes(), table.blocks.len() * 512);
}

#[test]
fn too_many_v6_blocks_is_an_error() {
    // 70,000 /56s, each with two /64s forming a distinct pair of ids: as many distinct blocks
    // at the /64 level, more than MAX_BLOCKS.
    let id = |v: u128| CountryId((v % 600 + 1) as u16);
    let runs: Vec<_> = (0u128..70_000)
        .flat_map(|i| {
            let base = CLUSTER | (i << 72);
            let slash64 = 1u128 << 64;
            [
                Run::new(base, base + slash64 - 1, id(i)),
                Run::new(base + slash64, base + 2 * slash64 - 1, id(i / 600)),
            ]
        })
        .collect();
    assert!(matches!(build_table(&runs, V6_TABLE_BYTES), Err(GeoError::TableTooLarge { .. })));
}

#[test]
fn empty_v6_database_is_all_unknown() {
    let table = build_table::<u128>(&[], V6_TABLE_BYTES).expect("fits");
    assert_eq!(table.blocks.len(), ROOT_BLOCKS as usize);
    assert!(table.fallback.is_empty() && table.fallback_prefixes(&[]).is_empty());
    assert_eq!(lookup_v6(&[0x20; 16], |i| table.blocks.get(i as usize)), CountryId::UNKNOWN);
}

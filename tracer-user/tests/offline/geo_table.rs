//! The compact lookup structure (`geo::dxr`, walked by `tracer_common::geo_dxr::lookup` as the
//! kernel walks it) answers exactly what a binary search over the runs answers: for random
//! addresses and at every run boundary, both families, and at its edges (range starts on chunk
//! boundaries, a chunk with the most ranges a chunk can have, empty chunks, /32 and /128
//! singletons, the first and last address, too many nodes).

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::{
    CountryId,
    geo_dxr::{LINE_RANGES, MAX_NODES},
    geo_table::ROOT_BLOCKS,
};
use tracer_user::geo::{Dxr, GeoError, RangeMap, Run, build_dxr, lookup_runs};

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

fn check_v4(runs: &[Run<u32>], dxr: &Dxr, addr: u32) {
    assert_eq!(dxr.lookup_v4(addr), lookup_runs(runs, addr), "address {addr:#010x}");
}

fn check_v6(runs: &[Run<u128>], dxr: &Dxr, addr: u128) {
    assert_eq!(dxr.lookup_v6(addr), lookup_runs(runs, addr), "address {addr:#034x}");
}

/// Every node's ranges start at 0, strictly increase, never repeat an entry twice in a row, and
/// point only at nodes that exist.
fn assert_well_formed(dxr: &Dxr) {
    assert_eq!(dxr.root.len(), ROOT_BLOCKS as usize);
    assert_eq!(dxr.ranges.len() % LINE_RANGES, 0, "padded to whole lines");
    let valid = |e: u16| {
        e < CountryId::NUM_IDS || u32::from(e - CountryId::NUM_IDS) < dxr.nodes.len() as u32
    };
    assert!(dxr.root.iter().flat_map(|b| b.entries).all(valid));
    for node in &dxr.nodes {
        assert!((1..=65_536).contains(&node.count));
        let list = &dxr.ranges[node.base as usize..(node.base + node.count) as usize];
        assert_eq!(list[0].start, 0);
        for pair in list.windows(2) {
            assert!(pair[0].start < pair[1].start && pair[0].entry != pair[1].entry);
        }
        assert!(list.iter().all(|r| valid(r.entry)));
    }
}

#[test]
fn v4_equals_binary_search() {
    let mut rng = SmallRng::seed_from_u64(42);
    for _ in 0..3 {
        let runs = random_runs(&mut rng);
        let dxr = build_dxr(&runs).expect("fits");
        assert!(dxr.nodes.len() > 100, "the data must need nodes");
        assert_well_formed(&dxr);
        for run in &runs {
            for addr in [run.first, run.last] {
                check_v4(&runs, &dxr, addr);
                check_v4(&runs, &dxr, addr.wrapping_sub(1));
                check_v4(&runs, &dxr, addr.wrapping_add(1));
            }
        }
        for _ in 0..200_000 {
            check_v4(&runs, &dxr, rng.random());
        }
        for _ in 0..200_000 {
            check_v4(&runs, &dxr, 0x6400_0000 | rng.random_range(0..0x0100_0000));
        }
    }
}

#[test]
fn nodes_are_deduplicated() {
    let runs = random_runs(&mut SmallRng::seed_from_u64(1));
    let dxr = build_dxr(&runs).expect("fits");
    let mut lists: Vec<_> = (dxr.nodes.iter())
        .map(|n| dxr.ranges[n.base as usize..(n.base + n.count) as usize].to_vec())
        .collect();
    let before = lists.len();
    lists.sort_by_key(|l| l.iter().map(|r| (r.start, r.entry)).collect::<Vec<_>>());
    lists.dedup();
    assert_eq!(lists.len(), before, "no two nodes are identical");
    // 1.2.3.0/25 split the same way in 200 /16s: one node.
    let (a, b) = (CountryId(1), CountryId(2));
    let runs: Vec<_> = (0u32..200)
        .flat_map(|i| {
            let base = (i + 1) << 16;
            [Run::new(base, base + 0x7f, a), Run::new(base + 0x80, base + 0xffff, b)]
        })
        .collect();
    let dxr = build_dxr(&runs).expect("fits");
    assert_eq!((dxr.nodes.len(), dxr.shared_nodes), (1, 199));
}

#[test]
fn empty_database_and_empty_chunks_are_unknown() {
    let dxr = build_dxr::<u32>(&[]).expect("fits");
    assert!(dxr.nodes.is_empty());
    assert_eq!(dxr.lookup_v4(0x0808_0808), CountryId::UNKNOWN);
    let dxr = build_dxr::<u128>(&[]).expect("fits");
    assert_eq!(dxr.lookup_v6(0x2001_u128 << 112), CountryId::UNKNOWN);
    // A mixed /16 next to empty ones: the empty chunks need no node and answer unknown.
    let runs = [Run::new(0x0505_0100_u32, 0x0505_01ff, CountryId(9))];
    let dxr = build_dxr(&runs).expect("fits");
    assert_eq!(dxr.nodes.len(), 1);
    for addr in
        [0x0504_ffff, 0x0505_0000, 0x0505_00ff, 0x0505_0100, 0x0505_01ff, 0x0505_0200, 0x0506_0000]
    {
        check_v4(&runs, &dxr, addr);
    }
}

#[test]
fn range_starts_on_chunk_boundaries() {
    // Runs starting and ending exactly on /16 boundaries need no node at all; one address past
    // a boundary needs one node on each side.
    let runs = [
        Run::new(0x0100_0000_u32, 0x0101_ffff, CountryId(1)),
        Run::new(0x0102_0000, 0x0102_ffff, CountryId(2)),
        Run::new(0x0103_0000, 0x0104_0000, CountryId(3)), // ends one past a boundary
        Run::new(0x0104_0001, 0x0104_ffff, CountryId(4)),
        Run::new(0x0105_ffff, 0x0106_0000, CountryId(5)), // straddles a boundary
    ];
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    assert_eq!(dxr.nodes.len(), 3, "0x0104, 0x0105 and 0x0106 are mixed");
    for run in &runs {
        for addr in [run.first, run.last, run.first.wrapping_sub(1), run.last.wrapping_add(1)] {
            check_v4(&runs, &dxr, addr);
        }
    }
    // IPv6: the same on /16, /32, ..., /112 boundaries: a run ending on each level's boundary.
    let base = 0x2a00_u128 << 112;
    let runs: Vec<_> = (1..8u32)
        .map(|level| {
            let size = 1u128 << (128 - 16 * level);
            Run::new(
                base + size * u128::from(level) * 3,
                base + size * (u128::from(level) * 3 + 1) - 1,
                CountryId(level as u16),
            )
        })
        .collect();
    let mut runs = runs;
    runs.sort_by_key(|r| r.first);
    let runs = RangeMap::from_runs(&runs).into_runs();
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    for run in &runs {
        for addr in [run.first, run.last, run.first - 1, run.last + 1] {
            check_v6(&runs, &dxr, addr);
        }
    }
}

#[test]
fn a_chunk_with_the_most_ranges() {
    // Every address of 7.7.0.0/16 alternates between two ids: 65,536 ranges in one node, the
    // most a node can have, searched in 16 halvings.
    let runs: Vec<_> = (0u32..65_536)
        .map(|i| Run::new(0x0707_0000 + i, 0x0707_0000 + i, CountryId(1 + (i % 2) as u16)))
        .collect();
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    assert_eq!(dxr.nodes.len(), 1);
    assert_eq!(dxr.nodes[0].count, 65_536);
    for i in 0..65_536u32 {
        check_v4(&runs, &dxr, 0x0707_0000 + i);
    }
    check_v4(&runs, &dxr, 0x0706_ffff);
    check_v4(&runs, &dxr, 0x0708_0000);
    // The same in the last /16 of IPv6's lowest digit.
    let base = u128::MAX - 0xffff;
    let runs: Vec<_> = (0u128..65_536)
        .map(|i| Run::new(base + i, base + i, CountryId(1 + (i % 3) as u16)))
        .collect();
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    assert!(dxr.nodes.iter().any(|n| n.count == 65_536));
    for i in (0..65_536u128).step_by(7).chain([65_535]) {
        check_v6(&runs, &dxr, base + i);
    }
    check_v6(&runs, &dxr, base - 1);
}

#[test]
fn singletons_and_the_ends_of_the_space() {
    let (a, b) = (CountryId(11), CountryId(12));
    let runs = [
        Run::new(0u32, 0, a),
        Run::new(0x0808_0808, 0x0808_0808, b),
        Run::new(0xc000_0201, 0xc000_0201, a),
        Run::new(u32::MAX, u32::MAX, b),
    ];
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    for run in &runs {
        for addr in [run.first, run.first.wrapping_sub(1), run.first.wrapping_add(1)] {
            check_v4(&runs, &dxr, addr);
        }
    }
    let runs = [
        Run::new(0u128, 0, a),
        Run::new(1, 1, b), // ::1
        Run::new(0x2001_0db8_u128 << 96 | 0x1234, 0x2001_0db8_u128 << 96 | 0x1234, a),
        Run::new(u128::MAX, u128::MAX, b),
    ];
    let dxr = build_dxr(&runs).expect("fits");
    assert_well_formed(&dxr);
    for run in &runs {
        for addr in [run.first, run.first.wrapping_sub(1), run.first.wrapping_add(1)] {
            check_v6(&runs, &dxr, addr);
        }
    }
    // The whole space in one run.
    let whole = [Run::new(0u128, u128::MAX, a)];
    let dxr = build_dxr(&whole).expect("fits");
    assert!(dxr.nodes.is_empty());
    check_v6(&whole, &dxr, u128::MAX);
}

/// The 2a00:1450::/32 cluster most synthetic IPv6 runs fall in.
const CLUSTER: u128 = 0x2a00_1450_u128 << 96;

/// Random IPv6 runs of /48, /64, /96 and /128 granularity (a few units long, so they are not
/// aligned to coarser boundaries), most clustered in one /32 so that nodes are mixed at every
/// level; some runs start at arbitrary addresses, and some touch `::` and the last address.
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

#[test]
fn v6_equals_binary_search() {
    let mut rng = SmallRng::seed_from_u64(5);
    for _ in 0..3 {
        let runs = random_v6_runs(&mut rng);
        let dxr = build_dxr(&runs).expect("fits");
        assert!(dxr.nodes.len() > 1000, "{}", dxr.nodes.len());
        assert_well_formed(&dxr);
        let mut probes = vec![0, 1, u128::MAX - 1, u128::MAX];
        for run in &runs {
            probes.extend([
                run.first,
                run.last,
                run.first.wrapping_sub(1),
                run.last.wrapping_add(1),
            ]);
        }
        for _ in 0..100_000 {
            probes.push(rng.random());
            probes.push(CLUSTER | rng.random_range(0..1u128 << 96));
            // Inside a random run, near its ends (where the data is finest).
            let run = runs[rng.random_range(0..runs.len())];
            probes.push(run.first.saturating_add(rng.random_range(0..256)));
        }
        for addr in probes {
            check_v6(&runs, &dxr, addr);
        }
    }
}

#[test]
fn v6_nodes_are_deduplicated() {
    let runs = random_v6_runs(&mut SmallRng::seed_from_u64(8));
    let dxr = build_dxr(&runs).expect("fits");
    let mut lists: Vec<_> = (dxr.nodes.iter())
        .map(|n| {
            dxr.ranges[n.base as usize..(n.base + n.count) as usize]
                .iter()
                .map(|r| (r.start, r.entry))
                .collect::<Vec<_>>()
        })
        .collect();
    let before = lists.len();
    lists.sort();
    lists.dedup();
    assert_eq!(lists.len(), before, "no two nodes are identical");
    // The same fine split inside 100 different /48s: one chain of nodes below the /48s.
    let (a, b) = (CountryId(1), CountryId(2));
    let runs: Vec<_> = (0u128..100)
        .flat_map(|i| {
            let base = CLUSTER | (i << 80);
            [Run::new(base, base + 0xff, a), Run::new(base + 0x100, base | ((1 << 80) - 1), b)]
        })
        .collect();
    let dxr = build_dxr(&runs).expect("fits");
    // Below the /32 node: a /48 chain of 5 nodes (digits 4..8), built 100 times, stored once.
    assert_eq!(dxr.shared_nodes, 99 * 5);
    assert_eq!(dxr.nodes.len(), 5 + 2);
}

#[test]
fn too_many_nodes_is_an_error() {
    // 70,000 /32s each holding a distinct pair of ids in its first two addresses: as many
    // distinct nodes, more than MAX_NODES.
    let id = |v: u128| CountryId((v % 600 + 1) as u16);
    let runs: Vec<_> = (0u128..70_000)
        .flat_map(|i| {
            let base = CLUSTER | (i << 64);
            [Run::new(base, base, id(i)), Run::new(base + 1, base + 1, id(i / 600))]
        })
        .collect();
    const { assert!(MAX_NODES < 70_000) };
    assert!(matches!(build_dxr(&runs), Err(GeoError::TableTooLarge { .. })));
}

//! The range map against a naive model: random overlapping inserts over a small space.

use rand::{RngExt as _, SeedableRng as _, rngs::SmallRng};
use tracer_common::CountryId;
use tracer_user::geo::{RangeMap, Run, lookup_runs, ranges::cidr_blocks};

const SPACE: u32 = 600;

#[test]
fn matches_a_naive_model() {
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..300 {
        let mut map = RangeMap::<u32>::new();
        let mut model = vec![CountryId::UNKNOWN; SPACE as usize];
        for _ in 0..rng.random_range(1..40) {
            let a = rng.random_range(0..SPACE);
            let len = rng.random_range(1..200);
            let b = rng.random_range(a..(a + len).min(SPACE));
            let id = CountryId(rng.random_range(0..4));
            map.insert(a, b, id);
            model[a as usize..=b as usize].fill(id);
        }
        let runs = map.into_runs();
        assert!(runs.windows(2).all(|w| w[0].last < w[1].first));
        assert!(runs.windows(2).all(|w| w[0].last + 1 < w[1].first || w[0].id != w[1].id));
        assert!(runs.iter().all(|r| r.id != CountryId::UNKNOWN));
        for (addr, expected) in (0u32..).zip(&model) {
            assert_eq!(lookup_runs(&runs, addr), *expected, "address {addr}");
        }
    }
}

#[test]
fn cidr_blocks_tile_each_run_exactly() {
    let mut rng = SmallRng::seed_from_u64(11);
    for _ in 0..2000 {
        let a: u32 = rng.random();
        let bits = rng.random_range(0..32);
        let b = a.saturating_add(rng.random_range(0..1u32 << bits));
        let mut next = u64::from(a);
        for (net, len) in cidr_blocks(a, b) {
            assert_eq!(u64::from(net), next, "blocks are contiguous");
            let size = 1u64 << (32 - len);
            assert_eq!(u64::from(net) % size, 0, "blocks are aligned");
            next += size;
        }
        assert_eq!(next, u64::from(b) + 1);
    }
    let huge = Run::new(1u128, u128::MAX, CountryId(1));
    assert_eq!(cidr_blocks(huge.first, huge.last).count(), 128);
}

//! Building the IPv6 direct-indexed table ([`tracer_common::geo_table`]) from merged runs.
//!
//! The walk resolves the first [`V6_TABLE_BYTES`] bytes of an address (down to /64): the root
//! holds one entry per /16, then one block of 256 entries per mixed node and byte. Where a /64
//! is still mixed, its entry is [`CountryId::FALLBACK`] and the runs inside it, cut to it, go to
//! the small LPM trie the program consults in that case. Identical non-root blocks are shared.

use tracer_common::{
    CountryId,
    geo_table::{BLOCK_ENTRIES, Block, ROOT_BLOCKS, V6_TABLE_BYTES},
};

use super::{
    GeoError,
    blocks::BlockStore,
    ranges::{Run, cidr_blocks, runs_are_valid},
};

/// The IPv6 table and the prefixes its LPM fallback needs.
#[derive(Clone, Debug, Default)]
pub struct V6Table {
    /// The blocks, root first.
    pub blocks: Vec<Block>,
    /// `(first address, prefix length, id)` of every prefix inside a FALLBACK /64.
    pub fallback: Vec<(u128, u8, CountryId)>,
}

/// The whole space as maximal segments: `starts[i]..starts[i+1]` has `ids[i]`.
struct Segments {
    starts: Vec<u128>,
    ids: Vec<u16>,
}

impl Segments {
    fn new(runs: &[Run<u128>]) -> Self {
        let mut s = Self { starts: Vec::new(), ids: Vec::new() };
        let mut next: Option<u128> = Some(0);
        for run in runs {
            if let Some(n) = next
                && run.first > n
            {
                s.push(n, CountryId::UNKNOWN.0);
            }
            s.push(run.first, run.id.0);
            next = run.last.checked_add(1);
        }
        if let Some(n) = next {
            s.push(n, CountryId::UNKNOWN.0);
        }
        s
    }

    fn push(&mut self, start: u128, id: u16) {
        if self.ids.last() != Some(&id) {
            self.starts.push(start);
            self.ids.push(id);
        }
    }

    /// Index of the segment holding `addr`.
    fn find(&self, addr: u128) -> usize {
        self.starts.partition_point(|&s| s <= addr).saturating_sub(1)
    }

    /// The id of `first..=last` if it is uniform.
    fn uniform(&self, first: u128, last: u128) -> Option<u16> {
        let i = self.find(first);
        let ends_after = self.starts.get(i + 1).is_none_or(|&next| next > last);
        ends_after.then(|| self.ids[i])
    }
}

struct Builder<'a> {
    segments: &'a Segments,
    runs: &'a [Run<u128>],
    store: BlockStore,
    fallback: Vec<(u128, u8, CountryId)>,
}

impl Builder<'_> {
    /// The entry for the node at `base` after `depth` bytes (the node spans the rest).
    fn node(&mut self, base: u128, depth: usize) -> Result<u16, GeoError> {
        let span = 128 - 8 * depth as u32;
        let last = base | ((1u128 << span) - 1);
        if let Some(id) = self.segments.uniform(base, last) {
            return Ok(id);
        }
        if depth == V6_TABLE_BYTES {
            self.add_fallback(base, last);
            return Ok(CountryId::FALLBACK.0);
        }
        let mut block = Block::filled(CountryId::UNKNOWN);
        for (byte, slot) in (0u128..).zip(block.entries.iter_mut()) {
            *slot = self.node(base | (byte << (span - 8)), depth + 1)?;
        }
        self.store.intern(block)
    }

    /// The runs inside `first..=last`, cut to it, as CIDR prefixes.
    fn add_fallback(&mut self, first: u128, last: u128) {
        let start = self.runs.partition_point(|r| r.last < first);
        for run in self.runs[start..].iter().take_while(|r| r.first <= last) {
            for (addr, len) in cidr_blocks(run.first.max(first), run.last.min(last)) {
                self.fallback.push((addr, len, run.id));
            }
        }
    }
}

/// Builds the IPv6 table for sorted, disjoint `runs` (gaps are unknown).
pub fn build_v6_table(runs: &[Run<u128>]) -> Result<V6Table, GeoError> {
    if !runs_are_valid(runs) {
        return Err(GeoError::InvalidRuns { family: "IPv6" });
    }
    if let Some(run) =
        runs.iter().find(|run| run.id == CountryId::FALLBACK || run.id.0 >= CountryId::NUM_IDS)
    {
        return Err(GeoError::InvalidId { id: run.id.0 });
    }
    let segments = Segments::new(runs);
    let mut builder = Builder {
        segments: &segments,
        runs,
        store: BlockStore::with_roots(),
        fallback: Vec::new(),
    };
    for slash16 in 0..(ROOT_BLOCKS * BLOCK_ENTRIES as u32) {
        let entry = builder.node(u128::from(slash16) << 112, 2)?;
        builder.store.set_root(slash16, entry);
    }
    Ok(V6Table { blocks: builder.store.blocks, fallback: builder.fallback })
}

#[cfg(test)]
mod tests {
    use tracer_common::geo_table::lookup_v6;

    use super::*;
    use crate::geo::ranges::lookup_runs;

    fn id(code: &[u8; 2]) -> CountryId {
        CountryId::from_code(*code).unwrap()
    }

    /// Table walk, then the fallback prefixes (longest match), as the kernel does.
    fn kernel_lookup(table: &V6Table, addr: u128) -> CountryId {
        let found = lookup_v6(&addr.to_be_bytes(), |i| table.blocks.get(i as usize));
        if found != CountryId::FALLBACK {
            return found;
        }
        table
            .fallback
            .iter()
            .filter(|(first, len, _)| *len == 0 || (addr ^ first) >> (128 - u32::from(*len)) == 0)
            .max_by_key(|(_, len, _)| *len)
            .map_or(CountryId::UNKNOWN, |(_, _, id)| *id)
    }

    #[test]
    fn agrees_with_the_runs_at_every_boundary() {
        let mut runs = vec![
            Run { first: 0x240e_u128 << 112, last: (0x240f_u128 << 112) - 1, id: id(b"CN") },
            Run {
                first: 0x2a00_1450_u128 << 96,
                last: (0x2a00_1451_u128 << 96) - 1 - (1 << 80),
                id: id(b"IE"),
            },
            // A /120 inside a /64: finer than the table resolves.
            Run {
                first: (0x2a00_1451_u128 << 96) - (1 << 80),
                last: (0x2a00_1451_u128 << 96) - (1 << 80) + 0xff,
                id: id(b"DE"),
            },
            Run {
                first: (0x2a00_1451_u128 << 96) - (1 << 80) + 0x100,
                last: (0x2a00_1451_u128 << 96) - 1,
                id: id(b"FR"),
            },
            Run {
                first: 0x2001_0db8_u128 << 96,
                last: (0x2001_0db9_u128 << 96) - 1,
                id: CountryId::LOCAL,
            },
            Run { first: u128::MAX - 5, last: u128::MAX, id: id(b"US") },
        ];
        runs.sort_by_key(|r| r.first);
        let table = build_v6_table(&runs).unwrap();
        assert!(!table.fallback.is_empty(), "the /120 needs the fallback");
        let mut probes = vec![0, 1, u128::MAX];
        for r in &runs {
            probes.extend([r.first, r.last, r.first.wrapping_sub(1), r.last.wrapping_add(1)]);
        }
        for addr in probes {
            assert_eq!(kernel_lookup(&table, addr), lookup_runs(&runs, addr), "{addr:#x}");
        }
    }
}

//! Filling the geo lookup maps from a compiled database.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::{Array, LpmTrie, lpm_trie::Key};
use ipnet::{Ipv4Net, Ipv6Net};
use tracer_common::{
    CountryId, Settings,
    geo_dxr::{Node, RangeLine},
    geo_table::Block,
    maps::{
        GEO_V4_LPM_MAP, GEO_V4_NODES_MAP, GEO_V4_RANGES_MAP, GEO_V4_TABLE_MAP, GEO_V6_LPM_MAP,
        GEO_V6_NODES_MAP, GEO_V6_RANGES_MAP, GEO_V6_TABLE_MAP, SETTINGS_MAP, lookup_mode,
    },
};

use super::{Kernel, KernelError};
use crate::geo::Dxr;

/// Capacities of the geo maps, fixed when the object is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoMapSizes {
    /// Root blocks of the IPv4 compact structure.
    pub v4_blocks: u32,
    /// Nodes of the IPv4 compact structure.
    pub v4_nodes: u32,
    /// Range lines of the IPv4 compact structure.
    pub v4_lines: u32,
    /// Prefixes of the IPv4 LPM trie (0 unless the LPM reference is used).
    pub v4_lpm_prefixes: u32,
    /// Root blocks of the IPv6 compact structure.
    pub v6_blocks: u32,
    /// Nodes of the IPv6 compact structure.
    pub v6_nodes: u32,
    /// Range lines of the IPv6 compact structure.
    pub v6_lines: u32,
    /// Prefixes of the IPv6 LPM trie (0 unless the LPM reference is used).
    pub v6_prefixes: u32,
}

impl GeoMapSizes {
    /// The capacities `v4` and `v6` need, with LPM tries of the given sizes.
    pub fn for_dxr(v4: &Dxr, v6: &Dxr, v4_lpm: usize, v6_lpm: usize) -> Self {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            v4_blocks: len(v4.root.len()),
            v4_nodes: len(v4.nodes.len()),
            v4_lines: len(v4.lines().len()),
            v4_lpm_prefixes: len(v4_lpm),
            v6_blocks: len(v6.root.len()),
            v6_nodes: len(v6.nodes.len()),
            v6_lines: len(v6.lines().len()),
            v6_prefixes: len(v6_lpm),
        }
    }
}

/// Which structures the program uses for lookups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lookup {
    /// The compact structure (a 2^16 root, then binary searches over 16-bit range starts):
    /// exact for both families, a few MiB of kernel memory. The default.
    #[default]
    Table,
    /// The LPM tries only: the reference implementation (slower, more kernel memory).
    Lpm,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source: Box::new(source) }
}

impl Kernel {
    /// Writes the IPv4 compact structure into its maps.
    pub fn fill_v4_dxr(&mut self, dxr: &Dxr) -> Result<(), KernelError> {
        self.fill_dxr([GEO_V4_TABLE_MAP, GEO_V4_NODES_MAP, GEO_V4_RANGES_MAP], dxr)
    }

    /// Writes the IPv6 compact structure into its maps.
    pub fn fill_v6_dxr(&mut self, dxr: &Dxr) -> Result<(), KernelError> {
        self.fill_dxr([GEO_V6_TABLE_MAP, GEO_V6_NODES_MAP, GEO_V6_RANGES_MAP], dxr)
    }

    fn fill_dxr(
        &mut self,
        [root, nodes, lines]: [&'static str; 3],
        dxr: &Dxr,
    ) -> Result<(), KernelError> {
        self.fill_array::<Block>(root, &dxr.root)?;
        self.fill_array::<Node>(nodes, &dxr.nodes)?;
        self.fill_array::<RangeLine>(lines, dxr.lines())
    }

    fn fill_array<T: aya::Pod>(
        &mut self,
        name: &'static str,
        values: &[T],
    ) -> Result<(), KernelError> {
        let raw = self.map_mut(name)?;
        if let aya::maps::Map::Array(data) = &*raw {
            let fd = data.fd().as_fd().as_raw_fd();
            let mapped = super::mapped::write_array(fd, values)
                .map_err(|source| KernelError::Io { context: format!("filling {name}"), source })?;
            if mapped {
                return Ok(());
            }
        }
        let mut map: Array<_, T> = Array::try_from(raw).map_err(map_err(name))?;
        for (index, value) in (0u32..).zip(values) {
            map.set(index, value, 0).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Inserts IPv4 prefixes into the reference LPM trie.
    pub fn fill_v4_lpm(&mut self, prefixes: &[(Ipv4Net, CountryId)]) -> Result<(), KernelError> {
        let mut map: LpmTrie<_, u32, u16> =
            LpmTrie::try_from(self.map_mut(GEO_V4_LPM_MAP)?).map_err(map_err(GEO_V4_LPM_MAP))?;
        for (net, id) in prefixes {
            let key =
                Key::new(u32::from(net.prefix_len()), u32::from_ne_bytes(net.addr().octets()));
            map.insert(&key, id.0, 0).map_err(map_err(GEO_V4_LPM_MAP))?;
        }
        Ok(())
    }

    /// Inserts IPv6 prefixes into the reference LPM trie.
    pub fn fill_v6_lpm(&mut self, prefixes: &[(Ipv6Net, CountryId)]) -> Result<(), KernelError> {
        let mut map: LpmTrie<_, [u8; 16], u16> =
            LpmTrie::try_from(self.map_mut(GEO_V6_LPM_MAP)?).map_err(map_err(GEO_V6_LPM_MAP))?;
        for (net, id) in prefixes {
            let key = Key::new(u32::from(net.prefix_len()), net.addr().octets());
            map.insert(&key, id.0, 0).map_err(map_err(GEO_V6_LPM_MAP))?;
        }
        Ok(())
    }

    /// Selects the lookup structures the programs use.
    pub fn set_lookup(&mut self, lookup: Lookup) -> Result<(), KernelError> {
        let lookup = match lookup {
            Lookup::Table => lookup_mode::TABLE,
            Lookup::Lpm => lookup_mode::LPM,
        };
        self.update_settings(|s| s.lookup = lookup)
    }

    /// How many DNS answers and TLS segments each CPU may hand to the agent per second (0:
    /// none; see `tracer_common::capture`).
    pub fn set_capture_rate(&mut self, per_sec: u32) -> Result<(), KernelError> {
        self.update_settings(|s| s.captures_per_sec = per_sec)
    }

    pub(super) fn update_settings(
        &mut self,
        change: impl FnOnce(&mut Settings),
    ) -> Result<(), KernelError> {
        let mut map: Array<_, Settings> =
            Array::try_from(self.map_mut(SETTINGS_MAP)?).map_err(map_err(SETTINGS_MAP))?;
        let mut settings = map.get(&0, 0).map_err(map_err(SETTINGS_MAP))?;
        change(&mut settings);
        map.set(0, settings, 0).map_err(map_err(SETTINGS_MAP))
    }
}

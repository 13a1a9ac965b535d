//! Filling the geo lookup maps from a compiled database.

use aya::maps::{Array, LpmTrie, lpm_trie::Key};
use ipnet::{Ipv4Net, Ipv6Net};
use tracer_common::{
    CountryId, Settings,
    geo_table::Block,
    maps::{
        GEO_V4_LPM_MAP, GEO_V4_TABLE_MAP, GEO_V6_LPM_MAP, GEO_V6_TABLE_MAP, SETTINGS_MAP,
        lookup_mode,
    },
};

use super::{Kernel, KernelError};

/// Capacities of the geo maps, fixed when the object is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoMapSizes {
    /// Blocks of the IPv4 direct table.
    pub v4_blocks: u32,
    /// Prefixes of the IPv4 LPM trie (0 when only the table is used).
    pub v4_lpm_prefixes: u32,
    /// Blocks of the IPv6 direct table.
    pub v6_blocks: u32,
    /// Prefixes of the IPv6 LPM trie.
    pub v6_prefixes: u32,
}

/// Which structures the program uses for lookups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lookup {
    /// The direct-indexed tables: at most three array reads for IPv4, seven for IPv6 (plus an
    /// LPM lookup where the data is finer than /64). The default.
    #[default]
    Table,
    /// The LPM tries only: the reference implementation (slower, more kernel memory).
    Lpm,
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> KernelError {
    move |source| KernelError::Map { map, source: Box::new(source) }
}

impl Kernel {
    /// Writes the IPv4 table into its map.
    pub fn fill_v4_table(&mut self, blocks: &[Block]) -> Result<(), KernelError> {
        self.fill_table(GEO_V4_TABLE_MAP, blocks)
    }

    /// Writes the IPv6 table into its map.
    pub fn fill_v6_table(&mut self, blocks: &[Block]) -> Result<(), KernelError> {
        self.fill_table(GEO_V6_TABLE_MAP, blocks)
    }

    fn fill_table(&mut self, name: &'static str, blocks: &[Block]) -> Result<(), KernelError> {
        let mut map: Array<_, Block> =
            Array::try_from(self.map_mut(name)?).map_err(map_err(name))?;
        for (index, block) in (0u32..).zip(blocks) {
            map.set(index, block, 0).map_err(map_err(name))?;
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

    /// Inserts IPv6 prefixes into the IPv6 LPM trie.
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

    fn update_settings(&mut self, change: impl FnOnce(&mut Settings)) -> Result<(), KernelError> {
        let mut map: Array<_, Settings> =
            Array::try_from(self.map_mut(SETTINGS_MAP)?).map_err(map_err(SETTINGS_MAP))?;
        let mut settings = map.get(&0, 0).map_err(map_err(SETTINGS_MAP))?;
        change(&mut settings);
        map.set(0, settings, 0).map_err(map_err(SETTINGS_MAP))
    }
}

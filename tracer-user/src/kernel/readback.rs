//! Reading the geo maps back from the kernel: proof that what the programs use is what the
//! agent compiled (tests and diagnostics).

use std::net::IpAddr;

use aya::maps::{Array, LpmTrie, MapData, lpm_trie::Key};
use tracer_common::{
    CountryId,
    geo_table::{Block, lookup, lookup_v6},
    maps::{GEO_V4_TABLE_MAP, GEO_V6_LPM_MAP, GEO_V6_TABLE_MAP},
};

use super::{Kernel, KernelError};

/// The kernel's geo maps as the program sees them: the tables copied out, the IPv6 LPM trie
/// queried in place (so the kernel's own longest-prefix match answers).
pub struct KernelGeo {
    v4: Vec<Block>,
    v6: Vec<Block>,
    v6_lpm: LpmTrie<MapData, [u8; 16], u16>,
}

impl std::fmt::Debug for KernelGeo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelGeo").field("v4_blocks", &self.v4.len()).finish_non_exhaustive()
    }
}

fn read_blocks(kernel: &mut Kernel, name: &'static str) -> Result<Vec<Block>, KernelError> {
    let err = move |source| KernelError::Map { map: name, source: Box::new(source) };
    let map: Array<_, Block> = Array::try_from(kernel.map_mut(name)?).map_err(err)?;
    (0..map.len()).map(|i| map.get(&i, 0).map_err(err)).collect()
}

impl Kernel {
    /// Copies the tables out and takes the IPv6 LPM trie for queries (the object keeps
    /// running; only this handle is taken).
    pub fn read_geo(&mut self) -> Result<KernelGeo, KernelError> {
        let v4 = read_blocks(self, GEO_V4_TABLE_MAP)?;
        let v6 = read_blocks(self, GEO_V6_TABLE_MAP)?;
        let err = |source| KernelError::Map { map: GEO_V6_LPM_MAP, source: Box::new(source) };
        let v6_lpm = LpmTrie::try_from(self.take_map(GEO_V6_LPM_MAP)?).map_err(err)?;
        Ok(KernelGeo { v4, v6, v6_lpm })
    }
}

impl KernelGeo {
    /// The id the program decides for `addr` in table mode.
    pub fn lookup(&self, addr: IpAddr) -> CountryId {
        match addr {
            IpAddr::V4(a) => lookup(&a.octets(), |i| self.v4.get(i as usize)),
            IpAddr::V6(a) => {
                let found = lookup_v6(&a.octets(), |i| self.v6.get(i as usize));
                if found != CountryId::FALLBACK {
                    return found;
                }
                self.v6_lpm.get(&Key::new(128, a.octets()), 0).map_or(CountryId::UNKNOWN, CountryId)
            }
        }
    }
}

//! Reading the geo maps back from the kernel: proof that what the programs use is what the
//! agent compiled (tests and diagnostics).

use std::net::IpAddr;

use aya::maps::Array;
use tracer_common::{
    CountryId,
    geo_dxr::{Node, RangeLine, V4_DIGITS, V6_DIGITS, lookup, v4_digits, v6_digits},
    geo_table::Block,
    maps::{
        GEO_V4_NODES_MAP, GEO_V4_RANGES_MAP, GEO_V4_TABLE_MAP, GEO_V6_NODES_MAP, GEO_V6_RANGES_MAP,
        GEO_V6_TABLE_MAP,
    },
};

use super::{Kernel, KernelError};

/// One family's compact structure as copied out of the kernel.
#[derive(Debug, Default)]
struct Family {
    root: Vec<Block>,
    nodes: Vec<Node>,
    lines: Vec<RangeLine>,
}

impl Family {
    fn lookup<const N: usize>(&self, digits: &[u16; N]) -> CountryId {
        lookup(
            digits,
            |i| self.root.get(i as usize),
            |i| self.nodes.get(i as usize),
            |i| self.lines.get(i as usize),
        )
    }
}

/// The kernel's geo maps as the program sees them (the compact structures copied out).
pub struct KernelGeo {
    v4: Family,
    v6: Family,
}

impl std::fmt::Debug for KernelGeo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelGeo")
            .field("v4_nodes", &self.v4.nodes.len())
            .field("v6_nodes", &self.v6.nodes.len())
            .finish_non_exhaustive()
    }
}

fn read_array<T: aya::Pod>(kernel: &mut Kernel, name: &'static str) -> Result<Vec<T>, KernelError> {
    let err = move |source| KernelError::Map { map: name, source: Box::new(source) };
    let map: Array<_, T> = Array::try_from(kernel.map_mut(name)?).map_err(err)?;
    (0..map.len()).map(|i| map.get(&i, 0).map_err(err)).collect()
}

fn read_family(
    kernel: &mut Kernel,
    [root, nodes, lines]: [&'static str; 3],
) -> Result<Family, KernelError> {
    Ok(Family {
        root: read_array(kernel, root)?,
        nodes: read_array(kernel, nodes)?,
        lines: read_array(kernel, lines)?,
    })
}

impl Kernel {
    /// Copies the compact structures out (the object keeps running).
    pub fn read_geo(&mut self) -> Result<KernelGeo, KernelError> {
        let v4 = read_family(self, [GEO_V4_TABLE_MAP, GEO_V4_NODES_MAP, GEO_V4_RANGES_MAP])?;
        let v6 = read_family(self, [GEO_V6_TABLE_MAP, GEO_V6_NODES_MAP, GEO_V6_RANGES_MAP])?;
        Ok(KernelGeo { v4, v6 })
    }
}

impl KernelGeo {
    /// The id the program decides for `addr` in table mode.
    pub fn lookup(&self, addr: IpAddr) -> CountryId {
        match addr {
            IpAddr::V4(a) => self.v4.lookup::<V4_DIGITS>(&v4_digits(&a.octets())),
            IpAddr::V6(a) => self.v6.lookup::<V6_DIGITS>(&v6_digits(&a.octets())),
        }
    }
}

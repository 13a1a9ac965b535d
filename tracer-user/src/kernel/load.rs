//! Loading the object with maps sized for the database.

use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use tracer_common::maps::{
    COUNTERS_MAP, DEFAULT_COUNTER_ENTRIES, GEO_V4_LPM_MAP, GEO_V4_TABLE_MAP, GEO_V6_LPM_MAP,
};

use super::{EBPF_OBJECT, GeoMapSizes, KernelError, programs};

/// How to size the maps when loading.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Capacity of the per-(device, country, direction) counter map.
    pub counter_entries: u32,
    /// Capacities of the geo maps.
    pub geo: GeoMapSizes,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            counter_entries: DEFAULT_COUNTER_ENTRIES,
            geo: GeoMapSizes::default(),
        }
    }
}

/// The loaded programs and the maps still owned by the object.
pub struct Kernel {
    pub(super) ebpf: Ebpf,
    pub(super) counter_entries: u32,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").finish_non_exhaustive()
    }
}

impl Kernel {
    /// Loads the embedded object and all its programs (not attached yet).
    pub fn load(options: &LoadOptions) -> Result<Self, KernelError> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(COUNTERS_MAP, options.counter_entries)
            .map_max_entries(GEO_V4_TABLE_MAP, options.geo.v4_blocks.max(1))
            .map_max_entries(GEO_V4_LPM_MAP, options.geo.v4_lpm_prefixes.max(1))
            .map_max_entries(GEO_V6_LPM_MAP, options.geo.v6_prefixes.max(1));
        let mut ebpf = loader
            .load(EBPF_OBJECT)
            .map_err(|source| KernelError::Load {
                source: Box::new(source),
            })?;
        for name in [
            programs::UPLOAD,
            programs::DOWNLOAD,
            programs::PARSE_ONLY,
            programs::EMPTY,
        ] {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(KernelError::Missing {
                    kind: "program",
                    name,
                })?
                .try_into()
                .map_err(|source| KernelError::Program {
                    name,
                    source: Box::new(source),
                })?;
            program.load().map_err(|source| KernelError::Program {
                name,
                source: Box::new(source),
            })?;
        }
        Ok(Self {
            ebpf,
            counter_entries: options.counter_entries,
        })
    }

    /// A loaded program by name, for attaching or `BPF_PROG_TEST_RUN`.
    pub fn program(&self, name: &'static str) -> Result<&SchedClassifier, KernelError> {
        self.ebpf
            .program(name)
            .ok_or(KernelError::Missing {
                kind: "program",
                name,
            })?
            .try_into()
            .map_err(|source| KernelError::Program {
                name,
                source: Box::new(source),
            })
    }

    pub(super) fn program_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut SchedClassifier, KernelError> {
        self.ebpf
            .program_mut(name)
            .ok_or(KernelError::Missing {
                kind: "program",
                name,
            })?
            .try_into()
            .map_err(|source| KernelError::Program {
                name,
                source: Box::new(source),
            })
    }

    pub(super) fn take_map(&mut self, name: &'static str) -> Result<aya::maps::Map, KernelError> {
        self.ebpf
            .take_map(name)
            .ok_or(KernelError::Missing { kind: "map", name })
    }

    pub(super) fn map_mut(
        &mut self,
        name: &'static str,
    ) -> Result<&mut aya::maps::Map, KernelError> {
        self.ebpf
            .map_mut(name)
            .ok_or(KernelError::Missing { kind: "map", name })
    }
}

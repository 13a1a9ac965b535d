//! Remote address -> country id, through the maps the agent filled.

use aya_ebpf::maps::lpm_trie::Key;
use tracer_common::{
    CountryId, Settings,
    geo_dxr::{self, v4_digits, v6_digits},
    maps::lookup_mode,
};

use crate::{
    maps::{
        GEO_V4_LPM, GEO_V4_NODES, GEO_V4_RANGES, GEO_V4_TABLE, GEO_V6_LPM, GEO_V6_NODES,
        GEO_V6_RANGES, GEO_V6_TABLE,
    },
    parse::Remote,
};

/// The country id of `remote` ([`CountryId::LOCAL`] for local destinations), with the
/// structures `settings` selects.
#[inline(always)]
pub(crate) fn country_of(remote: &Remote, settings: Option<&Settings>) -> CountryId {
    let lpm_only = matches!(settings, Some(s) if s.lookup == lookup_mode::LPM);
    match remote {
        Remote::V4(addr) => {
            if lpm_only {
                let key = Key::new(32, u32::from_ne_bytes(*addr));
                GEO_V4_LPM.get(&key).map_or(CountryId::UNKNOWN, |id| CountryId(*id))
            } else {
                geo_dxr::lookup(
                    &v4_digits(addr),
                    |i| GEO_V4_TABLE.get(i),
                    |i| GEO_V4_NODES.get(i),
                    |i| GEO_V4_RANGES.get(i),
                )
            }
        }
        Remote::V6(addr) => {
            if lpm_only {
                let key = Key::new(128, *addr);
                GEO_V6_LPM.get(&key).map_or(CountryId::UNKNOWN, |id| CountryId(*id))
            } else {
                geo_dxr::lookup(
                    &v6_digits(addr),
                    |i| GEO_V6_TABLE.get(i),
                    |i| GEO_V6_NODES.get(i),
                    |i| GEO_V6_RANGES.get(i),
                )
            }
        }
    }
}

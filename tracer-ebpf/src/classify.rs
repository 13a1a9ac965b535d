//! Remote address -> country id, through the maps the agent filled.

use aya_ebpf::maps::lpm_trie::Key;
use tracer_common::{CountryId, geo_table, maps::ipv4_lookup};

use crate::{
    maps::{GEO_V4_LPM, GEO_V4_TABLE, GEO_V6_LPM, SETTINGS},
    parse::Remote,
};

/// The country id of `remote` ([`CountryId::LOCAL`] for local destinations).
#[inline(always)]
pub fn country_of(remote: &Remote) -> CountryId {
    match remote {
        Remote::V4(addr) => {
            let use_lpm = matches!(SETTINGS.get(0), Some(s) if s.ipv4_lookup == ipv4_lookup::LPM);
            if use_lpm {
                let key = Key::new(32, u32::from_ne_bytes(*addr));
                GEO_V4_LPM
                    .get(&key)
                    .map_or(CountryId::UNKNOWN, |id| CountryId(*id))
            } else {
                geo_table::lookup_v4(u32::from_be_bytes(*addr), |i| GEO_V4_TABLE.get(i))
            }
        }
        Remote::V6(addr) => {
            let key = Key::new(128, *addr);
            GEO_V6_LPM
                .get(&key)
                .map_or(CountryId::UNKNOWN, |id| CountryId(*id))
        }
    }
}

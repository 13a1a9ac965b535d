//! Remote address -> country id, through the maps the agent filled.
//!
//! The lookups are BPF global functions ([`geo_v4`], [`geo_v6`]): the verifier checks each once,
//! on its own, with arguments it knows nothing about, and the caller sees only a scalar come
//! back. Inlined, every way out of the lookup's loops went on into the rest of the program as
//! a path of its own (on 6.18: 201,743 instructions walked for `tc_upload` before, 106,773
//! with these two functions; 6.1 gave up after a million).

use aya_ebpf::maps::lpm_trie::Key;
use tracer_common::{
    CountryId, Settings,
    geo_dxr::{self, V6_DIGITS, v4_digits},
    maps::lookup_mode,
};

use crate::{
    maps::{
        GEO_V4_LPM, GEO_V4_NODES, GEO_V4_RANGES, GEO_V4_TABLE, GEO_V6_LPM, GEO_V6_NODES,
        GEO_V6_RANGES, GEO_V6_TABLE,
    },
    parse::Address,
};

/// The country id of `remote` ([`CountryId::LOCAL`] for local destinations), with the
/// structures `settings` selects.
#[inline(always)]
pub(crate) fn country_of(remote: &Address, settings: Option<&Settings>) -> CountryId {
    let lpm = u32::from(matches!(settings, Some(s) if s.lookup == lookup_mode::LPM));
    let id =
        if remote.v6 { geo_v6(remote.hi, remote.lo, lpm) } else { geo_v4(remote.hi as u32, lpm) };
    CountryId(id as u16)
}

/// The country id of the IPv4 address `addr` (host byte order); `lpm` non-zero: from the LPM
/// trie. A BPF global function (see the module doc).
#[unsafe(no_mangle)]
#[inline(never)]
pub(crate) extern "C" fn geo_v4(addr: u32, lpm: u32) -> u32 {
    let bytes = addr.to_be_bytes();
    let id = if lpm != 0 {
        let key = Key::new(32, u32::from_ne_bytes(bytes));
        GEO_V4_LPM.get(&key).map_or(CountryId::UNKNOWN, |id| CountryId(*id))
    } else {
        geo_dxr::lookup(
            &v4_digits(&bytes),
            |i| GEO_V4_TABLE.get(i),
            |i| GEO_V4_NODES.get(i),
            |i| GEO_V4_RANGES.get(i),
        )
    };
    u32::from(id.0)
}

/// The country id of the IPv6 address whose high and low 64 bits are `hi` and `lo`; `lpm`
/// non-zero: from the LPM trie. A BPF global function (see the module doc).
#[unsafe(no_mangle)]
#[inline(never)]
pub(crate) extern "C" fn geo_v6(hi: u64, lo: u64, lpm: u32) -> u32 {
    let id = if lpm != 0 {
        let mut addr = [0u8; 16];
        addr[..8].copy_from_slice(&hi.to_be_bytes());
        addr[8..].copy_from_slice(&lo.to_be_bytes());
        let key = Key::new(128, addr);
        GEO_V6_LPM.get(&key).map_or(CountryId::UNKNOWN, |id| CountryId(*id))
    } else {
        let mut digits = [0u16; V6_DIGITS];
        let mut i = 0;
        while i < V6_DIGITS / 2 {
            digits[i] = (hi >> (48 - 16 * i)) as u16;
            digits[i + V6_DIGITS / 2] = (lo >> (48 - 16 * i)) as u16;
            i += 1;
        }
        geo_dxr::lookup(
            &digits,
            |i| GEO_V6_TABLE.get(i),
            |i| GEO_V6_NODES.get(i),
            |i| GEO_V6_RANGES.get(i),
        )
    };
    u32::from(id.0)
}

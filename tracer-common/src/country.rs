//! Country ids: the 16-bit values stored in the lookup tables and counter keys.
//!
//! A country id is derived from the ISO 3166-1 alpha-2 code itself, so it is stable across
//! databases, reloads and agent versions (a pinned counter keeps its meaning):
//! `id = (first - 'A') * 26 + (second - 'A') + 1`, giving `1..=676`. Id `0` is "unknown"
//! (not in the database) and [`CountryId::LOCAL`] marks local destinations that are not egress.

/// A country id as stored in the kernel maps.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CountryId(pub u16);

impl CountryId {
    /// The address is not in the database.
    pub const UNKNOWN: Self = Self(0);
    /// The largest id a two-letter code can produce (`ZZ`).
    pub const MAX_COUNTRY: u16 = 26 * 26;
    /// The destination is local (private, link-local, multicast, the LAN's own prefixes...):
    /// not egress, not counted per country.
    pub const LOCAL: Self = Self(1023);
    /// A table entry meaning "the data is finer here than the table resolves: ask the LPM
    /// trie" (IPv6 below /64). Never stored in counters.
    pub const FALLBACK: Self = Self(1022);
    /// Number of distinct ids a table entry can hold (`0..NUM_IDS`); values at or above this
    /// are pointers to table blocks (see [`crate::geo_table`]).
    pub const NUM_IDS: u16 = 1024;

    /// The id of an upper-case ISO 3166-1 alpha-2 code, or `None` if it is not two ASCII
    /// letters. Lower-case letters are accepted and folded.
    pub const fn from_code(code: [u8; 2]) -> Option<Self> {
        let a = code[0].to_ascii_uppercase();
        let b = code[1].to_ascii_uppercase();
        if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
            return None;
        }
        Some(Self(((a - b'A') as u16) * 26 + (b - b'A') as u16 + 1))
    }

    /// The two-letter code of a country id, or `None` for unknown, local and invalid ids.
    pub const fn code(self) -> Option<[u8; 2]> {
        if self.0 == 0 || self.0 > Self::MAX_COUNTRY {
            return None;
        }
        let v = self.0 - 1;
        Some([b'A' + (v / 26) as u8, b'A' + (v % 26) as u8])
    }

    /// Whether this id names a country (not unknown, not local).
    pub const fn is_country(self) -> bool {
        self.0 >= 1 && self.0 <= Self::MAX_COUNTRY
    }
}

#[cfg(test)]
mod tests {
    use super::CountryId;

    #[test]
    fn codes_round_trip() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let id = CountryId::from_code([a, b]).unwrap();
                assert!(id.is_country());
                assert_eq!(id.code(), Some([a, b]));
            }
        }
        assert_eq!(CountryId::from_code(*b"AA"), Some(CountryId(1)));
        assert_eq!(CountryId::from_code(*b"ZZ"), Some(CountryId(676)));
        assert_eq!(CountryId::from_code(*b"cn"), CountryId::from_code(*b"CN"));
    }

    #[test]
    fn rejects_non_letters() {
        assert_eq!(CountryId::from_code(*b"1A"), None);
        assert_eq!(CountryId::from_code(*b"A-"), None);
        assert_eq!(CountryId::UNKNOWN.code(), None);
        assert_eq!(CountryId::LOCAL.code(), None);
        assert!(!CountryId::LOCAL.is_country());
    }
}

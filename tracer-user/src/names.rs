//! How MACs and countries are spelled in output and labels.

use tracer_common::CountryId;

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The ISO code of a country id, `unknown` for ids outside the database and `local` for
/// local destinations.
pub fn country_label(id: CountryId) -> &'static str {
    if id == CountryId::LOCAL {
        return "local";
    }
    if !id.is_country() {
        return "unknown";
    }
    COUNTRY_CODES[usize::from(id.0 - 1)].as_str()
}

/// Name of an IP protocol number: `icmp`, `tcp`, `udp`, ... or the number.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        1 => "icmp".to_owned(),
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        58 => "icmpv6".to_owned(),
        132 => "sctp".to_owned(),
        136 => "udplite".to_owned(),
        other => other.to_string(),
    }
}

/// Every two-letter code in id order, so labels never allocate per scrape.
static COUNTRY_CODES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (1..=CountryId::MAX_COUNTRY)
        .map(|i| {
            CountryId(i)
                .code()
                .map_or_else(String::new, |c| String::from_utf8_lossy(&c).into_owned())
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(format_mac([2, 0, 0, 0, 0, 0xab]), "02:00:00:00:00:ab");
        assert_eq!(country_label(CountryId::from_code(*b"CN").unwrap()), "CN");
        assert_eq!(country_label(CountryId::UNKNOWN), "unknown");
        assert_eq!(country_label(CountryId::LOCAL), "local");
    }
}

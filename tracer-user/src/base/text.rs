//! How MACs and countries are spelled in output and labels.

use tracer_common::CountryId;

/// `aa:bb:cc:dd:ee:ff`, lower case.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC that stands for every device folded into `other` (metrics, alerts): a broadcast address, never a frame's source (the kernel
/// drops such frames before TC sees them).
pub const OTHER_MAC: [u8; 6] = [0xff; 6];

/// The `mac` label: the MAC, or `other` for [`OTHER_MAC`].
pub fn mac_label(mac: [u8; 6]) -> String {
    if mac == OTHER_MAC { "other".to_owned() } else { format_mac(mac) }
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

/// Untrusted bytes from the network (a DHCP hostname, a DNS or TLS name) as one printable
/// line: valid UTF-8 is kept except `\` and `"` (escaped) and control characters (`\n`, `\r`,
/// `\t`, `\xNN`, `\u{NNNN}`); bidi and zero-width characters become `\u{NNNN}`; invalid
/// bytes become `\xNN`. At most `cap` characters (an escape counts as one), then `…`.
pub fn escape_untrusted(raw: &[u8], cap: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut push = |piece: &str, out: &mut String| -> bool {
        if chars >= cap {
            return false;
        }
        out.push_str(piece);
        chars += 1;
        true
    };
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            let piece = match c {
                '\\' => "\\\\".to_owned(),
                '"' => "\\\"".to_owned(),
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                c if (c as u32) < 0x80 && c.is_ascii_control() => format!("\\x{:02x}", c as u32),
                c if c.is_control() || is_invisible(c) => format!("\\u{{{:04x}}}", c as u32),
                c => c.to_string(),
            };
            if !push(&piece, &mut out) {
                out.push('…');
                return out;
            }
        }
        for b in chunk.invalid() {
            if !push(&format!("\\x{b:02x}"), &mut out) {
                out.push('…');
                return out;
            }
        }
    }
    out
}

/// Characters that reorder or hide text (bidi overrides, zero-width): shown as escapes.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
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

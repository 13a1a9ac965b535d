//! Hostnames from the network: untrusted bytes, kept as they came and escaped wherever shown.

use serde::Serialize;

/// Characters of the escaped form shown at most; longer names end in `…`.
pub const DISPLAY_CAP: usize = 64;

/// A name as a DHCP client (or the configuration) gave it: any bytes, any length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hostname(Box<[u8]>);

impl Hostname {
    /// Wraps raw bytes.
    pub fn new(raw: impl Into<Vec<u8>>) -> Self {
        Self(raw.into().into_boxed_slice())
    }

    /// The bytes as received.
    pub fn raw(&self) -> &[u8] {
        &self.0
    }

    /// One printable line: valid UTF-8 is kept except `\` and `"` (escaped) and control
    /// characters (`\n`, `\r`, `\t`, `\xNN`, `\u{NNNN}`); invalid bytes become `\xNN`. At most
    /// [`DISPLAY_CAP`] characters, then `…`.
    pub fn escaped(&self) -> String {
        let mut out = String::new();
        let mut chars = 0;
        let mut push = |piece: &str, out: &mut String| -> bool {
            if chars >= DISPLAY_CAP {
                return false;
            }
            out.push_str(piece);
            chars += 1;
            true
        };
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                let piece = match c {
                    '\\' => "\\\\".to_owned(),
                    '"' => "\\\"".to_owned(),
                    '\n' => "\\n".to_owned(),
                    '\r' => "\\r".to_owned(),
                    '\t' => "\\t".to_owned(),
                    c if (c as u32) < 0x80 && c.is_ascii_control() => {
                        format!("\\x{:02x}", c as u32)
                    }
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
}

/// Characters that reorder or hide text (bidi overrides, zero-width): shown as escapes.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl Serialize for Hostname {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.escaped())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_one_bounded_printable_line() {
        assert_eq!(Hostname::new("tv").escaped(), "tv");
        assert_eq!(Hostname::new("a\"b\\c\nd\re\tf\x07").escaped(), r#"a\"b\\c\nd\re\tf\x07"#);
        assert_eq!(Hostname::new(b"caf\xc3\xa9-\xff\xfe".to_vec()).escaped(), r"café-\xff\xfe");
        assert_eq!(Hostname::new("evil\u{202e}gnp.exe").escaped(), r"evil\u{202e}gnp.exe");
        let long = Hostname::new(vec![b'x'; 1024]);
        let shown = long.escaped();
        assert_eq!(shown.chars().count(), DISPLAY_CAP + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(long.raw().len(), 1024, "the raw name is kept whole");
        let json = serde_json::to_string(&Hostname::new(b"q\"\n\xff".to_vec())).unwrap();
        assert_eq!(json, r#""q\\\"\\n\\xff""#);
    }
}

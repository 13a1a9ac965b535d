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
        crate::base::text::escape_untrusted(&self.0, DISPLAY_CAP)
    }
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

//! CSV range files: `first,last,CC[,ignored...]`, one inclusive range per row.
//!
//! This reads the ip-location-db files (`1.0.0.0,1.0.0.255,AU`), DB-IP lite country CSV (the
//! same layout) and integer layouts such as ip2location LITE DB1 (`"16777216","16777471","AU",
//! "Australia"`). Rows are applied in file order, each later row overriding the addresses it
//! covers (see [`super::ranges`]).
//!
//! Rules:
//! - Fields may be quoted (`"1.0.0.0"`) and surrounded by spaces; columns after the country are
//!   ignored (they may hold quoted commas). Fewer than three fields is an error.
//! - Blank lines and lines starting with `#` are skipped. The first remaining line is skipped as
//!   a header if its first field is not an address; anywhere else that is an error.
//! - `first` and `last` are both IPv4, both IPv6, or both decimal integers. IPv4 and IPv6 rows
//!   may be mixed in one file.
//! - Integer rows are IPv4, unless some integer in the file is above `u32::MAX`: then the file
//!   is an IPv6 integer file (ip2location's IPv6 layout) and all its integer rows are IPv6.
//! - IPv6 rows entirely inside `::ffff:0:0/96` (IPv4-mapped, as in ip2location's IPv6 files)
//!   are applied to IPv4 as the embedded IPv4 range.
//! - The country is two ASCII letters, case-insensitive. `ZZ` and `XX` (user-assigned, used for
//!   "unknown"), `-`, `--` and the legacy MaxMind `A1`, `A2`, `O1` mean unknown: such a row
//!   erases what earlier rows said about its addresses. `EU` and `AP` are real registry codes
//!   and are kept as regions of their own.
//! - Gzip input (magic `1f 8b`) is decompressed transparently.

use std::net::{Ipv4Addr, Ipv6Addr};

use tracer_common::CountryId;

use super::{
    GeoData, GeoError,
    input::{MAX_INPUT_BYTES, gunzip, is_gzip},
    ranges::RangeMap,
};

/// Start of the IPv4-mapped IPv6 block `::ffff:0:0/96`.
const V4_MAPPED: u128 = 0xffff_0000_0000;

/// One parsed address field.
#[derive(Clone, Copy, Debug)]
enum Field {
    V4(u32),
    V6(u128),
    Int(u128),
}

/// Parses `bytes` (CSV text, optionally gzipped) named `name` in error messages.
pub fn parse_csv(name: &str, bytes: &[u8]) -> Result<GeoData, GeoError> {
    let decompressed;
    let text = if is_gzip(bytes) {
        decompressed = gunzip(name, bytes, MAX_INPUT_BYTES)?;
        &decompressed[..]
    } else {
        bytes
    };
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let mut v4 = RangeMap::<u32>::new();
    let mut v6 = RangeMap::<u128>::new();
    let mut integers_are_v6: Option<bool> = None;
    let mut seen_content = false;
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let err = |reason: String| GeoError::parse(name, line_no, reason);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| err("not valid UTF-8".into()))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first_line = !seen_content;
        seen_content = true;
        let fields = split_fields(line).map_err(err)?;
        let [first_text, last_text, code_text] = fields;
        let Some(first) = parse_address(first_text) else {
            if first_line {
                continue; // a header
            }
            return Err(err(format!("bad address {first_text:?}")));
        };
        let last =
            parse_address(last_text).ok_or_else(|| err(format!("bad address {last_text:?}")))?;
        let id = parse_country(code_text).map_err(err)?;
        let (first, last) = match (first, last) {
            (Field::Int(a), Field::Int(b)) => {
                let v6 = *integers_are_v6.get_or_insert_with(|| has_big_integers(text));
                if v6 {
                    (Field::V6(a), Field::V6(b))
                } else if let (Ok(a), Ok(b)) = (u32::try_from(a), u32::try_from(b)) {
                    (Field::V4(a), Field::V4(b))
                } else {
                    // Cannot happen (a big integer makes the file IPv6); an error, not a panic.
                    return Err(err(format!("integer address {a} or {b} is too large for IPv4")));
                }
            }
            pair => pair,
        };
        match (first, last) {
            (Field::V4(a), Field::V4(b)) if a <= b => v4.insert(a, b, id),
            (Field::V6(a), Field::V6(b)) if a <= b => {
                if a >> 32 == V4_MAPPED >> 32 && b >> 32 == V4_MAPPED >> 32 {
                    // Both ends are inside ::ffff:0:0/96: the low 32 bits are the IPv4 address.
                    v4.insert(a as u32, b as u32, id);
                } else {
                    v6.insert(a, b, id);
                }
            }
            (Field::V4(_), Field::V4(_)) | (Field::V6(_), Field::V6(_)) => {
                return Err(err(format!(
                    "first address {first_text} is after last address {last_text}"
                )));
            }
            _ => {
                return Err(err(format!(
                    "first address {first_text} and last address {last_text} are of different \
                     families"
                )));
            }
        }
    }
    if v4.is_empty() && v6.is_empty() {
        return Err(GeoError::Empty { name: name.to_owned() });
    }
    Ok(GeoData {
        source: name.to_owned(),
        build_date: None,
        attribution: None,
        v4: v4.into_runs(),
        v6: v6.into_runs(),
    })
}

/// Whether any integer address field in `text` is above `u32::MAX` (an IPv6 integer file).
fn has_big_integers(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .filter_map(|raw| std::str::from_utf8(raw).ok())
        .filter_map(|line| split_fields(line.trim()).ok())
        .flat_map(|[a, b, _]| [a, b])
        .any(
            |field| matches!(parse_address(field), Some(Field::Int(v)) if v > u128::from(u32::MAX)),
        )
}

/// Splits off the first three fields of `line` (quote-aware, trimmed, unquoted).
fn split_fields(line: &str) -> Result<[&str; 3], String> {
    let mut fields = [""; 3];
    let mut rest = line;
    for (count, slot) in fields.iter_mut().enumerate() {
        let trimmed = rest.trim_start();
        let (field, after) = if let Some(quoted) = trimmed.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unterminated quote in field {}", count + 1))?;
            let after = quoted[end + 1..].trim_start();
            if !after.is_empty() && !after.starts_with(',') {
                return Err(format!("unexpected text after quoted field {}", count + 1));
            }
            (&quoted[..end], after)
        } else {
            let end = trimmed.find(',').unwrap_or(trimmed.len());
            (trimmed[..end].trim_end(), &trimmed[end..])
        };
        *slot = field.trim();
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None if count == 2 => rest = "",
            None => {
                return Err(format!(
                    "expected at least 3 fields (first,last,country), found {}",
                    count + 1
                ));
            }
        }
    }
    Ok(fields)
}

/// An IPv4 address, IPv6 address or decimal integer.
fn parse_address(field: &str) -> Option<Field> {
    if field.contains(':') {
        field.parse::<Ipv6Addr>().ok().map(|a| Field::V6(a.into()))
    } else if field.contains('.') {
        field.parse::<Ipv4Addr>().ok().map(|a| Field::V4(a.into()))
    } else if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        field.parse::<u128>().ok().map(Field::Int)
    } else {
        None
    }
}

/// A country code to its id (see the module docs for the codes that mean unknown).
fn parse_country(code: &str) -> Result<CountryId, String> {
    let upper = code.to_ascii_uppercase();
    match upper.as_str() {
        "ZZ" | "XX" | "-" | "--" | "A1" | "A2" | "O1" => return Ok(CountryId::UNKNOWN),
        _ => {}
    }
    match upper.as_bytes() {
        &[a, b] => CountryId::from_code([a, b]),
        _ => None,
    }
    .ok_or_else(|| format!("bad country code {code:?}: expected two ASCII letters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_split_quote_aware() {
        assert_eq!(split_fields("a,b,c"), Ok(["a", "b", "c"]));
        assert_eq!(split_fields(r#" "1" , "2","AU","Korea, Republic of""#), Ok(["1", "2", "AU"]));
        assert!(split_fields("a,b").is_err());
        assert!(split_fields(r#""a,b,c"#).is_err());
        assert!(split_fields(r#""a"x,b,c"#).is_err());
    }

    #[test]
    fn country_codes() {
        assert_eq!(parse_country("cn"), Ok(CountryId::from_code(*b"CN").unwrap()));
        assert_eq!(parse_country("ZZ"), Ok(CountryId::UNKNOWN));
        assert_eq!(parse_country("--"), Ok(CountryId::UNKNOWN));
        assert!(parse_country("EU").is_ok_and(|id| id.is_country()));
        assert!(parse_country("C1").is_err());
        assert!(parse_country("").is_err());
        assert!(parse_country("USA").is_err());
    }
}

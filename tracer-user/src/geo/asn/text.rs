//! Text sources: CSV (ip-location-db `asn`, DB-IP ASN lite, GeoLite2-ASN-Blocks) and TSV
//! (iptoasn.com `ip2asn-*.tsv`).
//!
//! Rules:
//! - One row per line (`\n` or `\r\n`); blank lines and lines starting with `#` are skipped. The
//!   first remaining line is skipped as a header if its first field is not an address or a
//!   network; anywhere else that is an error.
//! - CSV rows are `first,last,AS number,organisation` (ip-location-db, DB-IP) or
//!   `network/len,AS number,organisation` (GeoLite2-ASN-Blocks CSV). Fields may be quoted as in
//!   RFC 4180 (`"Cloudflare, Inc."`, `"LLC ""SPUTNIK"""`); a quoted field cannot span lines.
//!   Columns after the organisation are ignored.
//! - TSV rows are `first<TAB>last<TAB>AS number<TAB>country<TAB>description` (iptoasn.com); the
//!   country is ignored and fields are not quoted.
//! - `first` and `last` are both IPv4, both IPv6, or both decimal integers (ip-location-db's
//!   `-num` files, iptoasn's `-u32` file). Integer rows are IPv4, unless some integer address in
//!   the file is above `u32::MAX`: then all integer rows of the file are IPv6.
//! - IPv6 ranges inside `::ffff:0:0/96` are applied to IPv4 as the embedded IPv4 range.
//! - The AS number is decimal (an `AS` prefix is accepted) and fits in 32 bits. AS 0 marks
//!   unrouted space (iptoasn's "Not routed" rows): such rows are skipped, erasing nothing.
//! - The organisation is cleaned by [`clean_org`](super::builder::clean_org).

use std::{
    borrow::Cow,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;

use super::{AsnError, builder::Builder};

/// The field separator of a text source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sep {
    /// Comma-separated, RFC 4180 quoting.
    Comma,
    /// Tab-separated, no quoting.
    Tab,
}

/// One parsed address field.
#[derive(Clone, Copy, Debug)]
enum Field {
    V4(u32),
    V6(u128),
    Int(u128),
}

/// The first field of a row.
enum Head {
    /// A network (`addr/len`), already a range.
    Network(Range),
    /// The first address of a range.
    Start(Field),
}

/// One range, resolved to a family.
enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

/// The lines of `text` with their 1-based numbers, without the line ending, skipping blank and
/// `#` lines.
fn content_lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n').enumerate().filter_map(|(index, raw)| {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = raw.trim_ascii();
        (!trimmed.is_empty() && !trimmed.starts_with(b"#")).then_some((index + 1, raw))
    })
}

/// The first content line of `text` (after a UTF-8 byte order mark), if any.
pub(super) fn first_line(text: &[u8]) -> Option<&[u8]> {
    content_lines(strip_bom(text)).next().map(|(_, line)| line)
}

fn strip_bom(text: &[u8]) -> &[u8] {
    text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
}

/// Splits `line` into `out`: trimmed fields, unquoted for [`Sep::Comma`].
fn split_fields<'a>(line: &'a [u8], sep: Sep, out: &mut Vec<Cow<'a, [u8]>>) -> Result<(), String> {
    out.clear();
    if sep == Sep::Tab {
        out.extend(line.split(|&b| b == b'\t').map(|f| Cow::Borrowed(f.trim_ascii())));
        return Ok(());
    }
    let mut rest = line;
    loop {
        let number = out.len() + 1;
        let trimmed = rest.trim_ascii_start();
        let after = if let Some(quoted) = trimmed.strip_prefix(b"\"") {
            // RFC 4180: the field runs to the next lone quote; `""` is an escaped quote.
            let mut value: Option<Vec<u8>> = None;
            let mut i = 0;
            loop {
                let Some(offset) = quoted[i..].iter().position(|&b| b == b'"') else {
                    return Err(format!("unterminated quote in field {number}"));
                };
                let quote = i + offset;
                if quoted.get(quote + 1) == Some(&b'"') {
                    value.get_or_insert_with(Vec::new).extend_from_slice(&quoted[i..=quote]);
                    i = quote + 2;
                    continue;
                }
                let field = match value {
                    Some(mut owned) => {
                        owned.extend_from_slice(&quoted[i..quote]);
                        Cow::Owned(owned)
                    }
                    None => Cow::Borrowed(&quoted[..quote]),
                };
                out.push(field);
                break &quoted[quote + 1..];
            }
        } else {
            let end = trimmed.iter().position(|&b| b == b',').unwrap_or(trimmed.len());
            out.push(Cow::Borrowed(trimmed[..end].trim_ascii_end()));
            &trimmed[end..]
        };
        let after = after.trim_ascii_start();
        match after.strip_prefix(b",") {
            Some(next) => rest = next,
            None if after.is_empty() => return Ok(()),
            None => return Err(format!("unexpected text after quoted field {number}")),
        }
    }
}

/// An IPv4 address, IPv6 address or decimal integer.
fn parse_address(field: &[u8]) -> Option<Field> {
    let text = std::str::from_utf8(field).ok()?;
    if text.contains(':') {
        text.parse::<Ipv6Addr>().ok().map(|a| Field::V6(a.into()))
    } else if text.contains('.') {
        text.parse::<Ipv4Addr>().ok().map(|a| Field::V4(a.into()))
    } else if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u128>().ok().map(Field::Int)
    } else {
        None
    }
}

/// A network `addr/len` as its inclusive range.
fn parse_network(field: &[u8]) -> Option<Range> {
    let net: IpNet = std::str::from_utf8(field).ok()?.parse().ok()?;
    Some(match net.trunc() {
        IpNet::V4(net) => Range::V4(net.network().into(), net.broadcast().into()),
        IpNet::V6(net) => Range::V6(net.network().into(), net.broadcast().into()),
    })
}

/// A field as text for messages (lossy, quoted and escaped by `Debug`).
fn show(field: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(field))
}

/// An AS number: decimal, optionally prefixed with `AS`, at most `u32::MAX`.
fn parse_as_number(field: &[u8]) -> Result<u32, String> {
    let digits = match field {
        [b'A' | b'a', b'S' | b's', rest @ ..] => rest,
        _ => field,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("bad AS number {}", show(field)));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .ok_or_else(|| format!("bad AS number {}: above 4294967295", show(field)))
}

/// Whether any integer address field in `text` is above `u32::MAX` (an IPv6 integer file).
fn has_big_integers(text: &[u8], sep: Sep) -> bool {
    let mut fields = Vec::new();
    content_lines(text).any(|(_, line)| {
        split_fields(line, sep, &mut fields).is_ok()
            && fields.iter().take(2).any(
                |f| matches!(parse_address(f), Some(Field::Int(v)) if v > u128::from(u32::MAX)),
            )
    })
}

/// Applies the rows of CSV or TSV `text` named `name` to `builder`.
pub(super) fn parse_text(
    name: &str,
    text: &[u8],
    sep: Sep,
    builder: &mut Builder,
) -> Result<(), AsnError> {
    let text = strip_bom(text);
    let mut integers_are_v6: Option<bool> = None;
    let mut seen_content = false;
    let mut fields = Vec::with_capacity(8);
    for (line_no, line) in content_lines(text) {
        let err = |reason: String| AsnError::parse(name, line_no, reason);
        let first_line = !seen_content;
        seen_content = true;
        split_fields(line, sep, &mut fields).map_err(err)?;
        let head = &fields[0];
        let is_network = head.contains(&b'/');
        let parsed = if is_network {
            parse_network(head).map(Head::Network)
        } else {
            parse_address(head).map(Head::Start)
        };
        let Some(parsed) = parsed else {
            if first_line {
                continue; // a header
            }
            let what = if is_network { "network" } else { "address" };
            return Err(err(format!("bad {what} {}", show(head))));
        };
        // Column of the AS number; the organisation follows (after the country in TSV).
        let (as_col, org_col) = match (is_network, sep) {
            (true, Sep::Comma) => (1, 2),
            (true, Sep::Tab) => (1, 3),
            (false, Sep::Comma) => (2, 3),
            (false, Sep::Tab) => (2, 4),
        };
        if fields.len() <= org_col {
            let layout = match (is_network, sep) {
                (true, Sep::Comma) => "network,AS number,organisation",
                (true, Sep::Tab) => "network, AS number, country, description",
                (false, Sep::Comma) => "first,last,AS number,organisation",
                (false, Sep::Tab) => "first, last, AS number, country, description",
            };
            let kind = if sep == Sep::Tab { " tab-separated" } else { "" };
            return Err(err(format!(
                "missing column: expected {}{kind} fields ({layout}), found {}",
                org_col + 1,
                fields.len()
            )));
        }
        let range = match parsed {
            Head::Network(range) => range,
            Head::Start(first) => {
                let last_text = &fields[1];
                let last = parse_address(last_text)
                    .ok_or_else(|| err(format!("bad address {}", show(last_text))))?;
                let (first_text, last_text) = (|| show(head), || show(last_text));
                match (first, last) {
                    (Field::V4(a), Field::V4(b)) => Range::V4(a, b),
                    (Field::V6(a), Field::V6(b)) => Range::V6(a, b),
                    (Field::Int(a), Field::Int(b)) => {
                        let v6 =
                            *integers_are_v6.get_or_insert_with(|| has_big_integers(text, sep));
                        match (u32::try_from(a), u32::try_from(b)) {
                            _ if v6 => Range::V6(a, b),
                            (Ok(a), Ok(b)) => Range::V4(a, b),
                            // Cannot happen (a big integer makes the file IPv6).
                            _ => {
                                return Err(err(format!(
                                    "integer address {} or {} is too large for IPv4",
                                    first_text(),
                                    last_text()
                                )));
                            }
                        }
                    }
                    _ => {
                        return Err(err(format!(
                            "first address {} and last address {} are of different families",
                            first_text(),
                            last_text()
                        )));
                    }
                }
            }
        };
        let after = match range {
            Range::V4(a, b) => a > b,
            Range::V6(a, b) => a > b,
        };
        if after {
            return Err(err(format!(
                "first address {} is after last address {}",
                show(head),
                show(&fields[1])
            )));
        }
        let number = parse_as_number(&fields[as_col]).map_err(err)?;
        if number == 0 {
            continue; // unrouted space
        }
        let org = &fields[org_col];
        match range {
            Range::V4(a, b) => builder.insert_v4(a, b, number, org)?,
            Range::V6(a, b) => builder.insert_v6(a, b, number, org)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, sep: Sep) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        split_fields(line.as_bytes(), sep, &mut out)?;
        Ok(out.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())
    }

    #[test]
    fn csv_fields_follow_rfc_4180() {
        assert_eq!(split("a,b,c", Sep::Comma).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split(r#"1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc.""#, Sep::Comma).unwrap(),
            ["1.0.0.0", "1.0.0.255", "13335", "Cloudflare, Inc."]
        );
        assert_eq!(
            split(r#" "1" , 2 ,"LLC ""SPUTNIK""","""",x"#, Sep::Comma).unwrap(),
            ["1", "2", "LLC \"SPUTNIK\"", "\"", "x"]
        );
        assert_eq!(split("a,,", Sep::Comma).unwrap(), ["a", "", ""]);
        assert_eq!(split(r#"a,"b,c"#, Sep::Comma).unwrap_err(), "unterminated quote in field 2");
        assert_eq!(
            split(r#""a"x,b"#, Sep::Comma).unwrap_err(),
            "unexpected text after quoted field 1"
        );
    }

    #[test]
    fn tsv_fields_are_not_quoted() {
        assert_eq!(
            split("1.0.0.0\t1.0.0.255\t13335\tUS\t\"CLOUDFLARENET, Inc.\"", Sep::Tab).unwrap(),
            ["1.0.0.0", "1.0.0.255", "13335", "US", "\"CLOUDFLARENET, Inc.\""]
        );
        assert_eq!(split("a\t\t", Sep::Tab).unwrap(), ["a", "", ""]);
    }

    #[test]
    fn as_numbers() {
        assert_eq!(parse_as_number(b"13335"), Ok(13335));
        assert_eq!(parse_as_number(b"AS13335"), Ok(13335));
        assert_eq!(parse_as_number(b"as0"), Ok(0));
        assert_eq!(parse_as_number(b"4294967295"), Ok(u32::MAX));
        assert!(parse_as_number(b"4294967296").unwrap_err().contains("above"));
        assert_eq!(parse_as_number(b"-1").unwrap_err(), "bad AS number \"-1\"");
        assert!(parse_as_number(b"").is_err());
        assert!(parse_as_number(b"AS").is_err());
        assert!(parse_as_number(b"AU").is_err());
    }
}

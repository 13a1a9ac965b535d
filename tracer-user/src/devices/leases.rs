//! DHCP lease files: dnsmasq's `dhcp.leases` and odhcpd's state file (OpenWrt).
//!
//! dnsmasq writes one lease per line: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (`*` for no name), and
//! for DHCPv6 a `duid SERVER-DUID` line followed by `EXPIRY IAID IPV6 HOSTNAME DUID` lines,
//! which carry no MAC. odhcpd's state file (`/tmp/hosts/odhcpd`, `option leasefile`) has lines
//! `# IFACE DUID IAID HOSTNAME EXPIRY ID LENGTH ADDR/LEN ...`; the MAC is only known where the
//! DUID embeds it (DUID-LL, type 3, and DUID-LLT, type 1, with hardware type 1). Lines that
//! do not parse are skipped and counted, never fatal.

use std::net::IpAddr;

use super::hostname::Hostname;

/// One lease that names a MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The client's MAC.
    pub mac: [u8; 6],
    /// Its name, if it sent one.
    pub hostname: Option<Hostname>,
    /// Leased addresses.
    pub addrs: Vec<IpAddr>,
    /// Expiry (Unix time; 0: never), to prefer the newest lease of a MAC.
    pub expiry: u64,
}

/// What a lease file yielded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Leases with a MAC.
    pub leases: Vec<Lease>,
    /// Lines that did not parse.
    pub skipped: usize,
}

fn mac_of(text: &[u8]) -> Option<[u8; 6]> {
    crate::base::text::parse_mac(std::str::from_utf8(text).ok()?)
}

fn name_of(field: &[u8]) -> Option<Hostname> {
    (field != b"*" && field != b"-" && !field.is_empty()).then(|| Hostname::new(field))
}

/// The MAC inside a DUID (hex), for DUID-LLT and DUID-LL over Ethernet.
fn mac_in_duid(duid: &[u8]) -> Option<[u8; 6]> {
    let hex = std::str::from_utf8(duid).ok()?.replace(':', "");
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let mac = match bytes.as_slice() {
        [0, 1, 0, 1, _, _, _, _, mac @ ..] | [0, 3, 0, 1, mac @ ..] if mac.len() == 6 => mac,
        _ => return None,
    };
    mac.try_into().ok()
}

fn fields(line: &[u8]) -> Vec<&[u8]> {
    // Only spaces and tabs separate fields: a CR inside a name stays part of the name.
    line.split(|&b| b == b' ' || b == b'\t').filter(|f| !f.is_empty()).collect()
}

/// Parses either format (told apart line by line).
pub fn parse(text: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    for line in text.split(|&b| b == b'\n') {
        let f = fields(line);
        let lease = match f.as_slice() {
            [] => continue,
            [b"duid", _] => continue,
            [b"#", _iface, duid, _iaid, name, expiry, _id, _len, addrs @ ..] => {
                odhcpd(duid, name, expiry, addrs)
            }
            [expiry, mac, ip, name, ..] => dnsmasq(expiry, mac, ip, name),
            _ => None,
        };
        match lease {
            Some(lease) => out.leases.push(lease),
            None => out.skipped += 1,
        }
    }
    out
}

fn number(field: &[u8]) -> Option<u64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn dnsmasq(expiry: &[u8], mac: &[u8], ip: &[u8], name: &[u8]) -> Option<Lease> {
    let mac = mac_of(mac)?; // DHCPv6 lines have an IAID here: skipped (no MAC)
    let addr: IpAddr = std::str::from_utf8(ip).ok()?.parse().ok()?;
    Some(Lease { mac, hostname: name_of(name), addrs: vec![addr], expiry: number(expiry)? })
}

fn odhcpd(duid: &[u8], name: &[u8], expiry: &[u8], addrs: &[&[u8]]) -> Option<Lease> {
    let mac = mac_in_duid(duid)?;
    let expiry = std::str::from_utf8(expiry).ok()?.parse::<i64>().ok()?.max(0) as u64;
    let addrs = addrs
        .iter()
        .filter_map(|a| {
            let text = std::str::from_utf8(a).ok()?;
            text.split('/').next()?.parse().ok()
        })
        .collect();
    Some(Lease { mac, hostname: name_of(name), addrs, expiry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_leases_with_hostile_lines() {
        let mut text = b"1764000000 02:00:00:00:00:01 10.77.0.11 tv 01:02:00:00:00:00:01\n\
1764000100 02:00:00:00:00:02 10.77.0.12 * *\n\
duid 00:01:00:01:2a:3b:4c:5d:02:00:00:00:00:09\n\
1764000200 1234567 fd77::12 phone 00:03:00:01:02:00:00:00:00:02\n\
garbage\n\
1764000300 02:00:00:00:00:zz 10.77.0.13 bad *\n\
notanumber 02:00:00:00:00:03 10.77.0.13 x *\n\
1764000400 02:00:00:00:00:04 10.77.0.14 \"q\\uo\"te *\n"
            .to_vec();
        text.extend_from_slice(b"1764000500 02:00:00:00:00:05 10.77.0.15 bad\xff\xfe *\n");
        text.extend_from_slice(b"1764000600 02:00:00:00:00:06 10.77.0.16 ");
        text.extend(std::iter::repeat_n(b'A', 1024));
        text.extend_from_slice(b" *\n1764000700 02:00:00:00:00:07");
        let parsed = parse(&text);
        let macs: Vec<u8> = parsed.leases.iter().map(|l| l.mac[5]).collect();
        assert_eq!(macs, [1, 2, 4, 5, 6]);
        assert_eq!(
            parsed.skipped, 5,
            "v6 line without MAC, garbage, bad MAC, bad expiry, truncated"
        );
        assert_eq!(parsed.leases[0].hostname.as_ref().unwrap().escaped(), "tv");
        assert_eq!(parsed.leases[1].hostname, None);
        assert_eq!(parsed.leases[2].hostname.as_ref().unwrap().escaped(), r#"\"q\\uo\"te"#);
        assert_eq!(parsed.leases[3].hostname.as_ref().unwrap().escaped(), r"bad\xff\xfe");
        assert_eq!(parsed.leases[4].hostname.as_ref().unwrap().raw().len(), 1024);
        assert_eq!(parsed.leases[0].addrs, ["10.77.0.11".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn odhcpd_state_lines_name_macs_from_the_duid() {
        let text = b"# br-lan 000100012a3b4c5d020000000021 1 laptop 1764000000 1 128 fd77::21/128 fd77::121/128\n\
# br-lan 00030001020000000022 2 - 1764000000 2 128 fd77::22/128\n\
# br-lan 0002000012345678 3 printer 1764000000 3 128 fd77::23/128\n";
        let parsed = parse(text);
        assert_eq!(parsed.leases.len(), 2);
        assert_eq!(parsed.skipped, 1, "DUID-EN carries no MAC");
        assert_eq!(parsed.leases[0].mac, [2, 0, 0, 0, 0, 0x21]);
        assert_eq!(parsed.leases[0].hostname.as_ref().unwrap().escaped(), "laptop");
        assert_eq!(parsed.leases[0].addrs.len(), 2);
        assert_eq!((parsed.leases[1].mac[5], parsed.leases[1].hostname.clone()), (0x22, None));
    }
}

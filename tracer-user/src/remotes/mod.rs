//! Per device, the remote addresses it talks to: the view behind
//! `GET /api/v1/devices/{mac}/remotes`, `egress-tracer status --device` and the page, built
//! from a [`RemoteSnapshot`] with each address's country and organisation.
//!
//! The kernel keeps every packet in one place (a live entry, the device's expired total or its
//! overflow total), so for every device the remotes view sums exactly to its per-country
//! counters; [`Traffic`] (the per-country counters' own shape) is that sum.

pub mod domains;
mod enrich;
pub mod ipfix;
mod metrics;
mod retire;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tracer_common::CountryId;

pub use enrich::{Enricher, Enrichment};
pub use metrics::RemoteCollector;
pub use retire::{RemoteStats, Retirement, flow_records};

use crate::{
    base::clock::wall_time,
    base::text::{country_label, format_mac, protocol_name},
    geo::asn::AsnDb,
    kernel::{RemoteEntry, RemoteSnapshot, Traffic},
    remotes::domains::NameBook,
};

/// Default number of remotes `GET /api/v1/devices/{mac}/remotes` answers with.
pub const DEFAULT_LIMIT: usize = 50;
/// Most remotes one answer holds.
pub const MAX_LIMIT: usize = 1000;

/// An autonomous system: who operates an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsnInfo {
    /// AS number.
    pub number: u32,
    /// The organisation's name, as the database spells it (escaped on output by JSON).
    pub org: String,
}

/// One remote address of a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteReport {
    /// The address.
    pub address: IpAddr,
    /// ISO code of its country, `unknown` if the database has none.
    pub country: String,
    /// Its autonomous system, when an ASN database knows it.
    pub asn: Option<AsnInfo>,
    /// Domain names the device used for it (DNS question names and TLS server names, most
    /// recent first; escaped); empty when the agent has not seen any.
    pub names: Vec<String>,
    /// The CNAME chain of the latest DNS answer, from the asked name to the address's owner.
    #[serde(default)]
    pub canonical: Vec<String>,
    /// IP protocol of the first packet: `tcp`, `udp`, `icmp`, ...
    pub protocol: String,
    /// Remote port of the first packet (TCP, UDP, SCTP), `null` otherwise.
    pub port: Option<u16>,
    /// What went to and from it: in the JSON its `upload`, `download` and `blocked` fields stand
    /// here, between `port` and `first_seen`.
    #[serde(flatten)]
    pub traffic: Traffic,
    /// The first packet (RFC 3339, UTC).
    pub first_seen: String,
    /// The latest packet (RFC 3339, UTC).
    pub last_seen: String,
}

/// A device's remotes, as `GET /api/v1/devices/{mac}/remotes` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRemotes {
    /// The device, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Live remotes, most bytes first, at most the requested limit.
    pub remotes: Vec<RemoteReport>,
    /// Live remotes matching the query (the list may be shorter: see `limit`).
    pub total: usize,
    /// Traffic of the live remotes matching the query that the list leaves out (over
    /// `limit`), so that listed + unlisted + expired + overflow is the device's whole traffic.
    #[serde(default)]
    pub unlisted: Traffic,
    /// Traffic of remotes retired after being idle.
    pub expired: Traffic,
    /// Traffic to remotes that did not fit in the remote table.
    pub overflow: Traffic,
}

/// What to list.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Query {
    /// At most this many remotes (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub limit: Option<usize>,
    /// Only remotes in this country (ISO code, `unknown`).
    pub country: Option<String>,
}

/// The organisation of `address`, if `asn` knows it.
pub fn asn_of(asn: Option<&AsnDb>, address: IpAddr) -> Option<AsnInfo> {
    let found = asn?.lookup(address)?;
    Some(AsnInfo { number: found.number, org: found.org.to_owned() })
}

fn report(entry: &RemoteEntry, asn: Option<&AsnDb>, names: Option<&NameBook>) -> RemoteReport {
    let address = entry.address();
    let learned = names.and_then(|n| n.names(entry.key.mac, address)).unwrap_or_default();
    RemoteReport {
        address,
        country: country_label(CountryId(entry.country)).to_owned(),
        asn: asn_of(asn, address),
        names: learned.names,
        canonical: learned.canonical,
        protocol: protocol_name(entry.protocol),
        port: (entry.port != 0).then_some(entry.port),
        traffic: Traffic::of_remote(&entry.traffic),
        first_seen: crate::base::clock::rfc3339(wall_time(entry.first_seen_ns)),
        last_seen: crate::base::clock::rfc3339(wall_time(entry.last_seen_ns)),
    }
}

/// The remotes of `mac` in `snapshot`, filtered and limited by `query`.
pub fn device_remotes(
    snapshot: &RemoteSnapshot,
    mac: [u8; 6],
    query: &Query,
    asn: Option<&AsnDb>,
    names: Option<&NameBook>,
) -> DeviceRemotes {
    let country = query.country.as_deref().map(str::to_ascii_uppercase);
    let mut mine: Vec<&RemoteEntry> = snapshot
        .entries
        .iter()
        .filter(|e| e.key.mac == mac)
        .filter(|e| {
            country
                .as_deref()
                .is_none_or(|c| country_label(CountryId(e.country)).eq_ignore_ascii_case(c))
        })
        .collect();
    mine.sort_by_key(|e| std::cmp::Reverse(Traffic::of_remote(&e.traffic).bytes()));
    let total = mine.len();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let spill = snapshot.spill.get(&mac).copied().unwrap_or_default();
    let mut unlisted = Traffic::default();
    for e in mine.iter().skip(limit) {
        unlisted += Traffic::of_remote(&e.traffic);
    }
    DeviceRemotes {
        mac: format_mac(mac),
        remotes: mine.into_iter().take(limit).map(|e| report(e, asn, names)).collect(),
        total,
        unlisted,
        expired: Traffic::of_remote(&spill.expired),
        overflow: Traffic::of_remote(&spill.overflow),
    }
}

/// The table `egress-tracer status --device` prints.
pub fn render_table(view: &DeviceRemotes) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let row = |out: &mut String, c: [&str; 9]| {
        let _ = writeln!(
            out,
            "{:<39}  {:<7}  {:<28}  {:<8}  {:>12}  {:>8}  {:>12}  {:>8}  {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
        );
    };
    let _ = writeln!(out, "remotes of {} ({} live)", view.mac, view.total);
    row(
        &mut out,
        [
            "REMOTE",
            "COUNTRY",
            "ORGANISATION",
            "PROTO",
            "UP BYTES",
            "UP PKTS",
            "DOWN BYTES",
            "DOWN PKTS",
            "NAMES / LAST SEEN",
        ],
    );
    for r in &view.remotes {
        let org = r.asn.as_ref().map_or_else(String::new, |a| {
            let org: String = a.org.chars().take(20).collect();
            format!("AS{} {org}", a.number)
        });
        let proto = match r.port {
            Some(port) => format!("{}/{port}", r.protocol),
            None => r.protocol.clone(),
        };
        let n = |v: u64| v.to_string();
        let mut last = r.names.join(",");
        if r.traffic.blocked.packets > 0 {
            last = format!("BLOCKED {} pkts {last}", r.traffic.blocked.packets);
        }
        let last =
            if last.is_empty() { r.last_seen.clone() } else { format!("{last} {}", r.last_seen) };
        row(
            &mut out,
            [
                &r.address.to_string(),
                &r.country,
                &org,
                &proto,
                &n(r.traffic.upload.bytes),
                &n(r.traffic.upload.packets),
                &n(r.traffic.download.bytes),
                &n(r.traffic.download.packets),
                &last,
            ],
        );
    }
    if view.remotes.len() < view.total {
        let _ = writeln!(out, "({} more not shown: --limit)", view.total - view.remotes.len());
    }
    let t = |t: &Traffic| {
        format!(
            "up {} pkts / {} B, down {} pkts / {} B, blocked {} pkts",
            t.upload.packets,
            t.upload.bytes,
            t.download.packets,
            t.download.bytes,
            t.blocked.packets
        )
    };
    let _ = writeln!(out, "expired remotes: {}", t(&view.expired));
    let _ = writeln!(out, "overflow (remote table full): {}", t(&view.overflow));
    out
}

#[cfg(test)]
mod tests {
    use tracer_common::{CounterValue, remotes::RemoteKey};

    use super::*;
    use crate::kernel::{DeviceSpill, RemoteTraffic};

    fn entry(mac: u8, last: u8, bytes: u64) -> RemoteEntry {
        let mut traffic = RemoteTraffic::default();
        traffic[0] = CounterValue { packets: 1, bytes };
        traffic[3] = CounterValue { packets: 2, bytes: 20 };
        RemoteEntry {
            key: RemoteKey {
                addr: [36, 110, 0, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                mac: [2, 0, 0, 0, 0, mac],
                family: 4,
                state: 0,
            },
            traffic,
            first_seen_ns: 1,
            last_seen_ns: 2,
            country: CountryId::from_code(*b"CN").unwrap().0,
            protocol: 1,
            port: 0,
        }
    }

    #[test]
    fn a_remote_s_json_names_its_fields_in_order() {
        let r = report(&entry(1, 1, 100), None, None);
        let expected = format!(
            concat!(
                r#"{{"address":"36.110.0.1","country":"CN","asn":null,"names":[],"canonical":[],"#,
                r#""protocol":"icmp","port":null,"upload":{{"packets":1,"bytes":100}},"#,
                r#""download":{{"packets":0,"bytes":0}},"blocked":{{"packets":2,"bytes":20}},"#,
                r#""first_seen":"{}","last_seen":"{}"}}"#
            ),
            r.first_seen, r.last_seen
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, expected);
        assert_eq!(serde_json::from_str::<RemoteReport>(&json).unwrap(), r);
    }

    #[test]
    fn lists_a_device_s_remotes_most_bytes_first_with_spill() {
        let mut snapshot = RemoteSnapshot {
            entries: vec![entry(1, 1, 100), entry(1, 2, 300), entry(2, 3, 50)],
            ..RemoteSnapshot::default()
        };
        let mut spill = DeviceSpill::default();
        spill.expired[1] = CounterValue { packets: 4, bytes: 400 };
        snapshot.spill.insert([2, 0, 0, 0, 0, 1], spill);
        let mac = [2, 0, 0, 0, 0, 1];
        let view = device_remotes(&snapshot, mac, &Query::default(), None, None);
        assert_eq!(view.total, 2);
        assert_eq!(view.remotes[0].address.to_string(), "36.110.0.2");
        assert_eq!(view.remotes[0].traffic.blocked, CounterValue { packets: 2, bytes: 20 });
        assert_eq!(view.remotes[0].protocol, "icmp");
        assert_eq!(view.expired.download, CounterValue { packets: 4, bytes: 400 });
        let limited =
            device_remotes(&snapshot, mac, &Query { limit: Some(1), country: None }, None, None);
        assert_eq!((limited.total, limited.remotes.len()), (2, 1));
        let other = Query { limit: None, country: Some("us".into()) };
        assert_eq!(device_remotes(&snapshot, mac, &other, None, None).total, 0);
        // Listed + unlisted + expired + overflow is the device's whole traffic, however limited.
        for view in [view, limited] {
            let mut whole = view.unlisted;
            for t in view.remotes.iter().map(|r| r.traffic).chain([view.expired, view.overflow]) {
                whole += t;
            }
            assert_eq!(whole.upload, CounterValue { packets: 2, bytes: 400 });
            assert_eq!(whole.download, CounterValue { packets: 4, bytes: 400 });
            assert_eq!(whole.blocked, CounterValue { packets: 4, bytes: 40 });
        }
    }
}

//! The per-device view of the counters, shared by the terminal table, `GET /api/v1/devices` and
//! `egress-tracer status`.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};
use tracer_common::{CounterValue, CountryId, Direction, Stat, maps::verdict};

use crate::devices::DeviceInfo;
use crate::{
    alerts::Enricher,
    base::text::{country_label, format_mac},
    geo::regions::{continent_of, country_name},
    kernel::CounterSnapshot,
};

/// One device's traffic to one country.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryTraffic {
    /// ISO code or `unknown`.
    pub country: String,
    /// English name, if known.
    pub name: Option<String>,
    /// Continent code, if any.
    pub continent: Option<String>,
    /// Sent by the device.
    pub upload: CounterValue,
    /// Received by the device.
    pub download: CounterValue,
    /// Dropped by a block policy (both directions).
    #[serde(default)]
    pub blocked: CounterValue,
    /// What the device's policy says about the country: `allow`, `alert` or `block`.
    #[serde(default = "allow")]
    pub policy: String,
    /// The rule behind [`Self::policy`].
    #[serde(default)]
    pub rule: Option<String>,
    /// Learning mode: the country is outside the device's baseline, new since this time (RFC
    /// 3339), until approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_since: Option<String>,
}

fn allow() -> String {
    "allow".to_owned()
}

/// One LAN device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// MAC, name, vendor, group and addresses, as far as known.
    #[serde(flatten)]
    pub info: DeviceInfo,
    /// Totals over all countries.
    pub upload: CounterValue,
    /// Totals over all countries.
    pub download: CounterValue,
    /// Per country, most bytes first.
    pub countries: Vec<CountryTraffic>,
    /// Resolvers the device got DNS answers from, most recent first.
    #[serde(default)]
    pub resolvers: Vec<String>,
    /// Whether it talks encrypted DNS (DNS over TLS/QUIC on 853, or HTTPS to a well-known DoH
    /// endpoint): then its DNS answers are not seen and names may be missing.
    #[serde(default)]
    pub encrypted_dns: bool,
}

impl DeviceReport {
    fn blocked_bytes(&self) -> u64 {
        self.countries.iter().map(|c| c.blocked.bytes).sum()
    }
}

/// CounterValue that is not egress, per reason and direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncounted {
    /// To or from local networks.
    pub local: [CounterValue; 2],
    /// Not IPv4/IPv6.
    pub other: [CounterValue; 2],
    /// Truncated or invalid headers.
    pub malformed: [CounterValue; 2],
    /// Not counted per device: the map was full.
    pub overflow: [CounterValue; 2],
}

/// Every device, as served by `GET /api/v1/devices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Devices, most bytes first (one page of them: see `total_devices`).
    pub devices: Vec<DeviceReport>,
    /// Devices in all (the API pages them: `?limit=&offset=`).
    #[serde(default)]
    pub total_devices: usize,
    /// CounterValue not counted per country (`[upload, download]`).
    pub uncounted: Uncounted,
    /// Entries in use in the traffic map.
    pub map_entries: usize,
    /// Capacity of the traffic map.
    pub map_capacity: u32,
    /// Whether learning mode is on (`GET /api/v1/baseline` answers).
    #[serde(default)]
    pub learning: bool,
    /// Whether the traffic history is kept (`GET /api/v1/history` answers).
    #[serde(default)]
    pub history: bool,
}

impl Report {
    /// Groups a snapshot by device and country, with what `known` says of devices and policy.
    pub fn build(snapshot: &CounterSnapshot, known: Option<&dyn Enricher>) -> Report {
        Self::page(snapshot, known, 0, usize::MAX)
    }

    /// Like [`Self::build`], for `limit` devices from `offset` in the order of most bytes: only
    /// those are built, so a page costs memory for its own devices whatever the map holds.
    pub fn page(
        snapshot: &CounterSnapshot,
        known: Option<&dyn Enricher>,
        offset: usize,
        limit: usize,
    ) -> Report {
        let mut totals: Vec<([u8; 6], u64)> = Vec::new();
        for (key, value) in &snapshot.counters {
            match totals.last_mut() {
                Some((mac, bytes)) if *mac == key.mac => *bytes += value.bytes,
                _ => totals.push((key.mac, value.bytes)),
            }
        }
        let total_devices = totals.len();
        // Most bytes first; the MAC breaks ties, so pages do not overlap.
        totals.sort_unstable_by_key(|(mac, bytes)| (std::cmp::Reverse(*bytes), *mac));
        let wanted: std::collections::HashSet<[u8; 6]> =
            totals.into_iter().skip(offset).take(limit).map(|(mac, _)| mac).collect();
        let mut by_mac: BTreeMap<[u8; 6], BTreeMap<u16, [CounterValue; 3]>> = BTreeMap::new();
        for (key, value) in snapshot.counters.iter().filter(|(k, _)| wanted.contains(&k.mac)) {
            let Some(direction) = Direction::from_raw(key.direction) else { continue };
            let slot = by_mac.entry(key.mac).or_default().entry(key.country).or_default();
            let index = if key.verdict == verdict::PASSED { direction as usize } else { 2 };
            slot[index] += CounterValue { packets: value.packets, bytes: value.bytes };
        }
        let mut devices: Vec<DeviceReport> = by_mac
            .into_iter()
            .map(|(mac, countries)| {
                let mut countries: Vec<CountryTraffic> = countries
                    .into_iter()
                    .map(|(id, [upload, download, blocked])| {
                        let id = CountryId(id);
                        let decision = known.map(|k| k.decide(mac, id));
                        CountryTraffic {
                            country: country_label(id).to_owned(),
                            name: country_name(id).map(str::to_owned),
                            continent: continent_of(id).map(str::to_owned),
                            upload,
                            download,
                            blocked,
                            policy: decision
                                .as_ref()
                                .map_or("allow", |d| d.action.as_str())
                                .to_owned(),
                            rule: decision.map(|d| d.rule),
                            new_since: known.and_then(|k| k.new_since(mac, id)),
                        }
                    })
                    .collect();
                countries.sort_by_key(|c| std::cmp::Reverse(c.upload.bytes + c.download.bytes));
                let total = |f: fn(&CountryTraffic) -> CounterValue| {
                    countries.iter().map(f).sum::<CounterValue>()
                };
                let info = known.map_or_else(
                    || DeviceInfo { mac: format_mac(mac), ..DeviceInfo::default() },
                    |k| k.device(mac),
                );
                DeviceReport {
                    info,
                    upload: total(|c| c.upload),
                    download: total(|c| c.download),
                    countries,
                    resolvers: Vec::new(),
                    encrypted_dns: false,
                }
            })
            .collect();
        devices.sort_by(|a, b| {
            let bytes = |d: &DeviceReport| d.upload.bytes + d.download.bytes + d.blocked_bytes();
            bytes(b).cmp(&bytes(a)).then_with(|| a.info.mac.cmp(&b.info.mac))
        });
        let stat = |stat: Stat| {
            Direction::ALL.map(|d| {
                let v = snapshot.stat(stat, d);
                CounterValue { packets: v.packets, bytes: v.bytes }
            })
        };
        Report {
            total_devices,
            devices,
            uncounted: Uncounted {
                local: stat(Stat::Local),
                other: stat(Stat::Other),
                malformed: stat(Stat::Malformed),
                overflow: stat(Stat::Overflow),
            },
            map_entries: snapshot.map_entries,
            map_capacity: snapshot.capacity,
            learning: false,
            history: false,
        }
    }

    /// The human-readable table printed by `run` and `status`.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, cells: [&str; 8]| {
            let _ = writeln!(
                out,
                "{:<17}  {:<20}  {:<7}  {:>14}  {:>10}  {:>14}  {:>10}  {}",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7]
            );
        };
        row(
            &mut out,
            [
                "DEVICE",
                "NAME",
                "COUNTRY",
                "UPLOAD BYTES",
                "UP PKTS",
                "DOWNLOAD BYTES",
                "DOWN PKTS",
                "POLICY",
            ],
        );
        if self.devices.is_empty() {
            let _ = writeln!(out, "(no egress traffic counted yet)");
        }
        for d in &self.devices {
            let name: String = d.info.name.as_deref().unwrap_or("").chars().take(20).collect();
            for c in &d.countries {
                let n = |v: u64| v.to_string();
                let policy = match c.policy.as_str() {
                    "allow" => String::new(),
                    p if c.blocked.packets > 0 => {
                        format!("UNAPPROVED ({p}; {} packets dropped)", c.blocked.packets)
                    }
                    p => format!("UNAPPROVED ({p})"),
                };
                row(
                    &mut out,
                    [
                        &d.info.mac,
                        &name,
                        &c.country,
                        &n(c.upload.bytes),
                        &n(c.upload.packets),
                        &n(c.download.bytes),
                        &n(c.download.packets),
                        &policy,
                    ],
                );
            }
        }
        let u = &self.uncounted;
        let _ = writeln!(
            out,
            "not egress (packets up/down): local {}/{}, non-IP {}/{}, malformed {}/{}; overflow {}/{}; traffic map {}/{} entries",
            u.local[0].packets,
            u.local[1].packets,
            u.other[0].packets,
            u.other[1].packets,
            u.malformed[0].packets,
            u.malformed[1].packets,
            u.overflow[0].packets,
            u.overflow[1].packets,
            self.map_entries,
            self.map_capacity
        );
        out
    }
}

//! The per-device view of the counters, shared by the terminal table, `GET /api/v1/devices` and
//! `egress-tracer status`.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};
use tracer_common::{CountryId, Direction, Stat};

use crate::{
    kernel::CounterSnapshot,
    names::{country_label, format_mac},
    regions::{continent_of, country_name},
};

/// Packets and bytes one way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Traffic {
    fn add(&mut self, packets: u64, bytes: u64) {
        self.packets += packets;
        self.bytes += bytes;
    }
}

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
    pub upload: Traffic,
    /// Received by the device.
    pub download: Traffic,
}

/// One LAN device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// MAC address, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Totals over all countries.
    pub upload: Traffic,
    /// Totals over all countries.
    pub download: Traffic,
    /// Per country, most bytes first.
    pub countries: Vec<CountryTraffic>,
}

/// Traffic that is not egress, per reason and direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uncounted {
    /// To or from local networks.
    pub local: [Traffic; 2],
    /// Not IPv4/IPv6.
    pub other: [Traffic; 2],
    /// Truncated or invalid headers.
    pub malformed: [Traffic; 2],
    /// Not counted per device: the map was full.
    pub overflow: [Traffic; 2],
}

/// Every device, as served by `GET /api/v1/devices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Devices, most bytes first.
    pub devices: Vec<DeviceReport>,
    /// Traffic not counted per country (`[upload, download]`).
    pub uncounted: Uncounted,
    /// Entries in use in the traffic map.
    pub map_entries: usize,
    /// Capacity of the traffic map.
    pub map_capacity: u32,
}

impl Report {
    /// Groups a snapshot by device and country.
    pub fn from_snapshot(snapshot: &CounterSnapshot) -> Report {
        let mut by_mac: BTreeMap<[u8; 6], BTreeMap<u16, [Traffic; 2]>> = BTreeMap::new();
        for (key, value) in &snapshot.counters {
            let Some(direction) = Direction::from_raw(key.direction) else { continue };
            let slot = by_mac.entry(key.mac).or_default().entry(key.country).or_default();
            slot[direction as usize].add(value.packets, value.bytes);
        }
        let mut devices: Vec<DeviceReport> = by_mac
            .into_iter()
            .map(|(mac, countries)| {
                let mut countries: Vec<CountryTraffic> = countries
                    .into_iter()
                    .map(|(id, [upload, download])| {
                        let id = CountryId(id);
                        CountryTraffic {
                            country: country_label(id).to_owned(),
                            name: country_name(id).map(str::to_owned),
                            continent: continent_of(id).map(str::to_owned),
                            upload,
                            download,
                        }
                    })
                    .collect();
                countries.sort_by_key(|c| std::cmp::Reverse(c.upload.bytes + c.download.bytes));
                let total = |f: fn(&CountryTraffic) -> Traffic| {
                    countries.iter().map(f).fold(Traffic::default(), |mut acc, t| {
                        acc.add(t.packets, t.bytes);
                        acc
                    })
                };
                DeviceReport {
                    mac: format_mac(mac),
                    upload: total(|c| c.upload),
                    download: total(|c| c.download),
                    countries,
                }
            })
            .collect();
        devices.sort_by_key(|d| std::cmp::Reverse(d.upload.bytes + d.download.bytes));
        let stat = |stat: Stat| {
            Direction::ALL.map(|d| {
                let v = snapshot.stat(stat, d);
                Traffic { packets: v.packets, bytes: v.bytes }
            })
        };
        Report {
            devices,
            uncounted: Uncounted {
                local: stat(Stat::Local),
                other: stat(Stat::Other),
                malformed: stat(Stat::Malformed),
                overflow: stat(Stat::Overflow),
            },
            map_entries: snapshot.counters.len(),
            map_capacity: snapshot.capacity,
        }
    }

    /// The human-readable table printed by `run` and `status`.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let row = |out: &mut String, cells: [&str; 6]| {
            let _ = writeln!(
                out,
                "{:<17}  {:<7}  {:>14}  {:>10}  {:>14}  {:>10}",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
            );
        };
        row(
            &mut out,
            ["DEVICE", "COUNTRY", "UPLOAD BYTES", "UP PKTS", "DOWNLOAD BYTES", "DOWN PKTS"],
        );
        if self.devices.is_empty() {
            let _ = writeln!(out, "(no egress traffic counted yet)");
        }
        for d in &self.devices {
            for c in &d.countries {
                let n = |v: u64| v.to_string();
                row(
                    &mut out,
                    [
                        &d.mac,
                        &c.country,
                        &n(c.upload.bytes),
                        &n(c.upload.packets),
                        &n(c.download.bytes),
                        &n(c.download.packets),
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

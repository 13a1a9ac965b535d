//! Devices: a device is a MAC seen on a LAN interface. Its name comes from the configuration,
//! else from a DHCP lease; its addresses from the kernel's neighbour table (and its leases); its
//! vendor from the MAC's OUI. Names from the network are untrusted bytes ([`Hostname`]).

mod hostname;
mod leases;
mod neighbours;
mod oui;
mod oui_table;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::SystemTime,
};

use serde::Serialize;

pub use hostname::{DISPLAY_CAP, Hostname};
pub use leases::{Lease, parse as parse_leases};
pub use oui::Vendor;

/// A device as every output shows it: alerts, the per-device report, `device_info` and the
/// page. Network-supplied text (a DHCP name) is escaped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    /// `aa:bb:cc:dd:ee:ff`, or `other` for the devices folded together.
    pub mac: String,
    /// Name from the config or a DHCP lease.
    #[serde(default)]
    pub name: Option<String>,
    /// Vendor from the MAC's OUI, or `locally administered`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Its group in the config.
    #[serde(default)]
    pub group: Option<String>,
    /// Current IPv4 addresses.
    #[serde(default)]
    pub ipv4: Vec<String>,
    /// Current IPv6 addresses.
    #[serde(default)]
    pub ipv6: Vec<String>,
}

/// Lease files larger than this are not read (a lease file of a home network is kilobytes).
const MAX_LEASE_FILE: u64 = 16 << 20;

/// A device named in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticDevice {
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its name.
    pub name: Option<String>,
    /// Its group.
    pub group: Option<String>,
}

/// Where names and addresses come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// Devices from the configuration (their names win).
    pub statics: Vec<StaticDevice>,
    /// dnsmasq lease files or odhcpd state files.
    pub lease_files: Vec<PathBuf>,
    /// LAN interfaces whose neighbours count (all if empty).
    pub interfaces: Vec<String>,
}

/// Where a device's name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameSource {
    /// The configuration's `[[device]]`.
    Config,
    /// A DHCP lease.
    Dhcp,
}

/// What is known about one MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The MAC.
    pub mac: [u8; 6],
    /// Its name, if any.
    pub name: Option<Hostname>,
    /// Where the name came from.
    pub name_source: Option<NameSource>,
    /// Its group in the configuration.
    pub group: Option<String>,
    /// Who made it.
    pub vendor: Vendor,
    /// Current IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// Current IPv6 addresses.
    pub ipv6: Vec<Ipv6Addr>,
}

#[derive(Clone, Debug, Default)]
struct LeaseFile {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    leases: Vec<Lease>,
}

/// Every device the agent can name, refreshed from the lease files and the neighbour table.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    statics: BTreeMap<[u8; 6], StaticDevice>,
    files: Vec<LeaseFile>,
    /// Every file's leases by MAC, rebuilt when a file changes.
    leases: BTreeMap<[u8; 6], Vec<Lease>>,
    ifindexes: Vec<u32>,
    neighbours: neighbours::Neighbours,
}

impl Directory {
    /// A directory over `sources`, read once.
    pub fn new(sources: Sources) -> Self {
        let mut directory = Self::default();
        directory.set_sources(sources);
        directory
    }

    /// New sources (a configuration reload); lease files still listed keep what was read.
    pub fn set_sources(&mut self, sources: Sources) {
        self.statics = sources.statics.into_iter().map(|s| (s.mac, s)).collect();
        let mut old = std::mem::take(&mut self.files);
        self.files = sources
            .lease_files
            .into_iter()
            .map(|path| match old.iter().position(|f| f.path == path) {
                Some(i) => old.swap_remove(i),
                None => LeaseFile { path, ..LeaseFile::default() },
            })
            .collect();
        self.ifindexes = sources
            .interfaces
            .iter()
            .filter_map(|i| nix::net::if_::if_nametoindex(i.as_str()).ok())
            .collect();
        self.index_leases();
        self.refresh();
    }

    fn index_leases(&mut self) {
        self.leases.clear();
        for lease in self.files.iter().flat_map(|f| &f.leases) {
            self.leases.entry(lease.mac).or_default().push(lease.clone());
        }
    }

    /// Re-reads lease files whose modification time or size changed, and the neighbour table.
    /// Errors are logged; what was known stays.
    pub fn refresh(&mut self) {
        let mut changed = false;
        for file in &mut self.files {
            let stamp = std::fs::metadata(&file.path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if stamp == file.stamp {
                continue;
            }
            file.stamp = stamp;
            changed = true;
            file.leases = match stamp {
                None => Vec::new(),
                Some((_, len)) if len > MAX_LEASE_FILE => {
                    tracing::warn!(path = %file.path.display(), len, "lease file too large; ignored");
                    Vec::new()
                }
                Some(_) => match std::fs::read(&file.path) {
                    Ok(text) => {
                        let parsed = leases::parse(&text);
                        tracing::info!(
                            path = %file.path.display(),
                            leases = parsed.leases.len(),
                            skipped_lines = parsed.skipped,
                            "lease file read"
                        );
                        parsed.leases
                    }
                    Err(err) => {
                        tracing::warn!(path = %file.path.display(), %err, "cannot read lease file");
                        Vec::new()
                    }
                },
            };
        }
        if changed {
            self.index_leases();
        }
        match neighbours::dump(&self.ifindexes) {
            Ok(n) => self.neighbours = n,
            Err(err) => tracing::debug!(%err, "reading the neighbour table failed"),
        }
    }

    /// Every lease of `mac`, over all files.
    fn leases_of(&self, mac: [u8; 6]) -> &[Lease] {
        self.leases.get(&mac).map_or(&[], Vec::as_slice)
    }

    /// What is known about `mac` (always an answer: at least its vendor).
    pub fn device(&self, mac: [u8; 6]) -> Device {
        let configured = self.statics.get(&mac);
        let lease = self.leases_of(mac).iter().max_by_key(|l| l.expiry);
        let (name, name_source) = match (configured.and_then(|s| s.name.as_deref()), lease) {
            (Some(name), _) => (Some(Hostname::new(name)), Some(NameSource::Config)),
            (None, Some(Lease { hostname: Some(h), .. })) => {
                (Some(h.clone()), Some(NameSource::Dhcp))
            }
            _ => (None, None),
        };
        let mut addrs: BTreeSet<IpAddr> = self.neighbours.get(&mac).cloned().unwrap_or_default();
        addrs.extend(self.leases_of(mac).iter().flat_map(|l| l.addrs.iter().copied()));
        Device {
            mac,
            name,
            name_source,
            group: configured.and_then(|s| s.group.clone()),
            vendor: Vendor::of(mac),
            ipv4: addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                })
                .collect(),
            ipv6: addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                })
                .collect(),
        }
    }

    /// Like [`Self::device`], but if the cached neighbour table has no address for `mac` (a
    /// device that appeared since the last refresh), asks the kernel now.
    pub fn device_now(&self, mac: [u8; 6]) -> Device {
        let mut device = self.device(mac);
        if device.ipv4.is_empty()
            && device.ipv6.is_empty()
            && let Ok(now) = neighbours::dump(&self.ifindexes)
        {
            for addr in now.get(&mac).into_iter().flatten() {
                match addr {
                    IpAddr::V4(a) => device.ipv4.push(*a),
                    IpAddr::V6(a) => device.ipv6.push(*a),
                }
            }
        }
        device
    }

    /// Every MAC with a name or an address.
    pub fn macs(&self) -> BTreeSet<[u8; 6]> {
        self.statics
            .keys()
            .copied()
            .chain(self.leases.keys().copied())
            .chain(self.neighbours.keys().copied())
            .collect()
    }

    /// Every device with a name or an address.
    pub fn known(&self) -> Vec<Device> {
        self.macs().into_iter().map(|mac| self.device(mac)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_win_and_changed_lease_files_are_picked_up() {
        let dir = std::env::temp_dir().join(format!("et-devices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let leases = dir.join("dhcp.leases");
        std::fs::write(
            &leases,
            "100 02:00:00:00:00:01 10.0.0.1 old-name *\n200 02:00:00:00:00:02 10.0.0.2 cam *\n",
        )
        .unwrap();
        let mut d = Directory::new(Sources {
            statics: vec![StaticDevice {
                mac: [2, 0, 0, 0, 0, 2],
                name: Some("camera".into()),
                group: Some("iot".into()),
            }],
            lease_files: vec![leases.clone()],
            interfaces: vec!["lo".into()],
        });
        let tv = d.device([2, 0, 0, 0, 0, 1]);
        assert_eq!(
            (tv.name.unwrap().escaped(), tv.name_source),
            ("old-name".into(), Some(NameSource::Dhcp))
        );
        assert_eq!(tv.ipv4, ["10.0.0.1".parse::<Ipv4Addr>().unwrap()]);
        let cam = d.device([2, 0, 0, 0, 0, 2]);
        assert_eq!(
            (cam.name.unwrap().escaped(), cam.group.as_deref()),
            ("camera".into(), Some("iot"))
        );
        std::fs::write(&leases, "100 02:00:00:00:00:01 10.0.0.1 old-name *\n300 02:00:00:00:00:01 10.0.0.9 new-name-longer *\n").unwrap();
        d.refresh();
        let tv = d.device([2, 0, 0, 0, 0, 1]);
        assert_eq!(tv.name.unwrap().escaped(), "new-name-longer", "the newest lease wins");
        assert_eq!(d.known().len(), 2);
        std::fs::remove_file(&leases).unwrap();
        d.refresh();
        assert_eq!(d.device([2, 0, 0, 0, 0, 1]).name, None, "a removed file names nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Alerts: kernel events about unapproved traffic, turned into records carrying the device, the
//! remote end, the country and the rule that failed; repeats summarised; delivered as a JSON
//! line on stdout, to a webhook, and to the API's recent list.

mod alertmanager;
mod book;
mod event;
mod mac_flood;
mod reader;
mod webhook;

use std::net::IpAddr;

use crate::devices::DeviceInfo;
use serde::Serialize;
use std::time::SystemTime;

use tracer_common::{CounterValue, CountryId};

use crate::{
    base::{clock::rfc3339, text::country_label},
    geo::regions::country_name,
};

pub use crate::remotes::{Enricher, Enrichment};
pub use alertmanager::Alertmanager;
pub use book::{AlertBook, AlertSettings, Violation};
pub use event::{PairSink, remote_end};
pub use mac_flood::{CHECK_EVERY as MAC_FLOOD_CHECK_EVERY, MacFloodWatch};
pub use reader::spawn_reader;
pub use webhook::{Webhook, WebhookStats};

/// The remote end of the traffic.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RemoteEnd {
    /// The address.
    pub address: IpAddr,
    /// TCP/UDP/SCTP port (absent for other protocols).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tcp`, `udp`, `icmp`, ... or the protocol number.
    pub protocol: String,
    /// Its autonomous system (number and organisation), when an ASN database knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<crate::remotes::AsnInfo>,
    /// Domain names the device used for the address (from DNS answers and TLS server names;
    /// escaped), most recent first.
    pub names: Vec<String>,
}

/// What kind of record an [`Alert`] is.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A device reached a region its policy does not approve.
    Violation,
    /// The end of a suppression window in which repeats were not reported one by one.
    Summary,
    /// Learning mode: a device reached a country outside its learned baseline.
    NewCountry,
    /// Learning mode: a MAC seen for the first time after the network's learning period.
    NewDevice,
    /// A device uploaded more than a `--upload-alert` rule allows within its window.
    Volume,
    /// New source MACs appeared faster than `--mac-flood-rate` (device `other`).
    MacFlood,
}

impl AlertKind {
    /// The label used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Violation => "violation",
            Self::Summary => "summary",
            Self::NewCountry => "new_country",
            Self::NewDevice => "new_device",
            Self::Volume => "volume",
            Self::MacFlood => "mac_flood",
        }
    }

    /// Every kind, for metrics.
    pub const ALL: [Self; 6] = [
        Self::Violation,
        Self::Summary,
        Self::NewCountry,
        Self::NewDevice,
        Self::Volume,
        Self::MacFlood,
    ];
}

/// One alert.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Alert {
    /// Increasing number, from 1 at agent start.
    pub id: u64,
    /// Violation or summary.
    pub kind: AlertKind,
    /// When the first packet was seen (RFC 3339, UTC); for a summary, when the window ended.
    pub time: String,
    /// The device.
    pub device: DeviceInfo,
    /// The remote end (violations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteEnd>,
    /// ISO code of the remote's country, or `unknown`.
    pub country: String,
    /// The country's English name.
    pub country_name: Option<String>,
    /// The rule that failed, e.g. `group "iot": otherwise = block (CN is not listed)`.
    pub rule: String,
    /// `alert` or `block`: what the kernel did.
    pub action: &'static str,
    /// Whether the packets are dropped.
    pub blocked: bool,
    /// `upload` (the device sent the first packet) or `download`.
    pub direction: &'static str,
    /// Bytes the device has exchanged with the country so far (both directions).
    pub bytes_so_far: u64,
    /// Packets the device has exchanged with the country so far.
    pub packets_so_far: u64,
    /// Summary: repeats (new remote addresses) not reported one by one in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u64>,
    /// Summary: up to 8 of the repeats' remote addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_addresses: Option<Vec<IpAddr>>,
    /// Summary and volume: the window's length in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// Volume: bytes the device uploaded to the rule's regions within the window (from the
    /// kernel counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_bytes: Option<u64>,
    /// MAC flood: new source MACs within the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_macs: Option<u64>,
}

impl Alert {
    /// An alert of `kind` about `device` and `country` at `time`, with the traffic so far:
    /// action `alert`, upload, no remote and none of the kind-specific fields; callers set
    /// what their kind says.
    pub fn new(
        id: u64,
        kind: AlertKind,
        time: SystemTime,
        device: DeviceInfo,
        country: Option<CountryId>,
        so_far: CounterValue,
    ) -> Alert {
        Alert {
            id,
            kind,
            time: rfc3339(time),
            device,
            remote: None,
            country: country.map(|c| country_label(c).to_owned()).unwrap_or_default(),
            country_name: country.and_then(country_name).map(str::to_owned),
            rule: String::new(),
            action: "alert",
            blocked: false,
            direction: "upload",
            bytes_so_far: so_far.bytes,
            packets_so_far: so_far.packets,
            repeats: None,
            repeat_addresses: None,
            window_secs: None,
            upload_bytes: None,
            new_macs: None,
        }
    }
}

//! What the run loop shares with the HTTP server, the metrics and the alert reader.

pub mod report;
pub mod status;

use std::sync::{Arc, RwLock};

use tracer_common::{CounterValue, CountryId};

use crate::base::atomic::AtomicU64;
use crate::base::sync::ReadWrite;
use crate::devices::DeviceInfo;
use crate::{
    alerts::{AlertBook, Enricher},
    base::text::format_mac,
    geo::asn::AsnDb,
    kernel::{CounterReader, RemoteReader},
    policy::{Decision, Policy},
    remotes::{AsnInfo, RemoteStats},
    state::status::SharedStatus,
};

/// The agent's shared state.
#[derive(Debug)]
pub struct Context {
    /// The kernel counters (pinned: valid across reloads).
    pub reader: Arc<CounterReader>,
    /// The per (device, remote address) table (pinned).
    pub remotes: Arc<RemoteReader>,
    /// Retirements and IPFIX exports so far.
    pub remote_stats: Arc<RemoteStats>,
    /// The ASN database, if `--asn` gave one (replaced whole on reload).
    pub asn: RwLock<Option<Arc<AsnDb>>>,
    /// Names learned from DNS answers and TLS server names.
    pub names: Arc<crate::remotes::domains::NameBook>,
    /// The HTTP server's connection counts.
    pub http: Arc<crate::state::HttpStats>,
    /// Learning mode, when on (set once at start).
    pub learner: std::sync::OnceLock<Arc<crate::learning::Learner>>,
    /// The traffic history, unless `--history-points 0`.
    pub history: std::sync::OnceLock<Arc<crate::history::HistoryStore>>,
    /// Database, reloads, interfaces.
    pub status: SharedStatus,
    /// The policy in force (replaced whole on reload).
    pub policy: RwLock<Arc<Policy>>,
    /// Alerts raised so far.
    pub alerts: Arc<AlertBook>,
    /// Device names, addresses and vendors.
    pub devices: RwLock<crate::devices::Directory>,
    /// Cap on (device, country) metric series (0: none); see [`crate::metrics`].
    pub metrics_max_pairs: std::sync::atomic::AtomicUsize,
    /// Cap on devices with metric series (0: none); see [`crate::metrics::cap`].
    pub metrics_max_devices: std::sync::atomic::AtomicUsize,
    /// New-MAC rate alerts.
    pub mac_flood: crate::alerts::MacFloodWatch,
}

impl Context {
    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.reading())
    }

    /// Replaces the policy.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.writing() = Arc::new(policy);
    }

    /// The ASN database in force now.
    pub fn asn(&self) -> Option<Arc<AsnDb>> {
        self.asn.reading().clone()
    }

    /// Replaces the ASN database.
    pub fn set_asn(&self, asn: Option<Arc<AsnDb>>) {
        *self.asn.writing() = asn;
    }
}

impl Context {
    /// How `device` appears in alerts, reports and `device_info`.
    fn describe(&self, device: crate::devices::Device) -> DeviceInfo {
        let mac = device.mac;
        DeviceInfo {
            mac: format_mac(mac),
            name: device.name.as_ref().map(crate::devices::Hostname::escaped),
            vendor: device.vendor.label().map(str::to_owned),
            group: self.policy().group_of(mac).map(str::to_owned),
            ipv4: device.ipv4.iter().map(ToString::to_string).collect(),
            ipv6: device.ipv6.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Enricher for Context {
    fn device(&self, mac: [u8; 6]) -> DeviceInfo {
        self.describe(self.devices.reading().device(mac))
    }

    fn device_now(&self, mac: [u8; 6]) -> DeviceInfo {
        self.describe(self.devices.reading().device_now(mac))
    }

    fn decide(&self, mac: [u8; 6], country: CountryId) -> Decision {
        self.policy().decide(mac, country)
    }

    fn so_far(&self, mac: [u8; 6], country: CountryId) -> CounterValue {
        self.reader.device_country(mac, country.0)
    }

    fn asn(&self, address: std::net::IpAddr) -> Option<AsnInfo> {
        crate::remotes::asn_of(self.asn().as_deref(), address)
    }

    fn names(
        &self,
        mac: [u8; 6],
        address: std::net::IpAddr,
    ) -> Option<crate::remotes::domains::Names> {
        self.names.names(mac, address)
    }

    fn new_since(&self, mac: [u8; 6], country: CountryId) -> Option<String> {
        self.learner.get()?.new_since(mac, country)
    }
}

impl Context {
    /// A context with no policy, no names and no webhook (benchmarks and tests).
    pub fn bare(
        reader: Arc<CounterReader>,
        remotes: Arc<RemoteReader>,
        status: SharedStatus,
    ) -> Self {
        let settings = crate::alerts::AlertSettings {
            suppress: std::time::Duration::from_secs(600),
            keep: 200,
        };
        Self {
            reader,
            remotes,
            remote_stats: Arc::default(),
            asn: RwLock::default(),
            names: Arc::new(crate::remotes::domains::NameBook::new(
                crate::remotes::domains::BookSettings {
                    entries: std::num::NonZeroUsize::new(1024)
                        .unwrap_or(std::num::NonZeroUsize::MIN),
                    min_hold: std::time::Duration::from_secs(1800),
                },
            )),
            status,
            policy: RwLock::default(),
            alerts: Arc::new(AlertBook::new(settings, None, None)),
            learner: std::sync::OnceLock::new(),
            history: std::sync::OnceLock::new(),
            http: Arc::default(),
            devices: RwLock::default(),
            metrics_max_pairs: std::sync::atomic::AtomicUsize::new(0),
            metrics_max_devices: std::sync::atomic::AtomicUsize::new(0),
            mac_flood: crate::alerts::MacFloodWatch::new(0),
        }
    }
}

/// The HTTP server's connection counts, for the metrics.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

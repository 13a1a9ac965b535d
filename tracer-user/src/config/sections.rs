//! The sections of the configuration file other than `[policy]` and `[regions]`.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::kernel::{AttachPreference, Lookup};

/// `[agent]`: the settings of `egress-tracer run`. Each key has a flag of the same name (with
/// dashes); a flag given on the command line wins.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// LAN interfaces (`--lan`).
    pub lan: Option<Vec<String>>,
    /// Country database files (`--geo`); empty: the embedded database.
    pub geo: Option<Vec<PathBuf>>,
    /// Address of the HTTP server (`--listen`).
    pub listen: Option<SocketAddr>,
    /// Seconds between table printouts, 0 for none (`--interval`).
    pub interval: Option<u64>,
    /// Capacity of the traffic map (`--counter-entries`).
    pub counter_entries: Option<u32>,
    /// Capacity of the remote table (`--remote-entries`).
    pub remote_entries: Option<u32>,
    /// Seconds before an idle remote entry is retired (`--remote-idle`).
    pub remote_idle: Option<u64>,
    /// ASN database files (`--asn`).
    pub asn: Option<Vec<PathBuf>>,
    /// IPFIX collector, `HOST:PORT` (`--ipfix`).
    pub ipfix: Option<String>,
    /// Seconds between IPFIX exports (`--ipfix-interval`).
    pub ipfix_interval: Option<u64>,
    /// DNS/TLS captures per CPU per second; 0: no names (`--capture-rate`).
    pub capture_rate: Option<u32>,
    /// (device, address) name entries kept (`--dns-names`).
    pub dns_names: Option<usize>,
    /// Seconds a learned name is kept at least (`--dns-min-hold`).
    pub dns_min_hold: Option<u64>,
    /// Where state that must survive restarts is kept: the learned baseline, the traffic
    /// history (`--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// Stored buckets of the traffic history; 0: no history (`--history-points`).
    pub history_points: Option<usize>,
    /// Level of the programs' own diagnostics (`--kernel-log`).
    pub kernel_log: Option<crate::kernel::KernelLog>,
    /// bpffs directory of the pinned maps (`--bpffs-dir`).
    pub bpffs_dir: Option<PathBuf>,
    /// Seconds between checks of the config, database and lease files (`--watch-interval`).
    pub watch_interval: Option<u64>,
    /// TC attach mechanism (`--tc-attach`).
    pub tc_attach: Option<AttachPreference>,
    /// Lookup structures (`--lookup`).
    pub lookup: Option<Lookup>,
    /// Cap on (device, country) metric series; the rest fold into `country="other"`
    /// (`--metrics-max-pairs`).
    pub metrics_max_pairs: Option<usize>,
    /// Cap on devices with metric series; the rest fold into `mac="other"`
    /// (`--metrics-max-devices`).
    pub metrics_max_devices: Option<usize>,
    /// DHCP lease files: dnsmasq leases or odhcpd state files (`--leases`).
    pub leases: Option<Vec<PathBuf>>,
    /// Turn every `block` into `alert` (`--dry-run`).
    pub dry_run: Option<bool>,
    /// PEM certificate chain for HTTPS (`--tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// Bearer token file (`--auth-token-file`).
    pub auth_token_file: Option<PathBuf>,
    /// htpasswd file of bcrypt hashes (`--basic-auth-file`).
    pub basic_auth_file: Option<PathBuf>,
    /// Serve a non-loopback address without authentication (`--insecure-listen`).
    pub insecure_listen: Option<bool>,
}

/// `[alerts]`: how alerts are raised and delivered.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// Repeats for the same (device, country) within this many seconds are summarised when the
    /// window ends (`--alert-suppress-secs`).
    pub suppress_secs: Option<u64>,
    /// New source MACs per second that raise a `mac_flood` alert (`--mac-flood-rate`).
    pub mac_flood_rate: Option<u32>,
    /// How many recent alerts the API keeps (`--alerts-keep`).
    pub keep: Option<usize>,
    /// Kernel rate limit of alert events per CPU per second (`--events-per-second`).
    pub events_per_second: Option<u32>,
    /// Seconds before the same (device, remote address) raises another kernel event
    /// (`--event-rearm-secs`).
    pub rearm_secs: Option<u32>,
    /// URL alerts are POSTed to as JSON (`--webhook`).
    pub webhook: Option<String>,
    /// Seconds a webhook request may take (`--webhook-timeout-secs`).
    pub webhook_timeout_secs: Option<u64>,
    /// Alertmanager base URL every alert is pushed to (`--alertmanager`).
    pub alertmanager: Option<String>,
}

crate::policy::with_rules! {
    /// `[[group]]`: a named set of devices with its own rules; whatever they leave open falls
    /// through to `[policy]`.
    #[derive(Clone, Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct GroupSection {
        /// The group's name, as devices refer to it.
        pub name: Spanned<String>,
    }
}

crate::policy::with_rules! {
    /// `[[device]]`: one device by MAC address, with its own rules; whatever they leave open
    /// falls through to its group, then to `[policy]`.
    #[derive(Clone, Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    pub struct DeviceSection {
        /// `aa:bb:cc:dd:ee:ff` (or with dashes).
        pub mac: Spanned<String>,
        /// Its name; wins over DHCP lease names.
        pub name: Option<String>,
        /// The `[[group]]` it belongs to.
        pub group: Option<Spanned<String>>,
    }
}

//! Command-line interface (clap derive).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::kernel::{AttachPreference, Lookup};

pub use crate::http::client::ApiClientArgs;

/// Attribution printed in `--help`: the embedded default database is CC BY 4.0.
pub const ATTRIBUTION: &str = "The embedded default country database is derived from \
geo-whois-asn-country (ip-location-db), CC BY 4.0, Number Resource Organization (NRO): \
data from nro.net, https://creativecommons.org/licenses/by/4.0/";

/// Per-device egress traffic by destination country, counted in the kernel by eBPF TC programs.
#[derive(Debug, Parser)]
#[command(name = "egress-tracer", version, about, after_help = ATTRIBUTION)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to LAN interfaces, count traffic per device and country, serve metrics.
    Run(Box<RunArgs>),
    /// Validate a configuration file: every error with its line and reason.
    CheckConfig(CheckConfigArgs),
    /// Check what the agent needs from this machine: kernel, BPF, TC, capabilities, bpffs,
    /// interfaces; each OK, WARN or FAIL with a fix. Exits non-zero if anything fails.
    Check(CheckArgs),
    /// Remove the pinned counters, so the next start counts from zero.
    Reset(ResetArgs),
    /// Show a running agent's per-device, per-country table (from its API).
    Status(StatusArgs),
    /// Show what learning mode learned per device; approve new countries; propose a policy.
    Baseline(BaselineArgs),
    /// Show the country (and whether it is local) of addresses, as the kernel would decide.
    Lookup(LookupArgs),
    /// Describe the geo database: source, build date, prefix counts, kernel memory.
    GeoInfo(GeoArgs),
    /// Compile geo sources into the compact embedded form (used by `cargo xtask geo-build`).
    #[command(hide = true)]
    GeoCompile(GeoCompileArgs),
}

/// Where the country data comes from.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct GeoArgs {
    /// Country database file (MaxMind/DB-IP/ip-location-db MMDB, CSV ranges optionally gzipped,
    /// or the compact form; detected by content); may be
    /// given once per family or once for a combined file. Default: the embedded database.
    #[arg(long = "geo", value_name = "FILE")]
    pub geo: Vec<PathBuf>,
}

/// `egress-tracer run`. Every option has a key in the configuration file's `[agent]` or
/// `[alerts]` section; an option given here wins over the file.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Configuration file (TOML): agent settings, policy, groups, devices, alerts.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// LAN interface to attach to (the side facing the devices, e.g. br-lan); repeatable.
    #[arg(long = "lan", value_name = "IFACE")]
    pub lan: Vec<String>,
    /// Country database.
    #[command(flatten)]
    pub geo: GeoArgs,
    /// Address for /metrics and the API [default: 127.0.0.1:9977].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Print the per-device table every SECS seconds; 0: only on SIGUSR1 [default: 10].
    #[arg(long, value_name = "SECS")]
    pub interval: Option<u64>,
    /// Capacity of the traffic map: one entry per (device, country), both directions in it
    /// (blocked traffic takes its own) [default: 16384].
    #[arg(long, value_name = "N")]
    pub counter_entries: Option<u32>,
    /// Slots per CPU of the remote table (rounded up to a power of two, at most 262144; 128
    /// bytes each): one per (device, remote address) counted on that CPU; a remote that finds
    /// no free slot is counted in its device's overflow total; 0 turns the table off [default:
    /// 8192].
    #[arg(long, value_name = "N")]
    pub remote_entries: Option<u32>,
    /// Seconds without a packet after which a remote entry is retired into its device's
    /// "expired" total, freeing its slot [default: 900].
    #[arg(long, value_name = "SECS")]
    pub remote_idle: Option<u64>,
    /// ASN database naming each remote's organisation (ip-location-db asn CSV, iptoasn TSV,
    /// GeoLite2-ASN or DB-IP ASN MMDB; detected by content, optionally gzipped); repeatable,
    /// a later file wins where files overlap.
    #[arg(long = "asn", value_name = "FILE")]
    pub asn: Vec<PathBuf>,
    /// Send IPFIX (RFC 7011, UDP) flow records per remote to this collector (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub ipfix: Option<String>,
    /// Seconds between IPFIX exports [default: 60].
    #[arg(long, value_name = "SECS")]
    pub ipfix_interval: Option<u64>,
    /// DNS answers and TLS ClientHellos each CPU may hand to the agent per second to name
    /// remotes; the kernel counts the rest as suppressed; 0: no names [default: 200].
    #[arg(long, value_name = "N")]
    pub capture_rate: Option<u32>,
    /// (device, address) entries of learned names kept; the least recently used are evicted
    /// [default: 4096].
    #[arg(long, value_name = "N")]
    pub dns_names: Option<usize>,
    /// Seconds a learned name is kept at least, even when its DNS TTL is shorter
    /// [default: 1800].
    #[arg(long, value_name = "SECS")]
    pub dns_min_hold: Option<u64>,
    /// Learning mode: each device's first DURATION (e.g. 7d, 3s) forms its baseline of
    /// countries; afterwards a country outside it raises a `new_country` alert, and a MAC seen
    /// for the first time after the network's first DURATION a `new_device` alert.
    #[arg(long, value_name = "DURATION")]
    pub learn_for: Option<humantime::Duration>,
    /// Directory of the state that must survive restarts (the learned baseline, the traffic
    /// history) [default: /var/lib/egress-tracer].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Traffic history per (device, country): 5-minute buckets for 24 h and hourly ones for
    /// 7 days, at most N stored buckets (at most 50 bytes each in memory, 13 on disk); 0: no
    /// history [default: 100000].
    #[arg(long, value_name = "N")]
    pub history_points: Option<usize>,
    /// Alert when a device uploads more than SIZE to REGIONS within WINDOW, e.g. CN:10MB/1h or
    /// any:1GB/1d; repeatable (also `[[volume]]` in the config).
    #[arg(long = "upload-alert", value_name = "REGIONS:SIZE/WINDOW")]
    pub upload_alert: Vec<String>,
    /// Push every alert to this Alertmanager (base URL; `POST /api/v2/alerts`).
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,
    /// The eBPF programs' own diagnostics (aya-log), logged by the agent at that level: e.g.
    /// debug shows captures refused by a full ring buffer. Off costs nothing [default: off].
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub kernel_log: Option<crate::kernel::KernelLog>,
    /// bpffs directory where the maps are pinned, so that a reload or a restart continues the
    /// counts [default: /sys/fs/bpf/egress-tracer].
    #[arg(long, value_name = "DIR")]
    pub bpffs_dir: Option<PathBuf>,
    /// Check the config, --geo and --leases files for changes every SECS seconds and reload
    /// them; 0: never (SIGHUP always reloads) [default: 5].
    #[arg(long, value_name = "SECS")]
    pub watch_interval: Option<u64>,
    /// TC attach mechanism [default: auto].
    #[arg(long, value_enum)]
    pub tc_attach: Option<AttachPreference>,
    /// Lookup structures: the direct tables, or the LPM tries they are checked against
    /// [default: table].
    #[arg(long, value_enum)]
    pub lookup: Option<Lookup>,
    /// Approved regions for every device, comma-separated (e.g. US,CA,eu,continent:EU);
    /// traffic elsewhere raises alerts. Replaces `[policy] allow`.
    #[arg(long, value_name = "REGIONS", value_delimiter = ',')]
    pub allow: Option<Vec<String>>,
    /// Regions blocked in the kernel for every device, comma-separated (e.g.
    /// CN,continent:AF). Replaces `[policy] block`.
    #[arg(long, value_name = "REGIONS", value_delimiter = ',')]
    pub block: Option<Vec<String>>,
    /// Action for traffic to addresses with no country [default: as for other unapproved
    /// regions].
    #[arg(long, value_enum, value_name = "ACTION")]
    pub unknown_action: Option<crate::policy::ActionName>,
    /// Turn every `block` into `alert`: see what a policy would drop without dropping it.
    #[arg(long)]
    pub dry_run: bool,
    /// Most (device, country) pairs exported as their own metric series; pairs beyond it are
    /// summed per device under country="other". 0: no cap [default: 2048].
    #[arg(long, value_name = "N")]
    pub metrics_max_pairs: Option<usize>,
    /// Most devices exported as their own metric series; the traffic of further MACs is
    /// summed per country under mac="other" (named devices are admitted first). 0: no cap
    /// [default: 256].
    #[arg(long, value_name = "N")]
    pub metrics_max_devices: Option<usize>,
    /// DHCP lease file naming devices (dnsmasq leases or odhcpd state file); repeatable.
    #[arg(long = "leases", value_name = "FILE")]
    pub leases: Vec<PathBuf>,
    /// URL each alert is POSTed to as JSON.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Seconds a webhook request may take before it is retried [default: 5].
    #[arg(long, value_name = "SECS")]
    pub webhook_timeout_secs: Option<u64>,
    /// Repeated alerts for the same (device, country) within SECS are summarised when the
    /// window ends [default: 600].
    #[arg(long, value_name = "SECS")]
    pub alert_suppress_secs: Option<u64>,
    /// A `mac_flood` alert when more than N new source MACs per second appear (averaged over
    /// 10 s), at most one per --alert-suppress-secs; 0: off [default: 20].
    #[arg(long, value_name = "N")]
    pub mac_flood_rate: Option<u32>,
    /// Recent alerts kept for the API [default: 200].
    #[arg(long, value_name = "N")]
    pub alerts_keep: Option<usize>,
    /// Alert events each CPU may send per second; the kernel counts the rest as suppressed
    /// [default: 100].
    #[arg(long, value_name = "N")]
    pub events_per_second: Option<u32>,
    /// Seconds before the same (device, remote address) raises another event [default: 60].
    #[arg(long, value_name = "SECS")]
    pub event_rearm_secs: Option<u32>,
    /// PEM certificate chain: serve the API over HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// File holding a bearer token every API request must send (`Authorization: Bearer ...`).
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// htpasswd file (`user:bcrypt-hash` lines, `htpasswd -nbB`): API requests need basic auth.
    #[arg(long, value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// Allow a non-loopback --listen address without authentication.
    #[arg(long)]
    pub insecure_listen: bool,
}

/// `egress-tracer check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// LAN interface the agent would attach to; repeatable (default: `lan` of --config).
    #[arg(long = "lan", value_name = "IFACE")]
    pub lan: Vec<String>,
    /// Configuration file to take `lan` and `bpffs_dir` from.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// bpffs directory the agent pins its maps in [default: /sys/fs/bpf/egress-tracer].
    #[arg(long, value_name = "DIR")]
    pub bpffs_dir: Option<PathBuf>,
}

/// `egress-tracer check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file to validate.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `egress-tracer lookup`.
#[derive(Debug, Args)]
pub struct LookupArgs {
    /// Country database.
    #[command(flatten)]
    pub geo: GeoArgs,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Configuration file defining extra named regions.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Addresses to look up.
    #[arg(required = true, value_name = "ADDR")]
    pub addrs: Vec<std::net::IpAddr>,
}

/// `egress-tracer geo-compile`.
#[derive(Debug, Args)]
pub struct GeoCompileArgs {
    /// Source files, applied in order.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Description stored in the output (e.g. the source package and version).
    #[arg(long)]
    pub source: Option<String>,
    /// Build date stored in the output.
    #[arg(long)]
    pub build_date: Option<String>,
}

/// `egress-tracer status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent to ask.
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// Print the agent's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show one device's remote addresses (address, country, organisation, names, traffic)
    /// instead of the per-country table.
    #[arg(long, value_name = "MAC")]
    pub device: Option<String>,
    /// With --device: at most this many remotes, most bytes first [default: 50].
    #[arg(long, value_name = "N", requires = "device")]
    pub limit: Option<usize>,
}

/// `egress-tracer reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// bpffs directory the agent pins its counters in (as given to `run`).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/egress-tracer")]
    pub bpffs_dir: PathBuf,
}

/// `egress-tracer baseline`.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// What to do (default: show the baseline).
    #[command(subcommand)]
    pub action: Option<BaselineAction>,
    /// The agent to ask.
    #[command(flatten)]
    pub api: ApiClientArgs,
    /// Print the agent's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `egress-tracer baseline ...`.
#[derive(Debug, Subcommand)]
pub enum BaselineAction {
    /// Approve countries for a device: they stop being new (`POST /api/v1/baseline/approve`).
    Approve {
        /// The device, `aa:bb:cc:dd:ee:ff`.
        #[arg(value_name = "MAC")]
        mac: String,
        /// ISO country codes (or `unknown`).
        #[arg(required = true, value_name = "CC")]
        countries: Vec<String>,
    },
    /// Print a `[[device]]` policy per device, in TOML, from its baseline and approvals:
    /// ready to paste into the configuration file.
    Propose,
}

//! Command-line interface (clap derive).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::kernel::{AttachPreference, Lookup};

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
    Run(RunArgs),
    /// Remove the pinned counters, so the next start counts from zero.
    Reset(ResetArgs),
    /// Show a running agent's per-device, per-country table (from its API).
    Status(StatusArgs),
    /// Show the country (and whether it is local) of addresses, as the kernel would decide.
    Lookup(LookupArgs),
    /// Describe the geo database: source, build date, prefix counts, kernel memory.
    GeoInfo(GeoArgs),
    /// Compile geo sources into the compact embedded form (used by `cargo xtask geo-build`).
    #[command(hide = true)]
    GeoCompile(GeoCompileArgs),
}

/// Where the country data comes from.
#[derive(Debug, Args, Clone, Default)]
pub struct GeoArgs {
    /// Country database file (MaxMind/DB-IP/ip-location-db MMDB, CSV ranges optionally gzipped,
    /// or the compact form; detected by content); may be
    /// given once per family or once for a combined file. Default: the embedded database.
    #[arg(long = "geo", value_name = "FILE")]
    pub geo: Vec<PathBuf>,
}

/// `egress-tracer run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// LAN interface to attach to (the side facing the devices, e.g. br-lan); repeatable.
    #[arg(long = "lan", value_name = "IFACE", required = true)]
    pub lan: Vec<String>,
    /// Country database.
    #[command(flatten)]
    pub geo: GeoArgs,
    /// Address for /metrics and the API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9977")]
    pub listen: SocketAddr,
    /// Print the per-device table every SECS seconds (0: only on SIGUSR1).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub interval: u64,
    /// Capacity of the counter map (devices x countries x 2 directions).
    #[arg(long, value_name = "N", default_value_t = tracer_common::maps::DEFAULT_COUNTER_ENTRIES)]
    pub counter_entries: u32,
    /// bpffs directory where the counter maps are pinned, so that a reload or a restart
    /// continues the counts.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/egress-tracer")]
    pub bpffs_dir: PathBuf,
    /// Check the --geo files for changes every SECS seconds and reload them (0: never; SIGHUP
    /// always reloads).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub watch_interval: u64,
    /// TC attach mechanism.
    #[arg(long, value_enum, default_value_t = AttachPreference::Auto)]
    pub tc_attach: AttachPreference,
    /// Lookup structures: the direct tables, or the LPM tries they are checked against.
    #[arg(long, value_enum, default_value_t = Lookup::Table)]
    pub lookup: Lookup,
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
    /// Base URL of the running agent.
    #[arg(long, default_value = "http://127.0.0.1:9977")]
    pub url: String,
    /// Print the agent's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `egress-tracer reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// bpffs directory the agent pins its counters in (as given to `run`).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/egress-tracer")]
    pub bpffs_dir: PathBuf,
}

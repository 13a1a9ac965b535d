//! The settings `run` works with: the command line over the configuration file over defaults.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::Config;
use crate::{
    config::AgentSection,
    config::cli::{GeoArgs, RunArgs},
    http::access::{ApiAccess, Security},
    kernel::{AttachPreference, Lookup},
};

/// Default `--metrics-max-pairs`: a household of 50 devices reaching 40 countries each.
pub(super) const DEFAULT_METRICS_MAX_PAIRS: usize = 2048;
/// Default `--metrics-max-devices`: several times a household's devices.
pub(super) const DEFAULT_METRICS_MAX_DEVICES: usize = 256;
/// Default `--mac-flood-rate`: new MACs per second, far above devices joining or randomising
/// their MACs.
pub(super) const DEFAULT_MAC_FLOOD_RATE: u32 = 20;

/// Everything `run` needs, resolved.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// LAN interfaces.
    pub lan: Vec<String>,
    /// Country database files.
    pub geo: GeoArgs,
    /// HTTP address.
    pub listen: SocketAddr,
    /// Seconds between table printouts (0: none).
    pub interval: u64,
    /// Capacity of the traffic map.
    pub counter_entries: u32,
    /// Capacity of the remote table.
    pub remote_entries: u32,
    /// Idle time after which a remote entry is retired.
    pub remote_idle: Duration,
    /// ASN database files.
    pub asn: Vec<PathBuf>,
    /// IPFIX collector (`HOST:PORT`).
    pub ipfix: Option<String>,
    /// Time between IPFIX exports.
    pub ipfix_interval: Duration,
    /// DNS/TLS captures per CPU per second (0: no names).
    pub capture_rate: u32,
    /// (device, address) name entries kept.
    pub dns_names: usize,
    /// Shortest time a learned name is kept.
    pub dns_min_hold: Duration,
    /// Learning window per device (None: learning off).
    pub learning: Option<Duration>,
    /// Directory of the persistent state.
    pub state_dir: PathBuf,
    /// Stored buckets of the traffic history (0: none).
    pub history_points: usize,
    /// Upload-volume alert rules.
    pub volumes: Vec<super::VolumeRule>,
    /// Alertmanager base URL.
    pub alertmanager: Option<String>,
    /// Level of the programs' diagnostics.
    pub kernel_log: crate::kernel::KernelLog,
    /// bpffs directory of the pinned maps.
    pub bpffs_dir: PathBuf,
    /// Seconds between file checks (0: never).
    pub watch_interval: u64,
    /// TC attach mechanism.
    pub tc_attach: AttachPreference,
    /// Lookup structures.
    pub lookup: Lookup,
    /// Cap on (device, country) metric series (0: none).
    pub metrics_max_pairs: usize,
    /// Cap on devices with metric series (0: none).
    pub metrics_max_devices: usize,
    /// New MACs per second that raise a `mac_flood` alert (0: off).
    pub mac_flood_rate: u32,
    /// DHCP lease files.
    pub leases: Vec<PathBuf>,
    /// Every `block` acts as `alert`.
    pub dry_run: bool,
    /// Alert repeats for a (device, country) within this window are summarised.
    pub alert_suppress: Duration,
    /// Recent alerts kept.
    pub alerts_keep: usize,
    /// Kernel alert events per CPU per second.
    pub events_per_second: u32,
    /// Seconds before a (device, remote address) raises another event.
    pub event_rearm_secs: u32,
    /// Webhook URL.
    pub webhook: Option<String>,
    /// Webhook request timeout.
    pub webhook_timeout: Duration,
    /// API authentication and TLS.
    pub access: ApiAccess,
    /// `access`'s files, read once: what the API server enforces (a reload reads them to check
    /// them, but `access` only changes at a restart).
    pub security: Security,
}

/// The volume rules of the command line and the configuration file, compiled.
fn volume_rules(args: &RunArgs, config: &Config) -> anyhow::Result<Vec<super::VolumeRule>> {
    let regions = config.regions().map_err(|e| anyhow::anyhow!("the config's [regions]: {e}"))?;
    let mut rules = Vec::new();
    for flag in &args.upload_alert {
        rules.push(
            super::VolumeRule::from_flag(flag, &regions)
                .map_err(|e| anyhow::anyhow!("--upload-alert {e}"))?,
        );
    }
    for section in &config.volumes {
        rules.push(
            super::VolumeRule::compile(section, &regions)
                .map_err(|e| anyhow::anyhow!("[[volume]]: {}", e.reason))?,
        );
    }
    Ok(rules)
}

/// A setting a reload cannot change: it needs a restart.
#[derive(Debug, thiserror::Error)]
#[error("{0} changed; it takes effect at the next restart")]
pub struct Unchangeable(pub &'static str);

impl RunSettings {
    /// Resolves `args` over `config` (the command line wins) over the defaults.
    pub fn resolve(args: &RunArgs, config: &Config) -> anyhow::Result<RunSettings> {
        let agent = &config.agent;
        let alerts = &config.alerts;
        let lan = if args.lan.is_empty() {
            agent.lan.clone().unwrap_or_default()
        } else {
            args.lan.clone()
        };
        anyhow::ensure!(
            !lan.is_empty(),
            "no LAN interface: give --lan IFACE or `lan = [...]` in the config's [agent] section"
        );
        let geo = if args.geo.geo.is_empty() {
            GeoArgs { geo: agent.geo.clone().unwrap_or_default() }
        } else {
            args.geo.clone()
        };
        let leases = if args.leases.is_empty() {
            agent.leases.clone().unwrap_or_default()
        } else {
            args.leases.clone()
        };
        let listen = args.listen.or(agent.listen).unwrap_or(([127, 0, 0, 1], 9977).into());
        let asn = if args.asn.is_empty() {
            agent.asn.clone().unwrap_or_default()
        } else {
            args.asn.clone()
        };
        let remote_idle = args.remote_idle.or(agent.remote_idle).unwrap_or(900);
        anyhow::ensure!(remote_idle > 0, "remote_idle must be at least 1 second");
        let remote_entries = args
            .remote_entries
            .or(agent.remote_entries)
            .unwrap_or(tracer_common::remotes::DEFAULT_REMOTE_ENTRIES);
        anyhow::ensure!(
            remote_entries <= tracer_common::remotes::MAX_REMOTE_ENTRIES,
            "remote_entries {remote_entries}: at most {} slots per CPU",
            tracer_common::remotes::MAX_REMOTE_ENTRIES
        );
        let ipfix_interval = args.ipfix_interval.or(agent.ipfix_interval).unwrap_or(60);
        anyhow::ensure!(ipfix_interval > 0, "ipfix_interval must be at least 1 second");
        let learning = match (&args.learn_for, &config.learning.period) {
            (Some(d), _) => Some((*d).into()),
            (None, Some(p)) => Some(
                humantime::parse_duration(p.get_ref())
                    .map_err(|e| anyhow::anyhow!("[learning] period: {e}"))?,
            ),
            (None, None) => None,
        };
        let volumes = volume_rules(args, config)?;
        let (access, security) = api_access(args, agent, listen)?;
        Ok(RunSettings {
            lan,
            geo,
            listen,
            interval: args.interval.or(agent.interval).unwrap_or(10),
            counter_entries: args
                .counter_entries
                .or(agent.counter_entries)
                .unwrap_or(tracer_common::maps::DEFAULT_COUNTER_ENTRIES),
            remote_entries,
            remote_idle: Duration::from_secs(remote_idle),
            asn,
            ipfix: args.ipfix.clone().or_else(|| agent.ipfix.clone()),
            ipfix_interval: Duration::from_secs(ipfix_interval),
            capture_rate: args
                .capture_rate
                .or(agent.capture_rate)
                .unwrap_or(tracer_common::capture::DEFAULT_CAPTURES_PER_SEC),
            dns_names: args.dns_names.or(agent.dns_names).unwrap_or(4096).max(1),
            dns_min_hold: Duration::from_secs(
                args.dns_min_hold.or(agent.dns_min_hold).unwrap_or(1800),
            ),
            learning,
            state_dir: args
                .state_dir
                .clone()
                .or_else(|| agent.state_dir.clone())
                .unwrap_or_else(|| PathBuf::from("/var/lib/egress-tracer")),
            history_points: args
                .history_points
                .or(agent.history_points)
                .unwrap_or(crate::history::DEFAULT_MAX_POINTS),
            volumes,
            alertmanager: args.alertmanager.clone().or_else(|| alerts.alertmanager.clone()),
            kernel_log: args.kernel_log.or(agent.kernel_log).unwrap_or_default(),
            bpffs_dir: args
                .bpffs_dir
                .clone()
                .or_else(|| agent.bpffs_dir.clone())
                .unwrap_or_else(|| PathBuf::from("/sys/fs/bpf/egress-tracer")),
            watch_interval: args.watch_interval.or(agent.watch_interval).unwrap_or(5),
            tc_attach: args.tc_attach.or(agent.tc_attach).unwrap_or_default(),
            lookup: args.lookup.or(agent.lookup).unwrap_or_default(),
            metrics_max_pairs: args
                .metrics_max_pairs
                .or(agent.metrics_max_pairs)
                .unwrap_or(DEFAULT_METRICS_MAX_PAIRS),
            metrics_max_devices: args
                .metrics_max_devices
                .or(agent.metrics_max_devices)
                .unwrap_or(DEFAULT_METRICS_MAX_DEVICES),
            mac_flood_rate: args
                .mac_flood_rate
                .or(alerts.mac_flood_rate)
                .unwrap_or(DEFAULT_MAC_FLOOD_RATE),
            leases,
            dry_run: args.dry_run || agent.dry_run.unwrap_or(false),
            alert_suppress: Duration::from_secs(
                args.alert_suppress_secs.or(alerts.suppress_secs).unwrap_or(600),
            ),
            alerts_keep: args.alerts_keep.or(alerts.keep).unwrap_or(200),
            events_per_second: args.events_per_second.or(alerts.events_per_second).unwrap_or(100),
            event_rearm_secs: args.event_rearm_secs.or(alerts.rearm_secs).unwrap_or(60),
            webhook: args.webhook.clone().or_else(|| alerts.webhook.clone()),
            webhook_timeout: Duration::from_secs(
                args.webhook_timeout_secs.or(alerts.webhook_timeout_secs).unwrap_or(5),
            ),
            access,
            security,
        })
    }

    /// Checks that a reload leaves alone what only a restart can change.
    pub fn check_reloadable(&self, new: &RunSettings) -> Result<(), Unchangeable> {
        let fixed: [(&'static str, bool); 17] = [
            ("learn_for/[learning]", self.learning != new.learning),
            ("upload_alert/[[volume]]", self.volumes != new.volumes),
            ("state_dir", self.state_dir != new.state_dir),
            ("history_points", self.history_points != new.history_points),
            ("alertmanager", self.alertmanager != new.alertmanager),
            ("webhook", self.webhook != new.webhook),
            ("webhook_timeout_secs", self.webhook_timeout != new.webhook_timeout),
            ("lan", self.lan != new.lan),
            ("listen", self.listen != new.listen),
            ("counter_entries", self.counter_entries != new.counter_entries),
            ("remote_entries", self.remote_entries != new.remote_entries),
            ("dns_names", self.dns_names != new.dns_names),
            ("ipfix", self.ipfix != new.ipfix),
            ("ipfix_interval", self.ipfix_interval != new.ipfix_interval),
            ("bpffs_dir", self.bpffs_dir != new.bpffs_dir),
            ("tc_attach", self.tc_attach != new.tc_attach),
            ("tls/auth/insecure_listen", self.access != new.access),
        ];
        match fixed.into_iter().find(|(_, changed)| *changed) {
            Some((name, _)) => Err(Unchangeable(name)),
            None => Ok(()),
        }
    }
}

/// The API's access settings: the command line over `[agent]`, checked against the listen
/// address, with their files read.
pub(crate) fn api_access(
    args: &RunArgs,
    agent: &AgentSection,
    listen: SocketAddr,
) -> anyhow::Result<(ApiAccess, Security)> {
    let pick = |a: &Option<PathBuf>, b: &Option<PathBuf>| a.clone().or_else(|| b.clone());
    let tls = match (pick(&args.tls_cert, &agent.tls_cert), pick(&args.tls_key, &agent.tls_key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => anyhow::bail!(
            "--tls-cert and --tls-key (tls_cert and tls_key in [agent]) go together: give both \
             or neither"
        ),
    };
    let access = ApiAccess {
        tls,
        auth_token_file: pick(&args.auth_token_file, &agent.auth_token_file),
        basic_auth_file: pick(&args.basic_auth_file, &agent.basic_auth_file),
        insecure_listen: args.insecure_listen || agent.insecure_listen.unwrap_or(false),
    };
    let security = access.checked(listen)?;
    Ok((access, security))
}

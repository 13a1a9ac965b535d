//! Building what the agent runs with: configuration, settings, policy, kernel object.

use std::{
    path::PathBuf,
    time::{Instant, SystemTime},
};

use anyhow::Context as _;
use ipnet::IpNet;
use tracing::info;

use crate::{
    agent::database::{self, KernelTables},
    config::cli::RunArgs,
    config::{Config, RunSettings},
    devices::{Sources, StaticDevice},
    kernel::{EventLimits, Kernel, LoadOptions, Loader},
    policy::{KernelPolicy, Policy},
    state::status::GeoStatus,
};

/// Where this version's maps are pinned under `--bpffs-dir`.
pub fn pin_dir(bpffs_dir: &std::path::Path) -> PathBuf {
    bpffs_dir.join(format!("v{}", tracer_common::LAYOUT_VERSION))
}

/// Everything a (re)load is made of, built before anything running is touched.
#[derive(Debug)]
pub struct Plan {
    /// The configuration file's contents (empty without `--config`).
    pub config: Config,
    /// The settings.
    pub settings: RunSettings,
    /// The policy as the agent explains it.
    pub policy: Policy,
    /// The policy as the kernel applies it.
    pub kernel_policy: KernelPolicy,
}

impl Plan {
    /// Reads the configuration (if any, compiling its policy once), resolves the settings and
    /// applies the command-line shortcuts and `--dry-run` to the policy.
    pub fn build(args: &RunArgs) -> anyhow::Result<Plan> {
        let mut config = match &args.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let settings = RunSettings::resolve(args, &config)?;
        let regions = config.regions().context("the config's [regions]")?;
        config
            .apply_shortcuts(
                args.allow.as_deref(),
                args.block.as_deref(),
                args.unknown_action,
                &regions,
            )
            .map_err(|e| {
                if e.span == crate::policy::COMMAND_LINE {
                    anyhow::anyhow!("--allow/--block: {}", e.reason)
                } else {
                    anyhow::anyhow!(
                        "{}: {}",
                        args.config.as_deref().unwrap_or(std::path::Path::new("config")).display(),
                        e.reason
                    )
                }
            })?;
        let policy = config.compiled_policy().clone().with_dry_run(settings.dry_run);
        let kernel_policy = policy.kernel()?;
        Ok(Plan { config, settings, policy, kernel_policy })
    }

    /// Writes the policy into the (pinned, shared) policy maps.
    pub fn apply_policy(&self, kernel: &mut Kernel) -> anyhow::Result<()> {
        let limits = EventLimits {
            per_second: self.settings.events_per_second,
            rearm_secs: self.settings.event_rearm_secs,
            new_pairs: self.settings.learning.is_some(),
        };
        kernel.write_policy(&self.kernel_policy, limits)?;
        info!(
            policy = %self.config.policy.summary(),
            groups = self.config.groups.len(),
            devices = self.config.devices.len(),
            profiles = self.kernel_policy.profiles.len(),
            dry_run = self.settings.dry_run,
            enforced = self.kernel_policy.enabled(),
            "policy loaded"
        );
        Ok(())
    }

    /// Where device names and addresses come from.
    pub fn device_sources(&self) -> Sources {
        Sources {
            statics: self
                .config
                .devices
                .iter()
                .filter_map(|d| {
                    Some(StaticDevice {
                        mac: crate::base::text::parse_mac(d.mac.get_ref())?,
                        name: d.name.clone(),
                        group: d.group.as_ref().map(|g| g.get_ref().clone()),
                    })
                })
                .collect(),
            lease_files: self.settings.leases.clone(),
            interfaces: self.settings.lan.clone(),
        }
    }
}

/// Compiles the database and loads it into a fresh object (not attached yet).
pub fn load_kernel(
    settings: &RunSettings,
    lan_prefixes: &[IpNet],
) -> anyhow::Result<(Kernel, GeoStatus)> {
    let started = Instant::now();
    // Before the database: the loader parses the kernel's BTF (and drops it), a transient
    // larger than the database's.
    let loader = Loader::new();
    let geo = database::compile_with(
        &settings.geo,
        lan_prefixes,
        settings.lookup == crate::kernel::Lookup::Lpm,
    )?;
    let tables = KernelTables::build(&geo, settings.lookup);
    let mut kernel = tables.load_with(
        loader,
        LoadOptions {
            counter_entries: settings.counter_entries,
            remote_entries: settings.remote_entries,
            pin_dir: Some(pin_dir(&settings.bpffs_dir)),
            bench_programs: false,
            kernel_log: settings.kernel_log,
            ..LoadOptions::default()
        },
    )?;
    kernel.set_lookup(settings.lookup)?;
    kernel.set_capture_rate(settings.capture_rate)?;
    kernel.set_remotes(settings.remote_entries > 0)?;
    // Read for this load; the next one maps them again.
    crate::base::resident::release_embedded(database::DEFAULT_DATABASE);
    crate::base::resident::release_embedded(crate::kernel::EBPF_OBJECT);
    let stats = geo.stats();
    let status = GeoStatus {
        source: geo.meta().source.clone(),
        build_date: geo.meta().build_date.clone(),
        loaded_at: Some(SystemTime::now()),
        load_duration: started.elapsed(),
        runs: (stats.v4_runs, stats.v6_runs),
    };
    info!(
        source = %database::describe(&geo),
        v4_nodes = tables.v4.nodes.len(),
        v6_nodes = tables.v6.nodes.len(),
        geo_kernel_bytes = tables.v4.bytes() + tables.v6.bytes(),
        took_ms = status.load_duration.as_millis() as u64,
        "country database loaded"
    );
    Ok((kernel, status))
}

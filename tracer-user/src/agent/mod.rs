//! `egress-tracer run`: the long-running agent.

pub mod database;
mod load;
pub mod service;
mod watch;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use ipnet::IpNet;
use tokio::signal::unix::{SignalKind, signal};
use tracer_common::Stat;
use tracing::{error, info, warn};

pub use load::{Plan, load_kernel, pin_dir};

use crate::base::sync::ReadWrite;
use crate::{
    alerts::{self, AlertBook, AlertSettings, Enrichment, Webhook},
    config::cli::RunArgs,
    http::routes,
    kernel::netif,
    kernel::{CounterReader, Kernel, Lookup},
    metrics::Metrics,
    state::Context,
    state::report::Report,
    state::status::{AgentStatus, SharedStatus},
};

fn alert_settings(plan: &Plan) -> AlertSettings {
    AlertSettings { suppress: plan.settings.alert_suppress, keep: plan.settings.alerts_keep }
}

/// How old a counter snapshot the run loop's timed consumers accept: one read of the map a
/// second serves the volume rules, the learner and the history.
const SHARED_READ: Duration = Duration::from_millis(900);

/// The running agent: what it was started with and what it holds.
struct Agent {
    args: RunArgs,
    plan: Plan,
    lan_prefixes: Vec<IpNet>,
    kernel: Kernel,
    ctx: Arc<Context>,
    /// Forwards the current object's aya-log records (with `--kernel-log`).
    kernel_log: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    fn status(&self) -> std::sync::RwLockWriteGuard<'_, AgentStatus> {
        self.ctx.status.writing()
    }

    /// Reloads the configuration, the policy and (if `geo` or its files changed) the country
    /// database. Everything is built first; if anything is wrong the running state stays.
    fn reload(&mut self, geo: bool) {
        let _reloading = crate::agent::service::reloading();
        let result = Plan::build(&self.args).and_then(|plan| {
            self.plan.settings.check_reloadable(&plan.settings)?;
            let geo = geo
                || plan.settings.geo != self.plan.settings.geo
                || plan.settings.lookup != self.plan.settings.lookup;
            let asn = if geo || plan.settings.asn != self.plan.settings.asn {
                Some(load_asn(&plan.settings.asn)?)
            } else {
                None
            };
            let fresh = if geo {
                let (mut fresh, status) = load_kernel(&plan.settings, &self.lan_prefixes)?;
                fresh.take_over(&mut self.kernel)?;
                Some((fresh, status))
            } else {
                None
            };
            Ok((plan, fresh, asn))
        });
        let (plan, fresh, asn) = match result {
            Ok(ok) => ok,
            Err(err) => {
                self.status().reloads_failed += 1;
                error!("reload rejected, keeping the running configuration: {err:#}");
                return;
            }
        };
        if let Some((fresh, geo)) = fresh {
            self.kernel = fresh;
            if let Some(logger) = self.kernel.take_logger() {
                match crate::kernel::spawn_kernel_log(logger) {
                    Ok(task) => {
                        if let Some(old) = self.kernel_log.replace(task) {
                            old.abort();
                        }
                    }
                    Err(err) => warn!(%err, "kernel diagnostics unavailable"),
                }
            }
            self.status().geo = geo;
            info!("country database reloaded; programs swapped atomically, counters continue");
        }
        if let Err(err) = plan.apply_policy(&mut self.kernel) {
            self.status().reloads_failed += 1;
            error!("writing the policy failed: {err:#}");
            return;
        }
        self.ctx.set_policy(plan.policy.clone());
        if let Some(asn) = asn {
            self.ctx.set_asn(asn);
        }
        if plan.settings.capture_rate != self.plan.settings.capture_rate
            && let Err(err) = self.kernel.set_capture_rate(plan.settings.capture_rate)
        {
            self.status().reloads_failed += 1;
            error!("writing the capture rate failed: {err:#}");
            return;
        }
        self.ctx.names.set_min_hold(plan.settings.dns_min_hold);
        self.ctx.devices.writing().set_sources(plan.device_sources());
        self.ctx.alerts.set_settings(alert_settings(&plan));
        self.ctx
            .metrics_max_pairs
            .store(plan.settings.metrics_max_pairs, std::sync::atomic::Ordering::Relaxed);
        self.ctx
            .metrics_max_devices
            .store(plan.settings.metrics_max_devices, std::sync::atomic::Ordering::Relaxed);
        self.ctx.mac_flood.set_rate(plan.settings.mac_flood_rate);
        self.plan = plan;
        self.status().reloads_ok += 1;
        info!("reloaded");
    }
}

/// Runs the agent until SIGINT or SIGTERM; the programs are detached on return.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = Plan::build(&args)?;
    let settings = &plan.settings;
    crate::kernel::preflight::check(&settings.lan)?;
    crate::kernel::bpffs::ensure(&settings.bpffs_dir)?;
    let lan_prefixes =
        netif::prefixes(&settings.lan).context("reading the LAN interfaces' addresses")?;
    info!(lan_prefixes = ?lan_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(), "local networks include the LAN prefixes");
    let (mut kernel, geo) = load_kernel(settings, &lan_prefixes)?;
    let counters_continued = kernel.counters_continued();
    plan.apply_policy(&mut kernel)?;
    let reader: Arc<CounterReader> = Arc::new(kernel.counter_reader()?);
    let remotes = Arc::new(kernel.remote_reader()?);
    let asn = load_asn(&settings.asn)?;
    let ipfix = match &settings.ipfix {
        Some(target) => Some((resolve(target).await?, settings.ipfix_interval)),
        None => None,
    };
    let ring = kernel.event_reader()?;
    let capture_ring = kernel.capture_reader()?;
    let kernel_log = match kernel.take_logger() {
        Some(logger) => Some(crate::kernel::spawn_kernel_log(logger)?),
        None => None,
    };
    let names =
        Arc::new(crate::remotes::domains::NameBook::new(crate::remotes::domains::BookSettings {
            entries: std::num::NonZeroUsize::new(settings.dns_names)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            min_hold: settings.dns_min_hold,
        }));
    for lan in &settings.lan {
        let attachment = kernel.attach(lan, settings.tc_attach)?;
        info!(interface = %attachment.interface, mode = ?attachment.mode, "attached");
    }
    if settings.lookup == Lookup::Lpm {
        warn!("lookups use the LPM tries (reference mode): slower than the default tables");
    }
    let status: SharedStatus = Arc::new(RwLock::new(AgentStatus {
        geo,
        interfaces: settings.lan.clone(),
        ..AgentStatus::default()
    }));
    let webhook = match &settings.webhook {
        Some(url) => Some(Webhook::start(url.clone(), settings.webhook_timeout)?),
        None => None,
    };
    let alertmanager = match &settings.alertmanager {
        Some(url) => Some(crate::alerts::Alertmanager::start(url, settings.webhook_timeout)?),
        None => None,
    };
    let ctx = Arc::new(Context {
        reader: Arc::clone(&reader),
        remotes: Arc::clone(&remotes),
        remote_stats: Arc::default(),
        asn: RwLock::new(asn),
        names: Arc::clone(&names),
        status: Arc::clone(&status),
        policy: RwLock::new(Arc::new(plan.policy.clone())),
        alerts: Arc::new(AlertBook::new(alert_settings(&plan), webhook, alertmanager)),
        learner: std::sync::OnceLock::new(),
        history: std::sync::OnceLock::new(),
        http: Arc::default(),
        devices: RwLock::new(crate::devices::Directory::new(plan.device_sources())),
        metrics_max_pairs: settings.metrics_max_pairs.into(),
        metrics_max_devices: settings.metrics_max_devices.into(),
        mac_flood: crate::alerts::MacFloodWatch::new(settings.mac_flood_rate),
    });
    let learner = settings.learning.map(|period| {
        let learner = Arc::new(crate::learning::Learner::start(
            settings.state_dir.clone(),
            period,
            Arc::clone(&ctx.alerts),
            Arc::clone(&ctx) as Enrichment,
        ));
        let _ = ctx.learner.set(Arc::clone(&learner));
        learner
    });
    let history = (settings.history_points > 0).then(|| {
        let counters = ctx.reader.snapshot().unwrap_or_default();
        let (store, problem) = crate::history::HistoryStore::open(
            &settings.state_dir,
            crate::history::DEFAULT_MAX_PAIRS,
            settings.history_points,
            crate::base::clock::unix_now(),
            &counters,
            !counters_continued,
        );
        if let Some(problem) = problem {
            warn!("{problem}");
        }
        let store = Arc::new(store);
        let _ = ctx.history.set(Arc::clone(&store));
        store
    });
    let volume = crate::learning::volume::VolumeWatch::new(
        settings.volumes.clone(),
        Arc::clone(&ctx.alerts),
        Arc::clone(&ctx) as Enrichment,
    );
    // Read even with --capture-rate 0: a reload may turn names on.
    let captures = Some((capture_ring, Arc::clone(&names)));
    let events = alerts::spawn_reader(
        ring,
        Arc::clone(&ctx.alerts),
        Arc::clone(&ctx) as Enrichment,
        captures,
        learner.clone().map(|l| l as Arc<dyn crate::alerts::PairSink>),
    )?;

    let retirement = tokio::spawn(
        crate::remotes::Retirement {
            reader: Arc::clone(&remotes),
            enricher: Arc::clone(&ctx) as Enrichment,
            idle: settings.remote_idle,
            ipfix,
            stats: Arc::clone(&ctx.remote_stats),
        }
        .run(),
    );
    if let Some((collector, every)) = ipfix {
        info!(%collector, interval_secs = every.as_secs(), "exporting IPFIX flow records");
    }
    let metrics = Arc::new(Metrics::new(Arc::clone(&ctx)));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let writable =
        settings.access.authenticated() || crate::http::access::is_loopback(settings.listen);
    let state = routes::AppState { metrics, ctx: Arc::clone(&ctx), writable };
    let security = settings.security.clone();
    security.log(listener.local_addr()?);
    let server = tokio::spawn(routes::serve(listener, state, security));
    crate::agent::service::ready(&format!("counting on {}", settings.lan.join(", ")));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let interval = settings.interval;
    let period = Duration::from_secs(interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let watch_interval = settings.watch_interval;
    let watch = Duration::from_secs(watch_interval.max(1));
    let mut watcher = tokio::time::interval_at(tokio::time::Instant::now() + watch, watch);
    let mut alert_tick = tokio::time::interval(Duration::from_millis(500));
    // Learning: catch the pairs no event reported and save the baseline if it changed (a
    // SIGKILL loses at most this long of changes).
    let mut learn_tick = tokio::time::interval(Duration::from_secs(2));
    let mut volume_tick = tokio::time::interval(crate::learning::volume::CHECK_EVERY);
    let mut mac_tick = tokio::time::interval(crate::alerts::MAC_FLOOD_CHECK_EVERY);
    let mut history_tick = tokio::time::interval(crate::history::RECORD_EVERY);
    let mut history_save = tokio::time::interval_at(
        tokio::time::Instant::now() + crate::history::SAVE_EVERY,
        crate::history::SAVE_EVERY,
    );
    let mut agent = Agent { args, plan, lan_prefixes, kernel, ctx, kernel_log };
    let mut watched = watch::Watched::new(&agent.args, &agent.plan.settings);
    let heartbeat = crate::agent::service::spawn_watchdog();
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the configuration, the policy and the country database");
                let before = watch::Watched::new(&agent.args, &agent.plan.settings);
                agent.reload(true);
                watched = before.after_reload(&agent.args, &agent.plan.settings);
            }
            _ = watcher.tick(), if watch_interval > 0 => {
                agent.ctx.devices.writing().refresh();
                if let Some(change) = watched.changed() {
                    info!("{change} changed: reloading");
                    let before = watch::Watched::new(&agent.args, &agent.plan.settings);
                    agent.reload(change == watch::Change::Geo);
                    watched = before.after_reload(&agent.args, &agent.plan.settings);
                }
            }
            _ = alert_tick.tick() => { agent.ctx.alerts.tick(); heartbeat.beat() }
            _ = learn_tick.tick(), if learner.is_some() => {
                if let (Some(learner), Ok(snapshot)) = (&learner, agent.ctx.reader.recent(SHARED_READ)) {
                    learner.reconcile(&snapshot);
                    learner.save();
                }
            }
            _ = volume_tick.tick(), if !volume.is_empty() => {
                if let Ok(snapshot) = agent.ctx.reader.recent(SHARED_READ) {
                    volume.check(&snapshot);
                }
            }
            _ = mac_tick.tick() => {
                if let Ok([new_macs, _]) = agent.ctx.reader.snapshot_stat(Stat::NewMac) {
                    agent.ctx.mac_flood.check(&agent.ctx.alerts, new_macs.packets, Instant::now());
                }
            }
            _ = history_tick.tick(), if history.is_some() => {
                if let (Some(history), Ok(snapshot)) = (&history, agent.ctx.reader.recent(SHARED_READ)) {
                    history.record(crate::base::clock::unix_now(), &snapshot);
                }
            }
            _ = history_save.tick(), if history.is_some() => save_history(history.as_deref()),
            _ = sigusr1.recv() => print_table(&agent.ctx),
            _ = ticker.tick(), if interval > 0 => print_table(&agent.ctx),
        }
    }
    crate::agent::service::stopping();
    if let Some(learner) = &learner {
        learner.save();
    }
    if let (Some(history), Ok(snapshot)) = (&history, agent.ctx.reader.snapshot()) {
        history.record(crate::base::clock::unix_now(), &snapshot);
    }
    save_history(history.as_deref());
    server.abort();
    events.abort();
    retirement.abort();
    if let Some(task) = agent.kernel_log.take() {
        task.abort();
    }
    agent.kernel.detach_all();
    let dir = pin_dir(&agent.plan.settings.bpffs_dir);
    drop(agent);
    info!("programs detached; counters stay pinned in {}", dir.display());
    Ok(())
}

/// Writes the history to disk; a failure is logged (the next save tries again).
fn save_history(history: Option<&crate::history::HistoryStore>) {
    if let Some(history) = history
        && let Err(err) = history.save()
    {
        warn!("saving the traffic history failed: {err:#}");
    }
}

/// Loads the `--asn` files (none: no database).
fn load_asn(files: &[std::path::PathBuf]) -> anyhow::Result<Option<Arc<crate::geo::asn::AsnDb>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let db = crate::geo::asn::AsnDb::load(files)?;
    info!(ranges = db.ranges(), memory_bytes = db.memory_bytes(), "ASN database loaded");
    Ok(Some(Arc::new(db)))
}

/// `HOST:PORT` to an address.
async fn resolve(target: &str) -> anyhow::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(target)
        .await
        .with_context(|| format!("resolving the IPFIX collector {target}"))?
        .next()
        .with_context(|| format!("the IPFIX collector {target} has no address"))
}

fn print_table(ctx: &Context) {
    match ctx.reader.snapshot() {
        Ok(snapshot) => println!("{}", Report::build(&snapshot, Some(ctx)).render_table()),
        Err(err) => warn!(%err, "reading counters failed"),
    }
}

/// `egress-tracer reset`: unpins this version's maps. A running agent keeps counting into the
/// maps it holds; the next start begins from zero.
pub fn reset(args: &crate::config::cli::ResetArgs) -> anyhow::Result<()> {
    let dir = pin_dir(&args.bpffs_dir);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => println!("removed the pinned counters in {}", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("nothing pinned in {}", dir.display());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {}", dir.display()))),
    }
    Ok(())
}

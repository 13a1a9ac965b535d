//! `egress-tracer run`: the long-running agent.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use ipnet::IpNet;
use tokio::signal::unix::{SignalKind, signal};
use tracer_common::LAYOUT_VERSION;
use tracing::{error, info, warn};

use crate::{
    api,
    cli::RunArgs,
    geo_source::{self, KernelTables},
    kernel::{CounterReader, Kernel, LoadOptions, Lookup},
    metrics::Metrics,
    netif, preflight,
    report::Report,
    status::{AgentStatus, GeoStatus, SharedStatus},
};

/// Where this version's counter maps are pinned under `--bpffs-dir`.
pub fn pin_dir(bpffs_dir: &Path) -> PathBuf {
    bpffs_dir.join(format!("v{LAYOUT_VERSION}"))
}

/// Compiles the database and loads it into a fresh object (not attached yet).
fn load_kernel(args: &RunArgs, lan_prefixes: &[IpNet]) -> anyhow::Result<(Kernel, GeoStatus)> {
    let started = Instant::now();
    let geo = geo_source::compile(&args.geo, lan_prefixes)?;
    let tables = KernelTables::build(&geo, args.lookup);
    let options = LoadOptions {
        counter_entries: args.counter_entries,
        geo: tables.sizes(),
        pin_dir: Some(pin_dir(&args.bpffs_dir)),
    };
    let mut kernel = Kernel::load(&options)?;
    tables.fill(&mut kernel)?;
    kernel.set_lookup(args.lookup)?;
    let stats = geo.stats();
    let status = GeoStatus {
        source: geo.data().source.clone(),
        build_date: geo.data().build_date.clone(),
        loaded_at: Some(SystemTime::now()),
        load_duration: started.elapsed(),
        runs: (stats.v4_runs, stats.v6_runs),
    };
    info!(
        source = %geo_source::describe(&geo),
        v4_table_blocks = tables.v4_table.len(),
        v6_table_blocks = tables.v6_table.len(),
        v6_lpm_prefixes = tables.v6_prefixes.len(),
        took_ms = status.load_duration.as_millis() as u64,
        "country database loaded"
    );
    Ok((kernel, status))
}

/// Loads the database again and swaps the new programs in atomically; on any error the
/// running object stays as it was.
fn reload(args: &RunArgs, lan_prefixes: &[IpNet], kernel: &mut Kernel, status: &SharedStatus) {
    let result = load_kernel(args, lan_prefixes).and_then(|(mut fresh, geo)| {
        fresh.take_over(kernel)?;
        Ok((fresh, geo))
    });
    let mut status = status.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    match result {
        Ok((fresh, geo)) => {
            *kernel = fresh;
            status.geo = geo;
            status.reloads_ok += 1;
            info!("reloaded; programs swapped atomically, counters continue");
        }
        Err(err) => {
            status.reloads_failed += 1;
            error!("reload rejected, keeping the running database: {err:#}");
        }
    }
}

/// Modification times of the --geo files, to notice changes.
fn geo_mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
}

/// Runs the agent until SIGINT or SIGTERM; the programs are detached on return.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    preflight::check(&args.lan)?;
    crate::bpffs::ensure(&args.bpffs_dir)?;
    let lan_prefixes =
        netif::prefixes(&args.lan).context("reading the LAN interfaces' addresses")?;
    info!(lan_prefixes = ?lan_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(), "local networks include the LAN prefixes");
    let (mut kernel, geo) = load_kernel(&args, &lan_prefixes)?;
    let reader: Arc<CounterReader> = Arc::new(kernel.counter_reader()?);
    for lan in &args.lan {
        let attachment = kernel.attach(lan, args.tc_attach)?;
        info!(interface = %attachment.interface, mode = ?attachment.mode, "attached");
    }
    if args.lookup == Lookup::Lpm {
        warn!("lookups use the LPM tries (reference mode): slower than the default tables");
    }
    let status: SharedStatus = Arc::new(RwLock::new(AgentStatus {
        geo,
        interfaces: args.lan.clone(),
        ..AgentStatus::default()
    }));

    let metrics = Arc::new(Metrics::new(Arc::clone(&reader), Arc::clone(&status)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(url = %format!("http://{}/metrics", listener.local_addr()?), "serving metrics");
    let state = api::AppState { metrics, reader: Arc::clone(&reader), status: Arc::clone(&status) };
    let server = tokio::spawn(api::serve(listener, state));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let period = Duration::from_secs(args.interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let watch = Duration::from_secs(args.watch_interval.max(1));
    let mut watcher = tokio::time::interval_at(tokio::time::Instant::now() + watch, watch);
    let mut mtimes = geo_mtimes(&args.geo.geo);
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the country database");
                mtimes = geo_mtimes(&args.geo.geo);
                reload(&args, &lan_prefixes, &mut kernel, &status);
            }
            _ = watcher.tick(), if args.watch_interval > 0 && !args.geo.geo.is_empty() => {
                let now = geo_mtimes(&args.geo.geo);
                if now != mtimes {
                    info!("a --geo file changed: reloading");
                    mtimes = now;
                    reload(&args, &lan_prefixes, &mut kernel, &status);
                }
            }
            _ = sigusr1.recv() => print_table(&reader),
            _ = ticker.tick(), if args.interval > 0 => print_table(&reader),
        }
    }
    server.abort();
    kernel.detach_all();
    drop(kernel);
    info!("programs detached; counters stay pinned in {}", pin_dir(&args.bpffs_dir).display());
    Ok(())
}

fn print_table(reader: &CounterReader) {
    match reader.snapshot() {
        Ok(snapshot) => println!("{}", Report::from_snapshot(&snapshot).render_table()),
        Err(err) => warn!(%err, "reading counters failed"),
    }
}

/// `egress-tracer reset`: unpins this version's counter maps. A running agent keeps counting
/// into the maps it holds; the next start begins from zero.
pub fn reset(args: &crate::cli::ResetArgs) -> anyhow::Result<()> {
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

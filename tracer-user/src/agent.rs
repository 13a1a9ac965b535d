//! `egress-tracer run`: the long-running agent.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::{
    api,
    cli::RunArgs,
    geo_source,
    kernel::{GeoMapSizes, Ipv4Lookup, Kernel, LoadOptions},
    metrics::{Metrics, render_table},
    netif, preflight,
};

/// Runs the agent until SIGINT or SIGTERM; the programs are detached on return.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    preflight::check(&args.lan)?;
    let lan_prefixes =
        netif::prefixes(&args.lan).context("reading the LAN interfaces' addresses")?;
    let geo = geo_source::compile(&args.geo, &lan_prefixes)?;
    let tables = geo_source::KernelTables::build(&geo, args.ipv4_lookup)?;
    info!(
        source = %geo_source::describe(&geo),
        v4_blocks = tables.v4_table.len(),
        v6_prefixes = tables.v6_prefixes.len(),
        lan_prefixes = ?lan_prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "geo database compiled"
    );

    let options = LoadOptions {
        counter_entries: args.counter_entries,
        geo: GeoMapSizes {
            v4_blocks: tables.v4_table.len() as u32,
            v4_lpm_prefixes: tables.v4_prefixes.len() as u32,
            v6_prefixes: tables.v6_prefixes.len() as u32,
        },
    };
    let mut kernel = Kernel::load(&options)?;
    tables.fill(&mut kernel)?;
    kernel.set_ipv4_lookup(args.ipv4_lookup)?;
    let reader = Arc::new(kernel.counter_reader()?);
    let mut attached = Vec::new();
    for lan in &args.lan {
        let attachment = kernel.attach(lan)?;
        info!(interface = %attachment.interface, mode = ?attachment.mode, "attached");
        attached.push(attachment);
    }
    if args.ipv4_lookup == Ipv4Lookup::Lpm {
        warn!("IPv4 lookups use the LPM trie (reference mode): slower than the default table");
    }

    let metrics = Arc::new(Metrics::new(Arc::clone(&reader)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    info!(url = %format!("http://{}/metrics", listener.local_addr()?), "serving metrics");
    let server = tokio::spawn(api::serve(listener, Arc::clone(&metrics)));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let period = Duration::from_secs(args.interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        let print = tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sigusr1.recv() => true,
            _ = ticker.tick() => args.interval > 0,
        };
        if print {
            match reader.snapshot() {
                Ok(snapshot) => println!("{}", render_table(&snapshot)),
                Err(err) => warn!(%err, "reading counters failed"),
            }
        }
    }
    server.abort();
    drop(kernel);
    info!(interfaces = attached.len(), "detached; exiting");
    Ok(())
}

//! `egress-tracer lookup` and `egress-tracer geo-info`: answers from the compiled tables the
//! kernel would be given.

use std::net::IpAddr;

use serde::Serialize;
use tracer_common::CountryId;

use crate::{
    agent::database,
    base::text::country_label,
    config::Config,
    config::cli::{GeoArgs, LookupArgs},
    geo::regions::{Regions, continent_of, country_name},
};

/// One answer of `lookup`.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The address asked about.
    pub addr: IpAddr,
    /// ISO code; `unknown` when no range covers the address; `null` when it is local.
    pub country: Option<&'static str>,
    /// Continent code, if the country has one.
    pub continent: Option<&'static str>,
    /// Continent and named regions containing the country.
    pub regions: Vec<String>,
    /// Whether the address is local (not egress, never counted per country).
    pub local: bool,
}

/// The answer for one address.
pub fn answer(addr: IpAddr, id: CountryId, regions: &Regions) -> Answer {
    let local = id == CountryId::LOCAL;
    Answer {
        addr,
        country: (!local).then(|| country_label(id)),
        continent: continent_of(id),
        regions: if id.is_country() { regions.containing(id) } else { Vec::new() },
        local,
    }
}

/// Runs `lookup`.
pub fn run(args: &LookupArgs) -> anyhow::Result<()> {
    let regions = match &args.config {
        Some(path) => Config::load(path)?.regions()?,
        None => Regions::builtin(),
    };
    let geo = database::compile_with(&args.geo, &[], false)?;
    for addr in &args.addrs {
        let id = geo.lookup(*addr);
        let a = answer(*addr, id, &regions);
        if args.json {
            println!("{}", serde_json::to_string(&a)?);
        } else if a.local {
            println!("{addr}\tlocal (not egress)");
        } else {
            let name = country_name(id).unwrap_or("not in the database");
            println!(
                "{addr}\t{} ({name})\t{}",
                a.country.unwrap_or("unknown"),
                if a.regions.is_empty() { "-".to_owned() } else { a.regions.join(",") }
            );
        }
    }
    Ok(())
}

/// Runs `geo-info`.
pub fn geo_info(args: &GeoArgs) -> anyhow::Result<()> {
    let geo = database::compile_with(args, &[], false)?;
    let stats = geo.stats();
    println!("source:        {}", database::describe(&geo));
    if let Some(attribution) = &geo.meta().attribution {
        println!("attribution:   {attribution}");
    }
    println!("IPv4:          {} runs, {} CIDR prefixes", stats.v4_runs, stats.v4_prefixes);
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "IPv4 compact:  {} nodes, {} ranges, {:.2} MiB",
        stats.v4_nodes,
        stats.v4_ranges,
        mib(stats.v4_bytes)
    );
    println!("IPv6:          {} runs, {} CIDR prefixes", stats.v6_runs, stats.v6_prefixes);
    println!(
        "IPv6 compact:  {} nodes, {} ranges, {:.2} MiB",
        stats.v6_nodes,
        stats.v6_ranges,
        mib(stats.v6_bytes)
    );
    println!(
        "kernel maps:   about {:.2} MiB (root, nodes and ranges of both families)",
        mib(stats.v4_bytes + stats.v6_bytes)
    );
    Ok(())
}

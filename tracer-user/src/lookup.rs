//! `egress-tracer lookup` and `egress-tracer geo-info`: answers from the compiled tables the
//! kernel would be given.

use std::net::IpAddr;

use serde::Serialize;
use tracer_common::CountryId;

use crate::{
    cli::{GeoArgs, LookupArgs},
    geo_source,
    names::country_label,
};

/// One answer of `lookup`.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// The address asked about.
    pub addr: IpAddr,
    /// ISO code, `unknown`, or `null` when local.
    pub country: Option<&'static str>,
    /// Whether the address is local (not egress, never counted per country).
    pub local: bool,
}

/// Runs `lookup`.
pub fn run(args: &LookupArgs) -> anyhow::Result<()> {
    let geo = geo_source::compile(&args.geo, &[])?;
    for addr in &args.addrs {
        let id = geo.lookup(*addr);
        let local = id == CountryId::LOCAL;
        let answer = Answer { addr: *addr, country: (!local).then(|| country_label(id)), local };
        if args.json {
            println!("{}", serde_json::to_string(&answer)?);
        } else if local {
            println!("{addr}\tlocal");
        } else {
            println!("{addr}\t{}", country_label(id));
        }
    }
    Ok(())
}

/// Runs `geo-info`.
pub fn geo_info(args: &GeoArgs) -> anyhow::Result<()> {
    let geo = geo_source::compile(args, &[])?;
    let stats = geo.stats();
    println!("source:        {}", geo_source::describe(&geo));
    if let Some(attribution) = &geo.data().attribution {
        println!("attribution:   {attribution}");
    }
    println!("IPv4:          {} runs, {} CIDR prefixes", stats.v4_runs, stats.v4_prefixes);
    println!(
        "IPv4 table:    {} blocks, {:.1} MiB",
        stats.v4_table_blocks,
        stats.v4_table_bytes as f64 / (1024.0 * 1024.0)
    );
    println!("IPv6:          {} runs, {} CIDR prefixes", stats.v6_runs, stats.v6_prefixes);
    println!(
        "IPv6 table:    {} blocks, {:.1} MiB, + {} prefixes finer than /64 (LPM trie)",
        stats.v6_table_blocks,
        stats.v6_table_bytes as f64 / (1024.0 * 1024.0),
        stats.v6_fallback_prefixes
    );
    Ok(())
}

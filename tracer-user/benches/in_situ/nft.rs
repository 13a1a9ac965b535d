//! The nftables baseline: the same IPv4 country data as an interval map, and a counter per
//! (source MAC, country) in a dynamic set, at the netdev ingress hook of the LAN bridge: what
//! a user would otherwise build with nftables alone, at the place the agent's program runs.

use std::{fmt::Write as _, net::Ipv4Addr, time::Instant};

use anyhow::Context as _;
use tracer_lab::Lab;
use tracer_user::geo::CompiledGeo;

const TABLE: &str = "egress_tracer_bench";

/// The table without its base chain: the map and the counter set. Loading it once takes long
/// (hundreds of thousands of intervals); the rounds only add and delete the chain.
fn table(geo: &CompiledGeo) -> (String, usize) {
    let runs = geo.v4_runs();
    let mut out = String::with_capacity(runs.len() * 40);
    let _ = writeln!(out, "table netdev {TABLE} {{");
    out.push_str("  map geo4 {\n    type ipv4_addr : mark\n    flags interval\n    elements = {\n");
    let mut elements = 0;
    for run in &runs {
        if !run.id.is_country() {
            continue;
        }
        let (first, last) = (Ipv4Addr::from(run.first), Ipv4Addr::from(run.last));
        let _ = writeln!(out, "      {first}-{last} : {},", run.id.0);
        elements += 1;
    }
    out.push_str("    }\n  }\n");
    out.push_str(
        "  set pairs {\n    type ether_addr . mark\n    size 65536\n    flags dynamic\n    counter\n  }\n}\n",
    );
    (out, elements)
}

/// The nftables baseline loaded in the lab's gateway.
pub(crate) struct Nft<'a> {
    lab: &'a Lab,
    /// Intervals in the map.
    pub(crate) elements: usize,
    /// Seconds `nft -f` took to load the map.
    pub(crate) load_secs: f64,
}

impl<'a> Nft<'a> {
    /// Loads the table (not hooked in yet) into the gateway of `lab`.
    pub(crate) fn load(lab: &'a Lab, geo: &CompiledGeo) -> anyhow::Result<Self> {
        let (text, elements) = table(geo);
        let path = std::env::temp_dir().join(format!("et-bench-{}.nft", std::process::id()));
        std::fs::write(&path, text).context("writing the nftables ruleset")?;
        let started = Instant::now();
        let loaded = lab.exec(&lab.gateway(), &["nft", "-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
        loaded.context("nft -f (the interval map of the country data)")?;
        Ok(Self { lab, elements, load_secs: started.elapsed().as_secs_f64() })
    }

    /// Hooks the lookup and the counter into ingress of `interface`.
    pub(crate) fn hook(&self, interface: &str) -> anyhow::Result<()> {
        let chain = format!(
            "add chain netdev {TABLE} in {{ type filter hook ingress device \"{interface}\" priority 0; }}\n\
             add rule netdev {TABLE} in meta protocol ip meta mark set ip daddr map @geo4\n\
             add rule netdev {TABLE} in meta protocol ip add @pairs {{ ether saddr . meta mark }}\n"
        );
        let path = std::env::temp_dir().join(format!("et-bench-{}-chain.nft", std::process::id()));
        std::fs::write(&path, chain)?;
        let result =
            self.lab.exec(&self.lab.gateway(), &["nft", "-f", &path.display().to_string()]);
        let _ = std::fs::remove_file(&path);
        result.map(drop).context("hooking the nftables chain")
    }

    /// Takes the chain out again.
    pub(crate) fn unhook(&self) -> anyhow::Result<()> {
        self.lab
            .exec(&self.lab.gateway(), &["nft", "delete", "chain", "netdev", TABLE, "in"])
            .map(drop)
            .context("deleting the nftables chain")
    }

    /// Packets the counter set holds over all its elements (proof that the rules ran).
    pub(crate) fn counted(&self) -> anyhow::Result<u64> {
        let out = self
            .lab
            .exec(&self.lab.gateway(), &["nft", "list", "set", "netdev", TABLE, "pairs"])?;
        let mut total = 0;
        let mut words = out.split_whitespace();
        while let Some(word) = words.next() {
            if word == "packets" {
                total += words.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        Ok(total)
    }
}

impl Drop for Nft<'_> {
    fn drop(&mut self) {
        let _ = self.lab.exec(&self.lab.gateway(), &["nft", "delete", "table", "netdev", TABLE]);
    }
}

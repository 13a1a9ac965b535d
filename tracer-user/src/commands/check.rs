//! `egress-tracer check`: the preflight report ([`crate::kernel::preflight`]) for the interfaces
//! and bpffs directory the command line or the configuration names.

use std::path::PathBuf;

use crate::kernel::preflight::{Level, report};

/// `egress-tracer check`: prints the report; fails if any item failed.
pub fn check_command(args: &crate::config::cli::CheckArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Some(crate::config::Config::load(path)?),
        None => None,
    };
    let agent = config.as_ref().map(|c| &c.agent);
    let lan = if args.lan.is_empty() {
        agent.and_then(|a| a.lan.clone()).unwrap_or_default()
    } else {
        args.lan.clone()
    };
    let bpffs_dir = args
        .bpffs_dir
        .clone()
        .or_else(|| agent.and_then(|a| a.bpffs_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("/sys/fs/bpf/egress-tracer"));
    let report = report(&lan, Some(&bpffs_dir));
    print!("{}", report.render());
    if lan.is_empty() {
        println!("(no --lan given: interfaces not checked)");
    }
    let failed = report.items.iter().filter(|i| i.level == Level::Fail).count();
    anyhow::ensure!(failed == 0, "{failed} requirement(s) missing");
    Ok(())
}

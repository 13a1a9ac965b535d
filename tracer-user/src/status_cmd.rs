//! `egress-tracer status`: the per-device table of a running agent, from its API.

use anyhow::Context as _;

use crate::{cli::StatusArgs, report::Report};

/// Fetches `/api/v1/devices` and prints it as a table (or the JSON itself).
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/devices", args.url.trim_end_matches('/'));
    let body = ureq::get(&url)
        .call()
        .with_context(|| {
            format!("asking the agent at {url} (is `egress-tracer run` listening there? see --url)")
        })?
        .body_mut()
        .read_to_string()
        .context("reading the agent's answer")?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let report: Report =
        serde_json::from_str(&body).context("the agent's answer is not a device report")?;
    print!("{}", report.render_table());
    Ok(())
}

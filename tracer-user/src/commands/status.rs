//! `egress-tracer status`: the per-device table of a running agent, from its API.

use anyhow::Context as _;

use crate::{config::cli::StatusArgs, http::client::ApiClient, state::report::Report};

/// Fetches `/api/v1/devices` (or, with `--device`, that device's remotes) and prints it as a
/// table (or the JSON itself).
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let path = match &args.device {
        Some(mac) => {
            let parsed = crate::base::text::parse_mac(mac).with_context(|| {
                format!("--device {mac}: not a MAC address (aa:bb:cc:dd:ee:ff)")
            })?;
            let limit = args.limit.unwrap_or(crate::remotes::DEFAULT_LIMIT);
            format!(
                "/api/v1/devices/{}/remotes?limit={limit}",
                crate::base::text::format_mac(parsed)
            )
        }
        None => format!("/api/v1/devices?limit={}", crate::http::routes::MAX_DEVICES_PAGE),
    };
    let body = ApiClient::new(&args.api)?.get(&path)?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    if args.device.is_some() {
        let remotes: crate::remotes::DeviceRemotes =
            serde_json::from_str(&body).context("the agent's answer is not a remotes list")?;
        print!("{}", crate::remotes::render_table(&remotes));
        return Ok(());
    }
    let report: Report =
        serde_json::from_str(&body).context("the agent's answer is not a device report")?;
    print!("{}", report.render_table());
    if report.total_devices > report.devices.len() {
        println!(
            "({} of {} devices shown, most traffic first: see the API's ?offset=)",
            report.devices.len(),
            report.total_devices
        );
    }
    Ok(())
}

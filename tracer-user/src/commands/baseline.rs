//! `egress-tracer baseline`: what learning mode learned, per device, from a running agent;
//! `approve` new countries; `propose` a policy from the baseline.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::{
    config::cli::{BaselineAction, BaselineArgs},
    http::client::ApiClient,
    learning::BaselineView,
};

/// Runs `egress-tracer baseline`.
pub fn run(args: &BaselineArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.api)?;
    match &args.action {
        Some(BaselineAction::Approve { mac, countries }) => {
            let parsed = crate::base::text::parse_mac(mac)
                .with_context(|| format!("{mac}: not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
            let body = serde_json::json!({
                "mac": crate::base::text::format_mac(parsed),
                "countries": countries,
            });
            let answer = client.post_json("/api/v1/baseline/approve", &body)?;
            if args.json {
                println!("{answer}");
            } else {
                println!(
                    "approved {} for {}",
                    countries.join(", "),
                    crate::base::text::format_mac(parsed)
                );
            }
            Ok(())
        }
        Some(BaselineAction::Propose) => {
            let view = fetch(&client)?;
            print!("{}", propose(&view));
            Ok(())
        }
        None => {
            let body = client.get("/api/v1/baseline")?;
            if args.json {
                println!("{body}");
                return Ok(());
            }
            let view: BaselineView =
                serde_json::from_str(&body).context("the agent's answer is not a baseline")?;
            print!("{}", render(&view));
            Ok(())
        }
    }
}

fn fetch(client: &ApiClient) -> anyhow::Result<BaselineView> {
    serde_json::from_str(&client.get("/api/v1/baseline")?)
        .context("the agent's answer is not a baseline")
}

/// The table `egress-tracer baseline` prints.
pub fn render(view: &BaselineView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "learning period {}s; MACs first seen after {} are new devices",
        view.period_secs, view.network_learning_until
    );
    for d in &view.devices {
        let name = d.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
        let state = if d.learning {
            format!("learning until {}", d.learning_until)
        } else {
            format!("learned {} .. {}", d.learning_since, d.learning_until)
        };
        let _ = writeln!(out, "\n{}{name}: {state}", d.mac);
        let _ = writeln!(out, "  {:<8} {:<26} {:>12}", "COUNTRY", "FIRST SEEN", "BYTES");
        for c in &d.countries {
            let _ = writeln!(out, "  {:<8} {:<26} {:>12}", c.country, c.first_seen, c.bytes);
        }
        if !d.continents.is_empty() {
            let _ = writeln!(out, "  continents: {}", d.continents.join(", "));
        }
        for n in &d.new {
            let _ = writeln!(
                out,
                "  NEW {} since {} (approve: egress-tracer baseline approve {} {})",
                n.country, n.since, d.mac, n.country
            );
        }
        if !d.approved.is_empty() {
            let _ = writeln!(out, "  approved: {}", d.approved.join(", "));
        }
    }
    out
}

/// A `[[device]]` per device allowing its baseline and approvals: TOML for the config file.
pub fn propose(view: &BaselineView) -> String {
    let mut out =
        String::from("# Proposed by `egress-tracer baseline propose` from the learned baseline.\n");
    for d in &view.devices {
        let mut allow: Vec<&str> = d
            .countries
            .iter()
            .map(|c| c.country.as_str())
            .chain(d.approved.iter().map(String::as_str))
            .filter(|c| *c != "unknown")
            .collect();
        allow.sort_unstable();
        allow.dedup();
        let _ = writeln!(out, "\n[[device]]\nmac = \"{}\"", d.mac);
        if let Some(name) = &d.name {
            let _ = writeln!(out, "name = {}", toml_string(name));
        }
        let list: Vec<String> = allow.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = writeln!(out, "allow = [{}]", list.join(", "));
    }
    out
}

/// A TOML basic string (names are escaped already; quotes and backslashes escaped again here).
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

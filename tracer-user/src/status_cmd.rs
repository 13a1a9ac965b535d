//! `egress-tracer status`: the per-device table of a running agent, from its API.

use anyhow::Context as _;
use base64::Engine as _;

use crate::{cli::StatusArgs, report::Report};

/// Fetches `/api/v1/devices` (or, with `--device`, that device's remotes) and prints it as a
/// table (or the JSON itself).
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/');
    let url = match &args.device {
        Some(mac) => {
            let parsed = crate::config::parse_mac(mac).with_context(|| {
                format!("--device {mac}: not a MAC address (aa:bb:cc:dd:ee:ff)")
            })?;
            let limit = args.limit.unwrap_or(crate::remotes::DEFAULT_LIMIT);
            format!(
                "{base}/api/v1/devices/{}/remotes?limit={limit}",
                crate::names::format_mac(parsed)
            )
        }
        None => format!("{base}/api/v1/devices"),
    };
    let agent = http_agent(args)?;
    let mut request = agent.get(&url);
    if let Some(value) = authorization(args)? {
        request = request.header("Authorization", value);
    }
    let body = request
        .call()
        .map_err(|err| match err {
            ureq::Error::StatusCode(401) => anyhow::anyhow!(
                "the agent at {url} wants credentials, or refused the ones given \
                 (see --token-file, --user and --password-file)"
            ),
            err => anyhow::Error::new(err).context(format!(
                "asking the agent at {url} (is `egress-tracer run` listening there? see --url)"
            )),
        })?
        .body_mut()
        .read_to_string()
        .context("reading the agent's answer")?;
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
    Ok(())
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The `Authorization` header value from `--token-file` or `--user`/`--password-file`.
fn authorization(args: &StatusArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let token =
            crate::http_auth::parse_token(&path.display().to_string(), &read_secret(path)?)?;
        return Ok(Some(format!("Bearer {token}")));
    }
    if let (Some(user), Some(path)) = (&args.user, &args.password_file) {
        let text = read_secret(path)?;
        let password = text.lines().next().unwrap_or("");
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        return Ok(Some(format!("Basic {encoded}")));
    }
    Ok(None)
}

/// An HTTP agent trusting `--cacert` (if given) for https URLs.
fn http_agent(args: &StatusArgs) -> anyhow::Result<ureq::Agent> {
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut config = ureq::Agent::config_builder();
    if let Some(path) = &args.cacert {
        #[cfg(feature = "tls")]
        {
            use ureq::tls::{PemItem, RootCerts, TlsConfig};
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let PemItem::Certificate(cert) =
                    item.with_context(|| format!("{}: not PEM", path.display()))?
                {
                    certs.push(cert);
                }
            }
            anyhow::ensure!(!certs.is_empty(), "{}: no CERTIFICATE in the file", path.display());
            config = config.tls_config(
                TlsConfig::builder().root_certs(RootCerts::new_with_certs(&certs)).build(),
            );
        }
        #[cfg(not(feature = "tls"))]
        anyhow::bail!(
            "--cacert {}: this egress-tracer was built without TLS (cargo feature `tls`)",
            path.display()
        );
    }
    Ok(config.build().into())
}

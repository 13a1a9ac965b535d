//! Talking to a running agent's API from the command line (`status`, `baseline`): the URL,
//! credentials (`--token-file` or `--user`/`--password-file`) and a CA to trust.

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;

/// How the command line reaches a running agent's API.
#[derive(Debug, Args)]
pub struct ApiClientArgs {
    /// Base URL of the running agent.
    #[arg(long, default_value = "http://127.0.0.1:9977", global = true)]
    pub url: String,
    /// File holding the agent's bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "user", global = true)]
    pub token_file: Option<PathBuf>,
    /// User name for basic auth (with --password-file).
    #[arg(long, requires = "password_file", global = true)]
    pub user: Option<String>,
    /// File holding the basic-auth password (one line).
    #[arg(long, value_name = "FILE", requires = "user", global = true)]
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an https:// --url (e.g. the agent's self-signed one).
    #[arg(long, value_name = "FILE", global = true)]
    pub cacert: Option<PathBuf>,
}

/// A client of one agent's API.
pub struct ApiClient {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl ApiClient {
    /// From the command line's connection options.
    pub fn new(args: &ApiClientArgs) -> anyhow::Result<Self> {
        Ok(Self {
            base: args.url.trim_end_matches('/').to_owned(),
            agent: http_agent(args)?,
            authorization: authorization(args)?,
        })
    }

    fn explain(&self, url: &str, err: ureq::Error) -> anyhow::Error {
        match err {
            ureq::Error::StatusCode(401) => anyhow::anyhow!(
                "the agent at {url} wants credentials, or refused the ones given \
                 (see --token-file, --user and --password-file)"
            ),
            ureq::Error::StatusCode(code) => anyhow::anyhow!("the agent at {url} answered {code}"),
            err => anyhow::Error::new(err).context(format!(
                "asking the agent at {url} (is `egress-tracer run` listening there? see --url)"
            )),
        }
    }

    /// `GET path`: the body.
    pub fn get(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        request
            .call()
            .map_err(|e| self.explain(&url, e))?
            .body_mut()
            .read_to_string()
            .context("reading the agent's answer")
    }

    /// `POST path` with a JSON body: the answer's body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.post(&url).header("content-type", "application/json");
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        request
            .send(body.to_string().as_bytes())
            .map_err(|e| self.explain(&url, e))?
            .body_mut()
            .read_to_string()
            .context("reading the agent's answer")
    }
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The `Authorization` header value from `--token-file` or `--user`/`--password-file`.
fn authorization(args: &ApiClientArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let token =
            crate::http::auth::parse_token(&path.display().to_string(), &read_secret(path)?)?;
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
fn http_agent(args: &ApiClientArgs) -> anyhow::Result<ureq::Agent> {
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

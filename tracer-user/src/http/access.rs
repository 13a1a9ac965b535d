//! Who may use the HTTP API: the settings (TLS files, credential files, the opt-in to serve a
//! non-loopback address unauthenticated), the rule that binds them, and their loaded form.
//!
//! The rule: the API listens on 127.0.0.1 by default. A `--listen` address that is not
//! loopback is refused unless the API requires credentials (`--auth-token-file` or
//! `--basic-auth-file`) or the operator opts in with `--insecure-listen`. Credentials without
//! TLS on a non-loopback address are allowed, with a warning (they travel in clear).

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use crate::http::auth::HttpAuth;

/// The API's security settings, resolved from the command line over `[agent]`. Files are read
/// at start-up; changing them (or these settings) takes a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiAccess {
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// File holding the bearer token.
    pub auth_token_file: Option<PathBuf>,
    /// htpasswd file of bcrypt hashes.
    pub basic_auth_file: Option<PathBuf>,
    /// Serve a non-loopback address without credentials.
    pub insecure_listen: bool,
}

/// Whether `addr` is loopback (IPv4-mapped IPv6 included).
pub fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

impl ApiAccess {
    /// Checks the settings against the listen address (the rule above) and reads the files;
    /// returns them unchanged when both pass.
    pub fn checked(self, listen: SocketAddr) -> anyhow::Result<ApiAccess> {
        if !is_loopback(listen) && !self.authenticated() && !self.insecure_listen {
            anyhow::bail!(
                "refusing to serve the API on {listen}: it is not a loopback address and the API \
                 has no authentication, so anyone who can reach it reads every device's traffic. \
                 Give --auth-token-file FILE or --basic-auth-file FILE (best with --tls-cert and \
                 --tls-key), or --insecure-listen (insecure_listen = true in [agent]) to serve \
                 it without authentication anyway"
            );
        }
        self.load()?;
        Ok(self)
    }

    /// Whether requests need credentials.
    pub fn authenticated(&self) -> bool {
        self.auth_token_file.is_some() || self.basic_auth_file.is_some()
    }

    /// Reads the files: credentials and the TLS configuration.
    pub fn load(&self) -> anyhow::Result<Security> {
        let auth = HttpAuth::load(self.auth_token_file.as_ref(), self.basic_auth_file.as_ref())?;
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some((cert, key)) => Some(crate::http::tls::server_config(cert, key)?),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        anyhow::ensure!(
            self.tls.is_none(),
            "--tls-cert/--tls-key: this egress-tracer was built without TLS (cargo feature `tls`)"
        );
        let credential_files = [&self.auth_token_file, &self.basic_auth_file];
        Ok(Security {
            credential_files: credential_files.into_iter().flatten().cloned().collect(),
            auth: auth.map(Arc::new),
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

/// The loaded form of [`ApiAccess`]: what [`crate::http::routes::serve`] enforces.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// Credentials every request must carry; `None`: open.
    pub auth: Option<Arc<HttpAuth>>,
    /// Serve HTTPS with this configuration; `None`: plain HTTP.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
    credential_files: Vec<PathBuf>,
}

impl Security {
    /// No TLS, no authentication.
    pub fn open() -> Security {
        Security::default()
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Logs how the API is protected, warning about what is exposed on `addr`.
    pub fn log(&self, addr: SocketAddr) {
        let scheme = if self.is_tls() { "https" } else { "http" };
        let auth = self.auth.as_ref().map_or("none", |a| a.describe());
        tracing::info!(url = %format!("{scheme}://{addr}/"), authentication = auth, "serving metrics and the API");
        self.credential_files.iter().for_each(|f| crate::http::auth::warn_if_world_readable(f));
        if is_loopback(addr) {
            return;
        }
        if self.auth.is_none() {
            tracing::warn!(%addr, "the API is served without authentication on a non-loopback address (--insecure-listen)");
        } else if !self.is_tls() {
            tracing::warn!(%addr, "credentials travel in clear: give --tls-cert and --tls-key");
        }
    }
}

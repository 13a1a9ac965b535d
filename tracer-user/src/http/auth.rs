//! Authentication of API requests: a bearer token, or basic auth against an htpasswd file of
//! bcrypt hashes (`htpasswd -nbB user password`). Both are read from files at start-up, never
//! from the command line; secrets never reach the log.
//!
//! Every route is protected, `/healthz` too (it names the interfaces and the database): a
//! health probe sends the same credentials as a scrape. Comparisons run in constant time: the
//! token as SHA-256 digests (so not even its length shows), passwords by bcrypt, and a user name
//! that is not in the file still costs one bcrypt verification, so timing does not tell which
//! users exist. A password that passed bcrypt is remembered as its SHA-256 digest, so a scraper
//! sending the same credentials every few seconds costs one bcrypt verification, not one per
//! scrape; verifications run on the blocking pool, at most two at a time.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use crate::base::sync::Locked;
use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "egress-tracer";

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file cannot be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The token file is empty or holds something that cannot be a bearer token.
    #[error("{path}: {reason}")]
    Token {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of the htpasswd file is malformed.
    #[error("{path}:{line}: {reason}")]
    Htpasswd {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the hash itself).
        reason: String,
    },
    /// The htpasswd file names no user.
    #[error("{path}: no `user:hash` lines")]
    NoUsers {
        /// The file.
        path: String,
    },
}

fn read(path: &Path) -> Result<String, AuthError> {
    std::fs::read_to_string(path)
        .map_err(|error| AuthError::Read { path: path.display().to_string(), error })
}

/// Warns if a credentials file can be read by every user.
pub fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(file = %path.display(), "credentials file is readable by every user (chmod 600 it)");
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Parses a bearer token file: the content, trimmed; it must be non-empty printable ASCII
/// without spaces (what an `Authorization: Bearer` header can carry).
pub fn parse_token(path: &str, text: &str) -> Result<String, AuthError> {
    let token = text.trim();
    let bad = |reason| AuthError::Token { path: path.to_owned(), reason };
    if token.is_empty() {
        return Err(bad("the token file is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "the token must be one word of printable ASCII (no spaces or control characters)",
        ));
    }
    Ok(token.to_owned())
}

/// Users and their bcrypt hashes from an htpasswd file.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// The most expensive hash: what an unknown user name is verified against.
    decoy: String,
}

impl Htpasswd {
    /// Parses `user:hash` lines (blank lines and `#` comments are skipped); every hash must be
    /// bcrypt (`$2y$`, `$2b$`, `$2a$`). `path` names the file in errors.
    pub fn parse(path: &str, text: &str) -> Result<Htpasswd, AuthError> {
        let mut users = HashMap::new();
        let mut decoy: Option<(u32, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let err =
                |reason: String| AuthError::Htpasswd { path: path.to_owned(), line: i + 1, reason };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(err(
                    "expected `user:bcrypt-hash` (create it with `htpasswd -nbB USER PASSWORD`)"
                        .into(),
                ));
            };
            if user.is_empty() || user.chars().any(char::is_control) {
                return Err(err("empty or invalid user name".into()));
            }
            let cost = match hash.parse::<bcrypt::HashParts>() {
                Ok(parts) if (4..=31).contains(&parts.get_cost()) => parts.get_cost(),
                Ok(_) => return Err(err(format!("the hash of user {user:?} has an invalid cost"))),
                Err(_) => {
                    return Err(err(format!(
                        "the hash of user {user:?} is not bcrypt ($2y$/$2b$/$2a$); \
                         create it with `htpasswd -nbB USER PASSWORD`"
                    )));
                }
            };
            if users.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(err(format!("user {user:?} is listed twice")));
            }
            if decoy.as_ref().is_none_or(|(c, _)| cost > *c) {
                decoy = Some((cost, hash.to_owned()));
            }
        }
        let Some((_, decoy)) = decoy else {
            return Err(AuthError::NoUsers { path: path.to_owned() });
        };
        Ok(Htpasswd { users, decoy })
    }

    /// Whether `password` is `user`'s (slow: bcrypt). An unknown user costs the same.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(password, &self.decoy);
                false
            }
        }
    }
}

/// The credentials the API accepts; either kind is enough when both are configured.
#[derive(Debug)]
pub struct HttpAuth {
    token: Option<[u8; 32]>,
    basic: Option<Arc<Htpasswd>>,
    /// SHA-256 of the last password that passed bcrypt, per user.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    bcrypt_slots: Semaphore,
}

impl HttpAuth {
    /// Reads the token file and/or the htpasswd file; `None` if neither is given.
    pub fn load(
        token_file: Option<&PathBuf>,
        basic_auth_file: Option<&PathBuf>,
    ) -> Result<Option<HttpAuth>, AuthError> {
        let token =
            token_file.map(|p| parse_token(&p.display().to_string(), &read(p)?)).transpose()?;
        let basic = basic_auth_file
            .map(|p| Htpasswd::parse(&p.display().to_string(), &read(p)?))
            .transpose()?;
        Ok(Self::new(token.as_deref(), basic))
    }

    /// From a token and/or users; `None` if neither.
    pub fn new(token: Option<&str>, basic: Option<Htpasswd>) -> Option<HttpAuth> {
        (token.is_some() || basic.is_some()).then(|| HttpAuth {
            token: token.map(|t| sha256(t.as_bytes())),
            basic: basic.map(Arc::new),
            verified: Mutex::new(HashMap::new()),
            bcrypt_slots: Semaphore::new(2),
        })
    }

    /// What a log line may say about the configuration (no secrets).
    pub fn describe(&self) -> &'static str {
        match (self.token.is_some(), self.basic.is_some()) {
            (true, true) => "bearer token or basic auth",
            (true, false) => "bearer token",
            _ => "basic auth",
        }
    }

    /// Whether an `Authorization` header value is acceptable.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(value) = authorization.and_then(|v| v.to_str().ok()) else { return false };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.token.is_some_and(|t| bool::from(t.ct_eq(&sha256(rest.as_bytes()))));
        }
        if !scheme.eq_ignore_ascii_case("basic") || self.basic.is_none() {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else { return false };
        let Ok(user) = std::str::from_utf8(&decoded[..colon]) else { return false };
        let password = &decoded[colon + 1..];
        self.check_basic(user, password).await
    }

    async fn check_basic(&self, user: &str, password: &[u8]) -> bool {
        let digest = sha256(password);
        let cached = self.verified.locked().get(user).copied();
        if cached.is_some_and(|c| bool::from(c.ct_eq(&digest))) {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else { return false };
        let Some(basic) = self.basic.clone() else { return false };
        let (name, secret) = (user.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || basic.verify(&name, &secret))
            .await
            .unwrap_or(false);
        if ok {
            self.verified.locked().insert(user.to_owned(), digest);
        }
        ok
    }

    fn challenge(&self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
        let headers = response.headers_mut();
        if self.token.is_some() {
            let v = format!("Bearer realm=\"{REALM}\"");
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ASCII"));
        }
        if self.basic.is_some() {
            let v = format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"");
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ASCII"));
        }
        response
    }
}

/// The middleware: a request without acceptable credentials gets 401 and a challenge.
pub async fn require(State(auth): State<Arc<HttpAuth>>, request: Request, next: Next) -> Response {
    if auth.check(request.headers().get(header::AUTHORIZATION)).await {
        next.run(request).await
    } else {
        tracing::debug!(path = %request.uri().path(), "request without valid credentials: 401");
        auth.challenge()
    }
}

#[cfg(test)]
mod tests;

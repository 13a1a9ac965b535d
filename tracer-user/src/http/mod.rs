//! The HTTP server: the routes (page, `/metrics`, `/api/v1/*`, `/healthz`), who may call them
//! (TLS, bearer token, basic auth), the connection bounds, and the client `status` uses.

pub mod access;
pub mod auth;
pub mod client;
pub mod routes;
pub mod serve;
#[cfg(feature = "tls")]
pub mod tls;

//! egress-tracer: per-device egress traffic by destination country.
//!
//! The agent behind the `egress-tracer` binary, one module per concern: [`cli`] (arguments),
//! [`geo`] (country databases, prefix merging, the compiled lookup tables), [`kernel`] (load,
//! fill, attach, read back), [`metrics`] and [`api`] (Prometheus and HTTP), [`agent`] (the
//! `run` loop), [`lookup`] (`lookup` and `geo-info`).

pub mod agent;
pub mod alert_metrics;
pub mod alerts;
pub mod api;
pub mod api_client;
pub mod asn;
pub mod baseline_cmd;
pub mod bpffs;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod devices;
pub mod domains;
pub mod geo;
pub mod geo_source;
pub mod history;
pub mod http_access;
pub mod http_auth;
pub mod http_serve;
#[cfg(feature = "tls")]
pub mod http_tls;
pub mod input;
pub mod ipfix;
pub mod kernel;
pub mod learning;
pub mod lookup;
pub mod metrics;
pub mod metrics_cap;
pub mod names;
pub mod netif;
pub mod policy;
pub mod preflight;
pub mod process_metrics;
pub mod regions;
pub mod remotes;
pub mod report;
pub mod service;
pub mod state_file;
pub mod status;
pub mod status_cmd;

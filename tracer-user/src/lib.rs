//! egress-tracer: per-device egress traffic by destination country.
//!
//! The agent behind the `egress-tracer` binary, one module per concern: [`cli`] (arguments),
//! [`geo`] (country databases, prefix merging, the compiled lookup tables), [`kernel`] (load,
//! fill, attach, read back), [`metrics`] (Prometheus exposition and its caps), [`http`] (the
//! routes, access control, connection bounds, the `status` client), [`agent`] (the `run`
//! loop), [`commands`] (`check`, `status`, `lookup`, `geo-info`, `baseline`).

pub mod agent;
pub mod alerts;
pub mod asn;
pub mod atomic;
pub mod bpffs;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod context;
pub mod devices;
pub mod domains;
pub mod geo;
pub mod geo_source;
pub mod history;
pub mod http;
pub mod input;
pub mod ipfix;
pub mod kernel;
pub mod learning;
pub mod metrics;
pub mod names;
pub mod netif;
pub mod policy;
pub mod regions;
pub mod remotes;
pub mod report;
pub mod service;
pub mod state_file;
pub mod status;

//! egress-tracer: per-device egress traffic by destination country.
//!
//! The agent behind the `egress-tracer` binary. The modules, from the bottom layer up (a module
//! only imports the ones before it):
//!
//! - [`base`]: leaf helpers: the clock, bounded input files, atomic state files, how MACs,
//!   countries and untrusted text are spelled;
//! - [`geo`]: what an address is: country databases, the compiled lookup structures, region
//!   names, AS organisations;
//! - [`policy`]: approved regions per device, compiled for the kernel;
//! - [`kernel`]: load, fill, attach, read back the eBPF programs and maps;
//! - [`devices`]: who a MAC is (config, DHCP leases, neighbours, vendors);
//! - [`remotes`]: the per (device, remote address) table, the names learned from DNS and TLS,
//!   flow export;
//! - [`alerts`], [`learning`], [`history`]: what is not approved, what is new, what was;
//! - [`state`]: what the run loop shares with the consumers, and the per-device report;
//! - [`metrics`], [`http`]: Prometheus exposition; the API, the page, access control;
//! - [`config`]: the command line and the TOML file, resolved into settings;
//! - [`agent`]: the `run` loop; [`commands`]: the other subcommands.

pub mod agent;
pub mod alerts;
pub mod base;
pub mod commands;
pub mod config;
pub mod devices;
pub mod geo;
pub mod history;
pub mod http;
pub mod kernel;
pub mod learning;
pub mod metrics;
pub mod policy;
pub mod remotes;
pub mod state;

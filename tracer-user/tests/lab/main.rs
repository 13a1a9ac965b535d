//! The tests that load eBPF programs or build a network-namespace lab, in one binary that
//! `cargo test` builds: the privileged tests are `#[ignore]`d there and `cargo xtask test` runs
//! them as root (`cargo test -p tracer-user --test lab -- --ignored`), with the few
//! unprivileged tests that share their helpers. One module per concern; `support` holds the
//! lab agent, the frames, the HTTP and DevTools clients.

mod support;

mod api;
mod api_security;
mod check;
mod classifier;
mod deploy_deb;
mod geo_proof;
mod lab_counts;
mod lab_devices;
mod lab_history;
mod lab_hostile;
mod lab_http;
mod lab_learning;
mod lab_metrics;
mod lab_names;
mod lab_policy;
mod lab_remotes;
mod lab_service;
mod lab_soak;
mod prometheus;
mod web_page;

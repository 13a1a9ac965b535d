//! The tests that need no privileges (no eBPF, no namespaces), in one binary: parsing and
//! compiling databases, the CLI, the deployment files. `cargo test` runs them all.

mod cli;
mod deploy_openwrt;
mod deploy_prometheus;
mod deploy_systemd;
mod geo_compact;
mod geo_compiled;
mod geo_csv;
mod geo_hostile;
mod geo_mmdb;
mod geo_ranges;
mod geo_real_data;
mod geo_table;
mod ipfix_nfdump;
mod layers;

/// The agent binary cargo built for these tests.
fn agent_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_egress-tracer"))
}

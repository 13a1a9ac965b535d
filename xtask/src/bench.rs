//! `cargo xtask bench`: the classifier benchmark (needs root).

use crate::run::{cmd, is_root, status};

/// Runs the benchmarks.
pub fn run() -> anyhow::Result<()> {
    crate::setup::ensure_path();
    anyhow::ensure!(is_root(), "the benchmarks load eBPF programs: run them as root");
    status(cmd("cargo", &["bench", "-p", "tracer-user", "--bench", "classifier"]))
}

//! `cargo xtask bench`: the classifier benchmark (needs root).

use crate::{
    run::{is_root, status},
    setup::Ready,
};

/// Runs the benchmarks.
pub fn run(ready: &Ready) -> anyhow::Result<()> {
    anyhow::ensure!(is_root(), "the benchmarks load eBPF programs: run them as root");
    status(ready.cargo(&["bench", "-p", "tracer-user", "--bench", "classifier"]))
}

//! `cargo xtask bench`: the classifier benchmark (needs root).

use crate::{
    run::{is_root, status},
    setup::Ready,
};

/// Runs the benchmarks.
pub(crate) fn run(ready: &Ready) -> anyhow::Result<()> {
    anyhow::ensure!(is_root(), "the benchmarks load eBPF programs: run them as root");
    status(ready.cargo(&["bench", "-p", "tracer-user", "--bench", "classifier"]))?;
    // The soak: 10 minutes of mixed traffic, MAC churn, scrapes, API calls and reloads; it
    // prints the RSS slope, open files and BPF objects, and asserts exact counts.
    let mut soak = ready.cargo(&[
        "test",
        "-p",
        "tracer-user",
        "--test",
        "lab",
        "--",
        "--ignored",
        "--nocapture",
        "lab_soak::",
    ]);
    soak.env("EGRESS_TRACER_SOAK_SECS", SOAK_SECS.to_string());
    status(soak)
}

/// Length of the benchmark's soak (the test suite runs a 45 s one).
const SOAK_SECS: u64 = 600;

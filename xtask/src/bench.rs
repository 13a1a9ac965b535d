//! `cargo xtask bench`: the benchmarks (needs root), their tables printed and their numbers
//! merged into `target/bench.json`.
//!
//! `EGRESS_TRACER_BENCH` picks parts (comma-separated; all when unset): `test-run` (the
//! classifier with BPF_PROG_TEST_RUN, load time and map memory, and the scrape), `scrape` (only
//! the scrape), `in-situ` (live lab traffic with kernel BPF stats, the flood beside nftables,
//! the static agent's start-up and memory), `soak` (10 minutes of mixed traffic and reloads).

use std::path::Path;

use anyhow::Context as _;

use crate::{
    run::{cmd, is_root, status, target_dir},
    setup::Ready,
};

/// Length of the benchmark's soak (the test suite runs a 45 s one).
const SOAK_SECS: u64 = 600;

/// Runs the benchmarks.
pub(crate) fn run(ready: &Ready) -> anyhow::Result<()> {
    anyhow::ensure!(is_root(), "the benchmarks load eBPF programs: run them as root");
    let chosen = std::env::var("EGRESS_TRACER_BENCH").unwrap_or_default();
    let parts: Vec<&str> = chosen.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    let wants = |part: &str| parts.is_empty() || parts.contains(&part);
    for part in &parts {
        anyhow::ensure!(
            ["test-run", "scrape", "in-situ", "soak"].contains(part),
            "EGRESS_TRACER_BENCH: unknown part {part:?} (test-run, scrape, in-situ, soak)"
        );
    }
    let target = target_dir();
    let classifier_json = target.join("bench-classifier.json");
    let in_situ_json = target.join("bench-in-situ.json");
    for stale in [&classifier_json, &in_situ_json] {
        let _ = std::fs::remove_file(stale);
    }
    if wants("test-run") || wants("scrape") {
        let mut bench = ready.cargo(&["bench", "-p", "tracer-user", "--bench", "classifier"]);
        bench.env("EGRESS_TRACER_BENCH_JSON", &classifier_json);
        if !wants("test-run") {
            bench.env("EGRESS_TRACER_BENCH", "scrape");
        } else {
            bench.env_remove("EGRESS_TRACER_BENCH");
        }
        status(bench)?;
    }
    if wants("in-situ") {
        // The agent as routers run it: the static musl build.
        let agent = crate::dist::build(ready, crate::dist::HOST_MUSL)?;
        let mut bench = ready.cargo(&["bench", "-p", "tracer-user", "--bench", "in_situ"]);
        bench.env("EGRESS_TRACER_BENCH_JSON", &in_situ_json).env("EGRESS_TRACER_BIN", &agent);
        status(bench)?;
    }
    write_report(&target.join("bench.json"), &classifier_json, &in_situ_json)?;
    if wants("soak") {
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
        status(soak)?;
    }
    Ok(())
}

/// One JSON document for the run: where and what was measured, and each part's numbers.
fn write_report(out: &Path, classifier: &Path, in_situ: &Path) -> anyhow::Result<()> {
    let read = |path: &Path| -> anyhow::Result<serde_json::Value> {
        if !path.exists() {
            return Ok(serde_json::Value::Null);
        }
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    };
    let words = |program: &str, args: &[&str]| -> String {
        cmd(program, args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let report = serde_json::json!({
        "commit": words("git", &["rev-parse", "HEAD"]),
        "dirty": !words("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "kernel": words("uname", &["-r"]),
        "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "cpu_model": std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        }),
        "date": words("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "classifier": read(classifier)?,
        "in_situ": read(in_situ)?,
    });
    std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("bench: {}", out.display());
    Ok(())
}

//! `cargo xtask test`: everything CI runs, with a summary at the end.

use std::time::{Duration, Instant};

use crate::run::{cmd, is_root, status};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip fmt and clippy.
    #[arg(long)]
    skip_lint: bool,
    /// Only run privileged tests whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(&'static str),
}

struct Step {
    name: &'static str,
    outcome: Outcome,
    took: Duration,
}

/// Runs the steps in order, stopping at the first failure, and prints the summary.
pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut failed = false;
    let mut go = |name: &'static str, f: &dyn Fn() -> anyhow::Result<Outcome>| {
        if failed {
            return;
        }
        println!("\n=== {name}");
        let t = Instant::now();
        let outcome = f().unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")));
        failed |= matches!(outcome, Outcome::Fail(_));
        steps.push(Step { name, outcome, took: t.elapsed() });
    };
    go("setup", &|| crate::setup::run().map(|()| Outcome::Pass));
    // SAFETY: set before any thread is spawned; read by the tests cargo runs.
    unsafe {
        std::env::set_var("EGRESS_TRACER_REFERENCE_MMDB", crate::setup::reference_mmdb_path())
    };
    if args.skip_lint {
        go("fmt", &|| Ok(Outcome::Skip("--skip-lint")));
    } else {
        go("fmt", &|| {
            status(cmd("cargo", &["fmt", "--all", "--", "--check"])).map(|()| Outcome::Pass)
        });
        go("clippy (user crates)", &|| {
            status(cmd(
                "cargo",
                &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
            ))
            .map(|()| Outcome::Pass)
        });
        go("clippy (eBPF crate)", &|| {
            let mut c = cmd(
                "cargo",
                &[
                    "+nightly",
                    "clippy",
                    "-p",
                    "tracer-ebpf",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--target-dir",
                    "target/ebpf-clippy",
                    "--",
                    "-D",
                    "warnings",
                ],
            );
            c.env("CARGO_ENCODED_RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"");
            status(c).map(|()| Outcome::Pass)
        });
    }
    go("unit tests", &|| status(cmd("cargo", &["test", "--workspace"])).map(|()| Outcome::Pass));
    go("privileged tests (eBPF + network-namespace lab)", &|| {
        if !is_root() {
            return Ok(Outcome::Skip("needs root"));
        }
        let mut c = cmd("cargo", &["test", "--workspace"]);
        c.args(["--", "--ignored"]);
        if let Some(only) = &args.only {
            c.arg(only);
        }
        status(c).map(|()| Outcome::Pass)
    });
    go("demo smoke test", &|| {
        if !is_root() {
            return Ok(Outcome::Skip("needs root"));
        }
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only"));
        }
        crate::demo::run(&crate::demo::DemoArgs { duration: Some(6), port: 19977 })
            .map(|()| Outcome::Pass)
    });

    println!("\n=== summary");
    let (mut passed, mut failures, mut skipped) = (0, 0, 0);
    for step in &steps {
        let (word, note) = match &step.outcome {
            Outcome::Pass => {
                passed += 1;
                ("PASS", String::new())
            }
            Outcome::Fail(e) => {
                failures += 1;
                ("FAIL", format!(" - {}", e.lines().next().unwrap_or_default()))
            }
            Outcome::Skip(why) => {
                skipped += 1;
                ("SKIP", format!(" - {why}"))
            }
        };
        println!("  {word}  {:<48} {:>6.1}s{note}", step.name, step.took.as_secs_f64());
    }
    println!(
        "xtask test: {passed} passed, {failures} failed, {skipped} skipped in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(failures == 0, "{failures} step(s) failed");
    Ok(())
}

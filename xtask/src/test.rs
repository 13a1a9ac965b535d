//! `cargo xtask test`: everything CI runs, with a summary at the end.

use std::{process::Command, time::Instant};

use crate::{
    run::{is_root, status},
    setup::Ready,
    steps::{Outcome, Steps},
};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Skip fmt and clippy.
    #[arg(long)]
    skip_lint: bool,
    /// Only run privileged tests whose name contains this (test filter); skips the demo run.
    #[arg(long, value_name = "PATTERN")]
    only: Option<String>,
    /// Test threads for the privileged tests (each builds its own lab and agent; one at a time
    /// keeps their timing-sensitive checks away from each other).
    #[arg(long, value_name = "N", default_value_t = 1)]
    test_threads: usize,
}

/// Lab tests also run on the static musl binary: counting, the service protocol, the
/// preflight report.
const MUSL_LAB_TESTS: &[&str] = &["lab_counts", "lab_service", "check"];

/// `cargo` with `args`, run from the workspace root: passes or fails.
fn cargo(ready: &Ready, args: &[&str]) -> anyhow::Result<Outcome> {
    status(ready.cargo(args)).map(|()| Outcome::Pass)
}

/// Clippy for the eBPF crate on its real target; `bpf_target_arch` is the cfg aya-build sets.
fn clippy_ebpf(ready: &Ready) -> Command {
    let mut c = ready.cargo(&[
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
    ]);
    c.env("CARGO_ENCODED_RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"");
    c
}

/// Runs the steps in order, stopping at the first failure, and prints the summary.
pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps = Steps::default();
    let mut ready = None;
    steps.run("setup", || {
        ready = Some(crate::setup::run()?);
        Ok(Outcome::Pass)
    });
    let Some(ready) = ready else {
        return steps.finish("xtask test", started);
    };
    let ready = &ready;
    // SAFETY: set before any thread is spawned; read by the tests cargo runs.
    unsafe {
        std::env::set_var("EGRESS_TRACER_REFERENCE_MMDB", crate::setup::reference_mmdb_path())
    };
    steps.run("setup from nothing (throwaway cache)", || {
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        crate::setup_check::run(ready)
    });
    let lint = |step: &dyn Fn() -> anyhow::Result<Outcome>| {
        if args.skip_lint { Ok(Outcome::Skip("--skip-lint".into())) } else { step() }
    };
    steps.run("fmt", || lint(&|| cargo(ready, &["fmt", "--all", "--", "--check"])));
    steps.run("clippy (user crates)", || {
        lint(&|| cargo(ready, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
    });
    steps.run("clippy (eBPF crate)", || {
        lint(&|| status(clippy_ebpf(ready)).map(|()| Outcome::Pass))
    });
    steps.run("unit tests", || cargo(ready, &["test", "--workspace"]));
    let mut musl = None;
    steps.run("dist: static musl binary and .deb", || {
        let bin = crate::dist::build(ready, crate::dist::HOST_MUSL)?;
        let deb = crate::deb::build(&bin, crate::dist::debian_arch(crate::dist::HOST_MUSL)?)?;
        // SAFETY: xtask sets its environment between steps, before spawning any thread.
        unsafe { std::env::set_var("EGRESS_TRACER_DEB", &deb) };
        musl = Some(bin);
        Ok(Outcome::Pass)
    });
    steps.run("privileged tests (eBPF + network-namespace lab)", || {
        if !is_root() {
            println!("SKIPPED: the privileged tests need root (network namespaces, eBPF)");
            return Ok(Outcome::Skip("needs root".into()));
        }
        let threads = format!("--test-threads={}", args.test_threads);
        let mut c = ready.cargo(&["test", "--workspace", "--", "--ignored", &threads]);
        if let Some(only) = &args.only {
            c.arg(only);
        }
        status(c).map(|()| Outcome::Pass)
    });
    steps.run("systemd VM (the .deb's unit under real systemd)", || {
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        let deb = std::env::var_os("EGRESS_TRACER_DEB").expect("set by the dist step");
        crate::vm_systemd::step(std::path::Path::new(&deb))
    });
    steps.run("dist: aarch64 musl cross build", || {
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        let bin = crate::dist::build(ready, "aarch64-unknown-linux-musl")?;
        // No arm64 kernel here: qemu runs the binary's userspace, which must answer a lookup
        // from its embedded database exactly as the native build does.
        let out = crate::run::cmd(
            "qemu-aarch64",
            &[&bin.display().to_string(), "lookup", "--json", "36.110.0.1"],
        )
        .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success() && text.contains(r#""country":"CN""#),
            "the aarch64 binary under qemu answered {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Outcome::Pass)
    });
    steps.run("lab subset on the musl binary", || {
        if !is_root() {
            return Ok(Outcome::Skip("needs root".into()));
        }
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        let bin = musl.as_ref().expect("built by the previous step");
        let mut c = ready.cargo(&["test", "-p", "tracer-user", "--test", "lab"]);
        c.args(["--", "--ignored", "--test-threads=1"]);
        // Modules of the lab binary: libtest runs the tests matching any of the filters.
        c.args(MUSL_LAB_TESTS.iter().map(|m| format!("{m}::"))).env("EGRESS_TRACER_BIN", bin);
        status(c).map(|()| Outcome::Pass)
    });
    steps.run("demo smoke test", || {
        if !is_root() {
            println!("SKIPPED: the demo needs root (network namespaces, eBPF)");
            return Ok(Outcome::Skip("needs root".into()));
        }
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        crate::demo::run(ready, &crate::demo::DemoArgs { duration: Some(6), port: 19977 })
            .map(|()| Outcome::Pass)
    });
    steps.finish("xtask test", started)
}

//! `cargo xtask test`: everything CI runs, with a summary at the end.

use std::{process::Command, time::Instant};

use crate::{
    background::{Builds, Stage},
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

/// The router builds `cargo xtask test` checks under qemu-user (s390x stands in for big-endian
/// MIPS routers: the `bpfeb` object).
const CROSS_TARGETS: &[&str] = &[
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
    "mipsel-unknown-linux-musl",
    "s390x-unknown-linux-musl",
];

/// The release builds the suite starts in the background right after setup ([`Builds`]): the
/// static musl binary first (the lab subset, the .deb and the demo run it), then the routers'.
const HOST_STAGE: Stage = Stage { name: "dist", targets: &[crate::dist::HOST_MUSL] };
/// See [`HOST_STAGE`].
const CROSS_STAGE: Stage = Stage { name: "cross", targets: CROSS_TARGETS };

/// Builds [`CROSS_TARGETS`] (static, checked by dist) and, with no kernel of their architecture
/// here, runs each one's userspace under qemu: a lookup from the embedded database must answer
/// as the native build does, and the binary must fit [`crate::dist::MAX_BYTES`]. One line per
/// target.
fn cross_builds(ready: &Ready, background: Option<&mut Builds>) -> anyhow::Result<()> {
    let all = match background {
        Some(background) => {
            background.wait(CROSS_STAGE.name)?;
            crate::dist::built(CROSS_TARGETS)?
        }
        None => crate::dist::build_many(ready, CROSS_TARGETS)?,
    };
    let mut failed = Vec::new();
    for built in all {
        let triple = built.target.triple;
        let qemu = built.target.qemu.expect("every cross target names its qemu");
        let out = crate::run::cmd(
            qemu,
            &[&built.path.display().to_string(), "lookup", "--json", "36.110.0.1"],
        )
        .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let answered = out.status.success() && text.contains(r#""country":"CN""#);
        let fits = built.bytes <= crate::dist::MAX_BYTES;
        println!(
            "cross: {triple}: {:.2} MiB{} static, TLS {}, {qemu} lookup 36.110.0.1: {}",
            crate::dist::mib(built.bytes),
            if fits { "," } else { " (over 8 MiB)," },
            if built.tls { "yes" } else { "no" },
            if answered {
                "CN".to_owned()
            } else {
                format!("{:?} {}", text.trim(), String::from_utf8_lossy(&out.stderr).trim())
            }
        );
        if !answered || !fits {
            failed.push(triple);
        }
        if let Some(cpu) = built.target.no_fpu_cpu
            && !no_fpu(&built, qemu, cpu)?
        {
            failed.push(triple);
        }
    }
    anyhow::ensure!(failed.is_empty(), "cross builds failed their checks: {}", failed.join(", "));
    Ok(())
}

/// A `[[volume]]` file whose sizes go through `f64` multiplication, `powi` and `round` (2.5
/// rounds away from zero), and the byte limits `check-config` must print for it: the values
/// the x86_64 build prints.
const VOLUME_CONFIG: &str = "[[volume]]\nregions = [\"CN\"]\nupload = \"1.5GB\"\nwindow = \"1h\"\n\n\
    [[volume]]\nregions = [\"any\"]\nupload = \"2.5\"\nwindow = \"30m\"\n\n\
    [[volume]]\nregions = [\"any\"]\nupload = \"0.7TiB\"\nwindow = \"1d\"\n";
const VOLUME_BYTES: &[&str] = &["over 1500000000 bytes", "over 3 bytes", "over 769658139443 bytes"];

/// The checks of a soft-float build for FPU-less routers ([`crate::dist::Target::no_fpu_cpu`]):
/// no FPU instruction outside [`crate::fpu::ALLOWED`], and, under qemu's `cpu` model (no FPU:
/// an FPU instruction is SIGILL), the lookup and `check-config`'s float arithmetic give the
/// native results. Prints one line; false if anything failed.
fn no_fpu(built: &crate::dist::Built, qemu: &str, cpu: &str) -> anyhow::Result<bool> {
    let triple = built.target.triple;
    let crate::dist::Std::Build { gnu, .. } = built.target.std else {
        anyhow::bail!("{triple}: the FPU check needs a Std::Build target (its linker map)");
    };
    let report =
        crate::fpu::check(&format!("{gnu}-objdump"), &built.path, &crate::dist::link_map(triple))?;
    let config = crate::run::target_dir().join("fpu-check-volume.toml");
    std::fs::write(&config, VOLUME_CONFIG)?;
    let bin = built.path.display().to_string();
    let lookup =
        crate::run::cmd(qemu, &["-cpu", cpu, &bin, "lookup", "--json", "36.110.0.1"]).output()?;
    let looked_up = lookup.status.success()
        && String::from_utf8_lossy(&lookup.stdout).contains(r#""country":"CN""#);
    let checked =
        crate::run::cmd(qemu, &["-cpu", cpu, &bin, "check-config"]).arg(&config).output()?;
    let text = String::from_utf8_lossy(&checked.stdout);
    let sizes = checked.status.success() && VOLUME_BYTES.iter().all(|b| text.contains(b));
    println!(
        "cross: {triple}: {} FPU instructions, {} of them in printf's floating-point \
         conversions (allowed){}; {qemu} -cpu {cpu} (no FPU): lookup {}, check-config sizes {}",
        report.total,
        report.allowed,
        if report.problems.is_empty() {
            String::new()
        } else {
            format!(", NOT ALLOWED: {}", report.problems.join("; "))
        },
        if looked_up { "CN" } else { "FAILED" },
        if sizes {
            "as on x86_64".to_owned()
        } else {
            format!("WRONG: {:?} {}", text.trim(), String::from_utf8_lossy(&checked.stderr).trim())
        }
    );
    Ok(report.problems.is_empty() && looked_up && sizes)
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
    let mut background = None;
    if args.only.is_none() {
        match Builds::start(&[HOST_STAGE, CROSS_STAGE]) {
            Ok(started) => background = Some(started),
            // Built in the foreground by their steps instead.
            Err(err) => println!("release builds not started in the background: {err:#}"),
        }
    }
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
        let bin = match background.as_mut() {
            Some(background) => {
                background.wait(HOST_STAGE.name)?;
                crate::dist::built(&[crate::dist::HOST_MUSL])?.remove(0).path
            }
            None => crate::dist::build(ready, crate::dist::HOST_MUSL)?,
        };
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
        crate::vm::systemd::step(std::path::Path::new(&deb))
    });
    steps.run("dist: cross builds (aarch64, armv7, mipsel, s390x) under qemu", || {
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        cross_builds(ready, background.as_mut()).map(|()| Outcome::Pass)
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
        // The static binary of the dist step: no second release build of the agent.
        let agent = musl.clone();
        crate::demo::run(ready, &crate::demo::DemoArgs { duration: Some(6), port: 19977, agent })
            .map(|()| Outcome::Pass)
    });
    // Last: a VM failure (the agent on another kernel) does not hide the steps above.
    steps.run("vm: Debian kernels in QEMU (x86_64, aarch64, armv7, mipsel, s390x on 6.1; x86_64, aarch64 on 6.12)", || {
        if args.only.is_some() {
            return Ok(Outcome::Skip("--only".into()));
        }
        crate::vm::matrix(ready)
    });
    steps.finish("xtask test", started)
}

//! `cargo xtask vm --arch ARCH`: the static agent on Debian bookworm's own kernel (6.1, no
//! TCX: the netlink clsact path; `--kernel 6.12`: the newer one bookworm ships, with TCX) for
//! that architecture, booted with QEMU.
//!
//! - [`kernel`]: the kernel and `busybox-static` of the architecture, by package name through
//!   `apt-get download`, cached;
//! - [`modules`]: the modules the lab needs, with their dependencies, decompressed;
//! - [`initramfs`]: a cpio archive with busybox, the agent, the modules and `init.sh`, which
//!   builds a lab of network namespaces in the guest, runs `egress-tracer check` and the agent
//!   with a policy, pings, and prints the agent's counters and alerts on the serial console;
//! - [`qemu`]: the boot, the console captured with a timeout;
//! - [`verdict`]: the exact counts, blocked packets and alerts the pings must produce.

mod arch;
mod initramfs;
mod kernel;
mod modules;
mod qemu;
pub(crate) mod systemd;
mod verdict;

use anyhow::Context as _;
use std::{
    sync::atomic::{AtomicBool, Ordering::Relaxed},
    time::Instant,
};

pub(crate) use arch::{Arch, Series};

use crate::{setup::Ready, steps::Outcome};

/// Options of `cargo xtask vm`.
#[derive(Debug, clap::Args)]
pub(crate) struct VmArgs {
    /// Architecture to boot; repeatable. Without --arch and --kernel: the suite's matrix (6.1 on
    /// all four, 6.12 on x86_64 and aarch64).
    #[arg(long = "arch", value_enum)]
    arches: Vec<Arch>,
    /// Use this static agent instead of building one (`cargo xtask dist --target TRIPLE`);
    /// only with a single --arch.
    #[arg(long, value_name = "FILE")]
    agent: Option<std::path::PathBuf>,
    /// Which of bookworm's kernels: 6.1 (its own, no TCX; the default with --arch) or 6.12
    /// (TCX).
    #[arg(long, value_enum)]
    kernel: Option<Series>,
}

/// Something this machine lacks for a VM run (no QEMU for the architecture, the kernel
/// package cannot be downloaded): the run is skipped with this reason, never silently.
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Runs `cargo xtask vm`.
pub(crate) fn run(ready: &Ready, args: &VmArgs) -> anyhow::Result<()> {
    if args.arches.is_empty() && args.kernel.is_none() && args.agent.is_none() {
        return matrix(ready).map(drop);
    }
    let arches = if args.arches.is_empty() { Arch::ALL.to_vec() } else { args.arches.clone() };
    anyhow::ensure!(args.agent.is_none() || arches.len() == 1, "--agent needs exactly one --arch");
    let series = args.kernel.unwrap_or_default();
    let mut failed = Vec::new();
    for arch in arches {
        match boot(ready, arch, series, args.agent.as_deref()) {
            Ok(Outcome::Skip(why)) => println!("vm: {} SKIPPED: {why}", arch.name()),
            Ok(_) => {}
            Err(e) => {
                println!("vm: {} FAIL: {e:#}", arch.name());
                failed.push(arch.name());
            }
        }
    }
    anyhow::ensure!(failed.is_empty(), "VM runs failed: {}", failed.join(", "));
    Ok(())
}

/// What `cargo xtask test` boots: bookworm's 6.1 (the netlink clsact path) for all five
/// architectures (s390x for the big-endian `bpfeb` object), and 6.12 (TCX) for x86_64 and
/// aarch64. armv7's 6.12 stays out: it takes 2-3 minutes under TCG (README, Tested on); s390x
/// and mipsel have no 6.12 in bookworm. The slowest boots come first, so that the lanes of
/// [`matrix`] end together.
pub(crate) const MATRIX: &[(Arch, Series)] = &[
    (Arch::Armv7, Series::V6_1),
    (Arch::S390x, Series::V6_1),
    (Arch::X86_64, Series::V6_1),
    (Arch::Aarch64, Series::V6_1),
    (Arch::Mipsel, Series::V6_1),
    (Arch::X86_64, Series::V6_12),
    (Arch::Aarch64, Series::V6_12),
];

/// [`MATRIX`], for `cargo xtask test`: the kernels are fetched and the agents built first, one
/// after the other (apt and cargo each take their own lock), then the guests boot in lanes, one
/// per core (each QEMU has one vCPU), each row whatever happened to the others. A line each is
/// printed, and the step fails if any failed, passes if any passed (the others' skip reasons
/// printed), and is skipped if all were.
pub(crate) fn matrix(ready: &Ready) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // One cargo run for every agent (cached after the suite's cross-build step); if it fails,
    // each row builds its own and fails alone.
    let mut triples: Vec<_> = MATRIX
        .iter()
        .filter(|(arch, _)| qemu::installed(*arch))
        .map(|(arch, _)| arch.triple())
        .collect();
    triples.sort_unstable();
    triples.dedup();
    let agents = crate::dist::build_many(ready, &triples).unwrap_or_else(|e| {
        println!("vm matrix: building the agents together failed ({e:#}); each row builds its own");
        Vec::new()
    });
    let agent = |arch: Arch| {
        agents.iter().find(|b| b.target.triple == arch.triple()).map(|b| b.path.clone())
    };
    // Rows that could not be prepared are done (skipped or failed); the others boot.
    let (mut rows, mut bootable) = (Vec::new(), Vec::new());
    for (i, &(arch, series)) in MATRIX.iter().enumerate() {
        let started = Instant::now();
        let prepared = prepare(ready, arch, series, agent(arch).as_deref());
        let prep = started.elapsed().as_secs_f64();
        match prepared {
            Ok(p) => bootable.push((i, p, prep)),
            Err(e) => rows.push((i, arch, series, skip_unavailable(Err(e)), prep)),
        }
    }
    let lanes = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 4);
    println!(
        "vm matrix: {} of {} rows prepared in {:.0}s; booting {lanes} at a time",
        bootable.len(),
        MATRIX.len(),
        started.elapsed().as_secs_f64()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    rows.extend(std::thread::scope(|scope| {
        let workers: Vec<_> = (0..lanes)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((i, p, prep)) = bootable.get(next.fetch_add(1, Relaxed)) {
                        let booting = Instant::now();
                        let result = skip_unavailable(p.boot(booting));
                        done.push((
                            *i,
                            p.arch,
                            p.series,
                            result,
                            prep + booting.elapsed().as_secs_f64(),
                        ));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a VM lane panicked")).collect::<Vec<_>>()
    }));
    rows.sort_by_key(|row| row.0);
    println!("\nvm matrix ({:.0}s in all):", started.elapsed().as_secs_f64());
    let (mut passed, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (_, arch, series, result, took) in &rows {
        let (word, note) = match result {
            Ok(Outcome::Pass) => ("PASS", String::new()),
            Ok(Outcome::Skip(why)) => ("SKIP", why.clone()),
            Ok(other) => ("????", format!("{other:?}")),
            Err(e) => ("FAIL", format!("{e:#}").lines().next().unwrap_or_default().to_owned()),
        };
        let name = format!("{} {}", arch.name(), series.name());
        println!("  {word}  {name:<13} {took:>6.0}s  {note}");
        match word {
            "PASS" => passed.push(name),
            "SKIP" => skipped.push(format!("{name}: {note}")),
            _ => failed.push(name),
        }
    }
    anyhow::ensure!(failed.is_empty(), "failed on {}", failed.join(", "));
    if passed.is_empty() {
        return Ok(Outcome::Skip(skipped.join("; ")));
    }
    Ok(Outcome::Pass)
}

/// An [`Unavailable`] error as a skip with its reason; other errors stay errors.
fn skip_unavailable(result: anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
    match result {
        Err(e) => match e.downcast::<Unavailable>() {
            Ok(why) => Ok(Outcome::Skip(why.0)),
            Err(e) => Err(e),
        },
        ok => ok,
    }
}

/// Boots `arch` and checks what the guest reports: PASS, SKIP (with the reason) when this
/// machine lacks QEMU or the kernel package for it, or an error.
pub(crate) fn boot(
    ready: &Ready,
    arch: Arch,
    series: Series,
    agent: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    skip_unavailable(prepare(ready, arch, series, agent).and_then(|p| p.boot(started)))
}

/// Set once a guest did not reach `/init` under KVM: later rows boot with TCG at once rather
/// than wait [`qemu::KVM_FIRST_OUTPUT`] again.
static KVM_SILENT: AtomicBool = AtomicBool::new(false);

/// A row ready to boot: its kernel fetched, its initramfs written.
struct Prepared {
    arch: Arch,
    series: Series,
    kernel: kernel::Kernel,
    image: std::path::PathBuf,
}

/// Fetches the kernel of `arch` and `series`, builds the agent unless `agent` is given, and
/// writes the initramfs; an [`Unavailable`] error when this machine lacks QEMU for `arch`.
fn prepare(
    ready: &Ready,
    arch: Arch,
    series: Series,
    agent: Option<&std::path::Path>,
) -> anyhow::Result<Prepared> {
    if !qemu::installed(arch) {
        return Err(Unavailable(format!(
            "{} is not installed (Debian package {}; `cargo xtask setup` installs it)",
            arch.qemu(),
            arch.qemu_package()
        ))
        .into());
    }
    let kernel = kernel::fetch(arch, series)?;
    let agent = match agent {
        Some(path) => path.to_owned(),
        None => crate::dist::build(ready, arch.triple())?,
    };
    let image = initramfs::path(arch, series);
    std::fs::create_dir_all(image.parent().expect("target/vm"))?;
    initramfs::build(&kernel, &agent, &image)?;
    Ok(Prepared { arch, series, kernel, image })
}

impl Prepared {
    /// Boots the row and checks what the guest reports; `started` is when its preparation
    /// began (the time printed includes it).
    fn boot(&self, started: Instant) -> anyhow::Result<Outcome> {
        let Prepared { arch, series, kernel, image } = self;
        let (arch, series) = (*arch, *series);
        let label = format!("{} {}", arch.name(), series.name());
        let mut kvm = arch == Arch::X86_64 && qemu::kvm_works() && !KVM_SILENT.load(Relaxed);
        let booting = Instant::now();
        let lines = match qemu::boot(arch, &label, &kernel.image, image, kvm) {
            Err(e) if e.is::<qemu::KvmSilent>() => {
                println!("vm: {label} {e} (/dev/kvm opens but runs no guest): booting with TCG");
                KVM_SILENT.store(true, Relaxed);
                kvm = false;
                qemu::boot(arch, &label, &kernel.image, image, false)?
            }
            other => other?,
        };
        // The whole console, for reading what the verifier said (the verdict keeps a line of it).
        let console =
            image.with_file_name(format!("console-{}-{}.log", arch.name(), series.name()));
        std::fs::write(&console, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", console.display()))?;
        let accel = if kvm { "KVM" } else { "TCG" };
        let report = verdict::parse(&lines);
        let took = started.elapsed().as_secs_f64();
        // The boot alone (the rest is building the agent and fetching the kernel, cached later).
        let boot = booting.elapsed().as_secs_f64();
        let head =
            format!("vm: {} kernel {} ({}, {accel})", arch.name(), report.release, kernel.package);
        let problems = verdict::problems(&report);
        let attach = report.attach_mode.clone().unwrap_or_else(|| "?".into());
        let word = if problems.is_empty() { "PASS" } else { "FAIL" };
        println!(
            "VM-RESULT arch={} kernel={} attach={attach} result={word} seconds={took:.0} boot_seconds={boot:.0}",
            arch.name(),
            report.release
        );
        println!(
            "{head}: attach mode {attach}; {}; {word} in {took:.0}s",
            verdict::summary(&report)
        );
        anyhow::ensure!(problems.is_empty(), "{head}: {}", problems.join("; "));
        Ok(Outcome::Pass)
    }
}

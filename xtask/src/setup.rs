//! `cargo xtask setup`: installs what the build and the tests need, idempotently.
//!
//! - the nightly toolchain's `rust-src` (aya-build compiles `core` for the BPF target, and the
//!   armv7/mipsel/s390x dist builds compile `std` and LLVM's libunwind from it);
//! - the armhf, mipsel and s390x dpkg architectures (for their `musl-dev`);
//! - `bpf-linker`, built from crates.io against the nightly toolchain's own LLVM and cached in
//!   `~/.cache/egress-tracer` (or `$EGRESS_TRACER_CACHE`), unless a working one is on PATH;
//! - the Debian packages the tests use, and the foreign Debian architectures whose kernels
//!   `cargo xtask vm` boots (`dpkg --add-architecture`);
//! - the reference MMDB, by package name through `npm pack`.
//!
//! Everything is fetched through the ordinary package clients (`apt-get`, `rustup`,
//! `cargo install`, `npm pack`) by package name, never from a URL written here: registries can
//! be mirrored or proxied, and only the clients know where.
//!
//! [`run`] returns a [`Ready`], and [`Ready::cargo`] is the only way xtask runs cargo: every
//! command that builds (and so compiles the eBPF object) has set up first.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::run::{cmd, status, succeeds};

/// Debian packages the privileged tests and the demo use.
pub(crate) const APT_PACKAGES: &[&str] = &[
    // Counts the programs in the kernel before and after the soak's reloads.
    "bpftool",
    "ca-certificates",
    "chromium",
    "curl",
    // C compilers for `ring` (rustls) in the static musl builds: musl-gcc for x86_64, the
    // Debian cross compiler for aarch64 (linking is still rust-lld's, against Rust's musl).
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "musl-tools",
    // The armv7 and mipsel builds (`-Z build-std`): Debian's cross gcc links them against
    // Debian's musl for the architecture (added by [`foreign_architectures`]) and compiles `ring` and LLVM's
    // libunwind (g++ for libunwind's C++ files; no C++ library is linked).
    "gcc-arm-linux-gnueabihf",
    "g++-arm-linux-gnueabihf",
    "musl-dev:armhf",
    "gcc-mipsel-linux-gnu",
    "g++-mipsel-linux-gnu",
    "musl-dev:mipsel",
    // The same for s390x (big-endian, `cargo xtask vm --arch s390x`: the `bpfeb` object).
    "gcc-s390x-linux-gnu",
    "g++-s390x-linux-gnu",
    "musl-dev:s390x",
    // mipsel-linux-gnu-objdump: the suite's check that the mipsel binary has no FPU
    // instructions outside printf's float conversions (xtask/src/fpu.rs).
    "binutils-mipsel-linux-gnu",
    // Runs the cross builds' userspace (lookup) under emulation in the test suite.
    "qemu-user",
    // Boot Debian's own kernels with the static agents (`cargo xtask vm`).
    "qemu-system-arm",
    "qemu-system-mips",
    // qemu-system-s390x.
    "qemu-system-misc",
    "qemu-system-x86",
    // Decompresses kernel modules shipped as .ko.xz for the VM's initramfs.
    "xz-utils",
    "iproute2",
    "iputils-ping",
    // The systemd VM (`cargo xtask vm-systemd`): its Debian root, the machine, the image.
    "mmdebstrap",
    "e2fsprogs",
    // The in-situ benchmark: trafgen's TX ring (non-linear skbs, floods) and the nftables
    // baseline it is compared with (`cargo xtask bench`).
    "netsniff-ng",
    "nftables",
    // ISO 3166-1 numeric -> alpha-2 codes for the page's world map (`cargo xtask world-map`).
    "iso-codes",
    // A real IPFIX collector (nfcapd) and reader (nfdump) for the flow export tests.
    "nfdump",
    // Real DNS servers and clients, and a TLS client and server, for the names tests.
    "dnsmasq-base",
    "bind9-dnsutils",
    "openssl",
    "procps",
    "prometheus",
    // A real Alertmanager receiving the agent's pushed alerts.
    "prometheus-alertmanager",
    "systemd",
    "tar",
    "util-linux",
];

/// ip-location-db's own MMDB build of the embedded default data (CC BY 4.0, NRO), an npm
/// package: the independent reference the CSV and MMDB loaders are checked against. The version
/// is the one the embedded database was built from.
const REFERENCE_MMDB_PACKAGE: &str = "@ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719";

/// Proof that [`run`] completed in this process: the toolchain pieces are installed and the
/// cached bpf-linker is first on PATH.
#[derive(Debug)]
pub(crate) struct Ready(());

impl Ready {
    /// `cargo args...` from the workspace root. Building anything in this workspace compiles
    /// the eBPF object (tracer-user's build script), which needs the nightly `rust-src` and
    /// bpf-linker: holding a `Ready` is the proof they are there.
    pub(crate) fn cargo(&self, args: &[&str]) -> Command {
        cmd("cargo", args)
    }
}

/// Where setup caches what it builds.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EGRESS_TRACER_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("egress-tracer")
}

/// Puts the cached bpf-linker first on PATH for this process and its children.
pub(crate) fn ensure_path() {
    let bin = cache_dir().join("bpf-linker/bin");
    if bin.is_dir() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut parts = vec![bin.clone()];
        parts.extend(std::env::split_paths(&path).filter(|p| *p != bin));
        if let Ok(joined) = std::env::join_paths(parts) {
            // SAFETY: xtask is single-threaded while it sets up its environment.
            unsafe { std::env::set_var("PATH", joined) };
        }
    }
}

fn step(what: &str, done: bool) {
    println!("setup: {what}: {}", if done { "already done" } else { "missing, setting it up" });
}

/// Runs every setup step.
pub(crate) fn run() -> anyhow::Result<Ready> {
    ensure_path();
    foreign_architectures()?;
    apt()?;
    npm()?;
    rust_src()?;
    bpf_linker()?;
    reference_mmdb()?;
    world_atlas()?;
    bpffs()?;
    println!("setup: complete");
    Ok(Ready(()))
}

/// Whether Debian package `name` is installed (`dpkg -s` alone also succeeds for a removed
/// package whose configuration files remain).
fn deb_installed(name: &str) -> bool {
    cmd("dpkg-query", &["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"))
}

/// Debian architectures `cargo xtask vm` downloads kernels and busybox for.
const VM_ARCHITECTURES: &[&str] = &["amd64", "arm64", "armhf", "mipsel", "s390x"];

/// Adds the VM architectures other than the native one to dpkg (so that `apt-get download
/// linux-image-arm64:arm64` works), then refreshes apt's lists once.
fn foreign_architectures() -> anyhow::Result<()> {
    let native = text_of(cmd("dpkg", &["--print-architecture"]));
    let foreign = text_of(cmd("dpkg", &["--print-foreign-architectures"]));
    let missing: Vec<&str> = VM_ARCHITECTURES
        .iter()
        .copied()
        .filter(|a| !native.iter().any(|n| n == a) && !foreign.iter().any(|f| f == a))
        .collect();
    step(&format!("dpkg architectures {}", VM_ARCHITECTURES.join(" ")), missing.is_empty());
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        crate::run::is_root(),
        "dpkg lacks the architectures {}: run `cargo xtask setup` as root",
        missing.join(" ")
    );
    for arch in &missing {
        status(cmd("dpkg", &["--add-architecture", arch]))?;
    }
    status(apt_get(&["update", "-q"]))
}

/// The words a command prints (none if it fails).
fn text_of(mut c: Command) -> Vec<String> {
    c.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `apt-get args...`, waiting for another apt or dpkg holding the lock rather than failing
/// (the option after the command: the suite's setup check reads `apt-get install ...`).
fn apt_get(args: &[&str]) -> Command {
    let mut c = cmd("apt-get", args);
    c.args(["-o", "DPkg::Lock::Timeout=600"]).env("DEBIAN_FRONTEND", "noninteractive");
    c
}

fn apt() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !deb_installed(p)).collect();
    step(&format!("Debian packages {}", APT_PACKAGES.join(" ")), missing.is_empty());
    if missing.is_empty() {
        return Ok(());
    }
    anyhow::ensure!(
        crate::run::is_root(),
        "missing Debian packages {}: run `cargo xtask setup` as root or `apt-get install {}`",
        missing.join(" "),
        missing.join(" ")
    );
    status(apt_get(&["update", "-q"]))?;
    let mut install = apt_get(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    status(install).context("installing Debian packages")
}

/// `npm` (it fetches the reference MMDB from the npm registry by package name): Debian's
/// package unless one is installed already (NodeSource's nodejs ships its own npm and conflicts
/// with Debian's).
fn npm() -> anyhow::Result<()> {
    let works = succeeds(cmd("npm", &["--version"]));
    step("npm", works);
    if works {
        return Ok(());
    }
    anyhow::ensure!(crate::run::is_root(), "npm is missing: run `cargo xtask setup` as root");
    let mut install = cmd("apt-get", &["install", "-y", "-q", "--no-install-recommends", "npm"]);
    install.env("DEBIAN_FRONTEND", "noninteractive");
    status(install).context("installing npm")
}

/// The nightly toolchain's installed components, or `None` if it is not installed.
fn nightly_components() -> Option<String> {
    cmd("rustup", &["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = nightly_components();
    let installed = match installed {
        Some(installed) => {
            step("nightly toolchain", true);
            installed
        }
        None => {
            step("nightly toolchain", false);
            status(cmd("rustup", &["toolchain", "install", "nightly", "--profile", "minimal"]))
                .context(
                    "installing the nightly toolchain (aya-build needs it for the BPF target)",
                )?;
            nightly_components()
                .context("rustup lists no components of the freshly installed nightly")?
        }
    };
    let has = installed.lines().any(|l| l.starts_with("rust-src"));
    step("nightly rust-src", has);
    if !has {
        status(cmd("rustup", &["component", "add", "rust-src", "--toolchain", "nightly"]))
            .context("adding rust-src to the nightly toolchain")?;
    }
    Ok(())
}

fn bpf_linker_runs() -> bool {
    succeeds(cmd("rustup", &["run", "nightly", "bpf-linker", "--version"]))
}

/// Whether a working bpf-linker is on PATH (`XTASK_FORCE_BPF_LINKER_BUILD` pretends not).
fn bpf_linker_works() -> bool {
    std::env::var_os("XTASK_FORCE_BPF_LINKER_BUILD").is_none() && bpf_linker_runs()
}

/// The LLVM major version of the nightly rustc (`LLVM version: 22.1.2`).
fn nightly_llvm_major() -> anyhow::Result<String> {
    let out =
        Command::new("rustc").args(["+nightly", "-vV"]).output().context("rustc +nightly -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("rustc +nightly -vV printed no LLVM version")?;
    Ok(version.split('.').next().unwrap_or(version).to_owned())
}

fn bpf_linker() -> anyhow::Result<()> {
    let works = bpf_linker_works();
    step("bpf-linker", works);
    if works {
        return Ok(());
    }
    let major = nightly_llvm_major()?;
    let sysroot = Command::new("rustc").args(["+nightly", "--print", "sysroot"]).output()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let libllvm = std::fs::read_dir(sysroot.join("lib"))
        .context("reading the nightly sysroot")?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so")))
        .context("the nightly toolchain ships no libLLVM.so (is this a rustup nightly?)")?;
    let prefix = cache_dir().join(format!("llvm-{major}"));
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} -> {}", link.display(), libllvm.display()))?;
    let root = cache_dir().join("bpf-linker");
    println!("setup: building bpf-linker against the nightly LLVM {major} (about a minute)");
    // `--locked` builds with the dependency versions bpf-linker was released with; if those no
    // longer resolve (yanked), fall back to the newest compatible ones.
    let locked = cargo_install_bpf_linker(&prefix, &root, &major, true);
    if let Err(e) = locked {
        println!("setup: `cargo install --locked` failed ({e:#}); retrying without --locked");
        cargo_install_bpf_linker(&prefix, &root, &major, false)
            .context("building bpf-linker from crates.io")?;
    }
    ensure_path();
    let built = root.join("bin/bpf-linker");
    let built_arg = built.to_string_lossy().into_owned();
    anyhow::ensure!(
        succeeds(cmd("rustup", &["run", "nightly", &built_arg, "--version"])),
        "bpf-linker was built as {built_arg} but does not run (`rustup run nightly {built_arg} \
         --version`)"
    );
    println!("setup: bpf-linker built: {built_arg} (first on PATH for xtask's commands)");
    Ok(())
}

/// `cargo +nightly install bpf-linker` against the LLVM in `llvm_prefix`, into `root`.
fn cargo_install_bpf_linker(
    llvm_prefix: &Path,
    root: &Path,
    llvm_major: &str,
    locked: bool,
) -> anyhow::Result<()> {
    let feature = format!("llvm-{llvm_major}");
    let mut install = cmd("cargo", &["+nightly", "install", "bpf-linker", "--force"]);
    if locked {
        install.arg("--locked");
    }
    // One build directory per workspace, whatever the cache: a second install (another cache,
    // the suite's setup-from-nothing check) reuses the compiled dependencies.
    install
        .args(["--no-default-features", "--features", &feature, "--root"])
        .arg(root)
        .arg("--target-dir")
        .arg(crate::run::target_dir().join("bpf-linker-build"))
        .env("LLVM_PREFIX", llvm_prefix);
    status(install)
}

/// Where `setup` keeps the reference MMDB.
pub(crate) fn reference_mmdb_path() -> PathBuf {
    cache_dir().join("reference/package/geo-whois-asn-country.mmdb")
}

/// Natural Earth 110m countries (public domain) as TopoJSON, an npm package: what
/// `cargo xtask world-map` draws the page's map from.
const WORLD_ATLAS_PACKAGE: &str = "world-atlas@2.0.2";

/// Where `setup` keeps world-atlas's `countries-110m.json`.
pub(crate) fn world_atlas_path() -> PathBuf {
    cache_dir().join("world-atlas/package/countries-110m.json")
}

fn reference_mmdb() -> anyhow::Result<()> {
    step(
        "reference MMDB (ip-location-db geo-whois-asn-country-mmdb)",
        reference_mmdb_path().exists(),
    );
    npm_pack(REFERENCE_MMDB_PACKAGE, &cache_dir().join("reference"), &reference_mmdb_path())
}

fn world_atlas() -> anyhow::Result<()> {
    step("world map data (world-atlas, Natural Earth 110m)", world_atlas_path().exists());
    npm_pack(WORLD_ATLAS_PACKAGE, &cache_dir().join("world-atlas"), &world_atlas_path())
}

/// Fetches `package` (`name@version`) with `npm pack` into `dir` and unpacks it there, unless
/// `wanted` (a file of the package) exists already.
fn npm_pack(package: &str, dir: &Path, wanted: &Path) -> anyhow::Result<()> {
    if wanted.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let dir_arg = dir.to_string_lossy().into_owned();
    // `npm pack` prints the name of the tarball it wrote (last line of its output).
    let mut pack = cmd("npm", &["pack", "--silent", package, "--pack-destination"]);
    pack.arg(dir);
    println!("$ {}", crate::run::describe(&pack));
    let out = pack.output().context("running npm pack (is npm installed? setup installs it)")?;
    anyhow::ensure!(
        out.status.success(),
        "npm pack {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(".tgz"))
        .with_context(|| format!("npm pack {package} named no tarball: {stdout:?}"))?;
    let tgz_arg = dir.join(name.trim()).to_string_lossy().into_owned();
    status(cmd("tar", &["xzf", &tgz_arg, "-C", &dir_arg]))
        .with_context(|| format!("unpacking {package}"))?;
    anyhow::ensure!(wanted.exists(), "{} is not in {package}", wanted.display());
    Ok(())
}

/// Mounts bpffs on /sys/fs/bpf if nothing is there, so that parallel tests never race to mount
/// it themselves (the agent mounts it too when it must).
fn bpffs() -> anyhow::Result<()> {
    if !crate::run::is_root() {
        step("bpffs on /sys/fs/bpf (needs root; skipped)", true);
        return Ok(());
    }
    let mounted = std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    });
    step("bpffs on /sys/fs/bpf", mounted);
    if !mounted {
        status(cmd("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"])).context("mounting bpffs")?;
    }
    Ok(())
}

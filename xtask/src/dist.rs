//! `cargo xtask dist`: static, stripped release binaries for routers and gateways (musl,
//! `[profile.dist]`), each with the eBPF object of the target's endianness and the default
//! country database inside; `cargo xtask dist deb` packages one as a .deb.
//!
//! Two ways to a static musl binary, by target ([`TARGETS`]):
//! - [`Std::Rustup`] (x86_64, aarch64): `rustup target add` installs the target's `rust-std`
//!   with its self-contained musl CRT and libc, and `rust-lld` links against them.
//! - [`Std::Build`] (armv7, mipsel, s390x): the distribution server has no `rust-std` for
//!   them, so the nightly toolchain compiles `std` from its `rust-src` (`-Z
//!   build-std=std,panic_abort`), and Debian's cross gcc links, with Debian's musl for that
//!   architecture (`musl-dev:armhf`, `musl-dev:mipsel`, `musl-dev:s390x`: CRT objects and `libc.a`, through the `<triple>-musl-gcc` wrapper's
//!   specs). The unwinder `std` links (`-lunwind`) is LLVM's libunwind from the nightly
//!   `rust-src`, compiled here with the same compiler ([`libunwind`]): Debian's `libgcc_eh.a`
//!   is built for glibc (`_dl_find_object`).
//!
//! The only C compiled is `ring`'s (rustls, the `tls` feature) and that libunwind; `cargo xtask
//! setup` installs every compiler and library named here.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{
    run::{cmd, status, target_dir, workspace_root},
    setup::Ready,
};

/// The default target: the one the lab tests also run (`cargo xtask test`).
pub(crate) const HOST_MUSL: &str = "x86_64-unknown-linux-musl";

/// The size a router build must stay within (flash and RAM of small routers).
pub(crate) const MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Where a target's standard library comes from.
#[derive(Debug)]
pub(crate) enum Std {
    /// `rustup target add`; linked by rust-lld against the self-contained musl. The C compiler
    /// is for `ring` only.
    Rustup { cc: &'static str },
    /// Nightly `-Z build-std`, linked by the Debian cross gcc (`<gnu>-gcc`, binutils `<gnu>-ar`)
    /// through the musl wrapper `musl_gcc` (package `musl-dev:<debian arch>`), which also
    /// compiles `ring` and libunwind with `cflags`.
    Build { gnu: &'static str, musl_gcc: &'static str, cflags: &'static [&'static str] },
}

/// A target `cargo xtask dist` builds.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) triple: &'static str,
    pub(crate) debian_arch: &'static str,
    pub(crate) std: Std,
    /// qemu-user's emulator for the binary (`cargo xtask test` runs a lookup under it).
    pub(crate) qemu: Option<&'static str>,
    /// A soft-float target for FPU-less CPUs, linked against a hard-float libc: `cargo xtask
    /// test` checks its binary for FPU instructions ([`crate::fpu`]) and runs it under this
    /// qemu CPU model, which has no FPU.
    pub(crate) no_fpu_cpu: Option<&'static str>,
}

/// Targets known to build.
pub(crate) const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-musl",
        debian_arch: "amd64",
        std: Std::Rustup { cc: "musl-gcc" },
        qemu: None,
        no_fpu_cpu: None,
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        debian_arch: "arm64",
        std: Std::Rustup { cc: "aarch64-linux-gnu-gcc" },
        qemu: Some("qemu-aarch64"),
        no_fpu_cpu: None,
    },
    // ARMv7 with VFPv3-D16, hard-float ABI (inside the static binary only: it runs on any
    // ARMv7-A router with a VFP, e.g. OpenWrt's arm_cortex-a7_neon-vfpv4, ipq40xx).
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        debian_arch: "armhf",
        std: Std::Build {
            gnu: "arm-linux-gnueabihf",
            musl_gcc: "arm-linux-musleabihf-gcc",
            cflags: &[],
        },
        qemu: Some("qemu-arm"),
        no_fpu_cpu: None,
    },
    // MIPS32r2 little-endian, soft-float like the Rust target and OpenWrt's mipsel_24kc
    // (ramips mt7621 has no FPU). Debian's musl is hard-float: tracer-user/src/base/softfloat.rs
    // keeps its math out, the suite checks what is left (docs/deployment.md, "mipsel caveat").
    Target {
        triple: "mipsel-unknown-linux-musl",
        debian_arch: "mipsel",
        std: Std::Build {
            gnu: "mipsel-linux-gnu",
            musl_gcc: "mipsel-linux-musl-gcc",
            cflags: &["-msoft-float"],
        },
        qemu: Some("qemu-mipsel"),
        // The MIPS 24Kc has no FPU (the 24Kf has one): FPU instructions raise SIGILL.
        no_fpu_cpu: Some("24Kc"),
    },
    // z/Architecture, big-endian: not a router, but bookworm's big-endian kernel that QEMU
    // boots (`cargo xtask vm --arch s390x`), so the `bpfeb` object is shown to load and count.
    Target {
        triple: "s390x-unknown-linux-musl",
        debian_arch: "s390x",
        std: Std::Build { gnu: "s390x-linux-gnu", musl_gcc: "s390x-linux-musl-gcc", cflags: &[] },
        qemu: Some("qemu-s390x"),
        no_fpu_cpu: None,
    },
];

/// What to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum What {
    /// Static binaries in target/packages/.
    #[default]
    Bin,
    /// A .deb (binary, systemd unit, config, docs) in target/packages/.
    Deb,
}

/// Options of `cargo xtask dist`.
#[derive(Debug, clap::Args)]
pub(crate) struct DistArgs {
    /// `bin` (default) or `deb`.
    #[arg(value_enum, default_value_t = What::Bin)]
    what: What,
    /// Target triple; repeatable [default: x86_64-unknown-linux-musl].
    #[arg(long = "target", value_name = "TRIPLE")]
    targets: Vec<String>,
}

/// Runs `cargo xtask dist`.
pub(crate) fn run(ready: &Ready, args: &DistArgs) -> anyhow::Result<()> {
    let targets =
        if args.targets.is_empty() { vec![HOST_MUSL.to_owned()] } else { args.targets.clone() };
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    for built in build_many(ready, &targets)? {
        if args.what == What::Deb {
            let deb = crate::deb::build(&built.path, built.target.debian_arch)?;
            println!("dist: {}", deb.display());
        }
    }
    Ok(())
}

/// The Debian architecture of `target`.
pub(crate) fn debian_arch(target: &str) -> anyhow::Result<&'static str> {
    Ok(find(target)?.debian_arch)
}

/// The known target `triple`, or an error listing the known ones.
pub(crate) fn find(triple: &str) -> anyhow::Result<&'static Target> {
    TARGETS.iter().find(|t| t.triple == triple).with_context(|| {
        format!(
            "unsupported target {triple}; known: {}",
            TARGETS.iter().map(|t| t.triple).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Installs the `rust-std` of those of `targets` rustup serves, so that builds started next can
/// run side by side with other rustup calls (rustup is not meant to change one installation
/// from two processes at once).
pub(crate) fn prepare(targets: &[&str]) -> anyhow::Result<()> {
    for t in targets {
        if matches!(find(t)?.std, Std::Rustup { .. }) {
            ensure_target(t)?;
        }
    }
    Ok(())
}

/// `rustup target add`, unless the target's std is installed already.
fn ensure_target(target: &str) -> anyhow::Result<()> {
    let installed = cmd("rustup", &["target", "list", "--installed"]).output()?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    status(cmd("rustup", &["target", "add", target])).with_context(|| {
        format!(
            "installing the Rust standard library for {target} (if rustup answers 404, this \
             toolchain's distribution server has no rust-std for it)"
        )
    })
}

/// A binary `cargo xtask dist` built.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) target: &'static Target,
    /// `target/packages/egress-tracer-<version>-<triple>`.
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    /// Whether rustls is inside (the `tls` feature: HTTPS for the API and `status`).
    pub(crate) tls: bool,
}

/// Builds the static binary for `target` and copies it to
/// `target/packages/egress-tracer-<version>-<target>`; returns that path.
pub(crate) fn build(ready: &Ready, target: &str) -> anyhow::Result<PathBuf> {
    let mut built = build_many(ready, &[target])?;
    Ok(built.remove(0).path)
}

/// Builds `targets`, in one cargo run per kind of [`Std`] (one run for several targets keeps
/// both cores busy through each target's single-threaded LTO), then checks and copies each.
pub(crate) fn build_many(ready: &Ready, targets: &[&str]) -> anyhow::Result<Vec<Built>> {
    let targets: Vec<&'static Target> =
        targets.iter().map(|t| find(t)).collect::<Result<_, _>>()?;
    let rustup: Vec<_> =
        targets.iter().copied().filter(|t| matches!(t.std, Std::Rustup { .. })).collect();
    let from_source: Vec<_> =
        targets.iter().copied().filter(|t| matches!(t.std, Std::Build { .. })).collect();
    for group in [&rustup, &from_source] {
        if !group.is_empty() {
            cargo_build(ready, group)?;
        }
    }
    targets.into_iter().map(finish).collect()
}

/// The binaries of `targets` as an earlier `dist` left them (the suite's background builds),
/// checked and copied as [`build_many`] does, without running cargo (which would wait for the
/// lock of a build still running in the background).
pub(crate) fn built(targets: &[&str]) -> anyhow::Result<Vec<Built>> {
    targets.iter().map(|t| finish(find(t)?)).collect()
}

/// `CARGO_TARGET_<TRIPLE>_<what>`.
fn target_var(triple: &str, what: &str) -> String {
    format!("CARGO_TARGET_{}_{what}", triple.to_uppercase().replace('-', "_"))
}

/// One `cargo build --profile dist` for `targets` (all of one kind of [`Std`]).
fn cargo_build(ready: &Ready, targets: &[&'static Target]) -> anyhow::Result<()> {
    let build_std = matches!(targets[0].std, Std::Build { .. });
    let mut args =
        vec!["build", "--profile", "dist", "-p", "tracer-user", "--bin", "egress-tracer"];
    if build_std {
        // `panic_abort`: `[profile.dist]` aborts on panic.
        args.splice(0..0, ["+nightly"]);
        args.extend(["-Z", "build-std=std,panic_abort"]);
    }
    for t in targets {
        args.extend(["--target", t.triple]);
    }
    let mut build = ready.cargo(&args);
    for t in targets {
        let cc_var = |what: &str| format!("{what}_{}", t.triple.replace('-', "_"));
        match &t.std {
            Std::Rustup { cc } => {
                ensure_target(t.triple)?;
                // Not position-independent: a static-pie binary carries a relocation for every
                // pointer in its read-only tables (+4 MiB on x86_64).
                build
                    .env(target_var(t.triple, "LINKER"), "rust-lld")
                    .env(target_var(t.triple, "RUSTFLAGS"), "-C relocation-model=static");
                // `ring` (rustls, the `tls` feature) compiles C and assembly for the target.
                build.env(cc_var("CC"), cc);
            }
            Std::Build { gnu, musl_gcc, cflags } => {
                let unwind = libunwind(t.triple, gnu, musl_gcc, cflags)?;
                // crt-static: the MIPS musl targets default to dynamic linking (OpenWrt's
                // way); Rust's self-contained CRT is not there to link, Debian's is (specs).
                // The linker map (with its cross-reference table) is for the FPU check.
                let rustflags = format!(
                    "-C target-feature=+crt-static -C relocation-model=static \
                     -C link-self-contained=no -L native={} -C link-arg=-Wl,-Map={},--cref",
                    unwind.display(),
                    link_map(t.triple).display()
                );
                build
                    .env(target_var(t.triple, "LINKER"), musl_gcc)
                    .env(target_var(t.triple, "RUSTFLAGS"), rustflags)
                    .env(cc_var("CC"), musl_gcc)
                    .env(cc_var("CFLAGS"), cflags.join(" "));
            }
        }
    }
    status(build)
}

/// The linker map of a [`Std::Build`] target's dist binary: `target/<triple>/dist/egress-tracer.map`.
pub(crate) fn link_map(triple: &str) -> PathBuf {
    target_dir().join(triple).join("dist/egress-tracer.map")
}

/// LLVM's libunwind from the nightly `rust-src` (the unwinder Rust's own musl targets ship),
/// compiled with `musl_gcc` into `target/cross-libunwind/<triple>/libunwind.a`, unless there;
/// returns that directory.
fn libunwind(triple: &str, gnu: &str, musl_gcc: &str, cflags: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("cross-libunwind").join(triple);
    let lib = dir.join("libunwind.a");
    if lib.exists() {
        return Ok(dir);
    }
    let sysroot = cmd("rustc", &["+nightly", "--print", "sysroot"]).output()?;
    let src = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib/src/rust/src/llvm-project/libunwind");
    anyhow::ensure!(
        src.join("src").is_dir(),
        "no libunwind source in the nightly rust-src ({}): run `cargo xtask setup`",
        src.display()
    );
    let objects = dir.join("obj");
    std::fs::create_dir_all(&objects)?;
    let mut members = Vec::new();
    for file in [
        "libunwind.cpp",
        "Unwind-EHABI.cpp",
        "UnwindLevel1.c",
        "UnwindLevel1-gcc-ext.c",
        "UnwindRegistersRestore.S",
        "UnwindRegistersSave.S",
    ] {
        let language: &[&str] = match Path::new(file).extension().and_then(|e| e.to_str()) {
            Some("cpp") => &["-std=c++17", "-nostdinc++", "-fno-exceptions", "-fno-rtti"],
            Some("c") => &["-std=c99"],
            _ => &[],
        };
        let out = objects.join(file).with_extension("o");
        let mut cc = cmd(musl_gcc, &["-c", "-O2", "-fstrict-aliasing", "-funwind-tables"]);
        cc.args(["-fvisibility=hidden", "-fno-stack-protector", "-D_LIBUNWIND_IS_NATIVE_ONLY"])
            .args(["-DNDEBUG", "-I"])
            .arg(src.join("include"))
            .args(cflags)
            .args(language)
            .arg(src.join("src").join(file))
            .arg("-o")
            .arg(&out);
        status(cc).with_context(|| format!("compiling libunwind's {file} for {triple}"))?;
        members.push(out);
    }
    let mut archive = cmd(&format!("{gnu}-ar"), &["rcs"]);
    archive.arg(dir.join("libunwind.a.part")).args(&members);
    status(archive)?;
    std::fs::rename(dir.join("libunwind.a.part"), &lib)?;
    Ok(dir)
}

/// Checks the built binary of `target` (static, with an eBPF object) and copies it to
/// `target/packages/`.
fn finish(target: &'static Target) -> anyhow::Result<Built> {
    let built = target_dir().join(target.triple).join("dist/egress-tracer");
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    anyhow::ensure!(is_static(&bytes), "{} is dynamically linked", built.display());
    let bpf = embedded_bpf_endianness(&bytes).context("no embedded eBPF object found")?;
    let dir = target_dir().join("packages");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("egress-tracer-{}-{}", env!("CARGO_PKG_VERSION"), target.triple));
    std::fs::copy(&built, &out)?;
    let tls = has_tls(&bytes);
    println!(
        "dist: {} ({:.2} MiB, static, stripped, eBPF object {bpf}, TLS {})",
        out.strip_prefix(workspace_root()).unwrap_or(&out).display(),
        mib(bytes.len() as u64),
        if tls { "yes" } else { "no" }
    );
    Ok(Built { target, path: out, bytes: bytes.len() as u64, tls })
}

/// Whether rustls is linked in: its log targets (`rustls::...`, the `logging` feature) are.
fn has_tls(bin: &[u8]) -> bool {
    bin.windows(8).any(|w| w == b"rustls::")
}

/// `bytes` in MiB.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Whether an ELF file has no program interpreter (PT_INTERP): statically linked.
fn is_static(elf: &[u8]) -> bool {
    let Some(header) = Elf::parse(elf, 0) else { return false };
    (0..header.phnum).all(|i| {
        let at = header.phoff + i * header.phentsize;
        header.u32(elf, at) != Some(3) // PT_INTERP
    })
}

/// Finds the embedded eBPF ELF object (e_machine 247) and names its flavour: `bpfel` or
/// `bpfeb`, which aya-build picks from the target's endianness.
fn embedded_bpf_endianness(bin: &[u8]) -> Option<&'static str> {
    let mut from = 1;
    while let Some(pos) = bin[from..].windows(4).position(|w| w == b"\x7fELF") {
        let at = from + pos;
        if let Some(elf) = Elf::parse(bin, at)
            && elf.machine == 247
        {
            return Some(if elf.big_endian { "bpfeb" } else { "bpfel" });
        }
        from = at + 4;
    }
    None
}

/// The few ELF header fields looked at.
struct Elf {
    big_endian: bool,
    machine: u16,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

impl Elf {
    fn parse(bytes: &[u8], at: usize) -> Option<Elf> {
        let h = bytes.get(at..at + 64)?;
        if &h[..4] != b"\x7fELF" || !matches!(h[4], 1 | 2) || !matches!(h[5], 1 | 2) {
            return None;
        }
        let big_endian = h[5] == 2;
        let u16_at = |o: usize| {
            let b = [h[o], h[o + 1]];
            if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
        };
        let word = |o: usize, wide: bool| -> usize {
            let mut v = 0usize;
            let n = if wide { 8 } else { 4 };
            for i in 0..n {
                let byte = if big_endian { h[o + i] } else { h[o + n - 1 - i] };
                v = (v << 8) | usize::from(byte);
            }
            v
        };
        let wide = h[4] == 2;
        let (phoff, phentsize, phnum) = if wide {
            (word(32, true), u16_at(54), u16_at(56))
        } else {
            (word(28, false), u16_at(42), u16_at(44))
        };
        Some(Elf {
            big_endian,
            machine: u16_at(18),
            phoff: at + phoff,
            phentsize: phentsize.into(),
            phnum: phnum.into(),
        })
    }

    fn u32(&self, bytes: &[u8], at: usize) -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_static_and_bpf_flavour_in_real_elf_files() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(Elf::parse(&me, 0).is_some());
        assert!(!is_static(&me) || cfg!(target_env = "musl"), "the test binary is dynamic");
        let mut fake = me[..64].to_vec();
        fake.extend_from_slice(&me[..64]);
        fake[64 + 18] = 247;
        fake[64 + 19] = 0;
        assert_eq!(embedded_bpf_endianness(&fake), Some("bpfel"));
        assert!(find("mips-unknown-linux-musl").is_err());
        assert_eq!(debian_arch("aarch64-unknown-linux-musl").unwrap(), "arm64");
        assert_eq!(debian_arch("mipsel-unknown-linux-musl").unwrap(), "mipsel");
        assert_eq!(
            target_var("armv7-unknown-linux-musleabihf", "LINKER"),
            "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER"
        );
    }
}

//! `cargo xtask dist`: static, stripped release binaries for routers and gateways (musl,
//! `[profile.dist]`), each with the eBPF object of the target's endianness and the default
//! country database inside; `cargo xtask dist deb` packages one as a .deb.
//!
//! Linking needs no cross toolchain: no crate compiles C, so `rust-lld` (shipped with rustc)
//! links against the self-contained musl CRT and libc of the target's `rust-std`, which
//! `rustup target add` installs (cached by rustup). Tier-3 musl targets (mips, mipsel) have no
//! `rust-std` to download and are refused with the reason.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{
    run::{cmd, status, target_dir, workspace_root},
    setup::Ready,
};

/// The default target: the one the lab tests also run (`cargo xtask test`).
pub(crate) const HOST_MUSL: &str = "x86_64-unknown-linux-musl";

/// Targets known to build, with their Debian architecture.
const TARGETS: &[(&str, &str)] = &[
    ("x86_64-unknown-linux-musl", "amd64"),
    ("aarch64-unknown-linux-musl", "arm64"),
    ("armv7-unknown-linux-musleabihf", "armhf"),
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
    for target in &targets {
        let bin = build(ready, target)?;
        if args.what == What::Deb {
            let deb = crate::deb::build(&bin, debian_arch(target)?)?;
            println!("dist: {}", deb.display());
        }
    }
    Ok(())
}

/// The Debian architecture of `target`.
pub(crate) fn debian_arch(target: &str) -> anyhow::Result<&'static str> {
    TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .map(|(_, arch)| *arch)
        .with_context(|| format!("no Debian architecture known for {target}"))
}

/// Refuses targets that cannot be built here, with the reason.
fn supported(target: &str) -> anyhow::Result<()> {
    if target.starts_with("mips") {
        anyhow::bail!(
            "{target} is a tier-3 target: rustup has no prebuilt std (and no musl CRT/libc) for \
             it, so it needs nightly `-Z build-std` plus a musl C library for MIPS (e.g. zig's); \
             not automated here, see notes-deploy.md"
        );
    }
    anyhow::ensure!(
        TARGETS.iter().any(|(t, _)| *t == target),
        "unsupported target {target}; known: {}",
        TARGETS.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
    );
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

/// The C compiler `ring` is built with for `target` (installed by `cargo xtask setup`).
fn c_compiler(target: &str) -> Option<&'static str> {
    match target {
        "x86_64-unknown-linux-musl" => Some("musl-gcc"),
        "aarch64-unknown-linux-musl" => Some("aarch64-linux-gnu-gcc"),
        "armv7-unknown-linux-musleabihf" => Some("arm-linux-gnueabihf-gcc"),
        _ => None,
    }
}

/// Builds the static binary for `target` and copies it to
/// `target/packages/egress-tracer-<version>-<target>`; returns that path.
pub(crate) fn build(ready: &Ready, target: &str) -> anyhow::Result<PathBuf> {
    supported(target)?;
    ensure_target(target)?;
    let mut build = ready.cargo(&[
        "build",
        "--profile",
        "dist",
        "-p",
        "tracer-user",
        "--bin",
        "egress-tracer",
        "--target",
        target,
    ]);
    let var =
        |what: &str| format!("CARGO_TARGET_{}_{what}", target.to_uppercase().replace('-', "_"));
    // Not position-independent: a static-pie binary carries a relocation for every pointer in
    // its read-only tables (+4 MiB on x86_64).
    build.env(var("LINKER"), "rust-lld").env(var("RUSTFLAGS"), "-C relocation-model=static");
    // `ring` (rustls, the `tls` feature) compiles C and assembly for the target.
    if let Some(cc) = c_compiler(target) {
        build.env(format!("CC_{}", target.replace('-', "_")), cc);
    }
    status(build)?;
    let built = target_dir().join(target).join("dist/egress-tracer");
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    anyhow::ensure!(is_static(&bytes), "{} is dynamically linked", built.display());
    let bpf = embedded_bpf_endianness(&bytes).context("no embedded eBPF object found")?;
    let dir = target_dir().join("packages");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("egress-tracer-{}-{target}", env!("CARGO_PKG_VERSION")));
    std::fs::copy(&built, &out)?;
    println!(
        "dist: {} ({:.2} MiB, static, stripped, eBPF object {bpf})",
        out.strip_prefix(workspace_root()).unwrap_or(&out).display(),
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
    Ok(out)
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
        assert!(supported("mipsel-unknown-linux-musl").is_err());
        assert_eq!(debian_arch("aarch64-unknown-linux-musl").unwrap(), "arm64");
    }
}

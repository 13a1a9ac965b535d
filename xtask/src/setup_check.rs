//! The suite's test of setup itself: `cargo xtask setup` from nothing, in a throwaway cache,
//! must install what a fresh machine lacks, and the eBPF object must then build with what it
//! installed. (The demo once built before it set up, and failed on every fresh machine.)
//!
//! The real toolchain is not uninstalled: setup runs with
//! - an empty `EGRESS_TRACER_CACHE`, and a PATH without any bpf-linker, so it must build and
//!   install bpf-linker from crates.io;
//! - a `rustup` wrapper that reports the nightly `rust-src` as missing, so setup must ask rustup
//!   to add it (the real rustup then does, idempotently);
//! - a `dpkg-query` wrapper that reports `tar` as not installed, so setup must run the real
//!   `apt-get install tar`;
//! - no reference MMDB, so setup must fetch it with the real `npm pack`.
//!
//! The wrappers log every call they pass on; the check asserts on those logs, on setup's own
//! output and on the files it installed, then builds the eBPF object in its own target
//! directory with only that PATH.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{
    run::{describe, target_dir},
    setup::Ready,
    steps::Outcome,
};

/// The package the `dpkg-query` wrapper pretends is missing (installed on every machine that
/// runs the suite, so the real `apt-get install` is a no-op).
const MISSING_DEB: &str = "tar";

/// Runs the check (see the module documentation).
pub(crate) fn run(ready: &Ready) -> anyhow::Result<Outcome> {
    if !crate::run::is_root() {
        return Ok(Outcome::Skip("needs root (apt-get)".into()));
    }
    let root = target_dir().join("setup-from-nothing");
    let _ = std::fs::remove_dir_all(&root);
    let cache = root.join("cache");
    let shims = root.join("shims");
    let log = root.join("calls.log");
    std::fs::create_dir_all(&shims)?;
    std::fs::create_dir_all(&cache)?;
    write_shims(&shims, &log)?;
    let path = path_without_bpf_linker(&shims)?;

    let xtask = std::env::current_exe().context("finding the xtask binary")?;
    let mut setup = Command::new(&xtask);
    setup.arg("setup").env("EGRESS_TRACER_CACHE", &cache).env("PATH", &path);
    println!("$ EGRESS_TRACER_CACHE={} PATH={} {}", cache.display(), path, describe(&setup));
    let out = setup.output().context("running xtask setup")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    anyhow::ensure!(
        out.status.success(),
        "setup from nothing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let expect = |what: &str, ok: bool| {
        anyhow::ensure!(ok, "setup from nothing: {what}\nsetup said:\n{stdout}\ncalls:\n{calls}");
        Ok(())
    };
    expect(
        "setup did not see rust-src missing",
        stdout.contains("setup: nightly rust-src: missing"),
    )?;
    expect(
        "setup did not ask rustup to add rust-src",
        calls.lines().any(|l| l.starts_with("rustup component add rust-src")),
    )?;
    expect("setup did not see bpf-linker missing", stdout.contains("setup: bpf-linker: missing"))?;
    expect(
        &format!("setup did not apt-get install {MISSING_DEB}"),
        calls.lines().any(|l| {
            l.starts_with("apt-get install") && l.split_whitespace().any(|w| w == MISSING_DEB)
        }),
    )?;
    expect(
        "setup did not npm pack the reference MMDB",
        calls.lines().any(|l| {
            l.starts_with("npm pack ") && l.contains("@ip-location-db/geo-whois-asn-country-mmdb@")
        }),
    )?;
    let linker = cache.join("bpf-linker/bin/bpf-linker");
    expect(&format!("no bpf-linker was installed at {}", linker.display()), linker.is_file())?;
    let mmdb = cache.join("reference/package/geo-whois-asn-country.mmdb");
    expect(&format!("no reference MMDB at {}", mmdb.display()), mmdb.is_file())?;
    let atlas = cache.join("world-atlas/package/countries-110m.json");
    expect(&format!("no world map data at {}", atlas.display()), atlas.is_file())?;

    build_ebpf_object(ready, &root, &linker, &path)?;
    let _ = std::fs::remove_dir_all(&cache);
    Ok(Outcome::Pass)
}

/// Builds the eBPF object the way aya-build does (nightly, `-Z build-std=core`, bpfel), in a
/// target directory of its own, with only the freshly installed bpf-linker on PATH.
fn build_ebpf_object(ready: &Ready, root: &Path, linker: &Path, path: &str) -> anyhow::Result<()> {
    let bin = linker.parent().context("bpf-linker has a directory")?;
    let target = root.join("ebpf-target");
    let mut build = ready.cargo(&[
        "+nightly",
        "build",
        "--release",
        "-p",
        "tracer-ebpf",
        "--bins",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
    ]);
    build
        .arg(&target)
        .env("PATH", format!("{}:{path}", bin.display()))
        .env("CARGO_ENCODED_RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"\u{1f}-Cdebuginfo=2");
    crate::run::status(build).context("building the eBPF object with the fresh bpf-linker")?;
    let object = target.join("bpfel-unknown-none/release/tracer");
    let bytes = std::fs::read(&object).with_context(|| format!("reading {}", object.display()))?;
    anyhow::ensure!(
        bytes.starts_with(b"\x7fELF") && contains(&bytes, b"tc_upload"),
        "{} is not an eBPF object with the tc_upload program",
        object.display()
    );
    println!("setup from nothing: {} built with {}", object.display(), linker.display());
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Where `program` is on the current PATH.
fn which(program: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} is not on PATH"))
}

/// The wrappers: each logs the call to `log` and runs the real program.
fn write_shims(dir: &Path, log: &Path) -> anyhow::Result<()> {
    let log = log.display();
    let rustup = which("rustup")?;
    let rustup = rustup.display();
    let dpkg_query = which("dpkg-query")?;
    let dpkg_query = dpkg_query.display();
    let apt_get = which("apt-get")?;
    let npm = which("npm")?;
    let shims = [
        (
            "rustup".to_owned(),
            format!(
                "#!/bin/sh\n\
                 # Reports the nightly rust-src as missing; logs what setup asks rustup to add.\n\
                 case \"$*\" in\n\
                 *component\\ list*--installed*) \"{rustup}\" \"$@\" | grep -v '^rust-src'; exit 0 ;;\n\
                 *component\\ add*) echo \"rustup $*\" >> \"{log}\" ;;\n\
                 esac\n\
                 exec \"{rustup}\" \"$@\"\n"
            ),
        ),
        (
            "dpkg-query".to_owned(),
            format!(
                "#!/bin/sh\n\
                 # Reports {MISSING_DEB} as not installed.\n\
                 for last; do :; done\n\
                 if [ \"$last\" = {MISSING_DEB} ]; then printf 'unknown ok not-installed'; exit 0; fi\n\
                 exec \"{dpkg_query}\" \"$@\"\n"
            ),
        ),
        logging_shim("apt-get", &apt_get, &log.to_string()),
        logging_shim("npm", &npm, &log.to_string()),
    ];
    for (name, text) in shims {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn logging_shim(name: &str, real: &Path, log: &str) -> (String, String) {
    let real = real.display();
    (
        name.to_owned(),
        format!("#!/bin/sh\necho \"{name} $*\" >> \"{log}\"\nexec \"{real}\" \"$@\"\n"),
    )
}

/// `shims` first, then the current PATH without any directory that holds a bpf-linker (the
/// cached one included).
fn path_without_bpf_linker(shims: &Path) -> anyhow::Result<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![shims.to_owned()];
    for dir in std::env::split_paths(&path) {
        if dir.join("bpf-linker").exists() {
            anyhow::ensure!(
                !dir.join("cargo").exists(),
                "{} holds both cargo and a bpf-linker: remove that bpf-linker (setup installs \
                 its own into its cache) so this check can hide it",
                dir.display()
            );
            continue;
        }
        dirs.push(dir);
    }
    let joined = std::env::join_paths(dirs)?;
    Ok(joined.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    /// Only `setup::Ready::cargo` (and setup's own `cargo install`) may run cargo: a command
    /// that builds without setting up first fails on a fresh machine.
    #[test]
    fn cargo_runs_only_through_ready() {
        // Every source file, those of module directories (`vm/`) included.
        let mut pending = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        let mut files = Vec::new();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() { pending.push(path) } else { files.push(path) }
            }
        }
        assert!(files.iter().any(|f| f.ends_with("vm/mod.rs")), "subdirectories are searched");
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "setup.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Built at run time so that this file does not match itself.
            for needle in [format!("cmd({:?}", "cargo"), format!("Command::new({:?})", "cargo")] {
                assert!(
                    !text.contains(&needle),
                    "{name} runs cargo without setup::Ready ({needle})"
                );
            }
        }
    }
}

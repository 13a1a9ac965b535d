//! `cargo xtask dist deb`: a .deb built directly with `dpkg-deb` (no cargo-deb): the static
//! binary in /usr/bin, the systemd unit in /lib/systemd/system, the configuration as a conffile
//! in /etc/egress-tracer/config.toml, README and copyright (with the embedded database's CC BY
//! 4.0 attribution) in /usr/share/doc/egress-tracer, and maintainer scripts from
//! deploy/debian/.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::run::{cmd, status, target_dir, workspace_root};

/// The package's files: (source relative to the workspace, path in the package, mode).
const FILES: &[(&str, &str, u32)] = &[
    ("deploy/systemd/egress-tracer.service", "lib/systemd/system/egress-tracer.service", 0o644),
    ("deploy/config.toml", "etc/egress-tracer/config.toml", 0o644),
    ("README.md", "usr/share/doc/egress-tracer/README.md", 0o644),
    ("deploy/debian/copyright", "usr/share/doc/egress-tracer/copyright", 0o644),
    ("deploy/debian/postinst", "DEBIAN/postinst", 0o755),
    ("deploy/debian/prerm", "DEBIAN/prerm", 0o755),
    ("deploy/debian/postrm", "DEBIAN/postrm", 0o755),
];

/// Files under /etc that dpkg keeps when the administrator changed them.
const CONFFILES: &[&str] = &["/etc/egress-tracer/config.toml"];

fn put(stage: &Path, rel: &str, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let path = stage.join(rel);
    fs::create_dir_all(path.parent().expect("a file in a directory"))?;
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Every regular file under `dir`, relative to it, sorted.
fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, base, out)?;
        } else {
            out.push(path.strip_prefix(base)?.to_owned());
        }
    }
    out.sort();
    Ok(())
}

fn control(arch: &str, installed_kib: u64) -> String {
    let version = env!("CARGO_PKG_VERSION");
    format!(
        "Package: egress-tracer\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: egress-tracer maintainers <maintainers@example.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Section: net\n\
         Priority: optional\n\
         Recommends: systemd\n\
         Description: per-device egress traffic by destination country (eBPF TC)\n \
         egress-tracer counts, in the kernel, every packet the devices on a LAN send and\n \
         receive, by device (MAC address) and by the country of the remote address, using\n \
         two eBPF TC programs on the LAN interface. The agent applies a per-device policy\n \
         of approved regions (alert, or drop in the kernel) and serves Prometheus metrics,\n \
         a JSON API and a web page. Static binary with the eBPF programs and a default\n \
         country database (CC BY 4.0, NRO) inside; runs as a hardened systemd service.\n"
    )
}

/// Stages and builds the package around `binary`; returns the .deb's path.
pub(crate) fn build(binary: &Path, arch: &str) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let dist = target_dir().join("packages");
    let stage = dist.join(format!("deb-{arch}"));
    let _ = fs::remove_dir_all(&stage);
    let bin = fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    put(&stage, "usr/bin/egress-tracer", &bin, 0o755)?;
    for (src, dest, mode) in FILES {
        let contents = fs::read(root.join(src)).with_context(|| format!("reading {src}"))?;
        put(&stage, dest, &contents, *mode)?;
    }
    let mut payload = Vec::new();
    files_under(&stage, &stage, &mut payload)?;
    payload.retain(|p| !p.starts_with("DEBIAN"));
    let mut md5sums = String::new();
    let mut bytes = 0u64;
    for rel in &payload {
        let out = cmd("md5sum", &[]).arg(stage.join(rel)).output().context("md5sum")?;
        anyhow::ensure!(out.status.success(), "md5sum {}", rel.display());
        let text = String::from_utf8_lossy(&out.stdout);
        let sum = text.split_whitespace().next().context("md5sum printed nothing")?;
        md5sums.push_str(&format!("{sum}  {}\n", rel.display()));
        bytes += fs::metadata(stage.join(rel))?.len();
    }
    put(&stage, "DEBIAN/md5sums", md5sums.as_bytes(), 0o644)?;
    put(&stage, "DEBIAN/conffiles", (CONFFILES.join("\n") + "\n").as_bytes(), 0o644)?;
    put(&stage, "DEBIAN/control", control(arch, bytes.div_ceil(1024)).as_bytes(), 0o644)?;
    let deb = dist.join(format!("egress-tracer_{}_{arch}.deb", env!("CARGO_PKG_VERSION")));
    let mut build = cmd("dpkg-deb", &["--root-owner-group", "-Zxz", "--build"]);
    build.arg(&stage).arg(&deb);
    status(build).context("dpkg-deb --build")?;
    Ok(deb)
}

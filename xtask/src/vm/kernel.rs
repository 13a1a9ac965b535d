//! Debian bookworm's own kernel and `busybox-static` for an architecture, fetched by package
//! name with `apt-get download` and unpacked with `dpkg-deb`, cached under
//! `<cache>/vm/<debian arch>/` (`<debian arch>-6.12/` for the 6.12 series).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::Context as _;

use super::{
    Unavailable,
    arch::{Arch, Series},
};
use crate::run::{cmd, describe, status};

/// The parts of the kernel package the VM uses: only these are unpacked (the whole package is
/// about 400 MB).
const KERNEL_PARTS: &[&str] = &[
    "./boot/*",
    "./lib/modules/*/modules.builtin",
    "./lib/modules/*/kernel/net/*",
    "./lib/modules/*/kernel/drivers/net/*",
];

/// A kernel with its modules, and busybox, for one architecture.
#[derive(Debug)]
pub(crate) struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-amd64`.
    pub(crate) release: String,
    /// The Debian package the kernel came from, with its version.
    pub(crate) package: String,
    /// The image QEMU boots (`vmlinuz-*`, or the ELF `vmlinux-*` on MIPS).
    pub(crate) image: PathBuf,
    /// `lib/modules/<release>`.
    pub(crate) modules: PathBuf,
    /// The static busybox of the same architecture.
    pub(crate) busybox: PathBuf,
}

/// The cache of `arch`'s kernel of `series`.
fn dir(arch: Arch, series: Series) -> PathBuf {
    crate::setup::cache_dir().join("vm").join(format!("{}{}", arch.debian(), series.cache_suffix()))
}

/// The kernel and busybox of `arch`, from the cache or fetched now. Fails with
/// [`Unavailable`] when apt cannot download them.
pub(crate) fn fetch(arch: Arch, series: Series) -> anyhow::Result<Kernel> {
    let dir = dir(arch, series);
    let stamp = dir.join("kernel.txt");
    if let Some(kernel) = cached(&dir, &stamp) {
        println!("vm: {} kernel {} (cached: {})", arch.name(), kernel.release, dir.display());
        return Ok(kernel);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let download = dir.join("download");
    std::fs::create_dir_all(&download)?;
    let deb_arch = arch.debian();
    let meta = download_deb(&download, &series.metapackage(arch), deb_arch)?;
    let depends = output(cmd("dpkg-deb", &["-f", &meta.to_string_lossy(), "Depends"]))?;
    let real = depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .find(|d| d.starts_with("linux-image-"))
        .with_context(|| format!("{} depends on no linux-image-*: {depends:?}", meta.display()))?
        .to_owned();
    let real_deb = download_deb(&download, &real, deb_arch)?;
    let version = output(cmd("dpkg-deb", &["-f", &real_deb.to_string_lossy(), "Version"]))?;
    let root = dir.join("root");
    unpack(&real_deb, &root, KERNEL_PARTS)?;
    let busybox_deb = download_deb(&download, "busybox-static", deb_arch)?;
    unpack(&busybox_deb, &root, &["./bin/busybox"])?;
    std::fs::remove_dir_all(&download)?;
    let release = only_dir(&root.join("lib/modules"))?;
    std::fs::write(&stamp, format!("{release}\n{real} {}\n", version.trim()))?;
    let kernel = cached(&dir, &stamp).context("the unpacked kernel is incomplete")?;
    println!("vm: {} kernel {} from {}", arch.name(), kernel.release, kernel.package);
    Ok(kernel)
}

/// The kernel unpacked in `dir`, if `stamp` (written last) says it is complete.
fn cached(dir: &Path, stamp: &Path) -> Option<Kernel> {
    let text = std::fs::read_to_string(stamp).ok()?;
    let mut lines = text.lines();
    let release = lines.next()?.to_owned();
    let package = lines.next()?.to_owned();
    let root = dir.join("root");
    let image =
        std::fs::read_dir(root.join("boot")).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("vmlinu") && n.ends_with(release.as_str())
            })
        })?;
    let modules = root.join("lib/modules").join(&release);
    let busybox = root.join("bin/busybox");
    (modules.is_dir() && busybox.is_file()).then_some(Kernel {
        release,
        package,
        image,
        modules,
        busybox,
    })
}

/// `apt-get download name:arch` into `dir`; returns the .deb's path.
fn download_deb(dir: &Path, name: &str, arch: &str) -> anyhow::Result<PathBuf> {
    let wanted = format!("{name}:{arch}");
    let mut c = cmd("apt-get", &["download", "-q", &wanted]);
    c.current_dir(dir);
    println!("$ {}", describe(&c));
    let out = c.output().context("running apt-get download")?;
    if !out.status.success() {
        return Err(Unavailable(format!(
            "`apt-get download {wanted}` failed (is the {arch} architecture added and apt-get \
             update run? `cargo xtask setup` does both): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    let prefix = format!("{name}_");
    std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
        .with_context(|| format!("apt-get download {wanted} left no {prefix}*.deb"))
}

/// Unpacks the members of `deb` matching `patterns` into `root` (`dpkg-deb --fsys-tarfile |
/// tar -x`).
fn unpack(deb: &Path, root: &Path, patterns: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    println!("vm: unpacking {} ({})", deb.display(), patterns.join(" "));
    let mut fsys = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let mut tar = Command::new("tar");
    tar.arg("-x").arg("-C").arg(root).arg("--wildcards").args(patterns);
    tar.stdin(fsys.stdout.take().context("dpkg-deb's stdout")?);
    let result = status(tar);
    let fsys_status = fsys.wait()?;
    result?;
    anyhow::ensure!(fsys_status.success(), "dpkg-deb --fsys-tarfile {} failed", deb.display());
    Ok(())
}

/// The one directory in `dir` (the kernel release under `lib/modules`).
fn only_dir(dir: &Path) -> anyhow::Result<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => anyhow::bail!("expected one kernel release in {}, found {names:?}", dir.display()),
    }
}

/// A command's standard output; fails on a non-zero exit.
fn output(mut c: Command) -> anyhow::Result<String> {
    let out = c.output().with_context(|| format!("running {}", describe(&c)))?;
    anyhow::ensure!(
        out.status.success(),
        "`{}` failed: {}",
        describe(&c),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

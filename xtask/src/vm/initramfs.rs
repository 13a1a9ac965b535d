//! The VM's initramfs: an uncompressed cpio archive (the kernel's "newc" format, written
//! here) holding busybox, the static agent, the modules to load and the lab's `/init`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{kernel::Kernel, modules};

/// The guest script run as `/init`.
const INIT: &str = include_str!("init.sh");

/// Directories of the image.
const DIRS: &[&str] =
    &["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "run", "var", "var/lib"];

/// Writes the initramfs for `kernel` with `agent` as `/bin/egress-tracer` to `out`;
/// returns the names of the modules it loads, in order.
pub(crate) fn build(kernel: &Kernel, agent: &Path, out: &Path) -> anyhow::Result<Vec<String>> {
    let mods = modules::resolve(&kernel.modules)
        .with_context(|| format!("resolving the modules of {}", kernel.release))?;
    let mut cpio = Cpio::default();
    for dir in DIRS {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for /init before anything is mounted.
    cpio.char_device("dev/console", 5, 1);
    cpio.file("init", 0o755, INIT.as_bytes());
    let busybox = std::fs::read(&kernel.busybox)?;
    cpio.file("bin/busybox", 0o755, &busybox);
    let bytes =
        std::fs::read(agent).with_context(|| format!("reading the agent {}", agent.display()))?;
    cpio.file("bin/egress-tracer", 0o755, &bytes);
    let mut order = String::new();
    for m in &mods {
        cpio.file(&format!("lib/modules/{}.ko", m.name), 0o644, &m.bytes);
        order.push_str(&m.name);
        order.push('\n');
    }
    cpio.file("lib/modules/order", 0o644, order.as_bytes());
    let bytes = cpio.finish();
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "vm: initramfs {} ({:.1} MiB; modules: {})",
        out.display(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        mods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(" ")
    );
    Ok(mods.into_iter().map(|m| m.name).collect())
}

/// Where the initramfs of `arch` for kernel `series` is written (one per row, so that rows
/// can boot at once).
pub(crate) fn path(arch: super::arch::Arch, series: super::arch::Series) -> PathBuf {
    crate::run::target_dir().join("vm").join(format!(
        "initramfs-{}-{}.cpio",
        arch.name(),
        series.name()
    ))
}

/// A cpio archive in the "newc" format (`070701`), as the kernel's initramfs unpacker reads it.
#[derive(Debug, Default)]
struct Cpio {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, 2, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, 1, (0, 0), data);
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020_600, 1, (major, minor), &[]);
    }

    /// One header, the NUL-terminated name and the data, each padded to 4 bytes.
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_inode += 1;
        let size = u32::try_from(data.len()).expect("initramfs members are below 4 GiB");
        let name_size = u32::try_from(name.len() + 1).expect("short names");
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name_size,
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_what_cpio_reads() {
        let mut cpio = Cpio::default();
        cpio.dir("bin");
        cpio.file("bin/x", 0o755, b"hello");
        let bytes = cpio.finish();
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        // Header: magic + 13 fields of 8 hex digits; the mode of the directory.
        assert_eq!(&bytes[14..22], b"000041ed");
        assert_eq!(&bytes[110..114], b"bin\0");
        let second = 112 + 4; // 110 + "bin\0" padded to 116
        assert_eq!(&bytes[second + 14..second + 22], b"000081ed");
        assert_eq!(&bytes[second + 54..second + 62], b"00000005", "file size");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        // GNU cpio, where installed, lists it.
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        std::fs::write(&dir, &bytes).unwrap();
        if let Ok(out) =
            std::process::Command::new("cpio").args(["-t", "--quiet", "-F"]).arg(&dir).output()
        {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "bin\nbin/x\n");
        }
        let _ = std::fs::remove_file(&dir);
    }
}

//! Making sure the pin directory is on a BPF filesystem.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Where bpffs is conventionally mounted.
pub const DEFAULT_MOUNT: &str = "/sys/fs/bpf";

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Checks that `dir` is (or will be created) on a bpffs; when it lies under `/sys/fs/bpf` and
/// nothing is mounted there, mounts bpffs (as systemd and most BPF tools do).
pub fn ensure(dir: &Path) -> anyhow::Result<()> {
    let existing: PathBuf =
        dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_owned();
    if is_bpffs(&existing) {
        return Ok(());
    }
    let mount = Path::new(DEFAULT_MOUNT);
    if dir.starts_with(mount) && mount.is_dir() {
        nix::mount::mount(
            Some("bpf"),
            mount,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| {
            format!("{DEFAULT_MOUNT} is not a BPF filesystem and mounting one there failed")
        })?;
        tracing::info!("mounted bpffs on {DEFAULT_MOUNT}");
        return Ok(());
    }
    anyhow::bail!(
        "{} is not on a BPF filesystem: mount one (`mount -t bpf bpf /sys/fs/bpf`) or choose --bpffs-dir",
        dir.display()
    )
}

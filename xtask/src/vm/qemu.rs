//! Booting the kernel and initramfs with QEMU, the serial console captured line by line.

use std::{
    io::BufRead as _,
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::arch::Arch;
use crate::run::describe;

/// How long a KVM guest may take to reach `/init` (`ETVM BEGIN`) before KVM is taken as
/// unusable: a nested /dev/kvm can open fine and yet run no guest, or stop it with "KVM
/// internal error ... emulation failure". QEMU ending before `/init` under KVM (it aborts with
/// "failed to set MSR 0x10a" on some hosts) counts the same.
pub(crate) const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(20);

/// The guest did not reach `/init` under KVM (within [`KVM_FIRST_OUTPUT`], or QEMU ended
/// first): boot again with TCG.
#[derive(Debug)]
pub(crate) struct KvmSilent;

impl std::fmt::Display for KvmSilent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest did not reach /init under KVM (QEMU ended, or {}s passed)",
            KVM_FIRST_OUTPUT.as_secs()
        )
    }
}

impl std::error::Error for KvmSilent {}

/// Whether KVM may be used: /dev/kvm opens read-write.
pub(crate) fn kvm_works() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Whether the QEMU system emulator of `arch` is installed.
pub(crate) fn installed(arch: Arch) -> bool {
    crate::run::succeeds(crate::run::cmd(arch.qemu(), &["--version"]))
}

/// Boots `image` with `initramfs` and returns the console lines up to `ETVM END` (QEMU is
/// then stopped if it has not powered off by itself), each echoed with `label` in front. Fails
/// on a timeout, with the last lines, or with [`KvmSilent`].
pub(crate) fn boot(
    arch: Arch,
    label: &str,
    image: &Path,
    initramfs: &Path,
    kvm: bool,
) -> anyhow::Result<Vec<String>> {
    let console = arch.console();
    let append = format!("console={console} quiet loglevel=3 panic=-1 rdinit=/init");
    let mut qemu = Command::new(arch.qemu());
    qemu.args(arch.machine_args(kvm))
        .args(["-m", &arch.memory_mib().to_string(), "-smp", "1"])
        // No network card: every address the lab uses lives inside the VM.
        .args(["-nic", "none", "-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-kernel"])
        .arg(image)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!("$ {}", describe(&qemu));
    let mut child = qemu.spawn().with_context(|| format!("starting {}", arch.qemu()))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().context("qemu's stdout")?;
    let stderr = child.stderr.take().context("qemu's stderr")?;
    for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned();
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let limit = Duration::from_secs(arch.timeout_secs(kvm));
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut silent = false;
    let mut in_init = false;
    let ended = loop {
        let mut left = limit.saturating_sub(started.elapsed());
        if kvm && !in_init {
            left = left.min(KVM_FIRST_OUTPUT.saturating_sub(started.elapsed()));
            if left.is_zero() {
                silent = true;
                break false;
            }
        }
        match rx.recv_timeout(left) {
            Ok(line) => {
                println!("[{label}] {line}");
                in_init |= line.starts_with("ETVM ");
                let end = line.starts_with("ETVM END");
                lines.push(line);
                if end {
                    break true;
                }
            }
            // Both streams closed: QEMU exited (before `/init` under KVM: KVM is unusable).
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                silent = kvm && !in_init;
                break false;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                silent = kvm && !in_init;
                break false;
            }
        }
    };
    // Poweroff normally ends QEMU; a board that cannot power off is stopped (a silent or timed
    // out one at once).
    let grace = if ended { Duration::from_secs(10) } else { Duration::ZERO };
    let deadline = Instant::now() + grace;
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait()?.is_none() {
        let _ = child.kill();
    }
    let exit = child.wait()?;
    if silent {
        return Err(KvmSilent.into());
    }
    if !ended {
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        anyhow::bail!(
            "{} ended without `ETVM END` after {:.0}s ({exit}; limit {}s); last lines:\n{tail}",
            arch.qemu(),
            started.elapsed().as_secs_f64(),
            limit.as_secs()
        );
    }
    Ok(lines)
}

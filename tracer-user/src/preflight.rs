//! Checks made before touching the kernel, so failures come with a reason and a fix.

use std::fs;

/// Capability bits (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// A check that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The process lacks a needed capability.
    #[error(
        "missing capability {0}: run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON \
         (e.g. systemd AmbientCapabilities=)"
    )]
    MissingCapability(&'static str),
    /// The kernel has no BPF syscall.
    #[error(
        "this kernel does not support BPF (no /proc/sys/kernel/unprivileged_bpf_disabled): it needs CONFIG_BPF_SYSCALL=y"
    )]
    NoBpf,
    /// A LAN interface does not exist.
    #[error("interface {0:?} does not exist (check `ip link`; interface names are case-sensitive)")]
    NoSuchInterface(String),
}

fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Checks capabilities, BPF support and that every interface exists.
pub fn check(interfaces: &[String]) -> Result<(), PreflightError> {
    if fs::metadata("/proc/sys/kernel/unprivileged_bpf_disabled").is_err() {
        return Err(PreflightError::NoBpf);
    }
    let caps = effective_caps().unwrap_or(0);
    if !has(caps, CAP_BPF) && !has(caps, CAP_SYS_ADMIN) {
        return Err(PreflightError::MissingCapability("CAP_BPF"));
    }
    if !has(caps, CAP_NET_ADMIN) {
        return Err(PreflightError::MissingCapability("CAP_NET_ADMIN"));
    }
    if !has(caps, CAP_PERFMON) && !has(caps, CAP_SYS_ADMIN) {
        return Err(PreflightError::MissingCapability("CAP_PERFMON"));
    }
    for name in interfaces {
        if crate::netif::index(name) == 0 {
            return Err(PreflightError::NoSuchInterface(name.clone()));
        }
    }
    Ok(())
}

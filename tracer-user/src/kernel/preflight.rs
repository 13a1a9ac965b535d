//! What the agent needs from the machine, checked before touching the kernel: the report of
//! `egress-tracer check` (one line per item, OK/WARN/FAIL with a fix), and the refusal `run`
//! gives when an item fails.

use std::{
    fmt::Write as _,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
};

use aya::{maps::MapType, programs::ProgramType, util::KernelVersion};

/// Capability bits (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// How an item came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, with a caveat, or could not be told for sure.
    Warn,
    /// Missing: `run` would fail.
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Item {
    /// What was checked.
    pub what: &'static str,
    /// The outcome.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when there is nothing to do).
    pub fix: String,
}

/// The first failed item, as `run` reports it.
#[derive(Debug, thiserror::Error)]
#[error("{detail}: {fix} (`egress-tracer check` lists every requirement)")]
pub struct PreflightError {
    /// What was found.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
}

/// Every item, in order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The lines.
    pub items: Vec<Item>,
}

impl Report {
    fn push(&mut self, what: &'static str, level: Level, detail: String, fix: &str) {
        self.items.push(Item { what, level, detail, fix: fix.to_owned() });
    }

    /// The first failed item.
    pub fn first_failure(&self) -> Option<&Item> {
        self.items.iter().find(|i| i.level == Level::Fail)
    }

    /// One line per item, `OK  `/`WARN`/`FAIL`, and the fix on the next line where there is one.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            let level = match item.level {
                Level::Ok => "OK  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            let _ = writeln!(out, "{level}  {:<13} {}", item.what, item.detail);
            if !item.fix.is_empty() {
                let _ = writeln!(out, "      {:<13} fix: {}", "", item.fix);
            }
        }
        out
    }
}

/// The process's effective capabilities (`CapEff` of /proc/self/status).
fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// The kernel configuration (/proc/config.gz, else /boot/config-$(uname -r)), if readable.
fn kernel_config(release: &str) -> Option<String> {
    if let Ok(file) = fs::File::open("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(file).read_to_string(&mut text).is_ok() {
            return Some(text);
        }
    }
    fs::read_to_string(format!("/boot/config-{release}")).ok()
}

/// Whether the kernel has a TC piece: `Some(true)` built in or loadable, `Some(false)` known
/// absent, `None` unknown. Evidence: the kernel config, a loaded module, the module lists.
fn tc_feature(config: Option<&str>, release: &str, option: &str, module: &str) -> Option<bool> {
    if let Some(config) = config {
        let set = config.lines().any(|l| l == format!("{option}=y") || l == format!("{option}=m"));
        return Some(set);
    }
    if Path::new("/sys/module").join(module).exists() {
        return Some(true);
    }
    let dir = PathBuf::from(format!("/lib/modules/{release}"));
    let listed = ["modules.builtin", "modules.dep"].iter().any(|f| {
        fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains(&format!("/{module}.ko")))
    });
    if listed { Some(true) } else { None }
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// The whole report. `bpffs_dir`: the pin directory to check (`None`: skip; `run` mounts
/// bpffs itself when it can).
pub fn report(interfaces: &[String], bpffs_dir: Option<&Path>) -> Report {
    let mut r = Report::default();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = KernelVersion::current().ok();
    let at_least = |major, minor| version.is_some_and(|v| v >= KernelVersion::new(major, minor, 0));
    let caps = effective_caps();
    let privileged = has(caps, CAP_BPF) || has(caps, CAP_SYS_ADMIN);

    if at_least(5, 8) {
        r.push("kernel", Level::Ok, format!("{release} (5.8 or later)"), "");
    } else {
        let fix = "use a 5.8+ kernel (ring buffer, CAP_BPF); older ones work only with backports";
        r.push("kernel", Level::Warn, format!("{release} is older than 5.8"), fix);
    }

    let fix_bpf = "a kernel with CONFIG_BPF_SYSCALL=y";
    if fs::metadata("/proc/sys/kernel/unprivileged_bpf_disabled").is_err() {
        r.push("bpf syscall", Level::Fail, "this kernel does not support BPF".into(), fix_bpf);
    } else if !privileged {
        let detail = "present (not probed: no CAP_BPF to load a test program)".into();
        r.push("bpf syscall", Level::Warn, detail, "run the check with the agent's privileges");
    } else {
        let (level, detail) = match aya::sys::is_program_supported(ProgramType::SchedClassifier) {
            Ok(true) => (Level::Ok, "a TC classifier test program loads".to_owned()),
            Ok(false) => (Level::Fail, "TC classifier programs are not supported".to_owned()),
            Err(e) => (Level::Fail, format!("loading a TC test program failed: {e}")),
        };
        r.push("bpf syscall", level, detail, if level == Level::Ok { "" } else { fix_bpf });
        let (level, detail) = match aya::sys::is_map_supported(MapType::RingBuf) {
            Ok(true) => (Level::Ok, "BPF ring buffer maps can be created".to_owned()),
            Ok(false) => (Level::Fail, "no BPF ring buffer maps (needs 5.8+)".to_owned()),
            Err(e) => (Level::Fail, format!("creating a ring buffer map failed: {e}")),
        };
        let fix = if level == Level::Ok { "" } else { "a 5.8+ kernel" };
        r.push("ring buffer", level, detail, fix);
    }

    let config = kernel_config(&release);
    let tcx = at_least(6, 6);
    let clsact = tc_feature(config.as_deref(), &release, "CONFIG_NET_SCH_INGRESS", "sch_ingress");
    let cls_bpf = tc_feature(config.as_deref(), &release, "CONFIG_NET_CLS_BPF", "cls_bpf");
    let (level, detail, fix) = match (clsact, cls_bpf) {
        (Some(true), Some(true)) => {
            (Level::Ok, "clsact qdisc and cls_bpf filters available".to_owned(), "")
        }
        (Some(false), _) | (_, Some(false)) if tcx => (
            Level::Warn,
            "no clsact/cls_bpf in the kernel config; TCX is used instead".to_owned(),
            "--tc-attach netlink would fail; auto and tcx work",
        ),
        (Some(false), _) | (_, Some(false)) => (
            Level::Fail,
            "the kernel config lacks CONFIG_NET_SCH_INGRESS or CONFIG_NET_CLS_BPF".to_owned(),
            "enable both (OpenWrt: kmod-sched-core and kmod-sched-bpf), or use a 6.6+ kernel (TCX)",
        ),
        _ => (
            Level::Warn,
            "could not tell (no kernel config, module not loaded or listed)".to_owned(),
            "attaching will tell; CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF are needed below 6.6",
        ),
    };
    r.push("tc clsact", level, detail, fix);
    if tcx {
        r.push("tcx", Level::Ok, "available (kernel 6.6+): TCX links are used".into(), "");
    } else {
        let detail = "not available (kernel < 6.6): netlink clsact filters are used".into();
        r.push("tcx", Level::Ok, detail, "");
    }

    let btf = if Path::new("/sys/kernel/btf/vmlinux").exists() { "present" } else { "absent" };
    let detail = format!("{btf}; not needed (the programs use no CO-RE relocations)");
    r.push("btf", Level::Ok, detail, "");

    let fix_caps = "run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (systemd: \
                    CapabilityBoundingSet=/AmbientCapabilities=; before 5.8 CAP_SYS_ADMIN)";
    let missing: Vec<&str> = [
        ("CAP_BPF", has(caps, CAP_BPF) || has(caps, CAP_SYS_ADMIN)),
        ("CAP_NET_ADMIN", has(caps, CAP_NET_ADMIN)),
        ("CAP_PERFMON", has(caps, CAP_PERFMON) || has(caps, CAP_SYS_ADMIN)),
    ]
    .into_iter()
    .filter_map(|(name, ok)| (!ok).then_some(name))
    .collect();
    if missing.is_empty() {
        r.push("capabilities", Level::Ok, "CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON".into(), "");
    } else {
        let detail = format!("missing capability {}", missing.join(", "));
        r.push("capabilities", Level::Fail, detail, fix_caps);
    }

    if let Some(dir) = bpffs_dir {
        check_bpffs(&mut r, dir, has(caps, CAP_SYS_ADMIN));
    }

    for name in interfaces {
        match crate::kernel::netif::index(name) {
            0 => {
                let detail = format!("interface {name:?} does not exist");
                let fix = "check `ip link` (names are case-sensitive); on OpenWrt the LAN bridge \
                           is br-lan; if it was renamed, update --lan / `lan` in the config";
                r.push("interface", Level::Fail, detail, fix);
            }
            index => r.push("interface", Level::Ok, format!("{name} (index {index})"), ""),
        }
    }
    r
}

/// The pin directory: on a bpffs (or mountable), writable.
fn check_bpffs(r: &mut Report, dir: &Path, can_mount: bool) {
    let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    let mount_fix = "mount -t bpf bpf /sys/fs/bpf (fstab: `bpf /sys/fs/bpf bpf defaults 0 0`)";
    if !is_bpffs(existing) {
        let default = dir.starts_with(crate::kernel::bpffs::DEFAULT_MOUNT);
        let detail = format!("{} is not on a BPF filesystem", dir.display());
        if default && can_mount {
            let detail = format!("{detail}; `run` mounts bpffs on /sys/fs/bpf itself");
            r.push("bpffs", Level::Warn, detail, "");
        } else {
            r.push("bpffs", Level::Fail, detail, mount_fix);
        }
        return;
    }
    if let Err(err) = nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK) {
        let detail = format!("{} is not writable: {err}", existing.display());
        let fix = "run with the agent's privileges; under systemd add the pin directory to \
                   ReadWritePaths=";
        r.push("bpffs", Level::Fail, detail, fix);
        return;
    }
    r.push("bpffs", Level::Ok, format!("{} on bpffs, writable", dir.display()), "");
}

/// What `run` checks before touching the kernel: capabilities, BPF, every interface. The
/// first failure comes back with its fix.
pub fn check(interfaces: &[String]) -> Result<(), PreflightError> {
    match report(interfaces, None).first_failure() {
        Some(item) => Err(PreflightError { detail: item.detail.clone(), fix: item.fix.clone() }),
        None => Ok(()),
    }
}

//! The systemd unit in `deploy/systemd/`: `systemd-analyze verify` accepts it without a word,
//! and `systemd-analyze security` rates it at least as well as node_exporter's example unit
//! (exposure: lower is better). Both run offline against a throwaway root, so they need neither
//! systemd as PID 1 nor root. (`cargo xtask setup` installs Debian's `systemd` package for
//! systemd-analyze; without it this test says so and passes, so that plain `cargo test` works
//! on a bare machine.)

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn have_systemd_analyze() -> bool {
    let found = Command::new("systemd-analyze").arg("--version").output().is_ok();
    if !found {
        println!("SKIPPED: no systemd-analyze (cargo xtask setup installs Debian's systemd)");
    }
    found
}

/// A root holding the unit, stand-ins for the programs it runs (verify checks they are
/// executable) and the host's targets (verify resolves the unit's dependencies).
fn unit_root(dir: &Path, unit: &Path) -> PathBuf {
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    for program in ["sh", "kill", "egress-tracer"] {
        let path = root.join("usr/bin").join(program);
        std::fs::write(&path, "#!/bin/true\n").unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, executable).unwrap();
    }
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "target") {
            std::fs::copy(entry.path(), units.join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(unit, units.join(unit.file_name().unwrap())).unwrap();
    root
}

/// The overall exposure `systemd-analyze security --offline=true` gives `unit`.
fn exposure(unit: &Path) -> f64 {
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .expect("systemd-analyze");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let line = out.lines().find(|l| l.contains("Overall exposure level")).expect("a score line");
    let score = line.rsplit(": ").next().unwrap().split_whitespace().next().unwrap();
    score.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn the_unit_verifies_cleanly() {
    if !have_systemd_analyze() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("et-systemd-{}", std::process::id()));
    let root = unit_root(&dir, &repo().join("deploy/systemd/egress-tracer.service"));
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("egress-tracer.service")
        .output()
        .expect("systemd-analyze");
    let said =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_unit_is_at_least_as_hardened_as_node_exporters() {
    if !have_systemd_analyze() {
        return;
    }
    let ours = exposure(&repo().join("deploy/systemd/egress-tracer.service"));
    let theirs = exposure(&repo().join("tracer-user/tests/fixtures/node_exporter.service"));
    println!("systemd-analyze security exposure: egress-tracer {ours}, node_exporter {theirs}");
    assert!(ours <= theirs, "egress-tracer.service exposure {ours} > node_exporter's {theirs}");
}

#[test]
fn the_unit_grants_only_the_bpf_capabilities_and_the_pin_directory() {
    let unit =
        std::fs::read_to_string(repo().join("deploy/systemd/egress-tracer.service")).unwrap();
    let lines: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    for expected in [
        "Type=notify",
        "ExecStart=/usr/bin/egress-tracer run --config /etc/egress-tracer/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        // '-': the directory does not exist yet when a fresh boot's first start sets up the
        // namespace (ExecStartPre= creates it).
        "ReadWritePaths=-/sys/fs/bpf/egress-tracer",
        "SystemCallFilter=@system-service bpf",
        "SystemCallFilter=~@privileged @resources @obsolete",
        "SystemCallFilter=bpf",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ] {
        assert!(lines.contains(&expected), "{expected} missing");
    }
    assert!(lines.iter().any(|l| l.starts_with("WatchdogSec=")));
}

#[test]
fn the_default_config_is_valid_and_counts_only() {
    let o = Command::new(env!("CARGO_BIN_EXE_egress-tracer"))
        .arg("check-config")
        .arg(repo().join("deploy/config.toml"))
        .output()
        .expect("egress-tracer check-config");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("OK (") && out.contains("allow everything"), "{out}");
}

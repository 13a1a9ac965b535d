//! `egress-tracer check`: the preflight report, as a user runs it.

use crate::support;

use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(support::agent::agent_bin())
        .arg("check")
        .args(args)
        .output()
        .expect("run egress-tracer check")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_missing_interface_fails_with_the_hint() {
    let o = check(&["--lan", "nosuch-if0"]);
    assert!(!o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("FAIL  interface     interface \"nosuch-if0\" does not exist"), "{out}");
    assert!(out.contains("fix: check `ip link`"), "{out}");
    for what in ["kernel", "bpf syscall", "tc clsact", "tcx", "btf", "capabilities", "bpffs"] {
        assert!(out.lines().any(|l| l[6..].starts_with(what)), "no {what} line:\n{out}");
    }
}

#[test]
fn the_interfaces_come_from_the_config_file() {
    let dir = std::env::temp_dir().join(format!("et-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[agent]\nlan = [\"nosuch-if1\"]\n").unwrap();
    let o = check(&["--config", config.to_str().unwrap()]);
    assert!(text(&o).contains("interface \"nosuch-if1\" does not exist"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_privileges_the_capabilities_fail() {
    if !nix::unistd::geteuid().is_root() {
        let o = check(&["--lan", "lo"]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains("FAIL  capabilities  missing capability CAP_BPF"),
            "{}",
            text(&o)
        );
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::agent::agent_bin())
        .args(["check", "--lan", "lo"])
        .output()
        .expect("setpriv (util-linux)");
    assert!(!o.status.success());
    assert!(text(&o).contains("FAIL  capabilities  missing capability CAP_BPF"), "{}", text(&o));
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn everything_passes_in_the_lab_with_the_units_capabilities() {
    let lab = support::lab("ck");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", lab.netns_path(&lab.gateway()).display()))
        .args(["--", "setpriv", "--bounding-set=-all,+bpf,+net_admin,+perfmon", "--"])
        .arg(support::agent::agent_bin())
        .arg("check");
    for lan in lab.lan_interfaces() {
        cmd.args(["--lan", lan]);
    }
    let o = cmd.output().expect("nsenter");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    for lan in lab.lan_interfaces() {
        assert!(out.contains(&format!("OK    interface     {lan} (index ")), "{out}");
    }
    assert!(out.contains("OK    bpf syscall   a TC classifier test program loads"), "{out}");
}

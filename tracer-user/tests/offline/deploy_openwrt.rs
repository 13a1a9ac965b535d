//! The OpenWrt init script (`deploy/openwrt/files/egress-tracer.init`) run off OpenWrt: a stub
//! of functions.sh/procd.sh (tests/fixtures/openwrt_functions.sh) loads UCI files the way
//! config_load does and prints what the script asks procd for. The generated command line is
//! asserted exactly, and then parsed by the real agent binary.

use std::{path::PathBuf, process::Command};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What the init script asks procd for, given `uci` as /etc/config/egress-tracer.
fn procd_calls(name: &str, uci: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("et-openwrt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("egress-tracer"), uci).unwrap();
    let script = format!(
        ". {}; . {}; start_service; service_triggers",
        repo().join("tracer-user/tests/fixtures/openwrt_functions.sh").display(),
        repo().join("deploy/openwrt/files/egress-tracer.init").display()
    );
    let o =
        Command::new("sh").args(["-c", &script]).env("UCI_CONFIG_DIR", &dir).output().expect("sh");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().lines().map(str::to_owned).collect()
}

fn command(calls: &[String]) -> Vec<&str> {
    calls.iter().filter_map(|l| l.strip_prefix("arg ")).collect()
}

#[test]
fn the_shipped_uci_config_gives_the_default_command_and_triggers() {
    let uci =
        std::fs::read_to_string(repo().join("deploy/openwrt/files/egress-tracer.config")).unwrap();
    let calls = procd_calls("default", &uci);
    assert_eq!(
        command(&calls),
        [
            "/usr/bin/egress-tracer",
            "run",
            "--lan",
            "br-lan",
            "--leases",
            "/tmp/dhcp.leases",
            "--leases",
            "/tmp/hosts/odhcpd",
            "--listen",
            "127.0.0.1:9977",
            "--interval",
            "0",
            "--bpffs-dir",
            "/sys/fs/bpf/egress-tracer",
            "--tc-attach",
            "auto",
        ]
    );
    for expected in [
        "instance",
        "param respawn 3600 5 5",
        "param file /etc/config/egress-tracer",
        "end",
        "reload_trigger egress-tracer",
        "interface_trigger interface.*.up lan /etc/init.d/egress-tracer restart",
    ] {
        assert!(calls.iter().any(|c| c == expected), "{expected} missing: {calls:#?}");
    }
}

const FULL: &str = "
config agent 'agent'
	option enabled 'yes'
	list lan 'br-lan'
	list lan 'br-guest'
	list trigger_interface 'lan'
	list trigger_interface 'guest'
	option listen '192.168.1.1:9977'
	option interval '30'
	list geo '/etc/egress-tracer/a.mmdb'
	list geo '/etc/egress-tracer/b.csv'
	option tc_attach 'netlink'
	option allow 'eu,US'
	option block 'CN,continent:AF'
	option unknown_action 'block'
	option dry_run '1'
	option webhook 'http://192.168.1.10:8080/hook'
	option config '/etc/egress-tracer/config.toml'
";

#[test]
fn every_option_maps_to_its_flag() {
    let calls = procd_calls("full", FULL);
    assert_eq!(
        command(&calls).join(" "),
        "/usr/bin/egress-tracer run --lan br-lan --lan br-guest \
         --geo /etc/egress-tracer/a.mmdb --geo /etc/egress-tracer/b.csv \
         --listen 192.168.1.1:9977 --interval 30 --tc-attach netlink --allow eu,US \
         --block CN,continent:AF --unknown-action block --webhook http://192.168.1.10:8080/hook \
         --config /etc/egress-tracer/config.toml --dry-run"
    );
    let triggers: Vec<&String> = calls.iter().filter(|c| c.starts_with("interface_")).collect();
    assert_eq!(triggers.len(), 2, "{calls:#?}");
    assert!(triggers[1].contains(" guest /etc/init.d/egress-tracer restart"), "{triggers:?}");
}

#[test]
fn a_disabled_agent_starts_nothing() {
    let calls = procd_calls("disabled", "config agent 'agent'\n\toption enabled '0'\n");
    assert!(!calls.iter().any(|c| c == "instance"), "{calls:#?}");
}

#[test]
fn the_generated_command_lines_parse_with_the_real_agent() {
    for (name, uci) in [
        ("parse-full", FULL.to_owned()),
        ("parse-default", {
            std::fs::read_to_string(repo().join("deploy/openwrt/files/egress-tracer.config"))
                .unwrap()
        }),
    ] {
        let calls = procd_calls(name, &uci);
        let args = &command(&calls)[1..];
        // Without privileges the agent stops at its checks, after clap accepted every flag
        // (a flag clap refuses exits with code 2 and "error: unexpected argument").
        let mut cmd = if nix::unistd::geteuid().is_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            c.arg(crate::agent_bin());
            c
        } else {
            Command::new(crate::agent_bin())
        };
        let o = cmd.args(args).output().expect("run the agent");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(2), "{name}: clap refused the command line: {err}");
        assert!(!o.status.success(), "{name}: {err}");
        assert!(err.contains("egress-tracer: error:"), "{name}: {err}");
    }
}

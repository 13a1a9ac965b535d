//! The .deb from `cargo xtask dist deb`, installed for real with dpkg into a throwaway root
//! (`dpkg --root`, maintainer scripts run chrootless with DPKG_ROOT set, so they leave the
//! host's systemd alone): files and modes, the conffile, the installed binary running, the
//! installed unit verifying, a local config edit surviving a reinstall, remove and purge.
//!
//! Needs root (dpkg): run by `cargo xtask test`, which builds the package first and passes it
//! in `EGRESS_TRACER_DEB`.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn dpkg(root: &Path, args: &[&str]) -> Output {
    let o = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-confold", "--log=/dev/null"])
        .args(args)
        .output()
        .expect("dpkg");
    assert!(
        o.status.success(),
        "dpkg {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn query(root: &Path, format: &str) -> String {
    let o = Command::new("dpkg-query")
        .arg(format!("--root={}", root.display()))
        .args(["-W", &format!("-f={format}"), "egress-tracer"])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
#[ignore = "needs root: dpkg installs into a throwaway root; run by cargo xtask test"]
fn the_deb_installs_runs_keeps_its_conffile_and_purges() {
    let deb = std::env::var_os("EGRESS_TRACER_DEB")
        .map(PathBuf::from)
        .expect("EGRESS_TRACER_DEB: the .deb to test (cargo xtask dist deb builds it)");
    let deb = deb.to_str().unwrap();
    let root = std::env::temp_dir().join(format!("et-deb-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();

    dpkg(&root, &["-i", deb]);
    assert_eq!(query(&root, "${Status}"), "install ok installed");
    for (path, expected) in [
        ("usr/bin/egress-tracer", 0o755),
        ("lib/systemd/system/egress-tracer.service", 0o644),
        ("etc/egress-tracer/config.toml", 0o644),
        ("usr/share/doc/egress-tracer/README.md", 0o644),
        ("usr/share/doc/egress-tracer/copyright", 0o644),
    ] {
        assert_eq!(mode(&root.join(path)), expected, "{path}");
    }
    let copyright =
        std::fs::read_to_string(root.join("usr/share/doc/egress-tracer/copyright")).unwrap();
    assert!(copyright.contains("CC-BY-4.0") && copyright.contains("nro.net"), "{copyright}");
    let conffiles = query(&root, "${Conffiles}");
    assert!(conffiles.trim().starts_with("/etc/egress-tracer/config.toml "), "{conffiles}");

    let version =
        Command::new(root.join("usr/bin/egress-tracer")).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("egress-tracer {}", env!("CARGO_PKG_VERSION"))
    );
    let lookup = Command::new(root.join("usr/bin/egress-tracer"))
        .args(["lookup", "36.110.0.1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&lookup.stdout).contains("CN"), "the embedded database");
    let check = Command::new(root.join("usr/bin/egress-tracer"))
        .arg("check-config")
        .arg(root.join("etc/egress-tracer/config.toml"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // A local edit survives a reinstall (dpkg keeps a changed conffile).
    let config = root.join("etc/egress-tracer/config.toml");
    let edited = std::fs::read_to_string(&config).unwrap().replace("\"br0\"", "\"br-test\"");
    std::fs::write(&config, &edited).unwrap();
    dpkg(&root, &["-i", deb]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);

    // Remove keeps the conffile; purge removes it and the package's record.
    dpkg(&root, &["-r", "egress-tracer"]);
    assert!(!root.join("usr/bin/egress-tracer").exists());
    assert!(!root.join("lib/systemd/system/egress-tracer.service").exists());
    assert!(config.exists(), "remove keeps the configuration");
    dpkg(&root, &["-P", "egress-tracer"]);
    assert!(!config.exists(), "purge removes the configuration");
    assert_eq!(query(&root, "${Status}"), "", "no record left");
    let _ = std::fs::remove_dir_all(&root);
}

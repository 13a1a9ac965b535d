//! The `egress-tracer` binary's commands, as a user runs them.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egress-tracer"))
        .args(args)
        .output()
        .expect("run egress-tracer")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn lookup_json_is_one_object_per_line() {
    let o = run(&["lookup", "--json", "36.110.0.1", "193.0.0.1", "10.1.2.3", "2001:db8::1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            r#"{"addr":"36.110.0.1","country":"CN","continent":"AS","regions":["continent:AS"],"local":false}"#,
            r#"{"addr":"193.0.0.1","country":"NL","continent":"EU","regions":["continent:EU","eea","eu"],"local":false}"#,
            r#"{"addr":"10.1.2.3","country":null,"continent":null,"regions":[],"local":true}"#,
            r#"{"addr":"2001:db8::1","country":null,"continent":null,"regions":[],"local":true}"#,
        ]
    );
}

#[test]
fn lookup_uses_custom_regions_from_the_config() {
    let dir = std::env::temp_dir().join(format!("et-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[regions]\nbenelux = [\"BE\", \"NL\", \"LU\"]\n").unwrap();
    let o = run(&["lookup", "--json", "--config", config.to_str().unwrap(), "193.0.0.1"]);
    assert!(
        stdout(&o).contains(r#""regions":["continent:EU","benelux","eea","eu"]"#),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    std::fs::write(&config, "[regions]\nbenelux = [\"BE\", \"NL\", \"LX\"]\n").unwrap();
    let o = run(&["lookup", "--config", config.to_str().unwrap(), "193.0.0.1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("config.toml:1:") && stderr(&o).contains("\"LX\" is not an ISO"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_databases_are_refused_with_file_line_and_reason() {
    let dir = std::env::temp_dir().join(format!("et-cli-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("reversed.csv", "1.0.0.0,1.0.0.255,AU\n1.0.1.9,1.0.1.0,CN\n", "reversed.csv:2:"),
        ("badcode.csv", "1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,C1\n", "badcode.csv:2:"),
        ("garbage.csv", "hello world\nthis is not a database\n", "garbage.csv:"),
        ("empty.csv", "", "empty.csv"),
    ];
    for (name, text, expect) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let o = run(&["lookup", "--geo", path.to_str().unwrap(), "1.0.0.1"]);
        assert!(!o.status.success(), "{name} was accepted");
        assert!(stderr(&o).contains(expect), "{name}: {}", stderr(&o));
    }
    let o = run(&["geo-info", "--geo", "/nonexistent/geo.csv"]);
    assert!(!o.status.success() && stderr(&o).contains("/nonexistent/geo.csv"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_a_missing_interface_or_missing_privileges() {
    let o = run(&["run", "--lan", "nosuch-if0"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    if nix::unistd::geteuid().is_root() {
        assert!(err.contains("interface \"nosuch-if0\" does not exist"), "{err}");
    } else {
        assert!(err.contains("missing capability"), "{err}");
    }
}

#[test]
fn run_without_privileges_names_the_missing_capability() {
    if !nix::unistd::geteuid().is_root() {
        return; // covered by run_refuses_a_missing_interface_or_missing_privileges
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_egress-tracer"))
        .args(["run", "--lan", "lo"])
        .output()
        .expect("setpriv (util-linux)");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing capability CAP_BPF"), "{}", stderr(&o));
}

#[test]
fn help_carries_the_attribution() {
    let o = run(&["--help"]);
    assert!(stdout(&o).contains("CC BY 4.0") && stdout(&o).contains("NRO"), "{}", stdout(&o));
}

#[test]
fn run_refuses_an_unauthenticated_non_loopback_listener() {
    for listen in ["0.0.0.0:9977", "[::]:9977", "192.0.2.1:9977"] {
        let o = run(&["run", "--lan", "lo", "--listen", listen]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains(&format!("refusing to serve the API on {listen}"))
                && err.contains("--auth-token-file")
                && err.contains("--insecure-listen"),
            "{err}"
        );
    }
    let dir = std::env::temp_dir().join(format!("et-cli-listen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[agent]\nlisten = \"0.0.0.0:9977\"\n").unwrap();
    let o = run(&["run", "--lan", "lo", "--config", config.to_str().unwrap()]);
    assert!(stderr(&o).contains("refusing to serve the API on 0.0.0.0:9977"), "{}", stderr(&o));
    // With the explicit opt-in (or credentials) the check passes and start-up goes on to the
    // next step, whatever it says without privileges.
    std::fs::write(&config, "[agent]\nlisten = \"0.0.0.0:9977\"\ninsecure_listen = true\n")
        .unwrap();
    let o = run(&["run", "--lan", "definitely-no-such-if0", "--config", config.to_str().unwrap()]);
    assert!(!stderr(&o).contains("refusing to serve"), "{}", stderr(&o));
    let token = dir.join("token");
    std::fs::write(&token, " \n").unwrap();
    let o = run(&["run", "--lan", "lo", "--listen", "0.0.0.0:9977", "--auth-token-file"]
        .into_iter()
        .chain([token.to_str().unwrap()])
        .collect::<Vec<_>>());
    assert!(stderr(&o).contains("the token file is empty"), "{}", stderr(&o));
    std::fs::write(&token, "s3cret\n").unwrap();
    let o = run(&["run", "--lan", "definitely-no-such-if0", "--listen", "0.0.0.0:9977"]
        .into_iter()
        .chain(["--auth-token-file", token.to_str().unwrap()])
        .collect::<Vec<_>>());
    assert!(!stderr(&o).contains("refusing to serve"), "{}", stderr(&o));
    let o = run(&["run", "--lan", "lo", "--tls-cert", "/nonexistent.pem"]);
    assert!(stderr(&o).contains("--tls-cert and --tls-key"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let dir = std::env::temp_dir().join(format!("et-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[policy]\nallow = [\"eu\", \"US\"]\nblock = [\"CN\"]\n\n[[group]]\nname = \"iot\"\notherwise = \"block\"\n\n[[device]]\nmac = \"02:00:00:00:00:01\"\nname = \"tv\"\ngroup = \"iot\"\n",
    )
    .unwrap();
    let o = run(&["check-config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "OK (0 named regions, 1 groups, 1 devices; default policy: allow [eu, US], block [CN])"
        ),
        "{}",
        stdout(&o)
    );
    std::fs::write(
        &config,
        "[[volume]]\nregions = [\"CN\"]\nupload = \"2.5\"\nwindow = \"1h\"\n\n[[volume]]\nregions = [\"any\"]\nupload = \"0.7TiB\"\nwindow = \"1d\"\n",
    )
    .unwrap();
    let o = run(&["check-config", config.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in [
        "upload alert: CN:2.5/1h over 3 bytes within 1h",
        "upload alert: any:0.7TiB/1d over 769658139443 bytes within 1day",
    ] {
        assert!(stdout(&o).contains(line), "{}", stdout(&o));
    }
    std::fs::write(
        &config,
        "[policy]\nallow = [\"eu\"]\n\n[[device]]\nmac = \"02:00:00:00:00:01\"\ngroup = \"iot\"\n",
    )
    .unwrap();
    let o = run(&["check-config", config.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("config.toml:6: no [[group]] named \"iot\""), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_an_unknown_region_on_the_command_line() {
    let o = run(&["run", "--lan", "lo", "--allow", "eu,atlantis"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--allow/--block: unknown region \"atlantis\""), "{}", stderr(&o));
}

#[test]
fn the_shipped_default_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config.toml");
    let o = run(&["check-config", path]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

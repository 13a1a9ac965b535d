use super::{settings::api_access, *};
use crate::{config::cli::RunArgs, http::access::ApiAccess};

#[test]
fn errors_name_the_line() {
    let err = Config::parse("c.toml", "\n[regions]\nnordics = [\"SE\", \"NO\", 5]\n").unwrap_err();
    assert!(err.to_string().starts_with("c.toml:3:"), "{err}");
    let err = Config::parse("c.toml", "[regions]\nnordics = [\"SE\", \"XQ\"]\n").unwrap_err();
    assert!(err.to_string().contains("\"XQ\" is not an ISO"), "{err}");
    let err = Config::parse("c.toml", "colour = 1\n").unwrap_err();
    assert!(
        err.to_string().starts_with("c.toml:1:") && err.to_string().contains("unknown field"),
        "{err}"
    );
    let ok =
        Config::parse("c.toml", "[regions]\nnordics = [\"SE\", \"NO\", \"DK\", \"FI\", \"IS\"]\n")
            .unwrap();
    assert_eq!(
        ok.regions().unwrap().containing(tracer_common::CountryId::from_code(*b"SE").unwrap()),
        vec!["continent:EU", "eea", "eu", "nordics"]
    );
}

fn error_of(text: &str) -> String {
    Config::parse("c.toml", text).unwrap_err().to_string()
}

#[test]
fn policy_errors_name_the_line_and_reason() {
    let e = error_of("[policy]\nallow = [\"eu\",\n  \"atlantis\"]\n");
    assert!(e.starts_with("c.toml:3:") && e.contains("unknown region \"atlantis\""), "{e}");
    let e = error_of("[policy]\notherwise = \"drop\"\n");
    assert!(e.starts_with("c.toml:2:") && e.contains("unknown variant"), "{e}");
    let e = error_of("[[device]]\nmac = \"02:00:00:00:00:01\"\ngroup = \"iot\"\n");
    assert!(e.starts_with("c.toml:3:") && e.contains("no [[group]] named \"iot\""), "{e}");
    let e = error_of("[[device]]\nmac = \"02:00:00:00:00:zz\"\n");
    assert!(e.starts_with("c.toml:2:") && e.contains("not a MAC address"), "{e}");
    let e = error_of(
        "[[device]]\nmac = \"02:00:00:00:00:01\"\n[[device]]\nmac = \"02-00-00-00-00-01\"\n",
    );
    assert!(e.starts_with("c.toml:4:") && e.contains("listed twice"), "{e}");
    let e = error_of("[[group]]\nname = \"a\"\n[[group]]\nname = \"a\"\n");
    assert!(e.starts_with("c.toml:4:") && e.contains("defined twice"), "{e}");
    let e = error_of("[[group]]\nname = \"a\"\ncolour = 1\n");
    assert!(e.starts_with("c.toml:3:") && e.contains("unknown field `colour`"), "{e}");
    let e = error_of("[agent]\nlisten = \"nowhere\"\n");
    assert!(e.starts_with("c.toml:2:"), "{e}");
}

#[test]
fn the_command_line_wins_over_the_file() {
    let config = Config::parse(
        "c.toml",
        "[agent]\nlan = [\"br-lan\"]\nlisten = \"0.0.0.0:9100\"\ninsecure_listen = true\ninterval = 0\n[alerts]\nkeep = 5\n",
    )
    .unwrap();
    let args = crate::config::cli::RunArgs { interval: Some(3), ..Default::default() };
    let s = RunSettings::resolve(&args, &config).unwrap();
    assert_eq!(
        (s.lan.as_slice(), s.listen.port(), s.interval),
        (&["br-lan".to_owned()][..], 9100, 3)
    );
    assert_eq!((s.alerts_keep, s.events_per_second), (5, 100));
    assert!(s.access.insecure_listen && !s.access.authenticated());
    let err = RunSettings::resolve(&crate::config::cli::RunArgs::default(), &Config::default());
    assert!(err.unwrap_err().to_string().contains("no LAN interface"));
}

fn resolve_access(args: RunArgs, listen: &str) -> anyhow::Result<ApiAccess> {
    api_access(&args, &AgentSection::default(), listen.parse().unwrap())
}

#[test]
fn only_loopback_is_served_without_credentials_or_the_opt_in() {
    for ok in ["127.0.0.1:9977", "127.8.0.1:1", "[::1]:9977", "[::ffff:127.0.0.1]:9977"] {
        assert_eq!(resolve_access(RunArgs::default(), ok).unwrap(), ApiAccess::default(), "{ok}");
    }
    for refused in ["0.0.0.0:9977", "[::]:9977", "192.168.1.1:9977", "[::ffff:10.0.0.1]:1"] {
        let err = resolve_access(RunArgs::default(), refused).unwrap_err().to_string();
        assert!(err.starts_with("refusing to serve the API on"), "{refused}: {err}");
    }
    let open = RunArgs { insecure_listen: true, ..RunArgs::default() };
    assert!(resolve_access(open, "0.0.0.0:9977").unwrap().insecure_listen);
    let section = AgentSection { insecure_listen: Some(true), ..AgentSection::default() };
    let from_file = api_access(&RunArgs::default(), &section, "[::]:1".parse().unwrap());
    assert!(from_file.unwrap().insecure_listen);
}

#[test]
fn tls_needs_both_files() {
    let half = RunArgs { tls_key: Some("k.pem".into()), ..RunArgs::default() };
    let err = resolve_access(half, "127.0.0.1:1").unwrap_err().to_string();
    assert!(err.contains("--tls-cert and --tls-key"), "{err}");
    let section = AgentSection { tls_cert: Some("c.pem".into()), ..AgentSection::default() };
    let args = RunArgs { tls_key: Some("k.pem".into()), ..RunArgs::default() };
    let err = api_access(&args, &section, "127.0.0.1:1".parse().unwrap());
    // Both given (one from the file, one from the command line): the files are read.
    assert!(err.unwrap_err().to_string().starts_with("c.pem: "));
}

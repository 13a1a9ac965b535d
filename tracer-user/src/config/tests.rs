use super::*;

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
    let args = crate::cli::RunArgs { interval: Some(3), ..Default::default() };
    let s = RunSettings::resolve(&args, &config).unwrap();
    assert_eq!(
        (s.lan.as_slice(), s.listen.port(), s.interval),
        (&["br-lan".to_owned()][..], 9100, 3)
    );
    assert_eq!((s.alerts_keep, s.events_per_second), (5, 100));
    assert!(s.access.insecure_listen && !s.access.authenticated());
    let err = RunSettings::resolve(&crate::cli::RunArgs::default(), &Config::default());
    assert!(err.unwrap_err().to_string().contains("no LAN interface"));
}

//! The API secured: HTTPS with a certificate made at test time, a bearer token and basic auth
//! from an htpasswd line, checked with curl inside the lab's gateway namespace and with
//! `egress-tracer status`.
//!
//! Needs root: run by `cargo xtask test` (these tests are `#[ignore]`d for plain `cargo test`).
#![cfg(feature = "tls")]

use crate::support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::support::agent::{Agent, LISTEN};

/// Files of one test, removed on drop.
struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    fn new(tag: &str) -> Secrets {
        let dir = std::env::temp_dir().join(format!("et-sec-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::generate_simple_self_signed(["127.0.0.1".to_owned(), "localhost".into()])
            .expect("a self-signed certificate");
        std::fs::write(dir.join("cert.pem"), key.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("token"), "  tok-3f9a1c77e2\n").unwrap();
        std::fs::write(dir.join("wrong-token"), "tok-3f9a1c77e3\n").unwrap();
        // What `htpasswd -nbB scraper hunter2` writes: a `$2y$` bcrypt hash.
        let hash = bcrypt::hash("hunter2", 5).unwrap().replacen("$2b$", "$2y$", 1);
        std::fs::write(dir.join("htpasswd"), format!("# API users\nscraper:{hash}\n")).unwrap();
        std::fs::write(dir.join("password"), "hunter2\n").unwrap();
        for name in ["key.pem", "token", "wrong-token", "htpasswd", "password"] {
            use std::os::unix::fs::PermissionsExt as _;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.join(name), private).unwrap();
        }
        Secrets { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_netns(netns: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `extra` after the `--cacert` options.
fn with<'a>(ca: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [ca, extra].concat()
}

/// `curl -i` of `url` with `extra` options: (status code, headers and body).
fn curl(netns: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let mut args = vec!["-sS", "-i", "--max-time", "10", "-w", "\n%{http_code}"];
    args.extend(extra);
    args.push(url);
    let out = in_netns(netns, "curl", &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (text, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn status(netns: &Path, args: &[&str]) -> Output {
    let mut all = vec!["status", "--url"];
    all.extend(args);
    in_netns(netns, env!("CARGO_BIN_EXE_egress-tracer"), &all)
}

#[test]
#[ignore = "needs root and network namespaces: run by cargo xtask test"]
fn https_with_token_and_basic_auth() {
    let lab = support::lab("es");
    let secrets = Secrets::new("es");
    let (cert, key, token, htpasswd) = (
        secrets.path("cert.pem"),
        secrets.path("key.pem"),
        secrets.path("token"),
        secrets.path("htpasswd"),
    );
    let https = format!("https://{LISTEN}");
    let probe_url = format!("{https}/healthz");
    let probe_cert = cert.clone();
    let ready: support::agent::Probe = Box::new(move |netns| {
        let auth = ["--cacert", &probe_cert, "-H", "Authorization: Bearer tok-3f9a1c77e2"];
        curl(netns, &probe_url, &auth).0 == 200
    });
    let flags = [
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--auth-token-file",
        &token,
        "--basic-auth-file",
        &htpasswd,
    ];
    let agent = Agent::start_probed(&lab, support::LAB_DB, None, &flags, Some(ready));
    let netns = agent.netns().to_owned();
    let metrics = format!("{https}/metrics");
    let ca = ["--cacert", cert.as_str()];

    let (code, text) = curl(&netns, &metrics, &ca);
    assert_eq!(code, 401, "no credentials: {text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("www-authenticate: bearer realm=\"egress-tracer\""), "{text}");
    assert!(lower.contains("www-authenticate: basic realm=\"egress-tracer\""), "{text}");
    for path in ["/healthz", "/", "/api/v1/devices", "/api/v1/alerts"] {
        let (code, text) = curl(&netns, &format!("{https}{path}"), &ca);
        assert_eq!(code, 401, "{path} is protected too: {text}");
    }
    let (code, _) =
        curl(&netns, &metrics, &with(&ca, &["-H", "Authorization: Bearer tok-3f9a1c77e3"]));
    assert_eq!(code, 401, "wrong token");
    let (code, _) =
        curl(&netns, &metrics, &with(&ca, &["-H", "Authorization: Bearer tok-3f9a1c77e"]));
    assert_eq!(code, 401, "a prefix of the token");
    let (code, text) =
        curl(&netns, &metrics, &with(&ca, &["-H", "Authorization: Bearer tok-3f9a1c77e2"]));
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("egress_tracer_reloads_total"), "{text}");

    let (code, text) = curl(&netns, &metrics, &with(&ca, &["-u", "scraper:hunter2"]));
    assert_eq!(code, 200, "basic auth from the htpasswd line: {text}");
    let (code, _) = curl(&netns, &metrics, &with(&ca, &["-u", "scraper:hunter3"]));
    assert_eq!(code, 401, "wrong password");
    let (code, _) = curl(&netns, &metrics, &with(&ca, &["-u", "nobody:hunter2"]));
    assert_eq!(code, 401, "unknown user");

    let (code, text) = curl(&netns, &metrics, &["-H", "Authorization: Bearer tok-3f9a1c77e2"]);
    assert_eq!(code, 0, "the self-signed certificate is not trusted without --cacert: {text}");
    let (code, text) = curl(&netns, &format!("http://{LISTEN}/metrics"), &[]);
    assert_ne!(code, 200, "plain HTTP to the TLS port: {text}");
    assert!(!matches!(support::netns_http::get(&netns, LISTEN, "/metrics"), Ok((200, _))));

    let out = status(&netns, &[&https, "--cacert", &cert, "--token-file", &token]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DEVICE"));
    let password = secrets.path("password");
    let out = status(
        &netns,
        &[&https, "--cacert", &cert, "--user", "scraper", "--password-file", &password],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        status(&netns, &[&https, "--cacert", &cert, "--token-file", &secrets.path("wrong-token")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wants credentials"));
    let out = status(&netns, &[&https, "--token-file", &token]);
    assert!(!out.status.success(), "the certificate is not trusted without --cacert");

    let log = agent.stdout();
    assert!(!log.contains("tok-3f9a1c77e") && !log.contains("hunter"), "no secrets on stdout");
    drop(agent);
}

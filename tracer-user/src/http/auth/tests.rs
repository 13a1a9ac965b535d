use super::*;

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap()
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    header(&format!("Basic {encoded}"))
}

/// A bcrypt hash as `htpasswd -nbB` writes it (`$2y$`), at the lowest cost to keep tests fast.
fn htpasswd_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap().replacen("$2b$", "$2y$", 1)
}

#[test]
fn token_files_are_trimmed_and_must_hold_one_word() {
    assert_eq!(parse_token("t", "  s3cret-token_1\n").unwrap(), "s3cret-token_1");
    for bad in ["", "\n", "   \n\t", "two words", "tab\tinside"] {
        let err = parse_token("t", bad).unwrap_err().to_string();
        assert!(err.starts_with("t: "), "{err}");
    }
    assert!(parse_token("t", " \n").unwrap_err().to_string().contains("empty"));
}

#[test]
fn htpasswd_errors_name_the_line_and_never_the_hash() {
    let good = htpasswd_hash("pw");
    let cases = [
        (format!("alice:{good}\nbob\n"), "h:2:", "expected `user:bcrypt-hash`"),
        (format!("# users\n\nalice:{good}\n:{good}\n"), "h:4:", "user name"),
        ("carol:$apr1$abcdefgh$0123456789abcdefghijkl\n".to_owned(), "h:1:", "not bcrypt"),
        ("dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n".to_owned(), "h:1:", "not bcrypt"),
        (format!("erin:{}\n", &good[..40]), "h:1:", "not bcrypt"),
        (format!("alice:{good}\nalice:{good}\n"), "h:2:", "listed twice"),
    ];
    for (text, at, reason) in cases {
        let err = Htpasswd::parse("h", &text).unwrap_err().to_string();
        assert!(err.starts_with(at) && err.contains(reason), "{text:?}: {err}");
        assert!(!err.contains(&good[7..]) && !err.contains("$apr1$ab"), "{err}");
    }
    let err = Htpasswd::parse("h", "# nobody\n\n").unwrap_err().to_string();
    assert_eq!(err, "h: no `user:hash` lines");
}

#[tokio::test]
async fn bearer_tokens_are_checked_exactly() {
    let auth = HttpAuth::new(Some("s3cret"), None).unwrap();
    assert!(auth.check(Some(&header("Bearer s3cret"))).await);
    assert!(auth.check(Some(&header("bearer s3cret"))).await, "the scheme is case-insensitive");
    for wrong in
        ["Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET", "Bearer ", "s3cret", "Basic s3cret"]
    {
        assert!(!auth.check(Some(&header(wrong))).await, "{wrong}");
    }
    assert!(!auth.check(None).await);
    assert!(!auth.check(Some(&basic("s3cret", "s3cret"))).await, "basic auth is not configured");
}

#[tokio::test]
async fn basic_auth_verifies_bcrypt_from_htpasswd() {
    let text = format!(
        "# users\nalice:{}\nbob:{}\n",
        htpasswd_hash("wonderland"),
        htpasswd_hash("builder")
    );
    let users = Htpasswd::parse("h", &text).unwrap();
    let auth = HttpAuth::new(None, Some(users)).unwrap();
    for _ in 0..2 {
        // The second round answers from the verified-password cache.
        assert!(auth.check(Some(&basic("alice", "wonderland"))).await);
        assert!(auth.check(Some(&basic("bob", "builder"))).await);
    }
    assert!(!auth.check(Some(&basic("alice", "builder"))).await, "another user's password");
    assert!(!auth.check(Some(&basic("alice", "wonderland "))).await);
    assert!(!auth.check(Some(&basic("mallory", "wonderland"))).await, "unknown user");
    assert!(!auth.check(Some(&header("Basic !!!notbase64"))).await);
    assert!(!auth.check(Some(&header("Bearer wonderland"))).await, "no token configured");
}

#[tokio::test]
async fn a_line_written_by_htpasswd_is_accepted() {
    // `htpasswd -nbB scraper S3cret` (apache2-utils 2.4).
    let line = "scraper:$2y$05$9J.boylIIOJEH48.76bcDemP3Ufv3PtFF36k8eNjXu2rTKc.Jacmm\n\n";
    let auth = HttpAuth::new(None, Some(Htpasswd::parse("h", line).unwrap())).unwrap();
    assert!(auth.check(Some(&basic("scraper", "S3cret"))).await);
    assert!(!auth.check(Some(&basic("scraper", "s3cret"))).await);
}

#[test]
fn the_challenge_names_each_configured_scheme() {
    let users = Htpasswd::parse("h", &format!("a:{}\n", htpasswd_hash("x"))).unwrap();
    let auth = HttpAuth::new(Some("t"), Some(users)).unwrap();
    let response = auth.challenge();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        ["Bearer realm=\"egress-tracer\"", "Basic realm=\"egress-tracer\", charset=\"UTF-8\""]
    );
    assert_eq!(auth.describe(), "bearer token or basic auth");
    assert!(HttpAuth::new(None, None).is_none());
}

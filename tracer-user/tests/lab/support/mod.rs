//! Shared helpers of the privileged tests.

pub(crate) mod agent;
pub(crate) mod cdp;
pub(crate) mod conservation;
pub(crate) mod csv_oracle;
pub(crate) mod frames;
pub(crate) mod netns_http;
pub(crate) mod prom;
pub(crate) mod promtool;
pub(crate) mod webhook;

/// Whether the tests can touch the kernel (root). Privileged tests are `#[ignore]`d and run by
/// `cargo xtask test`; this guards against running them by hand without root.
pub(crate) fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads eBPF programs: run it as root (cargo xtask test does)"
    );
}

/// A fresh lab for a test; `tag` (two letters) and a per-process counter keep names unique so
/// tests can run in parallel.
pub(crate) fn lab(tag: &str) -> tracer_lab::Lab {
    require_root();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracer_lab::Lab::create(&format!("{tag}{}x{n}", std::process::id() % 100_000))
        .expect("create the lab")
}

/// The lab's remote addresses as a country database (what the lab's "internet" holds).
pub(crate) const LAB_DB: &str = "\
36.110.0.0,36.110.255.255,CN
8.8.8.0,8.8.8.255,US
193.0.0.0,193.0.7.255,NL
240e::,240e:fff:ffff:ffff:ffff:ffff:ffff:ffff,CN
2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US
";

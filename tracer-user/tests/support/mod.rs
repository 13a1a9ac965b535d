//! Shared helpers of the privileged tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod agent;
pub mod csv_oracle;
pub mod frames;
pub mod netns_http;
pub mod prom;

/// Whether the tests can touch the kernel (root). Privileged tests are `#[ignore]`d and run by
/// `cargo xtask test`; this guards against running them by hand without root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads eBPF programs: run it as root (cargo xtask test does)"
    );
}

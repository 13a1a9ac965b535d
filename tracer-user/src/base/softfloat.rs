//! Soft-float C math for the mipsel build (`mipsel-unknown-linux-musl`).
//!
//! The Rust target is soft-float (OpenWrt's `mipsel_24kc`: no FPU, and its kernels have no FPU
//! emulator), but `cargo xtask dist` links Debian's musl `libc.a`, which is hard-float. A math
//! function the program calls that the linker took from that `libc.a` would get its arguments
//! in FPU registers the caller never set and, on such a router, stop the agent with SIGILL:
//! `round` (`f64::round`, e.g. sizes in `[[volume]]`) and `pow` (`f64::powf`: tokio's
//! multi-threaded scheduler on every worker batch, prometheus-client's histogram buckets) were
//! taken from it, and `pow` brought `fabs` and musl's `__math_*` helpers with it.
//!
//! The functions here are the C symbols LLVM and `std` call for `f64`/`f32` math on this
//! target, defined with the pure-Rust `libm` crate (compiled soft-float like the rest of the
//! program): the linker finds them in the program's own object and never extracts `libc.a`'s
//! members for them. `cargo xtask test` (the cross builds' step) fails if the mipsel binary has
//! FPU instructions outside the documented allow-list (printf's floating-point conversions,
//! which nothing in the binary asks for: docs/deployment.md, "mipsel caveat").

/// Defines `extern "C" fn $name(args) -> ret { libm::$name(args) }` for each name, exported
/// under its C name.
macro_rules! c_math {
    ($($name:ident($($arg:ident: $ty:ty),+) -> $ret:ty;)+) => {
        $(
            #[doc = concat!("C `", stringify!($name), "`, soft-float (`libm::", stringify!($name), "`).")]
            // SAFETY: musl's own definition of this C symbol is not linked (this one satisfies
            // every reference first), and the signature is the C one.
            #[unsafe(no_mangle)]
            extern "C" fn $name($($arg: $ty),+) -> $ret {
                libm::$name($($arg),+)
            }
        )+
    };
}

c_math! {
    round(x: f64) -> f64;
    roundf(x: f32) -> f32;
    pow(x: f64, y: f64) -> f64;
    powf(x: f32, y: f32) -> f32;
    fabs(x: f64) -> f64;
    fabsf(x: f32) -> f32;
    floor(x: f64) -> f64;
    floorf(x: f32) -> f32;
    ceil(x: f64) -> f64;
    ceilf(x: f32) -> f32;
    trunc(x: f64) -> f64;
    truncf(x: f32) -> f32;
    rint(x: f64) -> f64;
    rintf(x: f32) -> f32;
    sqrt(x: f64) -> f64;
    sqrtf(x: f32) -> f32;
    fmod(x: f64, y: f64) -> f64;
    fmodf(x: f32, y: f32) -> f32;
    exp(x: f64) -> f64;
    expf(x: f32) -> f32;
    exp2(x: f64) -> f64;
    exp2f(x: f32) -> f32;
    log(x: f64) -> f64;
    logf(x: f32) -> f32;
    log2(x: f64) -> f64;
    log2f(x: f32) -> f32;
    log10(x: f64) -> f64;
    log10f(x: f32) -> f32;
}

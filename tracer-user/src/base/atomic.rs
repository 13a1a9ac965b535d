//! The 64-bit atomic counter type: `std`'s where the target has 64-bit atomics, and
//! `portable-atomic`'s lock-based fallback where it has not (32-bit MIPS). Same API and the
//! same behaviour; on every other target this is exactly [`std::sync::atomic::AtomicU64`].

#[cfg(not(target_has_atomic = "64"))]
pub use portable_atomic::AtomicU64;
#[cfg(target_has_atomic = "64")]
pub use std::sync::atomic::AtomicU64;

//! Leaf helpers every layer may use; nothing here imports the rest of the crate.

pub mod atomic;
pub mod clock;
pub mod input;
pub mod resident;
#[cfg(all(target_arch = "mips", target_env = "musl"))]
mod softfloat;
pub mod spanned;
pub mod state_file;
pub mod sync;
pub mod text;

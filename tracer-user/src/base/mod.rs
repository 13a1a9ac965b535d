//! Leaf helpers every layer may use; nothing here imports the rest of the crate.

pub mod atomic;
pub mod clock;
pub mod input;
pub mod resident;
pub mod spanned;
pub mod state_file;
pub mod sync;
pub mod text;

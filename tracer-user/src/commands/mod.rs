//! The subcommands besides `run` (which is [`crate::agent`]): `check`, `status`, `lookup` and
//! `geo-info`, `baseline`.

pub mod baseline;
pub mod check;
pub mod lookup;
pub mod status;

//! The policy: which regions each device may reach, and what happens otherwise.
//!
//! Rules come in layers: a device's own (`[[device]]`), its group's (`[[group]]`), and the
//! default (`[policy]`). For a country, the most specific layer that lists it decides; within
//! one layer `block` beats `alert` beats `allow`, so `allow = ["eu"]` with `block = ["HU"]`
//! blocks HU. A country no layer lists gets the most specific `otherwise`; without one it
//! alerts if any layer approves something (`allow`), and is allowed if none does. Addresses with
//! no country take the most specific `unknown`, else the same as `otherwise`.
//!
//! [`Policy::kernel`] compiles this into one action per country id for each distinct layer
//! stack, which the programs apply per packet.

mod decide;
mod profiles;
mod rules;

pub use decide::{Decision, DeviceSource, GroupSource, Policy, PolicySource};
pub use profiles::KernelPolicy;
pub(crate) use rules::with_rules;
pub use rules::{ActionName, Rules};
pub use tracer_common::policy::Action;

/// The span given to rules that came from the command line rather than the file.
pub const COMMAND_LINE: std::ops::Range<usize> = usize::MAX..usize::MAX;

//! Types and constants shared by the eBPF programs (`tracer-ebpf`) and the agent (`tracer-user`).
//!
//! Everything that crosses the kernel/user boundary lives here: map names, map sizes, the
//! `#[repr(C)]` key and value layouts (all free of implicit padding, so hash keys are fully
//! initialised and compare byte for byte), and the encoding of country ids. The `user` feature
//! implements [`aya::Pod`] for the types so the agent can read and write them.
#![no_std]

pub mod capture;
pub mod country;
pub mod geo_dxr;
pub mod geo_table;
pub mod maps;
pub mod policy;
pub mod remotes;

pub use country::CountryId;
pub use maps::{
    CounterValue, Direction, Ipv6LpmKey, LAYOUT_VERSION, Settings, Stat, TrafficKey, TrafficValue,
};

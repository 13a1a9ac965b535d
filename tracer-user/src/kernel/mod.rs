//! The kernel side from userspace: load the embedded eBPF object, fill its maps, attach the
//! programs to the LAN interfaces and read the counters back.

mod attach;
mod batch;
pub mod bpffs;
mod counters;
mod error;
mod geo_maps;
mod load;
mod mapped;
mod memory;
pub mod netif;
mod policy_maps;
pub mod preflight;
mod readback;
mod remotes;

pub use attach::{AttachMode, AttachPreference, Attachment};
pub use counters::{CounterReader, CounterSnapshot, Pair, StatSnapshot, Traffic};
pub use error::KernelError;
pub use geo_maps::{GeoMapSizes, Lookup};
pub use load::{Kernel, KernelLog, LoadOptions, Loader, spawn_kernel_log};
pub use memory::{MapMemory, map_memory};
pub use policy_maps::EventLimits;
pub use readback::KernelGeo;
pub use remotes::{
    DeviceSpill, RemoteEntry, RemoteReader, RemoteSnapshot, RemoteTraffic, Retired, address_of,
    address_of_bytes,
};

/// The eBPF object built by `build.rs` (aya-build) for this machine's endianness.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// Names of the programs in [`EBPF_OBJECT`].
pub mod programs {
    /// Counts frames sent by LAN devices (TC ingress).
    pub const UPLOAD: &str = "tc_upload";
    /// Counts frames sent to LAN devices (TC egress).
    pub const DOWNLOAD: &str = "tc_download";
    /// Parses as the classifier does (directly where linear, copied out elsewhere) and touches
    /// no map; a benchmark baseline.
    pub const PARSE_ONLY: &str = "tc_parse_only";
    /// Parses after pulling the headers into the linear area; a benchmark comparison.
    pub const PARSE_PULL: &str = "tc_parse_pull";
    /// Parses by copying the headers out (`bpf_skb_load_bytes`); a benchmark comparison.
    pub const PARSE_COPY: &str = "tc_parse_copy";
    /// Parses and adds the frame to one per-CPU hash entry keyed by its device; the benchmarks'
    /// floor of any per-device counting.
    pub const FLOOR: &str = "tc_floor";
    /// The floor and one slot of a flat array keyed by the remote; the benchmarks' measure of
    /// the least any table of remotes adds.
    pub const FLOOR_SLOT: &str = "tc_floor_slot";
    /// Returns at once; a benchmark baseline.
    pub const EMPTY: &str = "tc_empty";
}

//! What the agent is running with, shared between the run loop and the HTTP server.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

/// The loaded country database.
#[derive(Clone, Debug, Default)]
pub struct GeoStatus {
    /// Source description.
    pub source: String,
    /// Build date of the data, if known.
    pub build_date: Option<String>,
    /// When it was loaded into the kernel.
    pub loaded_at: Option<SystemTime>,
    /// How long compiling and loading it took.
    pub load_duration: Duration,
    /// IPv4 / IPv6 runs.
    pub runs: (usize, usize),
}

/// Agent state visible to metrics and the API.
#[derive(Debug, Default)]
pub struct AgentStatus {
    /// The database in use.
    pub geo: GeoStatus,
    /// Successful reloads since start.
    pub reloads_ok: u64,
    /// Failed (rejected) reloads since start.
    pub reloads_failed: u64,
    /// Interfaces the programs are attached to.
    pub interfaces: Vec<String>,
}

/// Shared handle to [`AgentStatus`].
pub type SharedStatus = Arc<RwLock<AgentStatus>>;

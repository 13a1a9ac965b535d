//! Errors of the geo module.

/// What can go wrong reading, parsing or compiling a country database.
///
/// `name` fields hold the source's name as given by the caller (usually the file path), so a
/// message such as `geo.csv:17: first address 1.2.3.9 is after last address 1.2.3.1` points at
/// the offending line.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// Reading the source failed: unreadable, not decompressible, too large, or a line
    /// that does not parse.
    #[error(transparent)]
    Input(#[from] crate::base::input::InputError),
    /// The source holds no address ranges at all.
    #[error("{name}: the database holds no address ranges")]
    Empty {
        /// The source's name.
        name: String,
    },
    /// A compact database is malformed (garbage, truncated, or inconsistent).
    #[error("{name}: invalid compact database: {reason}")]
    Compact {
        /// The source's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A MaxMind DB file could not be read, or holds no country data.
    #[error("{name}: invalid MaxMind DB: {reason}")]
    Mmdb {
        /// The source's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The format was recognised but is not supported by this build.
    #[error("{name}: {format} databases are not supported yet")]
    Unsupported {
        /// The source's name.
        name: String,
        /// The detected format.
        format: &'static str,
    },
    /// A run holds an id that cannot be stored in a table entry (a pointer value).
    #[error("country id {id} is not a valid table entry (must be below 1024)")]
    InvalidId {
        /// The offending id.
        id: u16,
    },
    /// Runs handed to a builder are not sorted, disjoint ranges with `first <= last`.
    #[error("the {family} runs are not sorted, disjoint ranges")]
    InvalidRuns {
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// A compact structure would need more nodes than entries can point to (or more ranges
    /// than [`crate::geo::dxr::MAX_RANGES`]).
    #[error("the compact lookup structure needs more than the maximum of {max} nodes")]
    TableTooLarge {
        /// The maximum number of nodes ([`tracer_common::geo_dxr::MAX_NODES`]).
        max: u32,
    },
}

impl GeoError {
    /// A parse error at `line` (1-based) of source `name`.
    pub fn parse(name: &str, line: usize, reason: impl Into<String>) -> Self {
        Self::Input(crate::base::input::InputError::parse(name, line, reason))
    }

    /// A compact-format error in source `name`.
    pub fn compact(name: &str, reason: impl Into<String>) -> Self {
        Self::Compact { name: name.to_owned(), reason: reason.into() }
    }
}

//! Errors of the ASN module.

/// What can go wrong reading or parsing an ASN database.
///
/// `name` fields hold the source's name as given by the caller (the file path for
/// [`AsnDb::load`](super::AsnDb::load)), so a message such as
/// `asn-ipv4.csv:17: first address 1.2.3.9 is after last address 1.2.3.1` points at the
/// offending line.
#[derive(Debug, thiserror::Error)]
pub enum AsnError {
    /// Reading the source failed: unreadable, not decompressible, too large, or a line
    /// that does not parse.
    #[error(transparent)]
    Input(#[from] crate::base::input::InputError),
    /// The content is none of the supported formats.
    #[error("{name}: unknown ASN database format: {reason}")]
    UnknownFormat {
        /// The source's name.
        name: String,
        /// Why the content was not recognised.
        reason: String,
    },
    /// The source holds no AS ranges (no rows, or only skipped ones such as AS 0).
    #[error("{name}: the database holds no AS ranges")]
    Empty {
        /// The source's name.
        name: String,
    },
    /// A MaxMind DB file could not be read, or holds no ASN data.
    #[error("{name}: invalid MaxMind DB: {reason}")]
    Mmdb {
        /// The source's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// [`AsnDb::load`](super::AsnDb::load) was given no files.
    #[error("no ASN database files given")]
    NoFiles,
    /// The merged database outgrows its 32-bit indexes (more than `u32::MAX - 1` distinct
    /// AS entries, or organisation names totalling 4 GiB).
    #[error("the merged ASN database holds too many {what} for 32-bit indexes")]
    Capacity {
        /// What overflowed ("AS entries" or "organisation name bytes").
        what: &'static str,
    },
}

impl AsnError {
    /// A parse error at `line` (1-based) of source `name`.
    pub fn parse(name: &str, line: usize, reason: impl Into<String>) -> Self {
        Self::Input(crate::base::input::InputError::parse(name, line, reason))
    }

    /// An MMDB error in source `name`.
    pub fn mmdb(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::Mmdb { name: name.to_owned(), reason: reason.to_string() }
    }
}

//! Reading database files (country, ASN) with a size limit, and transparent gzip
//! decompression; what can go wrong is an [`InputError`], which each database's own error
//! type carries.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use flate2::read::MultiGzDecoder;

/// Largest input accepted, in bytes: files are refused above it (checked on the metadata before
/// reading) and decompression stops with an error when its output exceeds it.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The two magic bytes that start a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// What can go wrong reading a database source, whatever its kind.
///
/// `name` fields hold the source's name as given by the caller (usually the file path), so a
/// message such as `geo.csv:17: first address 1.2.3.9 is after last address 1.2.3.1` points at
/// the offending line.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A line of a text source could not be parsed.
    #[error("{name}:{line}: {reason}")]
    Parse {
        /// The source's name.
        name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A file could not be opened or read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A compressed input could not be decompressed.
    #[error("{name}: decompression failed: {source}")]
    Decompress {
        /// The source's name.
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The input (or its decompressed form) is larger than the limit.
    #[error("{name}: input is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The source's name.
        name: String,
        /// The limit in bytes.
        limit: u64,
    },
}

impl InputError {
    /// A parse error at `line` (1-based) of source `name`.
    pub fn parse(name: &str, line: usize, reason: impl Into<String>) -> Self {
        Self::Parse { name: name.to_owned(), line, reason: reason.into() }
    }

    /// `name` (or its decompressed form) is larger than `limit` bytes.
    pub fn too_large(name: &str, limit: u64) -> Self {
        Self::TooLarge { name: name.to_owned(), limit }
    }
}

/// Reads all of `reader`, failing with [`InputError::TooLarge`] beyond `limit` bytes; other
/// read errors are passed to `on_error`.
pub fn read_limited<E: From<InputError>>(
    name: &str,
    reader: impl Read,
    limit: u64,
    size_hint: usize,
    on_error: impl FnOnce(io::Error) -> E,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(size_hint);
    match reader.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Err(InputError::too_large(name, limit).into()),
        Ok(_) => Ok(out),
        Err(source) => Err(on_error(source)),
    }
}

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, InputError> {
    // Text compresses about 3-8x; cap the initial guess so a tiny hostile input cannot make us
    // reserve much.
    let hint = bytes.len().saturating_mul(6).min(64 << 20);
    read_limited(name, MultiGzDecoder::new(bytes), limit, hint, |source| InputError::Decompress {
        name: name.to_owned(),
        source,
    })
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let io_err = |source| InputError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let name = path.display().to_string();
    if size > MAX_INPUT_BYTES {
        return Err(InputError::too_large(&name, MAX_INPUT_BYTES));
    }
    // `size <= MAX_INPUT_BYTES`, so it fits in usize on the 32-bit targets too.
    read_limited(&name, file, MAX_INPUT_BYTES, size as usize, io_err)
}

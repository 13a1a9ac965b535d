//! Reading ASN database files: the shared limits and gzip handling of
//! [`crate::base::input`], with [`AsnError`].

use std::path::Path;

pub use crate::base::input::{GZIP_MAGIC, MAX_INPUT_BYTES, is_gzip};

use super::AsnError;

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, AsnError> {
    Ok(crate::base::input::gunzip(name, bytes, limit)?)
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file(path: &Path) -> Result<Vec<u8>, AsnError> {
    Ok(crate::base::input::read_file(path)?)
}

//! Reading database files with a size limit, and gzip decompression (the same limits as the
//! country databases).

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use flate2::read::MultiGzDecoder;

use super::AsnError;

/// Largest input accepted, in bytes: files are refused above it (checked on the metadata before
/// reading) and decompression stops with an error when its output exceeds it.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The two magic bytes that start a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Reads all of `reader`, failing with [`AsnError::TooLarge`] beyond `limit` bytes; other read
/// errors are passed to `on_error`.
fn read_limited(
    name: &str,
    reader: impl Read,
    limit: u64,
    size_hint: usize,
    on_error: impl FnOnce(io::Error) -> AsnError,
) -> Result<Vec<u8>, AsnError> {
    let mut out = Vec::with_capacity(size_hint);
    match reader.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => {
            Err(AsnError::TooLarge { name: name.to_owned(), limit })
        }
        Ok(_) => Ok(out),
        Err(source) => Err(on_error(source)),
    }
}

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, AsnError> {
    // Text compresses about 3-8x; cap the initial guess so a tiny hostile input cannot make us
    // reserve much.
    let hint = bytes.len().saturating_mul(4).min(64 << 20);
    read_limited(name, MultiGzDecoder::new(bytes), limit, hint, |source| AsnError::Decompress {
        name: name.to_owned(),
        source,
    })
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file(path: &Path) -> Result<Vec<u8>, AsnError> {
    let io_err = |source| AsnError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let name = path.display().to_string();
    if size > MAX_INPUT_BYTES {
        return Err(AsnError::TooLarge { name, limit: MAX_INPUT_BYTES });
    }
    // `size <= MAX_INPUT_BYTES`, so it fits in usize on the 32-bit targets too.
    read_limited(&name, file, MAX_INPUT_BYTES, size as usize, io_err)
}

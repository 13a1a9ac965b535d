//! Reading database files (country, ASN) with a size limit, and transparent gzip
//! decompression, for any error type that can say what went wrong ([`InputErrors`]).

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

/// How a module's error type says what went wrong reading an input.
pub trait InputErrors: Sized {
    /// `path` could not be opened or read.
    fn io(path: &Path, source: io::Error) -> Self;
    /// `name` could not be decompressed.
    fn decompress(name: &str, source: io::Error) -> Self;
    /// `name` (or its decompressed form) is larger than `limit` bytes.
    fn too_large(name: &str, limit: u64) -> Self;
}

/// Implements [`InputErrors`] for an error enum with `Io { path, source }`,
/// `Decompress { name, source }` and `TooLarge { name, limit }` variants.
#[macro_export]
macro_rules! impl_input_errors {
    ($error:ty) => {
        impl $crate::base::input::InputErrors for $error {
            fn io(path: &std::path::Path, source: std::io::Error) -> Self {
                Self::Io { path: path.to_owned(), source }
            }
            fn decompress(name: &str, source: std::io::Error) -> Self {
                Self::Decompress { name: name.to_owned(), source }
            }
            fn too_large(name: &str, limit: u64) -> Self {
                Self::TooLarge { name: name.to_owned(), limit }
            }
        }
    };
}

/// Reads all of `reader`, failing with [`InputErrors::too_large`] beyond `limit` bytes; other
/// read errors are passed to `on_error`.
pub fn read_limited<E: InputErrors>(
    name: &str,
    reader: impl Read,
    limit: u64,
    size_hint: usize,
    on_error: impl FnOnce(io::Error) -> E,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::with_capacity(size_hint);
    match reader.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Err(E::too_large(name, limit)),
        Ok(_) => Ok(out),
        Err(source) => Err(on_error(source)),
    }
}

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip<E: InputErrors>(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, E> {
    // Text compresses about 3-8x; cap the initial guess so a tiny hostile input cannot make us
    // reserve much.
    let hint = bytes.len().saturating_mul(6).min(64 << 20);
    read_limited(name, MultiGzDecoder::new(bytes), limit, hint, |source| {
        E::decompress(name, source)
    })
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file<E: InputErrors>(path: &Path) -> Result<Vec<u8>, E> {
    let io_err = |source| E::io(path, source);
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let name = path.display().to_string();
    if size > MAX_INPUT_BYTES {
        return Err(E::too_large(&name, MAX_INPUT_BYTES));
    }
    // `size <= MAX_INPUT_BYTES`, so it fits in usize on the 32-bit targets too.
    read_limited(&name, file, MAX_INPUT_BYTES, size as usize, io_err)
}

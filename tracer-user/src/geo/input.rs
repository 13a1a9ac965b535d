//! Reading database files with a size limit, and transparent gzip decompression.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use flate2::read::MultiGzDecoder;

use super::GeoError;

/// Largest input accepted, in bytes: files are refused above it (checked on the metadata before
/// reading) and decompression stops with an error when its output exceeds it.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// The two magic bytes that start a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Reads all of `reader`, failing with [`GeoError::TooLarge`] beyond `limit` bytes; other read
/// errors are passed to `on_error`.
pub(crate) fn read_limited(
    name: &str,
    reader: impl Read,
    limit: u64,
    size_hint: usize,
    on_error: impl FnOnce(io::Error) -> GeoError,
) -> Result<Vec<u8>, GeoError> {
    let mut out = Vec::with_capacity(size_hint);
    match reader.take(limit.saturating_add(1)).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => {
            Err(GeoError::TooLarge { name: name.to_owned(), limit })
        }
        Ok(_) => Ok(out),
        Err(source) => Err(on_error(source)),
    }
}

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, GeoError> {
    // Text compresses about 4-8x; cap the initial guess so a tiny hostile input cannot make us
    // reserve much.
    let hint = bytes.len().saturating_mul(6).min(64 << 20);
    read_limited(name, MultiGzDecoder::new(bytes), limit, hint, |source| GeoError::Decompress {
        name: name.to_owned(),
        source,
    })
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file(path: &Path) -> Result<Vec<u8>, GeoError> {
    let io_err = |source| GeoError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let name = path.display().to_string();
    if size > MAX_INPUT_BYTES {
        return Err(GeoError::TooLarge { name, limit: MAX_INPUT_BYTES });
    }
    // `size <= MAX_INPUT_BYTES`, so it fits in usize on the 32-bit targets too.
    read_limited(&name, file, MAX_INPUT_BYTES, size as usize, io_err)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).expect("in-memory write");
        enc.finish().expect("in-memory write")
    }

    #[test]
    fn gunzip_round_trip_and_limit() {
        let data = vec![b'a'; 10_000];
        let packed = gz(&data);
        assert!(is_gzip(&packed));
        assert_eq!(gunzip("x", &packed, 10_000).expect("fits"), data);
        assert!(matches!(
            gunzip("x", &packed, 9_999),
            Err(GeoError::TooLarge { limit: 9_999, .. })
        ));
        assert!(matches!(
            gunzip("x", &packed[..packed.len() / 2], 1 << 20),
            Err(GeoError::Decompress { .. })
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_file(Path::new("/nonexistent/geo.csv")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/geo.csv"), "{err}");
    }
}

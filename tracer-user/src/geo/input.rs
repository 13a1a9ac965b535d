//! Reading country database files: the shared limits and gzip handling of
//! [`crate::base::input`], with [`GeoError`].

use std::path::Path;

pub use crate::base::input::{GZIP_MAGIC, MAX_INPUT_BYTES, is_gzip};

use super::GeoError;

/// Decompresses a gzip stream (all members), refusing output over `limit` bytes.
pub fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, GeoError> {
    Ok(crate::base::input::gunzip(name, bytes, limit)?)
}

/// Reads a whole file, refusing files over [`MAX_INPUT_BYTES`] before reading them.
pub fn read_file(path: &Path) -> Result<Vec<u8>, GeoError> {
    Ok(crate::base::input::read_file(path)?)
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
            Err(GeoError::Input(crate::base::input::InputError::TooLarge { limit: 9_999, .. }))
        ));
        assert!(matches!(
            gunzip("x", &packed[..packed.len() / 2], 1 << 20),
            Err(GeoError::Input(crate::base::input::InputError::Decompress { .. }))
        ));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_file(Path::new("/nonexistent/geo.csv")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/geo.csv"), "{err}");
    }
}

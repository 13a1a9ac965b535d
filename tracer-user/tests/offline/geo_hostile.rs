//! Hostile database files: refused quickly, with the file, the line where there is one, and
//! the reason, never a panic or an unbounded allocation.

use std::io::Write as _;

use tracer_user::geo::{self, GeoError};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("et-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_2_gib_file_is_refused_before_it_is_read() {
    let path = temp("huge.csv");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(2 << 30).unwrap(); // sparse: claims 2 GiB, takes no disk
    let started = std::time::Instant::now();
    let err = geo::load_file(&path).unwrap_err();
    assert!(
        matches!(err, GeoError::Input(tracer_user::base::input::InputError::TooLarge { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("huge.csv"), "{err}");
    assert!(started.elapsed().as_secs() < 2, "refused without reading");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_gzip_claiming_2_gib_is_judged_by_its_content() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"1.0.0.0,1.0.0.255,AU\n").unwrap();
    let mut bytes = gz.finish().unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&(2u32 << 30).to_le_bytes()); // forged ISIZE trailer
    match geo::parse_bytes("forged.csv.gz", &bytes) {
        Ok(data) => assert_eq!(data.v4.len(), 1, "content decides, not the claim"),
        Err(e) => assert!(
            matches!(e, GeoError::Input(tracer_user::base::input::InputError::Decompress { .. })),
            "{e}"
        ),
    }
}

#[test]
fn a_gzip_bomb_is_cut_off_at_the_limit() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bytes = gz.finish().unwrap();
    let err = geo::input::gunzip("bomb.gz", &bytes, 16 << 20).unwrap_err();
    assert!(
        matches!(err, GeoError::Input(tracer_user::base::input::InputError::TooLarge { .. })),
        "{err}"
    );
}

#[test]
fn garbage_is_refused_with_line_and_reason() {
    let cases: [(&str, &[u8], &str); 6] = [
        ("binary", &[0x00, 0xff, 0x13, 0x37, b'\n', 0x80, 0x81], ""),
        ("first after last", b"1.0.0.0,1.0.0.255,AU\n5.0.0.9,5.0.0.1,CN\n", ":2:"),
        ("bad country code", b"1.0.0.0,1.0.0.255,AU\n5.0.0.0,5.0.0.255,C-\n", ":2:"),
        ("mixed families", b"1.0.0.0,1.0.0.255,AU\n5.0.0.0,2001::1,CN\n", ":2:"),
        ("too few fields", b"1.0.0.0,1.0.0.255,AU\n1.2.3.4,US\n", ":2:"),
        ("mixed garbage", b"1.0.0.0,1.0.0.255,AU\n<html><body>404</body></html>\n", ":2:"),
    ];
    for (what, bytes, line) in cases {
        let err = geo::parse_bytes("bad.csv", bytes).expect_err(what).to_string();
        assert!(err.starts_with("bad.csv"), "{what}: {err}");
        assert!(err.contains(line), "{what}: {err}");
    }
    assert!(matches!(geo::parse_bytes("empty.csv", b""), Err(GeoError::Empty { .. })));
    assert!(matches!(
        geo::parse_bytes("blank.csv", b"\n\n# nothing\n"),
        Err(GeoError::Empty { .. })
    ));
}

//! Checks against the real `@ip-location-db/asn` data, when it is on this machine; skipped
//! (with a note on stderr) otherwise. The data is never committed. To fetch it:
//!
//! ```text
//! cd /tmp && npm pack @ip-location-db/asn && tar xzf ip-location-db-asn-*.tgz
//! ```
//!
//! which leaves the files in `/tmp/package`; `EGRESS_TRACER_ASN_DATA` names another folder. Each
//! file may also be there gzipped (`asn-ipv4.csv.gz`).
//!
//! For release-mode timings: `cargo test --release -p tracer-user asn::npm_data -- --nocapture`.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Instant,
};

use super::AsnDb;

/// The folder holding `asn-ipv4.csv` and friends, if they are all present.
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EGRESS_TRACER_ASN_DATA")
        .map_or_else(|| PathBuf::from("/tmp/package"), PathBuf::from);
    let present = ["asn-ipv4.csv", "asn-ipv6.csv", "asn-ipv4-num.csv", "asn-ipv6-num.csv"]
        .iter()
        .all(|file| data_file(&dir, file).is_file());
    if !present {
        eprintln!("skipped: no @ip-location-db/asn data in {}", dir.display());
    }
    present.then_some(dir)
}

/// `dir/file`, or `dir/file.gz` if only that exists.
fn data_file(dir: &Path, file: &str) -> PathBuf {
    let plain = dir.join(file);
    let packed = dir.join(format!("{file}.gz"));
    if !plain.is_file() && packed.is_file() { packed } else { plain }
}

fn load(dir: &Path, files: [&str; 2]) -> AsnDb {
    let started = Instant::now();
    let db = AsnDb::load(&files.map(|file| data_file(dir, file))).expect("the npm data loads");
    let (v4, v6) = db.ranges_by_family();
    eprintln!(
        "{files:?}: {v4} IPv4 + {v6} IPv6 ranges, {} entries, {} bytes, loaded in {:?}",
        db.entries(),
        db.memory_bytes(),
        started.elapsed()
    );
    db
}

#[test]
fn well_known_addresses() {
    let Some(dir) = data_dir() else { return };
    let db = load(&dir, ["asn-ipv4.csv", "asn-ipv6.csv"]);
    let expected = [
        ("1.1.1.1", 13335, "Cloudflare, Inc."),
        ("8.8.8.8", 15169, "Google LLC"),
        ("9.9.9.9", 19281, "Quad9"),
        ("208.67.222.222", 36692, "Cisco OpenDNS, LLC"),
        ("193.0.6.139", 3333, "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)"),
        ("2606:4700:4700::1111", 13335, "Cloudflare, Inc."),
        ("2001:4860:4860::8888", 15169, "Google LLC"),
        ("2620:fe::fe", 19281, "Quad9"),
        ("::ffff:8.8.4.4", 15169, "Google LLC"),
    ];
    for (addr, number, org) in expected {
        let found = db.lookup(addr.parse().expect("address")).expect(addr);
        assert_eq!((found.number, found.org), (number, org), "{addr}");
    }
    for private in ["10.1.2.3", "192.168.1.1", "127.0.0.1", "fd00::1", "::1"] {
        assert_eq!(db.lookup(private.parse().expect("address")), None, "{private}");
    }
    // The file's one overlap (a later, narrower DoD row): the later row wins.
    assert_eq!(db.lookup("215.0.0.1".parse().expect("address")).map(|a| a.number), Some(721));
    assert_eq!(db.lookup("214.95.0.1".parse().expect("address")).map(|a| a.number), Some(749));
    assert!(db.ranges() > 400_000, "{}", db.ranges());
}

#[test]
fn numeric_files_agree_with_address_files() {
    let Some(dir) = data_dir() else { return };
    let text = load(&dir, ["asn-ipv4.csv", "asn-ipv6.csv"]);
    let num = load(&dir, ["asn-ipv4-num.csv", "asn-ipv6-num.csv"]);
    assert_eq!(text.ranges_by_family(), num.ranges_by_family());
    // Every boundary and the address before it answer the same in both.
    let v4 = text
        .v4
        .starts()
        .iter()
        .flat_map(|&s| [s, s.saturating_sub(1)])
        .map(|a| IpAddr::from(a.to_be_bytes()));
    let v6 = text
        .v6
        .starts()
        .iter()
        .flat_map(|&s| [s, s.saturating_sub(1)])
        .map(|a| IpAddr::from(a.to_be_bytes()));
    for addr in v4.chain(v6) {
        assert_eq!(text.lookup(addr), num.lookup(addr), "{addr}");
    }
}

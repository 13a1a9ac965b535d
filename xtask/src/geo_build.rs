//! `cargo xtask geo-build`: regenerates the embedded default database
//! (`tracer-user/data/default-geo.etgeo`) from CSV (or MMDB) sources.

use std::path::PathBuf;

use crate::run::{status, workspace_root};

/// Options of `cargo xtask geo-build`.
#[derive(Debug, clap::Args)]
pub(crate) struct GeoBuildArgs {
    /// Source files, applied in order (default: the geo-whois-asn-country CSVs in
    /// tracer-user/data/source).
    #[arg(long = "from", value_name = "FILE")]
    from: Vec<PathBuf>,
    /// Description stored in the database.
    #[arg(long, default_value = "geo-whois-asn-country 2.3.2026061719 (ip-location-db)")]
    source: String,
    /// Build date stored in the database.
    #[arg(long, default_value = "2026-06-17")]
    build_date: String,
    /// Output file.
    #[arg(long, default_value = "tracer-user/data/default-geo.etgeo")]
    out: PathBuf,
}

/// Compiles the sources with the agent's own loader (`egress-tracer geo-compile`).
pub(crate) fn run(ready: &crate::setup::Ready, args: &GeoBuildArgs) -> anyhow::Result<()> {
    let from = if args.from.is_empty() {
        let dir = workspace_root().join("tracer-user/data/source");
        vec![
            dir.join("geo-whois-asn-country-ipv4.csv.gz"),
            dir.join("geo-whois-asn-country-ipv6.csv.gz"),
        ]
    } else {
        args.from.clone()
    };
    for f in &from {
        anyhow::ensure!(f.exists(), "{} does not exist (give sources with --from)", f.display());
    }
    let mut c = ready.cargo(&[
        "run",
        "--release",
        "-q",
        "-p",
        "tracer-user",
        "--bin",
        "egress-tracer",
        "--",
        "geo-compile",
    ]);
    c.arg("--out")
        .arg(&args.out)
        .args(["--source", &args.source, "--build-date", &args.build_date])
        .args(&from);
    status(c)
}

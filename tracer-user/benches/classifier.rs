//! `cargo xtask bench`: per-packet cost of the classifier (BPF_PROG_TEST_RUN) with the full
//! default database loaded, next to an empty program and a parse-only program measured in the
//! same run; the time, process memory and kernel memory it takes to load the database; and the
//! LPM-trie reference beside the compact structures.
//!
//! Needs root. Numbers are ratios against baselines from the same run, never absolute asserts.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::programs::{TestRun as _, TestRunOptions};
use tracer_user::{
    agent::database::{self, KernelTables},
    config::cli::GeoArgs,
    kernel::{Kernel, LoadOptions, Lookup, map_memory, programs},
};

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 5;

fn frame_v4(vlan: bool, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 77, 0, 11]);
    f.extend_from_slice(&dst.octets());
    f.resize(f.len() + 64, 0xab);
    f
}

fn frame_v6(dst: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 64, 58, 64]);
    f.extend_from_slice(&"fd77::11".parse::<Ipv6Addr>().expect("addr").octets());
    f.extend_from_slice(&dst.octets());
    f.resize(f.len() + 64, 0xab);
    f
}

/// Best (lowest) mean ns per run over `ROUNDS` rounds of `REPEAT` runs.
fn measure(kernel: &Kernel, program: &'static str, frame: &[u8]) -> anyhow::Result<f64> {
    let prog = kernel.program(program)?;
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let opts = TestRunOptions { data_in: Some(frame), repeat: REPEAT, ..Default::default() };
        let result = prog.test_run(opts).with_context(|| format!("test run of {program}"))?;
        anyhow::ensure!(result.return_value == 0, "{program} returned {}", result.return_value);
        best = best.min(result.duration);
    }
    Ok(best.as_nanos() as f64)
}

fn max_rss_kib() -> i64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss
}

fn print_memory(title: &str, target: &str) -> serde_json::Value {
    let maps = map_memory();
    let geo: u64 = maps.iter().filter(|m| m.name.starts_with("GEO_")).map(|m| m.memlock).sum();
    println!("  {title} (memlock from /proc/self/fdinfo):");
    for m in &maps {
        println!("    {:<16} {:>8.2} MiB", m.name, m.memlock as f64 / (1024.0 * 1024.0));
    }
    println!("    geo tables total {:>8.2} MiB{target}", geo as f64 / (1024.0 * 1024.0));
    serde_json::json!({
        "maps": maps.iter().map(|m| serde_json::json!({"name": m.name, "memlock": m.memlock})).collect::<Vec<_>>(),
        "geo_total_bytes": geo,
    })
}

/// Writes the run's numbers as JSON to `EGRESS_TRACER_BENCH_JSON` (default
/// `target/bench-classifier.json`); `cargo xtask bench` merges them into `target/bench.json`.
fn write_json(report: &serde_json::Value) -> anyhow::Result<()> {
    let out = std::env::var_os("EGRESS_TRACER_BENCH_JSON").map_or_else(
        || std::path::PathBuf::from("target/bench-classifier.json"),
        std::path::PathBuf::from,
    );
    std::fs::write(&out, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nclassifier: written to {}", out.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        println!("bench: SKIPPED (needs root to load eBPF programs)");
        return Ok(());
    }
    let only = std::env::var("EGRESS_TRACER_BENCH").unwrap_or_default();
    if only == "scrape" {
        let scrape = scrape_bench(&database::compile(&GeoArgs::default(), &[])?)?;
        return write_json(&serde_json::json!({ "scrape": scrape }));
    }
    let rss_before = max_rss_kib();
    let started = Instant::now();
    let geo = database::compile(&GeoArgs::default(), &[])?;
    let compiled_in = started.elapsed();
    let stats = geo.stats();
    println!("database: {}", database::describe(&geo));
    println!(
        "  IPv4: {} runs, {} prefixes -> compact structure of {} nodes, {} ranges",
        stats.v4_runs, stats.v4_prefixes, stats.v4_nodes, stats.v4_ranges
    );
    println!(
        "  IPv6: {} runs, {} prefixes -> compact structure of {} nodes, {} ranges",
        stats.v6_runs, stats.v6_prefixes, stats.v6_nodes, stats.v6_ranges
    );

    println!("\nload, default path (compact structures):");
    let t = Instant::now();
    let tables = KernelTables::build(&geo, Lookup::Table);
    let kernel = tables.load(LoadOptions { bench_programs: true, ..LoadOptions::default() })?;
    let fill = t.elapsed();
    println!("  decode + merge + compile tables  {:>8.0} ms", compiled_in.as_secs_f64() * 1e3);
    println!("  load object + fill maps          {:>8.0} ms", fill.as_secs_f64() * 1e3);
    println!(
        "  total                            {:>8.2} s (target < 2 s)",
        (compiled_in + fill).as_secs_f64()
    );
    println!(
        "  peak RSS of this process: {} MiB (before: {} MiB)",
        max_rss_kib() / 1024,
        rss_before / 1024
    );
    let load = serde_json::json!({
        "compile_ms": compiled_in.as_secs_f64() * 1e3,
        "fill_ms": fill.as_secs_f64() * 1e3,
        "peak_rss_kib": max_rss_kib(),
        "memory": print_memory("kernel memory, default path", " (target <= 4 MiB)"),
    });
    drop((kernel, tables));

    println!("\nload, LPM reference (all prefixes in LPM tries, next to the tables):");
    let t = Instant::now();
    let tables = KernelTables::build(&geo, Lookup::Lpm);
    let mut kernel = tables.load(LoadOptions { bench_programs: true, ..LoadOptions::default() })?;
    println!("  load object + fill maps          {:>8.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let reference_memory = print_memory("kernel memory, reference", "");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("IPv4 hit (CN)", frame_v4(false, Ipv4Addr::new(36, 110, 0, 1))),
        ("IPv4 hit /24-level (US)", frame_v4(false, Ipv4Addr::new(8, 8, 8, 8))),
        ("IPv4 unknown", frame_v4(false, Ipv4Addr::new(0xdf, 0xff, 0xff, 0xfe))),
        ("IPv4 local", frame_v4(false, Ipv4Addr::new(192, 168, 1, 1))),
        ("IPv4 VLAN hit", frame_v4(true, Ipv4Addr::new(193, 0, 0, 1))),
        ("IPv6 hit (CN)", frame_v6("240e::1".parse()?)),
        ("IPv6 hit (US)", frame_v6("2001:4860:4860::8888".parse()?)),
        ("IPv6 unknown", frame_v6("3fff::1".parse()?)),
    ];
    println!("\nper-packet cost, ns (best of {ROUNDS} x {REPEAT} BPF_PROG_TEST_RUN runs):");
    println!("  (table: the default path, remote table on; no-remote: per-country counters only)");
    println!(
        "  {:<26} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "frame",
        "empty",
        "parse",
        "no-remote",
        "table",
        "lpm",
        "table/e",
        "lpm/e",
        "+policy",
        "policy/e"
    );
    // A realistic policy: most traffic approved, the rest alerting (after the first packet the
    // kernel only checks that it already reported the address).
    let config = tracer_user::config::Config::parse(
        "bench.toml",
        "[policy]\nallow = [\"eu\", \"US\", \"CN\"]\nunknown = \"alert\"\n",
    )?;
    let policy = config.compiled_policy().kernel()?;
    let no_policy = tracer_user::policy::Policy::default().kernel()?;
    let limits =
        tracer_user::kernel::EventLimits { per_second: 100, rearm_secs: 3600, new_pairs: false };
    let mut ratios = Vec::new();
    let mut policy_ratios = Vec::new();
    let mut rows = Vec::new();
    for (name, frame) in &cases {
        let empty = measure(&kernel, programs::EMPTY, frame)?;
        let parse = measure(&kernel, programs::PARSE_ONLY, frame)?;
        kernel.set_lookup(Lookup::Table)?;
        kernel.set_remotes(false)?;
        let no_remote = measure(&kernel, programs::UPLOAD, frame)?;
        kernel.set_remotes(true)?;
        let table = measure(&kernel, programs::UPLOAD, frame)?;
        kernel.set_lookup(Lookup::Lpm)?;
        let lpm = measure(&kernel, programs::UPLOAD, frame)?;
        kernel.set_lookup(Lookup::Table)?;
        kernel.write_policy(&policy, limits)?;
        let with_policy = measure(&kernel, programs::UPLOAD, frame)?;
        kernel.write_policy(&no_policy, limits)?;
        ratios.push(table / empty);
        policy_ratios.push(with_policy / empty);
        rows.push(serde_json::json!({
            "frame": name, "empty_ns": empty, "parse_ns": parse, "no_remote_ns": no_remote,
            "table_ns": table, "lpm_ns": lpm, "policy_ns": with_policy,
        }));
        println!(
            "  {name:<26} {empty:>7.1} {parse:>7.1} {no_remote:>9.1} {table:>9.1} {lpm:>9.1} {:>7.2}x {:>7.2}x {with_policy:>9.1} {:>8.2}x",
            table / empty,
            lpm / empty,
            with_policy / empty
        );
    }
    // Names: a download pays the DNS-answer check (is the source port 53?) before anything
    // else. The same UDP frame (source port 0xabab) mirrored: the difference is that check
    // (less the upload's TLS-port comparison).
    let mut up = frame_v4(false, Ipv4Addr::new(36, 110, 0, 1));
    up[23] = 17; // UDP
    let mut down = up.clone();
    down[..6].copy_from_slice(&up[6..12]);
    down[6..12].copy_from_slice(&up[..6]);
    down[26..30].copy_from_slice(&up[30..34]);
    down[30..34].copy_from_slice(&up[26..30]);
    let (u, d) =
        (measure(&kernel, programs::UPLOAD, &up)?, measure(&kernel, programs::DOWNLOAD, &down)?);
    println!(
        "  UDP, not DNS: upload {u:.1} ns, download (with the DNS-answer port check) {d:.1} ns"
    );
    let policy_mean = policy_ratios.iter().sum::<f64>() / policy_ratios.len() as f64;
    let policy_worst = policy_ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "with a policy enforced / empty program: mean {policy_mean:.2}x, worst {policy_worst:.2}x"
    );
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let worst = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "\nclassifier (default tables) / empty program: mean {mean:.2}x, worst {worst:.2}x (target <= 2x)"
    );
    let scrape = scrape_bench(&geo)?;
    write_json(&serde_json::json!({
        "load": load,
        "reference_memory": reference_memory,
        "test_run": rows,
        "classifier_over_empty": { "mean": mean, "worst": worst },
        "policy_over_empty": { "mean": policy_mean, "worst": policy_worst },
        "udp_not_dns_ns": { "upload": u, "download": d },
        "scrape": scrape,
    }))
}

/// Time to render /metrics with 1,000 devices x 50 countries, both directions, in the map.
fn scrape_bench(geo: &tracer_user::geo::CompiledGeo) -> anyhow::Result<serde_json::Value> {
    use std::sync::{Arc, RwLock};

    use tracer_user::{metrics::Metrics, state::status::AgentStatus};
    let tables = KernelTables::build(geo, Lookup::Table);
    let mut kernel = tables.load(LoadOptions {
        counter_entries: 65_536,
        bench_programs: true,
        ..LoadOptions::default()
    })?;
    let reader = Arc::new(kernel.counter_reader()?);
    // One address in each of 50 countries, taken from the database itself.
    let mut remotes: Vec<Ipv4Addr> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for run in geo.v4_runs() {
        if run.id.is_country() && seen.insert(run.id) {
            remotes.push(Ipv4Addr::from(run.first));
        }
        if remotes.len() == 50 {
            break;
        }
    }
    let upload = kernel.program(programs::UPLOAD)?;
    let download = kernel.program(programs::DOWNLOAD)?;
    let t = Instant::now();
    for device in 0..1000u32 {
        let d = device.to_be_bytes();
        for remote in &remotes {
            let mut up = frame_v4(false, *remote);
            up[6..12].copy_from_slice(&[0x02, 0xdd, d[0], d[1], d[2], d[3]]);
            let mut down = up.clone();
            down[..6].copy_from_slice(&up[6..12]);
            down[26..30].copy_from_slice(&remote.octets()); // source = remote
            for (prog, frame) in [(upload, &up), (download, &down)] {
                prog.test_run(TestRunOptions { data_in: Some(frame), ..Default::default() })?;
            }
        }
    }
    let filled = t.elapsed();
    let ctx = tracer_user::state::Context::bare(
        Arc::clone(&reader),
        Arc::new(kernel.remote_reader()?),
        Arc::new(RwLock::new(AgentStatus::default())),
    );
    let metrics = Metrics::new(Arc::new(ctx));
    // The first scrape sizes its buffers as it goes; later ones reserve the last one's size.
    let (mut best, mut first) = (Duration::MAX, None);
    let mut size = 0;
    for _ in 0..10 {
        let t = Instant::now();
        size = metrics.render().map_err(|_| anyhow::anyhow!("render failed"))?.len();
        best = best.min(t.elapsed());
        first.get_or_insert(t.elapsed());
    }
    let first = first.unwrap_or_default();
    let mut read_best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let _ = reader.snapshot()?;
        read_best = read_best.min(t.elapsed());
    }
    let snapshot = reader.snapshot()?;
    let series = snapshot.series();
    let entries = snapshot.map_entries;
    println!(
        "\nscrape: {entries} map entries, {series} series of each counter (1,000 devices x {} countries x 2 directions, filled in {:.1} s)",
        remotes.len(),
        filled.as_secs_f64()
    );
    println!(
        "  /metrics render: {:.1} ms best of 10 (the first {:.1} ms), {:.1} MiB of text (target < 50 ms); of which reading the map: {:.1} ms",
        best.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        size as f64 / (1024.0 * 1024.0),
        read_best.as_secs_f64() * 1e3
    );
    Ok(serde_json::json!({
        "map_entries": entries, "series": series, "render_ms": best.as_secs_f64() * 1e3,
        "first_render_ms": first.as_secs_f64() * 1e3,
        "text_bytes": size, "read_ms": read_best.as_secs_f64() * 1e3,
    }))
}

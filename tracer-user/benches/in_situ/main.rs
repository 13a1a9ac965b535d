//! `cargo xtask bench`, in situ: what the programs cost on live traffic through the lab's
//! gateway, measured by the kernel itself (`kernel.bpf_stats_enabled`: run time and run count
//! of each program), and what the agent costs next to nftables doing the same job.
//!
//! 1. Per packet, each program attached alone to TC ingress of `br-lan` (where the agent
//!    attaches): the empty program; three ways to read the headers: pulled into the linear area
//!    (`bpf_skb_pull_data`) then read directly, always copied out (`bpf_skb_load_bytes`), and
//!    directly where linear, copied elsewhere (the classifier's way); the floor (that parse and
//!    one per-CPU hash update keyed by the device, the least any per-device counting does);
//!    and the classifier with the full default database, with the remote table off and on (as
//!    it ships). Traffic from device d1: one hot destination or 16,384 random public ones;
//!    linear skbs (packet-socket `sendto`) or non-linear ones (trafgen's TX ring: only the
//!    Ethernet header in the linear area, the rest in page fragments, as zero-copy drivers
//!    deliver). Rounds interleaved, medians. Then the working set: the classifier with and
//!    without the remote table, round robin to 64 ... 65,536 destinations that are all in the
//!    remote table, which shows what the lookups cost once they no longer fit in the caches,
//!    beside the floor with one slot of a flat array keyed by the remote (`tc_floor_slot`: key,
//!    counters and last seen in one cache line, as an open-addressed table at its first probe),
//!    the least any table of remotes adds.
//! 2. A UDP flood from d1 to the random destinations, forwarded by the gateway, in interleaved
//!    rounds with nothing attached, with nftables (an interval map of the same IPv4 data and a
//!    dynamic set of per-(MAC, country) counters at netdev ingress of `br-lan`), with the empty
//!    program, the floor and the floor with one slot attached alone, and with the agent running
//!    as it ships and with `--remote-entries 0` (counters only: the job nftables does):
//!    delivered packets per second at the far end, and the CPU the agent's own threads used
//!    meanwhile.
//! 3. The agent as routers run it (`EGRESS_TRACER_BIN`, the static musl build `cargo xtask
//!    bench` passes): time from start to serving, peak and steady RSS, kernel memory per map.
//!
//! Writes everything as JSON to `EGRESS_TRACER_BENCH_JSON` (default `target/bench-in-situ.json`).
//! Needs root. Ratios within one run, never absolute asserts.

mod frames;
mod nft;

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::{Value, json};
use tracer_lab::Lab;
use tracer_user::{
    agent::database::{self, KernelTables},
    config::cli::GeoArgs,
    kernel::{Kernel, LoadOptions, Lookup, programs},
};

/// Packets per measurement of one program with one kind of traffic.
const PACKETS: usize = 100_000;
/// Rounds of every measurement, interleaved; the median is reported.
const ROUNDS: usize = 3;
/// Distinct random destinations.
const RANDOM: usize = 16_384;
/// Distinct destinations of the working-set rows.
const WORKING_SETS: [usize; 5] = [64, 1024, 4096, 16_384, 65_536];
/// Rounds of each working-set row (it moves more between rounds than the rows above).
const WORKING_SET_ROUNDS: usize = 5;
/// Rounds of the flood (each: nothing, nftables, the agent) and seconds per flood.
// Five: three left the flood's ratios 0.1-0.2 apart between runs of the same code.
const FLOOD_ROUNDS: usize = 5;
const FLOOD_SECS: f64 = 3.0;
/// The router the kernel memory is projected to: 4 cores (IPQ40xx, MT7621 with SMT, most
/// newer ones).
const ROUTER_CPUS: u64 = 4;
/// Where the agent listens inside the gateway.
const LISTEN: &str = "127.0.0.1:19979";

/// A program measured in situ: its name in the object, the name printed, and whether the remote
/// table is on (the classifier only).
struct Measured {
    program: &'static str,
    name: &'static str,
    remotes: bool,
}

/// The programs measured one by one. The columns are indexed by the `COL_*` constants.
const PROGRAMS: [Measured; 7] = [
    Measured { program: programs::EMPTY, name: "empty", remotes: false },
    Measured { program: programs::PARSE_PULL, name: "parse: pull", remotes: false },
    Measured { program: programs::PARSE_COPY, name: "parse: copy", remotes: false },
    Measured { program: programs::PARSE_ONLY, name: "parse: either", remotes: false },
    Measured { program: programs::FLOOR, name: "floor", remotes: false },
    Measured { program: programs::UPLOAD, name: "no remotes", remotes: false },
    Measured { program: programs::UPLOAD, name: "classifier", remotes: true },
];
/// The working-set rows' programs: the classifier without and with its remote table, the floor,
/// and the floor with one slot of a flat array keyed by the remote (the least any table of
/// remotes adds).
const WORKING_SET_PROGRAMS: [Measured; 4] = [
    Measured { program: programs::UPLOAD, name: "no remotes", remotes: false },
    Measured { program: programs::UPLOAD, name: "classifier", remotes: true },
    Measured { program: programs::FLOOR, name: "floor", remotes: false },
    Measured { program: programs::FLOOR_SLOT, name: "floor + slot", remotes: false },
];
const COL_EMPTY: usize = 0;
const COL_PULL: usize = 1;
const COL_EITHER: usize = 3;
const COL_FLOOR: usize = 4;
const COL_NO_REMOTES: usize = 5;
const COL_CLASSIFIER: usize = 6;

/// How frames reach the gateway.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skb {
    /// `sendto` on a packet socket: the whole frame in the linear area.
    Linear,
    /// trafgen's TX ring: the frame past the Ethernet header in page fragments.
    Paged,
}

struct Traffic {
    name: &'static str,
    skb: Skb,
    /// The frames, sent round robin.
    frames: Vec<Vec<u8>>,
    /// trafgen's configuration holding the same frames.
    trafgen: PathBuf,
}

/// Sends `count` frames of `traffic` from device namespace `netns`.
fn send(lab: &Lab, netns: &str, traffic: &Traffic, count: usize) -> anyhow::Result<()> {
    match traffic.skb {
        Skb::Linear => {
            let frames: Vec<Vec<u8>> = traffic.frames.iter().cycle().take(count).cloned().collect();
            tracer_lab::inject(&lab.netns_path(netns), "eth0", &frames)
        }
        Skb::Paged => tracer_lab::trafgen::send(lab, netns, "eth0", &traffic.trafgen, count),
    }
}

/// Run time and run count of a loaded program (kernel BPF stats).
fn program_stats(kernel: &Kernel, name: &'static str) -> anyhow::Result<(u128, u64)> {
    let info = kernel.program(name)?.info()?;
    Ok((info.run_time().as_nanos(), info.run_count()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-packet ns of each of `measure` with each kind of traffic: `[traffic][program]`.
fn per_packet(
    lab: &Lab,
    kernel: &mut Kernel,
    netns: &str,
    traffics: &[Traffic],
    measure: &[Measured],
    rounds: usize,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut samples = vec![vec![Vec::new(); measure.len()]; traffics.len()];
    for _ in 0..rounds {
        for (t, traffic) in traffics.iter().enumerate() {
            for (p, measured) in measure.iter().enumerate() {
                let program = measured.program;
                kernel.set_remotes(measured.remotes)?;
                let link = kernel.attach_program(program, "br-lan")?;
                let (time0, runs0) = program_stats(kernel, program)?;
                let sent = send(lab, netns, traffic, PACKETS);
                let (time1, runs1) = program_stats(kernel, program)?;
                kernel.detach_program(program, link)?;
                sent?;
                let runs = runs1 - runs0;
                anyhow::ensure!(
                    runs >= PACKETS as u64,
                    "{program} ran {runs} times for {PACKETS} frames of {}: is bpf_stats on?",
                    traffic.name
                );
                samples[t][p].push((time1 - time0) as f64 / runs as f64);
            }
        }
    }
    Ok(samples.into_iter().map(|row| row.into_iter().map(median).collect()).collect())
}

/// Packets an interface of a namespace received so far.
fn rx_packets(lab: &Lab, netns: &str, iface: &str) -> anyhow::Result<u64> {
    let out = lab.exec(netns, &["ip", "-s", "-j", "link", "show", iface])?;
    let v: Value = serde_json::from_str(&out).context("ip -s -j link")?;
    v[0]["stats64"]["rx"]["packets"].as_u64().context("no rx packets in ip -s -j link")
}

/// Floods from `netns` with trafgen for [`FLOOD_SECS`] and returns the packets per second
/// delivered to the internet namespace.
fn flood(lab: &Lab, netns: &str, trafgen: &Path) -> anyhow::Result<f64> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "trafgen", "--dev", "eth0", "--conf"])
        .arg(trafgen)
        .args(["--cpus", "1", "-C"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: trafgen forks a worker per CPU, and only the group's SIGINT
        // stops them all.
        .process_group(0)
        .spawn()
        .context("starting trafgen")?;
    // trafgen parses its configuration and maps its ring first.
    std::thread::sleep(Duration::from_millis(700));
    let inet = lab.internet();
    let before = rx_packets(lab, &inet, "wan0");
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(FLOOD_SECS));
    let after = rx_packets(lab, &inet, "wan0");
    let took = started.elapsed().as_secs_f64();
    // SAFETY: kill(2) on the process group of the child we spawned and have not reaped.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let _ = child.wait();
    Ok((after? - before?) as f64 / took)
}

/// The agent, started in the gateway with its defaults and the embedded database.
struct Agent {
    child: Child,
    /// Seconds from spawning to answering `/healthz`.
    ready_secs: f64,
    state: PathBuf,
    pins: PathBuf,
}

fn agent_bin() -> PathBuf {
    std::env::var_os("EGRESS_TRACER_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_egress-tracer")), PathBuf::from)
}

fn healthz() -> bool {
    let Ok(mut s) = TcpStream::connect(LISTEN) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: bench\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}

impl Agent {
    /// Starts the agent with its defaults and `extra` arguments.
    fn start(lab: &Lab, extra: &[&str]) -> anyhow::Result<Agent> {
        let tag = std::process::id();
        let state = std::env::temp_dir().join(format!("et-bench-state-{tag}"));
        let pins = PathBuf::from(format!("/sys/fs/bpf/egress-tracer-bench-{tag}"));
        let _ = std::fs::remove_dir_all(&state);
        let started = Instant::now();
        let child = lab
            .command_in(&lab.gateway(), agent_bin())
            .args(["run", "--lan", "br-lan", "--listen", LISTEN, "--interval", "0"])
            .args(extra)
            .arg("--state-dir")
            .arg(&state)
            .arg("--bpffs-dir")
            .arg(&pins)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", agent_bin().display()))?;
        let mut agent = Agent { child, ready_secs: 0.0, state, pins };
        while !healthz() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the agent did not answer /healthz within 60 s"
            );
            if let Some(status) = agent.child.try_wait()? {
                anyhow::bail!("the agent exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        agent.ready_secs = started.elapsed().as_secs_f64();
        Ok(agent)
    }

    /// CPU seconds the agent's threads have used (user and system, `/proc/PID/stat`).
    fn cpu_secs(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').context("no command name in /proc/PID/stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        let ticks: u64 = fields
            .get(11..13)
            .context("short /proc/PID/stat")?
            .iter()
            .try_fold(0, |sum, f| -> anyhow::Result<u64> { Ok(sum + f.parse::<u64>()?) })?;
        // SAFETY: sysconf(3) has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks as f64 / hz)
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).context("no field")?;
            Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM: the agent detaches; then the pins and state go.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.pins);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// `BPF_F_NO_PREALLOC` in a map's flags.
const BPF_F_NO_PREALLOC: u32 = 1;

/// One of the agent's maps: what the kernel charges for it now, and its shape.
#[derive(Clone)]
struct MapCost {
    name: String,
    /// Bytes charged now (`memlock`).
    memlock: u64,
    /// Bytes each CPU adds per entry (per-CPU maps: the value, rounded up to 8 bytes).
    per_cpu_entry: u64,
    max_entries: u64,
    /// Entries allocated as they are created (`BPF_F_NO_PREALLOC`): `memlock` grows to
    /// [`MapCost::full`].
    grows: bool,
    /// Bytes per entry charged once, whatever the CPUs (hash maps: bucket, element header, key,
    /// value or per-CPU pointer), for a map that grows.
    entry: u64,
    /// Bytes each CPU adds whatever the entries in use: the slots a CPU owns in the remote
    /// table, a plain array of `CPUs << bits` slots and a header
    /// (`tracer_common::remotes`).
    per_cpu_slots: u64,
}

impl MapCost {
    /// What the map takes on a machine with `cpus` CPUs once full (the kernel's own accounting,
    /// `htab_map_mem_usage`/`array_map_mem_usage`, scaled from this machine's `memlock`).
    fn full(&self, cpus_here: u64, cpus: u64) -> u64 {
        // A map that grows is taken at its capacity (or what it holds, if the estimate is lower).
        let base = if self.grows {
            self.memlock.max(self.max_entries * (self.entry + self.per_cpu_entry * cpus_here))
        } else {
            self.memlock
        };
        base - (self.per_cpu_entry * self.max_entries + self.per_cpu_slots) * cpus_here
            + (self.per_cpu_entry * self.max_entries + self.per_cpu_slots) * cpus
    }
}

/// Every map the programs attached to `interface` (TCX, this thread's namespace) use, with its
/// kernel memory: the agent's whole kernel footprint, also the maps whose descriptors it closed
/// after loading.
fn attached_maps(interface: &str) -> anyhow::Result<Vec<MapCost>> {
    use aya::{
        maps::MapType,
        programs::{SchedClassifier, TcAttachType},
    };
    let mut ids = std::collections::BTreeSet::new();
    for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
        let (_, programs) = SchedClassifier::query_tcx(interface, hook)?;
        for program in programs {
            ids.extend(program.map_ids()?.unwrap_or_default());
        }
    }
    let round8 = |n: u32| u64::from(n.div_ceil(8) * 8);
    let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1)) as u64;
    let mut out = Vec::new();
    for id in ids {
        let info = aya::maps::MapInfo::from_id(id)?;
        let fd = info.fd()?;
        let fdinfo = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&fd))
        ))?;
        let memlock = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no memlock in fdinfo")?;
        let per_cpu = matches!(
            info.map_type(),
            Ok(MapType::PerCpuHash | MapType::PerCpuArray | MapType::LruPerCpuHash)
        );
        let grows = info.map_flags() & BPF_F_NO_PREALLOC != 0;
        // struct bucket (16) + struct htab_elem (48) + key + the per-CPU pointer or the value,
        // + the allocator's list node (8) for entries allocated on demand.
        let entry = 16
            + 48
            + round8(info.key_size())
            + if per_cpu { 8 } else { round8(info.value_size()) }
            + 8;
        let name = info.name_as_str().unwrap_or("?").to_owned();
        let per_cpu_slots = if name == tracer_common::remotes::REMOTES_MAP {
            u64::from(info.max_entries()).saturating_sub(1) / cpus * round8(info.value_size())
        } else {
            0
        };
        out.push(MapCost {
            name,
            memlock,
            per_cpu_entry: if per_cpu { round8(info.value_size()) } else { 0 },
            max_entries: u64::from(info.max_entries()),
            grows,
            entry,
            per_cpu_slots,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        println!("bench in situ: SKIPPED (needs root for the lab and eBPF programs)");
        return Ok(());
    }
    let lab = Lab::create(&format!("etb{}", std::process::id() % 100_000))?;
    lab.warm_up()?;
    let gw = lab.gateway();
    // As on OpenWrt: the bridge does not hand frames to the IP firewall (with br_netfilter
    // loaded it would validate, and so pull, every IPv4 header before the program sees it).
    for knob in ["net.bridge.bridge-nf-call-iptables=0", "net.bridge.bridge-nf-call-ip6tables=0"] {
        let _ = lab.exec(&gw, &["sysctl", "-q", "-w", knob]);
    }
    let d1 = lab.devices()[0].clone();
    let gw_mac = lab.mac(&gw, "br-lan")?;
    let d1_mac = lab.mac(&d1.netns, "eth0")?;
    let src: Ipv4Addr = d1.ipv4.parse()?;
    let hot = vec![frames::udp(gw_mac, d1_mac, src, Ipv4Addr::new(36, 110, 0, 1))];
    let random: Vec<Vec<u8>> = frames::random_public(RANDOM)
        .into_iter()
        .map(|dst| frames::udp(gw_mac, d1_mac, src, dst))
        .collect();
    let dir = std::env::temp_dir();
    let write_conf = |name: &str, frames: &[Vec<u8>]| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("et-bench-{}-{name}.trafgen", std::process::id()));
        std::fs::write(&path, tracer_lab::trafgen::config(frames))?;
        Ok(path)
    };
    let hot_conf = write_conf("hot", &hot)?;
    let random_conf = write_conf("random", &random)?;
    let traffics = vec![
        Traffic {
            name: "linear, hot",
            skb: Skb::Linear,
            frames: hot.clone(),
            trafgen: hot_conf.clone(),
        },
        Traffic {
            name: "linear, random",
            skb: Skb::Linear,
            frames: random.clone(),
            trafgen: random_conf.clone(),
        },
        Traffic { name: "paged, hot", skb: Skb::Paged, frames: hot, trafgen: hot_conf.clone() },
        Traffic {
            name: "paged, random",
            skb: Skb::Paged,
            frames: random,
            trafgen: random_conf.clone(),
        },
    ];

    // Attaching and the agent's HTTP port are the gateway's.
    tracer_lab::enter_netns(&lab.netns_path(&gw))?;
    let geo = database::compile(&GeoArgs::default(), &[])?;
    let tables = KernelTables::build(&geo, Lookup::Table);
    let mut kernel = tables.load(LoadOptions { bench_programs: true, ..LoadOptions::default() })?;
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enabling BPF stats")?;
    println!(
        "\nin situ: ns per packet at TC ingress of br-lan, kernel BPF stats (median of {ROUNDS} x {PACKETS} frames; random = {RANDOM} public destinations)"
    );
    let costs = per_packet(&lab, &mut kernel, &d1.netns, &traffics, &PROGRAMS, ROUNDS)?;
    drop(kernel);
    print!("  {:<16}", "traffic");
    for measured in &PROGRAMS {
        print!(" {:>13}", measured.name);
    }
    println!(" {:>12} {:>12} {:>12}", "classifier/e", "floor/e", "either/pull");
    let mut rows = Vec::new();
    for (traffic, row) in traffics.iter().zip(&costs) {
        print!("  {:<16}", traffic.name);
        for ns in row {
            print!(" {ns:>13.1}");
        }
        let ratio = row[COL_CLASSIFIER] / row[COL_EMPTY];
        let floor = row[COL_FLOOR] / row[COL_EMPTY];
        println!(" {ratio:>11.2}x {floor:>11.2}x {:>11.2}x", row[COL_EITHER] / row[COL_PULL]);
        rows.push(json!({
            "traffic": traffic.name,
            "empty_ns": row[COL_EMPTY], "parse_pull_ns": row[COL_PULL], "parse_copy_ns": row[2],
            "parse_direct_or_copy_ns": row[COL_EITHER], "floor_ns": row[COL_FLOOR],
            "no_remotes_ns": row[COL_NO_REMOTES], "classifier_ns": row[COL_CLASSIFIER],
            "classifier_over_empty": ratio, "floor_over_empty": floor,
        }));
    }
    let random_over_hot = [
        costs[1][COL_CLASSIFIER] / costs[0][COL_CLASSIFIER],
        costs[3][COL_CLASSIFIER] / costs[2][COL_CLASSIFIER],
    ];
    println!(
        "  classifier, random / hot destinations: {:.2}x linear, {:.2}x paged",
        random_over_hot[0], random_over_hot[1]
    );

    // How the cost grows with the destinations in play: the remote table sized to hold them
    // all, filled before the rounds, so that every lookup finds its entry.
    println!(
        "\nworking set: ns per packet, linear skbs, round robin to N random destinations (remote table of N entries, all present)"
    );
    println!(
        "  {:>8} {:>13} {:>13} {:>13} {:>13} {:>13} {:>13}",
        "N", "no remotes", "classifier", "remote table", "floor", "floor + slot", "one slot"
    );
    let mut working_set = Vec::new();
    for n in WORKING_SETS {
        let frames: Vec<Vec<u8>> = frames::random_public(n)
            .into_iter()
            .map(|dst| frames::udp(gw_mac, d1_mac, src, dst))
            .collect();
        let traffic = Traffic { name: "linear", skb: Skb::Linear, frames, trafgen: PathBuf::new() };
        let mut kernel = tables.load(LoadOptions {
            bench_programs: true,
            // Twice the remotes: open addressing finds nearly every one at its first probes.
            remote_entries: 2 * n as u32,
            ..LoadOptions::default()
        })?;
        // Every destination in the remote table before the rounds.
        kernel.set_remotes(true)?;
        let link = kernel.attach_program(programs::UPLOAD, "br-lan")?;
        let filled = send(&lab, &d1.netns, &traffic, n);
        kernel.detach_program(programs::UPLOAD, link)?;
        filled?;
        let row = per_packet(
            &lab,
            &mut kernel,
            &d1.netns,
            std::slice::from_ref(&traffic),
            &WORKING_SET_PROGRAMS,
            WORKING_SET_ROUNDS,
        )?;
        let [none, with, floor, slot] = [row[0][0], row[0][1], row[0][2], row[0][3]];
        println!(
            "  {n:>8} {none:>13.1} {with:>13.1} {:>13.1} {floor:>13.1} {slot:>13.1} {:>13.1}",
            with - none,
            slot - floor
        );
        working_set.push(json!({
            "destinations": n, "no_remotes_ns": none, "classifier_ns": with,
            "remote_table_ns": with - none, "floor_ns": floor, "floor_slot_ns": slot,
            "one_slot_ns": slot - floor,
        }));
    }
    drop(stats);

    // The flood, and the agent as routers run it; the empty program and the floor alone show
    // what attaching anything and counting per device cost.
    let mut bench_kernel =
        tables.load(LoadOptions { bench_programs: true, ..LoadOptions::default() })?;
    let nft = nft::Nft::load(&lab, &geo)?;
    println!(
        "\nflood: UDP from d1 to {RANDOM} random destinations, trafgen (one CPU), {FLOOD_ROUNDS} interleaved rounds of {FLOOD_SECS} s; nftables map of {} intervals loaded in {:.1} s",
        nft.elements, nft.load_secs
    );
    let (mut none, mut with_nft, mut with_agent) = (Vec::new(), Vec::new(), Vec::new());
    let (mut with_counters_only, mut with_empty, mut with_floor, mut with_slot) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut agents = Vec::new();
    // The share of one CPU the agent's own threads used during each flood.
    let mut agent_cpu = Vec::new();
    for _ in 0..FLOOD_ROUNDS {
        none.push(flood(&lab, &d1.netns, &random_conf)?);
        nft.hook("br-lan")?;
        let pps = flood(&lab, &d1.netns, &random_conf);
        nft.unhook()?;
        with_nft.push(pps?);
        for (program, pps) in [
            (programs::EMPTY, &mut with_empty),
            (programs::FLOOR, &mut with_floor),
            (programs::FLOOR_SLOT, &mut with_slot),
        ] {
            let link = bench_kernel.attach_program(program, "br-lan")?;
            let flooded = flood(&lab, &d1.netns, &random_conf);
            bench_kernel.detach_program(program, link)?;
            pps.push(flooded?);
        }
        let agent = Agent::start(&lab, &[])?;
        std::thread::sleep(Duration::from_secs(2));
        let (idle_rss, peak) = agent.memory_kib()?;
        let cpu0 = agent.cpu_secs()?;
        with_agent.push(flood(&lab, &d1.netns, &random_conf)?);
        agent_cpu.push((agent.cpu_secs()? - cpu0) / FLOOD_SECS);
        // After the flood: the remote table has filled as far as it will.
        let maps = attached_maps("br-lan")?;
        let (after_rss, _) = agent.memory_kib()?;
        agents.push((agent.ready_secs, peak, idle_rss, after_rss, maps));
        drop(agent);
        // The same job as nftables' rules: counters per (device, country), no remote table.
        let counters_only = Agent::start(&lab, &["--remote-entries", "0"])?;
        std::thread::sleep(Duration::from_secs(2));
        with_counters_only.push(flood(&lab, &d1.netns, &random_conf)?);
        drop(counters_only);
    }
    anyhow::ensure!(nft.counted()? > 0, "the nftables counters counted nothing");
    let nft_elements = nft.elements;
    drop(nft);
    let (none, with_nft, with_agent) = (median(none), median(with_nft), median(with_agent));
    let with_counters_only = median(with_counters_only);
    let (with_empty, with_floor) = (median(with_empty), median(with_floor));
    let with_slot = median(with_slot);
    drop(bench_kernel);
    let loss = |pps: f64| 1.0 - pps / none;
    println!("  nothing attached  {:>10.0} pps", none);
    println!("  nftables          {:>10.0} pps  loss {:>5.1}%", with_nft, loss(with_nft) * 100.0);
    println!(
        "  egress-tracer     {:>10.0} pps  loss {:>5.1}%",
        with_agent,
        loss(with_agent) * 100.0
    );
    println!(
        "  egress-tracer, --remote-entries 0 {:>10.0} pps  loss {:>5.1}% (counters only, the job nftables does)",
        with_counters_only,
        loss(with_counters_only) * 100.0
    );
    println!(
        "  empty program     {:>10.0} pps  loss {:>5.1}% (attached alone)",
        with_empty,
        loss(with_empty) * 100.0
    );
    println!(
        "  floor program     {:>10.0} pps  loss {:>5.1}% (parse + one per-device hash update, alone)",
        with_floor,
        loss(with_floor) * 100.0
    );
    println!(
        "  floor + one slot  {:>10.0} pps  loss {:>5.1}% (the floor and one slot of a flat table of remotes, alone)",
        with_slot,
        loss(with_slot) * 100.0
    );
    let agent_cpu = median(agent_cpu);
    println!(
        "  the agent's own threads during the flood: {:.1}% of a CPU (user and system, median)",
        agent_cpu * 100.0
    );
    let loss_ratio = loss(with_agent) / loss(with_nft);
    let counters_only_ratio = loss(with_counters_only) / loss(with_nft);
    println!("  agent's loss / nftables' loss: {loss_ratio:.2} (target <= 0.25)");
    let floor_ratio = loss(with_floor) / loss(with_nft);
    println!("  the same without the remote table: {counters_only_ratio:.2}");
    println!("  the floor program's loss / nftables' loss: {floor_ratio:.2}");
    let slot_ratio = loss(with_slot) / loss(with_nft);
    println!("  the floor with one slot, loss / nftables' loss: {slot_ratio:.2}");

    println!(
        "\nthe agent ({}), started {FLOOD_ROUNDS} times with its defaults:",
        agent_bin().display()
    );
    let ready = median(agents.iter().map(|a| a.0).collect());
    let peak = agents.iter().map(|a| a.1).max().unwrap_or(0);
    let idle = agents.iter().map(|a| a.2).max().unwrap_or(0);
    let after = agents.iter().map(|a| a.3).max().unwrap_or(0);
    println!("  start to serving  {:>8.3} s (median; target <= 0.3 s)", ready);
    println!("  peak RSS          {:>8.1} MiB (VmHWM; target <= 24 MiB)", mib(peak));
    println!(
        "  steady RSS        {:>8.1} MiB idle, {:.1} MiB after the flood (target <= 8 MiB)",
        mib(idle),
        mib(after)
    );
    let maps = agents.last().map(|a| a.4.clone()).unwrap_or_default();
    let cpus = aya::util::nr_cpus().map_or(1, |n| n) as u64;
    let total: u64 = maps.iter().map(|m| m.memlock).sum();
    let router: u64 = maps.iter().map(|m| m.full(cpus, ROUTER_CPUS)).sum();
    let m = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  kernel memory per map: memlock now ({cpus} CPUs, after the flood); entries; bytes per entry per CPU; full on a {ROUTER_CPUS}-CPU router"
    );
    for map in &maps {
        println!(
            "    {:<16} {:>7.2} MiB {:>8} {:>5} {:>7.2} MiB{}{}",
            map.name,
            m(map.memlock),
            map.max_entries,
            map.per_cpu_entry,
            m(map.full(cpus, ROUTER_CPUS)),
            if map.grows { " (grows as entries are created)" } else { "" },
            if map.per_cpu_slots > 0 {
                format!(" ({:.2} MiB of slots per CPU)", m(map.per_cpu_slots))
            } else {
                String::new()
            }
        );
    }
    println!(
        "    total            {:>7.2} MiB                {:>7.2} MiB (target < 16 MiB)",
        m(total),
        m(router)
    );

    let report = json!({
        "per_packet": rows,
        "random_over_hot": { "linear": random_over_hot[0], "paged": random_over_hot[1] },
        "working_set": working_set,
        "flood": {
            "none_pps": none, "nftables_pps": with_nft, "agent_pps": with_agent,
            "nftables_loss": loss(with_nft), "agent_loss": loss(with_agent),
            "agent_loss_over_nftables_loss": loss_ratio,
            "nftables_intervals": nft_elements,
            "agent_threads_cpu_share": agent_cpu,
            "counters_only_pps": with_counters_only,
            "counters_only_loss": loss(with_counters_only),
            "counters_only_loss_over_nftables_loss": counters_only_ratio,
            "empty_program_pps": with_empty, "empty_program_loss": loss(with_empty),
            "floor_program_pps": with_floor, "floor_program_loss": loss(with_floor),
            "floor_program_loss_over_nftables_loss": floor_ratio,
            "floor_slot_pps": with_slot, "floor_slot_loss": loss(with_slot),
            "floor_slot_loss_over_nftables_loss": slot_ratio,
        },
        "agent": {
            "binary": agent_bin().display().to_string(),
            "ready_secs": ready, "peak_rss_kib": peak, "idle_rss_kib": idle,
            "rss_after_flood_kib": after,
            "maps": maps.iter().map(|map| json!({
                "name": map.name, "memlock": map.memlock, "max_entries": map.max_entries,
                "per_cpu_bytes_per_entry": map.per_cpu_entry, "grows": map.grows,
                "per_cpu_slot_bytes": map.per_cpu_slots,
                "full_on_router_bytes": map.full(cpus, ROUTER_CPUS),
            })).collect::<Vec<_>>(),
            "maps_total_bytes": total,
            "router_cpus": ROUTER_CPUS,
            "maps_full_on_router_bytes": router,
        },
    });
    let out = std::env::var_os("EGRESS_TRACER_BENCH_JSON")
        .map_or_else(|| PathBuf::from("target/bench-in-situ.json"), PathBuf::from);
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nin situ: written to {}", out.display());
    for path in [hot_conf, random_conf] {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

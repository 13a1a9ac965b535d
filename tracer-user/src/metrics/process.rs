//! The usual `process_*` metrics, read from `/proc/self` at scrape time.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// Collects CPU time, memory, file descriptors and start time of this process.
#[derive(Debug)]
pub struct ProcessCollector;

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `(cpu seconds, start time since boot in seconds, virtual bytes, resident bytes)`.
fn stat() -> Option<(f64, f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    let tick = ticks_per_second();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    Some(((num(11)? + num(12)?) / tick, num(19)? / tick, num(20)?, num(21)? * page))
}

fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

fn max_fds() -> Option<f64> {
    // SAFETY: getrlimit only writes the struct we pass.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur as f64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((cpu, started, virt, rss)) = stat() else { return Ok(()) };
        let metric = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(cpu).encode(metric)?;
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count) as f64;
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", Some(rss)),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", Some(virt)),
            ("process_open_fds", "Number of open file descriptors", Some(fds)),
            ("process_max_fds", "Maximum number of open file descriptors", max_fds()),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                boot_time().map(|b| b + started),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(metric)?;
            }
        }
        Ok(())
    }
}

//! The kernel's clock and the wall clock.

use std::time::{Duration, SystemTime};

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| Duration::from(t).as_nanos() as u64)
}

/// The wall-clock time of a `bpf_ktime_get_ns` (CLOCK_MONOTONIC) timestamp.
pub fn wall_time(monotonic_ns: u64) -> SystemTime {
    let now = SystemTime::now();
    let age = Duration::from_nanos(self::monotonic_ns().saturating_sub(monotonic_ns));
    now.checked_sub(age).unwrap_or(now)
}

/// The wall clock now, in seconds since the Unix epoch (0 before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// RFC 3339 text of a wall-clock time, in UTC with milliseconds.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

//! Sending frames with netsniff-ng's trafgen, whose TX ring hands the kernel non-linear skbs:
//! only the Ethernet header in the linear area, the rest in page fragments, as zero-copy
//! drivers deliver them.

use std::{fmt::Write as _, path::Path};

use crate::Lab;

/// A trafgen configuration sending `frames` round robin, one packet block per frame.
pub fn config(frames: &[Vec<u8>]) -> String {
    let mut out = String::with_capacity(frames.iter().map(|f| f.len() * 5 + 3).sum());
    for frame in frames {
        out.push('{');
        for (i, byte) in frame.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}0x{byte:02x}");
        }
        out.push_str("}\n");
    }
    out
}

/// Sends `count` frames of the configuration at `conf` ([`config`]) out of `iface` of the
/// namespace `netns`, from one CPU, and returns when trafgen is done.
pub fn send(lab: &Lab, netns: &str, iface: &str, conf: &Path, count: usize) -> anyhow::Result<()> {
    let conf = conf.display().to_string();
    let n = count.to_string();
    lab.exec(netns, &["trafgen", "--dev", iface, "--conf", &conf, "--num", &n, "--cpus", "1", "-C"])
        .map(drop)
}

//! Moving a thread into a lab namespace.

use std::{fs::File, io, os::fd::AsRawFd as _, path::Path};

/// Moves the calling thread (only it) into the network namespace at `netns` (e.g.
/// `/run/netns/x-gw`): sockets it opens from then on are that namespace's.
pub fn enter_netns(netns: &Path) -> io::Result<()> {
    let ns = File::open(netns)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", netns.display())))?;
    // SAFETY: setns on a namespace fd we hold open; it affects only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns into {}: {e}", netns.display())));
    }
    Ok(())
}

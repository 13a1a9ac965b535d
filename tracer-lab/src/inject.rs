//! Sending hand-made Ethernet frames out of an interface in a namespace (AF_PACKET), for
//! traffic the lab's kernel cannot produce by itself: VLAN-tagged and malformed frames.

use std::{os::fd::AsRawFd as _, path::Path};

use anyhow::Context as _;

/// Sends each of `frames` (complete Ethernet frames) out of `iface` inside the namespace at
/// `netns` (e.g. `/run/netns/x-d4`).
pub fn inject(netns: &Path, iface: &str, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    let netns = netns.to_owned();
    let iface = iface.to_owned();
    let frames = frames.to_vec();
    std::thread::spawn(move || send_in(&netns, &iface, &frames))
        .join()
        .map_err(|_| anyhow::anyhow!("injector thread panicked"))?
}

fn send_in(netns: &Path, iface: &str, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    crate::enter_netns(netns)?;
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    anyhow::ensure!(index != 0, "no interface {iface} in {}", netns.display());
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket(AF_PACKET)");
    }
    // SAFETY: `fd` is a socket we own from here on.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; zero is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = index as i32;
    addr.sll_halen = 6;
    for frame in frames {
        addr.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
        // SAFETY: buffer and address are valid for the given lengths.
        let sent = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending a {}-byte frame on {iface}", frame.len()));
        }
    }
    Ok(())
}

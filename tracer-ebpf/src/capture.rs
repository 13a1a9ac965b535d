//! Handing DNS answers and TLS ClientHellos to the agent (see `tracer_common::capture`). The
//! programs only copy bytes; the agent parses them.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    programs::TcContext,
};
use tracer_common::capture::{CAPTURE_DATA, Capture, CaptureHeader, kind};

use crate::{
    maps::{CAPTURE_BUDGET, CAPTURES, SETTINGS},
    parse::{Address, Transport, header},
};

const TCP: u8 = 6;
const UDP: u8 = 17;

/// What [`dns_answer`] and [`tls_segment`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Captured {
    /// Not a payload to capture (or names are off).
    No,
    /// Handed to the agent.
    Sent,
    /// Refused by the per-CPU budget or a full ring buffer (the caller counts it).
    Suppressed,
}

/// The remote port, the local port, the TCP sequence number, and where the payload starts, of
/// a TCP or UDP packet; `remote_first` says whether the remote's port comes first (download).
#[inline(always)]
fn ports(ctx: &TcContext, t: Transport, remote_first: bool) -> Option<(u16, u16, u32, usize)> {
    // A UDP header is 8 bytes (a datagram may carry fewer than 6 more); TCP's at least 20.
    let udp = header::<8>(ctx, t.offset)?;
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let (remote, local) = if remote_first { (sport, dport) } else { (dport, sport) };
    if t.protocol == UDP {
        return Some((remote, local, 0, t.offset + 8));
    }
    let hdr = header::<14>(ctx, t.offset)?;
    let seq = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    let data_offset = usize::from(hdr[12] >> 4) * 4;
    Some((remote, local, seq, t.offset + data_offset))
}

/// A DNS message travelling to the device (UDP or TCP source port 53): handed to the agent.
/// Anything else costs one port comparison. Runs before the "local destination" shortcut, so
/// the gateway's own resolver is seen too.
#[inline(always)]
pub(crate) fn dns_answer(
    ctx: &TcContext,
    mac: &[u8; 6],
    remote: &Address,
    t: Transport,
) -> Captured {
    if t.offset == 0 || (t.protocol != UDP && t.protocol != TCP) {
        return Captured::No;
    }
    let Some(sport) = header::<2>(ctx, t.offset) else { return Captured::No };
    if sport != [0, 53] {
        return Captured::No;
    }
    send(ctx, &Request { what: kind::DNS, mac, remote, t, remote_first: true })
}

/// A TCP segment with payload from the device to a TLS port (the caller checked the port and
/// the per-remote count): handed to the agent.
#[inline(always)]
pub(crate) fn tls_segment(
    ctx: &TcContext,
    mac: &[u8; 6],
    remote: &Address,
    t: Transport,
) -> Captured {
    send(ctx, &Request { what: kind::TLS, mac, remote, t, remote_first: false })
}

/// What [`send`] copies (one argument: BPF subprograms take at most five).
struct Request<'a> {
    what: u8,
    mac: &'a [u8; 6],
    remote: &'a Address,
    t: Transport,
    remote_first: bool,
}

/// Copies the payload into a ring-buffer entry, within this CPU's budget. A BPF subprogram
/// of its own, so its stack is not added to the counting path's.
#[inline(never)]
fn send(ctx: &TcContext, r: &Request<'_>) -> Captured {
    let (what, mac, remote, t, remote_first) = (r.what, r.mac, r.remote, r.t, r.remote_first);
    let per_sec = match SETTINGS.get(0) {
        Some(s) if s.captures_per_sec != 0 => s.captures_per_sec,
        _ => return Captured::No,
    };
    let Some((remote_port, local_port, seq, start)) = ports(ctx, t, remote_first) else {
        return Captured::No;
    };
    // The IP header's length, but never beyond the frame (a forged length).
    let frame = ctx.len() as usize;
    let end = if t.end < frame { t.end } else { frame };
    if end <= start {
        return Captured::No; // no payload (a bare ACK, a SYN)
    }
    let orig_len = end - start;
    // SAFETY: the kernel's clock helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if !crate::budget::take(&CAPTURE_BUDGET, now, per_sec) {
        return Captured::Suppressed;
    }
    let Some(mut entry) = CAPTURES.reserve::<Capture>(0) else {
        // Debug level only: with the level off the verifier drops this as dead code.
        aya_log_ebpf::debug!(ctx, "capture refused: the ring buffer is full (kind {})", what);
        return Captured::Suppressed;
    };
    if orig_len > CAPTURE_DATA {
        aya_log_ebpf::debug!(ctx, "capture of {} bytes cut to {}", orig_len, CAPTURE_DATA);
    }
    let (family, addr) = (remote.family(), remote.key_bytes());
    let len = if orig_len > CAPTURE_DATA { CAPTURE_DATA } else { orig_len };
    // For the verifier: a length it can see is between 1 and the buffer's size. The value
    // goes through black_box so that LLVM, which knows the bounds already, keeps the checks.
    let len = core::hint::black_box(len) & 0x7ff;
    if len == 0 || len > CAPTURE_DATA {
        entry.discard(0);
        return Captured::No;
    }
    // Kernels before 6.7 learn nothing from `len != 0` (only from ordered comparisons), and
    // 6.1's verifier rejects a copy whose size may be 0: `(len - 1) min (CAPTURE_DATA - 1) + 1`
    // is the same value with a lower bound of 1 it can see.
    let len = {
        let below = core::hint::black_box(len - 1);
        (if below > CAPTURE_DATA - 1 { CAPTURE_DATA - 1 } else { below }) + 1
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` points at a reserved, writable `Capture`; the copy writes at most `len` (<=
    // CAPTURE_DATA) bytes into its data array.
    let copied = unsafe {
        (*p).header = CaptureHeader {
            time_ns: now,
            addr,
            mac: *mac,
            kind: what,
            family,
            remote_port,
            local_port,
            seq,
            len: len as u16,
            orig_len: if orig_len > 0xffff { 0xffff } else { orig_len as u16 },
            protocol: t.protocol,
            // Not `[0; 3]`: that is a call of `memset`, a byte loop for the verifier (see
            // `crate::zeroed`).
            reserved: [0, 0, 0],
        };
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            start as u32,
            (&raw mut (*p).data).cast(),
            len as u32,
        )
    };
    if copied != 0 {
        entry.discard(0);
        return Captured::No;
    }
    entry.submit(0);
    Captured::Sent
}

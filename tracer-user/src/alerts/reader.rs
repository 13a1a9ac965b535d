//! Reading the kernel's alert events, and the DNS/TLS captures that name remotes, as they
//! arrive.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::{
    capture::{Capture, CaptureHeader},
    policy::AlertEvent,
};

use super::{AlertBook, Enrichment};
use crate::remotes::domains::NameBook;

fn register(ring: RingBuf<MapData>) -> std::io::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the ring buffer owns its map fd for as long as it lives, and the AsyncFd owns
    // the ring buffer.
    unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Hands every capture waiting in `ring` to `names`.
fn drain_captures(ring: &mut RingBuf<MapData>, names: &NameBook) {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<CaptureHeader>() {
            names.stats.bad_captures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        // SAFETY: the kernel wrote at least a whole header (length checked); it is plain
        // integers, read unaligned.
        let header = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CaptureHeader>()) };
        let data = &item[size_of::<CaptureHeader>()..];
        let len = usize::from(header.len).min(data.len()).min(size_of::<Capture>());
        names.handle(&header, &data[..len]);
    }
}

/// Reads alert events (and, with `captures`, DNS/TLS captures) until the task is aborted; each
/// event is handed to the book within milliseconds of the packet (the fds wake the task as
/// soon as something is submitted). Captures waiting are always handled before alert events,
/// so an alert names the remote by the DNS answer the device got just before it.
pub fn spawn_reader(
    ring: RingBuf<MapData>,
    book: Arc<AlertBook>,
    enricher: Enrichment,
    captures: Option<(RingBuf<MapData>, Arc<NameBook>)>,
    pairs: Option<Arc<dyn super::PairSink>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut fd = register(ring)?;
    let mut captures = match captures {
        Some((ring, names)) => Some((register(ring)?, names)),
        None => None,
    };
    Ok(tokio::spawn(async move {
        loop {
            let capture_ready = async {
                match captures.as_mut() {
                    Some((fd, _)) => fd.readable_mut().await.map(|mut g| {
                        g.clear_ready();
                    }),
                    None => std::future::pending().await,
                }
            };
            let alerts = tokio::select! {
                guard = fd.readable_mut() => Some(guard),
                result = capture_ready => {
                    if let Err(err) = result {
                        tracing::error!(%err, "waiting for DNS/TLS captures failed; names stop");
                        captures = None;
                    }
                    None
                }
            };
            if let Some((ring, names)) = captures.as_mut() {
                drain_captures(ring.get_mut(), names);
            }
            let Some(guard) = alerts else { continue };
            let mut guard = match guard {
                Ok(guard) => guard,
                Err(err) => {
                    tracing::error!(%err, "waiting for alert events failed; alerts stop");
                    return;
                }
            };
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if item.len() < size_of::<AlertEvent>() {
                    tracing::warn!(len = item.len(), "short alert event ignored");
                    continue;
                }
                // SAFETY: the kernel wrote a whole `AlertEvent` (length checked above); it is
                // plain integers, and read unaligned.
                let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<AlertEvent>()) };
                drop(item);
                if event.action == tracer_common::policy::NEW_PAIR {
                    if let Some(pairs) = &pairs {
                        pairs.new_pair(&event);
                    }
                    continue;
                }
                book.handle(&event, enricher.as_ref());
            }
            guard.clear_ready();
        }
    }))
}

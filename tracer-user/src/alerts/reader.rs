//! Reading the kernel's alert events as they arrive.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::policy::AlertEvent;

use super::{AlertBook, Enrichment};

/// Reads events from the ring buffer until the task is aborted; each is handed to the book
/// within milliseconds of the packet (the fd wakes the task as soon as an event is submitted).
pub fn spawn_reader(
    ring: RingBuf<MapData>,
    book: Arc<AlertBook>,
    enricher: Enrichment,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the ring buffer owns its map fd for as long as it lives, and the AsyncFd owns
    // the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable_mut().await {
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
                book.handle(&event, enricher.as_ref());
            }
            guard.clear_ready();
        }
    }))
}

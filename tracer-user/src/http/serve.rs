//! Serving the API with bounds a LAN client cannot push past: a header read timeout (a
//! half-sent request is dropped), a cap on open connections that evicts the oldest idle one
//! when reached (so a scrape still gets through when idle clients hold every slot), a
//! request-header size limit, and no request bodies beyond a small JSON. Built on hyper's own
//! settings; the accept loop is the only part written here.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, serve::Listener};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::task::AbortHandle;

use crate::base::sync::Locked;
use crate::state::HttpStats;

/// Connections open at most; the next one evicts the oldest idle connection.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers (also between keep-alive requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head (request line and headers) read, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body accepted (the approve request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

struct Slot {
    id: u64,
    busy: Arc<AtomicBool>,
    task: AbortHandle,
}

/// Serves `app` on `listener` until the task is aborted.
pub async fn serve<L>(mut listener: L, app: Router, stats: Arc<HttpStats>)
where
    L: Listener,
    L::Io: Send + 'static,
{
    let app = app.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    let slots: Arc<Mutex<VecDeque<Slot>>> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (io, _peer) = listener.accept().await;
        next_id += 1;
        let id = next_id;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        // Held until the new connection is registered: its own clean-up waits for that.
        let mut open = slots.locked();
        if open.len() >= MAX_CONNECTIONS {
            // The oldest connection not in the middle of a request goes.
            if let Some(i) = open.iter().position(|s| !s.busy.load(Ordering::Relaxed))
                && let Some(slot) = open.remove(i)
            {
                slot.task.abort();
                stats.evicted.fetch_add(1, Ordering::Relaxed);
                stats.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let busy = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&busy);
        let service = tower::ServiceExt::map_request(app.clone(), move |req| {
            flag.store(true, Ordering::Relaxed);
            req
        });
        let flag = Arc::clone(&busy);
        let service = tower::ServiceExt::map_response(service, move |res| {
            flag.store(false, Ordering::Relaxed);
            res
        });
        let service = TowerToHyperService::new(service);
        let (slots_done, stats_done) = (Arc::clone(&slots), Arc::clone(&stats));
        let task = tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
            let mut open = slots_done.locked();
            if let Some(i) = open.iter().position(|s| s.id == id) {
                open.remove(i);
                stats_done.open.fetch_sub(1, Ordering::Relaxed);
            }
        });
        stats.open.fetch_add(1, Ordering::Relaxed);
        open.push_back(Slot { id, busy, task: task.abort_handle() });
        drop(open);
    }
}

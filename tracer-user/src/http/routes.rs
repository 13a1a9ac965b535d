//! The HTTP server (read-only): the web page at `/`, `/metrics` (Prometheus),
//! `/api/v1/devices` and `/api/v1/alerts` (JSON) and `/healthz`.

use std::{sync::Arc, time::UNIX_EPOCH};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};

use crate::base::sync::ReadWrite;
use crate::{
    metrics::{CONTENT_TYPE, Metrics},
    state::Context,
    state::report::Report,
};

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The Prometheus exposition.
    pub metrics: Arc<Metrics>,
    /// The agent's shared state.
    pub ctx: Arc<Context>,
    /// Whether changing requests (approving countries) are served: the API has credentials or
    /// listens on loopback only.
    pub writable: bool,
}

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when the maps cannot be read.
    pub status: String,
    /// Interfaces the programs are attached to.
    pub interfaces: Vec<String>,
    /// The country database's source.
    pub geo_source: String,
    /// Its build date, if known.
    pub geo_build_date: Option<String>,
    /// Unix time it was loaded.
    pub geo_loaded_at: Option<u64>,
    /// Reloads: successful and rejected.
    pub reloads: [u64; 2],
    /// Entries in use / capacity of the traffic map, if readable.
    pub traffic_map: Option<[u64; 2]>,
}

/// Serves until the task is aborted, with `security`'s authentication and TLS (the caller logs
/// [`crate::http::access::Security::log`] first).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    security: crate::http::access::Security,
) -> std::io::Result<()> {
    let stats = std::sync::Arc::clone(&state.ctx.http);
    let mut app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/devices", get(devices_handler))
        .route("/api/v1/devices/{mac}/remotes", get(remotes_handler))
        .route("/api/v1/alerts", get(alerts_handler))
        .route("/api/v1/baseline", get(baseline_handler))
        .route("/api/v1/history", get(history_handler))
        .route("/api/v1/baseline/approve", axum::routing::post(approve_handler))
        .route("/healthz", get(health_handler))
        .route("/", get(page_handler))
        // Browsers ask for it: an empty answer rather than a 404 in their console.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(state);
    if let Some(auth) = security.auth {
        app = app.layer(axum::middleware::from_fn_with_state(auth, crate::http::auth::require));
    }
    #[cfg(feature = "tls")]
    if let Some(tls) = security.tls {
        let listener = crate::http::tls::TlsListener::new(listener, tls)?;
        crate::http::serve::serve(listener, app, stats).await;
        return Ok(());
    }
    crate::http::serve::serve(listener, app, stats).await;
    Ok(())
}

/// The web page: one self-contained file (no CDN, no build step), embedded in the binary.
const PAGE: &str = include_str!("../../web/index.html");

/// The world map (`cargo xtask world-map`: Natural Earth 110m, public domain), inlined into the
/// page where it says `<!--WORLD-MAP-->`, so the map is drawn with the first paint.
const WORLD_MAP: &str = include_str!("../../web/world.svg");

static PAGE_WITH_MAP: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| PAGE.replacen("<!--WORLD-MAP-->", WORLD_MAP, 1));

async fn page_handler() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline' 'self'"),
        ],
        PAGE_WITH_MAP.as_str(),
    )
        .into_response()
}

/// `?mac=&country=&range=24h|7d&limit=` of `GET /api/v1/history`.
#[derive(Debug, Default, Deserialize)]
struct HistoryParams {
    mac: Option<String>,
    country: Option<String>,
    range: Option<String>,
    limit: Option<String>,
}

async fn history_handler(
    State(state): State<AppState>,
    axum::extract::Query(p): axum::extract::Query<HistoryParams>,
) -> Response {
    let Some(history) = state.ctx.history.get() else {
        return (StatusCode::NOT_FOUND, "no traffic history (--history-points 0)\n")
            .into_response();
    };
    match crate::history::Query::from_params(
        p.mac.as_deref(),
        p.country.as_deref(),
        p.range.as_deref(),
        p.limit.as_deref(),
    ) {
        Ok(query) => Json(history.query(&query, crate::base::clock::unix_now())).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    // Tens of milliseconds for a large network: off the runtime's two workers, which also
    // carry the alert and naming events.
    let metrics = Arc::clone(&state.metrics);
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Ok(Err(_)) | Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "reading the counters failed\n").into_response()
        }
    }
}

/// Devices one `GET /api/v1/devices` answers with by default, and at most.
pub const DEVICES_PAGE: usize = 100;
/// Most devices one page holds.
pub const MAX_DEVICES_PAGE: usize = 1000;

/// `?limit=&offset=` of `GET /api/v1/devices`.
#[derive(Debug, Default, Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn devices_handler(
    State(state): State<AppState>,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Response {
    match state.ctx.reader.snapshot() {
        Ok(snapshot) => {
            let known: &dyn crate::alerts::Enricher = state.ctx.as_ref();
            let limit = page.limit.unwrap_or(DEVICES_PAGE).min(MAX_DEVICES_PAGE);
            let offset = page.offset.unwrap_or(0);
            let mut report = Report::page(&snapshot, Some(known), offset, limit);
            report.learning = state.ctx.learner.get().is_some();
            report.history = state.ctx.history.get().is_some();
            add_dns_facts(&mut report, &state.ctx);
            Json(report).into_response()
        }
        Err(err) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("reading the counters failed: {err}\n"))
                .into_response()
        }
    }
}

async fn remotes_handler(
    State(state): State<AppState>,
    axum::extract::Path(mac): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<crate::remotes::Query>,
) -> Response {
    let Some(parsed) = crate::base::text::parse_mac(&mac) else {
        return (StatusCode::BAD_REQUEST, "not a MAC address (aa:bb:cc:dd:ee:ff)\n")
            .into_response();
    };
    match state.ctx.remotes.snapshot() {
        Ok(snapshot) => {
            let asn = state.ctx.asn();
            let names = Some(state.ctx.names.as_ref());
            Json(crate::remotes::device_remotes(&snapshot, parsed, &query, asn.as_deref(), names))
                .into_response()
        }
        Err(err) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("reading the remote table failed: {err}\n"))
                .into_response()
        }
    }
}

/// Per device: the resolvers it got answers from, and whether it talks encrypted DNS (from its
/// remotes' ports and addresses).
fn add_dns_facts(report: &mut Report, ctx: &Context) {
    let mut encrypted = std::collections::HashSet::new();
    if let Ok(remotes) = ctx.remotes.snapshot() {
        for e in &remotes.entries {
            if crate::remotes::domains::is_encrypted_dns(e.address(), e.port) {
                encrypted.insert(crate::base::text::format_mac(e.key.mac));
            }
        }
    }
    for device in &mut report.devices {
        if let Some(mac) = crate::base::text::parse_mac(&device.info.mac) {
            device.resolvers = ctx.names.resolvers(mac).iter().map(ToString::to_string).collect();
        }
        device.encrypted_dns = encrypted.contains(&device.info.mac);
    }
}

async fn baseline_handler(State(state): State<AppState>) -> Response {
    match state.ctx.learner.get() {
        Some(learner) => Json(learner.view()).into_response(),
        None => (StatusCode::NOT_FOUND, "learning mode is off (--learn-for)\n").into_response(),
    }
}

/// The body of `POST /api/v1/baseline/approve`.
#[derive(Debug, Deserialize)]
struct Approve {
    mac: String,
    countries: Vec<String>,
}

/// Approves countries for a device. Only when the API has credentials, or serves loopback
/// alone (then only processes on the gateway can call it).
async fn approve_handler(State(state): State<AppState>, Json(body): Json<Approve>) -> Response {
    if !state.writable {
        return (
            StatusCode::FORBIDDEN,
            "approving needs an API with credentials (--auth-token-file or --basic-auth-file) \
             or a loopback --listen\n",
        )
            .into_response();
    }
    let Some(learner) = state.ctx.learner.get() else {
        return (StatusCode::NOT_FOUND, "learning mode is off (--learn-for)\n").into_response();
    };
    let Some(mac) = crate::base::text::parse_mac(&body.mac) else {
        return (StatusCode::BAD_REQUEST, "not a MAC address (aa:bb:cc:dd:ee:ff)\n")
            .into_response();
    };
    if body.countries.is_empty() || body.countries.len() > 300 {
        return (StatusCode::BAD_REQUEST, "give 1 to 300 countries\n").into_response();
    }
    let was_new = learner.approve(mac, &body.countries);
    Json(serde_json::json!({"mac": crate::base::text::format_mac(mac), "approved": body.countries, "were_new": was_new}))
        .into_response()
}

/// The body of `GET /api/v1/alerts`.
#[derive(Debug, Serialize)]
struct AlertList {
    /// Most recent first.
    alerts: Vec<crate::alerts::Alert>,
}

async fn alerts_handler(State(state): State<AppState>) -> Response {
    Json(AlertList { alerts: state.ctx.alerts.recent() }).into_response()
}

async fn health_handler(State(state): State<AppState>) -> Response {
    let reader = &state.ctx.reader;
    let map = reader.entries().ok().map(|n| [n as u64, u64::from(reader.capacity())]);
    let status = state.ctx.status.reading();
    let health = Health {
        status: if map.is_some() { "ok" } else { "degraded" }.to_owned(),
        interfaces: status.interfaces.clone(),
        geo_source: status.geo.source.clone(),
        geo_build_date: status.geo.build_date.clone(),
        geo_loaded_at: status
            .geo
            .loaded_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        reloads: [status.reloads_ok, status.reloads_failed],
        traffic_map: map,
    };
    let code = if map.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(health)).into_response()
}

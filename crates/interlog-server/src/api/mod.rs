//! HTTP routing: AWS operations by path or `X-Amz-Target` (§1.4 of the spec), ours under
//! `/_interlog/`, and the plumbing every handler shares.

mod control;
pub mod error;
pub mod export;
pub mod history;
mod properties;
mod put_action_interactions;
mod put_events;
mod put_records;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use interlog_model::RecordKind;
use interlog_store::{CatalogCache, Health, Store};

use crate::auth::{Authenticator, Caller};
use crate::service::Service;
use error::{ApiError, Plane};

/// What every handler can reach: one `Arc`, because axum clones the state for every request and
/// a struct of a dozen `Arc`s and two `String`s cost a dozen atomic increments and two allocations.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    pub fn new(shared: AppShared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// The fields behind [`AppState`].
pub struct AppShared {
    pub store: Arc<dyn Store>,
    /// The hot path's view of the catalog (tracking IDs, dataset ARNs).
    pub cache: Arc<CatalogCache>,
    /// The control plane.
    pub service: Service,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// `--strict-properties`: refuse `properties` keys that match no schema field instead of
    /// keeping the event and flagging it.
    pub strict_properties: bool,
    /// Flagged events by kind, and the rate-limited warning about them.
    pub flagged: Arc<crate::flags::Flagged>,
    /// An admitted body must arrive whole within this long (`INTERLOG_BODY_TIMEOUT_SECS`).
    pub body_timeout: std::time::Duration,
    /// `GET /_interlog/export`: its limits and the exports running per account.
    pub exports: Arc<export::ExportGate>,
    /// Who may read `GET /_interlog/stats`: requests signed by this (the root) account, or
    /// anyone when None (`--public-stats`).
    pub stats_account: Option<String>,
    /// The sinks of this node, for `GET /_interlog/sinks`.
    pub sinks: crate::sinks::Sinks,
    /// The root account: the only one that may replay dead letters, `--public-stats` or not.
    pub root_account: String,
    /// The metrics of `GET /_interlog/metrics` (and the request span's layer, applied by the serve loop).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The web debugger at `/_interlog/ui`: its feed, counts and sessions.
    pub debugger: crate::debugger::Shared,
}

/// The whole HTTP surface. A plain function so tests can drive it without a socket. The request
/// ID, span and metrics are the outermost layer ([`crate::telemetry::observe`]), which the serve
/// loop puts around the admission check too.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/_interlog/health", get(health))
        .route("/_interlog/export", get(export::export))
        .route("/_interlog/stats", get(stats))
        .route("/_interlog/sinks", get(sinks))
        .route("/_interlog/dead-letters", get(dead_letters))
        .route("/_interlog/dead-letters/replay", axum::routing::post(replay_dead_letters))
        .route("/_interlog/metrics", get(metrics))
        .route("/_interlog/v1/events", get(history::history))
        .merge(crate::debugger::routes())
        .fallback(dispatch)
        .with_state(state)
}

/// The name of a control-plane operation this server implements, for the metrics' `operation` label.
pub(crate) fn control_operation(name: &str) -> Option<&'static str> {
    control::operation_name(name)
}

/// Prometheus metrics (docs/api.md, "Metrics"). Like the statistics they add up every tenant's
/// traffic (and name accounts and trackers), so the same rule: the root account's, unless
/// `--public-stats`.
async fn metrics(State(state): State<AppState>, request: Request) -> Response {
    if let Err(refused) = root_only(&state, request, "the server's metrics").await {
        return refused;
    }
    crate::telemetry::exposition(state.telemetry.render(&*state.store, &state.sinks).await)
}

/// Unauthenticated on purpose: load balancers and test harnesses probe it without keys. It
/// answers 503 with the reason while the store cannot write, so a load balancer sends traffic
/// elsewhere until the store recovers by itself.
async fn health(State(state): State<AppState>) -> Response {
    let (status, body) = match state.store.health() {
        Health::Writable => (axum::http::StatusCode::OK, serde_json::json!({ "status": "ok" })),
        Health::Unavailable(reason) | Health::Failed(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": reason }),
        ),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Write-path counters for operators and the benchmark. They add up every tenant's traffic, so
/// only the root account may read them (a signed request), unless `--public-stats`.
async fn stats(State(state): State<AppState>, request: Request) -> Response {
    if let Err(refused) = root_only(&state, request, "the server's statistics").await {
        return refused;
    }
    let s = state.store.stats();
    let flagged: serde_json::Map<String, serde_json::Value> =
        state.flagged.counts().map(|(kind, n)| (kind.as_str().to_owned(), n.into())).collect();
    let body = serde_json::json!({
        "commits": s.commits,
        "failedCommits": s.failed_commits,
        "eventsStored": s.events_stored,
        "duplicatesDropped": s.duplicates_dropped,
        "throttled": s.throttled,
        // Stored events that carry flags, by kind (docs/api.md).
        "flagged": flagged,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Each sink's cursor, lag, counters and last error per dataset (`docs/streams.md`). Every
/// tenant's datasets are in it, so it is the root account's, like the statistics.
async fn sinks(State(state): State<AppState>, request: Request) -> Response {
    if let Err(refused) = root_only(&state, request, "the state of the sinks").await {
        return refused;
    }
    match state.sinks.status().await {
        Ok(sinks) => {
            let body = serde_json::json!({ "sinks": sinks });
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => ApiError::from(e).on(Plane::Interlog).into_response(),
    }
}

/// The dead letters of every sink, or of `?sink=NAME`: events a destination refused for good,
/// with where they are in their dataset's log and why (`docs/streams.md`).
async fn dead_letters(State(state): State<AppState>, request: Request) -> Response {
    let sink =
        request.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sink="))).map(str::to_owned);
    if let Err(refused) = root_only(&state, request, "the dead letters").await {
        return refused;
    }
    match state.sinks.dead_letters(sink.as_deref()).await {
        Ok(letters) => {
            let body = serde_json::json!({ "deadLetters": letters });
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => ApiError::from(e).on(Plane::Interlog).into_response(),
    }
}

/// `POST /_interlog/dead-letters/replay` with `{"sink": "forward", "ids": [..]}` (no `ids`:
/// all of the sink's): delivers them again and says which went, which were refused again and
/// which could not be tried. Changes state, so only the root account may, `--public-stats` or
/// not.
async fn replay_dead_letters(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request = match authenticated(&state, &parts, body).await {
        Ok(r) => r,
        Err(e) => return e.on(Plane::Interlog).into_response(),
    };
    if request.caller.account != state.root_account {
        return ApiError::AccessDenied(format!(
            "Account {} may not replay dead letters: only the root account may",
            request.caller.account
        ))
        .on(Plane::Interlog)
        .into_response();
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Replay {
        sink: String,
        ids: Option<Vec<i64>>,
    }
    let asked: Replay = match serde_json::from_slice(&request.body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::InvalidInput(format!(
                "the body must be {{\"sink\": \"NAME\", \"ids\": [ID, ...]}} (ids optional: all): {e}"
            ))
            .on(Plane::Interlog)
            .into_response()
        }
    };
    match state.sinks.replay(&asked.sink, asked.ids.as_deref()).await {
        Ok(report) => {
            ([(header::CONTENT_TYPE, "application/json")], serde_json::json!(report).to_string()).into_response()
        }
        Err(e) => ApiError::from(e).on(Plane::Interlog).into_response(),
    }
}

/// Lets only requests signed by the root account through (everyone with `--public-stats`).
async fn root_only(state: &AppState, request: Request, what: &str) -> Result<(), Response> {
    let Some(root) = &state.stats_account else { return Ok(()) };
    let (parts, body) = request.into_parts();
    let caller = authenticated(state, &parts, body).await.map_err(|e| e.on(Plane::Interlog).into_response())?.caller;
    if &caller.account != root {
        return Err(ApiError::AccessDenied(format!(
            "Account {} may not read {what}: only the root account may \
             (or everyone with interlog serve --public-stats)",
            caller.account
        ))
        .on(Plane::Interlog)
        .into_response());
    }
    Ok(())
}

/// An authenticated AWS request, body read.
pub(crate) struct AwsRequest {
    pub(crate) caller: Caller,
    pub(crate) body: Bytes,
}

/// Routes AWS traffic: `X-Amz-Target` means the control plane whatever the path; otherwise the
/// last path segment names the data-plane operation, so `--endpoint-url http://host/prefix` works.
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let plane = if request.headers().contains_key("x-amz-target") { Plane::Control } else { Plane::Data };
    let (parts, body) = request.into_parts();
    let request = match authenticated(&state, &parts, body).await {
        Ok(r) => r,
        Err(e) => {
            let response = e.on(plane).into_response();
            state.debugger.unauthenticated(&state.auth, &parts, &response);
            return response;
        }
    };
    // Both are cheap (a refcount, one short string): the debugger needs them after the handler.
    let (account, body) = (request.caller.account.clone(), request.body.clone());
    let debugger = state.debugger.clone();
    let response = route(state, &parts, request).await;
    debugger.answered(&account, &parts, &body, &response);
    response
}

/// The operation of an authenticated AWS request.
async fn route(state: AppState, parts: &Parts, request: AwsRequest) -> Response {
    if let Some(target) = parts.headers.get("x-amz-target") {
        let target = String::from_utf8_lossy(target.as_bytes()).into_owned();
        return control::control(state, request, &target).await;
    }
    let path = parts.uri.path().trim_end_matches('/');
    let operation = path.rsplit('/').next().unwrap_or_default();
    if parts.method == Method::POST {
        match operation {
            "events" => return put_events::put_events(state, request).await.into_response(),
            "items" => return put_records::put_records(state, request, RecordKind::Item).await.into_response(),
            "users" => return put_records::put_records(state, request, RecordKind::User).await.into_response(),
            "actions" => return put_records::put_records(state, request, RecordKind::Action).await.into_response(),
            "action-interactions" => {
                return put_action_interactions::put_action_interactions(state, request).await.into_response()
            }
            _ => {}
        }
    }
    ApiError::UnknownOperation(format!(
        "No operation matches {} {path}: Personalize Events operations are POST /events, /items, /users, \
         /actions and /action-interactions; control-plane calls carry an X-Amz-Target header",
        parts.method
    ))
    .on(Plane::Data)
    .into_response()
}

/// Reads the body (bounded) and verifies the signature over it.
pub(crate) async fn authenticated(state: &AppState, parts: &Parts, body: Body) -> Result<AwsRequest, ApiError> {
    let body =
        read_body(body, parts.headers.get(header::CONTENT_LENGTH), state.max_body_bytes, state.body_timeout).await?;
    let caller = state.auth.authenticate(parts, &body)?;
    Ok(AwsRequest { caller, body })
}

/// Reads a request body, refusing one larger than `limit` before reading it whole, and one that
/// does not arrive whole within `timeout` (a client trickling its body would otherwise hold
/// its share of the body budget for as long as the connection timeouts allow).
async fn read_body(
    body: Body,
    declared: Option<&HeaderValue>,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::RequestEntityTooLarge(format!("Request body is larger than the {limit} bytes this server accepts"))
    };
    if let Some(len) = declared.and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        ApiError::RequestTimeout(format!(
            "The request body did not arrive within {} s; send it at once, or retry",
            timeout.as_secs_f64()
        ))
    })?;
    read.map_err(|e| {
        use std::error::Error;
        let mut source: Option<&(dyn Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = s.source();
        }
        ApiError::InvalidInput(format!("Could not read the request body: {e}"))
    })
}

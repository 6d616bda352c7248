//! The live event debugger at `/_interlog/ui`: a page served by the binary (HTML, JS and CSS
//! embedded at build time, nothing fetched from elsewhere), signed into with an access key ID and
//! secret of an account. It shows that account's dataset groups, datasets and trackers (the
//! protocol-free control plane in `service/`), a live tail of stored events and rejected requests
//! (server-sent events from [`feed::Feed`]), flagged events with their reasons, counts per
//! tracker over the last minute and hour, and the history of one user or session
//! (`interlog_store::history`). Each account sees only its own data, and nothing is shown before
//! signing in.

pub mod feed;
pub mod sessions;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use interlog_model::Interaction;
use interlog_store::catalog::resources::{DatasetSpec, GroupSpec, TrackerSpec};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tokio_stream::StreamExt;

use crate::api::error::{ApiError, AwsError, Plane, Rejection};
use crate::api::history::{interaction_json, lookup, HistoryQuery};
use crate::api::AppState;
use crate::auth::{Authenticator, Caller};
use feed::{Feed, Tally};
use sessions::Sessions;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Every path of the debugger starts with this.
pub const PREFIX: &str = "/_interlog/ui/";
/// The largest body a debugger call may send (the sign-in form).
pub const MAX_BODY_BYTES: usize = 4096;

/// The debugger's state: the feed, the counts and the sessions.
#[derive(Default)]
pub struct Debugger {
    pub feed: Feed,
    pub sessions: Sessions,
    /// Mark the session cookie `Secure` (the server speaks HTTPS).
    pub secure_cookie: bool,
}

/// The debugger's routes, all under `/_interlog/ui`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_interlog/ui", get(page))
        .route("/_interlog/ui/", get(page))
        .route("/_interlog/ui/app.js", get(|| asset(APP_JS, "text/javascript; charset=utf-8")))
        .route("/_interlog/ui/app.css", get(|| asset(APP_CSS, "text/css; charset=utf-8")))
        .route("/_interlog/ui/api/session", get(me).post(sign_in).delete(sign_out))
        .route("/_interlog/ui/api/resources", get(resources))
        .route("/_interlog/ui/api/counts", get(counts))
        .route("/_interlog/ui/api/history", get(history))
        .route("/_interlog/ui/api/stream", get(stream))
}

/// Pages never go to a cache or into a frame of another site.
fn guarded(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", header::HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    response
}

async fn page() -> Response {
    guarded(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX_HTML).into_response())
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    guarded(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn denied() -> AwsError {
    ApiError::AccessDenied("Sign in to the debugger first (access key ID and secret of your account)".into())
        .on(Plane::Interlog)
}

/// The account of the request's session cookie.
fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Caller, AwsError> {
    let token = sessions::token(headers).ok_or_else(denied)?;
    let account = state.debugger.sessions.account(&token).ok_or_else(denied)?;
    Ok(Caller { account, region: "us-east-1".into() })
}

fn json_response(body: Value) -> Response {
    guarded(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AwsError> {
    let caller = signed_in(&state, &headers)?;
    Ok(json_response(json!({ "account": caller.account })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    access_key_id: String,
    secret_access_key: String,
}

async fn sign_in(State(state): State<AppState>, body: Bytes) -> Result<Response, AwsError> {
    let form: SignIn = serde_json::from_slice(&body).map_err(|e| {
        ApiError::InvalidInput(format!("Send {{\"accessKeyId\": ..., \"secretAccessKey\": ...}}: {e}"))
            .on(Plane::Interlog)
    })?;
    let account = match &state.auth {
        Authenticator::Off(caller) => caller.account.clone(),
        Authenticator::SigV4 { verifier, .. } => verifier
            .keyring()
            .check_secret(&form.access_key_id, &form.secret_access_key)
            .map(|c| c.account_id().to_owned())
            .ok_or_else(|| {
                tracing::info!(access_key_id = %form.access_key_id, "debugger sign-in refused");
                ApiError::AccessDenied("The access key ID or its secret is not right".into()).on(Plane::Interlog)
            })?,
    };
    let token = state.debugger.sessions.open(&account);
    let cookie = sessions::set_cookie(&token, state.debugger.secure_cookie);
    Ok(guarded(
        (
            [(header::SET_COOKIE, cookie), (header::CONTENT_TYPE, "application/json".into())],
            json!({ "account": account }).to_string(),
        )
            .into_response(),
    ))
}

async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = sessions::token(&headers) {
        state.debugger.sessions.close(&token);
    }
    guarded(([(header::SET_COOKIE, sessions::clear_cookie())], StatusCode::NO_CONTENT).into_response())
}

/// The account's dataset groups, each with its datasets and trackers.
async fn resources(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AwsError> {
    let caller = signed_in(&state, &headers)?;
    let fail = |e: ApiError| e.on(Plane::Interlog);
    let service = &state.service;
    let groups = service.list::<GroupSpec>(&caller, None, 0, 1000).await.map_err(fail)?;
    let mut out = Vec::new();
    for g in groups.items {
        let datasets = service.list::<DatasetSpec>(&caller, Some(&g.meta.arn), 0, 1000).await.map_err(fail)?;
        let trackers = service.list::<TrackerSpec>(&caller, Some(&g.meta.arn), 0, 1000).await.map_err(fail)?;
        out.push(json!({
            "name": g.meta.name, "arn": g.meta.arn, "status": g.meta.status,
            "datasets": datasets.items.iter().map(|d| json!({
                "name": d.meta.name, "arn": d.meta.arn, "type": d.spec.dataset_type, "status": d.meta.status,
            })).collect::<Vec<_>>(),
            "trackers": trackers.items.iter().map(|t| json!({
                "name": t.meta.name, "arn": t.meta.arn, "trackingId": t.spec.tracking_id, "status": t.meta.status,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(json_response(json!({ "account": caller.account, "datasetGroups": out })))
}

async fn counts(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AwsError> {
    let caller = signed_in(&state, &headers)?;
    Ok(json_response(json!({ "trackers": state.debugger.feed.counts(&caller.account) })))
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, AwsError> {
    let caller = signed_in(&state, &headers)?;
    let events = lookup(&state, &caller.account, &q).await.map_err(|e| e.on(Plane::Interlog))?;
    Ok(json_response(json!({ "events": events.iter().map(crate::api::history::event_json).collect::<Vec<_>>() })))
}

/// The live tail: the account's items as server-sent events, until the session ends.
async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AwsError> {
    let caller = signed_in(&state, &headers)?;
    let token = sessions::token(&headers).unwrap_or_default();
    let debugger = state.debugger.clone();
    let items = BroadcastStream::new(debugger.feed.subscribe());
    let account = caller.account;
    let events = items
        .take_while(move |_| debugger.sessions.account(&token).is_some())
        .filter_map(move |item| match item {
            Ok(item) if item.account == account => Some(item.body.to_string()),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(json!({ "type": "missed", "count": n }).to_string()),
        })
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    Ok(guarded(sse.into_response()))
}

/// The operation a data-plane or control-plane request named, for the page.
fn operation(parts: &Parts) -> String {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    match parts.uri.path().trim_end_matches('/').rsplit('/').next().unwrap_or_default() {
        "events" => "PutEvents",
        "items" => "PutItems",
        "users" => "PutUsers",
        "actions" => "PutActions",
        "action-interactions" => "PutActionInteractions",
        _ => "unknown",
    }
    .to_owned()
}

impl Debugger {
    /// After an authenticated AWS request: a rejection (the [`Rejection`] its error response
    /// carries) goes to the account's feed and its tracker's count. Never waits.
    pub fn answered(&self, account: &str, parts: &Parts, body: &Bytes, response: &Response) {
        let Some(rejection) = response.extensions().get::<Rejection>() else { return };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Tracked {
            tracking_id: Option<String>,
        }
        // Read only on the error path; a body that is not JSON names no tracker.
        let tracking_id = serde_json::from_slice::<Tracked>(body).ok().and_then(|t| t.tracking_id);
        if let Some(t) = &tracking_id {
            self.feed.count(account, t, Tally { rejected: 1, ..Default::default() });
        }
        self.feed.publish(
            account,
            json!({
                "type": "rejected",
                "at": feed::now(),
                "operation": operation(parts),
                "trackingId": tracking_id,
                "errorType": rejection.code,
                "message": rejection.message,
                "member": feed::offending_member(&rejection.message),
            }),
        );
    }

    /// A request refused before it was authenticated, shown to the account of the access key
    /// it names when that key exists (a bad signature, an expired date): the caller is then
    /// known well enough to be told, and nobody else is.
    pub fn unauthenticated(&self, auth: &Authenticator, parts: &Parts, response: &Response) {
        if !self.feed.watched() {
            return;
        }
        let (Authenticator::SigV4 { verifier, .. }, Some(rejection)) = (auth, response.extensions().get::<Rejection>())
        else {
            return;
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .and_then(|v| v.split('/').next());
        let Some(credential) = key.and_then(|k| verifier.keyring().get(k)) else { return };
        self.feed.publish(
            credential.account_id(),
            json!({
                "type": "rejected",
                "at": feed::now(),
                "operation": operation(parts),
                "trackingId": null,
                "errorType": rejection.code,
                "message": rejection.message,
                "member": null,
            }),
        );
    }

    /// After a PutEvents append: the tracker's counts, and its events for the pages watching.
    pub fn stored(
        &self,
        account: &str,
        tracking_id: &str,
        events: Option<&[Interaction]>,
        stored: usize,
        duplicates: usize,
        flagged: usize,
    ) {
        let tally =
            Tally { stored: stored as u64, duplicates: duplicates as u64, flagged: flagged as u64, rejected: 0 };
        self.feed.count(account, tracking_id, tally);
        let Some(events) = events else { return };
        let at = feed::now();
        let list: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut v = interaction_json(e);
                v.insert("receivedAt".into(), json!(at));
                Value::Object(v)
            })
            .collect();
        self.feed.publish(
            account,
            json!({
                "type": "stored", "at": at, "trackingId": tracking_id, "events": list,
                "stored": stored, "duplicates": duplicates,
            }),
        );
    }
}

/// Shared by [`AppState`].
pub type Shared = Arc<Debugger>;

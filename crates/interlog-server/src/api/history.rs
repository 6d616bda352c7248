//! `GET /_interlog/v1/events?trackingId=…&userId=…|sessionId=…&limit=N`: one user's or one
//! session's newest events, newest first, as `{"events": [...]}`, each with its PutEvents members,
//! `receivedAt` and its flags (`interlog_store::history`). Signed like every AWS call; a tracker of
//! another account is as unknown as one that does not exist.

use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use interlog_model::Interaction;
use interlog_store::history::MAX_HISTORY_LIMIT;
use interlog_store::{StoredEvent, TrackerKind, Who};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, AwsError, Plane};
use super::AppState;

/// Events returned when the query names no limit.
pub const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    pub tracking_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub limit: Option<String>,
}

pub(super) async fn history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
    request: Request,
) -> Result<Response, AwsError> {
    let (parts, body) = request.into_parts();
    let caller = super::authenticated(&state, &parts, body).await.map_err(|e| e.on(Plane::Interlog))?.caller;
    let events = lookup(&state, &caller.account, &q).await.map_err(|e| e.on(Plane::Interlog))?;
    let body = json!({ "events": events.iter().map(event_json).collect::<Vec<_>>() });
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

/// The query of `account`, checked and run: shared by the signed endpoint and the debugger.
pub async fn lookup(state: &AppState, account: &str, q: &HistoryQuery) -> Result<Vec<StoredEvent>, ApiError> {
    let nonempty = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let tracking_id = nonempty(&q.tracking_id).ok_or_else(|| {
        ApiError::InvalidInput(
            "Name the event tracker: ?trackingId=... (see `aws personalize list-event-trackers`)".into(),
        )
    })?;
    let who = match (nonempty(&q.user_id), nonempty(&q.session_id)) {
        (Some(user), None) => Who::User(user),
        (None, Some(session)) => Who::Session(session),
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidInput("Name either userId or sessionId, not both".into()));
        }
        (None, None) => return Err(ApiError::InvalidInput("Name whose history: ?userId=... or ?sessionId=...".into())),
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text.parse::<usize>().ok().filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::InvalidInput(format!(
                "Value '{text}' at 'limit' failed to satisfy constraint: a whole number from 1 to {MAX_HISTORY_LIMIT}"
            ))
        })?,
    };
    let target = state
        .cache
        .tracker(&tracking_id)
        .filter(|t| t.account == account && t.kind == TrackerKind::Events)
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "The trackingId '{tracking_id}' does not match any ACTIVE event tracker of account {account}"
            ))
        })?;
    let Some(dataset) = target.dataset.as_ref() else { return Ok(Vec::new()) };
    Ok(state.store.history(dataset.id, who, limit).await?)
}

/// An event as PutEvents took it (`eventId` and the request's `userId` / `sessionId` included),
/// with `receivedAt` (epoch seconds) and `flags`.
pub fn event_json(e: &StoredEvent) -> Value {
    let mut v = interaction_json(&e.interaction);
    v.insert("receivedAt".into(), json!(e.received_at));
    Value::Object(v)
}

/// The PutEvents members of one event, and its flags.
pub fn interaction_json(i: &Interaction) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("eventId".into(), json!(i.event_id));
    v.insert("eventType".into(), json!(i.event_type));
    v.insert("sentAt".into(), json!(i.sent_at));
    v.insert("sessionId".into(), json!(i.session_id));
    let mut optional = |k: &str, val: Option<Value>| {
        if let Some(val) = val {
            v.insert(k.into(), val);
        }
    };
    optional("userId", i.user_id.as_ref().map(|s| json!(s)));
    optional("itemId", i.item_id.as_ref().map(|s| json!(s)));
    optional("eventValue", i.event_value.map(|x| json!(x)));
    optional("properties", i.properties.as_ref().map(|s| json!(s)));
    optional("recommendationId", i.recommendation_id.as_ref().map(|s| json!(s)));
    optional("impression", i.impression.as_ref().map(|l| json!(l)));
    optional("metricAttribution", i.event_attribution_source.as_ref().map(|s| json!({ "eventAttributionSource": s })));
    v.insert("flags".into(), json!(i.flags));
    v
}

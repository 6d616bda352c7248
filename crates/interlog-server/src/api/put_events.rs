//! `POST /events` (PutEvents): route by tracking ID, validate each event with its properties
//! checked against the tracker's compiled schema in the same pass (flagging undeclared keys),
//! flag what is suspicious (`interlog_model::suspect`), append durably, count (stats, metrics),
//! answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::put_events::PutEventsBody;
use interlog_store::TrackerKind;

use super::error::{ApiError, AwsError, Plane};
use super::{properties, AppState, AwsRequest};

pub(super) async fn put_events(state: AppState, request: AwsRequest) -> Result<Response, AwsError> {
    let telemetry = state.telemetry.clone();
    let account = request.caller.account.clone();
    // The tracker the request resolved to, for the metrics of a refused request.
    let mut resolved = None;
    handle(state, request, &mut resolved).await.map_err(|e| {
        telemetry.rejected(&account, resolved.as_deref());
        e.on(Plane::Data)
    })
}

async fn handle(state: AppState, request: AwsRequest, resolved: &mut Option<String>) -> Result<Response, ApiError> {
    let body = PutEventsBody::parse(&request.body)?;
    // PutEvents models only InvalidInputException, so an unknown tracker is reported as one; a
    // tracker of another account is indistinguishable from an unknown one. A request that is
    // invalid besides says so first, as the events are read before the tracker is judged.
    let target = body
        .tracking_id()
        .and_then(|id| state.cache.tracker(id))
        .filter(|t| t.account == request.caller.account && t.kind == TrackerKind::Events);
    *resolved = target.as_ref().map(|t| t.tracking_id.clone());
    let dataset = target.as_ref().and_then(|t| t.dataset.clone());
    let schema =
        dataset.as_ref().and_then(|d| d.compiled.as_deref()).map(|s| (s, properties::rules(state.strict_properties)));
    let mut put = body.events(schema)?;
    let target = target.ok_or_else(|| {
        ApiError::InvalidInput(format!(
            "The trackingId '{}' does not match any ACTIVE event tracker of account {} \
             (see `aws personalize list-event-trackers`)",
            put.tracking_id, request.caller.account
        ))
    })?;
    let dataset = dataset.ok_or_else(|| {
        ApiError::InvalidInput(format!(
            "The dataset group {} of this event tracker has no Interactions dataset to record events into",
            target.dataset_group_arn
        ))
    })?;
    // A dataset still being created (`--activation-delay`): PutEvents models only
    // InvalidInputException, so it is one, saying when to retry.
    if dataset.status != "ACTIVE" {
        return Err(ApiError::InvalidInput(format!(
            "The Interactions dataset {} of this event tracker is {}, not ACTIVE: retry once it is",
            dataset.arn, dataset.status
        )));
    }
    // Accepted but suspicious (docs/api.md, "Flags"): flagged beside the schema's findings.
    let now = interlog_store::now();
    for event in &mut put.events {
        event.flags.extend(interlog_model::suspect::event_flags(event, now));
    }
    // The warning quotes one flag; cloned only when a warning is due, which is rare.
    let example =
        if state.flagged.warning_due() { put.events.iter().find_map(|e| e.flags.first()).cloned() } else { None };
    // The debugger's live tail gets a copy only while a page watches.
    let watched = state.debugger.feed.watched().then(|| put.events.clone());
    let outcome = state.store.append(dataset.id, put.events).await.map_err(|e| match e {
        // The dataset was deleted between the lookup and the append: as if it were unknown.
        interlog_store::StoreError::NotFound(_) => ApiError::InvalidInput(format!(
            "The trackingId '{}' does not match any ACTIVE event tracker of account {}",
            put.tracking_id, request.caller.account
        )),
        other => other.into(),
    })?;
    state.flagged.record(&outcome.flagged, example.as_ref());
    state.flagged.record_duplicates(outcome.duplicates);
    state.telemetry.events(&request.caller.account, &put.tracking_id, &outcome);
    state.debugger.stored(
        &request.caller.account,
        &put.tracking_id,
        watched.as_deref(),
        outcome.stored,
        outcome.duplicates,
        // The stored events that carry flags, as `/_interlog/stats` counts them: a repeat dropped at the door
        // is not flagged again.
        outcome.flagged.records() as usize,
    );
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

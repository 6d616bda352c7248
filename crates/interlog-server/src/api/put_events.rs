//! `POST /events` (PutEvents): validate, check properties against the schema (flagging
//! undeclared keys), route by tracking ID, append durably, answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::parse_put_events;
use interlog_store::TrackerKind;

use super::error::{ApiError, AwsError, Plane};
use super::{properties, AppState, AwsRequest};

pub(super) async fn put_events(state: AppState, request: AwsRequest) -> Result<Response, AwsError> {
    handle(state, request).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: AwsRequest) -> Result<Response, ApiError> {
    let mut put = parse_put_events(&request.body)?;
    // PutEvents models only InvalidInputException, so an unknown tracker is reported as one; a
    // tracker of another account is indistinguishable from an unknown one.
    let target = state
        .cache
        .tracker(&put.tracking_id)
        .filter(|t| t.account == request.caller.account && t.kind == TrackerKind::Events)
        .ok_or_else(|| {
            ApiError::InvalidInput(format!(
                "The trackingId '{}' does not match any ACTIVE event tracker of account {} \
                 (see `aws personalize list-event-trackers`)",
                put.tracking_id, request.caller.account
            ))
        })?;
    let dataset = target.dataset.as_ref().ok_or_else(|| {
        ApiError::InvalidInput(format!(
            "The dataset group {} of this event tracker has no Interactions dataset to record events into",
            target.dataset_group_arn
        ))
    })?;
    properties::check_records(
        dataset,
        "eventList",
        &mut put.events,
        state.strict_properties,
        |e| e.properties.as_deref(),
        |e, flags| e.flags = flags,
    )?;
    // The warning quotes one flag; cloned only when a warning is due, which is rare.
    let example =
        if state.flagged.warning_due() { put.events.iter().find_map(|e| e.flags.first()).cloned() } else { None };
    // The debugger's live tail gets a copy only while a page watches.
    let watched = state.debugger.feed.watched().then(|| put.events.clone());
    let flagged = put.events.iter().filter(|e| !e.flags.is_empty()).count();
    let outcome = state.store.append(dataset.id, put.events).await.map_err(|e| match e {
        // The dataset was deleted between the lookup and the append: as if it were unknown.
        interlog_store::StoreError::NotFound(_) => ApiError::InvalidInput(format!(
            "The trackingId '{}' does not match any ACTIVE event tracker of account {}",
            put.tracking_id, request.caller.account
        )),
        other => other.into(),
    })?;
    state.flagged.record(&outcome.flagged, example.as_ref());
    state.debugger.stored(
        &request.caller.account,
        &put.tracking_id,
        watched.as_deref(),
        outcome.stored,
        outcome.duplicates,
        flagged,
    );
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

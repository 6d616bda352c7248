//! `POST /events` (PutEvents): validate, check properties against the schema (flagging
//! undeclared keys), flag what is suspicious (`interlog_model::suspect`), route by tracking ID,
//! append durably, count (stats, metrics), answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::parse_put_events;
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
    *resolved = Some(put.tracking_id.clone());
    let dataset = target.dataset.as_ref().ok_or_else(|| {
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
    properties::check_records(
        dataset,
        "eventList",
        &mut put.events,
        state.strict_properties,
        |e| e.properties.as_deref(),
        |e, flags| e.flags = flags,
    )?;
    // Accepted but suspicious (docs/api.md, "Flags"): flagged beside the schema's findings.
    let now = interlog_store::now();
    for event in &mut put.events {
        event.flags.extend(interlog_model::suspect::event_flags(event, now));
    }
    // The warning quotes one flag; cloned only when a warning is due, which is rare.
    let example =
        if state.flagged.warning_due() { put.events.iter().find_map(|e| e.flags.first()).cloned() } else { None };
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
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

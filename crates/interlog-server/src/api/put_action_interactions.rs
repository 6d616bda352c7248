//! `POST /action-interactions` (PutActionInteractions): validate, route by the action-interaction
//! tracker's ID to its Action_Interactions dataset, check properties against its schema, append
//! durably like PutEvents (the same log, retry window and first-copy-wins), answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::parse_put_action_interactions;
use interlog_model::schema::DatasetType;
use interlog_store::TrackerKind;

use super::error::{ApiError, AwsError, Plane};
use super::properties::check_records;
use super::put_records::{gone, usable_dataset};
use super::{AppState, AwsRequest};

pub(super) async fn put_action_interactions(state: AppState, request: AwsRequest) -> Result<Response, AwsError> {
    handle(state, request).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: AwsRequest) -> Result<Response, ApiError> {
    let mut put = parse_put_action_interactions(&request.body)?;
    let account = request.caller.account.as_str();
    // Another account's tracker is indistinguishable from an unknown one.
    let tracker = state.cache.tracker(&put.tracking_id).filter(|t| t.account == account).ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "The trackingId '{}' does not match the action interaction event tracker of any Action_Interactions \
             dataset of account {account} (see `aws personalize describe-dataset`)",
            put.tracking_id
        ))
    })?;
    if tracker.kind != TrackerKind::ActionInteractions {
        return Err(ApiError::InvalidInput(format!(
            "The trackingId '{}' is an event tracker's, for PutEvents; PutActionInteractions takes the trackingId \
             of an Action_Interactions dataset (see `aws personalize describe-dataset`)",
            put.tracking_id
        )));
    }
    let dataset_arn = tracker.dataset.as_ref().map(|d| d.arn.clone()).unwrap_or_default();
    let dataset = usable_dataset(&state, account, &dataset_arn, DatasetType::ActionInteractions)?;
    // Undeclared keys are kept and flagged as PutEvents' are: stored with the action interaction,
    // counted (as stored, so a repeat dropped at the door is not) and warned about.
    check_records(
        &dataset,
        "actionInteractions",
        &mut put.interactions,
        state.strict_properties,
        |a| a.properties.as_deref(),
        |a, flags| a.flags = flags,
    )?;
    // The warning quotes one flag; cloned only when a warning is due, which is rare.
    let example =
        if state.flagged.warning_due() { put.interactions.iter().find_map(|a| a.flags.first()).cloned() } else { None };
    let outcome = state
        .store
        .append_action_interactions(dataset.id, put.interactions)
        .await
        .map_err(|e| gone(e, &dataset_arn))?;
    state.flagged.record(&outcome.flagged, example.as_ref());
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutActionInteractions");
    Ok(StatusCode::OK.into_response())
}

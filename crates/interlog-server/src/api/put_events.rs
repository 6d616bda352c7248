//! `POST /events` (PutEvents): validate, route by tracking ID, append durably, answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::parse_put_events;

use super::error::{ApiError, AwsError, Plane};
use super::{AppState, AwsRequest};

pub(super) async fn put_events(state: AppState, request: AwsRequest) -> Result<Response, AwsError> {
    handle(state, request).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: AwsRequest) -> Result<Response, ApiError> {
    let put = parse_put_events(&request.body)?;
    // PutEvents models only InvalidInputException, so an unknown tracker is reported as one; a
    // tracker of another account is indistinguishable from an unknown one.
    let target =
        state.store.tracker(&put.tracking_id).filter(|t| t.account == request.caller.account).ok_or_else(|| {
            ApiError::InvalidInput(format!(
                "The trackingId '{}' does not match any ACTIVE event tracker of account {} \
                 (see `aws personalize list-event-trackers`)",
                put.tracking_id, request.caller.account
            ))
        })?;
    let dataset_id = target.dataset_id.ok_or_else(|| {
        ApiError::InvalidInput(format!(
            "The dataset group {} of this event tracker has no Interactions dataset to record events into",
            target.dataset_group_arn
        ))
    })?;
    let outcome = state.store.append(dataset_id, put.events).await?;
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

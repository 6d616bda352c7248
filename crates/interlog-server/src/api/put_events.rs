//! `POST /events` (PutEvents): validate, route by tracking ID, append durably, answer 200 empty.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::parse_put_events;

use super::error::{ApiError, AwsError, Plane};
use super::{read_body, AppState};

pub(super) async fn put_events(state: AppState, request: Request) -> Result<Response, AwsError> {
    handle(state, request).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(body, parts.headers.get(axum::http::header::CONTENT_LENGTH), state.max_body_bytes).await?;
    let request = parse_put_events(&body)?;
    // PutEvents models only InvalidInputException, so an unknown tracker is reported as one.
    let target = state
        .store
        .tracker(&request.tracking_id)
        .filter(|t| t.account == state.account)
        .ok_or_else(|| {
            ApiError::InvalidInput(format!(
                "The trackingId '{}' does not match any ACTIVE event tracker \
                 (see `aws personalize list-event-trackers` for the trackers of your account)",
                request.tracking_id
            ))
        })?;
    let dataset_id = target.dataset_id.ok_or_else(|| {
        ApiError::InvalidInput(format!(
            "The dataset group {} of this event tracker has no Interactions dataset to record events into",
            target.dataset_group_arn
        ))
    })?;
    let outcome = state.store.append(dataset_id, request.events).await?;
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

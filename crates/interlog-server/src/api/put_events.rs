//! `POST /events` (PutEvents): validate, route by tracking ID, append durably, answer 200 empty.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::properties::{check_properties_with, PropertyRules};
use interlog_model::schema::Schema;
use interlog_model::{parse_put_events, ValidationError};
use interlog_store::TrackerKind;
use serde_json::{Map, Value};

use super::error::{ApiError, AwsError, Plane};
use super::{AppState, AwsRequest};

pub(super) async fn put_events(state: AppState, request: AwsRequest) -> Result<Response, AwsError> {
    handle(state, request).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: AwsRequest) -> Result<Response, ApiError> {
    let put = parse_put_events(&request.body)?;
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
    if let Some(schema) = &dataset.schema {
        check_properties(
            schema,
            "eventList",
            put.events.iter().map(|e| e.properties.as_deref()),
            state.allow_unknown_properties,
        )?;
    }
    let outcome = state.store.append(dataset.id, put.events).await.map_err(|e| match e {
        // The dataset was deleted between the lookup and the append: as if it were unknown.
        interlog_store::StoreError::NotFound(_) => ApiError::InvalidInput(format!(
            "The trackingId '{}' does not match any ACTIVE event tracker of account {}",
            put.tracking_id, request.caller.account
        )),
        other => other.into(),
    })?;
    tracing::debug!(stored = outcome.stored, duplicates = outcome.duplicates, "PutEvents");
    Ok(StatusCode::OK.into_response())
}

/// Every record's properties must fit the dataset's schema (§7.5, §7.6): keys map to fields,
/// values coerce to the field's type; all problems of the request are reported together. The one
/// check of every Put* operation: `list` is the request's list member, `properties` each
/// record's `properties` in request order.
pub(super) fn check_properties<'a>(
    schema: &Schema,
    list: &str,
    properties: impl IntoIterator<Item = Option<&'a str>>,
    allow_unknown: bool,
) -> Result<(), ApiError> {
    let rules = PropertyRules { ignore_unknown_keys: allow_unknown, ..PropertyRules::default() };
    // Without properties an event can only break the schema by missing a required metadata
    // field; most schemas have none, so most events skip the check entirely.
    let requires_metadata = schema.property_fields().any(|f| !f.nullable);
    let mut violations = Vec::new();
    for (i, props) in properties.into_iter().enumerate() {
        if props.is_none() && !requires_metadata {
            continue;
        }
        let map = match props.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map,
            // The Put* parsers already refused anything else.
            _ => Map::new(),
        };
        if let Err(v) = check_properties_with(schema, &format!("{list}.{}.member.properties", i + 1), &map, rules) {
            violations.extend(v);
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::Violations(violations).into())
    }
}

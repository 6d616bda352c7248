//! `POST /items`, `/users`, `/actions` (PutItems, PutUsers, PutActions): validate, resolve the
//! dataset ARN, check properties against its schema, write the records durably, answer 200 empty.
//!
//! One handler serves the three operations, told apart by [`RecordKind`]; the parser, the schema
//! check ([`super::properties::check_records`]: undeclared keys kept and flagged, or refused with
//! `--strict-properties`) and the group-commit writer are PutEvents'. A record's flags are stored
//! with it (the JSONL export shows them), counted in `/_interlog/stats` and warned about.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use interlog_model::schema::DatasetType;
use interlog_model::{parse_put_records, FlagCounts, RecordKind};
use interlog_store::{DatasetTarget, StoreError};

use super::error::{ApiError, AwsError, Plane};
use super::properties::check_records;
use super::{AppState, AwsRequest};

pub(super) async fn put_records(state: AppState, request: AwsRequest, kind: RecordKind) -> Result<Response, AwsError> {
    handle(state, request, kind).await.map_err(|e| e.on(Plane::Data))
}

async fn handle(state: AppState, request: AwsRequest, kind: RecordKind) -> Result<Response, ApiError> {
    let mut put = parse_put_records(kind, &request.body)?;
    let dataset = usable_dataset(&state, &request.caller.account, &put.dataset_arn, kind.dataset_type())?;
    check_records(
        &dataset,
        kind.list_member(),
        &mut put.records,
        state.strict_properties,
        |r| r.properties.as_deref(),
        |r, flags| r.flags = flags,
    )?;
    // Every record is written (none is dropped as a repeat), so all of them count.
    let mut flagged = FlagCounts::default();
    put.records.iter().for_each(|r| flagged.add_record(&r.flags));
    // The warning quotes one flag; cloned only when a warning is due, which is rare.
    let example =
        if state.flagged.warning_due() { put.records.iter().find_map(|r| r.flags.first()).cloned() } else { None };
    let outcome = state.store.put_records(dataset.id, put.records).await.map_err(|e| gone(e, &put.dataset_arn))?;
    state.flagged.record(&flagged, example.as_ref());
    tracing::debug!(stored = outcome.stored, operation = kind.operation(), "records written");
    Ok(StatusCode::OK.into_response())
}

/// The dataset a `datasetArn` names, if the caller may write `wanted` records into it now: one
/// of the caller's account (another account's is indistinguishable from none: 404), of the
/// operation's type (400), and ACTIVE (409).
pub(super) fn usable_dataset(
    state: &AppState,
    account: &str,
    arn: &str,
    wanted: DatasetType,
) -> Result<Arc<DatasetTarget>, ApiError> {
    let dataset = state.cache.dataset(arn).filter(|d| d.account == account).ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "Could not find dataset {arn} in account {account} (see `aws personalize list-datasets`)"
        ))
    })?;
    if dataset.dataset_type != wanted {
        return Err(ApiError::InvalidInput(format!(
            "The dataset {arn} is {} {} dataset; {} needs {} {} dataset",
            dataset.dataset_type.article(),
            dataset.dataset_type.api_name(),
            operation_of(wanted),
            wanted.article(),
            wanted.api_name()
        )));
    }
    if dataset.status != "ACTIVE" {
        return Err(ApiError::ResourceInUse(format!(
            "The dataset {arn} is {}, not ACTIVE: retry once it is",
            dataset.status
        )));
    }
    Ok(dataset)
}

/// The operation that writes a dataset type, for messages.
fn operation_of(t: DatasetType) -> &'static str {
    match RecordKind::of_dataset_type(t) {
        Some(kind) => kind.operation(),
        None if t == DatasetType::ActionInteractions => "PutActionInteractions",
        None => "PutEvents",
    }
}

/// A dataset deleted between the lookup and the write is as if it had never existed.
pub(super) fn gone(e: StoreError, arn: &str) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::ResourceNotFound(format!("Could not find dataset {arn}")),
        other => other.into(),
    }
}

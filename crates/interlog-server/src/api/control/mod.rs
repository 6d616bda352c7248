//! The Personalize control plane on the wire (AWS JSON 1.1, `X-Amz-Target:
//! AmazonPersonalize.<Op>`, §4 of the spec): one small handler per operation, each parsing its
//! request shape (`interlog_model::requests`), calling the service layer and rendering the
//! answer ([`shapes`]). Every modeled error is HTTP 400 here, and so is an operation interlog does not
//! serve (`UnknownOperationException`, as AWS's JSON 1.1 front ends answer it).

mod shapes;

use std::future::Future;
use std::pin::Pin;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use interlog_model::requests::{self as req, ArnRequest, ListRequest, TagsRequest};
use interlog_store::catalog::resources::{
    DatasetSpec, DeletionJobSpec, ExportJobSpec, GroupSpec, ImportJobSpec, Resource, SchemaSpec, TrackerSpec,
};
use interlog_store::catalog::Page;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::error::{ApiError, Plane};
use super::{AppState, AwsRequest};
use crate::auth::Caller;
use crate::service::{Managed, Service};
use shapes::Shape;

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send + 'a>>;
type Handler = for<'a> fn(&'a Service, &'a Caller, &'a [u8]) -> Answer<'a>;

/// Every operation interlog serves, by its `X-Amz-Target` name.
const OPERATIONS: &[(&str, Handler)] = &[
    ("CreateSchema", |s, c, b| Box::pin(create_schema(s, c, b))),
    ("DescribeSchema", |s, c, b| Box::pin(describe::<SchemaSpec>(s, c, b))),
    ("ListSchemas", |s, c, b| Box::pin(list::<SchemaSpec>(s, c, b))),
    ("DeleteSchema", |s, c, b| Box::pin(delete::<SchemaSpec>(s, c, b))),
    ("CreateDatasetGroup", |s, c, b| Box::pin(create_dataset_group(s, c, b))),
    ("DescribeDatasetGroup", |s, c, b| Box::pin(describe::<GroupSpec>(s, c, b))),
    ("ListDatasetGroups", |s, c, b| Box::pin(list::<GroupSpec>(s, c, b))),
    ("DeleteDatasetGroup", |s, c, b| Box::pin(delete::<GroupSpec>(s, c, b))),
    ("CreateDataset", |s, c, b| Box::pin(create_dataset(s, c, b))),
    ("DescribeDataset", |s, c, b| Box::pin(describe::<DatasetSpec>(s, c, b))),
    ("ListDatasets", |s, c, b| Box::pin(list::<DatasetSpec>(s, c, b))),
    ("DeleteDataset", |s, c, b| Box::pin(delete::<DatasetSpec>(s, c, b))),
    ("CreateEventTracker", |s, c, b| Box::pin(create_event_tracker(s, c, b))),
    ("DescribeEventTracker", |s, c, b| Box::pin(describe::<TrackerSpec>(s, c, b))),
    ("ListEventTrackers", |s, c, b| Box::pin(list::<TrackerSpec>(s, c, b))),
    ("DeleteEventTracker", |s, c, b| Box::pin(delete::<TrackerSpec>(s, c, b))),
    ("CreateDatasetExportJob", |s, c, b| Box::pin(create_export_job(s, c, b))),
    ("DescribeDatasetExportJob", |s, c, b| Box::pin(describe::<ExportJobSpec>(s, c, b))),
    ("ListDatasetExportJobs", |s, c, b| Box::pin(list::<ExportJobSpec>(s, c, b))),
    ("CreateDatasetImportJob", |s, c, b| Box::pin(create_import_job(s, c, b))),
    ("DescribeDatasetImportJob", |s, c, b| Box::pin(describe::<ImportJobSpec>(s, c, b))),
    ("ListDatasetImportJobs", |s, c, b| Box::pin(list::<ImportJobSpec>(s, c, b))),
    ("CreateDataDeletionJob", |s, c, b| Box::pin(create_deletion_job(s, c, b))),
    ("DescribeDataDeletionJob", |s, c, b| Box::pin(describe::<DeletionJobSpec>(s, c, b))),
    ("ListDataDeletionJobs", |s, c, b| Box::pin(list_newest_first::<DeletionJobSpec>(s, c, b))),
    ("TagResource", |s, c, b| Box::pin(tag_resource(s, c, b))),
    ("UntagResource", |s, c, b| Box::pin(untag_resource(s, c, b))),
    ("ListTagsForResource", |s, c, b| Box::pin(list_tags(s, c, b))),
];

/// Answers one control-plane call.
/// The implemented operation called `name`, as a `'static` name (the metrics label it).
pub(in crate::api) fn operation_name(name: &str) -> Option<&'static str> {
    OPERATIONS.iter().find(|(n, _)| *n == name).map(|(n, _)| *n)
}

pub(super) async fn control(state: AppState, request: AwsRequest, target: &str) -> Response {
    let Some(op) = target.strip_prefix("AmazonPersonalize.") else {
        return ApiError::UnknownOperation(format!(
            "X-Amz-Target {target} is not a Personalize operation (expected AmazonPersonalize.<Operation>)"
        ))
        .on(Plane::Control)
        .into_response();
    };
    let Some((_, handler)) = OPERATIONS.iter().find(|(name, _)| *name == op) else {
        return ApiError::UnknownOperation(format!(
            "Operation {op} is not supported by interlog (supported: schemas, dataset groups, datasets, event \
             trackers, dataset export and import jobs, data deletion jobs and tags)"
        ))
        .on(Plane::Control)
        .into_response();
    };
    match handler(&state.service, &request.caller, &request.body).await {
        Ok(body) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body.to_string()).into_response()
        }
        Err(e) => e.on(Plane::Control).into_response(),
    }
}

// ---- the generic operations ----

async fn describe<S: Managed + Shape>(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let arn = input::<ArnRequest>(body)?.arn(S::ARN_MEMBER)?;
    let resource = service.describe::<S>(caller, &arn).await?;
    Ok(json!({ S::SINGULAR: S::detail(&resource) }))
}

async fn list<S: Managed + Shape>(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let list = input::<ListRequest>(body)?.validate(S::FILTER_MEMBER)?;
    let after = match &list.next_token {
        Some(t) => decode_token(S::PLURAL, t)?,
        None => 0,
    };
    let page = service.list::<S>(caller, list.filter.as_deref(), after, list.max_results).await?;
    Ok(paged(S::PLURAL, page, S::summary))
}

/// A listing newest first, as ListDataDeletionJobs is documented ("ordered by creation time,
/// with the most recent first"); the token is the last id returned, the next page older.
async fn list_newest_first<S: Managed + Shape>(
    service: &Service,
    caller: &Caller,
    body: &[u8],
) -> Result<Value, ApiError> {
    let list = input::<ListRequest>(body)?.validate(S::FILTER_MEMBER)?;
    let before = match &list.next_token {
        Some(t) => decode_token(S::PLURAL, t)?,
        None => i64::MAX,
    };
    let page = service.list_newest_first::<S>(caller, list.filter.as_deref(), before, list.max_results).await?;
    Ok(paged(S::PLURAL, page, S::summary))
}

async fn delete<S: Managed + Shape>(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let arn = input::<ArnRequest>(body)?.arn(S::ARN_MEMBER)?;
    service.delete::<S>(caller, &arn).await?;
    Ok(json!({}))
}

// ---- creates ----

async fn create_schema(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateSchemaRequest>(body)?.validate()?;
    let schema = service.create_schema(caller, cmd).await?;
    Ok(json!({ "schemaArn": schema.meta.arn }))
}

async fn create_dataset_group(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateDatasetGroupRequest>(body)?.validate()?;
    let group = service.create_dataset_group(caller, cmd).await?;
    let mut out = json!({ "datasetGroupArn": group.meta.arn });
    shapes::put_opt(&mut out, "domain", &group.spec.domain);
    Ok(out)
}

async fn create_dataset(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateDatasetRequest>(body)?.validate()?;
    let dataset = service.create_dataset(caller, cmd).await?;
    Ok(json!({ "datasetArn": dataset.meta.arn }))
}

async fn create_event_tracker(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateEventTrackerRequest>(body)?.validate()?;
    let tracker = service.create_event_tracker(caller, cmd).await?;
    Ok(json!({ "eventTrackerArn": tracker.meta.arn, "trackingId": tracker.spec.tracking_id }))
}

async fn create_export_job(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateDatasetExportJobRequest>(body)?.validate()?;
    let job: Resource<ExportJobSpec> = service.create_export_job(caller, cmd).await?;
    Ok(json!({ "datasetExportJobArn": job.meta.arn }))
}

async fn create_import_job(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateDatasetImportJobRequest>(body)?.validate()?;
    let job: Resource<ImportJobSpec> = service.create_import_job(caller, cmd).await?;
    Ok(json!({ "datasetImportJobArn": job.meta.arn }))
}

async fn create_deletion_job(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let cmd = input::<req::CreateDataDeletionJobRequest>(body)?.validate()?;
    let job = service.create_deletion_job(caller, cmd).await?;
    Ok(json!({ "dataDeletionJobArn": job.meta.arn }))
}

// ---- tags ----

async fn tag_resource(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let (arn, tags) = input::<TagsRequest>(body)?.tag()?;
    service.tag_resource(caller, &arn, tags).await?;
    Ok(json!({}))
}

async fn untag_resource(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let (arn, keys) = input::<TagsRequest>(body)?.untag()?;
    service.untag_resource(caller, &arn, &keys).await?;
    Ok(json!({}))
}

async fn list_tags(service: &Service, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let arn = input::<TagsRequest>(body)?.list()?;
    let tags: Vec<Value> = service
        .list_tags(caller, &arn)
        .await?
        .into_iter()
        .map(|(k, v)| json!({ "tagKey": k, "tagValue": v }))
        .collect();
    Ok(json!({ "tags": tags }))
}

// ---- plumbing ----

/// Parses a JSON 1.1 body (an absent body counts as `{}`), naming the member on type errors.
fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::InvalidInput("The request body must be a JSON object".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::InvalidInput(format!("The request body is not valid JSON: {}", e.inner()))
        } else {
            ApiError::InvalidInput(format!("Invalid value for '{path}': {}", e.inner()))
        }
    })
}

/// `{<key>: [...], "nextToken": ...}`, the token omitted on the last page.
fn paged<T>(key: &str, page: Page<T>, item: impl Fn(&T) -> Value) -> Value {
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(page.items.iter().map(item).collect()));
    if let Some(last) = page.next {
        out.insert("nextToken".into(), Value::String(encode_token(key, last)));
    }
    Value::Object(out)
}

/// Tokens are opaque to clients: the list they belong to and the last id, hex-encoded.
fn encode_token(kind: &str, last: i64) -> String {
    format!("v1:{kind}:{last}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(kind: &str, token: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::InvalidNextToken(format!("The nextToken '{token}' was not issued for this listing"));
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok()).collect();
    let text = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let rest = text.strip_prefix("v1:").and_then(|r| r.strip_prefix(kind)).and_then(|r| r.strip_prefix(':'));
    rest.and_then(|n| n.parse().ok()).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_belong_to_one_listing() {
        let t = encode_token("schemas", 42);
        assert_eq!(decode_token("schemas", &t).unwrap(), 42);
        assert!(decode_token("datasets", &t).is_err());
        assert!(decode_token("schemas", "zz").is_err());
        assert!(decode_token("schemas", "abc").is_err());
    }

    #[test]
    fn every_operation_is_listed_once() {
        let mut names: Vec<_> = OPERATIONS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len());
    }
}

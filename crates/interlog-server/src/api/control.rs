//! The Personalize control plane (AWS JSON 1.1, `X-Amz-Target: AmazonPersonalize.<Op>`):
//! schemas, dataset groups, datasets, event trackers, dataset export jobs and tags (§4 of the
//! spec). Every modeled error is HTTP 400 here; validation comes from `interlog_model::control`.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use interlog_model::control::{self as check, PathScheme, Tag};
use interlog_model::schema::{validate_schema, DatasetType};
use interlog_model::{ValidationError, Violation};
use interlog_store::catalog::{
    CatalogTx, DatasetRecord, ExportJobRecord, GroupRecord, Page, SchemaRecord, TrackerRecord,
};
use interlog_store::export::{ExportWriter, Format};
use interlog_store::{EventStore, StoreError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, Plane};
use super::{AppState, AwsRequest};
use crate::auth::Caller;
use crate::file_root::{ConfineError, ConfinedDir, FileRoot};

/// Answers one control-plane call.
pub(super) async fn control(state: AppState, request: AwsRequest, target: &str) -> Response {
    let Some(op) = target.strip_prefix("AmazonPersonalize.") else {
        return ApiError::UnknownOperation(format!(
            "X-Amz-Target {target} is not a Personalize operation (expected AmazonPersonalize.<Operation>)"
        ))
        .on(Plane::Control)
        .into_response();
    };
    match handle(&state, &request, op).await {
        Ok(body) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body.to_string()).into_response()
        }
        Err(e) => e.on(Plane::Control).into_response(),
    }
}

async fn handle(state: &AppState, request: &AwsRequest, op: &str) -> Result<Value, ApiError> {
    let caller = &request.caller;
    let body = &request.body;
    match op {
        "CreateSchema" => create_schema(state, caller, input(body)?).await,
        "DescribeSchema" => {
            describe(state, caller, input::<ArnInput>(body)?.required("schemaArn")?, |tx, a, arn| {
                Ok(json!({ "schema": schema_json(&tx.describe_schema(a, arn)?) }))
            })
            .await
        }
        "ListSchemas" => {
            let p: ListInput = input(body)?;
            let (after, limit) = p.page("schemas")?;
            list(state, caller, move |tx, a| {
                Ok(paged("schemas", "schemas", tx.list_schemas(a, after, limit)?, |s| {
                    let mut v = json!({ "name": s.name, "schemaArn": s.arn,
                        "creationDateTime": s.created, "lastUpdatedDateTime": s.updated });
                    put_opt(&mut v, "domain", &s.domain);
                    v
                }))
            })
            .await
        }
        "DeleteSchema" => {
            delete(state, caller, input::<ArnInput>(body)?.required("schemaArn")?, |tx, a, arn| {
                tx.delete_schema(a, arn)
            })
            .await
        }

        "CreateDatasetGroup" => create_dataset_group(state, caller, input(body)?).await,
        "DescribeDatasetGroup" => {
            describe(state, caller, input::<ArnInput>(body)?.required("datasetGroupArn")?, |tx, a, arn| {
                Ok(json!({ "datasetGroup": group_json(&tx.describe_dataset_group(a, arn)?) }))
            })
            .await
        }
        "ListDatasetGroups" => {
            let p: ListInput = input(body)?;
            let (after, limit) = p.page("datasetGroups")?;
            list(state, caller, move |tx, a| {
                Ok(paged("datasetGroups", "datasetGroups", tx.list_dataset_groups(a, after, limit)?, |g| {
                    let mut v = json!({ "name": g.name, "datasetGroupArn": g.arn, "status": g.status,
                        "creationDateTime": g.created, "lastUpdatedDateTime": g.updated });
                    put_opt(&mut v, "domain", &g.domain);
                    v
                }))
            })
            .await
        }
        "DeleteDatasetGroup" => {
            delete(state, caller, input::<ArnInput>(body)?.required("datasetGroupArn")?, |tx, a, arn| {
                tx.delete_dataset_group(a, arn)
            })
            .await
        }

        "CreateDataset" => create_dataset(state, caller, input(body)?).await,
        "DescribeDataset" => {
            describe(state, caller, input::<ArnInput>(body)?.required("datasetArn")?, |tx, a, arn| {
                Ok(json!({ "dataset": dataset_json(&tx.describe_dataset(a, arn)?) }))
            })
            .await
        }
        "ListDatasets" => {
            let p: ListInput = input(body)?;
            let (after, limit) = p.page("datasets")?;
            let group = p.filter("datasetGroupArn", p.dataset_group_arn.as_deref())?;
            list(state, caller, move |tx, a| {
                Ok(paged("datasets", "datasets", tx.list_datasets(a, group.as_deref(), after, limit)?, |d| {
                    json!({ "name": d.name, "datasetArn": d.arn, "datasetType": api_type(&d.dataset_type),
                        "status": d.status, "creationDateTime": d.created, "lastUpdatedDateTime": d.updated })
                }))
            })
            .await
        }
        "DeleteDataset" => {
            delete(state, caller, input::<ArnInput>(body)?.required("datasetArn")?, |tx, a, arn| {
                tx.delete_dataset(a, arn)
            })
            .await
        }

        "CreateEventTracker" => create_event_tracker(state, caller, input(body)?).await,
        "DescribeEventTracker" => {
            describe(state, caller, input::<ArnInput>(body)?.required("eventTrackerArn")?, |tx, a, arn| {
                Ok(json!({ "eventTracker": tracker_json(&tx.describe_event_tracker(a, arn)?) }))
            })
            .await
        }
        "ListEventTrackers" => {
            let p: ListInput = input(body)?;
            let (after, limit) = p.page("eventTrackers")?;
            let group = p.filter("datasetGroupArn", p.dataset_group_arn.as_deref())?;
            list(state, caller, move |tx, a| {
                Ok(paged(
                    "eventTrackers",
                    "eventTrackers",
                    tx.list_event_trackers(a, group.as_deref(), after, limit)?,
                    |t| {
                        json!({ "name": t.name, "eventTrackerArn": t.arn, "status": t.status,
                        "creationDateTime": t.created, "lastUpdatedDateTime": t.updated })
                    },
                ))
            })
            .await
        }
        "DeleteEventTracker" => {
            delete(state, caller, input::<ArnInput>(body)?.required("eventTrackerArn")?, |tx, a, arn| {
                tx.delete_event_tracker(a, arn)
            })
            .await
        }

        "CreateDatasetExportJob" => create_export_job(state, caller, input(body)?).await,
        "DescribeDatasetExportJob" => {
            describe(state, caller, input::<ArnInput>(body)?.required("datasetExportJobArn")?, |tx, a, arn| {
                Ok(json!({ "datasetExportJob": job_json(&tx.describe_export_job(a, arn)?) }))
            })
            .await
        }
        "ListDatasetExportJobs" => {
            let p: ListInput = input(body)?;
            let (after, limit) = p.page("datasetExportJobs")?;
            let dataset = p.filter("datasetArn", p.dataset_arn.as_deref())?;
            list(state, caller, move |tx, a| {
                Ok(paged(
                    "datasetExportJobs",
                    "datasetExportJobs",
                    tx.list_export_jobs(a, dataset.as_deref(), after, limit)?,
                    |j| {
                        let mut v = json!({ "datasetExportJobArn": j.arn, "jobName": j.name, "status": j.status,
                        "creationDateTime": j.created, "lastUpdatedDateTime": j.updated });
                        put_opt(&mut v, "failureReason", &j.failure_reason);
                        v
                    },
                ))
            })
            .await
        }

        "TagResource" => {
            let t: TagInput = input(body)?;
            let arn = t.arn()?;
            let tags = required_tags(t.tags.as_deref(), "tags")?;
            run(state, caller, move |tx, a| tx.tag_resource(a, &arn, &tags).map(|()| json!({}))).await
        }
        "UntagResource" => {
            let t: TagInput = input(body)?;
            let arn = t.arn()?;
            let keys = t.tag_keys.clone().ok_or_else(|| invalid(vec![Violation::missing("tagKeys")]))?;
            let mut v = Vec::new();
            if keys.len() > check::MAX_TAGS {
                v.push(Violation::new("tagKeys", None, "Member must have length less than or equal to 200"));
            }
            for (i, k) in keys.iter().enumerate() {
                let n = k.chars().count();
                if !(1..=check::MAX_TAG_KEY_CHARS).contains(&n) {
                    v.push(Violation::new(
                        format!("tagKeys.{}.member", i + 1),
                        None,
                        "Member must have length between 1 and 128",
                    ));
                }
            }
            ok(v)?;
            run(state, caller, move |tx, a| tx.untag_resource(a, &arn, &keys).map(|()| json!({}))).await
        }
        "ListTagsForResource" => {
            let t: TagInput = input(body)?;
            let arn = t.arn()?;
            run(state, caller, move |tx, a| {
                let tags: Vec<Value> =
                    tx.list_tags(a, &arn)?.into_iter().map(|(k, v)| json!({ "tagKey": k, "tagValue": v })).collect();
                Ok(json!({ "tags": tags }))
            })
            .await
        }

        other => Err(ApiError::UnknownOperation(format!(
            "Operation {other} is not supported by interlog (supported: schemas, dataset groups, datasets, \
             event trackers, dataset export jobs and tags)"
        ))),
    }
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

fn invalid(v: Vec<Violation>) -> ApiError {
    ApiError::from(ValidationError::Violations(v))
}

fn ok(v: Vec<Violation>) -> Result<(), ApiError> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(invalid(v))
    }
}

fn required<'a>(value: Option<&'a str>, path: &str, v: &mut Vec<Violation>) -> &'a str {
    match value {
        Some(s) => s,
        None => {
            v.push(Violation::missing(path));
            ""
        }
    }
}

/// Runs a catalog operation in one store transaction, off the async runtime.
async fn run<T: Send + 'static>(
    state: &AppState,
    caller: &Caller,
    op: impl FnOnce(&CatalogTx<'_>, &str) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    let account = caller.account.clone();
    tokio::task::spawn_blocking(move || {
        let mut op = Some(op);
        let mut out = None;
        store.catalog(&mut |tx| {
            let op = op.take().expect("a catalog operation runs once");
            out = Some(op(tx, &account)?);
            Ok(())
        })?;
        Ok(out.expect("the operation ran"))
    })
    .await
    .map_err(|e| ApiError::InternalFailure(format!("control-plane task failed: {e}")))?
    .map_err(|e: StoreError| ApiError::from(e))
}

async fn describe(
    state: &AppState,
    caller: &Caller,
    arn: String,
    op: impl FnOnce(&CatalogTx<'_>, &str, &str) -> Result<Value, StoreError> + Send + 'static,
) -> Result<Value, ApiError> {
    run(state, caller, move |tx, account| op(tx, account, &arn)).await
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    arn: String,
    op: impl FnOnce(&CatalogTx<'_>, &str, &str) -> Result<(), StoreError> + Send + 'static,
) -> Result<Value, ApiError> {
    run(state, caller, move |tx, account| op(tx, account, &arn).map(|()| json!({}))).await
}

async fn list(
    state: &AppState,
    caller: &Caller,
    op: impl FnOnce(&CatalogTx<'_>, &str) -> Result<Value, StoreError> + Send + 'static,
) -> Result<Value, ApiError> {
    run(state, caller, op).await
}

/// `{<key>: [...], "nextToken": ...}`, the token omitted on the last page.
fn paged<T>(key: &str, kind: &str, page: Page<T>, item: impl Fn(&T) -> Value) -> Value {
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(page.items.iter().map(item).collect()));
    if let Some(last) = page.next {
        out.insert("nextToken".into(), Value::String(encode_token(kind, last)));
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

fn put_opt(v: &mut Value, key: &str, value: &Option<String>) {
    if let (Some(value), Some(map)) = (value, v.as_object_mut()) {
        map.insert(key.into(), Value::String(value.clone()));
    }
}

/// The API spelling of a stored type segment (`ACTION_INTERACTIONS` → `Action_Interactions`).
fn api_type(segment: &str) -> &'static str {
    DatasetType::ALL.iter().find(|t| t.arn_segment() == segment).map_or("Interactions", |t| t.api_name())
}

// ---- inputs ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArnInput {
    schema_arn: Option<String>,
    dataset_group_arn: Option<String>,
    dataset_arn: Option<String>,
    event_tracker_arn: Option<String>,
    dataset_export_job_arn: Option<String>,
}

impl ArnInput {
    fn required(self, member: &str) -> Result<String, ApiError> {
        let value = match member {
            "schemaArn" => self.schema_arn,
            "datasetGroupArn" => self.dataset_group_arn,
            "datasetArn" => self.dataset_arn,
            "eventTrackerArn" => self.event_tracker_arn,
            _ => self.dataset_export_job_arn,
        };
        let value = value.ok_or_else(|| invalid(vec![Violation::missing(member)]))?;
        ok(check::arn(member, &value))?;
        Ok(value)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
    dataset_group_arn: Option<String>,
    dataset_arn: Option<String>,
}

impl ListInput {
    /// Where to resume and how many to return (default and maximum 100).
    fn page(&self, kind: &str) -> Result<(i64, usize), ApiError> {
        let mut v = Vec::new();
        if let Some(n) = self.max_results {
            v.extend(check::max_results("maxResults", n));
        }
        if let Some(t) = &self.next_token {
            v.extend(check::next_token("nextToken", t));
        }
        ok(v)?;
        let after = match &self.next_token {
            Some(t) => decode_token(kind, t)?,
            None => 0,
        };
        Ok((after, self.max_results.unwrap_or(check::MAX_RESULTS) as usize))
    }

    fn filter(&self, member: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
        if let Some(arn) = value {
            ok(check::arn(member, arn))?;
        }
        Ok(value.map(str::to_owned))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagInput {
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
    tag_keys: Option<Vec<String>>,
}

impl TagInput {
    fn arn(&self) -> Result<String, ApiError> {
        let arn = self.resource_arn.clone().ok_or_else(|| invalid(vec![Violation::missing("resourceArn")]))?;
        ok(check::arn("resourceArn", &arn))?;
        Ok(arn)
    }
}

fn required_tags(tags: Option<&[Tag]>, path: &str) -> Result<Vec<(String, String)>, ApiError> {
    let tags = tags.ok_or_else(|| invalid(vec![Violation::missing(path)]))?;
    optional_tags(Some(tags), path)
}

fn optional_tags(tags: Option<&[Tag]>, path: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(tags) = tags else { return Ok(Vec::new()) };
    ok(check::tags(path, tags))?;
    Ok(tags.iter().map(|t| (t.tag_key.clone().unwrap_or_default(), t.tag_value.clone().unwrap_or_default())).collect())
}

// ---- creates ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSchema {
    name: Option<String>,
    schema: Option<String>,
    domain: Option<String>,
}

async fn create_schema(state: &AppState, caller: &Caller, i: CreateSchema) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let name = required(i.name.as_deref(), "name", &mut v).to_owned();
    v.extend(check::resource_name("name", &name));
    let text = required(i.schema.as_deref(), "schema", &mut v).to_owned();
    let domain = match i.domain.as_deref() {
        Some(d) => match check::domain("domain", d) {
            Ok(d) => Some(d),
            Err(e) => {
                v.extend(e);
                None
            }
        },
        None => None,
    };
    ok(v)?;
    validate_schema(&text, domain).map_err(|e| ApiError::InvalidInput(e.to_string()))?;
    let arn = caller_scope(caller).arn("schema", &name);
    let domain = domain.map(|d| d.api_name().to_owned());
    run(state, caller, move |tx, a| {
        let s = tx.create_schema(a, &arn, &name, &text, domain.as_deref())?;
        Ok(json!({ "schemaArn": s.arn }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateDatasetGroup {
    name: Option<String>,
    role_arn: Option<String>,
    kms_key_arn: Option<String>,
    domain: Option<String>,
    tags: Option<Vec<Tag>>,
}

async fn create_dataset_group(state: &AppState, caller: &Caller, i: CreateDatasetGroup) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let name = required(i.name.as_deref(), "name", &mut v).to_owned();
    v.extend(check::resource_name("name", &name));
    if let Some(r) = &i.role_arn {
        v.extend(check::role_arn("roleArn", r));
    }
    if let Some(k) = &i.kms_key_arn {
        v.extend(check::kms_key_arn("kmsKeyArn", k));
    }
    let domain = match i.domain.as_deref().map(|d| check::domain("domain", d)) {
        Some(Ok(d)) => Some(d.api_name().to_owned()),
        Some(Err(e)) => {
            v.extend(e);
            None
        }
        None => None,
    };
    ok(v)?;
    let tags = optional_tags(i.tags.as_deref(), "tags")?;
    let arn = caller_scope(caller).arn("dataset-group", &name);
    run(state, caller, move |tx, a| {
        let g = tx.create_dataset_group(
            a,
            &arn,
            &name,
            i.role_arn.as_deref(),
            i.kms_key_arn.as_deref(),
            domain.as_deref(),
        )?;
        tx.tag_resource(a, &g.arn, &tags)?;
        let mut out = json!({ "datasetGroupArn": g.arn });
        put_opt(&mut out, "domain", &g.domain);
        Ok(out)
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateDataset {
    name: Option<String>,
    schema_arn: Option<String>,
    dataset_group_arn: Option<String>,
    dataset_type: Option<String>,
    tags: Option<Vec<Tag>>,
}

async fn create_dataset(state: &AppState, caller: &Caller, i: CreateDataset) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let name = required(i.name.as_deref(), "name", &mut v).to_owned();
    v.extend(check::resource_name("name", &name));
    let schema_arn = required(i.schema_arn.as_deref(), "schemaArn", &mut v).to_owned();
    v.extend(check::arn("schemaArn", &schema_arn));
    let group_arn = required(i.dataset_group_arn.as_deref(), "datasetGroupArn", &mut v).to_owned();
    v.extend(check::arn("datasetGroupArn", &group_arn));
    let dataset_type =
        match check::dataset_type("datasetType", required(i.dataset_type.as_deref(), "datasetType", &mut v)) {
            Ok(t) => Some(t),
            Err(e) => {
                if i.dataset_type.is_some() {
                    v.extend(e);
                }
                None
            }
        };
    ok(v)?;
    let dataset_type = dataset_type.expect("validated above");
    let tags = optional_tags(i.tags.as_deref(), "tags")?;
    let scope = caller_scope(caller);
    run(state, caller, move |tx, a| {
        let group = tx.describe_dataset_group(a, &group_arn)?;
        let schema = tx.describe_schema(a, &schema_arn)?;
        let parsed =
            interlog_model::schema::parse_schema(&schema.body).map_err(|e| StoreError::Invalid(e.to_string()))?;
        if !dataset_type.matches_schema_name(&parsed.name) {
            return Err(StoreError::Invalid(format!(
                "The schema {schema_arn} is named '{}', so it describes a {} dataset, not {}: \
                 the datasetType must match the schema name",
                parsed.name,
                parsed.dataset_type.api_name(),
                dataset_type.api_name()
            )));
        }
        if group.domain.is_some() && matches!(dataset_type, DatasetType::Actions | DatasetType::ActionInteractions) {
            return Err(StoreError::Invalid(format!(
                "{} datasets cannot be created in the Domain dataset group {group_arn}",
                dataset_type.api_name()
            )));
        }
        if group.domain != schema.domain {
            return Err(StoreError::Invalid(format!(
                "The schema's domain ({}) must be the dataset group's domain ({})",
                schema.domain.as_deref().unwrap_or("none"),
                group.domain.as_deref().unwrap_or("none")
            )));
        }
        let arn = scope.arn("dataset", &format!("{}/{}", group.name, dataset_type.arn_segment()));
        let d = tx.create_dataset(a, &arn, &name, &group_arn, &schema_arn, dataset_type.arn_segment())?;
        tx.tag_resource(a, &d.arn, &tags)?;
        Ok(json!({ "datasetArn": d.arn }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateEventTracker {
    name: Option<String>,
    dataset_group_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

async fn create_event_tracker(state: &AppState, caller: &Caller, i: CreateEventTracker) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let name = required(i.name.as_deref(), "name", &mut v).to_owned();
    v.extend(check::resource_name("name", &name));
    let group_arn = required(i.dataset_group_arn.as_deref(), "datasetGroupArn", &mut v).to_owned();
    v.extend(check::arn("datasetGroupArn", &group_arn));
    ok(v)?;
    let tags = optional_tags(i.tags.as_deref(), "tags")?;
    // Real tracker ARNs end in 8 hex characters; tracking IDs are UUIDs.
    let arn = caller_scope(caller).arn("event-tracker", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let tracking_id = uuid::Uuid::new_v4().to_string();
    run(state, caller, move |tx, a| {
        let t = tx.create_event_tracker(a, &arn, &name, &group_arn, &tracking_id)?;
        tx.tag_resource(a, &t.arn, &tags)?;
        Ok(json!({ "eventTrackerArn": t.arn, "trackingId": t.tracking_id }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateExportJob {
    job_name: Option<String>,
    dataset_arn: Option<String>,
    ingestion_mode: Option<String>,
    role_arn: Option<String>,
    job_output: Option<JobOutput>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobOutput {
    s3_data_destination: Option<S3DataConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3DataConfig {
    path: Option<String>,
    kms_key_arn: Option<String>,
}

async fn create_export_job(state: &AppState, caller: &Caller, i: CreateExportJob) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let name = required(i.job_name.as_deref(), "jobName", &mut v).to_owned();
    v.extend(check::resource_name("jobName", &name));
    let dataset_arn = required(i.dataset_arn.as_deref(), "datasetArn", &mut v).to_owned();
    v.extend(check::arn("datasetArn", &dataset_arn));
    let role_arn = required(i.role_arn.as_deref(), "roleArn", &mut v).to_owned();
    v.extend(check::role_arn("roleArn", &role_arn));
    let mode = match i.ingestion_mode.as_deref().map(|m| check::ingestion_mode("ingestionMode", m)) {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            v.extend(e);
            Default::default()
        }
        None => Default::default(),
    };
    let destination = match i.job_output.as_ref() {
        None => {
            v.push(Violation::missing("jobOutput"));
            None
        }
        Some(o) => match &o.s3_data_destination {
            None => {
                v.push(Violation::missing("jobOutput.s3DataDestination"));
                None
            }
            Some(d) => Some(d),
        },
    };
    let mut path = String::new();
    let mut kms = None;
    if let Some(d) = destination {
        path = required(d.path.as_deref(), "jobOutput.s3DataDestination.path", &mut v).to_owned();
        if d.path.is_some() {
            if let Err(e) = check::data_path("jobOutput.s3DataDestination.path", &path) {
                v.extend(e);
            }
        }
        if let Some(k) = &d.kms_key_arn {
            v.extend(check::kms_key_arn("jobOutput.s3DataDestination.kmsKeyArn", k));
            kms = Some(k.clone());
        }
    }
    ok(v)?;
    let tags = optional_tags(i.tags.as_deref(), "tags")?;
    let arn = caller_scope(caller).arn("dataset-export-job", &name);
    let root = state.file_root.clone();
    let job = run(state, caller, move |tx, a| {
        let job =
            tx.create_export_job(a, &arn, &name, &dataset_arn, mode.api_name(), &role_arn, &path, kms.as_deref())?;
        tx.tag_resource(a, &job.arn, &tags)?;
        let dataset = tx.describe_dataset(a, &dataset_arn)?;
        // A file:// destination is confined to the caller's folder of the export root here, so
        // a refused one never becomes a job (the transaction is rolled back).
        let destination = confine(root.as_deref(), a, &path)?;
        Ok((job, dataset, destination))
    })
    .await?;
    let arn = job.0.arn.clone();
    spawn_export_job(state.store.clone(), job.0, job.1, job.2);
    Ok(json!({ "datasetExportJobArn": arn }))
}

/// The folder a `file://` destination names inside the caller's part of the export root (None
/// for other schemes, which fail the job with a reason).
fn confine(root: Option<&FileRoot>, account: &str, location: &str) -> Result<Option<ConfinedDir>, StoreError> {
    if !matches!(check::data_path("path", location), Ok(PathScheme::File)) {
        return Ok(None);
    }
    let root = root.ok_or_else(|| StoreError::Invalid(ConfineError::NoRoot.to_string()))?;
    match root.resolve_dir(account, location) {
        Ok(dir) => Ok(Some(dir)),
        Err(e) => Err(match e.cause() {
            Some(cause) => StoreError::Io(std::io::Error::new(cause.kind(), format!("{e}: {cause}"))),
            None => StoreError::Invalid(format!("Invalid jobOutput.s3DataDestination.path: {e}")),
        }),
    }
}

/// Runs an export job in the background: CREATE PENDING → CREATE IN_PROGRESS → ACTIVE or
/// CREATE FAILED with a reason, writing `<path>/<jobName>.csv` through the shared writer.
fn spawn_export_job(
    store: Arc<dyn EventStore>,
    job: ExportJobRecord,
    dataset: DatasetRecord,
    destination: Option<ConfinedDir>,
) {
    tokio::task::spawn_blocking(move || {
        let set = |status: &'static str, reason: Option<String>| {
            let arn = job.arn.clone();
            let result = store.catalog(&mut |tx| tx.set_export_job_status(&arn, status, reason.as_deref()));
            if let Err(e) = result {
                tracing::error!(error = %e, job = %job.arn, "cannot record the export job's status");
            }
        };
        set("CREATE IN_PROGRESS", None);
        match write_export(&*store, &job, &dataset, destination.as_ref()) {
            Ok(events) => {
                tracing::info!(job = %job.arn, events, "dataset export job done");
                set("ACTIVE", None);
            }
            Err(reason) => {
                tracing::warn!(job = %job.arn, %reason, "dataset export job failed");
                set("CREATE FAILED", Some(reason));
            }
        }
    });
}

/// Writes `<jobName>.csv` into the confined destination: created new as a temporary file
/// (mode 0600), synced, then published under its final name, which never replaces an existing
/// file. Failure reasons name no server path; OS causes go to the log.
fn write_export(
    store: &dyn EventStore,
    job: &ExportJobRecord,
    dataset: &DatasetRecord,
    destination: Option<&ConfinedDir>,
) -> Result<u64, String> {
    let Some(dir) = destination else {
        return Err(format!(
            "interlog writes dataset exports to local directories only: use a file:///absolute/dir/ path \
             (object storage such as {} is not supported yet)",
            job.path
        ));
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::warn!(job = %job.arn, "export job: {what}: {e}");
        format!("The export file could not be {what} (see the server log)")
    };
    wait_for_test_gate();
    let columns = interlog_model::schema::field_names(&dataset.schema_body)?;
    let target = format!("{}.csv", job.name);
    let partial = format!("{}.csv.{}.partial", job.name, &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let file = dir.create_new(&partial).map_err(|e| match e.cause() {
        Some(cause) => failed("created", cause),
        None => e.to_string(),
    })?;
    let written = (|| -> Result<u64, String> {
        let mut writer = ExportWriter::new(Format::Csv, columns, std::io::BufWriter::new(file))
            .map_err(|e| failed("written", &e))?
            .with_schema(interlog_model::schema::parse_schema(&dataset.schema_body).ok());
        let mut events = 0;
        // interlog records events only through PutEvents: BULK (imported) data is always empty.
        if job.ingestion_mode != "BULK" {
            let stats = store.scan(dataset.id, &mut |e| writer.write(&e)).map_err(|e| failed("written", &e))?;
            events = stats.events;
        }
        let out = writer.finish().map_err(|e| failed("written", &e))?;
        let file = out.into_inner().map_err(|e| failed("written", &e))?;
        file.sync_all().map_err(|e| failed("synced", &e))?;
        Ok(events)
    })();
    let events = match written {
        Ok(events) => events,
        Err(reason) => {
            dir.remove(&partial);
            return Err(reason);
        }
    };
    dir.publish(&partial, &target).map_err(|e| match e.cause() {
        Some(cause) => failed("published", cause),
        None => e.to_string(),
    })?;
    Ok(events)
}

/// Test machinery: while the file named by `INTERLOG_TEST_EXPORT_JOB_GATE` exists, export jobs
/// wait in CREATE IN_PROGRESS, so a test can observe a running job (in-use refusals, a stop
/// interrupting it) deterministically. Unset in production: one environment lookup per job.
fn wait_for_test_gate() {
    if let Some(gate) = std::env::var_os("INTERLOG_TEST_EXPORT_JOB_GATE") {
        while std::path::Path::new(&gate).exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn caller_scope(caller: &Caller) -> interlog_model::arn::Scope {
    interlog_model::arn::Scope { region: caller.region.clone(), account: caller.account.clone() }
}

// ---- response shapes ----

fn schema_json(s: &SchemaRecord) -> Value {
    let mut v = json!({ "name": s.name, "schemaArn": s.arn, "schema": s.body,
        "creationDateTime": s.created, "lastUpdatedDateTime": s.updated });
    put_opt(&mut v, "domain", &s.domain);
    v
}

fn group_json(g: &GroupRecord) -> Value {
    let mut v = json!({ "name": g.name, "datasetGroupArn": g.arn, "status": g.status,
        "creationDateTime": g.created, "lastUpdatedDateTime": g.updated });
    put_opt(&mut v, "roleArn", &g.role_arn);
    put_opt(&mut v, "kmsKeyArn", &g.kms_key_arn);
    put_opt(&mut v, "domain", &g.domain);
    v
}

fn dataset_json(d: &DatasetRecord) -> Value {
    json!({ "name": d.name, "datasetArn": d.arn, "datasetGroupArn": d.group_arn,
        "datasetType": api_type(&d.dataset_type), "schemaArn": d.schema_arn, "status": d.status,
        "creationDateTime": d.created, "lastUpdatedDateTime": d.updated })
}

fn tracker_json(t: &TrackerRecord) -> Value {
    json!({ "name": t.name, "eventTrackerArn": t.arn, "accountId": t.account, "trackingId": t.tracking_id,
        "datasetGroupArn": t.group_arn, "status": t.status,
        "creationDateTime": t.created, "lastUpdatedDateTime": t.updated })
}

fn job_json(j: &ExportJobRecord) -> Value {
    let mut destination = json!({ "path": j.path });
    put_opt(&mut destination, "kmsKeyArn", &j.kms_key_arn);
    let mut v = json!({ "jobName": j.name, "datasetExportJobArn": j.arn, "datasetArn": j.dataset_arn,
        "ingestionMode": j.ingestion_mode, "roleArn": j.role_arn, "status": j.status,
        "jobOutput": { "s3DataDestination": destination },
        "creationDateTime": j.created, "lastUpdatedDateTime": j.updated });
    put_opt(&mut v, "failureReason", &j.failure_reason);
    v
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
}

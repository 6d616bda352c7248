//! The control plane's request shapes (AWS JSON 1.1, §4 of the spec) and their validation into
//! commands: every member constraint of an operation is checked here, all violations of a
//! request reported together, so handlers only parse, call and render.

use serde::Deserialize;

use crate::control::{self as check, ImportMode, IngestionMode, PathScheme, Tag};
use crate::schema::{validate_schema, DatasetType, Domain};
use crate::validation::{ValidationError, Violation};

fn done(v: Vec<Violation>) -> Result<(), ValidationError> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::Violations(v))
    }
}

fn required(value: Option<String>, path: &str, v: &mut Vec<Violation>) -> String {
    value.unwrap_or_else(|| {
        v.push(Violation::missing(path));
        String::new()
    })
}

/// A required member whose constraints `check` reports only when it is present: a missing member is one
/// violation (null), not also the length and pattern violations of an empty string, as Coral reports it.
fn required_checked(
    value: Option<String>,
    path: &str,
    check: impl FnOnce(&str, &str) -> Vec<Violation>,
    v: &mut Vec<Violation>,
) -> String {
    match value {
        Some(value) => {
            v.extend(check(path, &value));
            value
        }
        None => required(None, path, v),
    }
}

fn arn_member(value: Option<String>, path: &str, v: &mut Vec<Violation>) -> String {
    required_checked(value, path, check::arn, v)
}

fn name_member(value: Option<String>, path: &str, v: &mut Vec<Violation>) -> String {
    required_checked(value, path, check::resource_name, v)
}

/// Tags as `(key, value)` pairs, checked.
fn tag_pairs(tags: Option<Vec<Tag>>, path: &str, v: &mut Vec<Violation>) -> Vec<(String, String)> {
    let Some(tags) = tags else { return Vec::new() };
    v.extend(check::tags(path, &tags));
    tags.into_iter().map(|t| (t.tag_key.unwrap_or_default(), t.tag_value.unwrap_or_default())).collect()
}

// ---- requests naming one resource ----

/// Describe* and Delete* requests: one ARN member.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArnRequest {
    schema_arn: Option<String>,
    dataset_group_arn: Option<String>,
    dataset_arn: Option<String>,
    event_tracker_arn: Option<String>,
    dataset_export_job_arn: Option<String>,
    dataset_import_job_arn: Option<String>,
    data_deletion_job_arn: Option<String>,
}

impl ArnRequest {
    /// The ARN held in `member` (`schemaArn`, `datasetGroupArn`, ...), required and checked.
    pub fn arn(self, member: &str) -> Result<String, ValidationError> {
        let value = match member {
            "schemaArn" => self.schema_arn,
            "datasetGroupArn" => self.dataset_group_arn,
            "datasetArn" => self.dataset_arn,
            "eventTrackerArn" => self.event_tracker_arn,
            "datasetExportJobArn" => self.dataset_export_job_arn,
            "datasetImportJobArn" => self.dataset_import_job_arn,
            "dataDeletionJobArn" => self.data_deletion_job_arn,
            other => unreachable!("no operation names its resource by {other}"),
        };
        let mut v = Vec::new();
        let arn = arn_member(value, member, &mut v);
        done(v)?;
        Ok(arn)
    }
}

/// List* requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    next_token: Option<String>,
    max_results: Option<i64>,
    dataset_group_arn: Option<String>,
    dataset_arn: Option<String>,
}

/// A validated listing: the raw token (the server decodes it), the page size and the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct List {
    pub next_token: Option<String>,
    pub max_results: usize,
    /// The `datasetGroupArn` or `datasetArn` filter, when the operation has one and it was sent.
    pub filter: Option<String>,
}

impl ListRequest {
    /// Validates the paging members and the filter member `filter` (`datasetGroupArn`,
    /// `datasetArn`) if the operation has one.
    pub fn validate(self, filter: Option<&str>) -> Result<List, ValidationError> {
        let mut v = Vec::new();
        if let Some(n) = self.max_results {
            v.extend(check::max_results("maxResults", n));
        }
        if let Some(t) = &self.next_token {
            v.extend(check::next_token("nextToken", t));
        }
        let filter = match filter {
            Some("datasetGroupArn") => self.dataset_group_arn,
            Some("datasetArn") => self.dataset_arn,
            Some(other) => unreachable!("no listing filters by {other}"),
            None => None,
        }
        .inspect(|arn| v.extend(check::arn(filter.unwrap_or_default(), arn)));
        done(v)?;
        let max_results = self.max_results.unwrap_or(check::MAX_RESULTS) as usize;
        Ok(List { next_token: self.next_token, max_results, filter })
    }
}

// ---- creates ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSchemaRequest {
    name: Option<String>,
    schema: Option<String>,
    domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateSchema {
    pub name: String,
    /// The Avro JSON, checked to be a valid schema for its dataset type and domain.
    pub schema: String,
    pub domain: Option<Domain>,
}

impl CreateSchemaRequest {
    pub fn validate(self) -> Result<CreateSchema, ValidationError> {
        let mut v = Vec::new();
        let name = name_member(self.name, "name", &mut v);
        let schema = required(self.schema, "schema", &mut v);
        let domain = self.domain.and_then(|d| check::domain("domain", &d).map_err(|e| v.extend(e)).ok());
        done(v)?;
        validate_schema(&schema, domain).map_err(|e| ValidationError::Body(e.to_string()))?;
        Ok(CreateSchema { name, schema, domain })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDatasetGroupRequest {
    name: Option<String>,
    role_arn: Option<String>,
    kms_key_arn: Option<String>,
    domain: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDatasetGroup {
    pub name: String,
    pub role_arn: Option<String>,
    pub kms_key_arn: Option<String>,
    pub domain: Option<Domain>,
    pub tags: Vec<(String, String)>,
}

impl CreateDatasetGroupRequest {
    pub fn validate(self) -> Result<CreateDatasetGroup, ValidationError> {
        let mut v = Vec::new();
        let name = name_member(self.name, "name", &mut v);
        if let Some(r) = &self.role_arn {
            v.extend(check::role_arn("roleArn", r));
        }
        if let Some(k) = &self.kms_key_arn {
            v.extend(check::kms_key_arn("kmsKeyArn", k));
        }
        let domain = self.domain.and_then(|d| check::domain("domain", &d).map_err(|e| v.extend(e)).ok());
        done(v)?;
        // "Supplying an IAM role is only valid when also specifying a KMS key", and a key is used through the role.
        let missing = match (&self.role_arn, &self.kms_key_arn) {
            (Some(_), None) => Some("kmsKeyArn"),
            (None, Some(_)) => Some("roleArn"),
            _ => None,
        };
        if let Some(missing) = missing {
            return Err(ValidationError::Body(format!(
                "roleArn and kmsKeyArn must be given together (a dataset group is encrypted with the KMS key \
                 kmsKeyArn through the IAM role roleArn), or neither: {missing} is missing"
            )));
        }
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        Ok(CreateDatasetGroup { name, role_arn: self.role_arn, kms_key_arn: self.kms_key_arn, domain, tags })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDatasetRequest {
    name: Option<String>,
    schema_arn: Option<String>,
    dataset_group_arn: Option<String>,
    dataset_type: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDataset {
    pub name: String,
    pub schema_arn: String,
    pub dataset_group_arn: String,
    pub dataset_type: DatasetType,
    pub tags: Vec<(String, String)>,
}

impl CreateDatasetRequest {
    pub fn validate(self) -> Result<CreateDataset, ValidationError> {
        let mut v = Vec::new();
        let name = name_member(self.name, "name", &mut v);
        let schema_arn = arn_member(self.schema_arn, "schemaArn", &mut v);
        let dataset_group_arn = arn_member(self.dataset_group_arn, "datasetGroupArn", &mut v);
        let dataset_type = match self.dataset_type {
            None => {
                v.push(Violation::missing("datasetType"));
                None
            }
            Some(t) => check::dataset_type("datasetType", &t).map_err(|e| v.extend(e)).ok(),
        };
        done(v)?;
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        let dataset_type = dataset_type.expect("a missing or invalid type is a violation above");
        Ok(CreateDataset { name, schema_arn, dataset_group_arn, dataset_type, tags })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEventTrackerRequest {
    name: Option<String>,
    dataset_group_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateEventTracker {
    pub name: String,
    pub dataset_group_arn: String,
    pub tags: Vec<(String, String)>,
}

impl CreateEventTrackerRequest {
    pub fn validate(self) -> Result<CreateEventTracker, ValidationError> {
        let mut v = Vec::new();
        let name = name_member(self.name, "name", &mut v);
        let dataset_group_arn = arn_member(self.dataset_group_arn, "datasetGroupArn", &mut v);
        done(v)?;
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        Ok(CreateEventTracker { name, dataset_group_arn, tags })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDatasetExportJobRequest {
    job_name: Option<String>,
    dataset_arn: Option<String>,
    ingestion_mode: Option<String>,
    role_arn: Option<String>,
    job_output: Option<JobOutput>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobOutput {
    s3_data_destination: Option<S3DataConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3DataConfig {
    path: Option<String>,
    kms_key_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDatasetExportJob {
    pub job_name: String,
    pub dataset_arn: String,
    pub ingestion_mode: IngestionMode,
    pub role_arn: String,
    /// `jobOutput.s3DataDestination.path` and its scheme.
    pub path: String,
    pub scheme: PathScheme,
    pub kms_key_arn: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl CreateDatasetExportJobRequest {
    pub fn validate(self) -> Result<CreateDatasetExportJob, ValidationError> {
        let mut v = Vec::new();
        let job_name = name_member(self.job_name, "jobName", &mut v);
        let dataset_arn = arn_member(self.dataset_arn, "datasetArn", &mut v);
        let role_arn = required_checked(self.role_arn, "roleArn", check::role_arn, &mut v);
        let ingestion_mode = match self.ingestion_mode.as_deref().map(|m| check::ingestion_mode("ingestionMode", m)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                v.extend(e);
                IngestionMode::default()
            }
            None => IngestionMode::default(),
        };
        let destination = match self.job_output {
            None => {
                v.push(Violation::missing("jobOutput"));
                None
            }
            Some(JobOutput { s3_data_destination: None }) => {
                v.push(Violation::missing("jobOutput.s3DataDestination"));
                None
            }
            Some(JobOutput { s3_data_destination: Some(d) }) => Some(d),
        };
        let (mut path, mut scheme, mut kms_key_arn) = (String::new(), None, None);
        if let Some(d) = destination {
            const PATH: &str = "jobOutput.s3DataDestination.path";
            let present = d.path.is_some();
            path = required(d.path, PATH, &mut v);
            if present {
                scheme = check::data_path(PATH, &path).map_err(|e| v.extend(e)).ok();
            }
            if let Some(k) = &d.kms_key_arn {
                v.extend(check::kms_key_arn("jobOutput.s3DataDestination.kmsKeyArn", k));
            }
            kms_key_arn = d.kms_key_arn;
        }
        done(v)?;
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        let scheme = scheme.expect("a missing or invalid path is a violation above");
        Ok(CreateDatasetExportJob { job_name, dataset_arn, ingestion_mode, role_arn, path, scheme, kms_key_arn, tags })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDatasetImportJobRequest {
    job_name: Option<String>,
    dataset_arn: Option<String>,
    data_source: Option<DataSource>,
    role_arn: Option<String>,
    tags: Option<Vec<Tag>>,
    import_mode: Option<String>,
    publish_attribution_metrics_to_s3: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDataDeletionJobRequest {
    job_name: Option<String>,
    dataset_group_arn: Option<String>,
    data_source: Option<DataSource>,
    role_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataSource {
    data_location: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDatasetImportJob {
    pub job_name: String,
    pub dataset_arn: String,
    /// `dataSource.dataLocation` (a file or a prefix) and its scheme.
    pub location: String,
    pub scheme: PathScheme,
    /// Optional in the model (unlike export jobs'): only its syntax matters to interlog.
    pub role_arn: Option<String>,
    pub import_mode: ImportMode,
    pub publish_attribution_metrics_to_s3: Option<bool>,
    pub tags: Vec<(String, String)>,
}

impl CreateDatasetImportJobRequest {
    pub fn validate(self) -> Result<CreateDatasetImportJob, ValidationError> {
        let mut v = Vec::new();
        let job_name = name_member(self.job_name, "jobName", &mut v);
        let dataset_arn = arn_member(self.dataset_arn, "datasetArn", &mut v);
        if let Some(role) = &self.role_arn {
            v.extend(check::role_arn("roleArn", role));
        }
        let import_mode = match self.import_mode.as_deref().map(|m| check::import_mode("importMode", m)) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                v.extend(e);
                ImportMode::default()
            }
            None => ImportMode::default(),
        };
        // `dataSource` is required; its `dataLocation` is not in the model, but a job without one has nothing to
        // import, and AWS refuses it too.
        const LOCATION: &str = "dataSource.dataLocation";
        let (mut location, mut scheme) = (String::new(), None);
        match self.data_source {
            None => v.push(Violation::missing("dataSource")),
            Some(DataSource { data_location: None }) => v.push(Violation::missing(LOCATION)),
            Some(DataSource { data_location: Some(l) }) => {
                scheme = check::data_path(LOCATION, &l).map_err(|e| v.extend(e)).ok();
                location = l;
            }
        }
        done(v)?;
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        let scheme = scheme.expect("a missing or invalid location is a violation above");
        Ok(CreateDatasetImportJob {
            job_name,
            dataset_arn,
            location,
            scheme,
            role_arn: self.role_arn,
            import_mode,
            publish_attribution_metrics_to_s3: self.publish_attribution_metrics_to_s3,
            tags,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateDataDeletionJob {
    pub job_name: String,
    pub dataset_group_arn: String,
    /// `dataSource.dataLocation`: a CSV file of user IDs, or a folder of them, and its scheme.
    pub data_location: String,
    pub scheme: PathScheme,
    pub role_arn: String,
    pub tags: Vec<(String, String)>,
}

impl CreateDataDeletionJobRequest {
    pub fn validate(self) -> Result<CreateDataDeletionJob, ValidationError> {
        const LOCATION: &str = "dataSource.dataLocation";
        let mut v = Vec::new();
        let job_name = name_member(self.job_name, "jobName", &mut v);
        let dataset_group_arn = arn_member(self.dataset_group_arn, "datasetGroupArn", &mut v);
        let role_arn = required_checked(self.role_arn, "roleArn", check::role_arn, &mut v);
        let mut location = None;
        match self.data_source {
            None => v.push(Violation::missing("dataSource")),
            Some(DataSource { data_location: Some(l) }) => {
                let scheme = check::data_path(LOCATION, &l).map_err(|e| v.extend(e)).ok();
                location = scheme.map(|s| (l, s));
            }
            Some(DataSource { data_location: None }) => {}
        }
        done(v)?;
        // The model leaves dataLocation optional, but a job without one has nothing to read:
        // refused as the service refuses it, before the job exists.
        let Some((data_location, scheme)) = location else {
            return Err(ValidationError::Body(format!(
                "{LOCATION} is required: the CSV file (or folder of CSV files) of the user IDs to delete"
            )));
        };
        let mut v = Vec::new();
        let tags = tag_pairs(self.tags, "tags", &mut v);
        done(v)?;
        Ok(CreateDataDeletionJob { job_name, dataset_group_arn, data_location, scheme, role_arn, tags })
    }
}

// ---- tags ----

/// TagResource, UntagResource and ListTagsForResource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagsRequest {
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
    tag_keys: Option<Vec<String>>,
}

impl TagsRequest {
    fn resource(&mut self, v: &mut Vec<Violation>) -> String {
        arn_member(self.resource_arn.take(), "resourceArn", v)
    }

    /// ListTagsForResource: the resource.
    pub fn list(mut self) -> Result<String, ValidationError> {
        let mut v = Vec::new();
        let arn = self.resource(&mut v);
        done(v)?;
        Ok(arn)
    }

    /// TagResource: the resource and its (required) tags.
    pub fn tag(mut self) -> Result<(String, Vec<(String, String)>), ValidationError> {
        let mut v = Vec::new();
        let arn = self.resource(&mut v);
        done(v)?;
        let Some(tags) = self.tags else { return Err(ValidationError::Violations(vec![Violation::missing("tags")])) };
        let mut v = Vec::new();
        let tags = tag_pairs(Some(tags), "tags", &mut v);
        done(v)?;
        Ok((arn, tags))
    }

    /// UntagResource: the resource and the keys to remove.
    pub fn untag(mut self) -> Result<(String, Vec<String>), ValidationError> {
        let mut v = Vec::new();
        let arn = self.resource(&mut v);
        done(v)?;
        let keys = self.tag_keys.ok_or_else(|| ValidationError::Violations(vec![Violation::missing("tagKeys")]))?;
        let mut v = Vec::new();
        if keys.len() > check::MAX_TAGS {
            v.push(Violation::new(
                "tagKeys",
                None,
                format!("Member must have length less than or equal to {}", check::MAX_TAGS),
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            let path = format!("tagKeys.{}.member", i + 1);
            let n = k.chars().count();
            if !(1..=check::MAX_TAG_KEY_CHARS).contains(&n) {
                v.push(Violation::new(
                    path.clone(),
                    None,
                    format!("Member must have length between 1 and {}", check::MAX_TAG_KEY_CHARS),
                ));
            }
            // AWS's own tags cannot be removed either.
            v.extend(check::reserved_tag(&path, k));
        }
        done(v)?;
        Ok((arn, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("a request body")
    }

    fn violations(e: ValidationError) -> Vec<(String, String)> {
        match e {
            ValidationError::Violations(list) => list.into_iter().map(|v| (v.path, v.rule)).collect(),
            ValidationError::Body(m) => panic!("expected violations, got {m}"),
        }
    }

    const NULL: &str = "Member must not be null";

    #[test]
    fn a_missing_required_member_is_one_violation_not_also_its_pattern() {
        let job = r#"{"jobName": "j", "datasetArn": "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS",
                      "jobOutput": {"s3DataDestination": {"path": "file:///x/"}}}"#;
        let e = parse::<CreateDatasetExportJobRequest>(job).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: \
                                   Member must not be null"
        );
        let e = parse::<CreateDatasetExportJobRequest>("{}").validate().unwrap_err();
        let paths: Vec<_> = violations(e).into_iter().map(|(p, r)| (p, r == NULL)).collect();
        assert_eq!(
            paths,
            [("jobName", true), ("datasetArn", true), ("roleArn", true), ("jobOutput", true)]
                .map(|(p, n)| (p.to_owned(), n))
        );
        let e = parse::<CreateSchemaRequest>(r#"{"schema": "{}"}"#).validate().unwrap_err();
        assert_eq!(violations(e), [("name".to_owned(), NULL.to_owned())]);
        let e = parse::<CreateDatasetGroupRequest>("{}").validate().unwrap_err();
        assert_eq!(violations(e), [("name".to_owned(), NULL.to_owned())]);
        let e = parse::<CreateEventTrackerRequest>("{}").validate().unwrap_err();
        assert_eq!(violations(e).len(), 2, "name and datasetGroupArn, once each");
        // Present but wrong is still checked.
        let bad_role = job.replace(r#""jobName": "j""#, r#""jobName": "j", "roleArn": "arn:aws:iam::1:role/x""#);
        let e = parse::<CreateDatasetExportJobRequest>(&bad_role).validate().unwrap_err();
        assert_eq!(violations(e).len(), 1);
        assert!(parse::<CreateDatasetExportJobRequest>(&bad_role.replace("::1:", "::123456789012:"))
            .validate()
            .is_ok());
    }

    #[test]
    fn a_data_deletion_job_needs_a_location_it_can_read() {
        const GROUP: &str = r#""datasetGroupArn": "arn:aws:personalize:us-east-1:000000000000:dataset-group/g""#;
        const ROLE: &str = r#""roleArn": "arn:aws:iam::123456789012:role/r""#;
        let job = |source: &str| format!(r#"{{"jobName": "d", {GROUP}, {ROLE}, "dataSource": {source}}}"#);
        let ok = parse::<CreateDataDeletionJobRequest>(&job(r#"{"dataLocation": "s3://bucket/users.csv"}"#))
            .validate()
            .unwrap();
        assert_eq!((ok.data_location.as_str(), ok.scheme), ("s3://bucket/users.csv", PathScheme::S3));
        let local = parse::<CreateDataDeletionJobRequest>(&job(r#"{"dataLocation": "file:///srv/users.csv"}"#));
        assert_eq!(local.validate().unwrap().scheme, PathScheme::File);
        let e = parse::<CreateDataDeletionJobRequest>(&job("{}")).validate().unwrap_err();
        assert!(matches!(e, ValidationError::Body(ref m) if m.starts_with("dataSource.dataLocation is required")));
        let e = parse::<CreateDataDeletionJobRequest>(&job(r#"{"dataLocation": "ftp://x"}"#)).validate().unwrap_err();
        assert_eq!(violations(e)[0].0, "dataSource.dataLocation");
        let e = parse::<CreateDataDeletionJobRequest>("{}").validate().unwrap_err();
        let paths: Vec<_> = violations(e).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["jobName", "datasetGroupArn", "roleArn", "dataSource"]);
    }

    #[test]
    fn a_kms_key_and_its_role_come_together() {
        const ROLE: &str = r#""roleArn": "arn:aws:iam::123456789012:role/kms""#;
        const KMS: &str = r#""kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k1""#;
        for (members, missing) in [(ROLE, "kmsKeyArn"), (KMS, "roleArn")] {
            let e =
                parse::<CreateDatasetGroupRequest>(&format!(r#"{{"name": "g", {members}}}"#)).validate().unwrap_err();
            let message = e.to_string();
            assert!(matches!(e, ValidationError::Body(_)), "{message}");
            assert!(message.contains("roleArn and kmsKeyArn"), "{message}");
            assert!(message.ends_with(&format!("{missing} is missing")), "{message}");
        }
        let both =
            parse::<CreateDatasetGroupRequest>(&format!(r#"{{"name": "g", {ROLE}, {KMS}}}"#)).validate().unwrap();
        assert_eq!(both.role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/kms"));
        assert_eq!(both.kms_key_arn.as_deref(), Some("arn:aws:kms:us-east-1:123456789012:key/k1"));
        assert!(parse::<CreateDatasetGroupRequest>(r#"{"name": "g"}"#).validate().is_ok());
        // A malformed member is reported as such first.
        let e = parse::<CreateDatasetGroupRequest>(r#"{"name": "g", "roleArn": "x"}"#).validate().unwrap_err();
        assert_eq!(violations(e)[0].0, "roleArn");
    }

    #[test]
    fn aws_tags_are_refused_everywhere_tags_are_taken() {
        const ARN: &str = "arn:aws:personalize:us-east-1:000000000000:dataset-group/g";
        let reserved = |e: ValidationError| {
            let message = e.to_string();
            assert!(message.contains("must not begin with 'aws:'"), "{message}");
            violations(e).into_iter().map(|(p, _)| p).collect::<Vec<_>>()
        };
        let tag = parse::<TagsRequest>(&format!(
            r#"{{"resourceArn": "{ARN}", "tags": [{{"tagKey": "ok", "tagValue": "aws:x"}}]}}"#
        ));
        assert_eq!(reserved(tag.tag().unwrap_err()), ["tags.1.member.tagValue"]);
        let untag = parse::<TagsRequest>(&format!(r#"{{"resourceArn": "{ARN}", "tagKeys": ["mine", "AWS:theirs"]}}"#));
        assert_eq!(reserved(untag.untag().unwrap_err()), ["tagKeys.2.member"]);
        let group =
            parse::<CreateDatasetGroupRequest>(r#"{"name": "g", "tags": [{"tagKey": "aws:k", "tagValue": "v"}]}"#);
        assert_eq!(reserved(group.validate().unwrap_err()), ["tags.1.member.tagKey"]);
        let untag = parse::<TagsRequest>(&format!(r#"{{"resourceArn": "{ARN}", "tagKeys": ["awsome", "aws"]}}"#));
        assert_eq!(untag.untag().unwrap().1, ["awsome", "aws"]);
    }

    #[test]
    fn import_jobs_need_a_name_a_dataset_and_a_location() {
        let e = parse::<CreateDatasetImportJobRequest>("{}").validate().unwrap_err();
        let paths: Vec<_> = violations(e).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["jobName", "datasetArn", "dataSource"]);
        let job = r#"{"jobName": "j", "datasetArn": "arn:aws:personalize:us-east-1:000000000000:dataset/g/ITEMS",
                      "dataSource": {"dataLocation": "file:///imports/items.csv"}}"#;
        let cmd = parse::<CreateDatasetImportJobRequest>(job).validate().unwrap();
        assert_eq!((cmd.scheme, cmd.import_mode, cmd.role_arn), (PathScheme::File, ImportMode::Full, None));
        assert_eq!(cmd.location, "file:///imports/items.csv");
        let incremental = job.replace(
            r#""jobName": "j""#,
            r#""jobName": "j", "importMode": "INCREMENTAL",
            "publishAttributionMetricsToS3": true, "roleArn": "arn:aws:iam::123456789012:role/p""#,
        );
        let cmd = parse::<CreateDatasetImportJobRequest>(&incremental).validate().unwrap();
        assert_eq!((cmd.import_mode, cmd.publish_attribution_metrics_to_s3), (ImportMode::Incremental, Some(true)));
        let bad = job.replace(r#""jobName": "j""#, r#""jobName": "j", "importMode": "full", "roleArn": "x""#);
        let rules: Vec<_> = violations(parse::<CreateDatasetImportJobRequest>(&bad).validate().unwrap_err())
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(rules, ["roleArn", "importMode"]);
        let e = parse::<CreateDatasetImportJobRequest>(&job.replace("file:///", "ftp://")).validate().unwrap_err();
        assert_eq!(violations(e)[0].0, "dataSource.dataLocation");
        let e =
            parse::<CreateDatasetImportJobRequest>(&job.replace(r#""dataLocation": "file:///imports/items.csv""#, ""))
                .validate()
                .unwrap_err();
        assert_eq!(violations(e), [("dataSource.dataLocation".to_owned(), NULL.to_owned())]);
    }
}

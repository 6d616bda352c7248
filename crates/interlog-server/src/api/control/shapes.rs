//! How each resource reads on the wire: its members in Describe* (`detail`) and List* (`summary`)
//! answers, with the names the botocore model gives them.

use interlog_store::catalog::resources::{
    DatasetSpec, DeletionJobSpec, ExportJobSpec, GroupSpec, ImportJobSpec, Resource, SchemaSpec, TrackerSpec,
};
use serde_json::{json, Value};

use crate::service::datasets::api_type;

/// The wire shape of a kind.
pub(super) trait Shape: Sized {
    /// The request member naming one resource (`schemaArn`).
    const ARN_MEMBER: &'static str;
    /// The Describe* answer's member (`schema`).
    const SINGULAR: &'static str;
    /// The List* answer's member (`schemas`), also its pagination tokens' kind.
    const PLURAL: &'static str;
    /// The List* request's filter member, if the listing has one.
    const FILTER_MEMBER: Option<&'static str>;
    fn detail(r: &Resource<Self>) -> Value;
    fn summary(r: &Resource<Self>) -> Value;
}

pub(super) fn put_opt(v: &mut Value, key: &str, value: &Option<String>) {
    if let (Some(value), Some(map)) = (value, v.as_object_mut()) {
        map.insert(key.into(), Value::String(value.clone()));
    }
}

impl Shape for SchemaSpec {
    const ARN_MEMBER: &'static str = "schemaArn";
    const SINGULAR: &'static str = "schema";
    const PLURAL: &'static str = "schemas";
    const FILTER_MEMBER: Option<&'static str> = None;

    fn detail(s: &Resource<Self>) -> Value {
        let mut v = json!({ "name": s.meta.name, "schemaArn": s.meta.arn, "schema": s.spec.body,
            "creationDateTime": s.meta.created, "lastUpdatedDateTime": s.meta.updated });
        put_opt(&mut v, "domain", &s.spec.domain);
        v
    }

    fn summary(s: &Resource<Self>) -> Value {
        let mut v = json!({ "name": s.meta.name, "schemaArn": s.meta.arn,
            "creationDateTime": s.meta.created, "lastUpdatedDateTime": s.meta.updated });
        put_opt(&mut v, "domain", &s.spec.domain);
        v
    }
}

impl Shape for GroupSpec {
    const ARN_MEMBER: &'static str = "datasetGroupArn";
    const SINGULAR: &'static str = "datasetGroup";
    const PLURAL: &'static str = "datasetGroups";
    const FILTER_MEMBER: Option<&'static str> = None;

    fn detail(g: &Resource<Self>) -> Value {
        let mut v = json!({ "name": g.meta.name, "datasetGroupArn": g.meta.arn, "status": g.meta.status,
            "creationDateTime": g.meta.created, "lastUpdatedDateTime": g.meta.updated });
        put_opt(&mut v, "roleArn", &g.spec.role_arn);
        put_opt(&mut v, "kmsKeyArn", &g.spec.kms_key_arn);
        put_opt(&mut v, "domain", &g.spec.domain);
        v
    }

    fn summary(g: &Resource<Self>) -> Value {
        let mut v = json!({ "name": g.meta.name, "datasetGroupArn": g.meta.arn, "status": g.meta.status,
            "creationDateTime": g.meta.created, "lastUpdatedDateTime": g.meta.updated });
        put_opt(&mut v, "domain", &g.spec.domain);
        v
    }
}

impl Shape for DatasetSpec {
    const ARN_MEMBER: &'static str = "datasetArn";
    const SINGULAR: &'static str = "dataset";
    const PLURAL: &'static str = "datasets";
    const FILTER_MEMBER: Option<&'static str> = Some("datasetGroupArn");

    fn detail(d: &Resource<Self>) -> Value {
        let mut v = json!({ "name": d.meta.name, "datasetArn": d.meta.arn, "datasetGroupArn": d.meta.parent,
            "datasetType": api_type(&d.spec.dataset_type), "schemaArn": d.meta.uses, "status": d.meta.status,
            "creationDateTime": d.meta.created, "lastUpdatedDateTime": d.meta.updated });
        put_opt(&mut v, "trackingId", &d.spec.tracking_id);
        v
    }

    fn summary(d: &Resource<Self>) -> Value {
        json!({ "name": d.meta.name, "datasetArn": d.meta.arn, "datasetType": api_type(&d.spec.dataset_type),
            "status": d.meta.status, "creationDateTime": d.meta.created, "lastUpdatedDateTime": d.meta.updated })
    }
}

impl Shape for TrackerSpec {
    const ARN_MEMBER: &'static str = "eventTrackerArn";
    const SINGULAR: &'static str = "eventTracker";
    const PLURAL: &'static str = "eventTrackers";
    const FILTER_MEMBER: Option<&'static str> = Some("datasetGroupArn");

    fn detail(t: &Resource<Self>) -> Value {
        json!({ "name": t.meta.name, "eventTrackerArn": t.meta.arn, "accountId": t.meta.account,
            "trackingId": t.spec.tracking_id, "datasetGroupArn": t.meta.parent, "status": t.meta.status,
            "creationDateTime": t.meta.created, "lastUpdatedDateTime": t.meta.updated })
    }

    fn summary(t: &Resource<Self>) -> Value {
        json!({ "name": t.meta.name, "eventTrackerArn": t.meta.arn, "status": t.meta.status,
            "creationDateTime": t.meta.created, "lastUpdatedDateTime": t.meta.updated })
    }
}

impl Shape for ExportJobSpec {
    const ARN_MEMBER: &'static str = "datasetExportJobArn";
    const SINGULAR: &'static str = "datasetExportJob";
    const PLURAL: &'static str = "datasetExportJobs";
    const FILTER_MEMBER: Option<&'static str> = Some("datasetArn");

    fn detail(j: &Resource<Self>) -> Value {
        let mut destination = json!({ "path": j.spec.path });
        put_opt(&mut destination, "kmsKeyArn", &j.spec.kms_key_arn);
        let mut v = json!({ "jobName": j.meta.name, "datasetExportJobArn": j.meta.arn, "datasetArn": j.meta.parent,
            "ingestionMode": j.spec.ingestion_mode, "roleArn": j.spec.role_arn, "status": j.meta.status,
            "jobOutput": { "s3DataDestination": destination },
            "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        v
    }

    fn summary(j: &Resource<Self>) -> Value {
        let mut v = json!({ "datasetExportJobArn": j.meta.arn, "jobName": j.meta.name, "status": j.meta.status,
            "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        v
    }
}

impl Shape for DeletionJobSpec {
    const ARN_MEMBER: &'static str = "dataDeletionJobArn";
    const SINGULAR: &'static str = "dataDeletionJob";
    const PLURAL: &'static str = "dataDeletionJobs";
    const FILTER_MEMBER: Option<&'static str> = Some("datasetGroupArn");

    /// `numDeleted` is the model's "number of records deleted by a COMPLETED job": present once
    /// the job completed, absent before and on a failed job.
    fn detail(j: &Resource<Self>) -> Value {
        let mut v = json!({ "jobName": j.meta.name, "dataDeletionJobArn": j.meta.arn, "datasetGroupArn": j.meta.parent,
            "dataSource": { "dataLocation": j.spec.data_location }, "roleArn": j.spec.role_arn,
            "status": j.meta.status, "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        if let (Some(n), Some(map)) = (j.spec.num_deleted, v.as_object_mut()) {
            map.insert("numDeleted".into(), json!(n.min(i32::MAX as u64)));
        }
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        v
    }

    fn summary(j: &Resource<Self>) -> Value {
        let mut v = json!({ "dataDeletionJobArn": j.meta.arn, "datasetGroupArn": j.meta.parent, "jobName": j.meta.name,
            "status": j.meta.status, "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        v
    }
}

impl Shape for ImportJobSpec {
    const ARN_MEMBER: &'static str = "datasetImportJobArn";
    const SINGULAR: &'static str = "datasetImportJob";
    const PLURAL: &'static str = "datasetImportJobs";
    const FILTER_MEMBER: Option<&'static str> = Some("datasetArn");

    fn detail(j: &Resource<Self>) -> Value {
        let mut v = json!({ "jobName": j.meta.name, "datasetImportJobArn": j.meta.arn, "datasetArn": j.meta.parent,
            "dataSource": { "dataLocation": j.spec.data_location }, "status": j.meta.status,
            "importMode": j.spec.import_mode,
            "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        put_opt(&mut v, "roleArn", &j.spec.role_arn);
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        if let (Some(publish), Some(map)) = (j.spec.publish_attribution_metrics_to_s3, v.as_object_mut()) {
            map.insert("publishAttributionMetricsToS3".into(), Value::Bool(publish));
        }
        v
    }

    fn summary(j: &Resource<Self>) -> Value {
        let mut v = json!({ "datasetImportJobArn": j.meta.arn, "jobName": j.meta.name, "status": j.meta.status,
            "importMode": j.spec.import_mode,
            "creationDateTime": j.meta.created, "lastUpdatedDateTime": j.meta.updated });
        put_opt(&mut v, "failureReason", &j.spec.failure_reason);
        v
    }
}

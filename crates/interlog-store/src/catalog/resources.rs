//! Typed resources over the generic rows: one create/describe/list/update/delete for every kind.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{missing, Catalog, DeleteRules, InsertRules, Kind, ListQuery, Meta, NewRow, Page, Row, RowUpdate};
use crate::StoreError;

/// A kind's own fields: what a row's document holds.
pub trait Spec: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
}

/// A stored resource with its typed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource<S> {
    pub meta: Meta,
    pub spec: S,
}

impl<S: Spec> Resource<S> {
    fn from_row(row: Row) -> Result<Self, StoreError> {
        if row.meta.kind != S::KIND {
            return Err(StoreError::internal(format!(
                "row {} is a {}, read as a {}",
                row.meta.arn,
                row.meta.kind.as_str(),
                S::KIND.as_str()
            )));
        }
        let spec = serde_json::from_str(&row.doc)
            .map_err(|e| StoreError::internal(format!("the stored document of {} does not read: {e}", row.meta.arn)))?;
        Ok(Resource { meta: row.meta, spec })
    }
}

/// A resource to create.
#[derive(Debug, Clone)]
pub struct New<S> {
    pub account: String,
    pub arn: String,
    pub name: String,
    pub parent: Option<String>,
    pub uses: Option<String>,
    pub status: String,
    pub unique_key: Option<String>,
    pub tags: Vec<(String, String)>,
    pub spec: S,
}

fn doc<S: Spec>(spec: &S) -> Result<String, StoreError> {
    serde_json::to_string(spec).map_err(StoreError::internal)
}

/// Typed operations on any [`Catalog`], written once for every kind and engine.
pub trait CatalogExt: Catalog {
    fn create<S: Spec>(
        &self,
        new: New<S>,
        rules: InsertRules,
    ) -> impl Future<Output = Result<Resource<S>, StoreError>> + Send {
        async move {
            let row = NewRow {
                kind: S::KIND,
                doc: doc(&new.spec)?,
                account: new.account,
                arn: new.arn,
                name: new.name,
                parent: new.parent,
                uses: new.uses,
                status: new.status,
                unique_key: new.unique_key,
                tags: new.tags,
            };
            Resource::from_row(self.insert(row, rules).await?)
        }
    }

    /// The resource, or `None`.
    fn find<S: Spec>(
        &self,
        account: &str,
        arn: &str,
    ) -> impl Future<Output = Result<Option<Resource<S>>, StoreError>> + Send {
        async move { self.get(account, S::KIND, arn).await?.map(Resource::from_row).transpose() }
    }

    /// The resource, or `NotFound` naming it.
    fn describe<S: Spec>(
        &self,
        account: &str,
        arn: &str,
    ) -> impl Future<Output = Result<Resource<S>, StoreError>> + Send {
        async move { self.find(account, arn).await?.ok_or_else(|| missing(S::KIND, arn)) }
    }

    /// A page of the account's resources of this kind (of one parent when given).
    fn list_page<S: Spec>(
        &self,
        account: Option<&str>,
        parent: Option<&str>,
        after: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Resource<S>>, StoreError>> + Send {
        let query = ListQuery {
            account: account.map(str::to_owned),
            kind: S::KIND,
            parent: parent.map(str::to_owned),
            after,
            limit,
        };
        async move {
            let page = self.list(query).await?;
            let items = page.items.into_iter().map(Resource::from_row).collect::<Result<_, _>>()?;
            Ok(Page { items, next: page.next })
        }
    }

    /// Every resource of this kind (of one account and parent when given), page by page.
    fn list_all<S: Spec>(
        &self,
        account: Option<&str>,
        parent: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Resource<S>>, StoreError>> + Send {
        async move {
            let mut out = Vec::new();
            let mut after = 0;
            loop {
                let page = self.list_page::<S>(account, parent, after, 1000).await?;
                out.extend(page.items);
                match page.next {
                    Some(next) => after = next,
                    None => return Ok(out),
                }
            }
        }
    }

    /// Replaces a resource's fields and/or status (only from `expect_status` when given).
    fn change<S: Spec>(
        &self,
        account: &str,
        arn: &str,
        expect_status: Option<&str>,
        status: Option<&str>,
        spec: Option<&S>,
    ) -> impl Future<Output = Result<Resource<S>, StoreError>> + Send {
        let update = spec.map(doc).transpose().map(|doc| RowUpdate {
            expect_status: expect_status.map(str::to_owned),
            status: status.map(str::to_owned),
            doc,
        });
        async move { Resource::from_row(self.update(account, S::KIND, arn, update?).await?) }
    }

    fn remove<S: Spec>(
        &self,
        account: &str,
        arn: &str,
        rules: DeleteRules,
    ) -> impl Future<Output = Result<Vec<Meta>, StoreError>> + Send {
        async move { self.delete(account, S::KIND, arn, rules).await }
    }
}

impl<C: Catalog + ?Sized> CatalogExt for C {}

// ---- the kinds ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSpec {
    /// The Avro schema JSON as the client sent it.
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}
impl Spec for SchemaSpec {
    const KIND: Kind = Kind::Schema;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The group made at first start, which `interlog export` reads when no group is named.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
}
impl Spec for GroupSpec {
    const KIND: Kind = Kind::DatasetGroup;
}

/// A dataset: its group is `meta.parent`, its schema `meta.uses`, its event log `meta.id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSpec {
    /// The ARN segment of the type, upper case: `INTERACTIONS`, `ITEMS`, `USERS`, `ACTIONS`,
    /// `ACTION_INTERACTIONS`.
    pub dataset_type: String,
    /// The tracking ID of the action-interaction event tracker an Action_Interactions dataset
    /// gets with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
}
impl Spec for DatasetSpec {
    const KIND: Kind = Kind::Dataset;
}

impl DatasetSpec {
    /// A dataset's unique key: one dataset per type per group, whichever region the ARN of a
    /// second one would carry (a dataset's ARN names its caller's region).
    pub fn unique_key(group_arn: &str, type_segment: &str) -> String {
        format!("{group_arn}/{type_segment}")
    }

    /// The stored type segment as a type; `None` for a segment this build does not know.
    pub fn parsed_type(&self) -> Option<interlog_model::schema::DatasetType> {
        interlog_model::schema::DatasetType::ALL.into_iter().find(|t| t.arn_segment() == self.dataset_type)
    }
}

/// An event tracker: its group is `meta.parent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerSpec {
    pub tracking_id: String,
}
impl Spec for TrackerSpec {
    const KIND: Kind = Kind::EventTracker;
}

/// A dataset export job: its dataset is `meta.parent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportJobSpec {
    /// The dataset's id (its event log), fixed when the job is created.
    pub dataset_id: i64,
    pub ingestion_mode: String,
    pub role_arn: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Which node runs the job and when it last said so, for jobs on a shared store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}
impl Spec for ExportJobSpec {
    const KIND: Kind = Kind::DatasetExportJob;
}

/// A dataset import job: its dataset is `meta.parent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportJobSpec {
    /// The dataset's id (its event log), fixed when the job is created.
    pub dataset_id: i64,
    /// `dataSource.dataLocation`: a file, or a folder of `.csv` files.
    pub data_location: String,
    /// `FULL` or `INCREMENTAL`.
    pub import_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_attribution_metrics_to_s3: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Which node runs the job and when it last said so, for jobs on a shared store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}
impl Spec for ImportJobSpec {
    const KIND: Kind = Kind::DatasetImportJob;
}

/// A data deletion job: its dataset group is `meta.parent`. Statuses are the model's own
/// (PENDING, IN_PROGRESS, COMPLETED, FAILED), not the CREATE ones of other jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionJobSpec {
    /// `dataSource.dataLocation`: the CSV of user IDs (or a folder of them).
    pub data_location: String,
    pub role_arn: String,
    /// What a COMPLETED job removed: events, action interactions and user records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_deleted: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}
impl Spec for DeletionJobSpec {
    const KIND: Kind = Kind::DataDeletionJob;
}

/// A node's claim on a background job; a claim not renewed for a while is taken over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub node: String,
    /// Epoch seconds of the last renewal.
    pub renewed: f64,
}

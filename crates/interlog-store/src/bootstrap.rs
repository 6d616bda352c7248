//! The first start's default resources: a dataset group, an Interactions schema and dataset, and
//! an event tracker, made with the same catalog operations as the control plane's, so they are
//! ordinary resources. Every step is idempotent and guarded by the catalog's uniqueness rules,
//! so however many nodes start at once on an empty shared store, the resources exist once.
//!
//! A server started with `--no-default-resources` makes none of them and only reports those an
//! earlier start made ([`existing_defaults`]), so test suites that expect an empty account get one.

use interlog_model::arn::Scope;
use interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA;

use crate::catalog::resources::{CatalogExt, DatasetSpec, GroupSpec, New, Resource, SchemaSpec, Spec, TrackerSpec};
use crate::catalog::{Catalog, InsertRules, Requirement};
use crate::StoreError;

/// Names the bootstrap gives the default resources.
pub const DEFAULT_GROUP_NAME: &str = "default";
pub const DEFAULT_SCHEMA_NAME: &str = "default-interactions";
pub const DEFAULT_DATASET_NAME: &str = "default-interactions";
pub const DEFAULT_TRACKER_NAME: &str = "default-tracker";

/// What the first start creates when the account has no default dataset group.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub scope: Scope,
    /// A fixed tracking ID for the default tracker (`--default-tracking-id`); random if `None`.
    pub tracking_id: Option<String>,
}

/// The result of [`bootstrap`].
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// True when this call created the default tracker; false when it was already stored (by an
    /// earlier start or by another node starting at the same time).
    pub created: bool,
    pub dataset_group: Resource<GroupSpec>,
    pub dataset: Resource<DatasetSpec>,
    pub tracker: Resource<TrackerSpec>,
}

/// Ensures the default resources of `spec.scope.account` exist and returns them.
pub async fn bootstrap(catalog: &dyn Catalog, spec: &Bootstrap) -> Result<Bootstrapped, StoreError> {
    let account = spec.scope.account.as_str();
    let schema_arn = spec.scope.arn("schema", DEFAULT_SCHEMA_NAME);
    let group = match default_group(catalog, account).await? {
        Some(group) => group,
        None => {
            ensure(
                catalog,
                New {
                    account: account.into(),
                    arn: schema_arn.clone(),
                    name: DEFAULT_SCHEMA_NAME.into(),
                    parent: None,
                    uses: None,
                    status: "ACTIVE".into(),
                    unique_key: Some(DEFAULT_SCHEMA_NAME.into()),
                    tags: vec![],
                    spec: SchemaSpec { body: DEFAULT_INTERACTIONS_SCHEMA.into(), domain: None },
                },
                vec![],
            )
            .await?;
            ensure(
                catalog,
                New {
                    account: account.into(),
                    arn: spec.scope.arn("dataset-group", DEFAULT_GROUP_NAME),
                    name: DEFAULT_GROUP_NAME.into(),
                    parent: None,
                    uses: None,
                    status: "ACTIVE".into(),
                    unique_key: Some(DEFAULT_GROUP_NAME.into()),
                    tags: vec![],
                    spec: GroupSpec { is_default: true, ..GroupSpec::default() },
                },
                vec![],
            )
            .await?
        }
    };
    let group_arn = group.meta.arn.clone();
    let datasets = catalog.list_all::<DatasetSpec>(Some(account), Some(&group_arn)).await?;
    let dataset = match datasets.into_iter().find(|d| d.spec.dataset_type == "INTERACTIONS") {
        Some(d) => d,
        None => {
            let schema = match catalog.find::<SchemaSpec>(account, &schema_arn).await? {
                Some(s) => s.meta.arn,
                None => {
                    return Err(StoreError::Conflict(format!(
                        "the default dataset group {group_arn} has no Interactions dataset and the default schema \
                         {schema_arn} is gone; create the dataset with `aws personalize create-dataset`"
                    )))
                }
            };
            ensure(
                catalog,
                New {
                    account: account.into(),
                    arn: spec.scope.arn("dataset", &format!("{DEFAULT_GROUP_NAME}/INTERACTIONS")),
                    name: DEFAULT_DATASET_NAME.into(),
                    parent: Some(group_arn.clone()),
                    uses: Some(schema.clone()),
                    status: "ACTIVE".into(),
                    unique_key: Some(DatasetSpec::unique_key(&group_arn, "INTERACTIONS")),
                    tags: vec![],
                    spec: DatasetSpec { dataset_type: "INTERACTIONS".into(), tracking_id: None },
                },
                vec![
                    Requirement { kind: GroupSpec::KIND, arn: group_arn.clone(), active: true },
                    Requirement { kind: SchemaSpec::KIND, arn: schema, active: false },
                ],
            )
            .await?
        }
    };
    let (tracker, created) = match catalog.list_all::<TrackerSpec>(Some(account), Some(&group_arn)).await?.pop() {
        Some(t) => (t, false),
        None => {
            let tracking_id = spec.tracking_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let new = New {
                account: account.into(),
                arn: spec.scope.arn("event-tracker", &uuid::Uuid::new_v4().simple().to_string()[..8]),
                name: DEFAULT_TRACKER_NAME.into(),
                parent: Some(group_arn.clone()),
                uses: None,
                status: "ACTIVE".into(),
                unique_key: Some(group_arn.clone()),
                tags: vec![],
                spec: TrackerSpec { tracking_id },
            };
            let rules = InsertRules {
                requires: vec![Requirement { kind: GroupSpec::KIND, arn: group_arn.clone(), active: true }],
                exists_message: format!("Dataset group {group_arn} already has an event tracker"),
                ..InsertRules::default()
            };
            match catalog.create(new, rules).await {
                Ok(t) => (t, true),
                // Another node made it first.
                Err(StoreError::AlreadyExists(_)) => {
                    let t = catalog.list_all::<TrackerSpec>(Some(account), Some(&group_arn)).await?.pop();
                    (t.ok_or_else(|| StoreError::internal("the default tracker vanished while starting"))?, false)
                }
                Err(e) => return Err(e),
            }
        }
    };
    if let Some(wanted) = &spec.tracking_id {
        if *wanted != tracker.spec.tracking_id {
            return Err(StoreError::Conflict(format!(
                "this store's default tracker already has the tracking ID {}; --default-tracking-id {wanted} only \
                 applies to a new store",
                tracker.spec.tracking_id
            )));
        }
    }
    Ok(Bootstrapped { created, dataset_group: group, dataset, tracker })
}

/// The default resources an earlier start made, without creating anything: `None` unless the
/// account has its default dataset group with an Interactions dataset and an event tracker.
pub async fn existing_defaults(catalog: &dyn Catalog, account: &str) -> Result<Option<Bootstrapped>, StoreError> {
    let Some(group) = default_group(catalog, account).await? else { return Ok(None) };
    let datasets = catalog.list_all::<DatasetSpec>(Some(account), Some(&group.meta.arn)).await?;
    let Some(dataset) = datasets.into_iter().find(|d| d.spec.dataset_type == "INTERACTIONS") else { return Ok(None) };
    let Some(tracker) = catalog.list_all::<TrackerSpec>(Some(account), Some(&group.meta.arn)).await?.pop() else {
        return Ok(None);
    };
    Ok(Some(Bootstrapped { created: false, dataset_group: group, dataset, tracker }))
}

/// The account's default dataset group, if it has one.
pub async fn default_group(catalog: &dyn Catalog, account: &str) -> Result<Option<Resource<GroupSpec>>, StoreError> {
    let groups = catalog.list_all::<GroupSpec>(Some(account), None).await?;
    Ok(groups.into_iter().find(|g| g.spec.is_default))
}

/// Creates a resource, or returns the one another node created under the same ARN first.
async fn ensure<S: Spec>(
    catalog: &dyn Catalog,
    new: New<S>,
    requires: Vec<Requirement>,
) -> Result<Resource<S>, StoreError> {
    let (account, arn) = (new.account.clone(), new.arn.clone());
    let rules = InsertRules { requires, exists_message: format!("{arn} already exists"), ..InsertRules::default() };
    match catalog.create(new, rules).await {
        Ok(r) => Ok(r),
        Err(StoreError::AlreadyExists(_)) => catalog.describe::<S>(&account, &arn).await,
        Err(e) => Err(e),
    }
}

//! Datasets: one per type per dataset group, each with its schema and its log of records
//! (§4 CreateDataset, §4.3).

use interlog_model::requests::CreateDataset;
use interlog_model::schema::DatasetType;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, GroupSpec, New, Resource, SchemaSpec, Spec};
use interlog_store::catalog::{DeleteRules, InsertRules, Kind, Requirement};

use super::jobs::RUNNING;
use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;

impl Managed for DatasetSpec {
    const PARENT: Option<Kind> = Some(Kind::DatasetGroup);

    /// A dataset goes with its finished jobs and its recorded events (purged in the
    /// background); a job still running on it blocks the delete.
    fn delete_rules() -> DeleteRules {
        DeleteRules {
            cascade: vec![Kind::DatasetExportJob, Kind::DatasetImportJob],
            blocking_statuses: RUNNING.iter().map(|s| s.to_string()).collect(),
            purge_events: true,
        }
    }
}

impl Service {
    pub async fn create_dataset(&self, caller: &Caller, cmd: CreateDataset) -> Result<Resource<DatasetSpec>, ApiError> {
        let account = caller.account.as_str();
        let group = self.store.describe::<GroupSpec>(account, &cmd.dataset_group_arn).await?;
        let schema = self.store.describe::<SchemaSpec>(account, &cmd.schema_arn).await?;
        let parsed = interlog_model::schema::parse_schema(&schema.spec.body)
            .map_err(|e| ApiError::InvalidInput(format!("The schema {} does not parse: {e}", cmd.schema_arn)))?;
        let wanted = cmd.dataset_type;
        if !wanted.matches_schema_name(&parsed.name) {
            return Err(ApiError::InvalidInput(format!(
                "The schema {} is named '{}', so it describes a {} dataset, not {}: the datasetType must match the \
                 schema name",
                cmd.schema_arn,
                parsed.name,
                parsed.dataset_type.api_name(),
                wanted.api_name()
            )));
        }
        if group.spec.domain.is_some() && matches!(wanted, DatasetType::Actions | DatasetType::ActionInteractions) {
            return Err(ApiError::InvalidInput(format!(
                "{} datasets cannot be created in the Domain dataset group {}",
                wanted.api_name(),
                cmd.dataset_group_arn
            )));
        }
        if group.spec.domain != schema.spec.domain {
            return Err(ApiError::InvalidInput(format!(
                "The schema's domain ({}) must be the dataset group's domain ({})",
                schema.spec.domain.as_deref().unwrap_or("none"),
                group.spec.domain.as_deref().unwrap_or("none")
            )));
        }
        // One per type per group: the unique key says so, whatever region the ARN names.
        let arn = scope(caller).arn("dataset", &format!("{}/{}", group.meta.name, wanted.arn_segment()));
        let tags = checked_tags(&arn, cmd.tags)?;
        let rules = InsertRules {
            quota: None,
            requires: vec![
                Requirement { kind: GroupSpec::KIND, arn: group.meta.arn.clone(), active: true },
                Requirement { kind: SchemaSpec::KIND, arn: schema.meta.arn.clone(), active: false },
            ],
            exists_message: format!(
                "Dataset group {} already has a dataset of type {} ({{arn}})",
                group.meta.arn,
                wanted.api_name()
            ),
        };
        let new = New {
            account: account.to_owned(),
            unique_key: Some(DatasetSpec::unique_key(&group.meta.arn, wanted.arn_segment())),
            arn,
            name: cmd.name,
            parent: Some(group.meta.arn),
            uses: Some(schema.meta.arn),
            status: self.jobs.new_dataset_status().into(),
            tags,
            // An Action_Interactions dataset comes with its action-interaction event tracker
            // (§3.6): its ID routes PutActionInteractions, and it retires with the dataset.
            spec: DatasetSpec {
                dataset_type: wanted.arn_segment().to_owned(),
                tracking_id: (wanted == DatasetType::ActionInteractions).then(|| uuid::Uuid::new_v4().to_string()),
            },
        };
        let dataset = self.store.create(new, rules).await?;
        self.changed().await;
        Ok(dataset)
    }
}

/// The API spelling of a stored type segment (`ACTION_INTERACTIONS` → `Action_Interactions`).
pub fn api_type(segment: &str) -> &'static str {
    DatasetType::ALL.iter().find(|t| t.arn_segment() == segment).map_or("Interactions", |t| t.api_name())
}

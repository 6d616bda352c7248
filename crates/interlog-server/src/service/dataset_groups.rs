//! Dataset groups: the containers of datasets, an event tracker and jobs (§4 CreateDatasetGroup).

use interlog_model::requests::CreateDatasetGroup;
use interlog_store::catalog::resources::{CatalogExt, DeletionJobSpec, GroupSpec, New, Resource};
use interlog_store::catalog::{DeleteRules, InsertRules, Kind, Quota};

use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;

/// Dataset groups per account, the default one included (Personalize "endpoints and quotas").
pub const MAX_DATASET_GROUPS: u64 = 5;

impl Managed for GroupSpec {
    const PARENT: Option<Kind> = None;

    /// A group that still holds a dataset or a tracker cannot be deleted; its finished data
    /// deletion jobs go with it, and one still running blocks the delete.
    fn delete_rules() -> DeleteRules {
        use super::jobs::JobSpec;
        DeleteRules {
            cascade: vec![Kind::DataDeletionJob],
            blocking_statuses: DeletionJobSpec::STATUSES.running().iter().map(|s| s.to_string()).collect(),
            purge_events: false,
        }
    }
}

impl Service {
    pub async fn create_dataset_group(
        &self,
        caller: &Caller,
        cmd: CreateDatasetGroup,
    ) -> Result<Resource<GroupSpec>, ApiError> {
        let arn = scope(caller).arn("dataset-group", &cmd.name);
        let rules = InsertRules {
            quota: Some(Quota {
                max: MAX_DATASET_GROUPS,
                statuses: vec![],
                message: format!(
                    "Account {} already has {MAX_DATASET_GROUPS} dataset groups, the quota \
                     (delete one with DeleteDatasetGroup)",
                    caller.account
                ),
            }),
            requires: vec![],
            // `{arn}`: the group that has the name, which may be another region's.
            exists_message: format!("A dataset group named {} already exists ({{arn}})", cmd.name),
        };
        let new = New {
            account: caller.account.clone(),
            tags: checked_tags(&arn, cmd.tags)?,
            arn,
            unique_key: Some(cmd.name.clone()),
            name: cmd.name,
            parent: None,
            uses: None,
            status: "ACTIVE".into(),
            spec: GroupSpec {
                role_arn: cmd.role_arn,
                kms_key_arn: cmd.kms_key_arn,
                domain: cmd.domain.map(|d| d.api_name().to_owned()),
                is_default: false,
            },
        };
        let group = self.store.create(new, rules).await?;
        self.changed().await;
        Ok(group)
    }
}

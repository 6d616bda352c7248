//! Event trackers: the tracking IDs PutEvents records through, one per dataset group
//! (§4 CreateEventTracker).

use interlog_model::requests::CreateEventTracker;
use interlog_store::catalog::resources::{CatalogExt, GroupSpec, New, Resource, Spec, TrackerSpec};
use interlog_store::catalog::{InsertRules, Kind, Requirement};

use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;

impl Managed for TrackerSpec {
    const PARENT: Option<Kind> = Some(Kind::DatasetGroup);
    // Deleting a tracker keeps the group's datasets and their events.
}

impl Service {
    pub async fn create_event_tracker(
        &self,
        caller: &Caller,
        cmd: CreateEventTracker,
    ) -> Result<Resource<TrackerSpec>, ApiError> {
        // Real tracker ARNs end in 8 hex characters; tracking IDs are UUIDs.
        let arn = scope(caller).arn("event-tracker", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let tags = checked_tags(&arn, cmd.tags)?;
        let group = cmd.dataset_group_arn;
        let rules = InsertRules {
            quota: None,
            requires: vec![Requirement { kind: GroupSpec::KIND, arn: group.clone(), active: true }],
            exists_message: format!(
                "Dataset group {group} already has an event tracker ({{arn}}); only one is allowed per group"
            ),
        };
        let new = New {
            account: caller.account.clone(),
            arn,
            name: cmd.name,
            // One tracker per group: the group's ARN is the tracker's unique key.
            unique_key: Some(group.clone()),
            parent: Some(group),
            uses: None,
            status: "ACTIVE".into(),
            tags,
            spec: TrackerSpec { tracking_id: uuid::Uuid::new_v4().to_string() },
        };
        let tracker = self.store.create(new, rules).await?;
        debug_assert_eq!(TrackerSpec::KIND, Kind::EventTracker);
        self.changed().await;
        Ok(tracker)
    }
}

//! Personalize resources as the store keeps them: dataset groups and event trackers.

use interlog_model::arn::Scope;

/// What the first start creates when the store is empty.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub scope: Scope,
    /// A fixed tracking ID for the default tracker (`--default-tracking-id`); random if `None`.
    pub tracking_id: Option<String>,
}

/// The result of [`crate::EventStore::bootstrap`].
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// True when this call created the resources; false when they were already stored.
    pub created: bool,
    pub dataset_group: DatasetGroup,
    pub tracker: EventTracker,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetGroup {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub account: String,
    /// The group's Interactions dataset and its schema's Avro JSON, when it has one.
    pub interactions: Option<(i64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventTracker {
    pub name: String,
    pub arn: String,
    pub account: String,
    pub tracking_id: String,
    pub dataset_group_arn: String,
    pub status: String,
    pub created: f64,
    pub updated: f64,
}

/// Where the events of a tracking ID go.
#[derive(Debug, Clone)]
pub struct TrackerTarget {
    pub account: String,
    pub dataset_group_arn: String,
    /// The group's Interactions dataset; `None` when the group has none yet.
    pub dataset_id: Option<i64>,
    /// That dataset's schema, which every event's properties are checked against.
    pub schema: Option<std::sync::Arc<interlog_model::schema::Schema>>,
}

/// Names the bootstrap gives the default resources.
pub const DEFAULT_GROUP_NAME: &str = "default";
pub const DEFAULT_SCHEMA_NAME: &str = "default-interactions";
pub const DEFAULT_DATASET_NAME: &str = "default-interactions";
pub const DEFAULT_TRACKER_NAME: &str = "default-tracker";

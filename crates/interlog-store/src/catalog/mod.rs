//! The Personalize resources of the control plane, as every engine keeps them.
//!
//! Every resource, whatever its kind, is one [`Row`]: the columns an engine must index and check
//! ([`Meta`]: account, ARN, name, the resource it belongs to, the one it uses, status) plus a JSON
//! document of the kind's own fields. An engine implements the few primitives of [`Catalog`]
//! once; the rules that make the control plane correct (quotas, uniqueness, what must exist
//! first, what blocks a delete) are passed in as data ([`InsertRules`], [`DeleteRules`]) and each
//! engine enforces them atomically with the write. The typed layer in [`resources`] turns rows
//! into `Resource<SchemaSpec>` and friends, so create/describe/list/delete are written once for
//! every kind and every engine.
//!
//! Every lookup is scoped to an account: another account's resource is reported as not found,
//! never as forbidden, so nothing about it leaks.

pub mod resources;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The kinds of resources, each with its ARN resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Schema,
    DatasetGroup,
    Dataset,
    EventTracker,
    DatasetExportJob,
    DatasetImportJob,
    DataDeletionJob,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Schema,
        Kind::DatasetGroup,
        Kind::Dataset,
        Kind::EventTracker,
        Kind::DatasetExportJob,
        Kind::DatasetImportJob,
        Kind::DataDeletionJob,
    ];

    /// The ARN resource type (`arn:aws:personalize:r:a:<this>/...`), also the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::DatasetGroup => "dataset-group",
            Kind::Dataset => "dataset",
            Kind::EventTracker => "event-tracker",
            Kind::DatasetExportJob => "dataset-export-job",
            Kind::DatasetImportJob => "dataset-import-job",
            Kind::DataDeletionJob => "data-deletion-job",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The resource as messages name it ("dataset group").
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::DatasetGroup => "dataset group",
            Kind::Dataset => "dataset",
            Kind::EventTracker => "event tracker",
            Kind::DatasetExportJob => "dataset export job",
            Kind::DatasetImportJob => "dataset import job",
            Kind::DataDeletionJob => "data deletion job",
        }
    }
}

/// The columns every resource has. Engines index `arn`, `(account, kind)`, `parent` and `uses`.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// Unique across all resources and never reused; a dataset's id names its event log.
    pub id: i64,
    pub kind: Kind,
    pub account: String,
    pub arn: String,
    pub name: String,
    /// ARN of the resource this one belongs to: dataset → group, tracker → group, job → dataset.
    pub parent: Option<String>,
    /// ARN of another resource this one uses: dataset → schema.
    pub uses: Option<String>,
    /// `ACTIVE`, `CREATE PENDING`, ... as the API reports it.
    pub status: String,
    /// Epoch seconds with milliseconds.
    pub created: f64,
    pub updated: f64,
}

/// A stored resource: its columns and its kind's own fields as a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub meta: Meta,
    pub doc: String,
}

/// A resource to insert. `created`/`updated` are set by the engine to [`crate::now`].
#[derive(Debug, Clone)]
pub struct NewRow {
    pub kind: Kind,
    pub account: String,
    pub arn: String,
    pub name: String,
    pub parent: Option<String>,
    pub uses: Option<String>,
    pub status: String,
    /// At most one resource of this kind per account carries a given key (a schema's name, the
    /// dataset group an event tracker belongs to); `None` for no such rule. The ARN is always
    /// unique on its own.
    pub unique_key: Option<String>,
    pub doc: String,
    /// Tags created with the resource, in the same transaction.
    pub tags: Vec<(String, String)>,
}

/// What must hold for an insert; the engine checks it in the transaction that inserts.
#[derive(Debug, Clone, Default)]
pub struct InsertRules {
    pub quota: Option<Quota>,
    /// Resources of the same account that must exist (and, if asked, be `ACTIVE`).
    pub requires: Vec<Requirement>,
    /// The message when the ARN or the unique key is taken (ResourceAlreadyExistsException);
    /// `{arn}` in it is replaced by the ARN of the resource that holds it ([`already_exists`]),
    /// which may differ from the new row's (a name taken in another region).
    pub exists_message: String,
}

/// At most `max` resources of the new row's kind in its account, counting only those in
/// `statuses` (all when empty). Concurrent inserts, on any number of nodes, never exceed it.
#[derive(Debug, Clone)]
pub struct Quota {
    pub max: u64,
    pub statuses: Vec<String>,
    /// The LimitExceededException message.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Requirement {
    pub kind: Kind,
    pub arn: String,
    pub active: bool,
}

/// What a delete takes with it and what stops it.
#[derive(Debug, Clone, Default)]
pub struct DeleteRules {
    /// Kinds of dependants (by `parent` or `uses`) deleted along with the resource, tags
    /// included. A dependant of any other kind blocks the delete.
    pub cascade: Vec<Kind>,
    /// A cascaded dependant in one of these statuses blocks the delete instead (a running job).
    pub blocking_statuses: Vec<String>,
    /// The resource is a dataset: its recorded events are removed too. The engine removes them
    /// durably in the background, in chunks that never hold appends up for long; events appended
    /// to the id after the delete are never visible (ids are never reused).
    pub purge_events: bool,
}

/// A change to one resource. With `expect_status`, the change happens only if the stored
/// status is that one (else [`StoreError::Conflict`]): how a node claims a pending job.
#[derive(Debug, Clone, Default)]
pub struct RowUpdate {
    pub expect_status: Option<String>,
    pub status: Option<String>,
    pub doc: Option<String>,
}

/// A listing: resources of one kind, in creation (`id`) order after `after`.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// `None` lists every account (internal callers only: the cache).
    pub account: Option<String>,
    pub kind: Kind,
    pub parent: Option<String>,
    pub after: i64,
    pub limit: usize,
}

/// One page of a listing; `next` is the `id` to continue after, `None` on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

impl<T> Page<T> {
    /// Cuts `rows` (fetched with `limit + 1`) to a page.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Page<T> {
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&id)
        } else {
            None
        };
        Page { items: rows, next }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }
}

/// An access key kept by the store, so every node of a shared store accepts the same one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: String,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// Tag keys a resource may carry (the TooManyTagKeysException text says 50).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

/// The control-plane resources: what each engine implements.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Inserts a resource and its tags if `rules` hold, atomically with the checks:
    /// `NotFound`/`Conflict` for a failed requirement ([`missing`], [`not_active`]),
    /// `LimitExceeded` with the quota's message, `AlreadyExists` with `exists_message`.
    async fn insert(&self, row: NewRow, rules: InsertRules) -> Result<Row, StoreError>;

    /// The resource of that kind and ARN in the account.
    async fn get(&self, account: &str, kind: Kind, arn: &str) -> Result<Option<Row>, StoreError>;

    async fn list(&self, query: ListQuery) -> Result<Page<Row>, StoreError>;

    /// Changes a resource's status and/or document (`updated` becomes now). `NotFound` if it
    /// does not exist; `Conflict` if `expect_status` does not match.
    async fn update(&self, account: &str, kind: Kind, arn: &str, update: RowUpdate) -> Result<Row, StoreError>;

    /// Deletes a resource (and its cascade) with its tags; `Conflict` through [`in_use`] when a
    /// dependant blocks it. Returns what was deleted, the resource first.
    async fn delete(&self, account: &str, kind: Kind, arn: &str, rules: DeleteRules) -> Result<Vec<Meta>, StoreError>;

    /// Adds or replaces tags of any resource of the account; `NotFound` for an unknown ARN,
    /// `TooManyTags` (see [`too_many_tags`]) when it would carry more than `max` keys.
    async fn tag(&self, account: &str, arn: &str, tags: &[(String, String)], max: usize) -> Result<(), StoreError>;

    async fn untag(&self, account: &str, arn: &str, keys: &[String]) -> Result<(), StoreError>;

    /// The tags of a resource, sorted by key.
    async fn tags(&self, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// A number that grows with every catalog write, whichever node made it.
    async fn version(&self) -> Result<u64, StoreError>;

    /// Receives (at least) every version this store learns of: its own writes at once, other
    /// nodes' within a second. The cache of tracking IDs follows it.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Stores `proposed` as the root key unless one is stored already; returns the stored key
    /// and whether this call stored it (so exactly one of many starting nodes prints it).
    async fn root_key(&self, proposed: KeyRecord) -> Result<(KeyRecord, bool), StoreError>;
}

// ---- messages: written once, used by every engine ----

pub fn missing(kind: Kind, arn: &str) -> StoreError {
    StoreError::NotFound(format!("Could not find the {} {arn}", kind.noun()))
}

pub fn not_active(meta: &Meta) -> StoreError {
    StoreError::Conflict(format!("The {} {} is {}, not ACTIVE", meta.kind.noun(), meta.arn, meta.status))
}

/// Why `resource` cannot be deleted while `dependant` exists.
pub fn in_use(resource: &Meta, dependant: &Meta) -> StoreError {
    let message = match (resource.kind, dependant.kind) {
        (_, Kind::DatasetExportJob | Kind::DatasetImportJob | Kind::DataDeletionJob) => format!(
            "The {} {} is in use by the {} {} ({}); wait until it ends",
            resource.kind.noun(),
            resource.arn,
            dependant.kind.noun(),
            dependant.arn,
            dependant.status
        ),
        (Kind::Schema, _) => {
            format!("Schema {} is used by the dataset {}; delete it first", resource.arn, dependant.arn)
        }
        (Kind::DatasetGroup, _) => format!(
            "Dataset group {} still contains {}; delete its datasets and event tracker first",
            resource.arn, dependant.arn
        ),
        _ => format!(
            "The {} {} is used by the {} {}; delete it first",
            resource.kind.noun(),
            resource.arn,
            dependant.kind.noun(),
            dependant.arn
        ),
    };
    StoreError::Conflict(message)
}

/// The `AlreadyExists` of an insert whose ARN or unique key `holder` already has.
pub fn already_exists(rules: &InsertRules, holder: &str) -> StoreError {
    StoreError::AlreadyExists(rules.exists_message.replace("{arn}", holder))
}

pub fn too_many_tags(arn: &str, count: usize, max: usize) -> StoreError {
    StoreError::TooManyTags(format!("{arn} would carry {count} tag keys; a resource may have at most {max}"))
}

pub fn no_resource(arn: &str) -> StoreError {
    StoreError::NotFound(format!("Could not find the resource {arn}"))
}

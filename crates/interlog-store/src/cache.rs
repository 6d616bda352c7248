//! What the hot path needs to know about the catalog, answered from memory: where a tracking ID's
//! events go, and what a dataset ARN names, each with its parsed schema compiled for the
//! properties check ([`CompiledSchema`]: built once per schema with the snapshot, so no request
//! rebuilds a column index or a field listing).
//!
//! The cache is rebuilt whenever the catalog's version moves: right after this node's own
//! writes ([`CatalogCache::refresh`]) and, on a shared store, when another node's write reaches
//! the engine's [`Catalog::watch`] (within a second), so a tracker created or deleted through any
//! node is honoured by every node.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use interlog_model::properties::CompiledSchema;
use interlog_model::schema::{DatasetType, Schema};

use crate::catalog::resources::{CatalogExt, DatasetSpec, SchemaSpec, TrackerSpec};
use crate::catalog::Catalog;
use crate::StoreError;

/// A dataset as the write path sees it.
#[derive(Debug, Clone)]
pub struct DatasetTarget {
    pub account: String,
    pub arn: String,
    /// Names the dataset's event log.
    pub id: i64,
    pub dataset_group_arn: String,
    pub dataset_type: DatasetType,
    pub status: String,
    /// The dataset's schema, which every record's properties are checked against; `None` only
    /// if the stored schema no longer parses (then nothing is checked rather than locking the
    /// dataset out).
    pub schema: Option<Arc<Schema>>,
    /// The schema's name in the catalog, which flags and refusals name (`default-interactions`).
    pub schema_name: String,
    /// `schema` compiled for the properties check, shared by every dataset of the schema; rebuilt
    /// with the whole snapshot whenever the catalog's version moves (a schema, dataset or tracker
    /// created or deleted through any node).
    pub compiled: Option<Arc<CompiledSchema>>,
}

/// Which operation a tracking ID serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerKind {
    /// An event tracker: PutEvents into its group's Interactions dataset.
    Events,
    /// The tracker of an Action_Interactions dataset: PutActionInteractions into it.
    ActionInteractions,
}

/// Where the events of one tracking ID go.
#[derive(Debug, Clone)]
pub struct TrackerTarget {
    pub account: String,
    pub tracking_id: String,
    pub kind: TrackerKind,
    pub dataset_group_arn: String,
    /// The dataset the events are recorded into; `None` while the group has none.
    pub dataset: Option<Arc<DatasetTarget>>,
}

#[derive(Default)]
struct Snapshot {
    version: Option<u64>,
    trackers: HashMap<String, Arc<TrackerTarget>>,
    datasets: HashMap<String, Arc<DatasetTarget>>,
}

/// The hot path's view of the catalog.
#[derive(Default)]
pub struct CatalogCache {
    snapshot: RwLock<Arc<Snapshot>>,
    /// One rebuild at a time; a caller that waited finds the work done.
    rebuild: tokio::sync::Mutex<()>,
}

impl CatalogCache {
    /// A cache filled from the catalog.
    pub async fn load(catalog: &dyn Catalog) -> Result<Arc<Self>, StoreError> {
        let cache = Arc::new(CatalogCache::default());
        cache.refresh(catalog).await?;
        Ok(cache)
    }

    /// Where a tracking ID's events go (any account: callers compare the account).
    pub fn tracker(&self, tracking_id: &str) -> Option<Arc<TrackerTarget>> {
        self.current().trackers.get(tracking_id).cloned()
    }

    /// The dataset an ARN names (any account: callers compare the account).
    pub fn dataset(&self, arn: &str) -> Option<Arc<DatasetTarget>> {
        self.current().datasets.get(arn).cloned()
    }

    /// The catalog version the cache reflects.
    pub fn version(&self) -> Option<u64> {
        self.current().version
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("catalog cache poisoned").clone()
    }

    /// Rebuilds the cache if the catalog changed since it was built.
    pub async fn refresh(&self, catalog: &dyn Catalog) -> Result<(), StoreError> {
        let _one = self.rebuild.lock().await;
        // Read the version first: a write racing the rebuild leaves a newer version behind,
        // so the next refresh rebuilds again rather than missing it.
        let version = catalog.version().await?;
        if self.current().version == Some(version) {
            return Ok(());
        }
        let snapshot = build(catalog, version).await?;
        *self.snapshot.write().expect("catalog cache poisoned") = Arc::new(snapshot);
        Ok(())
    }

    /// Keeps the cache following the catalog's changes for as long as the store lives.
    pub fn follow(self: &Arc<Self>, catalog: Arc<dyn Catalog>) -> tokio::task::JoinHandle<()> {
        let cache = Arc::downgrade(self);
        let mut changes = catalog.watch();
        tokio::spawn(async move {
            loop {
                let Some(cache) = cache.upgrade() else { return };
                if let Err(e) = cache.refresh(&*catalog).await {
                    tracing::warn!(error = %e, "cannot refresh the catalog cache; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
                drop(cache);
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

async fn build(catalog: &dyn Catalog, version: u64) -> Result<Snapshot, StoreError> {
    type Parsed = (String, Option<Arc<Schema>>, Option<Arc<CompiledSchema>>);
    let mut schemas: HashMap<String, Parsed> = HashMap::new();
    for s in catalog.list_all::<SchemaSpec>(None, None).await? {
        let parsed = match interlog_model::schema::parse_schema(&s.spec.body) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::warn!(schema = %s.meta.arn, error = %e, "stored schema does not parse; properties go unchecked");
                None
            }
        };
        let compiled = parsed.as_ref().map(|p| Arc::new(CompiledSchema::new(p, &s.meta.name)));
        schemas.insert(s.meta.arn, (s.meta.name, parsed, compiled));
    }
    let mut datasets = HashMap::new();
    let mut trackers = HashMap::new();
    let mut interactions_of_group: HashMap<String, Arc<DatasetTarget>> = HashMap::new();
    for d in catalog.list_all::<DatasetSpec>(None, None).await? {
        let Some(dataset_type) = DatasetType::ALL.into_iter().find(|t| t.arn_segment() == d.spec.dataset_type) else {
            tracing::warn!(dataset = %d.meta.arn, "stored dataset has an unknown type; ignored");
            continue;
        };
        let target = Arc::new(DatasetTarget {
            account: d.meta.account.clone(),
            arn: d.meta.arn.clone(),
            id: d.meta.id,
            dataset_group_arn: d.meta.parent.clone().unwrap_or_default(),
            dataset_type,
            status: d.meta.status.clone(),
            schema: d.meta.uses.as_ref().and_then(|s| schemas.get(s)).and_then(|s| s.1.clone()),
            schema_name: d.meta.uses.as_ref().and_then(|s| schemas.get(s)).map(|s| s.0.clone()).unwrap_or_default(),
            compiled: d.meta.uses.as_ref().and_then(|s| schemas.get(s)).and_then(|s| s.2.clone()),
        });
        if dataset_type == DatasetType::Interactions {
            interactions_of_group.insert(target.dataset_group_arn.clone(), target.clone());
        }
        if let (DatasetType::ActionInteractions, Some(tracking_id)) = (dataset_type, &d.spec.tracking_id) {
            trackers.insert(
                tracking_id.clone(),
                Arc::new(TrackerTarget {
                    account: target.account.clone(),
                    tracking_id: tracking_id.clone(),
                    kind: TrackerKind::ActionInteractions,
                    dataset_group_arn: target.dataset_group_arn.clone(),
                    dataset: Some(target.clone()),
                }),
            );
        }
        datasets.insert(d.meta.arn, target);
    }
    for t in catalog.list_all::<TrackerSpec>(None, None).await? {
        if t.meta.status != "ACTIVE" {
            continue;
        }
        let group = t.meta.parent.clone().unwrap_or_default();
        trackers.insert(
            t.spec.tracking_id.clone(),
            Arc::new(TrackerTarget {
                account: t.meta.account,
                tracking_id: t.spec.tracking_id,
                kind: TrackerKind::Events,
                dataset: interactions_of_group.get(&group).cloned(),
                dataset_group_arn: group,
            }),
        );
    }
    Ok(Snapshot { version: Some(version), trackers, datasets })
}

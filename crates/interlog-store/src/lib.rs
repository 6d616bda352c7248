//! Durable storage for interlog: recorded events and the Personalize resources they belong to.
//!
//! [`EventStore`] is the boundary the server talks to; [`SqliteStore`] is the embedded engine
//! behind it. A call to [`EventStore::append`] resolves only after its events are committed and
//! synced to disk. Why the store appends and deduplicates when exporting is in `docs/storage.md`.

pub mod catalog;
pub mod error;
pub mod export;
pub mod resources;
pub mod sqlite;
mod window;

use async_trait::async_trait;
use interlog_model::Interaction;

pub use error::StoreError;
pub use resources::{Bootstrap, Bootstrapped, DatasetGroup, EventTracker, TrackerTarget};
pub use sqlite::{SqliteStore, StoreOptions};

/// What one append did: events new to the dataset, and events dropped as repeats of an eventId
/// already recorded (the first copy wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: usize,
    pub duplicates: usize,
}

/// Counters of the write path since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Durable commits (each one fsync of the log).
    pub commits: u64,
    /// Commits that failed; none of their requests was acknowledged.
    pub failed_commits: u64,
    /// Events stored.
    pub events_stored: u64,
    /// Events dropped at the door as repeats of a recent eventId.
    pub duplicates_dropped: u64,
    /// Requests refused because the write queue was full.
    pub throttled: u64,
}

/// One recorded event as read back: its arrival sequence number and the interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    /// When the server received it, in epoch seconds.
    pub received_at: f64,
    pub interaction: Interaction,
}

/// The storage boundary of the server.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends the events of one request to a dataset, all or nothing. Resolves once they are
    /// durable. An event whose eventId is already recorded for the dataset is not stored again.
    async fn append(&self, dataset_id: i64, events: Vec<Interaction>) -> Result<AppendOutcome, StoreError>;

    /// Counters of the write path (commits, events, throttling).
    fn stats(&self) -> StoreStats;

    /// Resolves a tracking ID to where its events go. Hot path: answered from memory.
    fn tracker(&self, tracking_id: &str) -> Option<std::sync::Arc<TrackerTarget>>;

    /// Creates the default dataset group, schema, dataset and tracker if the store has none.
    async fn bootstrap(&self, spec: Bootstrap) -> Result<Bootstrapped, StoreError>;

    /// Runs a control-plane operation in one transaction, then refreshes what the hot path
    /// caches (tracking IDs). Blocking: run it off the async runtime.
    fn catalog(&self, op: &mut dyn FnMut(&catalog::CatalogTx<'_>) -> Result<(), StoreError>) -> Result<(), StoreError>;

    /// Finds a dataset group by name (or the default one) in an account.
    async fn dataset_group(&self, account: &str, name: Option<&str>) -> Result<DatasetGroup, StoreError>;

    /// Calls `visit` with every event of the dataset in arrival order, each eventId once (its
    /// first copy). Blocking: run it off the async runtime.
    fn scan(
        &self,
        dataset_id: i64,
        visit: &mut dyn FnMut(StoredEvent) -> std::io::Result<()>,
    ) -> Result<export::ScanStats, StoreError>;
}

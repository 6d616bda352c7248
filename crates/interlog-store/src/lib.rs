//! Durable storage for interlog, engine-neutral: recorded events and the Personalize resources
//! they belong to.
//!
//! [`Store`] is the boundary the server talks to: [`EventStore`] (the hot path: durable appends,
//! paged reads of a dataset's log) and [`Catalog`] (control-plane resources as generic rows with
//! their rules passed as data). Engines live in their own crates (`interlog-store-sqlite`,
//! `interlog-store-postgres`) and prove themselves against one [`testing`] conformance suite.
//! What is written once for every engine lives here: the typed resources
//! ([`catalog::resources`]), the hot path's [`cache`], the first start's [`bootstrap`], the
//! export writer and exact de-duplication ([`export`]), CSV records read at exact lines and offsets
//! ([`csv_records`]), the retry [`window`], and the durable
//! cursors and leases of the sinks that carry events on ([`sinks`]), and the per-user and
//! per-session [`history`] query.

pub mod bootstrap;
pub mod cache;
pub mod catalog;
pub mod csv_records;
pub mod error;
pub mod events;
pub mod export;
pub mod history;
pub mod page;
pub mod sinks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod window;

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub use bootstrap::{bootstrap, existing_defaults, Bootstrap, Bootstrapped};
pub use cache::{CatalogCache, DatasetTarget, TrackerKind, TrackerTarget};
pub use catalog::Catalog;
pub use error::StoreError;
pub use events::{
    action_interaction, log_entry, AppendOutcome, BulkRemoval, CommitObserver, CommitReport, Entries, EventStore,
    Health, ObserveCommits, StoreStats, StoredEvent, StoredRecord, UserDeletion, UsersDeleted, WriterOptions,
    IMPORT_CHUNK_ROWS,
};
pub use history::Who;
pub use sinks::{Backlog, Cursor, DeadLetter, Refused, SinkState};

/// A whole store: events and catalog, one engine.
#[async_trait]
pub trait Store: EventStore + Catalog + SinkState {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn engine(&self) -> &'static str;

    /// Whether other processes may serve the same store at once (nodes of one deployment). On a
    /// store that is not shared, a job found running at start-up was interrupted by this
    /// process's own stop; on a shared one it may be another node's.
    fn shared(&self) -> bool;

    /// Stops taking writes, lets the writer finish what it holds and releases the location
    /// (locks, connections), so the same location can be opened again at once.
    async fn close(&self);
}

/// The store's clock: epoch seconds with milliseconds, like the service's own
/// `creationDateTime` values (1542392161.837).
pub fn now() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_millis() as f64) / 1000.0
}

//! The event side of the boundary: appending recorded events durably and reading a dataset's
//! log back in order.

use async_trait::async_trait;
use interlog_model::{FlagCounts, Interaction};

use crate::StoreError;

/// What one append did: events new to the dataset, and events dropped at the door as repeats
/// of an eventId already recorded (the first copy wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: usize,
    pub duplicates: usize,
    /// The stored events that carry flags, by kind (a repeat dropped at the door is not counted:
    /// its first copy was).
    pub flagged: FlagCounts,
}

impl AppendOutcome {
    /// Counts one event the engine stored.
    pub fn stored_one(&mut self, event: &Interaction) {
        self.stored += 1;
        if !event.flags.is_empty() {
            self.flagged.add_record(&event.flags);
        }
    }
}

/// Counters of the write path since the store was opened (this process only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Durable commits of appended events.
    pub commits: u64,
    /// Commits that failed; none of their requests was acknowledged.
    pub failed_commits: u64,
    /// Events stored.
    pub events_stored: u64,
    /// Events dropped at the door as repeats of a recent eventId.
    pub duplicates_dropped: u64,
    /// Appends refused because the write queue was full.
    pub throttled: u64,
}

/// Whether the store can take writes now; `GET /_interlog/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Writable,
    /// Writes fail (disk full, database unreachable, writer restarting): why, for operators.
    /// The store keeps probing and turns [`Health::Writable`] again by itself.
    Unavailable(String),
    /// The store cannot be brought back (its writer failed past every restart): why. The server
    /// exits non-zero on it, so a supervisor or orchestrator restarts the process instead of it
    /// living on unable to write.
    Failed(String),
}

/// One recorded event as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its position in the dataset's log: increasing in commit order, never reused.
    pub seq: i64,
    /// When the server received it, in epoch seconds.
    pub received_at: f64,
    pub interaction: Interaction,
}

/// Tuning of a group-commit writer, whatever the engine.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Requests that may wait for the writer; beyond it appends fail with `Overloaded`.
    pub queue_requests: usize,
    /// Most events one commit takes; more waiting requests go in the next commit.
    pub max_batch_events: usize,
    /// Recent eventIds remembered (per process) to drop client retries without storing them.
    pub window_events: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { queue_requests: 4096, max_batch_events: 10_000, window_events: 1 << 18 }
    }
}

/// Recorded events: the hot path.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends the events of one request to a dataset, all or nothing, and resolves once they
    /// are durable. An event whose eventId the store remembers for the dataset is dropped at
    /// the door (counted in [`AppendOutcome::duplicates`]); older repeats may be stored and are
    /// removed exactly when reading with [`crate::export::UniqueEvents`].
    async fn append(&self, dataset_id: i64, events: Vec<Interaction>) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` events of a dataset with `seq > after`, in `seq` order, repeats included.
    /// Each call is a short read: a slow consumer never pins a snapshot between pages.
    async fn read(&self, dataset_id: i64, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Counters of the write path.
    fn stats(&self) -> StoreStats;

    /// Whether appends can succeed now.
    fn health(&self) -> Health;
}

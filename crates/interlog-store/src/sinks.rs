//! The outbox's durable state: where each sink (NATS JetStream, forwarding) stands in each
//! dataset's log, and which node runs each sink.
//!
//! Every stored event already has a position in its dataset's log ([`crate::StoredEvent::seq`],
//! increasing in commit order, never reused), so the outbox is the log itself: a sink reads
//! pages after its cursor with [`crate::EventStore::read`] and moves the cursor only after its
//! destination confirmed. The cursor is a compare-and-set ([`SinkState::advance`]): it never
//! moves back, and of two nodes that both believe they run a sink only one can move it, so the
//! other stops instead of skipping events.

use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// Where one sink stands in one dataset's log, with its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub sink: String,
    pub dataset_id: i64,
    /// The last position delivered and confirmed by the destination; 0 before the first.
    pub position: i64,
    /// Events delivered (confirmed) through this cursor, ever.
    pub delivered: u64,
    /// Deliveries that failed and were tried again, ever.
    pub retried: u64,
    /// Events the destination refused for good and that went to the dead letters, ever.
    pub dead_lettered: u64,
    /// Why the last delivery failed, until one succeeds.
    pub last_error: Option<String>,
    /// When the cursor last changed (epoch seconds); 0 for one never written.
    pub updated: f64,
}

impl Cursor {
    /// The cursor of a sink that never delivered from the dataset.
    pub fn start(sink: &str, dataset_id: i64) -> Cursor {
        Cursor {
            sink: sink.into(),
            dataset_id,
            position: 0,
            delivered: 0,
            retried: 0,
            dead_lettered: 0,
            last_error: None,
            updated: 0.0,
        }
    }
}

/// What a dataset's log holds past a position: the lag of a cursor standing there.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Events stored after the position, repeats included.
    pub events: u64,
    /// When the oldest of them was received (epoch seconds); `None` when there is none.
    pub oldest_received_at: Option<f64>,
}

/// An event a destination refused for a reason that will not go away by retrying (a 4xx such
/// as `InvalidInputException`), as [`SinkState::settle`] records it: the event itself stays in
/// the log at `position`, so a dead letter is only where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub position: i64,
    pub event_id: String,
    pub reason: String,
}

/// A dead letter: an event a sink could not deliver, kept until it is replayed successfully.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Names the dead letter in `replay`; never reused.
    pub id: i64,
    pub sink: String,
    pub dataset_id: i64,
    /// The event's position in the dataset's log.
    pub position: i64,
    pub event_id: String,
    /// The destination's last answer (error type and message).
    pub reason: String,
    /// Deliveries tried: 1 when it was dead-lettered, one more per failed replay.
    pub attempts: u64,
    /// When it was dead-lettered and when last tried (epoch seconds).
    pub created: f64,
    pub updated: f64,
}

/// The durable state of sinks, kept by every engine.
#[async_trait]
pub trait SinkState: Send + Sync + 'static {
    /// The cursor of `sink` in a dataset ([`Cursor::start`] if it never moved).
    async fn cursor(&self, sink: &str, dataset_id: i64) -> Result<Cursor, StoreError>;

    /// Every stored cursor of `sink`, by dataset id.
    async fn cursors(&self, sink: &str) -> Result<Vec<Cursor>, StoreError>;

    /// Moves the cursor from `from` to `to` after the destination confirmed `delivered` events
    /// in between, and clears its last error. Only forward (`to > from`, else `Invalid`) and
    /// only from where it stands: `Conflict` when the stored position is not `from` (another
    /// node moved it), so a cursor never moves back and two advancers never both win.
    /// It is [`SinkState::settle`] with nothing retried and nothing refused, in every engine.
    async fn advance(
        &self,
        sink: &str,
        dataset_id: i64,
        from: i64,
        to: i64,
        delivered: u64,
    ) -> Result<Cursor, StoreError> {
        self.settle(sink, dataset_id, from, to, delivered, 0, &[]).await
    }

    /// [`SinkState::advance`] for a page part of which the destination refused for good: in one
    /// transaction the cursor moves from `from` to `to` (`delivered` events confirmed, `retried`
    /// calls tried again on the way, both added to the counters) and each of `refused` becomes
    /// a dead letter, so an event is never both behind the cursor and lost. The same
    /// `Conflict`/`Invalid` rules as `advance`; on `Conflict` no dead letter is written.
    #[allow(clippy::too_many_arguments)] // The cursor's compare-and-set and what moved it, in one call.
    async fn settle(
        &self,
        sink: &str,
        dataset_id: i64,
        from: i64,
        to: i64,
        delivered: u64,
        retried: u64,
        refused: &[Refused],
    ) -> Result<Cursor, StoreError>;

    /// The dead letters of `sink`, oldest first.
    async fn dead_letters(&self, sink: &str) -> Result<Vec<DeadLetter>, StoreError>;

    /// The outcome of replaying dead letter `id` of `sink`: `None` (delivered) removes it;
    /// `Some(reason)` (refused again) keeps it with the new reason and one more attempt.
    /// `NotFound` when there is no such dead letter.
    async fn dead_letter_replayed(&self, sink: &str, id: i64, refused: Option<&str>) -> Result<(), StoreError>;

    /// Records a failed delivery: `retried` grows and `error` becomes the last error. The
    /// position does not move.
    async fn sink_failed(&self, sink: &str, dataset_id: i64, error: &str) -> Result<(), StoreError>;

    /// The position of the dataset's newest stored event, 0 when it has none. Cheap (no scan of
    /// the log, after the first call per dataset on SQLite), so an idle sink asks this instead
    /// of reading: on SQLite a read walks every dataset's events after the cursor.
    async fn last_position(&self, dataset_id: i64) -> Result<i64, StoreError>;

    /// What the dataset's log holds after `position` (a cursor's lag).
    async fn backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError>;

    /// [`SinkState::last_position`] of a keyed dataset (items, users, actions): the newest position a record's
    /// write took, 0 when it has none. An index lookup in every engine.
    async fn last_record_position(&self, dataset_id: i64) -> Result<i64, StoreError>;

    /// [`SinkState::backlog`] of a keyed dataset: the records whose latest write is after `position`
    /// (`Backlog::events` counts them).
    async fn record_backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError>;

    /// Takes or renews the lease on `sink` for `node` for `ttl`: true when `node` holds it now
    /// (it was free, expired, or already this node's). On a shared store exactly one node holds
    /// a sink's lease at any time, by the store's one clock.
    async fn lease_sink(&self, sink: &str, node: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives the lease up (a stopping node), so another node takes the sink at once.
    async fn release_sink(&self, sink: &str, node: &str) -> Result<(), StoreError>;

    /// A counter that grows after every commit of appended events made by this process, so a
    /// sink wakes as soon as there is something new; other nodes' commits are found by polling.
    fn appended(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The `Conflict` of an [`SinkState::advance`] that lost to another advancer.
pub fn moved(sink: &str, dataset_id: i64, expected: i64, found: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the cursor of sink {sink} in dataset {dataset_id} is at {found}, not {expected}: another node moved it"
    ))
}

/// The `Invalid` of an [`SinkState::advance`] that would not move forward.
pub fn backwards(sink: &str, dataset_id: i64, from: i64, to: i64) -> StoreError {
    StoreError::Invalid(format!("the cursor of sink {sink} in dataset {dataset_id} cannot move from {from} to {to}"))
}

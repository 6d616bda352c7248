//! The data side of the boundary: appending recorded events durably and reading a dataset's
//! log back in order; writing keyed records (items, users, actions) latest-wins and reading
//! them back one per ID.

use async_trait::async_trait;
use interlog_model::{ActionInteraction, FlagCounts, Interaction, Record};

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
    /// Requests waiting in the write queue now (of [`WriterOptions::queue_requests`]).
    pub queue_depth: u64,
}

/// What one group commit of appended entries was, for whoever watches the writer (the server's metrics). Both
/// engines report every commit of a request batch, failed ones included; catalog writes and purges are not in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitReport {
    /// Requests in the commit.
    pub requests: usize,
    /// Events and records those requests carried (repeats dropped at the door included).
    pub entries: usize,
    /// From taking the batch to the commit's return (durable, or failed).
    pub duration: std::time::Duration,
    /// False when the commit failed and none of its requests was acknowledged.
    pub ok: bool,
}

/// Watches the writer's commits. Called on the writer (SQLite's thread, PostgreSQL's task) after each commit,
/// before its requests are answered, so it must be cheap and never block: count, and return.
pub trait ObserveCommits: Send + Sync + 'static {
    fn committed(&self, report: &CommitReport);
}

/// The writer's observer, none by default. A newtype so [`WriterOptions`] stays `Debug` and `Clone`.
#[derive(Clone, Default)]
pub struct CommitObserver(Option<std::sync::Arc<dyn ObserveCommits>>);

impl CommitObserver {
    pub fn new(observer: std::sync::Arc<dyn ObserveCommits>) -> Self {
        CommitObserver(Some(observer))
    }

    /// Reports one commit to the observer, if any.
    pub fn committed(&self, report: CommitReport) {
        if let Some(o) = &self.0 {
            o.committed(&report);
        }
    }
}

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "CommitObserver(set)" } else { "CommitObserver(none)" })
    }
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
    /// Stored by a dataset import job (BULK data), not by PutEvents / PutActionInteractions (PUT data).
    pub bulk: bool,
}

/// One item, user or action as read back: the latest write of its ID.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The position the write that holds took in the dataset's log sequence: every upsert of an ID gives its row
    /// a new, larger one (never reused), so "records changed after a cursor" is a range of positions
    /// ([`EventStore::read_changed_records`]); a version replaced before anyone read it is not kept.
    pub position: i64,
    /// When the server received the write that holds, in epoch seconds.
    pub received_at: f64,
    pub record: Record,
    /// The write that holds came from a dataset import job (BULK data), not from PutItems / PutUsers / PutActions.
    pub bulk: bool,
}

/// What one unit of the writer's queue carries: a request's events or its keyed records. Both
/// engines group-commit either kind in the same transactions, in arrival order.
#[derive(Debug, Clone)]
pub enum Entries {
    /// Appended to the dataset's log (PutEvents, and PutActionInteractions through [`log_entry`]).
    Events(Vec<Interaction>),
    /// Upserted by ID, the later write replacing the earlier (PutItems, PutUsers, PutActions).
    Records(Vec<Record>),
}

impl Entries {
    pub fn len(&self) -> usize {
        match self {
            Entries::Events(e) => e.len(),
            Entries::Records(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The log row of an action interaction. An action interaction is an event like PutEvents' (the
/// same dedup by eventId, the same retry window, the same durable group commit), so it is stored
/// in the same log: the action fills the item column and `timestamp` the sent-at column; the two
/// members it lacks stay empty. [`action_interaction`] is the inverse.
pub fn log_entry(a: ActionInteraction) -> Interaction {
    Interaction {
        event_id: a.event_id,
        session_id: a.session_id,
        user_id: a.user_id,
        item_id: Some(a.action_id),
        event_type: a.event_type,
        event_value: None,
        sent_at: a.timestamp,
        properties: a.properties,
        recommendation_id: a.recommendation_id,
        impression: a.impression,
        event_attribution_source: None,
        flags: a.flags,
    }
}

/// The action interaction a log row of an Action_Interactions dataset holds.
pub fn action_interaction(i: &Interaction) -> ActionInteraction {
    ActionInteraction {
        event_id: i.event_id.clone(),
        action_id: i.item_id.clone().unwrap_or_default(),
        user_id: i.user_id.clone(),
        session_id: i.session_id.clone(),
        timestamp: i.sent_at,
        event_type: i.event_type.clone(),
        recommendation_id: i.recommendation_id.clone(),
        impression: i.impression.clone(),
        properties: i.properties.clone(),
        flags: i.flags.clone(),
    }
}

/// Which of a dataset's imported (BULK) rows [`EventStore::remove_bulk`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRemoval {
    /// Every row import job `job` stored: what a failed job leaves behind.
    Job(i64),
    /// Every imported row of any other job: what a successful FULL import of `job` replaces. Rows of the Put*
    /// calls are never touched ("Data you imported individually is not replaced", the model's `importMode`).
    AllBut(i64),
}

/// Rows an import job hands the writer at once: small enough that a live append queued behind a chunk waits a
/// few milliseconds at most (docs/storage.md), large enough to amortise a commit.
pub const IMPORT_CHUNK_ROWS: usize = 2_000;

/// What a data deletion job removes: every log row (events, action interactions) of `users` in
/// the datasets `logs`, and the records whose ID is one of `users` in the keyed datasets
/// `records` (a Users dataset). Rows without a user ID (anonymous events) are not anyone's.
#[derive(Debug, Clone, Default)]
pub struct UserDeletion {
    pub logs: Vec<i64>,
    pub records: Vec<i64>,
    /// The user IDs, each once.
    pub users: std::sync::Arc<std::collections::HashSet<String>>,
}

/// What [`EventStore::delete_users`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsersDeleted {
    /// Log rows: events and action interactions.
    pub events: u64,
    /// Keyed records (user records).
    pub records: u64,
}

impl UsersDeleted {
    /// Everything removed, the `numDeleted` of a data deletion job.
    pub fn total(&self) -> u64 {
        self.events + self.records
    }
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
    /// Told of every commit of appended entries.
    pub observer: CommitObserver,
    /// Whether the background indexer keeps the history index ([`crate::history`]); without it
    /// a history query scans the dataset's whole log (complete, slow). The benchmark compares both.
    pub history_index: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_requests: 4096,
            max_batch_events: 10_000,
            window_events: 1 << 18,
            observer: CommitObserver::default(),
            history_index: true,
        }
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

    /// Appends one PutActionInteractions request's interactions to an Action_Interactions
    /// dataset's log: exactly [`EventStore::append`] of their [`log_entry`] rows.
    async fn append_action_interactions(
        &self,
        dataset_id: i64,
        interactions: Vec<ActionInteraction>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append(dataset_id, interactions.into_iter().map(log_entry).collect()).await
    }

    /// Writes the records of one request to a keyed dataset, all or nothing, through the same
    /// group-commit writer as [`EventStore::append`], and resolves once they are durable. A
    /// record replaces the stored one of its ID: the latest write wins, in the order the writes
    /// commit (within a request, request order). [`AppendOutcome::stored`] counts the records.
    async fn put_records(&self, dataset_id: i64, records: Vec<Record>) -> Result<AppendOutcome, StoreError>;

    /// Stores one chunk of import job `job`'s rows in a dataset, all or nothing, marked as the job's BULK data:
    /// [`Entries::Events`] appended to the log (not through the retry window, which stays for live clients'
    /// retries; the reader's first-copy-wins removes repeats exactly), [`Entries::Records`] upserted by ID as
    /// [`EventStore::put_records`] does. Through the same writer as the Put* calls, so on SQLite a chunk is one
    /// more unit of the one writer thread. At most [`IMPORT_CHUNK_ROWS`] per call.
    async fn import(&self, dataset_id: i64, job: i64, entries: Entries) -> Result<AppendOutcome, StoreError>;

    /// Removes up to `limit` of a dataset's imported rows that `what` names, in one short durable transaction
    /// through the writer; returns how many it removed (0: none is left). Callers loop, so a large removal never
    /// holds the writer for long.
    async fn remove_bulk(&self, dataset_id: i64, what: BulkRemoval, limit: usize) -> Result<usize, StoreError>;

    /// Up to `limit` records of a keyed dataset whose ID sorts after `after` (bytewise, UTF-8),
    /// in ID order: each ID once, with its latest write.
    async fn read_records(
        &self,
        dataset_id: i64,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Up to `limit` records of a keyed dataset whose latest write took a position `> after`, in position order:
    /// what a sink delivers from its cursor. A record written again since moves past the cursor with its new
    /// position (its earlier versions are gone: latest wins); a removed record (a data deletion job, a FULL
    /// import replacing bulk rows, a failed import's rows) is simply absent.
    async fn read_changed_records(
        &self,
        dataset_id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Up to `limit` events of a dataset with `seq > after`, in `seq` order, repeats included.
    /// Each call is a short read: a slow consumer never pins a snapshot between pages.
    async fn read(&self, dataset_id: i64, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The page [`EventStore::read`] answers, as one buffer of text with offsets and only the text
    /// columns of `page` filled, stopping at the position `until`: up to `limit` events with
    /// `after < seq <= until`, in `seq` order (`i64::MAX`: no bound). What an export reads, two
    /// disjoint ranges of positions at once. `page` is emptied and refilled, its buffers kept (an
    /// export recycles a few pages). Engines with a cheaper way to fill it than building each
    /// [`StoredEvent`], or with a range query, override this.
    async fn read_page(
        &self,
        dataset_id: i64,
        after: i64,
        until: i64,
        limit: usize,
        mut page: crate::page::EventPage,
    ) -> Result<crate::page::EventPage, StoreError> {
        let mut events = self.read(dataset_id, after, limit).await?;
        // In `seq` order: the rows past `until` are a tail, and what is left is the first `limit`
        // of the range (or all of it).
        events.truncate(events.partition_point(|e| e.seq <= until));
        page.clear();
        page.fill_from(&events);
        Ok(page)
    }

    /// Up to `limit` events of one user or session of a dataset, newest first (by position),
    /// repeats included: what the index holds up to its cursor plus a scan of the log after it,
    /// in one snapshot, so the answer is complete whatever the indexer's lag ([`crate::history`]).
    async fn history(&self, dataset_id: i64, who: crate::Who, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Removes everything of some users ([`UserDeletion`]) durably, in chunks that each hold
    /// appends up for a few milliseconds at most, and resolves once the last chunk committed:
    /// then no log row of those users is stored in `logs` (the scan follows the log to its newest
    /// position, so an event appended while it runs goes too), nor any of their records. The
    /// history index loses their rows with them, and a sink's dead letter of a removed event
    /// goes too (there is nothing left to replay). Appended again afterwards, a user's events
    /// are stored as new ones: the retry window confirms a repeat against the stored row.
    async fn delete_users(&self, deletion: UserDeletion) -> Result<UsersDeleted, StoreError>;

    /// Counters of the write path.
    fn stats(&self) -> StoreStats;

    /// Bytes the store takes on disk now: SQLite's database and WAL files, PostgreSQL's tables and indexes of the
    /// store's schema (not the whole database, which other applications may share).
    async fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// Whether appends can succeed now.
    fn health(&self) -> Health;
}

//! The PostgreSQL engine of interlog's store: any number of interlog nodes on one database,
//! each a [`PostgresStore`] implementing [`interlog_store::Store`].
//!
//! Everything lives in the database (events, the whole catalog with tags and version, access
//! keys, purge records), so nodes keep no state that another node needs: what is per node is the
//! group-commit writer, its retry window, the catalog cache and the connections. How the
//! guarantees of `interlog_store`'s README are kept on a shared database:
//! - durable before `append` resolves: one writer (on a thread of its own) batches every waiting request into one
//!   transaction (binary COPY) and answers only after `COMMIT` returned, with
//!   `synchronous_commit=on` forced on every session (`writer.rs`);
//! - positions in commit order across nodes: taken under the dataset's `event_logs` row lock
//!   inside the committing transaction (`writer.rs`);
//! - catalog rules atomic and race-free across nodes (row locks, advisory locks, unique
//!   indexes), versions announced with NOTIFY and polled behind it (`catalog.rs`, `background.rs`);
//! - versioned migrations under an advisory lock (`migrate.rs`);
//! - bounded waits everywhere (connect, pool, statement and client-side deadlines), so a
//!   database that is down turns into `Unavailable` quickly, and the pool reconnects by itself.
//!
//! The database and schema come from the URL: `postgres://user@host:5432/db` uses the
//! database's `search_path` (normally `public`); `?options=-csearch_path%3Dinterlog` puts the
//! store in the existing schema `interlog`, which lets several stores share one database.

mod background;
mod catalog;
mod db;
mod deletion;
mod error;
mod history;
mod migrate;
mod sinks;
mod writer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use interlog_model::{Interaction, Record};
use interlog_store::window::Window;
use interlog_store::{
    AppendOutcome, Entries, EventStore, Health, Store, StoreError, StoreStats, StoredEvent, StoredRecord, WriterOptions,
};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

pub use db::{InsertMode, PostgresOptions};

use crate::error::Fail;

/// The NOTIFY channel of catalog writes; the payload is `"<schema> <version>"`.
pub(crate) const CHANNEL: &str = "interlog_catalog";

/// A failed commit keeps `health()` unavailable this long unless a commit succeeds first; after
/// that the probe alone decides (so health turns `Writable` again without traffic).
const WRITER_FAILURE_HOLD: Duration = Duration::from_secs(5);
/// Commit durations kept for [`PostgresStore::commit_stats`].
const COMMIT_SAMPLES: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct Counters {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    events_stored: AtomicU64,
    duplicates_dropped: AtomicU64,
    throttled: AtomicU64,
    /// The newest commit durations, in microseconds.
    durations: Mutex<VecDeque<u32>>,
}

impl Counters {
    pub(crate) fn commit(&self, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        let mut d = self.durations.lock().expect("commit durations poisoned");
        if d.len() == COMMIT_SAMPLES {
            d.pop_front();
        }
        d.push_back(took.as_micros().min(u32::MAX as u128) as u32);
    }

    pub(crate) fn stored(&self, stored: u64, duplicates: u64) {
        self.events_stored.fetch_add(stored, Ordering::Relaxed);
        self.duplicates_dropped.fetch_add(duplicates, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_commits.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the store handle and its tasks share.
pub(crate) struct Shared {
    pub(crate) db: db::Db,
    /// The schema the store lives in (`current_schema()`).
    pub(crate) schema: String,
    pub(crate) version: watch::Sender<u64>,
    /// Grows after every commit of this node's writer, so sinks wake at once.
    pub(crate) appended: watch::Sender<u64>,
    pub(crate) counters: Counters,
    /// Why the last probe failed, if it did.
    probe: Mutex<Option<String>>,
    /// The last commit failure that made the database unavailable, until a commit succeeds.
    writer_error: Mutex<Option<(Instant, String)>>,
    pub(crate) purge: Notify,
}

impl Shared {
    /// Records a catalog version this node learnt of; the watch moves only forward.
    pub(crate) fn saw_version(&self, v: u64) {
        self.version.send_if_modified(|current| {
            let newer = v > *current;
            if newer {
                *current = v;
            }
            newer
        });
    }

    pub(crate) fn set_probe(&self, failure: Option<String>) {
        *self.probe.lock().expect("health poisoned") = failure;
    }

    pub(crate) fn writer_ok(&self) {
        *self.writer_error.lock().expect("health poisoned") = None;
    }

    pub(crate) fn writer_failed(&self, reason: String) {
        *self.writer_error.lock().expect("health poisoned") = Some((Instant::now(), reason));
    }

    fn health(&self) -> Health {
        if let Some(reason) = self.probe.lock().expect("health poisoned").clone() {
            return Health::Unavailable(reason);
        }
        match &*self.writer_error.lock().expect("health poisoned") {
            Some((at, reason)) if at.elapsed() < WRITER_FAILURE_HOLD => Health::Unavailable(reason.clone()),
            _ => Health::Writable,
        }
    }
}

/// Commit sizes and durations of this node's writer, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitStats {
    pub commits: u64,
    /// Events stored per commit, on average.
    pub mean_events: f64,
    /// Over the newest commits (up to 65,536): from taking a connection to `COMMIT` returning.
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// A store on PostgreSQL; open one per node with the same URL.
pub struct PostgresStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<writer::Job>,
    closing: AtomicBool,
    shutdown: watch::Sender<bool>,
    /// Resolves when the writer's thread has committed what was queued and stopped.
    writer: Mutex<Option<oneshot::Receiver<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl PostgresStore {
    /// Opens the store at `url` (see the module docs for choosing a schema): migrates the
    /// layout, warms the retry window and starts the writer and background tasks. Fails with
    /// `Unavailable` if the database cannot be reached, `Foreign` if the schema holds something
    /// else or a newer layout.
    pub async fn open(url: &str, options: WriterOptions) -> Result<Arc<PostgresStore>, StoreError> {
        PostgresStore::open_with(url, options, PostgresOptions::default()).await
    }

    /// [`PostgresStore::open`] with connection tuning.
    pub async fn open_with(
        url: &str,
        options: WriterOptions,
        pg: PostgresOptions,
    ) -> Result<Arc<PostgresStore>, StoreError> {
        let location = db::redact(url);
        let db = db::Db::new(url, &pg)?;
        {
            // Migrations may wait for another node's and may run long: no statement timeout on
            // this connection, which is closed afterwards rather than pooled.
            let mut conn = db.conn().await?;
            conn.batch_execute("SET statement_timeout = '5min'; SET lock_timeout = '5min'")
                .await
                .map_err(|e| Fail::from(e).into_store())?;
            migrate::migrate(&mut conn, &location).await?;
        }
        // Warming reads up to a window's worth of events per dataset: no overall deadline
        // (the server's statement timeout still bounds each query).
        let (schema, version, window) = {
            let mut conn = db.conn().await?;
            let warmed = async {
                let schema: String = conn.query_one("SELECT current_schema()", &[]).await?.get(0);
                let version = catalog::read_version(&conn).await?;
                let mut window = Window::new(options.window_events);
                writer::warm(&conn, &mut window, options.window_events).await?;
                Ok::<_, Fail>((schema, version, window))
            }
            .await
            .map_err(Fail::into_store)?;
            conn.keep();
            warmed
        };
        let shared = Arc::new(Shared {
            db,
            schema,
            version: watch::Sender::new(version),
            appended: watch::Sender::new(0),
            counters: Counters::default(),
            probe: Mutex::new(None),
            writer_error: Mutex::new(None),
            purge: Notify::new(),
        });
        let (shutdown, stop) = watch::channel(false);
        let (jobs, rx) = mpsc::channel(options.queue_requests.max(1));
        let history_index = options.history_index;
        let writer = writer::Writer { shared: shared.clone(), window, options, insert: pg.insert };
        let writer = spawn_writer(writer, rx, stop.clone())?;
        let mut tasks = vec![
            tokio::spawn(background::listen(shared.clone(), stop.clone())),
            tokio::spawn(background::monitor(shared.clone(), stop.clone())),
            tokio::spawn(background::purge(shared.clone(), stop.clone())),
        ];
        if history_index {
            tasks.push(tokio::spawn(history::indexer(shared.clone(), stop)));
        }
        tracing::info!(location = %location, schema = %shared.schema, "PostgreSQL store open");
        Ok(Arc::new(PostgresStore {
            shared,
            jobs,
            closing: AtomicBool::new(false),
            shutdown,
            writer: Mutex::new(Some(writer)),
            tasks,
        }))
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// Commit sizes and durations of this node's writer.
    pub fn commit_stats(&self) -> CommitStats {
        let c = &self.shared.counters;
        let commits = c.commits.load(Ordering::Relaxed);
        let mut d: Vec<u32> = c.durations.lock().expect("commit durations poisoned").iter().copied().collect();
        d.sort_unstable();
        let at = |p: f64| {
            d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1)))
                .map_or(Duration::ZERO, |us| Duration::from_micros(u64::from(*us)))
        };
        CommitStats {
            commits,
            mean_events: if commits == 0 {
                0.0
            } else {
                c.events_stored.load(Ordering::Relaxed) as f64 / commits as f64
            },
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl PostgresStore {
    /// Queues one request's entries for this node's writer and waits for its commit.
    async fn enqueue(
        &self,
        dataset_id: i64,
        entries: Entries,
        has_nul: bool,
        import_job: Option<i64>,
    ) -> Result<AppendOutcome, StoreError> {
        if entries.is_empty() {
            return Ok(AppendOutcome::default());
        }
        // PostgreSQL text cannot hold U+0000. `properties` is the client's JSON text, where it
        // can only appear escaped; refusing the odd request here keeps it from failing the
        // whole group commit it would land in.
        if has_nul {
            return Err(StoreError::Invalid("properties must not contain a raw NUL character".into()));
        }
        if self.closing.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("the store is closing".into()));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(writer::Job { dataset_id, entries, import_job, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.shared.counters.throttled.fetch_add(1, Ordering::Relaxed);
                StoreError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable("the writer has stopped".into()),
        })?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Background tasks end; the writer ends when its queue closes with this handle.
        let _ = self.shutdown.send(true);
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, dataset_id: i64, events: Vec<Interaction>) -> Result<AppendOutcome, StoreError> {
        let nul = events.iter().any(|e| e.properties.as_deref().is_some_and(|p| p.contains('\0')));
        self.enqueue(dataset_id, Entries::Events(events), nul, None).await
    }

    async fn put_records(&self, dataset_id: i64, records: Vec<Record>) -> Result<AppendOutcome, StoreError> {
        let nul = records.iter().any(|r| r.properties.as_deref().is_some_and(|p| p.contains('\0')));
        self.enqueue(dataset_id, Entries::Records(records), nul, None).await
    }

    async fn import(&self, dataset_id: i64, job: i64, entries: Entries) -> Result<AppendOutcome, StoreError> {
        let nul = match &entries {
            Entries::Events(events) => events.iter().any(|e| e.properties.as_deref().is_some_and(|p| p.contains('\0'))),
            Entries::Records(records) => {
                records.iter().any(|r| r.properties.as_deref().is_some_and(|p| p.contains('\0')))
            }
        };
        // Through this node's group-commit writer, binary COPY as every append.
        self.enqueue(dataset_id, entries, nul, Some(job)).await
    }

    async fn remove_bulk(
        &self,
        dataset_id: i64,
        what: interlog_store::BulkRemoval,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.shared.db.run(async |c| writer::remove_bulk(c, dataset_id, what, limit).await).await
    }

    async fn read_records(
        &self,
        dataset_id: i64,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared.db.run(async |c| writer::read_records(c, dataset_id, after.as_deref(), limit).await).await
    }

    async fn read_changed_records(
        &self,
        dataset_id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared.db.run(async |c| writer::read_changed_records(c, dataset_id, after, limit).await).await
    }

    async fn read(&self, dataset_id: i64, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared.db.run(async |c| writer::read_range(c, dataset_id, after, i64::MAX, limit).await).await
    }

    async fn read_page(
        &self,
        dataset_id: i64,
        after: i64,
        until: i64,
        limit: usize,
        mut page: interlog_store::page::EventPage,
    ) -> Result<interlog_store::page::EventPage, StoreError> {
        page.clear();
        if limit == 0 || until <= after {
            return Ok(page);
        }
        let events = self.shared.db.run(async |c| writer::read_range(c, dataset_id, after, until, limit).await).await?;
        page.fill_from(&events);
        Ok(page)
    }

    async fn history(
        &self,
        dataset_id: i64,
        who: interlog_store::Who,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.shared.db.run(async |c| history::query(c, dataset_id, &who, limit).await).await
    }

    async fn delete_users(
        &self,
        deletion: interlog_store::UserDeletion,
    ) -> Result<interlog_store::UsersDeleted, StoreError> {
        deletion::delete_users(&self.shared, deletion).await
    }

    fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            events_stored: c.events_stored.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            queue_depth: (self.jobs.max_capacity() - self.jobs.capacity()) as u64,
        }
    }

    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        // The store's own schema: the database may hold other applications' data.
        self.shared
            .db
            .run(async |c| {
                let row = c
                    .query_one(
                        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
                        &[],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0).max(0) as u64)
            })
            .await
    }

    fn health(&self) -> Health {
        self.shared.health()
    }
}

/// Runs the group-commit writer on a thread of its own, with a one-thread runtime that also drives
/// its connection: every round trip of a commit (BEGIN, positions, COPY, COMMIT) is picked up
/// as soon as PostgreSQL answers, instead of waiting its turn behind the node's request tasks on
/// the shared workers, which lengthened each commit cycle and so every request's wait
/// (docs/benchmarks.md, "The PostgreSQL writer on a thread of its own").
fn spawn_writer(
    writer: writer::Writer,
    rx: mpsc::Receiver<writer::Job>,
    stop: watch::Receiver<bool>,
) -> Result<oneshot::Receiver<()>, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::internal(format!("cannot start the writer's runtime: {e}")))?;
    let (done, stopped) = oneshot::channel();
    std::thread::Builder::new()
        .name("interlog-pg-writer".into())
        .spawn(move || {
            runtime.block_on(writer.run(rx, stop));
            let _ = done.send(());
        })
        .map_err(|e| StoreError::internal(format!("cannot start the writer's thread: {e}")))?;
    Ok(stopped)
}

#[async_trait]
impl Store for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    /// Any number of nodes share the database.
    fn shared(&self) -> bool {
        true
    }

    async fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        let writer = self.writer.lock().expect("writer handle poisoned").take();
        if let Some(writer) = writer {
            // It commits what is queued, then stops.
            let _ = writer.await;
        }
        for t in &self.tasks {
            t.abort();
        }
        self.shared.db.close();
    }
}

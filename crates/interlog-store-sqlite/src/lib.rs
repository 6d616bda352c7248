//! The embedded store engine: SQLite in WAL mode in one data dir, behind one supervised writer
//! thread. It implements [`interlog_store::Store`] and passes the conformance suite.
//!
//! - **One writer.** Appends (group-committed, `synchronous=FULL`: durable before they
//!   resolve), every catalog write, the chunked purge of deleted datasets' events and the disk
//!   probes run on one thread over one connection (`writer.rs`). Catalog writes have their own
//!   queue, read first, so a full append queue never blocks the control plane.
//! - **Reads never write.** Catalog reads and event reads run on read-only connections on
//!   tokio's blocking threads (`reader.rs`); none takes the write lock.
//! - **Faults are answered, not fatal.** A full disk, an I/O error or a panic fails the batch
//!   that met it with [`StoreError::Unavailable`], health turns `Unavailable` and comes back by
//!   itself; only a writer that cannot reopen its file sets [`SqliteStore::fatal`].
//!
//! Layout and migrations are in [`layout`], the catalog's SQL in [`catalog`].

pub mod catalog;
mod deletion;
mod error;
mod history;
pub mod layout;
mod reader;
mod sinks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use interlog_model::{Interaction, Record};
use interlog_store::catalog::{
    Catalog, DeleteRules, InsertRules, KeyRecord, Kind, ListQuery, Meta, NewRow, Page, Row, RowUpdate,
};
use interlog_store::{
    AppendOutcome, Backlog, BulkRemoval, Cursor, Entries, EventStore, Health, SinkState, Store, StoreError, StoreStats,
    StoredEvent, StoredRecord, WriterOptions,
};
use tokio::sync::{mpsc, oneshot, watch};

use catalog::{Write, Written};
use reader::ReadPool;
use writer::{AppendJob, Control, Shared, Writer};

pub use history::{who_key, BUCKET_SHIFT as HISTORY_BUCKET_SHIFT};
pub use writer::MAX_REOPEN_ATTEMPTS;

/// The answer of every write to a store opened with [`SqliteStore::open_read_only`].
pub const READ_ONLY: &str = "read-only";

/// The SQLite engine: one data dir, one process writing it.
pub struct SqliteStore {
    db: PathBuf,
    readers: Arc<ReadPool>,
    /// `None` for a read-only store.
    writer: Option<WriterHandle>,
    shared: Arc<Shared>,
    /// Held while the store is open so a second server cannot write the same data dir.
    lock: Mutex<Option<std::fs::File>>,
    /// A read-only store's version follower ends (closing its connection) as soon as this goes.
    follower: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

struct WriterHandle {
    appends: mpsc::Sender<AppendJob>,
    control: mpsc::Sender<Control>,
    closing: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SqliteStore {
    /// Opens (creating or migrating if needed) the store in `data_dir` and starts its writer.
    /// Blocking: call it from start-up code or `spawn_blocking`, not on an async worker.
    ///
    /// `StoreError::Foreign` (naming the file) when another server holds the data dir, the
    /// file is not an interlog store, or its layout is newer than this build's.
    pub fn open(data_dir: &Path, options: WriterOptions) -> Result<Arc<SqliteStore>, StoreError> {
        layout::prepare_files(data_dir)?;
        let lock_path = data_dir.join(layout::LOCK_FILE);
        let lock = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock_path)?
        };
        if lock.try_lock().is_err() {
            return Err(layout::foreign(&lock_path, "another interlog server is using this data dir"));
        }
        let db = layout::db_path(data_dir);
        let mut conn = layout::open_writer(&db)?;
        layout::migrate(&mut conn, &db)?;
        let version = catalog::version(&conn)?;
        let shared = Shared::new(version);
        let writer::Started { appends, control, thread } =
            Writer::start(db.clone(), conn, options, shared.clone(), lock.try_clone()?)?;
        // The WAL and shared-memory files exist now; SQLite gave them the database's 0600.
        layout::prepare_files(data_dir)?;
        Ok(Arc::new(SqliteStore {
            readers: ReadPool::new(db.clone()),
            db,
            writer: Some(WriterHandle {
                appends,
                control,
                closing: AtomicBool::new(false),
                thread: Mutex::new(Some(thread)),
            }),
            shared,
            lock: Mutex::new(Some(lock)),
            follower: Mutex::new(None),
        }))
    }

    /// Opens a store for reading only, beside a running server or not (`interlog export
    /// --data-dir`): reads work, every write answers `Unavailable("read-only")`, and `health`
    /// says so. Takes no lock and creates nothing. Blocking, like [`SqliteStore::open`].
    pub fn open_read_only(data_dir: &Path) -> Result<Arc<SqliteStore>, StoreError> {
        let db = layout::db_path(data_dir);
        if !db.is_file() {
            return Err(layout::foreign(&db, "no interlog store here (is --data-dir right?)"));
        }
        let conn = layout::open_reader(&db)?;
        match layout::layout_of(&conn, &db)? {
            Some(layout::LAYOUT) => {}
            None => return Err(layout::foreign(&db, "an empty file, not an interlog store")),
            Some(old) => {
                return Err(layout::foreign(
                    &db,
                    format!(
                        "layout {old} is older than this build's {}; start `interlog serve` on this data dir once \
                         to upgrade it",
                        layout::LAYOUT
                    ),
                ))
            }
        }
        let shared = Shared::new(catalog::version(&conn)?);
        let follower = follow_version(conn, Arc::downgrade(&shared));
        Ok(Arc::new(SqliteStore {
            readers: ReadPool::new(db.clone()),
            db,
            writer: None,
            shared,
            lock: Mutex::new(None),
            follower: Mutex::new(Some(follower)),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db
    }

    /// SQLite's consistency check of the whole file: `"ok"` when sound.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.readers
            .run(|conn| {
                let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(error::classify)?;
                let lines = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(error::classify)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(error::classify)?;
                Ok(lines.join("\n"))
            })
            .await
    }

    /// Deleted datasets whose events are still being removed.
    pub async fn pending_purges(&self) -> Result<usize, StoreError> {
        self.readers.run(|conn| Ok(catalog::purges(conn)?.len())).await
    }

    /// `Some(why)` once the writer cannot be brought back (its file cannot be reopened): the
    /// store will never write again, and the server should exit non-zero saying why, so that
    /// a supervisor restarts it.
    pub fn fatal(&self) -> Option<String> {
        self.shared.fatal.borrow().clone()
    }

    /// Changes to [`SqliteStore::fatal`], for a task that shuts the server down.
    pub fn watch_fatal(&self) -> watch::Receiver<Option<String>> {
        self.shared.fatal.subscribe()
    }

    /// The hooks that make the writer fail (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    fn writer(&self) -> Result<&WriterHandle, StoreError> {
        let w = self.writer.as_ref().ok_or_else(|| StoreError::Unavailable(READ_ONLY.into()))?;
        if w.closing.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        if let Some(why) = self.fatal() {
            return Err(StoreError::Unavailable(why));
        }
        Ok(w)
    }

    async fn write(&self, w: Write) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer()?
            .control
            .send(Control::Write(w, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }
}

/// Keeps a read-only store's version (and so its `watch`) following the server's writes.
/// It stops, closing its connection at once, when the returned sender is dropped (the store
/// closed or gone), so nothing keeps the files open behind a dropped store.
fn follow_version(conn: rusqlite::Connection, shared: std::sync::Weak<Shared>) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let _ = std::thread::Builder::new().name("interlog-version".into()).spawn(move || loop {
        if stopped.recv_timeout(Duration::from_millis(500)) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            return;
        }
        let Some(shared) = shared.upgrade() else { return };
        if let Ok(v) = catalog::version(&conn) {
            shared.version.send_if_modified(|old| std::mem::replace(old, v) != v);
        }
    });
    stop
}

impl SqliteStore {
    /// Queues one request's entries for the writer and waits for its commit.
    async fn enqueue(
        &self,
        dataset_id: i64,
        entries: Entries,
        import_job: Option<i64>,
    ) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer()?.appends.try_send(AppendJob { dataset_id, entries, import_job, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.shared.counters.throttled.fetch_add(1, Ordering::Relaxed);
                StoreError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable("the writer has stopped".into()),
        })?;
        let (outcome, entries) =
            answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?;
        // Freed here, on this request's task, not on the writer thread.
        drop(entries);
        outcome
    }
}

fn unexpected(w: Written) -> StoreError {
    StoreError::internal(format!("the writer answered with {w:?}"))
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, dataset_id: i64, events: Vec<Interaction>) -> Result<AppendOutcome, StoreError> {
        self.enqueue(dataset_id, Entries::Events(events), None).await
    }

    async fn put_records(&self, dataset_id: i64, records: Vec<Record>) -> Result<AppendOutcome, StoreError> {
        self.enqueue(dataset_id, Entries::Records(records), None).await
    }

    async fn import(&self, dataset_id: i64, job: i64, entries: Entries) -> Result<AppendOutcome, StoreError> {
        self.enqueue(dataset_id, entries, Some(job)).await
    }

    async fn remove_bulk(&self, dataset_id: i64, what: BulkRemoval, limit: usize) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer()?
            .control
            .send(Control::RemoveBulk { dataset_id, what, limit, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    async fn read_records(
        &self,
        dataset_id: i64,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.readers.run(move |conn| reader::records(conn, dataset_id, after.as_deref(), limit)).await
    }

    async fn read_changed_records(
        &self,
        dataset_id: i64,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.readers.run(move |conn| reader::changed_records(conn, dataset_id, after, limit)).await
    }

    async fn read(&self, dataset_id: i64, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.readers.run(move |conn| reader::events(conn, dataset_id, after, limit)).await
    }

    async fn read_page(
        &self,
        dataset_id: i64,
        after: i64,
        until: i64,
        limit: usize,
        page: interlog_store::page::EventPage,
    ) -> Result<interlog_store::page::EventPage, StoreError> {
        self.readers.run(move |conn| reader::event_page(conn, dataset_id, after, until, limit, page)).await
    }

    async fn history(
        &self,
        dataset_id: i64,
        who: interlog_store::Who,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.readers.run(move |conn| history::query(conn, dataset_id, &who, limit)).await
    }

    async fn delete_users(
        &self,
        deletion: interlog_store::UserDeletion,
    ) -> Result<interlog_store::UsersDeleted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer()?
            .control
            .send(Control::DeleteUsers(deletion, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer stopped before the deletion was complete".into()))?
    }

    fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            events_stored: c.events_stored.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            queue_depth: self.writer.as_ref().map_or(0, |w| (w.appends.max_capacity() - w.appends.capacity()) as u64),
        }
    }

    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        // File sizes only, no SQLite call, but still file-system calls: off the async workers.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || layout::size_on_disk(&db))
            .await
            .map_err(|e| StoreError::internal(format!("measuring the store's files: {e}")))?
    }

    fn health(&self) -> Health {
        match &self.writer {
            None => Health::Unavailable(READ_ONLY.into()),
            Some(w) if w.closing.load(Ordering::Acquire) => Health::Unavailable("the store is closed".into()),
            Some(_) => match self.fatal() {
                Some(why) => Health::Failed(why),
                None => self.shared.health.read().unwrap_or_else(|p| p.into_inner()).clone(),
            },
        }
    }
}

#[async_trait]
impl Catalog for SqliteStore {
    async fn insert(&self, row: NewRow, rules: InsertRules) -> Result<Row, StoreError> {
        match self.write(Write::Insert(Box::new((row, rules)))).await? {
            Written::Row(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn get(&self, account: &str, kind: Kind, arn: &str) -> Result<Option<Row>, StoreError> {
        let (account, arn) = (account.to_owned(), arn.to_owned());
        self.readers.run(move |conn| catalog::get(conn, &account, kind, &arn)).await
    }

    async fn list(&self, query: ListQuery) -> Result<Page<Row>, StoreError> {
        self.readers.run(move |conn| catalog::list(conn, &query)).await
    }

    async fn update(&self, account: &str, kind: Kind, arn: &str, update: RowUpdate) -> Result<Row, StoreError> {
        let w = Write::Update { account: account.into(), kind, arn: arn.into(), update };
        match self.write(w).await? {
            Written::Row(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, account: &str, kind: Kind, arn: &str, rules: DeleteRules) -> Result<Vec<Meta>, StoreError> {
        let w = Write::Delete { account: account.into(), kind, arn: arn.into(), rules };
        match self.write(w).await? {
            Written::Deleted(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    async fn tag(&self, account: &str, arn: &str, tags: &[(String, String)], max: usize) -> Result<(), StoreError> {
        let w = Write::Tag { account: account.into(), arn: arn.into(), tags: tags.to_vec(), max };
        match self.write(w).await? {
            Written::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn untag(&self, account: &str, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let w = Write::Untag { account: account.into(), arn: arn.into(), keys: keys.to_vec() };
        match self.write(w).await? {
            Written::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn tags(&self, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        let (account, arn) = (account.to_owned(), arn.to_owned());
        self.readers.run(move |conn| catalog::tags(conn, &account, &arn)).await
    }

    async fn version(&self) -> Result<u64, StoreError> {
        match &self.writer {
            // This process makes every write and sends each new version after its commit.
            Some(_) => Ok(*self.shared.version.borrow()),
            None => self.readers.run(catalog::version).await,
        }
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    async fn root_key(&self, proposed: KeyRecord) -> Result<(KeyRecord, bool), StoreError> {
        match self.write(Write::RootKey(proposed)).await? {
            Written::Key(k, made) => Ok((k, made)),
            other => Err(unexpected(other)),
        }
    }
}

impl SqliteStore {
    async fn sink_write(&self, w: sinks::SinkWrite) -> Result<sinks::SinkWritten, StoreError> {
        match self.write(Write::Sink(w)).await? {
            Written::Sink(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}

#[async_trait]
impl SinkState for SqliteStore {
    async fn cursor(&self, sink: &str, dataset_id: i64) -> Result<Cursor, StoreError> {
        let sink = sink.to_owned();
        self.readers.run(move |conn| sinks::cursor(conn, &sink, dataset_id)).await
    }

    async fn cursors(&self, sink: &str) -> Result<Vec<Cursor>, StoreError> {
        let sink = sink.to_owned();
        self.readers.run(move |conn| sinks::cursors(conn, &sink)).await
    }

    async fn settle(
        &self,
        sink: &str,
        dataset_id: i64,
        from: i64,
        to: i64,
        delivered: u64,
        retried: u64,
        refused: &[interlog_store::Refused],
    ) -> Result<Cursor, StoreError> {
        let w = sinks::SinkWrite::Advance {
            sink: sink.into(),
            dataset_id,
            from,
            to,
            delivered,
            retried,
            refused: refused.to_vec(),
        };
        match self.sink_write(w).await? {
            sinks::SinkWritten::Cursor(c) => Ok(c),
            other => Err(StoreError::internal(format!("the writer answered with {other:?}"))),
        }
    }

    async fn dead_letters(&self, sink: &str) -> Result<Vec<interlog_store::DeadLetter>, StoreError> {
        let sink = sink.to_owned();
        self.readers.run(move |conn| sinks::dead_letters(conn, &sink)).await
    }

    async fn dead_letter_replayed(&self, sink: &str, id: i64, refused: Option<&str>) -> Result<(), StoreError> {
        let w = sinks::SinkWrite::Replayed { sink: sink.into(), id, refused: refused.map(str::to_owned) };
        self.sink_write(w).await.map(|_| ())
    }

    async fn sink_failed(&self, sink: &str, dataset_id: i64, error: &str) -> Result<(), StoreError> {
        let w = sinks::SinkWrite::Failed { sink: sink.into(), dataset_id, error: error.into() };
        self.sink_write(w).await.map(|_| ())
    }

    async fn last_position(&self, dataset_id: i64) -> Result<i64, StoreError> {
        // This process makes every append, so once looked up the answer follows the commits;
        // a read-only store (beside a server) always asks the file.
        if self.writer.is_some() {
            if let Some(seq) = self.shared.newest.lock().unwrap_or_else(|p| p.into_inner()).get(&dataset_id) {
                return Ok(*seq);
            }
        }
        let generation = self.shared.newest_generation.load(Ordering::SeqCst);
        let seq = self.readers.run(move |conn| sinks::newest(conn, dataset_id)).await?;
        if self.writer.is_none() {
            return Ok(seq);
        }
        let mut newest = self.shared.newest.lock().unwrap_or_else(|p| p.into_inner());
        if self.shared.newest_generation.load(Ordering::SeqCst) != generation {
            // Forgotten meanwhile (a fault): what this lookup saw may be older than the file.
            return Ok(seq);
        }
        let known = newest.entry(dataset_id).or_insert(seq);
        *known = (*known).max(seq);
        Ok(*known)
    }

    async fn backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
        self.readers.run(move |conn| sinks::backlog(conn, dataset_id, position)).await
    }

    async fn last_record_position(&self, dataset_id: i64) -> Result<i64, StoreError> {
        self.readers.run(move |conn| sinks::newest_record(conn, dataset_id)).await
    }

    async fn record_backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
        self.readers.run(move |conn| sinks::record_backlog(conn, dataset_id, position)).await
    }

    async fn lease_sink(&self, sink: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let w = sinks::SinkWrite::Lease { sink: sink.into(), node: node.into(), ttl: ttl.as_secs_f64() };
        match self.sink_write(w).await? {
            sinks::SinkWritten::Leased(held) => Ok(held),
            other => Err(StoreError::internal(format!("the writer answered with {other:?}"))),
        }
    }

    async fn release_sink(&self, sink: &str, node: &str) -> Result<(), StoreError> {
        self.sink_write(sinks::SinkWrite::Release { sink: sink.into(), node: node.into() }).await.map(|_| ())
    }

    fn appended(&self) -> watch::Receiver<u64> {
        self.shared.appended.subscribe()
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    /// One process per data dir (the lock file sees to it).
    fn shared(&self) -> bool {
        false
    }

    async fn close(&self) {
        // Readers first: the last connection to close checkpoints the WAL into the database and
        // removes it, and only the writer's read-write connection can do that.
        self.readers.close();
        self.follower.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = &self.writer {
            if !w.closing.swap(true, Ordering::AcqRel) {
                let (done, finished) = oneshot::channel();
                if w.control.send(Control::Close(done)).await.is_ok() {
                    let _ = finished.await;
                }
                let thread = w.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(thread) = thread {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
        }
        // Releasing the flock lets the next server (or the next test) open the data dir.
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Switches that make the writer fail on purpose, for the recovery tests (feature
/// `fault-injection`, never in a release build).
#[cfg(feature = "fault-injection")]
#[derive(Default)]
pub struct Faults {
    io_error: AtomicBool,
    panic: AtomicBool,
    reopen: AtomicBool,
}

#[cfg(feature = "fault-injection")]
impl Faults {
    /// Every writer commit (appends, catalog writes, purges, probes) fails with an I/O error.
    pub fn fail_commits(&self, on: bool) {
        self.io_error.store(on, Ordering::SeqCst);
    }

    /// Every writer commit panics.
    pub fn panic_in_commits(&self, on: bool) {
        self.panic.store(on, Ordering::SeqCst);
    }

    /// Reopening the writer's connection fails.
    pub fn fail_reopens(&self, on: bool) {
        self.reopen.store(on, Ordering::SeqCst);
    }
}

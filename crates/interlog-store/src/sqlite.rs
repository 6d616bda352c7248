//! The embedded engine: SQLite in WAL mode, one writer thread doing group commit.
//!
//! Events go to an append-only rowid table (`seq` = arrival order), so a commit writes a few
//! pages at the end of the table instead of dirtying a random index page per event; that is
//! what makes ~490k durable rows/s possible on this hardware (`docs/storage.md`). Every commit
//! is synced (`synchronous=FULL`) before any request in it is answered.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA;
use interlog_model::Interaction;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::export::ScanStats;
use crate::resources::*;
use crate::window::Window;
use crate::{AppendOutcome, EventStore, StoreError, StoreStats, StoredEvent};

/// Write-path counters, shared by the writer thread and the store handle.
#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    events_stored: AtomicU64,
    duplicates_dropped: AtomicU64,
    throttled: AtomicU64,
}

/// `PRAGMA application_id` of an interlog database ("ILOG"), to refuse foreign SQLite files.
const APPLICATION_ID: i64 = 0x494C_4F47;
/// `PRAGMA user_version`: the layout version this build writes.
const LAYOUT_VERSION: i64 = 1;
const DB_FILE: &str = "interlog.db";
const LOCK_FILE: &str = "interlog.lock";

/// Tuning of the write path.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Requests that may wait for the writer; beyond it appends fail with `Overloaded`.
    pub queue_requests: usize,
    /// Most events one commit takes; more waiting requests go in the next commit.
    pub max_batch_events: usize,
    /// Recent eventIds remembered to drop client retries without storing them.
    pub window_events: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { queue_requests: 4096, max_batch_events: 10_000, window_events: 1 << 18 }
    }
}

struct AppendJob {
    dataset_id: i64,
    events: Vec<Interaction>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The SQLite-backed [`EventStore`].
pub struct SqliteStore {
    path: PathBuf,
    jobs: mpsc::Sender<AppendJob>,
    /// Control-plane connection; writes here are rare and short.
    control: Mutex<Connection>,
    trackers: RwLock<HashMap<String, Arc<TrackerTarget>>>,
    counters: Arc<Counters>,
    /// Held for the life of the store so a second server cannot open the same data dir.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Arc<Self>, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(data_dir.join(LOCK_FILE))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Foreign {
                path: data_dir.to_owned(),
                reason: "another interlog server is using this data dir".into(),
            });
        }
        let path = data_dir.join(DB_FILE);
        let writer = open_connection(&path, false)?;
        init_layout(&writer, &path)?;
        crate::catalog::migrate(&writer)?;
        let interrupted = crate::catalog::fail_interrupted_jobs(&writer, now())?;
        if interrupted > 0 {
            tracing::warn!(
                jobs = interrupted,
                "dataset export jobs interrupted by the last stop were marked CREATE FAILED"
            );
        }
        let control = open_connection(&path, false)?;
        let trackers = load_trackers(&control)?;

        let (jobs, rx) = mpsc::channel(options.queue_requests.max(1));
        let counters = Arc::new(Counters::default());
        let mut w =
            Writer { conn: writer, window: Window::new(options.window_events), options, counters: counters.clone() };
        w.warm_window()?;
        std::thread::Builder::new().name("interlog-writer".into()).spawn(move || w.run(rx))?;

        Ok(Arc::new(SqliteStore {
            path,
            jobs,
            control: Mutex::new(control),
            trackers: RwLock::new(trackers),
            counters,
            _lock: lock,
        }))
    }

    /// Opens a store read-only, for `interlog export --data-dir` (no writer, no lock needed:
    /// WAL lets readers run beside a live server).
    pub fn open_read_only(data_dir: &Path) -> Result<ReadOnlyStore, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Foreign { path, reason: "no interlog store here (is --data-dir right?)".into() });
        }
        let conn = open_connection(&path, true)?;
        check_layout(&conn, &path)?;
        Ok(ReadOnlyStore { path, conn })
    }

    /// SQLite's own consistency check of the whole database file ("ok" when sound).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let conn = self.control.lock().expect("control connection poisoned");
        Ok(conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn control<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.control.lock().expect("control connection poisoned");
        f(&mut conn)
    }
}

/// A read-only view of a store on disk.
pub struct ReadOnlyStore {
    path: PathBuf,
    conn: Connection,
}

impl ReadOnlyStore {
    pub fn dataset_group(&self, account: Option<&str>, name: Option<&str>) -> Result<DatasetGroup, StoreError> {
        find_group(&self.conn, account, name)
    }

    pub fn scan(
        &self,
        dataset_id: i64,
        visit: &mut dyn FnMut(StoredEvent) -> std::io::Result<()>,
    ) -> Result<ScanStats, StoreError> {
        scan(&self.path, dataset_id, visit)
    }
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| foreign(path, e))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    if !read_only {
        // WAL + FULL: every commit fsyncs the log before it returns; readers never block it.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| foreign(path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Foreign { path: path.to_owned(), reason: format!("cannot use WAL mode ({mode})") });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    }
    Ok(conn)
}

fn foreign(path: &Path, e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) =>
        {
            StoreError::Foreign { path: path.to_owned(), reason: format!("not a readable interlog store: {e}") }
        }
        _ => StoreError::Sqlite(e),
    }
}

fn check_layout(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| foreign(path, e))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if app == 0 && tables == 0 {
        return Ok(false);
    }
    if app != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
            reason: "this SQLite file was not made by interlog; move it away or choose another --data-dir".into(),
        });
    }
    if version > LAYOUT_VERSION {
        return Err(StoreError::Foreign {
            path: path.to_owned(),
            reason: format!("made by a newer interlog (layout {version}, this build reads up to {LAYOUT_VERSION})"),
        });
    }
    Ok(true)
}

fn init_layout(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    if check_layout(conn, path)? {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "BEGIN;
        CREATE TABLE schemas(
            id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL, domain TEXT, created REAL NOT NULL, updated REAL NOT NULL,
            UNIQUE(account, name));
        CREATE TABLE dataset_groups(
            id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
            domain TEXT, role_arn TEXT, kms_key_arn TEXT, status TEXT NOT NULL,
            is_default INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL,
            UNIQUE(account, name));
        -- AUTOINCREMENT: a dataset id is never reused, so events of a deleted dataset (or ones a
        -- racing append wrote after the delete) can never surface in a new dataset.
        CREATE TABLE datasets(
            id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
            dataset_group_id INTEGER NOT NULL REFERENCES dataset_groups(id),
            name TEXT NOT NULL, dataset_type TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
            schema_id INTEGER NOT NULL REFERENCES schemas(id), status TEXT NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL, UNIQUE(dataset_group_id, dataset_type));
        CREATE TABLE event_trackers(
            id INTEGER PRIMARY KEY, account TEXT NOT NULL,
            dataset_group_id INTEGER NOT NULL UNIQUE REFERENCES dataset_groups(id),
            name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE, tracking_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE tags(arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(arn, key)) WITHOUT ROWID;
        -- Append-only: no secondary index, so a commit touches only the table's last pages.
        CREATE TABLE events(
            seq INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, event_id TEXT NOT NULL,
            session_id TEXT NOT NULL, user_id TEXT, item_id TEXT, event_type TEXT NOT NULL,
            event_value REAL, sent_at REAL NOT NULL, properties TEXT, recommendation_id TEXT,
            impression TEXT, attribution_source TEXT, received_at REAL NOT NULL);
        PRAGMA application_id = {APPLICATION_ID};
        PRAGMA user_version = {LAYOUT_VERSION};
        COMMIT;"
    ))?;
    Ok(())
}

pub(crate) fn now() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // Milliseconds, like the service's own creationDateTime values (1542392161.837).
    (d.as_millis() as f64) / 1000.0
}

fn load_trackers(conn: &Connection) -> Result<HashMap<String, Arc<TrackerTarget>>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT t.tracking_id, t.account, g.arn, d.id, s.body
         FROM event_trackers t JOIN dataset_groups g ON g.id = t.dataset_group_id
         LEFT JOIN datasets d ON d.dataset_group_id = g.id AND d.dataset_type = 'INTERACTIONS'
         LEFT JOIN schemas s ON s.id = d.schema_id
         WHERE t.status = 'ACTIVE'",
    )?;
    let rows = stmt.query_map([], |r| {
        let body: Option<String> = r.get(4)?;
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<i64>>(3)?, body))
    })?;
    let mut trackers = HashMap::new();
    for row in rows {
        let (tracking_id, account, dataset_group_arn, dataset_id, body) = row?;
        // Stored schemas passed CreateSchema; one that no longer parses checks nothing rather
        // than locking its tracker out.
        let schema = body.and_then(|b| match interlog_model::schema::parse_schema(&b) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(error = %e, %dataset_group_arn, "stored schema does not parse; properties go unchecked");
                None
            }
        });
        trackers.insert(tracking_id, Arc::new(TrackerTarget { account, dataset_group_arn, dataset_id, schema }));
    }
    Ok(trackers)
}

fn find_group(conn: &Connection, account: Option<&str>, name: Option<&str>) -> Result<DatasetGroup, StoreError> {
    let row = conn
        .query_row(
            "SELECT g.id, g.name, g.arn, g.account, d.id, s.body
             FROM dataset_groups g
             LEFT JOIN datasets d ON d.dataset_group_id = g.id AND d.dataset_type = 'INTERACTIONS'
             LEFT JOIN schemas s ON s.id = d.schema_id
             WHERE (?1 IS NULL OR g.account = ?1) AND (CASE WHEN ?2 IS NULL THEN g.is_default = 1 ELSE g.name = ?2 END)
             ORDER BY g.id LIMIT 1",
            params![account, name],
            |r| {
                let dataset: Option<i64> = r.get(4)?;
                let schema: Option<String> = r.get(5)?;
                Ok(DatasetGroup {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    arn: r.get(2)?,
                    account: r.get(3)?,
                    interactions: dataset.zip(schema),
                })
            },
        )
        .optional()?;
    row.ok_or_else(|| match name {
        Some(n) => StoreError::NotFound(format!("No dataset group named '{n}' exists")),
        None => StoreError::NotFound("No default dataset group exists (has the server been started once?)".into()),
    })
}

fn tracker_of_group(conn: &Connection, group_id: i64) -> Result<EventTracker, StoreError> {
    Ok(conn.query_row(
        "SELECT t.name, t.arn, t.account, t.tracking_id, g.arn, t.status, t.created, t.updated
         FROM event_trackers t JOIN dataset_groups g ON g.id = t.dataset_group_id WHERE g.id = ?1",
        [group_id],
        |r| {
            Ok(EventTracker {
                name: r.get(0)?,
                arn: r.get(1)?,
                account: r.get(2)?,
                tracking_id: r.get(3)?,
                dataset_group_arn: r.get(4)?,
                status: r.get(5)?,
                created: r.get(6)?,
                updated: r.get(7)?,
            })
        },
    )?)
}

fn bootstrap(conn: &mut Connection, spec: &Bootstrap) -> Result<(Bootstrapped, bool), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let account = spec.scope.account.as_str();
    if let Ok(group) = find_group(&tx, Some(account), None) {
        let tracker = tracker_of_group(&tx, group.id)?;
        if let Some(wanted) = &spec.tracking_id {
            if *wanted != tracker.tracking_id {
                return Err(StoreError::Conflict(format!(
                    "this data dir's default tracker already has the tracking ID {}; \
                     --default-tracking-id {wanted} only applies to a new data dir",
                    tracker.tracking_id
                )));
            }
        }
        return Ok((Bootstrapped { created: false, dataset_group: group, tracker }, false));
    }
    // The same operations the control plane runs, so the defaults are ordinary resources.
    let cat = crate::catalog::CatalogTx { conn: &tx, now: now() };
    let schema_arn = spec.scope.arn("schema", DEFAULT_SCHEMA_NAME);
    cat.create_schema(account, &schema_arn, DEFAULT_SCHEMA_NAME, DEFAULT_INTERACTIONS_SCHEMA, None)?;
    let group_arn = spec.scope.arn("dataset-group", DEFAULT_GROUP_NAME);
    cat.create_dataset_group(account, &group_arn, DEFAULT_GROUP_NAME, None, None, None)?;
    tx.execute("UPDATE dataset_groups SET is_default = 1 WHERE arn = ?1", [&group_arn])?;
    let dataset_arn = spec.scope.arn("dataset", &format!("{DEFAULT_GROUP_NAME}/INTERACTIONS"));
    cat.create_dataset(account, &dataset_arn, DEFAULT_DATASET_NAME, &group_arn, &schema_arn, "INTERACTIONS")?;
    let tracking_id = spec.tracking_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let tracker_arn = spec.scope.arn("event-tracker", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    cat.create_event_tracker(account, &tracker_arn, DEFAULT_TRACKER_NAME, &group_arn, &tracking_id)?;
    let group = find_group(&tx, Some(account), None)?;
    let tracker = tracker_of_group(&tx, group.id)?;
    tx.commit()?;
    Ok((Bootstrapped { created: true, dataset_group: group, tracker }, true))
}

/// Reads a dataset in arrival order and drops every repeat of an eventId (first copy wins).
///
/// Memory: one 64-bit hash and one sequence number per distinct event (~20 bytes). A hash hit
/// is confirmed against the first copy's stored eventId, so the result is exact.
fn scan(
    path: &Path,
    dataset_id: i64,
    visit: &mut dyn FnMut(StoredEvent) -> std::io::Result<()>,
) -> Result<ScanStats, StoreError> {
    let conn = open_connection(path, true)?;
    // One read transaction: the scan sees one consistent snapshot while the writer goes on.
    conn.execute_batch("BEGIN")?;
    let mut rows = conn.prepare(
        "SELECT seq, event_id, session_id, user_id, item_id, event_type, event_value, sent_at, properties,
                recommendation_id, impression, attribution_source, received_at
         FROM events WHERE dataset_id = ?1 ORDER BY seq",
    )?;
    let mut id_at = conn.prepare("SELECT event_id FROM events WHERE seq = ?1")?;
    let hasher = RandomState::new();
    let mut first: HashMap<u64, i64> = HashMap::new();
    let mut collided: HashSet<String> = HashSet::new();
    let mut stats = ScanStats::default();
    let mut cursor = rows.query([dataset_id])?;
    while let Some(r) = cursor.next()? {
        let seq: i64 = r.get(0)?;
        let event_id: String = r.get(1)?;
        match first.entry(hasher.hash_one(&event_id)) {
            Entry::Vacant(v) => {
                v.insert(seq);
            }
            Entry::Occupied(o) => {
                let first_id: String = id_at.query_row([*o.get()], |r| r.get(0))?;
                if first_id == event_id || !collided.insert(event_id.clone()) {
                    stats.duplicates += 1;
                    continue;
                }
            }
        }
        let impression: Option<String> = r.get(10)?;
        let interaction = Interaction {
            event_id,
            session_id: r.get(2)?,
            user_id: r.get(3)?,
            item_id: r.get(4)?,
            event_type: r.get(5)?,
            event_value: r.get(6)?,
            sent_at: r.get(7)?,
            properties: r.get(8)?,
            recommendation_id: r.get(9)?,
            impression: impression.and_then(|s| serde_json::from_str(&s).ok()),
            event_attribution_source: r.get(11)?,
        };
        visit(StoredEvent { seq, received_at: r.get(12)?, interaction })?;
        stats.events += 1;
    }
    Ok(stats)
}

/// The one writer: takes every waiting request, commits them in one synced transaction.
struct Writer {
    conn: Connection,
    window: Window,
    options: StoreOptions,
    counters: Arc<Counters>,
}

impl Writer {
    /// Remembers the newest events, so a retry that crosses a restart is still caught early.
    fn warm_window(&mut self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare("SELECT seq, dataset_id, event_id FROM events ORDER BY seq DESC LIMIT ?1")?;
        let mut recent = stmt
            .query_map([self.options.window_events as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<(i64, i64, String)>, _>>()?;
        drop(stmt);
        recent.reverse();
        for (seq, dataset_id, event_id) in recent {
            let key = self.window.key(dataset_id, &event_id);
            self.window.insert(key, seq);
        }
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<AppendJob>) {
        let mut batch = Vec::new();
        while let Some(job) = rx.blocking_recv() {
            let mut events = job.events.len();
            batch.push(job);
            while events < self.options.max_batch_events {
                match rx.try_recv() {
                    Ok(job) => {
                        events += job.events.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(&batch) {
                Ok(outcomes) => {
                    let c = &self.counters;
                    c.commits.fetch_add(1, Ordering::Relaxed);
                    for o in &outcomes {
                        c.events_stored.fetch_add(o.stored as u64, Ordering::Relaxed);
                        c.duplicates_dropped.fetch_add(o.duplicates as u64, Ordering::Relaxed);
                    }
                    for (job, outcome) in batch.drain(..).zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, requests = batch.len(), "commit failed; nothing of this batch was acknowledged");
                    let disk = e.is_disk_fault();
                    let message = e.to_string();
                    for job in batch.drain(..) {
                        let err = if disk {
                            StoreError::Unavailable(message.clone())
                        } else {
                            StoreError::Io(std::io::Error::other(message.clone()))
                        };
                        let _ = job.reply.send(Err(err));
                    }
                }
            }
        }
        tracing::debug!("writer stopped: every sender is gone");
    }

    fn commit(&mut self, batch: &[AppendJob]) -> Result<Vec<AppendOutcome>, StoreError> {
        let received_at = now();
        let mut outcomes = Vec::with_capacity(batch.len());
        // Entries become visible to the window only once the commit succeeded.
        let mut pending: HashMap<u64, i64> = HashMap::new();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events(dataset_id, event_id, session_id, user_id, item_id, event_type, event_value,
                    sent_at, properties, recommendation_id, impression, attribution_source, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            let mut stored_id = tx.prepare_cached("SELECT dataset_id, event_id FROM events WHERE seq = ?1")?;
            for job in batch {
                let mut outcome = AppendOutcome::default();
                for e in &job.events {
                    let key = self.window.key(job.dataset_id, &e.event_id);
                    if let Some(seq) = pending.get(&key).copied().or_else(|| self.window.get(key)) {
                        let (ds, id): (i64, String) = stored_id.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
                        if ds == job.dataset_id && id == e.event_id {
                            outcome.duplicates += 1;
                            continue;
                        }
                    }
                    let impression = e.impression.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default());
                    insert.execute(params![
                        job.dataset_id,
                        e.event_id,
                        e.session_id,
                        e.user_id,
                        e.item_id,
                        e.event_type,
                        e.event_value,
                        e.sent_at,
                        e.properties,
                        e.recommendation_id,
                        impression,
                        e.event_attribution_source,
                        received_at,
                    ])?;
                    pending.insert(key, tx.last_insert_rowid());
                    outcome.stored += 1;
                }
                outcomes.push(outcome);
            }
        }
        tx.commit()?;
        for (key, seq) in pending {
            self.window.insert(key, seq);
        }
        Ok(outcomes)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, dataset_id: i64, events: Vec<Interaction>) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send(AppendJob { dataset_id, events, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                StoreError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable("the writer has stopped".into()),
        })?;
        answer.await.map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            events_stored: c.events_stored.load(Ordering::Relaxed),
            duplicates_dropped: c.duplicates_dropped.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
        }
    }

    fn tracker(&self, tracking_id: &str) -> Option<Arc<TrackerTarget>> {
        self.trackers.read().expect("tracker cache poisoned").get(tracking_id).cloned()
    }

    async fn bootstrap(&self, spec: Bootstrap) -> Result<Bootstrapped, StoreError> {
        let (done, _) = self.control(|conn| bootstrap(conn, &spec))?;
        let trackers = self.control(|conn| load_trackers(conn))?;
        *self.trackers.write().expect("tracker cache poisoned") = trackers;
        Ok(done)
    }

    fn catalog(
        &self,
        op: &mut dyn FnMut(&crate::catalog::CatalogTx<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.control(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            op(&crate::catalog::CatalogTx { conn: &tx, now: now() })?;
            tx.commit()?;
            Ok(())
        })?;
        let trackers = self.control(|conn| load_trackers(conn))?;
        *self.trackers.write().expect("tracker cache poisoned") = trackers;
        Ok(())
    }

    async fn dataset_group(&self, account: &str, name: Option<&str>) -> Result<DatasetGroup, StoreError> {
        self.control(|conn| find_group(conn, Some(account), name))
    }

    fn scan(
        &self,
        dataset_id: i64,
        visit: &mut dyn FnMut(StoredEvent) -> std::io::Result<()>,
    ) -> Result<ScanStats, StoreError> {
        scan(&self.path, dataset_id, visit)
    }
}

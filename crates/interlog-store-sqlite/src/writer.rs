//! The one writer: a thread owning the only read-write connection. It group-commits appends,
//! runs every catalog write, removes deleted datasets' events in small chunks between append
//! batches, and probes the disk while writes fail.
//!
//! It never dies of what it meets. A commit that fails (disk full, I/O error, a panic in this
//! code) answers every request of its batch with an error, drops the connection and takes a
//! fresh one before the next unit of work, which is tried afresh; while writes fail, health is
//! `Unavailable` and a tiny write every second finds out when the disk takes writes again. Only
//! a connection that cannot be reopened after [`MAX_REOPEN_ATTEMPTS`] makes the store fatal
//! ([`crate::SqliteStore::fatal`]): the server then exits so a supervisor restarts it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use interlog_store::window::{KeyMap, Window};
use interlog_store::{AppendOutcome, BulkRemoval, Entries, Health, StoreError, WriterOptions};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::{self, Purge, Write, Written};
use crate::deletion::Deletion;
use crate::error::Classify;
use crate::layout;

/// A failed reopen is retried this often...
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// ...this many times in a row before the store gives up and reports itself fatal.
pub const MAX_REOPEN_ATTEMPTS: u32 = 10;
/// While writes fail, the writer tries a tiny write this often.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A purge chunk deletes positions this many at a time...
const PURGE_STEP: i64 = 256;
/// ...until it removed this many events, looked at this many positions, or spent this long
/// (before its commit), so an append waiting behind one chunk waits a few milliseconds at most,
/// however the deleted dataset's events are spread over the log and however busy the disk is.
const PURGE_ROWS: i64 = 4096;
const PURGE_SCAN: i64 = 32_768;
const PURGE_BUDGET: Duration = Duration::from_millis(2);
/// Panics outside a unit of work (the loop itself) tolerated per minute before giving up.
const MAX_RESTARTS_PER_MINUTE: usize = 5;
/// The history indexer runs once no append has come for this long: a queue that is empty
/// for a moment between two requests of a saturating load is not idle, and indexing then
/// takes CPU the HTTP workers and the next commit lack (measured: 0.77-0.81 of the events/s
/// without the index when the indexer ran whenever no append waited; docs/benchmarks.md)...
const INDEX_IDLE: Duration = Duration::from_millis(5);
/// ...or, after a window of [`RATE_WINDOW`] in which more than [`BUSY_EVENTS`] events came (a
/// heavy load, whose HTTP workers starved of CPU leave the queue empty for milliseconds at a
/// time), this long: a real pause of the load.
const INDEX_IDLE_BUSY: Duration = Duration::from_millis(100);
const RATE_WINDOW: Duration = Duration::from_millis(100);
const BUSY_EVENTS: usize = 1_000;
/// ...and, under a load that leaves it no idle time, one chunk per append batch once it lags
/// more than this many events behind, so the lag (which every query's scan of the unindexed
/// tail pays for) stays bounded however long the load lasts.
pub const INDEX_MAX_LAG: i64 = 1_000_000;

pub struct AppendJob {
    pub dataset_id: i64,
    /// A request's events (appended to the log) or keyed records (upserted), in one queue so
    /// both are committed in arrival order by the same group commits.
    pub entries: Entries,
    /// The import job whose chunk this is (its rows are marked with it, and bypass the retry window); `None` for
    /// a Put* request.
    pub import_job: Option<i64>,
    /// The outcome, and the entries handed back: freeing a batch's strings is a few percent of the
    /// one writer thread's time, so the request's own task frees them instead.
    pub reply: oneshot::Sender<(Result<AppendOutcome, StoreError>, Entries)>,
}

pub enum Control {
    Write(Write, oneshot::Sender<Result<Written, StoreError>>),
    /// A data deletion job's removal of users (`deletion.rs`), answered when it is complete.
    DeleteUsers(interlog_store::UserDeletion, oneshot::Sender<Result<interlog_store::UsersDeleted, StoreError>>),
    /// Finish the appends already queued, close the connection, then answer.
    Close(oneshot::Sender<()>),
    /// Remove up to `limit` imported rows of a dataset (one short transaction; callers loop).
    RemoveBulk {
        dataset_id: i64,
        what: BulkRemoval,
        limit: usize,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// Write-path counters.
#[derive(Default)]
pub struct Counters {
    pub commits: AtomicU64,
    pub failed_commits: AtomicU64,
    pub events_stored: AtomicU64,
    pub duplicates_dropped: AtomicU64,
    pub throttled: AtomicU64,
}

/// What the writer thread and the store handle share.
pub struct Shared {
    pub counters: Counters,
    pub health: RwLock<Health>,
    /// `Some(why)` once the writer gave up.
    pub fatal: watch::Sender<Option<String>>,
    /// The catalog version, sent after every committed catalog write.
    pub version: watch::Sender<u64>,
    /// Grows after every committed append batch, so sinks wake at once.
    pub appended: watch::Sender<u64>,
    /// The newest position of each dataset this process knows of (committed appends, and what
    /// readers looked up); merged by maximum, so a stale lookup never hides a newer commit.
    pub newest: std::sync::Mutex<HashMap<i64, i64>>,
    /// Grows each time `newest` is forgotten (after a fault), so a lookup that began before
    /// does not put back what it saw.
    pub newest_generation: AtomicU64,
    #[cfg(feature = "fault-injection")]
    pub faults: crate::Faults,
}

impl Shared {
    pub fn new(version: u64) -> Arc<Shared> {
        Arc::new(Shared {
            counters: Counters::default(),
            health: RwLock::new(Health::Writable),
            fatal: watch::channel(None).0,
            version: watch::channel(version).0,
            appended: watch::channel(0).0,
            newest: std::sync::Mutex::new(HashMap::new()),
            newest_generation: AtomicU64::new(0),
            #[cfg(feature = "fault-injection")]
            faults: crate::Faults::default(),
        })
    }

    /// Records that `dataset`'s newest position is at least `seq`; returns what is known now.
    pub fn saw_newest(&self, dataset: i64, seq: i64) -> i64 {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        let known = newest.entry(dataset).or_insert(seq);
        *known = (*known).max(seq);
        *known
    }

    fn set_health(&self, health: Health) {
        *self.health.write().unwrap_or_else(|p| p.into_inner()) = health;
    }
}

/// Why writes fail at the moment, and when to try again.
struct Trouble {
    reason: String,
    since: Instant,
    next_reopen: Instant,
    next_probe: Instant,
    reopen_failures: u32,
}

/// The queues into a started writer, and its thread.
pub struct Started {
    pub appends: mpsc::Sender<AppendJob>,
    pub control: mpsc::Sender<Control>,
    pub thread: std::thread::JoinHandle<()>,
}

pub struct Writer {
    path: PathBuf,
    conn: Option<Connection>,
    window: Window,
    options: WriterOptions,
    shared: Arc<Shared>,
    /// Datasets that exist: appends to any other id are refused, so nothing is written under
    /// the id of a dataset being purged.
    live: HashSet<i64>,
    purges: VecDeque<Purge>,
    /// Users' data being removed, oldest first, a chunk at a time like the purges.
    deletions: VecDeque<Deletion>,
    /// The newest position committed, and how far the history index reaches (`history.rs`).
    head: i64,
    indexed: i64,
    /// When the last append batch was committed (or failed): the indexer waits for
    /// [`INDEX_IDLE`] after it.
    last_append: Instant,
    /// Events of append batches in the current [`RATE_WINDOW`] (since `window_start`) and in
    /// the one before it: how heavy the load is.
    window_start: Instant,
    window_events: usize,
    previous_window_events: usize,
    /// After a failed chunk the indexer waits until then, so a lasting failure is no busy loop.
    index_paused_until: Option<Instant>,
    trouble: Option<Trouble>,
    fatal: Option<String>,
    /// The in-memory state must be rebuilt from the file before the next unit of work (after
    /// a panic outside one).
    rewarm: bool,
    /// The data dir's lock, shared with the store handle: a store dropped without `close`
    /// keeps the dir locked until this thread has finished writing.
    _lock: std::fs::File,
}

impl Writer {
    /// Takes the opened (and migrated) connection, warms what the writer keeps in memory and
    /// starts the thread.
    pub fn start(
        path: PathBuf,
        conn: Connection,
        options: WriterOptions,
        shared: Arc<Shared>,
        lock: std::fs::File,
    ) -> Result<Started, StoreError> {
        let mut writer = Writer {
            path,
            conn: Some(conn),
            window: Window::new(options.window_events),
            options,
            shared,
            live: HashSet::new(),
            purges: VecDeque::new(),
            deletions: VecDeque::new(),
            head: 0,
            indexed: 0,
            last_append: Instant::now(),
            window_start: Instant::now(),
            window_events: 0,
            previous_window_events: 0,
            index_paused_until: None,
            trouble: None,
            fatal: None,
            rewarm: false,
            _lock: lock,
        };
        writer.warm()?;
        if !writer.purges.is_empty() {
            tracing::info!(datasets = writer.purges.len(), "resuming the purge of deleted datasets' events");
        }
        let (appends, append_rx) = mpsc::channel(writer.options.queue_requests.max(1));
        // Catalog writes have their own queue, read first: a full append queue never holds
        // up the control plane.
        let (control, control_rx) = mpsc::channel(256);
        let thread = std::thread::Builder::new()
            .name("interlog-writer".into())
            .spawn(move || writer.supervise(append_rx, control_rx))?;
        Ok(Started { appends, control, thread })
    }

    /// Fills the retry window with the newest events (so a retry across a restart is still
    /// dropped at the door) and loads the live datasets and pending purges.
    fn warm(&mut self) -> Result<(), StoreError> {
        let conn = self.conn.as_ref().ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
        let mut window = Window::new(self.options.window_events);
        let mut stmt =
            conn.prepare("SELECT seq, dataset_id, event_id FROM events ORDER BY seq DESC LIMIT ?1").classified()?;
        let mut recent = stmt
            .query_map([self.options.window_events as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })
            .classified()?
            .collect::<Result<Vec<_>, _>>()
            .classified()?;
        drop(stmt);
        recent.reverse();
        for (seq, dataset_id, event_id) in recent {
            let key = window.key(dataset_id, &event_id);
            window.insert(key, seq);
        }
        self.window = window;
        self.reload()
    }

    /// The live datasets and pending purges as the file has them.
    fn reload(&mut self) -> Result<(), StoreError> {
        let conn = self.conn.as_ref().ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
        self.live = catalog::dataset_ids(conn)?;
        self.purges = catalog::purges(conn)?.into();
        self.indexed = crate::history::indexed(conn)?;
        // Never below a position given before (`commit_appends`): the newest event left, the newest one deleted,
        // and the history cursor (which a file written before `highest_seq` was kept may have past its newest).
        let newest: i64 = conn
            .query_row(
                "SELECT max(coalesce((SELECT max(seq) FROM events), 0),
                            coalesce((SELECT value FROM meta WHERE key = ?1), 0))",
                [HIGHEST_SEQ],
                |r| r.get(0),
            )
            .classified()?;
        self.head = newest.max(self.indexed);
        Ok(())
    }

    /// The thread: runs the loop, and restarts it if it ever panics outside a unit of work.
    fn supervise(mut self, mut appends: mpsc::Receiver<AppendJob>, mut control: mpsc::Receiver<Control>) {
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
                Ok(rt) => rt,
                Err(e) => {
                    self.give_up(format!("the writer cannot start its timer: {e}"));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            match catch_unwind(AssertUnwindSafe(|| self.run(&rt, &mut appends, &mut control))) {
                Ok(()) => return,
                Err(panic) => {
                    let why = panic_message(&*panic);
                    tracing::error!(panic = %why, "the writer's loop panicked; restarting it with a fresh connection");
                    let now = Instant::now();
                    restarts.push_back(now);
                    while restarts.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60)) {
                        restarts.pop_front();
                    }
                    if restarts.len() > MAX_RESTARTS_PER_MINUTE {
                        self.give_up(format!(
                            "the writer panicked {} times within a minute (last: {why})",
                            restarts.len()
                        ));
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    self.rewarm = true;
                    self.troubled(format!("the writer restarted after a panic: {why}"));
                }
            }
        }
    }

    fn run(
        &mut self,
        rt: &tokio::runtime::Runtime,
        appends: &mut mpsc::Receiver<AppendJob>,
        control: &mut mpsc::Receiver<Control>,
    ) {
        let mut waiting: Option<AppendJob> = None;
        let mut batch: Vec<AppendJob> = Vec::new();
        loop {
            // The control plane first: its writes are few and short.
            while let Ok(c) = control.try_recv() {
                if let Some(done) = self.control(c) {
                    self.finish(appends, waiting.take(), &mut batch);
                    let _ = done.send(());
                    return;
                }
            }
            if let Some(first) = waiting.take().or_else(|| appends.try_recv().ok()) {
                self.append_batch(first, appends, &mut batch);
                // One purge or deletion chunk per append batch: they always move, and an
                // append never waits for more than one chunk.
                if self.trouble.is_none() {
                    self.background_chunk();
                }
                // Under a load that never pauses the indexer still keeps the lag bounded.
                if self.index_wanted() && self.head - self.indexed > INDEX_MAX_LAG {
                    self.index_chunk();
                }
                continue;
            }
            if self.trouble.is_none() && !(self.purges.is_empty() && self.deletions.is_empty()) {
                self.background_chunk();
                continue;
            }
            // Nothing waits: once no append has come for INDEX_IDLE, the writer's idle time goes
            // to the history index; before that, the wait below ends when it is due (else an
            // index left behind by the last burst would stay behind until the next append).
            let index_due = self.index_due();
            if index_due.is_some_and(|due| Instant::now() >= due) {
                self.index_chunk();
                continue;
            }
            if self.trouble.as_ref().is_some_and(|t| Instant::now() >= t.next_probe) {
                self.probe();
            }
            let deadline = self.trouble.as_ref().map(|t| t.next_probe.min(t.next_reopen).max(Instant::now()));
            let deadline = match (deadline, index_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match rt.block_on(wait(appends, control, deadline)) {
                Wake::Control(c) => {
                    if let Some(done) = self.control(c) {
                        self.finish(appends, None, &mut batch);
                        let _ = done.send(());
                        return;
                    }
                }
                Wake::Append(job) => waiting = Some(job),
                Wake::Tick => {}
                Wake::Closed => {
                    self.finish(appends, None, &mut batch);
                    return;
                }
            }
        }
    }

    /// Commits what is still queued, then lets the connection go.
    fn finish(
        &mut self,
        appends: &mut mpsc::Receiver<AppendJob>,
        waiting: Option<AppendJob>,
        batch: &mut Vec<AppendJob>,
    ) {
        let mut next = waiting.or_else(|| appends.try_recv().ok());
        while let Some(first) = next {
            self.append_batch(first, appends, batch);
            next = appends.try_recv().ok();
        }
        self.conn = None;
        tracing::debug!("the writer stopped");
    }

    /// Runs a control command; `Some` when it asks the writer to stop.
    fn control(&mut self, c: Control) -> Option<oneshot::Sender<()>> {
        match c {
            Control::Write(w, reply) => {
                let _ = reply.send(self.catalog_write(w));
                None
            }
            Control::DeleteUsers(job, reply) => {
                self.deletions.push_back(Deletion::new(job, reply));
                None
            }
            Control::Close(done) => Some(done),
            Control::RemoveBulk { dataset_id, what, limit, reply } => {
                let (shared, head) = (self.shared.clone(), self.head);
                let removed = self.guarded(move |w| {
                    let tx = w.connection()?.transaction().classified()?;
                    let n = remove_bulk(&tx, dataset_id, what, limit)?;
                    if n > 0 {
                        keep_highest_seq(&tx, head)?;
                    }
                    commit(tx, &shared)?;
                    Ok(n)
                });
                let _ = reply.send(removed);
                None
            }
        }
    }

    fn catalog_write(&mut self, w: Write) -> Result<Written, StoreError> {
        let now = interlog_store::now();
        let shared = self.shared.clone();
        let (written, after, version) = self.guarded(move |wr| {
            let tx = wr.connection()?.transaction_with_behavior(TransactionBehavior::Immediate).classified()?;
            let (written, after) = catalog::write(&tx, w, now)?;
            let version = catalog::version(&tx)?;
            commit(tx, &shared)?;
            Ok((written, after, version))
        })?;
        self.live.extend(after.datasets_added);
        for purge in after.datasets_deleted {
            self.live.remove(&purge.dataset_id);
            self.purges.retain(|p| p.dataset_id != purge.dataset_id);
            self.purges.push_back(purge);
        }
        if after.changed {
            self.shared.version.send_replace(version);
        }
        Ok(written)
    }

    /// Takes `first` and every request waiting behind it (up to the batch size), commits them
    /// in one transaction and answers each.
    fn append_batch(&mut self, first: AppendJob, appends: &mut mpsc::Receiver<AppendJob>, batch: &mut Vec<AppendJob>) {
        let mut events = first.entries.len();
        batch.push(first);
        while events < self.options.max_batch_events {
            match appends.try_recv() {
                Ok(job) => {
                    events += job.entries.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let shared = self.shared.clone();
        let jobs = &*batch;
        let started = Instant::now();
        let result = self.guarded(|w| w.commit_appends(jobs, &shared));
        self.appended(events);
        self.options.observer.committed(interlog_store::CommitReport {
            requests: batch.len(),
            entries: events,
            duration: started.elapsed(),
            ok: result.is_ok(),
        });
        let c = &self.shared.counters;
        match result {
            Ok(outcomes) => {
                c.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.appended.send_modify(|n| *n += 1);
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    if let (Ok(o), Entries::Events(_)) = (&outcome, &job.entries) {
                        c.events_stored.fetch_add(o.stored as u64, Ordering::Relaxed);
                        c.duplicates_dropped.fetch_add(o.duplicates as u64, Ordering::Relaxed);
                    }
                    let _ = job.reply.send((outcome, job.entries));
                }
            }
            Err(e) => {
                c.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, requests = batch.len(), "commit failed; nothing of this batch was acknowledged");
                for job in batch.drain(..) {
                    let _ = job.reply.send((Err(again(&e)), job.entries));
                }
            }
        }
    }

    fn commit_appends(
        &mut self,
        batch: &[AppendJob],
        shared: &Shared,
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        let received_at = interlog_store::now();
        let mut outcomes = Vec::with_capacity(batch.len());
        // Entries become visible to the window only once the commit succeeded.
        let mut pending: KeyMap<i64> = KeyMap::default();
        let mut newest: HashMap<i64, i64> = HashMap::new();
        let Writer { conn, window, live, head, .. } = self;
        let conn = conn.as_mut().ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
        let tx = conn.transaction().classified()?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events(dataset_id, event_id, session_id, user_id, item_id, event_type, event_value,
                        sent_at, properties, recommendation_id, impression, attribution_source, received_at, flags,
                        import_job, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .classified()?;
            let mut stored_id =
                tx.prepare_cached("SELECT dataset_id, event_id FROM events WHERE seq = ?1").classified()?;
            // The later write of an ID replaces the earlier: statements run in arrival order.
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO records(dataset_id, record_id, properties, received_at, flags, import_job, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(dataset_id, record_id) DO UPDATE
                     SET properties = excluded.properties, received_at = excluded.received_at, flags = excluded.flags,
                         import_job = excluded.import_job, position = excluded.position",
                )
                .classified()?;
            // The records' position counter (layout 10), read once per commit that writes records and stored back
            // in the same transaction: every upsert takes the next value, so a rewrite moves the record past
            // every sink's cursor, and a failed commit hands out nothing.
            let mut record_position: Option<i64> = None;
            // Positions are given here, after the newest ever given, not by SQLite (the largest rowid + 1): once a
            // deletion removed the newest events, SQLite would hand their positions out again, below cursors that
            // have passed them (the history indexer's, the sinks'), and those readers would never see the events.
            let mut seq = *head;
            for job in batch {
                if !live.contains(&job.dataset_id) {
                    outcomes.push(Err(StoreError::NotFound(format!(
                        "There is no dataset with id {} (it may just have been deleted)",
                        job.dataset_id
                    ))));
                    continue;
                }
                let mut outcome = AppendOutcome::default();
                let events = match &job.entries {
                    Entries::Events(events) => events,
                    Entries::Records(records) => {
                        let position = match &mut record_position {
                            Some(p) => p,
                            None => record_position.insert(
                                tx.prepare_cached("SELECT value FROM meta WHERE key = 'record_position'")
                                    .classified()?
                                    .query_row([], |r| r.get(0))
                                    .classified()?,
                            ),
                        };
                        for r in records {
                            let flags = interlog_model::flag::encode_flags(&r.flags);
                            *position += 1;
                            upsert
                                .execute(params![
                                    job.dataset_id,
                                    r.id,
                                    r.properties,
                                    received_at,
                                    flags,
                                    job.import_job,
                                    *position
                                ])
                                .classified()?;
                        }
                        outcome.stored = records.len();
                        outcomes.push(Ok(outcome));
                        continue;
                    }
                };
                for e in events {
                    let key = window.key(job.dataset_id, &e.event_id);
                    // An import's rows bypass the window: a million historical eventIds would push out the live
                    // clients' recent ones, and the reader removes repeats exactly anyway.
                    let windowed = job.import_job.is_none();
                    if let Some(seq) =
                        windowed.then(|| pending.get(&key).copied().or_else(|| window.get(key))).flatten()
                    {
                        // Confirmed against the stored row: a hash collision is stored normally.
                        let stored: Option<(i64, String)> =
                            stored_id.query_row([seq], |r| Ok((r.get(0)?, r.get(1)?))).optional().classified()?;
                        if stored.is_some_and(|(ds, id)| ds == job.dataset_id && id == e.event_id) {
                            outcome.duplicates += 1;
                            continue;
                        }
                    }
                    let impression = e.impression.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default());
                    seq += 1;
                    insert
                        .execute(params![
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
                            interlog_model::flag::encode_flags(&e.flags),
                            job.import_job,
                            seq,
                        ])
                        .classified()?;
                    if windowed {
                        pending.insert(key, seq);
                    }
                    newest.insert(job.dataset_id, seq);
                    outcome.stored_one(e);
                }
                outcomes.push(Ok(outcome));
            }
            if let Some(position) = record_position {
                tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'record_position'")
                    .classified()?
                    .execute([position])
                    .classified()?;
            }
        }
        commit(tx, shared)?;
        for (key, seq) in pending {
            window.insert(key, seq);
        }
        for (dataset, seq) in newest {
            *head = (*head).max(seq);
            shared.saw_newest(dataset, seq);
        }
        Ok(outcomes)
    }

    /// One chunk of background removal: a deleted dataset's purge first (it makes the log
    /// shorter for everyone), else a data deletion job's.
    fn background_chunk(&mut self) {
        if self.purges.is_empty() {
            self.deletion_chunk();
        } else {
            self.purge_chunk();
        }
    }

    /// One chunk of the oldest data deletion, in its own synced transaction; the job is
    /// answered once a chunk finds nothing left, or with the error of a chunk that failed
    /// (running the job again is harmless).
    fn deletion_chunk(&mut self) {
        let Some(deletion) = self.deletions.pop_front() else { return };
        let (shared, head) = (self.shared.clone(), self.head);
        let result = self.guarded(|w| {
            let tx = w.connection()?.transaction().classified()?;
            let progress = deletion.chunk(&tx, head)?;
            if progress.removed_events() {
                keep_highest_seq(&tx, head)?;
            }
            commit(tx, &shared)?;
            Ok(progress)
        });
        let mut deletion = deletion;
        match result {
            Ok(progress) => {
                if deletion.apply(progress, head) {
                    deletion.finish(Ok(()));
                } else {
                    self.deletions.push_front(deletion);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a chunk of a data deletion failed; the job fails");
                deletion.finish(Err(e));
            }
        }
    }
}

/// Removes up to `limit` imported rows of a dataset, events first, then records (their partial indexes find
/// them without a scan); returns how many.
fn remove_bulk(tx: &Transaction<'_>, dataset_id: i64, what: BulkRemoval, limit: usize) -> Result<usize, StoreError> {
    let (cond, job) = match what {
        BulkRemoval::Job(job) => ("import_job = ?2", job),
        BulkRemoval::AllBut(job) => ("import_job <> ?2", job),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let events = tx
        .prepare_cached(&format!(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events
             WHERE dataset_id = ?1 AND import_job IS NOT NULL AND {cond} LIMIT ?3)"
        ))
        .classified()?
        .execute(params![dataset_id, job, limit])
        .classified()? as i64;
    let records = if events < limit {
        tx.prepare_cached(&format!(
            "DELETE FROM records WHERE id IN (SELECT id FROM records
             WHERE dataset_id = ?1 AND import_job IS NOT NULL AND {cond} LIMIT ?3)"
        ))
        .classified()?
        .execute(params![dataset_id, job, limit - events])
        .classified()? as i64
    } else {
        0
    };
    Ok((events + records) as usize)
}

impl Writer {
    /// Removes one chunk of the oldest pending purge, durably recording how far it got.
    fn purge_chunk(&mut self) {
        let Some(purge) = self.purges.front().copied() else { return };
        let (shared, head) = (self.shared.clone(), self.head);
        let result = self.guarded(|w| {
            let tx = w.connection()?.transaction().classified()?;
            let mut done = purge.done_through;
            let mut removed = 0;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND dataset_id = ?3")
                    .classified()?;
                let started = Instant::now();
                while done < purge.last_seq
                    && removed < PURGE_ROWS
                    && done - purge.done_through < PURGE_SCAN
                    && started.elapsed() < PURGE_BUDGET
                {
                    let upto = (done + PURGE_STEP).min(purge.last_seq);
                    removed += delete.execute(params![done, upto, purge.dataset_id]).classified()? as i64;
                    done = upto;
                }
            }
            // The dataset's records go after its events, a chunk at a time too.
            let mut records_left = false;
            if done >= purge.last_seq && removed < PURGE_ROWS {
                let chunk = PURGE_ROWS - removed;
                let n = tx
                    .prepare_cached(
                        "DELETE FROM records WHERE dataset_id = ?1 AND record_id IN
                         (SELECT record_id FROM records WHERE dataset_id = ?1 LIMIT ?2)",
                    )
                    .classified()?
                    .execute(params![purge.dataset_id, chunk])
                    .classified()? as i64;
                // Then its rows of the history index.
                let h = if n < chunk {
                    tx.prepare_cached(
                        "DELETE FROM history WHERE dataset_id = ?1 AND (who_key, seq) IN
                         (SELECT who_key, seq FROM history WHERE dataset_id = ?1 LIMIT ?2)",
                    )
                    .classified()?
                    .execute(params![purge.dataset_id, chunk - n])
                    .classified()? as i64
                } else {
                    0
                };
                records_left = n + h >= chunk;
            } else if done >= purge.last_seq {
                records_left = true;
            }
            if removed > 0 {
                keep_highest_seq(&tx, head)?;
            }
            if done >= purge.last_seq && !records_left {
                tx.execute("DELETE FROM purges WHERE dataset_id = ?1", [purge.dataset_id]).classified()?;
            } else {
                tx.execute(
                    "UPDATE purges SET done_through = ?2 WHERE dataset_id = ?1",
                    params![purge.dataset_id, done],
                )
                .classified()?;
            }
            commit(tx, &shared)?;
            Ok((done, records_left))
        });
        match result {
            Ok((done, false)) if done >= purge.last_seq => {
                self.purges.pop_front();
                tracing::info!(dataset_id = purge.dataset_id, "the deleted dataset's events are purged");
            }
            Ok((done, _)) => {
                if let Some(front) = self.purges.front_mut() {
                    front.done_through = done;
                }
            }
            Err(e) => tracing::warn!(error = %e, dataset_id = purge.dataset_id, "a purge chunk failed; retrying later"),
        }
    }

    /// Whether the history index has events to catch up with and may take them now (not
    /// paused after a failed chunk).
    fn index_wanted(&self) -> bool {
        self.index_pending() && self.index_paused_until.is_none_or(|t| Instant::now() >= t)
    }

    fn index_pending(&self) -> bool {
        self.options.history_index && self.trouble.is_none() && self.indexed < self.head
    }

    /// Counts an append batch of `events` into the load's rate.
    fn appended(&mut self, events: usize) {
        let now = Instant::now();
        self.last_append = now;
        self.roll_window(now);
        self.window_events += events;
    }

    fn roll_window(&mut self, now: Instant) {
        let since = now.saturating_duration_since(self.window_start);
        if since >= RATE_WINDOW {
            self.previous_window_events = if since < 2 * RATE_WINDOW { self.window_events } else { 0 };
            self.window_events = 0;
            self.window_start = now;
        }
    }

    /// When the idle writer should make the next chunk of the history index: [`INDEX_IDLE`]
    /// after the last append ([`INDEX_IDLE_BUSY`] after a heavy load), and not before a pause
    /// after a failure ends; `None` when the index is complete (or off).
    fn index_due(&self) -> Option<Instant> {
        let busy = self.window_events.max(self.previous_window_events) > BUSY_EVENTS;
        let idle = self.last_append + if busy { INDEX_IDLE_BUSY } else { INDEX_IDLE };
        self.index_pending().then(|| self.index_paused_until.map_or(idle, |t| t.max(idle)))
    }

    /// One chunk of the history indexer in its own transaction, without a sync of its own:
    /// the cursor moves in the same transaction as the rows, so a chunk lost to a power cut is
    /// only done again, and the next append's synced commit makes it durable anyway.
    fn index_chunk(&mut self) {
        let (from, now) = (self.indexed, interlog_store::now());
        let shared = self.shared.clone();
        let result = self.guarded(|w| {
            let Writer { conn, live, .. } = w;
            let conn = conn.as_mut().ok_or_else(|| StoreError::Unavailable("no connection".into()))?;
            conn.execute_batch("PRAGMA synchronous=NORMAL").classified()?;
            let done = (|| {
                let tx = conn.transaction().classified()?;
                let to = crate::history::index_chunk(&tx, live, from, now)?;
                commit(tx, &shared)?;
                Ok(to)
            })();
            conn.execute_batch("PRAGMA synchronous=FULL").classified()?;
            done
        });
        match result {
            Ok(to) if to > from => self.indexed = to,
            // Nothing after the cursor: `head` was ahead of what is stored (a failed commit).
            Ok(_) => self.indexed = self.head,
            Err(e) => {
                self.index_paused_until = Some(Instant::now() + Duration::from_secs(1));
                tracing::warn!(error = %e, "a chunk of the history index failed; retrying in a second");
            }
        }
    }

    /// A tiny durable write: does the disk take writes again?
    fn probe(&mut self) {
        if let Some(t) = self.trouble.as_mut() {
            t.next_probe = Instant::now() + PROBE_EVERY;
        }
        let shared = self.shared.clone();
        let result = self.guarded(|w| {
            let tx = w.connection()?.transaction_with_behavior(TransactionBehavior::Immediate).classified()?;
            tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', ?1)", [interlog_store::now()])
                .classified()?;
            commit(tx, &shared)
        });
        if let Err(e) = result {
            tracing::debug!(error = %e, "probe: writes still fail");
        }
    }

    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        self.conn.as_mut().ok_or_else(|| StoreError::Unavailable("the writer has no connection".into()))
    }

    /// Runs one unit of work: with a connection (reopened if the last one failed), with a
    /// panic turned into an error, and with the outcome reflected in the store's health.
    fn guarded<T>(&mut self, unit: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if let Some(why) = &self.fatal {
            return Err(StoreError::Unavailable(why.clone()));
        }
        self.ensure_connection()?;
        match catch_unwind(AssertUnwindSafe(|| unit(self))) {
            Ok(Ok(v)) => {
                self.recovered();
                Ok(v)
            }
            Ok(Err(e)) => {
                if let StoreError::Unavailable(reason) = &e {
                    self.troubled(reason.clone());
                } else if self.conn.as_ref().is_some_and(|c| !c.is_autocommit()) {
                    // The rollback did not happen: a connection stuck inside a transaction
                    // would fail every later unit, so it is replaced like a faulty one.
                    tracing::error!(error = %e, "a failed write left its transaction open; reopening the connection");
                    self.conn = None;
                }
                Err(e)
            }
            Err(panic) => {
                let reason = format!("the writer failed: {}", panic_message(&*panic));
                tracing::error!(%reason, "a panic in the writer; its batch is refused and the connection reopened");
                self.troubled(reason.clone());
                Err(StoreError::Unavailable(reason))
            }
        }
    }

    fn ensure_connection(&mut self) -> Result<(), StoreError> {
        if self.conn.is_some() && !self.rewarm {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(t) = &self.trouble {
            if now < t.next_reopen {
                return Err(StoreError::Unavailable(t.reason.clone()));
            }
        }
        match self.reopen() {
            Ok(()) => {
                if let Some(t) = self.trouble.as_mut() {
                    t.reopen_failures = 0;
                }
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                let t = self.trouble.get_or_insert_with(|| Trouble {
                    reason: e.to_string(),
                    since: now,
                    next_reopen: now,
                    next_probe: now,
                    reopen_failures: 0,
                });
                t.reopen_failures += 1;
                t.next_reopen = now + REOPEN_EVERY;
                t.next_probe = t.next_reopen;
                t.reason = format!("cannot reopen the database: {e}");
                let (failures, reason) = (t.reopen_failures, t.reason.clone());
                self.shared.set_health(Health::Unavailable(reason.clone()));
                tracing::warn!(attempt = failures, error = %e, "cannot reopen the database");
                if failures >= MAX_REOPEN_ATTEMPTS {
                    self.give_up(format!(
                        "the writer could not reopen {} after {failures} attempts: {e}",
                        self.path.display()
                    ));
                }
                Err(StoreError::Unavailable(reason))
            }
        }
    }

    /// A fresh connection, to the same file at the same layout (a file that vanished or was
    /// replaced is not silently recreated), and the in-memory state checked against it.
    fn reopen(&mut self) -> Result<(), StoreError> {
        #[cfg(feature = "fault-injection")]
        if self.shared.faults.reopen.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected: the database cannot be opened".into()));
        }
        self.conn = None;
        let conn = layout::open_writer(&self.path)?;
        match layout::layout_of(&conn, &self.path)? {
            Some(layout::LAYOUT) => {}
            other => {
                return Err(StoreError::internal(format!(
                    "{} is no longer this store (layout {other:?})",
                    self.path.display()
                )))
            }
        }
        self.conn = Some(conn);
        // A failed commit may or may not have reached the file: take the truth from it.
        if self.rewarm {
            self.warm()?;
            self.rewarm = false;
        } else {
            self.reload()?;
        }
        // Newest positions too (such a commit never told them): looked up again, and the sinks
        // woken to look.
        {
            let mut newest = self.shared.newest.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.newest_generation.fetch_add(1, Ordering::SeqCst);
            newest.clear();
        }
        self.shared.appended.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A unit of work failed with a fault: drop the connection (a fresh one is opened before
    /// the next unit) and report the store unavailable.
    fn troubled(&mut self, reason: String) {
        self.conn = None;
        let now = Instant::now();
        match self.trouble.as_mut() {
            Some(t) => t.reason = reason.clone(),
            None => {
                tracing::error!(%reason, "writes fail; refusing them with 503 and probing every second");
                self.trouble = Some(Trouble {
                    reason: reason.clone(),
                    since: now,
                    next_reopen: now,
                    next_probe: now + PROBE_EVERY,
                    reopen_failures: 0,
                });
            }
        }
        if self.fatal.is_none() {
            self.shared.set_health(Health::Unavailable(reason));
        }
    }

    fn recovered(&mut self) {
        if let Some(t) = self.trouble.take() {
            tracing::warn!(after = ?t.since.elapsed(), "writes work again");
            self.shared.set_health(Health::Writable);
        }
    }

    fn give_up(&mut self, why: String) {
        if self.fatal.is_some() {
            return;
        }
        tracing::error!(reason = %why, "the writer cannot be brought back; the store is fatal");
        self.fatal = Some(why.clone());
        self.shared.set_health(Health::Unavailable(why.clone()));
        self.shared.fatal.send_replace(Some(why));
    }
}

/// The `meta` key of the newest position ever given to an event, kept by the transactions that delete events
/// (purges, data deletions): the largest `seq` left in the table may then be lower, and a restarted writer must
/// not give the deleted positions out again (see `commit_appends`).
const HIGHEST_SEQ: &str = "highest_seq";

fn keep_highest_seq(tx: &Connection, head: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
    )
    .classified()?
    .execute(params![HIGHEST_SEQ, head])
    .classified()?;
    Ok(())
}

/// Commits a writer transaction (where the fault hooks act, when compiled in).
fn commit(tx: Transaction<'_>, shared: &Shared) -> Result<(), StoreError> {
    #[cfg(feature = "fault-injection")]
    {
        if shared.faults.panic.load(Ordering::SeqCst) {
            panic!("injected panic in the writer's commit");
        }
        if shared.faults.io_error.load(Ordering::SeqCst) {
            drop(tx);
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_WRITE),
                Some("injected I/O error".into()),
            );
            return Err(crate::error::classify(e));
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = shared;
    tx.commit().classified()
}

/// The same error for every request of a failed batch.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Overloaded => StoreError::Overloaded,
        other => StoreError::internal(other.to_string()),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

enum Wake {
    Control(Control),
    Append(AppendJob),
    Tick,
    Closed,
}

/// Sleeps until a command, an append or the deadline; commands first.
async fn wait(
    appends: &mut mpsc::Receiver<AppendJob>,
    control: &mut mpsc::Receiver<Control>,
    deadline: Option<Instant>,
) -> Wake {
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        c = control.recv() => c.map_or(Wake::Closed, Wake::Control),
        j = appends.recv() => j.map_or(Wake::Closed, Wake::Append),
        () = sleep => Wake::Tick,
    }
}

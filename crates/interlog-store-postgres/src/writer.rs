//! The write path: one group-commit writer per node (on its own thread, `lib.rs`), and reads of a dataset's log.
//!
//! Every request waiting when the writer comes round goes into one transaction (up to
//! `max_batch_events`), so one WAL flush answers them all. Per dataset in the batch, the
//! transaction first takes the dataset's `event_logs` row (`last_seq += n`, in dataset order so
//! two nodes never deadlock): its lock is held to the commit, so a second node committing to
//! the same dataset waits and then numbers its events after ours. Positions therefore grow in
//! commit order across nodes, and a reader that has seen `seq = n` never later finds a smaller
//! one committed (README point 2). A request is answered only after `COMMIT` returned; a commit
//! whose outcome is unknown (the connection died during it) fails every request in it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures_util::pin_mut;
use interlog_model::{Interaction, Record};
use interlog_store::window::Window;
use interlog_store::{AppendOutcome, BulkRemoval, Entries, StoreError, StoredEvent, StoredRecord, WriterOptions};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::db::{Conn, InsertMode};
use crate::error::Fail;
use crate::Shared;

pub(crate) struct Job {
    pub(crate) dataset_id: i64,
    /// Events to append or keyed records to upsert: one queue, so both commit in arrival order.
    pub(crate) entries: Entries,
    /// The import job whose chunk this is (its rows are marked with it and bypass the retry window); `None` for a
    /// Put* request.
    pub(crate) import_job: Option<i64>,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

impl Job {
    /// The job's events; none for a job of records.
    fn events(&self) -> &[Interaction] {
        match &self.entries {
            Entries::Events(e) => e,
            Entries::Records(_) => &[],
        }
    }
}

pub(crate) const COLUMNS: &str =
    "dataset_id, seq, event_id, session_id, user_id, item_id, event_type, event_value, sent_at, \
                       properties, recommendation_id, impression, attribution_source, received_at, flags, import_job";

const TYPES: [Type; COLUMN_COUNT] = [
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::BYTEA,
    Type::BYTEA_ARRAY,
    Type::BYTEA,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT8,
];

/// Columns of one event row, hence parameters per row of a multi-row INSERT.
const COLUMN_COUNT: usize = 16;

/// Rows per multi-row INSERT statement (16 parameters each, under PostgreSQL's 65,535).
const INSERT_ROWS: usize = 1000;

/// One event as the row's column values, borrowed from the request.
struct EventRow<'a> {
    dataset_id: i64,
    seq: i64,
    event_id: &'a [u8],
    session_id: &'a [u8],
    user_id: Option<&'a [u8]>,
    item_id: Option<&'a [u8]>,
    event_type: &'a [u8],
    event_value: Option<f64>,
    sent_at: f64,
    properties: Option<&'a str>,
    recommendation_id: Option<&'a [u8]>,
    impression: Option<Vec<&'a [u8]>>,
    attribution_source: Option<&'a [u8]>,
    received_at: f64,
    /// JSON text, `None` for an event without flags.
    flags: Option<String>,
    import_job: Option<i64>,
}

impl<'a> EventRow<'a> {
    fn new(dataset_id: i64, seq: i64, e: &'a Interaction, received_at: f64, import_job: Option<i64>) -> Self {
        EventRow {
            dataset_id,
            seq,
            event_id: e.event_id.as_bytes(),
            session_id: e.session_id.as_bytes(),
            user_id: e.user_id.as_deref().map(str::as_bytes),
            item_id: e.item_id.as_deref().map(str::as_bytes),
            event_type: e.event_type.as_bytes(),
            event_value: e.event_value,
            sent_at: e.sent_at,
            properties: e.properties.as_deref(),
            recommendation_id: e.recommendation_id.as_deref().map(str::as_bytes),
            impression: e.impression.as_ref().map(|l| l.iter().map(|s| s.as_bytes()).collect()),
            attribution_source: e.event_attribution_source.as_deref().map(str::as_bytes),
            received_at,
            flags: interlog_model::flag::encode_flags(&e.flags),
            import_job,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); COLUMN_COUNT] {
        [
            &self.dataset_id,
            &self.seq,
            &self.event_id,
            &self.session_id,
            &self.user_id,
            &self.item_id,
            &self.event_type,
            &self.event_value,
            &self.sent_at,
            &self.properties,
            &self.recommendation_id,
            &self.impression,
            &self.attribution_source,
            &self.received_at,
            &self.flags,
            &self.import_job,
        ]
    }
}

/// Counters and the commit-size/latency record the writer keeps.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) window: Window,
    pub(crate) options: WriterOptions,
    pub(crate) insert: InsertMode,
}

impl Writer {
    /// Takes every waiting request into one commit until the queue closes or shutdown is
    /// signalled; then commits what is still queued and stops.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Job>, mut shutdown: watch::Receiver<bool>) {
        let mut batch = Vec::new();
        loop {
            let first = tokio::select! {
                job = rx.recv() => job,
                _ = stopped(&mut shutdown) => {
                    rx.close();
                    None
                }
            };
            // After a shutdown, what is still queued is committed before the writer stops.
            let first = match first {
                Some(job) => Some(job),
                None => rx.recv().await,
            };
            let Some(first) = first else { break };
            let mut events = first.entries.len();
            batch.push(first);
            while events < self.options.max_batch_events {
                match rx.try_recv() {
                    Ok(job) => {
                        events += job.entries.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
        }
        tracing::debug!("PostgreSQL writer stopped");
    }

    async fn commit(&mut self, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let shared = self.shared.clone();
        let result = match shared.db.writer_conn().await {
            Ok(mut conn) => {
                match tokio::time::timeout(shared.db.timeout, self.write(&mut conn, batch)).await {
                    Ok(r) => {
                        conn.keep();
                        r.map_err(Fail::into_store)
                    }
                    // Cut off, maybe mid-COMMIT: the outcome is unknown, so it is a failure
                    // (the client retries; a copy that did commit is removed by UniqueEvents).
                    Err(_) => Err(shared.db.timed_out()),
                }
            }
            Err(e) => Err(e),
        };
        self.options.observer.committed(interlog_store::CommitReport {
            requests: batch.len(),
            entries: batch.iter().map(|j| j.entries.len()).sum(),
            duration: started.elapsed(),
            ok: result.is_ok(),
        });
        let c = &shared.counters;
        match result {
            Ok(replies) => {
                shared.writer_ok();
                c.commit(started.elapsed());
                shared.appended.send_modify(|n| *n += 1);
                for (job, outcome) in batch.drain(..).zip(replies) {
                    if let (Ok(o), Entries::Events(_)) = (&outcome, &job.entries) {
                        c.stored(o.stored as u64, o.duplicates as u64);
                    }
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                c.failed();
                tracing::error!(error = %e, requests = batch.len(), "commit failed; no request of it was acknowledged");
                if let StoreError::Unavailable(reason) = &e {
                    shared.writer_failed(reason.clone());
                }
                let message = e.to_string();
                for job in batch.drain(..) {
                    let err = match &e {
                        StoreError::Unavailable(r) => StoreError::Unavailable(r.clone()),
                        StoreError::Invalid(r) => StoreError::Invalid(r.clone()),
                        _ => StoreError::internal(message.clone()),
                    };
                    let _ = job.reply.send(Err(err));
                }
            }
        }
    }

    /// One transaction for the whole batch; per request its outcome (a request to a deleted
    /// dataset fails alone).
    async fn write(&mut self, conn: &mut Conn, batch: &[Job]) -> Result<Vec<Result<AppendOutcome, StoreError>>, Fail> {
        let received_at = interlog_store::now();
        // Each event's window key, hashed once.
        let keys: Vec<Vec<u64>> = batch
            .iter()
            .map(|job| job.events().iter().map(|e| self.window.key(job.dataset_id, &e.event_id)).collect())
            .collect();
        // Window hits, confirmed against the stored rows before anything is dropped.
        let mut candidates: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (job, keys) in batch.iter().zip(&keys).filter(|(j, _)| j.import_job.is_none()) {
            for key in keys {
                if let Some(seq) = self.window.get(*key) {
                    candidates.entry(job.dataset_id).or_default().push(seq);
                }
            }
        }
        let tx = conn.transaction().await?;
        let mut confirmed: HashMap<(i64, i64), Vec<u8>> = HashMap::new();
        for (dataset_id, seqs) in &candidates {
            let stmt =
                tx.prepare_cached("SELECT seq, event_id FROM events WHERE dataset_id = $1 AND seq = ANY($2)").await?;
            for r in tx.query(&stmt, &[dataset_id, seqs]).await? {
                confirmed.insert((*dataset_id, r.get(0)), r.get(1));
            }
        }
        // Which events to store: neither a confirmed repeat nor a repeat inside the batch.
        let mut outcomes: Vec<AppendOutcome> = vec![AppendOutcome::default(); batch.len()];
        let mut keep: Vec<Vec<bool>> = Vec::with_capacity(batch.len());
        let mut in_batch: HashSet<(i64, &str)> = HashSet::new();
        let mut per_dataset: BTreeMap<i64, i64> = BTreeMap::new();
        // Each (dataset, ID) of the batch's records once, with its latest write.
        let latest = latest_records(batch);
        for (dataset_id, _) in latest.keys() {
            // Records take the dataset's log row too: one position per record written (migration 9), and its
            // lock orders them against a concurrent delete of the dataset, which they must not outlive.
            *per_dataset.entry(*dataset_id).or_default() += 1;
        }
        for (j, (job, keys)) in batch.iter().zip(&keys).enumerate() {
            if let Entries::Records(records) = &job.entries {
                outcomes[j].stored = records.len();
                per_dataset.entry(job.dataset_id).or_default();
                keep.push(Vec::new());
                continue;
            }
            let mut flags = Vec::with_capacity(job.events().len());
            for (e, key) in job.events().iter().zip(keys) {
                // An import's rows bypass the window (a million historical eventIds would push out the live
                // clients' recent ones); the reader removes repeats exactly.
                if job.import_job.is_some() {
                    outcomes[j].stored_one(e);
                    *per_dataset.entry(job.dataset_id).or_default() += 1;
                    flags.push(true);
                    continue;
                }
                let stored_before = self.window.get(*key).is_some_and(|seq| {
                    confirmed.get(&(job.dataset_id, seq)).is_some_and(|id| id.as_slice() == e.event_id.as_bytes())
                });
                let repeat = stored_before || !in_batch.insert((job.dataset_id, e.event_id.as_str()));
                if repeat {
                    outcomes[j].duplicates += 1;
                } else {
                    outcomes[j].stored_one(e);
                    *per_dataset.entry(job.dataset_id).or_default() += 1;
                }
                flags.push(!repeat);
            }
            keep.push(flags);
        }
        // Positions, in dataset order (the lock order every node uses).
        let mut next: HashMap<i64, i64> = HashMap::new();
        let mut deleted: HashSet<i64> = HashSet::new();
        for (&dataset_id, &n) in &per_dataset {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO event_logs(dataset_id, last_seq) VALUES ($1, $2) ON CONFLICT (dataset_id) \
                     DO UPDATE SET last_seq = event_logs.last_seq + EXCLUDED.last_seq \
                     RETURNING last_seq, deleted IS NOT NULL",
                )
                .await?;
            let r = tx.query_one(&stmt, &[&dataset_id, &n]).await?;
            let (last, gone): (i64, bool) = (r.get(0), r.get(1));
            if gone {
                deleted.insert(dataset_id);
            }
            next.insert(dataset_id, last - n + 1);
        }
        let mut rows: Vec<EventRow<'_>> = Vec::new();
        let mut window_entries: Vec<(u64, i64)> = Vec::new();
        for ((job, flags), keys) in batch.iter().zip(&keep).zip(&keys) {
            if deleted.contains(&job.dataset_id) {
                continue;
            }
            for ((e, key), _) in job.events().iter().zip(keys).zip(flags).filter(|(_, k)| **k) {
                let seq = next.get_mut(&job.dataset_id).expect("a position for every dataset with events");
                rows.push(EventRow::new(job.dataset_id, *seq, e, received_at, job.import_job));
                if job.import_job.is_none() {
                    window_entries.push((*key, *seq));
                }
                *seq += 1;
            }
        }
        if !rows.is_empty() {
            match self.insert {
                InsertMode::Copy => {
                    // Prepared once per connection: one round trip less per commit.
                    let copy =
                        tx.prepare_cached(&format!("COPY events ({COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
                    let sink = tx.copy_in(&copy).await?;
                    let writer = BinaryCopyInWriter::new(sink, &TYPES);
                    pin_mut!(writer);
                    for row in &rows {
                        writer.as_mut().write(&row.params()).await?;
                    }
                    writer.finish().await?;
                }
                InsertMode::Insert => {
                    for chunk in rows.chunks(INSERT_ROWS) {
                        let stmt = tx.prepare_cached(&insert_sql(chunk.len())).await?;
                        let params: Vec<&(dyn ToSql + Sync)> = chunk.iter().flat_map(|r| r.params()).collect();
                        tx.execute(&stmt, &params).await?;
                    }
                }
            }
        }
        // The records' positions follow the events' in `next` (a dataset holds one or the other).
        upsert_records(&tx, latest, &deleted, &next, received_at).await?;
        tx.commit().await?;
        // Only committed events enter the window.
        for (key, seq) in window_entries {
            self.window.insert(key, seq);
        }
        Ok(batch
            .iter()
            .zip(outcomes)
            .map(|(job, o)| {
                if deleted.contains(&job.dataset_id) {
                    Err(StoreError::NotFound(format!("the dataset with id {} was deleted", job.dataset_id)))
                } else {
                    Ok(o)
                }
            })
            .collect())
    }
}

/// A record's latest write in a batch: its arrival order among the batch's records, the record, and the import
/// job that made it, if any.
type Latest<'a> = (usize, &'a Record, Option<i64>);

/// The batch's records, each (dataset, ID) once with its latest write in arrival order.
fn latest_records(batch: &[Job]) -> BTreeMap<(i64, &[u8]), Latest<'_>> {
    let mut latest = BTreeMap::new();
    let mut arrival = 0;
    for job in batch {
        if let Entries::Records(records) = &job.entries {
            for r in records {
                latest.insert((job.dataset_id, r.id.as_bytes()), (arrival, r, job.import_job));
                arrival += 1;
            }
        }
    }
    latest
}

/// Upserts the batch's latest records in key order (the order every node locks rows in, so two nodes never
/// deadlock), each with a new position: per dataset from `next` on, in the arrival order of the writes.
async fn upsert_records(
    tx: &deadpool_postgres::Transaction<'_>,
    mut latest: BTreeMap<(i64, &[u8]), Latest<'_>>,
    deleted: &HashSet<i64>,
    next: &HashMap<i64, i64>,
    received_at: f64,
) -> Result<(), Fail> {
    latest.retain(|(d, _), _| !deleted.contains(d));
    if latest.is_empty() {
        return Ok(());
    }
    let mut by_arrival: Vec<(usize, i64)> = latest.iter().map(|((d, _), (n, _, _))| (*n, *d)).collect();
    by_arrival.sort_unstable();
    let mut position_of: HashMap<usize, i64> = HashMap::with_capacity(by_arrival.len());
    let mut next = next.clone();
    for (n, d) in by_arrival {
        let p = next.get_mut(&d).expect("a position for every dataset with records");
        position_of.insert(n, *p);
        *p += 1;
    }
    let datasets: Vec<i64> = latest.keys().map(|k| k.0).collect();
    let ids: Vec<&[u8]> = latest.keys().map(|k| k.1).collect();
    let properties: Vec<Option<&str>> = latest.values().map(|(_, r, _)| r.properties.as_deref()).collect();
    let flags: Vec<Option<String>> =
        latest.values().map(|(_, r, _)| interlog_model::flag::encode_flags(&r.flags)).collect();
    let jobs: Vec<Option<i64>> = latest.values().map(|(_, _, j)| *j).collect();
    let positions: Vec<i64> = latest.values().map(|(n, _, _)| position_of[n]).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO records(dataset_id, record_id, properties, received_at, flags, import_job, position) \
             SELECT d, i, p, $4, f, j, s \
             FROM unnest($1::bigint[], $2::bytea[], $3::text[], $5::text[], $6::bigint[], $7::bigint[]) \
             WITH ORDINALITY AS r(d, i, p, f, j, s, n) \
             ORDER BY n \
             ON CONFLICT (dataset_id, record_id) DO UPDATE \
             SET properties = EXCLUDED.properties, received_at = EXCLUDED.received_at, flags = EXCLUDED.flags, \
                 import_job = EXCLUDED.import_job, position = EXCLUDED.position",
        )
        .await?;
    tx.execute(&stmt, &[&datasets, &ids, &properties, &received_at, &flags, &jobs, &positions]).await?;
    Ok(())
}

/// Removes up to `limit` imported rows of a dataset, events first, then records (their partial indexes of
/// migration 8 find them without a scan), in one transaction; returns how many.
pub(crate) async fn remove_bulk(c: &mut Conn, dataset_id: i64, what: BulkRemoval, limit: usize) -> Result<usize, Fail> {
    let (cond, job) = match what {
        BulkRemoval::Job(job) => ("import_job = $2", job),
        BulkRemoval::AllBut(job) => ("import_job <> $2", job),
    };
    let limit = limit.min(i64::MAX as usize) as i64;
    let tx = c.transaction().await?;
    let events = tx
        .execute(
            &format!(
                "DELETE FROM events WHERE dataset_id = $1 AND seq IN (SELECT seq FROM events \
                 WHERE dataset_id = $1 AND import_job IS NOT NULL AND {cond} LIMIT $3)"
            ),
            &[&dataset_id, &job, &limit],
        )
        .await? as i64;
    let records = if events < limit {
        tx.execute(
            &format!(
                "DELETE FROM records WHERE dataset_id = $1 AND record_id IN (SELECT record_id FROM records \
                 WHERE dataset_id = $1 AND import_job IS NOT NULL AND {cond} LIMIT $3)"
            ),
            &[&dataset_id, &job, &(limit - events)],
        )
        .await? as i64
    } else {
        0
    };
    tx.commit().await?;
    Ok((events + records) as usize)
}

/// The columns [`stored_record`] reads, in its order.
const RECORD_COLUMNS: &str = "record_id, properties, received_at, flags, import_job, position";

fn stored_record(r: &tokio_postgres::Row) -> Result<StoredRecord, Fail> {
    Ok(StoredRecord {
        position: r.try_get(5)?,
        received_at: r.try_get(2)?,
        record: Record {
            id: text(r, 0)?,
            properties: r.try_get(1)?,
            flags: interlog_model::flag::decode_flags(r.try_get::<_, Option<&str>>(3)?),
        },
        bulk: r.try_get::<_, Option<i64>>(4)?.is_some(),
    })
}

/// One page of a keyed dataset's records written after position `after`, in position order (a range of
/// `records_by_position`).
pub(crate) async fn read_changed_records(
    c: &deadpool_postgres::ClientWrapper,
    dataset_id: i64,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredRecord>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE dataset_id = $1 AND position > $2 ORDER BY position LIMIT $3"
        ))
        .await?;
    let rows = c.query(&stmt, &[&dataset_id, &after, &(limit.min(i64::MAX as usize) as i64)]).await?;
    rows.iter().map(stored_record).collect()
}

/// One page of a keyed dataset's records, in ID order.
pub(crate) async fn read_records(
    c: &deadpool_postgres::ClientWrapper,
    dataset_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredRecord>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records \
             WHERE dataset_id = $1 AND ($2::bytea IS NULL OR record_id > $2) ORDER BY record_id LIMIT $3"
        ))
        .await?;
    let after = after.map(str::as_bytes);
    let rows = c.query(&stmt, &[&dataset_id, &after, &(limit.min(i64::MAX as usize) as i64)]).await?;
    rows.iter().map(stored_record).collect()
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO events ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMN_COUNT {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * COLUMN_COUNT + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Fills the window with the newest events of every live dataset, so a retry that crosses a
/// restart is still dropped at the door.
pub(crate) async fn warm(c: &tokio_postgres::Client, window: &mut Window, capacity: usize) -> Result<(), Fail> {
    if capacity == 0 {
        return Ok(());
    }
    let datasets = c.query("SELECT dataset_id FROM event_logs WHERE deleted IS NULL", &[]).await?;
    // The newest of each dataset, so start-up reads about one window in all however many
    // datasets there are (a busy dataset still gets at least 4,096).
    let per_dataset = (capacity / datasets.len().max(1)).max(4096).min(capacity) as i64;
    let mut recent: Vec<(f64, i64, i64, String)> = Vec::new();
    for d in datasets {
        let dataset_id: i64 = d.get(0);
        let rows = c
            .query(
                "SELECT seq, event_id, received_at FROM events WHERE dataset_id = $1 ORDER BY seq DESC LIMIT $2",
                &[&dataset_id, &per_dataset],
            )
            .await?;
        for r in rows {
            let id: Vec<u8> = r.get(1);
            // An id that is not UTF-8 was not written by interlog; it can never be a repeat.
            if let Ok(id) = String::from_utf8(id) {
                recent.push((r.get(2), dataset_id, r.get(0), id));
            }
        }
    }
    recent.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
    let skip = recent.len().saturating_sub(capacity);
    for (_, dataset_id, seq, id) in recent.into_iter().skip(skip) {
        let key = window.key(dataset_id, &id);
        window.insert(key, seq);
    }
    Ok(())
}

/// One page of a dataset's log between two positions, `after < seq <= until` (`i64::MAX`: every
/// position after `after`, what `EventStore::read` asks): an export's readers each send their own
/// range, so neither reads rows the other will.
pub(crate) async fn read_range(
    c: &deadpool_postgres::ClientWrapper,
    dataset_id: i64,
    after: i64,
    until: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE dataset_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        ))
        .await?;
    let rows = c.query(&stmt, &[&dataset_id, &after, &until, &(limit.min(i64::MAX as usize) as i64)]).await?;
    rows.iter().map(stored_event).collect()
}

fn text(r: &tokio_postgres::Row, i: usize) -> Result<String, Fail> {
    let bytes: Vec<u8> = r.try_get(i)?;
    String::from_utf8(bytes)
        .map_err(|e| StoreError::internal(format!("a stored event holds invalid UTF-8: {e}")).into())
}

fn opt_text(r: &tokio_postgres::Row, i: usize) -> Result<Option<String>, Fail> {
    let bytes: Option<Vec<u8>> = r.try_get(i)?;
    bytes
        .map(|b| {
            String::from_utf8(b).map_err(|e| StoreError::internal(format!("a stored event holds invalid UTF-8: {e}")))
        })
        .transpose()
        .map_err(Fail::from)
}

pub(crate) fn stored_event(r: &tokio_postgres::Row) -> Result<StoredEvent, Fail> {
    let impression: Option<Vec<Vec<u8>>> = r.try_get(11)?;
    let impression = impression
        .map(|l| l.into_iter().map(String::from_utf8).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|e| StoreError::internal(format!("a stored impression holds invalid UTF-8: {e}")))?;
    Ok(StoredEvent {
        seq: r.try_get(1)?,
        received_at: r.try_get(13)?,
        interaction: Interaction {
            event_id: text(r, 2)?,
            session_id: text(r, 3)?,
            user_id: opt_text(r, 4)?,
            item_id: opt_text(r, 5)?,
            event_type: text(r, 6)?,
            event_value: r.try_get(7)?,
            sent_at: r.try_get(8)?,
            properties: r.try_get(9)?,
            recommendation_id: opt_text(r, 10)?,
            impression,
            event_attribution_source: opt_text(r, 12)?,
            flags: interlog_model::flag::decode_flags(r.try_get::<_, Option<&str>>(14)?),
        },
        bulk: r.try_get::<_, Option<i64>>(15)?.is_some(),
    })
}

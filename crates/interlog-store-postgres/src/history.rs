//! The history index on PostgreSQL (migration 7): `history(dataset_id, kind, who, seq)`, filled
//! by a background task on every node, never by the writer (`interlog_store::history`).
//!
//! Positions are per dataset, so the indexer keeps one cursor per dataset (`sink_cursors` rows
//! named `history`). A chunk locks its dataset's cursor row with `SKIP LOCKED`, so nodes share
//! the work without doing any of it twice, copies the users and sessions of the events after the
//! cursor into the index with one `INSERT ... SELECT` (no event leaves the database) and moves
//! the cursor in the same transaction, committed without waiting for the WAL flush: a chunk lost
//! to a crash is only done again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use interlog_store::history::{newest_first, HISTORY_CURSOR};
use interlog_store::{StoreError, StoredEvent, Who};
use tokio::sync::watch;

use crate::error::Fail;
use crate::writer::{stored_event, COLUMNS};
use crate::Shared;

/// Positions one chunk indexes in one dataset.
const INDEX_CHUNK: i64 = 20_000;
/// How often the indexer looks for new events when nothing woke it.
const POLL: Duration = Duration::from_millis(500);
/// The indexer works once this node has not committed an append for this long: at saturation
/// the database's CPU and WAL are the writers' (indexing beside them was measured to cost
/// PutEvents a fifth of its events/s on two cores; docs/benchmarks.md "History")...
const INDEX_IDLE: Duration = Duration::from_millis(20);
/// ...or this long after a window of [`RATE_WINDOW`] in which this node stored more than
/// [`BUSY_EVENTS`] events: under a heavy load, commits that pause for 20 ms are the node's
/// starved workers, not a pause of the load.
const INDEX_IDLE_BUSY: Duration = Duration::from_millis(200);
const RATE_WINDOW: Duration = Duration::from_millis(100);
const BUSY_EVENTS: u64 = 1_000;
/// ...unless a dataset lags more than this many positions behind: then it indexes under load
/// too, so the lag every query's scan of the unindexed tail pays for stays bounded.
pub(crate) const INDEX_MAX_LAG: i64 = 1_000_000;

/// Runs until the store shuts down: indexes while there is something to index and this node is
/// idle (or something lags too far), then waits for this node's next commit or the poll (other
/// nodes' commits).
pub(crate) async fn indexer(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut appended = shared.appended.subscribe();
    let mut load = Load::new(stored(&shared));
    loop {
        appended.borrow_and_update();
        match behind(&shared).await {
            Ok(behind) if !behind.is_empty() => {
                let far = behind.iter().any(|&(_, from, last)| last - from > INDEX_MAX_LAG);
                if !far {
                    match quiet(&shared, &mut load, &mut appended, &mut shutdown).await {
                        Quiet::Stop => return,
                        // Still busy after a poll's time: look at the lag again.
                        Quiet::Busy => continue,
                        Quiet::Idle => {}
                    }
                }
                let mut any = false;
                for (dataset_id, _, last) in behind {
                    match index_chunk(&shared, dataset_id, last).await {
                        Ok(made) => any |= made,
                        Err(e) => tracing::warn!(error = %e, dataset_id, "indexing the history failed; retrying"),
                    }
                }
                if any {
                    // A breath between chunks leaves the database to the writers.
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "indexing the history failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = appended.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

enum Quiet {
    /// No commit of this node for [`INDEX_IDLE`].
    Idle,
    /// Commits kept coming for a [`POLL`].
    Busy,
    Stop,
}

fn stored(shared: &Shared) -> u64 {
    shared.counters.events_stored.load(std::sync::atomic::Ordering::Relaxed)
}

/// How heavy this node's append load is: the events it stored in the current [`RATE_WINDOW`] and
/// (on average) in the windows before.
struct Load {
    start: Instant,
    at_start: u64,
    previous: u64,
}

impl Load {
    fn new(stored: u64) -> Load {
        Load { start: Instant::now(), at_start: stored, previous: 0 }
    }

    fn busy(&mut self, stored: u64) -> bool {
        let since = self.start.elapsed();
        if since >= RATE_WINDOW {
            let per_window =
                u128::from(stored.saturating_sub(self.at_start)) * RATE_WINDOW.as_nanos() / since.as_nanos().max(1);
            self.previous = u64::try_from(per_window).unwrap_or(u64::MAX);
            (self.start, self.at_start) = (Instant::now(), stored);
        }
        stored.saturating_sub(self.at_start).max(self.previous) > BUSY_EVENTS
    }
}

/// Waits until this node has not committed an append for [`INDEX_IDLE`] ([`INDEX_IDLE_BUSY`]
/// under a heavy load), for a [`POLL`] at most.
async fn quiet(
    shared: &Shared,
    load: &mut Load,
    appended: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> Quiet {
    let give_up = tokio::time::Instant::now() + POLL;
    loop {
        let idle = if load.busy(stored(shared)) { INDEX_IDLE_BUSY } else { INDEX_IDLE };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return Quiet::Stop,
            _ = tokio::time::sleep_until(give_up) => return Quiet::Busy,
            changed = appended.changed() => {
                if changed.is_err() {
                    return Quiet::Stop;
                }
            }
            _ = tokio::time::sleep(idle) => return Quiet::Idle,
        }
    }
}

/// The live datasets with events past their cursor: (dataset, cursor, last position).
async fn behind(shared: &Shared) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    shared
        .db
        .run(async |c| {
            let rows = c
                .query(
                    "SELECT l.dataset_id, coalesce(c.position, 0), l.last_seq FROM event_logs l
                     LEFT JOIN sink_cursors c ON c.sink = $1 AND c.dataset_id = l.dataset_id
                     WHERE l.deleted IS NULL AND l.last_seq > coalesce(c.position, 0)",
                    &[&HISTORY_CURSOR],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        })
        .await
}

async fn index_chunk(shared: &Shared, dataset_id: i64, last: i64) -> Result<bool, StoreError> {
    shared
        .db
        .run(async |c| {
            let tx = c.transaction().await?;
            tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
            tx.execute(
                "INSERT INTO sink_cursors(sink, dataset_id, position, updated)
                 VALUES ($1, $2, 0, extract(epoch from clock_timestamp())::float8) ON CONFLICT DO NOTHING",
                &[&HISTORY_CURSOR, &dataset_id],
            )
            .await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT position FROM sink_cursors WHERE sink = $1 AND dataset_id = $2 FOR UPDATE SKIP LOCKED",
                    &[&HISTORY_CURSOR, &dataset_id],
                )
                .await?
            else {
                // Another node is indexing this dataset.
                return Ok(false);
            };
            let from: i64 = row.get(0);
            let to = last.min(from + INDEX_CHUNK);
            if to <= from {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO history(dataset_id, kind, who, seq)
                 SELECT dataset_id, 1, user_id, seq FROM events
                     WHERE dataset_id = $1 AND seq > $2 AND seq <= $3 AND user_id IS NOT NULL
                 UNION ALL
                 SELECT dataset_id, 2, session_id, seq FROM events WHERE dataset_id = $1 AND seq > $2 AND seq <= $3
                 ON CONFLICT DO NOTHING",
                &[&dataset_id, &from, &to],
            )
            .await?;
            tx.execute(
                "UPDATE sink_cursors SET position = $3::bigint, delivered = delivered + ($3::bigint - $4::bigint),
                     updated = extract(epoch from clock_timestamp())::float8
                 WHERE sink = $1 AND dataset_id = $2",
                &[&HISTORY_CURSOR, &dataset_id, &to, &from],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
}

/// The newest `limit` events of `who`: the index up to the dataset's cursor and the log after
/// it, in one statement (one snapshot).
pub(crate) async fn query(
    c: &deadpool_postgres::ClientWrapper,
    dataset_id: i64,
    who: &Who,
    limit: usize,
) -> Result<Vec<StoredEvent>, Fail> {
    let sql = format!(
        "WITH cur AS (SELECT coalesce((SELECT position FROM sink_cursors WHERE sink = $4 AND dataset_id = $1), 0) AS p)
         (SELECT {COLUMNS} FROM events
              WHERE dataset_id = $1 AND seq > (SELECT p FROM cur) AND {column} = $3 ORDER BY seq DESC LIMIT $5)
         UNION ALL
         (SELECT {COLUMNS} FROM events WHERE dataset_id = $1 AND seq IN
              (SELECT seq FROM history WHERE dataset_id = $1 AND kind = $2 AND who = $3 AND seq <= (SELECT p FROM cur)
               ORDER BY seq DESC LIMIT $5))",
        column = who.column()
    );
    let stmt = c.prepare_cached(&sql).await?;
    let limit_sql = limit.min(i64::MAX as usize) as i64;
    let rows = c.query(&stmt, &[&dataset_id, &who.kind(), &who.id().as_bytes(), &HISTORY_CURSOR, &limit_sql]).await?;
    let events = rows.iter().map(stored_event).collect::<Result<Vec<_>, _>>()?;
    Ok(newest_first(events, limit))
}

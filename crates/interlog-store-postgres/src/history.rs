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
use std::time::Duration;

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

/// Runs until the store shuts down: indexes while there is something to index, then waits for
/// this node's next commit or the poll (other nodes' commits).
pub(crate) async fn indexer(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut appended = shared.appended.subscribe();
    loop {
        match index_round(&shared).await {
            Ok(true) => {
                // A breath between chunks leaves the database to the writers.
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
                continue;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "indexing the history failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = appended.changed() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One chunk in each dataset that has events past its cursor; `true` when any chunk was made.
async fn index_round(shared: &Shared) -> Result<bool, StoreError> {
    let behind: Vec<(i64, i64)> = shared
        .db
        .run(async |c| {
            let rows = c
                .query(
                    "SELECT l.dataset_id, l.last_seq FROM event_logs l
                     LEFT JOIN sink_cursors c ON c.sink = $1 AND c.dataset_id = l.dataset_id
                     WHERE l.deleted IS NULL AND l.last_seq > coalesce(c.position, 0)",
                    &[&HISTORY_CURSOR],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .await?;
    let mut any = false;
    for (dataset_id, last) in behind {
        any |= index_chunk(shared, dataset_id, last).await?;
    }
    Ok(any)
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

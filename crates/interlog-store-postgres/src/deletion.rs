//! Data deletion jobs on PostgreSQL (`EventStore::delete_users`): the users' log rows with their
//! rows of the history index and their dead letters, then their records, each in short
//! transactions of its own, so appends on every node go on meanwhile (deletes touch old rows,
//! appends insert new ones: they never wait for each other's row locks).
//!
//! The events' only index is the primary key (dataset, position), so each dataset's log is
//! scanned by position, [`CHUNK`] positions per transaction, up to its `event_logs.last_seq`
//! read again before every chunk: the scan follows the log to its newest committed position,
//! so an event appended while the job runs goes too. A chunk holds the dataset's history
//! cursor row locked (the indexer locks it for each of its chunks), so the indexer never adds
//! index rows for events this chunk removes. Very long lists of users are worked through in
//! groups of [`USERS_PER_PASS`], one scan each, so no statement carries megabytes of IDs.

use std::collections::HashSet;

use interlog_store::history::HISTORY_CURSOR;
use interlog_store::{StoreError, UserDeletion, UsersDeleted};

use crate::Shared;

/// Positions one chunk looks at.
const CHUNK: i64 = 10_000;
/// User IDs per scan of the log.
const USERS_PER_PASS: usize = 50_000;
/// Records removed per transaction (by primary key).
const RECORDS_PER_CHUNK: usize = 2_000;

pub(crate) async fn delete_users(shared: &Shared, job: UserDeletion) -> Result<UsersDeleted, StoreError> {
    let mut users: Vec<&str> = job.users.iter().map(String::as_str).collect();
    users.sort_unstable();
    let mut deleted = UsersDeleted::default();
    let logs: HashSet<i64> = job.logs.iter().copied().collect();
    for pass in users.chunks(USERS_PER_PASS) {
        let ids: Vec<&[u8]> = pass.iter().map(|u| u.as_bytes()).collect();
        for &dataset in &logs {
            let mut done = 0;
            loop {
                let (events, upto) = chunk(shared, dataset, done, &ids).await?;
                deleted.events += events;
                if upto <= done {
                    break;
                }
                done = upto;
            }
        }
    }
    for pass in users.chunks(RECORDS_PER_CHUNK) {
        let ids: Vec<&[u8]> = pass.iter().map(|u| u.as_bytes()).collect();
        for dataset in &job.records {
            deleted.records += shared
                .db
                .run(async |c| {
                    let stmt =
                        c.prepare_cached("DELETE FROM records WHERE dataset_id = $1 AND record_id = ANY($2)").await?;
                    Ok(c.execute(&stmt, &[dataset, &ids]).await?)
                })
                .await?;
        }
    }
    Ok(deleted)
}

/// One chunk of one dataset's log after `done`: what it removed and how far it got (`done`
/// itself when the log ends there).
async fn chunk(shared: &Shared, dataset: i64, done: i64, users: &[&[u8]]) -> Result<(u64, i64), StoreError> {
    shared
        .db
        .run(async |c| {
            let tx = c.transaction().await?;
            let last: Option<i64> = tx
                .query_opt("SELECT last_seq FROM event_logs WHERE dataset_id = $1", &[&dataset])
                .await?
                .map(|r| r.get(0));
            let upto = last.unwrap_or(0).min(done + CHUNK);
            if upto <= done {
                return Ok((0, done));
            }
            tx.execute(
                "INSERT INTO sink_cursors(sink, dataset_id, position, updated)
                 VALUES ($1, $2, 0, extract(epoch from clock_timestamp())::float8) ON CONFLICT DO NOTHING",
                &[&HISTORY_CURSOR, &dataset],
            )
            .await?;
            tx.execute(
                "SELECT position FROM sink_cursors WHERE sink = $1 AND dataset_id = $2 FOR UPDATE",
                &[&HISTORY_CURSOR, &dataset],
            )
            .await?;
            let removed = tx
                .query(
                    "DELETE FROM events WHERE dataset_id = $1 AND seq > $2 AND seq <= $3 AND user_id = ANY($4)
                     RETURNING seq, user_id, session_id",
                    &[&dataset, &done, &upto, &users],
                )
                .await?;
            if !removed.is_empty() {
                let seqs: Vec<i64> = removed.iter().map(|r| r.get(0)).collect();
                let mut kinds: Vec<i16> = Vec::with_capacity(2 * removed.len());
                let mut whos: Vec<Vec<u8>> = Vec::with_capacity(2 * removed.len());
                let mut at: Vec<i64> = Vec::with_capacity(2 * removed.len());
                for r in &removed {
                    for (kind, who) in [(1i16, r.get::<_, Vec<u8>>(1)), (2, r.get::<_, Vec<u8>>(2))] {
                        kinds.push(kind);
                        whos.push(who);
                        at.push(r.get(0));
                    }
                }
                tx.execute(
                    "DELETE FROM history WHERE dataset_id = $1 AND (kind, who, seq) IN
                     (SELECT * FROM unnest($2::smallint[], $3::bytea[], $4::bigint[]))",
                    &[&dataset, &kinds, &whos, &at],
                )
                .await?;
                // A dead letter points at its event: with the event gone there is nothing to
                // replay, and the letter would still name the user's event.
                tx.execute(
                    "DELETE FROM sink_dead_letters WHERE dataset_id = $1 AND position = ANY($2)",
                    &[&dataset, &seqs],
                )
                .await?;
            }
            tx.commit().await?;
            Ok((removed.len() as u64, upto))
        })
        .await
}

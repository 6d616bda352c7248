//! The sinks' cursors and leases on PostgreSQL: each change is one statement whose condition
//! PostgreSQL re-checks on a row a concurrent transaction just changed, so of two nodes moving
//! one cursor from the same position exactly one wins, and a lease has one holder by the
//! database's clock (no node's clock is trusted).

use std::time::Duration;

use async_trait::async_trait;
use interlog_store::sinks::{backwards, moved, Backlog, Cursor, DeadLetter, Refused, SinkState};
use interlog_store::StoreError;

use crate::error::Fail;
use crate::PostgresStore;

const COLUMNS: &str = "sink, dataset_id, position, delivered, retried, last_error, updated, dead_lettered";
/// Now, by the database's clock, in epoch seconds.
const NOW: &str = "extract(epoch from clock_timestamp())::float8";

fn cursor_row(r: &tokio_postgres::Row) -> Result<Cursor, Fail> {
    Ok(Cursor {
        sink: r.try_get(0)?,
        dataset_id: r.try_get(1)?,
        position: r.try_get(2)?,
        delivered: u64::try_from(r.try_get::<_, i64>(3)?).unwrap_or(0),
        retried: u64::try_from(r.try_get::<_, i64>(4)?).unwrap_or(0),
        last_error: r.try_get(5)?,
        updated: r.try_get(6)?,
        dead_lettered: u64::try_from(r.try_get::<_, i64>(7)?).unwrap_or(0),
    })
}

async fn read_cursor(c: &deadpool_postgres::ClientWrapper, sink: &str, dataset_id: i64) -> Result<Cursor, Fail> {
    let stmt =
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM sink_cursors WHERE sink = $1 AND dataset_id = $2")).await?;
    match c.query_opt(&stmt, &[&sink, &dataset_id]).await? {
        Some(r) => cursor_row(&r),
        None => Ok(Cursor::start(sink, dataset_id)),
    }
}

#[async_trait]
impl SinkState for PostgresStore {
    async fn cursor(&self, sink: &str, dataset_id: i64) -> Result<Cursor, StoreError> {
        self.shared.db.run(async |c| read_cursor(c, sink, dataset_id).await).await
    }

    async fn cursors(&self, sink: &str) -> Result<Vec<Cursor>, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let rows = c
                    .query(&format!("SELECT {COLUMNS} FROM sink_cursors WHERE sink = $1 ORDER BY dataset_id"), &[&sink])
                    .await?;
                rows.iter().map(cursor_row).collect()
            })
            .await
    }

    async fn settle(
        &self,
        sink: &str,
        dataset_id: i64,
        from: i64,
        to: i64,
        delivered: u64,
        retried: u64,
        refused: &[Refused],
    ) -> Result<Cursor, StoreError> {
        if to <= from {
            return Err(backwards(sink, dataset_id, from, to));
        }
        let delivered = i64::try_from(delivered).unwrap_or(i64::MAX);
        let retried = i64::try_from(retried).unwrap_or(i64::MAX);
        let dead = i64::try_from(refused.len()).unwrap_or(i64::MAX);
        self.shared
            .db
            .run(async |c| {
                // From 0 the row may not exist yet: insert it, or move one that stands at 0.
                let sql = if from == 0 {
                    format!(
                        "INSERT INTO sink_cursors(sink, dataset_id, position, delivered, retried, dead_lettered, updated)
                         VALUES ($1, $2, $4, $5, $6, $7, {NOW})
                         ON CONFLICT (sink, dataset_id) DO UPDATE SET position = excluded.position,
                             delivered = sink_cursors.delivered + excluded.delivered,
                             retried = sink_cursors.retried + excluded.retried,
                             dead_lettered = sink_cursors.dead_lettered + excluded.dead_lettered,
                             last_error = NULL, updated = excluded.updated
                         WHERE sink_cursors.position = $3
                         RETURNING {COLUMNS}"
                    )
                } else {
                    format!(
                        "UPDATE sink_cursors SET position = $4, delivered = delivered + $5, retried = retried + $6,
                             dead_lettered = dead_lettered + $7, last_error = NULL, updated = {NOW}
                         WHERE sink = $1 AND dataset_id = $2 AND position = $3
                         RETURNING {COLUMNS}"
                    )
                };
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
                    [&sink, &dataset_id, &from, &to, &delivered, &retried, &dead];
                if refused.is_empty() {
                    return match c.query_opt(&sql, &params).await? {
                        Some(r) => cursor_row(&r),
                        None => {
                            let found = read_cursor(c, sink, dataset_id).await?;
                            Err(moved(sink, dataset_id, from, found.position).into())
                        }
                    };
                }
                // The dead letters and the cursor's move commit together, or neither does.
                let tx = c.transaction().await?;
                let Some(row) = tx.query_opt(&sql, &params).await? else {
                    drop(tx);
                    let found = read_cursor(c, sink, dataset_id).await?;
                    return Err(moved(sink, dataset_id, from, found.position).into());
                };
                let insert = format!(
                    "INSERT INTO sink_dead_letters(sink, dataset_id, position, event_id, reason, attempts, created, updated)
                     VALUES ($1, $2, $3, $4, $5, 1, {NOW}, {NOW})"
                );
                for r in refused {
                    tx.execute(&insert, &[&sink, &dataset_id, &r.position, &r.event_id, &r.reason]).await?;
                }
                let cursor = cursor_row(&row)?;
                tx.commit().await?;
                Ok(cursor)
            })
            .await
    }

    async fn dead_letters(&self, sink: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let rows = c
                    .query(
                        "SELECT id, sink, dataset_id, position, event_id, reason, attempts, created, updated
                         FROM sink_dead_letters WHERE sink = $1 ORDER BY id",
                        &[&sink],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DeadLetter {
                            id: r.try_get(0)?,
                            sink: r.try_get(1)?,
                            dataset_id: r.try_get(2)?,
                            position: r.try_get(3)?,
                            event_id: r.try_get(4)?,
                            reason: r.try_get(5)?,
                            attempts: u64::try_from(r.try_get::<_, i64>(6)?).unwrap_or(0),
                            created: r.try_get(7)?,
                            updated: r.try_get(8)?,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn dead_letter_replayed(&self, sink: &str, id: i64, refused: Option<&str>) -> Result<(), StoreError> {
        let changed = self
            .shared
            .db
            .run(async |c| {
                Ok(match refused {
                    None => {
                        c.execute("DELETE FROM sink_dead_letters WHERE sink = $1 AND id = $2", &[&sink, &id]).await?
                    }
                    Some(reason) => {
                        c.execute(
                            &format!(
                                "UPDATE sink_dead_letters SET reason = $3, attempts = attempts + 1, updated = {NOW}
                                 WHERE sink = $1 AND id = $2"
                            ),
                            &[&sink, &id, &reason],
                        )
                        .await?
                    }
                })
            })
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("sink {sink} has no dead letter {id}")));
        }
        Ok(())
    }

    async fn sink_failed(&self, sink: &str, dataset_id: i64, error: &str) -> Result<(), StoreError> {
        self.shared
            .db
            .run(async |c| {
                c.execute(
                    &format!(
                        "INSERT INTO sink_cursors(sink, dataset_id, position, retried, last_error, updated)
                         VALUES ($1, $2, 0, 1, $3, {NOW})
                         ON CONFLICT (sink, dataset_id) DO UPDATE SET retried = sink_cursors.retried + 1,
                             last_error = excluded.last_error, updated = excluded.updated"
                    ),
                    &[&sink, &dataset_id, &error],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn last_position(&self, dataset_id: i64) -> Result<i64, StoreError> {
        // `event_logs.last_seq` moves in the committing transaction of every node.
        self.shared
            .db
            .run(async |c| {
                let stmt = c
                    .prepare_cached("SELECT coalesce((SELECT last_seq FROM event_logs WHERE dataset_id = $1), 0)")
                    .await?;
                Ok(c.query_one(&stmt, &[&dataset_id]).await?.try_get(0)?)
            })
            .await
    }

    async fn backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let r = c
                    .query_one(
                        "SELECT count(*), min(received_at) FROM events WHERE dataset_id = $1 AND seq > $2",
                        &[&dataset_id, &position],
                    )
                    .await?;
                Ok(Backlog {
                    events: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                    oldest_received_at: r.try_get(1)?,
                })
            })
            .await
    }

    async fn last_record_position(&self, dataset_id: i64) -> Result<i64, StoreError> {
        // Records take their positions from the same `event_logs.last_seq` (migration 9).
        self.last_position(dataset_id).await
    }

    async fn record_backlog(&self, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let r = c
                    .query_one(
                        "SELECT count(*), min(received_at) FROM records WHERE dataset_id = $1 AND position > $2",
                        &[&dataset_id, &position],
                    )
                    .await?;
                Ok(Backlog {
                    events: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
                    oldest_received_at: r.try_get(1)?,
                })
            })
            .await
    }

    async fn lease_sink(&self, sink: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = ttl.as_secs_f64();
        self.shared
            .db
            .run(async |c| {
                let changed = c
                    .execute(
                        &format!(
                            "INSERT INTO sink_leases(sink, node, expires) VALUES ($1, $2, {NOW} + $3)
                             ON CONFLICT (sink) DO UPDATE SET node = excluded.node, expires = excluded.expires
                             WHERE sink_leases.node = excluded.node OR sink_leases.expires < {NOW}"
                        ),
                        &[&sink, &node, &ttl],
                    )
                    .await?;
                Ok(changed == 1)
            })
            .await
    }

    async fn release_sink(&self, sink: &str, node: &str) -> Result<(), StoreError> {
        self.shared
            .db
            .run(async |c| {
                c.execute("DELETE FROM sink_leases WHERE sink = $1 AND node = $2", &[&sink, &node]).await?;
                Ok(())
            })
            .await
    }

    fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.appended.subscribe()
    }
}

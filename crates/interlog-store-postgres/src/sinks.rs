//! The sinks' cursors and leases on PostgreSQL: each change is one statement whose condition
//! PostgreSQL re-checks on a row a concurrent transaction just changed, so of two nodes moving
//! one cursor from the same position exactly one wins, and a lease has one holder by the
//! database's clock (no node's clock is trusted).

use std::time::Duration;

use async_trait::async_trait;
use interlog_store::sinks::{backwards, moved, Backlog, Cursor, SinkState};
use interlog_store::StoreError;

use crate::error::Fail;
use crate::PostgresStore;

const COLUMNS: &str = "sink, dataset_id, position, delivered, retried, last_error, updated";
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

    async fn advance(
        &self,
        sink: &str,
        dataset_id: i64,
        from: i64,
        to: i64,
        delivered: u64,
    ) -> Result<Cursor, StoreError> {
        if to <= from {
            return Err(backwards(sink, dataset_id, from, to));
        }
        let delivered = i64::try_from(delivered).unwrap_or(i64::MAX);
        self.shared
            .db
            .run(async |c| {
                // From 0 the row may not exist yet: insert it, or move one that stands at 0.
                let sql = if from == 0 {
                    format!(
                        "INSERT INTO sink_cursors(sink, dataset_id, position, delivered, updated)
                         VALUES ($1, $2, $4, $5, {NOW})
                         ON CONFLICT (sink, dataset_id) DO UPDATE SET position = excluded.position,
                             delivered = sink_cursors.delivered + excluded.delivered, last_error = NULL,
                             updated = excluded.updated
                         WHERE sink_cursors.position = $3
                         RETURNING {COLUMNS}"
                    )
                } else {
                    format!(
                        "UPDATE sink_cursors SET position = $4, delivered = delivered + $5, last_error = NULL,
                             updated = {NOW}
                         WHERE sink = $1 AND dataset_id = $2 AND position = $3
                         RETURNING {COLUMNS}"
                    )
                };
                match c.query_opt(&sql, &[&sink, &dataset_id, &from, &to, &delivered]).await? {
                    Some(r) => cursor_row(&r),
                    None => {
                        let found = read_cursor(c, sink, dataset_id).await?;
                        Err(moved(sink, dataset_id, from, found.position).into())
                    }
                }
            })
            .await
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

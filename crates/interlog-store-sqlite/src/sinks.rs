//! The sinks' cursors and leases (layout 4) and dead letters (layout 6) in SQLite: reads on any connection, writes on the
//! writer thread like every other write, each in its own short transaction.

use interlog_store::sinks::{backwards, moved, Backlog, Cursor, DeadLetter, Refused};
use interlog_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Classify;

/// A change to the sinks' state, carried to the writer thread.
#[derive(Debug)]
pub enum SinkWrite {
    Advance { sink: String, dataset_id: i64, from: i64, to: i64, delivered: u64, retried: u64, refused: Vec<Refused> },
    Replayed { sink: String, id: i64, refused: Option<String> },
    Failed { sink: String, dataset_id: i64, error: String },
    Lease { sink: String, node: String, ttl: f64 },
    Release { sink: String, node: String },
}

/// What a sink write returns.
#[derive(Debug)]
pub enum SinkWritten {
    Cursor(Cursor),
    Leased(bool),
    Done,
}

const COLUMNS: &str = "sink, dataset_id, position, delivered, retried, last_error, updated, dead_lettered";

fn cursor_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        sink: r.get(0)?,
        dataset_id: r.get(1)?,
        position: r.get(2)?,
        delivered: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        retried: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        last_error: r.get(5)?,
        updated: r.get(6)?,
        dead_lettered: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
    })
}

/// The dead letters of a sink, oldest first.
pub fn dead_letters(conn: &Connection, sink: &str) -> Result<Vec<DeadLetter>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, sink, dataset_id, position, event_id, reason, attempts, created, updated
             FROM sink_dead_letters WHERE sink = ?1 ORDER BY id",
        )
        .classified()?;
    let rows = stmt
        .query_map([sink], |r| {
            Ok(DeadLetter {
                id: r.get(0)?,
                sink: r.get(1)?,
                dataset_id: r.get(2)?,
                position: r.get(3)?,
                event_id: r.get(4)?,
                reason: r.get(5)?,
                attempts: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                created: r.get(7)?,
                updated: r.get(8)?,
            })
        })
        .classified()?;
    rows.collect::<Result<_, _>>().classified()
}

pub fn cursor(conn: &Connection, sink: &str, dataset_id: i64) -> Result<Cursor, StoreError> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sink_cursors WHERE sink = ?1 AND dataset_id = ?2"))
        .classified()?
        .query_row(params![sink, dataset_id], cursor_row)
        .optional()
        .classified()?;
    Ok(found.unwrap_or_else(|| Cursor::start(sink, dataset_id)))
}

pub fn cursors(conn: &Connection, sink: &str) -> Result<Vec<Cursor>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sink_cursors WHERE sink = ?1 ORDER BY dataset_id"))
        .classified()?;
    let rows = stmt.query_map([sink], cursor_row).classified()?;
    rows.collect::<Result<_, _>>().classified()
}

/// The dataset's newest position, walking the log from its end: quick for a dataset with recent
/// events, the whole table for one with none (the store caches the answer).
pub fn newest(conn: &Connection, dataset_id: i64) -> Result<i64, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM events WHERE dataset_id = ?1 ORDER BY seq DESC LIMIT 1")
        .classified()?
        .query_row([dataset_id], |r| r.get(0))
        .optional()
        .classified()?;
    Ok(seq.unwrap_or(0))
}

/// Events after `position` in the dataset's log. `seq` is the table's rowid, so this walks
/// only the rows after the position (of every dataset), never the whole table.
pub fn backlog(conn: &Connection, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
    conn.prepare_cached("SELECT count(*), min(received_at) FROM events WHERE seq > ?1 AND dataset_id = ?2")
        .classified()?
        .query_row(params![position, dataset_id], |r| {
            Ok(Backlog { events: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), oldest_received_at: r.get(1)? })
        })
        .classified()
}

/// The newest position of a keyed dataset's records: the end of `records_by_position`.
pub fn newest_record(conn: &Connection, dataset_id: i64) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT coalesce(max(position), 0) FROM records WHERE dataset_id = ?1")
        .classified()?
        .query_row([dataset_id], |r| r.get(0))
        .classified()
}

/// Records written after `position`: a range of `records_by_position`.
pub fn record_backlog(conn: &Connection, dataset_id: i64, position: i64) -> Result<Backlog, StoreError> {
    conn.prepare_cached("SELECT count(*), min(received_at) FROM records WHERE dataset_id = ?1 AND position > ?2")
        .classified()?
        .query_row(params![dataset_id, position], |r| {
            Ok(Backlog { events: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), oldest_received_at: r.get(1)? })
        })
        .classified()
}

/// Applies one write inside the writer's transaction.
pub fn write(conn: &Connection, w: SinkWrite, now: f64) -> Result<SinkWritten, StoreError> {
    match w {
        SinkWrite::Advance { sink, dataset_id, from, to, delivered, retried, refused } => {
            if to <= from {
                return Err(backwards(&sink, dataset_id, from, to));
            }
            let stored = cursor(conn, &sink, dataset_id)?;
            if stored.position != from {
                return Err(moved(&sink, dataset_id, from, stored.position));
            }
            let delivered = i64::try_from(delivered).unwrap_or(i64::MAX);
            let retried = i64::try_from(retried).unwrap_or(i64::MAX);
            let dead = i64::try_from(refused.len()).unwrap_or(i64::MAX);
            conn.prepare_cached(
                "INSERT INTO sink_cursors(sink, dataset_id, position, delivered, retried, dead_lettered, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(sink, dataset_id) DO UPDATE SET position = excluded.position,
                     delivered = delivered + excluded.delivered, retried = retried + excluded.retried,
                     dead_lettered = dead_lettered + excluded.dead_lettered, last_error = NULL,
                     updated = excluded.updated",
            )
            .classified()?
            .execute(params![sink, dataset_id, to, delivered, retried, dead, now])
            .classified()?;
            // The same transaction as the cursor's move: the writer commits both or neither.
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO sink_dead_letters(sink, dataset_id, position, event_id, reason, attempts, created, updated)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                )
                .classified()?;
            for r in &refused {
                insert.execute(params![sink, dataset_id, r.position, r.event_id, r.reason, now]).classified()?;
            }
            Ok(SinkWritten::Cursor(cursor(conn, &sink, dataset_id)?))
        }
        SinkWrite::Failed { sink, dataset_id, error } => {
            conn.prepare_cached(
                "INSERT INTO sink_cursors(sink, dataset_id, position, retried, last_error, updated)
                 VALUES (?1, ?2, 0, 1, ?3, ?4)
                 ON CONFLICT(sink, dataset_id) DO UPDATE SET retried = retried + 1, last_error = excluded.last_error,
                     updated = excluded.updated",
            )
            .classified()?
            .execute(params![sink, dataset_id, error, now])
            .classified()?;
            Ok(SinkWritten::Done)
        }
        SinkWrite::Replayed { sink, id, refused } => {
            let changed = match refused {
                None => conn
                    .prepare_cached("DELETE FROM sink_dead_letters WHERE sink = ?1 AND id = ?2")
                    .classified()?
                    .execute(params![sink, id])
                    .classified()?,
                Some(reason) => conn
                    .prepare_cached(
                        "UPDATE sink_dead_letters SET reason = ?3, attempts = attempts + 1, updated = ?4
                         WHERE sink = ?1 AND id = ?2",
                    )
                    .classified()?
                    .execute(params![sink, id, reason, now])
                    .classified()?,
            };
            if changed == 0 {
                return Err(StoreError::NotFound(format!("sink {sink} has no dead letter {id}")));
            }
            Ok(SinkWritten::Done)
        }
        SinkWrite::Lease { sink, node, ttl } => {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO sink_leases(sink, node, expires) VALUES (?1, ?2, ?3)
                     ON CONFLICT(sink) DO UPDATE SET node = excluded.node, expires = excluded.expires
                     WHERE sink_leases.node = excluded.node OR sink_leases.expires < ?4",
                )
                .classified()?
                .execute(params![sink, node, now + ttl, now])
                .classified()?;
            Ok(SinkWritten::Leased(changed == 1))
        }
        SinkWrite::Release { sink, node } => {
            conn.prepare_cached("DELETE FROM sink_leases WHERE sink = ?1 AND node = ?2")
                .classified()?
                .execute(params![sink, node])
                .classified()?;
            Ok(SinkWritten::Done)
        }
    }
}

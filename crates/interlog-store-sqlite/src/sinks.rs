//! The sinks' cursors and leases in SQLite (layout 4): reads on any connection, writes on the
//! writer thread like every other write, each in its own short transaction.

use interlog_store::sinks::{backwards, moved, Backlog, Cursor};
use interlog_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Classify;

/// A change to the sinks' state, carried to the writer thread.
#[derive(Debug)]
pub enum SinkWrite {
    Advance { sink: String, dataset_id: i64, from: i64, to: i64, delivered: u64 },
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

const COLUMNS: &str = "sink, dataset_id, position, delivered, retried, last_error, updated";

fn cursor_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        sink: r.get(0)?,
        dataset_id: r.get(1)?,
        position: r.get(2)?,
        delivered: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        retried: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        last_error: r.get(5)?,
        updated: r.get(6)?,
    })
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

/// Applies one write inside the writer's transaction.
pub fn write(conn: &Connection, w: SinkWrite, now: f64) -> Result<SinkWritten, StoreError> {
    match w {
        SinkWrite::Advance { sink, dataset_id, from, to, delivered } => {
            if to <= from {
                return Err(backwards(&sink, dataset_id, from, to));
            }
            let stored = cursor(conn, &sink, dataset_id)?;
            if stored.position != from {
                return Err(moved(&sink, dataset_id, from, stored.position));
            }
            let delivered = i64::try_from(delivered).unwrap_or(i64::MAX);
            conn.prepare_cached(
                "INSERT INTO sink_cursors(sink, dataset_id, position, delivered, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(sink, dataset_id) DO UPDATE SET position = excluded.position,
                     delivered = delivered + excluded.delivered, last_error = NULL, updated = excluded.updated",
            )
            .classified()?
            .execute(params![sink, dataset_id, to, delivered, now])
            .classified()?;
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

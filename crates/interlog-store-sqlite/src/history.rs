//! The history index in SQLite (layout 8): `history(dataset_id, kind, who, seq)`, filled by the
//! writer thread off the hot path (between append batches, a bounded chunk at a time, never
//! inside an append's transaction), queried on read-only connections (`interlog_store::history`).
//!
//! `seq` is the events table's rowid, one sequence for every dataset, so the indexer keeps one
//! cursor (`sink_cursors` row `history`, dataset 0): everything at or below it is indexed, and a
//! query scans the rowid range after it for the rest.

use std::collections::HashSet;

use interlog_store::history::{newest_first, HISTORY_CURSOR};
use interlog_store::{StoreError, StoredEvent, Who};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Classify;
use crate::reader::{event_columns, stored_event};

/// Events one indexer chunk reads (two index rows each, at most).
pub const INDEX_EVENTS: i64 = 4096;

/// How far the index reaches: every event at or below this position is in it.
pub fn indexed(conn: &Connection) -> Result<i64, StoreError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT position FROM sink_cursors WHERE sink = ?1 AND dataset_id = 0")
        .classified()?
        .query_row([HISTORY_CURSOR], |r| r.get(0))
        .optional()
        .classified()?;
    Ok(found.unwrap_or(0))
}

/// Indexes up to [`INDEX_EVENTS`] events after `from` inside the writer's transaction and moves
/// the cursor with them; returns the new position. Events of datasets that are not `live` (being
/// purged) are passed over, so the purge never races the indexer.
pub fn index_chunk(conn: &Connection, live: &HashSet<i64>, from: i64, now: f64) -> Result<i64, StoreError> {
    let mut rows: Vec<(i64, i16, String, i64)> = Vec::with_capacity(2 * INDEX_EVENTS as usize);
    let mut to = from;
    {
        let mut read = conn
            .prepare_cached(
                "SELECT seq, dataset_id, user_id, session_id FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .classified()?;
        let mut found = read.query(params![from, INDEX_EVENTS]).classified()?;
        while let Some(r) = found.next().classified()? {
            let seq: i64 = r.get(0).classified()?;
            let dataset: i64 = r.get(1).classified()?;
            to = seq;
            if !live.contains(&dataset) {
                continue;
            }
            if let Some(user) = r.get::<_, Option<String>>(2).classified()? {
                rows.push((dataset, 1, user, seq));
            }
            rows.push((dataset, 2, r.get(3).classified()?, seq));
        }
    }
    if to == from {
        return Ok(from);
    }
    // In key order, so neighbouring rows land on the same pages.
    rows.sort_unstable();
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO history(dataset_id, kind, who, seq) VALUES (?1, ?2, ?3, ?4)")
        .classified()?;
    for (dataset, kind, who, seq) in &rows {
        insert.execute(params![dataset, kind, who, seq]).classified()?;
    }
    conn.prepare_cached(
        "INSERT INTO sink_cursors(sink, dataset_id, position, delivered, updated) VALUES (?1, 0, ?2, ?3, ?4)
         ON CONFLICT(sink, dataset_id) DO UPDATE SET position = excluded.position,
             delivered = delivered + excluded.delivered, updated = excluded.updated",
    )
    .classified()?
    .execute(params![HISTORY_CURSOR, to, to - from, now])
    .classified()?;
    Ok(to)
}

/// The newest `limit` events of `who` in a live dataset: the index up to the cursor and the log
/// after it, in one read transaction (one snapshot).
pub fn query(conn: &Connection, dataset_id: i64, who: &Who, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
    let tx = conn.unchecked_transaction().classified()?;
    let live = crate::reader::dataset_live(&tx, dataset_id)?;
    if !live || limit == 0 {
        return Ok(Vec::new());
    }
    let cursor = indexed(&tx)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut events = Vec::new();
    {
        // The tail: a rowid range, so only what the indexer has not reached yet is read.
        let mut tail = tx
            .prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq > ?1 AND dataset_id = ?2 AND {} = ?3 ORDER BY seq DESC LIMIT ?4",
                event_columns(""),
                who.column()
            ))
            .classified()?;
        let rows = tail.query_map(params![cursor, dataset_id, who.id(), limit], stored_event).classified()?;
        events.extend(rows.collect::<Result<Vec<_>, _>>().classified()?);
    }
    if (events.len() as i64) < limit {
        let mut indexed = tx
            .prepare_cached(&format!(
                "SELECT {} FROM history h JOIN events e ON e.seq = h.seq
                 WHERE h.dataset_id = ?1 AND h.kind = ?2 AND h.who = ?3 AND h.seq <= ?4
                 ORDER BY h.seq DESC LIMIT ?5",
                event_columns("e.")
            ))
            .classified()?;
        let rows = indexed
            .query_map(params![dataset_id, who.kind(), who.id(), cursor, limit - events.len() as i64], stored_event)
            .classified()?;
        events.extend(rows.collect::<Result<Vec<_>, _>>().classified()?);
    }
    tx.commit().classified()?;
    Ok(newest_first(events, limit as usize))
}

//! The history index in SQLite (layout 12): `history(dataset_id, who_key, seq)`, filled by the
//! writer thread off the hot path (between append batches, a bounded chunk at a time, never
//! inside an append's transaction), queried on read-only connections (`interlog_store::history`).
//!
//! `who_key` ([`who_key`]) is an integer made of the kind (user or session), the *bucket* of the event's
//! position (`seq >> 16`) and a hash of the ID, in that order. Integers rather than the ID's text: under a load
//! that keeps the indexer busy it does as much work per event as the append itself, and integer rows raised the
//! rate there by 14 % (layout 11; docs/benchmarks.md, "The history index by hash"). The bucket before the hash:
//! a chunk of the indexer then writes into the newest bucket's few hundred pages, which stay in the cache, not
//! into pages spread over the whole index (layout 12, "The history index by bucket"). A query seeks once per
//! bucket, newest first, until it has its limit, and confirms every event it returns against the event's own ID,
//! so IDs that share a hash never mix.
//!
//! `seq` is the events table's rowid, one sequence for every dataset, so the indexer keeps one
//! cursor (`sink_cursors` row `history`, dataset 0): everything at or below it is indexed, and a
//! query scans the rowid range after it for the rest.

use std::collections::HashSet;

use interlog_store::history::{newest_first, HISTORY_CURSOR};
use interlog_store::{StoreError, StoredEvent, Who};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Classify;
use crate::reader::{event_columns, stored_event};

/// Events one indexer chunk reads (two index rows each, at most).
pub const INDEX_EVENTS: i64 = 4096;

/// Positions per bucket of the index: `2^BUCKET_SHIFT`. Smaller buckets make a chunk of the indexer touch fewer
/// pages; larger ones make a query that reaches far back seek fewer times (one seek per bucket of the log).
pub const BUCKET_SHIFT: u32 = 16;
/// Bits of the ID's hash in a key; the bucket takes the 32 bits above them, the kind bit 62.
const HASH_BITS: u32 = 30;
const HASH_MASK: u64 = (1 << HASH_BITS) - 1;
/// 32 bits of bucket: positions up to 2^48 (at a million events a second, nine years) keep their order.
const BUCKET_MASK: u64 = (1 << 32) - 1;

/// The index's key of a user's or a session's row at position `seq`: bit 62 set for a session, bits 30-61 the
/// bucket of `seq`, bits 0-29 the low bits of the ID's XXH3-64 (unseeded, so the same on every build and
/// machine: it is stored). Always positive.
pub fn who_key(who: &Who, seq: i64) -> i64 {
    key(who.kind(), who.id().as_bytes(), seq)
}

/// [`who_key`] of `kind` ([`Who::kind`]: 1 a user, 2 a session) and an ID's bytes.
pub(crate) fn key(kind: i16, id: &[u8], seq: i64) -> i64 {
    key_of(Probe::new(kind, id), bucket(seq))
}

/// The bucket of a position.
fn bucket(seq: i64) -> u64 {
    (seq.max(0) as u64 >> BUCKET_SHIFT) & BUCKET_MASK
}

/// The parts of a key that do not depend on the position: the kind's bit and the ID's hash.
#[derive(Clone, Copy)]
struct Probe {
    kind: u64,
    hash: u64,
}

impl Probe {
    fn new(kind: i16, id: &[u8]) -> Probe {
        Probe { kind: u64::from(kind == 2) << 62, hash: xxhash_rust::xxh3::xxh3_64(id) & HASH_MASK }
    }
}

fn key_of(p: Probe, bucket: u64) -> i64 {
    // Below 2^63, so the conversion is exact.
    (p.kind | (bucket << HASH_BITS) | p.hash) as i64
}

/// The bucket a key was made for ([`key_of`] read back).
fn bucket_of_key(key: i64) -> u64 {
    (key as u64 >> HASH_BITS) & BUCKET_MASK
}

/// The oldest bucket holding a row of `probe`'s kind in the dataset (its smallest key: the bucket leads the hash),
/// `None` when there is no such row.
fn oldest_bucket(tx: &Connection, dataset_id: i64, probe: Probe) -> Result<Option<u64>, StoreError> {
    let kind = probe.kind as i64;
    let smallest: Option<i64> = tx
        .prepare_cached(
            "SELECT who_key FROM history WHERE dataset_id = ?1 AND who_key BETWEEN ?2 AND ?3
             ORDER BY who_key LIMIT 1",
        )
        .classified()?
        .query_row(params![dataset_id, kind, kind + ((1 << 62) - 1)], |r| r.get(0))
        .optional()
        .classified()?;
    Ok(smallest.map(bucket_of_key))
}

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
    let mut rows: Vec<(i64, i64, i64)> = Vec::with_capacity(2 * INDEX_EVENTS as usize);
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
            // The IDs hashed from SQLite's own buffers: no String per event.
            if let ValueRef::Text(user) = r.get_ref(2).classified()? {
                rows.push((dataset, key(1, user, seq), seq));
            }
            if let ValueRef::Text(session) = r.get_ref(3).classified()? {
                rows.push((dataset, key(2, session, seq), seq));
            }
        }
    }
    if to == from {
        return Ok(from);
    }
    // In key order, so neighbouring rows land on the same pages (of the newest bucket, mostly).
    rows.sort_unstable();
    let mut insert = conn
        .prepare_cached("INSERT OR IGNORE INTO history(dataset_id, who_key, seq) VALUES (?1, ?2, ?3)")
        .classified()?;
    for (dataset, who_key, seq) in &rows {
        insert.execute(params![dataset, who_key, seq]).classified()?;
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
        let probe = Probe::new(who.kind(), who.id().as_bytes());
        // The event's own ID confirms each index row (`who_key` holds a hash), before the limit counts it.
        let mut indexed = tx
            .prepare_cached(&format!(
                "SELECT {} FROM history h JOIN events e ON e.seq = h.seq
                 WHERE h.dataset_id = ?1 AND h.who_key = ?2 AND h.seq <= ?4 AND e.{} = ?3
                 ORDER BY h.seq DESC LIMIT ?5",
                event_columns("e."),
                who.column()
            ))
            .classified()?;
        // Newest bucket first, until the limit is reached or the oldest bucket was read; where that is, only a
        // query that reads past the cursor's bucket looks up.
        let (mut b, mut oldest) = (bucket(cursor), None);
        loop {
            let rows = indexed
                .query_map(
                    params![dataset_id, key_of(probe, b), who.id(), cursor, limit - events.len() as i64],
                    stored_event,
                )
                .classified()?;
            events.extend(rows.collect::<Result<Vec<_>, _>>().classified()?);
            if events.len() as i64 >= limit {
                break;
            }
            // No row of this kind in the dataset: nothing older to read (every bucket is at or below u64::MAX).
            let last = match oldest {
                Some(o) => o,
                None => *oldest.insert(oldest_bucket(&tx, dataset_id, probe)?.unwrap_or(u64::MAX)),
            };
            if b <= last {
                break;
            }
            b -= 1;
        }
    }
    tx.commit().classified()?;
    Ok(newest_first(events, limit as usize))
}

//! Reads: a small pool of read-only connections used on tokio's blocking threads, so no SQLite
//! call runs on an async worker and no read can take the write lock or hold the writer up.
//!
//! Every read is one short transaction (a statement, or a deferred `BEGIN` for reads of more
//! than one statement): a slow consumer never pins a snapshot, so checkpoints can always reset
//! the WAL behind it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use interlog_model::{Interaction, Record};
use interlog_store::page::{EventPage, RowNumbers, Text};
use interlog_store::{StoreError, StoredEvent, StoredRecord};
use rusqlite::{params, Connection};
use tokio::sync::Semaphore;

use crate::error::Classify;
use crate::layout;

/// Reads running at once; more wait for a connection.
const READERS: usize = 4;

pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

impl ReadPool {
    pub fn new(path: PathBuf) -> Arc<ReadPool> {
        Arc::new(ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(READERS)),
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let closed = || StoreError::Unavailable("the store is closed".into());
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| closed())?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                Some(conn) => conn,
                None => layout::open_reader(&pool.path)?,
            };
            let result = read(&conn);
            // A connection that met a fault (or kept a transaction open) is dropped; the next read
            // opens a fresh one.
            let sound = !matches!(result, Err(StoreError::Unavailable(_))) && conn.is_autocommit();
            if sound && !pool.closed.load(Ordering::Acquire) {
                pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            }
            result
        })
        .await
        .map_err(StoreError::internal)?
    }

    /// Refuses further reads and lets the idle connections go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Up to `limit` events of a live dataset after `after`, in `seq` order. A deleted dataset
/// reads empty at once, even while its rows wait for the purge.
pub fn events(conn: &Connection, dataset_id: i64, after: i64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
    let tx = conn.unchecked_transaction().classified()?;
    let live = dataset_live(&tx, dataset_id)?;
    if !live {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {} FROM events WHERE seq > ?2 AND dataset_id = ?1 ORDER BY seq LIMIT ?3",
            event_columns("")
        ))
        .classified()?;
    let rows = stmt.query_map(params![dataset_id, after, limit], stored_event).classified()?;
    let events = rows.collect::<Result<Vec<_>, _>>().classified()?;
    drop(stmt);
    tx.commit().classified()?;
    Ok(events)
}

/// [`events`] as one [`EventPage`], refilling `page` (emptied first, its buffers kept): each
/// row's text copied from SQLite's own buffers into the page's (no `String`, no UTF-8 check per
/// cell), and only the page's text columns selected, the others as NULL, so SQLite never decodes
/// them.
pub fn event_page(
    conn: &Connection,
    dataset_id: i64,
    after: i64,
    until: i64,
    limit: usize,
    mut page: EventPage,
) -> Result<EventPage, StoreError> {
    page.clear();
    let columns = page.columns();
    let tx = conn.unchecked_transaction().classified()?;
    let live = dataset_live(&tx, dataset_id)?;
    if !live {
        return Ok(page);
    }
    // Column k + 5 holds text member k (the order of `Text`).
    let texts = [
        (Text::EventId, "event_id"),
        (Text::SessionId, "session_id"),
        (Text::UserId, "user_id"),
        (Text::ItemId, "item_id"),
        (Text::EventType, "event_type"),
        (Text::Properties, "properties"),
        (Text::RecommendationId, "recommendation_id"),
        (Text::Impression, "impression"),
        (Text::AttributionSource, "attribution_source"),
    ]
    .map(|(t, c)| if t == Text::EventId || columns.has(t) { c } else { "NULL" })
    .join(", ");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT seq, received_at, sent_at, event_value, import_job, {texts} FROM events
             WHERE seq > ?2 AND seq <= ?4 AND dataset_id = ?1 ORDER BY seq LIMIT ?3"
        ))
        .classified()?;
    let mut rows = stmt.query(params![dataset_id, after, limit, until]).classified()?;
    while let Some(r) = rows.next().classified()? {
        let numbers = RowNumbers {
            seq: r.get(0).classified()?,
            received_at: r.get(1).classified()?,
            sent_at: r.get(2).classified()?,
            event_value: r.get(3).classified()?,
            bulk: r.get_ref(4).classified()? != rusqlite::types::ValueRef::Null,
        };
        page.push(numbers, |member, buf| match r.get_ref(5 + member as usize)? {
            rusqlite::types::ValueRef::Text(t) => {
                buf.extend_from_slice(t);
                Ok(true)
            }
            _ => Ok(false),
        })
        .classified()?;
    }
    drop(rows);
    drop(stmt);
    tx.commit().classified()?;
    Ok(page)
}

/// The columns [`stored_event`] reads, each prefixed (`"e."` in a join).
pub fn event_columns(prefix: &str) -> String {
    [
        "seq",
        "event_id",
        "session_id",
        "user_id",
        "item_id",
        "event_type",
        "event_value",
        "sent_at",
        "properties",
        "recommendation_id",
        "impression",
        "attribution_source",
        "received_at",
        "flags",
        "import_job",
    ]
    .map(|c| format!("{prefix}{c}"))
    .join(", ")
}

/// One event read with [`event_columns`].
pub fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    // Parsed from the row's own bytes: no String of the JSON text per row.
    let impression = match r.get_ref(10)? {
        rusqlite::types::ValueRef::Text(t) => serde_json::from_slice::<Vec<String>>(t).ok(),
        _ => None,
    };
    Ok(StoredEvent {
        seq: r.get(0)?,
        received_at: r.get(12)?,
        interaction: Interaction {
            event_id: r.get(1)?,
            session_id: r.get(2)?,
            user_id: r.get(3)?,
            item_id: r.get(4)?,
            event_type: r.get(5)?,
            event_value: r.get(6)?,
            sent_at: r.get(7)?,
            properties: r.get(8)?,
            recommendation_id: r.get(9)?,
            impression,
            event_attribution_source: r.get(11)?,
            flags: interlog_model::flag::decode_flags(r.get::<_, Option<String>>(13)?.as_deref()),
        },
        bulk: r.get::<_, Option<i64>>(14)?.is_some(),
    })
}

/// Up to `limit` records of a live keyed dataset whose ID sorts after `after`, in ID order. A
/// deleted dataset reads empty at once, like its events.
pub fn records(
    conn: &Connection,
    dataset_id: i64,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let tx = conn.unchecked_transaction().classified()?;
    let live = dataset_live(&tx, dataset_id)?;
    if !live {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // TEXT compares with memcmp (the BINARY collation): UTF-8 byte order, like bytea's.
    let mut stmt = tx
        .prepare_cached(
            "SELECT record_id, properties, received_at, flags, import_job, position FROM records
             WHERE dataset_id = ?1 AND (?2 IS NULL OR record_id > ?2) ORDER BY record_id LIMIT ?3",
        )
        .classified()?;
    let rows = stmt.query_map(params![dataset_id, after, limit], stored_record).classified()?;
    let records = rows.collect::<Result<Vec<_>, _>>().classified()?;
    drop(stmt);
    tx.commit().classified()?;
    Ok(records)
}

/// Whether a dataset exists (not deleted) in the read's snapshot: a deleted dataset reads as empty at once, even
/// while its rows wait for the purge.
pub(crate) fn dataset_live(tx: &rusqlite::Transaction<'_>, dataset_id: i64) -> Result<bool, StoreError> {
    tx.prepare_cached("SELECT EXISTS(SELECT 1 FROM resources WHERE id = ?1 AND kind = 'dataset')")
        .classified()?
        .query_row([dataset_id], |r| r.get(0))
        .classified()
}

/// A record row of the columns `records` and `changed_records` select, in their order.
fn stored_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    let flags = interlog_model::flag::decode_flags(r.get::<_, Option<String>>(3)?.as_deref());
    Ok(StoredRecord {
        position: r.get(5)?,
        received_at: r.get(2)?,
        record: Record { id: r.get(0)?, properties: r.get(1)?, flags },
        bulk: r.get::<_, Option<i64>>(4)?.is_some(),
    })
}

/// Up to `limit` records of a live keyed dataset written after `after`, in position order (layout 10's
/// `records_by_position`: a range of the index, whatever the dataset's size). A deleted dataset reads as
/// empty, as in [`records`].
pub fn changed_records(
    conn: &Connection,
    dataset_id: i64,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredRecord>, StoreError> {
    let tx = conn.unchecked_transaction().classified()?;
    let live = dataset_live(&tx, dataset_id)?;
    if !live {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = tx
        .prepare_cached(
            "SELECT record_id, properties, received_at, flags, import_job, position FROM records
             WHERE dataset_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
        )
        .classified()?;
    let rows = stmt.query_map(params![dataset_id, after, limit], stored_record).classified()?;
    let records = rows.collect::<Result<Vec<_>, _>>().classified()?;
    drop(stmt);
    tx.commit().classified()?;
    Ok(records)
}

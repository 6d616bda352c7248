//! The database file: how connections are opened, what the tables are, and the versioned
//! migrations that bring an older file to the current layout.
//!
//! `PRAGMA application_id` marks a file as interlog's and `PRAGMA user_version` is its layout.
//! Every migration step runs in one transaction that also sets the new `user_version`, so a
//! crash mid-way leaves the file at the old layout, and the next start runs the step again.

use std::collections::HashMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use interlog_store::catalog::resources::{DatasetSpec, ExportJobSpec, GroupSpec, SchemaSpec, TrackerSpec};
use interlog_store::catalog::Kind;
use interlog_store::StoreError;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::error::{classify, Classify};

/// "ILOG": an interlog database.
const APPLICATION_ID: i64 = 0x494C_4F47;
/// The layout this build writes. 1: the first landing (one table per resource kind);
/// 2: one generic `resources` table, durable purges, the root key, the catalog version;
/// 3: the `records` of keyed datasets (items, users, actions).
/// 4: the sinks' cursors and leases.
/// 5: `events.flags`, why a kept event would not reach a model (docs/api.md).
/// 6: `records.flags`, the same for items, users and actions.
/// 7: the sinks' dead letters and `sink_cursors.dead_lettered`.
/// 8: the `history` index of users and sessions, filled off the hot path (`history.rs`).
/// 9: `events.import_job` and `records.import_job`, the import job that stored a row (BULK data; NULL for the
///    Put* calls' PUT data), with partial indexes over the imported rows only.
/// 10: `records.position`, the position each upsert gives a record's row (from `meta.record_position`, never
///     reused), and the index `records_by_position` the sinks read records changed after their cursor by.
/// 11: the `history` index keyed by a 62-bit hash of the user or session ID instead of the ID's text, rebuilt by
///     the indexer from the log (`history.rs`).
/// 12: the same table, its keys led by the bucket of the event's position before the hash (`history.rs`), rebuilt
///     from the log again.
pub const LAYOUT: i64 = 12;
pub const DB_FILE: &str = "interlog.db";
pub const LOCK_FILE: &str = "interlog.lock";

/// The WAL is cut back to this size after a checkpoint resets it, so one burst does not leave a
/// large file behind for good.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// Page cache of the writer; readers keep SQLite's default. 16 MiB holds the hot pages of the
/// appends (the log's tail and its indexes' right edges); the 64 MiB of 2026-12-01 showed as
/// resident memory under load (issue 17's peak-RSS goal) for no measured gain.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

pub fn foreign(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Foreign { location: path.display().to_string(), reason: reason.into() }
}

/// Errors of opening a file: a damaged or foreign file stops start-up naming it.
fn opening(path: &Path, e: rusqlite::Error) -> StoreError {
    match crate::error::fault(&e) {
        Some(crate::error::Fault::Corrupt) => foreign(path, format!("not a readable interlog store: {e}")),
        _ => classify(e),
    }
}

/// Makes the data dir (0700) and the database file (0600) before SQLite sees them: SQLite gives
/// the `-wal` and `-shm` files it creates the database file's mode, so none of them is ever
/// readable by other users, whatever the umask.
pub fn prepare_files(data_dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let db = db_path(data_dir);
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&db)?;
    for file in [db.clone(), wal_path(&db), shm_path(&db)] {
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Bytes the database, its WAL and shared-memory files take on disk (allocated blocks, so a sparse
/// or preallocated file counts what it holds); a file that does not exist counts 0.
pub fn size_on_disk(db: &Path) -> Result<u64, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for file in [db.to_path_buf(), wal_path(db), shm_path(db)] {
        match std::fs::metadata(&file) {
            Ok(m) => total += m.blocks() * 512,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(total)
}

pub fn wal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

pub fn shm_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-shm", db.display()))
}

/// The writer's connection: WAL with `synchronous=FULL`, so every commit syncs the log before
/// it returns. Never creates the file (a vanished file must not come back empty on a reopen).
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| opening(path, e))?;
    // Only this process writes (the lock file); a short wait covers a reader's WAL recovery.
    conn.busy_timeout(Duration::from_secs(2)).classified()?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| opening(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(foreign(path, format!("cannot use WAL mode (the file system gave {mode})")));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT};
         PRAGMA cache_size=-{WRITER_CACHE_KIB};"
    ))
    .classified()?;
    Ok(conn)
}

/// A reader's connection: read-only, so nothing it does can take the write lock.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| opening(path, e))?;
    conn.busy_timeout(Duration::from_secs(5)).classified()?;
    Ok(conn)
}

/// The layout of the file, `None` for a new empty file; a foreign or newer file is refused.
pub fn layout_of(conn: &Connection, path: &Path) -> Result<Option<i64>, StoreError> {
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| opening(path, e))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).classified()?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).classified()?;
    if app == 0 && tables == 0 {
        return Ok(None);
    }
    if app != APPLICATION_ID {
        return Err(foreign(
            path,
            "this SQLite file was not made by interlog; move it away or choose another --data-dir",
        ));
    }
    if version > LAYOUT {
        return Err(foreign(
            path,
            format!("made by a newer interlog (layout {version}; this build reads layouts up to {LAYOUT})"),
        ));
    }
    Ok(Some(version))
}

/// Brings the file to [`LAYOUT`], one step (one transaction) at a time.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        let step = match layout_of(conn, path)? {
            None => create as fn(&Transaction<'_>) -> Result<(), StoreError>,
            Some(LAYOUT) => return Ok(()),
            Some(1) => from_1_to_2,
            Some(2) => from_2_to_3,
            Some(3) => from_3_to_4,
            Some(4) => from_4_to_5,
            Some(5) => from_5_to_6,
            Some(6) => from_6_to_7,
            Some(7) => from_7_to_8,
            Some(8) => from_8_to_9,
            Some(9) => from_9_to_10,
            Some(10) => from_10_to_11,
            Some(11) => from_11_to_12,
            Some(other) => return Err(foreign(path, format!("unknown interlog layout {other}"))),
        };
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).classified()?;
        let before = layout_of(&tx, path)?;
        step(&tx)?;
        let after: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).classified()?;
        if Some(after) == before || after == 0 {
            return Err(StoreError::internal(format!("migration from layout {before:?} did not move the layout")));
        }
        tx.commit().classified()?;
        tracing::info!(from = ?before, to = after, file = %path.display(), "migrated the store's layout");
    }
}

/// The tables of layout 2, shared by a new file and the migration from layout 1.
const TABLES_2: &str = "
    -- Every control-plane resource. AUTOINCREMENT: an id is never reused, and a dataset's id
    -- names its event log, so a new dataset can never see a deleted one's events.
    CREATE TABLE resources(
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, account TEXT NOT NULL,
        arn TEXT NOT NULL UNIQUE, name TEXT NOT NULL, parent TEXT, uses TEXT, status TEXT NOT NULL,
        unique_key TEXT, doc TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
        UNIQUE(account, kind, unique_key));
    CREATE INDEX resources_by_kind ON resources(kind, account, id);
    CREATE INDEX resources_by_parent ON resources(parent) WHERE parent IS NOT NULL;
    CREATE INDEX resources_by_uses ON resources(uses) WHERE uses IS NOT NULL;
    CREATE TABLE resource_tags(
        resource INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(resource, key)) WITHOUT ROWID;
    -- `version` grows with every catalog write; `probe` is what the writer rewrites to test the disk.
    CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
    INSERT INTO meta(key, value) VALUES ('version', 1);
    CREATE TABLE root_key(
        id INTEGER PRIMARY KEY CHECK (id = 1), access_key_id TEXT NOT NULL, secret_access_key TEXT NOT NULL,
        account_id TEXT NOT NULL);
    -- A deleted dataset's events still to remove: rows with seq in (done_through, last_seq].
    CREATE TABLE purges(dataset_id INTEGER PRIMARY KEY, done_through INTEGER NOT NULL, last_seq INTEGER NOT NULL);
";

/// The events table of layout 5 (layouts 1-4 had it without `flags`).
const EVENTS: &str = "
    -- Append-only: no secondary index, so a commit touches only the table's last pages.
    -- `flags`: `interlog_model::flag::encode_flags`'s text (codes, or a JSON array of {kind, message}),
    -- NULL for the (usual) event without flags.
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, event_id TEXT NOT NULL,
        session_id TEXT NOT NULL, user_id TEXT, item_id TEXT, event_type TEXT NOT NULL,
        event_value REAL, sent_at REAL NOT NULL, properties TEXT, recommendation_id TEXT,
        impression TEXT, attribution_source TEXT, received_at REAL NOT NULL, flags TEXT);
";

/// The keyed records of layout 6 (layouts 3-5 had them without `flags`).
const RECORDS: &str = "
    -- Items, users and actions: one row per ID, the latest write replacing the earlier one. The
    -- unique key orders an export's pages (bytewise, as PostgreSQL's bytea does). A rowid table,
    -- not WITHOUT ROWID: records carry up to 32 KB of properties, and wide rows in the key's
    -- B-tree would make every upsert and page read move them. `flags` as the events'.
    CREATE TABLE records(
        id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, record_id TEXT NOT NULL, properties TEXT,
        received_at REAL NOT NULL, flags TEXT, UNIQUE(dataset_id, record_id));
";

/// The keyed records as layout 3 introduced them.
const RECORDS_3: &str = "
    CREATE TABLE records(
        id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, record_id TEXT NOT NULL, properties TEXT,
        received_at REAL NOT NULL, UNIQUE(dataset_id, record_id));
";

fn create(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(TABLES_2).classified()?;
    tx.execute_batch(EVENTS).classified()?;
    tx.execute_batch(RECORDS).classified()?;
    tx.execute_batch(SINKS).classified()?;
    tx.execute_batch(DEAD_LETTERS).classified()?;
    tx.execute_batch(HISTORY).classified()?;
    tx.execute_batch(BULK).classified()?;
    tx.execute_batch(POSITIONS).classified()?;
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {LAYOUT};")).classified()
}

/// Layout 2 gains the `records` table; nothing else changes.
fn from_2_to_3(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(RECORDS_3).classified()?;
    tx.execute_batch("PRAGMA user_version = 3;").classified()
}

/// The sinks' tables of layout 4: the outbox's state (`interlog_store::sinks`). The events
/// themselves are the outbox; these tables only say where each sink stands and which node runs it.
const SINKS: &str = "
    CREATE TABLE sink_cursors(
        sink TEXT NOT NULL, dataset_id INTEGER NOT NULL, position INTEGER NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0, retried INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        updated REAL NOT NULL, PRIMARY KEY(sink, dataset_id)) WITHOUT ROWID;
    CREATE TABLE sink_leases(sink TEXT PRIMARY KEY, node TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
";

/// Layout 3 gains the sinks' tables; nothing else changes.
fn from_3_to_4(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(SINKS).classified()?;
    tx.execute_batch("PRAGMA user_version = 4;").classified()
}

/// Layout 4 to 5: the events gain `flags`. Adding a nullable column without a default only
/// rewrites the table's definition, not its rows, so this is instant however many events the
/// file holds; the events already stored read back without flags.
fn from_4_to_5(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch("ALTER TABLE events ADD COLUMN flags TEXT; PRAGMA user_version = 5;").classified()
}

/// The dead letters of layout 7: events a sink's destination refused for good (a 4xx that
/// retrying cannot fix), kept until replayed; the event itself stays in the log at `position`.
/// A new file's `sink_cursors` gets `dead_lettered` here too, so both paths end in one layout.
const DEAD_LETTERS: &str = "
    ALTER TABLE sink_cursors ADD COLUMN dead_lettered INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sink_dead_letters(
        id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, dataset_id INTEGER NOT NULL,
        position INTEGER NOT NULL, event_id TEXT NOT NULL, reason TEXT NOT NULL,
        attempts INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
    CREATE INDEX sink_dead_letters_by_sink ON sink_dead_letters(sink, id);
";

/// Layout 6 to 7: the sinks' dead letters. A column with a constant default is added without
/// rewriting the rows, and the new table starts empty.
fn from_6_to_7(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(DEAD_LETTERS).classified()?;
    tx.execute_batch("PRAGMA user_version = 7;").classified()
}

/// Layout 5 to 6: the keyed records gain `flags`, instantly as the events did; records already
/// stored read back without flags.
fn from_5_to_6(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch("ALTER TABLE records ADD COLUMN flags TEXT; PRAGMA user_version = 6;").classified()
}

/// The history index as layout 8 made it: `kind` 1 a user, 2 a session, and the ID's text.
const HISTORY_8: &str = "
    CREATE TABLE history(
        dataset_id INTEGER NOT NULL, kind INTEGER NOT NULL, who TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY(dataset_id, kind, who, seq)) WITHOUT ROWID;
";

/// The history index of layouts 11 and 12 (`interlog_store::history`): one row per (event, user) and (event,
/// session), written by the writer thread's background indexer, never by an append. `who_key` is
/// [`crate::history::who_key`]: in layout 12 the kind, the bucket of the position and 30 bits of the ID's hash (in
/// layout 11 the kind and 62 bits of the hash), so a row is three integers (~17 bytes, against 22-25 for layout 8's
/// rows with 11-14-character IDs and ~47 with a UUID) and compares as integers; a query confirms each event's ID, so
/// two IDs of one hash never mix. WITHOUT ROWID: the key is the whole row.
const HISTORY: &str = "
    CREATE TABLE history(
        dataset_id INTEGER NOT NULL, who_key INTEGER NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY(dataset_id, who_key, seq)) WITHOUT ROWID;
";

/// Layout 7 to 8: the empty history index. Its cursor starts at 0, so the indexer works
/// through the events already stored in the background; until it is through, queries scan the rest.
fn from_7_to_8(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(HISTORY_8).classified()?;
    tx.execute_batch("PRAGMA user_version = 8;").classified()
}

/// Layout 10 to 11: the history index keyed by hash. The old index is dropped and its cursor removed, so the
/// indexer builds the new one from the log in the background, as after layout 8 (queries answer whole meanwhile,
/// scanning the log after the cursor); rebuilding costs the writer about 3 µs per stored event, in its idle time
/// or, once more than `INDEX_MAX_LAG` events wait, a chunk after each append batch.
fn from_10_to_11(tx: &Transaction<'_>) -> Result<(), StoreError> {
    rebuild_history(tx, 11)
}

/// Layout 11 to 12: the history index's keys led by the bucket of the position. The keys change meaning, not the
/// table's shape: the rows are removed and the cursor with them, and the indexer builds the index again from the log
/// in the background, as after layout 11 (queries answer whole meanwhile).
fn from_11_to_12(tx: &Transaction<'_>) -> Result<(), StoreError> {
    rebuild_history(tx, 12)
}

/// An empty history index of today's shape without its cursor, at layout `to`: the indexer fills it from the log.
fn rebuild_history(tx: &Transaction<'_>, to: i64) -> Result<(), StoreError> {
    tx.execute_batch("DROP TABLE history;").classified()?;
    tx.execute_batch(HISTORY).classified()?;
    tx.execute(
        "DELETE FROM sink_cursors WHERE sink = ?1 AND dataset_id = 0",
        [interlog_store::history::HISTORY_CURSOR],
    )
    .classified()?;
    tx.execute_batch(&format!("PRAGMA user_version = {to};")).classified()
}

/// Layout 9's marker of imported rows: the id of the dataset import job that stored an event, or wrote the record
/// that holds; NULL for the Put* calls. Export jobs' `ingestionMode` reads it (BULK / PUT / ALL). The indexes are
/// partial, over imported rows only, so a Put* append never touches them; they let a failed job's rows, or what a
/// FULL import replaces, be removed a chunk at a time without scanning the dataset.
const BULK: &str = "
    ALTER TABLE events ADD COLUMN import_job INTEGER;
    ALTER TABLE records ADD COLUMN import_job INTEGER;
    CREATE INDEX events_imported ON events(dataset_id, import_job) WHERE import_job IS NOT NULL;
    CREATE INDEX records_imported ON records(dataset_id, import_job) WHERE import_job IS NOT NULL;
";

/// Layout 8 to 9: the marker of imported rows. The columns are added without rewriting a row (nullable, no
/// default): every row already stored reads back as PUT data, which it is, since nothing was imported before.
/// Building the partial indexes reads the tables once and finds nothing to index.
fn from_8_to_9(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(BULK).classified()?;
    tx.execute_batch("PRAGMA user_version = 9;").classified()
}

/// Layout 10's positions of records: every upsert of a record takes the next value of one counter
/// (`meta.record_position`, bumped by the writer in the upsert's own transaction, so a value is never handed out
/// twice, not even after the row holding it was removed) and writes it to the row, so the records changed after
/// a sink's cursor are a range of the index. One counter for every keyed dataset, as the events' `seq` is one for
/// every log: per dataset the positions increase, not contiguously.
const POSITIONS: &str = "
    ALTER TABLE records ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX records_by_position ON records(dataset_id, position);
    INSERT INTO meta(key, value) VALUES ('record_position', 0);
";

/// Layout 9 to 10: records gain their positions. The rows already stored get their rowid as position (unique,
/// in the order they were first written), and the counter starts past the largest, so a sink starting from 0
/// delivers every record stored before the upgrade once, and every later write after them. This rewrites each
/// record row once (a keyed dataset holds one row per ID, so this is bounded by the IDs, not the writes).
fn from_9_to_10(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(POSITIONS).classified()?;
    tx.execute_batch(
        "UPDATE records SET position = id;
         UPDATE meta SET value = (SELECT coalesce(max(id), 0) FROM records) WHERE key = 'record_position';
         PRAGMA user_version = 10;",
    )
    .classified()
}

/// Layout 1 (the first landing: `schemas`, `dataset_groups`, `datasets`, `event_trackers`,
/// `export_jobs` when it had been created, `tags` by ARN) into the generic `resources` table.
///
/// Dataset ids are kept: the events name them. Other resources get new ids in their old order
/// (ids only order listings), above every dataset id ever handed out, so no id is reused.
fn from_1_to_2(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch("ALTER TABLE tags RENAME TO tags_1;").classified()?;
    tx.execute_batch(TABLES_2).classified()?;
    let doc = |v: serde_json::Result<String>| v.map_err(StoreError::internal);
    let mut insert = tx
        .prepare(
            "INSERT INTO resources(id, kind, account, arn, name, parent, uses, status, unique_key, doc, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .classified()?;
    let mut ids: HashMap<String, i64> = HashMap::new();

    // Datasets first, with their ids.
    let datasets = {
        let mut stmt = tx
            .prepare(
                "SELECT d.id, d.account, d.arn, d.name, g.arn, s.arn, d.status, d.dataset_type, d.created, d.updated
                 FROM datasets d LEFT JOIN dataset_groups g ON g.id = d.dataset_group_id
                 LEFT JOIN schemas s ON s.id = d.schema_id ORDER BY d.id",
            )
            .classified()?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, f64>(8)?,
                    r.get::<_, f64>(9)?,
                ))
            })
            .classified()?;
        rows.collect::<Result<Vec<_>, _>>().classified()?
    };
    for (id, account, arn, name, group, schema, status, dataset_type, created, updated) in datasets {
        let spec = doc(serde_json::to_string(&DatasetSpec { dataset_type, tracking_id: None }))?;
        insert
            .execute(params![
                id,
                Kind::Dataset.as_str(),
                account,
                arn,
                name,
                group,
                schema,
                status,
                None::<String>,
                spec,
                created,
                updated
            ])
            .classified()?;
        ids.insert(arn, id);
    }
    // No id handed out before may come back: not a deleted dataset's (the old AUTOINCREMENT
    // counter), nor one that only the events still name.
    let floor: i64 = tx
        .query_row(
            "SELECT max(coalesce((SELECT max(id) FROM resources), 0),
                        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'datasets'), 0),
                        coalesce((SELECT max(dataset_id) FROM events), 0))",
            [],
            |r| r.get(0),
        )
        .optional()
        .classified()?
        .unwrap_or(0);
    tx.execute("DELETE FROM sqlite_sequence WHERE name = 'resources'", []).classified()?;
    tx.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('resources', ?1)", [floor]).classified()?;

    let mut add = |kind: Kind, row: Old, spec: String| -> Result<(), StoreError> {
        insert
            .execute(params![
                None::<i64>,
                kind.as_str(),
                row.account,
                row.arn,
                row.name,
                row.parent,
                row.uses,
                row.status,
                row.unique_key,
                spec,
                row.created,
                row.updated
            ])
            .classified()?;
        ids.insert(row.arn, tx.last_insert_rowid());
        Ok(())
    };

    for (row, (body, domain)) in old_rows(
        tx,
        "SELECT account, arn, name, NULL, NULL, 'ACTIVE', name, created, updated, body, domain FROM schemas ORDER BY id",
        |r| Ok((r.get::<_, String>(9)?, r.get::<_, Option<String>>(10)?)),
    )? {
        add(Kind::Schema, row, doc(serde_json::to_string(&SchemaSpec { body, domain }))?)?;
    }
    for (row, spec) in old_rows(
        tx,
        "SELECT account, arn, name, NULL, NULL, status, name, created, updated, role_arn, kms_key_arn, domain,
                is_default
         FROM dataset_groups ORDER BY id",
        |r| {
            Ok(GroupSpec {
                role_arn: r.get(9)?,
                kms_key_arn: r.get(10)?,
                domain: r.get(11)?,
                is_default: r.get::<_, i64>(12)? != 0,
            })
        },
    )? {
        add(Kind::DatasetGroup, row, doc(serde_json::to_string(&spec))?)?;
    }
    // One tracker per group: the group's ARN is the tracker's unique key, as the server makes it.
    for (row, tracking_id) in old_rows(
        tx,
        "SELECT t.account, t.arn, t.name, g.arn, NULL, t.status, g.arn, t.created, t.updated, t.tracking_id
         FROM event_trackers t LEFT JOIN dataset_groups g ON g.id = t.dataset_group_id ORDER BY t.id",
        |r| r.get::<_, String>(9),
    )? {
        add(Kind::EventTracker, row, doc(serde_json::to_string(&TrackerSpec { tracking_id }))?)?;
    }
    let has_jobs: bool = tx
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'export_jobs'", [], |r| {
            r.get::<_, i64>(0)
        })
        .classified()?
        > 0;
    if has_jobs {
        for (row, spec) in old_rows(
            tx,
            "SELECT j.account, j.arn, j.name, d.arn, NULL, j.status, j.name, j.created, j.updated, j.dataset_id,
                    j.ingestion_mode, j.role_arn, j.path, j.kms_key_arn, j.failure_reason
             FROM export_jobs j LEFT JOIN datasets d ON d.id = j.dataset_id ORDER BY j.id",
            |r| {
                Ok(ExportJobSpec {
                    dataset_id: r.get(9)?,
                    ingestion_mode: r.get(10)?,
                    role_arn: r.get(11)?,
                    path: r.get(12)?,
                    kms_key_arn: r.get(13)?,
                    failure_reason: r.get(14)?,
                    lease: None,
                })
            },
        )? {
            add(Kind::DatasetExportJob, row, doc(serde_json::to_string(&spec))?)?;
        }
    }
    drop(insert);

    // Tags move from ARNs to resource ids; a tag of a resource that is gone dies with it.
    let tags = {
        let mut stmt = tx.prepare("SELECT arn, key, value FROM tags_1 ORDER BY arn, key").classified()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .classified()?;
        rows.collect::<Result<Vec<_>, _>>().classified()?
    };
    for (arn, key, value) in tags {
        if let Some(id) = ids.get(&arn) {
            tx.execute("INSERT INTO resource_tags(resource, key, value) VALUES (?1, ?2, ?3)", params![id, key, value])
                .classified()?;
        }
    }
    let drops = if has_jobs { "DROP TABLE export_jobs;" } else { "" };
    tx.execute_batch(&format!(
        "{drops} DROP TABLE event_trackers; DROP TABLE datasets; DROP TABLE dataset_groups; DROP TABLE schemas;
         DROP TABLE tags_1; PRAGMA user_version = 2;"
    ))
    .classified()
}

/// The columns every old resource table gives, in the order the migration's queries select
/// them (0-8); the kind's own columns follow.
struct Old {
    account: String,
    arn: String,
    name: String,
    parent: Option<String>,
    uses: Option<String>,
    status: String,
    unique_key: Option<String>,
    created: f64,
    updated: f64,
}

fn old_rows<T>(
    tx: &Transaction<'_>,
    sql: &str,
    own: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<(Old, T)>, StoreError> {
    let mut stmt = tx.prepare(sql).classified()?;
    let rows = stmt
        .query_map([], |r| {
            let old = Old {
                account: r.get(0)?,
                arn: r.get(1)?,
                name: r.get(2)?,
                parent: r.get(3)?,
                uses: r.get(4)?,
                status: r.get(5)?,
                unique_key: r.get(6)?,
                created: r.get(7)?,
                updated: r.get(8)?,
            };
            Ok((old, own(r)?))
        })
        .classified()?;
    rows.collect::<Result<Vec<_>, _>>().classified()
}

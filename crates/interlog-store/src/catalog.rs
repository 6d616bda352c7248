//! The Personalize resources of the control plane: schemas, dataset groups, datasets, event
//! trackers, dataset export jobs and tags, kept in the same SQLite file as the events.
//!
//! Every lookup is scoped to the caller's account: another account's resource is reported as
//! not found, never as forbidden, so nothing about it leaks.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::StoreError;

/// Documented quotas (Personalize "endpoints and quotas"): enforced as LimitExceededException.
pub const MAX_SCHEMAS: i64 = 500;
pub const MAX_DATASET_GROUPS: i64 = 5;
/// Tag keys a resource may carry (the TooManyTagKeysException text says 50).
pub const MAX_TAGS_PER_RESOURCE: i64 = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRecord {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub body: String,
    pub domain: Option<String>,
    pub created: f64,
    pub updated: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub status: String,
    pub role_arn: Option<String>,
    pub kms_key_arn: Option<String>,
    pub domain: Option<String>,
    pub created: f64,
    pub updated: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub group_arn: String,
    /// The ARN segment, upper case: `INTERACTIONS`, `ITEMS`, `USERS`, `ACTIONS`, `ACTION_INTERACTIONS`.
    pub dataset_type: String,
    pub schema_arn: String,
    pub schema_body: String,
    pub status: String,
    pub created: f64,
    pub updated: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerRecord {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub account: String,
    pub tracking_id: String,
    pub group_arn: String,
    pub status: String,
    pub created: f64,
    pub updated: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportJobRecord {
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub dataset_arn: String,
    pub dataset_id: i64,
    pub ingestion_mode: String,
    pub role_arn: String,
    pub path: String,
    pub kms_key_arn: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created: f64,
    pub updated: f64,
}

/// One page of a listing; `next` is the id to continue after.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

fn page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> Page<T> {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(&id)
    } else {
        None
    };
    Page { items: rows, next }
}

fn unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

const SCHEMA_COLS: &str = "id, name, arn, body, domain, created, updated";
fn schema_row(r: &Row<'_>) -> rusqlite::Result<SchemaRecord> {
    Ok(SchemaRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        body: r.get(3)?,
        domain: r.get(4)?,
        created: r.get(5)?,
        updated: r.get(6)?,
    })
}

const GROUP_COLS: &str = "id, name, arn, status, role_arn, kms_key_arn, domain, created, updated";
fn group_row(r: &Row<'_>) -> rusqlite::Result<GroupRecord> {
    Ok(GroupRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        status: r.get(3)?,
        role_arn: r.get(4)?,
        kms_key_arn: r.get(5)?,
        domain: r.get(6)?,
        created: r.get(7)?,
        updated: r.get(8)?,
    })
}

const DATASET_COLS: &str = "d.id, d.name, d.arn, g.arn, d.dataset_type, s.arn, s.body, d.status, d.created, d.updated";
const DATASET_FROM: &str =
    "datasets d JOIN dataset_groups g ON g.id = d.dataset_group_id JOIN schemas s ON s.id = d.schema_id";
fn dataset_row(r: &Row<'_>) -> rusqlite::Result<DatasetRecord> {
    Ok(DatasetRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        group_arn: r.get(3)?,
        dataset_type: r.get(4)?,
        schema_arn: r.get(5)?,
        schema_body: r.get(6)?,
        status: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
    })
}

const TRACKER_COLS: &str = "t.id, t.name, t.arn, t.account, t.tracking_id, g.arn, t.status, t.created, t.updated";
const TRACKER_FROM: &str = "event_trackers t JOIN dataset_groups g ON g.id = t.dataset_group_id";
fn tracker_row(r: &Row<'_>) -> rusqlite::Result<TrackerRecord> {
    Ok(TrackerRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        account: r.get(3)?,
        tracking_id: r.get(4)?,
        group_arn: r.get(5)?,
        status: r.get(6)?,
        created: r.get(7)?,
        updated: r.get(8)?,
    })
}

const JOB_COLS: &str = "j.id, j.name, j.arn, d.arn, d.id, j.ingestion_mode, j.role_arn, j.path, j.kms_key_arn, \
                        j.status, j.failure_reason, j.created, j.updated";
const JOB_FROM: &str = "export_jobs j JOIN datasets d ON d.id = j.dataset_id";
fn job_row(r: &Row<'_>) -> rusqlite::Result<ExportJobRecord> {
    Ok(ExportJobRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        dataset_arn: r.get(3)?,
        dataset_id: r.get(4)?,
        ingestion_mode: r.get(5)?,
        role_arn: r.get(6)?,
        path: r.get(7)?,
        kms_key_arn: r.get(8)?,
        status: r.get(9)?,
        failure_reason: r.get(10)?,
        created: r.get(11)?,
        updated: r.get(12)?,
    })
}

fn not_found(kind: &str, arn: &str) -> StoreError {
    StoreError::NotFound(format!("Could not find the {kind} {arn}"))
}

/// Creates the export job table in stores made before it existed.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS export_jobs(
            id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
            dataset_id INTEGER NOT NULL REFERENCES datasets(id), ingestion_mode TEXT NOT NULL,
            role_arn TEXT NOT NULL, path TEXT NOT NULL, kms_key_arn TEXT, status TEXT NOT NULL,
            failure_reason TEXT, created REAL NOT NULL, updated REAL NOT NULL, UNIQUE(account, name));",
    )?;
    Ok(())
}

// ---- schemas ----

pub(crate) fn create_schema(
    conn: &Connection,
    account: &str,
    arn: &str,
    name: &str,
    body: &str,
    domain: Option<&str>,
    now: f64,
) -> Result<SchemaRecord, StoreError> {
    let count: i64 = conn.query_row("SELECT count(*) FROM schemas WHERE account = ?1", [account], |r| r.get(0))?;
    if count >= MAX_SCHEMAS {
        return Err(StoreError::LimitExceeded(format!(
            "Account {account} already has {count} schemas; the quota is {MAX_SCHEMAS}"
        )));
    }
    conn.execute(
        "INSERT INTO schemas(account, name, arn, body, domain, created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![account, name, arn, body, domain, now],
    )
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::AlreadyExists(format!("A schema named {name} already exists ({arn})"))
        } else {
            e.into()
        }
    })?;
    describe_schema(conn, account, arn)
}

pub(crate) fn describe_schema(conn: &Connection, account: &str, arn: &str) -> Result<SchemaRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {SCHEMA_COLS} FROM schemas WHERE account = ?1 AND arn = ?2"),
        params![account, arn],
        schema_row,
    )
    .optional()?
    .ok_or_else(|| not_found("schema", arn))
}

pub(crate) fn list_schemas(
    conn: &Connection,
    account: &str,
    after: i64,
    limit: usize,
) -> Result<Page<SchemaRecord>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {SCHEMA_COLS} FROM schemas WHERE account = ?1 AND id > ?2 ORDER BY id LIMIT ?3"))?;
    let rows = stmt.query_map(params![account, after, limit as i64 + 1], schema_row)?.collect::<Result<_, _>>()?;
    Ok(page(rows, limit, |s: &SchemaRecord| s.id))
}

pub(crate) fn delete_schema(conn: &Connection, account: &str, arn: &str) -> Result<(), StoreError> {
    let schema = describe_schema(conn, account, arn)?;
    let used: Option<String> = conn
        .query_row("SELECT arn FROM datasets WHERE schema_id = ?1 LIMIT 1", [schema.id], |r| r.get(0))
        .optional()?;
    if let Some(dataset) = used {
        return Err(StoreError::Conflict(format!("Schema {arn} is used by the dataset {dataset}; delete it first")));
    }
    conn.execute("DELETE FROM schemas WHERE id = ?1", [schema.id])?;
    conn.execute("DELETE FROM tags WHERE arn = ?1", [arn])?;
    Ok(())
}

// ---- dataset groups ----

pub(crate) struct NewGroup<'a> {
    pub account: &'a str,
    pub arn: &'a str,
    pub name: &'a str,
    pub role_arn: Option<&'a str>,
    pub kms_key_arn: Option<&'a str>,
    pub domain: Option<&'a str>,
}

pub(crate) fn create_dataset_group(conn: &Connection, g: &NewGroup<'_>, now: f64) -> Result<GroupRecord, StoreError> {
    let count: i64 =
        conn.query_row("SELECT count(*) FROM dataset_groups WHERE account = ?1", [g.account], |r| r.get(0))?;
    if count >= MAX_DATASET_GROUPS {
        return Err(StoreError::LimitExceeded(format!(
            "Account {} already has {count} dataset groups; the quota is {MAX_DATASET_GROUPS} \
             (delete one with DeleteDatasetGroup)",
            g.account
        )));
    }
    conn.execute(
        "INSERT INTO dataset_groups(account, name, arn, domain, role_arn, kms_key_arn, status, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACTIVE', ?7, ?7)",
        params![g.account, g.name, g.arn, g.domain, g.role_arn, g.kms_key_arn, now],
    )
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::AlreadyExists(format!("A dataset group named {} already exists ({})", g.name, g.arn))
        } else {
            e.into()
        }
    })?;
    describe_dataset_group(conn, g.account, g.arn)
}

pub(crate) fn describe_dataset_group(conn: &Connection, account: &str, arn: &str) -> Result<GroupRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {GROUP_COLS} FROM dataset_groups WHERE account = ?1 AND arn = ?2"),
        params![account, arn],
        group_row,
    )
    .optional()?
    .ok_or_else(|| not_found("dataset group", arn))
}

pub(crate) fn list_dataset_groups(
    conn: &Connection,
    account: &str,
    after: i64,
    limit: usize,
) -> Result<Page<GroupRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {GROUP_COLS} FROM dataset_groups WHERE account = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![account, after, limit as i64 + 1], group_row)?.collect::<Result<_, _>>()?;
    Ok(page(rows, limit, |g: &GroupRecord| g.id))
}

pub(crate) fn delete_dataset_group(conn: &Connection, account: &str, arn: &str) -> Result<(), StoreError> {
    let group = describe_dataset_group(conn, account, arn)?;
    let dataset: Option<String> = conn
        .query_row("SELECT arn FROM datasets WHERE dataset_group_id = ?1 LIMIT 1", [group.id], |r| r.get(0))
        .optional()?;
    let tracker: Option<String> = conn
        .query_row("SELECT arn FROM event_trackers WHERE dataset_group_id = ?1", [group.id], |r| r.get(0))
        .optional()?;
    if let Some(inner) = dataset.or(tracker) {
        return Err(StoreError::Conflict(format!(
            "Dataset group {arn} still contains {inner}; delete its datasets and event tracker first"
        )));
    }
    conn.execute("DELETE FROM dataset_groups WHERE id = ?1", [group.id])?;
    conn.execute("DELETE FROM tags WHERE arn = ?1", [arn])?;
    Ok(())
}

// ---- datasets ----

pub(crate) struct NewDataset<'a> {
    pub account: &'a str,
    pub arn: &'a str,
    pub name: &'a str,
    pub group_arn: &'a str,
    pub schema_arn: &'a str,
    /// Upper-case ARN segment of the type.
    pub dataset_type: &'a str,
}

pub(crate) fn create_dataset(conn: &Connection, d: &NewDataset<'_>, now: f64) -> Result<DatasetRecord, StoreError> {
    let group = describe_dataset_group(conn, d.account, d.group_arn)?;
    if group.status != "ACTIVE" {
        return Err(StoreError::Conflict(format!("Dataset group {} is {}, not ACTIVE", group.arn, group.status)));
    }
    let schema = describe_schema(conn, d.account, d.schema_arn)?;
    conn.execute(
        "INSERT INTO datasets(account, dataset_group_id, name, dataset_type, arn, schema_id, status, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACTIVE', ?7, ?7)",
        params![d.account, group.id, d.name, d.dataset_type, d.arn, schema.id, now],
    )
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::AlreadyExists(format!(
                "Dataset group {} already has a dataset of this type ({})",
                d.group_arn, d.arn
            ))
        } else {
            e.into()
        }
    })?;
    describe_dataset(conn, d.account, d.arn)
}

pub(crate) fn describe_dataset(conn: &Connection, account: &str, arn: &str) -> Result<DatasetRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {DATASET_COLS} FROM {DATASET_FROM} WHERE d.account = ?1 AND d.arn = ?2"),
        params![account, arn],
        dataset_row,
    )
    .optional()?
    .ok_or_else(|| not_found("dataset", arn))
}

pub(crate) fn list_datasets(
    conn: &Connection,
    account: &str,
    group_arn: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Page<DatasetRecord>, StoreError> {
    if let Some(g) = group_arn {
        describe_dataset_group(conn, account, g)?;
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {DATASET_COLS} FROM {DATASET_FROM}
         WHERE d.account = ?1 AND (?2 IS NULL OR g.arn = ?2) AND d.id > ?3 ORDER BY d.id LIMIT ?4"
    ))?;
    let rows =
        stmt.query_map(params![account, group_arn, after, limit as i64 + 1], dataset_row)?.collect::<Result<_, _>>()?;
    Ok(page(rows, limit, |d: &DatasetRecord| d.id))
}

/// Deletes a dataset and every event recorded into it.
pub(crate) fn delete_dataset(conn: &Connection, account: &str, arn: &str) -> Result<(), StoreError> {
    let dataset = describe_dataset(conn, account, arn)?;
    let running: Option<String> = conn
        .query_row(
            "SELECT arn FROM export_jobs WHERE dataset_id = ?1 AND status IN ('CREATE PENDING', 'CREATE IN_PROGRESS')",
            [dataset.id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(job) = running {
        return Err(StoreError::Conflict(format!("Dataset {arn} is being exported by {job}; wait until it ends")));
    }
    // The jobs' tags go with them: a later job of the same name gets the same ARN.
    conn.execute("DELETE FROM tags WHERE arn IN (SELECT arn FROM export_jobs WHERE dataset_id = ?1)", [dataset.id])?;
    conn.execute("DELETE FROM export_jobs WHERE dataset_id = ?1", [dataset.id])?;
    conn.execute("DELETE FROM events WHERE dataset_id = ?1", [dataset.id])?;
    conn.execute("DELETE FROM datasets WHERE id = ?1", [dataset.id])?;
    conn.execute("DELETE FROM tags WHERE arn = ?1", [arn])?;
    Ok(())
}

// ---- event trackers ----

pub(crate) fn create_event_tracker(
    conn: &Connection,
    account: &str,
    arn: &str,
    name: &str,
    group_arn: &str,
    tracking_id: &str,
    now: f64,
) -> Result<TrackerRecord, StoreError> {
    let group = describe_dataset_group(conn, account, group_arn)?;
    if group.status != "ACTIVE" {
        return Err(StoreError::Conflict(format!("Dataset group {} is {}, not ACTIVE", group.arn, group.status)));
    }
    if let Some(existing) = conn
        .query_row("SELECT arn FROM event_trackers WHERE dataset_group_id = ?1", [group.id], |r| r.get::<_, String>(0))
        .optional()?
    {
        return Err(StoreError::AlreadyExists(format!(
            "Dataset group {group_arn} already has an event tracker ({existing}); only one is allowed per group"
        )));
    }
    conn.execute(
        "INSERT INTO event_trackers(account, dataset_group_id, name, arn, tracking_id, status, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, 'ACTIVE', ?6, ?6)",
        params![account, group.id, name, arn, tracking_id, now],
    )?;
    describe_event_tracker(conn, account, arn)
}

pub(crate) fn describe_event_tracker(conn: &Connection, account: &str, arn: &str) -> Result<TrackerRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {TRACKER_COLS} FROM {TRACKER_FROM} WHERE t.account = ?1 AND t.arn = ?2"),
        params![account, arn],
        tracker_row,
    )
    .optional()?
    .ok_or_else(|| not_found("event tracker", arn))
}

pub(crate) fn list_event_trackers(
    conn: &Connection,
    account: &str,
    group_arn: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Page<TrackerRecord>, StoreError> {
    if let Some(g) = group_arn {
        describe_dataset_group(conn, account, g)?;
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {TRACKER_COLS} FROM {TRACKER_FROM}
         WHERE t.account = ?1 AND (?2 IS NULL OR g.arn = ?2) AND t.id > ?3 ORDER BY t.id LIMIT ?4"
    ))?;
    let rows =
        stmt.query_map(params![account, group_arn, after, limit as i64 + 1], tracker_row)?.collect::<Result<_, _>>()?;
    Ok(page(rows, limit, |t: &TrackerRecord| t.id))
}

pub(crate) fn delete_event_tracker(conn: &Connection, account: &str, arn: &str) -> Result<(), StoreError> {
    let tracker = describe_event_tracker(conn, account, arn)?;
    conn.execute("DELETE FROM event_trackers WHERE id = ?1", [tracker.id])?;
    conn.execute("DELETE FROM tags WHERE arn = ?1", [arn])?;
    Ok(())
}

// ---- dataset export jobs ----

pub(crate) struct NewExportJob<'a> {
    pub account: &'a str,
    pub arn: &'a str,
    pub name: &'a str,
    pub dataset_arn: &'a str,
    pub ingestion_mode: &'a str,
    pub role_arn: &'a str,
    pub path: &'a str,
    pub kms_key_arn: Option<&'a str>,
}

pub(crate) fn create_export_job(
    conn: &Connection,
    j: &NewExportJob<'_>,
    now: f64,
) -> Result<ExportJobRecord, StoreError> {
    let dataset = describe_dataset(conn, j.account, j.dataset_arn)?;
    conn.execute(
        "INSERT INTO export_jobs(account, name, arn, dataset_id, ingestion_mode, role_arn, path, kms_key_arn, status,
                                 created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'CREATE PENDING', ?9, ?9)",
        params![j.account, j.name, j.arn, dataset.id, j.ingestion_mode, j.role_arn, j.path, j.kms_key_arn, now],
    )
    .map_err(|e| {
        if unique_violation(&e) {
            StoreError::AlreadyExists(format!("A dataset export job named {} already exists ({})", j.name, j.arn))
        } else {
            e.into()
        }
    })?;
    describe_export_job(conn, j.account, j.arn)
}

pub(crate) fn describe_export_job(conn: &Connection, account: &str, arn: &str) -> Result<ExportJobRecord, StoreError> {
    conn.query_row(
        &format!("SELECT {JOB_COLS} FROM {JOB_FROM} WHERE j.account = ?1 AND j.arn = ?2"),
        params![account, arn],
        job_row,
    )
    .optional()?
    .ok_or_else(|| not_found("dataset export job", arn))
}

pub(crate) fn list_export_jobs(
    conn: &Connection,
    account: &str,
    dataset_arn: Option<&str>,
    after: i64,
    limit: usize,
) -> Result<Page<ExportJobRecord>, StoreError> {
    if let Some(d) = dataset_arn {
        describe_dataset(conn, account, d)?;
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {JOB_COLS} FROM {JOB_FROM}
         WHERE j.account = ?1 AND (?2 IS NULL OR d.arn = ?2) AND j.id > ?3 ORDER BY j.id LIMIT ?4"
    ))?;
    let rows =
        stmt.query_map(params![account, dataset_arn, after, limit as i64 + 1], job_row)?.collect::<Result<_, _>>()?;
    Ok(page(rows, limit, |j: &ExportJobRecord| j.id))
}

pub(crate) fn set_export_job_status(
    conn: &Connection,
    arn: &str,
    status: &str,
    failure: Option<&str>,
    now: f64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE export_jobs SET status = ?2, failure_reason = ?3, updated = ?4 WHERE arn = ?1",
        params![arn, status, failure, now],
    )?;
    Ok(())
}

/// Jobs a crash or restart interrupted: they are failed with a reason rather than left pending.
pub(crate) fn fail_interrupted_jobs(conn: &Connection, now: f64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE export_jobs SET status = 'CREATE FAILED', updated = ?1,
             failure_reason = 'The server stopped while the job was running; create the job again'
         WHERE status IN ('CREATE PENDING', 'CREATE IN_PROGRESS')",
        [now],
    )?)
}

// ---- tags ----

/// Which table holds the resource an ARN names, for tag operations.
fn resource_exists(conn: &Connection, account: &str, arn: &str) -> Result<bool, StoreError> {
    for table in ["schemas", "dataset_groups", "datasets", "event_trackers", "export_jobs"] {
        let found: Option<i64> = conn
            .query_row(&format!("SELECT 1 FROM {table} WHERE account = ?1 AND arn = ?2"), params![account, arn], |r| {
                r.get(0)
            })
            .optional()?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) fn tag_resource(
    conn: &Connection,
    account: &str,
    arn: &str,
    tags: &[(String, String)],
) -> Result<(), StoreError> {
    if !resource_exists(conn, account, arn)? {
        return Err(not_found("resource", arn));
    }
    for (k, v) in tags {
        conn.execute(
            "INSERT INTO tags(arn, key, value) VALUES (?1, ?2, ?3) ON CONFLICT(arn, key) DO UPDATE SET value = ?3",
            params![arn, k, v],
        )?;
    }
    let count: i64 = conn.query_row("SELECT count(*) FROM tags WHERE arn = ?1", [arn], |r| r.get(0))?;
    if count > MAX_TAGS_PER_RESOURCE {
        return Err(StoreError::TooManyTags(format!(
            "{arn} would carry {count} tag keys; a resource may have at most {MAX_TAGS_PER_RESOURCE}"
        )));
    }
    Ok(())
}

pub(crate) fn untag_resource(conn: &Connection, account: &str, arn: &str, keys: &[String]) -> Result<(), StoreError> {
    if !resource_exists(conn, account, arn)? {
        return Err(not_found("resource", arn));
    }
    for k in keys {
        conn.execute("DELETE FROM tags WHERE arn = ?1 AND key = ?2", params![arn, k])?;
    }
    Ok(())
}

pub(crate) fn list_tags(conn: &Connection, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
    if !resource_exists(conn, account, arn)? {
        return Err(not_found("resource", arn));
    }
    let mut stmt = conn.prepare("SELECT key, value FROM tags WHERE arn = ?1 ORDER BY key")?;
    let rows = stmt.query_map([arn], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The control plane's view of the store inside one transaction: every method runs on it, and
/// the whole operation commits or rolls back as one.
pub struct CatalogTx<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) now: f64,
}

#[allow(clippy::too_many_arguments)]
impl CatalogTx<'_> {
    /// The transaction's clock, epoch seconds with milliseconds.
    pub fn now(&self) -> f64 {
        self.now
    }
    pub fn create_schema(
        &self,
        account: &str,
        arn: &str,
        name: &str,
        body: &str,
        domain: Option<&str>,
    ) -> Result<SchemaRecord, StoreError> {
        create_schema(self.conn, account, arn, name, body, domain, self.now)
    }
    pub fn describe_schema(&self, account: &str, arn: &str) -> Result<SchemaRecord, StoreError> {
        describe_schema(self.conn, account, arn)
    }
    pub fn list_schemas(&self, account: &str, after: i64, limit: usize) -> Result<Page<SchemaRecord>, StoreError> {
        list_schemas(self.conn, account, after, limit)
    }
    pub fn delete_schema(&self, account: &str, arn: &str) -> Result<(), StoreError> {
        delete_schema(self.conn, account, arn)
    }
    pub fn create_dataset_group(
        &self,
        account: &str,
        arn: &str,
        name: &str,
        role_arn: Option<&str>,
        kms_key_arn: Option<&str>,
        domain: Option<&str>,
    ) -> Result<GroupRecord, StoreError> {
        create_dataset_group(self.conn, &NewGroup { account, arn, name, role_arn, kms_key_arn, domain }, self.now)
    }
    pub fn describe_dataset_group(&self, account: &str, arn: &str) -> Result<GroupRecord, StoreError> {
        describe_dataset_group(self.conn, account, arn)
    }
    pub fn list_dataset_groups(
        &self,
        account: &str,
        after: i64,
        limit: usize,
    ) -> Result<Page<GroupRecord>, StoreError> {
        list_dataset_groups(self.conn, account, after, limit)
    }
    pub fn delete_dataset_group(&self, account: &str, arn: &str) -> Result<(), StoreError> {
        delete_dataset_group(self.conn, account, arn)
    }
    pub fn create_dataset(
        &self,
        account: &str,
        arn: &str,
        name: &str,
        group_arn: &str,
        schema_arn: &str,
        dataset_type: &str,
    ) -> Result<DatasetRecord, StoreError> {
        create_dataset(self.conn, &NewDataset { account, arn, name, group_arn, schema_arn, dataset_type }, self.now)
    }
    pub fn describe_dataset(&self, account: &str, arn: &str) -> Result<DatasetRecord, StoreError> {
        describe_dataset(self.conn, account, arn)
    }
    pub fn list_datasets(
        &self,
        account: &str,
        group_arn: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Page<DatasetRecord>, StoreError> {
        list_datasets(self.conn, account, group_arn, after, limit)
    }
    pub fn delete_dataset(&self, account: &str, arn: &str) -> Result<(), StoreError> {
        delete_dataset(self.conn, account, arn)
    }
    pub fn create_event_tracker(
        &self,
        account: &str,
        arn: &str,
        name: &str,
        group_arn: &str,
        tracking_id: &str,
    ) -> Result<TrackerRecord, StoreError> {
        create_event_tracker(self.conn, account, arn, name, group_arn, tracking_id, self.now)
    }
    pub fn describe_event_tracker(&self, account: &str, arn: &str) -> Result<TrackerRecord, StoreError> {
        describe_event_tracker(self.conn, account, arn)
    }
    pub fn list_event_trackers(
        &self,
        account: &str,
        group_arn: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Page<TrackerRecord>, StoreError> {
        list_event_trackers(self.conn, account, group_arn, after, limit)
    }
    pub fn delete_event_tracker(&self, account: &str, arn: &str) -> Result<(), StoreError> {
        delete_event_tracker(self.conn, account, arn)
    }
    pub fn create_export_job(
        &self,
        account: &str,
        arn: &str,
        name: &str,
        dataset_arn: &str,
        ingestion_mode: &str,
        role_arn: &str,
        path: &str,
        kms_key_arn: Option<&str>,
    ) -> Result<ExportJobRecord, StoreError> {
        let job = NewExportJob { account, arn, name, dataset_arn, ingestion_mode, role_arn, path, kms_key_arn };
        create_export_job(self.conn, &job, self.now)
    }
    pub fn describe_export_job(&self, account: &str, arn: &str) -> Result<ExportJobRecord, StoreError> {
        describe_export_job(self.conn, account, arn)
    }
    pub fn list_export_jobs(
        &self,
        account: &str,
        dataset_arn: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Page<ExportJobRecord>, StoreError> {
        list_export_jobs(self.conn, account, dataset_arn, after, limit)
    }
    pub fn set_export_job_status(&self, arn: &str, status: &str, failure: Option<&str>) -> Result<(), StoreError> {
        set_export_job_status(self.conn, arn, status, failure, self.now)
    }
    pub fn tag_resource(&self, account: &str, arn: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        tag_resource(self.conn, account, arn, tags)
    }
    pub fn untag_resource(&self, account: &str, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        untag_resource(self.conn, account, arn, keys)
    }
    pub fn list_tags(&self, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        list_tags(self.conn, account, arn)
    }
}

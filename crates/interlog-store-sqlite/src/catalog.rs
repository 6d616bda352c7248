//! The catalog's SQL over the generic `resources` table: the writes the writer thread runs in its
//! own transactions (rules checked in the same transaction), and the reads the read pool runs.

use std::collections::HashSet;

use interlog_store::catalog::{
    already_exists, in_use, missing, no_resource, not_active, too_many_tags, DeleteRules, InsertRules, KeyRecord, Kind,
    ListQuery, Meta, NewRow, Page, Row, RowUpdate, MAX_TAGS_PER_RESOURCE,
};
use interlog_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{is_unique_violation, Classify};

/// A catalog write, as the writer thread receives it.
#[derive(Debug)]
pub enum Write {
    Insert(Box<(NewRow, InsertRules)>),
    Update { account: String, kind: Kind, arn: String, update: RowUpdate },
    Delete { account: String, kind: Kind, arn: String, rules: DeleteRules },
    Tag { account: String, arn: String, tags: Vec<(String, String)>, max: usize },
    Untag { account: String, arn: String, keys: Vec<String> },
    RootKey(KeyRecord),
}

/// What a committed write returns.
#[derive(Debug)]
pub enum Written {
    Row(Row),
    Deleted(Vec<Meta>),
    Done,
    Key(KeyRecord, bool),
}

/// What the writer must do after a write commits.
#[derive(Debug, Default)]
pub struct After {
    /// Datasets created (their ids become appendable).
    pub datasets_added: Vec<i64>,
    /// Datasets deleted: no more appends; a purge of their events was recorded for each.
    pub datasets_deleted: Vec<Purge>,
    /// The write changed the catalog (the version moved).
    pub changed: bool,
}

/// A deleted dataset's events still to remove: `seq` in `(done_through, last_seq]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purge {
    pub dataset_id: i64,
    pub done_through: i64,
    pub last_seq: i64,
}

const COLUMNS: &str = "id, kind, account, arn, name, parent, uses, status, created, updated, doc";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let kind: String = r.get(1)?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, format!("unknown kind {kind}").into())
    })?;
    Ok(Row {
        meta: Meta {
            id: r.get(0)?,
            kind,
            account: r.get(2)?,
            arn: r.get(3)?,
            name: r.get(4)?,
            parent: r.get(5)?,
            uses: r.get(6)?,
            status: r.get(7)?,
            created: r.get(8)?,
            updated: r.get(9)?,
        },
        doc: r.get(10)?,
    })
}

// ---- reads (any connection; the read pool's are read-only) ----

pub fn get(conn: &Connection, account: &str, kind: Kind, arn: &str) -> Result<Option<Row>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE arn = ?1 AND account = ?2 AND kind = ?3"))
        .classified()?
        .query_row(params![arn, account, kind.as_str()], row)
        .optional()
        .classified()
}

fn get_any_kind(conn: &Connection, account: &str, arn: &str) -> Result<Option<Row>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE arn = ?1 AND account = ?2"))
        .classified()?
        .query_row(params![arn, account], row)
        .optional()
        .classified()
}

pub fn list(conn: &Connection, q: &ListQuery) -> Result<Page<Row>, StoreError> {
    let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM resources
             WHERE kind = ?1 AND (?2 IS NULL OR account = ?2) AND (?3 IS NULL OR parent = ?3) AND id > ?4
             ORDER BY id LIMIT ?5"
        ))
        .classified()?;
    let rows = stmt
        .query_map(params![q.kind.as_str(), q.account, q.parent, q.after, limit], row)
        .classified()?
        .collect::<Result<Vec<_>, _>>()
        .classified()?;
    Ok(Page::from_rows(rows, q.limit, |r| r.meta.id))
}

pub fn tags(conn: &Connection, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
    let resource = get_any_kind(conn, account, arn)?.ok_or_else(|| no_resource(arn))?;
    tags_of(conn, resource.meta.id)
}

fn tags_of(conn: &Connection, id: i64) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT key, value FROM resource_tags WHERE resource = ?1 ORDER BY key").classified()?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?))).classified()?;
    rows.collect::<Result<_, _>>().classified()
}

pub fn version(conn: &Connection) -> Result<u64, StoreError> {
    let v: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| r.get(0)).classified()?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Ids of the datasets that exist: the only ones appends may go to.
pub fn dataset_ids(conn: &Connection) -> Result<HashSet<i64>, StoreError> {
    let mut stmt = conn.prepare("SELECT id FROM resources WHERE kind = 'dataset'").classified()?;
    let ids = stmt.query_map([], |r| r.get(0)).classified()?.collect::<Result<_, _>>().classified()?;
    Ok(ids)
}

pub fn purges(conn: &Connection) -> Result<Vec<Purge>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT dataset_id, done_through, last_seq FROM purges ORDER BY dataset_id").classified()?;
    let rows = stmt
        .query_map([], |r| Ok(Purge { dataset_id: r.get(0)?, done_through: r.get(1)?, last_seq: r.get(2)? }))
        .classified()?;
    rows.collect::<Result<_, _>>().classified()
}

// ---- writes (the writer's connection, inside its transaction) ----

/// Runs one write; the caller commits only if it returns `Ok`, so a refused write changes
/// nothing, the version included.
pub fn write(conn: &Connection, w: Write, now: f64) -> Result<(Written, After), StoreError> {
    let mut after = After { changed: true, ..After::default() };
    let written = match w {
        Write::Insert(insertion) => {
            let (new, rules) = *insertion;
            let row = insert(conn, new, &rules, now)?;
            if row.meta.kind == Kind::Dataset {
                after.datasets_added.push(row.meta.id);
            }
            Written::Row(row)
        }
        Write::Update { account, kind, arn, update } => {
            Written::Row(update_row(conn, &account, kind, &arn, update, now)?)
        }
        Write::Delete { account, kind, arn, rules } => {
            let (deleted, purges) = delete(conn, &account, kind, &arn, &rules)?;
            after.datasets_deleted = purges;
            Written::Deleted(deleted)
        }
        Write::Tag { account, arn, tags, max } => {
            tag(conn, &account, &arn, &tags, max)?;
            Written::Done
        }
        Write::Untag { account, arn, keys } => {
            let resource = get_any_kind(conn, &account, &arn)?.ok_or_else(|| no_resource(&arn))?;
            let mut stmt =
                conn.prepare_cached("DELETE FROM resource_tags WHERE resource = ?1 AND key = ?2").classified()?;
            for key in &keys {
                stmt.execute(params![resource.meta.id, key]).classified()?;
            }
            Written::Done
        }
        Write::RootKey(proposed) => {
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO root_key(id, access_key_id, secret_access_key, account_id) VALUES (1, ?1, ?2, ?3)",
                    params![proposed.access_key_id, proposed.secret_access_key, proposed.account_id],
                )
                .classified()?
                == 1;
            let stored = conn
                .query_row("SELECT access_key_id, secret_access_key, account_id FROM root_key WHERE id = 1", [], |r| {
                    Ok(KeyRecord { access_key_id: r.get(0)?, secret_access_key: r.get(1)?, account_id: r.get(2)? })
                })
                .classified()?;
            after.changed = inserted;
            Written::Key(stored, inserted)
        }
    };
    if after.changed {
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'", []).classified()?;
    }
    Ok((written, after))
}

fn insert(conn: &Connection, new: NewRow, rules: &InsertRules, now: f64) -> Result<Row, StoreError> {
    for req in &rules.requires {
        let found = get(conn, &new.account, req.kind, &req.arn)?.ok_or_else(|| missing(req.kind, &req.arn))?;
        if req.active && found.meta.status != "ACTIVE" {
            return Err(not_active(&found.meta));
        }
    }
    if let Some(holder) = holder(conn, &new)? {
        return Err(already_exists(rules, &holder));
    }
    if let Some(quota) = &rules.quota {
        let count: i64 = if quota.statuses.is_empty() {
            conn.query_row(
                "SELECT count(*) FROM resources WHERE account = ?1 AND kind = ?2",
                params![new.account, new.kind.as_str()],
                |r| r.get(0),
            )
        } else {
            let statuses = serde_json::to_string(&quota.statuses).map_err(StoreError::internal)?;
            conn.query_row(
                "SELECT count(*) FROM resources WHERE account = ?1 AND kind = ?2
                 AND status IN (SELECT value FROM json_each(?3))",
                params![new.account, new.kind.as_str(), statuses],
                |r| r.get(0),
            )
        }
        .classified()?;
        if u64::try_from(count).unwrap_or(0) >= quota.max {
            return Err(StoreError::LimitExceeded(quota.message.clone()));
        }
    }
    if new.tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(too_many_tags(&new.arn, new.tags.len(), MAX_TAGS_PER_RESOURCE));
    }
    conn.prepare_cached(
        "INSERT INTO resources(kind, account, arn, name, parent, uses, status, unique_key, doc, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )
    .classified()?
    .execute(params![
        new.kind.as_str(),
        new.account,
        new.arn,
        new.name,
        new.parent,
        new.uses,
        new.status,
        new.unique_key,
        new.doc,
        now
    ])
    .or_else(|e| {
        // Checked above; kept for a race no single writer can have, so the answer stays right.
        if is_unique_violation(&e) {
            let holder = holder(conn, &new)?.unwrap_or_else(|| new.arn.clone());
            Err(already_exists(rules, &holder))
        } else {
            Err(crate::error::classify(e))
        }
    })?;
    let id = conn.last_insert_rowid();
    set_tags(conn, id, &new.tags)?;
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE id = ?1"))
        .classified()?
        .query_row([id], row)
        .classified()
}

/// The ARN of the resource that already has `new`'s ARN or its unique key, if any.
fn holder(conn: &Connection, new: &NewRow) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "SELECT arn FROM resources WHERE arn = ?1 OR (account = ?2 AND kind = ?3 AND unique_key = ?4)
         ORDER BY arn = ?1 DESC LIMIT 1",
    )
    .classified()?
    .query_row(params![new.arn, new.account, new.kind.as_str(), new.unique_key], |r| r.get(0))
    .optional()
    .classified()
}

fn set_tags(conn: &Connection, id: i64, tags: &[(String, String)]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO resource_tags(resource, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT(resource, key) DO UPDATE SET value = excluded.value",
        )
        .classified()?;
    for (k, v) in tags {
        stmt.execute(params![id, k, v]).classified()?;
    }
    Ok(())
}

fn update_row(
    conn: &Connection,
    account: &str,
    kind: Kind,
    arn: &str,
    update: RowUpdate,
    now: f64,
) -> Result<Row, StoreError> {
    let current = get(conn, account, kind, arn)?.ok_or_else(|| missing(kind, arn))?;
    if let Some(expected) = &update.expect_status {
        if *expected != current.meta.status {
            return Err(StoreError::Conflict(format!(
                "The {} {arn} is {}, not {expected}",
                kind.noun(),
                current.meta.status
            )));
        }
    }
    conn.execute(
        "UPDATE resources SET status = coalesce(?2, status), doc = coalesce(?3, doc), updated = ?4 WHERE id = ?1",
        params![current.meta.id, update.status, update.doc, now],
    )
    .classified()?;
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE id = ?1"))
        .classified()?
        .query_row([current.meta.id], row)
        .classified()
}

fn dependants(conn: &Connection, arn: &str) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM resources WHERE parent = ?1 OR uses = ?1 ORDER BY id"))
        .classified()?;
    let rows = stmt.query_map([arn], row).classified()?;
    rows.collect::<Result<_, _>>().classified()
}

fn delete(
    conn: &Connection,
    account: &str,
    kind: Kind,
    arn: &str,
    rules: &DeleteRules,
) -> Result<(Vec<Meta>, Vec<Purge>), StoreError> {
    let resource = get(conn, account, kind, arn)?.ok_or_else(|| missing(kind, arn))?;
    // The resource, then every cascaded dependant (and theirs), each checked against the rules.
    let mut doomed = vec![resource.meta];
    let mut next = 0;
    while next < doomed.len() {
        let owner = doomed[next].clone();
        for dependant in dependants(conn, &owner.arn)? {
            if doomed.iter().any(|d| d.id == dependant.meta.id) {
                continue;
            }
            let cascades = rules.cascade.contains(&dependant.meta.kind);
            if !cascades || rules.blocking_statuses.contains(&dependant.meta.status) {
                return Err(in_use(&owner, &dependant.meta));
            }
            doomed.push(dependant.meta);
        }
        next += 1;
    }
    let mut purges = Vec::new();
    let last_seq: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0)).classified()?;
    for d in &doomed {
        conn.execute("DELETE FROM resource_tags WHERE resource = ?1", [d.id]).classified()?;
        conn.execute("DELETE FROM resources WHERE id = ?1", [d.id]).classified()?;
        if d.kind == Kind::Dataset && rules.purge_events {
            let purge = Purge { dataset_id: d.id, done_through: 0, last_seq };
            conn.execute(
                "INSERT OR REPLACE INTO purges(dataset_id, done_through, last_seq) VALUES (?1, ?2, ?3)",
                params![purge.dataset_id, purge.done_through, purge.last_seq],
            )
            .classified()?;
            purges.push(purge);
        }
    }
    Ok((doomed, purges))
}

fn tag(conn: &Connection, account: &str, arn: &str, tags: &[(String, String)], max: usize) -> Result<(), StoreError> {
    let resource = get_any_kind(conn, account, arn)?.ok_or_else(|| no_resource(arn))?;
    set_tags(conn, resource.meta.id, tags)?;
    let count: i64 = conn
        .query_row("SELECT count(*) FROM resource_tags WHERE resource = ?1", [resource.meta.id], |r| r.get(0))
        .classified()?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > max {
        return Err(too_many_tags(arn, count, max));
    }
    Ok(())
}

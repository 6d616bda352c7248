//! The catalog on PostgreSQL: generic resource rows, tags, the version and the root key.
//!
//! Every write is one READ COMMITTED transaction that checks its rules and writes, so the rules
//! hold across nodes:
//! - requirements lock the required rows `FOR SHARE`, so a concurrent delete of one (which
//!   locks it `FOR UPDATE`) either waits for the insert and then sees the new dependant, or
//!   commits first and the requirement fails;
//! - a quota takes a transaction-scoped advisory lock per (schema, account, kind) before it
//!   counts, so two inserts on different nodes cannot both see room for one more;
//! - uniqueness is the unique indexes' (ARN; account + kind + unique key); a violation is
//!   `AlreadyExists` with the caller's message, naming the resource that holds the ARN or key;
//! - `expect_status` is a conditional `UPDATE`: PostgreSQL re-checks the condition on the row
//!   a concurrent claimer just changed, so exactly one claim wins;
//! - each write ends by bumping the one `catalog_version` row (whose lock orders versions by
//!   commit) and `pg_notify`, delivered to the other nodes at commit.

use async_trait::async_trait;
use interlog_store::catalog::{
    already_exists, in_use, missing, no_resource, not_active, too_many_tags, Catalog, DeleteRules, InsertRules,
    KeyRecord, Kind, ListQuery, Meta, NewRow, Page, Row, RowUpdate,
};
use interlog_store::StoreError;
use tokio_postgres::error::SqlState;

use crate::error::Fail;
use crate::{PostgresStore, CHANNEL};

const COLS: &str = "id, kind, account, arn, name, parent, uses, status, created, updated, doc";

/// The ARN of the resource that holds a new row's ARN or unique key ($1 ARN, $2 key, $3 account,
/// $4 kind), the ARN's own holder first.
const HOLDER: &str = "SELECT arn FROM resources WHERE arn = $1 \
                      OR ($2::text IS NOT NULL AND account = $3 AND kind = $4 AND unique_key = $2) \
                      ORDER BY arn = $1 DESC LIMIT 1";

fn meta(r: &tokio_postgres::Row) -> Result<Meta, Fail> {
    let kind: &str = r.try_get(1)?;
    let kind = Kind::parse(kind)
        .ok_or_else(|| StoreError::internal(format!("a stored resource has the unknown kind {kind:?}")))?;
    Ok(Meta {
        id: r.try_get(0)?,
        kind,
        account: r.try_get(2)?,
        arn: r.try_get(3)?,
        name: r.try_get(4)?,
        parent: r.try_get(5)?,
        uses: r.try_get(6)?,
        status: r.try_get(7)?,
        created: r.try_get(8)?,
        updated: r.try_get(9)?,
    })
}

fn row(r: &tokio_postgres::Row) -> Result<Row, Fail> {
    Ok(Row { meta: meta(r)?, doc: r.try_get(10)? })
}

/// Grows the version inside the writing transaction and tells the other nodes at commit.
async fn bump(tx: &deadpool_postgres::Transaction<'_>, schema: &str) -> Result<u64, Fail> {
    let v: i64 = tx.query_one("UPDATE catalog_version SET version = version + 1 RETURNING version", &[]).await?.get(0);
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("{schema} {v}")]).await?;
    Ok(v as u64)
}

/// The resource row of an account, locked for a change of it or its tags.
async fn locked(
    tx: &deadpool_postgres::Transaction<'_>,
    account: &str,
    kind: Option<Kind>,
    arn: &str,
) -> Result<Option<Meta>, Fail> {
    let r = tx
        .query_opt(
            &format!(
                "SELECT {COLS} FROM resources WHERE arn = $1 AND account = $2 AND ($3::text IS NULL OR kind = $3) \
                 FOR UPDATE"
            ),
            &[&arn, &account, &kind.map(Kind::as_str)],
        )
        .await?;
    r.as_ref().map(meta).transpose()
}

#[async_trait]
impl Catalog for PostgresStore {
    async fn insert(&self, new: NewRow, rules: InsertRules) -> Result<Row, StoreError> {
        let schema = &self.shared.schema;
        let (stored, version) = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                for r in &rules.requires {
                    let found = tx
                        .query_opt(
                            &format!(
                                "SELECT {COLS} FROM resources WHERE arn = $1 AND account = $2 AND kind = $3 FOR SHARE"
                            ),
                            &[&r.arn, &new.account, &r.kind.as_str()],
                        )
                        .await?;
                    let Some(found) = found else { return Err(missing(r.kind, &r.arn).into()) };
                    let found = meta(&found)?;
                    if r.active && found.status != "ACTIVE" {
                        return Err(not_active(&found).into());
                    }
                }
                let holder_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&new.arn, &new.unique_key, &new.account, &new.kind.as_str()];
                if let Some(taken) = tx.query_opt(HOLDER, &holder_params).await? {
                    return Err(already_exists(&rules, taken.try_get(0)?).into());
                }
                if let Some(quota) = &rules.quota {
                    // Held to the commit: the next insert of this kind in this account, on any
                    // node, counts after this one is visible.
                    let key = format!("{}/{}", new.account, new.kind.as_str());
                    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", &[schema, &key]).await?;
                    let count: i64 = tx
                        .query_one(
                            "SELECT count(*) FROM resources WHERE account = $1 AND kind = $2 \
                             AND (cardinality($3::text[]) = 0 OR status = ANY($3))",
                            &[&new.account, &new.kind.as_str(), &quota.statuses],
                        )
                        .await?
                        .get(0);
                    if count as u64 >= quota.max {
                        return Err(StoreError::LimitExceeded(quota.message.clone()).into());
                    }
                }
                let now = interlog_store::now();
                let inserted = tx
                    .query_one(
                        &format!(
                            "INSERT INTO resources(kind, account, arn, name, parent, uses, status, unique_key, doc, \
                             created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLS}"
                        ),
                        &[
                            &new.kind.as_str(),
                            &new.account,
                            &new.arn,
                            &new.name,
                            &new.parent,
                            &new.uses,
                            &new.status,
                            &new.unique_key,
                            &new.doc,
                            &now,
                        ],
                    )
                    .await;
                let inserted = match inserted {
                    Ok(r) => r,
                    // Another node inserted the same ARN or key after our check: name its row,
                    // read after this (aborted) transaction is rolled back.
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        drop(tx);
                        let taken = c.query_opt(HOLDER, &holder_params).await?;
                        let holder = match &taken {
                            Some(r) => r.try_get(0)?,
                            None => new.arn.as_str(),
                        };
                        return Err(already_exists(&rules, holder).into());
                    }
                    Err(e) => return Err(e.into()),
                };
                let (keys, values) = dedup_tags(&new.tags);
                if !keys.is_empty() {
                    tx.execute(
                        "INSERT INTO tags(arn, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v)",
                        &[&new.arn, &keys, &values],
                    )
                    .await?;
                }
                let version = bump(&tx, schema).await?;
                tx.commit().await?;
                Ok((row(&inserted)?, version))
            })
            .await?;
        self.shared.saw_version(version);
        Ok(stored)
    }

    async fn get(&self, account: &str, kind: Kind, arn: &str) -> Result<Option<Row>, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let stmt = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM resources WHERE arn = $1 AND account = $2 AND kind = $3"
                    ))
                    .await?;
                let r = c.query_opt(&stmt, &[&arn, &account, &kind.as_str()]).await?;
                r.as_ref().map(row).transpose()
            })
            .await
    }

    async fn list(&self, query: ListQuery) -> Result<Page<Row>, StoreError> {
        let limit = query.limit.max(1);
        let rows = self
            .shared
            .db
            .run(async |c| {
                let stmt = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM resources WHERE kind = $1 AND ($2::text IS NULL OR account = $2) \
                         AND ($3::text IS NULL OR parent = $3) AND id > $4 ORDER BY id LIMIT $5"
                    ))
                    .await?;
                let rows = c
                    .query(
                        &stmt,
                        &[&query.kind.as_str(), &query.account, &query.parent, &query.after, &(limit as i64 + 1)],
                    )
                    .await?;
                rows.iter().map(row).collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |r| r.meta.id))
    }

    async fn update(&self, account: &str, kind: Kind, arn: &str, update: RowUpdate) -> Result<Row, StoreError> {
        let schema = &self.shared.schema;
        let (stored, version) = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                let changed = tx
                    .query_opt(
                        &format!(
                            "UPDATE resources SET status = coalesce($4, status), doc = coalesce($5, doc), updated = $6 \
                             WHERE arn = $1 AND account = $2 AND kind = $3 AND ($7::text IS NULL OR status = $7) \
                             RETURNING {COLS}"
                        ),
                        &[
                            &arn,
                            &account,
                            &kind.as_str(),
                            &update.status,
                            &update.doc,
                            &interlog_store::now(),
                            &update.expect_status,
                        ],
                    )
                    .await?;
                let Some(changed) = changed else {
                    let current = tx
                        .query_opt(
                            "SELECT status FROM resources WHERE arn = $1 AND account = $2 AND kind = $3",
                            &[&arn, &account, &kind.as_str()],
                        )
                        .await?;
                    return Err(match (current, &update.expect_status) {
                        (None, _) => missing(kind, arn),
                        (Some(r), expected) => StoreError::Conflict(format!(
                            "The {} {arn} is {}, not {}",
                            kind.noun(),
                            r.get::<_, String>(0),
                            expected.as_deref().unwrap_or("what was expected")
                        )),
                    }
                    .into());
                };
                let version = bump(&tx, schema).await?;
                tx.commit().await?;
                Ok((row(&changed)?, version))
            })
            .await?;
        self.shared.saw_version(version);
        Ok(stored)
    }

    async fn delete(&self, account: &str, kind: Kind, arn: &str, rules: DeleteRules) -> Result<Vec<Meta>, StoreError> {
        let schema = &self.shared.schema;
        let (deleted, version) = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                let Some(resource) = locked(&tx, account, Some(kind), arn).await? else {
                    return Err(missing(kind, arn).into());
                };
                // Locked too: a job cannot start running between this check and the delete.
                let dependants = tx
                    .query(
                        &format!("SELECT {COLS} FROM resources WHERE parent = $1 OR uses = $1 ORDER BY id FOR UPDATE"),
                        &[&arn],
                    )
                    .await?;
                let mut deleted = vec![resource.clone()];
                for d in &dependants {
                    let d = meta(d)?;
                    if !rules.cascade.contains(&d.kind) || rules.blocking_statuses.contains(&d.status) {
                        return Err(in_use(&resource, &d).into());
                    }
                    deleted.push(d);
                }
                let arns: Vec<&str> = deleted.iter().map(|m| m.arn.as_str()).collect();
                tx.execute("DELETE FROM resources WHERE arn = ANY($1)", &[&arns]).await?;
                tx.execute("DELETE FROM tags WHERE arn = ANY($1)", &[&arns]).await?;
                if rules.purge_events {
                    // The durable purge record, in the same transaction as the delete. From its
                    // commit on, appends to this id are refused (the writer reads `deleted`
                    // under the same row lock), so nothing can reappear after the purge.
                    tx.execute(
                        "INSERT INTO event_logs(dataset_id, deleted) VALUES ($1, $2) \
                         ON CONFLICT (dataset_id) DO UPDATE SET deleted = EXCLUDED.deleted, purged = false",
                        &[&resource.id, &interlog_store::now()],
                    )
                    .await?;
                }
                let version = bump(&tx, schema).await?;
                tx.commit().await?;
                Ok((deleted, version))
            })
            .await?;
        self.shared.saw_version(version);
        if rules.purge_events {
            self.shared.purge.notify_one();
        }
        Ok(deleted)
    }

    async fn tag(&self, account: &str, arn: &str, tags: &[(String, String)], max: usize) -> Result<(), StoreError> {
        let schema = &self.shared.schema;
        let version = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                if locked(&tx, account, None, arn).await?.is_none() {
                    return Err(no_resource(arn).into());
                }
                let (keys, values) = dedup_tags(tags);
                let count: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM (SELECT key FROM tags WHERE arn = $1 UNION SELECT unnest($2::text[])) k",
                        &[&arn, &keys],
                    )
                    .await?
                    .get(0);
                if count as usize > max {
                    return Err(too_many_tags(arn, count as usize, max).into());
                }
                tx.execute(
                    "INSERT INTO tags(arn, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS t(k, v) \
                     ON CONFLICT (arn, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&arn, &keys, &values],
                )
                .await?;
                let version = bump(&tx, schema).await?;
                tx.commit().await?;
                Ok(version)
            })
            .await?;
        self.shared.saw_version(version);
        Ok(())
    }

    async fn untag(&self, account: &str, arn: &str, keys: &[String]) -> Result<(), StoreError> {
        let schema = &self.shared.schema;
        let version = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                if locked(&tx, account, None, arn).await?.is_none() {
                    return Err(no_resource(arn).into());
                }
                tx.execute("DELETE FROM tags WHERE arn = $1 AND key = ANY($2)", &[&arn, &keys]).await?;
                let version = bump(&tx, schema).await?;
                tx.commit().await?;
                Ok(version)
            })
            .await?;
        self.shared.saw_version(version);
        Ok(())
    }

    async fn tags(&self, account: &str, arn: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.shared
            .db
            .run(async |c| {
                let exists =
                    c.query_opt("SELECT 1 FROM resources WHERE arn = $1 AND account = $2", &[&arn, &account]).await?;
                if exists.is_none() {
                    return Err(no_resource(arn).into());
                }
                let rows = c.query("SELECT key, value FROM tags WHERE arn = $1 ORDER BY key", &[&arn]).await?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
            .await
    }

    async fn version(&self) -> Result<u64, StoreError> {
        let v = self.shared.db.run(async |c| Ok(read_version(c).await?)).await?;
        self.shared.saw_version(v);
        Ok(v)
    }

    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    async fn root_key(&self, proposed: KeyRecord) -> Result<(KeyRecord, bool), StoreError> {
        let schema = &self.shared.schema;
        let (key, made, version) = self
            .shared
            .db
            .run(async |c| {
                let tx = c.transaction().await?;
                // Waits for a concurrent first insert and then conflicts with it, so exactly
                // one of many starting nodes stores (and prints) its key.
                let stored = tx
                    .query_opt(
                        "INSERT INTO access_keys(access_key_id, secret_access_key, account_id, is_root, created) \
                         VALUES ($1, $2, $3, true, $4) ON CONFLICT DO NOTHING RETURNING access_key_id",
                        &[
                            &proposed.access_key_id,
                            &proposed.secret_access_key,
                            &proposed.account_id,
                            &interlog_store::now(),
                        ],
                    )
                    .await?;
                if stored.is_some() {
                    let version = bump(&tx, schema).await?;
                    tx.commit().await?;
                    return Ok((proposed.clone(), true, Some(version)));
                }
                let root = tx
                    .query_opt(
                        "SELECT access_key_id, secret_access_key, account_id FROM access_keys WHERE is_root",
                        &[],
                    )
                    .await?;
                let Some(root) = root else {
                    return Err(StoreError::Conflict(format!(
                        "the access key {} is stored already but is not the root key",
                        proposed.access_key_id
                    ))
                    .into());
                };
                let key =
                    KeyRecord { access_key_id: root.get(0), secret_access_key: root.get(1), account_id: root.get(2) };
                Ok((key, false, None))
            })
            .await?;
        if let Some(v) = version {
            self.shared.saw_version(v);
        }
        Ok((key, made))
    }
}

pub(crate) async fn read_version(c: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    let v: i64 = c.query_one("SELECT version FROM catalog_version", &[]).await?.get(0);
    Ok(v as u64)
}

/// Keys and values with a repeated key given once (its last value wins), as one upsert needs.
fn dedup_tags(tags: &[(String, String)]) -> (Vec<&str>, Vec<&str>) {
    let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
    for (k, v) in tags {
        last.insert(k, v);
    }
    last.into_iter().unzip()
}

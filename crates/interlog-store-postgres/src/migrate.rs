//! Versioned migrations, run at start-up under an advisory lock so that any number of nodes may
//! start at once: the first one migrates, the others wait and find the work done.
//!
//! Each migration runs in its own transaction with its row in `interlog_migrations`; a database
//! whose newest row is past what this build knows was written by a newer interlog and stops
//! start-up (`StoreError::Foreign`) rather than being written in a layout it does not expect.

use interlog_store::StoreError;
use tokio_postgres::Client;

use crate::error::Fail;

/// `pg_advisory_lock(MIGRATION_LOCK, hashtext(schema))`: one migration at a time per schema.
/// ("ILOG" in ASCII, so it is recognisable in `pg_locks`.)
pub(crate) const LOCK_NAMESPACE: i32 = 0x494C_4F47;

/// The layout, one step at a time. Never edit a step that has shipped: add one.
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "events, catalog, keys, event logs",
        r#"
    -- Every resource of the control plane, whatever its kind (interlog_store::catalog::Row).
    -- Ids come from one sequence and are never reused: a dataset's id names its event log.
    CREATE SEQUENCE resource_ids;
    CREATE TABLE resources(
        id bigint PRIMARY KEY DEFAULT nextval('resource_ids'),
        kind text NOT NULL,
        account text NOT NULL,
        arn text NOT NULL UNIQUE,
        name text NOT NULL,
        parent text,
        uses text,
        status text NOT NULL,
        unique_key text,
        doc text NOT NULL,
        created double precision NOT NULL,
        updated double precision NOT NULL);
    CREATE UNIQUE INDEX resources_unique_key ON resources(account, kind, unique_key) WHERE unique_key IS NOT NULL;
    CREATE INDEX resources_listing ON resources(kind, account, id);
    CREATE INDEX resources_parent ON resources(parent) WHERE parent IS NOT NULL;
    CREATE INDEX resources_uses ON resources(uses) WHERE uses IS NOT NULL;
    CREATE TABLE tags(
        arn text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY(arn, key));
    -- Grows with every catalog write on any node (Catalog::version); the row lock also orders
    -- the versions by commit.
    CREATE TABLE catalog_version(
        id int PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL);
    INSERT INTO catalog_version VALUES (1, 0);
    -- Access keys every node accepts; exactly one is the root key.
    CREATE TABLE access_keys(
        access_key_id text PRIMARY KEY,
        secret_access_key text NOT NULL,
        account_id text NOT NULL,
        is_root boolean NOT NULL DEFAULT false,
        created double precision NOT NULL);
    CREATE UNIQUE INDEX access_keys_one_root ON access_keys((true)) WHERE is_root;
    -- One row per dataset that has events: the last position given out, taken under the row's
    -- lock by the committing transaction so positions follow commit order across nodes; and the
    -- durable purge record of a deleted dataset (`deleted` set, `purged` once its events are gone).
    CREATE TABLE event_logs(
        dataset_id bigint PRIMARY KEY,
        last_seq bigint NOT NULL DEFAULT 0,
        deleted double precision,
        purged boolean NOT NULL DEFAULT false);
    -- The events: append-only per dataset, the primary key is the only index (positions grow,
    -- so every insert lands on the right edge of the tree). Client strings are bytea because
    -- PostgreSQL text cannot hold U+0000, which a JSON string may carry; `properties` is the
    -- client's JSON text as sent, which cannot.
    CREATE TABLE events(
        dataset_id bigint NOT NULL,
        seq bigint NOT NULL,
        event_id bytea NOT NULL,
        session_id bytea NOT NULL,
        user_id bytea,
        item_id bytea,
        event_type bytea NOT NULL,
        event_value double precision,
        sent_at double precision NOT NULL,
        properties text,
        recommendation_id bytea,
        impression bytea[],
        attribution_source bytea,
        received_at double precision NOT NULL,
        PRIMARY KEY (dataset_id, seq));
    "#,
    ),
    (
        2,
        "keyed records of items, users and actions",
        r#"
    -- Items, users and actions: one row per ID, the latest committed write replacing the
    -- earlier one. IDs are bytea like the events' client strings (U+0000), and the key orders an
    -- export's pages bytewise, as SQLite's TEXT does.
    CREATE TABLE records(
        dataset_id bigint NOT NULL,
        record_id bytea NOT NULL,
        properties text,
        received_at double precision NOT NULL,
        PRIMARY KEY (dataset_id, record_id));
    "#,
    ),
    (
        3,
        "sink cursors and leases",
        r#"
    -- Where each sink (NATS, forwarding) stands in each dataset's log: the events are the
    -- outbox, this row only moves forward, by compare-and-set (interlog_store::sinks).
    CREATE TABLE sink_cursors(
        sink text NOT NULL,
        dataset_id bigint NOT NULL,
        position bigint NOT NULL,
        delivered bigint NOT NULL DEFAULT 0,
        retried bigint NOT NULL DEFAULT 0,
        last_error text,
        updated double precision NOT NULL,
        PRIMARY KEY (sink, dataset_id));
    -- Which node runs each sink, until `expires` by the database's clock.
    CREATE TABLE sink_leases(
        sink text PRIMARY KEY,
        node text NOT NULL,
        expires double precision NOT NULL);
    "#,
    ),
    (
        4,
        "events.flags",
        r#"
    -- Why a kept event would not reach a model (docs/api.md): a JSON array of {kind, message},
    -- NULL for the usual event without flags. A nullable column without a default changes only
    -- the catalog, not the rows, so this is instant however many events the table holds.
    ALTER TABLE events ADD COLUMN flags text;
    "#,
    ),
    (
        5,
        "records.flags",
        r#"
    -- The same for items, users and actions; instant as events.flags was.
    ALTER TABLE records ADD COLUMN flags text;
    "#,
    ),
    (
        6,
        "sink dead letters",
        r#"
    -- Events a sink's destination refused for good (a 4xx retrying cannot fix), kept until
    -- replayed; the event itself stays in the log at `position` (interlog_store::sinks).
    ALTER TABLE sink_cursors ADD COLUMN dead_lettered bigint NOT NULL DEFAULT 0;
    CREATE TABLE sink_dead_letters(
        id bigserial PRIMARY KEY,
        sink text NOT NULL,
        dataset_id bigint NOT NULL,
        position bigint NOT NULL,
        event_id text NOT NULL,
        reason text NOT NULL,
        attempts bigint NOT NULL,
        created double precision NOT NULL,
        updated double precision NOT NULL);
    CREATE INDEX sink_dead_letters_by_sink ON sink_dead_letters(sink, id);
    "#,
    ),
    (
        7,
        "history index of users and sessions",
        r#"
    -- One row per (event, user) and (event, session): kind 1 is a user, 2 a session. Filled by
    -- the background indexer after the `history` cursors of sink_cursors, never by an append
    -- (interlog_store::history); a deleted dataset's rows go with its purge.
    CREATE TABLE history(
        dataset_id bigint NOT NULL,
        kind smallint NOT NULL,
        who bytea NOT NULL,
        seq bigint NOT NULL,
        PRIMARY KEY (dataset_id, kind, who, seq));
    "#,
    ),
    (
        8,
        "the import job that stored each event and record (BULK data)",
        r#"
    -- The dataset import job that stored an event, or wrote the record that holds; NULL for the Put* calls (PUT
    -- data). Export jobs' ingestionMode reads it. Nullable without a default: added without rewriting a row, and
    -- every row already stored is PUT data, which it is. The partial indexes hold imported rows only, so no Put*
    -- append touches them; they find a failed job's rows, or what a FULL import replaces, without a scan.
    ALTER TABLE events ADD COLUMN import_job bigint;
    ALTER TABLE records ADD COLUMN import_job bigint;
    CREATE INDEX events_imported ON events(dataset_id, import_job) WHERE import_job IS NOT NULL;
    CREATE INDEX records_imported ON records(dataset_id, import_job) WHERE import_job IS NOT NULL;
    "#,
    ),
    (
        9,
        "positions of records for the sinks",
        r#"
    -- Every upsert of a record takes the next position of its dataset's log (event_logs.last_seq, under that row's
    -- lock, as events do), so the records changed after a sink's cursor are a range of records_by_position. The
    -- rows already stored are numbered in ID order after the dataset's last position, and last_seq moves past
    -- them, so a sink starting from 0 delivers each once and every later write after them.
    ALTER TABLE records ADD COLUMN position bigint NOT NULL DEFAULT 0;
    INSERT INTO event_logs(dataset_id, last_seq)
        SELECT DISTINCT dataset_id, 0 FROM records ON CONFLICT (dataset_id) DO NOTHING;
    UPDATE records r SET position = l.last_seq + n.n
        FROM (SELECT dataset_id, record_id, row_number() OVER (PARTITION BY dataset_id ORDER BY record_id) AS n
              FROM records) n, event_logs l
        WHERE n.dataset_id = r.dataset_id AND n.record_id = r.record_id AND l.dataset_id = r.dataset_id;
    UPDATE event_logs l SET last_seq = m.last FROM (SELECT dataset_id, max(position) AS last FROM records
        GROUP BY dataset_id) m WHERE m.dataset_id = l.dataset_id AND m.last > l.last_seq;
    CREATE INDEX records_by_position ON records(dataset_id, position);
    "#,
    ),
];

pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the current schema to the newest layout; `location` names it in messages.
pub(crate) async fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    let schema: Option<String> =
        client.query_one("SELECT current_schema()", &[]).await.map_err(|e| Fail::from(e).into_store())?.get(0);
    let Some(schema) = schema else {
        return Err(StoreError::Foreign {
            location: location.into(),
            reason: "the search_path names no existing schema: create it first (CREATE SCHEMA ...) or fix \
                     options=-csearch_path=... in the URL"
                .into(),
        });
    };
    client
        .execute("SELECT pg_advisory_lock($1, hashtext($2))", &[&LOCK_NAMESPACE, &schema])
        .await
        .map_err(|e| Fail::from(e).into_store())?;
    let result = migrate_locked(client, location, &schema).await;
    // Unlocked whatever happened (a failed step must not leave other nodes waiting forever;
    // the lock also dies with the connection).
    let _ = client.execute("SELECT pg_advisory_unlock($1, hashtext($2))", &[&LOCK_NAMESPACE, &schema]).await;
    result
}

async fn migrate_locked(client: &mut Client, location: &str, schema: &str) -> Result<(), StoreError> {
    let pg = |e: tokio_postgres::Error| Fail::from(e).into_store();
    let has_ledger: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'interlog_migrations')",
            &[&schema],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !has_ledger {
        let others: i64 = client
            .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = $1", &[&schema])
            .await
            .map_err(pg)?
            .get(0);
        if others > 0 {
            return Err(StoreError::Foreign {
                location: location.into(),
                reason: format!(
                    "schema {schema} holds {others} tables that interlog did not make; give interlog a database or \
                     schema of its own (options=-csearch_path=interlog in the URL, after CREATE SCHEMA interlog)"
                ),
            });
        }
        client
            .batch_execute(
                "CREATE TABLE interlog_migrations(
                    version int PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg)?;
    }
    let current: i32 =
        client.query_one("SELECT coalesce(max(version), 0) FROM interlog_migrations", &[]).await.map_err(pg)?.get(0);
    if current > latest() {
        return Err(StoreError::Foreign {
            location: location.into(),
            reason: format!(
                "the database was laid out by a newer interlog (layout {current}; this build knows up to {}): \
                 upgrade this node",
                latest()
            ),
        });
    }
    for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute("INSERT INTO interlog_migrations(version, description) VALUES ($1, $2)", &[version, description])
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        tracing::info!(version, description, "migrated the PostgreSQL layout");
    }
    Ok(())
}

//! What only the SQLite engine promises: the migrations from the first landing's layout and from
//! layout 2 (no `events.flags`), refusing foreign and newer files, the read-only store beside a
//! running one, file modes, and purges that really remove the rows and survive a restart.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interlog_model::arn::Scope;
use interlog_model::{Flag, FlagKind, Interaction, Record};
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, ExportJobSpec, GroupSpec, SchemaSpec, TrackerSpec};
use interlog_store::catalog::{DeleteRules, Kind};
use interlog_store::testing::{bare, event};
use interlog_store::{
    bootstrap, Bootstrap, Catalog, CatalogCache, EventStore, Health, SinkState, Store, StoreError, WriterOptions,
};
use interlog_store_sqlite::{SqliteStore, READ_ONLY};
use rusqlite::{params, Connection};

const ACCOUNT: &str = "000000000000";

async fn open(dir: &Path) -> Arc<SqliteStore> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&dir, WriterOptions::default())).await.unwrap().unwrap()
}

async fn try_open(dir: &Path) -> Result<Arc<SqliteStore>, StoreError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&dir, WriterOptions::default())).await.unwrap()
}

fn scope() -> Scope {
    Scope { region: "us-east-1".into(), account: ACCOUNT.into() }
}

async fn all(store: &dyn EventStore, dataset: i64) -> Vec<Interaction> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read(dataset, after, 1000).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(page.into_iter().map(|e| e.interaction));
    }
}

/// Rows of a dataset as the file has them, deleted dataset or not.
fn rows_on_disk(dir: &Path, dataset: i64) -> i64 {
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    conn.query_row("SELECT count(*) FROM events WHERE dataset_id = ?1", [dataset], |r| r.get(0)).unwrap()
}

// ---- layout 1, as the first landing wrote it (crates/interlog-store/src/sqlite.rs at 18601b3) ----

const LAYOUT_1: &str = "
    CREATE TABLE schemas(
        id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL, domain TEXT, created REAL NOT NULL, updated REAL NOT NULL,
        UNIQUE(account, name));
    CREATE TABLE dataset_groups(
        id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
        domain TEXT, role_arn TEXT, kms_key_arn TEXT, status TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL,
        UNIQUE(account, name));
    CREATE TABLE datasets(
        id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
        dataset_group_id INTEGER NOT NULL REFERENCES dataset_groups(id),
        name TEXT NOT NULL, dataset_type TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
        schema_id INTEGER NOT NULL REFERENCES schemas(id), status TEXT NOT NULL,
        created REAL NOT NULL, updated REAL NOT NULL, UNIQUE(dataset_group_id, dataset_type));
    CREATE TABLE event_trackers(
        id INTEGER PRIMARY KEY, account TEXT NOT NULL,
        dataset_group_id INTEGER NOT NULL UNIQUE REFERENCES dataset_groups(id),
        name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE, tracking_id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
    CREATE TABLE tags(arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(arn, key)) WITHOUT ROWID;
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL, event_id TEXT NOT NULL,
        session_id TEXT NOT NULL, user_id TEXT, item_id TEXT, event_type TEXT NOT NULL,
        event_value REAL, sent_at REAL NOT NULL, properties TEXT, recommendation_id TEXT,
        impression TEXT, attribution_source TEXT, received_at REAL NOT NULL);
    PRAGMA application_id = 1229737799; -- 0x494C4F47, ILOG
    PRAGMA user_version = 1;
";

/// What `catalog::migrate` added later, in stores that had run that build.
const EXPORT_JOBS_1: &str = "
    CREATE TABLE IF NOT EXISTS export_jobs(
        id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL UNIQUE,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id), ingestion_mode TEXT NOT NULL,
        role_arn TEXT NOT NULL, path TEXT NOT NULL, kms_key_arn TEXT, status TEXT NOT NULL,
        failure_reason TEXT, created REAL NOT NULL, updated REAL NOT NULL, UNIQUE(account, name));
";

const TRACKING_ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn arn(kind: &str, path: &str) -> String {
    scope().arn(kind, path)
}

/// A first-landing store: the default resources, a second group whose dataset was deleted
/// (id 2, so the next dataset got id 3), an export job, tags, and events in datasets 1 and 3.
/// `first_build`: the very first layout-1 build, whose dataset ids had no AUTOINCREMENT (the
/// deleted dataset's id 2 was taken again) and which had no `export_jobs` table yet. Returns the
/// shop dataset's id.
fn layout_1_store(dir: &Path, first_build: bool) -> i64 {
    let with_jobs = !first_build;
    std::fs::create_dir_all(dir).unwrap();
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;").unwrap();
    let layout = if first_build {
        LAYOUT_1.replace("id INTEGER PRIMARY KEY AUTOINCREMENT, account", "id INTEGER PRIMARY KEY, account")
    } else {
        LAYOUT_1.to_owned()
    };
    conn.execute_batch(&format!("BEGIN; {layout} COMMIT;")).unwrap();
    if with_jobs {
        conn.execute_batch(EXPORT_JOBS_1).unwrap();
    }
    let body = interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA;
    conn.execute(
        "INSERT INTO schemas(id, account, name, arn, body, domain, created, updated) VALUES
         (1, ?1, 'default-interactions', ?2, ?3, NULL, 1700000000.125, 1700000000.125),
         (2, ?1, 'shop', ?4, ?3, 'ECOMMERCE', 1700000001.5, 1700000002.5)",
        params![ACCOUNT, arn("schema", "default-interactions"), body, arn("schema", "shop")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO dataset_groups(id, account, name, arn, domain, role_arn, kms_key_arn, status, is_default,
                                    created, updated) VALUES
         (1, ?1, 'default', ?2, NULL, NULL, NULL, 'ACTIVE', 1, 1700000000.25, 1700000000.25),
         (2, ?1, 'shop', ?3, 'ECOMMERCE', 'arn:aws:iam::000000000000:role/r', NULL, 'ACTIVE', 0, 1700000003.0,
          1700000004.0)",
        params![ACCOUNT, arn("dataset-group", "default"), arn("dataset-group", "shop")],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO datasets(account, dataset_group_id, name, dataset_type, arn, schema_id, status, created, updated)
         VALUES (?1, 1, 'default-interactions', 'INTERACTIONS', ?2, 1, 'ACTIVE', 1700000000.5, 1700000000.5)",
        params![ACCOUNT, arn("dataset", "default/INTERACTIONS")],
    )
    .unwrap();
    // Dataset 2 was created and deleted (its events with it), so AUTOINCREMENT's counter is 2.
    conn.execute(
        "INSERT INTO datasets(account, dataset_group_id, name, dataset_type, arn, schema_id, status, created, updated)
         VALUES (?1, 2, 'gone', 'ITEMS', ?2, 2, 'ACTIVE', 1700000005.0, 1700000005.0)",
        params![ACCOUNT, arn("dataset", "shop/ITEMS")],
    )
    .unwrap();
    conn.execute("DELETE FROM datasets WHERE id = 2", []).unwrap();
    conn.execute(
        "INSERT INTO datasets(account, dataset_group_id, name, dataset_type, arn, schema_id, status, created, updated)
         VALUES (?1, 2, 'shop-interactions', 'INTERACTIONS', ?2, 2, 'ACTIVE', 1700000006.0, 1700000007.0)",
        params![ACCOUNT, arn("dataset", "shop/INTERACTIONS")],
    )
    .unwrap();
    let shop: i64 =
        conn.query_row("SELECT id FROM datasets WHERE name = 'shop-interactions'", [], |r| r.get(0)).unwrap();
    assert_eq!(shop, if first_build { 2 } else { 3 });
    conn.execute(
        "INSERT INTO event_trackers(id, account, dataset_group_id, name, arn, tracking_id, status, created, updated)
         VALUES (1, ?1, 1, 'default-tracker', ?2, ?3, 'ACTIVE', 1700000000.75, 1700000000.75)",
        params![ACCOUNT, arn("event-tracker", "0f8fad5b"), TRACKING_ID],
    )
    .unwrap();
    if with_jobs {
        conn.execute(
            "INSERT INTO export_jobs(id, account, name, arn, dataset_id, ingestion_mode, role_arn, path, kms_key_arn,
                                     status, failure_reason, created, updated)
             VALUES (1, ?1, 'nightly', ?2, 3, 'PUT', 'arn:aws:iam::000000000000:role/r', 's3://bucket/out/', NULL,
                     'CREATE FAILED', 'disk full', 1700000008.0, 1700000009.0)",
            params![ACCOUNT, arn("dataset-export-job", "nightly")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO tags(arn, key, value) VALUES (?1, 'owner', 'ops')",
            [arn("dataset-export-job", "nightly")],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO tags(arn, key, value) VALUES (?1, 'team', 'data'), (?1, 'env', 'prod'), (?2, 'team', 'shop'),
                                                  (?3, 'orphan', 'x')",
        params![arn("dataset-group", "default"), arn("dataset", "shop/INTERACTIONS"), arn("schema", "long-gone")],
    )
    .unwrap();
    let mut insert = conn
        .prepare(
            "INSERT INTO events(dataset_id, event_id, session_id, user_id, item_id, event_type, event_value, sent_at,
                 properties, recommendation_id, impression, attribution_source, received_at)
             VALUES (?1, ?2, 's', 'u', ?3, 'click', 1.5, 1700000000.0, NULL, NULL, '[\"a\",\"b\"]', NULL, 1700000010.0)",
        )
        .unwrap();
    for (dataset, id) in [(1, "e1"), (shop, "s1"), (1, "e2"), (shop, "s2"), (1, "e1")] {
        insert.execute(params![dataset, id, format!("item-{id}")]).unwrap();
    }
    shop
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layout_1_store_is_migrated_with_ids_arns_statuses_tags_and_events() {
    for first_build in [false, true] {
        let with_jobs = !first_build;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let shop_id = layout_1_store(&dir, first_build);
        let store = open(&dir).await;
        let version: i64 = Connection::open(dir.join("interlog.db"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);

        let default = store.describe::<DatasetSpec>(ACCOUNT, &arn("dataset", "default/INTERACTIONS")).await.unwrap();
        assert_eq!(default.meta.id, 1, "dataset ids are kept: the events name them");
        assert_eq!(default.meta.parent.as_deref(), Some(arn("dataset-group", "default").as_str()));
        assert_eq!(default.meta.uses.as_deref(), Some(arn("schema", "default-interactions").as_str()));
        assert_eq!(default.spec.dataset_type, "INTERACTIONS");
        assert_eq!((default.meta.created, default.meta.updated), (1700000000.5, 1700000000.5));
        let shop = store.describe::<DatasetSpec>(ACCOUNT, &arn("dataset", "shop/INTERACTIONS")).await.unwrap();
        assert_eq!(shop.meta.id, shop_id);
        assert_eq!((shop.meta.created, shop.meta.updated), (1700000006.0, 1700000007.0));

        let groups = store.list_all::<GroupSpec>(Some(ACCOUNT), None).await.unwrap();
        assert_eq!(groups.iter().map(|g| g.meta.name.as_str()).collect::<Vec<_>>(), ["default", "shop"]);
        assert!(groups[0].spec.is_default && !groups[1].spec.is_default);
        assert_eq!(groups[1].spec.domain.as_deref(), Some("ECOMMERCE"));
        assert_eq!(groups[1].spec.role_arn.as_deref(), Some("arn:aws:iam::000000000000:role/r"));
        assert_eq!((groups[1].meta.created, groups[1].meta.updated), (1700000003.0, 1700000004.0));
        assert!(groups.iter().all(|g| g.meta.id > shop_id), "no dataset id ever handed out is reused");

        let schemas = store.list_all::<SchemaSpec>(Some(ACCOUNT), None).await.unwrap();
        assert_eq!(schemas.len(), 2);
        assert_eq!(schemas[1].spec.domain.as_deref(), Some("ECOMMERCE"));
        assert_eq!(schemas[1].meta.status, "ACTIVE");
        assert_eq!(schemas[0].spec.body, interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA);

        let tracker = store.describe::<TrackerSpec>(ACCOUNT, &arn("event-tracker", "0f8fad5b")).await.unwrap();
        assert_eq!(tracker.spec.tracking_id, TRACKING_ID);
        assert_eq!(tracker.meta.status, "ACTIVE");

        let tags = store.tags(ACCOUNT, &arn("dataset-group", "default")).await.unwrap();
        assert_eq!(tags, [("env".to_string(), "prod".to_string()), ("team".into(), "data".into())]);
        assert_eq!(store.tags(ACCOUNT, &shop.meta.arn).await.unwrap(), [("team".to_string(), "shop".to_string())]);

        let job = store.find::<ExportJobSpec>(ACCOUNT, &arn("dataset-export-job", "nightly")).await.unwrap();
        if with_jobs {
            let job = job.expect("the export job moved");
            assert_eq!(job.spec.dataset_id, 3);
            assert_eq!(job.meta.parent.as_deref(), Some(shop.meta.arn.as_str()));
            assert_eq!(job.meta.status, "CREATE FAILED");
            assert_eq!(job.spec.failure_reason.as_deref(), Some("disk full"));
            assert_eq!(job.spec.path, "s3://bucket/out/");
            assert_eq!(store.tags(ACCOUNT, &job.meta.arn).await.unwrap(), [("owner".to_string(), "ops".to_string())]);
        } else {
            assert!(job.is_none());
        }

        // The events, under the same ids, and the hot path finds them through the tracker.
        let events = all(&*store, 1).await;
        assert_eq!(events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["e1", "e2", "e1"]);
        assert_eq!(events[0].impression.as_deref(), Some(&["a".to_string(), "b".to_string()][..]));
        assert_eq!(all(&*store, shop_id).await.len(), 2);
        let cache = CatalogCache::load(&*store).await.unwrap();
        assert_eq!(cache.tracker(TRACKING_ID).unwrap().dataset.as_ref().unwrap().id, 1);

        // The migrated store works: bootstrap finds its defaults, retries are caught (the
        // window was warmed from the old events), and a new dataset never takes an old id.
        let b = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap();
        assert!(!b.created);
        assert_eq!(b.dataset.meta.id, 1);
        let o = store.append(1, vec![bare("e2"), bare("e3")]).await.unwrap();
        assert_eq!((o.stored, o.duplicates), (1, 1));
        store.remove::<DatasetSpec>(ACCOUNT, &shop.meta.arn, purge_rules()).await.unwrap();
        let fresh = store
            .create(
                interlog_store::catalog::resources::New {
                    account: ACCOUNT.into(),
                    arn: arn("dataset", "shop/INTERACTIONS"),
                    name: "again".into(),
                    parent: Some(arn("dataset-group", "shop")),
                    uses: Some(arn("schema", "shop")),
                    status: "ACTIVE".into(),
                    unique_key: None,
                    tags: vec![],
                    spec: DatasetSpec { dataset_type: "INTERACTIONS".into(), tracking_id: None },
                },
                interlog_store::catalog::InsertRules { exists_message: "x".into(), ..Default::default() },
            )
            .await
            .unwrap();
        assert!(fresh.meta.id > 3, "{}", fresh.meta.id);
        assert!(all(&*store, fresh.meta.id).await.is_empty(), "a new dataset sees no old events");
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        store.close().await;
        // Opening again is a no-op for the layout.
        let again = open(&dir).await;
        assert_eq!(all(&*again, 1).await.len(), 4);
        again.close().await;
    }
}

/// A layout-2 file (no records, no sinks, events without `flags`) keeps its events and takes flags
/// after the migrations through layouts 3, 4 and 5.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_2_store_gains_flags_and_keeps_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event("old", "i")]).await.unwrap();
    store.close().await;
    drop(store);
    // Back to layout 2, as a build before the flags wrote it.
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!(
            "{DOWN_9} ALTER TABLE events DROP COLUMN flags; DROP TABLE records; DROP TABLE sink_cursors; DROP TABLE sink_leases;
             DROP TABLE sink_dead_letters; DROP TABLE history; PRAGMA user_version = 2;",
        ))
        .unwrap();
    let store = open(&dir).await;
    let version: i64 =
        Connection::open(dir.join("interlog.db")).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    let mut flagged = bare("new");
    flagged.properties = Some(r#"{"numberOfRatings": "12"}"#.into());
    flagged.flags = vec![Flag::new(FlagKind::UndeclaredProperty, "declare NUMBER_OF_RATINGS")];
    store.append(dataset, vec![flagged.clone()]).await.unwrap();
    assert_eq!(all(&*store, dataset).await, [event("old", "i"), flagged]);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// A layout-5 file (records without `flags`) keeps its records and takes flags on new ones.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_5_store_gains_record_flags_and_keeps_its_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    let old = Record { id: "old".into(), properties: Some(r#"{"n": 1}"#.into()), flags: vec![] };
    store.put_records(dataset, vec![old.clone()]).await.unwrap();
    store.close().await;
    drop(store);
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!(
            "{DOWN_9} ALTER TABLE records DROP COLUMN flags; DROP TABLE sink_dead_letters; DROP TABLE history;
             DELETE FROM sink_cursors WHERE sink = 'history'; ALTER TABLE sink_cursors DROP COLUMN dead_lettered;
             PRAGMA user_version = 5;",
        ))
        .unwrap();
    let store = open(&dir).await;
    let version: i64 =
        Connection::open(dir.join("interlog.db")).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    let flagged = Record {
        id: "new".into(),
        properties: Some(r#"{"numberOfRatings": "12"}"#.into()),
        flags: vec![Flag::new(FlagKind::UndeclaredProperty, "declare NUMBER_OF_RATINGS")],
    };
    store.put_records(dataset, vec![flagged.clone()]).await.unwrap();
    let got: Vec<Record> = store.read_records(dataset, None, 10).await.unwrap().into_iter().map(|r| r.record).collect();
    assert_eq!(got, [flagged, old]);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// A layout-7 file (no history index) gains the index, and its events already stored are
/// indexed in the background; history answers whole before and after.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_7_store_gains_the_history_index_and_indexes_its_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event("old-1", "i"), event("old-2", "i")]).await.unwrap();
    store.close().await;
    drop(store);
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!(
            "{DOWN_9} DROP TABLE history; DELETE FROM sink_cursors WHERE sink = 'history'; PRAGMA user_version = 7;"
        ))
        .unwrap();
    let store = open(&dir).await;
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    let user = || interlog_store::Who::User("user-1".into());
    assert_eq!(ids(store.history(dataset, user(), 10).await.unwrap()), ["old-2", "old-1"]);
    // A user row and a session row per event.
    indexed_rows(&conn, 4).await;
    assert_eq!(ids(store.history(dataset, user(), 10).await.unwrap()), ["old-2", "old-1"]);
    store.close().await;
}

/// Waits until the history index holds `rows` rows.
async fn indexed_rows(conn: &Connection, rows: i64) {
    let start = Instant::now();
    loop {
        let indexed: i64 = conn.query_row("SELECT count(*) FROM history", [], |r| r.get(0)).unwrap();
        if indexed == rows {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{indexed} index rows, not {rows}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new store whose default dataset holds Alice's `a1` (session `s1`), Bob's `b1` (`s1`) and Alice's `a2` (`s2`),
/// in that order.
async fn alice_and_bob(dir: &Path) -> (Arc<SqliteStore>, i64) {
    let store = open(dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event_of("a1", "alice", "s1"), event_of("b1", "bob", "s1")]).await.unwrap();
    store.append(dataset, vec![event_of("a2", "alice", "s2")]).await.unwrap();
    (store, dataset)
}

/// Opens [`alice_and_bob`]'s store after its file was taken back to an older layout: migrated to today's, history
/// answers whole before the indexer has rebuilt the index, and the index is rebuilt (six rows).
async fn rebuilt_history(dir: &Path, dataset: i64) -> (Arc<SqliteStore>, Connection) {
    let store = open(dir).await;
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    let alice = interlog_store::Who::User("alice".into());
    assert_eq!(ids(store.history(dataset, alice, 10).await.unwrap()), ["a2", "a1"]);
    indexed_rows(&conn, 6).await;
    (store, conn)
}

fn event_of(id: &str, user: &str, session: &str) -> Interaction {
    Interaction { user_id: Some(user.into()), session_id: session.into(), ..event(id, "i") }
}

/// The `who_key`s of the history rows `filter` (a WHERE clause, or nothing) selects, in order.
fn history_keys(conn: &Connection, filter: &str, params: impl rusqlite::Params) -> Vec<i64> {
    let sql = format!("SELECT who_key FROM history {filter} ORDER BY who_key");
    conn.prepare(&sql).unwrap().query_map(params, |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// The index keys of `whos` at their events' positions, in order.
fn sorted_keys(whos: &[(interlog_store::Who, i64)]) -> Vec<i64> {
    let mut keys: Vec<i64> = whos.iter().map(|(who, seq)| interlog_store_sqlite::who_key(who, *seq)).collect();
    keys.sort_unstable();
    keys
}

fn ids(events: Vec<interlog_store::StoredEvent>) -> Vec<String> {
    events.into_iter().map(|e| e.interaction.event_id).collect()
}

/// A layout-10 file (the history index by the IDs' text) drops that index and builds layout 11's, keyed by hash,
/// from the log: history answers whole before the indexer is through and after, and the new index holds the
/// events stored before the upgrade.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_10_store_rebuilds_its_history_index_by_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (store, dataset) = alice_and_bob(&dir).await;
    let page = store.read(dataset, 0, 10).await.unwrap();
    let seqs: Vec<i64> = page.iter().map(|e| e.seq).collect();
    store.close().await;
    drop(store);
    // Back to layout 10: its index by text, complete, with its cursor at the newest event.
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE history;
         CREATE TABLE history(
            dataset_id INTEGER NOT NULL, kind INTEGER NOT NULL, who TEXT NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY(dataset_id, kind, who, seq)) WITHOUT ROWID;
         DELETE FROM sink_cursors WHERE sink = 'history';
         PRAGMA user_version = 10;",
    )
    .unwrap();
    for (who, kind, seq) in [("alice", 1, seqs[0]), ("bob", 1, seqs[1]), ("alice", 1, seqs[2])].into_iter().chain([
        ("s1", 2, seqs[0]),
        ("s1", 2, seqs[1]),
        ("s2", 2, seqs[2]),
    ]) {
        conn.execute("INSERT INTO history VALUES (?1, ?2, ?3, ?4)", params![dataset, kind, who, seq]).unwrap();
    }
    conn.execute(
        "INSERT INTO sink_cursors(sink, dataset_id, position, updated) VALUES ('history', 0, ?1, 0)",
        [seqs[2]],
    )
    .unwrap();
    drop(conn);
    let (store, conn) = rebuilt_history(&dir, dataset).await;
    let alice = || interlog_store::Who::User("alice".into());
    let keys = history_keys(&conn, "WHERE seq = ?1", [seqs[0]]);
    assert_eq!(keys, sorted_keys(&[(alice(), seqs[0]), (interlog_store::Who::Session("s1".into()), seqs[0])]));
    assert_eq!(ids(store.history(dataset, alice(), 10).await.unwrap()), ["a2", "a1"]);
    let s1 = interlog_store::Who::Session("s1".into());
    assert_eq!(ids(store.history(dataset, s1, 10).await.unwrap()), ["b1", "a1"]);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// The index is keyed by a hash of the ID: an index row whose hash is the asked user's but whose event is another
/// user's (two IDs of one hash) is not in the answer, and does not take a place of the limit.
#[tokio::test(flavor = "multi_thread")]
async fn history_confirms_each_indexed_event_against_its_own_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event_of("a1", "alice", "s1")]).await.unwrap();
    store.append(dataset, vec![event_of("b1", "bob", "s2"), event_of("b2", "bob", "s2")]).await.unwrap();
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    indexed_rows(&conn, 6).await;
    let alice = interlog_store::Who::User("alice".into());
    // Bob's events under Alice's key, as a collision of the two IDs' hashes would file them.
    let bobs: Vec<i64> = conn
        .prepare("SELECT seq FROM events WHERE user_id = 'bob'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for seq in bobs {
        conn.execute(
            "INSERT INTO history(dataset_id, who_key, seq) VALUES (?1, ?2, ?3)",
            params![dataset, interlog_store_sqlite::who_key(&alice, seq), seq],
        )
        .unwrap();
    }
    indexed_rows(&conn, 8).await;
    assert_eq!(ids(store.history(dataset, alice.clone(), 10).await.unwrap()), ["a1"]);
    assert_eq!(ids(store.history(dataset, alice, 1).await.unwrap()), ["a1"], "the limit counts Alice's events only");
    let bob = interlog_store::Who::User("bob".into());
    assert_eq!(ids(store.history(dataset, bob, 10).await.unwrap()), ["b2", "b1"]);
    store.close().await;
}

/// A data deletion job removes its users' rows of the history index from the file, the user rows and the session
/// rows of their events alike (a query would hide rows left behind: their events are gone), and keeps the others'.
#[tokio::test(flavor = "multi_thread")]
async fn deleting_users_removes_their_history_rows_from_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (store, dataset) = alice_and_bob(&dir).await;
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    indexed_rows(&conn, 6).await;
    let users = Arc::new(["alice".to_owned()].into_iter().collect());
    let gone = store.delete_users(interlog_store::UserDeletion { logs: vec![dataset], records: vec![], users }).await;
    assert_eq!(gone.unwrap().events, 2);
    let left = history_keys(&conn, "", []);
    let b1: i64 = conn.query_row("SELECT seq FROM events WHERE event_id = 'b1'", [], |r| r.get(0)).unwrap();
    let bobs =
        sorted_keys(&[(interlog_store::Who::User("bob".into()), b1), (interlog_store::Who::Session("s1".into()), b1)]);
    assert_eq!(left, bobs, "only bob's event's rows are left");
    store.close().await;
}

/// A layout-11 file (the history index keyed by the hash alone) drops those rows and builds layout 12's, keyed by
/// bucket and hash, from the log; history answers whole before the indexer is through and after.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_11_store_rebuilds_its_history_index_by_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (store, dataset) = alice_and_bob(&dir).await;
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    indexed_rows(&conn, 6).await;
    store.close().await;
    drop(store);
    // Back to layout 11: the same rows under layout 11's keys (kind bit and 62 bits of the hash), cursor kept.
    let layout_11 = |kind: i64, id: &str| {
        ((xxhash_rust::xxh3::xxh3_64(id.as_bytes()) & ((1 << 62) - 1)) | (u64::from(kind == 2) << 62)) as i64
    };
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, user_id, session_id FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch("DELETE FROM history; PRAGMA user_version = 11;").unwrap();
    for (seq, user, session) in &rows {
        for key in [layout_11(1, user), layout_11(2, session)] {
            conn.execute("INSERT INTO history VALUES (?1, ?2, ?3)", params![dataset, key, seq]).unwrap();
        }
    }
    drop(conn);
    let (store, conn) = rebuilt_history(&dir, dataset).await;
    let alice = || interlog_store::Who::User("alice".into());
    let whos: Vec<(interlog_store::Who, i64)> = rows
        .iter()
        .flat_map(|(seq, user, session)| {
            [(interlog_store::Who::User(user.clone()), *seq), (interlog_store::Who::Session(session.clone()), *seq)]
        })
        .collect();
    assert_eq!(history_keys(&conn, "", []), sorted_keys(&whos), "every row under layout 12's key");
    assert_eq!(ids(store.history(dataset, alice(), 10).await.unwrap()), ["a2", "a1"]);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// Positions past `seq` for the next event of a closed store: the writer gives out no position at or below the
/// newest it ever gave (`highest_seq`), so this moves the log into a later bucket of the history index.
fn skip_positions_to(dir: &Path, seq: i64) {
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('highest_seq', ?1)", [seq])
        .unwrap();
}

/// The index is read one bucket of positions at a time, newest first: a user's events in several buckets, with
/// empty buckets between them and other users' events in them, come back whole, newest first, cut at the limit,
/// from the index and from the unindexed tail alike.
#[tokio::test(flavor = "multi_thread")]
async fn history_reads_every_bucket_of_the_index_newest_first() {
    let bucket = 1i64 << interlog_store_sqlite::HISTORY_BUCKET_SHIFT;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event_of("a1", "alice", "s1"), event_of("b1", "bob", "s1")]).await.unwrap();
    for (at, batch) in [
        (2 * bucket + 5, vec![event_of("b2", "bob", "s2")]),
        (
            3 * bucket - 2,
            vec![event_of("a2", "alice", "s2"), event_of("a3", "alice", "s2"), event_of("b3", "bob", "s3")],
        ),
        (7 * bucket, vec![event_of("a4", "alice", "s3")]),
    ] {
        store.close().await;
        drop(store);
        skip_positions_to(&dir, at);
        let reopened = open(&dir).await;
        reopened.append(dataset, batch).await.unwrap();
        store = reopened;
    }
    let seqs: Vec<i64> = store.read(dataset, 0, 10).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs.iter().map(|s| s / bucket).collect::<Vec<_>>(), [0, 0, 2, 2, 3, 3, 7], "{seqs:?}");
    let alice = || interlog_store::Who::User("alice".into());
    let s2 = || interlog_store::Who::Session("s2".into());
    let check = |phase: &'static str| {
        let store = store.clone();
        async move {
            assert_eq!(ids(store.history(dataset, alice(), 10).await.unwrap()), ["a4", "a3", "a2", "a1"], "{phase}");
            assert_eq!(ids(store.history(dataset, alice(), 2).await.unwrap()), ["a4", "a3"], "{phase}");
            assert_eq!(ids(store.history(dataset, alice(), 3).await.unwrap()), ["a4", "a3", "a2"], "{phase}");
            let bob = interlog_store::Who::User("bob".into());
            assert_eq!(ids(store.history(dataset, bob, 10).await.unwrap()), ["b3", "b2", "b1"], "{phase}");
            assert_eq!(ids(store.history(dataset, s2(), 10).await.unwrap()), ["a3", "a2", "b2"], "{phase}");
            assert_eq!(ids(store.history(dataset, s2(), 1).await.unwrap()), ["a3"], "{phase}");
            let nobody = interlog_store::Who::User("carol".into());
            assert!(store.history(dataset, nobody, 10).await.unwrap().is_empty(), "{phase}");
        }
    };
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    indexed_rows(&conn, 14).await;
    check("indexed").await;
    // The same answers with part of the log after the cursor: the tail first, then the buckets below it.
    conn.execute("UPDATE sink_cursors SET position = ?1 WHERE sink = 'history' AND dataset_id = 0", [seqs[3]]).unwrap();
    check("a tail after the cursor").await;
    store.close().await;
}

/// A layout-6 file (sinks without dead letters) keeps its cursors and gains the dead letters
/// and their count.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_6_store_keeps_its_cursors_and_gains_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event("a", "i"), event("b", "i")]).await.unwrap();
    let page = store.read(dataset, 0, 2).await.unwrap();
    store.advance("forward", dataset, 0, page[0].seq, 1).await.unwrap();
    store.close().await;
    drop(store);
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!(
            "{DOWN_9} DROP TABLE sink_dead_letters; ALTER TABLE sink_cursors DROP COLUMN dead_lettered; DROP TABLE history;
             DELETE FROM sink_cursors WHERE sink = 'history'; PRAGMA user_version = 6;",
        ))
        .unwrap();
    let store = open(&dir).await;
    let c = store.cursor("forward", dataset).await.unwrap();
    assert_eq!((c.position, c.delivered, c.dead_lettered), (page[0].seq, 1, 0));
    let refused = [interlog_store::Refused { position: page[1].seq, event_id: "b".into(), reason: "bad".into() }];
    let c = store.settle("forward", dataset, page[0].seq, page[1].seq, 0, 0, &refused).await.unwrap();
    assert_eq!(c.dead_lettered, 1);
    assert_eq!(store.dead_letters("forward").await.unwrap()[0].event_id, "b");
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// Undoes layout 10 (the records' positions), so a test can go back to layout 9.
const DOWN_10: &str = "DROP INDEX records_by_position; ALTER TABLE records DROP COLUMN position;
    DELETE FROM meta WHERE key = 'record_position';";

/// Undoes layouts 10 and 9 (the marker of imported rows), so a test can go back to an older layout.
const DOWN_9: &str = "DROP INDEX records_by_position; ALTER TABLE records DROP COLUMN position;
    DELETE FROM meta WHERE key = 'record_position';
    DROP INDEX events_imported; DROP INDEX records_imported;
    ALTER TABLE events DROP COLUMN import_job; ALTER TABLE records DROP COLUMN import_job;";

/// A layout-9 file (records without positions) numbers its records in the order they were first written, so a
/// sink starting from 0 delivers each once, and every later write takes a position past them all.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_9_store_gives_its_records_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.put_records(dataset, vec![Record { id: "b".into(), properties: None, flags: vec![] }]).await.unwrap();
    store.put_records(dataset, vec![Record { id: "a".into(), properties: None, flags: vec![] }]).await.unwrap();
    store
        .put_records(dataset, vec![Record { id: "b".into(), properties: Some("{}".into()), flags: vec![] }])
        .await
        .unwrap();
    store.close().await;
    drop(store);
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!("{DOWN_10} PRAGMA user_version = 9;"))
        .unwrap();
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    let columns: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_info('records') WHERE name = 'position'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(columns, 0, "back at layout 9");
    let store = open(&dir).await;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    let changed = store.read_changed_records(dataset, 0, 10).await.unwrap();
    let got: Vec<(&str, Option<&str>)> =
        changed.iter().map(|r| (r.record.id.as_str(), r.record.properties.as_deref())).collect();
    assert_eq!(got, [("b", Some("{}")), ("a", None)], "first-written order, latest versions");
    let newest = changed[1].position;
    assert_eq!(store.last_record_position(dataset).await.unwrap(), newest);
    store.put_records(dataset, vec![Record { id: "b".into(), properties: None, flags: vec![] }]).await.unwrap();
    let next = store.read_changed_records(dataset, newest, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].record.id, "b");
    assert!(next[0].position > newest);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

/// A layout-8 file (no marker of imported rows) keeps its events and records, which read back as PUT data, and
/// takes imported rows marked BULK after the migration.
#[tokio::test(flavor = "multi_thread")]
async fn a_layout_8_store_gains_the_import_marker_and_its_rows_are_put_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let dataset = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    store.append(dataset, vec![event("old", "i")]).await.unwrap();
    let old = Record { id: "old".into(), properties: None, flags: vec![] };
    store.put_records(dataset, vec![old.clone()]).await.unwrap();
    store.close().await;
    drop(store);
    Connection::open(dir.join("interlog.db"))
        .unwrap()
        .execute_batch(&format!("{DOWN_9} PRAGMA user_version = 8;"))
        .unwrap();
    let conn = Connection::open(dir.join("interlog.db")).unwrap();
    let columns: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_info('events') WHERE name = 'import_job'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(columns, 0, "back at layout 8");
    let store = open(&dir).await;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, interlog_store_sqlite::layout::LAYOUT);
    store.import(dataset, 42, interlog_store::Entries::Events(vec![bare("new")])).await.unwrap();
    let events = store.read(dataset, 0, 10).await.unwrap();
    let marks: Vec<(&str, bool)> = events.iter().map(|e| (e.interaction.event_id.as_str(), e.bulk)).collect();
    assert_eq!(marks, [("old", false), ("new", true)]);
    let records = store.read_records(dataset, None, 10).await.unwrap();
    assert_eq!((records[0].record.clone(), records[0].bulk), (old, false));
    let imported: i64 = conn.query_row("SELECT count(*) FROM events WHERE import_job = 42", [], |r| r.get(0)).unwrap();
    assert_eq!(imported, 1);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

fn purge_rules() -> DeleteRules {
    DeleteRules { cascade: vec![Kind::DatasetExportJob], blocking_statuses: vec![], purge_events: true }
}

#[tokio::test(flavor = "multi_thread")]
async fn newer_foreign_and_locked_stores_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let err = try_open(&dir).await.err().expect("a second writer is refused");
    assert!(matches!(&err, StoreError::Foreign { location, .. } if location.ends_with("interlog.lock")), "{err}");
    store.close().await;

    Connection::open(dir.join("interlog.db")).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let err = try_open(&dir).await.err().expect("a newer layout is refused");
    match &err {
        StoreError::Foreign { location, reason } => {
            assert!(location.ends_with("interlog.db"), "{location}");
            assert!(reason.contains("newer") && reason.contains("99"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(SqliteStore::open_read_only(&dir), Err(StoreError::Foreign { .. })));

    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("interlog.db"), b"this is not a database, just some text that is long enough").unwrap();
    assert!(matches!(try_open(&other).await, Err(StoreError::Foreign { .. })));
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    Connection::open(plain.join("interlog.db")).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
    let err = try_open(&plain).await.err().expect("someone else's SQLite file is refused");
    assert!(err.to_string().contains("not made by interlog"), "{err}");
    let err = SqliteStore::open_read_only(&tmp.path().join("nowhere")).err().expect("no store there");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_store_reads_beside_a_running_one_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let b = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap();
    let dataset = b.dataset.meta.id;
    store.append(dataset, vec![event("a", "1"), event("b", "2")]).await.unwrap();

    let ro = SqliteStore::open_read_only(&dir).unwrap();
    assert_eq!(all(&*ro, dataset).await.len(), 2);
    assert!(ro.find::<GroupSpec>(ACCOUNT, &b.dataset_group.meta.arn).await.unwrap().unwrap().spec.is_default);
    assert_eq!(ro.health(), Health::Unavailable(READ_ONLY.into()));
    let err = ro.append(dataset, vec![bare("c")]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m == READ_ONLY), "{err:?}");
    let err = ro.tag(ACCOUNT, &b.dataset.meta.arn, &[("k".into(), "v".into())], 50).await.unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m == READ_ONLY), "{err:?}");

    // It follows the running store: new events at once, catalog versions through its watch.
    let v = ro.version().await.unwrap();
    let mut watch = ro.watch();
    store.append(dataset, vec![bare("c")]).await.unwrap();
    store.tag(ACCOUNT, &b.dataset.meta.arn, &[("k".into(), "v".into())], 50).await.unwrap();
    assert_eq!(all(&*ro, dataset).await.len(), 3);
    assert!(ro.version().await.unwrap() > v);
    tokio::time::timeout(Duration::from_secs(3), watch.wait_for(|x| *x > v)).await.expect("watch").unwrap();
    store.close().await;
    // And reads on after the writer stopped.
    assert_eq!(all(&*ro, dataset).await.len(), 3);
    ro.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_dir_and_its_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let b = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap();
    store.append(b.dataset.meta.id, vec![bare("a")]).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["interlog.db", "interlog.db-wal", "interlog.db-shm", "interlog.lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_removes_the_rows_in_chunks_and_a_restart_finishes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let keep = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap().dataset.meta.id;
    let group = store
        .create(
            interlog_store::catalog::resources::New {
                account: ACCOUNT.into(),
                arn: arn("dataset-group", "g"),
                name: "g".into(),
                parent: None,
                uses: None,
                status: "ACTIVE".into(),
                unique_key: Some("g".into()),
                tags: vec![],
                spec: GroupSpec::default(),
            },
            interlog_store::catalog::InsertRules { exists_message: "x".into(), ..Default::default() },
        )
        .await
        .unwrap();
    let gone = store
        .create(
            interlog_store::catalog::resources::New {
                account: ACCOUNT.into(),
                arn: arn("dataset", "g/INTERACTIONS"),
                name: "g".into(),
                parent: Some(group.meta.arn.clone()),
                uses: Some(arn("schema", "default-interactions")),
                status: "ACTIVE".into(),
                unique_key: None,
                tags: vec![],
                spec: DatasetSpec { dataset_type: "INTERACTIONS".into(), tracking_id: None },
            },
            interlog_store::catalog::InsertRules { exists_message: "x".into(), ..Default::default() },
        )
        .await
        .unwrap();
    // 200,000 events, interleaved with the kept dataset's: ~50 chunks at least.
    for r in 0..200 {
        let events = (0..1000).map(|i| bare(&format!("{r}-{i}"))).collect();
        store.append(gone.meta.id, events).await.unwrap();
        store.append(keep, vec![bare(&format!("keep-{r}"))]).await.unwrap();
    }
    store.remove::<DatasetSpec>(ACCOUNT, &gone.meta.arn, purge_rules()).await.unwrap();
    // Stop every commit at once, so the purge cannot finish before the restart.
    store.faults().fail_commits(true);
    assert!(all(&*store, gone.meta.id).await.is_empty(), "a deleted dataset reads empty at once");
    let err = store.append(gone.meta.id, vec![bare("late")]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_) | StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(store.pending_purges().await.unwrap(), 1);
    store.close().await;
    drop(store);
    let left = rows_on_disk(&dir, gone.meta.id);
    assert!(left > 0, "the purge was interrupted by the restart");

    let store = open(&dir).await;
    let err = store.append(gone.meta.id, vec![bare("late")]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "appends to a deleted dataset are refused: {err:?}");
    let start = Instant::now();
    while store.pending_purges().await.unwrap() > 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the purge did not finish");
        // Appends go on while the purge runs.
        store.append(keep, vec![bare(&format!("during-{}", start.elapsed().as_micros()))]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(rows_on_disk(&dir, gone.meta.id), 0, "every row of the deleted dataset is gone");
    let kept = all(&*store, keep).await;
    assert!(kept.len() >= 200);
    assert_eq!(
        kept[..200].iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
        (0..200).map(|r| format!("keep-{r}")).collect::<Vec<_>>()
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_never_wait_for_the_write_lock_and_a_held_lock_is_a_503_the_writer_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = open(&dir).await;
    let b = bootstrap(&*store, &Bootstrap { scope: scope(), tracking_id: None }).await.unwrap();
    let dataset = b.dataset.meta.id;
    store.append(dataset, vec![bare("a")]).await.unwrap();

    // Another process (a person with the sqlite3 shell) holds the write lock.
    let intruder = Connection::open(dir.join("interlog.db")).unwrap();
    intruder.execute_batch("BEGIN IMMEDIATE; INSERT INTO meta(key, value) VALUES ('intruder', 1);").unwrap();
    let started = Instant::now();
    assert!(store.find::<GroupSpec>(ACCOUNT, &b.dataset_group.meta.arn).await.unwrap().is_some());
    assert_eq!(store.list_all::<TrackerSpec>(Some(ACCOUNT), None).await.unwrap().len(), 1);
    assert_eq!(all(&*store, dataset).await.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1), "reads took {:?} behind a held write lock", started.elapsed());
    let err = store.append(dataset, vec![bare("b")]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("locked")), "{err:?}");
    assert!(matches!(store.health(), Health::Unavailable(_)));

    intruder.execute_batch("ROLLBACK").unwrap();
    drop(intruder);
    let start = Instant::now();
    while store.health() != Health::Writable {
        assert!(start.elapsed() < Duration::from_secs(5), "health did not come back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.append(dataset, vec![bare("c")]).await.unwrap();
    let ids: Vec<_> = all(&*store, dataset).await.into_iter().map(|e| e.event_id).collect();
    assert_eq!(ids, ["a", "c"]);
    store.close().await;
}

/// Closing the store leaves the database file whole: the writer's connection closes last, so
/// SQLite checkpoints the WAL into the file and removes it (readers cannot).
#[tokio::test(flavor = "multi_thread")]
async fn closing_checkpoints_and_removes_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Default::default()).unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
    drop(store);
    assert!(!dir.path().join("interlog.db-wal").exists(), "the WAL outlived the store");
}

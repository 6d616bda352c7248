//! What only the PostgreSQL engine has to prove: positions in commit order across nodes (no
//! reader ever sees a gap filled later), first copy wins across nodes, migrations (concurrent,
//! newer layout, foreign schema, `events.flags` added to a layout-1 database), the writer committing on its own thread, refused appends
//! to a deleted dataset, values PostgreSQL text could not hold, and faults — the database unreachable, hung, or cutting connections under
//! load — through a TCP proxy in front of the real server.
//! Runs when `INTERLOG_TEST_DATABASE_URL` is set; otherwise every test prints `SKIPPED`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interlog_model::arn::Scope;
use interlog_model::{Flag, FlagKind, Interaction, Record};
use interlog_store::export::UniqueEvents;
use interlog_store::testing::{bare, event};
use interlog_store::{
    bootstrap, Bootstrap, Catalog, EventStore, Health, SinkState, Store, StoreError, StoredEvent, WriterOptions,
};
use interlog_store_postgres::{PostgresOptions, PostgresStore};
use tokio::net::{TcpListener, TcpStream};

use common::{admin, engine_or_none, url_in, Pg};

macro_rules! pg_or_skip {
    () => {
        match engine_or_none() {
            Some(pg) => pg,
            None => {
                eprintln!("SKIPPED {}: {} is not set", module_path!(), common::ENV);
                return;
            }
        }
    };
}

async fn dataset(store: &dyn Store) -> i64 {
    let scope = Scope { region: "us-east-1".into(), account: "000000000000".into() };
    bootstrap(store, &Bootstrap { scope, tracking_id: None }).await.unwrap().dataset.meta.id
}

async fn all(store: &dyn EventStore, dataset: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read(dataset, after, 500).await.unwrap();
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(page);
    }
}

async fn open(url: &str) -> Arc<PostgresStore> {
    PostgresStore::open(url, WriterOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_gap_filled_later() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let nodes = [open(&url).await, open(&url).await, open(&url).await];
    let dataset = dataset(&*nodes[0]).await;
    let (nodes_n, tasks_n, requests, per) = (3, 6, 40, 10);
    let done = Arc::new(AtomicUsize::new(0));
    // Tails the log the way a sink does, one cursor, short pages, while every node commits.
    let reader = {
        let node = nodes[1].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst) == nodes_n * tasks_n;
                let page = node.read(dataset, after, 37).await.unwrap();
                if let Some(last) = page.last() {
                    assert!(page.first().unwrap().seq > after);
                    after = last.seq;
                    seen.extend(page.into_iter().map(|e| e.interaction.event_id));
                } else if finished {
                    return seen;
                } else {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..tasks_n {
            let node = node.clone();
            let done = done.clone();
            writers.push(tokio::spawn(async move {
                for r in 0..requests {
                    let events = (0..per).map(|i| bare(&format!("n{n}-t{t}-r{r}-{i}"))).collect();
                    node.append(dataset, events).await.unwrap();
                }
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    let total = nodes_n * tasks_n * requests * per;
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no event read twice");
    assert_eq!(seen.len(), total, "the tailing reader ended up with every event: no position was filled in behind it");
    let stored = all(&*nodes[2], dataset).await;
    assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(stored.len(), total);
    // More than one node's writer committed to the dataset while the reader ran.
    assert!(nodes.iter().all(|n| n.stats().commits > 0));
}

/// The writer commits on a thread of its own with a connection it drives itself: while the only thread
/// of the caller's runtime is blocked, a queued append still commits (on the caller's runtime it could
/// not, since nothing else would poll the writer or its connection).
#[tokio::test(flavor = "current_thread")]
async fn the_writer_commits_while_the_callers_runtime_is_blocked() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    let before = store.commit_stats().commits;
    let mut append = store.append(dataset, vec![event("e1", "i1")]);
    // One poll queues the request for the writer.
    std::future::poll_fn(|cx| {
        assert!(std::future::Future::poll(append.as_mut(), cx).is_pending(), "an append answers only after its commit");
        std::task::Poll::Ready(())
    })
    .await;
    // Block this runtime's one thread (no await) until the commit is counted.
    let started = Instant::now();
    while store.commit_stats().commits == before {
        assert!(started.elapsed() < Duration::from_secs(10), "no commit while the caller's runtime was blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = append.await.unwrap();
    assert_eq!((o.stored, o.duplicates), (1, 0));
    assert_eq!(all(&*store, dataset).await.len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_copy_wins_across_nodes_and_each_window_drops_its_retries() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let (a, b) = (open(&url).await, open(&url).await);
    let dataset = dataset(&*a).await;
    let o = a.append(dataset, vec![event("e1", "from-a"), event("e2", "from-a")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (2, 0));
    // Node B's window has not seen e1: the copy is stored, and the reader drops it.
    let o = b.append(dataset, vec![event("e1", "from-b")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (1, 0));
    // A retry at node A is dropped at A's door, at B's door after B stored it.
    let o = a.append(dataset, vec![event("e1", "retry-a")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, 1));
    let o = b.append(dataset, vec![event("e1", "retry-b")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, 1));
    assert_eq!(all(&*a, dataset).await.len(), 3);
    for node in [&a, &b] {
        let mut firsts = Vec::new();
        let stats = UniqueEvents::new(&**node, dataset)
            .for_each(|e| {
                firsts.push((e.interaction.event_id.clone(), e.interaction.item_id.clone().unwrap()));
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(firsts, [("e1".to_string(), "from-a".to_string()), ("e2".into(), "from-a".into())]);
        assert_eq!((stats.events, stats.duplicates), (2, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_event_at_once_on_two_nodes_reads_once() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let (a, b) = (open(&url).await, open(&url).await);
    let dataset = dataset(&*a).await;
    let mut tasks = Vec::new();
    for (n, node) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for r in 0..50 {
                node.append(dataset, vec![event(&format!("same-{r}"), &format!("node-{n}"))]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = all(&*a, dataset).await;
    let mut first: HashMap<&str, &str> = HashMap::new();
    for e in &stored {
        first.entry(&e.interaction.event_id).or_insert(e.interaction.item_id.as_deref().unwrap());
    }
    let mut unique = Vec::new();
    UniqueEvents::new(&*b, dataset)
        .for_each(|e| {
            unique.push(e.clone());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(unique.len(), 50);
    for e in &unique {
        assert_eq!(
            first[e.interaction.event_id.as_str()],
            e.interaction.item_id.as_deref().unwrap(),
            "lowest seq wins"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url, WriterOptions::default()).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
    let client = admin(&pg.url).await;
    let rows =
        client.query(&format!("SELECT version FROM {schema}.interlog_migrations ORDER BY version"), &[]).await.unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert!(versions.len() > 1);
    assert_eq!(versions[..4], [1, 2, 3, 4]);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "every step recorded once: {versions:?}");
}

/// A database laid out before `events.flags` and `records.flags` (layouts 1-3) keeps its events and
/// records and takes flags on both after the migrations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_database_gains_flags_and_keeps_its_events() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    store.append(dataset, vec![event("old", "i")]).await.unwrap();
    let old = Record { id: "old".into(), properties: Some("{}".into()), flags: vec![] };
    store.put_records(dataset, vec![old.clone()]).await.unwrap();
    store.close().await;
    drop(store);
    // Back to layout 3, as a build before the flags wrote it.
    let client = admin(&pg.url).await;
    let down_8 = down_8(&schema);
    client
        .batch_execute(&format!(
            "{down_8} ALTER TABLE {schema}.events DROP COLUMN flags; ALTER TABLE {schema}.records DROP COLUMN flags;
             DROP TABLE {schema}.history; DELETE FROM {schema}.sink_cursors WHERE sink = 'history';
             DROP TABLE {schema}.sink_dead_letters; ALTER TABLE {schema}.sink_cursors DROP COLUMN dead_lettered;
             DELETE FROM {schema}.interlog_migrations WHERE version >= 4"
        ))
        .await
        .unwrap();
    let store = open(&url).await;
    let mut flagged = bare("new");
    flagged.properties = Some(r#"{"numberOfRatings": "12"}"#.into());
    flagged.flags = vec![Flag::new(FlagKind::UndeclaredProperty, "declare NUMBER_OF_RATINGS")];
    store.append(dataset, vec![flagged.clone()]).await.unwrap();
    let got: Vec<Interaction> = all(&*store, dataset).await.into_iter().map(|e| e.interaction).collect();
    assert_eq!(got, [event("old", "i"), flagged.clone()]);
    let new = Record { id: "new".into(), properties: flagged.properties, flags: flagged.flags };
    store.put_records(dataset, vec![new.clone()]).await.unwrap();
    let got: Vec<Record> = store.read_records(dataset, None, 10).await.unwrap().into_iter().map(|r| r.record).collect();
    assert_eq!(got, [new, old]);
}

/// A database without the history index (before migration 7) gains it, and the events already stored are indexed
/// in the background; history answers whole before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_before_migration_7_gains_the_history_index_and_indexes_its_events() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    store.append(dataset, vec![event("old-1", "i"), event("old-2", "i")]).await.unwrap();
    store.close().await;
    drop(store);
    let client = admin(&pg.url).await;
    let down_8 = down_8(&schema);
    client
        .batch_execute(&format!(
            "DROP TABLE {schema}.history; DELETE FROM {schema}.sink_cursors WHERE sink = 'history';
             DELETE FROM {schema}.interlog_migrations WHERE version = 7; {down_8}"
        ))
        .await
        .unwrap();
    let store = open(&url).await;
    let user = || interlog_store::Who::User("user-1".into());
    let ids =
        |events: Vec<StoredEvent>| -> Vec<String> { events.into_iter().map(|e| e.interaction.event_id).collect() };
    assert_eq!(ids(store.history(dataset, user(), 10).await.unwrap()), ["old-2", "old-1"]);
    let start = Instant::now();
    loop {
        let row =
            client.query_one(&format!("SELECT count(*) FROM {schema}.history WHERE kind = 1"), &[]).await.unwrap();
        if row.get::<_, i64>(0) == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the old events were not indexed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(store.history(dataset, user(), 10).await.unwrap()), ["old-2", "old-1"]);
    store.close().await;
}

/// A database from before the dead letters (migration 6) keeps its cursors and gains the dead
/// letters and their count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_before_dead_letters_keeps_its_cursors() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    store.append(dataset, vec![event("a", "i"), event("b", "i")]).await.unwrap();
    let page = store.read(dataset, 0, 2).await.unwrap();
    store.advance("forward", dataset, 0, page[0].seq, 1).await.unwrap();
    store.close().await;
    drop(store);
    let client = admin(&pg.url).await;
    let down_8 = down_8(&schema);
    client
        .batch_execute(&format!(
            "DROP TABLE {schema}.sink_dead_letters; ALTER TABLE {schema}.sink_cursors DROP COLUMN dead_lettered;
             DROP TABLE {schema}.history; DELETE FROM {schema}.sink_cursors WHERE sink = 'history';
             DELETE FROM {schema}.interlog_migrations WHERE version >= 6; {down_8}"
        ))
        .await
        .unwrap();
    let store = open(&url).await;
    let c = store.cursor("forward", dataset).await.unwrap();
    assert_eq!((c.position, c.delivered, c.dead_lettered), (page[0].seq, 1, 0));
    let refused = [interlog_store::Refused { position: page[1].seq, event_id: "b".into(), reason: "bad".into() }];
    let c = store.settle("forward", dataset, page[0].seq, page[1].seq, 0, 0, &refused).await.unwrap();
    assert_eq!(c.dead_lettered, 1);
    assert_eq!(store.dead_letters("forward").await.unwrap()[0].event_id, "b");
}

/// Undoes migration 9 (the records' positions), so a test can go back to layout 8.
fn down_9(schema: &str) -> String {
    format!(
        "DROP INDEX {schema}.records_by_position; ALTER TABLE {schema}.records DROP COLUMN position;
         DELETE FROM {schema}.interlog_migrations WHERE version = 9;"
    )
}

/// A database from before migration 9 numbers its records after the dataset's last position, so a sink starting
/// from 0 delivers each once, and every later write takes a position past them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_before_migration_9_gives_its_records_positions() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    let rec = |id: &str, p: Option<&str>| interlog_model::Record {
        id: id.into(),
        properties: p.map(Into::into),
        flags: vec![],
    };
    store.put_records(dataset, vec![rec("b", None), rec("a", None)]).await.unwrap();
    store.put_records(dataset, vec![rec("b", Some("{}"))]).await.unwrap();
    store.close().await;
    drop(store);
    let client = admin(&pg.url).await;
    client.batch_execute(&down_9(&schema)).await.unwrap();
    // As a build before migration 9 left it: the records took no positions.
    client.batch_execute(&format!("UPDATE {schema}.event_logs SET last_seq = 0")).await.unwrap();
    let store = open(&url).await;
    let applied: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.interlog_migrations WHERE version = 9"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 1, "migration 9 ran again");
    let changed = store.read_changed_records(dataset, 0, 10).await.unwrap();
    let got: Vec<(&str, Option<&str>, i64)> =
        changed.iter().map(|r| (r.record.id.as_str(), r.record.properties.as_deref(), r.position)).collect();
    assert_eq!(got, [("a", None, 1), ("b", Some("{}"), 2)], "numbered in ID order, latest versions");
    assert_eq!(store.last_record_position(dataset).await.unwrap(), 2);
    store.put_records(dataset, vec![rec("a", Some("{}"))]).await.unwrap();
    let next = store.read_changed_records(dataset, 2, 10).await.unwrap();
    assert_eq!((next.len(), next[0].record.id.as_str(), next[0].position), (1, "a", 3));
    store.close().await;
}

/// Undoes migrations 9 and 8 (the marker of imported rows), so a test can go back to an older layout.
fn down_8(schema: &str) -> String {
    format!(
        "{} DROP INDEX {schema}.events_imported; DROP INDEX {schema}.records_imported;
         ALTER TABLE {schema}.events DROP COLUMN import_job; ALTER TABLE {schema}.records DROP COLUMN import_job;
         DELETE FROM {schema}.interlog_migrations WHERE version = 8;",
        down_9(schema)
    )
}

/// A database from before migration 8 keeps its events and records, which read back as PUT data, and takes
/// imported rows marked BULK afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_before_migration_8_gains_the_import_marker() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    store.append(dataset, vec![event("old", "i")]).await.unwrap();
    let old = interlog_model::Record { id: "old".into(), properties: None, flags: vec![] };
    store.put_records(dataset, vec![old.clone()]).await.unwrap();
    store.close().await;
    drop(store);
    let client = admin(&pg.url).await;
    client.batch_execute(&down_8(&schema)).await.unwrap();
    let store = open(&url).await;
    let applied: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.interlog_migrations WHERE version = 8"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 1, "migration 8 ran again");
    store.import(dataset, 42, interlog_store::Entries::Events(vec![event("new", "i")])).await.unwrap();
    let marks: Vec<(String, bool)> =
        store.read(dataset, 0, 10).await.unwrap().into_iter().map(|e| (e.interaction.event_id, e.bulk)).collect();
    assert_eq!(marks, [("old".to_owned(), false), ("new".to_owned(), true)]);
    let records = store.read_records(dataset, None, 10).await.unwrap();
    assert_eq!((records[0].record.clone(), records[0].bulk), (old, false));
    let imported: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.events WHERE import_job = 42"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(imported, 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_layout_or_a_foreign_schema_stops_start_up() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let url = url_in(&pg.url, &schema);
    open(&url).await.close().await;
    let client = admin(&pg.url).await;
    client
        .execute(&format!("INSERT INTO {schema}.interlog_migrations(version, description) VALUES (999, 'future')"), &[])
        .await
        .unwrap();
    match PostgresStore::open(&url, WriterOptions::default()).await {
        Err(StoreError::Foreign { reason, .. }) => assert!(reason.contains("newer interlog"), "{reason}"),
        other => panic!("expected Foreign, got {:?}", other.map(|_| ())),
    }
    let foreign = pg.schema().await;
    client.batch_execute(&format!("CREATE TABLE {foreign}.orders(id int)")).await.unwrap();
    match PostgresStore::open(&url_in(&pg.url, &foreign), WriterOptions::default()).await {
        Err(StoreError::Foreign { reason, .. }) => assert!(reason.contains("did not make"), "{reason}"),
        other => panic!("expected Foreign, got {:?}", other.map(|_| ())),
    }
    let missing = url_in(&pg.url, "interlog_no_such_schema");
    assert!(matches!(PostgresStore::open(&missing, WriterOptions::default()).await, Err(StoreError::Foreign { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_a_deleted_dataset_are_refused_and_never_visible() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let (a, b) = (open(&url).await, open(&url).await);
    let scope = Scope { region: "us-east-1".into(), account: "000000000000".into() };
    let boot = bootstrap(&*a, &Bootstrap { scope, tracking_id: None }).await.unwrap();
    let dataset = boot.dataset.meta.id;
    b.append(dataset, vec![bare("before")]).await.unwrap();
    let rules = interlog_store::catalog::DeleteRules { purge_events: true, ..Default::default() };
    a.delete("000000000000", interlog_store::catalog::Kind::Dataset, &boot.dataset.meta.arn, rules).await.unwrap();
    // Node B's cache may not know yet; the store refuses under the same lock as positions.
    let err = b.append(dataset, vec![bare("late")]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let start = Instant::now();
    while !b.read(dataset, 0, 10).await.unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "purge did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(b.append(dataset, vec![bare("later")]).await, Err(StoreError::NotFound(_))));
    assert!(a.read(dataset, 0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_text_could_not_hold_round_trip() {
    let pg = pg_or_skip!();
    let url = url_in(&pg.url, &pg.schema().await);
    let store = open(&url).await;
    let dataset = dataset(&*store).await;
    let mut e = event("nul\0id", "item\0x");
    e.user_id = Some("u\0".into());
    e.impression = Some(vec!["\0".into(), String::new(), "a,\"b\"".into()]);
    e.session_id = "ünï\0cödé ✓".into();
    let mut empty = bare("empty-impression");
    empty.impression = Some(vec![]);
    store.append(dataset, vec![e.clone(), empty.clone()]).await.unwrap();
    let got = all(&*store, dataset).await;
    assert_eq!(got[0].interaction, e);
    assert_eq!(got[1].interaction, empty);
    // The same id again: dropped at the door, confirmed against the stored bytes.
    assert_eq!(store.append(dataset, vec![e]).await.unwrap().duplicates, 1);
    // A raw NUL in properties (JSON text never carries one) is refused alone, not in a batch.
    let mut bad = bare("bad");
    bad.properties = Some("{\"a\": \"\0\"}".into());
    assert!(matches!(store.append(dataset, vec![bad]).await, Err(StoreError::Invalid(_))));
}

// ---- faults, through a proxy in front of the real database ----

const OPEN: u8 = 0;
/// Connections are accepted and closed at once: the database is down.
const REFUSE: u8 = 1;
/// Connections are accepted and nothing is forwarded: the database hangs.
const BLACKHOLE: u8 = 2;

struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (m, l) = (mode.clone(), live.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let target = target.clone();
                let mode = m.load(Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    match mode {
                        OPEN => {
                            if let Ok(mut server) = TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                        BLACKHOLE => tokio::time::sleep(Duration::from_secs(3600)).await,
                        _ => {}
                    }
                });
                l.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { port, mode, live }
    }

    /// Drops every connection through the proxy (each side sees it reset) and sets what new
    /// ones meet.
    fn cut(&self, then: u8) {
        self.mode.store(then, Ordering::SeqCst);
        for t in self.live.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// The URL of `schema` through the proxy.
    fn url(&self, pg: &Pg, schema: &str) -> String {
        let config: tokio_postgres::Config = pg.url.parse().unwrap();
        let user = config.get_user().unwrap_or("postgres");
        let db = config.get_dbname().unwrap_or(user);
        url_in(&format!("postgres://{user}@127.0.0.1:{}/{db}", self.port), schema)
    }
}

fn target(pg: &Pg) -> String {
    let config: tokio_postgres::Config = pg.url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432))
}

fn quick() -> PostgresOptions {
    PostgresOptions { timeout: Duration::from_secs(2), ..PostgresOptions::default() }
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_hung_database_is_unavailable_and_the_store_heals() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let proxy = Proxy::start(target(&pg)).await;
    let store = PostgresStore::open_with(&proxy.url(&pg, &schema), WriterOptions::default(), quick()).await.unwrap();
    let dataset = dataset(&*store).await;
    store.append(dataset, vec![bare("up")]).await.unwrap();
    assert_eq!(store.health(), Health::Writable);

    for (mode, name) in [(REFUSE, "down"), (BLACKHOLE, "hung")] {
        proxy.cut(mode);
        let started = Instant::now();
        let err = store.append(dataset, vec![bare(&format!("while-{name}"))]).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{name}: {err:?}");
        let err = store.version().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{name}: {err:?}");
        assert!(matches!(store.read(dataset, 0, 10).await, Err(StoreError::Unavailable(_))));
        // Bounded: a connect, a pool wait or a deadline of 2 s each, never a hang.
        assert!(started.elapsed() < Duration::from_secs(15), "{name}: took {:?}", started.elapsed());
        until(&format!("health while {name}"), Duration::from_secs(6), || {
            matches!(store.health(), Health::Unavailable(_))
        })
        .await;
        proxy.cut(OPEN);
        // Without traffic, the probe turns it writable again.
        until(&format!("health after {name}"), Duration::from_secs(10), || store.health() == Health::Writable).await;
        store.append(dataset, vec![bare(&format!("after-{name}"))]).await.unwrap();
    }
    let ids: Vec<String> = all(&*store, dataset).await.into_iter().map(|e| e.interaction.event_id).collect();
    assert_eq!(ids, ["up", "after-down", "after-hung"], "nothing refused was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_cut_under_load_lose_no_acknowledged_event() {
    let pg = pg_or_skip!();
    let schema = pg.schema().await;
    let proxy = Proxy::start(target(&pg)).await;
    let store = PostgresStore::open_with(&proxy.url(&pg, &schema), WriterOptions::default(), quick()).await.unwrap();
    let dataset = dataset(&*store).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (store, acked, failed, stop) = (store.clone(), acked.clone(), failed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = 0;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (0..10).map(|i| format!("t{t}-r{r}-{i}")).collect();
                match store.append(dataset, ids.iter().map(|id| bare(id)).collect()).await {
                    Ok(o) => {
                        assert_eq!(o.stored, 10);
                        acked.lock().unwrap().extend(ids);
                    }
                    Err(StoreError::Unavailable(_)) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
                r += 1;
            }
        }));
    }
    // Connections die mid-statement, mid-COPY or mid-COMMIT.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        proxy.cut(OPEN);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(failed.load(Ordering::SeqCst) > 0, "the cuts hit commits in flight");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 1000, "load went on between the cuts ({} events)", acked.len());
    let direct = open(&url_in(&pg.url, &schema)).await;
    let stored: HashSet<String> = all(&*direct, dataset).await.into_iter().map(|e| e.interaction.event_id).collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events are not stored, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

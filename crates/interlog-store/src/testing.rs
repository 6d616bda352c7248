//! The conformance suite: the same cases against every engine (Vector's habit of one suite for
//! every component). An engine's `tests/conformance.rs` implements [`Engine`] and expands
//! [`conformance_suite!`](crate::conformance_suite), which makes one `#[tokio::test]` per case.
//!
//! Cases that need two stores open on one location at once (nodes of one deployment) run only
//! for engines that say [`Engine::shared`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use interlog_model::arn::Scope;
use interlog_model::{ActionInteraction, Flag, FlagKind, Interaction, Record};

use crate::catalog::resources::{CatalogExt, DatasetSpec, ExportJobSpec, GroupSpec, New, SchemaSpec, TrackerSpec};
use crate::catalog::{
    in_use, missing, DeleteRules, InsertRules, KeyRecord, Kind, Quota, Requirement, MAX_TAGS_PER_RESOURCE,
};
use crate::export::UniqueEvents;
use crate::history::{HISTORY_CURSOR, MAX_HISTORY_LIMIT};
use crate::{bootstrap, Bootstrap, CatalogCache, Health, Store, StoreError, StoredEvent, Who, WriterOptions};

/// How a test reaches an engine.
#[async_trait]
pub trait Engine: Send + Sync {
    /// A new, empty location (a temporary directory, a fresh database schema), kept for the
    /// engine's lifetime and removed after.
    async fn location(&self) -> String;
    /// Opens (creating if needed) the store at a location.
    async fn open(&self, location: &str, options: WriterOptions) -> Arc<dyn Store>;
    /// Whether several stores may be open on one location at once, as nodes of one deployment.
    fn shared(&self) -> bool;
}

/// Expands into one test per conformance case. `$engine` is an expression of type
/// `Option<impl Engine>`; `None` skips every case with a printed line (an engine whose service
/// is not configured on this machine).
#[macro_export]
macro_rules! conformance_suite {
    ($engine:expr) => {
        $crate::conformance_suite!(@cases $engine;
            append_then_read_in_order, repeats_are_dropped_at_the_door, unique_events_drop_repeats_past_the_window,
            events_survive_a_reopen_and_the_window_is_warmed, flags_and_undeclared_properties_round_trip,
            concurrent_appends_land_once_each,
            datasets_are_separate, read_pages_are_bounded, event_pages_hold_what_reads_do, event_pages_stop_at_until, insert_get_list_update_delete,
            names_and_arns_are_unique, already_exists_names_the_holder, quota_holds_under_concurrent_inserts,
            quota_counts_only_given_statuses, running_quota_holds_under_concurrent_inserts,
            requirements_must_hold, delete_rules, claims_with_expected_status, tags, version_grows_and_is_watched,
            deleting_a_dataset_purges_its_events, root_key_first_one_wins, bootstrap_once, cache_follows_the_catalog,
            fresh_store_is_writable, nodes_share_events_and_dedup, nodes_see_each_others_catalog,
            quota_holds_across_nodes, running_quota_holds_across_nodes, name_races_across_nodes_name_the_winner,
            bootstrap_once_across_nodes, records_latest_write_wins,
            records_survive_a_reopen, concurrent_record_writes_keep_one_row_per_id,
            deleting_a_dataset_purges_its_records, action_interactions_are_events, records_and_action_interactions_keep_flags,
            nodes_share_records,
            sink_cursor_survives_a_reopen_and_never_moves_back, sink_cursor_concurrent_advancers, sink_lease_has_one_holder,
            dead_letters_move_with_the_cursor,
            appends_are_announced, last_position_follows_appends, commits_are_observed_and_the_store_has_a_size,
            history_is_newest_first_and_complete, history_index_reaches_the_newest_event_after_a_load,
            positions_of_deleted_newest_events_are_not_given_again, compiled_schema_follows_the_catalog,
            compiled_schema_follows_another_nodes_catalog, imported_rows_are_marked_bulk,
            imported_events_bypass_the_window_and_first_copy_wins, removing_bulk_rows_spares_put_data,
            exports_read_one_ingestion_mode, exports_within_a_dedup_budget_are_exact, two_readers_keep_position_order_across_ranges, deleting_users_removes_exactly_their_data,
            deleting_users_while_appending, record_positions_move_with_every_write,
            record_positions_survive_a_reopen_and_are_never_reused, nodes_give_records_positions_in_commit_order);
    };
    (@cases $engine:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(engine) = $engine else {
                    eprintln!("SKIPPED {}: the engine is not configured here", stringify!($case));
                    return;
                };
                $crate::testing::$case(&engine).await;
            }
        )*
    };
}

const ACCOUNT: &str = "000000000000";
const OTHER: &str = "111111111111";

fn scope(account: &str) -> Scope {
    Scope { region: "us-east-1".into(), account: account.into() }
}

/// An event with every member set, so a round trip checks every column.
pub fn event(id: &str, item: &str) -> Interaction {
    Interaction {
        event_id: id.into(),
        session_id: "session-1".into(),
        user_id: Some("user-1".into()),
        item_id: Some(item.into()),
        event_type: "click".into(),
        event_value: Some(4.25),
        sent_at: 1_700_000_000.123_456,
        properties: Some(r#"{"numberOfRatings": "12", "ünïcode": "✓"}"#.into()),
        recommendation_id: Some("rec-1".into()),
        impression: Some(vec![item.into(), "other, \"quoted\"".into()]),
        event_attribution_source: Some("email".into()),
        flags: vec![],
    }
}

/// A bare event (optional members absent).
pub fn bare(id: &str) -> Interaction {
    Interaction {
        event_id: id.into(),
        session_id: "s".into(),
        user_id: None,
        item_id: None,
        event_type: "view".into(),
        event_value: None,
        sent_at: -5.0,
        properties: None,
        recommendation_id: None,
        impression: None,
        event_attribution_source: None,
        flags: vec![],
    }
}

async fn open(engine: &dyn Engine) -> (String, Arc<dyn Store>) {
    let location = engine.location().await;
    let store = engine.open(&location, WriterOptions::default()).await;
    (location, store)
}

/// The default dataset of a bootstrapped account.
async fn default_dataset(store: &dyn Store, account: &str) -> i64 {
    bootstrap(store, &Bootstrap { scope: scope(account), tracking_id: None }).await.expect("bootstrap").dataset.meta.id
}

async fn all(store: &dyn Store, dataset: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read(dataset, after, 1000).await.expect("read");
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(page);
    }
}

async fn unique(store: &dyn Store, dataset: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    UniqueEvents::new(store, dataset)
        .with_page(3)
        .for_each(|e| {
            out.push(e.clone());
            Ok(())
        })
        .await
        .expect("unique events");
    out
}

fn ids(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.interaction.event_id.as_str()).collect()
}

fn schema_new(account: &str, name: &str) -> New<SchemaSpec> {
    New {
        account: account.into(),
        arn: scope(account).arn("schema", name),
        name: name.into(),
        parent: None,
        uses: None,
        status: "ACTIVE".into(),
        unique_key: Some(name.into()),
        tags: vec![],
        spec: SchemaSpec { body: interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA.into(), domain: None },
    }
}

fn group_new(account: &str, name: &str) -> New<GroupSpec> {
    New {
        account: account.into(),
        arn: scope(account).arn("dataset-group", name),
        name: name.into(),
        parent: None,
        uses: None,
        status: "ACTIVE".into(),
        unique_key: Some(name.into()),
        tags: vec![],
        spec: GroupSpec::default(),
    }
}

fn dataset_new(account: &str, group: &str, schema_arn: &str) -> New<DatasetSpec> {
    New {
        account: account.into(),
        arn: scope(account).arn("dataset", &format!("{group}/INTERACTIONS")),
        name: format!("{group}-interactions"),
        parent: Some(scope(account).arn("dataset-group", group)),
        uses: Some(schema_arn.into()),
        status: "ACTIVE".into(),
        unique_key: None,
        tags: vec![],
        spec: DatasetSpec { dataset_type: "INTERACTIONS".into(), tracking_id: None },
    }
}

fn tracker_new(account: &str, group_arn: &str, tracking_id: &str) -> New<TrackerSpec> {
    New {
        account: account.into(),
        arn: scope(account).arn("event-tracker", &tracking_id[..8.min(tracking_id.len())]),
        name: format!("tracker-{tracking_id}"),
        parent: Some(group_arn.into()),
        uses: None,
        status: "ACTIVE".into(),
        unique_key: Some(group_arn.into()),
        tags: vec![],
        spec: TrackerSpec { tracking_id: tracking_id.into() },
    }
}

fn job_new(account: &str, name: &str, dataset_arn: &str, dataset_id: i64) -> New<ExportJobSpec> {
    New {
        account: account.into(),
        arn: scope(account).arn("dataset-export-job", name),
        name: name.into(),
        parent: Some(dataset_arn.into()),
        uses: None,
        status: "CREATE PENDING".into(),
        unique_key: Some(name.into()),
        tags: vec![],
        spec: ExportJobSpec {
            dataset_id,
            ingestion_mode: "PUT".into(),
            role_arn: "arn:aws:iam::000000000000:role/r".into(),
            path: "file:///tmp/".into(),
            kms_key_arn: None,
            failure_reason: None,
            lease: None,
        },
    }
}

fn plain(exists: &str) -> InsertRules {
    InsertRules { exists_message: exists.into(), ..InsertRules::default() }
}

fn requires(kind: Kind, arn: &str, active: bool) -> Requirement {
    Requirement { kind, arn: arn.into(), active }
}

/// A group with a schema and an Interactions dataset; returns (group ARN, dataset ARN, dataset id).
async fn group_with_dataset(store: &dyn Store, account: &str, name: &str) -> (String, String, i64) {
    let schema = store.create(schema_new(account, &format!("{name}-schema")), plain("exists")).await.unwrap();
    let group = store.create(group_new(account, name), plain("exists")).await.unwrap();
    let dataset = store
        .create(
            dataset_new(account, name, &schema.meta.arn),
            InsertRules {
                requires: vec![
                    requires(Kind::DatasetGroup, &group.meta.arn, true),
                    requires(Kind::Schema, &schema.meta.arn, false),
                ],
                exists_message: "exists".into(),
                ..InsertRules::default()
            },
        )
        .await
        .unwrap();
    (group.meta.arn, dataset.meta.arn, dataset.meta.id)
}

async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- events ----

pub async fn append_then_read_in_order(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let before = crate::now();
    let sent = vec![event("e1", "i1"), bare("e2"), event("e3", "i3")];
    let o = store.append(dataset, sent.clone()).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (3, 0));
    let got = all(&*store, dataset).await;
    assert_eq!(got.iter().map(|e| e.interaction.clone()).collect::<Vec<_>>(), sent, "every member round-trips");
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows in arrival order");
    assert!(got.iter().all(|e| e.received_at >= before - 1.0 && e.received_at <= crate::now() + 1.0));
    let after_first = store.read(dataset, got[0].seq, 1).await.unwrap();
    assert_eq!(ids(&after_first), ["e2"]);
    let stats = store.stats();
    assert_eq!(stats.events_stored, 3);
    assert!(stats.commits >= 1);
}

pub async fn repeats_are_dropped_at_the_door(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let o = store.append(dataset, vec![event("a", "first"), event("a", "second"), event("b", "x")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (2, 1));
    let o = store.append(dataset, vec![event("a", "third")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, 1));
    let got = all(&*store, dataset).await;
    assert_eq!(ids(&got), ["a", "b"]);
    assert_eq!(got[0].interaction.item_id.as_deref(), Some("first"), "the first copy wins");
    assert_eq!(store.stats().duplicates_dropped, 2);
}

/// Counts what the writer reports, for [`commits_are_observed_and_the_store_has_a_size`].
#[derive(Default)]
struct Reports(std::sync::Mutex<Vec<crate::CommitReport>>);

impl crate::ObserveCommits for Reports {
    fn committed(&self, report: &crate::CommitReport) {
        self.0.lock().unwrap().push(*report);
    }
}

/// The writer tells its observer of each commit of appended entries (the server's metrics), and the store
/// measures its size on disk.
pub async fn commits_are_observed_and_the_store_has_a_size(engine: &dyn Engine) {
    let location = engine.location().await;
    let reports = Arc::new(Reports::default());
    let options = WriterOptions { observer: crate::CommitObserver::new(reports.clone()), ..Default::default() };
    let store = engine.open(&location, options).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, vec![event("a", "i"), event("b", "i"), event("a", "again")]).await.unwrap();
    store.append(dataset, vec![event("c", "i")]).await.unwrap();
    let got = reports.0.lock().unwrap().clone();
    assert_eq!(got.iter().map(|r| (r.requests, r.entries, r.ok)).collect::<Vec<_>>(), [(1, 3, true), (1, 1, true)]);
    assert_eq!(store.stats().queue_depth, 0, "nothing waits once every append was answered");
    assert!(store.size_on_disk().await.unwrap() > 0);
}

pub async fn unique_events_drop_repeats_past_the_window(engine: &dyn Engine) {
    let location = engine.location().await;
    let store = engine.open(&location, WriterOptions { window_events: 2, ..Default::default() }).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    for (id, item) in [("a", "first"), ("b", "x"), ("c", "x"), ("a", "second"), ("d", "x"), ("b", "again")] {
        store.append(dataset, vec![event(id, item)]).await.unwrap();
    }
    assert_eq!(all(&*store, dataset).await.len(), 6, "past the window, repeats are stored");
    let got = unique(&*store, dataset).await;
    assert_eq!(ids(&got), ["a", "b", "c", "d"]);
    assert_eq!(got[0].interaction.item_id.as_deref(), Some("first"));
    let mut reader = UniqueEvents::new(&*store, dataset).with_page(4);
    while reader.next_page().await.unwrap().is_some() {}
    assert_eq!((reader.stats().events, reader.stats().duplicates), (4, 2));
}

pub async fn events_survive_a_reopen_and_the_window_is_warmed(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, vec![event("a", "1"), event("b", "2")]).await.unwrap();
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    assert_eq!(ids(&all(&*store, dataset).await), ["a", "b"]);
    let o = store.append(dataset, vec![event("b", "retry"), event("c", "3")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (1, 1), "a retry across a restart is dropped at the door");
    assert_eq!(default_dataset(&*store, ACCOUNT).await, dataset, "bootstrap reuses the stored resources");
}

/// What the server keeps of an event with undeclared `properties` keys (docs/api.md): the text
/// exactly as sent and the flags saying why they never reach a model, across a reopen; counted
/// by kind once per stored event, not for a repeat dropped at the door.
pub async fn flags_and_undeclared_properties_round_trip(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut flagged = bare("flagged");
    flagged.properties = Some(r#"{ "numberOfRatings" : "12",  "ünïcode": "✓\u0000" }"#.into());
    flagged.flags = vec![
        Flag::new(
            FlagKind::UndeclaredProperty,
            "properties key 'numberOfRatings' matches no field of schema default-interactions; declare \
             NUMBER_OF_RATINGS (camelCase numberOfRatings) to use it",
        ),
        Flag::new(FlagKind::UndeclaredProperty, "properties key 'ünïcode' matches \"no\" field ✓"),
    ];
    let sent = vec![flagged.clone(), event("plain", "i")];
    let o = store.append(dataset, sent.clone()).await.unwrap();
    assert_eq!((o.stored, o.flagged.get(FlagKind::UndeclaredProperty)), (2, 1), "one flagged event");
    let o = store.append(dataset, vec![flagged.clone()]).await.unwrap();
    assert_eq!((o.duplicates, o.flagged.get(FlagKind::UndeclaredProperty)), (1, 0), "a repeat is not counted");
    let got: Vec<Interaction> = all(&*store, dataset).await.into_iter().map(|e| e.interaction).collect();
    assert_eq!(got, sent, "properties verbatim, flags whole, no flags on the plain event");
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let got: Vec<Interaction> = all(&*store, dataset).await.into_iter().map(|e| e.interaction).collect();
    assert_eq!(got, sent, "and the same after a reopen");
}

pub async fn concurrent_appends_land_once_each(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..20 {
                // Every request also repeats one eventId of another task: stored once overall.
                let mut events: Vec<_> = (0..4).map(|i| bare(&format!("t{t}-r{r}-{i}"))).collect();
                events.push(bare(&format!("shared-{r}")));
                store.append(dataset, events).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = unique(&*store, dataset).await;
    let distinct: HashSet<&str> = ids(&got).into_iter().collect();
    assert_eq!(got.len(), distinct.len());
    assert_eq!(got.len(), 16 * 20 * 4 + 20);
}

pub async fn datasets_are_separate(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let a = default_dataset(&*store, ACCOUNT).await;
    let (_, _, b) = group_with_dataset(&*store, ACCOUNT, "second").await;
    assert_ne!(a, b);
    store.append(a, vec![event("same", "in-a")]).await.unwrap();
    let o = store.append(b, vec![event("same", "in-b")]).await.unwrap();
    assert_eq!(o.stored, 1, "the same eventId in another dataset is another event");
    assert_eq!(all(&*store, a).await[0].interaction.item_id.as_deref(), Some("in-a"));
    assert_eq!(all(&*store, b).await[0].interaction.item_id.as_deref(), Some("in-b"));
}

pub async fn read_pages_are_bounded(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    for r in 0..5 {
        store.append(dataset, (0..10).map(|i| bare(&format!("{r}-{i}"))).collect()).await.unwrap();
    }
    let first = store.read(dataset, 0, 7).await.unwrap();
    assert_eq!(first.len(), 7);
    let rest = store.read(dataset, first[6].seq, 100).await.unwrap();
    assert_eq!(rest.len(), 43);
    assert!(store.read(dataset, rest[42].seq, 100).await.unwrap().is_empty());
    assert!(store.read(dataset + 1_000_000, 0, 100).await.unwrap().is_empty(), "an unknown dataset reads empty");
}

/// Every member of a page's row as text, for comparing an engine's [`EventStore::read_page`] with its
/// [`EventStore::read`].
fn page_rows(page: &crate::page::EventPage) -> Vec<String> {
    use crate::page::Text;
    let texts = [
        Text::EventId,
        Text::SessionId,
        Text::UserId,
        Text::ItemId,
        Text::EventType,
        Text::Properties,
        Text::RecommendationId,
        Text::AttributionSource,
    ];
    page.iter()
        .map(|r| {
            let mut joined = Vec::new();
            let impression = r.impression_joined(&mut joined).then(|| String::from_utf8_lossy(&joined).into_owned());
            let texts = texts.map(|t| r.text(t).map(|b| String::from_utf8_lossy(b).into_owned()));
            format!("{:?} {texts:?} {impression:?}", r.numbers())
        })
        .collect()
}

pub async fn event_pages_hold_what_reads_do(engine: &dyn Engine) {
    use crate::page::{EventPage, PageColumns, Text};
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut odd = event("odd", "i\u{1F600}\"|,");
    odd.impression = Some(vec!["\\esc\"aped".into(), "ünï".into(), String::new()]);
    odd.properties = Some(r#"{ "a" : "✓\u0000" }"#.into());
    let mut empty = bare("empty");
    empty.impression = Some(vec![]);
    empty.item_id = Some(String::new());
    let events: Vec<Interaction> = vec![event("full", "i"), bare("bare"), odd, empty]
        .into_iter()
        .chain((0..6).map(|n| bare(&format!("b{n}"))))
        .collect();
    store.append(dataset, events).await.unwrap();
    let read = all(&*store, dataset).await;
    assert_eq!(read.len(), 10);
    let some = PageColumns::EVENT_ID.with(Text::ItemId).with(Text::Impression);
    for columns in [PageColumns::ALL, some, PageColumns::EVENT_ID] {
        let page = store.read_page(dataset, 0, i64::MAX, 4, EventPage::new(columns, 0)).await.unwrap();
        assert_eq!(page.len(), 4, "a page holds at most its limit");
        assert_eq!(page_rows(&page), page_rows(&EventPage::from_events(&read[..4], columns)), "{columns:?}");
        let rest = store.read_page(dataset, page.last_seq().unwrap(), i64::MAX, 100, page.clone()).await.unwrap();
        assert_eq!(page_rows(&rest), page_rows(&EventPage::from_events(&read[4..], columns)), "{columns:?}");
        assert!(store
            .read_page(dataset, rest.last_seq().unwrap(), i64::MAX, 100, rest.clone())
            .await
            .unwrap()
            .is_empty());
    }
    let unknown =
        store.read_page(dataset + 1_000_000, 0, i64::MAX, 100, EventPage::new(PageColumns::ALL, 0)).await.unwrap();
    assert!(unknown.is_empty(), "an unknown dataset reads empty");
}

/// `read_page` with an upper bound reads exactly the positions `after < seq <= until`, at most
/// `limit` of them; another dataset's rows between do not count.
pub async fn event_pages_stop_at_until(engine: &dyn Engine) {
    use crate::page::{EventPage, PageColumns};
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let other = dataset_of(&*store, ACCOUNT, "until-other", "INTERACTIONS").await;
    for r in 0..4 {
        store.append(dataset, (0..5).map(|i| bare(&format!("{r}-{i}"))).collect()).await.unwrap();
        store.append(other, (0..3).map(|i| bare(&format!("o{r}-{i}"))).collect()).await.unwrap();
    }
    let read = all(&*store, dataset).await;
    assert_eq!(read.len(), 20);
    let seqs = |page: &EventPage| page.iter().map(|r| r.numbers().seq).collect::<Vec<_>>();
    let want = |range: &[StoredEvent]| range.iter().map(|e| e.seq).collect::<Vec<_>>();
    let page = |after: i64, until: i64, limit: usize| {
        let store = store.clone();
        async move { store.read_page(dataset, after, until, limit, EventPage::new(PageColumns::ALL, 0)).await.unwrap() }
    };
    assert_eq!(seqs(&page(read[2].seq, read[9].seq, 100).await), want(&read[3..10]), "the bound is inclusive");
    assert_eq!(seqs(&page(read[2].seq, read[9].seq, 3).await), want(&read[3..6]), "and the limit holds");
    assert_eq!(seqs(&page(read[2].seq, read[9].seq - 1, 100).await), want(&read[3..9]));
    // Between two of the dataset's rows (another dataset's positions): nothing.
    assert_eq!(seqs(&page(read[4].seq, read[5].seq - 1, 100).await), Vec::<i64>::new());
    assert!(page(read[9].seq, read[9].seq, 100).await.is_empty(), "an empty range");
    assert!(page(read[9].seq, read[2].seq, 100).await.is_empty(), "until before after");
    assert_eq!(seqs(&page(0, i64::MAX, 100).await), want(&read), "no bound");
    assert_eq!(seqs(&page(read[17].seq, i64::MAX, 100).await), want(&read[18..]));
}

// ---- catalog ----

pub async fn insert_get_list_update_delete(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let mut arns = Vec::new();
    for i in 0..5 {
        let s = store.create(schema_new(ACCOUNT, &format!("s{i}")), plain("exists")).await.unwrap();
        assert_eq!(s.meta.kind, Kind::Schema);
        assert_eq!(s.meta.status, "ACTIVE");
        assert!(s.meta.created > 1e9 && s.meta.created == s.meta.updated);
        arns.push(s.meta.arn);
    }
    store.create(schema_new(OTHER, "s0"), plain("exists")).await.unwrap();
    let got = store.describe::<SchemaSpec>(ACCOUNT, &arns[2]).await.unwrap();
    assert_eq!(got.meta.name, "s2");
    assert_eq!(got.spec.body, interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA);
    // Another account's resource is not found, never forbidden.
    let err = store.describe::<SchemaSpec>(OTHER, &arns[2]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m == &format!("Could not find the schema {}", arns[2])),
        "{err:?}"
    );
    assert!(store.find::<GroupSpec>(ACCOUNT, &arns[2]).await.unwrap().is_none(), "kind is part of the key");

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.list_page::<SchemaSpec>(Some(ACCOUNT), None, after, 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|s| s.meta.arn));
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, arns, "creation order, every page");
    assert_eq!(store.list_all::<SchemaSpec>(None, None).await.unwrap().len(), 6, "all accounts");

    let mut spec = got.spec.clone();
    spec.domain = Some("ECOMMERCE".into());
    let changed = store.change(ACCOUNT, &arns[2], None, Some("UPDATED"), Some(&spec)).await.unwrap();
    assert_eq!(changed.meta.status, "UPDATED");
    assert_eq!(changed.spec.domain.as_deref(), Some("ECOMMERCE"));
    assert!(changed.meta.updated >= changed.meta.created);
    assert_eq!(store.describe::<SchemaSpec>(ACCOUNT, &arns[2]).await.unwrap(), changed);
    let err = store.change::<SchemaSpec>(OTHER, &arns[2], None, Some("X"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let deleted = store.remove::<SchemaSpec>(ACCOUNT, &arns[2], DeleteRules::default()).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].arn, arns[2]);
    assert!(store.find::<SchemaSpec>(ACCOUNT, &arns[2]).await.unwrap().is_none());
    let err = store.remove::<SchemaSpec>(ACCOUNT, &arns[2], DeleteRules::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // Ids are never reused.
    let again = store.create(schema_new(ACCOUNT, "s2"), plain("exists")).await.unwrap();
    assert!(again.meta.id > got.meta.id);
}

pub async fn names_and_arns_are_unique(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    store.create(schema_new(ACCOUNT, "s"), plain("first")).await.unwrap();
    let err = store.create(schema_new(ACCOUNT, "s"), plain("A schema named s already exists")).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(ref m) if m == "A schema named s already exists"), "{err:?}");
    // Same unique key, another ARN (another region): still taken.
    let mut other_region = schema_new(ACCOUNT, "s");
    other_region.arn = other_region.arn.replace("us-east-1", "eu-west-1");
    assert!(matches!(store.create(other_region, plain("x")).await, Err(StoreError::AlreadyExists(_))));
    // Same ARN, no unique key (datasets): taken.
    let (_, dataset_arn, _) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let mut twin = dataset_new(ACCOUNT, "g", &scope(ACCOUNT).arn("schema", "g-schema"));
    twin.name = "another name".into();
    assert_eq!(twin.arn, dataset_arn);
    assert!(matches!(store.create(twin, plain("x")).await, Err(StoreError::AlreadyExists(_))));
    // The unique key is per account and per kind.
    store.create(schema_new(OTHER, "s"), plain("x")).await.unwrap();
    store.create(group_new(ACCOUNT, "s"), plain("x")).await.unwrap();
    // A failed insert left nothing behind.
    assert_eq!(store.list_all::<SchemaSpec>(Some(ACCOUNT), None).await.unwrap().len(), 2);
}

/// `AlreadyExists` names the resource that holds the ARN or the unique key: for a name taken in
/// another region, that one, not the ARN the refused insert would have had.
pub async fn already_exists_names_the_holder(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let rules = || plain("taken by {arn}");
    let mut there = schema_new(ACCOUNT, "s");
    there.arn = there.arn.replace("us-east-1", "eu-west-1");
    let held = store.create(there, rules()).await.unwrap();
    let here = schema_new(ACCOUNT, "s");
    assert_ne!(here.arn, held.meta.arn);
    match store.create(here, rules()).await {
        Err(StoreError::AlreadyExists(m)) => assert_eq!(m, format!("taken by {}", held.meta.arn)),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // The same ARN under another unique key: the ARN's holder.
    let mut twin = schema_new(ACCOUNT, "t");
    twin.arn = held.meta.arn.clone();
    match store.create(twin, rules()).await {
        Err(StoreError::AlreadyExists(m)) => assert_eq!(m, format!("taken by {}", held.meta.arn)),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A message without `{arn}` is kept as it is.
    let err = store.create(schema_new(ACCOUNT, "s"), plain("plain")).await.unwrap_err();
    assert_eq!(err.to_string(), StoreError::AlreadyExists("plain".into()).to_string());
}

fn quota(max: u64) -> Quota {
    Quota { max, statuses: vec![], message: format!("quota of {max}") }
}

pub async fn quota_holds_under_concurrent_inserts(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let rules = InsertRules { quota: Some(quota(5)), exists_message: "x".into(), ..Default::default() };
                store.create(group_new(ACCOUNT, &format!("g{i}")), rules).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::LimitExceeded(m)) => assert_eq!(m, "quota of 5"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(store.list_all::<GroupSpec>(Some(ACCOUNT), None).await.unwrap().len(), 5);
    // Per account.
    let rules = InsertRules { quota: Some(quota(5)), exists_message: "x".into(), ..Default::default() };
    store.create(group_new(OTHER, "g"), rules).await.unwrap();
}

pub async fn quota_counts_only_given_statuses(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let (_, dataset_arn, dataset_id) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let running = || Quota {
        max: 2,
        statuses: vec!["CREATE PENDING".into(), "CREATE IN_PROGRESS".into()],
        message: "too many running".into(),
    };
    let rules = || InsertRules { quota: Some(running()), exists_message: "x".into(), ..Default::default() };
    store.create(job_new(ACCOUNT, "j1", &dataset_arn, dataset_id), rules()).await.unwrap();
    store.create(job_new(ACCOUNT, "j2", &dataset_arn, dataset_id), rules()).await.unwrap();
    let err = store.create(job_new(ACCOUNT, "j3", &dataset_arn, dataset_id), rules()).await.unwrap_err();
    assert!(matches!(err, StoreError::LimitExceeded(ref m) if m == "too many running"), "{err:?}");
    let j1 = scope(ACCOUNT).arn("dataset-export-job", "j1");
    store.change::<ExportJobSpec>(ACCOUNT, &j1, None, Some("ACTIVE"), None).await.unwrap();
    store.create(job_new(ACCOUNT, "j3", &dataset_arn, dataset_id), rules()).await.unwrap();
}

fn running_quota(max: u64) -> InsertRules {
    InsertRules {
        quota: Some(Quota {
            max,
            statuses: vec!["CREATE PENDING".into(), "CREATE IN_PROGRESS".into()],
            message: format!("{max} running"),
        }),
        exists_message: "x".into(),
        ..Default::default()
    }
}

/// Concurrent creates of jobs (the export-job quota counts only jobs not ended) never exceed the
/// quota; ended jobs leave room.
pub async fn running_quota_holds_under_concurrent_inserts(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let (_, dataset_arn, dataset_id) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let ended = store.create(job_new(ACCOUNT, "ended", &dataset_arn, dataset_id), running_quota(5)).await.unwrap();
    store.change::<ExportJobSpec>(ACCOUNT, &ended.meta.arn, None, Some("CREATE FAILED"), None).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, dataset_arn) = (store.clone(), dataset_arn.clone());
            tokio::spawn(async move {
                store.create(job_new(ACCOUNT, &format!("j{i}"), &dataset_arn, dataset_id), running_quota(5)).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::LimitExceeded(m)) => assert_eq!(m, "5 running"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(store.list_all::<ExportJobSpec>(Some(ACCOUNT), None).await.unwrap().len(), 6);
}

pub async fn requirements_must_hold(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let schema = store.create(schema_new(ACCOUNT, "s"), plain("x")).await.unwrap();
    let group_arn = scope(ACCOUNT).arn("dataset-group", "g");
    let rules = |active| InsertRules {
        requires: vec![
            requires(Kind::DatasetGroup, &group_arn, active),
            requires(Kind::Schema, &schema.meta.arn, false),
        ],
        exists_message: "x".into(),
        ..Default::default()
    };
    let err = store.create(dataset_new(ACCOUNT, "g", &schema.meta.arn), rules(true)).await.unwrap_err();
    assert_eq!(err.to_string(), missing(Kind::DatasetGroup, &group_arn).to_string());
    // Another account's group does not count.
    store.create(group_new(OTHER, "g"), plain("x")).await.ok();
    let err = store.create(dataset_new(ACCOUNT, "g", &schema.meta.arn), rules(true)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let mut pending = group_new(ACCOUNT, "g");
    pending.status = "CREATE PENDING".into();
    store.create(pending, plain("x")).await.unwrap();
    let err = store.create(dataset_new(ACCOUNT, "g", &schema.meta.arn), rules(true)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m == &format!("The dataset group {group_arn} is CREATE PENDING, not ACTIVE")),
        "{err:?}"
    );
    store.create(dataset_new(ACCOUNT, "g", &schema.meta.arn), rules(false)).await.unwrap();
}

pub async fn delete_rules(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let (group_arn, dataset_arn, dataset_id) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let schema_arn = scope(ACCOUNT).arn("schema", "g-schema");
    let schema = store.describe::<SchemaSpec>(ACCOUNT, &schema_arn).await.unwrap();
    let dataset = store.describe::<DatasetSpec>(ACCOUNT, &dataset_arn).await.unwrap();
    // A schema in use by a dataset (through `uses`).
    let err = store.remove::<SchemaSpec>(ACCOUNT, &schema_arn, DeleteRules::default()).await.unwrap_err();
    assert_eq!(err.to_string(), in_use(&schema.meta, &dataset.meta).to_string());
    // A group with a dataset (through `parent`).
    let err = store.remove::<GroupSpec>(ACCOUNT, &group_arn, DeleteRules::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Jobs cascade with their dataset unless one is running.
    let mut done = job_new(ACCOUNT, "done", &dataset_arn, dataset_id);
    done.status = "ACTIVE".into();
    done.tags = vec![("k".into(), "v".into())];
    store.create(done, plain("x")).await.unwrap();
    store.create(job_new(ACCOUNT, "running", &dataset_arn, dataset_id), plain("x")).await.unwrap();
    let rules = || DeleteRules {
        cascade: vec![Kind::DatasetExportJob],
        blocking_statuses: vec!["CREATE PENDING".into(), "CREATE IN_PROGRESS".into()],
        purge_events: true,
    };
    let err = store.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, rules()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("running")), "{err:?}");
    let running = scope(ACCOUNT).arn("dataset-export-job", "running");
    store.change::<ExportJobSpec>(ACCOUNT, &running, None, Some("CREATE FAILED"), None).await.unwrap();
    let deleted = store.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, rules()).await.unwrap();
    assert_eq!(deleted[0].arn, dataset_arn);
    assert_eq!(deleted.len(), 3);
    let done_arn = scope(ACCOUNT).arn("dataset-export-job", "done");
    assert!(store.find::<ExportJobSpec>(ACCOUNT, &done_arn).await.unwrap().is_none());
    assert!(matches!(store.tags(ACCOUNT, &done_arn).await, Err(StoreError::NotFound(_))), "tags went with the job");
    // Now the schema and the group are free.
    store.remove::<SchemaSpec>(ACCOUNT, &schema_arn, DeleteRules::default()).await.unwrap();
    store.remove::<GroupSpec>(ACCOUNT, &group_arn, DeleteRules::default()).await.unwrap();
}

pub async fn claims_with_expected_status(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let (_, dataset_arn, dataset_id) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let job = store.create(job_new(ACCOUNT, "j", &dataset_arn, dataset_id), plain("x")).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let arn = job.meta.arn.clone();
            let mut spec = job.spec.clone();
            spec.lease = Some(crate::catalog::resources::Lease { node: format!("node-{i}"), renewed: crate::now() });
            tokio::spawn(async move {
                store
                    .change(ACCOUNT, &arn, Some("CREATE PENDING"), Some("CREATE IN_PROGRESS"), Some(&spec))
                    .await
                    .map(|r| r.spec.lease.unwrap().node)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(node) => winners.push(node),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let stored = store.describe::<ExportJobSpec>(ACCOUNT, &job.meta.arn).await.unwrap();
    assert_eq!(stored.meta.status, "CREATE IN_PROGRESS");
    assert_eq!(stored.spec.lease.unwrap().node, winners[0]);
}

pub async fn tags(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let mut new = schema_new(ACCOUNT, "s");
    new.tags = vec![("b".into(), "1".into()), ("a".into(), "2".into())];
    let s = store.create(new, plain("x")).await.unwrap();
    let arn = s.meta.arn;
    assert_eq!(store.tags(ACCOUNT, &arn).await.unwrap(), [("a".into(), "2".into()), ("b".into(), "1".into())]);
    store.tag(ACCOUNT, &arn, &[("a".into(), "replaced".into()), ("c".into(), "3".into())], 50).await.unwrap();
    let got = store.tags(ACCOUNT, &arn).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ("a".to_string(), "replaced".to_string()));
    store.untag(ACCOUNT, &arn, &["b".into(), "never-there".into()]).await.unwrap();
    assert_eq!(store.tags(ACCOUNT, &arn).await.unwrap().len(), 2);
    let many: Vec<(String, String)> = (0..MAX_TAGS_PER_RESOURCE).map(|i| (format!("k{i}"), "v".into())).collect();
    let err = store.tag(ACCOUNT, &arn, &many, MAX_TAGS_PER_RESOURCE).await.unwrap_err();
    assert!(matches!(err, StoreError::TooManyTags(_)), "{err:?}");
    assert_eq!(store.tags(ACCOUNT, &arn).await.unwrap().len(), 2, "a refused tagging changed nothing");
    for bad in [store.tags(OTHER, &arn).await.err(), store.tags(ACCOUNT, "arn:aws:personalize:x").await.err()] {
        assert!(matches!(bad, Some(StoreError::NotFound(_))), "{bad:?}");
    }
    assert!(matches!(store.tag(OTHER, &arn, &[("x".into(), "y".into())], 50).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.untag(OTHER, &arn, &["a".into()]).await, Err(StoreError::NotFound(_))));
    store.remove::<SchemaSpec>(ACCOUNT, &arn, DeleteRules::default()).await.unwrap();
    store.create(schema_new(ACCOUNT, "s"), plain("x")).await.unwrap();
    assert!(store.tags(ACCOUNT, &arn).await.unwrap().is_empty(), "tags die with their resource");
}

pub async fn version_grows_and_is_watched(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let mut watch = store.watch();
    let v0 = store.version().await.unwrap();
    let s = store.create(schema_new(ACCOUNT, "s"), plain("x")).await.unwrap();
    let v1 = store.version().await.unwrap();
    assert!(v1 > v0);
    tokio::time::timeout(Duration::from_secs(2), watch.wait_for(|v| *v >= v1)).await.expect("watch").unwrap();
    store.tag(ACCOUNT, &s.meta.arn, &[("k".into(), "v".into())], 50).await.unwrap();
    let v2 = store.version().await.unwrap();
    assert!(v2 > v1);
    store.change::<SchemaSpec>(ACCOUNT, &s.meta.arn, None, Some("X"), None).await.unwrap();
    let v3 = store.version().await.unwrap();
    assert!(v3 > v2);
    store.remove::<SchemaSpec>(ACCOUNT, &s.meta.arn, DeleteRules::default()).await.unwrap();
    assert!(store.version().await.unwrap() > v3);
    // A failed write moves nothing.
    let v4 = store.version().await.unwrap();
    let _ = store.remove::<SchemaSpec>(ACCOUNT, &s.meta.arn, DeleteRules::default()).await;
    assert_eq!(store.version().await.unwrap(), v4);
}

pub async fn deleting_a_dataset_purges_its_events(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let keep = default_dataset(&*store, ACCOUNT).await;
    let (_, dataset_arn, gone) = group_with_dataset(&*store, ACCOUNT, "g").await;
    for r in 0..30 {
        store.append(gone, (0..100).map(|i| bare(&format!("{r}-{i}"))).collect()).await.unwrap();
    }
    store.append(keep, vec![bare("kept")]).await.unwrap();
    let rules = DeleteRules { purge_events: true, ..Default::default() };
    store.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, rules).await.unwrap();
    // Appends to other datasets go on while the purge runs.
    store.append(keep, vec![bare("during")]).await.unwrap();
    eventually("the purge", Duration::from_secs(20), async || store.read(gone, 0, 10).await.unwrap().is_empty()).await;
    assert_eq!(ids(&all(&*store, keep).await), ["kept", "during"]);
    // Durably: still gone after a reopen.
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    eventually("the purge after a reopen", Duration::from_secs(20), async || {
        store.read(gone, 0, 10).await.unwrap().is_empty()
    })
    .await;
}

pub async fn root_key_first_one_wins(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .root_key(KeyRecord {
                        access_key_id: format!("AKIDROOT{i:012}"),
                        secret_access_key: format!("secret-{i}"),
                        account_id: ACCOUNT.into(),
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut keys = HashSet::new();
    for t in tasks {
        let (key, made) = t.await.unwrap();
        created += usize::from(made);
        keys.insert(key.access_key_id);
    }
    assert_eq!(created, 1);
    assert_eq!(keys.len(), 1, "every caller gets the one stored key");
    let (again, made) = store
        .root_key(KeyRecord {
            access_key_id: "AKIDOTHER".into(),
            secret_access_key: "s".into(),
            account_id: ACCOUNT.into(),
        })
        .await
        .unwrap();
    assert!(!made);
    assert!(keys.contains(&again.access_key_id));
}

pub async fn bootstrap_once(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let spec = Bootstrap { scope: scope(ACCOUNT), tracking_id: Some("team-tracker".into()) };
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let spec = spec.clone();
            tokio::spawn(async move { bootstrap(&*store, &spec).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let b = t.await.unwrap();
        created += usize::from(b.created);
        assert_eq!(b.tracker.spec.tracking_id, "team-tracker");
        assert!(b.dataset_group.spec.is_default);
        assert_eq!(b.dataset.meta.parent.as_deref(), Some(b.dataset_group.meta.arn.as_str()));
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_all::<GroupSpec>(Some(ACCOUNT), None).await.unwrap().len(), 1);
    assert_eq!(store.list_all::<TrackerSpec>(Some(ACCOUNT), None).await.unwrap().len(), 1);
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let b = bootstrap(&*store, &spec).await.unwrap();
    assert!(!b.created);
    let err = bootstrap(&*store, &Bootstrap { tracking_id: Some("other".into()), ..spec }).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("team-tracker")), "{err:?}");
    // Each account has its own defaults.
    let other = bootstrap(&*store, &Bootstrap { scope: scope(OTHER), tracking_id: None }).await.unwrap();
    assert!(other.created);
}

pub async fn cache_follows_the_catalog(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let b = bootstrap(&*store, &Bootstrap { scope: scope(ACCOUNT), tracking_id: None }).await.unwrap();
    let cache = CatalogCache::load(&*store).await.unwrap();
    let target = cache.tracker(&b.tracker.spec.tracking_id).expect("default tracker");
    assert_eq!(target.account, ACCOUNT);
    assert_eq!(target.dataset.as_ref().unwrap().id, b.dataset.meta.id);
    assert!(target.dataset.as_ref().unwrap().schema.is_some());
    assert_eq!(cache.dataset(&b.dataset.meta.arn).unwrap().id, b.dataset.meta.id);
    let (group_arn, _, dataset_id) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let t = store.create(tracker_new(ACCOUNT, &group_arn, "0123456789abcdef"), plain("x")).await.unwrap();
    cache.refresh(&*store).await.unwrap();
    assert_eq!(cache.tracker("0123456789abcdef").unwrap().dataset.as_ref().unwrap().id, dataset_id);
    store.remove::<TrackerSpec>(ACCOUNT, &t.meta.arn, DeleteRules::default()).await.unwrap();
    cache.refresh(&*store).await.unwrap();
    assert!(cache.tracker("0123456789abcdef").is_none());
    // Following: a change is seen without an explicit refresh.
    let _follower = cache.follow(store.clone());
    store.create(tracker_new(ACCOUNT, &group_arn, "fedcba9876543210"), plain("x")).await.unwrap();
    eventually("the follower", Duration::from_secs(2), async || cache.tracker("fedcba9876543210").is_some()).await;
}

/// An Interactions schema declaring one metadata field, `NUMBER_OF_RATINGS` (int).
const RATED_SCHEMA: &str = r#"{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
  "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
             {"name": "TIMESTAMP", "type": "long"}, {"name": "NUMBER_OF_RATINGS", "type": ["null", "int"]}],
  "version": "1.0"}"#;
const COMPILED_TRACKER: &str = "c0ffee0123456789";

/// What the hot path's check makes of the documented `{"numberOfRatings": "12"}` on the tracker's
/// dataset now: `flagged by <schema>` or `typed <cells>`.
fn documented_outcome(cache: &CatalogCache) -> String {
    use interlog_model::properties::PropertyRules;
    let Some(target) = cache.tracker(COMPILED_TRACKER) else { return "no tracker".into() };
    let Some(dataset) = &target.dataset else { return "no dataset".into() };
    let compiled = dataset.compiled.as_ref().expect("a parsed schema is compiled");
    assert_eq!(compiled.name(), dataset.schema_name);
    let c = compiled.check_text(&"p", Some(r#"{"numberOfRatings": "12"}"#), PropertyRules::default()).unwrap();
    match c.flags.first() {
        Some(f) => format!("flagged by {}", f.message.split("schema ").nth(1).unwrap().split(';').next().unwrap()),
        None => format!("typed {:?}", c.metadata),
    }
}

/// The catalog changes that decide a tracker's compiled schema, made through `writer`, each seen
/// by `cache` within `within` (`refresh` is refreshed before each look; a following cache of
/// another node needs none).
async fn compiled_schema_scenario(
    writer: &dyn Store,
    cache: &CatalogCache,
    refresh: Option<&dyn Store>,
    within: Duration,
) {
    let sees = async |want: &str| {
        let start = Instant::now();
        loop {
            if let Some(store) = refresh {
                cache.refresh(store).await.unwrap();
            }
            let now = documented_outcome(cache);
            if now == want {
                return;
            }
            assert!(start.elapsed() < within, "the compiled schema: {now}, not {want}, after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (group_arn, dataset_arn, _) = group_with_dataset(writer, ACCOUNT, "g").await;
    let tracker = writer.create(tracker_new(ACCOUNT, &group_arn, COMPILED_TRACKER), plain("x")).await.unwrap();
    sees("flagged by g-schema").await;

    // The schema changes: the dataset and its schema deleted, the schema made again under the same
    // ARN declaring the field, the dataset made again on it.
    writer.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, DeleteRules::default()).await.unwrap();
    let schema_arn = scope(ACCOUNT).arn("schema", "g-schema");
    writer.remove::<SchemaSpec>(ACCOUNT, &schema_arn, DeleteRules::default()).await.unwrap();
    let mut rated = schema_new(ACCOUNT, "g-schema");
    rated.spec.body = RATED_SCHEMA.into();
    writer.create(rated, plain("x")).await.unwrap();
    writer.create(dataset_new(ACCOUNT, "g", &schema_arn), plain("x")).await.unwrap();
    sees(r#"typed [("NUMBER_OF_RATINGS", Int(12))]"#).await;

    // The dataset changes: made again on another schema, which declares nothing.
    writer.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, DeleteRules::default()).await.unwrap();
    let plain_schema = writer.create(schema_new(ACCOUNT, "plain-schema"), plain("x")).await.unwrap();
    writer.create(dataset_new(ACCOUNT, "g", &plain_schema.meta.arn), plain("x")).await.unwrap();
    sees("flagged by plain-schema").await;

    // The tracker changes: its tracking ID now names a tracker of another group, whose dataset's
    // schema declares the field.
    writer.remove::<TrackerSpec>(ACCOUNT, &tracker.meta.arn, DeleteRules::default()).await.unwrap();
    let mut rated = schema_new(ACCOUNT, "h-schema");
    rated.spec.body = RATED_SCHEMA.into();
    let h_schema = writer.create(rated, plain("x")).await.unwrap();
    let h = writer.create(group_new(ACCOUNT, "h"), plain("x")).await.unwrap();
    writer.create(dataset_new(ACCOUNT, "h", &h_schema.meta.arn), plain("x")).await.unwrap();
    let mut moved = tracker_new(ACCOUNT, &h.meta.arn, COMPILED_TRACKER);
    moved.arn = scope(ACCOUNT).arn("event-tracker", "moved");
    writer.create(moved, plain("x")).await.unwrap();
    sees(r#"typed [("NUMBER_OF_RATINGS", Int(12))]"#).await;
}

/// The compiled schema a tracker's events are checked against is rebuilt when its schema, its
/// dataset or the tracker changes (issue 17).
pub async fn compiled_schema_follows_the_catalog(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let cache = CatalogCache::load(&*store).await.unwrap();
    compiled_schema_scenario(&*store, &cache, Some(&*store), Duration::from_secs(1)).await;
}

/// The same changes made through node A reach node B's compiled schemas, by the catalog version
/// its cache follows, within a second.
pub async fn compiled_schema_follows_another_nodes_catalog(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 2).await else { return };
    let cache = CatalogCache::load(&*nodes[1]).await.unwrap();
    let _follower = cache.follow(nodes[1].clone());
    compiled_schema_scenario(&*nodes[0], &cache, None, Duration::from_secs(1)).await;
}

pub async fn fresh_store_is_writable(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    assert_eq!(store.health(), Health::Writable);
    assert!(!store.engine().is_empty());
}

// ---- several nodes on one location ----

async fn nodes(engine: &dyn Engine, n: usize) -> Option<Vec<Arc<dyn Store>>> {
    if !engine.shared() {
        eprintln!("SKIPPED: this engine keeps one store per location");
        return None;
    }
    let location = engine.location().await;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(engine.open(&location, WriterOptions::default()).await);
    }
    Some(out)
}

pub async fn nodes_share_events_and_dedup(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 2).await else { return };
    let dataset = default_dataset(&*nodes[0], ACCOUNT).await;
    assert_eq!(default_dataset(&*nodes[1], ACCOUNT).await, dataset);
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..20 {
                let events = (0..5).map(|i| event(&format!("shared-{r}-{i}"), &format!("node-{n}"))).collect();
                node.append(dataset, events).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for node in &nodes {
        let got = unique(&**node, dataset).await;
        assert_eq!(got.len(), 100, "each eventId once, whichever node took it");
        let firsts: HashMap<String, Option<String>> =
            got.iter().map(|e| (e.interaction.event_id.clone(), e.interaction.item_id.clone())).collect();
        assert_eq!(firsts.len(), 100);
    }
    // Every node reads the same first copies.
    let a = unique(&*nodes[0], dataset).await;
    let b = unique(&*nodes[1], dataset).await;
    assert_eq!(a, b);
}

pub async fn nodes_see_each_others_catalog(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 2).await else { return };
    bootstrap(&*nodes[0], &Bootstrap { scope: scope(ACCOUNT), tracking_id: None }).await.unwrap();
    let cache = CatalogCache::load(&*nodes[1]).await.unwrap();
    let _follower = cache.follow(nodes[1].clone());
    let (group_arn, _, _) = group_with_dataset(&*nodes[0], ACCOUNT, "g").await;
    let t = nodes[0].create(tracker_new(ACCOUNT, &group_arn, "abcdef0123456789"), plain("x")).await.unwrap();
    eventually("a tracker made on node A, on node B", Duration::from_secs(1), async || {
        cache.tracker("abcdef0123456789").is_some()
    })
    .await;
    nodes[0].remove::<TrackerSpec>(ACCOUNT, &t.meta.arn, DeleteRules::default()).await.unwrap();
    eventually("a tracker deleted on node A, gone on node B", Duration::from_secs(1), async || {
        cache.tracker("abcdef0123456789").is_none()
    })
    .await;
}

pub async fn quota_holds_across_nodes(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 3).await else { return };
    let tasks: Vec<_> = (0..18)
        .map(|i| {
            let node = nodes[i % 3].clone();
            tokio::spawn(async move {
                let rules = InsertRules { quota: Some(quota(5)), exists_message: "x".into(), ..Default::default() };
                node.create(group_new(ACCOUNT, &format!("g{i}")), rules).await.is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 5);
}

pub async fn running_quota_holds_across_nodes(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 3).await else { return };
    let (_, dataset_arn, dataset_id) = group_with_dataset(&*nodes[0], ACCOUNT, "g").await;
    let tasks: Vec<_> = (0..18)
        .map(|i| {
            let (node, dataset_arn) = (nodes[i % 3].clone(), dataset_arn.clone());
            tokio::spawn(async move {
                let job = job_new(ACCOUNT, &format!("j{i}"), &dataset_arn, dataset_id);
                node.create(job, running_quota(5)).await.is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 5);
    assert_eq!(nodes[1].list_all::<ExportJobSpec>(Some(ACCOUNT), None).await.unwrap().len(), 5);
}

/// Nodes creating one name at once, each in its own region: one wins, and every loser, whether
/// its check saw the winner or its insert hit the unique index, is told the winner's ARN.
pub async fn name_races_across_nodes_name_the_winner(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 3).await else { return };
    for round in 0..5 {
        let name = format!("race-{round}");
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (node, name) = (nodes[i % 3].clone(), name.clone());
                tokio::spawn(async move {
                    let mut new = schema_new(ACCOUNT, &name);
                    new.arn = new.arn.replace("us-east-1", &format!("region-{i}"));
                    node.create(new, plain("taken by {arn}")).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut told = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => winners.push(r.meta.arn),
                Err(StoreError::AlreadyExists(m)) => told.push(m),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(told.len(), 11);
        assert!(told.iter().all(|m| *m == format!("taken by {}", winners[0])), "{told:?}");
    }
}

pub async fn bootstrap_once_across_nodes(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 3).await else { return };
    let tasks: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            tokio::spawn(async move {
                bootstrap(&*node, &Bootstrap { scope: scope(ACCOUNT), tracking_id: None }).await.unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut trackers = HashSet::new();
    for t in tasks {
        let b = t.await.unwrap();
        created += usize::from(b.created);
        trackers.insert(b.tracker.spec.tracking_id);
    }
    assert_eq!(created, 1);
    assert_eq!(trackers.len(), 1);
    assert_eq!(nodes[2].list_all::<GroupSpec>(Some(ACCOUNT), None).await.unwrap().len(), 1);
}

// ---- keyed records (items, users, actions) and action interactions ----

fn record(id: &str, properties: Option<&str>) -> Record {
    Record { id: id.into(), properties: properties.map(str::to_owned), flags: vec![] }
}

/// Every record of a dataset, read in pages of `page`.
async fn all_records(store: &dyn Store, dataset: i64, page: usize) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    loop {
        let after = out.last().map(|r| r.id.clone());
        let got = store.read_records(dataset, after, page).await.expect("read records");
        assert!(got.len() <= page, "a page holds at most its limit");
        let done = got.len() < page;
        out.extend(got.into_iter().map(|r| r.record));
        if done {
            return out;
        }
    }
}

pub async fn records_latest_write_wins(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let (_, _, other) = group_with_dataset(&*store, ACCOUNT, "other").await;
    let before = crate::now();
    // Within one request the later record of an ID is the latest write.
    let o = store
        .put_records(
            dataset,
            vec![record("b", Some(r#"{"n": 1}"#)), record("a", None), record("b", Some(r#"{"n": 2}"#))],
        )
        .await
        .unwrap();
    assert_eq!(o.stored, 3);
    store.put_records(other, vec![record("a", Some(r#"{"other": true}"#))]).await.unwrap();
    // A later request replaces what an earlier one wrote, properties absent included.
    store.put_records(dataset, vec![record("a", Some(r#"{"ü": "✓"}"#)), record("c", None)]).await.unwrap();
    store.put_records(dataset, vec![record("b", None)]).await.unwrap();
    let expected = vec![record("a", Some(r#"{"ü": "✓"}"#)), record("b", None), record("c", None)];
    assert_eq!(all_records(&*store, dataset, 1000).await, expected, "one row per ID, in ID order, latest wins");
    assert_eq!(all_records(&*store, dataset, 1).await, expected, "pages of one");
    assert_eq!(all_records(&*store, other, 10).await, vec![record("a", Some(r#"{"other": true}"#))]);
    let stored = store.read_records(dataset, None, 10).await.unwrap();
    assert!(stored.iter().all(|r| r.received_at >= before - 1.0 && r.received_at <= crate::now() + 1.0));
    assert!(all(&*store, dataset).await.is_empty(), "records are not events");
    // IDs order bytewise (UTF-8), whatever the engine.
    store.put_records(other, vec![record("é", None), record("Z", None), record("\u{0}x", None)]).await.unwrap();
    let order: Vec<String> = all_records(&*store, other, 2).await.into_iter().map(|r| r.id).collect();
    assert_eq!(order, ["\u{0}x", "Z", "a", "é"]);
}

pub async fn records_survive_a_reopen(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    for n in 0..5 {
        store
            .put_records(dataset, vec![record("x", Some(&format!(r#"{{"n": {n}}}"#))), record(&format!("r{n}"), None)])
            .await
            .unwrap();
    }
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let got = all_records(&*store, dataset, 100).await;
    assert_eq!(got.len(), 6);
    assert_eq!(got.last().unwrap(), &record("x", Some(r#"{"n": 4}"#)), "the latest write before the restart");
    store.put_records(dataset, vec![record("x", Some(r#"{"n": 5}"#))]).await.unwrap();
    assert_eq!(all_records(&*store, dataset, 100).await.last().unwrap(), &record("x", Some(r#"{"n": 5}"#)));
}

pub async fn concurrent_record_writes_keep_one_row_per_id(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..10 {
                let props = format!(r#"{{"t": {t}, "r": {r}}}"#);
                let records = (0..10).map(|i| record(&format!("id-{i}"), Some(&props))).collect();
                store.put_records(dataset, records).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = all_records(&*store, dataset, 3).await;
    assert_eq!(got.len(), 10, "one row per ID");
    // Each request wrote all ten IDs in one commit: the last commit's values hold for every ID.
    let first = got[0].properties.clone();
    assert!(got.iter().all(|r| r.properties == first), "a request's records commit together: {got:?}");
}

pub async fn deleting_a_dataset_purges_its_records(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let keep = default_dataset(&*store, ACCOUNT).await;
    let (_, dataset_arn, gone) = group_with_dataset(&*store, ACCOUNT, "g").await;
    for r in 0..30 {
        store.put_records(gone, (0..10).map(|i| record(&format!("{r}-{i}"), None)).collect()).await.unwrap();
    }
    store.append(gone, vec![bare("e")]).await.unwrap();
    store.put_records(keep, vec![record("kept", None)]).await.unwrap();
    let rules = DeleteRules { purge_events: true, ..Default::default() };
    store.remove::<DatasetSpec>(ACCOUNT, &dataset_arn, rules).await.unwrap();
    let err = store.put_records(gone, vec![record("late", None)]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "a deleted dataset takes no records: {err:?}");
    eventually("the purge", Duration::from_secs(20), async || {
        store.read_records(gone, None, 10).await.unwrap().is_empty()
    })
    .await;
    assert_eq!(all_records(&*store, keep, 10).await, vec![record("kept", None)]);
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    eventually("the purge after a reopen", Duration::from_secs(20), async || {
        store.read_records(gone, None, 10).await.unwrap().is_empty()
    })
    .await;
}

fn action(id: &str, action: &str) -> ActionInteraction {
    ActionInteraction {
        event_id: id.into(),
        action_id: action.into(),
        user_id: Some("u1".into()),
        session_id: "s1".into(),
        timestamp: 1_700_000_000.5,
        event_type: "Not Taken".into(),
        recommendation_id: Some("RID-1".into()),
        impression: Some(vec![action.into(), "a2".into()]),
        properties: Some(r#"{"numberOfActions": "12"}"#.into()),
        flags: vec![],
    }
}

pub async fn action_interactions_are_events(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let (_, _, dataset) = group_with_dataset(&*store, ACCOUNT, "actions").await;
    let sent = vec![action("a", "first"), action("b", "x"), action("a", "second")];
    let o = store.append_action_interactions(dataset, sent.clone()).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (2, 1), "deduplicated by eventId at the door");
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let o = store.append_action_interactions(dataset, vec![action("b", "retry"), action("c", "y")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (1, 1), "a retry across a restart is dropped");
    let got: Vec<ActionInteraction> =
        unique(&*store, dataset).await.iter().map(|e| crate::action_interaction(&e.interaction)).collect();
    assert_eq!(
        got,
        vec![sent[0].clone(), sent[1].clone(), action("c", "y")],
        "every member round-trips; first copy wins"
    );
}

/// Items, users, actions and action interactions keep their flags as events do (docs/api.md):
/// stored whole, read back across a reopen; a later write of a record replaces its flags too,
/// and a flagged action interaction is counted once, not for its repeat.
pub async fn records_and_action_interactions_keep_flags(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let (_, _, actions) = group_with_dataset(&*store, ACCOUNT, "actions").await;
    let why =
        |m: &str| vec![Flag::new(FlagKind::UndeclaredProperty, m), Flag::new(FlagKind::UndeclaredProperty, "ü ✓")];
    let flagged = |id: &str, m: &str| Record { flags: why(m), ..record(id, Some(r#"{"numberOfRatings": "12"}"#)) };
    store.put_records(dataset, vec![flagged("a", "first"), record("b", None), flagged("c", "c")]).await.unwrap();
    // The later write of `a` has other flags; the one of `c` has none.
    store.put_records(dataset, vec![flagged("a", "second"), record("c", Some("{}"))]).await.unwrap();
    let mut a = action("x", "act");
    a.flags = why("numberOfActions");
    let o = store.append_action_interactions(actions, vec![a.clone(), action("y", "act"), a.clone()]).await.unwrap();
    assert_eq!((o.stored, o.duplicates, o.flagged.get(FlagKind::UndeclaredProperty)), (2, 1, 1));
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let expected = vec![flagged("a", "second"), record("b", None), record("c", Some("{}"))];
    assert_eq!(all_records(&*store, dataset, 10).await, expected, "flags are the latest write's");
    let got: Vec<ActionInteraction> =
        unique(&*store, actions).await.iter().map(|e| crate::action_interaction(&e.interaction)).collect();
    assert_eq!(got, vec![a, action("y", "act")], "flags round-trip; none on the plain one");
}

pub async fn nodes_share_records(engine: &dyn Engine) {
    let Some(nodes) = nodes(engine, 2).await else { return };
    let dataset = default_dataset(&*nodes[0], ACCOUNT).await;
    nodes[0].put_records(dataset, vec![record("x", Some(r#"{"node": 0}"#))]).await.unwrap();
    nodes[1].put_records(dataset, vec![record("x", Some(r#"{"node": 1}"#)), record("y", None)]).await.unwrap();
    for node in &nodes {
        assert_eq!(
            all_records(&**node, dataset, 10).await,
            vec![record("x", Some(r#"{"node": 1}"#)), record("y", None)],
            "the later commit wins on every node"
        );
    }
}

// ---- sinks: cursors and leases ----

pub async fn sink_cursor_survives_a_reopen_and_never_moves_back(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let fresh = store.cursor("nats", dataset).await.unwrap();
    assert_eq!(fresh, crate::Cursor::start("nats", dataset), "a sink that never delivered starts at 0");
    store.append(dataset, (0..5).map(|i| bare(&format!("e{i}"))).collect()).await.unwrap();
    let page = store.read(dataset, 0, 3).await.unwrap();
    let third = page[2].seq;
    let c = store.advance("nats", dataset, 0, third, 3).await.unwrap();
    assert_eq!((c.position, c.delivered, c.retried), (third, 3, 0));
    store.sink_failed("nats", dataset, "nats: connection refused").await.unwrap();
    store.sink_failed("nats", dataset, "nats: timed out").await.unwrap();
    let c = store.cursor("nats", dataset).await.unwrap();
    assert_eq!((c.position, c.retried, c.last_error.as_deref()), (third, 2, Some("nats: timed out")));
    assert!(c.updated > 0.0);

    // Backwards, standing still, and from a position it is not at: refused, nothing moves.
    assert!(matches!(store.advance("nats", dataset, third, third - 1, 1).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.advance("nats", dataset, third, third, 0).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.advance("nats", dataset, 0, third + 1, 1).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.cursor("nats", dataset).await.unwrap().position, third);

    // Another sink's cursor is its own.
    assert_eq!(store.cursor("forward", dataset).await.unwrap().position, 0);
    let backlog = store.backlog(dataset, third).await.unwrap();
    assert_eq!(backlog.events, 2);
    assert!(backlog.oldest_received_at.is_some());
    let last = store.read(dataset, third, 10).await.unwrap().last().unwrap().seq;
    assert_eq!(store.backlog(dataset, last).await.unwrap(), crate::Backlog::default());

    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let c = store.cursor("nats", dataset).await.unwrap();
    assert_eq!((c.position, c.delivered, c.retried), (third, 3, 2), "the cursor survives a reopen");
    let c = store.advance("nats", dataset, third, last, 2).await.unwrap();
    assert_eq!((c.position, c.delivered, c.last_error.as_deref()), (last, 5, None), "a delivery clears the last error");
    assert_eq!(store.cursors("nats").await.unwrap(), vec![c]);
    assert!(store.cursors("forward").await.unwrap().is_empty());
}

/// A page part of which the destination refused for good: the cursor moves past it and the
/// refused events become dead letters in the same step, or (the cursor moved under it) neither
/// happens; a replay removes a dead letter or keeps it with its new reason.
pub async fn dead_letters_move_with_the_cursor(engine: &dyn Engine) {
    use crate::Refused;
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, (0..4).map(|i| bare(&format!("d{i}"))).collect()).await.unwrap();
    let page = store.read(dataset, 0, 4).await.unwrap();
    let refused = |e: &crate::StoredEvent, why: &str| Refused {
        position: e.seq,
        event_id: e.interaction.event_id.clone(),
        reason: why.into(),
    };
    let first = vec![refused(&page[1], "InvalidInputException: bad property")];
    let c = store.settle("forward", dataset, 0, page[1].seq, 1, 3, &first).await.unwrap();
    assert_eq!((c.position, c.delivered, c.retried, c.dead_lettered), (page[1].seq, 1, 3, 1));
    // A settle that lost the race writes no dead letter.
    let lost = vec![refused(&page[2], "never written")];
    assert!(matches!(
        store.settle("forward", dataset, 0, page[3].seq, 1, 0, &lost).await,
        Err(StoreError::Conflict(_))
    ));
    let letters = store.dead_letters("forward").await.unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!((l.dataset_id, l.position, l.event_id.as_str(), l.attempts), (dataset, page[1].seq, "d1", 1));
    assert_eq!(l.reason, "InvalidInputException: bad property");
    assert!(store.dead_letters("nats").await.unwrap().is_empty(), "dead letters are per sink");

    let more = vec![refused(&page[2], "ResourceNotFoundException: no tracker"), refused(&page[3], "again")];
    let c = store.settle("forward", dataset, page[1].seq, page[3].seq, 0, 0, &more).await.unwrap();
    assert_eq!((c.position, c.delivered, c.dead_lettered), (page[3].seq, 1, 3));

    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let letters = store.dead_letters("forward").await.unwrap();
    assert_eq!(letters.iter().map(|l| l.event_id.as_str()).collect::<Vec<_>>(), ["d1", "d2", "d3"], "oldest first");
    store.dead_letter_replayed("forward", letters[0].id, None).await.unwrap();
    store.dead_letter_replayed("forward", letters[1].id, Some("still missing")).await.unwrap();
    assert!(matches!(store.dead_letter_replayed("forward", letters[0].id, None).await, Err(StoreError::NotFound(_))));
    let left = store.dead_letters("forward").await.unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!((left[0].reason.as_str(), left[0].attempts), ("still missing", 2));
    assert!(left[0].updated >= left[0].created);
    assert_eq!(store.cursor("forward", dataset).await.unwrap().dead_lettered, 3, "the count is of ever");
}

/// Advancers racing from the same positions, on one store and (shared engines) on two nodes:
/// at each position exactly one wins and the cursor only ever moves forward.
pub async fn sink_cursor_concurrent_advancers(engine: &dyn Engine) {
    let stores: Vec<Arc<dyn Store>> = match nodes(engine, 2).await {
        Some(n) => n,
        None => {
            let (_, store) = open(engine).await;
            vec![store.clone(), store]
        }
    };
    let dataset = default_dataset(&*stores[0], ACCOUNT).await;
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().chain(stores.iter()).enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for _ in 0..40 {
                let at = store.cursor("race", dataset).await.unwrap().position;
                match store.advance("race", dataset, at, at + 1, 1).await {
                    Ok(c) => {
                        assert_eq!(c.position, at + 1);
                        won.push(at + 1);
                    }
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("advancer {n}: {e}"),
                }
                let now = store.cursor("race", dataset).await.unwrap().position;
                assert!(now > at, "the cursor moved back or did not move ({at} then {now})");
            }
            won
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let end = stores[1].cursor("race", dataset).await.unwrap();
    all.sort_unstable();
    let expected: Vec<i64> = (1..=end.position).collect();
    assert_eq!(all, expected, "every step was won exactly once");
    assert_eq!(end.delivered, end.position as u64);
}

pub async fn sink_lease_has_one_holder(engine: &dyn Engine) {
    let stores: Vec<Arc<dyn Store>> = match nodes(engine, 2).await {
        Some(n) => n,
        None => {
            let (_, store) = open(engine).await;
            vec![store.clone(), store]
        }
    };
    let ttl = Duration::from_millis(800);
    assert!(stores[0].lease_sink("nats", "node-a", ttl).await.unwrap());
    assert!(!stores[1].lease_sink("nats", "node-b", ttl).await.unwrap(), "a held lease is not taken");
    assert!(stores[0].lease_sink("nats", "node-a", ttl).await.unwrap(), "the holder renews");
    assert!(stores[1].lease_sink("forward", "node-b", ttl).await.unwrap(), "another sink's lease is free");
    // Not renewed: another node takes it once it expired.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(stores[1].lease_sink("nats", "node-b", ttl).await.unwrap());
    assert!(!stores[0].lease_sink("nats", "node-a", ttl).await.unwrap(), "the old holder lost it");
    // Released: free at once.
    stores[1].release_sink("nats", "node-b").await.unwrap();
    assert!(stores[0].lease_sink("nats", "node-a", ttl).await.unwrap());
    // Many nodes racing for a free lease: one wins.
    stores[0].release_sink("nats", "node-a").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move { store.lease_sink("nats", &format!("n{i}"), ttl).await.unwrap() }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

pub async fn appends_are_announced(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut appended = store.appended();
    let before = *appended.borrow_and_update();
    store.append(dataset, vec![bare("x")]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), appended.wait_for(|n| *n > before))
        .await
        .expect("a commit is announced")
        .unwrap();
}

pub async fn last_position_follows_appends(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let (_, _, other) = group_with_dataset(&*store, ACCOUNT, "g").await;
    assert_eq!(store.last_position(dataset).await.unwrap(), 0, "an empty log");
    store.append(dataset, vec![bare("a"), bare("b")]).await.unwrap();
    assert_eq!(store.last_position(other).await.unwrap(), 0, "another dataset's appends are not its own");
    let last = all(&*store, dataset).await.last().unwrap().seq;
    assert_eq!(store.last_position(dataset).await.unwrap(), last);
    store.append(other, vec![bare("x")]).await.unwrap();
    store.append(dataset, vec![bare("c")]).await.unwrap();
    let last = all(&*store, dataset).await.last().unwrap().seq;
    assert_eq!(store.last_position(dataset).await.unwrap(), last, "it follows the commits");
    let other_last = all(&*store, other).await.last().unwrap().seq;
    assert_eq!(store.last_position(other).await.unwrap(), other_last);
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    assert_eq!(store.last_position(dataset).await.unwrap(), last, "and survives a reopen");
    store.append(dataset, vec![bare("d")]).await.unwrap();
    assert_eq!(store.last_position(dataset).await.unwrap(), all(&*store, dataset).await.last().unwrap().seq);
}

// ---- records by position: what the sinks read from a keyed dataset ----

/// (ID, position) of what a sink reads after `after`, in pages of `page`.
async fn changed(store: &dyn Store, dataset: i64, after: i64, page: usize) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut at = after;
    loop {
        let got = store.read_changed_records(dataset, at, page).await.expect("read changed records");
        assert!(got.len() <= page, "a page holds at most its limit");
        let done = got.len() < page;
        for r in got {
            assert!(r.position > at, "in position order, after the cursor");
            at = r.position;
            out.push((r.record.id, r.position));
        }
        if done {
            return out;
        }
    }
}

fn names(changed: &[(String, i64)]) -> Vec<&str> {
    changed.iter().map(|(id, _)| id.as_str()).collect()
}

pub async fn record_positions_move_with_every_write(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let items = default_dataset(&*store, ACCOUNT).await;
    let (_, _, other) = group_with_dataset(&*store, ACCOUNT, "other").await;
    assert_eq!(store.last_record_position(items).await.unwrap(), 0, "no record yet");
    assert!(store.read_changed_records(items, 0, 10).await.unwrap().is_empty());
    store.put_records(items, vec![record("a", None), record("b", None)]).await.unwrap();
    store.put_records(items, vec![record("c", None)]).await.unwrap();
    store.put_records(other, vec![record("a", None)]).await.unwrap();
    let first = changed(&*store, items, 0, 10).await;
    assert_eq!(names(&first), ["a", "b", "c"], "in the order they were written");
    assert_eq!(changed(&*store, items, 0, 1).await, first, "pages of one");
    assert_eq!(names(&changed(&*store, other, 0, 10).await), ["a"], "another dataset's records are its own");
    let cursor = first[1].1;
    assert_eq!(names(&changed(&*store, items, cursor, 10).await), ["c"]);
    assert_eq!(store.last_record_position(items).await.unwrap(), first[2].1);
    let backlog = store.record_backlog(items, cursor).await.unwrap();
    assert_eq!(backlog.events, 1);
    assert!(backlog.oldest_received_at.is_some());

    // A re-put moves the record past the cursor, with its new version; the old one is not kept.
    store.put_records(items, vec![record("a", Some(r#"{"v": 2}"#))]).await.unwrap();
    let after = changed(&*store, items, cursor, 10).await;
    assert_eq!(names(&after), ["c", "a"]);
    assert!(after[1].1 > first[2].1, "a new position, past every earlier one");
    assert_eq!(store.record_backlog(items, cursor).await.unwrap().events, 2);
    let a = store.read_changed_records(items, after[0].1, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].record, record("a", Some(r#"{"v": 2}"#)), "the latest write");
    assert_eq!(a[0].position, after[1].1);
    assert_eq!(store.read_records(items, None, 10).await.unwrap()[0].position, a[0].position, "read by ID alike");
    assert_eq!(store.last_record_position(items).await.unwrap(), a[0].position);
    // Written twice before anyone read it: one row, one position, the latest version (coalesced).
    let head = a[0].position;
    store.put_records(items, vec![record("d", Some(r#"{"v": 1}"#)), record("d", Some(r#"{"v": 2}"#))]).await.unwrap();
    let d = store.read_changed_records(items, head, 10).await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].record, record("d", Some(r#"{"v": 2}"#)));
    // Imported rows take positions like the Put* calls'; removed ones are simply gone.
    store.import(items, 7, crate::Entries::Records(vec![record("e", None), record("b", None)])).await.unwrap();
    let imported = changed(&*store, items, d[0].position, 10).await;
    assert_eq!(names(&imported), ["e", "b"]);
    assert!(store.read_changed_records(items, d[0].position, 10).await.unwrap().iter().all(|r| r.bulk));
    while store.remove_bulk(items, crate::BulkRemoval::Job(7), 10).await.unwrap() > 0 {}
    assert!(changed(&*store, items, d[0].position, 10).await.is_empty(), "a removal is not a change a sink sees");
    assert_eq!(store.record_backlog(items, d[0].position).await.unwrap().events, 0);
    assert_eq!(names(&changed(&*store, items, 0, 10).await), ["c", "a", "d"]);
}

pub async fn record_positions_survive_a_reopen_and_are_never_reused(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let items = default_dataset(&*store, ACCOUNT).await;
    store.put_records(items, vec![record("a", None), record("b", None), record("c", None)]).await.unwrap();
    let before = changed(&*store, items, 0, 10).await;
    let newest = before[2].1;
    // The newest record goes (a data deletion job's removal of a user's record).
    let users = std::sync::Arc::new(std::iter::once("c".to_owned()).collect::<HashSet<String>>());
    let gone = store.delete_users(crate::UserDeletion { logs: vec![], records: vec![items], users }).await.unwrap();
    assert_eq!(gone.records, 1);
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    assert_eq!(changed(&*store, items, 0, 10).await, before[..2], "positions survive a reopen");
    // The removed record's position is not handed out again: a sink standing there sees the next write.
    store.put_records(items, vec![record("x", None)]).await.unwrap();
    let next = changed(&*store, items, newest, 10).await;
    assert_eq!(names(&next), ["x"]);
    assert!(next[0].1 > newest);
    store.put_records(items, vec![record("a", Some("{}"))]).await.unwrap();
    assert_eq!(names(&changed(&*store, items, next[0].1, 10).await), ["a"], "a re-put after the reopen moves on too");
}

/// Two nodes writing the same records at once: every write takes its own position, a reader following the
/// positions never finds one committed behind what it read, and the last position read holds each ID's latest.
pub async fn nodes_give_records_positions_in_commit_order(engine: &dyn Engine) {
    if !engine.shared() {
        return;
    }
    let location = engine.location().await;
    let a = engine.open(&location, WriterOptions::default()).await;
    let b = engine.open(&location, WriterOptions::default()).await;
    let items = default_dataset(&*a, ACCOUNT).await;
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, store)| {
            tokio::spawn(async move {
                for i in 0..40 {
                    let v = format!(r#"{{"node": {n}, "i": {i}}}"#);
                    store.put_records(items, vec![record(&format!("r{}", i % 5), Some(&v))]).await.unwrap();
                }
            })
        })
        .collect();
    // A follower reading as a sink does, while the writers run.
    let mut seen: HashMap<String, (i64, Option<String>)> = HashMap::new();
    let mut cursor = 0;
    let follower = async {
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            for r in a.read_changed_records(items, cursor, 7).await.unwrap() {
                assert!(r.position > cursor);
                cursor = r.position;
                seen.insert(r.record.id.clone(), (r.position, r.record.properties.clone()));
            }
            if done && a.read_changed_records(items, cursor, 1).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    follower.await;
    for w in writers {
        w.await.unwrap();
    }
    let stored = a.read_records(items, None, 10).await.unwrap();
    assert_eq!(stored.len(), 5);
    for r in stored {
        let (position, properties) = &seen[&r.record.id];
        assert_eq!((*position, properties), (r.position, &r.record.properties), "the follower saw each latest write");
    }
    assert_eq!(b.last_record_position(items).await.unwrap(), a.last_record_position(items).await.unwrap());
}

// ---- the store-alone PutItems baseline (the engines' `append_bench` examples) ----

/// Writes `total` records to `dataset` in 10-record requests with about 1 KB of properties each
/// (the benchmark's PutItems shape), `concurrency` requests at once through the engine's
/// writer, every ID new; one line with the durable records/s and the request latencies.
pub async fn put_records_load(store: Arc<dyn Store>, dataset: i64, total: u64, concurrency: u64) -> String {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
                if first >= total {
                    return latencies;
                }
                let records = (first..first + 10)
                    .map(|n| {
                        let words: String = (0..95).map(|w| format!("word{:05} ", (n + w) % 100_000)).collect();
                        let props = serde_json::json!({"price": n as f64 + 0.5, "description": words.trim_end()});
                        record(&format!("item-{n:012}"), Some(&props.to_string()))
                    })
                    .collect();
                let t = Instant::now();
                store.put_records(dataset, records).await.expect("put_records");
                latencies.push(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("a writer task"));
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
    format!(
        "put_records: {total} records (~1 KB properties), {concurrency} concurrent 10-record requests: {:.0} \
         records/s durable; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}

// ---- history ----

fn of(user: Option<&str>, session: &str, id: &str) -> Interaction {
    Interaction { user_id: user.map(Into::into), session_id: session.into(), ..event(id, "item") }
}

async fn history_ids(store: &dyn Store, dataset: i64, who: Who, limit: usize) -> Vec<String> {
    store.history(dataset, who, limit).await.expect("history").iter().map(|e| e.interaction.event_id.clone()).collect()
}

/// Whether the indexer's cursor reached `seq` in `dataset` (one cursor per dataset, or one for
/// the whole log under dataset 0 where positions are global).
async fn indexed_through(store: &dyn Store, dataset: i64, seq: i64) -> bool {
    let cursors = store.cursors(HISTORY_CURSOR).await.expect("cursors");
    cursors.iter().any(|c| (c.dataset_id == dataset || c.dataset_id == 0) && c.position >= seq)
}

/// A user's or session's newest events, newest first, only theirs and only of the dataset;
/// the same answer from the index, from the unindexed tail, and from both at once.
pub async fn history_is_newest_first_and_complete(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let (_, _, other) = group_with_dataset(&*store, ACCOUNT, "other").await;
    for r in 0..5 {
        let events = vec![
            of(Some("u1"), "s1", &format!("u1-{r}")),
            of(Some("u2"), "s2", &format!("u2-{r}")),
            of(None, "s1", &format!("anon-{r}")),
        ];
        store.append(dataset, events).await.unwrap();
    }
    store.append(other, vec![of(Some("u1"), "s1", "elsewhere")]).await.unwrap();
    let u1 = || Who::User("u1".into());
    let expected: Vec<String> = (0..5).rev().map(|r| format!("u1-{r}")).collect();
    assert_eq!(history_ids(&*store, dataset, u1(), 100).await, expected, "newest first, only u1, only this dataset");
    assert_eq!(history_ids(&*store, dataset, u1(), 2).await, expected[..2], "the limit keeps the newest");
    let session: Vec<String> = (0..5).rev().flat_map(|r| [format!("anon-{r}"), format!("u1-{r}")]).collect();
    assert_eq!(history_ids(&*store, dataset, Who::Session("s1".into()), 100).await, session);
    assert!(history_ids(&*store, dataset, Who::User("nobody".into()), 10).await.is_empty());
    assert!(history_ids(&*store, dataset, u1(), 0).await.is_empty());
    assert_eq!(history_ids(&*store, other, u1(), 10).await, ["elsewhere"]);
    let got = store.history(dataset, u1(), 1).await.unwrap();
    assert_eq!(got[0].interaction, of(Some("u1"), "s1", "u1-4"), "every member round-trips");
    assert!(got[0].received_at > 0.0);

    // Once indexed, the same answer from the index.
    let last = all(&*store, dataset).await.last().unwrap().seq;
    eventually("the history indexer", Duration::from_secs(20), async || indexed_through(&*store, dataset, last).await)
        .await;
    assert_eq!(history_ids(&*store, dataset, u1(), 100).await, expected, "from the index");

    // Without the indexer, newer events come from the tail, older ones from the index.
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions { history_index: false, ..Default::default() }).await;
    store.append(dataset, vec![of(Some("u1"), "s9", "u1-new"), of(Some("u3"), "s9", "u3-new")]).await.unwrap();
    let mut both = vec!["u1-new".to_owned()];
    both.extend(expected.iter().cloned());
    assert_eq!(history_ids(&*store, dataset, u1(), 100).await, both, "tail and index together");
    assert_eq!(history_ids(&*store, dataset, u1(), 3).await, both[..3]);
    assert_eq!(history_ids(&*store, dataset, Who::Session("s9".into()), 100).await, ["u3-new", "u1-new"]);
}

/// After a burst of concurrent appends (many indexer chunks' worth) and then quiet, the indexer
/// reaches the newest event, and the index answers exactly what the log holds.
pub async fn history_index_reaches_the_newest_event_after_a_load(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..40 {
                let events = (0..50)
                    .map(|i| of(Some(&format!("u{}", (t + i) % 7)), &format!("s{t}"), &format!("t{t}-r{r}-{i}")))
                    .collect();
                store.append(dataset, events).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = all(&*store, dataset).await;
    assert_eq!(log.len(), 8 * 40 * 50);
    let last = log.last().unwrap().seq;
    eventually("the history indexer after the load", Duration::from_secs(60), async || {
        indexed_through(&*store, dataset, last).await
    })
    .await;
    let newest = |pick: &dyn Fn(&StoredEvent) -> bool| -> Vec<String> {
        log.iter().rev().filter(|e| pick(e)).take(MAX_HISTORY_LIMIT).map(|e| e.interaction.event_id.clone()).collect()
    };
    for u in 0..7 {
        let user = format!("u{u}");
        let expected = newest(&|e| e.interaction.user_id.as_deref() == Some(user.as_str()));
        assert_eq!(history_ids(&*store, dataset, Who::User(user.clone()), MAX_HISTORY_LIMIT).await, expected, "{user}");
    }
    let expected = newest(&|e| e.interaction.session_id == "s3");
    assert_eq!(history_ids(&*store, dataset, Who::Session("s3".into()), MAX_HISTORY_LIMIT).await, expected);
}

/// Events appended after the newest ones were deleted (a data deletion, the purge of a deleted
/// dataset) are new positions, past every cursor: the history finds them, from the tail and
/// from the index, also after a reopen.
pub async fn positions_of_deleted_newest_events_are_not_given_again(engine: &dyn Engine) {
    let (location, mut store) = open(engine).await;
    let (_, _, interactions) = group_with_dataset(&*store, ACCOUNT, "g").await;
    store.append(interactions, vec![of(Some("u1"), "s1", "u1-0"), of(Some("u2"), "s2", "u2-0")]).await.unwrap();
    let highest = |log: &[StoredEvent]| log.last().unwrap().seq;
    let mut seen = highest(&all(&*store, interactions).await);
    eventually("the history indexer", Duration::from_secs(20), async || {
        indexed_through(&*store, interactions, seen).await
    })
    .await;
    for round in 0..2 {
        // u2's events are the newest of the log; then they are deleted.
        store.append(interactions, vec![of(Some("u2"), "s2", &format!("u2-late-{round}"))]).await.unwrap();
        seen = highest(&all(&*store, interactions).await);
        eventually("the history indexer", Duration::from_secs(20), async || {
            indexed_through(&*store, interactions, seen).await
        })
        .await;
        let done = store.delete_users(deletion(&[interactions], &[], &["u2"])).await.unwrap();
        assert!(done.events >= 1);
        if round == 1 {
            // The second time across a reopen: the writer starts from what the file says.
            store.close().await;
            drop(store);
            store = engine.open(&location, WriterOptions::default()).await;
        }
        let id = format!("u3-{round}");
        store.append(interactions, vec![of(Some("u3"), "s3", &id)]).await.unwrap();
        let log = all(&*store, interactions).await;
        assert!(highest(&log) > seen, "a new event takes a position after every one given before");
        let u3 = || Who::User("u3".into());
        assert_eq!(history_ids(&*store, interactions, u3(), 1).await, std::slice::from_ref(&id), "from the tail");
        seen = highest(&log);
        eventually("the history indexer", Duration::from_secs(20), async || {
            indexed_through(&*store, interactions, seen).await
        })
        .await;
        assert_eq!(history_ids(&*store, interactions, u3(), 1).await, std::slice::from_ref(&id), "from the index");
    }
}

// ---- dataset import jobs: rows marked BULK (layout 9 / migration 8) ----

/// What an export of one ingestion mode holds: event IDs of the log's first copies among the mode's rows.
async fn unique_ids_of(store: &dyn Store, dataset: i64, mode: interlog_model::control::IngestionMode) -> Vec<String> {
    let mut out = Vec::new();
    UniqueEvents::new(store, dataset)
        .with_page(2)
        .with_ingestion(mode)
        .for_each(|e| {
            out.push(e.interaction.event_id.clone());
            Ok(())
        })
        .await
        .expect("unique events");
    out
}

pub async fn imported_rows_are_marked_bulk(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, vec![event("put-1", "i1")]).await.unwrap();
    let o =
        store.import(dataset, 7, crate::Entries::Events(vec![event("bulk-1", "i2"), bare("bulk-2")])).await.unwrap();
    assert_eq!(o.stored, 2);
    let (_, _, items) = group_with_dataset(&*store, ACCOUNT, "catalog").await;
    store.put_records(items, vec![record("a", None), record("b", Some(r#"{"n": 1}"#))]).await.unwrap();
    store
        .import(items, 7, crate::Entries::Records(vec![record("b", Some(r#"{"n": 2}"#)), record("c", None)]))
        .await
        .unwrap();
    let check = async |store: &dyn Store| {
        let events = all(store, dataset).await;
        let marks: Vec<(&str, bool)> = events.iter().map(|e| (e.interaction.event_id.as_str(), e.bulk)).collect();
        assert_eq!(marks, [("put-1", false), ("bulk-1", true), ("bulk-2", true)]);
        assert_eq!(events[1].interaction, event("bulk-1", "i2"), "an imported event is stored whole");
        let records = store.read_records(items, None, 10).await.unwrap();
        let marks: Vec<(&str, bool)> = records.iter().map(|r| (r.record.id.as_str(), r.bulk)).collect();
        // One row per ID: the write that holds says where it came from.
        assert_eq!(marks, [("a", false), ("b", true), ("c", true)]);
        assert_eq!(records[1].record, record("b", Some(r#"{"n": 2}"#)));
    };
    check(&*store).await;
    // A later Put* write of an imported ID makes it PUT data again.
    store.put_records(items, vec![record("c", None)]).await.unwrap();
    assert!(!store.read_records(items, Some("b".into()), 10).await.unwrap()[0].bulk);
    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    let events = all(&*store, dataset).await;
    assert_eq!(events.iter().filter(|e| e.bulk).count(), 2, "the marker survives a reopen");
}

pub async fn imported_events_bypass_the_window_and_first_copy_wins(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, vec![event("e1", "put")]).await.unwrap();
    // An import does not consult the window: the repeat is stored, and the reader keeps the first copy.
    let o =
        store.import(dataset, 1, crate::Entries::Events(vec![event("e1", "bulk"), event("e2", "bulk")])).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (2, 0));
    let first = unique(&*store, dataset).await;
    assert_eq!(ids(&first), ["e1", "e2"]);
    assert_eq!(first[0].interaction.item_id.as_deref(), Some("put"), "the stored copy wins over the imported one");
    // Nor does it fill the window: a live client's later e2 is stored too (and read once).
    let o = store.append(dataset, vec![event("e2", "live")]).await.unwrap();
    assert_eq!(o.stored, 1);
    assert_eq!(ids(&unique(&*store, dataset).await), ["e1", "e2"]);
    // Live repeats are still dropped at the door.
    assert_eq!(store.append(dataset, vec![event("e1", "again")]).await.unwrap().duplicates, 1);
}

pub async fn removing_bulk_rows_spares_put_data(engine: &dyn Engine) {
    use crate::BulkRemoval;
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let (_, _, items) = group_with_dataset(&*store, ACCOUNT, "catalog").await;
    store.append(dataset, vec![event("put-1", "i")]).await.unwrap();
    let old: Vec<Interaction> = (0..5).map(|i| bare(&format!("old-{i}"))).collect();
    store.import(dataset, 1, crate::Entries::Events(old)).await.unwrap();
    store.import(items, 1, crate::Entries::Records(vec![record("x", None), record("y", None)])).await.unwrap();
    store.put_records(items, vec![record("p", None)]).await.unwrap();
    let new: Vec<Interaction> = (0..3).map(|i| bare(&format!("new-{i}"))).collect();
    store.import(dataset, 2, crate::Entries::Events(new)).await.unwrap();
    store.import(items, 2, crate::Entries::Records(vec![record("y", Some("{}")), record("z", None)])).await.unwrap();
    store.append(dataset, vec![event("put-2", "i")]).await.unwrap();
    // A FULL import of job 2 replaces every other job's rows, in chunks, and nothing of the Put* calls.
    let mut chunks = 0;
    loop {
        let n = store.remove_bulk(dataset, BulkRemoval::AllBut(2), 2).await.unwrap();
        assert!(n <= 2, "a chunk removes at most its limit");
        if n == 0 {
            break;
        }
        chunks += 1;
    }
    assert_eq!(chunks, 3, "five rows in chunks of two");
    while store.remove_bulk(items, BulkRemoval::AllBut(2), 100).await.unwrap() > 0 {}
    assert_eq!(ids(&all(&*store, dataset).await), ["put-1", "new-0", "new-1", "new-2", "put-2"]);
    let left: Vec<String> = all_records(&*store, items, 10).await.into_iter().map(|r| r.id).collect();
    // x was job 1's alone; y was rewritten by job 2, so it stays.
    assert_eq!(left, ["p", "y", "z"]);
    // A failed job's rows go, and only they.
    while store.remove_bulk(dataset, BulkRemoval::Job(2), 2).await.unwrap() > 0 {}
    while store.remove_bulk(items, BulkRemoval::Job(2), 2).await.unwrap() > 0 {}
    assert_eq!(ids(&all(&*store, dataset).await), ["put-1", "put-2"]);
    let left: Vec<String> = all_records(&*store, items, 10).await.into_iter().map(|r| r.id).collect();
    assert_eq!(left, ["p"]);
    assert_eq!(store.remove_bulk(dataset, BulkRemoval::Job(2), 2).await.unwrap(), 0);
}

pub async fn exports_read_one_ingestion_mode(engine: &dyn Engine) {
    use interlog_model::control::IngestionMode;
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    store.append(dataset, vec![event("a", "i"), event("b", "i")]).await.unwrap();
    store
        .import(dataset, 3, crate::Entries::Events(vec![event("b", "bulk"), event("c", "bulk"), event("c", "x")]))
        .await
        .unwrap();
    store.append(dataset, vec![event("d", "i")]).await.unwrap();
    assert_eq!(unique_ids_of(&*store, dataset, IngestionMode::All).await, ["a", "b", "c", "d"]);
    assert_eq!(unique_ids_of(&*store, dataset, IngestionMode::Put).await, ["a", "b", "d"]);
    // Each mode removes repeats among its own rows.
    assert_eq!(unique_ids_of(&*store, dataset, IngestionMode::Bulk).await, ["b", "c"]);
}

/// The export's first-copy-wins filter is exact whatever its budget: with a set of 2 to 64 keys
/// for 120 distinct eventIds (evictions, scans of the eventIds, classes split and scanned again)
/// it writes, in each ingestion mode, the bytes a filter holding every key writes, which are the
/// first copies of the log in order. Repeats are stored live past the window and by imports.
pub async fn exports_within_a_dedup_budget_are_exact(engine: &dyn Engine) {
    use crate::export::{export_pages_within, ExportWriter, Format, Shape};
    use interlog_model::control::IngestionMode;
    use interlog_model::schema::{parse_schema, DEFAULT_INTERACTIONS_SCHEMA};
    let location = engine.location().await;
    let store = engine.open(&location, WriterOptions { window_events: 2, ..Default::default() }).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    for round in 0..3 {
        let live: Vec<Interaction> = (0..100)
            .map(|n| event(&format!("e{}", (n * 7 + round * 13) % 120), &format!("live-{round}-{n}")))
            .collect();
        for chunk in live.chunks(10) {
            store.append(dataset, chunk.to_vec()).await.unwrap();
        }
        let bulk: Vec<Interaction> =
            (0..60).map(|n| event(&format!("e{}", (n * 11 + round) % 150), &format!("bulk-{round}-{n}"))).collect();
        store.import(dataset, round + 1, crate::Entries::Events(bulk)).await.unwrap();
    }
    let log = all(&*store, dataset).await;
    let schema = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
    let columns: Vec<String> = schema.field_names().iter().map(|s| s.to_string()).collect();
    let writer =
        || ExportWriter::new(Format::Csv, columns.clone(), Vec::new()).unwrap().with_schema(Some(schema.clone()));
    for mode in [IngestionMode::All, IngestionMode::Put, IngestionMode::Bulk] {
        let mut expected = writer();
        let mut seen = std::collections::HashSet::new();
        for e in log.iter().filter(|e| crate::export::wanted(mode, e.bulk)) {
            if seen.insert(e.interaction.event_id.clone()) {
                expected.write(e).unwrap();
            }
        }
        let expected = expected.finish().unwrap();
        let distinct = seen.len() as u64;
        assert!(distinct > 64 && (log.len() as u64) > distinct + 100, "{mode:?}: repeats and more keys than budgets");
        for budget in [usize::MAX, 64, 17, 5, 3, 2] {
            let w = writer();
            let page_columns = w.page_columns().unwrap();
            // Ranges of a few pages, so that the two readers take turns many times here.
            let shape = Shape { budget, page_events: 7, range: 23 };
            let (stats, out) = export_pages_within(store.clone(), dataset, w, mode, page_columns, shape).await.unwrap();
            assert_eq!(stats.events, distinct, "{mode:?} within {budget}");
            let wanted = log.iter().filter(|e| crate::export::wanted(mode, e.bulk)).count() as u64;
            assert_eq!(stats.duplicates, wanted - distinct, "{mode:?} within {budget}");
            assert!(out == expected, "{mode:?} within {budget}: the export differs from the first copies");
        }
    }
}

/// The export's two readers read alternate ranges of positions; the filter takes their pages in
/// position order, so the first copy wins even when its later copies are in the other reader's
/// ranges, whatever the page and range sizes, across gaps of another dataset's positions wider
/// than a range (empty ranges that do not end the export) and with pages cut by range ends.
pub async fn two_readers_keep_position_order_across_ranges(engine: &dyn Engine) {
    use crate::export::{export_pages_within, ExportWriter, Format, Shape};
    use interlog_model::control::IngestionMode;
    use interlog_model::schema::{parse_schema, DEFAULT_INTERACTIONS_SCHEMA};
    let location = engine.location().await;
    let store = engine.open(&location, WriterOptions { window_events: 1, ..Default::default() }).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let other = dataset_of(&*store, ACCOUNT, "ranges-other", "INTERACTIONS").await;
    // 40 eventIds sent 4 times each, each copy with its own item, spread so that a repeat is
    // usually in a later range than its first copy; a gap of 30 other positions after each round.
    for round in 0..4 {
        let events: Vec<Interaction> =
            (0..40).map(|n| event(&format!("e{}", (n * 17 + round * 11) % 40), &format!("r{round}-{n}"))).collect();
        for chunk in events.chunks(6) {
            store.append(dataset, chunk.to_vec()).await.unwrap();
        }
        store.append(other, (0..30).map(|n| bare(&format!("gap-{round}-{n}"))).collect()).await.unwrap();
    }
    let log = all(&*store, dataset).await;
    assert_eq!(log.len(), 160, "repeats past the window are stored");
    let schema = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
    let columns: Vec<String> = schema.field_names().iter().map(|s| s.to_string()).collect();
    let writer =
        || ExportWriter::new(Format::Csv, columns.clone(), Vec::new()).unwrap().with_schema(Some(schema.clone()));
    let mut expected = writer();
    let mut seen = std::collections::HashSet::new();
    for e in &log {
        if seen.insert(e.interaction.event_id.clone()) {
            expected.write(e).unwrap();
        }
    }
    let expected = expected.finish().unwrap();
    assert_eq!(seen.len(), 40);
    for (page_events, range) in
        [(1, 1), (1, 2), (3, 5), (5, 3), (7, 7), (4, 16), (100, 13), (2, 1000), (16_384, 65_536)]
    {
        for budget in [usize::MAX, 9] {
            let w = writer();
            let page_columns = w.page_columns().unwrap();
            let shape = Shape { budget, page_events, range };
            let (stats, out) =
                export_pages_within(store.clone(), dataset, w, IngestionMode::All, page_columns, shape).await.unwrap();
            let what = format!("pages of {page_events}, ranges of {range}, budget {budget}");
            assert_eq!((stats.events, stats.duplicates), (40, 120), "{what}");
            assert!(out == expected, "{what}: the export differs from the first copies");
        }
    }
}

// ---- data deletion jobs ----

/// A dataset of `segment` (`USERS`, `ACTION_INTERACTIONS`) in the group `group`; its id.
async fn dataset_of(store: &dyn Store, account: &str, group: &str, segment: &str) -> i64 {
    let schema = store.create(schema_new(account, &format!("{group}-{segment}")), plain("exists")).await.unwrap();
    let new = New {
        arn: scope(account).arn("dataset", &format!("{group}/{segment}")),
        name: format!("{group}-{segment}"),
        spec: DatasetSpec { dataset_type: segment.into(), tracking_id: None },
        ..dataset_new(account, group, &schema.meta.arn)
    };
    store.create(new, plain("exists")).await.unwrap().meta.id
}

fn deletion(logs: &[i64], records: &[i64], users: &[&str]) -> crate::UserDeletion {
    crate::UserDeletion {
        logs: logs.to_vec(),
        records: records.to_vec(),
        users: Arc::new(users.iter().map(|u| u.to_string()).collect()),
    }
}

/// The users of a dataset's log rows, in log order (`-` for an anonymous event).
async fn users_of(store: &dyn Store, dataset: i64) -> Vec<String> {
    all(store, dataset).await.iter().map(|e| e.interaction.user_id.clone().unwrap_or_else(|| "-".into())).collect()
}

/// A deletion removes exactly the users' events, action interactions and user records of the
/// datasets named, their history and their dead letters; other users, other datasets and
/// other groups keep everything, and so does a reopen. A deleted event sent again is new.
pub async fn deleting_users_removes_exactly_their_data(engine: &dyn Engine) {
    let (location, store) = open(engine).await;
    let (_, _, interactions) = group_with_dataset(&*store, ACCOUNT, "g").await;
    let users = dataset_of(&*store, ACCOUNT, "g", "USERS").await;
    let actions = dataset_of(&*store, ACCOUNT, "g", "ACTION_INTERACTIONS").await;
    let (_, _, elsewhere) = group_with_dataset(&*store, ACCOUNT, "h").await;
    for r in 0..4 {
        let batch = vec![
            of(Some("u1"), "s1", &format!("u1-{r}")),
            of(Some("u2"), "s1", &format!("u2-{r}")),
            of(Some("u3"), "s3", &format!("u3-{r}")),
            of(None, "s1", &format!("anon-{r}")),
        ];
        store.append(interactions, batch).await.unwrap();
    }
    let acted = |user: &str, id: &str| ActionInteraction { user_id: Some(user.into()), ..action(id, "a1") };
    store.append_action_interactions(actions, vec![acted("u1", "a-u1"), acted("u2", "a-u2")]).await.unwrap();
    store.put_records(users, ["u1", "u2", "u3"].map(|u| record(u, None)).to_vec()).await.unwrap();
    store.append(elsewhere, vec![of(Some("u1"), "s1", "kept-elsewhere")]).await.unwrap();
    let log = all(&*store, interactions).await;
    let refused = |i: usize| crate::Refused {
        position: log[i].seq,
        event_id: log[i].interaction.event_id.clone(),
        reason: "InvalidInputException".into(),
    };
    // Dead letters of a u1 event and a u2 event.
    store.settle("forward", interactions, 0, log[1].seq, 0, 0, &[refused(0), refused(1)]).await.unwrap();

    let done = store.delete_users(deletion(&[interactions, actions], &[users], &["u1", "u3", "nobody"])).await.unwrap();
    assert_eq!(done, crate::UsersDeleted { events: 4 + 4 + 1, records: 2 });
    assert_eq!(done.total(), 11);
    let check = async |store: &dyn Store| {
        let expected: Vec<String> = (0..4).flat_map(|_| ["u2".to_owned(), "-".to_owned()]).collect();
        assert_eq!(users_of(store, interactions).await, expected, "only u2 and the anonymous events are left");
        assert_eq!(users_of(store, actions).await, ["u2"]);
        assert_eq!(all_records(store, users, 10).await, vec![record("u2", None)]);
        assert_eq!(ids(&all(store, elsewhere).await), ["kept-elsewhere"], "another group keeps its events");
        assert!(history_ids(store, interactions, Who::User("u1".into()), 10).await.is_empty());
        let session: Vec<String> = (0..4).rev().flat_map(|r| [format!("anon-{r}"), format!("u2-{r}")]).collect();
        assert_eq!(history_ids(store, interactions, Who::Session("s1".into()), 10).await, session);
        let letters = store.dead_letters("forward").await.unwrap();
        assert_eq!(letters.iter().map(|l| l.event_id.as_str()).collect::<Vec<_>>(), ["u2-0"], "u1's letter is gone");
    };
    check(&*store).await;
    // Once the indexer has been through, the answers come from the index: still nothing of u1.
    let last = log.last().unwrap().seq;
    eventually("the history indexer", Duration::from_secs(20), async || {
        indexed_through(&*store, interactions, last).await
    })
    .await;
    check(&*store).await;
    // Nothing left to find: a second run removes nothing.
    let again = store.delete_users(deletion(&[interactions, actions], &[users], &["u1", "u3"])).await.unwrap();
    assert_eq!(again, crate::UsersDeleted::default());

    store.close().await;
    drop(store);
    let store = engine.open(&location, WriterOptions::default()).await;
    check(&*store).await;
    // The retry window remembers the deleted event's ID, but a repeat is confirmed against the
    // stored row: sent again, the event is new data and is stored.
    let back = store.append(interactions, vec![of(Some("u1"), "s1", "u1-3")]).await.unwrap();
    assert_eq!((back.stored, back.duplicates), (1, 0));
    assert_eq!(history_ids(&*store, interactions, Who::User("u1".into()), 10).await, ["u1-3"]);
}

/// Appends go on while a deletion works through a log of many chunks: every acknowledged
/// event of another user is kept, and none of the deleted users' events is left.
pub async fn deleting_users_while_appending(engine: &dyn Engine) {
    let (_, store) = open(engine).await;
    let dataset = default_dataset(&*store, ACCOUNT).await;
    let user = |n: usize| format!("user-{}", n % 10);
    let mut gone = 0;
    for b in 0..40 {
        let batch: Vec<Interaction> = (0..1000).map(|i| of(Some(&user(i)), "s", &format!("old-{b}-{i}"))).collect();
        gone += batch.iter().filter(|e| e.user_id.as_deref() < Some("user-5")).count() as u64;
        store.append(dataset, batch).await.unwrap();
    }
    let doomed = ["user-0", "user-1", "user-2", "user-3", "user-4"];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut appenders = Vec::new();
    for t in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        appenders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 3 {
                let batch: Vec<Interaction> =
                    (0..50).map(|i| of(Some("survivor"), "s", &format!("new-{t}-{n}-{i}"))).collect();
                sent.extend(batch.iter().map(|e| e.event_id.clone()));
                store.append(dataset, batch).await.unwrap();
                n += 1;
            }
            sent
        }));
    }
    let done = store.delete_users(deletion(&[dataset], &[], &doomed)).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = HashSet::new();
    for a in appenders {
        sent.extend(a.await.unwrap());
    }
    assert_eq!(done.events, gone, "every event of the deleted users stored before the job");
    let left = all(&*store, dataset).await;
    assert!(left.iter().all(|e| !doomed.contains(&e.interaction.user_id.as_deref().unwrap_or(""))));
    let kept: HashSet<String> = left
        .iter()
        .filter(|e| e.interaction.user_id.as_deref() == Some("survivor"))
        .map(|e| e.interaction.event_id.clone())
        .collect();
    assert_eq!(kept, sent, "every acknowledged append of another user is stored");
    assert_eq!(left.len() as u64, 40_000 - gone + sent.len() as u64);
}

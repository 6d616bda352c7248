//! The writer survives what it meets (issue 18): commits that fail with an injected I/O error
//! or panic answer every request with `Unavailable`, health turns `Unavailable`, the writer
//! probes by itself and turns `Writable` again once commits work, and the next append succeeds
//! on the same store, never reopened by the caller. A connection that cannot be reopened makes
//! the store fatal.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use interlog_model::arn::Scope;
use interlog_store::catalog::resources::{CatalogExt, GroupSpec};
use interlog_store::export::UniqueEvents;
use interlog_store::testing::bare;
use interlog_store::{bootstrap, Bootstrap, Catalog, EventStore, Health, Store, StoreError, WriterOptions};
use interlog_store_sqlite::SqliteStore;

const ACCOUNT: &str = "000000000000";

async fn open(dir: &Path) -> Arc<SqliteStore> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || SqliteStore::open(&dir, WriterOptions::default())).await.unwrap().unwrap()
}

async fn setup(dir: &Path) -> (Arc<SqliteStore>, i64, String) {
    let store = open(dir).await;
    let b = bootstrap(
        &*store,
        &Bootstrap { scope: Scope { region: "us-east-1".into(), account: ACCOUNT.into() }, tracking_id: None },
    )
    .await
    .unwrap();
    (store, b.dataset.meta.id, b.dataset_group.meta.arn)
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Sends `n` concurrent 5-event appends and returns each answer (every one must come back).
async fn burst(store: &Arc<SqliteStore>, dataset: i64, tag: &str, n: usize) -> Vec<Result<Vec<String>, StoreError>> {
    let tasks: Vec<_> = (0..n)
        .map(|r| {
            let store = store.clone();
            let ids: Vec<String> = (0..5).map(|i| format!("{tag}-{r}-{i}")).collect();
            tokio::spawn(async move {
                let events = ids.iter().map(|id| bare(id)).collect();
                store.append(dataset, events).await.map(|_| ids)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers
            .push(tokio::time::timeout(Duration::from_secs(30), t).await.expect("every request is answered").unwrap());
    }
    answers
}

async fn stored_ids(store: &SqliteStore, dataset: i64) -> Vec<String> {
    let mut out = Vec::new();
    UniqueEvents::new(store, dataset)
        .for_each(|e| {
            out.push(e.interaction.event_id.clone());
            Ok(())
        })
        .await
        .unwrap();
    out
}

async fn recovers_from(fault: &str, arm: impl Fn(&SqliteStore, bool)) {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dataset, group_arn) = setup(&tmp.path().join("data")).await;
    let mut acknowledged: Vec<String> = Vec::new();
    for ok in burst(&store, dataset, "before", 10).await {
        acknowledged.extend(ok.expect("appends work before the fault"));
    }

    arm(&store, true);
    let failed_before = store.stats().failed_commits;
    let answers = burst(&store, dataset, "during", 40).await;
    assert_eq!(answers.len(), 40);
    for a in &answers {
        match a {
            Err(StoreError::Unavailable(reason)) => assert!(!reason.is_empty()),
            other => panic!("{fault}: every append of a failing commit is refused with Unavailable, got {other:?}"),
        }
    }
    assert!(store.stats().failed_commits > failed_before);
    assert!(matches!(store.health(), Health::Unavailable(_)), "{fault}: {:?}", store.health());
    // A catalog write fails the same way and moves no version; reads go on beside the writer.
    let version = store.version().await.unwrap();
    let err = store.tag(ACCOUNT, &group_arn, &[("k".into(), "v".into())], 50).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{fault}: {err:?}");
    assert_eq!(store.version().await.unwrap(), version);
    assert!(store.describe::<GroupSpec>(ACCOUNT, &group_arn).await.unwrap().spec.is_default);
    assert!(store.tags(ACCOUNT, &group_arn).await.unwrap().is_empty());
    // Still failing a while later: the probes fail too, and nothing is fatal.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(store.health(), Health::Unavailable(_)));
    assert_eq!(store.fatal(), None);

    // The fault clears: health comes back without any traffic, and the same store writes.
    arm(&store, false);
    let took = until("health Writable again", Duration::from_secs(5), || store.health() == Health::Writable).await;
    eprintln!("{fault}: writable again {took:?} after the fault cleared, without traffic");
    for ok in burst(&store, dataset, "after", 10).await {
        acknowledged.extend(ok.expect("appends work again"));
    }
    store.tag(ACCOUNT, &group_arn, &[("k".into(), "v".into())], 50).await.unwrap();
    assert!(store.version().await.unwrap() > version);

    // Every acknowledged event is stored once; nothing of the refused ones is.
    let stored = stored_ids(&store, dataset).await;
    assert_eq!(stored.len(), stored.iter().collect::<HashSet<_>>().len());
    assert_eq!(stored.iter().collect::<HashSet<_>>(), acknowledged.iter().collect::<HashSet<_>>(), "{fault}");
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_injected_io_error_is_answered_and_the_writer_recovers_by_itself() {
    recovers_from("I/O error", |s, on| s.faults().fail_commits(on)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_the_commit_is_answered_and_the_writer_recovers_by_itself() {
    recovers_from("panic", |s, on| s.faults().panic_in_commits(on)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_that_cannot_reopen_its_file_makes_the_store_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dataset, _) = setup(&tmp.path().join("data")).await;
    let mut fatal = store.watch_fatal();
    store.faults().fail_reopens(true);
    store.faults().fail_commits(true);
    let err = store.append(dataset, vec![bare("a")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // The writer retries the reopen by itself, a bounded number of times.
    let why = tokio::time::timeout(Duration::from_secs(20), fatal.wait_for(|f| f.is_some()))
        .await
        .expect("fatal within the bound")
        .unwrap()
        .clone()
        .unwrap();
    assert!(why.contains("could not reopen") && why.contains("interlog.db"), "{why}");
    assert_eq!(store.fatal().as_deref(), Some(why.as_str()));
    assert_eq!(store.health(), Health::Failed(why.clone()), "health reports the failure, so the server exits");
    // Even now every request gets an answer.
    store.faults().fail_reopens(false);
    store.faults().fail_commits(false);
    let err = store.append(dataset, vec![bare("b")]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Unavailable(m) if *m == why), "{err:?}");
    store.close().await;
}

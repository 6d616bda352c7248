//! The SQLite store on a real disk: durability across reopen, dedup, foreign files.

use interlog_model::arn::Scope;
use interlog_model::Interaction;
use interlog_store::{Bootstrap, EventStore, SqliteStore, StoreError, StoreOptions, StoredEvent};

fn event(id: &str, item: &str) -> Interaction {
    Interaction {
        event_id: id.into(),
        session_id: "s".into(),
        user_id: Some("u".into()),
        item_id: Some(item.into()),
        event_type: "click".into(),
        event_value: None,
        sent_at: 1_700_000_000.0,
        properties: None,
        recommendation_id: None,
        impression: None,
        event_attribution_source: None,
    }
}

fn spec() -> Bootstrap {
    Bootstrap { scope: Scope { region: "us-east-1".into(), account: "000000000000".into() }, tracking_id: None }
}

fn all(store: &dyn EventStore, dataset: i64) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    store
        .scan(dataset, &mut |e| {
            out.push(e);
            Ok(())
        })
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn first_copy_wins_within_window_across_window_and_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, tracking_id) = {
        let store = SqliteStore::open(dir.path(), StoreOptions { window_events: 2, ..Default::default() }).unwrap();
        let b = store.bootstrap(spec()).await.unwrap();
        assert!(b.created);
        let dataset = b.dataset_group.interactions.as_ref().unwrap().0;
        // Duplicate inside one request: caught by the window.
        let o = store.append(dataset, vec![event("a", "first"), event("a", "second")]).await.unwrap();
        assert_eq!((o.stored, o.duplicates), (1, 1));
        // Push "a" out of the two-entry window, then repeat it: stored, but not exported.
        store.append(dataset, vec![event("b", "x"), event("c", "x")]).await.unwrap();
        let o = store.append(dataset, vec![event("a", "third")]).await.unwrap();
        assert_eq!(o.stored, 1);
        (dataset, b.tracker.tracking_id)
    };
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    let b = store.bootstrap(spec()).await.unwrap();
    assert!(!b.created);
    assert_eq!(b.tracker.tracking_id, tracking_id);
    assert_eq!(store.tracker(&tracking_id).unwrap().dataset_id, Some(dataset));
    // After a restart the window is warmed from disk, so this retry is dropped at once.
    let o = store.append(dataset, vec![event("c", "again")]).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, 1));
    let events = all(&*store, dataset);
    let ids: Vec<_> =
        events.iter().map(|e| (e.interaction.event_id.as_str(), e.interaction.item_id.as_deref().unwrap())).collect();
    assert_eq!(ids, [("a", "first"), ("b", "x"), ("c", "x")]);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_cannot_open_the_same_dir_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(matches!(SqliteStore::open(dir.path(), StoreOptions::default()), Err(StoreError::Foreign { .. })));

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("interlog.db"), b"this is not a database, just some text that is long enough")
        .unwrap();
    let err = SqliteStore::open(other.path(), StoreOptions::default()).err().expect("refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fixed_tracking_id_is_kept_and_a_different_one_later_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
        let b = store.bootstrap(Bootstrap { tracking_id: Some("team-tracker".into()), ..spec() }).await.unwrap();
        assert_eq!(b.tracker.tracking_id, "team-tracker");
    }
    let store = SqliteStore::open(dir.path(), StoreOptions::default()).unwrap();
    let err = store.bootstrap(Bootstrap { tracking_id: Some("other".into()), ..spec() }).await.unwrap_err();
    assert!(err.to_string().contains("team-tracker"), "{err}");
}

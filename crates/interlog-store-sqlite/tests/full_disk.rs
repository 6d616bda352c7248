//! A real full disk (issue 18): the data dir on a 40 MB tmpfs, 20 MB of it taken by another
//! file, appends of large events until at least 20 were refused, then the other file deleted.
//! Every refusal is `Unavailable`, health says so while full, an append succeeds again within
//! 10 s on the same store, and every acknowledged event is stored exactly once.
//!
//! Mounting needs root; where it cannot mount, the test prints `SKIPPED ...` and passes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interlog_model::arn::Scope;
use interlog_model::Interaction;
use interlog_store::{bootstrap, Bootstrap, EventStore, Health, Store, StoreError, WriterOptions};
use interlog_store_sqlite::SqliteStore;

/// A tmpfs mounted for the test, unmounted however the test ends (lazily if still busy).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes zeros to `path` until `bytes` are written or the disk is full.
fn fill(path: &Path, bytes: Option<usize>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0;
    while bytes.is_none_or(|b| written < b) {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
    let _ = f.sync_all();
}

/// Like the boto3 load: itemIds of ~200 characters and 4 impressions of ~190.
fn big_event(id: &str) -> Interaction {
    Interaction {
        event_id: id.into(),
        session_id: "session-1".into(),
        user_id: Some("user-1".into()),
        item_id: Some(format!("{id}-{}", "i".repeat(200))),
        event_type: "click".into(),
        event_value: None,
        sent_at: 1_700_000_000.0,
        properties: None,
        recommendation_id: None,
        impression: Some((0..4).map(|n| format!("{n}-{}", "m".repeat(190))).collect()),
        event_attribution_source: None,
        flags: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_appends_with_unavailable_and_writes_again_once_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let mount = match Tmpfs::mount(&tmp.path().join("disk"), "40m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("SKIPPED a_full_disk_refuses_appends: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    let ballast = mount.0.join("ballast");
    fill(&ballast, Some(20 << 20));
    let dir = mount.0.join("data");
    let store = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || SqliteStore::open(&dir, WriterOptions::default())).await.unwrap().unwrap()
    };
    let b = bootstrap(
        &*store,
        &Bootstrap { scope: Scope { region: "us-east-1".into(), account: "000000000000".into() }, tracking_id: None },
    )
    .await
    .unwrap();
    let dataset = b.dataset.meta.id;

    // Eight clients put 10-event requests until 20 requests have been refused.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, acknowledged, refused, next) =
                (store.clone(), acknowledged.clone(), refused.clone(), next.clone());
            tokio::spawn(async move {
                while refused.load(Ordering::SeqCst) < 20 {
                    let r = next.fetch_add(1, Ordering::SeqCst);
                    assert!(r < 20_000, "the disk never filled");
                    let ids: Vec<String> = (0..10).map(|i| format!("r{r}-{i}")).collect();
                    match store.append(dataset, ids.iter().map(|id| big_event(id)).collect()).await {
                        Ok(o) => {
                            assert_eq!(o.stored, 10);
                            acknowledged.lock().unwrap().extend(ids);
                        }
                        Err(StoreError::Unavailable(reason)) => {
                            assert!(reason.contains("disk is full") || !reason.is_empty(), "{reason}");
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("a refusal must be Unavailable, got {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t).await.expect("every request is answered").unwrap();
    }
    let acked = acknowledged.lock().unwrap().len();
    eprintln!(
        "acknowledged {acked} events before the disk filled; {} requests refused",
        refused.load(Ordering::SeqCst)
    );
    assert!(refused.load(Ordering::SeqCst) >= 20);
    assert!(acked > 1000, "the disk filled with the events, not before");

    // Take the last bytes too. Appends that fit in space SQLite already holds (the WAL's
    // reused frames, free pages) may still succeed; the first that needs more is refused, and
    // right then health tells the truth.
    fill(&mount.0.join("ballast-2"), None);
    let mut full_health = None;
    for r in 0..500 {
        let ids: Vec<String> = (0..10).map(|i| format!("full-{r}-{i}")).collect();
        match store.append(dataset, ids.iter().map(|id| big_event(id)).collect()).await {
            Ok(_) => acknowledged.lock().unwrap().extend(ids),
            Err(StoreError::Unavailable(_)) => {
                full_health = Some(store.health());
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    match full_health.expect("a full disk refuses appends") {
        Health::Unavailable(reason) => eprintln!("health while full: Unavailable({reason})"),
        other => panic!("health must be Unavailable while the disk is full, not {other:?}"),
    }
    assert_eq!(store.fatal(), None, "a full disk is not fatal");

    // Space returns: the same store takes events again within 10 s.
    std::fs::remove_file(&ballast).unwrap();
    std::fs::remove_file(mount.0.join("ballast-2")).unwrap();
    let freed = Instant::now();
    // Health turns Writable by itself (the writer's probe), with no traffic at all.
    while store.health() != Health::Writable {
        assert!(freed.elapsed() < Duration::from_secs(10), "health did not turn Writable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("health Writable {:?} after space returned, without traffic", freed.elapsed());
    let mut attempts = 0;
    loop {
        attempts += 1;
        let ids: Vec<String> = (0..10).map(|i| format!("after-{attempts}-{i}")).collect();
        match store.append(dataset, ids.iter().map(|id| big_event(id)).collect()).await {
            Ok(_) => {
                acknowledged.lock().unwrap().extend(ids);
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                assert!(
                    freed.elapsed() < Duration::from_secs(10),
                    "no append succeeded within 10 s of space returning"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    eprintln!("an append succeeded {:?} after space returned ({attempts} attempts)", freed.elapsed());
    // Every acknowledged event is stored, exactly once, and nothing else is.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.read(dataset, after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page {
            *counts.entry(e.interaction.event_id).or_default() += 1;
        }
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(counts.len(), acknowledged.len(), "exactly the acknowledged events are stored");
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
    drop(store);
    drop(mount);
}

//! Measures what deleting a large dataset costs the appends to another one: request latency
//! of a steady append load before and while the purge runs, and how long the purge takes.
//!
//! `cargo run --release -p interlog-store-sqlite --example purge_bench -- [EVENTS] [CONCURRENCY]`
//! (data in a temporary dir under `$BENCH_DIR`, default the current dir).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use interlog_model::arn::Scope;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, GroupSpec, New};
use interlog_store::catalog::{DeleteRules, InsertRules};
use interlog_store::testing::bare;
use interlog_store::{bootstrap, Bootstrap, EventStore, Store, WriterOptions};
use interlog_store_sqlite::SqliteStore;

fn pct(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let total = args.first().copied().unwrap_or(2_000_000);
    let concurrency = args.get(1).copied().unwrap_or(16);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let path = dir.path().to_owned();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, WriterOptions::default()))
            .await
            .unwrap()
            .unwrap();
        let scope = Scope { region: "us-east-1".into(), account: "000000000000".into() };
        let b = bootstrap(&*store, &Bootstrap { scope: scope.clone(), tracking_id: None }).await.unwrap();
        let keep = b.dataset.meta.id;
        let rules = || InsertRules { exists_message: "exists".into(), ..Default::default() };
        let group = store
            .create(
                New {
                    account: scope.account.clone(),
                    arn: scope.arn("dataset-group", "big"),
                    name: "big".into(),
                    parent: None,
                    uses: None,
                    status: "ACTIVE".into(),
                    unique_key: Some("big".into()),
                    tags: vec![],
                    spec: GroupSpec::default(),
                },
                rules(),
            )
            .await
            .unwrap();
        let big = store
            .create(
                New {
                    account: scope.account.clone(),
                    arn: scope.arn("dataset", "big/INTERACTIONS"),
                    name: "big".into(),
                    parent: Some(group.meta.arn.clone()),
                    uses: b.dataset.meta.uses.clone(),
                    status: "ACTIVE".into(),
                    unique_key: None,
                    tags: vec![],
                    spec: DatasetSpec { dataset_type: "INTERACTIONS".into(), tracking_id: None },
                },
                rules(),
            )
            .await
            .unwrap();
        // Fill the big dataset.
        let next = Arc::new(AtomicU64::new(0));
        let fillers: Vec<_> = (0..256)
            .map(|_| {
                let (store, next) = (store.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let first = next.fetch_add(10, Ordering::Relaxed);
                        if first >= total {
                            return;
                        }
                        let events = (first..first + 10).map(|n| bare(&format!("big-{n}"))).collect();
                        store.append(big.meta.id, events).await.unwrap();
                    }
                })
            })
            .collect();
        for f in fillers {
            f.await.unwrap();
        }
        println!("filled: {total} events in the dataset to delete");

        // A steady load on the other dataset, latencies sorted into phases.
        let stop = Arc::new(AtomicBool::new(false));
        let purging = Arc::new(AtomicBool::new(false));
        let phases = Arc::new(Mutex::new((Vec::<u64>::new(), Vec::<u64>::new())));
        let counter = Arc::new(AtomicU64::new(0));
        let loaders: Vec<_> = (0..concurrency)
            .map(|_| {
                let (store, stop, purging, phases, counter) =
                    (store.clone(), stop.clone(), purging.clone(), phases.clone(), counter.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(10, Ordering::Relaxed);
                        let events = (n..n + 10).map(|i| bare(&format!("keep-{i}"))).collect();
                        let during = purging.load(Ordering::Relaxed);
                        let t = Instant::now();
                        store.append(keep, events).await.unwrap();
                        let us = t.elapsed().as_micros() as u64;
                        let mut p = phases.lock().unwrap();
                        if during {
                            p.1.push(us);
                        } else {
                            p.0.push(us);
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        purging.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let purge = DeleteRules { purge_events: true, ..Default::default() };
        store.remove::<DatasetSpec>(&scope.account, &big.meta.arn, purge).await.unwrap();
        let delete_took = started.elapsed();
        while store.pending_purges().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let purge_took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for l in loaders {
            l.await.unwrap();
        }
        let (mut before, mut during) = std::mem::take(&mut *phases.lock().unwrap());
        before.sort_unstable();
        during.sort_unstable();
        println!(
            "delete: answered in {:.1} ms; {total} events purged in {:.2} s ({:.0} events/s)",
            delete_took.as_secs_f64() * 1000.0,
            purge_took.as_secs_f64(),
            total as f64 / purge_took.as_secs_f64()
        );
        for (name, l) in [("before the delete", &before), ("while purging", &during)] {
            println!(
                "appends {name}: {} requests of 10 events, {concurrency} concurrent; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.len(),
                pct(l, 0.5),
                pct(l, 0.99),
                pct(l, 1.0)
            );
        }
        store.close().await;
    });
}

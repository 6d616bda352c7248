//! Measures the store alone: durable appends per second through the group-commit writer, with
//! many concurrent 10-event requests, then the speed of a deduplicating export scan.
//!
//! `cargo run --release -p interlog-store-sqlite --example append_bench -- [EVENTS] [CONCURRENCY] [DUP%] [RECORDS]`
//! (data in a temporary dir under `$BENCH_DIR`, default the current dir). With RECORDS, it then
//! writes that many ~1 KB-properties records (the PutItems baseline) into another dataset.
//! `HISTORY_INDEX=off` runs the writer without the history indexer (the reference for its cost).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use interlog_model::arn::Scope;
use interlog_model::Interaction;
use interlog_store::export::UniqueEvents;
use interlog_store::{bootstrap, Bootstrap, EventStore, Store, WriterOptions};
use interlog_store_sqlite::SqliteStore;

fn event(n: u64, dup_every: u64) -> Interaction {
    // With dup_every = 10, every tenth event repeats the eventId of an earlier (older) event.
    let id = if dup_every > 0 && n.is_multiple_of(dup_every) && n > 0 {
        uuid::Uuid::from_u128(u128::from(n / 2)).to_string()
    } else {
        uuid::Uuid::from_u128(u128::from(n)).to_string()
    };
    Interaction {
        event_id: id,
        session_id: format!("session-{}", n % 50_000),
        user_id: Some(format!("user-{}", n % 100_000)),
        item_id: Some(format!("item-{}", n % 20_000)),
        event_type: "click".into(),
        event_value: Some(4.5),
        sent_at: 1_700_000_000.0 + n as f64,
        properties: Some(r#"{"numberOfRatings": "12", "device": "mobile"}"#.into()),
        recommendation_id: None,
        impression: Some(vec!["item-1".into(), "item-2".into(), "item-3".into()]),
        event_attribution_source: None,
        flags: vec![],
    }
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let total = args.first().copied().unwrap_or(2_000_000);
    let concurrency = args.get(1).copied().unwrap_or(256);
    let dup_percent = args.get(2).copied().unwrap_or(0);
    let dup_every = 100u64.checked_div(dup_percent).unwrap_or(0);
    let records = args.get(3).copied().unwrap_or(0);
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let path = dir.path().to_owned();
        let options = WriterOptions {
            history_index: std::env::var("HISTORY_INDEX").map_or(true, |v| v != "off"),
            ..WriterOptions::default()
        };
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, options)).await.unwrap().unwrap();
        let spec = Bootstrap {
            scope: Scope { region: "us-east-1".into(), account: "000000000000".into() },
            tracking_id: None,
        };
        let dataset = bootstrap(&*store, &spec).await.unwrap().dataset.meta.id;
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let store = store.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let first = next.fetch_add(10, Ordering::Relaxed);
                    if first >= total {
                        return latencies;
                    }
                    let events: Vec<_> = (first..first + 10).map(|n| event(n, dup_every)).collect();
                    let t = Instant::now();
                    store.append(dataset, events).await.unwrap();
                    latencies.push(t.elapsed().as_micros() as u64);
                }
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64 / 1000.0;
        println!(
            "append: {total} events, {concurrency} concurrent 10-event requests, {dup_percent}% duplicates: \
             {:.0} events/s durable; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            total as f64 / secs,
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        // The engine's paged read alone, then the exact de-duplicating reader over it.
        let started = Instant::now();
        let (mut read, mut after) = (0usize, 0);
        loop {
            let page = store.read(dataset, after, interlog_store::export::PAGE_EVENTS).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            read += page.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "read: {read} events in pages of {} in {secs:.2} s = {:.0} events/s",
            interlog_store::export::PAGE_EVENTS,
            read as f64 / secs
        );
        let started = Instant::now();
        let mut n = 0u64;
        let stats = UniqueEvents::new(&*store, dataset)
            .for_each(|_| {
                n += 1;
                Ok(())
            })
            .await
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "scan: {} events ({} duplicates skipped) in {secs:.2} s = {:.0} events/s",
            stats.events,
            stats.duplicates,
            n as f64 / secs
        );
        let size: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        println!("disk: {:.0} bytes/event", size as f64 / total as f64);
        let wal = std::fs::metadata(dir.path().join("interlog.db-wal")).map(|m| m.len()).unwrap_or(0);
        println!("wal: {:.1} MB at the end", wal as f64 / 1e6);
        if records > 0 {
            // Records go to a dataset of their own (the store does not look at its type).
            let other = Bootstrap {
                scope: Scope { region: "us-east-1".into(), account: "111111111111".into() },
                tracking_id: None,
            };
            let items = bootstrap(&*store, &other).await.unwrap().dataset.meta.id;
            let all: std::sync::Arc<dyn Store> = store.clone();
            println!("{}", interlog_store::testing::put_records_load(all, items, records, concurrency).await);
        }
        store.close().await;
    });
}

//! Measures the PostgreSQL store alone: durable appends per second through one node's
//! group-commit writer, with many concurrent 10-event requests, then a deduplicating read of
//! the dataset. The baseline the server's PostgreSQL scenarios are compared with.
//!
//! `INTERLOG_BENCH_DATABASE_URL=postgres://root@127.0.0.1:5432/test \
//!  cargo run --release -p interlog-store-postgres --example pg_append_bench -- [EVENTS] [CONCURRENCY] [DUP%] [copy|insert] [NODES] [RECORDS]`
//!
//! With RECORDS, it then writes that many ~1 KB-properties records in 10-record requests (the
//! PutItems baseline) through the first node into another dataset.
//!
//! With NODES > 1, that many stores are opened on the same schema (nodes of one deployment in
//! one process) and the requests are spread over them, all into one dataset.
//! (`INTERLOG_TEST_DATABASE_URL` is used when the bench variable is unset.) The run creates a
//! schema of its own and drops it at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use interlog_model::arn::Scope;
use interlog_model::Interaction;
use interlog_store::export::UniqueEvents;
use interlog_store::{bootstrap, Bootstrap, EventStore, Store, WriterOptions};
use interlog_store_postgres::{InsertMode, PostgresOptions, PostgresStore};

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

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("database");
    tokio::spawn(connection);
    client
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let total = number(0, 1_000_000);
    let concurrency = number(1, 256);
    let dup_percent = number(2, 0);
    let insert = match args.get(3).map(String::as_str) {
        None | Some("copy") => InsertMode::Copy,
        Some("insert") => InsertMode::Insert,
        Some(other) => panic!("unknown insert mode {other} (copy or insert)"),
    };
    let nodes = number(4, 1).max(1);
    let records = number(5, 0);
    let dup_every = 100u64.checked_div(dup_percent).unwrap_or(0);
    let url = std::env::var("INTERLOG_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("INTERLOG_TEST_DATABASE_URL"))
        .expect("set INTERLOG_BENCH_DATABASE_URL to a PostgreSQL URL");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let schema = format!("interlog_bench_{}", std::process::id());
        let client = admin(&url).await;
        // Schemas of earlier runs that died before cleaning up (their process is gone).
        let leftovers = client
            .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'interlog\\_bench\\_%'", &[])
            .await
            .unwrap();
        for r in leftovers {
            let name: String = r.get(0);
            let pid = name.trim_start_matches("interlog_bench_");
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await.unwrap();
            }
        }
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")).await.unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let store_url = format!("{url}{sep}options=-csearch_path%3D{schema}");
        let options = PostgresOptions { insert, ..PostgresOptions::default() };
        let mut stores = Vec::new();
        for _ in 0..nodes {
            stores.push(PostgresStore::open_with(&store_url, WriterOptions::default(), options.clone()).await.unwrap());
        }
        let store = stores[0].clone();
        let scope = Scope { region: "us-east-1".into(), account: "000000000000".into() };
        let dataset = bootstrap(&*store, &Bootstrap { scope, tracking_id: None }).await.unwrap().dataset.meta.id;
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let store = stores[task as usize % stores.len()].clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let first = next.fetch_add(10, Ordering::Relaxed);
                    if first >= total {
                        return latencies;
                    }
                    let events: Vec<_> = (first..(first + 10).min(total)).map(|n| event(n, dup_every)).collect();
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
            "append ({insert:?}, {nodes} node(s)): {total} events, {concurrency} concurrent 10-event requests, {dup_percent}% duplicates: \
             {:.0} events/s durable; request latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            total as f64 / secs,
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        for (n, node) in stores.iter().enumerate() {
            let c = node.commit_stats();
            println!(
                "node {n} commits: {} of {:.0} events on average; commit p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                c.commits,
                c.mean_events,
                c.p50.as_secs_f64() * 1000.0,
                c.p99.as_secs_f64() * 1000.0,
                c.max.as_secs_f64() * 1000.0
            );
        }
        let started = Instant::now();
        let stats = UniqueEvents::new(&*store, dataset).for_each(|_| Ok(())).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "read: {} events ({} duplicates skipped) in {secs:.2} s = {:.0} events/s",
            stats.events,
            stats.duplicates,
            (stats.events + stats.duplicates) as f64 / secs
        );
        let size: i64 = client
            .query_one(&format!("SELECT pg_total_relation_size('{schema}.events')"), &[])
            .await
            .unwrap()
            .get(0);
        println!("disk: {:.0} bytes/event (table + primary key)", size as f64 / total as f64);
        if records > 0 {
            let scope = Scope { region: "us-east-1".into(), account: "111111111111".into() };
            let items = bootstrap(&*store, &Bootstrap { scope, tracking_id: None }).await.unwrap().dataset.meta.id;
            let first: Arc<dyn Store> = store.clone();
            println!("{}", interlog_store::testing::put_records_load(first, items, records, concurrency).await);
        }
        for node in &stores {
            node.close().await;
        }
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
    });
}

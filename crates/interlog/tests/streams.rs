//! The NATS JetStream sink (`--nats-url`, docs/streams.md) against a real nats-server: a
//! consumer reads every stored event exactly once, in order per dataset, whatever was killed
//! mid-load; and `Nats-Msg-Id` drops the replay of a page whose cursor did not move.
//!
//! Runs when `INTERLOG_TEST_NATS_URL` is set (else each test prints a SKIPPED line), on SQLite
//! and, with `INTERLOG_TEST_DATABASE_URL`, on PostgreSQL too. Tests that restart NATS start
//! their own `nats-server -js` on a free port with its own store dir, never touching the
//! machine's; the others use the machine's with a stream and subject prefix of their own. Two
//! nodes on PostgreSQL show the sink moving to the survivor when its node is SIGKILLed.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{post_events, start_on, wait_until, Server};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

fn nats_or_skip(test: &str) -> Option<String> {
    match std::env::var("INTERLOG_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("SKIPPED {test}: INTERLOG_TEST_NATS_URL is not set");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A unique name for this test run (stream names, subject prefixes, schemas).
fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{test}_{}_{nanos}", std::process::id())
}

/// A nats-server of the test's own, on a fixed port and store dir so a restart keeps both.
struct OwnNats {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl OwnNats {
    fn start(dir: &Path) -> OwnNats {
        let mut n = OwnNats { child: None, port: free_port(), dir: dir.to_owned() };
        n.up();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()),
            "nats-server did not listen"
        );
    }

    /// SIGKILL: NATS gone at once, its file store as it was.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where interlog keeps its store in a test.
#[derive(Clone, Debug)]
enum Engine {
    Sqlite,
    /// The URL of a schema of this test's own.
    Postgres(String),
}

impl Engine {
    /// Removes the test's schema (nothing on SQLite: the data dir is a temporary one).
    fn drop_schema(&self) {
        if let Engine::Postgres(url) = self {
            let (base, schema) = url.split_once("options=-csearch_path%3D").unwrap();
            let base = base.trim_end_matches(['?', '&']);
            let _ = Command::new("psql")
                .args(["-q", "-X", base, "-c", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn engines(test: &str) -> Vec<Engine> {
    let mut out = vec![Engine::Sqlite];
    match std::env::var("INTERLOG_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = unique(test).to_lowercase();
            let status = Command::new("psql")
                .args(["-q", "-X", "-v", "ON_ERROR_STOP=1", &url, "-c", &format!("CREATE SCHEMA {schema}")])
                .status()
                .expect("psql");
            assert!(status.success(), "cannot create the schema {schema}");
            let sep = if url.contains('?') { '&' } else { '?' };
            out.push(Engine::Postgres(format!("{url}{sep}options=-csearch_path%3D{schema}")));
        }
        _ => println!("SKIPPED the PostgreSQL pass of {test}: INTERLOG_TEST_DATABASE_URL is not set"),
    }
    out
}

/// One interlog under test: its engine, data dir, fixed port and NATS settings.
struct Setup {
    engine: Engine,
    dir: PathBuf,
    listen: String,
    nats_url: String,
    stream: String,
    prefix: String,
}

impl Setup {
    fn new(engine: Engine, dir: &Path, nats_url: &str, name: &str) -> Setup {
        Setup {
            engine,
            dir: dir.to_owned(),
            listen: format!("127.0.0.1:{}", free_port()),
            nats_url: nats_url.into(),
            stream: format!("T_{}", name.to_uppercase()),
            prefix: format!("test.{}", name.to_lowercase()),
        }
    }

    fn start(&self) -> Server {
        let mut args: Vec<String> = vec![
            "--no-auth".into(),
            "--nats-url".into(),
            self.nats_url.clone(),
            "--nats-stream".into(),
            self.stream.clone(),
            "--nats-subject-prefix".into(),
            self.prefix.clone(),
        ];
        if let Engine::Postgres(url) = &self.engine {
            args.extend(["--database-url".into(), url.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.join("server.log");
        start_on(&self.dir.join("data"), &self.listen, &args, &[("INTERLOG_LOG", "info")], Some(&log))
    }

    /// The stored events, repeats removed (first copy wins), as `interlog export` reads them.
    fn stored_ids(&self) -> Vec<String> {
        let mut cmd = Command::new(common::bin());
        cmd.args(["export", "--format", "jsonl", "--output", "-"]);
        match &self.engine {
            Engine::Sqlite => cmd.arg("--data-dir").arg(self.dir.join("data")),
            Engine::Postgres(url) => cmd.args(["--database-url", url]),
        };
        let out = cmd.output().expect("interlog export");
        assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["eventId"].as_str().or(v["EVENT_ID"].as_str()).expect("an eventId").to_owned()
            })
            .collect()
    }

    /// Moves the sink's cursors back to 0 in the stopped server's store: the state a crash
    /// between the PubAck and the cursor's advance leaves (the store's API never moves a cursor
    /// back, so this goes round it).
    fn rewind_cursors(&self) {
        match &self.engine {
            Engine::Sqlite => {
                let conn = rusqlite::Connection::open(self.dir.join("data").join("interlog.db")).unwrap();
                let n = conn.execute("UPDATE sink_cursors SET position = 0 WHERE sink = 'nats'", []).unwrap();
                assert!(n > 0, "a cursor to rewind");
            }
            Engine::Postgres(url) => {
                let (base, schema) = url.split_once("options=-csearch_path%3D").unwrap();
                let base = base.trim_end_matches(['?', '&']);
                let status = Command::new("psql")
                    .args([
                        "-q",
                        "-X",
                        "-v",
                        "ON_ERROR_STOP=1",
                        base,
                        "-c",
                        &format!("UPDATE {schema}.sink_cursors SET position = 0 WHERE sink = 'nats'"),
                    ])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }
}

/// `GET /_interlog/sinks` (the server runs with --no-auth, so every caller is root).
fn sinks(addr: &str) -> serde_json::Value {
    let request = format!("GET /_interlog/sinks HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let reply = common::raw_exchange(addr, request.as_bytes(), Duration::from_secs(10)).expect("GET /_interlog/sinks");
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// Sends batches of 10 events with ids `<prefix>-<n>` until stopped or `total` were sent,
/// retrying a batch that was not acknowledged (the server may be down); records what was
/// acknowledged and what was refused while the server was up.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: String, tracking_id: String, prefix: String, total: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while n < total && !s.load(Ordering::Relaxed) {
                let ids: Vec<String> = (n..n + 10).map(|i| format!("{prefix}-{i}")).collect();
                let body = common::put_events_body(&tracking_id, &ids);
                match post_events(&addr, body.as_bytes(), Duration::from_secs(10)) {
                    Ok(r) if r.status == 200 => {
                        a.lock().unwrap().extend(ids);
                        n += 10;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Load { acked, stop, thread: Some(thread) }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn wait_for(&self, n: usize) {
        assert!(wait_until(Duration::from_secs(120), || self.acked() >= n), "the load did not reach {n} events");
    }

    fn finish(mut self) -> Vec<String> {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Every message of the stream, in stream order: (eventId, datasetArn, position, subject).
fn consume(nats_url: &str, stream: &str, expect: usize) -> Vec<(String, String, i64, String)> {
    runtime().block_on(async {
        use futures_util::StreamExt;
        let client = async_nats::connect(nats_url).await.expect("connect to NATS");
        let js = jetstream::new(client);
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Wait until the stream holds what is expected (the sink may still be catching up),
        // then read it once more from the start with a fresh consumer, and a little longer,
        // so a duplicate arriving late would be seen too.
        loop {
            if let Ok(mut s) = js.get_stream(stream).await {
                if let Ok(info) = s.info().await {
                    if info.state.messages as usize >= expect {
                        break;
                    }
                }
            }
            assert!(Instant::now() < deadline, "the stream did not reach {expect} messages");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = js.get_stream(stream).await.unwrap();
        let consumer = s
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
        let total = s.clone().info().await.unwrap().state.messages as usize;
        let mut messages = consumer.messages().await.unwrap();
        while out.len() < total {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("a message within 10 s")
                .unwrap()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["version"], 1);
            let id = v["eventId"].as_str().unwrap().to_owned();
            let msg_id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
            assert_eq!(msg_id, Some(format!("{}/{id}", v["datasetArn"].as_str().unwrap())));
            out.push((
                id,
                v["datasetArn"].as_str().unwrap().to_owned(),
                v["position"].as_i64().unwrap(),
                m.subject.to_string(),
            ));
        }
        out
    })
}

/// The consumer saw every stored event exactly once, in order per dataset.
fn assert_exactly_once_in_order(consumed: &[(String, String, i64, String)], stored: &[String], acked: &[String]) {
    let mut seen = HashSet::new();
    for (id, ..) in consumed {
        assert!(seen.insert(id.clone()), "{id} was delivered twice");
    }
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(seen.len(), stored_set.len(), "delivered {} of {} stored events", seen.len(), stored_set.len());
    assert_eq!(seen, stored_set, "the delivered events are the stored ones");
    for id in acked {
        assert!(seen.contains(id), "{id} was acknowledged but never delivered");
    }
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (id, dataset, position, _) in consumed {
        let before = last.insert(dataset, *position).unwrap_or(0);
        assert!(*position > before, "{id} at {position} came after {before} in {dataset}");
    }
}

fn tracking_id_of(server: &Server) -> String {
    server.tracking_id.clone()
}

/// Load with interlog and/or NATS SIGKILLed mid-way, then check the stream.
fn killed_mid_load(test: &str, kill_interlog: bool, kill_nats: bool) {
    if nats_or_skip(test).is_none() {
        return;
    }
    for engine in engines(test) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nats")).unwrap();
        let mut nats = OwnNats::start(&dir.path().join("nats"));
        let name = unique(test);
        let setup = Setup::new(engine.clone(), dir.path(), &nats.url(), &name);
        let mut server = Some(setup.start());
        let tracking = tracking_id_of(server.as_ref().unwrap());
        let total = 3000;
        let load = Load::start(setup.listen.clone(), tracking, name.clone(), total);
        load.wait_for(total / 3);
        if kill_nats {
            nats.kill();
        }
        if kill_interlog {
            server.take().unwrap().kill9();
            server = Some(setup.start());
        }
        if kill_nats {
            // Ingest goes on without NATS.
            let at = load.acked();
            load.wait_for(at + 200);
            // Down long enough for the sink to see it fail (and say so), then back.
            let addr = setup.listen.clone();
            assert!(
                wait_until(Duration::from_secs(60), || {
                    let s = sinks(&addr);
                    s["sinks"][0]["datasets"].as_array().unwrap().iter().any(|d| {
                        d["lastError"].as_str().is_some_and(|e| e.starts_with("nats:"))
                            && d["retried"].as_u64() > Some(0)
                    })
                }),
                "the outage shows in /_interlog/sinks: {}",
                sinks(&addr)
            );
            nats.up();
        }
        let acked = load.finish();
        assert_eq!(acked.len(), total);
        let stored = setup.stored_ids();
        let consumed = consume(&nats.url(), &setup.stream, stored.len());
        assert_exactly_once_in_order(&consumed, &stored, &acked);
        // The state shows it: caught up, counted, no error left.
        let addr = setup.listen.clone();
        assert!(
            wait_until(Duration::from_secs(30), || {
                let s = sinks(&addr);
                let d = &s["sinks"][0]["datasets"];
                d.as_array().unwrap().iter().all(|d| d["lagEvents"] == 0 && d["lastError"].is_null())
            }),
            "the sink did not report itself caught up: {}",
            sinks(&addr)
        );
        let s = sinks(&addr);
        assert_eq!(s["sinks"][0]["name"], "nats");
        assert_eq!(s["sinks"][0]["runningHere"], true);
        let delivered: u64 =
            s["sinks"][0]["datasets"].as_array().unwrap().iter().map(|d| d["delivered"].as_u64().unwrap()).sum();
        assert!(delivered as usize >= stored.len());
        if kill_nats {
            let retried: u64 =
                s["sinks"][0]["datasets"].as_array().unwrap().iter().map(|d| d["retried"].as_u64().unwrap()).sum();
            assert!(retried > 0, "NATS was down, so deliveries were retried: {s}");
        }
        server.take().unwrap().stop();
        println!("{test} on {engine:?}: {} events delivered exactly once", stored.len());
        engine.drop_schema();
    }
}

#[test]
fn every_event_once_in_order_after_interlog_is_killed_mid_load() {
    killed_mid_load("interlog_killed", true, false);
}

#[test]
fn every_event_once_in_order_after_nats_is_restarted_mid_load() {
    killed_mid_load("nats_restarted", false, true);
}

#[test]
fn every_event_once_in_order_after_both_are_killed_mid_load() {
    killed_mid_load("both_killed", true, true);
}

/// The cursor did not move after the PubAcks (a crash in between): the pages are published
/// again on restart, and JetStream's duplicate window drops every copy by `Nats-Msg-Id`.
#[test]
fn msg_id_dedup_covers_a_replay_after_a_crash_between_publish_and_cursor_advance() {
    let test = "replay";
    let Some(nats_url) = nats_or_skip(test) else { return };
    for engine in engines(test) {
        let dir = tempfile::tempdir().unwrap();
        let name = unique(test);
        let setup = Setup::new(engine.clone(), dir.path(), &nats_url, &name);
        let server = setup.start();
        let load = Load::start(setup.listen.clone(), tracking_id_of(&server), name.clone(), 500);
        let acked = load.finish();
        let stored = setup.stored_ids();
        let consumed = consume(&nats_url, &setup.stream, stored.len());
        assert_exactly_once_in_order(&consumed, &stored, &acked);
        let delivered = |s: &serde_json::Value| -> u64 {
            s["sinks"][0]["datasets"].as_array().unwrap().iter().map(|d| d["delivered"].as_u64().unwrap()).sum()
        };
        let addr = setup.listen.clone();
        assert!(wait_until(Duration::from_secs(30), || delivered(&sinks(&addr)) == 500));
        server.stop();

        setup.rewind_cursors();
        let server = setup.start();
        // Everything is published again: the sink counts 500 more confirmations ...
        assert!(
            wait_until(Duration::from_secs(60), || delivered(&sinks(&addr)) == 1000),
            "the rewound cursor was not replayed: {}",
            sinks(&addr)
        );
        // ... and the stream still holds each event once.
        let consumed = consume(&nats_url, &setup.stream, stored.len());
        assert_eq!(consumed.len(), 500, "JetStream dropped the replay by Nats-Msg-Id");
        assert_exactly_once_in_order(&consumed, &stored, &acked);
        server.stop();
        runtime().block_on(async {
            let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
            let _ = js.delete_stream(&setup.stream).await;
        });
        println!("{test} on {engine:?}: a replay of 500 events left 500 messages");
        engine.drop_schema();
    }
}

/// NATS unreachable from the start: events are accepted and stored, the error is visible in
/// `GET /_interlog/sinks`, and delivery starts by itself once NATS is up.
#[test]
fn nats_down_at_start_keeps_ingest_and_delivery_resumes() {
    let test = "down_at_start";
    if nats_or_skip(test).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("nats")).unwrap();
    let mut nats = OwnNats::start(&dir.path().join("nats"));
    nats.kill();
    let name = unique(test);
    let setup = Setup::new(Engine::Sqlite, dir.path(), &nats.url(), &name);
    let server = setup.start();
    let acked = Load::start(setup.listen.clone(), tracking_id_of(&server), name.clone(), 200).finish();
    assert_eq!(acked.len(), 200, "every event accepted while NATS is down");
    let addr = setup.listen.clone();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let s = sinks(&addr);
            let d = &s["sinks"][0]["datasets"][0];
            d["lagEvents"] == 200 && d["lastError"].as_str().is_some_and(|e| e.starts_with("nats:"))
        }),
        "the outage shows: {}",
        sinks(&addr)
    );
    nats.up();
    let stored = setup.stored_ids();
    let consumed = consume(&nats.url(), &setup.stream, stored.len());
    assert_exactly_once_in_order(&consumed, &stored, &acked);
    assert!(wait_until(Duration::from_secs(30), || sinks(&addr)["sinks"][0]["datasets"][0]["lagEvents"] == 0));
    server.stop();
}

/// Two nodes on one PostgreSQL database: the sink runs on exactly one; SIGKILL that one
/// mid-load and the other takes the sink over within seconds, every event still delivered
/// exactly once, in order.
#[test]
fn a_sink_moves_to_the_other_node_when_its_node_dies() {
    let test = "failover";
    let Some(nats_url) = nats_or_skip(test) else { return };
    let Some(engine) = engines(test).into_iter().find(|e| matches!(e, Engine::Postgres(_))) else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let name = unique(test);
    let a = Setup::new(engine.clone(), dir_a.path(), &nats_url, &name);
    let b = Setup::new(engine.clone(), dir_b.path(), &nats_url, &name);
    let node_a = a.start();
    let running = |addr: &str| sinks(addr)["sinks"][0]["runningHere"] == true;
    assert!(wait_until(Duration::from_secs(10), || running(&a.listen)), "the first node runs the sink");
    let node_b = b.start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!running(&b.listen), "exactly one node runs the sink");

    let load = Load::start(b.listen.clone(), node_b.tracking_id.clone(), name.clone(), 3000);
    load.wait_for(1000);
    node_a.kill9();
    let killed = Instant::now();
    assert!(wait_until(Duration::from_secs(20), || running(&b.listen)), "the other node took the sink over");
    let moved = killed.elapsed();
    assert!(moved < Duration::from_secs(12), "the sink moved in {moved:?}");
    let acked = load.finish();
    let stored = b.stored_ids();
    let consumed = consume(&nats_url, &b.stream, stored.len());
    assert_exactly_once_in_order(&consumed, &stored, &acked);
    node_b.stop();
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
        let _ = js.delete_stream(&b.stream).await;
    });
    println!("{test}: the sink moved {moved:?} after its node was killed; {} events exactly once", stored.len());
    engine.drop_schema();
}

/// `GET /_interlog/sinks` names every tenant's datasets: the root account's, like the stats.
#[test]
fn sinks_state_needs_the_root_account() {
    let test = "sinks_auth";
    let Some(nats_url) = nats_or_skip(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let name = unique(test);
    let setup = Setup::new(Engine::Sqlite, dir.path(), &nats_url, &name);
    let server = start_on(
        &dir.path().join("data"),
        &setup.listen,
        &["--nats-url", &nats_url, "--nats-stream", &setup.stream, "--nats-subject-prefix", &setup.prefix],
        &[],
        None,
    );
    let request = format!("GET /_interlog/sinks HTTP/1.1\r\nhost: {}\r\n\r\n", setup.listen);
    let reply = common::raw_exchange(&setup.listen, request.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    let call = common::Call { method: "GET", path: "/_interlog/sinks", headers: &[], body: b"" };
    let reply =
        common::signed_exchange("127.0.0.1", &setup.listen, call, &common::Key::root(), Default::default()).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(v["sinks"][0]["name"], "nats");
    server.stop();
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
        let _ = js.delete_stream(&setup.stream).await;
    });
}

/// A second and third dataset group: each group's events go to its own subject, and
/// `--nats-dataset-group` leaves the groups it does not name out.
#[test]
fn each_dataset_group_has_its_subject_and_groups_can_be_chosen() {
    use serde_json::json;
    let test = "groups";
    let Some(nats_url) = nats_or_skip(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let name = unique(test);
    let setup = Setup::new(Engine::Sqlite, dir.path(), &nats_url, &name);
    let server = start_on(
        &dir.path().join("data"),
        &setup.listen,
        &[
            "--no-auth",
            "--nats-url",
            &nats_url,
            "--nats-stream",
            &setup.stream,
            "--nats-subject-prefix",
            &setup.prefix,
            "--nats-dataset-group",
            "default,g2",
        ],
        &[],
        None,
    );
    let addr = setup.listen.clone();
    let call = |op: &str, body: serde_json::Value| -> serde_json::Value {
        let r = common::control("127.0.0.1", &addr, op, &body, &common::Key::root());
        assert_eq!(r.status, 200, "{op}: {r:?}");
        serde_json::from_str(&r.body).unwrap()
    };
    let schema = json!({"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"});
    let schema_arn = call("CreateSchema", json!({"name": "s", "schema": schema.to_string()}))["schemaArn"].clone();
    let mut trackers = vec![("default".to_owned(), server.tracking_id.clone())];
    for group in ["g2", "g3"] {
        let group_arn = call("CreateDatasetGroup", json!({"name": group}))["datasetGroupArn"].clone();
        call(
            "CreateDataset",
            json!({"name": format!("{group}-ds"), "schemaArn": schema_arn, "datasetGroupArn": group_arn,
                   "datasetType": "Interactions"}),
        );
        let t = call("CreateEventTracker", json!({"name": format!("{group}-t"), "datasetGroupArn": group_arn}));
        trackers.push((group.to_owned(), t["trackingId"].as_str().unwrap().to_owned()));
    }
    let mut acked = Vec::new();
    for (group, tracking) in &trackers {
        let ids: Vec<String> = (0..10).map(|i| format!("{name}-{group}-{i}")).collect();
        let r =
            post_events(&addr, common::put_events_body(tracking, &ids).as_bytes(), Duration::from_secs(10)).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        if group != "g3" {
            acked.extend(ids);
        }
    }
    let consumed = consume(&nats_url, &setup.stream, 20);
    assert_exactly_once_in_order(&consumed, &acked, &acked);
    for (id, dataset, _, subject) in &consumed {
        let group = if id.contains("-g2-") { "g2" } else { "default" };
        assert_eq!(subject, &format!("{}.000000000000.{group}", setup.prefix), "{id}");
        assert!(dataset.contains(&format!("dataset/{group}/")), "{id} in {dataset}");
    }
    let s = sinks(&addr);
    let datasets: Vec<&str> =
        s["sinks"][0]["datasets"].as_array().unwrap().iter().map(|d| d["datasetArn"].as_str().unwrap()).collect();
    assert_eq!(datasets.len(), 2, "g3 is not delivered: {s}");
    assert!(datasets.iter().all(|d| !d.contains("/g3/")));
    server.stop();
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
        let _ = js.delete_stream(&setup.stream).await;
    });
}

/// Messages interlog did not send land in its stream between pages (with and without a
/// `Nats-Msg-Id`): the sink's chain of `Nats-Expected-Last-Msg-Id` finds its anchor again and
/// every event still arrives exactly once, in order.
#[test]
fn foreign_messages_in_the_stream_do_not_stop_delivery() {
    foreign_messages("foreign", 3, Duration::from_millis(100), 2000);
}

/// Foreign messages every few ms while pages are in flight: each one makes the page being
/// published refused from that point on and the pages behind it refused as well, then sent
/// again from the first refused message; the stream must still hold our events once each, in
/// order per dataset.
#[test]
fn a_storm_of_foreign_messages_keeps_order_with_pages_in_flight() {
    foreign_messages("storm", 60, Duration::from_millis(15), 20_000);
}

/// `count` messages of someone else's on the stream, `every` apart, in the middle of a load of
/// `total` events.
fn foreign_messages(test: &str, count: usize, every: Duration, total: usize) {
    let Some(nats_url) = nats_or_skip(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let name = unique(test);
    let setup = Setup::new(Engine::Sqlite, dir.path(), &nats_url, &name);
    let server = setup.start();
    let load = Load::start(setup.listen.clone(), server.tracking_id.clone(), name.clone(), total);
    load.wait_for(300);
    let subject = format!("{}.intruder", setup.prefix);
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
        for i in 0..count {
            let mut headers = async_nats::HeaderMap::new();
            if i % 3 != 1 {
                headers.insert("Nats-Msg-Id", format!("intruder-{i}").as_str());
            }
            js.publish_with_headers(subject.clone(), headers, "{}".into()).await.unwrap().await.unwrap();
            tokio::time::sleep(every).await;
        }
    });
    let acked = load.finish();
    let stored = setup.stored_ids();
    let addr = setup.listen.clone();
    assert!(
        wait_until(Duration::from_secs(60), || sinks(&addr)["sinks"][0]["datasets"][0]["lagEvents"] == 0),
        "the sink caught up: {}",
        sinks(&addr)
    );
    let all = consume_raw(&nats_url, &setup.stream);
    assert_eq!(all.iter().filter(|(s, _)| *s == subject).count(), count);
    let ours: Vec<(String, String, i64, String)> = all
        .into_iter()
        .filter(|(s, _)| *s != subject)
        .map(|(s, v)| {
            (
                v["eventId"].as_str().unwrap().to_owned(),
                v["datasetArn"].as_str().unwrap().to_owned(),
                v["position"].as_i64().unwrap(),
                s,
            )
        })
        .collect();
    assert_exactly_once_in_order(&ours, &stored, &acked);
    server.stop();
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
        let _ = js.delete_stream(&setup.stream).await;
    });
}

/// Every message of the stream as (subject, JSON payload), whoever sent it.
fn consume_raw(nats_url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    runtime().block_on(async {
        use futures_util::StreamExt;
        let js = jetstream::new(async_nats::connect(nats_url).await.unwrap());
        let mut s = js.get_stream(stream).await.unwrap();
        let total = s.info().await.unwrap().state.messages as usize;
        let consumer = s
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        while out.len() < total {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap();
            out.push((m.subject.to_string(), serde_json::from_slice(&m.payload).unwrap()));
        }
        out
    })
}

/// A keyed dataset (Items, Users) of `group` with a one-field schema; returns its ARN.
fn records_dataset(addr: &str, group_arn: &str, kind: &str) -> String {
    use serde_json::json;
    let call = |op: &str, body: serde_json::Value| -> serde_json::Value {
        let r = common::control("127.0.0.1", addr, op, &body, &common::Key::root());
        assert_eq!(r.status, 200, "{op}: {r:?}");
        serde_json::from_str(&r.body).unwrap()
    };
    let (id, field, name) = match kind {
        "Items" => ("ITEM_ID", "GENRES", "Items"),
        "Users" => ("USER_ID", "AGE_GROUP", "Users"),
        _ => ("ACTION_ID", "VALUE", "Actions"),
    };
    let schema = json!({"type": "record", "name": name, "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": id, "type": "string"}, {"name": field, "type": ["null", "string"], "categorical": true}],
        "version": "1.0"});
    let schema_arn = call("CreateSchema", json!({"name": format!("{kind}-schema"), "schema": schema.to_string()}))
        ["schemaArn"]
        .clone();
    call(
        "CreateDataset",
        json!({"name": format!("{kind}-ds"), "schemaArn": schema_arn, "datasetGroupArn": group_arn,
               "datasetType": kind}),
    )["datasetArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// PutItems / PutUsers (`path` `/items`, `/users`) of `records` (ID, properties) to a dataset.
fn put_records(addr: &str, path: &str, dataset_arn: &str, records: &[(&str, &str)]) {
    let (list, id) = match path {
        "/items" => ("items", "itemId"),
        "/users" => ("users", "userId"),
        _ => ("actions", "actionId"),
    };
    let list_value: Vec<serde_json::Value> =
        records.iter().map(|(r, p)| serde_json::json!({ id: r, "properties": p })).collect();
    let body = serde_json::json!({ "datasetArn": dataset_arn, list: list_value }).to_string();
    let call =
        common::Call { method: "POST", path, headers: &[("content-type", "application/json")], body: body.as_bytes() };
    let r = common::signed_exchange("127.0.0.1", addr, call, &common::Key::root(), common::Signing::default()).unwrap();
    assert_eq!(r.status, 200, "{path}: {r:?}");
}

/// Every message of the stream: (subject, Nats-Msg-Id, payload).
fn consume_with_ids(nats_url: &str, stream: &str) -> Vec<(String, String, serde_json::Value)> {
    runtime().block_on(async {
        use futures_util::StreamExt;
        let js = jetstream::new(async_nats::connect(nats_url).await.unwrap());
        let mut s = js.get_stream(stream).await.unwrap();
        let total = s.info().await.unwrap().state.messages as usize;
        let consumer = s
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut out = Vec::new();
        while out.len() < total {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.unwrap().unwrap().unwrap();
            let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
            out.push((m.subject.to_string(), id.unwrap_or_default(), serde_json::from_slice(&m.payload).unwrap()));
        }
        out
    })
}

fn stream_messages(nats_url: &str, stream: &str) -> usize {
    runtime().block_on(async {
        let js = jetstream::new(async_nats::connect(nats_url).await.unwrap());
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages as usize),
            Err(_) => 0,
        }
    })
}

/// Items and users records flow to NATS: one message per write the sink read, on the group's subject plus the
/// dataset type, in position order; a re-put is a new message with the new version; a replay of the same
/// writes (the cursor moved back, as a crash between PubAck and cursor move leaves it) is dropped by
/// `Nats-Msg-Id` (dataset ARN, record ID, position); a restart keeps the positions.
#[test]
fn records_flow_once_per_write_on_their_dataset_subject() {
    let test = "records";
    let Some(nats_url) = nats_or_skip(test) else { return };
    for engine in engines(test) {
        let dir = tempfile::tempdir().unwrap();
        let name = unique(test);
        let setup = Setup::new(engine.clone(), dir.path(), &nats_url, &name);
        let server = setup.start();
        let addr = setup.listen.clone();
        let group_arn = "arn:aws:personalize:us-east-1:000000000000:dataset-group/default";
        let items = records_dataset(&addr, group_arn, "Items");
        let users = records_dataset(&addr, group_arn, "Users");
        put_records(&addr, "/items", &items, &[("i-1", r#"{"genres": "a"}"#), ("i-2", r#"{"genres": "b"}"#)]);
        assert!(wait_until(Duration::from_secs(60), || stream_messages(&nats_url, &setup.stream) >= 2));
        // A new version of i-1 after the first two were published: a new message.
        put_records(&addr, "/items", &items, &[("i-1", r#"{"genres": "c"}"#)]);
        put_records(&addr, "/users", &users, &[("u-1", r#"{"ageGroup": "x"}"#)]);
        assert!(wait_until(Duration::from_secs(60), || stream_messages(&nats_url, &setup.stream) >= 4));
        let check = |messages: &[(String, String, serde_json::Value)]| {
            let of = |arn: &str| -> Vec<&(String, String, serde_json::Value)> {
                messages.iter().filter(|(_, _, v)| v["datasetArn"] == arn).collect()
            };
            let item_msgs = of(&items);
            let got: Vec<(&str, &str)> = item_msgs
                .iter()
                .map(|(_, _, v)| (v["itemId"].as_str().unwrap(), v["properties"].as_str().unwrap()))
                .collect();
            assert_eq!(
                got,
                [("i-1", r#"{"genres": "a"}"#), ("i-2", r#"{"genres": "b"}"#), ("i-1", r#"{"genres": "c"}"#)]
            );
            let positions: Vec<i64> = item_msgs.iter().map(|(_, _, v)| v["position"].as_i64().unwrap()).collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "in position order: {positions:?}");
            for (subject, id, v) in &item_msgs {
                assert_eq!(subject, &format!("{}.000000000000.default.ITEMS", setup.prefix));
                assert_eq!(id, &format!("{items}/{}@{}", v["itemId"].as_str().unwrap(), v["position"]));
                assert_eq!((v["version"].as_i64(), v["datasetType"].as_str()), (Some(1), Some("ITEMS")));
                assert_eq!(v["datasetGroupArn"], group_arn);
            }
            let user_msgs = of(&users);
            assert_eq!(user_msgs.len(), 1);
            assert_eq!(user_msgs[0].0, format!("{}.000000000000.default.USERS", setup.prefix));
            assert_eq!(user_msgs[0].2["userId"], "u-1");
            assert_eq!(messages.len(), 4, "nothing else: {messages:?}");
        };
        check(&consume_with_ids(&nats_url, &setup.stream));
        let state = sinks(&addr);
        let items_state = state["sinks"][0]["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["datasetArn"] == items.as_str())
            .cloned()
            .expect("the items dataset is delivered");
        let last = items_state["position"].as_i64().unwrap();
        assert_eq!(items_state["lagEvents"], 0, "{state}");

        // The replay of every write after 0 (the cursors moved back in the stopped store): the stream drops it.
        server.stop();
        setup.rewind_cursors();
        let server = setup.start();
        let replayed = wait_until(Duration::from_secs(60), || {
            sinks(&addr)["sinks"][0]["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["datasetArn"] == items.as_str() && d["position"].as_i64() == Some(last))
        });
        assert!(replayed, "the rewound cursor came back to {last}: {}", sinks(&addr));
        check(&consume_with_ids(&nats_url, &setup.stream));
        // After the restart a re-put takes a position past every earlier one.
        put_records(&addr, "/items", &items, &[("i-2", r#"{"genres": "d"}"#)]);
        assert!(wait_until(Duration::from_secs(60), || stream_messages(&nats_url, &setup.stream) >= 5));
        let all = consume_with_ids(&nats_url, &setup.stream);
        let newest = &all.last().unwrap().2;
        assert_eq!(
            (newest["itemId"].as_str(), newest["properties"].as_str()),
            (Some("i-2"), Some(r#"{"genres": "d"}"#))
        );
        assert!(newest["position"].as_i64().unwrap() > last);
        server.stop();
        runtime().block_on(async {
            let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
            let _ = js.delete_stream(&setup.stream).await;
        });
    }
}

//! Reliability: SIGKILL at random moments loses nothing acknowledged, SIGTERM / Ctrl-C finish
//! what is in flight, overload is answered `ThrottlingException` within a stated memory bound,
//! retries are stored once. Each test checks what is on disk afterwards. See docs/reliability.md.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_personalizeevents::config::retry::RetryConfig;
use aws_sdk_personalizeevents::config::timeout::TimeoutConfig;
use aws_sdk_personalizeevents::config::{BehaviorVersion, Region};
use aws_sdk_personalizeevents::primitives::DateTime;
use aws_sdk_personalizeevents::types::Event;
use aws_sdk_personalizeevents::Client;
use common::*;

/// A small xorshift generator: reproducible kill moments from a printed seed, no extra crate.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("INTERLOG_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("crash test seed: {seed} (INTERLOG_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sdk_client(endpoint: &str) -> Client {
    let config = aws_sdk_personalizeevents::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "test"))
        // The test retries itself, so it knows exactly which attempt got the 200.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// The crash test: concurrent signed clients, SIGKILL at random moments, restart on the same
/// data dir, then: every acknowledged eventId stored exactly once, nothing stored twice, and
/// SQLite's integrity check passes. `INTERLOG_CRASH_KILLS` / `INTERLOG_CRASH_SECONDS` make it
/// a soak (`scripts/soak`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let kills = env_u64("INTERLOG_CRASH_KILLS", 40);
    let budget = Duration::from_secs(env_u64("INTERLOG_CRASH_SECONDS", 60));
    let workers = env_u64("INTERLOG_CRASH_WORKERS", 8);
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");

    let first = start_on(&data, "127.0.0.1:0", &[], &[], Some(&log));
    let listen = first.addr();
    let endpoint = first.endpoint.clone();
    let tracking_id = first.tracking_id.clone();
    let server = Arc::new(Mutex::new(Some(first)));

    let acked: Arc<Mutex<HashSet<String>>> = Default::default();
    let abandoned: Arc<Mutex<HashSet<String>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let client = sdk_client(&endpoint);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, tracking_id, acked, abandoned, stop, attempts) =
            (client.clone(), tracking_id.clone(), acked.clone(), abandoned.clone(), stop.clone(), attempts.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let size = 1 + (n * 7 + w) % 10;
                let ids: Vec<String> = (0..size).map(|k| format!("w{w}-{n}-{k}")).collect();
                let events: Vec<Event> = ids
                    .iter()
                    .map(|id| {
                        Event::builder()
                            .event_id(id)
                            .event_type("click")
                            .item_id("item-1")
                            .sent_at(DateTime::from_secs(1_700_000_000))
                            .build()
                            .unwrap()
                    })
                    .collect();
                // Retry the same request until it is acknowledged: retries that cross a crash
                // (committed, never answered) are exactly what must not be stored twice.
                let mut done = false;
                for _ in 0..200 {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let sent = client
                        .put_events()
                        .tracking_id(&tracking_id)
                        .session_id("s1")
                        .set_event_list(Some(events.clone()))
                        .send()
                        .await;
                    if sent.is_ok() {
                        acked.lock().unwrap().extend(ids.iter().cloned());
                        done = true;
                        break;
                    }
                    if stop.load(Ordering::Relaxed) {
                        // Past the end: leave it unacknowledged (may or may not be stored).
                        break;
                    }
                    // The client's back-off while the server restarts.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !done {
                    abandoned.lock().unwrap().extend(ids);
                }
            }
        }));
    }

    let started = Instant::now();
    let mut survived = 0;
    while survived < kills && started.elapsed() < budget {
        // Let the clients get something acknowledged by this incarnation, then kill at a
        // random moment: inside a commit, between commits, while answering.
        let before = acked.lock().unwrap().len();
        let since = Instant::now();
        while acked.lock().unwrap().len() <= before {
            assert!(since.elapsed() < Duration::from_secs(20), "no request was acknowledged within 20 s of a restart");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delay = Duration::from_millis(rng.below(400));
        tokio::time::sleep(delay).await;
        let victim = server.lock().unwrap().take().unwrap();
        tokio::task::spawn_blocking(move || victim.kill9()).await.unwrap();
        survived += 1;
        let (data, listen, log) = (data.clone(), listen.clone(), log.clone());
        let restarted =
            tokio::task::spawn_blocking(move || start_on(&data, &listen, &[], &[], Some(&log))).await.unwrap();
        *server.lock().unwrap() = Some(restarted);
    }
    // Let every worker finish its current request against the last server, then stop it cleanly.
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("workers finish").unwrap();
    }
    let last = server.lock().unwrap().take().unwrap();
    tokio::task::spawn_blocking(move || last.stop()).await.unwrap();

    let acked = acked.lock().unwrap().clone();
    let abandoned = abandoned.lock().unwrap().clone();
    let (stored, stats) = stored_ids(&data);
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains_key(*id)).collect();
    let unacked_stored = stored.keys().filter(|id| !acked.contains(*id)).count();
    eprintln!(
        "crash test: {survived} SIGKILLs survived in {:.1} s; {} requests sent; {} events acknowledged; \
         {} stored ({unacked_stored} of them never acknowledged); {} abandoned; lost: {}; stored twice: {}",
        started.elapsed().as_secs_f64(),
        attempts.load(Ordering::Relaxed),
        acked.len(),
        stored.len(),
        abandoned.len(),
        lost.len(),
        stats.duplicates
    );
    assert!(survived >= kills.min(20), "only {survived} kills fit in the time budget");
    assert!(lost.is_empty(), "acknowledged events lost: {:?}", &lost[..lost.len().min(10)]);
    assert_eq!(stats.duplicates, 0, "events stored twice");
    // The export, as users read it, has each acknowledged event exactly once.
    let exported = export_jsonl(&data);
    let mut seen: HashMap<String, u32> = HashMap::new();
    for row in &exported {
        *seen.entry(row["eventId"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(acked.iter().all(|id| seen.get(id) == Some(&1)), "an acknowledged event is not exported exactly once");
    assert_eq!(integrity_check(&data), "ok");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

fn no_auth(data: &Path, env: &[(&str, &str)]) -> Server {
    start_on(data, "127.0.0.1:0", &["--no-auth"], env, None)
}

/// Starts a PutEvents with `Expect: 100-continue` and returns once the server has begun reading
/// its body (it sent `100 Continue`): from then on the request is in flight, deterministically.
fn begin_in_flight(addr: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed before 100 Continue");
        got.push(byte[0]);
    }
    assert!(got.starts_with(b"HTTP/1.1 100"), "expected 100 Continue, got {}", String::from_utf8_lossy(&got));
    stream.write_all(&body[..body.len() / 2]).unwrap();
    stream
}

fn refuses_connections(addr: &str) -> bool {
    TcpStream::connect(addr).is_err()
}

fn graceful_stop_finishes_in_flight(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = no_auth(dir.path(), &[("INTERLOG_SHUTDOWN_GRACE_SECS", "15")]);
    let addr = server.addr();
    let ids: Vec<String> = (0..5).map(|i| format!("inflight-{i}")).collect();
    let body = put_events_body(&server.tracking_id, &ids);
    // An idle keep-alive connection: shutdown must close it, not wait for it.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(format!("GET /_interlog/health HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).unwrap();
    assert_eq!(read_reply(&mut idle).unwrap().status, 200);
    let mut in_flight = begin_in_flight(&addr, body.as_bytes());

    let signalled = Instant::now();
    server.signal(signal);
    assert!(wait_until(Duration::from_secs(10), || refuses_connections(&addr)), "still accepting after {signal}");
    assert!(closed_within(&mut idle, Duration::from_secs(5)), "idle connection kept open during shutdown");
    // The request that was in flight is finished, committed and answered.
    in_flight.write_all(&body.as_bytes()[body.len() / 2..]).unwrap();
    let reply = read_reply(&mut in_flight).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits within the grace period");
    assert!(status.success(), "exit status {status}");
    eprintln!("{signal}: exited 0 in {:?}", signalled.elapsed());
    let (stored, _) = stored_ids(dir.path());
    assert!(ids.iter().all(|id| stored.get(id) == Some(&1)), "the in-flight request's events are stored once");
    assert_eq!(integrity_check(dir.path()), "ok");
}

#[test]
fn sigterm_finishes_requests_in_flight_and_exits_zero() {
    graceful_stop_finishes_in_flight("TERM");
}

#[test]
fn ctrl_c_finishes_requests_in_flight_and_exits_zero() {
    graceful_stop_finishes_in_flight("INT");
}

/// A client that stalls mid-request cannot hold the shutdown: the server exits 0 after the grace
/// period, and the stalled request stored nothing (it was never acknowledged).
#[test]
fn a_stalled_request_cannot_hold_shutdown_past_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    // Timeouts far above the grace, so the grace is what ends it.
    let mut server = no_auth(
        dir.path(),
        &[
            ("INTERLOG_SHUTDOWN_GRACE_SECS", "1"),
            ("INTERLOG_IDLE_TIMEOUT_SECS", "120"),
            ("INTERLOG_REQUEST_TIMEOUT_SECS", "120"),
        ],
    );
    let ids = vec!["stalled-1".to_owned()];
    let mut stalled = begin_in_flight(&server.addr(), put_events_body(&server.tracking_id, &ids).as_bytes());
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits despite the stalled client");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "exited after {took:?}");
    assert!(closed_within(&mut stalled, Duration::from_secs(5)));
    let (stored, _) = stored_ids(dir.path());
    assert!(stored.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Back-pressure and memory
// ---------------------------------------------------------------------------------------------

/// The store's bounded queue: when the writer cannot keep up, requests are answered
/// `ThrottlingException` (400) and store nothing; everything answered 200 is stored once.
/// In-process, to shrink the queue to one request (there is no flag for it yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_queue_answers_throttling_and_stores_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = interlog_server::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.auth.enabled = false;
    config.store.queue_requests = 1;
    let app = interlog_server::Application::build(config).await.unwrap();
    let addr = app.addr.to_string();
    let tracking_id = app.bootstrap.as_ref().expect("default resources").tracker.spec.tracking_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    let throttled: Arc<Mutex<Vec<String>>> = Default::default();
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let (addr, tracking_id, throttled, acked) =
                (addr.clone(), tracking_id.clone(), throttled.clone(), acked.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if Instant::now() > deadline || (throttled.lock().unwrap().len() >= 50 && n >= 20) {
                        break;
                    }
                    let ids: Vec<String> = (0..10).map(|k| format!("t{t}-{n}-{k}")).collect();
                    let reply =
                        post_events(&addr, put_events_body(&tracking_id, &ids).as_bytes(), Duration::from_secs(10))
                            .expect("an answer");
                    match (reply.status, reply.error_type.as_str()) {
                        (200, _) => acked.lock().unwrap().extend(ids),
                        (400, "ThrottlingException") => throttled.lock().unwrap().extend(ids),
                        other => panic!("unexpected answer {other:?}: {}", reply.body),
                    }
                }
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| t.join().unwrap())).await.unwrap();
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();

    let (throttled, acked) = (throttled.lock().unwrap().clone(), acked.lock().unwrap().clone());
    eprintln!("queue of 1: {} events acknowledged, {} throttled", acked.len(), throttled.len());
    assert!(!throttled.is_empty(), "64 concurrent clients never filled a queue of one request");
    let (stored, stats) = stored_ids(dir.path());
    assert!(acked.iter().all(|id| stored.get(id) == Some(&1)));
    assert!(throttled.iter().all(|id| !stored.contains_key(id)), "a throttled request stored events");
    assert_eq!(stats.duplicates, 0);
}

/// Memory stays bounded however many large bodies arrive at once: past the in-flight body
/// budget, requests are answered `ThrottlingException` before their body is read. 300 clients
/// each start a 1 MiB upload and stall; with an 8 MiB budget the server's peak RSS may grow by
/// at most 48 MiB, where buffering them all would take 300 MiB.
#[test]
fn body_budget_bounds_memory_under_a_flood_of_large_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        no_auth(dir.path(), &[("INTERLOG_MAX_INFLIGHT_BYTES", "8388608"), ("INTERLOG_IDLE_TIMEOUT_SECS", "30")]);
    let addr = server.addr();
    // Warm the allocator and the store with an ordinary request before the baseline.
    assert_eq!(
        post_events(&addr, put_events_body(&server.tracking_id, &["warm".into()]).as_bytes(), Duration::from_secs(10))
            .unwrap()
            .status,
        200
    );
    let baseline = server.memory_kib("VmRSS");
    let length = 1024 * 1024;
    let mut admitted = Vec::new();
    let mut throttled = 0;
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        // 100 Continue = admitted (the server is reading the body); a final answer = refused.
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).unwrap();
        if first.starts_with(b"HTTP/1.1 100") {
            // Send all but the last byte, then stall: the body sits in the server's memory.
            let mut rest = vec![0u8; 13];
            let _ = stream.read(&mut rest);
            stream.write_all(&vec![b' '; length - 1]).unwrap();
            admitted.push(stream);
        } else {
            let mut rest = String::new();
            let _ = stream.read_to_string(&mut rest);
            assert!(first.starts_with(b"HTTP/1.1 400"), "{}{rest}", String::from_utf8_lossy(&first));
            assert!(rest.to_ascii_lowercase().contains("x-amzn-errortype: throttlingexception"), "{rest}");
            throttled += 1;
        }
    }
    // Wait until the admitted bodies are in the server (its RSS stops growing), then measure.
    let mut last = 0;
    wait_until(Duration::from_secs(5), || {
        let now = server.memory_kib("VmRSS");
        let settled = now == last;
        last = now;
        std::thread::sleep(Duration::from_millis(100));
        settled
    });
    let peak = server.memory_kib("VmHWM");
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "300 stalled 1 MiB uploads: {} admitted, {throttled} throttled; RSS {} MiB -> peak {} MiB (+{grown_mib} MiB)",
        admitted.len(),
        baseline / 1024,
        peak / 1024
    );
    assert!(admitted.len() <= 8, "{} bodies admitted past an 8 MiB budget", admitted.len());
    assert!(throttled >= 290);
    assert!(grown_mib < 48, "peak RSS grew by {grown_mib} MiB");
    // The server still answers others, and the budget frees as soon as the uploads go away.
    drop(admitted);
    assert!(wait_until(Duration::from_secs(10), || {
        post_events(&addr, put_events_body(&server.tracking_id, &["after".into()]).as_bytes(), Duration::from_secs(5))
            .map(|r| r.status == 200)
            .unwrap_or(false)
    }));
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// The client gives up waiting (the server committed but the answer was never read) and sends
/// the same request again, also after a restart: each event is stored and exported once.
#[test]
fn a_retry_after_the_client_gave_up_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = no_auth(dir.path(), &[]);
    let addr = server.addr();
    let ids: Vec<String> = (0..10).map(|i| format!("retry-{i}")).collect();
    let body = put_events_body(&server.tracking_id, &ids);
    let request = format!(
        "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut gave_up = TcpStream::connect(&addr).unwrap();
    gave_up.write_all(request.as_bytes()).unwrap();
    // The answer is never read: wait until the events are committed, then hang up.
    assert!(wait_until(Duration::from_secs(10), || stored_ids(dir.path()).0.len() == ids.len()));
    drop(gave_up);
    for _ in 0..2 {
        assert_eq!(raw_exchange(&addr, request.as_bytes(), Duration::from_secs(10)).unwrap().status, 200);
    }
    server.stop();
    let server = no_auth(dir.path(), &[]);
    assert_eq!(raw_exchange(&server.addr(), request.as_bytes(), Duration::from_secs(10)).unwrap().status, 200);
    server.stop();
    let (stored, stats) = stored_ids(dir.path());
    assert_eq!(stored.len(), ids.len());
    assert!(stored.values().all(|n| *n == 1));
    assert_eq!(stats.duplicates, 0, "the retry window should have dropped the retries at the door");
    let exported: Vec<String> =
        export_jsonl(dir.path()).iter().map(|r| r["eventId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(exported, ids);
}

/// When a retry arrives after the bounded window forgot the first copy, the copy is stored but
/// the export still has one: the dedup is exact at export (in-process, to shrink the window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_past_the_window_is_stored_but_exported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = interlog_server::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.auth.enabled = false;
    config.store.window_events = 2;
    let app = interlog_server::Application::build(config).await.unwrap();
    let addr = app.addr.to_string();
    let tracking_id = app.bootstrap.as_ref().expect("default resources").tracker.spec.tracking_id.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));
    let data = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let send = |ids: &[&str]| {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let reply =
                post_events(&addr, put_events_body(&tracking_id, &ids).as_bytes(), Duration::from_secs(10)).unwrap();
            assert_eq!(reply.status, 200, "{reply:?}");
        };
        send(&["old"]);
        send(&["a", "b", "c", "d"]);
        send(&["old"]);
        let (stored, stats) = stored_ids(&data);
        assert_eq!(stored.get("old"), Some(&1));
        assert_eq!(stats.duplicates, 1, "the window of 2 had forgotten 'old', so its retry was stored");
        let exported: Vec<String> =
            export_jsonl(&data).iter().map(|r| r["eventId"].as_str().unwrap().to_owned()).collect();
        assert_eq!(exported, ["old", "a", "b", "c", "d"]);
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
}

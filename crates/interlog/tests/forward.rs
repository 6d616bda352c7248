//! The forwarding sink (`--forward-to`, docs/streams.md) against a second `interlog serve`
//! acting as the upstream (never a real AWS endpoint), behind a small HTTP proxy of the test's
//! own that timestamps every call, answers `ThrottlingException` to every fifth one itself and
//! relays the rest (while the upstream is down: 503, or a closed connection). Under signed load, with the upstream stopped for 30 s and started again:
//! every event arrives upstream exactly once by eventId, no 1-s window holds more calls than
//! the configured rate, and an event the upstream refuses for good (it runs with
//! `--strict-properties`, the forwarder does not) lands in the dead-letter table with its
//! reason, is listed by `interlog dead-letters list` and delivered by `replay` once the
//! upstream accepts it.
//!
//! The upstream always keeps its events in SQLite (its store is not under test); the
//! forwarder runs on SQLite and, with `INTERLOG_TEST_DATABASE_URL`, on PostgreSQL too.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start_on, wait_until, Key, Server, ROOT_KEY, ROOT_SECRET};

const TRACKING_ID: &str = "forward-test-tracker";
/// The forwarder's limit in the test: low enough that the load is held back by it.
const RATE: usize = 40;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{test}_{}_{nanos}", std::process::id())
}

/// Where the forwarder keeps its store.
#[derive(Clone, Debug)]
enum Engine {
    Sqlite,
    Postgres(String),
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

fn drop_schema(engine: &Engine) {
    if let Engine::Postgres(url) = engine {
        let (base, schema) = url.split_once("options=-csearch_path%3D").unwrap();
        let _ = Command::new("psql")
            .args([
                "-q",
                "-X",
                base.trim_end_matches(['?', '&']),
                "-c",
                &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ])
            .stderr(Stdio::null())
            .status();
    }
}

/// One call the proxy saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    /// The request's path: `/events`, `/items`, `/users`, `/actions`, `/action-interactions`.
    path: String,
    /// The eventIds of the call's body (PutEvents, PutActionInteractions), or the record IDs (PutItems,
    /// PutUsers, PutActions).
    event_ids: Vec<String>,
    /// The `datasetArn` of a records call.
    dataset_arn: Option<String>,
    /// The status answered to the forwarder (503: the upstream was unreachable); `None`: the
    /// upstream was unreachable and the connection was closed (a network error).
    status: Option<u16>,
}

/// An HTTP/1.1 proxy in front of the upstream: every fifth call is answered `400
/// ThrottlingException` by the proxy itself, the others are relayed on a new upstream
/// connection each.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (s, st) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, upstream, calls) = (s.clone(), upstream.clone(), calls.clone());
                std::thread::spawn(move || serve_connection(conn, &upstream, &s, &calls));
            }
        });
        Proxy { port, seen, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one HTTP/1.1 message (head and a Content-Length body) whole; `None` at a clean end.
fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < head_end + len {
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    buf.truncate(head_end + len);
    Some(buf)
}

fn serve_connection(mut client: TcpStream, upstream: &str, seen: &Mutex<Vec<Seen>>, calls: &AtomicUsize) {
    let _ = client.set_nodelay(true);
    while let Some(request) = read_message(&mut client) {
        let at = Instant::now();
        let body_at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let body: serde_json::Value = serde_json::from_slice(&request[body_at..]).unwrap_or_default();
        let path = String::from_utf8_lossy(&request).split(' ').nth(1).unwrap_or_default().to_owned();
        let (list, id) = match path.as_str() {
            "/items" => ("items", "itemId"),
            "/users" => ("users", "userId"),
            "/actions" => ("actions", "actionId"),
            "/action-interactions" => ("actionInteractions", "eventId"),
            _ => ("eventList", "eventId"),
        };
        let event_ids: Vec<String> = body[list]
            .as_array()
            .map(|l| l.iter().filter_map(|e| e[id].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let dataset_arn = body["datasetArn"].as_str().map(str::to_owned);
        let n = calls.fetch_add(1, Ordering::Relaxed);
        let answer = if n % 5 == 4 {
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            Some(
                format!(
                    "HTTP/1.1 400 Bad Request\r\nx-amzn-ErrorType: ThrottlingException\r\ncontent-type: \
                     application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        } else {
            let relayed = TcpStream::connect(upstream).ok().and_then(|mut up| {
                up.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
                up.write_all(&request).ok()?;
                read_message(&mut up)
            });
            // The upstream is down: mostly a 503, as a load balancer in front of it answers;
            // every fourth time the connection is closed instead (a network error). Not always
            // closed: new connections for every retry would make this proxy's own scheduling
            // bunch its timestamps on a busy machine.
            relayed.or_else(|| {
                (!n.is_multiple_of(4))
                    .then(|| b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
            })
        };
        let status = answer.as_ref().and_then(|a| String::from_utf8_lossy(&a[9..12]).parse().ok());
        seen.lock().unwrap().push(Seen { at, path, event_ids, dataset_arn, status });
        match answer {
            Some(a) if client.write_all(&a).is_ok() => {}
            // The upstream is down: close, as a refused connection would look to the caller.
            _ => return,
        }
    }
}

/// The most calls in any window of one second starting at a call.
fn busiest_second(seen: &[Seen]) -> usize {
    let mut at: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    at.sort();
    let mut best = 0;
    let mut j = 0;
    for i in 0..at.len() {
        while j < at.len() && at[j] < at[i] + Duration::from_secs(1) {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// `GET /_interlog/sinks` of the forwarder, signed as root.
fn sinks(addr: &str) -> serde_json::Value {
    let call = common::Call { method: "GET", path: "/_interlog/sinks", headers: &[], body: b"" };
    let reply = common::signed_exchange("127.0.0.1", addr, call, &Key::root(), common::Signing::default()).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

fn forward_state(addr: &str) -> serde_json::Value {
    let all = sinks(addr);
    all["sinks"].as_array().unwrap().iter().find(|s| s["name"] == "forward").expect("the forward sink").clone()
}

/// Every event stored upstream (eventId → 1, as the export reads them), and how many later
/// copies of stored eventIds the log holds besides.
fn upstream_copies(data_dir: &Path) -> (HashMap<String, u32>, u64) {
    let (ids, stats) = common::stored_ids(data_dir);
    (ids, stats.duplicates)
}

fn put(addr: &str, body: &str) -> u16 {
    common::put_events_signed("127.0.0.1", addr, body.as_bytes(), &Key::root()).map(|r| r.status).unwrap_or(0)
}

fn dead_letters_cli(endpoint: &str, action: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .arg("dead-letters")
        .args(action)
        .args(["--endpoint-url", endpoint])
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn every_event_arrives_upstream_once_under_the_rate_through_an_outage_and_throttling() {
    for engine in engines("forward_outage") {
        run_outage(&engine);
        drop_schema(&engine);
    }
}

fn run_outage(engine: &Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let upstream_dir = tmp.path().join("upstream");
    let upstream_listen = format!("127.0.0.1:{}", free_port());
    let upstream_args = ["--default-tracking-id", TRACKING_ID, "--strict-properties"];
    let start_upstream = |strict: bool| {
        let args: &[&str] = if strict { &upstream_args } else { &upstream_args[..2] };
        start_on(&upstream_dir, &upstream_listen, args, &[], Some(&tmp.path().join("upstream.log")))
    };
    let upstream = start_upstream(true);
    let proxy = Proxy::start(upstream_listen.clone());

    let local_listen = format!("127.0.0.1:{}", free_port());
    let rate = RATE.to_string();
    let proxy_url = proxy.url();
    let mut args = vec!["--default-tracking-id", TRACKING_ID, "--forward-to", &proxy_url, "--forward-rate", &rate];
    if let Engine::Postgres(url) = engine {
        args.extend(["--database-url", url.as_str()]);
    }
    // The forwarder signs with the standard chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    let env = [
        ("AWS_ACCESS_KEY_ID", ROOT_KEY),
        ("AWS_SECRET_ACCESS_KEY", ROOT_SECRET),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("INTERLOG_LOG", "info"),
    ];
    let local = start_on(&tmp.path().join("local"), &local_listen, &args, &env, Some(&tmp.path().join("local.log")));
    let destination = forward_state(&local_listen)["destination"].as_str().unwrap().to_owned();
    assert!(destination.contains(&proxy_url) && destination.contains(ROOT_KEY), "{destination}");
    assert!(!destination.contains(ROOT_SECRET));

    // Signed load: 10 events per call, one session, so one call upstream per call here.
    let total = 1200;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (acked, addr) = (acked.clone(), local_listen.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while n < total {
                let ids: Vec<String> = (n..n + 10).map(|i| format!("fw-{i}")).collect();
                if put(&addr, &common::put_events_body(TRACKING_ID, &ids)) == 200 {
                    acked.lock().unwrap().extend(ids);
                    n += 10;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // One event the strict upstream refuses for good, in a call of its own between good ones.
    let bad = serde_json::json!({"trackingId": TRACKING_ID, "sessionId": "s1", "eventList": [
        {"eventId": "fw-bad-0", "eventType": "click", "itemId": "i", "sentAt": 1_700_000_000},
        {"eventId": "fw-bad", "eventType": "click", "itemId": "i", "sentAt": 1_700_000_000,
         "properties": "{\"undeclaredColour\": \"red\"}"},
        {"eventId": "fw-bad-2", "eventType": "click", "itemId": "i", "sentAt": 1_700_000_000}]});
    assert_eq!(put(&local_listen, &bad.to_string()), 200, "the forwarder keeps and flags undeclared keys");

    // Part of the load is through; stop the upstream for 30 s.
    assert!(wait_until(Duration::from_secs(60), || proxy.seen().iter().filter(|s| s.status == Some(200)).count() >= 20));
    upstream.stop();
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let state = forward_state(&local_listen);
    let dataset = &state["datasets"][0];
    assert!(dataset["lagEvents"].as_u64().unwrap() > 0, "events wait while the upstream is down: {state}");
    let upstream = start_upstream(true);
    eprintln!("upstream down for {:?}", down_at.elapsed());
    load.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), total);

    // Everything arrives, the bad event as a dead letter.
    let caught_up = wait_until(Duration::from_secs(180), || {
        let s = forward_state(&local_listen);
        s["datasets"][0]["lagEvents"] == 0 && s["deadLetterCount"] == 1
    });
    let state = forward_state(&local_listen);
    assert!(caught_up, "the forwarder did not catch up: {state}");
    let dataset = &state["datasets"][0];
    assert_eq!(dataset["delivered"].as_u64(), Some(total as u64 + 2), "{state}");
    assert_eq!(dataset["deadLettered"], 1);
    assert!(dataset["retried"].as_u64().unwrap() > 0, "the throttled calls were retried: {state}");
    let letter = &state["deadLetters"][0];
    assert_eq!(letter["eventId"], "fw-bad");
    assert!(letter["reason"].as_str().unwrap().contains("InvalidInputException"), "{letter}");
    assert!(letter["position"].as_i64().unwrap() > 0);

    let (copies, repeats) = upstream_copies(&upstream_dir);
    for id in acked.iter().map(String::as_str).chain(["fw-bad-0", "fw-bad-2"]) {
        assert!(copies.contains_key(id), "{id} did not arrive upstream");
    }
    assert!(!copies.contains_key("fw-bad"));
    assert_eq!(copies.len(), total + 2, "nothing else arrived");
    assert_eq!(repeats, 0, "an event arrived upstream twice");
    // And each was answered 200 to exactly one call.
    let mut answered: HashMap<&str, usize> = HashMap::new();
    let seen = proxy.seen();
    for s in seen.iter().filter(|s| s.status == Some(200)) {
        for id in &s.event_ids {
            *answered.entry(id.as_str()).or_default() += 1;
        }
    }
    assert!(answered.values().all(|n| *n == 1), "an event was delivered twice");
    assert_eq!(answered.len(), total + 2);

    let throttled = seen.iter().filter(|s| s.status == Some(400)).count();
    let unreachable = seen.iter().filter(|s| s.status.is_none() || s.status == Some(503)).count();
    assert!(throttled * 6 >= seen.len() && throttled > 0, "a fifth of the calls were throttled");
    assert!(unreachable > 0, "the forwarder tried while the upstream was down");
    assert!(seen.iter().any(|s| s.status.is_none()), "and met network errors");
    let busiest = busiest_second(&seen);
    eprintln!("{} calls, {throttled} throttled, {unreachable} unreachable, busiest second {busiest}", seen.len());
    assert!(busiest <= RATE, "{busiest} calls in one second, over the limit of {RATE}");
    // Every call held at most 10 events of one session.
    assert!(seen.iter().all(|s| s.event_ids.len() <= 10));

    // The dead letter, through the command; replaying it while the upstream still refuses
    // keeps it (attempts 2), and once the upstream accepts it, delivers it.
    let endpoint = format!("http://{local_listen}");
    let listed = dead_letters_cli(&endpoint, &["list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["deadLetters"][0]["eventId"], "fw-bad");
    let again = dead_letters_cli(&endpoint, &["replay"]);
    assert!(!again.status.success(), "a dead letter refused again is reported");
    let state = forward_state(&local_listen);
    assert_eq!(state["deadLetters"][0]["attempts"], 2, "{state}");
    upstream.stop();
    let _upstream = start_upstream(false);
    let replayed = dead_letters_cli(&endpoint, &["replay"]);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stdout));
    assert_eq!(forward_state(&local_listen)["deadLetterCount"], 0);
    let (copies, repeats) = upstream_copies(&upstream_dir);
    assert!(copies.contains_key("fw-bad"), "the replayed event arrived");
    assert_eq!(repeats, 0);
    drop(local);
}

#[test]
fn a_tracking_id_without_an_upstream_tracker_is_dead_lettered_with_its_reason() {
    // The map sends the local tracker's events to a remote tracking ID the upstream lacks.
    let tmp = tempfile::tempdir().unwrap();
    let upstream_listen = format!("127.0.0.1:{}", free_port());
    let _upstream =
        start_on(&tmp.path().join("upstream"), &upstream_listen, &["--default-tracking-id", "other"], &[], None);
    let local_listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{upstream_listen}");
    let map = format!("{TRACKING_ID}=missing-upstream");
    let args = ["--default-tracking-id", TRACKING_ID, "--forward-to", &url, "--forward-tracking-id", &map];
    let env = [
        ("INTERLOG_FORWARD_ACCESS_KEY_ID", ROOT_KEY),
        ("INTERLOG_FORWARD_SECRET_ACCESS_KEY", ROOT_SECRET),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];
    let local: Server = start_on(&tmp.path().join("local"), &local_listen, &args, &env, None);
    let ids: Vec<String> = (0..3).map(|i| format!("nt-{i}")).collect();
    assert_eq!(put(&local_listen, &common::put_events_body(TRACKING_ID, &ids)), 200);
    assert!(wait_until(Duration::from_secs(30), || forward_state(&local_listen)["deadLetterCount"] == 3));
    let state = forward_state(&local_listen);
    let letters = state["deadLetters"].as_array().unwrap();
    assert_eq!(letters.iter().map(|l| l["eventId"].as_str().unwrap()).collect::<Vec<_>>(), ["nt-0", "nt-1", "nt-2"]);
    for l in letters {
        // interlog answers an unknown tracking ID as AWS does: InvalidInputException.
        let reason = l["reason"].as_str().unwrap();
        assert!(reason.starts_with("InvalidInputException") && reason.contains("missing-upstream"), "{l}");
    }
    assert_eq!(state["datasets"][0]["lagEvents"], 0, "the cursor moved past them: {state}");
    assert_eq!(state["datasets"][0]["delivered"], 0);
    drop(local);
}

/// A keyed dataset (Items, Users) with a one-field schema in `group` (created when `create_group`); its ARN.
fn records_dataset(addr: &str, group: &str, create_group: bool, kind: &str) -> String {
    use serde_json::json;
    let call = |op: &str, body: serde_json::Value| -> serde_json::Value {
        let r = common::control("127.0.0.1", addr, op, &body, &Key::root());
        assert_eq!(r.status, 200, "{op}: {r:?}");
        serde_json::from_str(&r.body).unwrap()
    };
    let group_arn = if create_group {
        call("CreateDatasetGroup", json!({"name": group}))["datasetGroupArn"].as_str().unwrap().to_owned()
    } else {
        format!("arn:aws:personalize:us-east-1:000000000000:dataset-group/{group}")
    };
    let (id, field) = if kind == "Items" { ("ITEM_ID", "GENRES") } else { ("USER_ID", "AGE_GROUP") };
    let schema = json!({"type": "record", "name": kind, "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": id, "type": "string"}, {"name": field, "type": ["null", "string"], "categorical": true}],
        "version": "1.0"});
    let schema_arn = call("CreateSchema", json!({"name": format!("{group}-{kind}"), "schema": schema.to_string()}))
        ["schemaArn"]
        .clone();
    call(
        "CreateDataset",
        json!({"name": format!("{group}-{kind}"), "schemaArn": schema_arn, "datasetGroupArn": group_arn,
               "datasetType": kind}),
    )["datasetArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// PutItems or PutUsers of (ID, properties) to a dataset; the status.
fn put_records(addr: &str, path: &str, dataset_arn: &str, records: &[(String, String)]) -> u16 {
    let (list, id) = if path == "/items" { ("items", "itemId") } else { ("users", "userId") };
    let list_value: Vec<serde_json::Value> =
        records.iter().map(|(r, p)| serde_json::json!({ id: r, "properties": p })).collect();
    let body = serde_json::json!({ "datasetArn": dataset_arn, list: list_value }).to_string();
    let call =
        common::Call { method: "POST", path, headers: &[("content-type", "application/json")], body: body.as_bytes() };
    common::signed_exchange("127.0.0.1", addr, call, &Key::root(), common::Signing::default())
        .map(|r| r.status)
        .unwrap_or(0)
}

/// The records a store holds in a dataset (ID → properties), read from the SQLite file beside the running server.
fn stored_records(data_dir: &Path, dataset_arn: &str) -> HashMap<String, Option<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(data_dir.join("interlog.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.record_id, r.properties FROM records r JOIN resources d ON d.id = r.dataset_id WHERE d.arn = ?1",
        )
        .unwrap();
    let rows = stmt.query_map([dataset_arn], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// Items and users records go upstream as PutItems / PutUsers calls of at most 10, the items into the remote
/// dataset `--forward-dataset-arn` maps them to and the users under their own ARN, each record's latest version,
/// through the throttling proxy and under `--forward-records-rate`; a record the strict upstream refuses is a
/// dead letter naming its ID.
#[test]
fn records_are_forwarded_as_put_items_and_put_users_into_the_mapped_datasets() {
    for engine in engines("forward_records") {
        run_records(&engine);
        drop_schema(&engine);
    }
}

fn run_records(engine: &Engine) {
    const RECORDS_RATE: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    let upstream_dir = tmp.path().join("upstream");
    let upstream_listen = format!("127.0.0.1:{}", free_port());
    let _upstream =
        start_on(&upstream_dir, &upstream_listen, &["--default-tracking-id", "up", "--strict-properties"], &[], None);
    let remote_items = records_dataset(&upstream_listen, "remote-group", true, "Items");
    let remote_users = records_dataset(&upstream_listen, "default", false, "Users");
    let proxy = Proxy::start(upstream_listen.clone());

    let local_listen = format!("127.0.0.1:{}", free_port());
    let proxy_url = proxy.url();
    let local_items = "arn:aws:personalize:us-east-1:000000000000:dataset/default/ITEMS";
    let map = format!("{local_items}={remote_items}");
    let rate = RECORDS_RATE.to_string();
    let mut args = vec![
        "--default-tracking-id",
        TRACKING_ID,
        "--forward-to",
        &proxy_url,
        "--forward-dataset-arn",
        &map,
        "--forward-records-rate",
        &rate,
    ];
    if let Engine::Postgres(url) = engine {
        args.extend(["--database-url", url.as_str()]);
    }
    let env = [
        ("INTERLOG_FORWARD_ACCESS_KEY_ID", ROOT_KEY),
        ("INTERLOG_FORWARD_SECRET_ACCESS_KEY", ROOT_SECRET),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("INTERLOG_LOG", "info"),
    ];
    let local = start_on(&tmp.path().join("local"), &local_listen, &args, &env, Some(&tmp.path().join("local.log")));
    assert_eq!(records_dataset(&local_listen, "default", false, "Items"), local_items);
    let local_users = records_dataset(&local_listen, "default", false, "Users");
    assert_eq!(local_users, remote_users, "unmapped: forwarded under its own ARN");

    // 25 items in calls of 5, then 5 of them again with new properties, and one the strict upstream refuses.
    let item = |i: usize, v: &str| (format!("i-{i}"), format!(r#"{{"genres": "{v}{i}"}}"#));
    for chunk in (0..25).collect::<Vec<_>>().chunks(5) {
        let batch: Vec<(String, String)> = chunk.iter().map(|i| item(*i, "a")).collect();
        assert_eq!(put_records(&local_listen, "/items", local_items, &batch), 200);
    }
    let again: Vec<(String, String)> = (0..5).map(|i| item(i, "b")).collect();
    assert_eq!(put_records(&local_listen, "/items", local_items, &again), 200);
    let bad = vec![("i-bad".to_owned(), r#"{"undeclaredColour": "red"}"#.to_owned())];
    assert_eq!(put_records(&local_listen, "/items", local_items, &bad), 200, "the forwarder keeps and flags it");
    let users: Vec<(String, String)> =
        (0..3).map(|i| (format!("u-{i}"), format!(r#"{{"ageGroup": "g{i}"}}"#))).collect();
    assert_eq!(put_records(&local_listen, "/users", &local_users, &users), 200);

    let caught_up = wait_until(Duration::from_secs(120), || {
        let s = forward_state(&local_listen);
        s["deadLetterCount"] == 1
            && s["datasets"].as_array().unwrap().iter().all(|d| d["lagEvents"] == 0)
            && stored_records(&upstream_dir, &remote_items).len() == 25
            && stored_records(&upstream_dir, &remote_users).len() == 3
    });
    let state = forward_state(&local_listen);
    assert!(caught_up, "the records did not arrive: {state}");
    let upstream_items = stored_records(&upstream_dir, &remote_items);
    for i in 0..25 {
        let (id, properties) = item(i, if i < 5 { "b" } else { "a" });
        assert_eq!(upstream_items.get(&id), Some(&Some(properties)), "{id}: the latest version upstream");
    }
    assert!(!upstream_items.contains_key("i-bad"));
    let upstream_users = stored_records(&upstream_dir, &remote_users);
    for (id, properties) in &users {
        assert_eq!(upstream_users.get(id), Some(&Some(properties.clone())));
    }
    let letter = &state["deadLetters"][0];
    assert_eq!(letter["eventId"], "i-bad", "the dead letter names the record: {letter}");
    assert!(letter["reason"].as_str().unwrap().contains("InvalidInputException"), "{letter}");
    assert_eq!(letter["datasetArn"], local_items);

    let seen = proxy.seen();
    let records_calls: Vec<Seen> = seen.iter().filter(|s| s.path != "/events").cloned().collect();
    assert!(records_calls.iter().all(|s| !s.event_ids.is_empty() && s.event_ids.len() <= 10), "≤ 10 records per call");
    for s in &records_calls {
        let expected = if s.path == "/items" { &remote_items } else { &remote_users };
        assert_eq!(s.dataset_arn.as_ref(), Some(expected), "{s:?}");
    }
    assert!(records_calls.iter().any(|s| s.status == Some(400)), "the proxy throttled some");
    // Each ID was answered 200 once per version it was forwarded in; the calls of a dataset stay under its rate.
    let delivered: usize =
        records_calls.iter().filter(|s| s.status == Some(200)).map(|s| s.event_ids.len()).sum::<usize>();
    assert!((28..=33).contains(&delivered), "25 items (up to 5 of them twice) and 3 users: {delivered}");
    let items_calls: Vec<Seen> = records_calls.iter().filter(|s| s.path == "/items").cloned().collect();
    let busiest = busiest_second(&items_calls);
    assert!(busiest <= RECORDS_RATE, "{busiest} PutItems calls in one second, over {RECORDS_RATE}");
    drop(local);
}

/// An Action_Interactions dataset (with a categorical `DEVICE` field) in `group` (created when `create_group`):
/// its ARN and the tracking ID of its own tracker.
fn action_interactions_dataset(addr: &str, group: &str, create_group: bool) -> (String, String) {
    use serde_json::json;
    let call = |op: &str, body: serde_json::Value| -> serde_json::Value {
        let r = common::control("127.0.0.1", addr, op, &body, &Key::root());
        assert_eq!(r.status, 200, "{op}: {r:?}");
        serde_json::from_str(&r.body).unwrap()
    };
    let group_arn = if create_group {
        call("CreateDatasetGroup", json!({"name": group}))["datasetGroupArn"].as_str().unwrap().to_owned()
    } else {
        format!("arn:aws:personalize:us-east-1:000000000000:dataset-group/{group}")
    };
    let schema = json!({"type": "record", "name": "ActionInteractions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
                   {"name": "IMPRESSION", "type": ["null", "string"]},
                   {"name": "DEVICE", "type": ["null", "string"], "categorical": true}],
        "version": "1.0"});
    let schema_arn =
        call("CreateSchema", json!({"name": format!("{group}-ai"), "schema": schema.to_string()}))["schemaArn"].clone();
    let arn = call(
        "CreateDataset",
        json!({"name": format!("{group}-ai"), "schemaArn": schema_arn, "datasetGroupArn": group_arn,
               "datasetType": "Action_Interactions"}),
    )["datasetArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let tracking_id = call("DescribeDataset", json!({"datasetArn": arn}))["dataset"]["trackingId"]
        .as_str()
        .expect("an Action_Interactions dataset has its tracking ID")
        .to_owned();
    (arn, tracking_id)
}

/// PutActionInteractions of a JSON list under a tracking ID; the status.
fn put_action_interactions(addr: &str, tracking_id: &str, list: &[serde_json::Value]) -> u16 {
    let body = serde_json::json!({"trackingId": tracking_id, "actionInteractions": list}).to_string();
    let call = common::Call {
        method: "POST",
        path: "/action-interactions",
        headers: &[("content-type", "application/json")],
        body: body.as_bytes(),
    };
    common::signed_exchange("127.0.0.1", addr, call, &Key::root(), common::Signing::default())
        .map(|r| r.status)
        .unwrap_or(0)
}

/// The action interactions a store's log holds in a dataset (eventId → copies and the stored members), read from
/// the SQLite file beside the running server.
fn stored_action_interactions(data_dir: &Path, dataset_arn: &str) -> HashMap<String, (u32, serde_json::Value)> {
    let conn =
        rusqlite::Connection::open_with_flags(data_dir.join("interlog.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.event_id, e.item_id, e.session_id, e.user_id, e.event_type, e.sent_at, e.impression, \
             e.properties FROM events e JOIN resources d ON d.id = e.dataset_id WHERE d.arn = ?1",
        )
        .unwrap();
    let rows = stmt
        .query_map([dataset_arn], |r| {
            let members = serde_json::json!({
                "actionId": r.get::<_, Option<String>>(1)?, "sessionId": r.get::<_, String>(2)?,
                "userId": r.get::<_, Option<String>>(3)?, "eventType": r.get::<_, String>(4)?,
                "timestamp": r.get::<_, f64>(5)?, "impression": r.get::<_, Option<String>>(6)?,
                "properties": r.get::<_, Option<String>>(7)?});
            Ok((r.get::<_, String>(0)?, members))
        })
        .unwrap();
    let mut out: HashMap<String, (u32, serde_json::Value)> = HashMap::new();
    for row in rows {
        let (id, members) = row.unwrap();
        out.entry(id).or_insert((0, members)).0 += 1;
    }
    out
}

/// Action interactions go upstream as PutActionInteractions calls of at most 10, under the remote tracking ID
/// `--forward-tracking-id` maps the dataset's own to, through the throttling proxy and under `--forward-rate`:
/// each once by eventId with its members as stored, and one the strict upstream refuses is a dead letter.
#[test]
fn action_interactions_are_forwarded_as_put_action_interactions_under_the_mapped_tracker() {
    for engine in engines("forward_action_interactions") {
        run_action_interactions(&engine);
        drop_schema(&engine);
    }
}

fn run_action_interactions(engine: &Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let upstream_dir = tmp.path().join("upstream");
    let upstream_listen = format!("127.0.0.1:{}", free_port());
    let _upstream =
        start_on(&upstream_dir, &upstream_listen, &["--default-tracking-id", "up", "--strict-properties"], &[], None);
    let (remote_dataset, remote_tracker) = action_interactions_dataset(&upstream_listen, "remote-group", true);
    let proxy = Proxy::start(upstream_listen.clone());

    let local_dir = tmp.path().join("local");
    let local_listen = format!("127.0.0.1:{}", free_port());
    let proxy_url = proxy.url();
    let rate = RATE.to_string();
    let mut args = vec!["--default-tracking-id", TRACKING_ID, "--forward-to", &proxy_url, "--forward-rate", &rate];
    if let Engine::Postgres(url) = engine {
        args.extend(["--database-url", url.as_str()]);
    }
    let env = [
        ("INTERLOG_FORWARD_ACCESS_KEY_ID", ROOT_KEY),
        ("INTERLOG_FORWARD_SECRET_ACCESS_KEY", ROOT_SECRET),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ("INTERLOG_LOG", "info"),
    ];
    // The local dataset's tracking ID is made with it: known only once the dataset exists, so the
    // forwarder is started again with the map from it to the upstream's.
    let first = start_on(&local_dir, &local_listen, &args, &env, None);
    let (local_dataset, local_tracker) = action_interactions_dataset(&local_listen, "default", false);
    first.stop();
    let map = format!("{local_tracker}={remote_tracker}");
    args.extend(["--forward-tracking-id", &map]);
    let local = start_on(&local_dir, &local_listen, &args, &env, Some(&tmp.path().join("local.log")));

    // 60 action interactions in calls of 6, each its own session and user; then one the strict upstream
    // refuses (an undeclared property key).
    let interaction = |i: usize| {
        serde_json::json!({"actionId": format!("a-{}", i % 7), "sessionId": format!("s-{i}"),
            "userId": format!("u-{}", i % 3), "timestamp": 1764590000 + i, "eventType": "Taken",
            "eventId": format!("ai-{i}"), "impression": [format!("a-{}", i % 7), "a-x"],
            "properties": format!(r#"{{"device": "d{i}"}}"#)})
    };
    const TOTAL: usize = 60;
    for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(6) {
        let list: Vec<serde_json::Value> = chunk.iter().map(|i| interaction(*i)).collect();
        assert_eq!(put_action_interactions(&local_listen, &local_tracker, &list), 200);
    }
    let bad = serde_json::json!({"actionId": "a-1", "sessionId": "s-bad", "userId": "u-1", "timestamp": 1764590000,
        "eventType": "Taken", "eventId": "ai-bad", "properties": r#"{"undeclaredColour": "red"}"#});
    assert_eq!(put_action_interactions(&local_listen, &local_tracker, &[bad]), 200, "the forwarder keeps and flags it");

    let caught_up = wait_until(Duration::from_secs(120), || {
        let s = forward_state(&local_listen);
        s["deadLetterCount"] == 1
            && s["datasets"].as_array().unwrap().iter().all(|d| d["lagEvents"] == 0)
            && stored_action_interactions(&upstream_dir, &remote_dataset).len() == TOTAL
    });
    let state = forward_state(&local_listen);
    assert!(caught_up, "the action interactions did not arrive: {state}");
    let dataset = state["datasets"].as_array().unwrap().iter().find(|d| d["datasetArn"] == local_dataset).unwrap();
    assert_eq!(dataset["delivered"].as_u64(), Some(TOTAL as u64), "{state}");
    assert_eq!(dataset["deadLettered"], 1);
    let upstream = stored_action_interactions(&upstream_dir, &remote_dataset);
    for i in 0..TOTAL {
        let id = format!("ai-{i}");
        let (copies, members) = upstream.get(&id).unwrap_or_else(|| panic!("{id} did not arrive upstream"));
        assert_eq!(*copies, 1, "{id} arrived {copies} times");
        let sent = interaction(i);
        assert_eq!(members["actionId"], sent["actionId"], "{id}");
        assert_eq!(members["sessionId"], sent["sessionId"], "{id}");
        assert_eq!(members["userId"], sent["userId"], "{id}");
        assert_eq!(members["timestamp"].as_f64(), sent["timestamp"].as_f64(), "{id}");
        let impression: serde_json::Value = serde_json::from_str(members["impression"].as_str().unwrap()).unwrap();
        assert_eq!(impression, sent["impression"], "{id}: the log keeps the list as JSON text");
        assert_eq!(members["properties"], sent["properties"], "{id}");
    }
    assert!(!upstream.contains_key("ai-bad"));
    let letter = &state["deadLetters"][0];
    assert_eq!(letter["eventId"], "ai-bad", "{letter}");
    assert!(letter["reason"].as_str().unwrap().contains("InvalidInputException"), "{letter}");
    assert_eq!(letter["datasetArn"], local_dataset);

    let calls: Vec<Seen> = proxy.seen().into_iter().filter(|s| s.path == "/action-interactions").collect();
    assert!(calls.iter().all(|s| !s.event_ids.is_empty() && s.event_ids.len() <= 10), "≤ 10 per call: {calls:?}");
    assert!(calls.iter().any(|s| s.status == Some(400)), "the proxy throttled some");
    let answered: usize = calls.iter().filter(|s| s.status == Some(200)).map(|s| s.event_ids.len()).sum();
    assert!((TOTAL..=TOTAL + 1).contains(&answered), "each accepted once (the bad one only alone): {answered}");
    let busiest = busiest_second(&calls);
    assert!(busiest <= RATE, "{busiest} calls in one second, over the limit of {RATE}");
    drop(local);
}

//! Metrics and logs (issue 15): each counter of `GET /_interlog/metrics` moves when its event happens, the text
//! passes `promtool check metrics` on a scrape taken under load, the endpoint follows the statistics'
//! authentication rule, and every log line of a request carries its request ID, in text and in JSON.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

fn get(addr: &str, path: &str) -> Reply {
    raw_exchange(addr, format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes(), LIMIT).unwrap()
}

fn scrape(addr: &str) -> String {
    let r = get(addr, "/_interlog/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// `name{labels} value` lines of a scrape, by their whole series text.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sum over the series of `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

fn put(addr: &str, body: &serde_json::Value) -> Reply {
    post_events(addr, body.to_string().as_bytes(), LIMIT).unwrap()
}

fn event(id: &str, sent_at: f64) -> serde_json::Value {
    serde_json::json!({"eventId": id, "eventType": "click", "itemId": "item-1", "sentAt": sent_at})
}

#[test]
fn each_counter_moves_when_its_event_happens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--no-auth"],
        &[
            // One held body fills the budget, and three connections are all there are.
            ("INTERLOG_MAX_INFLIGHT_BYTES", "1"),
            ("INTERLOG_PER_PEER_SHARE", "1"),
            ("INTERLOG_MAX_CONNECTIONS", "3"),
        ],
        None,
    );
    let addr = server.addr();
    let tracker = server.tracking_id.clone();
    let t = [("tracker", tracker.as_str())];
    let before = samples(&scrape(&addr));

    // Stored, one of them flagged (sentAt 0), then a repeat dropped at the door.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let ok = put(
        &addr,
        &serde_json::json!({"trackingId": tracker, "sessionId": "s", "eventList": [event("a", now), event("b", 0.0)]}),
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    let again =
        put(&addr, &serde_json::json!({"trackingId": tracker, "sessionId": "s", "eventList": [event("a", now)]}));
    assert_eq!(again.status, 200, "{again:?}");
    // Refused after authentication: a known tracker, an event without its eventType.
    let bad = put(
        &addr,
        &serde_json::json!({"trackingId": tracker, "sessionId": "s", "eventList": [{"eventId": "c", "sentAt": now}]}),
    );
    assert_eq!(bad.error_type, "InvalidInputException", "{bad:?}");

    // Throttled: a request whose body never comes holds the whole body budget.
    let held_head = format!(
        "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n\r\n{{"
    );
    let mut held = TcpStream::connect(&addr).unwrap();
    held.write_all(held_head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let throttled = post_events(&addr, b"{}", LIMIT).unwrap();
    assert_eq!(throttled.error_type, "ThrottlingException", "{throttled:?}");
    // Its connection's slot is free again before the idle ones take the rest.
    std::thread::sleep(Duration::from_millis(300));
    // Refused connections: the held one and two idle ones take the three slots.
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = post_events(&addr, b"{}", LIMIT).unwrap();
    assert_eq!((refused.status, refused.error_type.as_str()), (503, "ServiceUnavailable"), "{refused:?}");
    drop(idle);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));

    let text = scrape(&addr);
    let after = samples(&text);
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("interlog_events_stored_total", &t), 2.0, "{text}");
    assert_eq!(moved("interlog_events_duplicates_total", &t), 1.0);
    assert_eq!(moved("interlog_events_flagged_total", &[t[0], ("reason", "sentAtBefore2000")]), 1.0);
    assert_eq!(moved("interlog_events_flagged_total", &[t[0], ("reason", "duplicateEventId")]), 1.0);
    assert_eq!(moved("interlog_events_flagged_total", &[t[0], ("reason", "sentAtInFuture")]), 0.0);
    // The refused request names a tracker of the caller's: it is counted under it, not as unknown.
    assert_eq!(moved("interlog_events_rejected_requests_total", &t), 1.0, "{text}");
    assert_eq!(moved("interlog_events_rejected_requests_total", &[("tracker", "unknown")]), 0.0, "{text}");
    assert_eq!(moved("interlog_requests_total", &[("operation", "PutEvents"), ("outcome", "ok")]), 2.0);
    // The event without an eventType, and the held request whose body never came (its client went away).
    assert_eq!(
        moved("interlog_requests_total", &[("operation", "PutEvents"), ("outcome", "InvalidInputException")]),
        2.0
    );
    assert_eq!(
        moved("interlog_requests_total", &[("operation", "PutEvents"), ("outcome", "ThrottlingException")]),
        1.0
    );
    // The whole budget is also the address's whole share: which of the two refused is not the point.
    assert_eq!(moved("interlog_throttled_total", &[]), 1.0, "{text}");
    assert_eq!(moved("interlog_connections_refused_total", &[]), 1.0, "{text}");
    assert_eq!(moved("interlog_commit_entries_count", &[]), 2.0, "two commits, the repeat's included");
    assert_eq!(moved("interlog_commit_entries_sum", &[]), 3.0);
    assert_eq!(moved("interlog_commit_duration_seconds_count", &[]), 2.0);
    assert!(moved("interlog_request_duration_seconds_count", &[("operation", "PutEvents")]) >= 4.0);
    assert!(value(&after, "interlog_store_size_bytes", &[]) > 0.0, "{text}");
    assert_eq!(value(&after, "interlog_write_queue_depth", &[]), 0.0);
    // The scrape before counted itself.
    assert!(moved("interlog_requests_total", &[("operation", "interlog.metrics"), ("outcome", "ok")]) >= 1.0);
    server.stop();
}

/// `promtool check metrics` (Debian's prometheus package, installed by scripts/test) on a scrape taken while
/// clients are putting events.
#[test]
fn promtool_passes_a_scrape_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(&dir.path().join("data"), "127.0.0.1:0", &["--no-auth"], &[], None);
    let addr = server.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|c| {
            let (addr, tracker, stop) = (addr.clone(), server.tracking_id.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = (0..10).map(|i| format!("{c}-{n}-{i}")).collect();
                    let r = post_events(&addr, put_events_body(&tracker, &ids).as_bytes(), LIMIT).unwrap();
                    assert_eq!(r.status, 200, "{r:?}");
                    n += 1;
                }
                n
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(30), || {
        value(&samples(&scrape(&addr)), "interlog_events_stored_total", &[]) >= 200.0
    }));
    let text = scrape(&addr);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        assert!(l.join().unwrap() > 0);
    }
    for family in [
        "interlog_requests_total",
        "interlog_request_duration_seconds_bucket",
        "interlog_events_stored_total",
        "interlog_commit_entries_bucket",
        "interlog_commit_duration_seconds_bucket",
        "interlog_write_queue_depth",
        "interlog_store_size_bytes",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
    server.stop();
    let Ok(mut promtool) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        println!("SKIPPED promtool check metrics: promtool is not installed (apt-get install prometheus)");
        return;
    };
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\non\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 0 on lint warnings too (it prints them): there must be none.
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.trim().is_empty(), "promtool: {said}");
}

/// The statistics' rule: the root account's (signed), anyone's with `--public-stats`.
#[test]
fn metrics_are_the_root_accounts_like_the_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(&dir.path().join("a"), "127.0.0.1:0", &[], &[], None);
    let addr = server.addr();
    let r = get(&addr, "/_interlog/metrics");
    assert_eq!((r.status, r.error_type.as_str()), (403, "MissingAuthenticationTokenException"), "{r:?}");
    assert!(!r.body.contains("interlog_requests_total"));
    let call = Call { method: "GET", path: "/_interlog/metrics", headers: &[], body: b"" };
    let r = signed_exchange("127.0.0.1", &addr, call, &Key::root(), Signing::default()).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("# TYPE interlog_requests_total counter"), "{}", r.body);
    drop(server);
    let server = start_on(&dir.path().join("b"), "127.0.0.1:0", &["--public-stats"], &[], None);
    assert_eq!(get(&server.addr(), "/_interlog/metrics").status, 200);
    server.stop();
}

/// Puts one event and one refused request, and returns their request IDs and the server's log.
fn logged_requests(dir: &Path, format: &str) -> (String, String, String) {
    let log = dir.join("server.log");
    let server = start_on(
        &dir.join("data"),
        "127.0.0.1:0",
        &["--no-auth"],
        &[("INTERLOG_LOG", "debug"), ("INTERLOG_LOG_FORMAT", format)],
        Some(&log),
    );
    let addr = server.addr();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Flagged (userId "null"), so a warning line of the request is logged too.
    let body = serde_json::json!({"trackingId": server.tracking_id, "sessionId": "s", "userId": "null",
        "eventList": [event("e1", now)]});
    let ok = put(&addr, &body);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(!ok.request_id.is_empty());
    let refused = put(&addr, &serde_json::json!({"trackingId": server.tracking_id, "sessionId": "s", "eventList": []}));
    assert_eq!(refused.status, 400);
    server.stop();
    (ok.request_id, refused.request_id, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn every_log_line_of_a_request_carries_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, log) = logged_requests(dir.path(), "text");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("PutEvents") || l.contains("flagged events")).collect();
    assert!(lines.len() >= 2, "the debug line and the flag warning:\n{log}");
    for line in &lines {
        assert!(line.contains(&format!("request_id={ok}")), "{line}");
    }
}

#[test]
fn json_log_format_is_one_object_per_line_with_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, refused, log) = logged_requests(dir.path(), "json");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l.is_object() && l["fields"].is_object()), "{log}");
    let of = |id: &str| lines.iter().filter(|l| l["span"]["request_id"] == id).count();
    assert!(of(&ok) >= 2, "the debug line and the flag warning carry {ok}:\n{log}");
    let warning = lines.iter().find(|l| l["span"]["request_id"] == ok.as_str() && l["level"] == "WARN").unwrap();
    assert_eq!(warning["fields"]["kind"], "placeholderId", "{warning}");
    assert_ne!(ok, refused);
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l.get("span").is_none()), "shutdown's lines have no span");
}

//! The attacks of issue 11, one test per finding, each run against the real binary and each
//! measuring the resource the attack was after: files outside the export root, the time to a
//! signed 200 while the attack runs, the server's RSS after it, the size of the WAL.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const PARTNER_KEY: &str = "AKIDINTERLOGPARTNER1";
const PARTNER_SECRET: &str = "partnerSecretKeyForTheSecurityTests00001";
const PARTNER_ACCOUNT: &str = "111111111111";
const ROOT_ACCOUNT: &str = "000000000000";
/// The address attacks come from; the legitimate client is on another one.
const ATTACKER: &str = "127.0.0.1";
const CLIENT: &str = "127.0.0.2";

fn partner() -> Key {
    Key { id: PARTNER_KEY.into(), secret: PARTNER_SECRET.into(), region: "us-east-1".into() }
}

/// A server with the root key and a partner account's key, stderr kept in `<dir>/server.log`.
fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    std::fs::create_dir_all(dir).unwrap();
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[key]]\naccess_key_id = \"{PARTNER_KEY}\"\nsecret_access_key = \"{PARTNER_SECRET}\"\naccount_id = \"{PARTNER_ACCOUNT}\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut all = vec!["--credentials-file", keys.to_str().unwrap()];
    all.extend_from_slice(args);
    let data = dir.join("data");
    start_on(&data, "127.0.0.1:0", &all, env, Some(&dir.join("server.log")))
}

fn events_body(server: &Server, ids: &[&str]) -> Vec<u8> {
    put_events_body(&server.tracking_id, &ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).into_bytes()
}

/// How long a signed PutEvents from `CLIENT` takes to be answered 200 (panics on anything else).
fn time_to_signed_200(server: &Server, id: &str) -> Duration {
    let started = Instant::now();
    let reply = put_events_signed(CLIENT, &server.addr(), &events_body(server, &[id]), &Key::root()).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    started.elapsed()
}

fn wait_job(server: &Server, arn: &str, key: &Key) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = control(CLIENT, &server.addr(), "DescribeDatasetExportJob", &json!({"datasetExportJobArn": arn}), key);
        assert_eq!(r.status, 200, "{r:?}");
        let job: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let job = job["datasetExportJob"].clone();
        if job["status"] == "ACTIVE" || job["status"] == "CREATE FAILED" {
            return job;
        }
        assert!(Instant::now() < deadline, "job still {}", job["status"]);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The root account's default Interactions dataset.
fn default_dataset() -> String {
    format!("arn:aws:personalize:us-east-1:{ROOT_ACCOUNT}:dataset/default/INTERACTIONS")
}

/// An Interactions dataset of the partner account (schema, group, dataset).
fn partner_dataset(server: &Server) -> String {
    let addr = server.addr();
    let schema = json!({"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
                   {"name": "TIMESTAMP", "type": "long"}], "version": "1.0"});
    let r =
        control(CLIENT, &addr, "CreateSchema", &json!({"name": "p-schema", "schema": schema.to_string()}), &partner());
    assert_eq!(r.status, 200, "{r:?}");
    let schema_arn =
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["schemaArn"].as_str().unwrap().to_owned();
    let r = control(CLIENT, &addr, "CreateDatasetGroup", &json!({"name": "p-group"}), &partner());
    assert_eq!(r.status, 200, "{r:?}");
    let group =
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["datasetGroupArn"].as_str().unwrap().to_owned();
    let r = control(
        CLIENT,
        &addr,
        "CreateDataset",
        &json!({"name": "p-ds", "schemaArn": schema_arn, "datasetGroupArn": group, "datasetType": "Interactions"}),
        &partner(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["datasetArn"].as_str().unwrap().to_owned()
}

fn export_job(server: &Server, key: &Key, dataset: &str, name: &str, path: &str) -> Reply {
    control(
        CLIENT,
        &server.addr(),
        "CreateDatasetExportJob",
        &json!({"jobName": name, "datasetArn": dataset, "roleArn": "arn:aws:iam::123456789012:role/x",
                "jobOutput": {"s3DataDestination": {"path": path}}}),
        key,
    )
}

/// Every file under `dir` with its contents (symbolic links as their target).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(path.clone(), std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes());
            } else if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Finding 1: export jobs write only inside `--export-dir DIR/<account>/`, never through a
/// link, never over an existing file, and say so without describing the server's disk.
#[test]
fn export_jobs_cannot_write_outside_the_callers_export_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Without an export root, file:// destinations are refused at once.
    let server = start(&dir.path().join("no-root"), &[], &[]);
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let r =
        export_job(&server, &Key::root(), &default_dataset(), "anywhere", &format!("file://{}/", outside.display()));
    assert_eq!((r.status, r.error_type.as_str()), (400, "InvalidInputException"), "{r:?}");
    assert!(r.body.contains("--export-dir"), "{}", r.body);
    drop(server);

    let root = dir.path().join("exports");
    let server = start(dir.path(), &["--export-dir", root.to_str().unwrap()], &[]);
    let addr = server.addr();
    let victim = outside.join("interlog.db");
    std::fs::write(&victim, b"precious").unwrap();
    let before = tree(&outside);
    let mine = root.join(ROOT_ACCOUNT);
    let theirs = root.join(PARTNER_ACCOUNT);
    // The partner exports a report into its own folder.
    let partner_ds = partner_dataset(&server);
    let r = export_job(&server, &partner(), &partner_ds, "report", &format!("file://{}/", theirs.display()));
    assert_eq!(r.status, 200, "{r:?}");
    let arn: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(wait_job(&server, arn["datasetExportJobArn"].as_str().unwrap(), &partner())["status"], "ACTIVE");
    let partner_report = theirs.join("report.csv");
    let partner_bytes = std::fs::read(&partner_report).unwrap();
    assert_eq!(put_events_signed(CLIENT, &addr, &events_body(&server, &["e1"]), &Key::root()).unwrap().status, 200);

    std::fs::create_dir_all(&mine).unwrap();
    std::os::unix::fs::symlink(&outside, mine.join("link")).unwrap();
    let refused = [
        ("etc", "file:///etc/".to_owned(), "outside this account's folder"),
        ("data-dir", format!("file://{}/", dir.path().join("data").display()), "outside this account's folder"),
        ("root", format!("file://{}/", root.display()), "outside this account's folder"),
        ("other-account", format!("file://{}/", theirs.display()), "outside this account's folder"),
        ("dotdot", format!("file://{}/../../outside/", mine.display()), "'..'"),
        ("symlink", format!("file://{}/link/", mine.display()), "symbolic link"),
        ("below-symlink", format!("file://{}/link/deeper/", mine.display()), "symbolic link"),
    ];
    for (name, path, why) in &refused {
        let r = export_job(&server, &Key::root(), &default_dataset(), name, path);
        assert_eq!((r.status, r.error_type.as_str()), (400, "InvalidInputException"), "{name}: {r:?}");
        assert!(r.body.contains(why), "{name}: {}", r.body);
        // No server path beyond what the caller wrote and its own folder.
        assert!(!r.body.contains("File exists") && !r.body.contains("No such file"), "{name}: {}", r.body);
        let described = control(
            CLIENT,
            &addr,
            "DescribeDatasetExportJob",
            &json!({"datasetExportJobArn":
                format!("arn:aws:personalize:us-east-1:{ROOT_ACCOUNT}:dataset-export-job/{name}")}),
            &Key::root(),
        );
        assert_eq!(described.error_type, "ResourceNotFoundException", "{name}: a refused job must not exist");
    }
    // A partner cannot write into the root account's folder either.
    let r = export_job(&server, &partner(), &partner_ds, "intrude", &format!("file://{}/", mine.display()));
    assert_eq!(r.error_type, "InvalidInputException", "{r:?}");

    // A link planted where the export file goes is never followed or replaced; the job fails
    // with a reason that names only the file.
    std::os::unix::fs::symlink(&victim, mine.join("planted.csv")).unwrap();
    let r = export_job(&server, &Key::root(), &default_dataset(), "planted", &format!("file://{}/", mine.display()));
    assert_eq!(r.status, 200, "{r:?}");
    let arn: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let job = wait_job(&server, arn["datasetExportJobArn"].as_str().unwrap(), &Key::root());
    assert_eq!(job["status"], "CREATE FAILED", "{job}");
    let reason = job["failureReason"].as_str().unwrap();
    assert!(reason.contains("'planted.csv'") && reason.contains("never overwritten"), "{reason}");
    assert!(!reason.contains(dir.path().to_str().unwrap()), "the reason names a server path: {reason}");

    // The same job name in the root account writes its own file, not the partner's.
    let r = export_job(&server, &Key::root(), &default_dataset(), "report", &format!("file://{}/", mine.display()));
    let arn: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(wait_job(&server, arn["datasetExportJobArn"].as_str().unwrap(), &Key::root())["status"], "ACTIVE");
    let report = mine.join("report.csv");
    assert_eq!(std::fs::metadata(&report).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(String::from_utf8(std::fs::read(&report).unwrap()).unwrap().contains("item-1"));
    assert_eq!(std::fs::read(&partner_report).unwrap(), partner_bytes, "the partner's report was rewritten");

    // The measurement: nothing outside the root changed.
    assert_eq!(tree(&outside), before, "files outside the export root changed");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    server.stop();
}

/// Finding 2: unauthenticated uploads hold none of the body budget, and one address holds at
/// most its share of it; bodies must arrive within the body timeout.
#[test]
fn unauthenticated_or_stalled_uploads_cannot_starve_signed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        start(dir.path(), &[], &[("INTERLOG_MAX_INFLIGHT_BYTES", "8388608"), ("INTERLOG_BODY_TIMEOUT_SECS", "3")]);
    let addr = server.addr();
    let baseline = time_to_signed_200(&server, "before");
    // The attack of the issue: 64 sockets declaring 1 MiB, sending one byte, no Authorization.
    let mut unsigned = Vec::new();
    for _ in 0..64 {
        let mut s = connect_from(ATTACKER, &addr).unwrap();
        s.write_all(format!("POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1048576\r\n\r\n{{").as_bytes()).unwrap();
        unsigned.push(s);
    }
    // Each is refused before its body is read.
    for s in &mut unsigned {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let reply = read_reply(s).unwrap();
        assert_eq!((reply.status, reply.error_type.as_str()), (403, "MissingAuthenticationTokenException"));
    }
    let during_unsigned = time_to_signed_200(&server, "during-unsigned");

    // A key holder stalling 1 MiB uploads from one address: at most half the 8 MiB budget.
    let body = vec![b' '; 1024 * 1024];
    let mut admitted = Vec::new();
    let mut throttled = 0;
    for _ in 0..16 {
        let mut s = connect_from(ATTACKER, &addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = signed_head(
            "POST",
            &addr,
            "/events",
            &[("content-type", "application/json")],
            &body,
            &Key::root(),
            Signing::default(),
        );
        head.push_str("expect: 100-continue\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        if first.starts_with(b"HTTP/1.1 100") {
            let mut rest = [0u8; 13];
            let _ = s.read(&mut rest);
            s.write_all(&body[..10]).unwrap();
            admitted.push(s);
        } else {
            let mut rest = String::new();
            let _ = s.read_to_string(&mut rest);
            assert!(rest.to_ascii_lowercase().contains("x-amzn-errortype: throttlingexception"), "{rest}");
            throttled += 1;
        }
    }
    assert_eq!(admitted.len(), 4, "one address holds half of the 8 MiB budget");
    assert_eq!(throttled, 12);
    let during_stalled = time_to_signed_200(&server, "during-stalled");
    // The stalled bodies are answered RequestTimeoutException once the body timeout passes.
    let started = Instant::now();
    for s in &mut admitted {
        let reply = read_reply(s).unwrap();
        assert_eq!((reply.status, reply.error_type.as_str()), (408, "RequestTimeoutException"), "{reply:?}");
    }
    let cut_after = started.elapsed();
    eprintln!(
        "signed PutEvents 200 in {baseline:?} before, {during_unsigned:?} beside 64 unsigned 1 MiB uploads, \
         {during_stalled:?} beside 4 admitted + 12 throttled stalled signed uploads; stalled bodies cut after {cut_after:?}"
    );
    assert!(during_unsigned < Duration::from_secs(2) && during_stalled < Duration::from_secs(2));
    assert!(cut_after < Duration::from_secs(5));
    let (stored, _) = stored_ids(&dir.path().join("data"));
    assert_eq!(stored.len(), 3, "only the signed, complete requests stored events: {stored:?}");
    server.stop();
}

/// Finding 3: idle sockets from one address take at most its share of the connections, an
/// unfinished head at most 64 KiB and a few seconds.
#[test]
fn slowloris_connections_and_heads_are_bounded_per_address() {
    let connections = 1000;
    if open_files_limit() < (connections as u64) * 2 + 300 {
        eprintln!("SKIPPED: needs {} open files (ulimit -n is {})", connections * 2 + 300, open_files_limit());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[],
        &[
            ("INTERLOG_MAX_CONNECTIONS", "1000"),
            ("INTERLOG_HEADER_TIMEOUT_SECS", "5"),
            ("INTERLOG_IDLE_TIMEOUT_SECS", "60"),
        ],
    );
    let addr = server.addr();
    // (a) 600 idle connections from one address: it may hold 500 of the 1000; the rest are
    // answered 503, and another address is served meanwhile.
    let mut idle: Vec<TcpStream> = (0..600).map(|_| connect_from(ATTACKER, &addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for s in &mut idle {
        s.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 12];
        if matches!(s.peek(&mut peek), Ok(12) if peek.starts_with(b"HTTP/1.1 503")) {
            refused += 1;
        }
        s.set_nonblocking(false).unwrap();
    }
    let health_started = Instant::now();
    let health =
        raw_exchange_from(CLIENT, &addr, format!("GET /_interlog/health HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes());
    let health_took = health_started.elapsed();
    let write_took = time_to_signed_200(&server, "beside-idle");
    eprintln!("600 idle connections from one address: {refused} refused with 503; health from another in {health_took:?}, signed PutEvents in {write_took:?}");
    assert_eq!(refused, 100, "one address holds exactly its share of 500 connections");
    assert_eq!(health.status, 200);
    assert!(health_took < Duration::from_secs(2) && write_took < Duration::from_secs(2));
    // (b) They never sent a head: closed after the header timeout, not the 60 s idle timeout.
    let started = Instant::now();
    assert!(idle.iter_mut().all(|s| closed_within(s, Duration::from_secs(10))));
    let closed_after = started.elapsed();
    assert!(closed_after < Duration::from_secs(8), "idle connections closed after {closed_after:?}");
    drop(idle);

    // (c) 1000 connections holding unfinished ~390 KB heads: each costs at most 64 KiB.
    let before = server.memory_kib("VmRSS");
    let junk = format!("GET /_interlog/health HTTP/1.1\r\nhost: {addr}\r\nx-pad: {}", "a".repeat(390_000));
    let mut held = Vec::new();
    for _ in 0..connections {
        let mut s = connect_from(ATTACKER, &addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = s.write_all(junk.as_bytes());
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let write_took = time_to_signed_200(&server, "beside-heads");
    let peak = server.memory_kib("VmHWM");
    let grown = peak.saturating_sub(before) / 1024;
    eprintln!(
        "{connections} unfinished 390 KB heads: RSS {} MiB -> peak {} MiB (+{grown} MiB; buffered whole they would be \
         {} MiB); signed PutEvents from another address in {write_took:?}",
        before / 1024,
        peak / 1024,
        connections * 390 / 1024
    );
    assert!(write_took < Duration::from_secs(2));
    assert!(grown < 80, "peak RSS grew by {grown} MiB");
    drop(held);
    server.stop();
}

fn raw_exchange_from(from: &str, addr: &str, request: &[u8]) -> Reply {
    let mut s = connect_from(from, addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    read_reply(&mut s).unwrap()
}

/// Findings 4 and 8: forged signatures with huge or hostile regions neither grow the server nor
/// reach an ARN.
#[test]
fn forged_signatures_and_hostile_regions_grow_nothing_and_forge_no_arn() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], &[]);
    let addr = server.addr();
    let before = server.memory_kib("VmRSS");
    // The attack of the issue with the largest region a head may still carry: 2,000 requests,
    // each `Signature=00` and a 60 KB region of its own (cached, that would be 120 MB).
    for i in 0..2000 {
        let region = format!("{i:06}{}", "r".repeat(60_000));
        let head = signed_head(
            "GET",
            &addr,
            "/_interlog/stats",
            &[],
            b"",
            &Key::root().in_region(&region),
            Signing::default(),
        );
        let forged = head.split_once("Signature=").map(|(before, _)| format!("{before}Signature=00\r\n\r\n")).unwrap();
        let reply = raw_exchange_from(ATTACKER, &addr, forged.as_bytes());
        assert_eq!((reply.status, reply.error_type.as_str()), (403, "InvalidSignatureException"), "{reply:?}");
    }
    let after = server.memory_kib("VmRSS");
    eprintln!("2000 forged 60 KB-region signatures: RSS {} -> {} MiB", before / 1024, after / 1024);
    assert!(after.saturating_sub(before) < 20 * 1024, "RSS grew by {} KiB", after - before);

    // A region that would forge the account field of an ARN, and one that would make an ARN
    // too long to delete, are refused; nothing is created.
    for region in ["us-east-1:000000000000:dataset-group", &"a".repeat(5000)] {
        let r = control(CLIENT, &addr, "CreateDatasetGroup", &json!({"name": "forged"}), &partner().in_region(region));
        assert_eq!((r.status, r.error_type.as_str()), (403, "InvalidSignatureException"), "{r:?}");
        assert!(r.body.contains("valid region"), "{}", r.body);
    }
    let r = control(CLIENT, &addr, "ListDatasetGroups", &json!({}), &partner());
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("forged"), "{}", r.body);
    server.stop();
}

/// Sends `total` events (10 per request) over keep-alive connections from 8 threads.
fn load(server: &Server, prefix: &str, total: usize) {
    let addr = server.addr();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let addr = addr.clone();
            let tracking = server.tracking_id.clone();
            let prefix = prefix.to_owned();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut i = t;
                while i * 10 < total {
                    // Long item IDs make every event a few hundred bytes, in the WAL and the export.
                    let events: Vec<serde_json::Value> = (0..10)
                        .map(|k| json!({"eventId": format!("{prefix}-{i}-{k}"), "eventType": "click",
                                        "itemId": format!("{:0>200}", i * 10 + k), "sentAt": 1_700_000_000}))
                        .collect();
                    let body = json!({"trackingId": tracking, "sessionId": "s1", "eventList": events}).to_string();
                    let head = format!(
                        "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                    assert_eq!(read_reply(&mut stream).unwrap().status, 200);
                    i += 8;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn wal_bytes(data: &Path) -> u64 {
    std::fs::metadata(data.join("interlog.db-wal")).map(|m| m.len()).unwrap_or(0)
}

/// Finding 5: a client reading an export a byte at a time is cut off, which releases the
/// store's snapshot (the WAL stops growing) and its thread; one account runs at most two.
#[test]
fn slow_export_readers_are_cut_off_and_release_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_on(
        &data,
        "127.0.0.1:0",
        &["--no-auth"],
        &[("INTERLOG_EXPORT_TIME_LIMIT_SECS", "8")],
        Some(&dir.path().join("server.log")),
    );
    let addr = server.addr();
    load(&server, "seed", 40_000);
    let export_request = format!("GET /_interlog/export?format=csv HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    // Two slow readers: each reads the head and a few bytes, then stops reading (with a small
    // receive buffer, so the kernel does not take the whole export off the server's hands).
    let mut readers = Vec::new();
    for _ in 0..2 {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        let mut s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(export_request.as_bytes()).unwrap();
        let mut first = [0u8; 64];
        s.read_exact(&mut first).unwrap();
        assert!(first.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first));
        readers.push(s);
    }
    let started = Instant::now();
    // A third export of the same account is refused while they run.
    let third = raw_exchange(&addr, export_request.as_bytes(), Duration::from_secs(10)).unwrap();
    assert_eq!((third.status, third.error_type.as_str()), (400, "ThrottlingException"), "{third:?}");
    // The control plane is answered meanwhile (it needs the blocking pool the exports use).
    let list = raw_exchange(
        &addr,
        format!("POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: AmazonPersonalize.ListDatasetGroups\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 2\r\n\r\n{{}}").as_bytes(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(list.status, 200, "{list:?}");
    // A load while the readers hold their exports.
    let wal_start = wal_bytes(&data);
    load(&server, "pinned", 12_000);
    let wal_pinned = wal_bytes(&data);
    let pinned_for = started.elapsed();
    // The exports are cut off at the time limit (8 s): then a new export is admitted again.
    assert!(wait_until(Duration::from_secs(20), || {
        raw_exchange(&addr, export_request.as_bytes(), Duration::from_secs(30)).is_ok_and(|r| r.status == 200)
    }));
    let cut_after = started.elapsed();
    // The cut-off bodies end in an error, never like a whole file.
    for s in &mut readers {
        let mut rest = Vec::new();
        let outcome = s.read_to_end(&mut rest);
        assert!(outcome.is_err() || !rest.ends_with(b"\r\n0\r\n\r\n"), "a cut-off export ended like a whole one");
    }
    drop(readers);
    // Released, the same load again reuses the WAL instead of growing it.
    load(&server, "released", 12_000);
    let wal_released = wal_bytes(&data);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "two slow export readers: cut off after {cut_after:.1?}; WAL {:.1} MiB -> {:.1} MiB during a 12,000-event load \
         beside them ({pinned_for:.1?}), {:.1} MiB after the same load once they were cut off",
        mib(wal_start),
        mib(wal_pinned),
        mib(wal_released)
    );
    assert!(cut_after >= Duration::from_secs(7) && cut_after < Duration::from_secs(20), "{cut_after:?}");
    assert!(wal_released <= wal_pinned + 1024 * 1024, "the WAL kept growing: {wal_pinned} -> {wal_released}");
    server.stop();
}

/// Finding 6: a captured request cannot be replayed with another body or as another operation.
#[test]
fn unsigned_payloads_and_unsigned_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], &[]);
    let addr = server.addr();
    let body = events_body(&server, &["replayed"]);
    let how = Signing { unsigned_payload: true, ..Signing::default() };
    let r = signed_exchange(
        CLIENT,
        &addr,
        Call { method: "POST", path: "/events", headers: &[("content-type", "application/json")], body: &body },
        &Key::root(),
        how,
    )
    .unwrap();
    assert_eq!((r.status, r.error_type.as_str()), (403, "InvalidSignatureException"), "{r:?}");
    assert!(r.body.contains("UNSIGNED-PAYLOAD"), "{}", r.body);
    // Signed for ListDatasetGroups without the target among the signed headers, sent as ListSchemas.
    let how = Signing { unsigned_target: true, ..Signing::default() };
    let head = signed_head(
        "POST",
        &addr,
        "/",
        &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "AmazonPersonalize.ListDatasetGroups")],
        b"{}",
        &Key::root(),
        how,
    )
    .replace("AmazonPersonalize.ListDatasetGroups", "AmazonPersonalize.ListSchemas");
    let r = raw_exchange_from(CLIENT, &addr, format!("{head}\r\n{{}}").as_bytes());
    assert_eq!((r.status, r.error_type.as_str()), (400, "IncompleteSignatureException"), "{r:?}");
    assert!(r.body.contains("X-Amz-Target"), "{}", r.body);
    assert!(stored_ids(&dir.path().join("data")).0.is_empty());
    server.stop();
}

/// Finding 7: the statistics add up every tenant, so only the root account reads them.
#[test]
fn stats_need_the_root_account_unless_public() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("a"), &[], &[]);
    let addr = server.addr();
    let get = |key: Option<&Key>| match key {
        Some(k) => signed_exchange(
            CLIENT,
            &addr,
            Call { method: "GET", path: "/_interlog/stats", headers: &[], body: b"" },
            k,
            Signing::default(),
        )
        .unwrap(),
        None => raw_exchange_from(
            CLIENT,
            &addr,
            format!("GET /_interlog/stats HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes(),
        ),
    };
    let r = get(None);
    assert_eq!((r.status, r.error_type.as_str()), (403, "MissingAuthenticationTokenException"));
    let r = get(Some(&partner()));
    assert_eq!((r.status, r.error_type.as_str()), (403, "AccessDeniedException"), "{r:?}");
    assert!(!r.body.contains("eventsStored"));
    let r = get(Some(&Key::root()));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("eventsStored"), "{}", r.body);
    let health =
        raw_exchange_from(CLIENT, &addr, format!("GET /_interlog/health HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes());
    assert_eq!(health.status, 200, "health stays open");
    drop(server);
    let server = start(&dir.path().join("b"), &["--public-stats"], &[]);
    let addr = server.addr();
    let r =
        raw_exchange_from(CLIENT, &addr, format!("GET /_interlog/stats HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    server.stop();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Finding 9: other local users read nothing of the store, start-up says when they could, and
/// the secret key is not taken from the command line.
#[test]
fn store_files_are_private_and_loose_permissions_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--export-dir", dir.path().join("exports").to_str().unwrap()], &[]);
    let data = dir.path().join("data");
    assert_eq!(
        put_events_signed(CLIENT, &server.addr(), &events_body(&server, &["m1"]), &Key::root()).unwrap().status,
        200
    );
    let folder = dir.path().join("exports").join(ROOT_ACCOUNT);
    let r = export_job(&server, &Key::root(), &default_dataset(), "modes", &format!("file://{}/", folder.display()));
    let arn: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(wait_job(&server, arn["datasetExportJobArn"].as_str().unwrap(), &Key::root())["status"], "ACTIVE");
    let mut modes = vec![("data dir".to_owned(), mode(&data))];
    for name in ["interlog.db", "interlog.db-wal", "interlog.db-shm", "interlog.lock"] {
        modes.push((name.to_owned(), mode(&data.join(name))));
    }
    modes.push(("export folder".into(), mode(&folder)));
    modes.push(("export file".into(), mode(&folder.join("modes.csv"))));
    eprintln!("modes: {}", modes.iter().map(|(w, m)| format!("{w} {m:04o}")).collect::<Vec<_>>().join(", "));
    for (what, m) in &modes {
        assert_eq!(m & 0o077, 0, "{what} has mode {m:o}");
    }
    server.stop();

    // An existing data dir and a credentials file open to others: the server says so.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let keys = dir.path().join("loose.toml");
    std::fs::write(&keys, format!("[[key]]\naccess_key_id = \"{PARTNER_KEY}\"\nsecret_access_key = \"{PARTNER_SECRET}\"\naccount_id = \"{PARTNER_ACCOUNT}\"\n")).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("loose.log");
    let server = start_on(&data, "127.0.0.1:0", &["--credentials-file", keys.to_str().unwrap()], &[], Some(&log));
    server.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("the data dir") && log.contains("mode 0755"), "{log}");
    assert!(log.contains("the credentials file") && log.contains("mode 0644"), "{log}");

    // The secret key has no flag (it would be in every user's `ps`).
    let out = std::process::Command::new(bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--root-secret-access-key", "visible-in-ps"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--root-secret-access-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Finding 8, the operator's side: a `--region` that is not a region name stops start-up.
#[test]
fn a_region_flag_that_is_not_a_region_name_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_output(&dir.path().join("data"), &["--region", "us-east-1:000000000000:x"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--region") && stderr.contains("not a region name"), "{stderr}");
}

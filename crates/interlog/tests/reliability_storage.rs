//! Storage faults: a full disk and a file system gone read-only answer 503 with a log line that
//! says why, acknowledge nothing that was not stored, and (full disk) recover by themselves; a
//! corrupt or foreign file in the data dir stops start-up with a message, never a panic.
//! The mount-based tests need root; without it they print why they are skipped.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A mount made by the test, lazily unmounted when dropped (even after a failed assertion).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Mounts a tmpfs of `size` on `dir`, or says why it cannot (not root, no mount permission).
fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
    std::fs::create_dir_all(dir).unwrap();
    run("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().unwrap()])?;
    Ok(Mount(dir.to_owned()))
}

/// Mounts a fresh ext4 image of `mib` MiB (`errors=remount-ro`, as production file systems are).
fn ext4(image: &Path, dir: &Path, mib: u64, options: &str) -> Result<Mount, String> {
    if !image.exists() {
        std::fs::File::create(image).unwrap().set_len(mib << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()])?;
    }
    std::fs::create_dir_all(dir).unwrap();
    run("mount", &["-o", &format!("loop,{options}"), image.to_str().unwrap(), dir.to_str().unwrap()])?;
    Ok(Mount(dir.to_owned()))
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why} (these tests need root to mount file systems)");
}

/// A refused request: its status, `x-amzn-ErrorType` and eventIds.
type Refusal = (u16, String, Vec<String>);

/// Sends `n` requests of 10 events of ~500 bytes each (long eventIds and itemIds fill the disk
/// faster); returns the acknowledged ids and the failed requests' (status, error type, ids).
fn send_batches(addr: &str, tracking_id: &str, prefix: &str, n: usize) -> (Vec<String>, Vec<Refusal>) {
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let padding = "x".repeat(200);
    for i in 0..n {
        let ids: Vec<String> = (0..10).map(|k| format!("{prefix}-{i}-{k}-{padding}")).collect();
        let events: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({"eventId": id, "eventType": "click", "sentAt": 1_700_000_000,
                    "itemId": format!("{id}{padding}").chars().take(256).collect::<String>()})
            })
            .collect();
        let body = serde_json::json!({"trackingId": tracking_id, "sessionId": "s", "eventList": events}).to_string();
        let reply = post_events(addr, body.as_bytes(), Duration::from_secs(30)).expect("an answer");
        if reply.status == 200 {
            acked.extend(ids);
        } else {
            failed.push((reply.status, reply.error_type, ids));
        }
    }
    (acked, failed)
}

/// Issue 18's scenario: the data dir on a 40 MB file system of which another file takes 20 MB;
/// 10-event requests until at least 20 were refused, then the other file goes. Every refusal
/// is an answered 503 `ServiceUnavailable` (never a closed connection), health says 503 while
/// the store cannot write, and within 10 s of space returning a PutEvents succeeds and health
/// is 200 again, without a restart; everything acknowledged is exported once.
#[test]
fn a_full_disk_answers_503_logs_why_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _mount = match tmpfs(&mnt, "40m") {
        Ok(m) => m,
        Err(why) => return skip("full disk", &why),
    };
    let data = mnt.join("data");
    let log = dir.path().join("server.log");
    let server = start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], Some(&log));
    let addr = server.addr();
    let (mut acked, failed) = send_batches(&addr, &server.tracking_id, "before", 20);
    assert!(failed.is_empty(), "{failed:?}");
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![7u8; 20 << 20]).unwrap();

    let mut errors = Vec::new();
    let started = Instant::now();
    let mut round = 0;
    while errors.len() < 20 {
        assert!(started.elapsed() < Duration::from_secs(120), "the store never refused 20 writes on a full disk");
        let (ok, failed) = send_batches(&addr, &server.tracking_id, &format!("full{round}"), 10);
        acked.extend(ok);
        errors.extend(failed);
        round += 1;
    }
    for (status, code, _) in &errors {
        assert_eq!((*status, code.as_str()), (503, "ServiceUnavailable"), "a full disk answered {status} {code}");
    }
    assert_eq!(health_status(&addr), 503, "health must tell a load balancer the store cannot write");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("full"), "no log line says the disk is full:\n{text}");

    // Space returns: a write succeeds within 10 s, without a restart, and health is 200 again.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let recovered = wait_until(Duration::from_secs(10), || {
        let (ok, _) = send_batches(&addr, &server.tracking_id, &format!("after-{}", acked.len()), 1);
        let done = !ok.is_empty();
        acked.extend(ok);
        done
    });
    assert!(recovered, "writes still fail 10 s after space returned");
    eprintln!("full disk: a PutEvents succeeded {:?} after space returned", freed.elapsed());
    assert!(wait_until(Duration::from_secs(5), || health_status(&addr) == 200), "health stays 503 after recovery");
    server.stop();

    let (stored, stats) = stored_ids(&data);
    let refused: HashSet<&String> = errors.iter().flat_map(|(_, _, ids)| ids).collect();
    eprintln!(
        "full disk: {} events acknowledged, {} requests refused, {} stored",
        acked.len(),
        errors.len(),
        stored.len()
    );
    assert!(acked.iter().all(|id| stored.get(id) == Some(&1)), "an acknowledged event is missing");
    assert!(refused.iter().all(|id| !stored.contains_key(*id)), "a refused request stored events");
    assert_eq!(stats.duplicates, 0);
    assert_eq!(integrity_check(&data), "ok");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("panicked"));
}

/// The status of `GET /_interlog/health` (0 when no answer came).
fn health_status(addr: &str) -> u16 {
    raw_exchange(
        addr,
        format!("GET /_interlog/health HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .map(|r| r.status)
    .unwrap_or(0)
}

/// The file system goes read-only under the server (ext4 `errors=remount-ro` after an error):
/// writes answer 503 with a log line, nothing refused is stored, what was acknowledged stays.
/// A data dir that is read-only from the start stops start-up with a message.
#[test]
fn a_read_only_file_system_answers_503_and_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("fs.img");
    let mnt = dir.path().join("mnt");
    let mount = match ext4(&image, &mnt, 32, "errors=remount-ro") {
        Ok(m) => m,
        Err(why) => return skip("read-only file system", &why),
    };
    let data = mnt.join("data");
    let log = dir.path().join("server.log");
    let server = start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], Some(&log));
    let addr = server.addr();
    let (acked, failed) = send_batches(&addr, &server.tracking_id, "before", 10);
    assert!(failed.is_empty(), "{failed:?}");

    // What ext4 does on a metadata error: the whole file system becomes read-only at once.
    let out = Command::new("findmnt").args(["-no", "SOURCE"]).arg(&mnt).output().unwrap();
    let device = String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("/dev/").to_owned();
    std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "interlog reliability test").unwrap();

    let (late, errors) = send_batches(&addr, &server.tracking_id, "read-only", 5);
    assert!(late.is_empty(), "acknowledged writes on a read-only file system: {late:?}");
    for (status, code, _) in &errors {
        assert!(
            (*status, code.as_str()) == (503, "ServiceUnavailable")
                || (*status, code.as_str()) == (500, "InternalFailure"),
            "a read-only file system answered {status} {code}"
        );
    }
    assert_eq!(health_status(&addr), 503, "a read-only store is not healthy");
    server.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.to_lowercase().contains("read"), "no log line says why:\n{text}");
    assert!(!text.contains("panicked"));
    let (stored, _) = stored_ids(&data);
    assert!(acked.iter().all(|id| stored.get(id) == Some(&1)));
    assert!(errors.iter().flat_map(|(_, _, ids)| ids).all(|id| !stored.contains_key(id)));

    // Read-only from the start (after the error, until repaired): start-up stops with a message.
    let start_log = dir.path().join("start.log");
    let refused = try_start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], Some(&start_log));
    assert!(refused.is_err(), "started on a read-only data dir");
    let text = std::fs::read_to_string(&start_log).unwrap();
    assert!(text.contains("cannot start") && text.contains("Read-only file system"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    // Repaired (fsck, mounted again), the store is whole and has every acknowledged event.
    drop(mount);
    assert!(wait_until(Duration::from_secs(10), || run("e2fsck", &["-fy", image.to_str().unwrap()]).is_ok()
        || run("e2fsck", &["-fy", image.to_str().unwrap()]).is_ok()));
    let _mount = ext4(&image, &mnt, 32, "errors=remount-ro").unwrap();
    assert_eq!(integrity_check(&data), "ok");
    let (stored, _) = stored_ids(&data);
    assert!(acked.iter().all(|id| stored.get(id) == Some(&1)));
}

/// A store with a few events, stopped: the material the corruption cases start from.
fn sample_store(dir: &Path) -> PathBuf {
    let data = dir.join("sample");
    let server = start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], None);
    for batch in 0..5 {
        let body = put_events_body(&server.tracking_id, &(0..10).map(|i| format!("s-{batch}-{i}")).collect::<Vec<_>>());
        assert_eq!(post_events(&server.addr(), body.as_bytes(), Duration::from_secs(10)).unwrap().status, 200);
    }
    server.stop();
    // Open and close the store once more: the last connection to close checkpoints the WAL into
    // the main file and removes it, so the cases below damage a file that holds the events.
    assert_eq!(integrity_check(&data), "ok");
    assert!(wait_until(Duration::from_secs(10), || !data.join("interlog.db-wal").exists()), "WAL not checkpointed");
    data
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn corrupt_or_foreign_files_stop_startup_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let sample = sample_store(dir.path());
    let db = std::fs::read(sample.join("interlog.db")).unwrap();
    assert!(db.len() >= 8192, "the sample store is one page");
    let page = u16::from_be_bytes([db[16], db[17]]) as usize;
    let page = if page == 1 { 65536 } else { page };

    let garbage: Vec<u8> = (0..db.len()).map(|i| (i * 7919 % 251) as u8).collect();
    let mut foreign = db.clone();
    foreign[68..72].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // PRAGMA application_id
    let mut pages_garbled = db.clone();
    for (i, b) in pages_garbled[page..].iter_mut().enumerate() {
        *b = (i * 31 % 253) as u8;
    }
    let truncated = db[..page].to_vec();
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("not a SQLite file", Some(garbage)),
        ("another program's SQLite file", Some(foreign)),
        ("every page after the first garbled", Some(pages_garbled)),
        ("truncated to its first page", Some(truncated)),
        ("a directory named interlog.db", None),
    ];
    for (name, content) in cases {
        let data = dir.path().join(name.replace(' ', "-"));
        copy_dir(&sample, &data);
        // The WAL and shared-memory files belong to the original; a corrupted main file comes alone.
        let _ = std::fs::remove_file(data.join("interlog.db-wal"));
        let _ = std::fs::remove_file(data.join("interlog.db-shm"));
        match content {
            Some(bytes) => std::fs::write(data.join("interlog.db"), bytes).unwrap(),
            None => {
                std::fs::remove_file(data.join("interlog.db")).unwrap();
                std::fs::create_dir(data.join("interlog.db")).unwrap();
            }
        }
        let log = dir.path().join(format!("{}.log", name.replace(' ', "-")));
        let result = try_start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], Some(&log));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        match result {
            Ok(server) => {
                // Starting is acceptable only if the damage is invisible: then the store must
                // still refuse to acknowledge anything it cannot keep.
                server.stop();
                panic!("{name}: started on a damaged store; log:\n{text}");
            }
            Err(status) => {
                assert!(!text.contains("panicked"), "{name}: panicked:\n{text}");
                assert!(status.contains("exit status: 1"), "{name}: {status}\n{text}");
                assert!(
                    text.contains(data.to_str().unwrap()),
                    "{name}: the message does not name the data dir:\n{text}"
                );
                eprintln!("{name}: {}", text.lines().last().unwrap_or_default());
            }
        }
    }

    // A garbage write-ahead log is SQLite's to ignore (its checksums fail): the store starts and
    // keeps what its main file holds.
    let data = dir.path().join("garbage-wal");
    copy_dir(&sample, &data);
    std::fs::write(data.join("interlog.db-wal"), vec![0x5a; 40_000]).unwrap();
    let server = start_on(&data, "127.0.0.1:0", &["--no-auth"], &[], None);
    server.stop();
    assert_eq!(stored_ids(&data).0.len(), 50);
    assert_eq!(integrity_check(&data), "ok");
}

//! `interlog_server::objects` against a real S3 no one here wrote: moto's server from the repo's
//! `.venv-boto3` (`moto[server]`, pinned in tests/python/requirements-boto3.txt; scripts/test
//! installs it before the Rust tests run), started on a free loopback port. Without it the test
//! prints SKIPPED and passes.
//!
//! Listing a key and a prefix, streaming reads (async and `std::io::Read`), single-PUT and
//! multipart writes read back byte for byte, an aborted upload leaving no object and no pending
//! multipart upload, and each failure's kind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use interlog_server::objects::{CredentialSource, ObjectErrorKind, Objects, S3Config, S3Credentials, S3Location};

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Option<Moto> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-boto3/bin/moto_server");
    if !bin.exists() {
        eprintln!("SKIPPED: {} not found (scripts/test installs tests/python/requirements-boto3.txt)", bin.display());
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("S3_UPLOAD_PART_MIN_SIZE", "1024")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

/// One unsigned HTTP/1.1 request to moto (which accepts them while it enforces no auth): the
/// status line and body.
fn raw(port: u16, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

fn objects(port: u16, part_size: usize) -> Objects {
    let creds: CredentialSource = Arc::new(|| {
        Ok(S3Credentials {
            access_key_id: "AKIDOBJECTSTEST00001".into(),
            secret_access_key: "objectsTestSecret0000000000000000000000x".into(),
            session_token: None,
            region: Some("us-east-1".into()),
            source: "test".into(),
        })
    });
    let mut config = S3Config::from_vars(&Default::default(), creds);
    config.endpoint = Some(format!("http://127.0.0.1:{port}"));
    config.part_size = part_size;
    Objects::new(config)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_through_a_real_s3() {
    let Some(moto) = moto() else { return };
    let (status, _) = raw(moto.port, "PUT", "/objects-test");
    assert!(status.contains("200"), "{status}");
    let s3 = objects(moto.port, 4096);
    let at = |key: &str| S3Location::parse(&format!("s3://objects-test/{key}")).unwrap();

    // Small: one PUT. Large: a multipart upload of 4 KiB parts.
    for (key, size) in [("dir/small.bin", 1000), ("dir/large.bin", 50_000)] {
        let mut w = s3.create(&at(key)).await.unwrap();
        for chunk in data(size).chunks(777) {
            w.write(chunk).await.unwrap();
        }
        assert_eq!(w.finish().await.unwrap(), size as u64);
        assert_eq!(s3.head(&at(key)).await.unwrap(), Some(size as u64));
        let mut r = s3.open(&at(key)).await.unwrap();
        assert_eq!(r.size, size as u64);
        let mut got = Vec::new();
        while let Some(chunk) = r.next_chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data(size), "{key}");
    }

    // The blocking adaptors, as an exporter or a CSV parser on a blocking thread uses them.
    let writer = s3.create(&at("dir/sub/blocking.bin")).await.unwrap();
    let reader_objects = s3.clone();
    let handle = tokio::runtime::Handle::current();
    let got = tokio::task::spawn_blocking(move || {
        let mut w = writer.into_blocking(handle.clone());
        w.write_all(&data(30_000)).unwrap();
        w.flush().unwrap();
        assert_eq!(w.finish().unwrap(), 30_000);
        let r = handle.block_on(reader_objects.open(&at("dir/sub/blocking.bin"))).unwrap();
        let mut got = Vec::new();
        r.into_blocking(handle).read_to_end(&mut got).unwrap();
        got
    })
    .await
    .unwrap();
    assert_eq!(got, data(30_000));

    // A prefix lists what is under it, in key order; a key lists itself.
    let keys = |infos: Vec<interlog_server::objects::ObjectInfo>| -> Vec<String> {
        infos.into_iter().map(|i| i.location.key).collect()
    };
    assert_eq!(keys(s3.list(&at("dir/")).await.unwrap()), ["dir/large.bin", "dir/small.bin", "dir/sub/blocking.bin"]);
    assert_eq!(keys(s3.list(&at("dir")).await.unwrap()), keys(s3.list(&at("dir/")).await.unwrap()));
    assert_eq!(keys(s3.list(&at("dir/small.bin")).await.unwrap()), ["dir/small.bin"]);
    assert!(s3.list(&at("nothing/")).await.unwrap().is_empty());

    // An upload given up after parts went up leaves neither an object nor a pending upload.
    let mut w = s3.create(&at("dir/aborted.bin")).await.unwrap();
    w.write(&data(20_000)).await.unwrap();
    w.abort().await;
    assert_eq!(s3.head(&at("dir/aborted.bin")).await.unwrap(), None);
    let (_, uploads) = raw(moto.port, "GET", "/objects-test?uploads");
    assert!(uploads.contains("ListMultipartUploadsResult") && !uploads.contains("<Upload>"), "{uploads}");
    // So does one dropped unfinished (its abort runs on the runtime).
    let mut w = s3.create(&at("dir/dropped.bin")).await.unwrap();
    w.write(&data(20_000)).await.unwrap();
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(30);
    while raw(moto.port, "GET", "/objects-test?uploads").1.contains("<Upload>") {
        assert!(Instant::now() < deadline, "the dropped upload was never aborted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s3.head(&at("dir/dropped.bin")).await.unwrap(), None);

    // Each failure names what to fix.
    let e = s3.create(&at("dir/small.bin")).await.err().expect("an existing key is not replaced");
    assert_eq!(e.kind, ObjectErrorKind::AlreadyExists);
    let e = s3.open(&at("dir/missing.bin")).await.err().unwrap();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ObjectErrorKind::NotFound, "s3://objects-test/dir/missing.bin does not exist")
    );
    let missing = S3Location::parse("s3://no-such-bucket/dir/").unwrap();
    let e = s3.list(&missing).await.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ObjectErrorKind::NoSuchBucket, "The bucket no-such-bucket does not exist")
    );
    let w = s3.create(&missing.join("x.bin")).await.unwrap();
    let e = w.finish().await.unwrap_err();
    assert_eq!(e.kind, ObjectErrorKind::NoSuchBucket, "{e}");
}

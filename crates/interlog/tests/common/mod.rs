//! Shared harness: the real `interlog` binary on a free port with its own data dir.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ROOT_KEY: &str = "AKIDINTERLOGROOT0001";
pub const ROOT_SECRET: &str = "rootSecretKeyForTheIntegrationTests00001";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_interlog")
}

/// A running `interlog serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub tracking_id: String,
    pub data_dir: PathBuf,
    pub banner: Vec<String>,
}

impl Server {
    /// Starts a server with the test root key on `data_dir` and waits until it prints its banner.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_with_env(
            data_dir,
            args,
            &[("INTERLOG_ACCESS_KEY_ID", ROOT_KEY), ("INTERLOG_SECRET_ACCESS_KEY", ROOT_SECRET)],
        )
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir).args(args);
        cmd.env_remove("INTERLOG_ACCESS_KEY_ID").env_remove("INTERLOG_SECRET_ACCESS_KEY").env_remove("INTERLOG_AUTH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn interlog");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let (mut endpoint, mut tracking_id) = (None, None);
        while endpoint.is_none()
            || tracking_id.is_none()
            || banner.last().map(|l: &String| !l.contains("export")).unwrap_or(true)
        {
            let line = rx.recv_timeout(Duration::from_secs(30)).expect("server printed its banner in time");
            if let Some(rest) = line.split(" listening on ").nth(1) {
                endpoint = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("tracking ID:") {
                tracking_id = Some(rest.trim().to_owned());
            }
            banner.push(line);
        }
        Server {
            child,
            endpoint: endpoint.unwrap(),
            tracking_id: tracking_id.unwrap(),
            data_dir: data_dir.to_owned(),
            banner,
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "interlog exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `interlog export --data-dir DIR --format jsonl`, parsed.
pub fn export_jsonl(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = export(data_dir, "jsonl");
    out.lines().map(|l| serde_json::from_str(l).expect("jsonl line")).collect()
}

pub fn export(data_dir: &Path, format: &str) -> String {
    let out = Command::new(bin())
        .args(["export", "--format", format, "--output", "-", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run interlog export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Reliability harness: fixed ports, captured logs, signals, raw HTTP and the store's own view.
// ---------------------------------------------------------------------------------------------

/// `interlog serve` on `listen` (so a restarted server keeps its port and clients their
/// endpoint), its stderr appended to `log` when given.
pub fn start_on(data_dir: &Path, listen: &str, args: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Server {
    match try_start_on(data_dir, listen, args, env, log) {
        Ok(server) => server,
        Err(why) => panic!("server did not start: {why}"),
    }
}

/// As [`start_on`], but a server that exits before its banner is an `Err` with its exit status.
pub fn try_start_on(
    data_dir: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> Result<Server, String> {
    try_start_keyed(data_dir, listen, args, env, log, true)
}

/// As [`try_start_on`]; with `root_key_from_env` false the test root key is not given, so the
/// server loads or makes its own (on PostgreSQL: the one the database keeps for every node).
pub fn try_start_keyed(
    data_dir: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
    log: Option<&Path>,
    root_key_from_env: bool,
) -> Result<Server, String> {
    let mut cmd = Command::new(bin());
    cmd.arg("serve").arg("--listen").arg(listen).arg("--data-dir").arg(data_dir).args(args);
    cmd.env_remove("INTERLOG_ACCESS_KEY_ID").env_remove("INTERLOG_SECRET_ACCESS_KEY").env_remove("INTERLOG_AUTH");
    cmd.env_remove("INTERLOG_DATABASE_URL");
    if root_key_from_env {
        cmd.env("INTERLOG_ACCESS_KEY_ID", ROOT_KEY).env("INTERLOG_SECRET_ACCESS_KEY", ROOT_SECRET);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stderr = match log {
        Some(path) => {
            Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the server log"))
        }
        None => Stdio::null(),
    };
    let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn interlog");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let (mut endpoint, mut tracking_id) = (None, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while endpoint.is_none()
        || tracking_id.is_none()
        || banner.last().map(|l: &String| !l.contains("export")).unwrap_or(true)
    {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(rest) = line.split(" listening on ").nth(1) {
                    endpoint = Some(rest.trim().to_owned());
                }
                if let Some(rest) = line.strip_prefix("tracking ID:") {
                    tracking_id = Some(rest.trim().to_owned());
                }
                banner.push(line);
            }
            Err(_) => {
                if let Some(status) = child.try_wait().expect("poll the server") {
                    return Err(format!("exited with {status} before its banner"));
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("no banner within 30 s".into());
                }
            }
        }
    }
    Ok(Server {
        child,
        endpoint: endpoint.unwrap(),
        tracking_id: tracking_id.unwrap(),
        data_dir: data_dir.to_owned(),
        banner,
    })
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the endpoint, for raw sockets.
    pub fn addr(&self) -> String {
        self.endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned()
    }

    /// Sends a signal by name (`KILL`, `TERM`, `INT`) without waiting.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL: the crash the store must survive.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `limit`; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many files (sockets included) the server has open, from `/proc/PID/fd`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("read /proc status");
        let line = status.lines().find(|l| l.starts_with(field)).expect("field in /proc status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a future to its end on a runtime of its own, in a thread of its own, so the store's
/// async API serves synchronous helpers whether or not the caller is inside a runtime.
fn on_own_runtime<T: Send>(future: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
        })
        .join()
        .expect("the helper thread panicked")
    })
}

/// What the store holds, as the export reads it: every stored eventId (the count is always 1:
/// the reader skips later copies) and the read's figures, where `duplicates` counts the later
/// copies that were stored and skipped. Read-only, so it works beside a running server.
pub fn stored_ids(data_dir: &Path) -> (std::collections::HashMap<String, u32>, interlog_store::export::ScanStats) {
    on_own_runtime(async {
        let store = interlog_store_sqlite::SqliteStore::open_read_only(data_dir).expect("open the store read-only");
        let (dataset, _) = interlog_store::export::interactions_of_group(&*store, None, None)
            .await
            .expect("the default group's interactions dataset");
        let mut ids = std::collections::HashMap::new();
        let stats = interlog_store::export::UniqueEvents::new(&*store, dataset.meta.id)
            .for_each(|e| {
                *ids.entry(e.interaction.event_id.clone()).or_insert(0) += 1;
                Ok(())
            })
            .await
            .expect("read the store");
        interlog_store::Store::close(&*store).await;
        (ids, stats)
    })
}

/// SQLite's `PRAGMA integrity_check` through the store (takes the data dir's lock: server stopped).
pub fn integrity_check(data_dir: &Path) -> String {
    on_own_runtime(async {
        let store = interlog_store_sqlite::SqliteStore::open(data_dir, Default::default()).expect("open the store");
        let result = store.integrity_check().await.expect("run the integrity check");
        interlog_store::Store::close(&*store).await;
        result
    })
}

/// A PutEvents body with one click per eventId.
pub fn put_events_body(tracking_id: &str, ids: &[String]) -> String {
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"eventId": id, "eventType": "click", "itemId": "item-1", "sentAt": 1_700_000_000}))
        .collect();
    serde_json::json!({"trackingId": tracking_id, "sessionId": "s1", "eventList": events}).to_string()
}

/// A parsed HTTP/1.1 answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `x-amzn-ErrorType`, empty on success.
    pub error_type: String,
    /// `x-amzn-RequestId`, empty when the answer has none.
    pub request_id: String,
    pub body: String,
}

/// `POST /events` with `body` over a new connection (no auth), waiting at most `limit`.
pub fn post_events(addr: &str, body: &[u8], limit: Duration) -> std::io::Result<Reply> {
    let mut request = format!(
        "POST /events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_exchange(addr, &request, limit)
}

/// Writes `request` on a new connection and reads one answer.
pub fn raw_exchange(addr: &str, request: &[u8], limit: Duration) -> std::io::Result<Reply> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(request)?;
    read_reply(&mut stream)
}

/// Reads one HTTP/1.1 answer (head and `content-length` body), skipping `100 Continue`.
pub fn read_reply(stream: &mut std::net::TcpStream) -> std::io::Result<Reply> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before an answer"));
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status == 100 {
            buf.drain(..end + 4);
            continue;
        }
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = buf[end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        return Ok(Reply {
            status,
            error_type: header("x-amzn-errortype").unwrap_or_default(),
            request_id: header("x-amzn-requestid").unwrap_or_default(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
}

/// True when the peer has closed `stream` (EOF or reset) within `limit`; bytes it sends first
/// (an error answer) are skipped.
pub fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// The soft limit of open files of this process, from `/proc`.
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| l.lines().find(|l| l.starts_with("Max open files"))?.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

// ---------------------------------------------------------------------------------------------
// Signed raw requests from chosen addresses (the security suite)
// ---------------------------------------------------------------------------------------------

/// A key to sign with, and the region of its credential scope.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
    pub region: String,
}

impl Key {
    /// The root key every test server is started with.
    pub fn root() -> Key {
        Key { id: ROOT_KEY.into(), secret: ROOT_SECRET.into(), region: "us-east-1".into() }
    }

    pub fn in_region(&self, region: &str) -> Key {
        Key { region: region.into(), ..self.clone() }
    }
}

/// How to sign.
#[derive(Clone, Copy, Debug, Default)]
pub struct Signing {
    /// Sign `UNSIGNED-PAYLOAD` instead of the body's hash.
    pub unsigned_payload: bool,
    /// Leave `x-amz-target` out of the signed headers.
    pub unsigned_target: bool,
}

/// The request head (without the blank line) of a SigV4-signed request, as botocore sends it.
pub fn signed_head(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    key: &Key,
    how: Signing,
) -> String {
    use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&key.id, &key.secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if how.unsigned_payload {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if how.unsigned_target {
        settings.excluded_headers = Some(vec![std::borrow::Cow::Borrowed("x-amz-target")]);
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&key.region)
        .name("personalize")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://{host}{path}");
    let signable_body = if how.unsigned_payload { SignableBody::UnsignedPayload } else { SignableBody::Bytes(body) };
    let signable = SignableRequest::new(method, &url, headers.iter().copied(), signable_body).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    for (name, value) in instructions.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    head
}

/// A TCP connection to `addr` from the loopback address `from` (any of 127.0.0.0/8), so tests
/// can be several clients as far as the per-address shares are concerned.
pub fn connect_from(from: &str, addr: &str) -> std::io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("a loopback address");
    socket.bind(&local.into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// A request to sign: method, path, headers (besides `host`, added by the signer) and body.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Sends one signed request from `from` and reads the answer.
pub fn signed_exchange(from: &str, addr: &str, call: Call<'_>, key: &Key, how: Signing) -> std::io::Result<Reply> {
    use std::io::Write;
    let mut stream = connect_from(from, addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = signed_head(call.method, addr, call.path, call.headers, call.body, key, how).into_bytes();
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(call.body);
    stream.write_all(&request)?;
    read_reply(&mut stream)
}

/// A control-plane call (`X-Amz-Target: AmazonPersonalize.<op>`) signed with `key`, from `from`.
pub fn control(from: &str, addr: &str, op: &str, body: &serde_json::Value, key: &Key) -> Reply {
    let target = format!("AmazonPersonalize.{op}");
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
    let body = body.to_string();
    let call = Call { method: "POST", path: "/", headers: &headers, body: body.as_bytes() };
    signed_exchange(from, addr, call, key, Signing::default()).unwrap_or_else(|e| panic!("{op}: {e}"))
}

/// A signed PutEvents from `from`.
pub fn put_events_signed(from: &str, addr: &str, body: &[u8], key: &Key) -> std::io::Result<Reply> {
    let call = Call { method: "POST", path: "/events", headers: &[("content-type", "application/json")], body };
    signed_exchange(from, addr, call, key, Signing::default())
}

/// Runs `interlog serve` (root key set) on `data_dir` with `args` to its exit, for start-up
/// failures; the caller asserts on the exit code and stderr.
pub fn serve_output(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("INTERLOG_AUTH")
        .env("INTERLOG_ACCESS_KEY_ID", ROOT_KEY)
        .env("INTERLOG_SECRET_ACCESS_KEY", ROOT_SECRET)
        .output()
        .expect("run interlog serve")
}

//! Exports are byte-identical across changes to the write path (issue 17): a corpus of requests
//! (`golden/export_corpus.json`: every member of every Put* operation, every property type, declared
//! and undeclared keys, refusals) is sent to an in-process server, and the answers and every
//! dataset's JSONL and CSV exports must equal `golden/export_corpus.expected`, which the code
//! before the compiled schemas produced; it was rewritten once since, when records and action
//! interactions began storing their flags and suspicious events got flags of their own (those
//! lines, and only those, changed). Only `receivedAt`, the server's clock, is blanked. A change
//! that means to alter an export rewrites the file and shows the diff in its commit.
//!
//! On SQLite always; on PostgreSQL too when `INTERLOG_TEST_DATABASE_URL` is set (the same file:
//! the engines store the same thing). `INTERLOG_GOLDEN_WRITE=1` rewrites the file instead of
//! comparing, from the server `INTERLOG_GOLDEN_SERVER` names (an `interlog` binary built from the
//! reference revision, run with `serve --no-auth`) or else the code under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use interlog_server::config::Config;
use interlog_server::startup::Application;
use serde_json::Value;

const CORPUS: &str = "tests/golden/export_corpus.json";
const EXPECTED: &str = "tests/golden/export_corpus.expected";
const DEFAULT_TRACKER: &str = "golden-default-tracker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_exports_match_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let got = run_corpus(dir.path(), None).await;
    compare(&got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exports_match_the_golden_file() {
    let Some(schema) = PgSchema::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let got = run_corpus(dir.path(), Some(schema.url())).await;
    compare(&got);
}

fn compare(got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    if std::env::var("INTERLOG_GOLDEN_WRITE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    if got != want {
        let at = got.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "the answers or exports differ from {EXPECTED} at line {}:\n got: {}\nwant: {}",
            at + 1,
            got.lines().nth(at).unwrap_or("<end>"),
            want.lines().nth(at).unwrap_or("<end>")
        );
    }
}

/// Sends every step of the corpus and returns the transcript: each data-plane answer and each export.
async fn run_corpus(data_dir: &Path, database_url: Option<String>) -> String {
    if let Ok(bin) = std::env::var("INTERLOG_GOLDEN_SERVER") {
        return run_on_binary(&bin, data_dir, database_url).await;
    }
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), data_dir.to_owned());
    config.database_url = database_url;
    config.default_tracking_id = Some(DEFAULT_TRACKER.into());
    config.auth.enabled = false;
    let app = Application::build(config).await.expect("the server starts");
    let addr = app.addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let out = send_corpus(addr).await;
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    out
}

/// The same against `interlog serve` of another build (the reference revision's).
async fn run_on_binary(bin: &str, data_dir: &Path, database_url: Option<String>) -> String {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--default-tracking-id", DEFAULT_TRACKER]);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(url) = &database_url {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start the reference server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("the banner").unwrap();
        if let Some(rest) = line.split(" listening on ").nth(1) {
            break rest.trim().trim_start_matches("http://").parse().expect("an address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let out = send_corpus(addr).await;
    child.kill().unwrap();
    child.wait().unwrap();
    out
}

async fn send_corpus(addr: SocketAddr) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS)).unwrap();
    let corpus: Vec<Value> = serde_json::from_str(&text).expect("the corpus is JSON");
    let mut saved: Vec<(String, String)> = Vec::new();
    let mut out = String::new();
    for step in corpus {
        let substitute = |body: &Value| {
            let mut text = body.to_string();
            for (name, value) in &saved {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            text
        };
        if let Some(op) = step["control"].as_str() {
            let body = substitute(&step["body"]);
            let target = format!("AmazonPersonalize.{op}");
            let reply = blocking(addr, "POST", "/", &[("x-amz-target", &target)], body.into_bytes()).await;
            assert_eq!(reply.status, 200, "{op}: {}", reply.body);
            if let Some(save) = step["save"].as_object() {
                let answer: Value = serde_json::from_str(&reply.body).unwrap();
                for (name, member) in save {
                    let mut value = answer[member.as_str().unwrap()].as_str().map(str::to_owned);
                    if value.is_none() {
                        // CreateDataset answers only the ARN; the tracking ID is in the description.
                        let arn = answer["datasetArn"].as_str().unwrap();
                        let body = serde_json::json!({ "datasetArn": arn }).to_string().into_bytes();
                        let target = [("x-amz-target", "AmazonPersonalize.DescribeDataset")];
                        let d = blocking(addr, "POST", "/", &target, body).await;
                        let d: Value = serde_json::from_str(&d.body).unwrap();
                        value = d["dataset"][member.as_str().unwrap()].as_str().map(str::to_owned);
                    }
                    saved.push((name.clone(), value.expect("the saved member")));
                }
            }
        } else if let Some(path) = step["put"].as_str() {
            let body = substitute(&step["body"]);
            let reply = blocking(addr, "POST", &format!("/{path}"), &[], body.into_bytes()).await;
            out.push_str(&format!("=== {path}: {}\n", step["note"].as_str().unwrap_or("")));
            out.push_str(&format!("{} {}\n{}\n", reply.status, reply.error_type, reply.body));
        } else {
            let format = step["format"].as_str().unwrap();
            let query = match step["export"].as_str() {
                Some(arn) => format!("/_interlog/export?format={format}&datasetArn={arn}"),
                None => format!("/_interlog/export?format={format}"),
            };
            let reply = blocking(addr, "GET", &query, &[], Vec::new()).await;
            assert_eq!(reply.status, 200, "{query}: {}", reply.body);
            out.push_str(&format!("=== export {} {format}\n", step["export"].as_str().unwrap_or("default group")));
            out.push_str(&blank_received_at(&reply.body));
        }
    }
    out
}

/// `"receivedAt":1764600000.123` → `"receivedAt":0`: the one member set by the server's clock.
fn blank_received_at(text: &str) -> String {
    const KEY: &str = "\"receivedAt\":";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        out.push_str(&rest[..at + KEY.len()]);
        out.push('0');
        rest = &rest[at + KEY.len()..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))).unwrap();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

struct Reply {
    status: u16,
    error_type: String,
    body: String,
}

async fn blocking(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let (method, path) = (method.to_owned(), path.to_owned());
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || exchange(addr, &method, &path, &headers, &body)).await.unwrap()
}

/// One HTTP/1.1 request on its own connection (`connection: close`), the answer read to the end.
fn exchange(addr: SocketAddr, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    let content_type = if headers.is_empty() { "application/json" } else { "application/x-amz-json-1.1" };
    head.push_str(&format!("content-type: {content_type}\r\ncontent-length: {}\r\n", body.len()));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
            .map(str::to_owned)
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        error_type: header("x-amzn-errortype").unwrap_or_default(),
        body: String::from_utf8(body).expect("a UTF-8 answer"),
    }
}

/// A schema of the test database of its own, dropped with everything in it.
struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    fn create() -> Option<PgSchema> {
        let admin_url = std::env::var("INTERLOG_TEST_DATABASE_URL").unwrap_or_default().trim().to_owned();
        if admin_url.is_empty() {
            eprintln!("SKIPPED postgres_exports_match_the_golden_file: INTERLOG_TEST_DATABASE_URL is not set");
            return None;
        }
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // The prefix of the engine's own tests, so a crashed run's schema is swept by them.
        let name = format!("interlog_test_{epoch}_{}_golden", std::process::id());
        psql(&admin_url, &format!("CREATE SCHEMA {name}"));
        Some(PgSchema { admin_url, name })
    }

    fn url(&self) -> String {
        let sep = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.admin_url, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        psql(&self.admin_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

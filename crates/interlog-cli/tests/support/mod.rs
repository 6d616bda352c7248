//! Replaying recorded aws-cli cases against `interlog_cli::run`: a capturing HTTP server that gives
//! each case its recorded reply, the case's working directory, files and environment, and a strict
//! comparison of what came out.
//!
//! The case format is the corpus README's (`tests/corpus/awscli-dataplane/README.md`). A case passes
//! when the exit code, stdout (the plain man page for `help`) and stderr are identical, and so is
//! every request: method, path, body bytes, and every header in order, except the values that differ
//! from run to run or by design: `X-Amz-Date`, the signature (compared too under the fixed clock),
//! `amz-sdk-invocation-id`, the `ttl=` of `amz-sdk-request`, and `User-Agent` (interlog names itself,
//! see the crate README). `--debug` cases compare their closing line and, under the fixed clock, the
//! CanonicalRequest / StringToSign / Signature blocks.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The port and clock of the `cli_fixed` cases (`tool`), as recorded.
const FIXED_PORT: u16 = 18765;
const FIXED_CLOCK_SECS: u64 = 1_704_067_200;

/// Cases that bind the fixed port run one at a time, whichever test thread runs them.
static FIXED_PORT_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Server {
    port: u16,
    captured: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    /// Frees the port: flag, wake, join.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn reply_for(mode: &Value, index: usize) -> Value {
    match mode.get("sequence").and_then(Value::as_array) {
        Some(seq) if !seq.is_empty() => seq[index.min(seq.len() - 1)].clone(),
        _ => mode.clone(),
    }
}

fn handle(stream: TcpStream, mode: &Value, captured: &Arc<Mutex<Vec<Captured>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let index = {
        let mut all = captured.lock().unwrap();
        all.push(Captured { method: method.clone(), path, headers, body });
        all.len() - 1
    };
    let mut stream = stream;
    if method == "CONNECT" {
        // Python's BaseHTTPRequestHandler has no do_CONNECT: it answers 501.
        let _ = stream.write_all(b"HTTP/1.0 501 Unsupported method ('CONNECT')\r\nConnection: close\r\n\r\n");
        return;
    }
    let reply = reply_for(mode, index);
    if let Some(sleep) = reply.get("sleep").and_then(Value::as_f64) {
        std::thread::sleep(Duration::from_secs_f64(sleep));
    }
    let status = reply.get("status").and_then(Value::as_u64).unwrap_or(200);
    let body = reply.get("body").and_then(Value::as_str).unwrap_or("");
    // What the recording server (Python's http.server) sent, in its order.
    let mut out = format!(
        "HTTP/1.0 {status} {}\r\nServer: BaseHTTP/0.6 Python/3.11.7\r\nDate: {}\r\n",
        reason(status),
        http_date()
    );
    if let Some(map) = reply.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            out.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap_or("")));
        }
    }
    out.push_str("x-amzn-RequestId: 11111111-2222-3333-4444-555555555555\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let _ = stream.write_all(out.as_bytes());
}

/// Python's `http.HTTPStatus` phrases for the statuses the corpora use.
fn reason(status: u64) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn http_date() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        weekdays[days.rem_euclid(7) as usize],
        months[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn start_server(mode: Value, port: u16) -> Result<Server, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().unwrap().port();
    let captured = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&captured);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let accept_thread = std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let mode = mode.clone();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || handle(stream, &mode, &shared));
        }
    });
    Ok(Server { port, captured, stop, accept_thread: Some(accept_thread) })
}

/// The cases of a corpus directory, sorted by file name; panics on an unreadable file.
pub fn load_corpus(dir: &Path) -> Vec<Value> {
    assert!(dir.is_dir(), "corpus not found at {}", dir.display());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The subcommand a case runs (`put-items`): `argv_template[2]`.
pub fn command(case: &Value) -> &str {
    case["argv_template"][2].as_str().unwrap_or("")
}

/// How a corpus was recorded: the shared corpora read the CLI's output in Python's text mode, whose
/// universal newlines turned the `\r` aws-cli writes (its usage text starts with one) into `\n`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Output bytes as written.
    Exact,
    /// Output through universal newlines: `\r\n` and `\r` read as `\n`.
    UniversalNewlines,
}

fn universal_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Runs every case and returns the failures (name and problems), after printing a summary.
pub fn replay_all(cases: &[Value], scratch_name: &str, recording: Recording) -> Vec<String> {
    let scratch = std::env::temp_dir().join(format!("interlog-cli-{scratch_name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut failed = Vec::new();
    let mut per_command: HashMap<&str, usize> = HashMap::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let problems = run_case(case, &scratch, recording);
        if problems.is_empty() {
            *per_command.entry(command(case)).or_default() += 1;
        } else {
            failed.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut counts: Vec<_> = per_command.into_iter().collect();
    counts.sort();
    for f in &failed {
        println!("FAIL {f}");
    }
    println!("{scratch_name}: {} passed {counts:?}, {} failed", cases.len() - failed.len(), failed.len());
    failed
}

/// The header values compared as they are; see the module documentation for the rest.
fn comparable_header(name: &str, value: &str, fixed: bool) -> Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "x-amz-date" | "amz-sdk-invocation-id" | "user-agent" => None,
        "authorization" if !fixed => {
            // The date in the credential scope and the signature change with the clock.
            let unsigned = value.split(", Signature=").next().unwrap_or(value);
            let masked: Vec<String> = unsigned
                .split('/')
                .map(|part| {
                    if part.len() == 8 && part.bytes().all(|b| b.is_ascii_digit()) {
                        "DATE".into()
                    } else {
                        part.into()
                    }
                })
                .collect();
            Some(masked.join("/"))
        }
        "amz-sdk-request" => {
            Some(value.split("; ").filter(|part| !part.starts_with("ttl=")).collect::<Vec<_>>().join("; "))
        }
        _ => Some(value.to_owned()),
    }
}

/// The CanonicalRequest, StringToSign and Signature lines of a `--debug` log, without timestamps.
fn signing_blocks(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in lines {
        if line.contains(" - botocore.auth - DEBUG - ") {
            inside =
                line.ends_with("CanonicalRequest:") || line.ends_with("StringToSign:") || line.ends_with("Signature:");
            if inside {
                out.push(line.split(" - DEBUG - ").nth(1).unwrap_or("").to_owned());
            }
        } else if line.contains(" - MainThread - ") {
            inside = false;
        } else if inside {
            out.push((*line).to_owned());
        }
    }
    out
}

fn run_case(case: &Value, scratch: &Path, recording: Recording) -> Vec<String> {
    let name = case["name"].as_str().unwrap();
    let fixed = case["tool"] == "cli_fixed";
    let _fixed_port = fixed.then(|| FIXED_PORT_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    let server = match start_server(case["server_mode"].clone(), if fixed { FIXED_PORT } else { 0 }) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let port = server.port.to_string();
    let case_dir = scratch.join(name);
    let cwd = case_dir.join("cwd");
    let home = case_dir.join("home");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let cwd_text = cwd.to_string_lossy().into_owned();
    let subst = |s: &str| {
        s.replace("{EP}", &format!("http://127.0.0.1:{port}"))
            .replace("{PORT}", &port)
            .replace("{CWD}", &cwd_text)
            .replace("127.0.0.1:18765", &format!("127.0.0.1:{port}"))
    };
    if let Some(files) = case["files"].as_object() {
        for (file, content) in files {
            let path = cwd.join(subst(file));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(path, subst(content.as_str().unwrap_or(""))).unwrap();
        }
    }
    let mut env: HashMap<String, String> = HashMap::from([
        ("HOME".into(), home.to_string_lossy().into_owned()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("TZ".into(), "UTC".into()),
        ("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        // Retry backoff in milliseconds instead of seconds keeps the suite fast.
        ("INTERLOG_CLI_RETRY_BASE_MS".into(), "5".into()),
    ]);
    if let Some(overrides) = case["env_overrides"].as_object() {
        for (k, v) in overrides {
            match v.as_str() {
                Some(s) => {
                    env.insert(k.clone(), subst(s));
                }
                None => {
                    env.remove(k);
                }
            }
        }
    }
    let argv: Vec<String> =
        case["argv_template"].as_array().unwrap().iter().map(|a| subst(a.as_str().unwrap())).collect();
    let requests = case["requests"].as_array().cloned().unwrap_or_default();
    let stdin: Option<Box<dyn Read + Send>> = match case["stdin"].as_str() {
        Some(text) => Some(Box::new(std::io::Cursor::new(subst(text).into_bytes()))),
        None => None,
    };
    let invocation = interlog_cli::Invocation {
        args: argv[3..].iter().map(OsString::from).collect(),
        env,
        cwd: cwd.clone(),
        stdin,
        fixed_clock: fixed.then(|| UNIX_EPOCH + Duration::from_secs(FIXED_CLOCK_SECS)),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = interlog_cli::run(&argv[2], invocation, &mut out, &mut err);
    let (mut stdout, mut stderr) =
        (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned());
    if recording == Recording::UniversalNewlines {
        (stdout, stderr) = (universal_newlines(&stdout), universal_newlines(&stderr));
    }
    // Connections are closed per request; give the server threads a moment.
    std::thread::sleep(Duration::from_millis(20));
    let got = server.captured.lock().unwrap().clone();
    drop(server);

    let mut problems = Vec::new();
    let expected_code = case["exit_code"].as_i64().unwrap();
    if i64::from(code) != expected_code {
        problems.push(format!("exit code {code}, expected {expected_code}"));
    }
    let expected_stdout = match case["stdout_plain"].as_str() {
        Some(plain) => plain.to_owned(),
        None => subst(case["stdout"].as_str().unwrap_or("")),
    };
    if stdout != expected_stdout {
        problems.push(format!("stdout {stdout:?}\n    expected {expected_stdout:?}"));
    }
    let expected_count = case["request_count"].as_u64().unwrap_or(0) as usize;
    if got.len() != expected_count {
        problems.push(format!("{} requests, expected {expected_count}", got.len()));
    }
    for (i, (want, have)) in requests.iter().zip(&got).enumerate() {
        if want["method"] != have.method.as_str() || want["path"] != have.path.as_str() {
            problems.push(format!(
                "request {i}: {} {}, expected {} {}",
                have.method, have.path, want["method"], want["path"]
            ));
        }
        let want_body = want["body"].as_str().unwrap_or("");
        let have_body = String::from_utf8_lossy(&have.body);
        if want_body != have_body {
            problems.push(format!("request {i}: body {have_body}\n    expected {want_body}"));
        }
        let want_headers: Vec<(String, Option<String>)> = want["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let (k, v) = (h[0].as_str().unwrap_or(""), subst(h[1].as_str().unwrap_or("")));
                        (k.to_ascii_lowercase(), comparable_header(k, &v, fixed))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let have_headers: Vec<(String, Option<String>)> =
            have.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), comparable_header(k, v, fixed))).collect();
        if want_headers != have_headers {
            problems.push(format!("request {i}: headers {have_headers:?}\n    expected {want_headers:?}"));
        }
    }
    match case["stderr"].as_str() {
        Some(expected) => {
            let expected = subst(expected);
            if stderr != expected {
                problems.push(format!("stderr {stderr:?}\n    expected {expected:?}"));
            }
        }
        None => {
            // --debug: interlog's log is not botocore's event trace, but it ends the same way.
            let last = |s: &str| s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            let want_last =
                case["stderr_last_lines"].as_array().and_then(|l| l.last()).and_then(Value::as_str).unwrap_or("");
            if expected_code != 0 && last(&stderr) != want_last {
                problems.push(format!("debug stderr ends {:?}, expected {want_last:?}", last(&stderr)));
            }
            let have_blocks = signing_blocks(&stderr.lines().collect::<Vec<_>>());
            if expected_code == 0 && have_blocks.is_empty() {
                problems.push("debug stderr lacks the CanonicalRequest block".into());
            }
            if fixed {
                let want: Vec<String> = case["stderr_signing_blocks"]
                    .as_array()
                    .map(|l| l.iter().filter_map(Value::as_str).map(subst).collect())
                    .unwrap_or_default();
                let want_blocks = signing_blocks(&want.iter().map(String::as_str).collect::<Vec<_>>());
                if have_blocks != want_blocks {
                    problems.push(format!("signing blocks {have_blocks:?}\n    expected {want_blocks:?}"));
                }
            }
        }
    }
    problems
}

//! Behaviours the corpus README documents but its case files do not cover:
//! help, skeletons, `--query`, profiles, endpoints from the environment,
//! missing region, connection failures and read timeouts.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("interlog-cli-behaviour-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base_env(home: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([
        ("HOME".into(), home.to_string_lossy().into_owned()),
        ("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("INTERLOG_CLI_RETRY_BASE_MS".into(), "1".into()),
    ])
}

fn run(args: &[&str], env: HashMap<String, String>, cwd: PathBuf) -> Output {
    let inv = interlog_cli::Invocation {
        args: args.iter().map(OsString::from).collect(),
        env,
        cwd,
        stdin: None,
        fixed_clock: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = interlog_cli::run_put_events(inv, &mut out, &mut err);
    Output { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

/// A server answering every request with 200 `{}` after `delay`; returns the
/// port and the captured (request line, authorization, body) triples.
/// Request line, Authorization header and body of each captured request.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

fn server(delay: Duration) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let (mut len, mut auth) = (0, String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
                if k.eq_ignore_ascii_case("authorization") {
                    auth = v.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            shared.lock().unwrap().push((line.trim().to_owned(), auth, String::from_utf8(body).unwrap()));
            std::thread::sleep(delay);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        }
    });
    (port, seen)
}

const EVENTS: &[&str] =
    &["--tracking-id", "t", "--session-id", "s", "--event-list", "eventType=click,sentAt=1700000000"];

#[test]
fn help_reads_like_the_man_page() {
    let dir = scratch("help");
    for flag in ["--help", "help"] {
        let out = run(&[flag], base_env(&dir), dir.clone());
        assert_eq!(out.code, 0);
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "GLOBAL OPTIONS",
            "Shorthand Syntax:",
            "JSON Syntax:",
            "--event-list (list)",
        ] {
            assert!(out.stdout.contains(section), "help lacks {section}");
        }
    }
}

#[test]
fn skeleton_input_prints_the_template_without_a_request() {
    let dir = scratch("skeleton");
    let out = run(&["--generate-cli-skeleton"], base_env(&dir), dir.clone());
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("{\n    \"trackingId\": \"\",\n    \"userId\": \"\",\n    \"sessionId\": \"\",\n    \"eventList\": [\n        {\n            \"eventId\": \"\","));
    assert!(out.stdout.ends_with("    ]\n}\n"));
}

#[test]
fn query_on_the_empty_output_prints_null() {
    let dir = scratch("query");
    let (port, _) = server(Duration::ZERO);
    let mut args =
        vec!["--endpoint-url".to_owned(), format!("http://127.0.0.1:{port}"), "--query".into(), "foo".into()];
    args.extend(EVENTS.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, base_env(&dir), dir.clone());
    assert_eq!((out.code, out.stdout.as_str()), (0, "null\n"));
}

#[test]
fn profile_files_and_endpoint_env() {
    let dir = scratch("profile");
    let (port, seen) = server(Duration::ZERO);
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(
        dir.join(".aws/credentials"),
        "[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = secret\n",
    )
    .unwrap();
    std::fs::write(dir.join(".aws/config"), "[profile dev]\nregion = eu-west-1\n").unwrap();
    let mut env = base_env(&dir);
    env.remove("AWS_DEFAULT_REGION");
    env.insert("AWS_REGION".into(), "ap-south-1".into()); // v1 ignores it
    env.insert("AWS_PROFILE".into(), "dev".into());
    env.insert("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS".into(), format!("http://127.0.0.1:{port}/prefix/"));
    env.remove("AWS_ACCESS_KEY_ID");
    env.remove("AWS_SECRET_ACCESS_KEY");
    let out = run(EVENTS, env, dir.clone());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "POST /prefix/events HTTP/1.1");
    assert!(seen[0].1.starts_with("AWS4-HMAC-SHA256 Credential=AKIDDEV/"), "{}", seen[0].1);
    assert!(seen[0].1.contains("/eu-west-1/personalize/aws4_request"));
}

#[test]
fn missing_region_is_reported_like_aws_cli() {
    let dir = scratch("noregion");
    let mut env = base_env(&dir);
    env.remove("AWS_DEFAULT_REGION");
    let out = run(EVENTS, env, dir.clone());
    assert_eq!(out.code, 255);
    assert_eq!(
        out.stderr,
        "You must specify a region. You can also configure your region by running \"aws configure\".\n"
    );
}

#[test]
fn connection_refused_after_five_attempts() {
    let dir = scratch("refused");
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut args = vec!["--endpoint-url", endpoint.as_str()];
    args.extend_from_slice(EVENTS);
    let out = run(&args, base_env(&dir), dir.clone());
    assert_eq!(out.code, 255);
    assert_eq!(out.stderr, format!("\nCould not connect to the endpoint URL: \"{endpoint}/events\"\n"));
}

#[test]
fn read_timeout_is_retried_then_reported() {
    let dir = scratch("timeout");
    let (port, seen) = server(Duration::from_millis(1500));
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut env = base_env(&dir);
    env.insert("AWS_MAX_ATTEMPTS".into(), "2".into());
    let mut args = vec!["--endpoint-url", endpoint.as_str(), "--cli-read-timeout", "1"];
    args.extend_from_slice(EVENTS);
    let out = run(&args, env, dir.clone());
    assert_eq!(out.code, 255);
    assert_eq!(out.stderr, format!("\nRead timeout on endpoint URL: \"{endpoint}/events\"\n"));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn bare_event_list_fails_min_length() {
    let dir = scratch("bare");
    let out = run(&["--tracking-id", "t", "--session-id", "s", "--event-list"], base_env(&dir), dir.clone());
    assert_eq!(out.code, 255);
    assert_eq!(
        out.stderr,
        "\nParameter validation failed:\nInvalid length for parameter eventList, value: 0, valid min length: 1\n"
    );
}

//! The `interlog` binary hands each aws-cli command to interlog-cli with its raw words: every
//! personalize-events command runs, prints its own help, and sends its request to its own path.
//! (What each command does is proven against recorded aws-cli runs in interlog-cli's tests.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// Accepts one request, answers 200 with an empty body, and returns its request line and body.
fn capture_one() -> (u16, std::thread::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        (request_line.trim().to_owned(), String::from_utf8(body).unwrap())
    });
    (port, handle)
}

fn interlog(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interlog"));
    cmd.args(args)
        .env_clear()
        .env("HOME", "/nonexistent-interlog-home")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    cmd
}

#[test]
fn every_command_sends_its_request_to_its_path() {
    let cases: [(&str, &[&str], &str, &str); 5] = [
        (
            "put-events",
            &["--tracking-id", "t", "--session-id", "s", "--event-list", "eventType=click,sentAt=1700000000"],
            "/events",
            r#"{"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1700000000}]}"#,
        ),
        (
            "put-items",
            &["--dataset-arn", "arn:aws:personalize:us-east-1:1:dataset/g/ITEMS", "--items", "itemId=i1"],
            "/items",
            r#"{"datasetArn": "arn:aws:personalize:us-east-1:1:dataset/g/ITEMS", "items": [{"itemId": "i1"}]}"#,
        ),
        (
            "put-users",
            &["--dataset-arn", "arn:aws:personalize:us-east-1:1:dataset/g/USERS", "--users", "userId=u1,properties=x"],
            "/users",
            r#"{"datasetArn": "arn:aws:personalize:us-east-1:1:dataset/g/USERS", "users": [{"userId": "u1", "properties": "x"}]}"#,
        ),
        (
            "put-actions",
            &[
                "--dataset-arn",
                "arn:aws:personalize:us-east-1:1:dataset/g/ACTIONS",
                "--actions",
                r#"[{"actionId": "a1"}]"#,
            ],
            "/actions",
            r#"{"datasetArn": "arn:aws:personalize:us-east-1:1:dataset/g/ACTIONS", "actions": [{"actionId": "a1"}]}"#,
        ),
        (
            "put-action-interactions",
            &[
                "--tracking-id",
                "t",
                "--action-interactions",
                "actionId=a1,sessionId=s,timestamp=2023-11-14T22:13:20Z,eventType=Taken",
            ],
            "/action-interactions",
            r#"{"trackingId": "t", "actionInteractions": [{"actionId": "a1", "sessionId": "s", "timestamp": 1700000000, "eventType": "Taken"}]}"#,
        ),
    ];
    for (command, args, path, body) in cases {
        let (port, server) = capture_one();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut all = vec![command, "--endpoint-url", &endpoint];
        all.extend_from_slice(args);
        let out = interlog(&all).output().unwrap();
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{command}: nothing to print");
        let (request_line, sent) = server.join().unwrap();
        assert_eq!(request_line, format!("POST {path} HTTP/1.1"), "{command}");
        assert_eq!(sent, body, "{command}");
    }
}

#[test]
fn every_command_has_its_help_and_argparse_errors() {
    for command in ["put-events", "put-items", "put-users", "put-actions", "put-action-interactions"] {
        let out = interlog(&[command, "help"]).output().unwrap();
        assert!(out.status.success(), "{command}");
        let page = String::from_utf8(out.stdout).unwrap();
        assert!(page.starts_with(&format!("{}()", command.to_uppercase())), "{command}: {page:.80}");
        assert!(page.contains("SYNOPSIS") && page.contains("--cli-input-json"), "{command}");

        let out = interlog(&[command, "--no-such-option"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}: a required option is missing");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("aws: error: the following arguments are required:"), "{command}: {stderr}");
    }
}

//! HTTPS: `interlog serve --tls-cert/--tls-key` with certificates made here (rcgen), reached by
//! `interlog put-events` with `--ca-bundle` and `--no-verify-ssl`; the certificate is reloaded
//! on SIGHUP, a bad one at start-up stops the server with a message, and a client that never
//! finishes its handshake is cut off. (aws-cli and boto3 against HTTPS: tests/python/test_tls.py.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// Writes a server certificate for 127.0.0.1 and localhost signed by `ca`, and the CA's bundle.
fn issue(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, dir: &Path, bundle: &str) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join(bundle), ca.pem()).unwrap();
}

/// `interlog put-events` against `endpoint` with `extra` options; exit code and stderr.
fn put_events(endpoint: &str, tracking_id: &str, home: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("put-events")
        .args(["--endpoint-url", endpoint, "--tracking-id", tracking_id, "--session-id", "tls"])
        .args(["--event-list", r#"[{"eventType":"click","itemId":"i1","sentAt":1700000000}]"#])
        .args(extra)
        .env_clear()
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn https_with_a_ca_bundle_or_without_verification_and_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path();
    let first = ca("interlog test CA 1");
    issue(&first, tls, "ca1.pem");
    let log = tls.join("server.log");
    let cert = tls.join("cert.pem");
    let key = tls.join("key.pem");
    let server = start_on(
        &tls.join("data"),
        "127.0.0.1:0",
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[("INTERLOG_HEADER_TIMEOUT_SECS", "2")],
        Some(&log),
    );
    let endpoint = server.endpoint.clone();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let ca1 = tls.join("ca1.pem");
    let ca2 = tls.join("ca2.pem");

    assert_eq!(
        put_events(&endpoint, &server.tracking_id, tls, &["--ca-bundle", ca1.to_str().unwrap()]),
        (0, String::new())
    );
    let (code, stderr) = put_events(&endpoint, &server.tracking_id, tls, &["--no-verify-ssl"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with("InsecureRequestWarning: Unverified HTTPS request is being made to host '127.0.0.1'"),
        "{stderr}"
    );
    let (code, stderr) = put_events(&endpoint, &server.tracking_id, tls, &[]);
    assert_eq!(code, 255);
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED") && stderr.contains("unable to get local issuer"), "{stderr}");

    // A renewed certificate (from another CA) is picked up on SIGHUP, without a restart.
    let second = ca("interlog test CA 2");
    issue(&second, tls, "ca2.pem");
    server.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("TLS certificate reloaded"))));
    let (code, stderr) = put_events(&endpoint, &server.tracking_id, tls, &["--ca-bundle", ca1.to_str().unwrap()]);
    assert_eq!(code, 255, "the old CA still verifies the server: {stderr}");
    assert_eq!(
        put_events(&endpoint, &server.tracking_id, tls, &["--ca-bundle", ca2.to_str().unwrap()]),
        (0, String::new())
    );
    // A broken file on reload keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.signal("HUP");
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("TLS certificate not reloaded"))));
    assert_eq!(
        put_events(&endpoint, &server.tracking_id, tls, &["--ca-bundle", ca2.to_str().unwrap()]),
        (0, String::new())
    );

    // A client that opens a connection and never says hello is cut off after the header timeout.
    let addr = endpoint.trim_start_matches("https://");
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(6)));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    let (stored, _) = stored_ids(&tls.join("data"));
    assert_eq!(stored.len(), 4, "one event per accepted call: {stored:?}");
    server.stop();
}

#[test]
fn an_unusable_certificate_stops_start_up_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = serve_output(
        &dir.path().join("data"),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-cert") && stderr.contains("cert.pem"), "{stderr}");
    // --tls-cert needs --tls-key.
    let out = Command::new(bin()).args(["serve", "--tls-cert", "x.pem"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

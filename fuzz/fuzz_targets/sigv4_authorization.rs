//! The SigV4 `Authorization` header parser, reached through the public verifier: the first line
//! of the input is the header, the second `X-Amz-Date`, the rest the body. Any input must end in
//! Ok or an AuthError, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use interlog_auth::{Credential, Keyring, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let root = Credential::new("AKIDFUZZ", "fuzzsecret", "000000000000").expect("credential");
        Verifier::new(Arc::new(Keyring::with_root(root)))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let authorization = parts.next().unwrap_or_default();
    let date = parts.next().unwrap_or(b"20240101T000000Z");
    let body = parts.next().unwrap_or_default();
    let mut request = http::Request::builder().method("POST").uri("/events").header("host", "localhost");
    // Header values that http refuses (control characters) never reach the server either.
    if let Ok(v) = http::HeaderValue::from_bytes(authorization) {
        request = request.header("authorization", v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(date) {
        request = request.header("x-amz-date", v);
    }
    let Ok(request) = request.body(()) else { return };
    let (parts, ()) = request.into_parts();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200);
    if let Err(e) = verifier().verify(&parts, body, now) {
        let _ = (e.code(), e.message());
    }
});

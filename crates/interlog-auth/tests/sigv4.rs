//! End-to-end checks of `Verifier`: AWS's published SigV4 vectors, real aws-cli requests,
//! and one test per way a request can fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use interlog_auth::{AuthError, Credential, Keyring, PathEncoding, Principal, Verifier};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const ACCOUNT: &str = "123456789012";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN";
/// 20240101T000000Z, the pinned clock of the aws-cli captures.
const CLI_NOW: u64 = 1_704_067_200;
/// 20150830T123600Z, the time of the AWS test suite.
const SUITE_NOW: u64 = 1_440_938_160;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A request as the server would see it.
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn verify(&self, verifier: &Verifier, now: SystemTime) -> Result<Principal, AuthError> {
        verifier.verify_request(&self.method, &self.uri, &self.headers, &self.body, now)
    }

    fn set(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        self
    }

    fn authorization(&self) -> String {
        self.headers["authorization"].to_str().unwrap().to_owned()
    }
}

fn keyring(credentials: impl IntoIterator<Item = Credential>) -> Arc<Keyring> {
    let mut keyring = Keyring::new();
    for (i, credential) in credentials.into_iter().enumerate() {
        keyring.insert(credential, format!("test key {i}")).unwrap();
    }
    Arc::new(keyring)
}

fn example_key() -> Credential {
    Credential::new(AKID, SECRET, ACCOUNT).unwrap()
}

fn cli_verifier() -> Verifier {
    Verifier::new(keyring([example_key()]))
}

// ---------------------------------------------------------------------------------------
// (a) AWS SigV4 test suite

/// Percent-encodes what cannot go on the wire as is (spaces, non-ASCII), as a client does.
fn wire_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b == b' ' || b >= 0x80 {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn parse_signed_request(text: &str) -> Req {
    let text = text.trim_end();
    let (head, body) = match text.split_once("\n\n") {
        Some((head, body)) => (head, body),
        None => (text, ""),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let request_line = request_line.strip_suffix(" HTTP/1.1").unwrap_or(request_line);
    let (method, target) = request_line.split_once(' ').unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        uri: wire_encode(target).parse().unwrap(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn suite_vector(name: &str) -> Req {
    let path = manifest_dir().join("tests/vectors").join(name).join("header-signed-request.txt");
    parse_signed_request(&std::fs::read_to_string(path).unwrap())
}

fn suite_verifier(service: &str, encoding: PathEncoding) -> Verifier {
    let keys = [example_key(), Credential::new("ANOTREAL", "notrealrnrELgWzOk3IfjzDKtFBhDby", ACCOUNT).unwrap()];
    Verifier::new(keyring(keys)).with_service(service).with_path_encoding(encoding)
}

fn assert_vector_verifies(name: &str, service: &str, encoding: PathEncoding, now: u64) {
    let req = suite_vector(name);
    let principal = req
        .verify(&suite_verifier(service, encoding), at(now))
        .unwrap_or_else(|err| panic!("{name}: {err:?}\n{}", err.detail().unwrap_or_default()));
    assert!(!principal.region.is_empty());
}

#[test]
fn aws_suite_vectors_with_aws_path_rules() {
    for name in [
        "get-vanilla",
        "get-vanilla-query",
        "get-vanilla-query-order-key-case",
        "get-vanilla-query-order-encoded",
        "get-vanilla-query-unreserved",
        "get-vanilla-empty-query-key",
        "get-vanilla-utf8-query",
        "get-unreserved",
        "post-vanilla",
        "post-vanilla-query",
        "post-vanilla-empty-query-value",
        "post-x-www-form-urlencoded",
        "post-x-www-form-urlencoded-parameters",
        "get-header-value-trim",
        "get-header-key-duplicate",
        "get-header-value-order",
        "post-header-key-case",
        "post-header-key-sort",
        "post-header-value-case",
        "get-slash-normalized",
        "get-slashes-normalized",
        "get-slash-dot-slash-normalized",
        "get-slash-pointless-dot-normalized",
        "get-relative-normalized",
        "get-relative-relative-normalized",
        "double-encode-path",
    ] {
        assert_vector_verifies(name, "service", PathEncoding::NormalizedDoubleEncoded, SUITE_NOW);
    }
}

#[test]
fn aws_suite_double_url_encode_vector() {
    // 20210511T154045Z, lambda in us-east-2.
    assert_vector_verifies("double-url-encode", "lambda", PathEncoding::NormalizedDoubleEncoded, 1_620_747_645);
}

#[test]
fn aws_suite_vectors_signed_with_single_encoding() {
    // These vectors sign the path the client meant (`/example space/`), which the wire
    // carries encoded once, so the canonical URI is the received path as is.
    for name in ["get-space-normalized", "get-utf8"] {
        assert_vector_verifies(name, "service", PathEncoding::NormalizedSingleEncoded, SUITE_NOW);
    }
    for name in [
        "get-space-unnormalized",
        "get-slash-unnormalized",
        "get-slashes-unnormalized",
        "get-relative-unnormalized",
        "get-relative-relative-unnormalized",
        "get-slash-dot-slash-unnormalized",
        "get-slash-pointless-dot-unnormalized",
    ] {
        assert_vector_verifies(name, "service", PathEncoding::Raw, SUITE_NOW);
    }
}

#[test]
fn aws_suite_session_token_vectors() {
    let key = |token: &str| Credential::new(AKID, SECRET, ACCOUNT).unwrap().with_session_token(token).unwrap();
    for name in ["get-vanilla-with-session-token", "post-sts-header-before"] {
        let req = suite_vector(name);
        let token = req.headers["x-amz-security-token"].to_str().unwrap();
        let verifier = Verifier::new(keyring([key(token)])).with_service("service");
        req.verify(&verifier, at(SUITE_NOW)).unwrap_or_else(|err| panic!("{name}: {err:?}"));
    }
    // The token is added after signing, so it is not signed: this server requires it to be.
    let req = suite_vector("post-sts-header-after");
    let token = req.headers["x-amz-security-token"].to_str().unwrap();
    let verifier = Verifier::new(keyring([key(token)])).with_service("service");
    let err = req.verify(&verifier, at(SUITE_NOW)).unwrap_err();
    assert_eq!(err.code(), "IncompleteSignatureException");
    assert!(err.message().contains("X-Amz-Security-Token"), "{err}");
}

#[test]
fn aws_suite_vector_fails_when_service_rules_differ() {
    // A path that needs double encoding does not verify when signed once, and vice versa:
    // the encoding mode really is part of the canonical request.
    let err = suite_vector("get-utf8")
        .verify(&suite_verifier("service", PathEncoding::NormalizedDoubleEncoded), at(SUITE_NOW))
        .unwrap_err();
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }));
}

// ---------------------------------------------------------------------------------------
// (b) Real aws-cli captures

fn awscli_cases() -> Vec<(String, serde_json::Value)> {
    // The `sig_*` cases of the aws-cli corpus, vendored here (the test suite reads nothing
    // outside the repository).
    let dirs = [manifest_dir().join("tests/awscli")];
    let mut cases = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("sig_") && name.ends_with(".json") {
                let json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                cases.push((path.display().to_string(), json));
            }
        }
    }
    assert!(cases.len() >= 3, "no aws-cli captures found");
    cases
}

fn awscli_request(case: &serde_json::Value, index: usize) -> Req {
    let request = &case["requests"][index];
    let mut headers = HeaderMap::new();
    for pair in request["headers"].as_array().unwrap() {
        headers.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    Req {
        method: Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap(),
        uri: request["path"].as_str().unwrap().parse().unwrap(),
        headers,
        body: request["body"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// The captured PutEvents request (content-type;host;x-amz-date signed).
fn cli_put_events() -> Req {
    let text = std::fs::read_to_string(manifest_dir().join("tests/awscli/sig_put_events_unicode.json")).unwrap();
    awscli_request(&serde_json::from_str(&text).unwrap(), 0)
}

fn cli_session_token_request() -> Req {
    let text = std::fs::read_to_string(manifest_dir().join("tests/awscli/sig_put_events_session_token.json")).unwrap();
    awscli_request(&serde_json::from_str(&text).unwrap(), 0)
}

fn session_key(token: &str) -> Credential {
    example_key().with_session_token(token).unwrap()
}

#[test]
fn every_awscli_capture_verifies() {
    let mut verified = 0;
    for (path, case) in awscli_cases() {
        let token = case["env_overrides"]["AWS_SESSION_TOKEN"].as_str();
        let key = match token {
            Some(token) => session_key(token),
            None => example_key(),
        };
        let verifier = Verifier::new(keyring([key]));
        for index in 0..case["requests"].as_array().unwrap().len() {
            let req = awscli_request(&case, index);
            let principal = req
                .verify(&verifier, at(CLI_NOW))
                .unwrap_or_else(|err| panic!("{path}: {err:?}\n{}", err.detail().unwrap_or_default()));
            assert_eq!(
                principal,
                Principal {
                    access_key_id: AKID.to_owned(),
                    account_id: ACCOUNT.to_owned(),
                    region: "us-east-1".to_owned(),
                }
            );
            verified += 1;
        }
    }
    assert!(verified >= 3);
}

#[test]
fn http_request_parts_entry_point() {
    let req = cli_put_events();
    let mut builder = http::Request::builder().method(req.method.clone()).uri(req.uri.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    cli_verifier().verify(&parts, &req.body, at(CLI_NOW)).unwrap();
}

#[test]
fn signing_key_cache_gives_the_same_answers() {
    let verifier = cli_verifier();
    let req = cli_put_events();
    for _ in 0..3 {
        req.verify(&verifier, at(CLI_NOW)).unwrap();
    }
    let mut tampered = req.clone();
    tampered.body.push(b' ');
    assert!(tampered.verify(&verifier, at(CLI_NOW)).is_err());
    req.verify(&verifier, at(CLI_NOW)).unwrap();
}

#[test]
fn clock_skew_up_to_fifteen_minutes_is_accepted() {
    let verifier = cli_verifier();
    let req = cli_put_events();
    req.verify(&verifier, at(CLI_NOW + 15 * 60)).unwrap();
    req.verify(&verifier, at(CLI_NOW - 15 * 60)).unwrap();
    req.verify(&verifier, at(CLI_NOW + 15 * 60 + 1)).unwrap_err();
}

// ---------------------------------------------------------------------------------------
// (c) One test per failure

fn expect_err(req: &Req, verifier: &Verifier, now: u64, code: &str) -> AuthError {
    let err = req.verify(verifier, at(now)).unwrap_err();
    assert_eq!(err.code(), code, "{err:?}");
    let shown = format!("{err} {err:?} {}", err.detail().unwrap_or_default());
    assert!(!shown.contains(SECRET), "secret leaked: {shown}");
    err
}

#[test]
fn missing_authorization_header() {
    let mut req = cli_put_events();
    req.headers.remove("authorization");
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "MissingAuthenticationTokenException");
    assert_eq!(err.message(), "Missing Authentication Token");
}

#[test]
fn malformed_authorization_headers() {
    let good = cli_put_events().authorization();
    let cases: Vec<(String, &str)> = vec![
        (good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), "Unsupported AWS 'algorithm'"),
        ("Bearer abc".to_owned(), "Unsupported AWS 'algorithm'"),
        (good.replace("Credential=", "Cred="), "Authorization header requires 'Credential' parameter"),
        (good.replace("SignedHeaders=", "Signed="), "Authorization header requires 'SignedHeaders' parameter"),
        (good.split(", Signature=").next().unwrap().to_owned(), "Authorization header requires 'Signature' parameter"),
        (good.replace("/aws4_request", ""), "exactly 5 slash-delimited elements"),
        (good.replace("/aws4_request", "/aws5_request"), "valid terminator"),
        (good.replace("/20240101/", "/2024-01-01/"), "YYYYMMDD"),
        (good.replace("/us-east-1/", "//"), "valid region"),
        (
            good.replace("content-type;host;x-amz-date", "content-type;x-amz-date"),
            "'Host' or ':authority' must be a 'SignedHeader'",
        ),
        (
            good.replace("content-type;host;x-amz-date", "content-type;host;x-amz-date;x-amz-target"),
            "Signed header 'x-amz-target' is not present",
        ),
    ];
    for (authorization, expected) in cases {
        let mut req = cli_put_events();
        req.set("authorization", &authorization);
        let err = expect_err(&req, &cli_verifier(), CLI_NOW, "IncompleteSignatureException");
        assert!(err.message().contains(expected), "{authorization}: {err}");
    }
}

#[test]
fn missing_or_malformed_date() {
    let mut req = cli_put_events();
    req.headers.remove("x-amz-date");
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "IncompleteSignatureException");
    assert!(err.message().contains("'X-Amz-Date' or a 'Date' header"), "{err}");

    let mut req = cli_put_events();
    req.set("x-amz-date", "2024-01-01T00:00:00Z");
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "IncompleteSignatureException");
    assert!(err.message().contains("ISO-8601 'basic format'"), "{err}");
}

#[test]
fn unknown_access_key() {
    let verifier = Verifier::new(keyring([Credential::new("AKIAOTHER", SECRET, ACCOUNT).unwrap()]));
    let err = expect_err(&cli_put_events(), &verifier, CLI_NOW, "UnrecognizedClientException");
    assert_eq!(err.message(), "The security token included in the request is invalid.");
}

#[test]
fn wrong_secret() {
    let verifier = Verifier::new(keyring([Credential::new(AKID, "not-the-secret", ACCOUNT).unwrap()]));
    let err = expect_err(&cli_put_events(), &verifier, CLI_NOW, "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    );
    let detail = err.detail().unwrap();
    assert!(
        detail.contains(
            "POST\n/events\n\ncontent-type:application/json\nhost:127.0.0.1:18765\nx-amz-date:20240101T000000Z\n"
        ),
        "{detail}"
    );
    assert!(!detail.contains("not-the-secret"));
}

#[test]
fn body_changed_after_signing() {
    let mut req = cli_put_events();
    req.body = String::from_utf8(req.body).unwrap().replace("tid-123", "tid-124").into_bytes();
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }));
}

#[test]
fn signed_header_changed_after_signing() {
    let mut req = cli_put_events();
    req.set("content-type", "application/x-amz-json-1.1");
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    let mut req = cli_put_events();
    req.set("host", "127.0.0.1:18766");
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
}

#[test]
fn unsigned_header_may_change() {
    let mut req = cli_put_events();
    req.set("user-agent", "something else").set("amz-sdk-request", "attempt=2");
    req.verify(&cli_verifier(), at(CLI_NOW)).unwrap();
}

#[test]
fn path_or_method_changed_after_signing() {
    let mut req = cli_put_events();
    req.uri = "/users".parse().unwrap();
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    let mut req = cli_put_events();
    req.method = Method::PUT;
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    let mut req = cli_put_events();
    req.uri = "/events?x=1".parse().unwrap();
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
}

#[test]
fn request_twenty_minutes_old() {
    let err = expect_err(&cli_put_events(), &cli_verifier(), CLI_NOW + 20 * 60, "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z (20240101T002000Z - 15 min.)"
    );
}

#[test]
fn request_twenty_minutes_in_the_future() {
    let err = expect_err(&cli_put_events(), &cli_verifier(), CLI_NOW - 20 * 60, "InvalidSignatureException");
    assert_eq!(
        err.message(),
        "Signature not yet current: 20240101T000000Z is still later than 20231231T235500Z (20231231T234000Z + 15 min.)"
    );
}

#[test]
fn wrong_service_in_scope() {
    let mut req = cli_put_events();
    let auth = req.authorization().replace("/personalize/", "/personalize-events/");
    req.set("authorization", &auth);
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert_eq!(err.message(), "Credential should be scoped to correct service: 'personalize'. ");
}

#[test]
fn scope_date_not_the_request_date() {
    let mut req = cli_put_events();
    let auth = req.authorization().replace("/20240101/", "/20231231/");
    req.set("authorization", &auth);
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(err.message().contains("'20231231' != '20240101', from '20240101T000000Z'"), "{err}");
}

#[test]
fn region_comes_from_the_scope() {
    // A different region changes the signing key, so the captured signature no longer
    // matches; the error is a signature mismatch, not a scope error.
    let mut req = cli_put_events();
    let auth = req.authorization().replace("/us-east-1/", "/eu-west-1/");
    req.set("authorization", &auth);
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(matches!(err, AuthError::SignatureDoesNotMatch { .. }));
}

#[test]
fn session_token_matches() {
    let verifier = Verifier::new(keyring([session_key(SESSION_TOKEN)]));
    cli_session_token_request().verify(&verifier, at(CLI_NOW)).unwrap();
}

#[test]
fn session_token_differs_from_the_keys() {
    let verifier = Verifier::new(keyring([session_key("another-token")]));
    let err = expect_err(&cli_session_token_request(), &verifier, CLI_NOW, "UnrecognizedClientException");
    assert!(err.detail().unwrap().contains("does not match"));
}

#[test]
fn session_token_sent_for_a_key_without_one() {
    let err = expect_err(&cli_session_token_request(), &cli_verifier(), CLI_NOW, "UnrecognizedClientException");
    assert!(!format!("{err:?}").contains(SESSION_TOKEN));
}

#[test]
fn session_token_missing_for_a_key_that_has_one() {
    let verifier = Verifier::new(keyring([session_key(SESSION_TOKEN)]));
    expect_err(&cli_put_events(), &verifier, CLI_NOW, "UnrecognizedClientException");
}

#[test]
fn session_token_present_but_not_signed() {
    let mut req = cli_put_events();
    req.set("x-amz-security-token", SESSION_TOKEN);
    let verifier = Verifier::new(keyring([session_key(SESSION_TOKEN)]));
    let err = expect_err(&req, &verifier, CLI_NOW, "IncompleteSignatureException");
    assert!(err.message().contains("X-Amz-Security-Token"), "{err}");
}

#[test]
fn content_sha256_header_must_match_the_body() {
    // Unsigned and declaring a different body: the canonical request then carries the
    // declared hash, and the mismatch with the body is reported.
    let mut req = cli_put_events();
    req.set("x-amz-content-sha256", &"0".repeat(64));
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(err.detail().unwrap().contains("x-amz-content-sha256"), "{err:?}");
}

#[test]
fn precedence_follows_aws() {
    // Malformed beats unknown key, unknown key beats wrong scope, scope beats expiry.
    let verifier = Verifier::new(keyring([Credential::new("AKIAOTHER", SECRET, ACCOUNT).unwrap()]));
    let mut req = cli_put_events();
    let auth = req.authorization().replace("content-type;host;", "content-type;");
    req.set("authorization", &auth);
    expect_err(&req, &verifier, CLI_NOW + 3600, "IncompleteSignatureException");
    expect_err(&cli_put_events(), &verifier, CLI_NOW + 3600, "UnrecognizedClientException");
    let mut req = cli_put_events();
    let auth = req.authorization().replace("/personalize/", "/s3/");
    req.set("authorization", &auth);
    let err = expect_err(&req, &cli_verifier(), CLI_NOW + 3600, "InvalidSignatureException");
    assert!(matches!(err, AuthError::InvalidScope { .. }));
}

#[test]
fn secret_never_appears_in_errors_or_debug() {
    let verifier = cli_verifier();
    let debug = format!("{verifier:?} {:?}", verifier.keyring());
    assert!(!debug.contains(SECRET), "{debug}");
    let mut req = cli_put_events();
    req.body.push(b'x');
    let err = req.verify(&verifier, at(CLI_NOW)).unwrap_err();
    let shown = format!("{err} {err:?} {}", err.detail().unwrap_or_default());
    assert!(!shown.contains(SECRET));
    assert!(!shown.contains("wJalrXUtnFEMI"));
}

// ---------------------------------------------------------------------------------------
// Requests signed here by aws-sigv4's own signer (an independent client implementation)

fn sign_with_aws_sigv4(req: &mut Req, time: SystemTime, token: Option<&str>) {
    sign_as(req, time, token, "eu-west-1", aws_sigv4::http_request::SigningSettings::default(), false);
}

/// Signs `req` with aws-sigv4's own signer: `settings` as given, the body hashed or (with
/// `unsigned_payload`) declared `UNSIGNED-PAYLOAD`.
fn sign_as(
    req: &mut Req,
    time: SystemTime,
    token: Option<&str>,
    region: &str,
    settings: aws_sigv4::http_request::SigningSettings,
    unsigned_payload: bool,
) {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest};
    use aws_sigv4::sign::v4::SigningParams;
    let identity = aws_credential_types::Credentials::new(AKID, SECRET, token.map(str::to_owned), None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("personalize")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let host = req.headers["host"].to_str().unwrap().to_owned();
    let uri = format!("http://{host}{}", req.uri);
    let headers: Vec<(String, String)> =
        req.headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    let body = if unsigned_payload { SignableBody::UnsignedPayload } else { SignableBody::Bytes(&req.body) };
    let signable =
        SignableRequest::new(req.method.as_str(), &uri, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), body)
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        req.headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
}

fn control_plane_request() -> Req {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost:8080"));
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert("x-amz-target", HeaderValue::from_static("AmazonPersonalize.ListEventTrackers"));
    headers.insert("x-custom", HeaderValue::from_static("  a    b  "));
    Req {
        method: Method::POST,
        uri: "/base/?b=2&a=%2F x".replace(' ', "%20").parse().unwrap(),
        headers,
        body: br#"{"maxResults": 5}"#.to_vec(),
    }
}

#[test]
fn requests_signed_by_aws_sigv4_verify() {
    let mut req = control_plane_request();
    sign_with_aws_sigv4(&mut req, at(CLI_NOW + 42), None);
    let principal = req.verify(&cli_verifier(), at(CLI_NOW)).unwrap();
    assert_eq!(principal.region, "eu-west-1");
    assert_eq!(principal.account_id, ACCOUNT);

    let mut req = control_plane_request();
    sign_with_aws_sigv4(&mut req, at(CLI_NOW), Some(SESSION_TOKEN));
    let verifier = Verifier::new(keyring([session_key(SESSION_TOKEN)]));
    req.verify(&verifier, at(CLI_NOW)).unwrap();
}

#[test]
fn date_header_instead_of_x_amz_date() {
    // No signer at hand sends only `Date`, so build that request's signature from its
    // canonical request by the book, with aws-sigv4's key derivation.
    use sha2::{Digest, Sha256};
    let date = "Mon, 01 Jan 2024 00:00:00 GMT";
    let body = b"{}";
    let canonical =
        format!("POST\n/\n\ndate:{date}\nhost:localhost\n\ndate;host\n{}", hex::encode(Sha256::digest(body)));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n20240101T000000Z\n20240101/us-east-1/personalize/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key(SECRET, at(CLI_NOW), "us-east-1", "personalize");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    let mut req =
        Req { method: Method::POST, uri: "/".parse().unwrap(), headers: HeaderMap::new(), body: body.to_vec() };
    req.set("host", "localhost").set("date", date).set(
        "authorization",
        &format!("AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-east-1/personalize/aws4_request, SignedHeaders=date;host, Signature={signature}"),
    );
    req.verify(&cli_verifier(), at(CLI_NOW + 60)).unwrap();

    // X-Amz-Date, when present, is the request time and goes into the string to sign.
    req.set("x-amz-date", "20240101T000001Z");
    expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
}

#[test]
fn host_from_the_uri_authority_when_there_is_no_host_header() {
    // HTTP/2 carries the host as `:authority`, which `http` puts in the URI.
    let mut req = cli_put_events();
    req.headers.remove("host");
    req.uri = "http://127.0.0.1:18765/events".parse().unwrap();
    req.verify(&cli_verifier(), at(CLI_NOW)).unwrap();
}

#[test]
fn root_key_and_credentials_file_keys_all_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds.toml");
    std::fs::write(
        &file,
        format!("[[key]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n"),
    )
    .unwrap();
    let root = interlog_auth::load_or_create_root_key(&interlog_auth::RootKeyConfig {
        data_dir: dir.path().join("data"),
        ..Default::default()
    })
    .unwrap();
    let mut keys = Keyring::with_root(root.credential.clone());
    assert_eq!(keys.load_credentials_file(&file).unwrap(), 1);
    let verifier = Verifier::new(Arc::new(keys));
    let principal = cli_put_events().verify(&verifier, at(CLI_NOW)).unwrap();
    assert_eq!(principal.account_id, ACCOUNT);
    assert!(verifier.keyring().get(root.credential.access_key_id()).is_some());
}

/// Rough timing of the hot path; run with
/// `cargo test --release -p interlog-auth --test sigv4 -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a correctness check"]
fn timing_of_a_3_5_kb_put_events() {
    let mut req = cli_put_events();
    req.body = format!(
        r#"{{"trackingId": "tid-123", "sessionId": "sess-1", "eventList": [{}]}}"#,
        vec![r#"{"eventType": "click", "sentAt": 1700000000, "itemId": "item-0001", "properties": "{\"numberOfRatings\": \"12\"}"}"#; 32].join(", ")
    )
    .into_bytes();
    req.body.truncate(3584);
    req.headers.remove("authorization");
    sign_with_aws_sigv4(&mut req, at(CLI_NOW), None);
    let verifier = Verifier::new(keyring([example_key()]));
    let iterations = 50_000;
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(req.verify(&verifier, at(CLI_NOW)).unwrap());
    }
    let per = start.elapsed() / iterations;
    println!("verify of a {} byte request: {per:?} each", req.body.len());
    let start = std::time::Instant::now();
    for _ in 0..iterations {
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(std::hint::black_box(&req.body)));
    }
    println!("sha-256 of the body alone: {:?} each", start.elapsed() / iterations);
}

// ---------------------------------------------------------------------------------------
// (d) Security: what an attacker who knows an access key ID (or captured one request) tries

/// Signs `req` with aws-sigv4 in `region`, the payload either hashed or `UNSIGNED-PAYLOAD`
/// (with the `x-amz-content-sha256` header either way), leaving `excluded` headers unsigned.
fn sign_custom(req: &mut Req, region: &str, unsigned_payload: bool, excluded: &[&'static str]) {
    use aws_sigv4::http_request::{PayloadChecksumKind, SigningSettings};
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.excluded_headers = Some(excluded.iter().map(|h| std::borrow::Cow::Borrowed(*h)).collect());
    sign_as(req, at(CLI_NOW), None, region, settings, unsigned_payload);
}

/// Finding 6: a request signed with `UNSIGNED-PAYLOAD` could be replayed with any body.
#[test]
fn unsigned_payload_is_refused_even_when_correctly_signed() {
    let mut req = control_plane_request();
    sign_custom(&mut req, "us-east-1", true, &[]);
    assert_eq!(req.headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(matches!(err, AuthError::UnsignedPayload), "{err:?}");
    assert!(err.message().contains("UNSIGNED-PAYLOAD"), "{err}");
    // ... before the body is needed, and the same request with its hash signed verifies.
    assert!(matches!(
        cli_verifier().check_before_body(&req.uri, &req.headers, at(CLI_NOW)),
        Err(AuthError::UnsignedPayload)
    ));
    let mut req = control_plane_request();
    sign_custom(&mut req, "us-east-1", false, &[]);
    req.verify(&cli_verifier(), at(CLI_NOW)).unwrap();
}

/// Finding 6: a request signed for one operation must not be replayable as another by
/// changing an unsigned `X-Amz-Target`.
#[test]
fn an_unsigned_x_amz_target_is_refused() {
    let mut req = control_plane_request();
    sign_custom(&mut req, "us-east-1", false, &["x-amz-target"]);
    assert!(!req.authorization().contains("x-amz-target"), "{}", req.authorization());
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "IncompleteSignatureException");
    assert!(err.message().contains("'X-Amz-Target' must be a 'SignedHeader'"), "{err}");
    req.set("x-amz-target", "AmazonPersonalize.ListSchemas");
    expect_err(&req, &cli_verifier(), CLI_NOW, "IncompleteSignatureException");
}

/// Findings 4 and 8: the region is checked before anything is derived from it; it can never
/// forge an ARN field or grow anything.
#[test]
fn regions_that_are_not_region_names_are_refused() {
    for region in ["us-east-1:000000000000:dataset-group", "US-EAST-1", "eu_west_1", "a.b", &"a".repeat(33)] {
        let mut req = control_plane_request();
        sign_custom(&mut req, region, false, &[]);
        let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
        assert!(matches!(err, AuthError::InvalidScope { .. }), "{region}: {err:?}");
        assert!(err.message().contains("valid region"), "{err}");
        assert!(cli_verifier().check_before_body(&req.uri, &req.headers, at(CLI_NOW)).is_err());
    }
    // A 200 KB region is refused with a message of bounded size.
    let mut req = cli_put_events();
    let auth = req.authorization().replace("/us-east-1/", &format!("/{}/", "r".repeat(200_000)));
    req.set("authorization", &auth);
    let err = expect_err(&req, &cli_verifier(), CLI_NOW, "InvalidSignatureException");
    assert!(err.message().len() < 400, "{} bytes", err.message().len());
    let mut req = control_plane_request();
    sign_custom(&mut req, &"a".repeat(32), false, &[]);
    req.verify(&cli_verifier(), at(CLI_NOW)).unwrap();
}

/// Finding 4: a wrong signature adds nothing to the signing-key cache, whatever scope it names.
#[test]
fn only_matching_signatures_fill_the_signing_key_cache() {
    let verifier = cli_verifier();
    for i in 0..4000 {
        let mut req = control_plane_request();
        sign_custom(&mut req, &format!("r{i:0>31}"), false, &[]);
        let auth = req.authorization();
        let forged = format!("{}Signature=00", &auth[..auth.find("Signature=").unwrap()]);
        req.set("authorization", &forged);
        expect_err(&req, &verifier, CLI_NOW, "InvalidSignatureException");
    }
    assert_eq!(verifier.cached_signing_keys(), 0);
    let mut req = control_plane_request();
    sign_custom(&mut req, "eu-central-1", false, &[]);
    req.verify(&verifier, at(CLI_NOW)).unwrap();
    req.verify(&verifier, at(CLI_NOW)).unwrap();
    assert_eq!(verifier.cached_signing_keys(), 1);
}

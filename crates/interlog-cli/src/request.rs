//! High-level request: resolve region, endpoint, credentials and retry
//! policy, sign with SigV4 as `personalize`, send, and retry like botocore's
//! legacy (or standard) mode.
//!
//! Signing is `aws-sigv4`'s; this module only decides what goes in: the
//! `content-type` and `host` headers (so the signed set is
//! `content-type;host;x-amz-date[;x-amz-security-token]`, as botocore's) and
//! the exact body bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::config::Credentials;
use crate::http::{self, Failure, Response, Url};
use crate::output::DebugLog;
use crate::pyjson::{loads, DictKind, Value};
use crate::timestamp::civil_from_days;

/// Which botocore retry mode is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// aws-cli v1's default: 5 attempts, `rand * 2^(n-1)` seconds.
    Legacy,
    /// `AWS_RETRY_MODE=standard`: 3 attempts, capped exponential backoff.
    Standard,
}

impl RetryMode {
    /// The name used in `cfg/retry-mode#…`.
    pub fn name(self) -> &'static str {
        match self {
            RetryMode::Legacy => "legacy",
            RetryMode::Standard => "standard",
        }
    }
}

/// Everything needed to send one call.
pub struct Plan {
    /// The endpoint (scheme, host, port, path prefix).
    pub endpoint: Url,
    /// The signing region.
    pub region: String,
    /// `None` with `--no-sign-request`.
    pub credentials: Option<Credentials>,
    /// Transport settings.
    pub http: http::Settings,
    /// Retry mode and total attempts.
    pub retry_mode: RetryMode,
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// Backoff unit in milliseconds (1000 in production).
    pub retry_base_ms: u64,
    /// A fixed signing clock, for reproducible signatures in tests.
    pub fixed_clock: Option<SystemTime>,
}

/// How the call ended.
pub enum Outcome {
    /// A 2xx response.
    Success(Response),
    /// A service error: code, message, and whether retries ran out.
    ServiceError { code: String, message: String, retries_exhausted: Option<u32> },
    /// A transport failure after all attempts.
    Transport(String),
}

fn now(plan: &Plan) -> SystemTime {
    plan.fixed_clock.unwrap_or_else(SystemTime::now)
}

/// `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn uuid4() -> String {
    let mut b = [0u8; 16];
    for byte in &mut b {
        *byte = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The User-Agent: honest about being interlog, in botocore's layout.
fn user_agent(mode: RetryMode) -> String {
    format!(
        "interlog-cli/{} ua/2.1 os/{}#unknown md/arch#{} lang/rust cfg/retry-mode#{} (aws-cli/1.46.3 compatible)",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        mode.name()
    )
}

/// Sends the body to the operation's `request_uri` (`/events`) under the
/// endpoint's path, with retries; `log` receives `--debug` lines.
pub fn execute(plan: &Plan, request_uri: &str, body: &[u8], log: &mut DebugLog<'_>) -> Outcome {
    let url_text = format!("{}{}{request_uri}", plan.endpoint.origin(), plan.endpoint.path);
    let path = format!("{}{request_uri}", plan.endpoint.path);
    let invocation_id = uuid4();
    let mut skew_seconds: Option<i64> = None;
    let mut attempt = 1;
    loop {
        let sdk_request = match (attempt, plan.retry_mode, skew_seconds) {
            // botocore adds `max` (and `ttl`) to the retry context only once it retries, in both modes.
            (1, _, _) => "attempt=1".to_owned(),
            (n, _, Some(skew)) if n > 1 => {
                let read_timeout = plan.http.read_timeout.map_or(0, |d| d.as_secs() as i64);
                let base = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                let ttl = UNIX_EPOCH + Duration::from_secs((base + read_timeout + skew).max(0) as u64);
                format!("ttl={}; attempt={n}; max={}", amz_date(ttl), plan.max_attempts)
            }
            (n, _, _) => format!("attempt={n}; max={}", plan.max_attempts),
        };
        let head = match build_head(plan, &path, &url_text, body, &invocation_id, &sdk_request, log) {
            Ok(head) => head,
            Err(msg) => return Outcome::Transport(msg),
        };
        log.line("botocore.endpoint", &format!("Sending http request: POST {url_text} (attempt {attempt})"));
        let result = http::send(&plan.endpoint, &head, body, &plan.http);
        let (retryable, outcome) = match result {
            Ok(response) => {
                log.line(
                    "urllib3.connectionpool",
                    &format!(
                        "{} \"POST {path} HTTP/1.1\" {} {}",
                        plan.endpoint.origin(),
                        response.status,
                        response.body.len()
                    ),
                );
                log.line("botocore.parsers", &format!("Response headers: {:?}", response.headers));
                log.line("botocore.parsers", &format!("Response body:\n{}", String::from_utf8_lossy(&response.body)));
                skew_seconds = Some(clock_skew(&response));
                if (200..300).contains(&response.status) {
                    return Outcome::Success(response);
                }
                let (code, message) = parse_error(&response);
                let retryable = is_retryable(plan.retry_mode, response.status, &code);
                (retryable, Outcome::ServiceError { code, message, retries_exhausted: None })
            }
            Err(failure) => {
                skew_seconds = None;
                let message = match &failure {
                    Failure::Connect => format!("Could not connect to the endpoint URL: \"{url_text}\""),
                    Failure::ConnectTimeout => format!("Connect timeout on endpoint URL: \"{url_text}\""),
                    Failure::ReadTimeout => format!("Read timeout on endpoint URL: \"{url_text}\""),
                    Failure::Closed => format!(
                        "Connection was closed before we received a valid response from endpoint URL: \"{url_text}\"."
                    ),
                    Failure::Proxy(proxy) => format!("Failed to connect to proxy URL: \"{proxy}\""),
                    Failure::Tls(e) => format!("SSL validation failed for {url_text} {e}"),
                };
                log.line("botocore.endpoint", &format!("Exception received when sending HTTP request: {message}"));
                (true, Outcome::Transport(message))
            }
        };
        if !retryable {
            log.line("botocore.retryhandler", "No retry needed.");
            return outcome;
        }
        if attempt >= plan.max_attempts {
            log.line("botocore.retryhandler", "Reached the maximum number of retry attempts");
            return match outcome {
                Outcome::ServiceError { code, message, .. } => {
                    Outcome::ServiceError { code, message, retries_exhausted: Some(attempt - 1) }
                }
                other => other,
            };
        }
        let factor = 2f64.powi(attempt as i32 - 1);
        let mut delay_ms = fastrand::f64() * plan.retry_base_ms as f64 * factor;
        if plan.retry_mode == RetryMode::Standard {
            delay_ms = delay_ms.min(20.0 * plan.retry_base_ms as f64);
        }
        log.line("botocore.retryhandler", &format!("Retry needed, action of: {:.6}", delay_ms / 1000.0));
        std::thread::sleep(Duration::from_micros((delay_ms * 1000.0) as u64));
        attempt += 1;
    }
}

fn clock_skew(response: &Response) -> i64 {
    let Some(date) = response.header("date") else { return 0 };
    let Ok(server) = crate::timestamp::to_epoch_seconds(&Value::Str(date.to_owned())) else { return 0 };
    let local = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    server - local
}

#[allow(clippy::too_many_arguments)]
/// Signs a request with aws-sigv4 as `personalize` over exactly `headers` and `body`; returns
/// the headers to add (lower-case names: x-amz-date, authorization, x-amz-security-token) and
/// the signature.
pub(crate) fn sign_v4(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    creds: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(Vec<(String, String)>, String), String> {
    let identity: aws_smithy_runtime_api::client::identity::Identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        creds.session_token.clone(),
        None,
        "interlog",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("personalize")
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, signature) =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let signed = instructions.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect();
    Ok((signed, signature))
}

fn build_head(
    plan: &Plan,
    path: &str,
    url_text: &str,
    body: &[u8],
    invocation_id: &str,
    sdk_request: &str,
    log: &mut DebugLog<'_>,
) -> Result<String, String> {
    let host = plan.endpoint.host_header();
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), host.clone()),
        ("Accept-Encoding".into(), "identity".into()),
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), user_agent(plan.retry_mode)),
    ];
    if let Some(creds) = &plan.credentials {
        let time = now(plan);
        let (signed, signature) =
            sign_v4("POST", url_text, &[("content-type", "application/json")], body, creds, &plan.region, time)?;
        let get = |name: &str| signed.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let date = get("x-amz-date").unwrap_or_else(|| amz_date(time));
        headers.push(("X-Amz-Date".into(), date.clone()));
        if let Some(token) = get("x-amz-security-token") {
            headers.push(("X-Amz-Security-Token".into(), token));
        }
        if let Some(auth) = get("authorization") {
            headers.push(("Authorization".into(), auth));
        }
        if log.enabled() {
            log_signing(log, path, &host, &date, creds, &plan.region, body, &signature);
        }
    }
    headers.push(("amz-sdk-invocation-id".into(), invocation_id.to_owned()));
    headers.push(("amz-sdk-request".into(), sdk_request.to_owned()));
    headers.push(("Content-Length".into(), body.len().to_string()));
    let target =
        if plan.http.proxy.is_some() && plan.endpoint.scheme == "http" { url_text.to_owned() } else { path.to_owned() };
    let mut head = format!("POST {target} HTTP/1.1\r\n");
    for (name, value) in &headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    Ok(head)
}

/// botocore's `--debug` CanonicalRequest / StringToSign / Signature blocks,
/// recomputed for display (the signature itself is aws-sigv4's).
#[allow(clippy::too_many_arguments)]
fn log_signing(
    log: &mut DebugLog<'_>,
    path: &str,
    host: &str,
    date: &str,
    creds: &Credentials,
    region: &str,
    body: &[u8],
    signature: &str,
) {
    let mut canonical_headers = format!("content-type:application/json\nhost:{host}\nx-amz-date:{date}\n");
    let mut signed = "content-type;host;x-amz-date".to_owned();
    if let Some(token) = &creds.session_token {
        canonical_headers.push_str(&format!("x-amz-security-token:{token}\n"));
        signed.push_str(";x-amz-security-token");
    }
    let payload = hex::encode(Sha256::digest(body));
    let creq = format!("POST\n{path}\n\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{}/{region}/personalize/aws4_request", &date[..8]);
    let sts = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", hex::encode(Sha256::digest(creq.as_bytes())));
    log.line("botocore.auth", &format!("CanonicalRequest:\n{creq}"));
    log.line("botocore.auth", &format!("StringToSign:\n{sts}"));
    log.line("botocore.auth", &format!("Signature:\n{signature}"));
}

/// botocore's rest-json error parsing: code from `x-amzn-ErrorType`, then
/// the body's `code`/`__type`, then the status; message from `message`/`Message`.
pub fn parse_error(response: &Response) -> (String, String) {
    let trimmed = String::from_utf8_lossy(&response.body).trim().to_owned();
    if response.status >= 500 && (trimmed.is_empty() || trimmed.starts_with("<html>")) {
        return (response.status.to_string(), http::reason_phrase(response.status).to_owned());
    }
    let body = if response.body.is_empty() {
        Value::Dict(Vec::new(), DictKind::Plain)
    } else {
        let text = String::from_utf8_lossy(&response.body).into_owned();
        match loads(&text, DictKind::Plain) {
            Ok(v @ Value::Dict(..)) => v,
            _ => Value::Dict(vec![("message".into(), Value::Str(text))], DictKind::Plain),
        }
    };
    let message = body.get("message").or_else(|| body.get("Message")).map(Value::py_str).unwrap_or_default();
    let mut code = match body.get("__type") {
        Some(t) => t.py_str(),
        None => response.status.to_string(),
    };
    code = code.split(':').next().unwrap_or("").to_owned();
    code = code.rsplit('#').next().unwrap_or("").to_owned();
    let override_code = response
        .header("x-amzn-errortype")
        .map(str::to_owned)
        .or_else(|| body.get("code").or_else(|| body.get("Code")).map(Value::py_str));
    if let Some(c) = override_code {
        code = c.split(':').next().unwrap_or("").rsplit('#').next().unwrap_or("").to_owned();
    }
    (code, message)
}

fn is_retryable(mode: RetryMode, status: u16, code: &str) -> bool {
    const THROTTLING: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    ];
    match mode {
        RetryMode::Legacy => {
            matches!(status, 500 | 502 | 503 | 504 | 509 | 429) || (status == 400 && THROTTLING.contains(&code))
        }
        RetryMode::Standard => {
            const MORE: &[&str] = &[
                "TooManyRequestsException",
                "TransactionInProgressException",
                "RequestLimitExceeded",
                "BandwidthLimitExceeded",
                "LimitExceededException",
                "RequestThrottled",
                "SlowDown",
                "PriorRequestNotComplete",
                "EC2ThrottledException",
                "RequestTimeout",
                "RequestTimeoutException",
            ];
            matches!(status, 500 | 502 | 503 | 504) || THROTTLING.contains(&code) || MORE.contains(&code)
        }
    }
}

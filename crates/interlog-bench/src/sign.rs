//! SigV4 for the load generator.
//!
//! Two ways to sign, both producing exactly what aws-cli sends (service `personalize`, signed
//! headers `content-type;host;x-amz-date`):
//!
//! - [`reference_sign`]: the `aws-sigv4` crate, as `interlog put-events` signs. It derives the
//!   signing key (4 HMACs) and allocates freely; used to pre-sign pools before the timed run and
//!   as the oracle the fast signer is checked against (at start-up of every run and in tests).
//! - [`FastSigner`]: the same algorithm with the day's signing key cached and the date string
//!   cached per second, so a request costs SHA-256 of the body, SHA-256 of the ~200-byte canonical
//!   request and one HMAC. Used on the fly for unique-eventId loads, where every body differs.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The key the generator signs with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// `x-amz-date` and `Authorization` for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

pub const REGION: &str = "us-east-1";
pub const SERVICE: &str = "personalize";

/// Signs a `POST` with `aws-sigv4` (the slow, reference path).
pub fn reference_sign(
    creds: &Credentials,
    host: &str,
    path: &str,
    body: &[u8],
    time: SystemTime,
) -> anyhow::Result<Signature> {
    sign_with_aws_sigv4("POST", &[("content-type", "application/json")], creds, host, path, body, time)
}

/// Signs a control-plane call (`X-Amz-Target: AmazonPersonalize.<op>`, JSON 1.1), for the
/// resources a scenario needs before its load.
pub fn sign_control(
    creds: &Credentials,
    host: &str,
    target: &str,
    body: &[u8],
    time: SystemTime,
) -> anyhow::Result<Signature> {
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)];
    sign_with_aws_sigv4("POST", &headers, creds, host, "/", body, time)
}

/// Signs a `GET` without a body (`/_interlog/stats`, which only the root account may read).
pub fn sign_get(creds: &Credentials, host: &str, path: &str, time: SystemTime) -> anyhow::Result<Signature> {
    sign_with_aws_sigv4("GET", &[], creds, host, path, b"", time)
}

fn sign_with_aws_sigv4(
    method: &str,
    headers: &[(&str, &str)],
    creds: &Credentials,
    host: &str,
    path: &str,
    body: &[u8],
    time: SystemTime,
) -> anyhow::Result<Signature> {
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(&creds.access_key_id, &creds.secret_access_key, None, None, "bench")
            .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(SERVICE)
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()?
        .into();
    let url = format!("http://{host}{path}");
    let signable = aws_sigv4::http_request::SignableRequest::new(
        method,
        &url,
        headers.iter().copied(),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    )?;
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)?.into_parts();
    let mut amz_date = None;
    let mut authorization = None;
    for (name, value) in instructions.headers() {
        if name.eq_ignore_ascii_case("x-amz-date") {
            amz_date = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_owned());
        }
    }
    Ok(Signature {
        amz_date: amz_date.ok_or_else(|| anyhow::anyhow!("aws-sigv4 gave no x-amz-date"))?,
        authorization: authorization.ok_or_else(|| anyhow::anyhow!("aws-sigv4 gave no authorization"))?,
    })
}

/// SigV4 with the signing key cached per day and the date cached per second.
#[derive(Clone)]
pub struct FastSigner {
    creds: Credentials,
    /// `content-type:application/json\nhost:HOST\nx-amz-date:` prefix pieces.
    creq_head: String,
    creq_mid: &'static str,
    /// Seconds since the epoch the cached date is for.
    second: u64,
    amz_date: String,
    day: String,
    scope: String,
    key: [u8; 32],
    creq: String,
    sts: String,
}

impl FastSigner {
    pub fn new(creds: Credentials, host: &str, path: &str) -> Self {
        let mut signer = FastSigner {
            creds,
            creq_head: format!("POST\n{path}\n\ncontent-type:application/json\nhost:{host}\nx-amz-date:"),
            creq_mid: "\n\ncontent-type;host;x-amz-date\n",
            second: u64::MAX,
            amz_date: String::new(),
            day: String::new(),
            scope: String::new(),
            key: [0; 32],
            creq: String::with_capacity(512),
            sts: String::with_capacity(256),
        };
        signer.set_time(SystemTime::now());
        signer
    }

    fn set_time(&mut self, time: SystemTime) {
        let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if secs == self.second {
            return;
        }
        self.second = secs;
        self.amz_date = amz_date(secs);
        let day = &self.amz_date[..8];
        if day != self.day {
            self.day = day.to_owned();
            self.scope = format!("{day}/{REGION}/{SERVICE}/aws4_request");
            let k_date = hmac(format!("AWS4{}", self.creds.secret_access_key).as_bytes(), day.as_bytes());
            let k_region = hmac(&k_date, REGION.as_bytes());
            let k_service = hmac(&k_region, SERVICE.as_bytes());
            self.key = hmac(&k_service, b"aws4_request");
        }
    }

    /// Signs `body` as sent at `time`.
    pub fn sign(&mut self, body: &[u8], time: SystemTime) -> Signature {
        self.set_time(time);
        let mut hex_buf = [0u8; 64];
        self.creq.clear();
        self.creq.push_str(&self.creq_head);
        self.creq.push_str(&self.amz_date);
        self.creq.push_str(self.creq_mid);
        self.creq.push_str(hex32(&Sha256::digest(body).into(), &mut hex_buf));
        self.sts.clear();
        self.sts.push_str("AWS4-HMAC-SHA256\n");
        self.sts.push_str(&self.amz_date);
        self.sts.push('\n');
        self.sts.push_str(&self.scope);
        self.sts.push('\n');
        self.sts.push_str(hex32(&Sha256::digest(self.creq.as_bytes()).into(), &mut hex_buf));
        let signature = hmac(&self.key, self.sts.as_bytes());
        let mut authorization = String::with_capacity(200);
        authorization.push_str("AWS4-HMAC-SHA256 Credential=");
        authorization.push_str(&self.creds.access_key_id);
        authorization.push('/');
        authorization.push_str(&self.scope);
        authorization.push_str(", SignedHeaders=content-type;host;x-amz-date, Signature=");
        authorization.push_str(hex32(&signature, &mut hex_buf));
        Signature { amz_date: self.amz_date.clone(), authorization }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex32<'a>(bytes: &[u8; 32], buf: &'a mut [u8; 64]) -> &'a str {
    hex::encode_to_slice(bytes, buf).expect("64 hex digits for 32 bytes");
    std::str::from_utf8(buf).expect("hex is ASCII")
}

/// `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(secs: u64) -> String {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Signs `body` both ways and fails if they differ: run before every load so a drift in the
/// fast signer can never turn a benchmark into a benchmark of 403s.
pub fn self_check(creds: &Credentials, host: &str, path: &str, body: &[u8]) -> anyhow::Result<()> {
    let time = SystemTime::now();
    let reference = reference_sign(creds, host, path, body, time)?;
    let fast = FastSigner::new(creds.clone(), host, path).sign(body, time);
    anyhow::ensure!(
        fast == reference,
        "the fast SigV4 signer disagrees with aws-sigv4:\n fast:      {fast:?}\n reference: {reference:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    #[test]
    fn fast_signer_matches_aws_sigv4_across_days() {
        let mut fast = FastSigner::new(creds(), "127.0.0.1:8787", "/events");
        for (i, secs) in
            [1_700_000_000u64, 1_700_000_001, 1_700_086_399, 1_700_086_400, 1_800_000_000].iter().enumerate()
        {
            let time = UNIX_EPOCH + Duration::from_secs(*secs);
            let body = format!("{{\"trackingId\":\"t\",\"sessionId\":\"s{i}\",\"eventList\":[]}}");
            let reference = reference_sign(&creds(), "127.0.0.1:8787", "/events", body.as_bytes(), time).unwrap();
            assert_eq!(fast.sign(body.as_bytes(), time), reference, "at {secs}");
        }
    }

    #[test]
    fn amz_date_is_utc_basic_format() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_700_000_000), "20231114T221320Z");
    }
}

//! Verifies AWS SigV4 header-signed requests against the [`Keyring`].
//!
//! The canonical request is rebuilt from the client's own `SignedHeaders` list (so any set
//! of signed headers a client chooses is reproduced faithfully); the signing key and the
//! signature come from the `aws-sigv4` crate, and the comparison is constant-time.
//! Checks run in AWS's order of precedence: missing header, malformed header, unknown key,
//! wrong scope, clock skew, signature. Everything but the last needs no body, so
//! [`Verifier::check_before_body`] lets the server refuse a request before it buffers a byte
//! of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::{AUTHORIZATION, DATE};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::amz_date::AmzDate;
use crate::authorization::{echo, AuthorizationV4, ALGORITHM};
use crate::canonical::{has_header, write_canonical_request, CanonicalInput, PathEncoding, Sink};
use crate::error::AuthError;
use crate::keyring::{Credential, Keyring};

/// The service name the server expects in credential scopes (botocore signs both
/// `personalize` and `personalize-events` requests with it).
pub const DEFAULT_SERVICE: &str = "personalize";

/// How far a request's time may be from the server's clock, either way (AWS: 15 minutes).
const MAX_SKEW_SECS: u64 = 15 * 60;

/// Signing keys are cached per (key, day, region, service), and only once a signature made
/// with one matched, so a client without the secret cannot add entries; past this many the
/// cache is simply cleared, which bounds memory without any bookkeeping on the hot path.
const SIGNING_KEY_CACHE_LIMIT: usize = 4096;

/// The longest region accepted in a credential scope. AWS's longest is 14 characters
/// (`ap-southeast-4`); the region flows into ARNs, whose length AWS caps at 256.
const MAX_REGION_LEN: usize = 32;

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_TARGET: &str = "x-amz-target";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Who signed a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The access key ID from the credential scope.
    pub access_key_id: String,
    /// The 12-digit account the key belongs to.
    pub account_id: String,
    /// The region from the credential scope (whatever the client is configured with).
    pub region: String,
}

/// Verifies SigV4 requests. Build one at start-up and share it (`Arc<Verifier>`); it is
/// `Send + Sync` and cheap to call concurrently.
pub struct Verifier {
    keyring: Arc<Keyring>,
    service: String,
    path_encoding: PathEncoding,
    /// `AKID/yyyymmdd/region/service` -> derived signing key. Keys derive from secrets, so
    /// the cache is left out of `Debug`.
    signing_keys: Mutex<HashMap<Box<str>, [u8; 32]>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keyring.len())
            .field("service", &self.service)
            .field("path_encoding", &self.path_encoding)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for service `personalize` with AWS's (non-S3) canonical URI rules.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            keyring,
            service: DEFAULT_SERVICE.to_owned(),
            path_encoding: PathEncoding::NormalizedDoubleEncoded,
            signing_keys: Mutex::new(HashMap::new()),
        }
    }

    /// Expects this service name in credential scopes instead of `personalize`.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Changes how the path becomes the canonical URI (tests and S3-style signers only).
    #[must_use]
    pub fn with_path_encoding(mut self, path_encoding: PathEncoding) -> Self {
        self.path_encoding = path_encoding;
        self
    }

    /// The keys this verifier accepts.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// Verifies a request given as `http` request parts plus its complete body.
    ///
    /// # Errors
    ///
    /// See [`Verifier::verify_request`].
    pub fn verify(&self, parts: &http::request::Parts, body: &[u8], now: SystemTime) -> Result<Principal, AuthError> {
        self.verify_request(&parts.method, &parts.uri, &parts.headers, body, now)
    }

    /// Verifies a request: `uri` as received (path still percent-encoded, raw query), every
    /// header, the exact body bytes and the server's clock.
    ///
    /// # Errors
    ///
    /// In order of precedence: [`AuthError::MissingAuthenticationToken`] without an
    /// `Authorization` header; [`AuthError::IncompleteSignature`] for a malformed one (or a
    /// missing date, an unsigned `host`, a signed header the request lacks, an unsigned
    /// `X-Amz-Security-Token` or `X-Amz-Target`); [`AuthError::UnrecognizedClient`] for an
    /// unknown key or a session-token mismatch; [`AuthError::InvalidScope`] for the wrong
    /// service, scope date or a region that is not `[a-z0-9-]{1,32}`;
    /// [`AuthError::SignatureExpired`] beyond 15 minutes of skew;
    /// [`AuthError::UnsignedPayload`] for `X-Amz-Content-Sha256: UNSIGNED-PAYLOAD`;
    /// [`AuthError::SignatureDoesNotMatch`] otherwise.
    pub fn verify_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Principal, AuthError> {
        let checked = self.check_headers(uri, headers, now)?;
        let Checked { auth, credential, request_time, authority } = checked;

        let mut body_hash = [0u8; 64];
        let (payload_hash, note) = payload_hash(headers, body, &mut body_hash);
        let input = CanonicalInput {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers,
            authority,
            signed_headers: auth.signed_headers,
            payload_hash,
            path_encoding: self.path_encoding,
        };
        let mut hasher = Sha256::new();
        write_canonical_request(&mut hasher, &input);
        let mut canonical_hash = [0u8; 64];
        hex_into(&hasher.finalize(), &mut canonical_hash);

        let time_bytes = request_time.basic_bytes();
        let mut string_to_sign =
            Vec::with_capacity(ALGORITHM.len() + time_bytes.len() + auth.credential_scope.len() + 67);
        for part in
            [ALGORITHM.as_bytes(), b"\n", &time_bytes, b"\n", auth.credential_scope.as_bytes(), b"\n", &canonical_hash]
        {
            string_to_sign.put(part);
        }

        let (signing_key, cached) = self.signing_key(&auth, credential, request_time);
        let expected = aws_sigv4::sign::v4::calculate_signature(signing_key, &string_to_sign);
        let matches: bool = expected.as_bytes().ct_eq(auth.signature.as_bytes()).into();
        if note.is_some() || !matches {
            // Only now build the canonical request as text, for the server's debug log.
            let mut canonical_request = Vec::new();
            write_canonical_request(&mut canonical_request, &input);
            return Err(AuthError::SignatureDoesNotMatch {
                canonical_request: String::from_utf8_lossy(&canonical_request).into_owned(),
                string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
                note,
            });
        }
        if !cached {
            self.remember_signing_key(&auth, signing_key);
        }

        Ok(Principal {
            access_key_id: credential.access_key_id().to_owned(),
            account_id: credential.account_id().to_owned(),
            region: auth.region.to_owned(),
        })
    }

    /// Every check that needs no body: the `Authorization` header parses, the signed headers
    /// are present (`host`, and `X-Amz-Security-Token` / `X-Amz-Target` when sent), the key
    /// exists and its session token matches, the scope names this service, the request's day
    /// and a valid region, the clock is within 15 minutes, and the payload is signed. A request
    /// that passes may still carry a wrong signature; one that fails never will pass.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify_request`], except [`AuthError::SignatureDoesNotMatch`].
    pub fn check_before_body(&self, uri: &Uri, headers: &HeaderMap, now: SystemTime) -> Result<(), AuthError> {
        self.check_headers(uri, headers, now).map(|_| ())
    }

    fn check_headers<'h>(
        &'h self,
        uri: &'h Uri,
        headers: &'h HeaderMap,
        now: SystemTime,
    ) -> Result<Checked<'h>, AuthError> {
        let Some(authorization) = headers.get(AUTHORIZATION) else {
            return Err(AuthError::MissingAuthenticationToken);
        };
        let authorization = authorization
            .to_str()
            .map_err(|_| AuthError::incomplete("Authorization header must contain only visible ASCII characters."))?;
        let auth = AuthorizationV4::parse(authorization)?;
        let authority = uri.authority().map(http::uri::Authority::as_str);
        let (request_time, amz_date) = request_time(headers, authorization)?;
        check_signed_headers(&auth, headers, authority, authorization)?;

        let credential = self
            .keyring
            .get(auth.access_key_id)
            .ok_or(AuthError::UnrecognizedClient { reason: "unknown access key id" })?;
        check_session_token(credential, headers)?;
        self.check_scope(&auth, request_time, amz_date)?;
        check_clock_skew(request_time, AmzDate::from_system_time(now))?;
        if headers.get(X_AMZ_CONTENT_SHA256).is_some_and(|v| v.as_bytes() == UNSIGNED_PAYLOAD.as_bytes()) {
            return Err(AuthError::UnsignedPayload);
        }
        Ok(Checked { auth, credential, request_time, authority })
    }

    fn check_scope(&self, auth: &AuthorizationV4<'_>, request_time: AmzDate, amz_date: &str) -> Result<(), AuthError> {
        if auth.service != self.service {
            return Err(AuthError::InvalidScope {
                message: format!("Credential should be scoped to correct service: '{}'. ", self.service),
            });
        }
        if !valid_region(auth.region) {
            return Err(AuthError::InvalidScope {
                message: format!(
                    "Credential should be scoped to a valid region, not '{}'. A region is 1 to {MAX_REGION_LEN} \
                     lower-case letters, digits and '-', such as 'us-east-1'. ",
                    auth.region.get(..64).unwrap_or(auth.region)
                ),
            });
        }
        let day = request_time.basic_bytes();
        if auth.scope_date.as_bytes() != &day[..8] {
            return Err(AuthError::InvalidScope {
                message: format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                    auth.scope_date,
                    String::from_utf8_lossy(&day[..8]),
                ),
            });
        }
        Ok(())
    }

    /// The derived signing key, from the cache (`true`) or freshly derived by `aws-sigv4`
    /// (`false`: not cached yet, see [`Verifier::remember_signing_key`]).
    fn signing_key(
        &self,
        auth: &AuthorizationV4<'_>,
        credential: &Credential,
        request_time: AmzDate,
    ) -> ([u8; 32], bool) {
        {
            // A poisoned lock only means another thread panicked mid-insert; the map is
            // still a valid cache.
            let cache = self.signing_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(key) = cache.get(auth.key_scope) {
                return (*key, true);
            }
        }
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            credential.secret_access_key(),
            request_time.to_system_time(),
            auth.region,
            auth.service,
        );
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        (key, false)
    }

    /// Caches a signing key once a signature made with it matched: only holders of the secret
    /// add entries, and each entry's scope has a valid region (at most 32 bytes).
    fn remember_signing_key(&self, auth: &AuthorizationV4<'_>, key: [u8; 32]) {
        let mut cache = self.signing_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= SIGNING_KEY_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(auth.key_scope.into(), key);
    }

    /// How many signing keys are cached (for tests of the cache's bound).
    pub fn cached_signing_keys(&self) -> usize {
        self.signing_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// What [`Verifier::check_headers`] established, borrowed from the request.
struct Checked<'h> {
    auth: AuthorizationV4<'h>,
    credential: &'h Credential,
    request_time: AmzDate,
    authority: Option<&'h str>,
}

/// `[a-z0-9-]{1,32}`: every AWS region name has this shape, and nothing else may reach an ARN
/// (a ':' would forge the account field of one).
pub fn valid_region(region: &str) -> bool {
    (1..=MAX_REGION_LEN).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The request time from `X-Amz-Date`, or from `Date` when there is no `X-Amz-Date`.
fn request_time<'h>(headers: &'h HeaderMap, authorization: &str) -> Result<(AmzDate, &'h str), AuthError> {
    if let Some(value) = headers.get(X_AMZ_DATE) {
        let value = value.to_str().unwrap_or("");
        return AmzDate::parse_basic(value).map(|t| (t, value)).ok_or_else(|| {
            AuthError::incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        });
    }
    if let Some(value) = headers.get(DATE) {
        let value = value.to_str().unwrap_or("");
        return AmzDate::parse_http_date(value).map(|t| (t, value)).ok_or_else(|| {
            AuthError::incomplete(format!(
                "Date header must be an HTTP date such as 'Mon, 01 Jan 2024 00:00:00 GMT'. Got '{value}'."
            ))
        });
    }
    Err(AuthError::incomplete(format!(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={}",
        echo(authorization)
    )))
}

fn check_signed_headers(
    auth: &AuthorizationV4<'_>,
    headers: &HeaderMap,
    authority: Option<&str>,
    authorization: &str,
) -> Result<(), AuthError> {
    let mut host_signed = false;
    let mut token_signed = false;
    let mut target_signed = false;
    for name in auth.signed_header_names() {
        host_signed |= name.eq_ignore_ascii_case("host");
        token_signed |= name.eq_ignore_ascii_case(X_AMZ_SECURITY_TOKEN);
        target_signed |= name.eq_ignore_ascii_case(X_AMZ_TARGET);
        if !has_header(headers, authority, name) {
            return Err(AuthError::incomplete(format!(
                "Signed header '{name}' is not present in the request. Authorization={}",
                echo(authorization)
            )));
        }
    }
    if !host_signed {
        return Err(AuthError::incomplete(format!(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization. Authorization={}",
            echo(authorization)
        )));
    }
    if headers.contains_key(X_AMZ_SECURITY_TOKEN) && !token_signed {
        return Err(AuthError::incomplete(format!(
            "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization when it is present. Authorization={}",
            echo(authorization)
        )));
    }
    // The target names the operation: unsigned, a request signed for one operation could be
    // replayed as another. Every AWS SDK signs it.
    if headers.contains_key(X_AMZ_TARGET) && !target_signed {
        return Err(AuthError::incomplete(format!(
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization when it is present. Authorization={}",
            echo(authorization)
        )));
    }
    Ok(())
}

/// A key with a session token accepts only requests carrying that token; a key without one
/// accepts only requests without a token.
fn check_session_token(credential: &Credential, headers: &HeaderMap) -> Result<(), AuthError> {
    let sent = headers.get(X_AMZ_SECURITY_TOKEN).map(|v| v.as_bytes());
    match (credential.session_token(), sent) {
        (None, None) => Ok(()),
        (Some(expected), Some(sent)) if bool::from(expected.as_bytes().ct_eq(sent)) => Ok(()),
        (Some(_), Some(_)) => {
            Err(AuthError::UnrecognizedClient { reason: "session token does not match the access key's" })
        }
        (Some(_), None) => Err(AuthError::UnrecognizedClient {
            reason: "access key requires a session token but the request has no X-Amz-Security-Token",
        }),
        (None, Some(_)) => Err(AuthError::UnrecognizedClient {
            reason: "request has an X-Amz-Security-Token but the access key has no session token",
        }),
    }
}

fn check_clock_skew(request_time: AmzDate, now: AmzDate) -> Result<(), AuthError> {
    let fmt = AmzDate::to_basic_string;
    if request_time.secs() + MAX_SKEW_SECS < now.secs() {
        let earliest = now.minus_secs(MAX_SKEW_SECS);
        return Err(AuthError::SignatureExpired {
            message: format!(
                "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                fmt(request_time),
                fmt(earliest),
                fmt(now)
            ),
        });
    }
    if request_time.secs() > now.secs() + MAX_SKEW_SECS {
        let latest = now.plus_secs(MAX_SKEW_SECS);
        return Err(AuthError::SignatureExpired {
            message: format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                fmt(request_time),
                fmt(latest),
                fmt(now)
            ),
        });
    }
    Ok(())
}

/// The payload-hash line: `X-Amz-Content-Sha256` when sent (which must then match the body;
/// `UNSIGNED-PAYLOAD` was refused before), else the body's SHA-256. The second value is set
/// when the header does not match the body.
fn payload_hash<'a>(headers: &'a HeaderMap, body: &[u8], buf: &'a mut [u8; 64]) -> (&'a [u8], Option<&'static str>) {
    let declared = headers.get(X_AMZ_CONTENT_SHA256).map(|v| v.as_bytes());
    hex_into(&Sha256::digest(body), buf);
    match declared {
        None => (&buf[..], None),
        Some(declared) if declared.eq_ignore_ascii_case(&buf[..]) => (declared, None),
        Some(declared) => {
            (declared, Some("The x-amz-content-sha256 header does not match the SHA-256 of the request body."))
        }
    }
}

/// Lower-case hex of a 32-byte digest into a stack buffer.
fn hex_into(digest: &[u8], out: &mut [u8; 64]) {
    // A SHA-256 digest is always 32 bytes, so the buffer is always exactly large enough.
    hex::encode_to_slice(digest, out).expect("sha-256 digest is 32 bytes");
}

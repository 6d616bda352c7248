//! Object storage: `s3://bucket/key` and `s3://bucket/prefix/` locations listed, read and written
//! through `object_store`'s S3 client, behind an API that names no client type, so export and
//! import jobs (and anything else) use S3 without knowing how it is reached.
//!
//! Credentials come from a [`CredentialSource`] asked once per client (per job): the binary hands
//! in the aws-cli chain (environment, then the shared credentials and config files), the same one
//! `serve --forward-to` uses; [`S3Config::from_env`] alone reads the environment variables. An
//! endpoint (`INTERLOG_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL_S3`) switches to path-style
//! addressing, as S3-compatible servers (MinIO, moto, Ceph) expect.
//!
//! Every failure is an [`ObjectError`] whose [`ObjectErrorKind`] says what a person can do about
//! it (the bucket does not exist, access was denied, the upload was interrupted), and whose text
//! is fit for a job's `failureReason`: it names the location, never a credential.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, MultipartUpload, ObjectStore, PutPayload, RetryConfig};

/// Bytes per part of a multipart upload (`INTERLOG_S3_PART_SIZE`): S3 refuses parts under 5 MiB
/// except the last; an object smaller than one part is sent in one PUT.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading at once while the next one fills: with the part being filled, the memory an
/// upload holds is at most `(PARTS_IN_FLIGHT + 1) × part size`.
const PARTS_IN_FLIGHT: usize = 2;

/// An `s3://bucket/key` location; a key ending in `/` (or empty) is a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    /// Parses `s3://bucket/key...`; `InvalidLocation` for anything else.
    pub fn parse(url: &str) -> Result<S3Location, ObjectError> {
        let invalid = |why: &str| ObjectError::new(ObjectErrorKind::InvalidLocation, format!("{url} {why}"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| invalid("is not an s3://bucket/key location"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules (3-63 of lowercase letters, digits, '.', '-'), also refused by
        // the service; checked here so the reason names the location rather than a 400.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(invalid("does not name a valid bucket (3 to 63 lowercase letters, digits, '.' and '-')"));
        }
        if key.split('/').any(|s| s == "." || s == "..") || key.contains("//") {
            return Err(invalid("has an empty, '.' or '..' segment in its key"));
        }
        Ok(S3Location { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// True for `s3://bucket/` and `s3://bucket/prefix/`.
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The object `name` under this location taken as a prefix (`s3://b/p` → `s3://b/p/name`).
    pub fn join(&self, name: &str) -> S3Location {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{name}", self.key)
        } else {
            format!("{}/{name}", self.key)
        };
        S3Location { bucket: self.bucket.clone(), key }
    }

    fn path(&self) -> ObjectPath {
        // The key as it is: object_store's `Path::from` would re-encode and drop trailing '/'.
        ObjectPath::from(self.key.trim_end_matches('/'))
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Access keys for S3. `Debug` leaves the secret and token out.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// The chain's region (profile or `AWS_REGION`), used when [`S3Config::region`] is unset.
    pub region: Option<String>,
    /// Where they came from (`env`, `shared-credentials-file`...), for logs.
    pub source: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Asked for credentials each time a client is made (once per job), so rotated keys in the
/// credentials file are picked up without a restart; `Err` is the reason none were found.
pub type CredentialSource = Arc<dyn Fn() -> Result<S3Credentials, String> + Send + Sync>;

/// How S3 is reached.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host:port` of an S3-compatible server; `None` is AWS (virtual-hosted style).
    pub endpoint: Option<String>,
    /// The signing region; default: the credentials' region, else `us-east-1`.
    pub region: Option<String>,
    pub credentials: CredentialSource,
    pub part_size: usize,
    /// Attempts after the first for a failed request (connection errors, 5xx, throttling).
    pub max_retries: usize,
    /// No request, with its retries, takes longer than this.
    pub retry_timeout: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// From the process environment: endpoint, region, part size, and credentials from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` only (the binary
    /// replaces them with the whole aws-cli chain).
    pub fn from_env() -> S3Config {
        let env: HashMap<String, String> = std::env::vars().collect();
        let credentials: CredentialSource = Arc::new(|| {
            let env: HashMap<String, String> = std::env::vars().collect();
            env_credentials(&env).ok_or_else(|| {
                "Unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned()
            })
        });
        S3Config::from_vars(&env, credentials)
    }

    /// The settings of `env` with the given credentials.
    pub fn from_vars(env: &HashMap<String, String>, credentials: CredentialSource) -> S3Config {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        S3Config {
            endpoint: get("INTERLOG_S3_ENDPOINT_URL").or_else(|| get("AWS_ENDPOINT_URL_S3")),
            region: get("INTERLOG_S3_REGION"),
            credentials,
            part_size: get("INTERLOG_S3_PART_SIZE")
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_PART_SIZE),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        }
    }
}

/// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), when both are set.
pub fn env_credentials(env: &HashMap<String, String>) -> Option<S3Credentials> {
    let id = env.get("AWS_ACCESS_KEY_ID").filter(|v| !v.is_empty())?;
    let secret = env.get("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty())?;
    Some(S3Credentials {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
        session_token: env.get("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()).cloned(),
        region: env.get("AWS_REGION").or_else(|| env.get("AWS_DEFAULT_REGION")).cloned(),
        source: "env".into(),
    })
}

/// What went wrong, as far as a person can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectErrorKind {
    /// Not an `s3://bucket/key` location.
    InvalidLocation,
    /// No credentials were found.
    NoCredentials,
    NoSuchBucket,
    /// The bucket exists but the key does not.
    NotFound,
    /// Refused: the credentials are unknown, wrong, or not allowed this operation.
    AccessDenied,
    /// The object exists and is not replaced.
    AlreadyExists,
    /// The connection failed, was cut or timed out (after retries).
    Interrupted,
    Other,
}

/// A classified failure; its `Display` is the message for a person.
#[derive(Debug, Clone)]
pub struct ObjectError {
    pub kind: ObjectErrorKind,
    pub message: String,
}

impl ObjectError {
    pub fn new(kind: ObjectErrorKind, message: impl Into<String>) -> ObjectError {
        ObjectError { kind, message: message.into() }
    }

    /// `e`, met doing `what` on `location`, classified by the S3 error code in the response (the
    /// variant alone cannot tell a missing bucket from a missing key) or the transport failure.
    fn classify(what: &str, location: &S3Location, e: &object_store::Error) -> ObjectError {
        let text = error_chain(e);
        let has = |code: &str| text.contains(code);
        let (kind, message) = if has("NoSuchBucket") {
            (ObjectErrorKind::NoSuchBucket, format!("The bucket {} does not exist", location.bucket))
        } else if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("ExpiredToken") {
            (
                ObjectErrorKind::AccessDenied,
                format!("Access denied {what} {location}: S3 did not accept the credentials ({})", s3_code(&text)),
            )
        } else if has("AccessDenied")
            || matches!(e, object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })
        {
            (
                ObjectErrorKind::AccessDenied,
                format!(
                    "Access denied {what} {location}: S3 refused the request (check the credentials and the \
                     bucket's policy)"
                ),
            )
        } else if matches!(e, object_store::Error::NotFound { .. }) || has("NoSuchKey") {
            (ObjectErrorKind::NotFound, format!("{location} does not exist"))
        } else if transport_failure(e) {
            (ObjectErrorKind::Interrupted, format!("The connection to S3 failed {what} {location}: {}", root_cause(e)))
        } else {
            (ObjectErrorKind::Other, format!("S3 failed {what} {location}: {text}"))
        };
        ObjectError::new(kind, message)
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ObjectError {}

impl From<ObjectError> for io::Error {
    fn from(e: ObjectError) -> io::Error {
        io::Error::other(e)
    }
}

/// The error and its sources on one line, newlines folded (S3's XML bodies have them).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost source: what actually happened (`Connection refused (os error 111)`), without
/// the layers of request details above it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// `<Code>X</Code>` of an S3 error body, if the text has one.
fn s3_code(text: &str) -> &str {
    text.split("<Code>").nth(1).and_then(|r| r.split("</Code>").next()).unwrap_or("refused")
}

/// A connection that failed, was reset or timed out, found anywhere in the error's sources.
fn transport_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            if matches!(h.kind(), K::Connect | K::Request | K::Timeout | K::Interrupted | K::Decode) {
                return true;
            }
        }
        if s.downcast_ref::<io::Error>().is_some() {
            return true;
        }
        source = s.source();
    }
    false
}

/// One object under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub location: S3Location,
    pub size: u64,
}

/// Reads and writes S3 locations. Cheap to clone; each operation makes its client from the
/// config (and asks the credential source) anew.
#[derive(Clone, Debug)]
pub struct Objects {
    config: S3Config,
}

impl Objects {
    pub fn new(config: S3Config) -> Objects {
        Objects { config }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn client(&self, bucket: &str) -> Result<AmazonS3, ObjectError> {
        let creds = (self.config.credentials)().map_err(|e| ObjectError::new(ObjectErrorKind::NoCredentials, e))?;
        let region = self.config.region.clone().or(creds.region.clone()).unwrap_or_else(|| "us-east-1".to_owned());
        let mut options = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
        let retry = RetryConfig {
            max_retries: self.config.max_retries,
            retry_timeout: self.config.retry_timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_access_key_id(creds.access_key_id)
            .with_secret_access_key(creds.secret_access_key)
            .with_retry(retry);
        if let Some(token) = creds.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &self.config.endpoint {
            options = options.with_allow_http(endpoint.starts_with("http://"));
            builder = builder.with_endpoint(endpoint.trim_end_matches('/')).with_virtual_hosted_style_request(false);
        }
        builder
            .with_client_options(options)
            .build()
            .map_err(|e| ObjectError::new(ObjectErrorKind::Other, format!("S3 client for bucket {bucket}: {e}")))
    }

    /// What a location names, in key order: the object itself when the location is a key that
    /// exists (`s3://b/data.csv`), else every object under it taken as a folder (`s3://b/data/`,
    /// `s3://b/data` alike; `s3://b/` is the whole bucket). Empty when there is nothing.
    pub async fn list(&self, location: &S3Location) -> Result<Vec<ObjectInfo>, ObjectError> {
        if !location.is_prefix() {
            if let Some(size) = self.head(location).await? {
                return Ok(vec![ObjectInfo { location: location.clone(), size }]);
            }
        }
        let client = self.client(&location.bucket)?;
        let path = location.path();
        let folder = location.key.trim_end_matches('/');
        let mut listing = client.list((!folder.is_empty()).then_some(&path));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| ObjectError::classify("listing", location, &e))?;
            out.push(ObjectInfo {
                location: S3Location { bucket: location.bucket.clone(), key: meta.location.to_string() },
                size: meta.size,
            });
        }
        out.sort_by(|a, b| a.location.key.cmp(&b.location.key));
        Ok(out)
    }

    /// The object's size, `None` when there is no such key.
    pub async fn head(&self, location: &S3Location) -> Result<Option<u64>, ObjectError> {
        self.head_for("reading", location).await
    }

    async fn head_for(&self, what: &str, location: &S3Location) -> Result<Option<u64>, ObjectError> {
        let client = self.client(&location.bucket)?;
        match client.head(&location.path()).await {
            Ok(meta) => Ok(Some(meta.size)),
            // A HEAD's 404 has no body: a missing bucket shows only when the object is written.
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ObjectError::classify(what, location, &e)),
        }
    }

    /// Opens an object for a streaming read.
    pub async fn open(&self, location: &S3Location) -> Result<ObjectReader, ObjectError> {
        let client = self.client(&location.bucket)?;
        let got = client.get(&location.path()).await.map_err(|e| ObjectError::classify("reading", location, &e))?;
        let size = got.meta.size;
        let loc = location.clone();
        let stream = got.into_stream().map(move |chunk| chunk.map_err(|e| ObjectError::classify("reading", &loc, &e)));
        Ok(ObjectReader { location: location.clone(), size, stream: Box::pin(stream), buffered: Bytes::new() })
    }

    /// Starts writing a new object: nothing is visible at `location` until
    /// [`ObjectWriter::finish`] completes, and a failed or dropped writer leaves nothing behind
    /// (its multipart upload is aborted). `AlreadyExists` when the key is taken: an export never
    /// replaces an object.
    pub async fn create(&self, location: &S3Location) -> Result<ObjectWriter, ObjectError> {
        if self.head_for("writing", location).await?.is_some() {
            return Err(ObjectError::new(
                ObjectErrorKind::AlreadyExists,
                format!("{location} already exists and is not replaced: choose another job name or path"),
            ));
        }
        let client = Arc::new(self.client(&location.bucket)?);
        Ok(ObjectWriter {
            client,
            location: location.clone(),
            part_size: self.config.part_size,
            retries: self.config.max_retries,
            buffer: BytesMut::new(),
            upload: None,
            in_flight: Vec::new(),
            written: 0,
        })
    }
}

/// An object being read: chunks as they arrive, or [`ObjectReader::into_blocking`] for a
/// `std::io::Read` on a blocking thread.
pub struct ObjectReader {
    pub location: S3Location,
    pub size: u64,
    stream: futures_util::stream::BoxStream<'static, Result<Bytes, ObjectError>>,
    buffered: Bytes,
}

impl ObjectReader {
    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ObjectError> {
        if !self.buffered.is_empty() {
            return Ok(Some(std::mem::take(&mut self.buffered)));
        }
        self.stream.next().await.transpose()
    }

    /// A `Read` that waits for chunks on `runtime`: for parsers running on a blocking thread
    /// (`spawn_blocking`), never on an async worker.
    pub fn into_blocking(self, runtime: tokio::runtime::Handle) -> BlockingReader {
        BlockingReader { reader: self, runtime }
    }
}

/// [`ObjectReader`] as a `std::io::Read`.
pub struct BlockingReader {
    reader: ObjectReader,
    runtime: tokio::runtime::Handle,
}

impl io::Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.buffered.is_empty() {
            match self.runtime.block_on(self.reader.stream.next()) {
                None => return Ok(0),
                Some(chunk) => self.reader.buffered = chunk?,
            }
        }
        let n = buf.len().min(self.reader.buffered.len());
        buf[..n].copy_from_slice(&self.reader.buffered.split_to(n));
        Ok(n)
    }
}

/// An object being written. Small objects go in one PUT at [`ObjectWriter::finish`]; once a
/// part's worth is buffered, a multipart upload starts and parts go up while the next fills.
pub struct ObjectWriter {
    client: Arc<AmazonS3>,
    location: S3Location,
    part_size: usize,
    retries: usize,
    buffer: BytesMut,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: Vec<tokio::task::JoinHandle<object_store::Result<()>>>,
    written: u64,
}

impl ObjectWriter {
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Appends bytes; may wait for earlier parts to finish uploading.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ObjectError> {
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        while self.buffer.len() >= self.part_size {
            let part = self.buffer.split_to(self.part_size).freeze();
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), ObjectError> {
        if self.upload.is_none() {
            let upload = self.client.put_multipart(&self.location.path()).await.map_err(|e| self.failed(&e))?;
            self.upload = Some(upload);
        }
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            let oldest = self.in_flight.remove(0);
            self.joined(oldest).await?;
        }
        let upload = self.upload.as_mut().expect("started above");
        self.in_flight.push(tokio::spawn(upload.put_part(PutPayload::from(part))));
        Ok(())
    }

    async fn joined(&self, part: tokio::task::JoinHandle<object_store::Result<()>>) -> Result<(), ObjectError> {
        match part.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(&e)),
            Err(e) => Err(ObjectError::new(ObjectErrorKind::Other, format!("uploading {}: {e}", self.location))),
        }
    }

    fn failed(&self, e: &object_store::Error) -> ObjectError {
        let mut err = ObjectError::classify("writing", &self.location, e);
        if err.kind == ObjectErrorKind::Interrupted {
            err.message = format!(
                "The upload to {} was interrupted: {} (after {} retries); nothing was published",
                self.location,
                root_cause(e),
                self.retries
            );
        }
        err
    }

    /// Sends what is left and makes the object visible; returns its size. On failure nothing
    /// is published and the multipart upload, if any, is aborted.
    pub async fn finish(mut self) -> Result<u64, ObjectError> {
        match self.complete().await {
            Ok(()) => Ok(self.written),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self) -> Result<(), ObjectError> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        if self.upload.is_none() {
            self.client.put(&self.location.path(), PutPayload::from(rest)).await.map_err(|e| self.failed(&e))?;
            return Ok(());
        }
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        for part in std::mem::take(&mut self.in_flight) {
            self.joined(part).await?;
        }
        let upload = self.upload.as_mut().expect("multipart");
        upload.complete().await.map_err(|e| ObjectError::classify("writing", &self.location, &e))?;
        self.upload = None;
        Ok(())
    }

    /// Gives up: parts in flight are stopped and the multipart upload is aborted, so S3 keeps
    /// nothing of it (an abort that fails too is logged; S3's lifecycle rules clean those up).
    pub async fn abort(mut self) {
        for part in std::mem::take(&mut self.in_flight) {
            part.abort();
        }
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(location = %self.location, "aborting the multipart upload failed: {}", error_chain(&e));
            }
        }
    }

    /// A `std::io::Write` for a writer running on a blocking thread (the export formatter),
    /// driving this upload on `runtime`.
    pub fn into_blocking(self, runtime: tokio::runtime::Handle) -> BlockingWriter {
        BlockingWriter { writer: Some(self), runtime, pending: Vec::with_capacity(CHUNK), error: Default::default() }
    }
}

/// Bytes a [`BlockingWriter`] gathers before handing them to the upload.
const CHUNK: usize = 256 * 1024;

/// [`ObjectWriter`] as a `std::io::Write`; [`BlockingWriter::finish`] publishes the object.
/// Dropped without `finish`, its upload is aborted.
pub struct BlockingWriter {
    writer: Option<ObjectWriter>,
    runtime: tokio::runtime::Handle,
    pending: Vec<u8>,
    /// The upload's failure, kept so `finish` reports it rather than a bare I/O error, and
    /// shared so that whoever gave the writer away can still read it ([`BlockingWriter::failure`]).
    error: Failure,
}

/// Where a [`BlockingWriter`] keeps its upload's failure: the writer's users see only an
/// `io::Error`, wrapped again by whatever formats onto it.
#[derive(Clone, Default)]
pub struct Failure(Arc<std::sync::Mutex<Option<ObjectError>>>);

impl Failure {
    /// The upload's failure, if it failed.
    pub fn get(&self) -> Option<ObjectError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, e: ObjectError) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

impl BlockingWriter {
    fn push(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.get() {
            return Err(e.into());
        }
        let w = self.writer.as_mut().expect("not finished");
        let result = self.runtime.block_on(w.write(&self.pending));
        self.pending.clear();
        result.map_err(|e| {
            self.error.set(e.clone());
            e.into()
        })
    }

    /// Uploads what is left and publishes the object; the first failure met otherwise.
    pub fn finish(mut self) -> Result<u64, ObjectError> {
        if let Some(e) = self.error.get() {
            return Err(e);
        }
        if let Err(e) = self.push() {
            return Err(self.error.get().unwrap_or_else(|| ObjectError::new(ObjectErrorKind::Other, e.to_string())));
        }
        let w = self.writer.take().expect("not finished");
        self.runtime.block_on(w.finish())
    }

    /// The upload's failure as it will be known after the writer is gone.
    pub fn failure(&self) -> Failure {
        self.error.clone()
    }
}

impl io::Write for BlockingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK {
            self.push()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts have a minimum size: flushing only forwards what is gathered to the upload's buffer.
        self.push()
    }
}

/// A writer dropped unfinished (its export failed) leaves nothing: the abort runs on the
/// runtime, wherever the drop happens, since a drop cannot wait.
impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let in_flight = std::mem::take(&mut self.in_flight);
        for part in &in_flight {
            part.abort();
        }
        if let (Some(mut upload), Ok(runtime)) = (self.upload.take(), tokio::runtime::Handle::try_current()) {
            let location = self.location.clone();
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(%location, "aborting the multipart upload failed: {}", error_chain(&e));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_join() {
        let l = S3Location::parse("s3://my-bucket/exports/").unwrap();
        assert_eq!((l.bucket.as_str(), l.key.as_str()), ("my-bucket", "exports/"));
        assert!(l.is_prefix());
        assert_eq!(l.join("job.csv").to_string(), "s3://my-bucket/exports/job.csv");
        assert_eq!(S3Location::parse("s3://my-bucket/a").unwrap().join("b").key, "a/b");
        assert_eq!(S3Location::parse("s3://my-bucket").unwrap().join("b").key, "b");
        for bad in ["file:///x", "s3://", "s3://UPPER/x", "s3://b/x", "s3://bucket/a/../b", "s3://bucket/a//b"] {
            let e = S3Location::parse(bad).unwrap_err();
            assert_eq!(e.kind, ObjectErrorKind::InvalidLocation, "{bad}");
            assert!(e.message.starts_with(bad), "{e}");
        }
    }

    #[test]
    fn endpoint_and_part_size_come_from_the_environment() {
        let none: CredentialSource = Arc::new(|| Err("none".into()));
        let vars = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let c = S3Config::from_vars(&vars(&[("AWS_ENDPOINT_URL_S3", "http://b:2")]), none.clone());
        assert_eq!(c.endpoint.as_deref(), Some("http://b:2"));
        assert_eq!(c.part_size, DEFAULT_PART_SIZE);
        let c = S3Config::from_vars(
            &vars(&[
                ("INTERLOG_S3_ENDPOINT_URL", "http://a:1"),
                ("AWS_ENDPOINT_URL_S3", "http://b:2"),
                ("INTERLOG_S3_PART_SIZE", "1024"),
            ]),
            none,
        );
        assert_eq!(c.endpoint.as_deref(), Some("http://a:1"));
        assert_eq!(c.part_size, 1024);
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let c = S3Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "SECRET".into(),
            session_token: Some("TOKEN".into()),
            region: None,
            source: "env".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("SECRET") && !shown.contains("TOKEN"), "{shown}");
    }

    #[tokio::test]
    async fn no_credentials_is_its_own_kind() {
        let none: CredentialSource = Arc::new(|| Err("Unable to locate credentials".into()));
        let objects = Objects::new(S3Config::from_vars(&HashMap::new(), none));
        let e = objects.head(&S3Location::parse("s3://bucket/key").unwrap()).await.unwrap_err();
        assert_eq!(e.kind, ObjectErrorKind::NoCredentials);
        assert_eq!(e.message, "Unable to locate credentials");
    }
}

//! Sink 2: store-and-forward to Amazon Personalize (`--forward-to`), or any PutEvents-compatible
//! server. Each page of a dataset's log is rebuilt into PutEvents calls as the real API wants
//! them (at most 10 events, one session and user per call, every member and eventId as stored),
//! signed with SigV4 (`personalize`), and sent no faster than a token bucket per remote tracker
//! allows. Throttling, 5xx and network errors are retried with exponential backoff and jitter; an
//! event the upstream refuses for good (a 4xx retrying cannot fix) becomes a dead letter in the
//! store, in the same step that moves the cursor past it. Configuration and the guarantee are in
//! `docs/streams.md`.
//!
//! Action interactions (an Action_Interactions dataset's log) go the same way as PutActionInteractions
//! calls of at most 10 (each carries its own session and user, so any ten in a row share a call), under
//! the remote tracking ID `--forward-tracking-id` maps the dataset's own to, paced by that tracker's
//! bucket at `--forward-rate`.
//!
//! Records of items, users and actions datasets are forwarded the same way, with PutItems /
//! PutUsers / PutActions (at most 10 records per call, each in its latest version, under the
//! remote dataset ARN `--forward-dataset-arn` maps the local one to), through the same retries and
//! dead letters, no faster than a bucket per remote dataset (`--forward-records-rate`).
//!
//! The HTTP client is hyper's pooled client (hyper 1, already the server's) with rustls on
//! ring for `https://`, and the request is built here rather than by aws-sdk-personalizeevents:
//! the SDK's `eventValue` is an `f32` and its `sentAt` a `DateTime`, so a forwarded event would
//! not carry the stored values exactly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use interlog_model::RecordKind;
use interlog_store::{StoredEvent, StoredRecord};
use serde_json::{json, Map, Value};

use super::{Backoff, Delivery, Destination, Entry, Source};

/// The cursor and lease key of this sink.
pub const SINK: &str = "forward";
/// PutEvents takes at most this many events per call.
pub const MAX_EVENTS_PER_CALL: usize = 10;
/// PutItems, PutUsers and PutActions take at most this many records per call.
pub const MAX_RECORDS_PER_CALL: usize = 10;
/// PutActionInteractions takes at most this many action interactions per call.
pub const MAX_ACTION_INTERACTIONS_PER_CALL: usize = 10;
/// The dataset type of the log PutActionInteractions writes.
const ACTION_INTERACTIONS: &str = "ACTION_INTERACTIONS";

/// The keys the forwarder signs with. `Debug` shows the key ID only.
#[derive(Clone)]
pub struct ForwardCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they came from (`flags`, `env`, `shared-credentials-file`, ...), for the log.
    pub source: String,
}

impl std::fmt::Debug for ForwardCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// `--forward-*` settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// The upstream's base URL: `https://personalize-events.us-east-1.amazonaws.com`, or any
    /// PutEvents-compatible server (another interlog).
    pub url: String,
    /// The region of the signature's credential scope.
    pub region: String,
    pub credentials: ForwardCredentials,
    /// Local tracking ID → the upstream's; one without an entry is forwarded under its own.
    pub tracking_ids: HashMap<String, String>,
    /// PutEvents calls per second per remote tracker (AWS's default quota is 1,000).
    pub rate: f64,
    /// Local dataset ARN → the upstream's, for the records of items, users and actions datasets; one without
    /// an entry is forwarded under its own ARN.
    pub dataset_arns: HashMap<String, String>,
    /// PutItems / PutUsers / PutActions calls per second per remote dataset (AWS's quota for PutItems and
    /// PutUsers is 10 per dataset group).
    pub records_rate: f64,
    /// Dataset groups (names or ARNs) whose events are forwarded; empty: every group.
    pub dataset_groups: Vec<String>,
    /// How long one call may take, connection included.
    pub call_timeout: Duration,
    /// Calls in flight at once per dataset.
    pub concurrency: usize,
    /// How long a call that fails transiently is retried before its page is handed back (its
    /// confirmed part recorded, its last error shown) and tried again after a backoff.
    pub retry_for: Duration,
    /// The first and the longest wait between two tries of one call (doubling, with jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl ForwardConfig {
    pub fn new(url: impl Into<String>, region: impl Into<String>, credentials: ForwardCredentials) -> ForwardConfig {
        ForwardConfig {
            url: url.into(),
            region: region.into(),
            credentials,
            tracking_ids: HashMap::new(),
            rate: 1000.0,
            dataset_arns: HashMap::new(),
            records_rate: 10.0,
            dataset_groups: Vec::new(),
            call_timeout: Duration::from_secs(10),
            concurrency: 64,
            retry_for: Duration::from_secs(10),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// Refuses what could never work, at start-up rather than at the first call.
    pub fn check(&self) -> Result<(), String> {
        let uri: hyper::Uri = self.url.parse().map_err(|e| format!("--forward-to {:?} is not a URL: {e}", self.url))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some() => {}
            _ => return Err(format!("--forward-to {:?} must be http://host[:port] or https://host[:port]", self.url)),
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!("--forward-rate must be a positive number of calls per second, not {}", self.rate));
        }
        if !(self.records_rate.is_finite() && self.records_rate > 0.0) {
            return Err(format!(
                "--forward-records-rate must be a positive number of calls per second, not {}",
                self.records_rate
            ));
        }
        if self.region.is_empty() {
            return Err("--forward-region must not be empty".into());
        }
        if self.concurrency == 0 {
            return Err("--forward-concurrency must be at least 1".into());
        }
        Ok(())
    }
}

/// Parses `--forward-tracking-id LOCAL=REMOTE`.
pub fn tracking_id_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((l, r)) if !l.is_empty() && !r.is_empty() => Ok((l.to_owned(), r.to_owned())),
        _ => Err(format!("--forward-tracking-id takes LOCAL=REMOTE (two tracking IDs), not {s:?}")),
    }
}

/// Parses `--forward-dataset-arn LOCAL=REMOTE`: two dataset ARNs (an ARN holds no `=`).
pub fn dataset_arn_pair(s: &str) -> Result<(String, String), String> {
    let arn = |a: &str| a.starts_with("arn:") && a.contains(":dataset/");
    match s.split_once('=') {
        Some((l, r)) if arn(l) && arn(r) => Ok((l.to_owned(), r.to_owned())),
        _ => Err(format!("--forward-dataset-arn takes LOCAL=REMOTE (two dataset ARNs), not {s:?}")),
    }
}

/// The limit on calls to one remote tracker: a token bucket holding one second of calls
/// (`rate` tokens, at least 1) whose tokens come back one window after they were taken, the
/// window being that second plus 10%. So no 1-s window holds more than `rate` calls, retries
/// included, however many datasets share the tracker; the check is on when calls actually went
/// out, so a task woken late (a busy machine, the timer's millisecond steps) only delays calls
/// and never lets more out; the 10% absorb the network and a busy upstream squeezing some
/// calls together on arrival. A steady load goes out at 91% of `rate`.
struct Bucket {
    capacity: usize,
    window: Duration,
    /// When the calls of the last window went out, oldest first (tokio's clock, which tests can
    /// pause).
    sent: tokio::sync::Mutex<std::collections::VecDeque<tokio::time::Instant>>,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let capacity = (rate.floor() as usize).max(1);
        Bucket {
            capacity,
            window: Duration::from_secs_f64(1.1 * capacity as f64 / rate),
            sent: tokio::sync::Mutex::new(std::collections::VecDeque::with_capacity(capacity)),
        }
    }

    /// Waits for a token. Takers queue on the (fair) lock and each holds it through its wait,
    /// so tokens go out in order of asking.
    async fn take(&self) {
        let mut sent = self.sent.lock().await;
        if sent.len() >= self.capacity {
            if let Some(oldest) = sent.pop_front() {
                tokio::time::sleep_until(oldest + self.window).await;
            }
        }
        sent.push_back(tokio::time::Instant::now());
    }
}

/// What became of one event of a page.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Delivered,
    /// Refused for good, with the upstream's reason: a dead letter.
    Refused(String),
    /// Not confirmed yet (the upstream kept failing transiently): sent again later.
    Pending(String),
}

/// How an upstream answer is treated.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Ok,
    /// Will never succeed: a dead letter.
    Permanent(String),
    /// Throttled, a 5xx, a network error, a credential problem: tried again.
    Transient(String),
}

/// The forwarding destination.
pub struct Forward {
    config: ForwardConfig,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `url` without a trailing `/`; calls go to `/events`, `/items`, `/users`, `/actions` under it.
    base: String,
    /// By remote tracking ID (PutEvents) and by remote dataset ARN (the records' calls).
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
    /// Outcomes of events past a page's confirmed prefix (a later call succeeded while an
    /// earlier one kept failing), by dataset and position: the next delivery of the page skips
    /// them instead of sending them twice. Memory only: after a crash they are sent again.
    settled: Mutex<HashMap<i64, BTreeMap<i64, Outcome>>>,
}

impl Forward {
    pub fn new(config: ForwardConfig) -> Result<Forward, String> {
        config.check()?;
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("--forward-to: TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.call_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(config.concurrency.max(1))
            .build(https);
        let base = config.url.trim_end_matches('/').to_owned();
        Ok(Forward { config, client, base, buckets: Mutex::new(HashMap::new()), settled: Mutex::new(HashMap::new()) })
    }

    /// The bucket of a remote tracker or dataset (a tracking ID and an ARN never look alike) at its rate.
    fn bucket(&self, remote: &str, rate: f64) -> Arc<Bucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.entry(remote.to_owned()).or_insert_with(|| Arc::new(Bucket::new(rate))).clone()
    }

    /// The upstream dataset ARN of a local one.
    pub fn remote_dataset_arn<'a>(&'a self, local: &'a str) -> &'a str {
        self.config.dataset_arns.get(local).map_or(local, String::as_str)
    }

    /// The upstream tracking ID of a local one.
    pub fn remote_tracking_id<'a>(&'a self, local: &'a str) -> &'a str {
        self.config.tracking_ids.get(local).map_or(local, String::as_str)
    }

    /// The route of a tracker's calls (PutEvents, PutActionInteractions) to `path` under the
    /// remote tracking ID `local` maps to, paced by that remote tracker's bucket.
    fn tracker_route(&self, local: &str, path: &str, call: Call) -> Route {
        let remote = self.remote_tracking_id(local).to_owned();
        Route {
            endpoint: format!("{}/{path}", self.base),
            bucket: self.bucket(&remote, self.config.rate),
            remote,
            call,
        }
    }

    /// One signed call (PutEvents, PutItems, ...) to `endpoint`.
    async fn call(&self, endpoint: &str, body: Vec<u8>) -> Answer {
        let request = match self.signed_request(endpoint, body) {
            Ok(r) => r,
            Err(e) => return Answer::Transient(format!("forward: cannot sign the request: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                use std::error::Error;
                let mut why = e.to_string();
                let mut source = e.source();
                while let Some(s) = source {
                    why = format!("{why}: {s}");
                    source = s.source();
                }
                why
            })?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, body))
        };
        match tokio::time::timeout(self.config.call_timeout, exchange).await {
            Err(_) => {
                Answer::Transient(format!("forward: no answer from {endpoint} within {:?}", self.config.call_timeout))
            }
            Ok(Err(e)) => Answer::Transient(format!("forward: {endpoint}: {e}")),
            Ok(Ok((parts, body))) => classify(parts.status.as_u16(), &parts.headers, &body),
        }
    }

    fn signed_request(&self, endpoint: &str, body: Vec<u8>) -> Result<hyper::Request<Full<Bytes>>, String> {
        let c = &self.config.credentials;
        let identity: aws_smithy_runtime_api::client::identity::Identity = aws_credential_types::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            c.session_token.clone(),
            None,
            "interlog-forward",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("personalize")
            .time(SystemTime::now())
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let uri: hyper::Uri = endpoint.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
        let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let headers = [("host", host.as_str()), ("content-type", "application/json")];
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            endpoint,
            headers.iter().copied(),
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) =
            aws_sigv4::http_request::sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
        let mut builder = hyper::Request::post(uri).header("host", host).header("content-type", "application/json");
        for (name, value) in instructions.headers() {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())
    }

    /// Sends one call until it is answered for good or `retry_for` passed since its first try,
    /// waiting for the tracker's token before every try. Counts the tries after the first in
    /// `retried`.
    async fn send(&self, route: &Route, body: &[u8], retried: &std::sync::atomic::AtomicU64) -> Answer {
        let bucket = &*route.bucket;
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut deadline = None;
        loop {
            bucket.take().await;
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.config.retry_for);
            match self.call(&route.endpoint, body.to_vec()).await {
                Answer::Transient(why) => {
                    let wait = backoff.next();
                    if Instant::now() + wait >= deadline {
                        return Answer::Transient(why);
                    }
                    retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(sink = SINK, error = %why, ?wait, "call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                answer => return answer,
            }
        }
    }

    /// [`Forward::deliver_batch`] once one of the page's `limit` slots is free.
    async fn limited_batch(
        &self,
        limit: &tokio::sync::Semaphore,
        route: &Route,
        batch: &[&Entry],
        retried: &std::sync::atomic::AtomicU64,
    ) -> Vec<Outcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        // Never closed, so acquiring only fails if it were; then run unlimited rather than not.
        let _slot = limit.acquire().await.ok();
        self.deliver_batch(route, batch, retried).await
    }

    /// Delivers one batch (one call's events): on a permanent refusal of several events, each is
    /// sent alone so only the bad ones become dead letters.
    async fn deliver_batch(
        &self,
        route: &Route,
        batch: &[&Entry],
        retried: &std::sync::atomic::AtomicU64,
    ) -> Vec<Outcome> {
        let body = route.body(batch);
        match self.send(route, &body, retried).await {
            Answer::Ok => vec![Outcome::Delivered; batch.len()],
            Answer::Transient(why) => vec![Outcome::Pending(why); batch.len()],
            Answer::Permanent(why) if batch.len() == 1 => vec![Outcome::Refused(why)],
            Answer::Permanent(_) => {
                let mut out = Vec::with_capacity(batch.len());
                for e in batch {
                    let body = route.body(std::slice::from_ref(e));
                    out.push(match self.send(route, &body, retried).await {
                        Answer::Ok => Outcome::Delivered,
                        Answer::Permanent(why) => Outcome::Refused(why),
                        Answer::Transient(why) => Outcome::Pending(why),
                    });
                }
                out
            }
        }
    }
}

/// What one dataset's calls are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// PutEvents: an Interactions dataset.
    Events,
    /// PutActionInteractions: an Action_Interactions dataset.
    ActionInteractions,
    /// PutItems / PutUsers / PutActions.
    Records(RecordKind),
}

/// Where one page's calls go: the endpoint, what the body names upstream (the remote tracking ID, or the remote
/// dataset ARN of records), and the bucket that paces them.
struct Route {
    endpoint: String,
    remote: String,
    call: Call,
    bucket: Arc<Bucket>,
}

impl Route {
    /// The request body of one call's entries (all events, or all records of one kind).
    fn body(&self, batch: &[&Entry]) -> Vec<u8> {
        let events = || -> Vec<&StoredEvent> {
            batch
                .iter()
                .filter_map(|e| match e {
                    Entry::Event(e) => Some(e),
                    Entry::Record(_) => None,
                })
                .collect()
        };
        match self.call {
            Call::Events => put_events_body(&self.remote, &events()),
            Call::ActionInteractions => put_action_interactions_body(&self.remote, &events()),
            Call::Records(kind) => {
                let records: Vec<&StoredRecord> = batch
                    .iter()
                    .filter_map(|e| match e {
                        Entry::Record(r) => Some(r),
                        Entry::Event(_) => None,
                    })
                    .collect();
                put_records_body(kind, &self.remote, &records)
            }
        }
    }
}

/// Splits a page into calls. Events: runs of consecutive events with one (sessionId, userId), at
/// most 10 each; consecutive, so the upstream receives each session's events in log order.
/// Action interactions (`per_session` false: each names its own session and user) and records:
/// runs of at most 10 (each record ID is in a page once, so any records may share a call).
pub fn batches(entries: &[Entry], per_session: bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let same_call = |a: &Entry, b: &Entry| match (a, b) {
        (Entry::Event(a), Entry::Event(b)) => {
            !per_session
                || (a.interaction.session_id == b.interaction.session_id
                    && a.interaction.user_id == b.interaction.user_id)
        }
        (Entry::Record(_), Entry::Record(_)) => true,
        _ => false,
    };
    for i in 1..=entries.len() {
        let split = i == entries.len()
            || i - start == MAX_EVENTS_PER_CALL.min(MAX_RECORDS_PER_CALL).min(MAX_ACTION_INTERACTIONS_PER_CALL)
            || !same_call(&entries[i], &entries[start]);
        if split {
            if i > start {
                out.push(start..i);
            }
            start = i;
        }
    }
    out
}

/// The PutEvents request of one batch: every member as stored (`properties` is the JSON text
/// the client sent, `sentAt` and `eventValue` the stored numbers), under the remote tracking ID.
pub fn put_events_body(tracking_id: &str, batch: &[&StoredEvent]) -> Vec<u8> {
    let first = &batch[0].interaction;
    let list: Vec<Value> = batch
        .iter()
        .map(|e| {
            let i = &e.interaction;
            let mut m = Map::new();
            m.insert("eventId".into(), json!(i.event_id));
            m.insert("eventType".into(), json!(i.event_type));
            m.insert("sentAt".into(), json!(i.sent_at));
            let mut opt = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            };
            opt("itemId", i.item_id.as_ref().map(|v| json!(v)));
            opt("eventValue", i.event_value.map(|v| json!(v)));
            opt("properties", i.properties.as_ref().map(|v| json!(v)));
            opt("recommendationId", i.recommendation_id.as_ref().map(|v| json!(v)));
            opt("impression", i.impression.as_ref().map(|v| json!(v)));
            opt(
                "metricAttribution",
                i.event_attribution_source.as_ref().map(|v| json!({ "eventAttributionSource": v })),
            );
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("trackingId".into(), json!(tracking_id));
    body.insert("sessionId".into(), json!(first.session_id));
    if let Some(user) = &first.user_id {
        body.insert("userId".into(), json!(user));
    }
    body.insert("eventList".into(), Value::Array(list));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// The PutActionInteractions request of one batch: every member as stored (the log keeps the action in its item
/// column and `timestamp` in its sent-at one), each with its own session and user, under the remote tracking ID.
pub fn put_action_interactions_body(tracking_id: &str, batch: &[&StoredEvent]) -> Vec<u8> {
    let list: Vec<Value> = batch
        .iter()
        .map(|e| {
            let a = interlog_store::events::action_interaction(&e.interaction);
            let mut m = Map::new();
            m.insert("actionId".into(), json!(a.action_id));
            if let Some(user) = &a.user_id {
                m.insert("userId".into(), json!(user));
            }
            m.insert("sessionId".into(), json!(a.session_id));
            m.insert("timestamp".into(), json!(a.timestamp));
            m.insert("eventType".into(), json!(a.event_type));
            m.insert("eventId".into(), json!(a.event_id));
            if let Some(r) = &a.recommendation_id {
                m.insert("recommendationId".into(), json!(r));
            }
            if let Some(i) = &a.impression {
                m.insert("impression".into(), json!(i));
            }
            if let Some(p) = &a.properties {
                m.insert("properties".into(), json!(p));
            }
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("trackingId".into(), json!(tracking_id));
    body.insert("actionInteractions".into(), Value::Array(list));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// The PutItems / PutUsers / PutActions request of one batch: every record as stored (its ID under the kind's
/// member, `properties` the JSON text the client sent), under the remote dataset ARN.
pub fn put_records_body(kind: RecordKind, dataset_arn: &str, batch: &[&StoredRecord]) -> Vec<u8> {
    let list: Vec<Value> = batch
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert(kind.id_member().into(), json!(r.record.id));
            if let Some(p) = &r.record.properties {
                m.insert("properties".into(), json!(p));
            }
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("datasetArn".into(), json!(dataset_arn));
    body.insert(kind.list_member().into(), Value::Array(list));
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

/// Error codes that mean "slow down": botocore's throttling list, as AWS services use them.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
];
/// Error codes about the request itself: sending it again cannot succeed.
const PERMANENT: &[&str] = &[
    "InvalidInputException",
    "ResourceNotFoundException",
    "ValidationException",
    "SerializationException",
    "RequestEntityTooLargeException",
];

/// Sorts an answer into delivered, refused for good, or to be retried. Credential and
/// permission errors (403) are retried, not dead-lettered: they are the forwarder's
/// configuration, not the event's fault, and every event would otherwise be lost to them.
fn classify(status: u16, headers: &hyper::HeaderMap, body: &[u8]) -> Answer {
    if (200..300).contains(&status) {
        return Answer::Ok;
    }
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // The code as botocore reads it: the header (before ':' and after '#'), else the body.
    let raw = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parsed.get("__type").or_else(|| parsed.get("code")).and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let code = raw.split(':').next().unwrap_or_default().rsplit('#').next().unwrap_or_default().to_owned();
    let message = parsed.get("message").or_else(|| parsed.get("Message")).and_then(Value::as_str).unwrap_or_default();
    let why = if code.is_empty() {
        format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]))
    } else {
        format!("{code}: {message}")
    };
    if THROTTLING.contains(&code.as_str()) || status == 429 || status >= 500 || status == 408 {
        Answer::Transient(why)
    } else if PERMANENT.contains(&code.as_str()) || (code.is_empty() && matches!(status, 400 | 404 | 413)) {
        Answer::Permanent(why)
    } else {
        Answer::Transient(why)
    }
}

#[async_trait]
impl Destination for Forward {
    fn name(&self) -> &str {
        SINK
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "{} region {} signed as {} ({}), at most {} calls/s per tracker and {} per dataset of records",
            c.url, c.region, c.credentials.access_key_id, c.credentials.source, c.rate, c.records_rate
        )
    }

    /// Interactions (the datasets PutEvents writes), action interactions (PutActionInteractions')
    /// and the records of items, users and actions.
    fn wants(&self, source: &Source) -> bool {
        (source.dataset_type == "INTERACTIONS"
            || source.dataset_type == ACTION_INTERACTIONS
            || source.record_kind().is_some())
            && (self.config.dataset_groups.is_empty()
                || self.config.dataset_groups.iter().any(|g| *g == source.group_name || *g == source.group_arn))
    }

    async fn deliver(&self, source: &Source, events: &[Entry]) -> Delivery {
        let route = match source.record_kind() {
            Some(kind) => {
                let remote = self.remote_dataset_arn(&source.arn).to_owned();
                Route {
                    endpoint: format!("{}{}", self.base, kind.http_path()),
                    bucket: self.bucket(&remote, self.config.records_rate),
                    remote,
                    call: Call::Records(kind),
                }
            }
            None if source.dataset_type == ACTION_INTERACTIONS => {
                // Every Action_Interactions dataset has its own tracker, made with it.
                let Some(local) = source.tracking_id.as_deref() else {
                    return Delivery::failed(format!(
                        "forward: the action interactions dataset {} has no tracking ID to be forwarded under",
                        source.arn
                    ));
                };
                self.tracker_route(local, "action-interactions", Call::ActionInteractions)
            }
            None => {
                let Some(local) = source.tracking_id.as_deref() else {
                    return Delivery::failed(format!(
                        "forward: dataset group {} has no event tracker, so its events have no tracking ID to be \
                         forwarded under; create one (its tracking ID, or --forward-tracking-id LOCAL=REMOTE, \
                         names the upstream's)",
                        source.group_arn
                    ));
                };
                self.tracker_route(local, "events", Call::Events)
            }
        };
        let (first, last) = match (events.first(), events.last()) {
            (Some(f), Some(l)) => (f.position(), l.position()),
            _ => return Delivery::default(),
        };
        // What an earlier try of this page settled past its confirmed prefix.
        let mut known: BTreeMap<i64, Outcome> = {
            let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            let of_dataset = settled.entry(source.id).or_default();
            let known = of_dataset.range(first..=last).map(|(k, v)| (*k, v.clone())).collect();
            of_dataset.retain(|k, _| *k > last);
            known
        };
        let retried = std::sync::atomic::AtomicU64::new(0);
        let calls: Vec<_> = batches(events, route.call == Call::Events)
            .into_iter()
            .map(|range| events[range].iter().filter(|e| !known.contains_key(&e.position())).collect::<Vec<&Entry>>())
            .collect();
        // Up to `concurrency` calls at once, started in page order (the semaphore is fair).
        let limit = tokio::sync::Semaphore::new(self.config.concurrency);
        let mut running = Vec::with_capacity(calls.len());
        for batch in &calls {
            running.push(self.limited_batch(&limit, &route, batch, &retried));
        }
        let outcomes = futures_util::future::join_all(running).await;
        for (batch, outs) in calls.iter().zip(outcomes) {
            known.extend(batch.iter().map(|e| e.position()).zip(outs));
        }
        // The confirmed prefix: every event up to the first still pending.
        let mut delivery = Delivery { retried: retried.into_inner(), ..Delivery::default() };
        for (index, e) in events.iter().enumerate() {
            match known.get(&e.position()) {
                Some(Outcome::Delivered) => delivery.confirmed = index + 1,
                Some(Outcome::Refused(why)) => {
                    delivery.confirmed = index + 1;
                    delivery.refused.push((index, why.clone()));
                }
                Some(Outcome::Pending(why)) => {
                    delivery.error = Some(why.clone());
                    break;
                }
                None => {
                    delivery.error = Some("forward: an event of the page was not sent".into());
                    break;
                }
            }
        }
        if delivery.confirmed < events.len() {
            let past: BTreeMap<i64, Outcome> = events[delivery.confirmed..]
                .iter()
                .filter_map(|e| match known.get(&e.position()) {
                    Some(o @ (Outcome::Delivered | Outcome::Refused(_))) => Some((e.position(), o.clone())),
                    _ => None,
                })
                .collect();
            self.settled.lock().unwrap_or_else(|p| p.into_inner()).entry(source.id).or_default().extend(past);
        }
        delivery
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interlog_model::Interaction;

    fn event(seq: i64, session: &str, user: Option<&str>) -> StoredEvent {
        StoredEvent {
            seq,
            received_at: 1.0,
            bulk: false,
            interaction: Interaction {
                event_id: format!("e{seq}"),
                session_id: session.into(),
                user_id: user.map(str::to_owned),
                item_id: Some("i".into()),
                event_type: "click".into(),
                event_value: Some(1.1),
                sent_at: 1764590000.123456,
                properties: Some(r#"{"a":"b"}"#.into()),
                recommendation_id: Some("r".into()),
                impression: Some(vec!["x".into()]),
                event_attribution_source: Some("email".into()),
                flags: Vec::new(),
            },
        }
    }

    #[test]
    fn batches_hold_one_session_and_user_and_at_most_ten() {
        let mut page: Vec<StoredEvent> = (1..=23).map(|i| event(i, "s1", Some("u"))).collect();
        page.push(event(24, "s1", None));
        page.push(event(25, "s2", None));
        page.push(event(26, "s2", None));
        page.push(event(27, "s1", Some("u")));
        let page: Vec<Entry> = page.into_iter().map(Entry::Event).collect();
        let b = batches(&page, true);
        assert_eq!(b, vec![0..10, 10..20, 20..23, 23..24, 24..26, 26..27]);
        assert!(batches(&[], true).is_empty());
        let records: Vec<Entry> = (1..=23).map(|i| Entry::Record(record(i, &format!("r{i}")))).collect();
        assert_eq!(batches(&records, false), vec![0..10, 10..20, 20..23], "records: ten per call");
        // Action interactions carry their own session and user: any ten in a row share a call.
        assert_eq!(batches(&page, false), vec![0..10, 10..20, 20..27]);
    }

    #[test]
    fn an_action_interactions_call_carries_each_member_as_stored() {
        let (a, mut b) = (event(1, "s1", Some("u")), event(2, "s2", None));
        b.interaction.recommendation_id = None;
        b.interaction.impression = None;
        b.interaction.properties = None;
        let v: Value = serde_json::from_slice(&put_action_interactions_body("remote", &[&a, &b])).unwrap();
        assert_eq!(
            v,
            json!({"trackingId": "remote", "actionInteractions": [
                {"actionId": "i", "userId": "u", "sessionId": "s1", "timestamp": 1764590000.123456,
                 "eventType": "click", "eventId": "e1", "recommendationId": "r", "impression": ["x"],
                 "properties": r#"{"a":"b"}"#},
                {"actionId": "i", "sessionId": "s2", "timestamp": 1764590000.123456, "eventType": "click",
                 "eventId": "e2"}]})
        );
    }

    fn record(position: i64, id: &str) -> StoredRecord {
        StoredRecord {
            position,
            received_at: 1.0,
            bulk: false,
            record: interlog_model::Record { id: id.into(), properties: Some(r#"{"a":"b"}"#.into()), flags: vec![] },
        }
    }

    #[test]
    fn a_records_call_carries_each_id_and_properties_under_the_remote_dataset() {
        let (a, mut b) = (record(1, "i-1"), record(2, "i-2"));
        b.record.properties = None;
        let v: Value = serde_json::from_slice(&put_records_body(RecordKind::Item, "arn:remote", &[&a, &b])).unwrap();
        assert_eq!(
            v,
            json!({"datasetArn": "arn:remote", "items": [{"itemId": "i-1", "properties": r#"{"a":"b"}"#}, {"itemId": "i-2"}]})
        );
        let v: Value = serde_json::from_slice(&put_records_body(RecordKind::Action, "arn:r", &[&a])).unwrap();
        assert_eq!(v["actions"][0]["actionId"], "i-1");
        let v: Value = serde_json::from_slice(&put_records_body(RecordKind::User, "arn:r", &[&a])).unwrap();
        assert_eq!(v["users"][0]["userId"], "i-1");
    }

    #[test]
    fn a_call_carries_every_member_as_stored() {
        let (a, b) = (event(1, "s", Some("u")), event(2, "s", Some("u")));
        let v: Value = serde_json::from_slice(&put_events_body("remote", &[&a, &b])).unwrap();
        assert_eq!(v["trackingId"], "remote");
        assert_eq!(v["sessionId"], "s");
        assert_eq!(v["userId"], "u");
        let e = &v["eventList"][0];
        assert_eq!(e["eventId"], "e1");
        assert_eq!(e["sentAt"].as_f64(), Some(1764590000.123456));
        assert_eq!(e["eventValue"].as_f64(), Some(1.1), "the stored double, not an f32");
        assert_eq!(e["properties"], r#"{"a":"b"}"#);
        assert_eq!(e["impression"], json!(["x"]));
        assert_eq!(e["metricAttribution"]["eventAttributionSource"], "email");
        assert_eq!(e["recommendationId"], "r");
        assert_eq!(e.as_object().unwrap().len(), 9);
        assert_eq!(v["eventList"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn answers_are_sorted_by_what_retrying_can_do() {
        let h = |t: &str| {
            let mut m = hyper::HeaderMap::new();
            m.insert("x-amzn-errortype", t.parse().unwrap());
            m
        };
        let none = hyper::HeaderMap::new();
        assert_eq!(classify(200, &none, b""), Answer::Ok);
        assert!(
            matches!(classify(400, &none, br#"{"__type":"ThrottlingException","message":"slow"}"#), Answer::Transient(w) if w == "ThrottlingException: slow")
        );
        assert!(
            matches!(classify(400, &h("InvalidInputException:http://internal.amazon.com/coral/"), br#"{"message":"bad"}"#), Answer::Permanent(w) if w == "InvalidInputException: bad")
        );
        assert!(matches!(
            classify(404, &h("com.amazonaws.personalizeevents#ResourceNotFoundException"), b"{}"),
            Answer::Permanent(_)
        ));
        assert!(matches!(classify(503, &none, b""), Answer::Transient(_)));
        assert!(matches!(classify(429, &none, b""), Answer::Transient(_)));
        assert!(
            matches!(classify(403, &h("UnrecognizedClientException"), b"{}"), Answer::Transient(_)),
            "credentials are not the event's fault"
        );
        assert!(matches!(classify(413, &none, b"too big"), Answer::Permanent(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_every_1s_window_to_the_rate() {
        let bucket = Bucket::new(100.0);
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..250 {
            bucket.take().await;
            at.push(tokio::time::Instant::now());
        }
        // 100 at once, 100 more a window (1.1 s) later, the last 50 a window after those.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2200) && took <= Duration::from_millis(2210), "{took:?}");
        for (i, t) in at.iter().enumerate() {
            let in_window = at[i..].iter().filter(|u| **u < *t + Duration::from_secs(1)).count();
            assert!(in_window <= 100, "{in_window} calls in the second after call {i}");
        }
        let slow = Bucket::new(0.5);
        slow.take().await;
        let before = tokio::time::Instant::now();
        slow.take().await;
        assert!(before.elapsed() >= Duration::from_millis(2200), "a rate below 1/s is one call per 2.2 s");
    }

    #[test]
    fn configuration_is_checked() {
        let creds = ForwardCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            source: "test".into(),
        };
        assert!(!format!("{creds:?}").contains("secret"));
        let mut c = ForwardConfig::new("http://127.0.0.1:8787", "us-east-1", creds);
        assert!(c.check().is_ok());
        c.rate = 0.0;
        assert!(c.check().is_err());
        c.rate = 10.0;
        c.url = "ftp://x".into();
        assert!(c.check().is_err());
        assert_eq!(tracking_id_pair("a=b").unwrap(), ("a".into(), "b".into()));
        assert!(tracking_id_pair("a=").is_err());
        let (l, r) =
            ("arn:aws:personalize:us-east-1:0:dataset/g/ITEMS", "arn:aws:personalize:eu-west-1:1:dataset/h/ITEMS");
        assert_eq!(dataset_arn_pair(&format!("{l}={r}")).unwrap(), (l.into(), r.into()));
        assert!(dataset_arn_pair("a=b").is_err());
        c.records_rate = 0.0;
        assert!(c.check().is_err());
    }
}

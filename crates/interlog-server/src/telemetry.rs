//! Metrics and the request span: `GET /_interlog/metrics` in the Prometheus text format (docs/api.md,
//! "Metrics"), and the middleware that gives every request its ID, its tracing span (so every log line of the
//! request carries `request_id`, the `x-amzn-RequestId` the client sees), its latency and its outcome.
//!
//! Counters that happen on the hot path (requests, events, flags, commits, throttles, refused connections) are
//! counted as they happen; what another part already keeps (the write queue, the store's size, the sinks'
//! cursors) is read when scraped. One registry per server, no process-global recorder, so tests can run
//! several servers in one process.
//!
//! Cardinality is bounded: `operation` is one of the known operations (else `unknown`), `outcome` one of the
//! error types the server sends (`ok` otherwise), `reason` a [`FlagKind`]; `account`/`tracker` pairs are those
//! of trackers that exist (a trackingId that resolves to none is `unknown`) and at most [`MAX_TRACKER_SERIES`]
//! of them: past it every new pair is counted under `other`/`other` (so a scrape holds at most 501 pairs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use interlog_model::{FlagCounts, FlagKind};
use interlog_store::{AppendOutcome, CommitReport, ObserveCommits, Store};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use tracing::Instrument;

/// Most distinct `account`/`tracker` label pairs (each pair costs one series per family and flag reason).
pub const MAX_TRACKER_SERIES: usize = 500;

/// Request latency buckets, in seconds: a sub-millisecond health probe to a 10 s export page.
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Commit latency buckets, in seconds: an fsync is 0.1-10 ms on most disks; a stalled one shows at the top.
const COMMIT_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];
/// Entries per commit: one request of one event up to the writer's batch limit (10,000 by default).
const COMMIT_SIZE_BUCKETS: [f64; 11] = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 2500.0, 10000.0];

/// Why the serve loop refused a connection or throttled a request (the `reason` label).
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// Over the server's connection cap (`INTERLOG_MAX_CONNECTIONS`) or its bytes in flight.
    Total,
    /// Over one peer address's share (`INTERLOG_PER_PEER_SHARE`).
    PeerShare,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Total => "server_limit",
            Refusal::PeerShare => "peer_share",
        }
    }
}

/// One `account`/`tracker` pair's series, resolved once so the hot path only increments.
struct TrackerSeries {
    stored: IntCounter,
    duplicates: IntCounter,
    rejected: IntCounter,
    flagged: Vec<IntCounter>,
}

pub struct Telemetry {
    registry: prometheus::Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    stored: IntCounterVec,
    duplicates: IntCounterVec,
    flagged: IntCounterVec,
    rejected: IntCounterVec,
    commit_size: Histogram,
    commit_latency: Histogram,
    commit_failures: IntCounter,
    throttled: IntCounterVec,
    refused_connections: IntCounterVec,
    queue_depth: IntGauge,
    store_size: IntGauge,
    sink_lag_events: IntGaugeVec,
    sink_lag_seconds: prometheus::GaugeVec,
    sink_delivered: IntCounterVec,
    sink_retries: IntCounterVec,
    sink_dead_lettered: IntCounterVec,
    /// account → tracker → series; read-locked on the hot path, written once per new pair.
    trackers: RwLock<HashMap<String, HashMap<String, Arc<TrackerSeries>>>>,
    /// Scrapes set the read-when-scraped series; one at a time, so two never interleave.
    scrape: tokio::sync::Mutex<()>,
    /// Pairs created so far (bounded by [`MAX_TRACKER_SERIES`]).
    pairs: Mutex<usize>,
}

fn counter_vec(registry: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    registry.register(Box::new(c.clone())).expect("each name registered once");
    c
}

fn histogram(registry: &prometheus::Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect("valid buckets");
    registry.register(Box::new(h.clone())).expect("each name registered once");
    h
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let r = prometheus::Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new("interlog_request_duration_seconds", "Time from a request's arrival to its answer.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid buckets");
        r.register(Box::new(latency.clone())).expect("registered once");
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid metric name");
            r.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let queue_depth = gauge("interlog_write_queue_depth", "Requests waiting for the store's writer.");
        let store_size = gauge("interlog_store_size_bytes", "Bytes the store takes on disk (docs/api.md).");
        let sink_lag_events = IntGaugeVec::new(
            Opts::new("interlog_sink_lag_events", "Events stored but not yet delivered by a sink."),
            &["sink", "dataset"],
        )
        .expect("a valid metric name");
        r.register(Box::new(sink_lag_events.clone())).expect("registered once");
        let sink_lag_seconds = prometheus::GaugeVec::new(
            Opts::new("interlog_sink_lag_seconds", "Age of the oldest event a sink has not delivered."),
            &["sink", "dataset"],
        )
        .expect("a valid metric name");
        r.register(Box::new(sink_lag_seconds.clone())).expect("registered once");
        Telemetry {
            requests: counter_vec(
                &r,
                "interlog_requests_total",
                "Requests answered, by operation and outcome (ok, or the error type sent).",
                &["operation", "outcome"],
            ),
            latency,
            stored: counter_vec(
                &r,
                "interlog_events_stored_total",
                "PutEvents events stored.",
                &["account", "tracker"],
            ),
            duplicates: counter_vec(
                &r,
                "interlog_events_duplicates_total",
                "PutEvents events dropped at the door as repeats of a recorded eventId.",
                &["account", "tracker"],
            ),
            flagged: counter_vec(
                &r,
                "interlog_events_flagged_total",
                "PutEvents events accepted with a flag, by reason (docs/api.md, Flags).",
                &["account", "tracker", "reason"],
            ),
            rejected: counter_vec(
                &r,
                "interlog_events_rejected_requests_total",
                "PutEvents requests refused after authentication (nothing of them stored).",
                &["account", "tracker"],
            ),
            commit_size: histogram(
                &r,
                "interlog_commit_entries",
                "Events and records per group commit.",
                &COMMIT_SIZE_BUCKETS,
            ),
            commit_latency: histogram(
                &r,
                "interlog_commit_duration_seconds",
                "Time one group commit took, until durable.",
                &COMMIT_BUCKETS,
            ),
            commit_failures: {
                let c = IntCounter::new("interlog_commit_failures_total", "Group commits that failed.")
                    .expect("a valid metric name");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            throttled: counter_vec(
                &r,
                "interlog_throttled_total",
                "Requests answered ThrottlingException: bytes in flight over the server's limit or an address's \
                 share, or the write queue full.",
                &["reason"],
            ),
            refused_connections: counter_vec(
                &r,
                "interlog_connections_refused_total",
                "Connections refused with 503: over the connection cap or an address's share.",
                &["reason"],
            ),
            queue_depth,
            store_size,
            sink_lag_events,
            sink_lag_seconds,
            sink_delivered: counter_vec(
                &r,
                "interlog_sink_delivered_total",
                "Events a sink delivered (durable cursor counter, every node's).",
                &["sink", "dataset"],
            ),
            sink_retries: counter_vec(
                &r,
                "interlog_sink_errors_total",
                "Failed deliveries a sink retried.",
                &["sink", "dataset"],
            ),
            sink_dead_lettered: counter_vec(
                &r,
                "interlog_sink_dead_lettered_total",
                "Events a sink's destination refused for good, kept as dead letters (durable cursor counter).",
                &["sink", "dataset"],
            ),
            registry: r,
            trackers: RwLock::new(HashMap::new()),
            scrape: tokio::sync::Mutex::new(()),
            pairs: Mutex::new(0),
        }
    }

    /// The series of one `account`/`tracker` pair; `tracker` is `None` when the trackingId resolved to none.
    fn tracker(&self, account: &str, tracker: Option<&str>) -> Arc<TrackerSeries> {
        let tracker = tracker.unwrap_or("unknown");
        {
            let map = self.trackers.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get(account).and_then(|t| t.get(tracker)) {
                return s.clone();
            }
        }
        let mut map = self.trackers.write().unwrap_or_else(|p| p.into_inner());
        let mut pairs = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        let (account, tracker) = if *pairs < MAX_TRACKER_SERIES { (account, tracker) } else { ("other", "other") };
        if let Some(s) = map.get(account).and_then(|t| t.get(tracker)) {
            return s.clone();
        }
        *pairs += 1;
        let labels = [account, tracker];
        let series = Arc::new(TrackerSeries {
            stored: self.stored.with_label_values(&labels),
            duplicates: self.duplicates.with_label_values(&labels),
            rejected: self.rejected.with_label_values(&labels),
            flagged: FlagKind::ALL
                .iter()
                .map(|k| self.flagged.with_label_values(&[account, tracker, k.as_str()]))
                .collect(),
        });
        map.entry(account.to_owned()).or_default().insert(tracker.to_owned(), series.clone());
        series
    }

    /// One acknowledged PutEvents request: what it stored, dropped as repeats, and flagged.
    pub fn events(&self, account: &str, tracker: &str, outcome: &AppendOutcome) {
        let s = self.tracker(account, Some(tracker));
        s.stored.inc_by(outcome.stored as u64);
        s.duplicates.inc_by(outcome.duplicates as u64);
        self.flags(&s, &outcome.flagged);
        if outcome.duplicates > 0 {
            s.flagged[kind_index(FlagKind::DuplicateEventId)].inc_by(outcome.duplicates as u64);
        }
    }

    fn flags(&self, s: &TrackerSeries, counts: &FlagCounts) {
        if counts.is_empty() {
            return;
        }
        for (kind, n) in counts.iter().filter(|(_, n)| *n > 0) {
            s.flagged[kind_index(kind)].inc_by(n);
        }
    }

    /// One PutEvents request refused after authentication; `tracker` when its trackingId resolved.
    pub fn rejected(&self, account: &str, tracker: Option<&str>) {
        self.tracker(account, tracker).rejected.inc();
    }

    /// A request answered ThrottlingException by the admission check.
    pub fn throttled(&self, why: Refusal) {
        self.throttled.with_label_values(&[why.label()]).inc();
    }

    /// A connection refused with 503.
    pub fn refused_connection(&self, why: Refusal) {
        self.refused_connections.with_label_values(&[why.label()]).inc();
    }

    /// The writer's observer, for [`interlog_store::WriterOptions::observer`].
    pub fn commit_observer(self: &Arc<Self>) -> interlog_store::CommitObserver {
        interlog_store::CommitObserver::new(self.clone())
    }

    /// The text exposition of every series, after reading what is read when scraped.
    pub async fn render(&self, store: &dyn Store, sinks: &crate::sinks::Sinks) -> String {
        let _one = self.scrape.lock().await;
        let stats = store.stats();
        self.queue_depth.set(stats.queue_depth as i64);
        // The store's own counter of appends refused with a full queue: set, not counted twice.
        let queue_full = self.throttled.with_label_values(&["write_queue"]);
        queue_full.reset();
        queue_full.inc_by(stats.throttled);
        match store.size_on_disk().await {
            Ok(bytes) => self.store_size.set(bytes.min(i64::MAX as u64) as i64),
            Err(e) => tracing::warn!(error = %e, "metrics: could not measure the store's size on disk"),
        }
        match sinks.status().await {
            Ok(status) => {
                // Rebuilt each scrape: a deleted dataset's series disappear.
                self.sink_lag_events.reset();
                self.sink_lag_seconds.reset();
                self.sink_delivered.reset();
                self.sink_retries.reset();
                self.sink_dead_lettered.reset();
                for sink in &status {
                    for d in &sink.datasets {
                        let labels = [sink.name.as_str(), d.dataset_arn.as_str()];
                        self.sink_lag_events.with_label_values(&labels).set(d.lag_events.min(i64::MAX as u64) as i64);
                        self.sink_lag_seconds.with_label_values(&labels).set(d.lag_seconds);
                        self.sink_delivered.with_label_values(&labels).inc_by(d.delivered);
                        self.sink_retries.with_label_values(&labels).inc_by(d.retried);
                        self.sink_dead_lettered.with_label_values(&labels).inc_by(d.dead_lettered);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not read the sinks' state"),
        }
        let mut out = String::new();
        // The text encoder only fails on a family without metrics or a bad name: neither is registered.
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

impl ObserveCommits for Telemetry {
    fn committed(&self, report: &CommitReport) {
        if report.ok {
            self.commit_size.observe(report.entries as f64);
            self.commit_latency.observe(report.duration.as_secs_f64());
        } else {
            self.commit_failures.inc();
        }
    }
}

fn kind_index(kind: FlagKind) -> usize {
    FlagKind::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL")
}

/// The `operation` label of a request: its AWS operation, or the `/_interlog/` endpoint. Only known names, so
/// a client cannot make new series by sending new paths or targets.
fn operation(method: &Method, path: &str, target: Option<&str>) -> &'static str {
    if let Some(target) = target {
        return target.strip_prefix("AmazonPersonalize.").and_then(crate::api::control_operation).unwrap_or("unknown");
    }
    if let Some(rest) = path.strip_prefix("/_interlog/") {
        let endpoint = rest.split('/').next().unwrap_or_default();
        return match endpoint {
            "health" => "interlog.health",
            "export" => "interlog.export",
            "stats" => "interlog.stats",
            "sinks" => "interlog.sinks",
            "metrics" => "interlog.metrics",
            "ui" => "interlog.ui",
            "v1" => "interlog.v1",
            _ => "interlog.other",
        };
    }
    if method != Method::POST {
        return "unknown";
    }
    match path.trim_end_matches('/').rsplit('/').next().unwrap_or_default() {
        "events" => "PutEvents",
        "items" => "PutItems",
        "users" => "PutUsers",
        "actions" => "PutActions",
        "action-interactions" => "PutActionInteractions",
        _ => "unknown",
    }
}

/// The outermost layer: gives the request its ID and span, times it, counts its outcome, logs an internal
/// failure's cause under the ID, and stamps `x-amzn-RequestId` on every response (throttled ones included).
pub async fn observe(State(telemetry): State<Arc<Telemetry>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let operation = operation(
        request.method(),
        request.uri().path(),
        request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()),
    );
    // At error level so the span is enabled whatever INTERLOG_LOG filters: a warning of the request
    // still carries its ID.
    let span = tracing::error_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Some(crate::api::error::InternalCause(cause)) =
        response.extensions_mut().remove::<crate::api::error::InternalCause>()
    {
        span.in_scope(|| tracing::error!(%cause, "internal failure"));
    }
    let outcome = response
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        // The header is one of the server's static error types; anything else would be a new series.
        .map(|t| if t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric()) { t } else { "other" })
        .unwrap_or(if response.status().is_success() { "ok" } else { "error" });
    telemetry.requests.with_label_values(&[operation, outcome]).inc();
    telemetry.latency.with_label_values(&[operation]).observe(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-RequestId", v);
    }
    response
}

/// `GET /_interlog/metrics`: the body of a scrape.
pub fn exposition(text: String) -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_known_names_only() {
        assert_eq!(operation(&Method::POST, "/events", None), "PutEvents");
        assert_eq!(operation(&Method::POST, "/prefix/action-interactions/", None), "PutActionInteractions");
        assert_eq!(operation(&Method::GET, "/events", None), "unknown");
        assert_eq!(operation(&Method::POST, "/whatever-the-client-sends", None), "unknown");
        assert_eq!(operation(&Method::GET, "/_interlog/metrics", None), "interlog.metrics");
        assert_eq!(operation(&Method::GET, "/_interlog/nope/x", None), "interlog.other");
        assert_eq!(operation(&Method::POST, "/", Some("AmazonPersonalize.CreateSchema")), "CreateSchema");
        assert_eq!(operation(&Method::POST, "/", Some("AmazonPersonalize.Invented")), "unknown");
        assert_eq!(operation(&Method::POST, "/", Some("Other.CreateSchema")), "unknown");
    }

    #[test]
    fn tracker_pairs_are_capped() {
        let t = Telemetry::new();
        let outcome = AppendOutcome { stored: 1, ..Default::default() };
        for i in 0..MAX_TRACKER_SERIES + 10 {
            t.events("111111111111", &format!("tracker-{i}"), &outcome);
        }
        let pairs = t.trackers.read().unwrap().values().map(|m| m.len()).sum::<usize>();
        assert_eq!(pairs, MAX_TRACKER_SERIES + 1, "the pairs, and other/other for the rest");
        assert_eq!(t.stored.with_label_values(&["other", "other"]).get(), 10);
        t.rejected("222222222222", None);
        assert_eq!(t.rejected.with_label_values(&["other", "other"]).get(), 1);
    }
}

//! The load generator: N keep-alive HTTP/1.1 connections (hyper's low-level client, one request
//! in flight per connection), spread over a few current-thread tokio runtimes.
//!
//! - Closed loop (no rate): every connection sends its next request as soon as the previous
//!   answer arrived. Measures saturation throughput.
//! - Open loop (`rate` requests/s): request number `r` is due at `start + r / rate`, whatever
//!   happened before; whichever connection is free takes the next due request. Latency is
//!   measured from the due time, not from when the request could finally be written, so a
//!   stalled server is charged for the requests queued behind the stall (no coordinated
//!   omission). The service time (from the actual write) is kept beside it.
//!
//! Timed runs have a warm-up and a measurement window `[t0, t1]`; only requests in the window
//! count (closed loop: completed in it; open loop: due in it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::body::BodyFactory;
use crate::sign::{reference_sign, Credentials, FastSigner, Signature};

/// Highest latency the histograms hold (microseconds); slower answers are clamped to it.
const MAX_LATENCY_US: u64 = 120_000_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How request bodies get their signatures.
pub enum Source {
    /// Every request has a new body (unique eventIds), signed on the fly with [`FastSigner`].
    Online { factory: BodyFactory, signer: Box<FastSigner> },
    /// A pool of bodies signed with aws-sigv4 before the run, sent round-robin: request `r`
    /// sends pool entry `r % len`, so after the first pass every eventId is a repeat.
    Pool(Vec<(Bytes, Signature)>),
}

/// Requests to send: where, what, and how they are signed.
pub struct Requests {
    pub host: String,
    pub path: String,
    pub source: Source,
    pub events_per_request: usize,
}

impl Requests {
    /// Unique eventIds, signed on the fly.
    pub fn online(host: &str, creds: &Credentials, factory: BodyFactory) -> anyhow::Result<Self> {
        let path = factory.path();
        crate::sign::self_check(creds, host, path, &factory.body(0))?;
        Ok(Requests {
            host: host.to_owned(),
            path: path.into(),
            events_per_request: factory.events_per_request(),
            source: Source::Online { signer: Box::new(FastSigner::new(creds.clone(), host, path)), factory },
        })
    }

    /// `pool` distinct requests, pre-signed with aws-sigv4, repeated round-robin.
    pub fn pool(host: &str, creds: &Credentials, factory: &BodyFactory, pool: usize) -> anyhow::Result<Self> {
        let now = SystemTime::now();
        let entries = (0..pool as u64)
            .map(|r| {
                let body = factory.body(r);
                let sig = reference_sign(creds, host, factory.path(), &body, now)?;
                Ok((Bytes::from(body), sig))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Requests {
            host: host.to_owned(),
            path: factory.path().into(),
            events_per_request: factory.events_per_request(),
            source: Source::Pool(entries),
        })
    }
}

/// Per-connection state for building requests.
struct Builder {
    requests: Arc<Requests>,
    signer: Option<FastSigner>,
    host: HeaderValue,
}

impl Builder {
    fn new(requests: Arc<Requests>) -> anyhow::Result<Self> {
        let signer = match &requests.source {
            Source::Online { signer, .. } => Some((**signer).clone()),
            Source::Pool(_) => None,
        };
        let host = HeaderValue::from_str(&requests.host)?;
        Ok(Builder { requests, signer, host })
    }

    fn build(&mut self, r: u64) -> Request<Full<Bytes>> {
        let (body, sig) = match (&self.requests.source, &mut self.signer) {
            (Source::Online { factory, .. }, Some(signer)) => {
                let body = factory.body(r);
                let sig = signer.sign(&body, SystemTime::now());
                (Bytes::from(body), sig)
            }
            (Source::Pool(pool), _) => {
                let (body, sig) = &pool[(r % pool.len() as u64) as usize];
                (body.clone(), sig.clone())
            }
            (Source::Online { .. }, None) => unreachable!("online sources have a signer"),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_maybe_shared(self.requests.path.clone()).expect("valid path");
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-amz-date", HeaderValue::from_str(&sig.amz_date).expect("ASCII date"));
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&sig.authorization).expect("ASCII authorization"));
        request
    }
}

/// What to run.
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Generator threads (each a current-thread runtime); connections are spread over them.
    pub threads: usize,
    /// Open loop at this many requests/s; closed loop when `None`.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Fill mode: send exactly this many requests, no window (everything counts).
    pub total_requests: Option<u64>,
}

/// Everything measured in the window.
pub struct LoadResult {
    pub ok_requests: u64,
    pub ok_events: u64,
    pub errors: BTreeMap<String, u64>,
    /// From the due time (open loop) or the write (closed loop), microseconds.
    pub latency: Histogram<u64>,
    /// From the write, microseconds.
    pub service: Histogram<u64>,
    /// Length of the window actually measured.
    pub window: Duration,
}

struct Shared {
    next: AtomicU64,
    start: Instant,
    t0: Instant,
    t1: Instant,
    rate: Option<f64>,
    total: Option<u64>,
    events_per_request: u64,
}

/// A load that is running; [`LoadHandle::join`] waits for its end.
pub struct LoadHandle {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<anyhow::Result<ConnResult>>>,
}

struct ConnResult {
    ok_requests: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    service: Histogram<u64>,
    sent: u64,
    last_done: Option<Instant>,
}

impl ConnResult {
    fn new() -> Self {
        ConnResult {
            ok_requests: 0,
            errors: BTreeMap::new(),
            latency: histogram(),
            service: histogram(),
            sent: 0,
            last_done: None,
        }
    }

    fn merge(&mut self, other: ConnResult) {
        self.ok_requests += other.ok_requests;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latency.add(&other.latency).expect("same bounds");
        self.service.add(&other.service).expect("same bounds");
        self.sent += other.sent;
        self.last_done = self.last_done.max(other.last_done);
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Starts the load; connections are opened at once, the window starts after the warm-up.
pub fn start(spec: &LoadSpec, requests: Arc<Requests>) -> anyhow::Result<LoadHandle> {
    anyhow::ensure!(spec.connections > 0 && spec.threads > 0, "need at least one connection and one thread");
    let start = Instant::now();
    let (t0, t1) = match spec.total_requests {
        Some(_) => (start, start + Duration::from_secs(365 * 86_400)),
        None => (start + spec.warmup, start + spec.warmup + spec.duration),
    };
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        start,
        t0,
        t1,
        rate: spec.rate,
        total: spec.total_requests,
        events_per_request: requests.events_per_request as u64,
    });
    let threads = spec.threads.min(spec.connections);
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns = spec.connections / threads + usize::from(t < spec.connections % threads);
        let shared = Arc::clone(&shared);
        let requests = Arc::clone(&requests);
        let addr = spec.addr;
        let handle = std::thread::Builder::new().name(format!("load-{t}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..conns {
                    let builder = Builder::new(Arc::clone(&requests))?;
                    set.spawn(connection(addr, Arc::clone(&shared), builder));
                }
                let mut total = ConnResult::new();
                while let Some(result) = set.join_next().await {
                    total.merge(result?);
                }
                Ok(total)
            })
        })?;
        handles.push(handle);
    }
    Ok(LoadHandle { shared, threads: handles })
}

impl LoadHandle {
    pub fn t0(&self) -> Instant {
        self.shared.t0
    }

    pub fn t1(&self) -> Instant {
        self.shared.t1
    }

    pub fn join(self) -> anyhow::Result<LoadResult> {
        let mut total = ConnResult::new();
        for handle in self.threads {
            let result = handle.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
            total.merge(result);
        }
        let window = match self.shared.total {
            Some(_) => total.last_done.unwrap_or(self.shared.start).duration_since(self.shared.start),
            None => self.shared.t1.duration_since(self.shared.t0),
        };
        Ok(LoadResult {
            ok_requests: total.ok_requests,
            ok_events: total.ok_requests * self.shared.events_per_request,
            errors: total.errors,
            latency: total.latency,
            service: total.service,
            window,
        })
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {:?}", e.kind()))?;
    stream.set_nodelay(true).map_err(|e| format!("connect: {:?}", e.kind()))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn connection(addr: SocketAddr, shared: Arc<Shared>, mut builder: Builder) -> ConnResult {
    let mut out = ConnResult::new();
    let mut sender: Option<Sender> = None;
    let open_loop = shared.rate.is_some();
    loop {
        if !open_loop && shared.total.is_none() && Instant::now() >= shared.t1 {
            break;
        }
        let r = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.total.is_some_and(|total| r >= total) {
            break;
        }
        let due = match shared.rate {
            Some(rate) => {
                let due = shared.start + Duration::from_secs_f64(r as f64 / rate);
                if due >= shared.t1 {
                    break;
                }
                Some(due)
            }
            None => None,
        };
        let request = builder.build(r);
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let send = match sender.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(kind) => {
                    if in_window(&shared, due, Instant::now()) {
                        out.error(kind);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let written = Instant::now();
        out.sent += 1;
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(send, request)).await;
        let done = Instant::now();
        out.last_done = Some(done);
        let counted = in_window(&shared, due, done);
        match outcome {
            Ok(Ok(None)) => {
                if counted {
                    out.ok_requests += 1;
                    let from = due.unwrap_or(written);
                    out.latency.saturating_record(micros(done.duration_since(from)));
                    out.service.saturating_record(micros(done.duration_since(written)));
                }
            }
            Ok(Ok(Some(kind))) => {
                if counted {
                    out.error(kind);
                }
            }
            Ok(Err(kind)) => {
                sender = None;
                if counted {
                    out.error(kind);
                }
            }
            Err(_) => {
                sender = None;
                if counted {
                    out.error("timeout".into());
                }
            }
        }
    }
    out
}

fn in_window(shared: &Shared, due: Option<Instant>, done: Instant) -> bool {
    let at = due.unwrap_or(done);
    at >= shared.t0 && at <= shared.t1
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// Sends one request and reads the whole answer. `Ok(None)`: 200; `Ok(Some(kind))`: an HTTP
/// error answer (connection still usable); `Err(kind)`: the connection failed.
async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<Option<String>, String> {
    sender.ready().await.map_err(|e| format!("connection: {}", short(&e)))?;
    let response = sender.send_request(request).await.map_err(|e| format!("connection: {}", short(&e)))?;
    let (parts, body) = response.into_parts();
    body.collect().await.map_err(|e| format!("body: {}", short(&e)))?;
    if parts.status == hyper::StatusCode::OK {
        return Ok(None);
    }
    let kind = parts
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned())
        .unwrap_or_default();
    Ok(Some(format!("HTTP {} {kind}", parts.status.as_u16()).trim_end().to_owned()))
}

fn short(e: &hyper::Error) -> String {
    if e.is_closed() || e.is_incomplete_message() {
        "closed".into()
    } else if e.is_canceled() {
        "canceled".into()
    } else {
        e.to_string()
    }
}

/// Sends one request outside any measurement and requires a 200 (catches a wrong key, tracking
/// ID or schema before a whole run is spent on errors).
pub fn preflight(addr: SocketAddr, requests: Arc<Requests>, r: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut builder = Builder::new(requests)?;
        let mut sender = connect(addr).await.map_err(anyhow::Error::msg)?;
        match exchange(&mut sender, builder.build(r)).await {
            Ok(None) => Ok(()),
            Ok(Some(kind)) | Err(kind) => anyhow::bail!("the first request was not accepted: {kind}"),
        }
    })
}

//! Building and running the server: open the store, bootstrap it, bind, then serve with the
//! limits that keep one slow client or a flood from hurting the others, until told to stop.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
pub use interlog_auth::RootKeySource;
use interlog_auth::{Keyring, RootKey, Verifier};
use interlog_model::arn::Scope;
use interlog_store::{Bootstrap, Bootstrapped, CatalogCache, Health, StoreError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::admission::{BodyBudget, PeerConnection, PeerShares, Refused};
use crate::api::error::{ApiError, Plane};
use crate::api::{router, AppShared, AppState};
use crate::auth::{Authenticator, Caller};
use crate::config::Config;

use crate::service::jobs::{JobSettings, Jobs};
use crate::service::Service;
use crate::sinks::{SinkSettings, Sinks};
use crate::tls::Tls;

/// Why the server could not start. Each message already includes its cause, so no variant
/// exposes it as `source()` too: an error chain printed with `{:#}` would say everything twice.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: std::io::Error },
    #[error("cannot open the data dir {dir}: {reason}")]
    Store { dir: String, reason: StoreError },
    #[error("{0}")]
    Bootstrap(StoreError),
    #[error("{0}")]
    Keys(interlog_auth::KeyError),
    #[error("{0}")]
    Limits(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Config(String),
}

impl From<interlog_auth::KeyError> for StartError {
    fn from(e: interlog_auth::KeyError) -> Self {
        StartError::Keys(e)
    }
}

/// What the serve loop protects itself with. Every value bounds a resource a client could
/// otherwise hold without limit; `docs/reliability.md` states the resulting memory bound.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections served at once. The next ones are answered `ServiceUnavailable` (503) and
    /// closed: one file descriptor and a few KB each, so the cap bounds both.
    pub max_connections: usize,
    /// A read or write that makes no progress for this long closes the connection: idle
    /// keep-alive connections, stalled uploads, clients that stop reading their answer.
    pub idle_timeout: Duration,
    /// A request must be read and answered within this long of its first byte, so a client
    /// trickling a byte at a time cannot hold a connection for ever.
    pub request_timeout: Duration,
    /// Request body bytes admitted at once (by `Content-Length`; the body limit when unknown).
    /// Beyond it requests are answered `ThrottlingException` before their body is read.
    pub inflight_body_bytes: usize,
    /// After SIGTERM / Ctrl-C, how long requests in flight may take before the server exits
    /// anyway (what is still unanswered then was never acknowledged).
    pub shutdown_grace: Duration,
    /// A request head (line and headers) must arrive within this long of the connection being
    /// ready for it: a new connection, or one whose previous answer was sent. This is also how
    /// long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// The largest request head, in bytes (hyper's read buffer); a larger one is answered
    /// 431 and the connection closed. At least 8 KiB.
    pub max_header_bytes: usize,
    /// An admitted request body must arrive whole within this long, or the request is answered
    /// `RequestTimeoutException` (408) and its budget freed.
    pub body_timeout: Duration,
    /// The share (0 < share ≤ 1) of the connections and of the body budget one peer address
    /// may hold. Behind a load balancer every request comes from its address: raise it to 1.
    pub per_peer_share: f64,
    /// `GET /_interlog/export`: the longest one export may stream.
    pub export_time_limit: Duration,
    /// `GET /_interlog/export`: the slowest average rate a client may read at (after a first
    /// 10 s of grace); slower, and the export is cut off, releasing its snapshot and thread.
    pub export_min_bytes_per_sec: u64,
    /// `GET /_interlog/export`: how many exports one account may run at once.
    pub max_exports_per_account: usize,
}

impl ServeLimits {
    /// The production defaults, with the connection cap kept under the open-files limit
    /// (SQLite and the log need descriptors too).
    pub fn new(max_body_bytes: usize) -> Self {
        let max_connections = match open_files_limit() {
            Some(n) => (n.saturating_sub(256) as usize).clamp(64, DEFAULT_MAX_CONNECTIONS),
            None => 1000,
        };
        ServeLimits {
            max_connections,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            inflight_body_bytes: DEFAULT_INFLIGHT_BODY_BYTES.max(max_body_bytes),
            shutdown_grace: Duration::from_secs(20),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            body_timeout: Duration::from_secs(10),
            per_peer_share: 0.5,
            export_time_limit: Duration::from_secs(3600),
            export_min_bytes_per_sec: 64 * 1024,
            max_exports_per_account: 2,
        }
    }

    /// The defaults, overridden by `INTERLOG_MAX_CONNECTIONS`, `INTERLOG_IDLE_TIMEOUT_SECS`,
    /// `INTERLOG_REQUEST_TIMEOUT_SECS`, `INTERLOG_MAX_INFLIGHT_BYTES`,
    /// `INTERLOG_SHUTDOWN_GRACE_SECS`, `INTERLOG_HEADER_TIMEOUT_SECS`,
    /// `INTERLOG_MAX_HEADER_BYTES`, `INTERLOG_BODY_TIMEOUT_SECS`, `INTERLOG_PER_PEER_SHARE`,
    /// `INTERLOG_EXPORT_TIME_LIMIT_SECS`, `INTERLOG_EXPORT_MIN_BYTES_PER_SEC` and
    /// `INTERLOG_MAX_EXPORTS_PER_ACCOUNT` (seconds may have a fraction).
    pub fn from_env(max_body_bytes: usize) -> Result<Self, StartError> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, StartError> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| StartError::Limits(format!("{name}={v:?} is not a valid value"))),
                Err(_) => Ok(None),
            }
        }
        fn secs(name: &str) -> Result<Option<Duration>, StartError> {
            match var::<f64>(name)? {
                Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
                Some(s) => Err(StartError::Limits(format!("{name}={s} must be a positive number of seconds"))),
                None => Ok(None),
            }
        }
        let mut limits = ServeLimits::new(max_body_bytes);
        if let Some(n) = var::<usize>("INTERLOG_MAX_CONNECTIONS")? {
            limits.max_connections = n.max(1);
        }
        if let Some(n) = var::<usize>("INTERLOG_MAX_INFLIGHT_BYTES")? {
            // Below the body limit a maximal request could never be admitted.
            limits.inflight_body_bytes = n.max(max_body_bytes);
        }
        if let Some(d) = secs("INTERLOG_IDLE_TIMEOUT_SECS")? {
            limits.idle_timeout = d;
        }
        if let Some(d) = secs("INTERLOG_REQUEST_TIMEOUT_SECS")? {
            limits.request_timeout = d;
        }
        if let Some(d) = secs("INTERLOG_SHUTDOWN_GRACE_SECS")? {
            limits.shutdown_grace = d;
        }
        if let Some(d) = secs("INTERLOG_HEADER_TIMEOUT_SECS")? {
            limits.header_timeout = d;
        }
        if let Some(n) = var::<usize>("INTERLOG_MAX_HEADER_BYTES")? {
            limits.max_header_bytes = n;
        }
        if let Some(d) = secs("INTERLOG_BODY_TIMEOUT_SECS")? {
            limits.body_timeout = d;
        }
        if let Some(share) = var::<f64>("INTERLOG_PER_PEER_SHARE")? {
            if !(share > 0.0 && share <= 1.0) {
                return Err(StartError::Limits(format!(
                    "INTERLOG_PER_PEER_SHARE={share} must be a fraction above 0 and at most 1"
                )));
            }
            limits.per_peer_share = share;
        }
        if let Some(d) = secs("INTERLOG_EXPORT_TIME_LIMIT_SECS")? {
            limits.export_time_limit = d;
        }
        if let Some(n) = var::<u64>("INTERLOG_EXPORT_MIN_BYTES_PER_SEC")? {
            limits.export_min_bytes_per_sec = n;
        }
        if let Some(n) = var::<usize>("INTERLOG_MAX_EXPORTS_PER_ACCOUNT")? {
            limits.max_exports_per_account = n.max(1);
        }
        Ok(limits)
    }
}

impl ServeLimits {
    fn export_limits(&self) -> crate::api::export::ExportLimits {
        crate::api::export::ExportLimits {
            time_limit: self.export_time_limit,
            min_bytes_per_sec: self.export_min_bytes_per_sec,
            per_account: self.max_exports_per_account,
        }
    }
}

/// Enough for any realistic fleet of SDK clients; each idle connection costs a few KB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// 64 MiB of bodies in flight: 64 maximal (1 MiB) requests, or tens of thousands of typical ones.
pub const DEFAULT_INFLIGHT_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A SigV4-signed request head is well under 4 KiB; 64 KiB leaves room for long tokens while a
/// slow client's unfinished head costs at most this much.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// A bound, bootstrapped server that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    state: AppShared,
    tls: Option<Arc<Tls>>,
    /// The address actually bound (port 0 resolves to a free port).
    pub addr: SocketAddr,
    /// The default dataset group and tracker, and whether this start created them; `None` with
    /// `--no-default-resources` when no earlier start made them.
    pub bootstrap: Option<Bootstrapped>,
    /// The root key and where it came from; `None` with `--no-auth`.
    pub root_key: Option<RootKey>,
    /// How many keys `--credentials-file` added.
    pub extra_keys: usize,
    /// The serve loop's limits (from the environment; see [`ServeLimits::from_env`]).
    pub limits: ServeLimits,
}

impl Application {
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let limits = ServeLimits::from_env(config.max_body_bytes)?;
        if !interlog_auth::valid_region(&config.region) {
            return Err(StartError::Config(format!(
                "--region {:?} is not a region name: 1 to 32 lower-case letters, digits and '-', such as us-east-1",
                config.region
            )));
        }
        let tls = config.tls.clone().map(Tls::load).transpose().map_err(StartError::Tls)?;
        if let Some(tls) = &tls {
            tls.reload_on_sighup();
        }
        let file_root = match &config.export_dir {
            Some(dir) => Some(Arc::new(
                crate::file_root::FileRoot::open(dir)
                    .map_err(|e| StartError::Config(format!("cannot use --export-dir {}: {e}", dir.display())))?,
            )),
            None => None,
        };
        let import_root = match &config.import_dir {
            Some(dir) => Some(Arc::new(
                crate::file_root::FileRoot::open(dir)
                    .map_err(|e| StartError::Config(format!("cannot use --import-dir {}: {e}", dir.display())))?,
            )),
            None => None,
        };
        crate::files::prepare_data_dir(&config.data_dir)
            .map_err(|e| StartError::Store { dir: config.data_dir.display().to_string(), reason: e.into() })?;
        let telemetry = Arc::new(crate::telemetry::Telemetry::new());
        config.store.observer = telemetry.commit_observer();
        let store = crate::engine::open(&config).await?;
        let (auth, root_key, extra_keys) = authenticator(&config, &*store).await?;
        if let Some(root) = &root_key {
            config.account = root.credential.account_id().to_owned();
        }
        let scope = Scope { region: config.region.clone(), account: config.account.clone() };
        let bootstrap = if config.default_resources {
            let spec = Bootstrap { scope, tracking_id: config.default_tracking_id.clone() };
            Some(interlog_store::bootstrap(&*store, &spec).await.map_err(StartError::Bootstrap)?)
        } else {
            interlog_store::existing_defaults(&*store, &scope.account).await.map_err(StartError::Bootstrap)?
        };
        let cache = CatalogCache::load(&*store).await.map_err(StartError::Bootstrap)?;
        cache.follow(store.clone());
        let node = crate::service::jobs::node_name(&config.data_dir);
        let job_settings =
            JobSettings { node: node.clone(), activation_delay: config.activation_delay, ..JobSettings::default() };
        let jobs = Jobs::new(store.clone(), job_settings);
        jobs.recover().await.map_err(StartError::Bootstrap)?;
        jobs.spawn_sweeper();
        jobs.spawn_activator();
        let service = Service::new(store.clone(), cache.clone(), jobs, file_root)
            .with_import_root(import_root)
            .with_objects(crate::objects::Objects::new(config.s3.clone()));
        let mut destinations: Vec<Arc<dyn crate::sinks::Destination>> = Vec::new();
        if let Some(nats) = config.nats.clone() {
            destinations.push(Arc::new(crate::sinks::nats::Nats::connect(nats).await.map_err(StartError::Config)?));
        }
        if let Some(forward) = config.forward.clone() {
            destinations.push(Arc::new(crate::sinks::forward::Forward::new(forward).map_err(StartError::Config)?));
        }
        let sinks = Sinks::start(store.clone(), destinations, SinkSettings { node, ..SinkSettings::default() });
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|reason| StartError::Bind { addr: config.listen, reason })?;
        let addr = listener.local_addr().map_err(|reason| StartError::Bind { addr: config.listen, reason })?;
        let state = AppShared {
            store,
            cache,
            service,
            auth,
            max_body_bytes: config.max_body_bytes,
            strict_properties: config.strict_properties,
            flagged: Default::default(),
            body_timeout: limits.body_timeout,
            exports: crate::api::export::ExportGate::new(limits.export_limits()),
            stats_account: (!config.public_stats).then(|| config.account.clone()),
            root_account: config.account.clone(),
            sinks,
            telemetry,
            debugger: Arc::new(crate::debugger::Debugger { secure_cookie: tls.is_some(), ..Default::default() }),
        };
        Ok(Application { listener, state, tls, addr, bootstrap, root_key, extra_keys, limits })
    }

    /// Replaces the serve loop's limits (tests and embedders; the binary uses the environment).
    pub fn with_limits(mut self, limits: ServeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// True when the server speaks HTTPS (`--tls-cert` / `--tls-key`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and finishes the
    /// requests in flight (their events are committed and answered) before returning; after
    /// [`ServeLimits::shutdown_grace`] it returns anyway, leaving the stragglers unanswered.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let limits = self.limits.clone();
        let mut state = self.state;
        let store = state.store.clone();
        let sinks = state.sinks.clone();
        state.body_timeout = limits.body_timeout;
        state.exports = crate::api::export::ExportGate::new(limits.export_limits());
        let peers = PeerShares::new(
            limits.per_peer_share,
            limits.max_connections,
            crate::admission::kib(limits.inflight_body_bytes),
            crate::admission::kib(state.max_body_bytes),
        );
        let telemetry = state.telemetry.clone();
        let admission = Arc::new(Admission {
            budget: BodyBudget::new(limits.inflight_body_bytes, state.max_body_bytes, peers.clone()),
            auth: state.auth.clone(),
            telemetry: telemetry.clone(),
        });
        let app = router(AppState::new(state))
            .layer(axum::middleware::from_fn_with_state(admission, admit))
            .layer(axum::middleware::from_fn_with_state(telemetry.clone(), crate::telemetry::observe));
        let mut listener = GuardedListener {
            inner: self.listener,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            peers,
            refusing: Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT)),
            at_capacity: Arc::new(AtomicBool::new(false)),
            limits: limits.clone(),
            telemetry,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .keep_alive(true)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .header_read_timeout(limits.header_timeout);
        let http = Arc::new(http);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();

        let mut shutdown = std::pin::pin!(shutdown);
        let mut store_failed = std::pin::pin!(failed(store.clone()));
        let mut fatal = None;
        loop {
            let (io, peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
                reason = &mut store_failed => {
                    tracing::error!(%reason, "the store cannot be brought back; exiting so a supervisor restarts the server");
                    fatal = Some(reason);
                    break;
                }
            };
            let watcher = graceful.watcher();
            let app = app.clone();
            let http = http.clone();
            let tls = self.tls.as_ref().map(|t| (t.acceptor(), limits.header_timeout));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let mut app = app.clone();
                    tower_service::Service::call(&mut app, request)
                });
                let result = match tls {
                    None => watcher.watch(http.serve_connection(TokioIo::new(io), service)).await,
                    Some((acceptor, handshake_timeout)) => {
                        // The handshake is the TLS part of the head: bounded the same way.
                        let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake not done within {handshake_timeout:?}");
                                return;
                            }
                        };
                        watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        // Stop accepting at once: new connections are refused while the others finish.
        drop(listener);
        tracing::info!("shutting down: finishing requests in flight");
        let result = tokio::select! {
            () = graceful.shutdown() => Ok(()),
            () = tokio::time::sleep(limits.shutdown_grace) => {
                tracing::warn!(
                    grace = ?limits.shutdown_grace,
                    "shutdown grace period over with requests still in flight; exiting without answering them \
                     (nothing unanswered was acknowledged)"
                );
                Ok(())
            }
        };
        // Sinks give their leases up, so another node takes them at once.
        sinks.stop().await;
        // The writer finishes what it holds and the store releases its files (SQLite checkpoints
        // its WAL) before the process goes; a store that cannot finish in a few seconds is left.
        if tokio::time::timeout(Duration::from_secs(10), store.close()).await.is_err() {
            tracing::warn!("the store did not close within 10 s; exiting anyway");
        }
        match fatal {
            Some(reason) => Err(io::Error::other(format!("the store failed: {reason}"))),
            None => result,
        }
    }
}

/// Resolves when the store reports it cannot be brought back ([`Health::Failed`]).
async fn failed(store: Arc<dyn interlog_store::Store>) -> String {
    loop {
        if let Health::Failed(reason) = store.health() {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Refusals being answered at once; past it an excess connection is closed without a word, so
/// a connection flood cannot turn the refusals themselves into unbounded work.
const REFUSALS_IN_FLIGHT: usize = 256;

/// The TCP listener with the connection cap (in total and per peer address) and
/// per-connection timeouts.
struct GuardedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    peers: Arc<PeerShares>,
    refusing: Arc<Semaphore>,
    at_capacity: Arc<AtomicBool>,
    limits: ServeLimits,
    telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Why a connection was refused.
enum Full {
    Total(usize),
    Peer(usize),
}

impl GuardedListener {
    async fn accept(&mut self) -> (GuardedIo, SocketAddr) {
        loop {
            // axum's own accept loop: it retries connection errors and backs off on EMFILE.
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let full = match self.slots.clone().try_acquire_owned() {
                Ok(slot) => match self.peers.connection(addr.ip()) {
                    Some(peer) => {
                        if self.at_capacity.swap(false, Ordering::Relaxed) {
                            tracing::info!("accepting connections again");
                        }
                        // Answers are small and written at once; Nagle would only delay them.
                        let _ = stream.set_nodelay(true);
                        return (GuardedIo::new(stream, slot, peer, &self.limits), addr);
                    }
                    None => Full::Peer(self.peers.max_connections),
                },
                Err(_) => {
                    if !self.at_capacity.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            max_connections = self.limits.max_connections,
                            "connection limit reached: refusing new connections with 503 until some close"
                        );
                    }
                    Full::Total(self.limits.max_connections)
                }
            };
            if let Full::Peer(max) = full {
                tracing::debug!(peer = %addr.ip(), max, "refusing a connection: this address holds its share");
            }
            self.telemetry.refused_connection(match full {
                Full::Total(_) => crate::telemetry::Refusal::Total,
                Full::Peer(_) => crate::telemetry::Refusal::PeerShare,
            });
            if let Ok(permit) = self.refusing.clone().try_acquire_owned() {
                tokio::spawn(refuse(stream, permit, full));
            }
        }
    }
}

/// Answers a connection over the cap with `ServiceUnavailable` (which SDKs retry) and closes it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit, full: Full) {
    let message = match full {
        Full::Total(max) => format!("The server is at its limit of {max} connections; retry later"),
        Full::Peer(max) => format!(
            "This client address has {max} connections open, the most one address may have \
             (INTERLOG_PER_PEER_SHARE of INTERLOG_MAX_CONNECTIONS); retry later"
        ),
    };
    let response = ApiError::ServiceUnavailable(message).on(Plane::Data).into_response();
    let bytes = render_closing(response).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before the
        // client has read the answer.
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// An HTTP/1.1 response as bytes, for connections that never reach hyper.
async fn render_closing(response: Response) -> Vec<u8> {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut out = format!("HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""))
        .into_bytes();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONNECTION {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

/// A connection with its slot under the cap and its timeouts. The timer is only consulted when
/// the socket has nothing to give or take, so a busy connection pays one clock read per I/O.
struct GuardedIo {
    stream: TcpStream,
    timer: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    request_timeout: Duration,
    /// When the last byte moved either way.
    last_progress: Instant,
    /// First byte of the request being read; cleared when its answer starts.
    request_started: Option<Instant>,
    _slot: OwnedSemaphorePermit,
    _peer: PeerConnection,
}

impl GuardedIo {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, peer: PeerConnection, limits: &ServeLimits) -> Self {
        let now = Instant::now();
        GuardedIo {
            stream,
            timer: Box::pin(tokio::time::sleep_until(now + limits.idle_timeout)),
            idle_timeout: limits.idle_timeout,
            request_timeout: limits.request_timeout,
            last_progress: now,
            request_started: None,
            _slot: slot,
            _peer: peer,
        }
    }

    fn deadline(&self) -> Instant {
        let idle = self.last_progress + self.idle_timeout;
        match self.request_started {
            Some(started) => idle.min(started + self.request_timeout),
            None => idle,
        }
    }

    /// Called when the socket is not ready: true once the deadline passed; otherwise arms the
    /// timer so that this task is woken at the deadline even if the client sends nothing.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.deadline();
        if Instant::now() >= deadline {
            return true;
        }
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn timed_out(&self) -> io::Error {
        let why = if self.request_started.is_some_and(|s| s + self.request_timeout <= Instant::now()) {
            format!("request not received and answered within {:?}", self.request_timeout)
        } else {
            format!("no progress for {:?}", self.idle_timeout)
        };
        tracing::debug!(peer = ?self.stream.peer_addr().ok(), "closing connection: {why}");
        io::Error::new(io::ErrorKind::TimedOut, why)
    }

    fn wrote(&mut self, n: usize) {
        if n > 0 {
            self.last_progress = Instant::now();
            self.request_started = None;
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let now = Instant::now();
                    this.last_progress = now;
                    this.request_started.get_or_insert(now);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What the `admit` middleware needs: the body budget and the authenticator for the checks
/// that need no body.
struct Admission {
    budget: BodyBudget,
    auth: Authenticator,
    telemetry: Arc<crate::telemetry::Telemetry>,
}

/// Admits a request's body only if (1) everything about its signature that can be checked
/// without the body passed (so an unauthenticated client never holds any of the budget) and
/// (2) the body fits in the budget and in its peer address's share of it; otherwise answers
/// without reading the body: the authentication error, or `ThrottlingException` (HTTP 400,
/// which every SDK retries). The permit is held until the answer is ready, so bodies, parsed
/// events and queued store jobs together stay within the budget whatever the load.
async fn admit(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    let weight = body_weight(request.headers(), admission.budget.max_body_bytes);
    if weight == 0 {
        return next.run(request).await;
    }
    let plane = if request.uri().path().starts_with("/_interlog/") {
        Plane::Interlog
    } else if request.headers().contains_key("x-amz-target") {
        Plane::Control
    } else {
        Plane::Data
    };
    // The debugger's own calls carry no signature (a session cookie, or the sign-in form whose
    // secret the server checks): they skip the SigV4 checks, and may hold only a small body.
    if request.uri().path().starts_with(crate::debugger::PREFIX) {
        if weight > crate::debugger::MAX_BODY_BYTES {
            let e = ApiError::RequestEntityTooLarge(format!(
                "The debugger takes bodies of at most {} bytes",
                crate::debugger::MAX_BODY_BYTES
            ));
            return e.on(plane).into_response();
        }
    } else if let Err(e) = admission.auth.check_before_body(request.uri(), request.headers()) {
        return e.on(plane).into_response();
    }
    let peer: Option<IpAddr> = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let permit = match admission.budget.admit(peer, weight) {
        Ok(permit) => permit,
        Err(why) => {
            admission.telemetry.throttled(match why {
                Refused::Total => crate::telemetry::Refusal::Total,
                Refused::Peer => crate::telemetry::Refusal::PeerShare,
            });
            let message = match why {
                Refused::Total => {
                    "Rate exceeded: the server has as many request bodies in flight as it accepts; retry with backoff"
                }
                Refused::Peer => {
                    "Rate exceeded: this client address has as many request bodies in flight as one address may \
                     (INTERLOG_PER_PEER_SHARE); retry with backoff"
                }
            };
            return ApiError::Throttling(message.into()).on(plane).into_response();
        }
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// Bytes a request may buffer: its declared length (capped at the body limit, beyond which it
/// is refused unread), the body limit when the length is not declared, 0 without a body.
fn body_weight(headers: &HeaderMap, max_body_bytes: usize) -> usize {
    match headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max_body_bytes),
        None if headers.contains_key(header::TRANSFER_ENCODING) => max_body_bytes,
        None => 0,
    }
}

/// The soft open-files limit, from `/proc` (Linux) so no libc call is needed.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Builds the keyring (the root key, see [`crate::engine::root_key`], plus the credentials
/// file) and the verifier every request goes through.
async fn authenticator(
    config: &Config,
    store: &dyn interlog_store::Store,
) -> Result<(Authenticator, Option<RootKey>, usize), StartError> {
    if !config.auth.enabled {
        let caller = Caller { account: config.account.clone(), region: config.region.clone() };
        return Ok((Authenticator::Off(caller), None, 0));
    }

    let root = crate::engine::root_key(config, store).await?;
    let mut keyring = Keyring::with_root(root.credential.clone());
    let extra = match &config.auth.credentials_file {
        Some(path) => {
            crate::files::warn_if_readable_by_others(path, "the credentials file");
            keyring.load_credentials_file(path)?
        }
        None => 0,
    };
    let pinned_region = config.region_pinned.then(|| config.region.clone());
    let verifier = Arc::new(Verifier::new(Arc::new(keyring)));
    Ok((Authenticator::SigV4 { verifier, pinned_region }, Some(root), extra))
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called (inside the
/// runtime), not when the future is first polled, so a signal that arrives between start-up and
/// serving (right after the banner, say) still stops the server gracefully.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

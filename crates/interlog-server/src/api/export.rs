//! `GET /_interlog/export`: a dataset group's interactions, or any dataset by ARN
//! (`?datasetArn=`), streamed as dataset CSV or JSON lines.

use std::collections::HashMap;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use interlog_model::schema::{field_names, parse_schema};
use interlog_store::export::{dataset_by_arn, export_dataset, interactions_of_group, ExportWriter, Format};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::{ApiError, AwsError, Plane};
use super::AppState;

/// How long exports may hold the store's snapshot and a blocking thread.
#[derive(Debug, Clone)]
pub struct ExportLimits {
    /// The longest one export may stream.
    pub time_limit: Duration,
    /// The slowest average rate (after [`ExportLimits::GRACE`]) a client may read at.
    pub min_bytes_per_sec: u64,
    /// Exports one account may run at once.
    pub per_account: usize,
}

impl ExportLimits {
    /// Before the minimum rate applies: connection set-up, the first rows' scan.
    pub const GRACE: Duration = Duration::from_secs(10);

    /// The latest moment the first `sent` bytes must have been taken by the client.
    fn deadline(&self, started: Instant, sent: u64) -> Instant {
        let rate = self.min_bytes_per_sec.max(1) as f64;
        let paced = Self::GRACE.saturating_add(Duration::from_secs_f64((sent as f64 / rate).min(1e9)));
        started + paced.min(self.time_limit)
    }
}

/// Exports running per account, so one account's slow readers cannot take every blocking
/// thread (which every control-plane call needs).
pub struct ExportGate {
    limits: ExportLimits,
    running: Mutex<HashMap<String, usize>>,
}

impl ExportGate {
    pub fn new(limits: ExportLimits) -> Arc<Self> {
        Arc::new(ExportGate { limits, running: Mutex::new(HashMap::new()) })
    }

    fn start(self: &Arc<Self>, account: &str) -> Option<ExportSlot> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let n = running.entry(account.to_owned()).or_default();
        if *n >= self.limits.per_account {
            return None;
        }
        *n += 1;
        Some(ExportSlot { gate: self.clone(), account: account.to_owned() })
    }
}

/// One running export; frees its place when the export's thread is done.
struct ExportSlot {
    gate: Arc<ExportGate>,
    account: String,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self.gate.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.account);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExportQuery {
    dataset_group: Option<String>,
    dataset_arn: Option<String>,
    format: Option<String>,
}

pub(super) async fn export(
    State(state): State<AppState>,
    Query(q): Query<ExportQuery>,
    request: Request,
) -> Result<Response, AwsError> {
    let (parts, body) = request.into_parts();
    let caller = super::authenticated(&state, &parts, body).await.map_err(|e| e.on(Plane::Interlog))?.caller;
    let format: Format =
        q.format.as_deref().unwrap_or("csv").parse().map_err(|e| ApiError::InvalidInput(e).on(Plane::Interlog))?;
    let found = match (&q.dataset_arn, &q.dataset_group) {
        (Some(_), Some(_)) => {
            return Err(
                ApiError::InvalidInput("Name either datasetArn or datasetGroup, not both".into()).on(Plane::Interlog)
            )
        }
        (Some(arn), None) => dataset_by_arn(&*state.store, Some(&caller.account), arn).await,
        (None, group) => interactions_of_group(&*state.store, Some(&caller.account), group.as_deref()).await,
    };
    let (dataset, schema) = found.map_err(|e| ApiError::from(e).on(Plane::Interlog))?;
    let columns = field_names(&schema.spec.body).map_err(|e| ApiError::InternalFailure(e).on(Plane::Interlog))?;

    let slot = state.exports.start(&caller.account).ok_or_else(|| {
        ApiError::Throttling(format!(
            "Rate exceeded: account {} already runs {} exports, the most one account may run at once \
             (INTERLOG_MAX_EXPORTS_PER_ACCOUNT); retry when one has finished",
            caller.account, state.exports.limits.per_account
        ))
        .on(Plane::Interlog)
    })?;

    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let complete = Arc::new(AtomicBool::new(false));
    let limits = state.exports.limits.clone();
    let handle = tokio::runtime::Handle::current();
    let done = complete.clone();
    // The header stays in the writer's buffers: nothing is sent from this async task.
    let sink = ChunkSender { tx, buf: Vec::with_capacity(CHUNK), handle, limits, started: Instant::now(), sent: 0 };
    let writer = ExportWriter::new(format, columns, sink)
        .map_err(|e| ApiError::InternalFailure(e.to_string()).on(Plane::Interlog))?
        .with_schema(parse_schema(&schema.spec.body).ok())
        .for_dataset(dataset.spec.parsed_type().unwrap_or(interlog_model::schema::DatasetType::Interactions));
    let store = state.store.clone();
    tokio::spawn(async move {
        let _slot = slot;
        match export_dataset(store, dataset.meta.id, writer).await {
            // Marked whole before the sender is dropped, which is what ends the body.
            Ok((_, sink)) => {
                done.store(true, Ordering::Release);
                drop(sink);
            }
            Err(e) => match io_kind(&e) {
                Some(io::ErrorKind::TimedOut) => tracing::warn!("export cut off: {e}"),
                Some(io::ErrorKind::BrokenPipe) => tracing::debug!("export abandoned by the client"),
                _ => tracing::error!(error = %e, "export failed"),
            },
        }
    });
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
        Format::Parquet => "application/vnd.apache.parquet",
    };
    let body = Body::from_stream(ExportBody { rx, complete, ended: false });
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

const CHUNK: usize = 64 * 1024;

/// The kind of the I/O error behind a failed export (the sink's cut-offs are I/O errors).
fn io_kind(e: &interlog_store::StoreError) -> Option<io::ErrorKind> {
    match e {
        interlog_store::StoreError::Internal(cause) => cause.downcast_ref::<io::Error>().map(io::Error::kind),
        _ => None,
    }
}

/// A `Write` that hands 64 KiB chunks to the response body, waiting for the client only as
/// long as [`ExportLimits`] allow: a reader slower than the minimum rate, or an export past the
/// time limit, ends the scan (and with it the store snapshot and this thread).
struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    handle: tokio::runtime::Handle,
    limits: ExportLimits,
    started: Instant,
    sent: u64,
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let len = chunk.len() as u64;
        let deadline = self.limits.deadline(self.started, self.sent);
        let sent = self.handle.block_on(tokio::time::timeout_at(deadline, self.tx.send(chunk)));
        match sent {
            Ok(Ok(())) => {
                self.sent += len;
                Ok(())
            }
            Ok(Err(_)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read {} bytes in {:?}: slower than {} bytes/s (INTERLOG_EXPORT_MIN_BYTES_PER_SEC) \
                     or past INTERLOG_EXPORT_TIME_LIMIT_SECS ({:?})",
                    self.sent,
                    self.started.elapsed(),
                    self.limits.min_bytes_per_sec,
                    self.limits.time_limit
                ),
            )),
        }
    }
}

/// The response body: the chunks, then an error instead of the end unless the export wrote
/// everything, so a cut-off export never looks like a whole file (the connection is reset
/// instead of the chunked body being terminated).
struct ExportBody {
    rx: mpsc::Receiver<Bytes>,
    complete: Arc<AtomicBool>,
    ended: bool,
}

impl tokio_stream::Stream for ExportBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(chunk))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(io::Error::other("the export stopped before its end"))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

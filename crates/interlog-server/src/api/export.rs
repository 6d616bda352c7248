//! `GET /_interlog/export`: a dataset group's interactions, streamed as dataset CSV or JSON lines.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use interlog_model::schema::{field_names, parse_schema};
use interlog_store::export::{export_dataset, interactions_of_group, ExportWriter, Format};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::error::{ApiError, AwsError, Plane};
use super::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExportQuery {
    dataset_group: Option<String>,
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
    let (dataset, schema) = interactions_of_group(&*state.store, Some(&caller.account), q.dataset_group.as_deref())
        .await
        .map_err(|e| ApiError::from(e).on(Plane::Interlog))?;
    let columns = field_names(&schema.spec.body).map_err(|e| ApiError::InternalFailure(e).on(Plane::Interlog))?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    // The header stays in the CSV writer's buffer: nothing is sent from this async task.
    let sink = ChunkSender { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
    let writer = ExportWriter::new(format, columns, sink)
        .map_err(|e| ApiError::InternalFailure(e.to_string()).on(Plane::Interlog))?
        .with_schema(parse_schema(&schema.spec.body).ok());
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = export_dataset(store, dataset.meta.id, writer).await {
            // An error item aborts the response body, so a client never mistakes a cut file
            // for a whole one.
            tracing::error!(error = %e, "export failed");
            let _ = tx.send(Err(io::Error::other("the export failed; see the server log"))).await;
        }
    });
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
    };
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

const CHUNK: usize = 64 * 1024;

/// A `Write` that hands 64 KiB chunks to the response body (it runs on the export's blocking
/// thread, so it may block on a slow client).
struct ChunkSender {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
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
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

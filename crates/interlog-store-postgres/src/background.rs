//! The engine's background work on every node: learning other nodes' catalog writes (LISTEN,
//! with polling behind it), probing the database for `health()`, and purging deleted datasets'
//! events in small chunks.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use interlog_store::StoreError;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::catalog::read_version;
use crate::{Shared, CHANNEL};

/// How often the catalog version is polled and the database probed: the fallback that brings
/// another node's write within a second even when a notification was lost (a reconnect).
pub(crate) const POLL: Duration = Duration::from_millis(400);
/// Events deleted per purge transaction: short enough that the purge never holds much.
const PURGE_CHUNK: i64 = 5_000;

/// Resolves when the store shuts down (or is dropped).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps, unless the store shuts down first (then `false`).
async fn pause(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = stopped(shutdown) => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// LISTENs on a connection of its own and reconnects whenever it is lost.
pub(crate) async fn listen(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = listen_once(&shared) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "catalog notifications interrupted; polling covers the gap");
                }
            }
        }
        if !pause(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
    }
}

async fn listen_once(shared: &Shared) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = shared.db.config.connect(NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The connection delivers notifications only while polled; it ends when `client` drops.
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                if tx.send(n.payload().to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Whatever happened while not listening.
    shared.saw_version(read_version(&client).await?);
    // One channel per database: the payload names the schema the write was made in.
    let prefix = format!("{} ", shared.schema);
    while let Some(payload) = rx.recv().await {
        if let Some(v) = payload.strip_prefix(&prefix).and_then(|v| v.parse().ok()) {
            shared.saw_version(v);
        }
    }
    Ok(())
}

/// Polls the catalog version and probes that the database takes writes.
pub(crate) async fn monitor(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let probe = shared
            .db
            .run(async |c| {
                let r = c.query_one("SELECT version, pg_is_in_recovery() FROM catalog_version", &[]).await?;
                Ok((r.get::<_, i64>(0) as u64, r.get::<_, bool>(1)))
            })
            .await;
        match probe {
            Ok((version, standby)) => {
                shared.saw_version(version);
                shared.set_probe(standby.then(|| "PostgreSQL is a read-only standby".to_owned()));
            }
            Err(e) => shared.set_probe(Some(e.to_string())),
        }
        if !pause(&mut shutdown, POLL).await {
            return;
        }
    }
}

/// Purges deleted datasets' events, a chunk per transaction, until none is left; woken by this
/// node's deletes and polling for other nodes' (and for the ones a restart interrupted).
pub(crate) async fn purge(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match purge_chunk(&shared).await {
            // More to do; a breath between chunks leaves the disk to the writers.
            Ok(true) => {
                if !pause(&mut shutdown, Duration::from_millis(5)).await {
                    return;
                }
                continue;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "purging a deleted dataset's events failed; retrying"),
        }
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = shared.purge.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// One chunk of one pending purge; `false` when there is none. Several nodes share the work:
/// `SKIP LOCKED` gives each a different dataset.
async fn purge_chunk(shared: &Shared) -> Result<bool, StoreError> {
    shared
        .db
        .run(async |c| {
            let tx = c.transaction().await?;
            let pending = tx
                .query_opt(
                    "SELECT dataset_id FROM event_logs WHERE deleted IS NOT NULL AND NOT purged \
                     ORDER BY dataset_id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[],
                )
                .await?;
            let Some(pending) = pending else { return Ok(false) };
            let dataset_id: i64 = pending.get(0);
            let n = tx
                .execute(
                    "DELETE FROM events WHERE dataset_id = $1 AND seq IN \
                     (SELECT seq FROM events WHERE dataset_id = $1 ORDER BY seq LIMIT $2)",
                    &[&dataset_id, &PURGE_CHUNK],
                )
                .await?;
            // The dataset's records go once its events are gone, a chunk at a time too, and
            // then its rows of the history index.
            let mut records = if n < PURGE_CHUNK as u64 {
                tx.execute(
                    "DELETE FROM records WHERE dataset_id = $1 AND record_id IN \
                     (SELECT record_id FROM records WHERE dataset_id = $1 LIMIT $2)",
                    &[&dataset_id, &(PURGE_CHUNK - n as i64)],
                )
                .await?
            } else {
                0
            };
            if n + records < PURGE_CHUNK as u64 {
                records += tx
                    .execute(
                        "DELETE FROM history WHERE dataset_id = $1 AND (kind, who, seq) IN \
                         (SELECT kind, who, seq FROM history WHERE dataset_id = $1 LIMIT $2)",
                        &[&dataset_id, &(PURGE_CHUNK - (n + records) as i64)],
                    )
                    .await?;
            }
            if n + records < PURGE_CHUNK as u64 {
                tx.execute("UPDATE event_logs SET purged = true WHERE dataset_id = $1", &[&dataset_id]).await?;
                tracing::info!(dataset_id, "the events of a deleted dataset are purged");
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
}

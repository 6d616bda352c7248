//! Building and running the server: open the store, bootstrap it, bind, serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use interlog_model::arn::Scope;
use interlog_store::{Bootstrap, Bootstrapped, EventStore, SqliteStore, StoreError};
use tokio::net::TcpListener;

use crate::api::{router, AppState};
use crate::config::Config;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the data dir {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("{0}")]
    Bootstrap(StoreError),
}

/// A bound, bootstrapped server that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The address actually bound (port 0 resolves to a free port).
    pub addr: SocketAddr,
    /// The default dataset group and tracker, and whether this start created them.
    pub bootstrap: Bootstrapped,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let store = SqliteStore::open(&config.data_dir, config.store.clone())
            .map_err(|source| StartError::Store { dir: config.data_dir.display().to_string(), source })?;
        let scope = Scope { region: config.region.clone(), account: config.account.clone() };
        let bootstrap = store
            .bootstrap(Bootstrap { scope, tracking_id: config.default_tracking_id.clone() })
            .await
            .map_err(StartError::Bootstrap)?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let store: Arc<dyn EventStore> = store;
        let state = AppState { store, account: config.account.clone(), max_body_bytes: config.max_body_bytes };
        Ok(Application { listener, state, addr, bootstrap })
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and finishes the
    /// requests in flight (their events are committed and answered) before returning.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state)).with_graceful_shutdown(shutdown).await
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

//! Building and running the server: open the store, bootstrap it, bind, serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use interlog_auth::RootKeySource;
use interlog_auth::{load_or_create_root_key, Keyring, RootKey, RootKeyConfig, Verifier};
use interlog_model::arn::Scope;
use interlog_store::{Bootstrap, Bootstrapped, EventStore, SqliteStore, StoreError};
use tokio::net::TcpListener;

use crate::api::{router, AppState};
use crate::auth::{Authenticator, Caller};
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
    #[error("{0}")]
    Keys(#[from] interlog_auth::KeyError),
}

/// A bound, bootstrapped server that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The address actually bound (port 0 resolves to a free port).
    pub addr: SocketAddr,
    /// The default dataset group and tracker, and whether this start created them.
    pub bootstrap: Bootstrapped,
    /// The root key and where it came from; `None` with `--no-auth`.
    pub root_key: Option<RootKey>,
    /// How many keys `--credentials-file` added.
    pub extra_keys: usize,
}

impl Application {
    pub async fn build(mut config: Config) -> Result<Self, StartError> {
        let (auth, root_key, extra_keys) = authenticator(&config)?;
        if let Some(root) = &root_key {
            config.account = root.credential.account_id().to_owned();
        }
        let store = SqliteStore::open(&config.data_dir, config.store.clone())
            .map_err(|source| StartError::Store { dir: config.data_dir.display().to_string(), source })?;
        let scope = Scope { region: config.region.clone(), account: config.account.clone() };
        let bootstrap = store
            .bootstrap(Bootstrap { scope, tracking_id: config.default_tracking_id.clone() })
            .await
            .map_err(StartError::Bootstrap)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let store: Arc<dyn EventStore> = store;
        let state = AppState {
            store,
            auth,
            max_body_bytes: config.max_body_bytes,
            allow_unknown_properties: config.allow_unknown_properties,
        };
        Ok(Application { listener, state, addr, bootstrap, root_key, extra_keys })
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and finishes the
    /// requests in flight (their events are committed and answered) before returning.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state)).with_graceful_shutdown(shutdown).await
    }
}

/// Builds the keyring (root key from the environment or the data dir, plus the credentials
/// file) and the verifier every request goes through.
fn authenticator(config: &Config) -> Result<(Authenticator, Option<RootKey>, usize), StartError> {
    if !config.auth.enabled {
        let caller = Caller { account: config.account.clone(), region: config.region.clone() };
        return Ok((Authenticator::Off(caller), None, 0));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::Store { dir: config.data_dir.display().to_string(), source: e.into() })?;
    let root = load_or_create_root_key(&RootKeyConfig {
        access_key_id: config.auth.root_access_key_id.clone(),
        secret_access_key: config.auth.root_secret_access_key.clone(),
        account_id: None,
        data_dir: config.data_dir.clone(),
    })?;
    let mut keyring = Keyring::with_root(root.credential.clone());
    let extra = match &config.auth.credentials_file {
        Some(path) => keyring.load_credentials_file(path)?,
        None => 0,
    };
    let pinned_region = config.region_pinned.then(|| config.region.clone());
    let verifier = Arc::new(Verifier::new(Arc::new(keyring)));
    Ok((Authenticator::SigV4 { verifier, pinned_region }, Some(root), extra))
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

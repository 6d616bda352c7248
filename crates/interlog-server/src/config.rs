//! The server's settings, as resolved from flags and environment by the binary.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `interlog serve` needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Tracking ID for the default tracker created on first start; random when `None`.
    pub default_tracking_id: Option<String>,
    /// Region used in ARNs of resources created without a signed request (the bootstrap).
    pub region: String,
    /// Account that owns the bootstrap resources.
    pub account: String,
    /// Largest request body accepted, in bytes; bigger ones get `RequestEntityTooLargeException`.
    pub max_body_bytes: usize,
    pub store: interlog_store::StoreOptions,
}

impl Config {
    /// Defaults for everything but where to listen and store.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
            default_tracking_id: None,
            region: "us-east-1".into(),
            account: "000000000000".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            store: Default::default(),
        }
    }
}

/// 10 events of at most 10 KB each fit many times over; anything larger is not a PutEvents call.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

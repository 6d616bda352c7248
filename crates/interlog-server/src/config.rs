//! The server's settings, as resolved from flags and environment by the binary.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything `interlog serve` needs to start. `Debug` redacts the database URL's password and
/// the root secret (ARCHITECTURE.md: no secret in `Debug` output).
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `--database-url`: PostgreSQL shared by any number of nodes; `None` for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Tracking ID for the default tracker created on first start; random when `None`.
    pub default_tracking_id: Option<String>,
    /// Create the default dataset group, schema, dataset and tracker on first start (false with
    /// `--no-default-resources`: a fresh server's account is empty).
    pub default_resources: bool,
    /// Region used in ARNs of resources created without a signed request (the bootstrap).
    pub region: String,
    /// When true (`--region` given), every ARN uses `region`; otherwise a request's ARNs use the
    /// region of its credential scope.
    pub region_pinned: bool,
    /// Account that owns the bootstrap resources (the root key's account).
    pub account: String,
    /// Largest request body accepted, in bytes; bigger ones get `RequestEntityTooLargeException`.
    pub max_body_bytes: usize,
    pub store: interlog_store::WriterOptions,
    pub auth: AuthConfig,
    /// Refuse `properties` keys that match no field of the dataset's schema
    /// (`--strict-properties`) instead of keeping the event and flagging it (the default).
    pub strict_properties: bool,
    /// How long a new dataset reports `CREATE PENDING` before it turns `ACTIVE`
    /// (`--activation-delay`), as AWS's datasets do; zero (the default): ACTIVE at once.
    pub activation_delay: std::time::Duration,
    /// Serve HTTPS with this certificate and key (`--tls-cert` / `--tls-key`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The only directory `file://` export destinations may name (`--export-dir`); each
    /// account writes under `<dir>/<account-id>/`. None: `file://` destinations are refused.
    pub export_dir: Option<PathBuf>,
    /// The only directory `file://` import sources may name (`--import-dir`); each account reads
    /// under `<dir>/<account-id>/`. None: `file://` sources are refused.
    pub import_dir: Option<PathBuf>,
    /// `GET /_interlog/stats` without a signature (`--public-stats`); otherwise it needs a
    /// request signed by the root account.
    pub public_stats: bool,
    /// `--nats-url` and its settings: every stored event also goes to NATS JetStream
    /// (`docs/streams.md`). None: no NATS sink.
    pub nats: Option<crate::sinks::nats::NatsConfig>,
    /// `--forward-to` and its settings: every stored interaction is also forwarded to Amazon
    /// Personalize or a PutEvents-compatible server (`docs/streams.md`). None: no forwarding.
    pub forward: Option<crate::sinks::forward::ForwardConfig>,
    /// How `s3://` locations of export (and import) jobs are reached: endpoint, region,
    /// credentials (`crate::objects`). Default: the environment's variables.
    pub s3: crate::objects::S3Config,
}

/// How requests are authenticated.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// False only with `--no-auth`: every request is then accepted as the root account's.
    pub enabled: bool,
    /// `INTERLOG_ACCESS_KEY_ID` / `INTERLOG_SECRET_ACCESS_KEY`; generated when both are unset.
    pub root_access_key_id: Option<String>,
    pub root_secret_access_key: Option<String>,
    /// `--credentials-file`: more keys, each bound to an account.
    pub credentials_file: Option<PathBuf>,
}

impl Config {
    /// Defaults for everything but where to listen and store.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
            database_url: None,
            default_tracking_id: None,
            default_resources: true,
            region: "us-east-1".into(),
            region_pinned: false,
            account: interlog_auth::DEFAULT_ACCOUNT_ID.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            store: Default::default(),
            auth: AuthConfig { enabled: true, ..Default::default() },
            strict_properties: false,
            activation_delay: std::time::Duration::ZERO,
            tls: None,
            export_dir: None,
            import_dir: None,
            public_stats: false,
            nats: None,
            forward: None,
            s3: crate::objects::S3Config::from_env(),
        }
    }
}

/// 10 events of at most 10 KB each fit many times over; anything larger is not a PutEvents call.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(crate::engine::redact_url))
            .field("region", &self.region)
            .field("account", &self.account)
            .field("auth", &self.auth)
            .field("export_dir", &self.export_dir)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("root_access_key_id", &self.root_access_key_id)
            .field("root_secret_access_key", &self.root_secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("credentials_file", &self.credentials_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_secret() {
        let mut config = Config::new("127.0.0.1:1".parse().unwrap(), "d".into());
        config.database_url = Some("postgres://app:db-password@h/x".into());
        config.auth.root_access_key_id = Some("AKIDVISIBLE".into());
        config.auth.root_secret_access_key = Some("the-root-secret".into());
        let shown = format!("{config:?}");
        assert!(shown.contains("AKIDVISIBLE") && shown.contains("postgres://app@h/x"), "{shown}");
        assert!(!shown.contains("the-root-secret") && !shown.contains("db-password"), "{shown}");
    }
}

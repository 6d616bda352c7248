//! `interlog serve`: flags and environment to a [`Config`], then run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use interlog_server::startup::shutdown_signal;
use interlog_server::{Application, Config};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "INTERLOG_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Where events and resources are stored (created if missing).
    #[arg(long, env = "INTERLOG_DATA_DIR", default_value = "./interlog-data")]
    data_dir: PathBuf,
    /// Keep everything in this PostgreSQL database instead of SQLite in --data-dir, so any number
    /// of nodes can serve one deployment (docs/scale-out.md), e.g. postgres://user@host:5432/db.
    #[arg(long, env = "INTERLOG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Tracking ID of the default event tracker created on first start (random otherwise).
    #[arg(long, env = "INTERLOG_DEFAULT_TRACKING_ID")]
    default_tracking_id: Option<String>,
    /// Create no default dataset group, schema, dataset or event tracker on first start: the
    /// account starts empty, as a new AWS account does (for test suites that expect that).
    #[arg(long, env = "INTERLOG_NO_DEFAULT_RESOURCES", conflicts_with = "default_tracking_id")]
    no_default_resources: bool,
    /// Pin the region of every ARN (otherwise: the region of each request's credential scope,
    /// and us-east-1 for the resources created at first start).
    #[arg(long, env = "INTERLOG_REGION")]
    region: Option<String>,
    /// Accept requests without verifying signatures (local development only). Also INTERLOG_AUTH=off.
    #[arg(long)]
    no_auth: bool,
    /// Refuse events whose properties have keys the dataset's schema does not declare
    /// (InvalidInputException, nothing of the request stored). By default such events are
    /// stored with their properties as sent and flagged (docs/api.md), as AWS accepts them.
    #[arg(long, env = "INTERLOG_STRICT_PROPERTIES")]
    strict_properties: bool,
    /// Keep and flag events whose properties have undeclared keys: the default, accepted so
    /// older scripts keep working.
    #[arg(long, env = "INTERLOG_ALLOW_UNKNOWN_PROPERTIES")]
    allow_unknown_properties: bool,
    /// A new dataset reports CREATE PENDING for this many seconds before it turns ACTIVE, as on
    /// AWS (Put* calls to it meanwhile get ResourceInUseException); 0, the default: ACTIVE at once.
    #[arg(long, env = "INTERLOG_ACTIVATION_DELAY", default_value_t = 0.0, value_name = "SECONDS")]
    activation_delay: f64,
    /// A TOML file of more access keys, each bound to a 12-digit account ID (see docs/auth.md).
    #[arg(long, env = "INTERLOG_CREDENTIALS_FILE")]
    credentials_file: Option<PathBuf>,
    /// The root access key ID (with INTERLOG_SECRET_ACCESS_KEY); generated on first start if unset.
    /// The secret has no flag: a command line is visible to every local user in `ps`.
    #[arg(long = "root-access-key-id", env = "INTERLOG_ACCESS_KEY_ID", hide = true)]
    root_access_key_id: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); SIGHUP reloads both files.
    #[arg(long, env = "INTERLOG_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "INTERLOG_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The directory dataset export jobs may write to: a file:// destination must lie under
    /// DIR/<account-id>/. Without it, file:// destinations are refused.
    #[arg(long, env = "INTERLOG_EXPORT_DIR", value_name = "DIR")]
    export_dir: Option<PathBuf>,
    /// The directory dataset import jobs may read from: a file:// data location must lie under
    /// DIR/<account-id>/ (a CSV file, or a folder of them). Without it, file:// sources are refused.
    #[arg(long, env = "INTERLOG_IMPORT_DIR", value_name = "DIR")]
    import_dir: Option<PathBuf>,
    /// Answer GET /_interlog/stats without a signature (otherwise: root account only).
    #[arg(long, env = "INTERLOG_PUBLIC_STATS")]
    public_stats: bool,
    /// Keep no history index: `GET /_interlog/v1/events` then scans the dataset's log (complete,
    /// slower on a large store). The index is filled off the write path; the benchmark compares.
    #[arg(long, env = "INTERLOG_NO_HISTORY_INDEX")]
    no_history_index: bool,
    /// Publish every stored event to NATS JetStream at this server (docs/streams.md), e.g.
    /// nats://127.0.0.1:4222. Delivery runs behind the store: NATS being down never stops ingest.
    #[arg(long, env = "INTERLOG_NATS_URL", value_name = "URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// Subjects are PREFIX.<account>.<dataset group name>.
    #[arg(long, env = "INTERLOG_NATS_SUBJECT_PREFIX", default_value = "interlog.events", value_name = "PREFIX")]
    nats_subject_prefix: String,
    /// The JetStream stream capturing PREFIX.>, created if missing.
    #[arg(long, env = "INTERLOG_NATS_STREAM", default_value = "INTERLOG_EVENTS", value_name = "NAME")]
    nats_stream: String,
    /// Retention of a stream interlog creates: limits, interest or workqueue.
    #[arg(long, env = "INTERLOG_NATS_RETENTION", default_value = "limits")]
    nats_retention: String,
    /// Duplicate window of a stream interlog creates, in seconds: a replay after a crash within
    /// it is dropped by Nats-Msg-Id.
    #[arg(long, env = "INTERLOG_NATS_DUPLICATE_WINDOW_SECS", default_value_t = 600, value_name = "SECS")]
    nats_duplicate_window_secs: u64,
    /// Maximum age of messages in a stream interlog creates, in seconds (0: no limit).
    #[arg(long, env = "INTERLOG_NATS_MAX_AGE_SECS", default_value_t = 0, value_name = "SECS")]
    nats_max_age_secs: u64,
    /// Only these dataset groups (name or ARN; repeat, or comma-separate) go to NATS; all by default.
    #[arg(long, env = "INTERLOG_NATS_DATASET_GROUPS", value_delimiter = ',', value_name = "GROUP")]
    nats_dataset_group: Vec<String>,
    /// Forward every stored interaction and item, user and action record to Amazon Personalize at this endpoint (docs/streams.md),
    /// e.g. https://personalize-events.us-east-1.amazonaws.com, or any PutEvents-compatible
    /// server. Delivery runs behind the store: the upstream being down never stops ingest.
    #[arg(long, env = "INTERLOG_FORWARD_TO", value_name = "URL")]
    forward_to: Option<String>,
    /// Region of the forwarded calls' signatures; default: the AWS profile's, else the one in a
    /// personalize-events.REGION.amazonaws.com URL, else us-east-1.
    #[arg(long, env = "INTERLOG_FORWARD_REGION", value_name = "REGION")]
    forward_region: Option<String>,
    /// Sign forwarded calls with this access key ID (with INTERLOG_FORWARD_SECRET_ACCESS_KEY and
    /// optionally INTERLOG_FORWARD_SESSION_TOKEN; the secret has no flag, as a command line is
    /// visible in `ps`). Without it: the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
    /// then the profile in ~/.aws/credentials and ~/.aws/config).
    #[arg(long, env = "INTERLOG_FORWARD_ACCESS_KEY_ID", value_name = "KEY_ID")]
    forward_access_key_id: Option<String>,
    /// The AWS profile the chain reads (otherwise AWS_PROFILE, else default).
    #[arg(long, env = "INTERLOG_FORWARD_PROFILE", value_name = "NAME")]
    forward_profile: Option<String>,
    /// Forward events of local tracking ID LOCAL under the upstream's REMOTE (repeat, or
    /// comma-separate); a tracking ID without an entry is forwarded under its own.
    #[arg(long, env = "INTERLOG_FORWARD_TRACKING_IDS", value_delimiter = ',', value_name = "LOCAL=REMOTE")]
    forward_tracking_id: Vec<String>,
    /// Forward the records of the local items, users or actions dataset LOCAL (an ARN) into the upstream's
    /// REMOTE (repeat, or comma-separate); a dataset without an entry is forwarded under its own ARN.
    #[arg(long, env = "INTERLOG_FORWARD_DATASET_ARNS", value_delimiter = ',', value_name = "LOCAL=REMOTE")]
    forward_dataset_arn: Vec<String>,
    /// At most this many PutItems / PutUsers / PutActions calls per second per remote dataset (AWS's quota for
    /// PutItems and PutUsers is 10 per dataset group).
    #[arg(long, env = "INTERLOG_FORWARD_RECORDS_RATE", default_value_t = 10.0, value_name = "CALLS")]
    forward_records_rate: f64,
    /// At most this many PutEvents calls per second per remote tracker (AWS's default quota).
    #[arg(long, env = "INTERLOG_FORWARD_RATE", default_value_t = 1000.0, value_name = "CALLS")]
    forward_rate: f64,
    /// PutEvents calls in flight at once per dataset.
    #[arg(long, env = "INTERLOG_FORWARD_CONCURRENCY", default_value_t = 64, value_name = "N")]
    forward_concurrency: usize,
    /// Only these dataset groups (name or ARN; repeat, or comma-separate) are forwarded; all by default.
    #[arg(long, env = "INTERLOG_FORWARD_DATASET_GROUPS", value_delimiter = ',', value_name = "GROUP")]
    forward_dataset_group: Vec<String>,
}

/// The forwarding sink's settings from the flags, with credentials from the flags and
/// environment or the AWS chain, resolved once at start-up.
fn forward_config(args: &ServeArgs, url: &str) -> anyhow::Result<interlog_server::sinks::forward::ForwardConfig> {
    use interlog_server::sinks::forward::{dataset_arn_pair, tracking_id_pair, ForwardConfig, ForwardCredentials};
    let env: std::collections::HashMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let (credentials, chain_region) = match &args.forward_access_key_id {
        Some(id) => {
            let secret = env.get("INTERLOG_FORWARD_SECRET_ACCESS_KEY").cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "--forward-access-key-id (INTERLOG_FORWARD_ACCESS_KEY_ID) needs its secret in \
                     INTERLOG_FORWARD_SECRET_ACCESS_KEY"
                )
            })?;
            let creds = ForwardCredentials {
                access_key_id: id.clone(),
                secret_access_key: secret,
                session_token: env.get("INTERLOG_FORWARD_SESSION_TOKEN").cloned(),
                source: "INTERLOG_FORWARD_ACCESS_KEY_ID".into(),
            };
            (creds, None)
        }
        None => {
            let c = interlog_cli::fetch::chain_credentials(env, args.forward_profile.as_deref())
                .map_err(|e| anyhow::anyhow!("--forward-to needs credentials for the upstream: {e}"))?;
            let creds = ForwardCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
                source: c.method.into(),
            };
            (creds, c.region)
        }
    };
    // personalize-events.REGION.amazonaws.com names its region.
    let url_region = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.strip_prefix("personalize-events."))
        .and_then(|rest| rest.split('.').next())
        .map(str::to_owned);
    let region = args.forward_region.clone().or(chain_region).or(url_region).unwrap_or_else(|| "us-east-1".to_owned());
    let mut config = ForwardConfig::new(url, region, credentials);
    for pair in &args.forward_tracking_id {
        let (local, remote) = tracking_id_pair(pair).map_err(anyhow::Error::msg)?;
        config.tracking_ids.insert(local, remote);
    }
    for pair in &args.forward_dataset_arn {
        let (local, remote) = dataset_arn_pair(pair).map_err(anyhow::Error::msg)?;
        config.dataset_arns.insert(local, remote);
    }
    config.records_rate = args.forward_records_rate;
    config.rate = args.forward_rate;
    config.concurrency = args.forward_concurrency;
    config.dataset_groups = args.forward_dataset_group.clone();
    config.check().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// How export and import jobs reach `s3://` locations: the endpoint and part size from the
/// environment (`INTERLOG_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL_S3`), credentials from the
/// aws-cli chain (environment, then AWS_PROFILE's profile in ~/.aws/credentials and ~/.aws/config), read
/// again for each job so that rotated keys need no restart. No credentials is no error here:
/// only a job that needs S3 fails, with the reason.
fn s3_config() -> interlog_server::objects::S3Config {
    use interlog_server::objects::{CredentialSource, S3Config, S3Credentials};
    let vars = || -> std::collections::HashMap<String, String> {
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
    };
    let credentials: CredentialSource = std::sync::Arc::new(move || {
        let c = interlog_cli::fetch::chain_credentials(vars(), None)?;
        Ok(S3Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            region: c.region,
            source: c.method.into(),
        })
    });
    S3Config::from_vars(&vars(), credentials)
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging()?;
    if let Some(id) = &args.default_tracking_id {
        let n = id.chars().count();
        anyhow::ensure!(
            (1..=256).contains(&n) && !id.chars().any(char::is_whitespace),
            "--default-tracking-id must be 1 to 256 characters without spaces"
        );
    }
    anyhow::ensure!(
        !(args.strict_properties && args.allow_unknown_properties),
        "--strict-properties (INTERLOG_STRICT_PROPERTIES) refuses properties keys the schema does not declare, \
         --allow-unknown-properties (INTERLOG_ALLOW_UNKNOWN_PROPERTIES) keeps them: give only one of the two"
    );
    let auth_off = match std::env::var("INTERLOG_AUTH").as_deref() {
        Ok("off" | "false" | "0") => true,
        Ok("on" | "true" | "1" | "") | Err(_) => false,
        Ok(other) => anyhow::bail!("INTERLOG_AUTH must be on or off, not {other:?}"),
    };
    // Before the fields below are moved out of `args`.
    let forward = match args.forward_to.clone() {
        Some(url) => Some(forward_config(&args, &url)?),
        None => None,
    };
    let mut config = Config::new(args.listen, args.data_dir.clone());
    config.default_tracking_id = args.default_tracking_id;
    config.default_resources = !args.no_default_resources;
    config.database_url = args.database_url.clone();
    if let Some(region) = args.region {
        config.region = region;
        config.region_pinned = true;
    }
    config.auth.enabled = !(args.no_auth || auth_off);
    // --allow-unknown-properties is the default behaviour: nothing to set.
    config.strict_properties = args.strict_properties;
    anyhow::ensure!(
        args.activation_delay.is_finite() && (0.0..=86_400.0).contains(&args.activation_delay),
        "--activation-delay (INTERLOG_ACTIVATION_DELAY) must be 0 to 86400 seconds, not {}",
        args.activation_delay
    );
    config.activation_delay = std::time::Duration::from_secs_f64(args.activation_delay);
    config.auth.credentials_file = args.credentials_file;
    config.auth.root_access_key_id = args.root_access_key_id;
    config.auth.root_secret_access_key = std::env::var("INTERLOG_SECRET_ACCESS_KEY").ok();
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(interlog_server::tls::TlsFiles { cert, key });
    }
    config.export_dir = args.export_dir;
    config.import_dir = args.import_dir;
    config.public_stats = args.public_stats;
    config.store.history_index = !args.no_history_index;
    if let Some(url) = args.nats_url.clone() {
        let mut nats = interlog_server::sinks::nats::NatsConfig::new(url);
        nats.prefix = args.nats_subject_prefix.clone();
        nats.stream = args.nats_stream.clone();
        nats.retention = interlog_server::sinks::nats::retention(&args.nats_retention).map_err(anyhow::Error::msg)?;
        nats.duplicate_window = std::time::Duration::from_secs(args.nats_duplicate_window_secs.max(1));
        nats.max_age = (args.nats_max_age_secs > 0).then(|| std::time::Duration::from_secs(args.nats_max_age_secs));
        nats.dataset_groups = args.nats_dataset_group.clone();
        nats.check().map_err(anyhow::Error::msg)?;
        config.nats = Some(nats);
    }
    config.forward = forward;
    config.s3 = s3_config();
    let forward_banner = config.forward.as_ref().map(|f| {
        format!(
            "forward:       {} region {} as {} ({}), at most {} calls/s per tracker, {} per dataset of records",
            f.url, f.region, f.credentials.access_key_id, f.credentials.source, f.rate, f.records_rate
        )
    });

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let app = Application::build(config).await.context("cannot start")?;
        // Handlers first: a SIGTERM right after the banner must still be a graceful stop.
        let stop = shutdown_signal();
        print_banner(&app, &args.data_dir, args.database_url.as_deref());
        if let Some(url) = &args.nats_url {
            println!(
                "nats:          {} stream {} subjects {}.<account>.<dataset group>",
                interlog_server::sinks::nats::redact(url),
                args.nats_stream,
                args.nats_subject_prefix
            );
        }
        if let Some(line) = &forward_banner {
            println!("{line}");
        }
        app.run_until_stopped(stop).await.context("server failed")?;
        Ok(())
    });
    // Requests in flight were answered by now. A dataset export job still writing is abandoned
    // after a grace period rather than holding the exit; the next start marks it CREATE FAILED.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    tracing::info!("stopped");
    result
}

/// Logs to stderr, filtered by `INTERLOG_LOG`; `INTERLOG_LOG_FORMAT=json` writes one JSON object
/// per line (for log shippers), `text` (the default) lines for people. Either way a request's
/// lines carry its `request_id` (the `request` span of `interlog_server::telemetry`).
fn init_logging() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTERLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours for a terminal only: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match std::env::var("INTERLOG_LOG_FORMAT").as_deref() {
        Err(_) | Ok("" | "text") => builder.init(),
        // The span's fields flattened into each line's "span" object, no list of parents: a
        // request has one span.
        Ok("json") => builder.json().with_current_span(true).with_span_list(false).init(),
        Ok(other) => anyhow::bail!("INTERLOG_LOG_FORMAT={other:?} is not a log format: use text or json"),
    }
    Ok(())
}

/// True with `INTERLOG_LOG_FORMAT=json`: everything the server writes to stderr is then a log line.
fn json_logs() -> bool {
    std::env::var("INTERLOG_LOG_FORMAT").as_deref() == Ok("json")
}

/// What a new user needs to send a first event, printed on every start.
fn print_banner(app: &Application, data_dir: &std::path::Path, database_url: Option<&str>) {
    use interlog_server::startup::RootKeySource;
    let host =
        if app.addr.ip().is_unspecified() { format!("127.0.0.1:{}", app.addr.port()) } else { app.addr.to_string() };
    let endpoint = format!("{}://{host}", if app.is_tls() { "https" } else { "http" });
    println!("interlog {} listening on {endpoint}", env!("CARGO_PKG_VERSION"));
    match database_url {
        Some(url) => println!("database:      {}", interlog_server::engine::redact_url(url)),
        None => println!("data dir:      {}", data_dir.display()),
    }
    // The tracking ID line ends the part of the banner scripts parse; `-` when there is none.
    match &app.bootstrap {
        Some(b) => {
            let what = if b.created { "created" } else { "reusing" };
            println!("dataset group: {} ({what})", b.dataset_group.meta.arn);
            println!("tracking ID:   {}", b.tracker.spec.tracking_id);
        }
        None => {
            println!("dataset group: - (none: --no-default-resources)");
            println!("tracking ID:   -");
        }
    }
    let client_flags = match &app.root_key {
        None => {
            if json_logs() {
                // stderr is a stream of JSON objects then: the warning is one of them.
                tracing::warn!(
                    %endpoint,
                    "authentication is OFF (--no-auth / INTERLOG_AUTH=off): anyone who can reach the endpoint can \
                     record events and read them back. Use it for local development only."
                );
            } else {
                eprintln!("WARNING: authentication is OFF (--no-auth / INTERLOG_AUTH=off): anyone who can reach");
                eprintln!(
                    "WARNING: {endpoint} can record events and read them back. Use it for local development only."
                );
            }
            println!("auth:          OFF: requests are not verified (aws --no-sign-request works)");
            " --no-sign-request"
        }
        Some(root) => {
            let key = &root.credential;
            match &root.source {
                RootKeySource::Environment => {
                    println!("auth:          SigV4, root key {} from INTERLOG_ACCESS_KEY_ID", key.access_key_id());
                    ""
                }
                RootKeySource::LoadedFromDataDir(path) => {
                    println!("auth:          SigV4, root key {} (in {})", key.access_key_id(), path.display());
                    " --profile interlog"
                }
                RootKeySource::LoadedFromStore => {
                    println!("auth:          SigV4, root key {} (kept in the database)", key.access_key_id());
                    " --profile interlog"
                }
                RootKeySource::Generated(_) | RootKeySource::GeneratedInStore => {
                    match &root.source {
                        RootKeySource::Generated(path) => println!(
                            "auth:          SigV4, new root key {} saved in {}",
                            key.access_key_id(),
                            path.display()
                        ),
                        _ => println!(
                            "auth:          SigV4, new root key {} kept in the database (every node uses it)",
                            key.access_key_id()
                        ),
                    }
                    println!();
                    println!("Configure the AWS CLI with it:");
                    println!("  aws configure set aws_access_key_id {} --profile interlog", key.access_key_id());
                    println!(
                        "  aws configure set aws_secret_access_key {} --profile interlog",
                        key.secret_access_key()
                    );
                    println!("  aws configure set region us-east-1 --profile interlog");
                    " --profile interlog"
                }
            }
        }
    };
    if app.extra_keys > 0 {
        println!("               + {} keys from the credentials file", app.extra_keys);
    }
    println!();
    let (tracking_id, group_flag) = match &app.bootstrap {
        Some(b) => (b.tracker.spec.tracking_id.clone(), String::new()),
        None => {
            println!("Create a schema, a dataset group, its Interactions dataset and an event tracker first:");
            println!("  aws personalize create-dataset-group{client_flags} --endpoint-url {endpoint} --name NAME ...");
            ("<trackingId of create-event-tracker>".to_owned(), " --dataset-group NAME".to_owned())
        }
    };
    println!("Record an event:");
    println!(
        "  aws personalize-events put-events{client_flags} --endpoint-url {endpoint} --tracking-id {tracking_id} \
         --session-id session-1 --event-list '[{{\"eventType\":\"click\",\"itemId\":\"item-1\",\"sentAt\":{}}}]'",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    );
    println!("Read them back:");
    let export_flags = if client_flags == " --profile interlog" { " --profile interlog" } else { "" };
    println!("  interlog export{export_flags} --endpoint-url {endpoint}{group_flag} --output -");
}

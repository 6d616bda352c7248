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
    /// Tracking ID of the default event tracker created on first start (random otherwise).
    #[arg(long, env = "INTERLOG_DEFAULT_TRACKING_ID")]
    default_tracking_id: Option<String>,
    /// Region used in the ARNs of the resources created at first start.
    #[arg(long, env = "INTERLOG_REGION", default_value = "us-east-1")]
    region: String,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    if let Some(id) = &args.default_tracking_id {
        let n = id.chars().count();
        anyhow::ensure!(
            (1..=256).contains(&n) && !id.chars().any(char::is_whitespace),
            "--default-tracking-id must be 1 to 256 characters without spaces"
        );
    }
    let mut config = Config::new(args.listen, args.data_dir.clone());
    config.default_tracking_id = args.default_tracking_id;
    config.region = args.region;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let app = Application::build(config).await.context("cannot start")?;
        print_banner(&app, &args.data_dir);
        app.run_until_stopped(shutdown_signal()).await.context("server failed")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTERLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

/// What a new user needs to send a first event, printed on every start.
fn print_banner(app: &Application, data_dir: &std::path::Path) {
    let host = if app.addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", app.addr.port())
    } else {
        app.addr.to_string()
    };
    let endpoint = format!("http://{host}");
    let b = &app.bootstrap;
    let what = if b.created { "created" } else { "reusing" };
    println!("interlog {} listening on {endpoint}", env!("CARGO_PKG_VERSION"));
    println!("data dir:      {}", data_dir.display());
    println!("dataset group: {} ({what})", b.dataset_group.arn);
    println!("tracking ID:   {}", b.tracker.tracking_id);
    println!();
    println!("Record an event:");
    println!(
        "  aws personalize-events put-events --endpoint-url {endpoint} --tracking-id {} --session-id session-1 \
         --event-list '[{{\"eventType\":\"click\",\"itemId\":\"item-1\",\"sentAt\":{}}}]'",
        b.tracker.tracking_id,
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    );
    println!("Read them back:");
    println!("  interlog export --endpoint-url {endpoint} --output -");
}

//! `interlog export`: a dataset group's interactions, or any dataset by ARN (`--dataset-arn`), as
//! dataset CSV or JSON lines, read through
//! a running server (`--endpoint-url`), straight from a data dir (`--data-dir`) or from the
//! PostgreSQL database a deployment shares (`--database-url`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use interlog_model::schema::DatasetType;
use interlog_model::schema::{field_names, parse_schema};
use interlog_store::export::{dataset_by_arn, export_dataset, interactions_of_group, ExportWriter, Format};
use interlog_store::Store;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir", "endpoint_url", "database_url"])))]
pub(crate) struct ExportArgs {
    /// Read through a running server, signing with your usual AWS credentials (works for any store).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Read the store in this data dir directly (works beside a running server, too).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Read the PostgreSQL database of a deployment directly (also INTERLOG_DATABASE_URL).
    #[arg(long, env = "INTERLOG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// AWS CLI profile for the credentials (with --endpoint-url).
    #[arg(long)]
    profile: Option<String>,
    /// Region for the signature (with --endpoint-url); default from the profile or AWS_DEFAULT_REGION.
    #[arg(long)]
    region: Option<String>,
    /// Send the request unsigned (for a server started with --no-auth).
    #[arg(long)]
    no_sign_request: bool,
    /// The dataset group whose Interactions dataset to export (the default one when omitted).
    #[arg(long, conflicts_with = "dataset_arn")]
    dataset_group: Option<String>,
    /// The dataset to export, of any type (Interactions, Items, Users, Actions, Action_Interactions).
    #[arg(long)]
    dataset_arn: Option<String>,
    /// csv (Personalize's dataset CSV), jsonl (every stored member, one event per line) or parquet
    /// (the CSV's columns, typed from the dataset's schema).
    #[arg(long, default_value = "csv")]
    format: Format,
    /// File to write, or - for standard output.
    #[arg(long)]
    output: PathBuf,
}

pub(crate) fn run(args: ExportArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = &args.endpoint_url {
        return from_server(endpoint, &args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let store: std::sync::Arc<dyn Store> = match (&args.data_dir, &args.database_url) {
            (Some(dir), _) => interlog_store_sqlite::SqliteStore::open_read_only(dir)?,
            (None, Some(url)) => interlog_store_postgres::PostgresStore::open(url, Default::default())
                .await
                .with_context(|| format!("cannot open {}", interlog_server::engine::redact_url(url)))?,
            (None, None) => unreachable!("clap requires a source"),
        };
        from_store(store, args.dataset_group.as_deref(), args.dataset_arn.as_deref(), args.format, &args.output).await
    })
}

/// Reads `GET /_interlog/export` from a running server. The output file is created only once
/// the server answered 200, so a refused request leaves nothing behind.
fn from_server(endpoint: &str, args: &ExportArgs) -> anyhow::Result<()> {
    let options = interlog_cli::fetch::FetchOptions {
        endpoint: endpoint.to_owned(),
        profile: args.profile.clone(),
        region: args.region.clone(),
        no_sign: args.no_sign_request,
    };
    let format = match args.format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
    };
    let mut query = format!("/_interlog/export?format={format}");
    if let Some(group) = &args.dataset_group {
        query.push_str("&datasetGroup=");
        query.push_str(&percent_encode(group));
    }
    if let Some(arn) = &args.dataset_arn {
        query.push_str("&datasetArn=");
        query.push_str(&percent_encode(arn));
    }
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let fetched = interlog_cli::fetch::signed_get(env, &options, &query).map_err(anyhow::Error::msg)?;
    if fetched.status != 200 {
        let body: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap_or_default();
        let code = body["__type"].as_str().unwrap_or("error");
        let message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&fetched.body).into_owned());
        anyhow::bail!("the server answered {} ({code}): {message}", fetched.status);
    }
    let mut out = open_output(&args.output)?;
    out.write_all(&fetched.body)?;
    out.flush()?;
    Ok(())
}

/// Dataset group names are `[A-Za-z0-9_-]`; anything else (an ARN's `:` and `/`) is escaped so
/// the query stays intact.
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn open_output(path: &PathBuf) -> anyhow::Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout())));
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

/// Writes the default (or named) group's interactions, or the dataset an ARN names, of any
/// account; the output file is
/// created only once the dataset was found.
async fn from_store(
    store: std::sync::Arc<dyn Store>,
    group: Option<&str>,
    dataset_arn: Option<&str>,
    format: Format,
    output: &PathBuf,
) -> anyhow::Result<()> {
    let (dataset, schema) = match dataset_arn {
        Some(arn) => dataset_by_arn(&*store, None, arn).await?,
        None => interactions_of_group(&*store, None, group).await?,
    };
    let out = open_output(output)?;
    let columns = field_names(&schema.spec.body).map_err(anyhow::Error::msg)?;
    let dataset_type = dataset.spec.parsed_type().unwrap_or(DatasetType::Interactions);
    let writer = ExportWriter::new(format, columns, out)?
        .with_schema(parse_schema(&schema.spec.body).ok())
        .for_dataset(dataset_type);
    export_dataset(store, dataset.meta.id, writer).await?;
    Ok(())
}

//! `interlog export`: a dataset group's interactions as dataset CSV or JSON lines, read through
//! a running server (`--endpoint-url`) or straight from a data dir (`--data-dir`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use interlog_model::schema::field_names;
use interlog_store::export::{ExportWriter, Format};
use interlog_store::SqliteStore;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir", "endpoint_url"])))]
pub(crate) struct ExportArgs {
    /// Read through a running server, signing with your usual AWS credentials (works for any store).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Read the store in this data dir directly (works beside a running server, too).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// AWS CLI profile for the credentials (with --endpoint-url).
    #[arg(long)]
    profile: Option<String>,
    /// Region for the signature (with --endpoint-url); default from the profile or AWS_DEFAULT_REGION.
    #[arg(long)]
    region: Option<String>,
    /// Send the request unsigned (for a server started with --no-auth).
    #[arg(long)]
    no_sign_request: bool,
    /// The dataset group to export (the default one when omitted).
    #[arg(long)]
    dataset_group: Option<String>,
    /// csv (Personalize's dataset CSV) or jsonl (every stored member, one event per line).
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
    let out = open_output(&args.output)?;
    let dir = args.data_dir.as_deref().expect("clap requires a source");
    from_data_dir(dir, args.dataset_group.as_deref(), args.format, out)
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
    };
    let mut query = format!("/_interlog/export?format={format}");
    if let Some(group) = &args.dataset_group {
        query.push_str("&datasetGroup=");
        query.push_str(&percent_encode(group));
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

/// Dataset group names are `[A-Za-z0-9_-]`; anything else is escaped so the query stays intact.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn open_output(path: &PathBuf) -> anyhow::Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())));
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, file)))
}

fn from_data_dir(
    dir: &std::path::Path,
    group: Option<&str>,
    format: Format,
    out: Box<dyn Write>,
) -> anyhow::Result<()> {
    let store = SqliteStore::open_read_only(dir)?;
    let group = store.dataset_group(None, group)?;
    let (dataset_id, schema) =
        group.interactions.with_context(|| format!("dataset group {} has no Interactions dataset", group.name))?;
    let columns = field_names(&schema).map_err(anyhow::Error::msg)?;
    let mut writer =
        ExportWriter::new(format, columns, out)?.with_schema(interlog_model::schema::parse_schema(&schema).ok());
    store.scan(dataset_id, &mut |event| writer.write(&event))?;
    writer.finish()?.flush()?;
    Ok(())
}

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
#[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir"])))]
pub(crate) struct ExportArgs {
    /// Read the store in this data dir directly.
    #[arg(long)]
    data_dir: Option<PathBuf>,
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
    let out = open_output(&args.output)?;
    if let Some(dir) = &args.data_dir {
        from_data_dir(dir, args.dataset_group.as_deref(), args.format, out)
    } else {
        unreachable!("clap requires a source")
    }
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
    let mut writer = ExportWriter::new(format, columns, out)?;
    store.scan(dataset_id, &mut |event| writer.write(&event))?;
    writer.finish()?.flush()?;
    Ok(())
}

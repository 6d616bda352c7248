//! `interlog-bench import`: a dataset import job of `--rows` interaction rows (default 1,000,000) from a CSV file
//! in the server's import root, timed from CreateDatasetImportJob to ACTIVE (both passes: the check of every row
//! and the chunked load through the writer). Reported in rows/s beside the export figures (docs/benchmarks.md).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::server::{bench_credentials, control, work_dir, Server};

#[derive(Args)]
pub struct ImportArgs {
    /// The interlog binary to measure (a release build for real figures).
    #[arg(long)]
    server_bin: PathBuf,
    /// Interaction rows in the imported file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Where the data dir, the import root and the log go (a temporary folder inside it).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Write the figures to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let tmp = work_dir(args.work_dir.as_ref())?;
    let root = tmp.path().join("imports");
    let data = tmp.path().join("data");
    let server = Server::interlog_with(
        &args.server_bin,
        &data,
        &tmp.path().join("import.log"),
        None,
        &[("INTERLOG_IMPORT_DIR", root.to_str().context("a UTF-8 work dir")?)],
    )?;
    let creds = bench_credentials();
    let listed = control(server.addr, "ListDatasets", &json!({}), &creds)?;
    let dataset = listed["datasets"]
        .as_array()
        .and_then(|d| d.iter().find_map(|d| d["datasetArn"].as_str().filter(|a| a.ends_with("/INTERACTIONS"))))
        .context("the default Interactions dataset")?
        .to_owned();
    let account = dataset.split(':').nth(4).context("an account in the dataset ARN")?.to_owned();
    let folder = root.join(&account);
    std::fs::create_dir_all(&folder)?;
    let file = folder.join("interactions.csv");
    let written = Instant::now();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        writeln!(out, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,IMPRESSION")?;
        for i in 0..args.rows {
            let item = i % 50_000;
            writeln!(
                out,
                "user-{},item-{item},{},click,{}.5,item-{item}|item-{}|item-{}",
                i % 20_000,
                1_600_000_000 + i,
                i % 5,
                (item + 1) % 50_000,
                (item + 2) % 50_000
            )?;
        }
        out.flush()?;
    }
    let bytes = std::fs::metadata(&file)?.len();
    eprintln!("wrote {} rows ({bytes} bytes) in {:.1} s", args.rows, written.elapsed().as_secs_f64());
    let started = Instant::now();
    let created = control(
        server.addr,
        "CreateDatasetImportJob",
        &json!({"jobName": "bench-import", "datasetArn": dataset,
                "dataSource": {"dataLocation": format!("file://{}", file.display())}}),
        &creds,
    )?;
    let arn = created["datasetImportJobArn"].as_str().context("an import job ARN")?.to_owned();
    let job = loop {
        let job = control(server.addr, "DescribeDatasetImportJob", &json!({"datasetImportJobArn": arn}), &creds)?;
        let status = job["datasetImportJob"]["status"].as_str().unwrap_or_default().to_owned();
        if status == "ACTIVE" || status == "CREATE FAILED" {
            break job;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(job["datasetImportJob"]["status"] == "ACTIVE", "the import job failed: {job}");
    let rss = crate::procfs::status_mib(server.pid, "VmHWM").unwrap_or(f64::NAN);
    server.stop()?;
    let rows_per_s = args.rows as f64 / seconds;
    println!(
        "import: {} rows ({:.1} MB CSV) in {seconds:.2} s = {rows_per_s:.0} rows/s (server peak RSS {rss:.1} MiB)",
        args.rows,
        bytes as f64 / 1e6
    );
    if let Some(path) = &args.json {
        let report = json!({"rows": args.rows, "csv_bytes": bytes, "seconds": seconds, "rows_per_s": rows_per_s,
                            "server_peak_rss_mib": rss, "machine": crate::procfs::machine(tmp.path())});
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

//! `interlog import`: files of Personalize's dataset CSV or of JSON lines into one dataset,
//! through a running server, streamed window by window, with a checkpoint after each window so
//! an interrupted import resumes where it stopped without storing anything twice (rows without an
//! eventId get one derived from their line and content, which the server keeps once), a progress
//! bar, and a report of the rejected rows with their line numbers.

mod local;
mod remote;
mod rows;

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use interlog_cli::fetch::FetchOptions;
use serde::{Deserialize, Serialize};

use remote::{Remote, MAX_PER_CALL};
use rows::{InputFormat, Member, Position, Row, Rows};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["endpoint_url", "data_dir", "database_url"])))]
pub(crate) struct ImportArgs {
    /// CSV files (a header of the schema's field names) or JSON lines files, imported in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The dataset to import into, of any type (its type decides the Put* call).
    #[arg(long)]
    dataset_arn: String,
    /// The server to send the rows through (as Put* calls), signing with your usual AWS credentials.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Or store CSV rows straight into the store in this data dir, as imported (BULK) data, with
    /// no server running on it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Or into the PostgreSQL database of a deployment (also INTERLOG_DATABASE_URL), beside its nodes.
    #[arg(long, env = "INTERLOG_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// csv or jsonl; by default from each file's extension (.csv; .jsonl, .ndjson, .json).
    #[arg(long)]
    format: Option<InputFormat>,
    /// Interactions and action interactions: the tracker to send through (default: the dataset
    /// group's first tracker).
    #[arg(long)]
    tracking_id: Option<String>,
    /// Where rejected rows are listed, one `FILE:LINE: reason` each (default: FILE.rejected.txt
    /// beside the first file; written only when a row is rejected).
    #[arg(long)]
    report: Option<PathBuf>,
    /// The checkpoint of an interrupted import (default: FILE.import-state beside the first file);
    /// removed once the import completes.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Start from the first row even when a checkpoint says otherwise.
    #[arg(long)]
    restart: bool,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// AWS CLI profile for the credentials.
    #[arg(long)]
    profile: Option<String>,
    /// Region for the signature; default from the profile or AWS_DEFAULT_REGION.
    #[arg(long)]
    region: Option<String>,
    /// Send the requests unsigned (for a server started with --no-auth).
    #[arg(long)]
    no_sign_request: bool,
}

/// Rows read before they are sent and a checkpoint is written: bounds memory, and what a resumed
/// import sends again (harmlessly: those rows are stored once).
const WINDOW_ROWS: usize = 4_000;

/// The checkpoint file's content.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct State {
    /// Format version of this file.
    version: u32,
    dataset_arn: String,
    /// The inputs and their sizes when the import began: another set is another import.
    files: Vec<(PathBuf, u64)>,
    /// The file being read and how far it was sent.
    file: usize,
    at: Position,
    /// Totals so far.
    sent: u64,
    rejected: u64,
}

pub(crate) fn run(args: ImportArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for path in &args.files {
        let Some(format) = args.format.or_else(|| InputFormat::of_path(path)) else {
            bail!("cannot tell the format of {} from its name: pass --format csv or --format jsonl", path.display())
        };
        let size = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        inputs.push((path.clone(), format, size));
    }
    let first = &args.files[0];
    let state_path = args.state_file.clone().unwrap_or_else(|| beside(first, "import-state"));
    let report_path = args.report.clone().unwrap_or_else(|| beside(first, "rejected.txt"));
    let destination = match &args.endpoint_url {
        Some(endpoint) => {
            let options = FetchOptions {
                endpoint: endpoint.clone(),
                profile: args.profile.clone(),
                region: args.region.clone(),
                no_sign: args.no_sign_request,
            };
            Destination::Remote(Box::new(Remote::connect(&options, &args.dataset_arn, args.tracking_id.as_deref())?))
        }
        None => {
            if let Some((path, _, _)) = inputs.iter().find(|(_, f, _)| *f != InputFormat::Csv) {
                bail!(
                    "{}: --data-dir and --database-url import CSV files (the import jobs' format); send JSON lines \
                     through a server with --endpoint-url",
                    path.display()
                );
            }
            let dir = if args.database_url.is_some() { None } else { args.data_dir.as_deref() };
            Destination::Local(local::Local::open(dir, args.database_url.as_deref(), &args.dataset_arn)?)
        }
    };

    let fresh = State {
        version: 1,
        dataset_arn: args.dataset_arn.clone(),
        files: inputs.iter().map(|(p, _, s)| (p.clone(), *s)).collect(),
        file: 0,
        at: Position::default(),
        sent: 0,
        rejected: 0,
    };
    let state = match (args.restart, fs::read(&state_path)) {
        (false, Ok(bytes)) => {
            let saved: State = serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not an import checkpoint (remove it or pass --restart)", state_path.display())
            })?;
            if saved.dataset_arn != fresh.dataset_arn || saved.files != fresh.files {
                bail!(
                    "{} is the checkpoint of another import (other files, sizes or dataset): pass --restart to \
                     begin this one from the start, or --state-file for another checkpoint",
                    state_path.display()
                );
            }
            eprintln!(
                "interlog: resuming the import at line {} of {} ({} rows sent before)",
                saved.at.lines + 1,
                inputs[saved.file].0.display(),
                saved.sent
            );
            saved
        }
        _ => fresh,
    };
    if args.restart || state.sent == 0 {
        // A new import starts a new report.
        let _ = fs::remove_file(&report_path);
    }

    let total: u64 = inputs.iter().map(|(_, _, s)| s).sum();
    let bar = progress_bar(total, args.no_progress);
    let done_before: u64 = inputs[..state.file].iter().map(|(_, _, s)| s).sum();
    bar.set_position(done_before + state.at.offset);
    let mut run = Checkpoint { started: Instant::now(), sent_at_start: state.sent, state, path: state_path, bar };
    let mut report = Report::new(report_path.clone());

    for index in run.state.file..inputs.len() {
        let (path, format, _) = &inputs[index];
        let at = if index == run.state.file { run.state.at } else { Position::default() };
        let file_base: u64 = inputs[..index].iter().map(|(_, _, s)| s).sum();
        let remote = match &destination {
            Destination::Remote(remote) => remote,
            Destination::Local(local) => {
                let importer = local.importer(path)?;
                let mut records = local.records(path, at)?;
                loop {
                    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
                    while rows.len() + rejected.len() < WINDOW_ROWS {
                        match records.next_record().map_err(|e| local::read_error(path, e))? {
                            None => break,
                            Some((line, Err(e))) => rejected.push((line, format!("not valid CSV: {e}"))),
                            Some((line, Ok(record))) => match importer.row(line, &record.fields()) {
                                Ok(row) => rows.push(row),
                                Err(v) => rejected.push((
                                    line,
                                    match &v.column {
                                        Some(c) => format!("column {c}: {}", v.rule),
                                        None => v.rule.clone(),
                                    },
                                )),
                            },
                        }
                    }
                    if rows.is_empty() && rejected.is_empty() {
                        break;
                    }
                    for (line, reason) in &rejected {
                        report.add(path, *line, reason)?;
                    }
                    report.flush()?;
                    let stored = local.store(rows).map_err(|e| run.stopped(e, path))?;
                    run.window_done(index, records.position(), stored, rejected.len() as u64, file_base)?;
                }
                run.file_done(index)?;
                continue;
            }
        };
        let mut rows = Rows::open(path, *format, remote.kind(), at).map_err(anyhow::Error::msg)?;
        loop {
            let mut window: Vec<Row> = Vec::with_capacity(WINDOW_ROWS);
            let mut end = None;
            while window.len() < WINDOW_ROWS {
                match rows.next_row().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))? {
                    Some((row, at)) => {
                        window.push(row);
                        end = Some(at);
                    }
                    None => break,
                }
            }
            let Some(end) = end else { break };
            let outcome = send_window(remote, &window, args.concurrency.into());
            // Rejections are written before the checkpoint moves past them.
            for (line, reason) in outcome.as_ref().map(|o| o.rejected.as_slice()).unwrap_or_default() {
                report.add(path, *line, reason)?;
            }
            report.flush()?;
            let outcome = outcome.map_err(|e| run.stopped(e, path))?;
            run.window_done(index, end, outcome.stored, outcome.rejected.len() as u64, file_base)?;
        }
        run.file_done(index)?;
    }
    let Checkpoint { started, sent_at_start, state, path: state_path, bar } = run;
    bar.finish_and_clear();
    let _ = fs::remove_file(&state_path);
    if let Destination::Local(local) = destination {
        local.close();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = (state.sent - sent_at_start) as f64 / elapsed.max(1e-3);
    eprintln!("interlog: imported {} rows into {} in {elapsed:.1} s ({rate:.0} rows/s)", state.sent, args.dataset_arn);
    if state.rejected > 0 {
        eprintln!("interlog: {} rows were rejected; see {}", state.rejected, report_path.display());
        bail!(
            "{} of {} rows were rejected (listed in {})",
            state.rejected,
            state.sent + state.rejected,
            report_path.display()
        );
    }
    Ok(())
}

/// Where rows go.
enum Destination {
    /// Put* calls to a running server.
    Remote(Box<Remote>),
    /// Straight into a store, as imported data.
    Local(local::Local),
}

/// The checkpoint of a running import, with its progress bar: moved after each stored window.
struct Checkpoint {
    state: State,
    path: PathBuf,
    bar: ProgressBar,
    started: Instant,
    sent_at_start: u64,
}

impl Checkpoint {
    /// A window of file `file` stored up to `end`: totals, the checkpoint, the progress bar.
    fn window_done(
        &mut self,
        file: usize,
        end: Position,
        stored: u64,
        rejected: u64,
        file_base: u64,
    ) -> anyhow::Result<()> {
        let state = &mut self.state;
        state.file = file;
        state.at = end;
        state.sent += stored;
        state.rejected += rejected;
        save(&self.path, state)?;
        self.bar.set_position(file_base + end.offset);
        let rate = (state.sent - self.sent_at_start) as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{} rows stored, {rate:.0} rows/s, {} rejected", state.sent, state.rejected));
        Ok(())
    }

    /// File `file` read to its end: the next one starts at its beginning.
    fn file_done(&mut self, file: usize) -> anyhow::Result<()> {
        self.state.file = file + 1;
        self.state.at = Position::default();
        save(&self.path, &self.state)
    }

    /// The import stops with `e`: the checkpoint stays where the last stored window left it (the
    /// window in flight is sent again on resume, and stored once).
    fn stopped(&self, e: anyhow::Error, path: &Path) -> anyhow::Error {
        if let Err(save) = save(&self.path, &self.state) {
            return save;
        }
        self.bar.abandon();
        e.context(format!(
            "the import stopped at line {} of {}; run the same command again to resume from there",
            self.state.at.lines + 1,
            path.display()
        ))
    }
}

/// `FILE.suffix` beside `file`.
fn beside(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    file.with_file_name(name)
}

fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {binary_bytes}/{binary_total_bytes} {msg} (ETA {eta})")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The checkpoint, replaced whole (a new file renamed over the old one).
fn save(path: &Path, state: &State) -> anyhow::Result<()> {
    let tmp = beside(path, "tmp");
    fs::write(&tmp, serde_json::to_vec(state)?).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A row's line and its outcome: `None` stored, `Some(reason)` rejected.
type LineOutcome = (u64, Option<String>);

struct WindowOutcome {
    stored: u64,
    rejected: Vec<(u64, String)>,
}

/// Sends a window: rows grouped by key (one user's session, one record ID), the calls of one key
/// in file order on one thread, keys spread over `concurrency` threads. Rows that could not be read
/// are rejected without a call.
fn send_window(remote: &Remote, window: &[Row], concurrency: usize) -> anyhow::Result<WindowOutcome> {
    let mut rejected: Vec<(u64, String)> = Vec::new();
    let mut keys: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<Vec<(u64, &Member)>> = Vec::new();
    for row in window {
        match &row.member {
            Ok(m) => {
                let next = groups.len();
                let g = *keys.entry(m.key.as_str()).or_insert(next);
                if g == next {
                    groups.push(Vec::new());
                }
                groups[g].push((row.line, m));
            }
            Err(reason) => rejected.push((row.line, reason.clone())),
        }
    }
    let lanes = concurrency.min(groups.len()).max(1);
    let results: Vec<anyhow::Result<Vec<LineOutcome>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                let groups = &groups;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for group in groups.iter().skip(lane).step_by(lanes) {
                        for call in group.chunks(MAX_PER_CALL) {
                            let members: Vec<&Member> = call.iter().map(|(_, m)| *m).collect();
                            let outcome = remote.send(&members)?;
                            out.extend(call.iter().map(|(line, _)| *line).zip(outcome));
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a sender panicked")))).collect()
    });
    let mut stored = 0;
    for result in results {
        for (line, outcome) in result? {
            match outcome {
                None => stored += 1,
                Some(reason) => rejected.push((line, reason)),
            }
        }
    }
    rejected.sort_by_key(|(line, _)| *line);
    Ok(WindowOutcome { stored, rejected })
}

/// The rejected rows' report, appended to as windows complete (so a resumed import keeps the
/// lines of the windows before).
struct Report {
    path: PathBuf,
    out: Option<std::io::BufWriter<fs::File>>,
}

impl Report {
    fn new(path: PathBuf) -> Report {
        Report { path, out: None }
    }

    fn add(&mut self, file: &Path, line: u64, reason: &str) -> anyhow::Result<()> {
        if self.out.is_none() {
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .with_context(|| format!("cannot write the report {}", self.path.display()))?;
            self.out = Some(std::io::BufWriter::new(f));
        }
        let out = self.out.as_mut().expect("opened above");
        writeln!(out, "{}:{line}: {reason}", file.display())?;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush()?;
        }
        Ok(())
    }
}

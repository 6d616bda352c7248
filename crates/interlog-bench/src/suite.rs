//! Orchestration: servers started per run, the load, /proc snapshots around the measurement
//! window, medians of alternated runs, the client comparison, the export, the goals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::baseline::Work;
use crate::body::{BodyFactory, DEFAULT_USERS};
use crate::load::{self, LoadSpec, Requests};
use crate::procfs::{self, SyncCounter};
use crate::report::{
    self, median, median_figures, ClientReport, ExportReport, Figures, Goal, Percentiles, Report, RunReport,
    ScenarioReport, Settings,
};
use crate::server::{self, bench_credentials, Server, TRACKING_ID};

#[derive(Args, Clone)]
pub struct Common {
    /// The interlog binary to measure (a release build for real figures).
    #[arg(long)]
    server_bin: PathBuf,
    /// Runs of each target per scenario (alternated: noop, interlog, noop, interlog, ...).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of load before the measurement window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds of the measurement window.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Keep-alive connections (one request in flight on each). 128 gave interlog its highest
    /// rate here (bigger group commits than 64; 256 only adds latency).
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Generator threads. One thread caps the no-op baseline at ~62k requests/s on 2 cores (the
    /// generator is the limit); two reach ~90k, and cost interlog nothing measurable.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where data dirs, logs and exports go (a temporary folder inside it, removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Write every figure to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The git revision the server binary was built from, for the report (default: the
    /// revision of the working tree this benchmark was built in, `+dirty` if it has changes).
    #[arg(long)]
    revision: Option<String>,
    /// What `properties` each event carries: the PutEvents documentation's example (kept and
    /// flagged by the default schema, which does not declare it), three keys a schema declares
    /// (`typed`: into a dataset group made before the run), or none.
    #[arg(long, value_enum, default_value_t = Properties::Documented)]
    properties: Properties,
    /// Keep interlog's data in this PostgreSQL database (`interlog serve --database-url`)
    /// instead of SQLite in the run's data dir. One database for every run: give each
    /// benchmark a fresh one (`scripts/bench-streams` does). `history` makes a fresh schema of
    /// it per server instead (and drops it after).
    #[arg(long, hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Properties {
    /// `{"numberOfRatings": "12"}` in every event: the server's flagging path.
    Documented,
    /// No `properties` member.
    None,
    /// `{"numberOfRatings": "12", "price": 4.5, "device": "phone|tablet"}` in every event, into a
    /// tracker whose schema declares the three fields (`body::TYPED_SCHEMA`): the typed path.
    Typed,
}

impl Properties {
    fn name(self) -> &'static str {
        match self {
            Properties::Documented => "documented",
            Properties::None => "none",
            Properties::Typed => "typed",
        }
    }
}

#[derive(Args)]
pub struct SuiteArgs {
    #[command(flatten)]
    common: Common,
    /// A few seconds in all: 1 run of 0.6 s per target and scenario, a small export, one client
    /// call each; proves the benchmark runs and writes every field (CI).
    #[arg(long)]
    smoke: bool,
    /// aws-cli to compare with (default: .venv-awscli/bin/aws of the repository, if present).
    #[arg(long)]
    aws_cli: Option<PathBuf>,
    /// Timed calls of each client (alternated), after one untimed call each.
    #[arg(long, default_value_t = 10)]
    client_calls: usize,
    /// Events to store (through the server) and export.
    #[arg(long, default_value_t = 1_000_000)]
    export_events: u64,
    /// Timed export runs.
    #[arg(long, default_value_t = 3)]
    export_runs: usize,
    /// Offered load of the open-loop scenario in events/s (default: half the median
    /// saturation events/s of interlog with 10 events/request, measured just before).
    #[arg(long)]
    half_rate: Option<f64>,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Ids {
    /// Every eventId new: bodies built and signed on the fly.
    Unique,
    /// A pool of requests pre-signed with aws-sigv4, sent round-robin: duplicates after one pass.
    Repeated,
}

/// Which operation a scenario's requests call.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    /// PutEvents into the default tracker.
    Events,
    /// PutItems of ~1 KB-properties items into an Items dataset made before the run.
    Items,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Targets {
    /// The no-op baseline and interlog.
    Both,
    Interlog,
    Noop,
    /// The no-op, the SigV4-and-parse baseline and interlog (issue 17's limits).
    Limits,
    /// The parse-only baseline and interlog (meaningful with auth off: `INTERLOG_AUTH=off`).
    ParseOnly,
}

impl Targets {
    fn order(self) -> &'static [Target] {
        match self {
            Targets::Both => &[Target::Noop, Target::Interlog],
            Targets::Interlog => &[Target::Interlog],
            Targets::Noop => &[Target::Noop],
            Targets::Limits => &[Target::Noop, Target::Sigv4Parse, Target::Interlog],
            Targets::ParseOnly => &[Target::Parse, Target::Interlog],
        }
    }
}

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Start interlog with `INTERLOG_AUTH=off` (compare with `--target parse-only`).
    #[arg(long)]
    auth_off: bool,
    #[arg(long, default_value_t = 10)]
    events_per_request: usize,
    /// Open loop at this many events/s (closed loop, i.e. saturation, when absent).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, value_enum, default_value_t = Ids::Unique)]
    ids: Ids,
    /// PutEvents, or PutItems (--events-per-request then counts items).
    #[arg(long, value_enum, default_value_t = Operation::Events)]
    operation: Operation,
    /// Distinct requests in the pool with --ids repeated.
    #[arg(long, default_value_t = 1000)]
    repeat_pool: usize,
    /// Fill a new data dir with exactly this many events (whole requests of 10) through the
    /// server and keep it (for export measurements), instead of a timed run.
    #[arg(long)]
    total_events: Option<u64>,
    #[arg(long, value_enum, default_value_t = Targets::Both)]
    target: Targets,
    /// Record a CPU profile of the interlog server during each window (perf record -g).
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// Distinct users (and sessions) the PutEvents requests cycle through; the suite's 64 unless
    /// given (a production tracker has many more, which is what the history index feels).
    #[arg(long, default_value_t = DEFAULT_USERS)]
    users: u64,
}

/// One load shape.
#[derive(Clone)]
struct Scenario {
    name: String,
    description: String,
    operation: Operation,
    /// Events (or items) per request.
    events_per_request: usize,
    connections: usize,
    ids: Ids,
    repeat_pool: usize,
    /// Open loop, requests/s.
    rate: Option<f64>,
    /// interlog started with `INTERLOG_AUTH=off` (requests are still signed; nothing checks).
    auth_off: bool,
    /// Distinct users of the PutEvents bodies (`BodyFactory::with_users`).
    users: u64,
}

struct Ctx {
    common: Common,
    work: PathBuf,
    ticks: f64,
    device: String,
    run_counter: std::cell::Cell<u32>,
    perf_record: Option<PathBuf>,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Target {
    Noop,
    Parse,
    Sigv4Parse,
    Interlog,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Noop => Work::Noop.name(),
            Target::Parse => Work::Parse.name(),
            Target::Sigv4Parse => Work::Sigv4Parse.name(),
            Target::Interlog => "interlog",
        }
    }
}

impl Ctx {
    fn new(common: Common, perf_record: Option<PathBuf>, tmp: &Path) -> anyhow::Result<Ctx> {
        anyhow::ensure!(
            common.server_bin.is_file(),
            "--server-bin {} is not a file (build it: cargo build --release -p interlog)",
            common.server_bin.display()
        );
        let fs = procfs::filesystem_of(tmp);
        Ok(Ctx {
            common,
            work: tmp.to_owned(),
            ticks: procfs::clock_ticks(),
            device: fs.device,
            run_counter: std::cell::Cell::new(0),
            perf_record,
        })
    }

    fn properties(&self) -> Option<&'static str> {
        match self.common.properties {
            Properties::Documented => Some(crate::body::DOCUMENTED_PROPERTIES),
            Properties::Typed => Some(crate::body::TYPED_PROPERTIES),
            Properties::None => None,
        }
    }

    fn next_tag(&self) -> String {
        let n = self.run_counter.get() + 1;
        self.run_counter.set(n);
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("{:08x}", (t as u32).wrapping_mul(2_654_435_761).wrapping_add(n))
    }

    fn start(&self, target: Target, label: &str) -> anyhow::Result<(Server, PathBuf)> {
        self.start_with(target, label, false)
    }

    fn start_with(&self, target: Target, label: &str, auth_off: bool) -> anyhow::Result<(Server, PathBuf)> {
        let data = self.work.join(format!("data-{label}"));
        let log = self.work.join(format!("{label}.log"));
        let server = match target {
            Target::Noop => Server::baseline(&log, Work::Noop)?,
            Target::Parse => Server::baseline(&log, Work::Parse)?,
            Target::Sigv4Parse => Server::baseline(&log, Work::Sigv4Parse)?,
            Target::Interlog => Server::interlog_with(
                &self.common.server_bin,
                &data,
                &log,
                self.common.database_url.as_deref(),
                if auth_off { &[("INTERLOG_AUTH", "off")] } else { &[] },
            )?,
        };
        Ok((server, data))
    }

    /// One measured run of one target.
    fn run_one(&self, target: Target, sc: &Scenario, index: usize) -> anyhow::Result<Figures> {
        let label = format!("{}-{}-{index}", sc.name, target.name());
        let (server, data) = self.start_with(target, &label, sc.auth_off)?;
        let result = self.measure(&server, sc, &label);
        let stopped = server.stop();
        let _ = std::fs::remove_dir_all(&data);
        let figures = result.with_context(|| format!("run {label}"))?;
        stopped?;
        Ok(figures)
    }

    fn requests(&self, server: &Server, sc: &Scenario) -> anyhow::Result<Requests> {
        let creds = bench_credentials();
        let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let factory = match sc.operation {
            Operation::Events => {
                // The typed runs record into a tracker of their own, made on interlog only (the
                // no-op baseline answers any body).
                let tracking_id = match (self.common.properties, store_stats(server)) {
                    (Properties::Typed, Some(_)) => server::create_typed_tracker(server.addr)?,
                    _ => TRACKING_ID.to_owned(),
                };
                BodyFactory::new(&tracking_id, sc.events_per_request, &self.next_tag(), sent_at, self.properties())
                    .with_users(sc.users)
            }
            // The no-op baseline answers any body: the dataset is only made on interlog.
            Operation::Items => {
                let arn = match store_stats(server) {
                    Some(_) => server::create_items_dataset(server.addr)?,
                    None => "arn:aws:personalize:us-east-1:000000000000:dataset/default/ITEMS".to_owned(),
                };
                BodyFactory::items(&arn, sc.events_per_request, &self.next_tag())
            }
        };
        match sc.ids {
            Ids::Unique => Requests::online(&server.host(), &creds, factory),
            Ids::Repeated => Requests::pool(&server.host(), &creds, &factory, sc.repeat_pool),
        }
    }

    fn measure(&self, server: &Server, sc: &Scenario, label: &str) -> anyhow::Result<Figures> {
        let requests = self.requests(server, sc)?;
        let body_probe = match &requests.source {
            load::Source::Online { factory, .. } => factory.body(0).len(),
            load::Source::Pool(p) => p[0].0.len(),
        };
        let requests = Arc::new(requests);
        load::preflight(server.addr, Arc::clone(&requests), 1 << 40)?;
        let spec = LoadSpec {
            addr: server.addr,
            connections: sc.connections,
            threads: self.common.threads,
            rate: sc.rate,
            warmup: Duration::from_secs_f64(self.common.warmup),
            duration: Duration::from_secs_f64(self.common.duration),
            total_requests: None,
        };
        let handle = load::start(&spec, requests)?;
        sleep_until(handle.t0());
        let me = std::process::id();
        let cpu0 = procfs::cpu_seconds(server.pid, self.ticks);
        let gen0 = procfs::cpu_seconds(me, self.ticks);
        let flush0 = procfs::disk_flushes(&self.device);
        let stats0 = store_stats(server);
        let busy0 = procfs::machine_busy_seconds(self.ticks);
        let syncs = SyncCounter::start(server.pid, self.common.duration);
        let profile = self.perf_record.as_ref().map(|p| start_profile(server.pid, p, label, self.common.duration));
        sleep_until(handle.t1());
        let cpu1 = procfs::cpu_seconds(server.pid, self.ticks);
        let gen1 = procfs::cpu_seconds(me, self.ticks);
        let flush1 = procfs::disk_flushes(&self.device);
        let stats1 = store_stats(server);
        let busy1 = procfs::machine_busy_seconds(self.ticks);
        let rss = procfs::status_mib(server.pid, "VmHWM").unwrap_or(f64::NAN);
        let load_1m = procfs::load_average()[0];
        let result = handle.join()?;
        let syncs = syncs.and_then(SyncCounter::finish);
        if let Some(Ok(mut p)) = profile {
            let _ = p.wait();
        }
        let _ = body_probe;
        let window = result.window.as_secs_f64();
        let ok = result.ok_requests as f64;
        let events = result.ok_events as f64;
        let server_cpu = diff(cpu0, cpu1);
        let gen_cpu = diff(gen0, gen1);
        let per = |x: f64, n: f64| if n > 0.0 { x / n } else { f64::NAN };
        let errors: u64 = result.errors.values().sum();
        let fsyncs_per_s = syncs.map(|n| n as f64 / self.common.duration);
        Ok(Figures {
            window_s: window,
            ok_requests: ok,
            requests_per_s: ok / window,
            events_per_s: events / window,
            errors: errors as f64,
            error_kinds: result.errors,
            latency_us: Percentiles::of(&result.latency),
            service_time_us: Percentiles::of(&result.service),
            server_cpu_s: server_cpu,
            server_cores_used: server_cpu / window,
            server_cpu_us_per_request: per(server_cpu * 1e6, ok),
            server_cpu_s_per_million_events: per(server_cpu * 1e6, events),
            server_peak_rss_mib: rss,
            generator_cpu_us_per_request: per(gen_cpu * 1e6, ok),
            generator_cores_used: gen_cpu / window,
            server_fsyncs_per_s: fsyncs_per_s,
            disk_flushes_per_s: match (flush0, flush1) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / window),
                _ => None,
            },
            events_per_fsync: fsyncs_per_s.filter(|f| *f > 0.0).map(|f| events / window / f),
            store_commits_per_s: store_delta(stats0, stats1, |s| s.commits).map(|n| n / window),
            store_events_per_commit: match (
                store_delta(stats0, stats1, |s| s.events_stored + s.duplicates_dropped),
                store_delta(stats0, stats1, |s| s.commits),
            ) {
                (Some(e), Some(c)) if c > 0.0 => Some(e / c),
                _ => None,
            },
            store_events_stored_per_s: store_delta(stats0, stats1, |s| s.events_stored).map(|n| n / window),
            store_duplicates_dropped_per_s: store_delta(stats0, stats1, |s| s.duplicates_dropped).map(|n| n / window),
            store_throttled: store_delta(stats0, stats1, |s| s.throttled),
            others_cores_used: (diff(busy0, busy1) - server_cpu - gen_cpu).max(0.0) / window,
            load_average_1m: load_1m,
        })
    }

    /// `runs` alternated runs of the targets (a baseline and interlog, or one target), with
    /// medians.
    fn scenario(&self, sc: &Scenario, targets: Targets) -> anyhow::Result<ScenarioReport> {
        let mut runs = Vec::new();
        for index in 0..self.common.runs {
            for &target in targets.order() {
                let figures = self.run_one(target, sc, index)?;
                eprintln!(
                    "  {:<11} {:<11} run {index}: {:>9.0} req/s {:>9.0} events/s, p99 {:>7.2} ms, server {:>5.1} µs/req, {:.2} cores, gen {:.2}, others {:.2} cores, fsync/s {}, ev/commit {}, load {:.2}",
                    sc.name,
                    target.name(),
                    figures.requests_per_s,
                    figures.events_per_s,
                    figures.latency_us.p99 / 1000.0,
                    figures.server_cpu_us_per_request,
                    figures.server_cores_used,
                    figures.generator_cores_used,
                    figures.others_cores_used,
                    figures.server_fsyncs_per_s.map_or("-".into(), |v| format!("{v:.0}")),
                    figures.store_events_per_commit.map_or("-".into(), |v| format!("{v:.0}")),
                    figures.load_average_1m,
                );
                runs.push(RunReport { target: target.name().into(), index, figures });
            }
        }
        let pick = |t: &str| -> Vec<&Figures> { runs.iter().filter(|r| r.target == t).map(|r| &r.figures).collect() };
        let medians = |t: &str| (!pick(t).is_empty()).then(|| median_figures(&pick(t)));
        let noop = medians("noop").unwrap_or_default();
        let interlog = medians("interlog").unwrap_or_default();
        let sigv4_parse = medians(Work::Sigv4Parse.name());
        let parse = medians(Work::Parse.name());
        let ratio = |a: f64, b: f64| if b > 0.0 && a.is_finite() { a / b } else { 0.0 };
        let ratio_to = |b: &Option<Figures>| b.as_ref().map(|b| ratio(interlog.requests_per_s, b.requests_per_s));
        let factory = match sc.operation {
            Operation::Events => {
                BodyFactory::new(TRACKING_ID, sc.events_per_request, "00000000", 1_700_000_000, self.properties())
            }
            Operation::Items => BodyFactory::items(
                "arn:aws:personalize:us-east-1:000000000000:dataset/default/ITEMS",
                sc.events_per_request,
                "00000000",
            ),
        };
        Ok(ScenarioReport {
            name: sc.name.clone(),
            description: sc.description.clone(),
            events_per_request: sc.events_per_request,
            connections: sc.connections,
            ids: match sc.ids {
                Ids::Unique => "unique".into(),
                Ids::Repeated => format!("repeated (pool of {} requests)", sc.repeat_pool),
            },
            rate_requests_per_s: sc.rate,
            auth: if sc.auth_off { "off" } else { "sigv4" }.into(),
            properties: self.common.properties.name().into(),
            body_bytes: factory.body(0).len(),
            ratio_requests_per_s: ratio(interlog.requests_per_s, noop.requests_per_s),
            ratio_server_cpu_per_request: ratio(interlog.server_cpu_us_per_request, noop.server_cpu_us_per_request),
            ratio_sigv4_parse_requests_per_s: ratio_to(&sigv4_parse),
            ratio_parse_requests_per_s: ratio_to(&parse),
            runs,
            noop,
            sigv4_parse,
            parse,
            interlog,
        })
    }

    /// Fills a fresh store with `events` events through the server (closed loop, unique ids).
    fn fill(&self, server: &Server, events: u64) -> anyhow::Result<f64> {
        let sc = Scenario {
            name: "fill".into(),
            description: String::new(),
            operation: Operation::Events,
            events_per_request: 10,
            connections: self.common.connections,
            ids: Ids::Unique,
            repeat_pool: 0,
            rate: None,
            auth_off: false,
            users: DEFAULT_USERS,
        };
        let requests = self.requests(server, &sc)?;
        let spec = LoadSpec {
            addr: server.addr,
            connections: sc.connections,
            threads: self.common.threads,
            rate: None,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            total_requests: Some(events.div_ceil(10)),
        };
        let result = load::start(&spec, Arc::new(requests))?.join()?;
        anyhow::ensure!(result.errors.is_empty(), "errors while filling the store: {:?}", result.errors);
        Ok(result.ok_events as f64 / result.window.as_secs_f64())
    }
}

fn store_delta(a: Option<StoreStats>, b: Option<StoreStats>, f: impl Fn(&StoreStats) -> u64) -> Option<f64> {
    Some(f(&b?).saturating_sub(f(&a?)) as f64)
}

fn diff(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The store's write-path counters from `GET /_interlog/stats` (`None` for a server without it,
/// such as the no-op baseline).
#[derive(Clone, Copy)]
struct StoreStats {
    commits: u64,
    events_stored: u64,
    duplicates_dropped: u64,
    throttled: u64,
}

fn store_stats(server: &Server) -> Option<StoreStats> {
    let (status, body) = server::http_get_signed(server.addr, "/_interlog/stats", &server::bench_credentials()).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(StoreStats {
        commits: v.get("commits")?.as_u64()?,
        events_stored: v.get("eventsStored")?.as_u64()?,
        duplicates_dropped: v.get("duplicatesDropped")?.as_u64()?,
        throttled: v.get("throttled")?.as_u64()?,
    })
}

fn start_profile(pid: u32, dir: &Path, label: &str, seconds: f64) -> std::io::Result<std::process::Child> {
    std::fs::create_dir_all(dir)?;
    Command::new("perf")
        .args(["record", "-F", "499", "-g", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(dir.join(format!("{label}.perf.data")))
        .args(["--", "sleep"])
        .arg(format!("{seconds:.3}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `load`: one scenario.
pub fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    let tmp = server::work_dir(args.common.work_dir.as_ref())?;
    let ctx = Ctx::new(args.common.clone(), args.perf_record.clone(), tmp.path())?;
    let sc = Scenario {
        name: "load".into(),
        description: "custom".into(),
        operation: args.operation,
        events_per_request: args.events_per_request,
        connections: args.common.connections,
        ids: args.ids,
        repeat_pool: args.repeat_pool,
        rate: args.rate.map(|r| r / args.events_per_request as f64),
        auth_off: args.auth_off,
        users: args.users,
    };
    if let Some(total) = args.total_events {
        let (server, data) = ctx.start(Target::Interlog, "fill")?;
        let rate = ctx.fill(&server, total)?;
        server.stop()?;
        // The data dir is what a fill is for: keep it.
        let _ = tmp.keep();
        println!("stored {total} events at {} events/s into {}", report::fmt_num(rate), data.display());
        return Ok(());
    }
    let report = ctx.scenario(&sc, args.target)?;
    print!("{}", report::scenario_table(&report, args.common.runs));
    write_json(args.common.json.as_ref(), &report)
}

/// `suite`: everything, with goals.
pub fn run_suite(mut args: SuiteArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.smoke {
        args.common.runs = 1;
        args.common.warmup = 0.2;
        args.common.duration = 0.6;
        args.common.connections = args.common.connections.min(8);
        args.client_calls = 1;
        args.export_events = 20_000;
        args.export_runs = 1;
    }
    let tmp = server::work_dir(args.common.work_dir.as_ref())?;
    let ctx = Ctx::new(args.common.clone(), None, tmp.path())?;
    let load_start = procfs::load_average();
    let c = args.common.connections;
    let scenario = |name: &str, description: &str, events_per_request, ids, rate| Scenario {
        name: name.into(),
        description: description.into(),
        operation: Operation::Events,
        events_per_request,
        connections: c,
        ids,
        repeat_pool: 1000,
        rate,
        auth_off: false,
        users: DEFAULT_USERS,
    };

    let mut scenarios = Vec::new();
    eprintln!("== saturation, 10 events/request");
    let sat10 =
        ctx.scenario(&scenario("sat-10ev", "saturation, 10 events/request", 10, Ids::Unique, None), Targets::Limits)?;
    let half_events = args.half_rate.unwrap_or(sat10.interlog.events_per_s / 2.0);
    scenarios.push(sat10);
    eprintln!("== saturation, 1 event/request");
    scenarios.push(
        ctx.scenario(&scenario("sat-1ev", "saturation, 1 event/request", 1, Ids::Unique, None), Targets::Limits)?,
    );
    eprintln!("== saturation, 10 events/request, authentication off");
    scenarios.push(ctx.scenario(
        &Scenario {
            auth_off: true,
            ..scenario(
                "noauth-10ev",
                "saturation, 10 events/request, interlog with INTERLOG_AUTH=off against the parse-only baseline",
                10,
                Ids::Unique,
                None,
            )
        },
        Targets::ParseOnly,
    )?);
    eprintln!("== saturation, repeated eventIds");
    scenarios.push(ctx.scenario(
        &scenario("dup-10ev", "saturation, every eventId a repeat (dedup window)", 10, Ids::Repeated, None),
        Targets::Both,
    )?);
    eprintln!("== open loop at {} events/s", report::fmt_num(half_events));
    anyhow::ensure!(half_events > 0.0, "no saturation rate measured to halve");
    scenarios.push(ctx.scenario(
        &scenario(
            "half-10ev",
            "open loop at half the saturation rate, 10 events/request",
            10,
            Ids::Unique,
            Some(half_events / 10.0),
        ),
        Targets::Both,
    )?);

    eprintln!("== saturation, PutItems, 10 items of ~1 KB properties/request");
    scenarios.push(ctx.scenario(
        &Scenario {
            operation: Operation::Items,
            ..scenario(
                "items-10",
                "saturation, PutItems, 10 items of ~1 KB properties/request (items/s)",
                10,
                Ids::Unique,
                None,
            )
        },
        Targets::Both,
    )?);

    eprintln!("== clients");
    let aws = args.aws_cli.clone().or_else(default_aws_cli);
    let clients = clients(&ctx, aws.as_deref(), args.client_calls)?;
    eprintln!("== export");
    let (export, export_parquet) = export(&ctx, args.export_events, args.export_runs)?;

    let named = |name: &str| scenarios.iter().find(|s| s.name == name).expect("the suite runs it");
    let (sat10, sat1, noauth, half) = (named("sat-10ev"), named("sat-1ev"), named("noauth-10ev"), named("half-10ev"));
    let rss = scenarios.iter().map(|s| s.interlog.server_peak_rss_mib).fold(f64::NAN, f64::max);
    let finite = |x: f64| x.is_finite().then_some(x);
    let goals = vec![
        // Issue 17 raised issue 1's 150,000 events/s and 10 ms p99.
        Goal::at_least("events/s, 10 ev/req, durable", "events/s", 300_000.0, finite(sat10.interlog.events_per_s)),
        Goal::at_least("share of the no-op's requests/s", "ratio", 0.20, finite(sat10.ratio_requests_per_s)),
        Goal::at_most("p99 latency at half the max rate", "ms", 5.0, finite(half.interlog.latency_us.p99 / 1000.0)),
        Goal::at_most("server peak RSS under full load", "MiB", 100.0, finite(rss)),
        Goal::at_least("put-events speedup over aws-cli", "x", 20.0, clients.speedup),
        Goal::at_least("export to CSV", "events/s", 1_000_000.0, finite(export.events_per_s)),
        Goal::at_least("export to Parquet", "events/s", 1_000_000.0, finite(export_parquet.events_per_s)),
        Goal::at_least(
            "share of the SigV4-and-parse baseline's requests/s, 10 ev/req",
            "ratio",
            0.70,
            sat10.ratio_sigv4_parse_requests_per_s.and_then(finite),
        ),
        Goal::at_least(
            "share of the SigV4-and-parse baseline's requests/s, 1 ev/req",
            "ratio",
            0.70,
            sat1.ratio_sigv4_parse_requests_per_s.and_then(finite),
        ),
        Goal::at_least(
            "auth off: share of the parse-only baseline's requests/s",
            "ratio",
            0.55,
            noauth.ratio_parse_requests_per_s.and_then(finite),
        ),
        Goal::at_most("server CPU per 10-event request", "µs", 55.0, finite(sat10.interlog.server_cpu_us_per_request)),
    ];
    let report = Report {
        schema: report::SCHEMA.into(),
        command: command_line(),
        smoke: args.smoke,
        started_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
            - started.elapsed().as_secs(),
        total_seconds: started.elapsed().as_secs_f64(),
        git_revision: args
            .common
            .revision
            .clone()
            .unwrap_or_else(|| procfs::git_revision(Path::new(env!("CARGO_MANIFEST_DIR")))),
        server_version: version(&args.common.server_bin),
        server_bin: args.common.server_bin.display().to_string(),
        machine: procfs::machine(tmp.path()),
        load_average_start: load_start,
        load_average_end: procfs::load_average(),
        settings: Settings {
            runs: args.common.runs,
            warmup_s: args.common.warmup,
            duration_s: args.common.duration,
            connections: args.common.connections,
            generator_threads: args.common.threads,
        },
        scenarios,
        clients,
        export,
        export_parquet: Some(export_parquet),
        goals,
    };
    print!("{}", report::full_table(&report));
    write_json(args.common.json.as_ref(), &report)
}

fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn default_aws_cli() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(".venv-awscli/bin/aws"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-awscli/bin/aws"),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// The event list of client call `k`: 10 events with eventIds of their own.
fn client_events(k: usize) -> String {
    let items: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"eventId":"client-{k:04}-{i:02}","eventType":"click","sentAt":1700000000,"itemId":"item-{i:03}","impression":["item-{i:03}","item-999"]}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Wall time of one client call, in ms; fails unless it exits 0.
fn time_call(program: &Path, first: &[&str], endpoint: &str, k: usize, env_dir: &Path) -> anyhow::Result<f64> {
    let creds = bench_credentials();
    let mut cmd = Command::new(program);
    cmd.args(first)
        .args(["--endpoint-url", endpoint, "--tracking-id", TRACKING_ID, "--session-id", "client-session"])
        .args(["--user-id", "client-user", "--event-list"])
        .arg(client_events(k))
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", env_dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", env_dir.join("no-credentials"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("running {}", program.display()))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        out.status.success(),
        "{} {} failed: {}",
        program.display(),
        first.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(ms)
}

fn clients(ctx: &Ctx, aws: Option<&Path>, calls: usize) -> anyhow::Result<ClientReport> {
    let (server, data) = ctx.start(Target::Interlog, "clients")?;
    let endpoint = format!("http://{}", server.addr);
    let bin = ctx.common.server_bin.clone();
    let interlog_args: &[&str] = &["put-events"];
    let aws_args: &[&str] = &["personalize-events", "put-events"];
    let result = (|| -> anyhow::Result<ClientReport> {
        // One untimed call each (page cache, .pyc files), then alternated timed calls.
        time_call(&bin, interlog_args, &endpoint, 0, &ctx.work)?;
        if let Some(aws) = aws {
            time_call(aws, aws_args, &endpoint, 1, &ctx.work)?;
        }
        let mut interlog_ms = Vec::new();
        let mut aws_ms = Vec::new();
        for k in 0..calls {
            interlog_ms.push(time_call(&bin, interlog_args, &endpoint, 2 + 2 * k, &ctx.work)?);
            if let Some(aws) = aws {
                aws_ms.push(time_call(aws, aws_args, &endpoint, 3 + 2 * k, &ctx.work)?);
            }
        }
        let interlog_median = median(&mut interlog_ms.clone());
        let aws_median = aws.map(|_| median(&mut aws_ms.clone()));
        let aws_cli = aws.map(|a| {
            let v = Command::new(a)
                .arg("--version")
                .output()
                .map(|o| {
                    let s = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                    String::from_utf8_lossy(&s).trim().to_owned()
                })
                .unwrap_or_default();
            format!("{} ({v})", a.display())
        });
        Ok(ClientReport {
            calls_per_client: calls,
            events_per_call: 10,
            interlog_command: format!("{} put-events", bin.display()),
            aws_cli,
            interlog_ms,
            aws_ms: aws.map(|_| aws_ms),
            interlog_median_ms: interlog_median,
            aws_median_ms: aws_median,
            speedup: aws_median.map(|a| a / interlog_median),
        })
    })();
    server.stop()?;
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// One store of `events` filled through the server, exported to CSV and then to Parquet, each
/// timed `runs` times.
fn export(ctx: &Ctx, events: u64, runs: usize) -> anyhow::Result<(ExportReport, ExportReport)> {
    let (server, data) = ctx.start(Target::Interlog, "export")?;
    let fill_rate = ctx.fill(&server, events);
    server.stop()?;
    let fill_rate = fill_rate?;
    let result = (|| {
        let csv = export_to(ctx, &data, "csv", runs, fill_rate, None)?;
        let parquet = export_to(ctx, &data, "parquet", runs, fill_rate, Some(csv.events))?;
        Ok((csv, parquet))
    })();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// `interlog export --format FORMAT` of the data dir, timed `runs` times. `rows`: the events the
/// file holds when they cannot be counted in it (Parquet is not line-based).
fn export_to(
    ctx: &Ctx,
    data: &Path,
    format: &str,
    runs: usize,
    fill_rate: f64,
    rows: Option<u64>,
) -> anyhow::Result<ExportReport> {
    let store_bytes = dir_size(data);
    let out = ctx.work.join(format!("export.{format}"));
    let mut seconds = Vec::new();
    let mut peak = 0.0f64;
    for _ in 0..runs {
        let _ = std::fs::remove_file(&out);
        let t = Instant::now();
        let mut child = Command::new(&ctx.common.server_bin)
            .args(["export", "--format", format, "--data-dir"])
            .arg(data)
            .arg("--output")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(hwm) = procfs::status_mib(pid, "VmHWM") {
                peak = peak.max(hwm);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        seconds.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(status.success(), "interlog export --format {format} failed");
    }
    let output_bytes = std::fs::metadata(&out)?.len();
    let rows = match rows {
        Some(rows) => rows,
        None => {
            let text = std::fs::read(&out)?;
            text.iter().filter(|&&b| b == b'\n').count().saturating_sub(1) as u64
        }
    };
    let median_seconds = median(&mut seconds.clone());
    let _ = std::fs::remove_file(&out);
    Ok(ExportReport {
        format: format.into(),
        events: rows,
        fill_events_per_s: fill_rate,
        store_bytes,
        output_bytes,
        seconds,
        median_seconds,
        events_per_s: rows as f64 / median_seconds,
        peak_rss_mib: peak,
    })
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    common: Common,
    /// Events in the store the history queries run on.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Timed queries per measurement.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Longest wait for the indexer to catch up after the fill, in seconds.
    #[arg(long, default_value_t = 180.0)]
    catch_up_limit: f64,
}

/// Where a history server keeps its data: a data dir, or a fresh schema of a PostgreSQL database.
struct HistoryServer<'a> {
    bin: &'a Path,
    work: &'a Path,
    database_url: Option<&'a str>,
}

impl HistoryServer<'_> {
    fn start(&self, label: &str, env: &[(&str, &str)]) -> anyhow::Result<(Server, Option<String>)> {
        let data = self.work.join(format!("data-{label}"));
        let log = self.work.join(format!("{label}.log"));
        let Some(url) = self.database_url else {
            return Ok((Server::interlog_with(self.bin, &data, &log, None, env)?, None));
        };
        // Named as `interlog-bench postgres` names its schemas, so its sweep removes leftovers.
        let schema = format!("interlog_bench_{}_{}", std::process::id(), label.replace('-', "_"));
        crate::postgres::admin(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))?;
        let server =
            Server::interlog_with(self.bin, &data, &log, Some(&crate::postgres::schema_url(url, &schema)), env)?;
        Ok((server, Some(schema)))
    }

    fn stop(&self, server: Server, label: &str, schema: Option<String>) -> anyhow::Result<()> {
        server.stop()?;
        let _ = std::fs::remove_dir_all(self.work.join(format!("data-{label}")));
        if let (Some(url), Some(schema)) = (self.database_url, schema) {
            crate::postgres::admin(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        }
        Ok(())
    }
}

/// Query latencies of one moment, in microseconds (signed GET on a new connection each).
#[derive(serde::Serialize, Default)]
struct QueryFigures {
    /// Seconds after the fill ended.
    after_fill_s: f64,
    /// A user with many events (the newest 100 of ~1/64 of the store).
    busy_user_us: Percentiles,
    /// A user with none: the index answers at once, a scan reads the whole unindexed tail.
    absent_user_us: Percentiles,
}

#[derive(serde::Serialize)]
struct HistoryReport {
    command: String,
    revision: String,
    /// `sqlite`, or `postgres` with `--database-url`.
    engine: &'static str,
    events: u64,
    fill_events_per_s: f64,
    /// PutEvents saturation (10 events/request), alternated runs with the indexer on and off.
    put_events_index_on: Vec<Figures>,
    put_events_index_off: Vec<Figures>,
    median_events_per_s_index_on: f64,
    median_events_per_s_index_off: f64,
    /// on / off: the goal is at least 0.95.
    ratio_on_off: f64,
    /// Right after the fill (the indexer behind, queries scan the tail), then every few
    /// seconds until the latencies stop falling.
    queries: Vec<QueryFigures>,
}

/// `history`: what the history index costs PutEvents (indexer on vs off) and what a history
/// query costs on a store of `--events` events.
pub fn run_history(args: HistoryArgs) -> anyhow::Result<()> {
    let tmp = server::work_dir(args.common.work_dir.as_ref())?;
    let ctx = Ctx::new(args.common.clone(), None, tmp.path())?;
    let sc = Scenario {
        name: "sat-10ev".into(),
        description: "saturation, 10 events/request".into(),
        operation: Operation::Events,
        events_per_request: 10,
        connections: ctx.common.connections,
        ids: Ids::Unique,
        repeat_pool: 0,
        rate: None,
        auth_off: false,
        users: DEFAULT_USERS,
    };
    let servers = HistoryServer {
        bin: &ctx.common.server_bin,
        work: &ctx.work,
        database_url: ctx.common.database_url.as_deref(),
    };
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for index in 0..ctx.common.runs {
        for indexed in [true, false] {
            let label = format!("history-{}-{index}", if indexed { "on" } else { "off" });
            let env: &[(&str, &str)] = if indexed { &[] } else { &[("INTERLOG_NO_HISTORY_INDEX", "true")] };
            let (server, schema) = servers.start(&label, env)?;
            let figures = ctx.measure(&server, &sc, &label);
            servers.stop(server, &label, schema)?;
            let figures = figures?;
            eprintln!(
                "  {label}: {:>9.0} events/s, p99 {:.2} ms, server {:.1} us CPU/request",
                figures.events_per_s,
                figures.latency_us.p99 / 1e3,
                figures.server_cpu_us_per_request
            );
            if indexed {
                on.push(figures)
            } else {
                off.push(figures)
            }
        }
    }
    let median_of = |f: &[Figures]| median(&mut f.iter().map(|x| x.events_per_s).collect::<Vec<_>>());
    let (on_rate, off_rate) = (median_of(&on), median_of(&off));

    let (server, schema) = servers.start("history-fill", &[])?;
    let fill_rate = ctx.fill(&server, args.events)?;
    let filled = Instant::now();
    let creds = bench_credentials();
    let measure = |user: &str| -> anyhow::Result<Percentiles> {
        let path = format!("/_interlog/v1/events?trackingId={TRACKING_ID}&userId={user}&limit=100");
        let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
        for _ in 0..args.queries {
            let t = Instant::now();
            let (status, body) = server::http_get_signed(server.addr, &path, &creds)?;
            anyhow::ensure!(status == 200, "history query answered {status}: {}", String::from_utf8_lossy(&body));
            h.record(t.elapsed().as_micros() as u64)?;
        }
        Ok(Percentiles::of(&h))
    };
    let mut queries: Vec<QueryFigures> = Vec::new();
    loop {
        let after_fill_s = filled.elapsed().as_secs_f64();
        let q =
            QueryFigures { after_fill_s, busy_user_us: measure("user-000001")?, absent_user_us: measure("nobody")? };
        eprintln!(
            "  history after {after_fill_s:>5.1} s: busy user p50 {:.2} ms p99 {:.2} ms, absent user p50 {:.2} ms p99 {:.2} ms",
            q.busy_user_us.p50 / 1e3,
            q.busy_user_us.p99 / 1e3,
            q.absent_user_us.p50 / 1e3,
            q.absent_user_us.p99 / 1e3
        );
        let settled = queries.last().is_some_and(|last| q.absent_user_us.p50 >= last.absent_user_us.p50 * 0.8);
        queries.push(q);
        if settled || after_fill_s > args.catch_up_limit {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    servers.stop(server, "history-fill", schema)?;
    let report = HistoryReport {
        command: command_line(),
        revision: args
            .common
            .revision
            .clone()
            .unwrap_or_else(|| procfs::git_revision(Path::new(env!("CARGO_MANIFEST_DIR")))),
        engine: if ctx.common.database_url.is_some() { "postgres" } else { "sqlite" },
        events: args.events,
        fill_events_per_s: fill_rate,
        put_events_index_on: on,
        put_events_index_off: off,
        median_events_per_s_index_on: on_rate,
        median_events_per_s_index_off: off_rate,
        ratio_on_off: if off_rate > 0.0 { on_rate / off_rate } else { 0.0 },
        queries,
    };
    println!(
        "PutEvents sat-10ev: index on {:.0} events/s, off {:.0} events/s: on/off {:.3} (goal >= 0.95)",
        report.median_events_per_s_index_on, report.median_events_per_s_index_off, report.ratio_on_off
    );
    for q in &report.queries {
        println!(
            "history on {} events, {:>5.1} s after the fill: busy user p50 {:.2} ms p99 {:.2} ms; absent user p50 {:.2} ms p99 {:.2} ms",
            report.events,
            q.after_fill_s,
            q.busy_user_us.p50 / 1e3,
            q.busy_user_us.p99 / 1e3,
            q.absent_user_us.p50 / 1e3,
            q.absent_user_us.p99 / 1e3
        );
    }
    write_json(ctx.common.json.as_ref(), &report)
}

//! The PostgreSQL scenarios (`interlog-bench postgres`): durable events/s through one and two
//! `interlog serve --database-url` nodes on one database, each beside its baseline measured in
//! the same run: the same rows (the same bodies, parsed by the same parser) appended straight
//! through the PostgreSQL store in this process with the same concurrency, so its group-commit
//! writer forms commits of the same size (both are reported); then an open loop at half the
//! one-node rate for the latency goal. Every run gets a fresh schema, dropped afterwards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use interlog_model::arn::Scope;
use interlog_store::{bootstrap, Bootstrap, EventStore, Store, WriterOptions};
use interlog_store_postgres::PostgresStore;
use serde::Serialize;

use crate::body::BodyFactory;
use crate::load::{self, LoadSpec, Requests};
use crate::procfs;
use crate::report::{fmt_num, median, Goal, Percentiles};
use crate::server::{bench_credentials, Server, TRACKING_ID};

#[derive(Args)]
pub struct PostgresArgs {
    /// The interlog binary to measure (a release build for real figures).
    #[arg(long)]
    server_bin: PathBuf,
    /// The database (each run makes and drops a schema of its own in it); default
    /// INTERLOG_BENCH_DATABASE_URL, else INTERLOG_TEST_DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Runs of each scenario (alternated: store, 1 node, store x2, 2 nodes, ...); medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent 10-event requests in flight (HTTP connections; store-alone: tasks).
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Generator threads (split between the nodes with two nodes).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Offered load of the open-loop scenario in events/s (default: half the one-node median).
    #[arg(long)]
    half_rate: Option<f64>,
    /// 1 run of 0.6 s per scenario and 8 connections: proves the scenarios run (CI).
    #[arg(long)]
    smoke: bool,
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Record a system-wide CPU profile (`perf record -a -g`, so PostgreSQL's backends show
    /// beside the node and the generator) during each `pg-1node` window, into this directory.
    #[arg(long)]
    perf_record: Option<PathBuf>,
    /// Write every figure to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Without the history index's background indexer, in the nodes
    /// (`INTERLOG_NO_HISTORY_INDEX=true`) and in the store-alone runs alike: what the indexer
    /// costs PostgreSQL and the write path.
    #[arg(long)]
    no_history_index: bool,
}

/// One measured run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PgFigures {
    pub window_s: f64,
    pub requests_per_s: f64,
    pub events_per_s: f64,
    pub errors: u64,
    pub error_kinds: std::collections::BTreeMap<String, u64>,
    /// Microseconds; from the due time in open loop.
    pub latency_us: Percentiles,
    /// Events per commit in the window (server: its stats; store: its commit counter).
    pub events_per_commit: Option<f64>,
    /// CPU of the interlog node processes (servers) or of this process (store alone), in cores.
    pub interlog_cores: f64,
    /// CPU of every `postgres` process of the machine over the window, in cores.
    pub postgres_cores: f64,
    /// Busy cores of the whole machine over the window.
    pub machine_cores: f64,
    pub load_average_1m: f64,
    /// Bytes of WAL the whole database server wrote in the window per event stored (every
    /// session's: on a machine where others write, more than the run's own).
    pub wal_bytes_per_event: Option<f64>,
    /// Checkpoints (timed + requested) the server began in the window: each one makes the next
    /// change of every page write a full page image, and flushes the dirty buffers.
    pub checkpoints: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgScenario {
    pub name: String,
    pub description: String,
    pub nodes: usize,
    pub connections: usize,
    pub rate_events_per_s: Option<f64>,
    pub runs: Vec<PgFigures>,
    pub median_events_per_s: f64,
    pub median_p50_ms: f64,
    pub median_p99_ms: f64,
    pub median_events_per_commit: f64,
    pub median_interlog_cores: f64,
    pub median_postgres_cores: f64,
}

#[derive(Serialize)]
struct PgReport {
    command: String,
    smoke: bool,
    server_bin: String,
    git_revision: String,
    machine: procfs::Machine,
    postgres_version: String,
    settings: serde_json::Value,
    scenarios: Vec<PgScenario>,
    /// One node's events/s over the store alone's (1 store), and two nodes' over two stores'.
    ratio_one_node: f64,
    ratio_two_nodes: f64,
    goals: Vec<Goal>,
}

struct Ctx<'a> {
    args: &'a PostgresArgs,
    url: String,
    work: PathBuf,
    ticks: f64,
    counter: AtomicU64,
}

/// What a run loads: the same bodies for the server and for the store alone.
fn factory(tag: u64) -> BodyFactory {
    let sent_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Without properties: the store-alone baseline appends the same rows, and flags are not what this
    // scenario measures.
    BodyFactory::new(TRACKING_ID, 10, &format!("{:08x}", (tag as u32).wrapping_mul(2_654_435_761)), sent_at, None)
}

impl Ctx<'_> {
    fn schema_name(&self) -> String {
        format!("interlog_bench_{}_{}", std::process::id(), self.counter.fetch_add(1, Ordering::SeqCst))
    }

    fn schema_url(&self, schema: &str) -> String {
        schema_url(&self.url, schema)
    }

    /// The server's WAL position in bytes and its checkpoint count, now (from a thread of its
    /// own, so that it may be called inside the store-alone runs' runtime too).
    fn wal_and_checkpoints(&self) -> Option<(u64, u64)> {
        let sql = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text || ' ' || \
                   (checkpoints_timed + checkpoints_req)::text FROM pg_stat_bgwriter";
        let row = std::thread::scope(|s| s.spawn(|| self.admin(sql)).join().ok()?.ok())?;
        let (wal, checkpoints) = row.first()?.split_once(' ')?;
        Some((wal.parse().ok()?, checkpoints.parse().ok()?))
    }

    fn admin(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        admin(&self.url, sql)
    }

    /// Drops schemas of earlier benchmark runs whose process is gone.
    fn sweep(&self) -> anyhow::Result<()> {
        for name in self.admin("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'interlog\\_bench\\_%'")? {
            let pid = name.trim_start_matches("interlog_bench_").split('_').next().unwrap_or_default();
            if !Path::new(&format!("/proc/{pid}")).exists() {
                self.admin(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))?;
            }
        }
        Ok(())
    }

    fn window(&self) -> (Duration, Duration) {
        (Duration::from_secs_f64(self.args.warmup), Duration::from_secs_f64(self.args.duration))
    }

    /// `nodes` stores in this process on a fresh schema, `connections` tasks appending
    /// 10-event requests round-robin over them, closed loop.
    fn store_alone(&self, nodes: usize, tag: u64) -> anyhow::Result<PgFigures> {
        let schema = self.schema_name();
        self.admin(&format!("CREATE SCHEMA {schema}"))?;
        let result = self.store_alone_in(&schema, nodes, tag);
        self.admin(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        result
    }

    fn store_alone_in(&self, schema: &str, nodes: usize, tag: u64) -> anyhow::Result<PgFigures> {
        let url = self.schema_url(schema);
        let (warmup, duration) = self.window();
        let connections = self.args.connections;
        let ticks = self.ticks;
        let no_history_index = self.args.no_history_index;
        // Two workers: the server's runtime has as many on this machine.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(async move {
            let mut stores = Vec::new();
            for _ in 0..nodes {
                stores.push(
                    PostgresStore::open(
                        &url,
                        WriterOptions { history_index: !no_history_index, ..WriterOptions::default() },
                    )
                    .await?,
                );
            }
            let scope = Scope { region: "us-east-1".into(), account: "000000000000".into() };
            let spec = Bootstrap { scope, tracking_id: Some(TRACKING_ID.into()) };
            let dataset = bootstrap(&*stores[0], &spec).await?.dataset.meta.id;
            let factory = Arc::new(factory(tag));
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let (t0, t1) = (start + warmup, start + warmup + duration);
            let mut tasks = Vec::new();
            for task in 0..connections {
                let store = stores[task % nodes].clone();
                let (factory, next) = (factory.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    let mut latency = load::histogram();
                    let mut ok = 0u64;
                    let mut errors = std::collections::BTreeMap::<String, u64>::new();
                    loop {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        // The same bytes the server would get, through the same parser.
                        let events = interlog_model::parse_put_events(&factory.body(r)).expect("a valid body").events;
                        let sent = Instant::now();
                        let outcome = store.append(dataset, events).await;
                        let done = Instant::now();
                        if done > t1 {
                            return (ok, errors, latency);
                        }
                        if done >= t0 {
                            match outcome {
                                Ok(_) => {
                                    ok += 1;
                                    latency.saturating_record((done - sent).as_micros() as u64);
                                }
                                // By kind and message, so a report says what failed.
                                Err(e) => *errors.entry(format!("{e:?}").chars().take(160).collect()).or_insert(0) += 1,
                            }
                        }
                    }
                }));
            }
            tokio::time::sleep_until(t0.into()).await;
            let me = std::process::id();
            let cpu0 = Cpu::now(&[me], ticks);
            let commits0: u64 = stores.iter().map(|s| s.commit_stats().commits).sum();
            // After the window's own counters: the query connects to PostgreSQL, which takes a while on a
            // loaded machine; block_in_place lets this worker's other tasks (the appends) move meanwhile.
            let wal0 = tokio::task::block_in_place(|| self.wal_and_checkpoints());
            tokio::time::sleep_until(t1.into()).await;
            let cpu1 = Cpu::now(&[me], ticks);
            let commits1: u64 = stores.iter().map(|s| s.commit_stats().commits).sum();
            let wal1 = tokio::task::block_in_place(|| self.wal_and_checkpoints());
            let load_1m = procfs::load_average()[0];
            let mut latency = load::histogram();
            let mut ok = 0;
            let mut error_kinds = std::collections::BTreeMap::new();
            for t in tasks {
                let (o, e, h) = t.await?;
                ok += o;
                for (kind, n) in e {
                    *error_kinds.entry(kind).or_insert(0) += n;
                }
                latency.add(&h)?;
            }
            for store in &stores {
                store.close().await;
            }
            let window = duration.as_secs_f64();
            let commits = commits1.saturating_sub(commits0);
            Ok(PgFigures {
                window_s: window,
                requests_per_s: ok as f64 / window,
                events_per_s: ok as f64 * 10.0 / window,
                errors: error_kinds.values().sum(),
                error_kinds,
                latency_us: Percentiles::of(&latency),
                events_per_commit: (commits > 0).then(|| ok as f64 * 10.0 / commits as f64),
                load_average_1m: load_1m,
                ..wal_figures(wal0, wal1, ok as f64 * 10.0, cpu0.figures_to(&cpu1, window))
            })
        })
    }

    /// `nodes` servers on a fresh schema, the load split between them (closed loop, or open
    /// loop at `rate` events/s in all).
    fn through_nodes(&self, nodes: usize, rate: Option<f64>, tag: u64) -> anyhow::Result<PgFigures> {
        let schema = self.schema_name();
        self.admin(&format!("CREATE SCHEMA {schema}"))?;
        let url = self.schema_url(&schema);
        let mut servers = Vec::new();
        let started = (|| -> anyhow::Result<()> {
            for n in 0..nodes {
                let data = self.work.join(format!("data-{schema}-{n}"));
                let log = self.work.join(format!("{schema}-{n}.log"));
                let env: &[(&str, &str)] =
                    if self.args.no_history_index { &[("INTERLOG_NO_HISTORY_INDEX", "true")] } else { &[] };
                servers.push(Server::interlog_with(&self.args.server_bin, &data, &log, Some(&url), env)?);
            }
            Ok(())
        })();
        let result = started.and_then(|()| self.measure_nodes(&servers, rate, tag));
        for s in servers {
            s.stop()?;
        }
        self.admin(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        result
    }

    fn measure_nodes(&self, servers: &[Server], rate: Option<f64>, tag: u64) -> anyhow::Result<PgFigures> {
        let (warmup, duration) = self.window();
        let creds = bench_credentials();
        let n = servers.len();
        // Every node gets its own eventIds: request r of node k carries the ids of request
        // r * n + k of one sequence.
        let mut handles = Vec::new();
        for (k, server) in servers.iter().enumerate() {
            let requests = Arc::new(Requests::online(&server.host(), &creds, factory(tag * 16 + k as u64))?);
            load::preflight(server.addr, Arc::clone(&requests), 1 << 40)?;
            let spec = LoadSpec {
                addr: server.addr,
                connections: (self.args.connections / n).max(1),
                threads: (self.args.threads / n).max(1),
                rate: rate.map(|r| r / 10.0 / n as f64),
                warmup,
                duration,
                total_requests: None,
            };
            handles.push(load::start(&spec, requests)?);
        }
        let (t0, t1) = (handles[0].t0(), handles[0].t1());
        sleep_until(t0);
        let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
        let cpu0 = Cpu::now(&pids, self.ticks);
        let stats0: Vec<_> = servers.iter().map(stats).collect();
        let wal0 = self.wal_and_checkpoints();
        let profile = match (&self.args.perf_record, n, rate) {
            (Some(dir), 1, None) => Some(profile(dir, &format!("pg-1node-{tag}"), duration)?),
            _ => None,
        };
        sleep_until(t1);
        if let Some(mut p) = profile {
            let _ = p.wait();
        }
        let cpu1 = Cpu::now(&pids, self.ticks);
        let stats1: Vec<_> = servers.iter().map(stats).collect();
        let wal1 = self.wal_and_checkpoints();
        let load_1m = procfs::load_average()[0];
        let mut latency: Histogram<u64> = load::histogram();
        let (mut ok_requests, mut ok_events, mut window) = (0, 0, 0.0f64);
        let mut error_kinds = std::collections::BTreeMap::new();
        for h in handles {
            let r = h.join()?;
            ok_requests += r.ok_requests;
            ok_events += r.ok_events;
            window = window.max(r.window.as_secs_f64());
            latency.add(&r.latency)?;
            for (k, v) in r.errors {
                *error_kinds.entry(k).or_insert(0) += v;
            }
        }
        let delta = |f: fn(&(u64, u64)) -> u64| -> Option<u64> {
            stats0.iter().zip(&stats1).map(|(a, b)| Some(f(&(*b)?).saturating_sub(f(&(*a)?)))).sum()
        };
        let commits = delta(|s| s.0);
        let stored = delta(|s| s.1);
        Ok(PgFigures {
            window_s: window,
            requests_per_s: ok_requests as f64 / window,
            events_per_s: ok_events as f64 / window,
            errors: error_kinds.values().sum(),
            error_kinds,
            latency_us: Percentiles::of(&latency),
            events_per_commit: match (commits, stored) {
                (Some(c), Some(e)) if c > 0 => Some(e as f64 / c as f64),
                _ => None,
            },
            load_average_1m: load_1m,
            ..wal_figures(wal0, wal1, stored.unwrap_or(ok_events) as f64, cpu0.figures_to(&cpu1, window))
        })
    }
}

/// `figures` with the WAL written per event and the checkpoints begun between two snapshots.
fn wal_figures(a: Option<(u64, u64)>, b: Option<(u64, u64)>, events: f64, figures: PgFigures) -> PgFigures {
    let (Some(a), Some(b)) = (a, b) else { return figures };
    PgFigures {
        wal_bytes_per_event: (events > 0.0).then(|| b.0.saturating_sub(a.0) as f64 / events),
        checkpoints: Some(b.1.saturating_sub(a.1)),
        ..figures
    }
}

/// `perf record -a -g` for `duration` into `dir/label.perf.data`.
fn profile(dir: &Path, label: &str, duration: Duration) -> anyhow::Result<std::process::Child> {
    std::fs::create_dir_all(dir)?;
    std::process::Command::new("perf")
        .args(["record", "-a", "-g", "-F", "499", "-o"])
        .arg(dir.join(format!("{label}.perf.data")))
        .args(["--", "sleep"])
        .arg(format!("{:.3}", duration.as_secs_f64()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf record")
}

/// `commits` and `eventsStored` of a node's `/_interlog/stats`.
fn stats(server: &Server) -> Option<(u64, u64)> {
    let (status, body) = crate::server::http_get_signed(server.addr, "/_interlog/stats", &bench_credentials()).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok().filter(|_| status == 200)?;
    Some((v.get("commits")?.as_u64()?, v.get("eventsStored")?.as_u64()?))
}

/// CPU seconds of some processes, of PostgreSQL's and of the machine, at one moment.
struct Cpu {
    interlog: f64,
    postgres: f64,
    machine: f64,
}

impl Cpu {
    fn now(pids: &[u32], ticks: f64) -> Cpu {
        Cpu {
            interlog: pids.iter().filter_map(|&p| procfs::cpu_seconds(p, ticks)).sum(),
            postgres: procfs::cpu_seconds_of_command("postgres", ticks),
            machine: procfs::machine_busy_seconds(ticks).unwrap_or(f64::NAN),
        }
    }

    fn figures_to(&self, later: &Cpu, window: f64) -> PgFigures {
        PgFigures {
            interlog_cores: (later.interlog - self.interlog) / window,
            postgres_cores: (later.postgres - self.postgres) / window,
            machine_cores: (later.machine - self.machine) / window,
            ..PgFigures::default()
        }
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// `url` with `schema` as the search path of its connections.
pub(crate) fn schema_url(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Runs `sql` on a connection of its own; the first column of each row returned.
pub(crate) fn admin(url: &str, sql: &str) -> anyhow::Result<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        tokio::spawn(connection);
        let mut values = Vec::new();
        for message in client.simple_query(sql).await? {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                values.push(row.get(0).unwrap_or_default().to_owned());
            }
        }
        Ok(values)
    })
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = url[s + 3..at].split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn scenario(name: &str, description: &str, nodes: usize, connections: usize, rate: Option<f64>) -> PgScenario {
    PgScenario {
        name: name.into(),
        description: description.into(),
        nodes,
        connections,
        rate_events_per_s: rate,
        runs: Vec::new(),
        median_events_per_s: f64::NAN,
        median_p50_ms: f64::NAN,
        median_p99_ms: f64::NAN,
        median_events_per_commit: f64::NAN,
        median_interlog_cores: f64::NAN,
        median_postgres_cores: f64::NAN,
    }
}

impl PgScenario {
    fn push(&mut self, f: PgFigures) {
        eprintln!(
            "  {:<14} {:>9.0} events/s, p50 {:>6.2} ms, p99 {:>6.2} ms, {:>5} ev/commit, interlog {:.2} cores, postgres {:.2} cores, machine {:.2}, WAL {} B/event, {} checkpoints, errors {}",
            self.name,
            f.events_per_s,
            f.latency_us.p50 / 1000.0,
            f.latency_us.p99 / 1000.0,
            f.events_per_commit.map_or("-".into(), |v| format!("{v:.0}")),
            f.interlog_cores,
            f.postgres_cores,
            f.machine_cores,
            f.wal_bytes_per_event.map_or("-".into(), |v| format!("{v:.0}")),
            f.checkpoints.map_or("-".into(), |v| v.to_string()),
            f.errors
        );
        for (kind, n) in &f.error_kinds {
            eprintln!("    {n} x {kind}");
        }
        self.runs.push(f);
        let m = |g: fn(&PgFigures) -> f64| median(&mut self.runs.iter().map(g).collect::<Vec<_>>());
        self.median_events_per_s = m(|f| f.events_per_s);
        self.median_p50_ms = m(|f| f.latency_us.p50 / 1000.0);
        self.median_p99_ms = m(|f| f.latency_us.p99 / 1000.0);
        self.median_events_per_commit = m(|f| f.events_per_commit.unwrap_or(f64::NAN));
        self.median_interlog_cores = m(|f| f.interlog_cores);
        self.median_postgres_cores = m(|f| f.postgres_cores);
    }
}

/// `postgres`: the scenarios, their table and the goals.
pub fn run_postgres(mut args: PostgresArgs) -> anyhow::Result<()> {
    if args.smoke {
        args.runs = 1;
        args.warmup = 0.2;
        args.duration = 0.6;
        args.connections = args.connections.min(8);
    }
    anyhow::ensure!(
        args.server_bin.is_file(),
        "--server-bin {} is not a file (build it: cargo build --release -p interlog)",
        args.server_bin.display()
    );
    let url = args
        .database_url
        .clone()
        .or_else(|| std::env::var("INTERLOG_BENCH_DATABASE_URL").ok())
        .or_else(|| std::env::var("INTERLOG_TEST_DATABASE_URL").ok())
        .context("no database: pass --database-url or set INTERLOG_BENCH_DATABASE_URL")?;
    let tmp = crate::server::work_dir(args.work_dir.as_ref())?;
    let ctx = Ctx { args: &args, url, work: tmp.path().to_owned(), ticks: procfs::clock_ticks(), counter: 0.into() };
    ctx.sweep()?;
    let postgres_version = ctx.admin("SHOW server_version")?.pop().unwrap_or_default();
    let c = args.connections;
    let mut store1 = scenario("pg-store-1", "store alone, 1 store, 10 events/append", 1, c, None);
    let mut node1 = scenario("pg-1node", "1 node, closed loop, 10 events/request", 1, c, None);
    let mut store2 = scenario("pg-store-2", "store alone, 2 stores on one schema", 2, c, None);
    let mut node2 = scenario("pg-2nodes", "2 nodes on one schema, load split", 2, c, None);
    for run in 0..args.runs {
        let tag = run as u64 * 8;
        eprintln!("== run {run}");
        store1.push(ctx.store_alone(1, tag)?);
        node1.push(ctx.through_nodes(1, None, tag + 1)?);
        store2.push(ctx.store_alone(2, tag + 2)?);
        node2.push(ctx.through_nodes(2, None, tag + 3)?);
    }
    let half_rate = args.half_rate.unwrap_or(node1.median_events_per_s / 2.0);
    anyhow::ensure!(half_rate > 0.0, "no one-node rate measured to halve");
    eprintln!("== open loop at {} events/s through 1 node", fmt_num(half_rate));
    let mut half = scenario("pg-half-1node", "1 node, open loop at half pg-1node", 1, c, Some(half_rate));
    for run in 0..args.runs {
        half.push(ctx.through_nodes(1, Some(half_rate), 1000 + run as u64)?);
    }
    let ratio = |a: &PgScenario, b: &PgScenario| a.median_events_per_s / b.median_events_per_s;
    let (ratio_one_node, ratio_two_nodes) = (ratio(&node1, &store1), ratio(&node2, &store2));
    let finite = |x: f64| x.is_finite().then_some(x);
    let goals = vec![
        Goal::at_least("events/s, 10 ev/req, 1 node", "events/s", 60_000.0, finite(node1.median_events_per_s)),
        Goal::at_least("1 node / store alone", "ratio", 0.8, finite(ratio_one_node)),
        Goal::at_most("p99 at half the 1-node rate", "ms", 20.0, finite(half.median_p99_ms)),
    ];
    let report = PgReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        smoke: args.smoke,
        server_bin: args.server_bin.display().to_string(),
        git_revision: procfs::git_revision(Path::new(env!("CARGO_MANIFEST_DIR"))),
        machine: procfs::machine(tmp.path()),
        postgres_version,
        settings: serde_json::json!({
            "runs": args.runs, "warmup_s": args.warmup, "duration_s": args.duration,
            "connections": args.connections, "generator_threads": args.threads, "events_per_request": 10,
            "history_index": !args.no_history_index,
        }),
        scenarios: vec![store1, node1, store2, node2, half],
        ratio_one_node,
        ratio_two_nodes,
        goals,
    };
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn table(r: &PgReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "PostgreSQL {} — medians of {} run(s), {} in flight, 10 events/request",
        r.postgres_version, r.settings["runs"], r.settings["connections"]
    );
    let _ = writeln!(
        s,
        "| scenario | events/s | p50 ms | p99 ms | events/commit | interlog cores | postgres cores |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for sc in &r.scenarios {
        let _ = writeln!(
            s,
            "| `{}` ({}) | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} |",
            sc.name,
            sc.description,
            fmt_num(sc.median_events_per_s),
            sc.median_p50_ms,
            sc.median_p99_ms,
            sc.median_events_per_commit,
            sc.median_interlog_cores,
            sc.median_postgres_cores
        );
    }
    let _ =
        writeln!(s, "\n1 node / store alone: {:.2}; 2 nodes / 2 stores: {:.2}", r.ratio_one_node, r.ratio_two_nodes);
    let _ = writeln!(s, "\n| goal | target | measured | met |\n|---|---:|---:|---|");
    for g in &r.goals {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} {} | {met} |",
            g.name,
            g.target,
            g.measured.map_or("-".into(), fmt_num),
            g.unit
        );
    }
    s
}

//! `interlog-bench`: drives a real `interlog serve` with SigV4-signed PutEvents and reports
//! events/s, latency, CPU, memory and fsyncs, each next to the same load against a no-op server
//! on the same HTTP stack; times `interlog put-events` against aws-cli and `interlog export`.
//! See docs/benchmarks.md.

mod baseline;
mod body;
mod import;
mod load;
mod postgres;
mod procfs;
mod report;
mod server;
mod sign;
mod suite;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "interlog-bench", about = "Benchmark interlog against a no-op baseline and aws-cli")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole benchmark: saturation (10 and 1 events/request), repeated eventIds, open loop
    /// at half the maximum rate, each alternated with the no-op baseline; client comparison;
    /// export throughput; goals. Writes the table to stdout and every figure to --json.
    Suite(suite::SuiteArgs),
    /// The PostgreSQL scenarios: one node and two nodes on one database, each beside the same
    /// rows appended by the store alone (same concurrency, hence the same commit sizes), and an
    /// open loop at half the one-node rate. Goals of issue 12.
    Postgres(postgres::PostgresArgs),
    /// One load scenario with every knob, alternated with the no-op baseline.
    Load(suite::LoadArgs),
    /// The history index: PutEvents with the indexer on vs off, and history query latencies on
    /// a store of --events events (issue 15).
    History(suite::HistoryArgs),
    /// A dataset import job of --rows interaction rows (default 1,000,000) from a CSV file, timed from
    /// CreateDatasetImportJob to ACTIVE: rows/s (issue 16).
    Import(import::ImportArgs),
    /// Checks that a report has every field (exit 1 if not); what CI runs after --smoke.
    Check {
        /// The JSON report to check.
        file: PathBuf,
    },
    /// Measures what signing costs the generator per request: on the fly with a cached signing
    /// key vs aws-sigv4 (which pre-signed pools use), vs sending a pre-signed pool entry.
    SignCost(SignCostArgs),
    /// A baseline server (started by the benchmark itself): `noop` reads the body, `parse` also
    /// parses it as PutEvents, `sigv4-parse` also verifies its signature first.
    #[command(hide = true, alias = "noop-server")]
    BaselineServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long, value_enum, default_value_t = baseline::Work::Noop)]
        work: baseline::Work,
    },
}

#[derive(Args)]
struct SignCostArgs {
    #[arg(long, default_value_t = 10)]
    events_per_request: usize,
    #[arg(long, default_value_t = 20_000)]
    iterations: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Suite(args) => suite::run_suite(args),
        Command::Load(args) => suite::run_load(args),
        Command::History(args) => suite::run_history(args),
        Command::Import(args) => import::run_import(args),
        Command::Postgres(args) => postgres::run_postgres(args),
        Command::Check { file } => check(&file),
        Command::SignCost(args) => sign_cost(&args),
        Command::BaselineServer { listen, work } => baseline::run(listen, work),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlog-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let warnings = report::check(&text)?;
    let mut by_field = std::collections::BTreeMap::<String, usize>::new();
    for w in &warnings {
        let field = w.rsplit('.').next().unwrap_or(w).trim_end_matches(" is null").to_owned();
        *by_field.entry(field).or_default() += 1;
    }
    println!(
        "{}: complete; null where allowed: {}",
        file.display(),
        if by_field.is_empty() {
            "none".to_owned()
        } else {
            by_field.iter().map(|(k, n)| format!("{k} x{n}")).collect::<Vec<_>>().join(", ")
        }
    );
    Ok(())
}

fn sign_cost(args: &SignCostArgs) -> anyhow::Result<()> {
    use std::time::{Instant, SystemTime};
    let creds = server::bench_credentials();
    let host = "127.0.0.1:8787";
    let factory = body::BodyFactory::new(
        server::TRACKING_ID,
        args.events_per_request,
        "0badc0de",
        1_700_000_000,
        Some(body::DOCUMENTED_PROPERTIES),
    );
    let n = args.iterations;

    let t = Instant::now();
    let mut bytes = 0;
    for r in 0..n {
        bytes += std::hint::black_box(factory.body(r)).len();
    }
    let build_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let mut signer = sign::FastSigner::new(creds.clone(), host, "/events");
    let t = Instant::now();
    for r in 0..n {
        let body = factory.body(r);
        std::hint::black_box(signer.sign(&body, SystemTime::now()));
    }
    let fast_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let m = (n / 10).max(1);
    let t = Instant::now();
    for r in 0..m {
        let body = factory.body(r);
        std::hint::black_box(sign::reference_sign(&creds, host, "/events", &body, SystemTime::now())?);
    }
    let reference_ns = t.elapsed().as_nanos() as f64 / m as f64;

    println!(
        "{} events/request, {} B body, {n} iterations (aws-sigv4: {m})",
        args.events_per_request,
        bytes / n as usize
    );
    println!("build body (patch eventIds):             {build_ns:>8.0} ns/request");
    println!("build + sign on the fly (cached key):    {fast_ns:>8.0} ns/request");
    println!("build + sign with aws-sigv4 (pre-sign):  {reference_ns:>8.0} ns/request");
    println!("send a pre-signed pool entry:            ~0 ns/request (an Arc clone), but a pool repeats its eventIds");
    Ok(())
}

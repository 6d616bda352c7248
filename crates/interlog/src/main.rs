//! The `interlog` command: `serve` runs the server, `export` reads events back, `import` loads
//! files into a dataset, `events` one
//! user's or session's newest events, `dead-letters` lists and replays what a sink could not
//! deliver; `put-events`, `put-items`, `put-users`, `put-actions` and `put-action-interactions`
//! are the aws-cli commands of the same names.

mod dead_letters;
mod events;
mod export;
mod import;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The request path allocates many small, short-lived buffers (bodies, parsed events, rows);
/// mimalloc serves them markedly cheaper than glibc's allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "interlog", version, about = "A self-hosted Amazon Personalize Events service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: PutEvents and the Personalize control plane on one port.
    Serve(Box<serve::ServeArgs>),
    /// Write a dataset group's recorded interactions as Personalize dataset CSV or JSON lines.
    Export(export::ExportArgs),
    /// Import CSV or JSON lines files into a dataset through a running server (resumable).
    Import(Box<import::ImportArgs>),
    /// Print one user's or one session's newest events (through a running server), newest first.
    Events(events::EventsArgs),
    /// List or replay the events a sink's destination refused for good (docs/streams.md).
    DeadLetters(dead_letters::DeadLettersArgs),
    /// `aws personalize-events put-events`, option for option (see `interlog put-events help`).
    #[command(disable_help_flag = true)]
    PutEvents(AwsCliArgs),
    /// `aws personalize-events put-items`, option for option (see `interlog put-items help`).
    #[command(disable_help_flag = true)]
    PutItems(AwsCliArgs),
    /// `aws personalize-events put-users`, option for option (see `interlog put-users help`).
    #[command(disable_help_flag = true)]
    PutUsers(AwsCliArgs),
    /// `aws personalize-events put-actions`, option for option (see `interlog put-actions help`).
    #[command(disable_help_flag = true)]
    PutActions(AwsCliArgs),
    /// `aws personalize-events put-action-interactions`, option for option (see `interlog put-action-interactions help`).
    #[command(disable_help_flag = true)]
    PutActionInteractions(AwsCliArgs),
}

/// The words after an aws-cli command, left to interlog-cli's own argparse-compatible parser.
#[derive(clap::Args)]
struct AwsCliArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<std::ffi::OsString>,
}

fn main() -> ExitCode {
    // The aws-cli commands parse their own arguments exactly as aws-cli does (argparse rules,
    // their own help and exit codes), so they are handed the raw words before clap sees them;
    // the clap variants above only list them in `interlog --help`.
    if let Some(command) = std::env::args_os().nth(1) {
        if let Some(command) = interlog_cli::commands().find(|c| command == *c) {
            return aws_cli(command, std::env::args_os().skip(2).collect());
        }
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(*args),
        Command::Events(args) => events::run(args),
        Command::DeadLetters(args) => dead_letters::run(args),
        Command::PutEvents(a) => return aws_cli("put-events", a.args),
        Command::PutItems(a) => return aws_cli("put-items", a.args),
        Command::PutUsers(a) => return aws_cli("put-users", a.args),
        Command::PutActions(a) => return aws_cli("put-actions", a.args),
        Command::PutActionInteractions(a) => return aws_cli("put-action-interactions", a.args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlog: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn aws_cli(command: &str, args: Vec<std::ffi::OsString>) -> ExitCode {
    let invocation = interlog_cli::Invocation::from_process(args);
    let code = interlog_cli::run(command, invocation, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

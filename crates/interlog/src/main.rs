//! The `interlog` command: `serve` runs the server, `export` reads events back, `put-events` is
//! the aws-cli command of the same name.

mod export;
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
    Serve(serve::ServeArgs),
    /// Write a dataset group's recorded interactions as Personalize dataset CSV or JSON lines.
    Export(export::ExportArgs),
    /// `aws personalize-events put-events`, option for option (see `interlog put-events help`).
    #[command(disable_help_flag = true)]
    PutEvents {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    // put-events parses its own arguments exactly as aws-cli does (argparse rules, its own
    // --help and exit codes), so it is handed the raw words before clap sees them.
    if std::env::args_os().nth(1).is_some_and(|a| a == "put-events") {
        return put_events(std::env::args_os().skip(2).collect());
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Export(args) => export::run(args),
        Command::PutEvents { args } => return put_events(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlog: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn put_events(args: Vec<std::ffi::OsString>) -> ExitCode {
    let invocation = interlog_cli::Invocation::from_process(args);
    let code = interlog_cli::run_put_events(invocation, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

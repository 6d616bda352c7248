//! The `interlog` command: `serve` runs the server, `export` reads events back, `put-events` is
//! the aws-cli command of the same name.

mod export;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Export(args) => export::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interlog: {e:#}");
            ExitCode::FAILURE
        }
    }
}

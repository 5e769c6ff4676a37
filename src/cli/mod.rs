//! Command line: global options, subcommands, dispatch.
//!
//! `maasctl` alone runs the console with its embedded gateway; `serve` runs
//! the gateway headless; `demo` runs the console on a seeded throw-away
//! store; the entity subcommands script the registry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Output format of the scripting subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "maasctl",
    version,
    about = "Console and OpenAI-compatible gateway for model-as-a-service operators",
    long_about = "Without a subcommand, maasctl runs the console with its embedded gateway over the local store."
)]
pub struct Cli {
    /// Directory holding the store (maasctl.db) and the log file.
    #[arg(long, global = true, env = crate::paths::DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Output format of listing and show commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    #[command(flatten)]
    pub console: crate::tui::ConsoleArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway headless (no console).
    Serve,
}

/// Parse the command line, run, and turn errors into a one-line reason and a
/// non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let data_dir = crate::paths::data_dir(cli.data_dir)?;
    match cli.command {
        None => crate::tui::run(cli.console, data_dir),
        Some(Command::Serve) => Err("not wired yet".into()),
    }
}

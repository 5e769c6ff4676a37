//! Command line: global options, subcommands, dispatch.
//!
//! `maasctl` alone runs the console with its embedded gateway; the entity
//! subcommands script the registry. Each subcommand lives in its own module
//! and reaches the registry only through [`Ctx`], over a
//! [`backend::Backend`]: the local store, or with `--server URL` a server's
//! admin API — the same command, the same output, errors and exit codes.
//! Every change goes through `Store::apply` (one transaction, validated by
//! the registry, recorded in the audit trail as the OS user's locally, the
//! admin token's remotely). Adding a command to both paths: see
//! [`backend`].

mod apply;
pub mod backend;
mod budget;
mod cluster;
pub mod console;
mod explain;
mod history;
mod key;
mod market;
mod model;
mod output;
mod refs;
mod rule;
mod token;
mod usage;
mod workspace;

pub mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::admin::TokenArgs;
use crate::compose::local_origin;
use crate::domain::{Change, Channel, DomainError, GatewayReport, Registry};
use crate::store::{Applied, StoreError};
use backend::{ApplyFailure, Backend};

/// Output format of the scripting subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
    /// Comma-separated values (`maasctl usage`; other commands print their table).
    Csv,
}

/// Help heading of the options every subcommand takes.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "maasctl",
    version,
    about = "Console and OpenAI-compatible gateway for model-as-a-service operators",
    long_about = "Without a subcommand, maasctl runs the console with its embedded gateway over the local store."
)]
pub struct Cli {
    /// Directory holding the store (maasctl.db) and the log file.
    #[arg(long, global = true, env = crate::paths::DATA_DIR_ENV, value_name = "DIR", help_heading = GLOBAL)]
    pub data_dir: Option<PathBuf>,

    /// Where the registry lives: sqlite:PATH. Default: maasctl.db in the data directory.
    #[arg(long, global = true, env = crate::store::STORE_ENV, value_name = "URL", help_heading = GLOBAL)]
    pub store: Option<String>,

    /// Output format of listing and show commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table, help_heading = GLOBAL)]
    pub output: Output,

    /// Run the command against the admin API of a running `maasctl serve`
    /// at URL instead of a local store (same output; changes recorded as
    /// the admin token's).
    #[arg(long, global = true, env = SERVER_ENV, value_name = "URL", help_heading = GLOBAL)]
    pub server: Option<String>,

    #[command(flatten)]
    pub admin_token: TokenArgs,

    #[command(flatten)]
    pub console: console::ConsoleArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Environment variable naming the server of `--server`.
pub const SERVER_ENV: &str = "MAASCTL_SERVER";

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Registry(RegistryCommand),
    /// Rate-limit rules of models, and which would reject a key's next request.
    #[command(subcommand)]
    Rule(rule::RuleCommand),
    /// The console on a throw-away store with a mock upstream and live traffic.
    Demo(crate::demo::DemoArgs),
    /// Run the gateway headless (no console).
    Serve(Box<serve::ServeArgs>),
}

/// The subcommands that script the registry.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// MaaS models: list, show, create, edit, enable, disable, delete.
    #[command(subcommand)]
    Model(model::Cmd),
    /// Platform API keys.
    #[command(subcommand)]
    Key(key::Cmd),
    /// Workspaces (own API keys).
    #[command(subcommand)]
    Workspace(workspace::Cmd),
    /// Clusters (where models are entered).
    #[command(subcommand)]
    Cluster(cluster::Cmd),
    /// The model marketplace.
    #[command(subcommand)]
    Market(market::Cmd),
    /// Make the registry match a declarative file (YAML or TOML).
    Apply(apply::ApplyArgs),
    /// Print the registry as a declarative file (secrets excluded).
    Export(apply::ExportArgs),
    /// The audit trail: who changed what, when, through what.
    Audit(history::AuditArgs),
    /// The registry's revisions: when, who, what.
    History(history::HistoryArgs),
    /// What changed between two revisions, as a diff of the declarative file.
    Diff(history::DiffArgs),
    /// Make a new revision whose registry equals an earlier one's.
    Rollback(history::RollbackArgs),
    /// Admin tokens of the admin API (named, with a role).
    #[command(subcommand)]
    Token(token::Cmd),
    /// Usage from the ledger: requests, 429s, tokens and cost per workspace, key or model.
    Usage(usage::UsageArgs),
    /// Token or cost budgets per workspace or key, per UTC day or month.
    #[command(subcommand)]
    Budget(budget::Cmd),
}

/// A failure, already worded as `<field>: <problem>` (or a sentence).
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    pub fn field(field: impl std::fmt::Display, problem: impl std::fmt::Display) -> Self {
        Self(format!("{field}: {problem}"))
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<DomainError> for CliError {
    fn from(e: DomainError) -> Self {
        Self(e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// What every subcommand gets: where the registry is, and the output
/// format.
pub struct Ctx {
    backend: Box<dyn Backend>,
    output: Output,
}

/// How often [`Ctx::update`] recomputes its changes when other writers keep
/// moving the registry under it.
const UPDATE_ATTEMPTS: usize = 20;

impl Ctx {
    pub fn new(backend: Box<dyn Backend>, output: Output) -> Self {
        Self { backend, output }
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    pub fn load(&self) -> CliResult<Registry> {
        self.backend.load()
    }

    pub fn reports(&self) -> CliResult<Vec<GatewayReport>> {
        self.backend.reports()
    }

    /// Apply changes that do not depend on what was read before.
    pub fn apply(&self, changes: Vec<Change>) -> CliResult<Applied> {
        self.backend.apply(changes).map_err(|e| match e {
            ApplyFailure::Stale => CliError("revision: the registry changed meanwhile".into()),
            ApplyFailure::Failed(e) => e,
        })
    }

    /// Apply changes computed from the current registry by `f`, guarded by
    /// [`Change::ExpectRevision`]: if another process changed the registry in
    /// between, reload and recompute rather than overwrite its change.
    pub fn update<T>(
        &self,
        mut f: impl FnMut(&Registry) -> CliResult<(Vec<Change>, T)>,
    ) -> CliResult<(Applied, T)> {
        let mut attempt = 0;
        loop {
            let reg = self.load()?;
            let (changes, extra) = f(&reg)?;
            if changes.is_empty() {
                let applied = Applied {
                    revision: reg.revision,
                    outcomes: Vec::new(),
                };
                return Ok((applied, extra));
            }
            let mut batch = Vec::with_capacity(changes.len() + 1);
            batch.push(Change::ExpectRevision {
                revision: reg.revision,
            });
            batch.extend(changes);
            match self.backend.apply(batch) {
                Ok(mut applied) => {
                    applied.outcomes.remove(0);
                    return Ok((applied, extra));
                }
                Err(ApplyFailure::Stale) if attempt < UPDATE_ATTEMPTS => attempt += 1,
                Err(ApplyFailure::Stale) => {
                    return Err(CliError(
                        "revision: the registry kept changing while this command ran; try again"
                            .into(),
                    ));
                }
                Err(ApplyFailure::Failed(e)) => return Err(e),
            }
        }
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Print `value` as JSON, or `text()` for people.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> CliResult {
        if self.json() {
            output::print_json(value)
        } else {
            output::print_out(&text())
        }
    }
}

/// Parse the command line, run, and turn errors into a one-line reason and a
/// non-zero exit code (1 for a refused or failed command, 2 for a command
/// line clap cannot parse).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", one_line_clap_error(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Collapse any line breaks so the reason stays on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// clap renders errors over several paragraphs (problem, tip, usage); keep
/// the problem, on one line, and point at `--help`.
fn one_line_clap_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let first = rendered.split("\n\n").next().unwrap_or_default();
    let msg = one_line(first.trim_start_matches("error:"));
    format!("{msg} (see --help)")
}

fn run(cli: Cli) -> CliResult {
    let data_dir = crate::paths::data_dir(cli.data_dir.clone()).map_err(CliError)?;
    let open = || crate::store::open(cli.store.as_deref(), &data_dir);
    // Where registry commands run: the server named by --server, else the
    // local store; `channel` says what the audit trail records them as.
    let backend = |channel: Channel| -> CliResult<Box<dyn Backend>> {
        match &cli.server {
            Some(url) => {
                let api = backend::api(url, &cli.admin_token, &data_dir)?;
                Ok(Box::new(backend::Remote::new(api.with_channel(channel))?))
            }
            None => Ok(Box::new(backend::Local {
                store: open()?,
                origin: local_origin(channel),
                data_dir: data_dir.clone(),
                tokens: cli.admin_token.clone(),
            })),
        }
    };
    let here_only = |what: &str| {
        if cli.server.is_some() {
            return Err(CliError::field(
                "--server",
                format!(
                    "{what} runs here, not on a server; leave --server (and ${SERVER_ENV}) out"
                ),
            ));
        }
        Ok(())
    };
    match cli.command {
        None => match cli.console.connect.clone().or(cli.server.clone()) {
            Some(url) => console::run_remote(&url, cli.console, &cli.admin_token, &data_dir),
            None => console::run(cli.console, &cli.admin_token, open()?, &data_dir),
        }
        .map_err(CliError),
        // The demo runs on its own throw-away store.
        Some(Command::Demo(args)) => {
            here_only("maasctl demo")?;
            crate::demo::run(args).map_err(CliError)
        }
        Some(Command::Serve(args)) => {
            here_only("maasctl serve")?;
            serve::run(open()?, *args, &cli.admin_token, &data_dir).map_err(CliError)
        }
        Some(Command::Rule(rule::RuleCommand::Explain(args))) => match &args.connect {
            // Ask the gateway at that admin API; no local store needed.
            Some(url) => {
                let api = backend::api(url, &cli.admin_token, &data_dir)?;
                explain::run(&args, cli.output, &backend::Remote::new(api)?)
            }
            None => explain::run(&args, cli.output, &*backend(Channel::Cli)?),
        },
        Some(Command::Rule(rule::RuleCommand::Edit(c))) => {
            rule::run(&Ctx::new(backend(Channel::Cli)?, cli.output), c)
        }
        Some(Command::Registry(command)) => {
            let channel = match command {
                RegistryCommand::Apply(_) => Channel::Apply,
                _ => Channel::Cli,
            };
            let ctx = Ctx::new(backend(channel)?, cli.output);
            match command {
                RegistryCommand::Model(c) => model::run(&ctx, c),
                RegistryCommand::Key(c) => key::run(&ctx, c),
                RegistryCommand::Workspace(c) => workspace::run(&ctx, c),
                RegistryCommand::Cluster(c) => cluster::run(&ctx, c),
                RegistryCommand::Market(c) => market::run(&ctx, c),
                RegistryCommand::Apply(a) => apply::apply(&ctx, a),
                RegistryCommand::Export(a) => apply::export(&ctx, a),
                RegistryCommand::Audit(a) => history::audit(&ctx, a),
                RegistryCommand::History(a) => history::history(&ctx, a),
                RegistryCommand::Diff(a) => history::diff(&ctx, a),
                RegistryCommand::Rollback(a) => history::rollback(&ctx, a),
                RegistryCommand::Token(c) => token::run(&ctx, c),
                RegistryCommand::Usage(a) => usage::run(&ctx, a),
                RegistryCommand::Budget(c) => budget::run(&ctx, c),
            }
        }
    }
}

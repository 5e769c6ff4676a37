//! `maasctl budget add|list|edit|rm`: token or cost budgets per workspace
//! or key, per UTC day or month (docs/usage.md "Budgets"). Changes go
//! through the registry like every entity's (audited; `--server` sends
//! them to the admin API); `list` adds what was spent this period, from
//! the ledger (`GET /admin/v1/budgets` remotely).

use clap::{Args, Subcommand};

use super::key::resolve_key;
use super::output::Table;
use super::{CliError, CliResult, Ctx};
use crate::domain::budget::{self, BudgetPeriod, BudgetSpec, BudgetStatus, BudgetUnit};
use crate::domain::{Change, Outcome, RuleTarget};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a budget: --workspace W or --key KEY, --tokens N or --usd X, --per day|month.
    Add(AddArgs),
    /// Every budget with what was spent this period and what is left.
    List,
    /// Change a budget's amount (--tokens or --usd, same unit).
    Edit(EditArgs),
    /// Remove a budget.
    #[command(alias = "delete")]
    Rm { id: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The workspace whose keys together spend the budget.
    #[arg(long, conflicts_with = "key", required_unless_present = "key")]
    workspace: Option<String>,
    /// One API key (id, or name) that spends the budget alone.
    #[arg(long)]
    key: Option<String>,
    /// A budget of tokens (prompt + completion), at least 1.
    #[arg(
        long,
        conflicts_with = "usd",
        required_unless_present = "usd",
        allow_negative_numbers = true
    )]
    tokens: Option<u64>,
    /// A budget of cost in US dollars at the marketplace prices (e.g. 12.50).
    #[arg(long, value_name = "DOLLARS", allow_negative_numbers = true)]
    usd: Option<String>,
    /// The UTC calendar period it renews over: day or month.
    #[arg(long)]
    per: BudgetPeriod,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    id: String,
    #[arg(
        long,
        conflicts_with = "usd",
        required_unless_present = "usd",
        allow_negative_numbers = true
    )]
    tokens: Option<u64>,
    #[arg(long, value_name = "DOLLARS", allow_negative_numbers = true)]
    usd: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Add(a) => add(ctx, a),
        Cmd::List => list(ctx),
        Cmd::Edit(a) => edit(ctx, a),
        Cmd::Rm { id } => {
            ctx.update(|_| Ok((vec![Change::DeleteBudget { id: id.clone() }], ())))?;
            ctx.emit(&serde_json::json!({ "deleted": id }), || {
                format!("removed budget {id}")
            })
        }
    }
}

/// The unit and amount `--tokens` / `--usd` give.
fn amount(tokens: Option<u64>, usd: Option<&str>) -> CliResult<(BudgetUnit, u64)> {
    match (tokens, usd) {
        (Some(n), _) => Ok((BudgetUnit::Tokens, n)),
        (None, Some(d)) => Ok((
            BudgetUnit::Usd,
            budget::parse_usd(d).map_err(|e| CliError::field("--usd", e))?,
        )),
        (None, None) => Err(CliError::field("--tokens", "give --tokens N or --usd X")),
    }
}

fn add(ctx: &Ctx, a: AddArgs) -> CliResult {
    let (unit, amount) = amount(a.tokens, a.usd.as_deref())?;
    let (applied, _) = ctx.update(|reg| {
        let (target, subject) = match (&a.workspace, &a.key) {
            (Some(w), _) => (RuleTarget::Workspace, w.clone()),
            (None, Some(k)) => (RuleTarget::ApiKey, resolve_key(reg, None, k)?),
            (None, None) => {
                return Err(CliError::field(
                    "--workspace",
                    "give --workspace W or --key KEY",
                ));
            }
        };
        let spec = BudgetSpec {
            target,
            subject,
            unit,
            amount,
            period: a.per,
        };
        Ok((vec![Change::AddBudget(spec)], ()))
    })?;
    let Some(Outcome::BudgetCreated { id }) = applied.outcomes.first() else {
        return Err(CliError::field(
            "budget",
            "the store did not report the new budget",
        ));
    };
    show_one(ctx, id, "added")
}

fn edit(ctx: &Ctx, a: EditArgs) -> CliResult {
    let (unit, amount) = amount(a.tokens, a.usd.as_deref())?;
    ctx.update(|reg| {
        let mut spec = reg.budget(&a.id)?.spec.clone();
        if spec.unit != unit {
            return Err(CliError::field(
                if unit == BudgetUnit::Tokens {
                    "--tokens"
                } else {
                    "--usd"
                },
                format!(
                    "budget {} counts {}; give --{} (or remove it and add another)",
                    a.id,
                    spec.unit,
                    budget::amount_field(spec.unit)
                ),
            ));
        }
        spec.amount = amount;
        Ok((
            vec![Change::UpdateBudget {
                id: a.id.clone(),
                spec,
            }],
            (),
        ))
    })?;
    show_one(ctx, &a.id, "updated")
}

fn show_one(ctx: &Ctx, id: &str, verb: &str) -> CliResult {
    let all = ctx.backend().budgets()?;
    let s = all
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| CliError::field("id", format!("no budget with id '{id}'")))?;
    ctx.emit(s, || {
        format!(
            "{verb} budget {id}: {} per {} for {} {} ({} spent this period)",
            s.unit.show(s.amount),
            s.period,
            s.target,
            s.subject,
            s.unit.show(s.spent)
        )
    })
}

fn list(ctx: &Ctx) -> CliResult {
    let all = ctx.backend().budgets()?;
    ctx.emit(&all, || table(&all))
}

/// `1000` / `$12.50`.
fn figure(unit: BudgetUnit, n: u64) -> String {
    match unit {
        BudgetUnit::Tokens => n.to_string(),
        BudgetUnit::Usd => format!("${}", budget::show_usd(n)),
    }
}

pub fn table(all: &[BudgetStatus]) -> String {
    let mut t = Table::new([
        "ID", "TARGET", "SUBJECT", "UNIT", "PER", "AMOUNT", "SPENT", "LEFT", "USED", "RESETS",
    ]);
    for s in all {
        t.row([
            s.id.clone(),
            s.target.to_string(),
            s.subject.clone(),
            s.unit.to_string(),
            s.period.to_string(),
            figure(s.unit, s.amount),
            figure(s.unit, s.spent),
            figure(s.unit, s.left),
            format!("{}%", s.percent()),
            budget::rfc3339(s.resets_at_ms),
        ]);
    }
    t.render()
}

//! `maasctl rule add|list|edit|delete`: rate-limit rules of models
//! (`rule explain` is in `explain.rs`).

use clap::{Args, Subcommand};

use super::key::resolve_key;
use super::model::{RuleView, rule_table};
use super::{CliError, CliResult, Ctx};
use crate::domain::{Change, Outcome, Registry, RuleSpec, RuleTarget, RuleUnit};

/// `maasctl rule …`.
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    #[command(flatten)]
    Edit(Cmd),
    /// Which rules of a model apply to a key, how full they are (live, from
    /// a running gateway) and which would reject its next request.
    Explain(super::explain::ExplainArgs),
}

/// The rule edits (they work on the local store).
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a rule to a model.
    Add(AddArgs),
    /// List rules (of one model, or all).
    List {
        #[arg(long)]
        model: Option<String>,
    },
    /// Change a rule; options left out keep their value. Its id stays.
    Edit(EditArgs),
    /// Delete a rule.
    Delete { id: u64 },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The model the rule limits.
    #[arg(long)]
    model: String,
    /// api-key (one key's calls) or workspace (all its keys together).
    /// Default: api-key when --key is given, else workspace.
    #[arg(long)]
    target: Option<RuleTarget>,
    /// Default: the workspace of --key.
    #[arg(long)]
    workspace: Option<String>,
    /// Key id or name (target api-key).
    #[arg(long)]
    key: Option<String>,
    /// Requests (or tokens, with --unit tokens) admitted per window (at least 1).
    #[arg(long)]
    limit: u32,
    /// Window length in seconds (at least 1).
    #[arg(long, value_name = "SECONDS")]
    duration: u32,
    /// What --limit counts: requests (default) or tokens (prompt +
    /// completion, reserved before forwarding, settled to the upstream's usage).
    #[arg(long, default_value = "requests")]
    unit: RuleUnit,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    id: u64,
    #[arg(long)]
    target: Option<RuleTarget>,
    #[arg(long)]
    workspace: Option<String>,
    /// Key id or name.
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u32>,
    /// requests or tokens (a changed unit starts the rule's window afresh).
    #[arg(long)]
    unit: Option<RuleUnit>,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Add(a) => add(ctx, a),
        Cmd::List { model } => list(ctx, model),
        Cmd::Edit(a) => edit(ctx, a),
        Cmd::Delete { id } => {
            let (_, model) = ctx.update(|reg| {
                let model = model_of(reg, id)?;
                Ok((
                    vec![Change::DeleteRule {
                        model: model.clone(),
                        id,
                    }],
                    model,
                ))
            })?;
            ctx.emit(
                &serde_json::json!({ "deleted": id, "model": model }),
                || format!("deleted rule #{id} of model {model}"),
            )
        }
    }
}

/// The model holding rule `id`.
fn model_of(reg: &Registry, id: u64) -> CliResult<String> {
    reg.rule(id)
        .map(|(m, _)| m.spec.name.clone())
        .ok_or_else(|| CliError::field("rule", format!("no rule #{id}")))
}

/// The rule's workspace and key id from what was typed: a key named without
/// a workspace brings its own.
fn subject(
    reg: &Registry,
    workspace: Option<String>,
    key: Option<&str>,
) -> CliResult<(String, Option<String>)> {
    let key_id = key
        .map(|k| resolve_key(reg, workspace.as_deref(), k))
        .transpose()?;
    let workspace = workspace
        .or_else(|| {
            key_id
                .as_ref()
                .and_then(|id| reg.keys.get(id))
                .map(|k| k.workspace.clone())
        })
        .unwrap_or_default();
    Ok((workspace, key_id))
}

fn add(ctx: &Ctx, a: AddArgs) -> CliResult {
    let (applied, _) = ctx.update(|reg| {
        let (workspace, key_id) = subject(reg, a.workspace.clone(), a.key.as_deref())?;
        let target = a.target.unwrap_or(if key_id.is_some() {
            RuleTarget::ApiKey
        } else {
            RuleTarget::Workspace
        });
        let spec = RuleSpec {
            target,
            workspace,
            key_id,
            limit: a.limit,
            duration_secs: a.duration,
            unit: a.unit,
        };
        Ok((
            vec![Change::AddRule {
                model: a.model.clone(),
                spec,
            }],
            (),
        ))
    })?;
    let Some(Outcome::RuleCreated { id }) = applied.outcomes.first() else {
        return Err(CliError::field(
            "rule",
            "the store did not report the new rule",
        ));
    };
    print_rule(ctx, *id, "added")
}

fn edit(ctx: &Ctx, a: EditArgs) -> CliResult {
    ctx.update(|reg| {
        let (m, r) = reg
            .rule(a.id)
            .ok_or_else(|| CliError::field("rule", format!("no rule #{}", a.id)))?;
        let mut spec = r.spec.clone();
        if let Some(t) = a.target {
            spec.target = t;
            if t == RuleTarget::Workspace {
                spec.key_id = None;
            }
        }
        if a.workspace.is_some() || a.key.is_some() {
            let ws = a.workspace.clone().or_else(|| {
                // A new key alone moves the rule to that key's workspace.
                a.key.is_none().then(|| spec.workspace.clone())
            });
            let (workspace, key_id) = subject(reg, ws, a.key.as_deref())?;
            spec.workspace = workspace;
            if key_id.is_some() {
                spec.key_id = key_id;
            }
        }
        if let Some(l) = a.limit {
            spec.limit = l;
        }
        if let Some(d) = a.duration {
            spec.duration_secs = d;
        }
        if let Some(u) = a.unit {
            spec.unit = u;
        }
        Ok((
            vec![Change::UpdateRule {
                model: m.spec.name.clone(),
                id: a.id,
                spec,
            }],
            (),
        ))
    })?;
    print_rule(ctx, a.id, "updated")
}

fn print_rule(ctx: &Ctx, id: u64, verb: &str) -> CliResult {
    let reg = ctx.load()?;
    let (m, r) = reg
        .rule(id)
        .ok_or_else(|| CliError::field("rule", format!("no rule #{id}")))?;
    let v = RuleView::new(&reg, &m.spec.name, r);
    ctx.emit(&v, || {
        format!("{verb} {} on model {}", r.describe(), m.spec.name)
    })
}

fn list(ctx: &Ctx, model: Option<String>) -> CliResult {
    let reg = ctx.load()?;
    if let Some(m) = &model {
        reg.model(m)?;
    }
    let rules: Vec<RuleView> = reg
        .models
        .values()
        .filter(|m| model.as_ref().is_none_or(|n| *n == m.spec.name))
        .flat_map(|m| m.rules.iter().map(|r| RuleView::new(&reg, &m.spec.name, r)))
        .collect();
    ctx.emit(&rules, || rule_table(&rules))
}

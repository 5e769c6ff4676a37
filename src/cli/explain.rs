//! `maasctl rule explain --model M --key K`: which rules of M apply to K,
//! how full they are now and which would reject K's next request — asked of
//! a running gateway's limiter through its admin API (`--connect URL`, the
//! `--server`, else the freshest gateway report in the store that names an
//! admin API: see [`super::backend::Local`]), or,
//! with no gateway to ask, the rules from the registry alone, marked as
//! having no live counts.

use clap::Args;

use super::backend::Backend;
use super::output::{Table, print_json, print_out};
use super::{CliResult, Output};
use crate::admin::explain::{ExplainReport, NO_GATEWAY};
use crate::domain::RuleTarget;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The model.
    #[arg(long)]
    model: String,
    /// The key: its id, or its name.
    #[arg(long)]
    key: String,
    /// The workspace of --key, when that name is used in several.
    #[arg(long)]
    workspace: Option<String>,
    /// Ask the gateway whose admin API is at URL (default: a running
    /// gateway found through the store, or the --server).
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
}

/// Run it against `backend`: a local store (which finds a running gateway
/// to ask), a server, or the gateway of `--connect`.
pub fn run(args: &ExplainArgs, output: Output, backend: &dyn Backend) -> CliResult {
    let report = backend.explain(&args.model, &args.key, args.workspace.as_deref())?;
    match output {
        Output::Json => print_json(&report),
        Output::Table | Output::Csv => print_out(&render(&report)),
    }
}

/// The report for people: the limiter's table when live, else the rules
/// from the registry and why there are no live counts.
pub fn render(r: &ExplainReport) -> String {
    let mut out = String::new();
    if r.key_revoked {
        out.push_str(&format!(
            "key {} is revoked: its requests are refused (401) before any rule is checked\n",
            r.key_id
        ));
    }
    if let (Some(live), Some(gw)) = (&r.live, &r.gateway) {
        out.push_str(&format!("live counts from the gateway at {gw}\n{live}"));
        return out;
    }
    out.push_str(&format!(
        "model {} · key {} ({}) · workspace {}\n",
        r.model, r.key_id, r.key_name, r.workspace
    ));
    out.push_str(&format!(
        "no live counts: {}\n",
        r.no_live_counts.as_deref().unwrap_or(NO_GATEWAY)
    ));
    if r.rules.is_empty() {
        out.push_str(&format!(
            "no rule of model {} applies to key {} or workspace {}: its requests are not rate limited\n",
            r.model, r.key_id, r.workspace
        ));
        return out;
    }
    let mut t = Table::new(["RULE", "TARGET", "SUBJECT", "LIMIT", "PER"]);
    for rule in &r.rules {
        let subject = match rule.spec.target {
            RuleTarget::ApiKey => rule.spec.key_id.clone().unwrap_or_default(),
            RuleTarget::Workspace => rule.spec.workspace.clone(),
        };
        t.row([
            format!("#{}", rule.id),
            rule.spec.target.to_string(),
            subject,
            match rule.spec.unit {
                crate::domain::RuleUnit::Requests => rule.spec.limit.to_string(),
                crate::domain::RuleUnit::Tokens => format!("{} tokens", rule.spec.limit),
            },
            format!("{}s", rule.spec.duration_secs),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "each of these rules is checked on every request of this key; which one would reject the next request needs a running gateway\n",
    );
    out
}

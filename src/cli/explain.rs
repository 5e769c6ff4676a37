//! `maasctl rule explain --model M --key K`: which rules of M apply to K,
//! how full they are now and which would reject K's next request — asked of
//! a running gateway's limiter through its admin API (`--connect URL`, else
//! the freshest gateway report in the store that names an admin API), or,
//! with no gateway to ask, the rules from the registry alone, marked as
//! having no live counts.

use std::path::Path;
use std::sync::Arc;

use clap::Args;

use super::output::{Table, print_json, print_out};
use super::{CliError, CliResult, Output};
use crate::admin::TokenArgs;
use crate::admin::explain::{ExplainReport, NO_GATEWAY};
use crate::client::api::{AdminApi, CallError};
use crate::domain::{GatewayReport, RuleTarget, now_ms};
use crate::store::Store;

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
    /// gateway found through the store).
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
    #[command(flatten)]
    admin_token: TokenArgs,
}

/// Run it; `open` opens the local store (not needed with `--connect`).
pub fn run(
    args: ExplainArgs,
    output: Output,
    data_dir: &Path,
    open: impl FnOnce() -> CliResult<Arc<dyn Store>>,
) -> CliResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))?;
    let report = match &args.connect {
        Some(url) => {
            let api = api(url, &args, data_dir)?;
            rt.block_on(api.explain(&args.model, &args.key, args.workspace.as_deref()))
                .map_err(call_error)?
        }
        None => rt.block_on(from_store(&args, data_dir, &*open()?))?,
    };
    match output {
        Output::Json => print_json(&report),
        Output::Table => print_out(&render(&report)),
    }
}

fn api(url: &str, args: &ExplainArgs, data_dir: &Path) -> CliResult<AdminApi> {
    let token = args.admin_token.for_client(data_dir).map_err(CliError)?;
    AdminApi::new(url, token.expose()).map_err(CliError)
}

/// A refusal keeps its field (`key: no API key …`); anything else is a sentence.
fn call_error(e: CallError) -> CliError {
    match e {
        CallError::Api(a) => CliError(a.message),
        other => CliError(other.to_string()),
    }
}

/// Resolve from the local registry, then ask the freshest gateway serving
/// the model's cluster that has an admin API.
async fn from_store(
    args: &ExplainArgs,
    data_dir: &Path,
    store: &dyn Store,
) -> CliResult<ExplainReport> {
    let reg = store.load()?;
    let report = ExplainReport::resolve(&reg, &args.model, &args.key, args.workspace.as_deref())?;
    let cluster = reg.model(&report.model)?.spec.cluster.clone();
    let now = now_ms();
    let fresh: Vec<GatewayReport> = store
        .reports()?
        .into_iter()
        .filter(|r| r.is_fresh(now))
        .collect();
    let mut serving: Vec<&GatewayReport> = fresh.iter().filter(|r| r.serves(&cluster)).collect();
    serving.sort_by_key(|r| std::cmp::Reverse(r.heartbeat_ms));
    if fresh.is_empty() {
        return Ok(report.without_live(NO_GATEWAY));
    }
    let Some(first) = serving.first() else {
        return Ok(report.without_live(format!("no running gateway serves cluster '{cluster}'")));
    };
    let with_admin: Vec<(&GatewayReport, &str)> = serving
        .iter()
        .filter_map(|r| r.admin.as_deref().map(|a| (*r, a)))
        .collect();
    if with_admin.is_empty() {
        return Ok(report.without_live(format!(
            "the gateway at {} runs without an admin API (--admin-listen off)",
            first.listen
        )));
    }
    let mut unreachable = Vec::new();
    for (gw, admin) in with_admin {
        let api = api(admin, args, data_dir)?;
        match api
            .explain(&report.model, &report.key_id, Some(&report.workspace))
            .await
        {
            Ok(r) => return Ok(r),
            // A gateway that just died still has a fresh report: try the next.
            Err(CallError::Transport { reason, .. }) => unreachable.push(format!(
                "the gateway at {} did not answer ({reason})",
                gw.listen
            )),
            Err(e) => return Err(call_error(e)),
        }
    }
    Ok(report.without_live(unreachable.join("; ")))
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
            rule.spec.limit.to_string(),
            format!("{}s", rule.spec.duration_secs),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "each of these rules is checked on every request of this key; which one would reject the next request needs a running gateway\n",
    );
    out
}

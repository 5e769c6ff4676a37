//! `maasctl model list|show|create|edit|enable|disable|delete`.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{Table, or_dash, utc};
use super::refs;
use super::{CliResult, Ctx};
use crate::domain::{
    Change, Cluster, GatewayReport, Model, ModelSpec, Policy, Registry, Rule, STATE_SEVERITY,
    endpoint_routes, gateway_status, now_ms,
};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List models: name, model ID, tags, status, access path, gateway status.
    List {
        /// Only models with this tag.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Show one model with its endpoints and rules.
    Show { name: String },
    /// Register a model from the marketplace (created disabled).
    Create(CreateArgs),
    /// Change a model; options left out keep their value.
    Edit(EditArgs),
    /// Make a model visible and callable (its marketplace entry must be published).
    Enable { name: String },
    /// Make a model answer 404 to callers.
    Disable { name: String },
    /// Delete a model and its rules.
    Delete { name: String },
    /// Per endpoint: state as the gateways report it (reason, since/until),
    /// weight and share of the last minute's tries.
    Routes { name: String },
    /// One endpoint of a model (INDEX from 0, as `model show` lists them).
    #[command(subcommand)]
    Endpoint(EndpointCmd),
}

#[derive(Debug, clap::Subcommand)]
pub enum EndpointCmd {
    /// No new requests to it; those in flight (streams included) finish,
    /// then the gateway shows it `drained`.
    Drain { name: String, index: usize },
    /// Back in rotation after a drain.
    Undrain { name: String, index: usize },
}

/// `--endpoint` help, shared by create and edit.
const ENDPOINT_HELP: &str = "Upstream: URL[,key=env:VAR|file:PATH|stdin|none|VALUE][,weight=N][,probe=models|none|/PATH|URL][,ca=PATH][,disabled][,drain]. Repeat for each endpoint";

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Marketplace entry name (maasctl market list).
    #[arg(long)]
    name: String,
    /// Entry cluster.
    #[arg(long, default_value = Cluster::DEFAULT)]
    cluster: String,
    /// The upstream's name for the model (e.g. deepseek-chat).
    #[arg(long)]
    model_id: Option<String>,
    #[arg(long = "endpoint", value_name = "SPEC", help = ENDPOINT_HELP)]
    endpoints: Vec<String>,
    /// round-robin, random, weighted or least-loaded.
    #[arg(long, default_value = "round-robin")]
    policy: Policy,
    /// Tags (repeat, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Vec<String>,
    /// A model tried when this one cannot answer (repeat, in order; at most 3).
    #[arg(long = "fallback", value_name = "MODEL", value_delimiter = ',')]
    fallbacks: Vec<String>,
    /// Completion tokens a token rule reserves when a request gives no
    /// max_tokens (1..=1000000; default 4096).
    #[arg(long, value_name = "TOKENS", value_parser = parse_cap)]
    completion_cap: Option<CompletionCap>,
}

/// `--completion-cap`: a token count, or `default` (no cap of the model's own).
#[derive(Debug, Clone, Copy)]
pub struct CompletionCap(Option<u32>);

fn parse_cap(s: &str) -> Result<CompletionCap, String> {
    if s == "default" {
        return Ok(CompletionCap(None));
    }
    let max = crate::domain::registry::model::MAX_COMPLETION_CAP;
    match s.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(CompletionCap(Some(n))),
        _ => Err(format!(
            "'{s}' is not a completion cap: use a token count from 1 to {max}, or default (4096)"
        )),
    }
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The model to change.
    model: String,
    /// Rename to another marketplace entry.
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long)]
    model_id: Option<String>,
    /// Replaces all endpoints; a URL given without key= keeps its stored key.
    #[arg(long = "endpoint", value_name = "SPEC", help = ENDPOINT_HELP)]
    endpoints: Vec<String>,
    /// round-robin, random, weighted or least-loaded (leaving weighted drops the weights).
    #[arg(long)]
    policy: Option<Policy>,
    /// Replaces all tags (--tag '' clears them).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Option<Vec<String>>,
    /// Replaces the fallback models, in order (--fallback '' clears them).
    #[arg(long = "fallback", value_name = "MODEL", value_delimiter = ',')]
    fallbacks: Option<Vec<String>>,
    /// Completion tokens a token rule reserves when a request gives no
    /// max_tokens (1..=1000000, or `default`: 4096).
    #[arg(long, value_name = "TOKENS", value_parser = parse_cap)]
    completion_cap: Option<CompletionCap>,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::List { tag } => list(ctx, tag),
        Cmd::Show { name } => show(ctx, &name),
        Cmd::Create(a) => create(ctx, a),
        Cmd::Edit(a) => edit(ctx, a),
        Cmd::Enable { name } => set_enabled(ctx, name, true),
        Cmd::Disable { name } => set_enabled(ctx, name, false),
        Cmd::Routes { name } => routes(ctx, &name),
        Cmd::Endpoint(EndpointCmd::Drain { name, index }) => set_drain(ctx, name, index, true),
        Cmd::Endpoint(EndpointCmd::Undrain { name, index }) => set_drain(ctx, name, index, false),
        Cmd::Delete { name } => {
            ctx.apply(vec![Change::DeleteModel { name: name.clone() }])?;
            ctx.emit(&serde_json::json!({ "deleted": name }), || {
                format!("deleted model {name}")
            })
        }
    }
}

/// A model as scripts see it: upstream keys masked, statuses derived.
#[derive(Debug, Serialize)]
pub struct ModelView {
    pub name: String,
    pub cluster: String,
    pub access_path: String,
    pub model_id: String,
    pub policy: Policy,
    pub tags: Vec<String>,
    /// Tried in order when this model cannot answer.
    pub fallbacks: Vec<String>,
    /// Completion tokens reserved by token rules when a request gives no
    /// max_tokens (`null`: the default, 4096).
    pub completion_cap: Option<u32>,
    /// `enabled` / `disabled`.
    pub status: &'static str,
    pub gateway_status: String,
    pub endpoints: Vec<EndpointView>,
    pub rules: Vec<RuleView>,
    pub created: i64,
    pub updated: i64,
    pub rev: u64,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub url: String,
    /// Masked (`sk-…4f2a`).
    pub api_key: Option<String>,
    pub api_key_ref: Option<String>,
    pub weight: Option<u32>,
    pub probe: String,
    pub disabled: bool,
    pub drain: bool,
    pub ca_file: Option<String>,
    /// What the gateways serving the model report (`-` when none does).
    pub health: String,
}

#[derive(Debug, Serialize)]
pub struct RuleView {
    pub id: u64,
    pub model: String,
    pub target: String,
    pub workspace: String,
    pub key: Option<String>,
    pub key_name: Option<String>,
    pub limit: u32,
    pub duration_secs: u32,
    /// `requests` or `tokens`: what `limit` counts.
    pub unit: &'static str,
}

impl RuleView {
    pub fn new(reg: &Registry, model: &str, r: &Rule) -> Self {
        Self {
            id: r.id,
            model: model.to_string(),
            target: r.spec.target.to_string(),
            workspace: r.spec.workspace.clone(),
            key: r.spec.key_id.clone(),
            key_name: r
                .spec
                .key_id
                .as_ref()
                .and_then(|id| reg.keys.get(id))
                .map(|k| k.name.clone()),
            limit: r.spec.limit,
            duration_secs: r.spec.duration_secs,
            unit: r.spec.unit.as_str(),
        }
    }
}

fn view(reg: &Registry, m: &Model, reports: &[GatewayReport], now: i64) -> ModelView {
    let access_path = reg
        .clusters
        .get(&m.spec.cluster)
        .map(Cluster::access_path)
        .unwrap_or_default();
    let fresh: Vec<&GatewayReport> = reports
        .iter()
        .filter(|r| r.is_fresh(now) && r.serves(&m.spec.cluster))
        .collect();
    ModelView {
        name: m.spec.name.clone(),
        cluster: m.spec.cluster.clone(),
        access_path,
        model_id: m.spec.model_id.clone(),
        policy: m.spec.policy,
        tags: m.spec.tags.clone(),
        fallbacks: m.spec.fallbacks.clone(),
        completion_cap: m.spec.completion_cap,
        status: if m.enabled { "enabled" } else { "disabled" },
        gateway_status: gateway_status(m, reports, now).to_string(),
        endpoints: m
            .spec
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| EndpointView {
                url: e.url.clone(),
                api_key: e.api_key.as_ref().map(|k| k.masked()),
                api_key_ref: e.api_key_ref.clone(),
                weight: e.weight,
                probe: e.probe.to_string(),
                disabled: e.disabled,
                drain: e.drain,
                ca_file: e.ca_file.clone(),
                health: endpoint_health(&fresh, &m.spec.name, i),
            })
            .collect(),
        rules: m
            .rules
            .iter()
            .map(|r| RuleView::new(reg, &m.spec.name, r))
            .collect(),
        created: m.created,
        updated: m.updated,
        rev: m.rev,
    }
}

/// The worst state any fresh gateway reports for endpoint `index`, with the
/// reason it left the rotation.
fn endpoint_health(fresh: &[&GatewayReport], model: &str, index: usize) -> String {
    let seen: Vec<_> = fresh
        .iter()
        .flat_map(|r| &r.endpoints)
        .filter(|e| e.model == model && e.index == index)
        .collect();
    let worst = STATE_SEVERITY
        .into_iter()
        .find_map(|s| seen.iter().find(|e| e.state == s));
    match worst {
        None => "-".into(),
        Some(e) => match &e.reason {
            Some(why) => format!("{} ({why})", e.state.as_str()),
            None => e.state.as_str().into(),
        },
    }
}

fn views(ctx: &Ctx, filter: impl Fn(&Model) -> bool) -> CliResult<Vec<ModelView>> {
    let reg = ctx.load()?;
    let reports = ctx.reports()?;
    let now = now_ms();
    Ok(reg
        .models
        .values()
        .filter(|m| filter(m))
        .map(|m| view(&reg, m, &reports, now))
        .collect())
}

/// One model's view; an unknown name is refused with the registry's words.
fn view_of(ctx: &Ctx, name: &str) -> CliResult<ModelView> {
    let reg = ctx.load()?;
    let m = reg.model(name)?;
    Ok(view(&reg, m, &ctx.reports()?, now_ms()))
}

fn list(ctx: &Ctx, tag: Option<String>) -> CliResult {
    let views = views(ctx, |m| {
        tag.as_ref().is_none_or(|t| m.spec.tags.contains(t))
    })?;
    ctx.emit(&views, || {
        let mut t = Table::new([
            "NAME",
            "MODEL ID",
            "TAGS",
            "STATUS",
            "ACCESS PATH",
            "GATEWAY",
        ]);
        for v in &views {
            t.row([
                v.name.clone(),
                v.model_id.clone(),
                or_dash(v.tags.join(",")),
                v.status.into(),
                v.access_path.clone(),
                v.gateway_status.clone(),
            ]);
        }
        t.render()
    })
}

fn show(ctx: &Ctx, name: &str) -> CliResult {
    let v = view_of(ctx, name)?;
    ctx.emit(&v, || render_detail(&v))
}

fn render_detail(v: &ModelView) -> String {
    let mut out = format!(
        "name:         {}\nmodel id:     {}\ncluster:      {}\naccess path:  {}\npolicy:       {}\ntags:         {}\nfallbacks:    {}\ncompl. cap:   {}\nstatus:       {}\ngateway:      {}\ncreated:      {}\nupdated:      {}\n\nENDPOINTS\n",
        v.name,
        v.model_id,
        v.cluster,
        v.access_path,
        v.policy,
        or_dash(v.tags.join(",")),
        or_dash(v.fallbacks.join(",")),
        v.completion_cap
            .map_or_else(|| "4096 (default)".to_owned(), |c| c.to_string()),
        v.status,
        v.gateway_status,
        utc(v.created),
        utc(v.updated),
    );
    let mut t = Table::new(["#", "URL", "KEY", "WEIGHT", "PROBE", "ENABLED", "HEALTH"]);
    for (i, e) in v.endpoints.iter().enumerate() {
        let key = match (&e.api_key, &e.api_key_ref) {
            (Some(k), Some(r)) => format!("{k} ({r})"),
            (Some(k), None) => k.clone(),
            _ => "-".into(),
        };
        t.row([
            i.to_string(),
            e.url.clone(),
            key,
            e.weight.map_or("-".into(), |w| w.to_string()),
            e.probe.clone(),
            if e.disabled { "no" } else { "yes" }.into(),
            e.health.clone(),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("\nRULES\n");
    if v.rules.is_empty() {
        out.push_str("(none)\n");
    } else {
        out.push_str(&rule_table(&v.rules));
    }
    out
}

/// The rules table, shared with `rule list`.
pub fn rule_table(rules: &[RuleView]) -> String {
    let mut t = Table::new([
        "ID",
        "MODEL",
        "TARGET",
        "WORKSPACE",
        "KEY",
        "LIMIT",
        "DURATION",
    ]);
    for r in rules {
        let key = match (&r.key, &r.key_name) {
            (Some(id), Some(n)) => format!("{id} ({n})"),
            (Some(id), None) => id.clone(),
            _ => "-".into(),
        };
        t.row([
            r.id.to_string(),
            r.model.clone(),
            r.target.clone(),
            r.workspace.clone(),
            key,
            if r.unit == "requests" {
                r.limit.to_string()
            } else {
                format!("{} {}", r.limit, r.unit)
            },
            format!("{}s", r.duration_secs),
        ]);
    }
    t.render()
}

fn create(ctx: &Ctx, a: CreateArgs) -> CliResult {
    let endpoints = refs::read_endpoints(&a.endpoints)?;
    let spec = ModelSpec {
        name: a.name.clone(),
        cluster: a.cluster,
        model_id: a.model_id.unwrap_or_default(),
        // A new model has no stored keys to keep.
        endpoints: refs::build_endpoints(&endpoints, &Registry::default(), &a.name),
        policy: a.policy,
        tags: clean_tags(a.tags),
        fallbacks: clean_tags(a.fallbacks),
        completion_cap: a.completion_cap.and_then(|c| c.0),
    };
    ctx.apply(vec![Change::CreateModel(spec)])?;
    print_model(ctx, &a.name, "created model")
}

fn edit(ctx: &Ctx, a: EditArgs) -> CliResult {
    let endpoints = refs::read_endpoints(&a.endpoints)?;
    let (applied, new_name) = ctx.update(|reg| {
        let old = reg.model(&a.model)?;
        let mut spec = old.spec.clone();
        if let Some(n) = &a.name {
            spec.name = n.clone();
        }
        if let Some(c) = &a.cluster {
            spec.cluster = c.clone();
        }
        if let Some(m) = &a.model_id {
            spec.model_id = m.clone();
        }
        if !endpoints.is_empty() {
            spec.endpoints = refs::build_endpoints(&endpoints, reg, &a.model);
        } else if matches!(a.policy, Some(p) if p != Policy::Weighted) {
            // Leaving the weighted policy: weights no longer mean anything.
            spec.endpoints.iter_mut().for_each(|e| e.weight = None);
        }
        if let Some(p) = a.policy {
            spec.policy = p;
        }
        if let Some(t) = &a.tags {
            spec.tags = clean_tags(t.clone());
        }
        if let Some(f) = &a.fallbacks {
            spec.fallbacks = clean_tags(f.clone());
        }
        if let Some(c) = a.completion_cap {
            spec.completion_cap = c.0;
        }
        let name = spec.name.clone();
        Ok((
            vec![Change::UpdateModel {
                name: a.model.clone(),
                spec,
            }],
            name,
        ))
    })?;
    let verb = if applied
        .outcomes
        .iter()
        .all(|o| *o == crate::domain::Outcome::Unchanged)
    {
        "unchanged:"
    } else {
        "updated model"
    };
    print_model(ctx, &new_name, verb)
}

fn routes(ctx: &Ctx, name: &str) -> CliResult {
    let reg = ctx.load()?;
    let m = reg.model(name)?;
    let rows = endpoint_routes(m, &ctx.reports()?, now_ms());
    let v = serde_json::json!({ "model": name, "policy": m.spec.policy, "endpoints": rows });
    ctx.emit(&v, || {
        let mut t = Table::new([
            "#", "URL", "STATE", "REASON", "SINCE", "UNTIL", "WEIGHT", "SHARE 1M",
        ]);
        for r in &rows {
            t.row([
                r.index.to_string(),
                r.url.clone(),
                r.state.map_or("-", |s| s.as_str()).into(),
                or_dash(r.reason.clone().unwrap_or_default()),
                r.since_ms.map_or("-".into(), utc),
                r.until_ms.map_or("-".into(), utc),
                r.weight.map_or("-".into(), |w| w.to_string()),
                r.share.map_or("-".into(), |s| {
                    format!("{:.1}% ({})", s * 100.0, r.requests_1m)
                }),
            ]);
        }
        format!("model {name} ({})\n{}", m.spec.policy, t.render())
    })
}

fn set_drain(ctx: &Ctx, model: String, index: usize, drain: bool) -> CliResult {
    ctx.apply(vec![Change::SetEndpointDrain {
        model: model.clone(),
        index,
        drain,
    }])?;
    let verb = if drain {
        format!("draining endpoint {index} of")
    } else {
        format!("undrained endpoint {index} of")
    };
    print_model(ctx, &model, &verb)
}

fn set_enabled(ctx: &Ctx, name: String, enabled: bool) -> CliResult {
    ctx.apply(vec![Change::SetEnabled {
        name: name.clone(),
        enabled,
    }])?;
    print_model(
        ctx,
        &name,
        if enabled {
            "enabled model"
        } else {
            "disabled model"
        },
    )
}

/// After a change: the model as JSON, or one line for people.
fn print_model(ctx: &Ctx, name: &str, verb: &str) -> CliResult {
    let v = view_of(ctx, name)?;
    ctx.emit(&v, || {
        format!(
            "{verb} {} ({}, {} endpoint(s), {}, access path {})",
            v.name,
            v.status,
            v.endpoints.len(),
            v.policy,
            v.access_path
        )
    })
}

/// Tags as given (`--tag a,b --tag c`), without empty ones (`--tag ''` clears).
fn clean_tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

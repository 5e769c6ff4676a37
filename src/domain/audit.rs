//! The audit trail's words: who made a change ([`Actor`]), through what
//! ([`Channel`]), and what it changed, entity by entity and field by field
//! ([`EntityChange`]), with secrets masked. No I/O here: the store writes an
//! [`AuditEntry`] in the same transaction as the change it describes.
//!
//! What an entry shows of an entity is its declared state: names, values,
//! statuses, rules and endpoints. Upstream keys appear masked (`sk-…4f2a`;
//! a key replaced by another with the same mask says so), platform keys by
//! their hint, key hashes never; bookkeeping that every change moves
//! (`created`, `updated`, `rev`) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::entities::{ApiKey, Cluster, MarketEntry, Model, Workspace};
use super::registry::{Registry, Touched};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    /// The OS user (local use) or the admin token's name (remote use).
    pub name: String,
}

/// What an [`Actor`]'s name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActorKind {
    /// The operating-system user running maasctl on the store's machine.
    User,
    /// An admin token (its name), through the admin API.
    Token,
}

impl Actor {
    pub fn user(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::User,
            name: name.into(),
        }
    }

    pub fn token(name: impl Into<String>) -> Self {
        Self {
            kind: ActorKind::Token,
            name: name.into(),
        }
    }
}

/// `alice` for a user, `token:ci` for an admin token.
impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ActorKind::User => f.write_str(&self.name),
            ActorKind::Token => write!(f, "token:{}", self.name),
        }
    }
}

/// Through what a change came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// A `maasctl` subcommand (`model create`, `rule add`, `rollback`, …).
    Cli,
    /// `maasctl apply -f`.
    Apply,
    /// The console, embedded or attached (`--connect`).
    Console,
    /// The admin API called by something other than maasctl (a script).
    AdminApi,
    /// A gateway pointing the `local` cluster at itself.
    Gateway,
    /// `maasctl demo` seeding its throw-away store.
    Demo,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Cli,
        Channel::Apply,
        Channel::Console,
        Channel::AdminApi,
        Channel::Gateway,
        Channel::Demo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Cli => "cli",
            Channel::Apply => "apply",
            Channel::Console => "console",
            Channel::AdminApi => "admin-api",
            Channel::Gateway => "gateway",
            Channel::Demo => "demo",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| {
                let all: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                format!("'{s}' is not a channel; use one of {}", all.join(", "))
            })
    }
}

/// Who, through what, and (optionally) in a word what: travels with a
/// batch of changes into the store, which records it with the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub actor: Actor,
    pub channel: Channel,
    /// What the batch is, when the caller knows better than the list of
    /// its changes (`rollback to revision 3`, `apply -f registry.yaml`).
    pub note: Option<String>,
}

impl Origin {
    pub fn new(actor: Actor, channel: Channel) -> Self {
        Self {
            actor,
            channel,
            note: None,
        }
    }

    /// A change by the OS user `name`.
    pub fn user(name: impl Into<String>, channel: Channel) -> Self {
        Self::new(Actor::user(name), channel)
    }

    /// A change through the admin API with the token `name`.
    pub fn token(name: impl Into<String>, channel: Channel) -> Self {
        Self::new(Actor::token(name), channel)
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// What a change did to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityAction {
    Created,
    Updated,
    Deleted,
}

impl EntityAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityAction::Created => "created",
            EntityAction::Updated => "updated",
            EntityAction::Deleted => "deleted",
        }
    }
}

/// One field before and after (absent: the field had, or has, no value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// `limit`, `endpoints[1].weight`, `rules[#3].limit`, …
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// What a change did to one entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityChange {
    /// `kind/name`: `model/DeepSeek-V3`, `key/key_7f3a12cd`, `token/ci`, …
    pub entity: String,
    pub action: EntityAction,
    pub fields: Vec<FieldChange>,
}

/// One entry of the audit trail: one committed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the trail (1, 2, …).
    pub id: u64,
    /// Unix ms.
    pub at_ms: i64,
    pub actor: Actor,
    pub channel: Channel,
    /// The registry revision the change made; `None` for changes outside
    /// the registry (admin tokens).
    pub revision: Option<u64>,
    /// One line: what the change was.
    pub summary: String,
    pub changes: Vec<EntityChange>,
}

impl AuditEntry {
    /// Whether the entry changed `entity` (`kind/name`).
    pub fn touches(&self, entity: &str) -> bool {
        self.changes.iter().any(|c| c.entity == entity)
    }
}

/// Which entries `maasctl audit` and `GET /admin/v1/audit` return: the
/// newest `limit` of those at or after `since_ms` that touch `entity`,
/// oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Only entries that made a registry revision (the history).
    #[serde(default)]
    pub revisions_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The kinds of registry entity, as audit entries name them.
pub const ENTITY_KINDS: [&str; 7] = [
    "market",
    "cluster",
    "workspace",
    "key",
    "model",
    "budget",
    "token",
];

/// Check an `--entity` / `?entity=` value: `kind/name`.
pub fn parse_entity(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((kind, name)) if ENTITY_KINDS.contains(&kind) && !name.is_empty() => Ok(s.into()),
        _ => Err(format!(
            "'{s}' is not KIND/NAME (KIND one of {}), e.g. model/DeepSeek-V3 or key/key_7f3a12cd",
            ENTITY_KINDS.join(", ")
        )),
    }
}

/// A field's value for people: strings without quotes (the empty one as
/// `""`), lists comma-separated, the rest as JSON.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

type Fields = BTreeMap<String, Value>;

fn put(f: &mut Fields, name: &str, v: impl Serialize) {
    let v = json!(v);
    if !v.is_null() {
        f.insert(name.to_string(), v);
    }
}

fn market_fields(e: &MarketEntry) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "provider", &e.provider);
    put(&mut f, "tags", &e.tags);
    put(&mut f, "description", &e.description);
    put(&mut f, "published", e.published);
    f
}

fn cluster_fields(c: &Cluster) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "entry_address", &c.entry_address);
    f
}

fn workspace_fields(w: &Workspace) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "description", &w.description);
    f
}

fn key_fields(k: &ApiKey) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "workspace", &k.workspace);
    put(&mut f, "name", &k.name);
    put(&mut f, "secret", k.masked());
    put(&mut f, "revoked", k.revoked);
    f
}

fn budget_fields(b: &crate::domain::budget::Budget) -> Fields {
    let s = &b.spec;
    let mut f = Fields::new();
    put(&mut f, "target", s.target.as_str());
    put(&mut f, "subject", &s.subject);
    put(&mut f, "unit", s.unit.as_str());
    put(&mut f, "amount", s.amount);
    put(&mut f, "period", s.period.as_str());
    f
}

fn model_fields(m: &Model) -> Fields {
    let s = &m.spec;
    let mut f = Fields::new();
    put(&mut f, "cluster", &s.cluster);
    put(&mut f, "model_id", &s.model_id);
    put(&mut f, "policy", s.policy.as_str());
    put(&mut f, "tags", &s.tags);
    if !s.fallbacks.is_empty() {
        put(&mut f, "fallbacks", &s.fallbacks);
    }
    if let Some(c) = s.completion_cap {
        put(&mut f, "completion_cap", c);
    }
    put(&mut f, "enabled", m.enabled);
    for (i, e) in s.endpoints.iter().enumerate() {
        let p = |n: &str| format!("endpoints[{i}].{n}");
        put(&mut f, &p("url"), &e.url);
        put(
            &mut f,
            &p("api_key"),
            e.api_key.as_ref().map(|k| k.masked()),
        );
        put(&mut f, &p("api_key_ref"), &e.api_key_ref);
        put(&mut f, &p("weight"), e.weight);
        put(&mut f, &p("probe"), e.probe.as_str());
        put(&mut f, &p("disabled"), e.disabled);
        put(&mut f, &p("ca_file"), &e.ca_file);
    }
    for r in &m.rules {
        let p = |n: &str| format!("rules[#{}].{n}", r.id);
        put(&mut f, &p("target"), r.spec.target.as_str());
        put(&mut f, &p("workspace"), &r.spec.workspace);
        put(&mut f, &p("key_id"), &r.spec.key_id);
        put(&mut f, &p("limit"), r.spec.limit);
        put(&mut f, &p("duration_secs"), r.spec.duration_secs);
    }
    f
}

/// The field-by-field change from `before` to `after` of one entity
/// (`None`: it did not exist); `None` when nothing shown changed.
pub fn entity_change(
    entity: String,
    before: Option<Fields>,
    after: Option<Fields>,
) -> Option<EntityChange> {
    let action = match (&before, &after) {
        (None, None) => return None,
        (None, Some(_)) => EntityAction::Created,
        (Some(_), None) => EntityAction::Deleted,
        (Some(_), Some(_)) => EntityAction::Updated,
    };
    let (before, after) = (before.unwrap_or_default(), after.unwrap_or_default());
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let fields: Vec<FieldChange> = names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| FieldChange {
            field: n.clone(),
            before: before.get(n).cloned(),
            after: after.get(n).cloned(),
        })
        .collect();
    if action == EntityAction::Updated && fields.is_empty() {
        return None;
    }
    Some(EntityChange {
        entity,
        action,
        fields,
    })
}

/// Upstream keys replaced by another key with the same mask: the masks
/// alone would hide the change.
fn replaced_keys(before: &Model, after: &Model, out: &mut EntityChange) {
    for (i, (b, a)) in before
        .spec
        .endpoints
        .iter()
        .zip(&after.spec.endpoints)
        .enumerate()
    {
        if let (Some(bk), Some(ak)) = (&b.api_key, &a.api_key)
            && bk != ak
            && bk.masked() == ak.masked()
        {
            out.fields.push(FieldChange {
                field: format!("endpoints[{i}].api_key"),
                before: Some(json!(bk.masked())),
                after: Some(json!(format!("{} (another key)", ak.masked()))),
            });
        }
    }
}

/// What a batch changed, entity by entity (in the order market, cluster,
/// workspace, key, model; by name within a kind), from the registry before
/// and after it and the entities it touched.
pub fn registry_changes(
    before: &Registry,
    after: &Registry,
    touched: &Touched,
) -> Vec<EntityChange> {
    fn kind<T>(
        out: &mut Vec<EntityChange>,
        label: &str,
        names: &BTreeSet<String>,
        before: &BTreeMap<String, T>,
        after: &BTreeMap<String, T>,
        fields: impl Fn(&T) -> Fields,
    ) {
        for n in names {
            let b = before.get(n).map(&fields);
            let a = after.get(n).map(&fields);
            out.extend(entity_change(format!("{label}/{n}"), b, a));
        }
    }
    let mut out = Vec::new();
    kind(
        &mut out,
        "market",
        &touched.market,
        &before.market,
        &after.market,
        market_fields,
    );
    kind(
        &mut out,
        "cluster",
        &touched.clusters,
        &before.clusters,
        &after.clusters,
        cluster_fields,
    );
    kind(
        &mut out,
        "workspace",
        &touched.workspaces,
        &before.workspaces,
        &after.workspaces,
        workspace_fields,
    );
    kind(
        &mut out,
        "key",
        &touched.keys,
        &before.keys,
        &after.keys,
        key_fields,
    );
    for n in &touched.models {
        let (b, a) = (before.models.get(n), after.models.get(n));
        let change = entity_change(
            format!("model/{n}"),
            b.map(model_fields),
            a.map(model_fields),
        );
        let mut change = change.unwrap_or(EntityChange {
            entity: format!("model/{n}"),
            action: EntityAction::Updated,
            fields: Vec::new(),
        });
        if let (Some(b), Some(a)) = (b, a) {
            replaced_keys(b, a, &mut change);
        }
        if !change.fields.is_empty() || change.action != EntityAction::Updated {
            out.push(change);
        }
    }
    kind(
        &mut out,
        "budget",
        &touched.budgets,
        &before.budgets,
        &after.budgets,
        budget_fields,
    );
    out
}

/// Every entity of `reg`, as [`registry_changes`] shows it: used to show
/// what a whole registry differs by (`rollback --dry-run`).
pub fn whole(reg: &Registry) -> Touched {
    Touched {
        market: reg.market.keys().cloned().collect(),
        clusters: reg.clusters.keys().cloned().collect(),
        workspaces: reg.workspaces.keys().cloned().collect(),
        keys: reg.keys.keys().cloned().collect(),
        models: reg.models.keys().cloned().collect(),
        budgets: reg.budgets.keys().cloned().collect(),
    }
}

/// [`whole`] of both registries together.
pub fn both(a: &Registry, b: &Registry) -> Touched {
    let (mut t, u) = (whole(a), whole(b));
    t.market.extend(u.market);
    t.clusters.extend(u.clusters);
    t.workspaces.extend(u.workspaces);
    t.keys.extend(u.keys);
    t.models.extend(u.models);
    t.budgets.extend(u.budgets);
    t
}

/// An admin token as the audit trail shows it (never its secret or hash).
pub fn token_fields(role: &str, hint: &str, revoked: Option<i64>) -> Fields {
    let mut f = Fields::new();
    put(&mut f, "role", role);
    put(&mut f, "secret", format!("maasadm_…{hint}"));
    put(&mut f, "revoked", revoked);
    f
}

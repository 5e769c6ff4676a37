//! The declarative file of `maasctl apply -f` and `maasctl export`.
//!
//! A [`Manifest`] is a desired state. [`plan`] compares it with a loaded
//! [`Registry`] and yields the [`Change`]s that make the registry match, a
//! per-entity report (created / changed / unchanged) and the secrets of keys
//! it creates. [`export`] is the inverse. No I/O here: reading `env:`/`file:`
//! references is the caller's job, passed in as a function.
//!
//! Semantics (README "Decisions"):
//! - Entities not in the file are left alone (no pruning), like `kubectl
//!   apply` without `--prune`. Keys are entities too: a key missing from its
//!   workspace's list stays.
//! - An entity in the file is declared whole: a model's endpoints, tags and
//!   rules are replaced by the file's (an omitted list means empty).
//! - Rules have no ids in a file: they are matched to a model's stored rules
//!   by (target, workspace, key) and updated in place, so their ids (and the
//!   gateway's limiter windows hanging on them) survive edits.
//! - Upstream keys and key secrets are never written in a file: only
//!   references (`env:VAR`, `file:PATH`). An endpoint without `api_key` keeps
//!   the key stored for that URL; `api_key: none` removes it.
//!
//! One module per entity holds its declaration (the file's shape), how it is
//! planned against the registry, and how it is exported: `market`,
//! `cluster`, `workspace`, `key`, `model`, `rule`, `budget`.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::error::{DomainError, FieldError};
use super::registry::{Change, Registry, Touched};

mod budget;
mod cluster;
mod key;
mod market;
mod model;
mod rule;
mod workspace;

pub use budget::BudgetDecl;
pub use cluster::ClusterDecl;
pub use key::KeyDecl;
pub use market::MarketDecl;
pub use model::{EndpointDecl, ModelDecl};
pub use rule::RuleDecl;
pub use workspace::WorkspaceDecl;

/// `api_key: none` in a file: the endpoint has no upstream key.
pub const NO_KEY: &str = "none";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub market: Vec<MarketDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelDecl>,
    /// Budgets (docs/usage.md "Budgets"), matched by subject, unit and period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetDecl>,
}

/// `skip_serializing_if` for flags that are off by default.
fn is_false(b: &bool) -> bool {
    !*b
}

/// What `apply` did (or would do) to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyAction {
    Created,
    Changed,
    Unchanged,
}

impl ApplyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyAction::Created => "created",
            ApplyAction::Changed => "changed",
            ApplyAction::Unchanged => "unchanged",
        }
    }
}

/// One line of the apply report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `market`, `cluster`, `workspace`, `key`, `model` or `budget`.
    pub kind: String,
    /// The entity's name (`workspace/key` for keys).
    pub name: String,
    pub action: ApplyAction,
    /// What changed (`policy`, `rules: 1 added`, …); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A key `apply` created with a generated secret: shown once, then only its
/// hash exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSecret {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub secret: String,
}

/// The changes that make a registry match a manifest.
#[derive(Debug, Clone)]
pub struct Plan {
    /// In an order the registry accepts (publish before enable, disable
    /// before unpublish, keys before the rules naming them).
    pub changes: Vec<Change>,
    pub report: Vec<Report>,
    pub secrets: Vec<NewSecret>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Reads a secret reference (`env:VAR`, `file:PATH`); the error says why not.
pub type ReadRef<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Compute the changes that make `reg` match `m`. Every change is tried on a
/// scratch copy as it is planned, so a refusal names the file's field
/// (`models[1].rules[0].limit: …`) and a plan that comes back applies cleanly
/// to `reg`.
pub fn plan(reg: &Registry, m: &Manifest, read: ReadRef) -> Result<Plan, DomainError> {
    check_unique(m)?;
    let mut p = Planner {
        scratch: reg.clone(),
        touched: Touched::default(),
        now: super::now_secs(),
        changes: Vec::new(),
        late: Vec::new(),
        report: Vec::new(),
        secrets: Vec::new(),
    };
    for (i, d) in m.market.iter().enumerate() {
        p.market(&format!("market[{i}]"), d)?;
    }
    for (i, d) in m.clusters.iter().enumerate() {
        p.cluster(&format!("clusters[{i}]"), d)?;
    }
    for (i, d) in m.workspaces.iter().enumerate() {
        p.workspace(&format!("workspaces[{i}]"), d, read)?;
    }
    for (i, d) in m.models.iter().enumerate() {
        p.model(&format!("models[{i}]"), d, read)?;
    }
    for (i, d) in m.budgets.iter().enumerate() {
        p.budget(&format!("budgets[{i}]"), d)?;
    }
    // Enabling after every publish and rule; unpublishing after every disable.
    let late = std::mem::take(&mut p.late);
    for (field, c) in late {
        p.push_field(&field, c)?;
    }
    Ok(Plan {
        changes: p.changes,
        report: p.report,
        secrets: p.secrets,
    })
}

struct Planner {
    scratch: Registry,
    touched: Touched,
    now: i64,
    changes: Vec<Change>,
    /// Changes that must come after all others: (path for errors, change).
    late: Vec<(String, Change)>,
    report: Vec<Report>,
    secrets: Vec<NewSecret>,
}

impl Planner {
    /// Try `c` on the scratch registry and keep it; a refusal's fields are
    /// put under `path` (`models[0]` + `endpoints[1].url`).
    fn push(&mut self, path: &str, c: Change) -> Result<(), DomainError> {
        self.scratch
            .apply(c.clone(), self.now, &mut self.touched)
            .map_err(|e| e.within(path))?;
        self.changes.push(c);
        Ok(())
    }

    /// Like [`push`](Self::push), for a change that sets exactly the file
    /// field `field` (`models[0].enabled`): a refusal names that field.
    fn push_field(&mut self, field: &str, c: Change) -> Result<(), DomainError> {
        self.scratch
            .apply(c.clone(), self.now, &mut self.touched)
            .map_err(|mut e| {
                for fe in &mut e.errors {
                    fe.field = field.to_string();
                }
                e
            })?;
        self.changes.push(c);
        Ok(())
    }

    fn note(
        &mut self,
        kind: &'static str,
        name: String,
        action: ApplyAction,
        details: Vec<String>,
    ) {
        self.report.push(Report {
            kind: kind.to_string(),
            name,
            action,
            details,
        });
    }
}

fn diff<T: PartialEq>(out: &mut Vec<String>, what: &str, old: &T, new: &T) {
    if old != new {
        out.push(what.to_string());
    }
}

/// Refuse a file that declares the same entity twice.
fn check_unique(m: &Manifest) -> Result<(), DomainError> {
    fn dup<'a>(list: &str, names: impl Iterator<Item = &'a str>, errs: &mut Vec<FieldError>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, n) in names.enumerate() {
            if let Some(first) = seen.insert(n, i) {
                errs.push(FieldError::new(
                    format!("{list}[{i}].name"),
                    format!("'{n}' is declared twice (also {list}[{first}])"),
                ));
            }
        }
    }
    let mut errs = Vec::new();
    dup(
        "market",
        m.market.iter().map(|d| d.name.as_str()),
        &mut errs,
    );
    dup(
        "clusters",
        m.clusters.iter().map(|d| d.name.as_str()),
        &mut errs,
    );
    dup(
        "workspaces",
        m.workspaces.iter().map(|d| d.name.as_str()),
        &mut errs,
    );
    for (i, w) in m.workspaces.iter().enumerate() {
        dup(
            &format!("workspaces[{i}].keys"),
            w.keys.iter().map(|k| k.name.as_str()),
            &mut errs,
        );
    }
    dup(
        "models",
        m.models.iter().map(|d| d.name.as_str()),
        &mut errs,
    );
    DomainError::check(errs)
}

/// The registry as a manifest: `apply -f` of it onto the same registry
/// changes nothing, and onto a new store rebuilds it (given the referenced
/// variables and files). Entities equal to `baseline` (what a new store
/// already holds: the default catalog and cluster) are left out when given.
/// Secrets are never written: keys by name only, upstream keys as their
/// references (or left out when given by value).
pub fn export(reg: &Registry, baseline: Option<&Registry>) -> Manifest {
    Manifest {
        market: market::export(reg, baseline),
        clusters: cluster::export(reg, baseline),
        workspaces: workspace::export(reg),
        models: model::export(reg),
        budgets: budget::export(reg),
    }
}

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

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use super::entities::*;
use super::error::{DomainError, FieldError};
use super::registry::{Change, Registry, Touched};
use super::secret::{self, Secret};
use super::validate;

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDecl {
    pub name: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub published: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDecl {
    pub name: String,
    pub entry_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The workspace's keys, by name. Not exhaustive: keys left out stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyDecl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDecl {
    pub name: String,
    /// A revoked key stays revoked; revoking is declared here.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoked: bool,
    /// `env:VAR` / `file:PATH` holding the secret to import when the key is
    /// created (else one is generated and printed once). Never exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDecl {
    pub name: String,
    #[serde(default = "default_cluster")]
    pub cluster: String,
    pub model_id: String,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub endpoints: Vec<EndpointDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDecl>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDecl {
    pub url: String,
    /// `env:VAR`, `file:PATH` or `none`; left out = keep the stored key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "is_default_probe")]
    pub probe: Probe,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDecl {
    pub target: RuleTarget,
    pub workspace: String,
    /// The key's name within `workspace` (target `api-key` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub limit: u32,
    /// Seconds.
    pub duration: u32,
}

fn default_cluster() -> String {
    Cluster::DEFAULT.to_string()
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_default_probe(p: &Probe) -> bool {
    *p == Probe::default()
}

/// What `apply` did (or would do) to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Created,
    Changed,
    Unchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Changed => "changed",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One line of the apply report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `market`, `cluster`, `workspace`, `key` or `model`.
    pub kind: &'static str,
    /// The entity's name (`workspace/key` for keys).
    pub name: String,
    pub action: Action,
    /// What changed (`policy`, `rules: 1 added`, …); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A key `apply` created with a generated secret: shown once, then only its
/// hash exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

    fn note(&mut self, kind: &'static str, name: String, action: Action, details: Vec<String>) {
        self.report.push(Report {
            kind,
            name,
            action,
            details,
        });
    }

    fn market(&mut self, path: &str, d: &MarketDecl) -> Result<(), DomainError> {
        let entry = MarketEntry {
            name: d.name.clone(),
            provider: d.provider.clone(),
            tags: d.tags.clone(),
            description: d.description.clone(),
            published: d.published,
        };
        let Some(old) = self.scratch.market.get(&d.name).cloned() else {
            self.push(path, Change::AddMarket(entry))?;
            self.note("market", d.name.clone(), Action::Created, vec![]);
            return Ok(());
        };
        if old == entry {
            self.note("market", d.name.clone(), Action::Unchanged, vec![]);
            return Ok(());
        }
        let mut details = Vec::new();
        diff(&mut details, "provider", &old.provider, &entry.provider);
        diff(&mut details, "tags", &old.tags, &entry.tags);
        diff(
            &mut details,
            "description",
            &old.description,
            &entry.description,
        );
        if old.published != entry.published {
            details.push(
                if entry.published {
                    "published"
                } else {
                    "unpublished"
                }
                .into(),
            );
        }
        // Unpublish last, after the models it backs may have been disabled.
        let unpublish = old.published && !entry.published;
        let now = MarketEntry {
            published: old.published,
            ..entry.clone()
        };
        if !unpublish || now != old {
            let entry = if unpublish { now } else { entry };
            self.push(
                path,
                Change::UpdateMarket {
                    name: d.name.clone(),
                    entry,
                },
            )?;
        }
        if unpublish {
            self.late.push((
                format!("{path}.published"),
                Change::SetPublished {
                    name: d.name.clone(),
                    published: false,
                },
            ));
        }
        self.note("market", d.name.clone(), Action::Changed, details);
        Ok(())
    }

    fn cluster(&mut self, path: &str, d: &ClusterDecl) -> Result<(), DomainError> {
        let cluster = Cluster {
            name: d.name.clone(),
            entry_address: d.entry_address.clone(),
        };
        match self.scratch.clusters.get(&d.name) {
            None => {
                self.push(path, Change::AddCluster(cluster))?;
                self.note("cluster", d.name.clone(), Action::Created, vec![]);
            }
            Some(old) if *old == cluster => {
                self.note("cluster", d.name.clone(), Action::Unchanged, vec![]);
            }
            Some(_) => {
                self.push(
                    path,
                    Change::UpdateCluster {
                        name: d.name.clone(),
                        cluster,
                    },
                )?;
                self.note(
                    "cluster",
                    d.name.clone(),
                    Action::Changed,
                    vec!["entry_address".into()],
                );
            }
        }
        Ok(())
    }

    fn workspace(
        &mut self,
        path: &str,
        d: &WorkspaceDecl,
        read: ReadRef,
    ) -> Result<(), DomainError> {
        match self.scratch.workspaces.get(&d.name) {
            None => {
                self.push(
                    path,
                    Change::AddWorkspace {
                        name: d.name.clone(),
                        description: d.description.clone(),
                    },
                )?;
                self.note("workspace", d.name.clone(), Action::Created, vec![]);
            }
            Some(old) if old.description == d.description => {
                self.note("workspace", d.name.clone(), Action::Unchanged, vec![]);
            }
            Some(_) => {
                self.push(
                    path,
                    Change::UpdateWorkspace {
                        name: d.name.clone(),
                        description: d.description.clone(),
                    },
                )?;
                self.note(
                    "workspace",
                    d.name.clone(),
                    Action::Changed,
                    vec!["description".into()],
                );
            }
        }
        for (j, k) in d.keys.iter().enumerate() {
            self.key(&format!("{path}.keys[{j}]"), &d.name, k, read)?;
        }
        Ok(())
    }

    fn key(&mut self, path: &str, ws: &str, d: &KeyDecl, read: ReadRef) -> Result<(), DomainError> {
        let label = format!("{ws}/{}", d.name);
        let existing = self
            .scratch
            .keys
            .values()
            .find(|k| k.workspace == ws && k.name == d.name)
            .cloned();
        // The secret to import: needed to create the key; for an existing
        // key, checked when readable (a re-apply without it changes nothing).
        let imported = match &d.secret {
            None => None,
            Some(r) => {
                let field = format!("{path}.secret");
                let mut errs = Vec::new();
                validate::key_reference(&field, r, &mut errs);
                DomainError::check(errs)?;
                match read(r) {
                    Ok(s) => {
                        secret::validate_imported_secret(&s).map_err(|p| {
                            DomainError::invalid(&field, format!("the secret in {r} {p}"))
                        })?;
                        Some(s)
                    }
                    Err(_) if existing.is_some() => None,
                    Err(e) => {
                        return Err(DomainError::invalid(field, format!("cannot read {r}: {e}")));
                    }
                }
            }
        };
        let Some(k) = existing else {
            let (secret, generated) = match imported {
                Some(s) => (s, false),
                None => (secret::generate_secret(), true),
            };
            let id = loop {
                let id = secret::generate_key_id();
                if !self.scratch.keys.contains_key(&id) {
                    break id;
                }
            };
            self.push(
                path,
                Change::CreateKey {
                    id: id.clone(),
                    workspace: ws.to_string(),
                    name: d.name.clone(),
                    secret_hash: secret::hash_secret(&secret),
                    secret_hint: secret::secret_hint(&secret),
                },
            )?;
            if d.revoked {
                self.push(path, Change::RevokeKey { id })?;
            } else if generated {
                self.secrets.push(NewSecret {
                    id,
                    workspace: ws.to_string(),
                    name: d.name.clone(),
                    secret,
                });
            }
            self.note("key", label, Action::Created, vec![]);
            return Ok(());
        };
        if let Some(s) = imported
            && secret::hash_secret(&s) != k.secret_hash
        {
            return Err(DomainError::refused(
                format!("{path}.secret"),
                format!(
                    "key '{label}' ({}) exists with a different secret; secrets cannot be changed: revoke it and declare a new key",
                    k.id
                ),
            ));
        }
        match (k.is_revoked(), d.revoked) {
            (true, false) => Err(DomainError::refused(
                format!("{path}.revoked"),
                format!(
                    "key '{label}' ({}) is revoked and cannot be restored; declare a new key",
                    k.id
                ),
            )),
            (false, true) => {
                self.push(path, Change::RevokeKey { id: k.id })?;
                self.note("key", label, Action::Changed, vec!["revoked".into()]);
                Ok(())
            }
            _ => {
                self.note("key", label, Action::Unchanged, vec![]);
                Ok(())
            }
        }
    }

    fn model(&mut self, path: &str, d: &ModelDecl, read: ReadRef) -> Result<(), DomainError> {
        let old = self.scratch.models.get(&d.name).cloned();
        let spec = ModelSpec {
            name: d.name.clone(),
            cluster: d.cluster.clone(),
            model_id: d.model_id.clone(),
            endpoints: d
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    resolve_endpoint(
                        &format!("{path}.endpoints[{i}]"),
                        e,
                        i,
                        d,
                        &self.scratch,
                        read,
                    )
                })
                .collect::<Result<_, _>>()?,
            policy: d.policy,
            tags: d.tags.clone(),
        };
        let rules = d
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| self.rule_spec(&format!("{path}.rules[{i}]"), r))
            .collect::<Result<Vec<_>, _>>()?;
        let enable = (path.to_string() + ".enabled", d.enabled);
        let Some(old) = old else {
            self.push(path, Change::CreateModel(spec))?;
            for (i, r) in rules.into_iter().enumerate() {
                self.push(
                    &format!("{path}.rules[{i}]"),
                    Change::AddRule {
                        model: d.name.clone(),
                        spec: r,
                    },
                )?;
            }
            if d.enabled {
                self.late.push((enable.0, set_enabled(&d.name, true)));
            }
            self.note("model", d.name.clone(), Action::Created, vec![]);
            return Ok(());
        };
        let mut details = Vec::new();
        if old.enabled && !d.enabled {
            // Disable first: later steps (unpublishing its entry) may need it.
            self.push_field(&enable.0, set_enabled(&d.name, false))?;
            details.push("disabled".into());
        }
        if old.spec != spec {
            let o = &old.spec;
            diff(&mut details, "cluster", &o.cluster, &spec.cluster);
            diff(&mut details, "model_id", &o.model_id, &spec.model_id);
            diff(&mut details, "endpoints", &o.endpoints, &spec.endpoints);
            diff(&mut details, "policy", &o.policy, &spec.policy);
            diff(&mut details, "tags", &o.tags, &spec.tags);
            self.push(
                path,
                Change::UpdateModel {
                    name: d.name.clone(),
                    spec,
                },
            )?;
        }
        let (rule_changes, counts) = match_rules(&d.name, &old.rules, rules);
        for (i, c) in rule_changes {
            let p = i.map_or_else(|| format!("{path}.rules"), |i| format!("{path}.rules[{i}]"));
            self.push(&p, c)?;
        }
        if let Some(c) = counts {
            details.push(c);
        }
        if !old.enabled && d.enabled {
            self.late.push((enable.0, set_enabled(&d.name, true)));
            details.push("enabled".into());
        }
        let action = if details.is_empty() {
            Action::Unchanged
        } else {
            Action::Changed
        };
        self.note("model", d.name.clone(), action, details);
        Ok(())
    }

    /// A file rule as a `RuleSpec`: its key name becomes the key's id.
    fn rule_spec(&self, path: &str, r: &RuleDecl) -> Result<RuleSpec, DomainError> {
        let key_id = match (r.target, &r.key) {
            (RuleTarget::ApiKey, Some(name)) if !name.trim().is_empty() => Some(
                self.scratch
                    .keys
                    .values()
                    .find(|k| k.workspace == r.workspace && k.name == *name)
                    .map(|k| k.id.clone())
                    .ok_or_else(|| {
                        DomainError::not_found(
                            format!("{path}.key"),
                            format!(
                                "workspace '{}' has no key named '{name}' (declare it under the workspace's keys)",
                                r.workspace
                            ),
                        )
                    })?,
            ),
            // Left for the registry to refuse with its own words.
            (_, k) => k.clone(),
        };
        Ok(RuleSpec {
            target: r.target,
            workspace: r.workspace.clone(),
            key_id,
            limit: r.limit,
            duration_secs: r.duration,
        })
    }
}

fn set_enabled(name: &str, enabled: bool) -> Change {
    Change::SetEnabled {
        name: name.to_string(),
        enabled,
    }
}

fn diff<T: PartialEq>(out: &mut Vec<String>, what: &str, old: &T, new: &T) {
    if old != new {
        out.push(what.to_string());
    }
}

/// A file endpoint as an `Endpoint`, resolving its key reference. The stored
/// endpoint with the same URL (same occurrence) lends its key when the file
/// gives none, or when the file's reference is the stored one and cannot be
/// read here (re-applying without the variable set changes nothing).
fn resolve_endpoint(
    path: &str,
    e: &EndpointDecl,
    index: usize,
    model: &ModelDecl,
    reg: &Registry,
    read: ReadRef,
) -> Result<Endpoint, DomainError> {
    let nth = model.endpoints[..index]
        .iter()
        .filter(|p| p.url == e.url)
        .count();
    let stored = reg.stored_endpoint(&model.name, &e.url, nth);
    let field = format!("{path}.api_key");
    let (api_key, api_key_ref) = match e.api_key.as_deref() {
        None => stored.map_or((None, None), |s| (s.api_key.clone(), s.api_key_ref.clone())),
        Some(NO_KEY) => (None, None),
        Some(r) if !r.starts_with("env:") && !r.starts_with("file:") => {
            return Err(DomainError::invalid(
                field,
                "write env:VARIABLE, file:PATH or none, not the key itself: files get shared and committed",
            ));
        }
        Some(r) => {
            let mut errs = Vec::new();
            validate::key_reference(&field, r, &mut errs);
            DomainError::check(errs)?;
            match read(r) {
                Ok(v) => (Some(Secret::new(v)), Some(r.to_string())),
                Err(problem) => match stored {
                    Some(s) if s.api_key.is_some() && s.api_key_ref.as_deref() == Some(r) => {
                        (s.api_key.clone(), s.api_key_ref.clone())
                    }
                    _ => {
                        return Err(DomainError::invalid(
                            field,
                            format!("cannot read {r}: {problem}"),
                        ));
                    }
                },
            }
        }
    };
    Ok(Endpoint {
        url: e.url.clone(),
        api_key,
        api_key_ref,
        weight: e.weight,
        probe: e.probe,
        disabled: e.disabled,
        ca_file: e.ca_file.clone(),
    })
}

/// Match desired rules to stored ones: identical rules first, then by
/// (target, workspace, key) in order, updated in place; the rest are added or
/// deleted. Returns the changes (with the file index of the rule each comes
/// from) and a summary such as `rules: 1 added, 2 changed`.
fn match_rules(
    model: &str,
    stored: &[Rule],
    desired: Vec<RuleSpec>,
) -> (Vec<(Option<usize>, Change)>, Option<String>) {
    let mut taken = vec![false; stored.len()];
    let mut slot: Vec<Option<usize>> = vec![None; desired.len()];
    for (i, d) in desired.iter().enumerate() {
        if let Some(j) = (0..stored.len()).find(|&j| !taken[j] && stored[j].spec == *d) {
            taken[j] = true;
            slot[i] = Some(j);
        }
    }
    let same_subject = |a: &RuleSpec, b: &RuleSpec| {
        a.target == b.target && a.workspace == b.workspace && a.key_id == b.key_id
    };
    let mut out = Vec::new();
    let (mut added, mut changed, mut deleted) = (0, 0, 0);
    for (i, d) in desired.iter().enumerate() {
        if slot[i].is_some() {
            continue;
        }
        if let Some(j) = (0..stored.len()).find(|&j| !taken[j] && same_subject(&stored[j].spec, d))
        {
            taken[j] = true;
            slot[i] = Some(j);
            changed += 1;
            out.push((
                Some(i),
                Change::UpdateRule {
                    model: model.to_string(),
                    id: stored[j].id,
                    spec: d.clone(),
                },
            ));
        }
    }
    for (j, r) in stored.iter().enumerate() {
        if !taken[j] {
            deleted += 1;
            out.push((
                None,
                Change::DeleteRule {
                    model: model.to_string(),
                    id: r.id,
                },
            ));
        }
    }
    for (i, d) in desired.into_iter().enumerate() {
        if slot[i].is_none() {
            added += 1;
            out.push((
                Some(i),
                Change::AddRule {
                    model: model.to_string(),
                    spec: d,
                },
            ));
        }
    }
    let parts: Vec<String> = [(added, "added"), (changed, "changed"), (deleted, "deleted")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    let summary = (!parts.is_empty()).then(|| format!("rules: {}", parts.join(", ")));
    (out, summary)
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
    let market = reg
        .market
        .values()
        .filter(|e| baseline.and_then(|b| b.market.get(&e.name)) != Some(*e))
        .map(|e| MarketDecl {
            name: e.name.clone(),
            provider: e.provider.clone(),
            tags: e.tags.clone(),
            description: e.description.clone(),
            published: e.published,
        })
        .collect();
    let clusters = reg
        .clusters
        .values()
        .filter(|c| baseline.and_then(|b| b.clusters.get(&c.name)) != Some(*c))
        .map(|c| ClusterDecl {
            name: c.name.clone(),
            entry_address: c.entry_address.clone(),
        })
        .collect();
    let mut keys: BTreeMap<&str, Vec<&ApiKey>> = BTreeMap::new();
    for k in reg.keys.values() {
        keys.entry(k.workspace.as_str()).or_default().push(k);
    }
    let workspaces = reg
        .workspaces
        .values()
        .map(|w| {
            let mut ks = keys.remove(w.name.as_str()).unwrap_or_default();
            ks.sort_by(|a, b| a.name.cmp(&b.name));
            WorkspaceDecl {
                name: w.name.clone(),
                description: w.description.clone(),
                keys: ks
                    .into_iter()
                    .map(|k| KeyDecl {
                        name: k.name.clone(),
                        revoked: k.is_revoked(),
                        secret: None,
                    })
                    .collect(),
            }
        })
        .collect();
    let models = reg
        .models
        .values()
        .map(|m| ModelDecl {
            name: m.spec.name.clone(),
            cluster: m.spec.cluster.clone(),
            model_id: m.spec.model_id.clone(),
            policy: m.spec.policy,
            tags: m.spec.tags.clone(),
            enabled: m.enabled,
            endpoints: m
                .spec
                .endpoints
                .iter()
                .map(|e| EndpointDecl {
                    url: e.url.clone(),
                    api_key: e.api_key_ref.clone(),
                    weight: e.weight,
                    probe: e.probe,
                    disabled: e.disabled,
                    ca_file: e.ca_file.clone(),
                })
                .collect(),
            rules: m
                .rules
                .iter()
                .map(|r| RuleDecl {
                    target: r.spec.target,
                    workspace: r.spec.workspace.clone(),
                    key: r.spec.key_id.as_ref().map(|id| {
                        reg.keys
                            .get(id)
                            .map_or_else(|| id.clone(), |k| k.name.clone())
                    }),
                    limit: r.spec.limit,
                    duration: r.spec.duration_secs,
                })
                .collect(),
        })
        .collect();
    Manifest {
        market,
        clusters,
        workspaces,
        models,
    }
}

//! Models in a file: `models: [{name, cluster, model_id, policy, tags,
//! fallbacks, completion_cap, enabled, endpoints, rules}]`, each declared whole. Endpoint keys are
//! references (`env:`, `file:`, `none`), never values.

use serde::{Deserialize, Serialize};

use super::rule::{RuleDecl, match_rules};
use super::{ApplyAction, NO_KEY, Planner, ReadRef, diff, is_false};
use crate::domain::entities::*;
use crate::domain::error::DomainError;
use crate::domain::registry::{Change, Registry};
use crate::domain::secret::Secret;
use crate::domain::validate;

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
    /// Models tried in order when this one cannot answer (docs/gateway.md,
    /// "Fallback models").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Completion tokens a token rule reserves when a request gives no
    /// `max_tokens` (docs/rate-limits.md, "Token rules"); left out = 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_cap: Option<u32>,
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
    /// No new requests; those in flight finish (`docs/gateway.md`, "Drain").
    #[serde(default, skip_serializing_if = "is_false")]
    pub drain: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

fn default_cluster() -> String {
    Cluster::DEFAULT.to_string()
}
fn is_default_probe(p: &Probe) -> bool {
    *p == Probe::default()
}

impl ModelDecl {
    /// A stored model as a file declares it.
    fn of(m: &Model, reg: &Registry) -> Self {
        Self {
            name: m.spec.name.clone(),
            cluster: m.spec.cluster.clone(),
            model_id: m.spec.model_id.clone(),
            policy: m.spec.policy,
            tags: m.spec.tags.clone(),
            fallbacks: m.spec.fallbacks.clone(),
            completion_cap: m.spec.completion_cap,
            enabled: m.enabled,
            endpoints: m.spec.endpoints.iter().map(EndpointDecl::of).collect(),
            rules: m.rules.iter().map(|r| RuleDecl::of(r, reg)).collect(),
        }
    }
}

impl EndpointDecl {
    /// A stored endpoint as a file declares it: its key as the reference it
    /// was read from, if any.
    fn of(e: &Endpoint) -> Self {
        Self {
            url: e.url.clone(),
            api_key: e.api_key_ref.clone(),
            weight: e.weight,
            probe: e.probe.clone(),
            disabled: e.disabled,
            drain: e.drain,
            ca_file: e.ca_file.clone(),
        }
    }
}

/// Every model of `reg`.
pub(super) fn export(reg: &Registry) -> Vec<ModelDecl> {
    reg.models.values().map(|m| ModelDecl::of(m, reg)).collect()
}

impl Planner {
    pub(super) fn model(
        &mut self,
        path: &str,
        d: &ModelDecl,
        read: ReadRef,
    ) -> Result<(), DomainError> {
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
            fallbacks: d.fallbacks.clone(),
            completion_cap: d.completion_cap,
        };
        let rules = d
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| self.rule_spec(&format!("{path}.rules[{i}]"), r))
            .collect::<Result<Vec<_>, _>>()?;
        match old {
            None => self.create_model(path, d, spec, rules),
            Some(old) => self.update_model(path, d, old, spec, rules),
        }
    }

    /// A declared model that does not exist yet: created with its rules,
    /// enabled last.
    fn create_model(
        &mut self,
        path: &str,
        d: &ModelDecl,
        spec: ModelSpec,
        rules: Vec<RuleSpec>,
    ) -> Result<(), DomainError> {
        let spec = self.fallbacks_later(path, spec, &[]);
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
            self.late
                .push((format!("{path}.enabled"), set_enabled(&d.name, true)));
        }
        self.note("model", d.name.clone(), ApplyAction::Created, vec![]);
        Ok(())
    }

    /// A declared model that exists: disabled first, its spec and rules
    /// brought to the file's, enabled last.
    fn update_model(
        &mut self,
        path: &str,
        d: &ModelDecl,
        old: Model,
        spec: ModelSpec,
        rules: Vec<RuleSpec>,
    ) -> Result<(), DomainError> {
        let enable = format!("{path}.enabled");
        let mut details = Vec::new();
        if old.enabled && !d.enabled {
            // Disable first: later steps (unpublishing its entry) may need it.
            self.push_field(&enable, set_enabled(&d.name, false))?;
            details.push("disabled".into());
        }
        if old.spec != spec {
            let o = &old.spec;
            diff(&mut details, "cluster", &o.cluster, &spec.cluster);
            diff(&mut details, "model_id", &o.model_id, &spec.model_id);
            diff(&mut details, "endpoints", &o.endpoints, &spec.endpoints);
            diff(&mut details, "policy", &o.policy, &spec.policy);
            diff(&mut details, "tags", &o.tags, &spec.tags);
            diff(&mut details, "fallbacks", &o.fallbacks, &spec.fallbacks);
            diff(
                &mut details,
                "completion_cap",
                &o.completion_cap,
                &spec.completion_cap,
            );
            let spec = self.fallbacks_later(path, spec, &o.fallbacks);
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
            self.late.push((enable, set_enabled(&d.name, true)));
            details.push("enabled".into());
        }
        let action = if details.is_empty() {
            ApplyAction::Unchanged
        } else {
            ApplyAction::Changed
        };
        self.note("model", d.name.clone(), action, details);
        Ok(())
    }
}

impl Planner {
    /// A file may name as fallback a model it declares further down: the
    /// model's change keeps the fallbacks that exist already (or its stored
    /// ones) and a late change sets the file's list once every model is in.
    fn fallbacks_later(&mut self, path: &str, mut spec: ModelSpec, stored: &[String]) -> ModelSpec {
        if spec
            .fallbacks
            .iter()
            .all(|f| self.scratch.models.contains_key(f))
        {
            return spec;
        }
        let full = spec.clone();
        spec.fallbacks = stored
            .iter()
            .filter(|f| full.fallbacks.contains(f))
            .cloned()
            .collect();
        self.late.push((
            format!("{path}.fallbacks"),
            Change::UpdateModel {
                name: full.name.clone(),
                spec: full,
            },
        ));
        spec
    }
}

fn set_enabled(name: &str, enabled: bool) -> Change {
    Change::SetEnabled {
        name: name.to_string(),
        enabled,
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
        probe: e.probe.clone(),
        disabled: e.disabled,
        drain: e.drain,
        ca_file: e.ca_file.clone(),
    })
}

//! Models: their shape (endpoints, policy and weights, tags), and creating,
//! editing, enabling and deleting them. A model is named after a
//! marketplace entry, enters through a known cluster, and is enabled only
//! while its entry is published.

use super::checks::{existing, has_error, missing, name_free};
use super::{Outcome, Registry, Touched};
use crate::domain::entities::*;
use crate::domain::error::{DomainError, FieldError};
use crate::domain::limits;
use crate::domain::secret::Secret;
use crate::domain::validate;

/// The shape of a model: everything that needs no other entity.
pub fn validate(spec: &ModelSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate::name("name", &spec.name, &mut out);
    if spec.cluster.trim().is_empty() {
        out.push(FieldError::new("cluster", "must not be empty"));
    } else {
        limits::NAME.length("cluster", &spec.cluster, &mut out);
    }
    model_id(&spec.model_id, &mut out);
    if spec.endpoints.is_empty() {
        out.push(FieldError::new(
            "endpoints",
            "at least one endpoint is required",
        ));
    }
    if limits::ENDPOINTS.count("endpoints", spec.endpoints.len(), &mut out) {
        for (i, ep) in spec.endpoints.iter().enumerate() {
            endpoint(i, ep, &mut out);
        }
        weights(spec, &mut out);
    }
    validate::tags("tags", &spec.tags, &mut out);
    fallback_shape(spec, &mut out);
    completion_cap(spec.completion_cap, &mut out);
    out
}

/// The most a model's completion cap may be (docs/rate-limits.md, "Token rules").
pub const MAX_COMPLETION_CAP: u32 = 1_000_000;

/// A completion cap, when set: 1..=[`MAX_COMPLETION_CAP`] tokens.
fn completion_cap(cap: Option<u32>, out: &mut Vec<FieldError>) {
    if let Some(c) = cap.filter(|c| !(1..=MAX_COMPLETION_CAP).contains(c)) {
        out.push(FieldError::new(
            "completion_cap",
            format!("{c} is out of range: a completion cap is 1 to {MAX_COMPLETION_CAP} tokens"),
        ));
    }
}

/// Fallbacks: at most [`limits::FALLBACKS`], not the model itself, no name
/// twice (that they exist and form no cycle needs the registry).
fn fallback_shape(spec: &ModelSpec, out: &mut Vec<FieldError>) {
    if !limits::FALLBACKS.count("fallbacks", spec.fallbacks.len(), out) {
        return;
    }
    for (i, f) in spec.fallbacks.iter().enumerate() {
        if f.trim().is_empty() {
            out.push(FieldError::new(
                "fallbacks",
                "a fallback model's name must not be empty",
            ));
        } else if *f == spec.name {
            out.push(FieldError::new(
                "fallbacks",
                format!("'{f}' is the model itself; a model cannot fall back to itself"),
            ));
        } else if spec.fallbacks[..i].contains(f) {
            out.push(FieldError::new(
                "fallbacks",
                format!("'{f}' is named twice"),
            ));
        }
    }
}

/// The upstream's name for the model: one word that fits in a JSON string.
fn model_id(id: &str, out: &mut Vec<FieldError>) {
    if id.trim().is_empty() {
        out.push(FieldError::new(
            "model_id",
            "must not be empty (the upstream's model name, e.g. deepseek-chat)",
        ));
    } else if limits::MODEL_ID.length("model_id", id, out)
        && id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        out.push(FieldError::new(
            "model_id",
            "must not contain spaces, quotes, backslashes or control characters",
        ));
    }
}

/// Endpoint `i`: its URL, key, key reference and CA file.
fn endpoint(i: usize, ep: &Endpoint, out: &mut Vec<FieldError>) {
    let f = |k: &str| format!("endpoints[{i}].{k}");
    validate::base_url(&f("url"), &ep.url, out);
    if let Probe::Get(target) = &ep.probe {
        validate::probe_target(&f("probe"), target, &ep.url, out);
    }
    if let Some(k) = &ep.api_key {
        validate::upstream_key(&f("api_key"), k.expose(), out);
    }
    if let Some(r) = &ep.api_key_ref {
        if ep.api_key.is_none() {
            out.push(FieldError::new(
                f("api_key_ref"),
                "names where the key came from, but the endpoint has no key",
            ));
        } else {
            validate::key_reference(&f("api_key_ref"), r, out);
        }
    }
    if let Some(ca) = &ep.ca_file {
        if ca.trim().is_empty() {
            out.push(FieldError::new(
                f("ca_file"),
                "must not be empty (leave it out for the system roots only)",
            ));
        } else {
            limits::PATH.length(&f("ca_file"), ca, out);
        }
    }
}

/// Weights: each endpoint's, summing to 100, under the weighted policy
/// only.
fn weights(spec: &ModelSpec, out: &mut Vec<FieldError>) {
    match spec.policy {
        Policy::Weighted => {
            let mut sum: u64 = 0;
            let mut missing = false;
            for (i, ep) in spec.endpoints.iter().enumerate() {
                match ep.weight {
                    None => {
                        missing = true;
                        out.push(FieldError::new(
                            format!("endpoints[{i}].weight"),
                            "is required under the weighted policy",
                        ));
                    }
                    Some(w) if w > 100 => out.push(FieldError::new(
                        format!("endpoints[{i}].weight"),
                        format!("{w} is more than 100"),
                    )),
                    Some(w) => sum += u64::from(w),
                }
            }
            if !missing && !spec.endpoints.is_empty() && sum != 100 {
                out.push(FieldError::new(
                    "weight",
                    format!("endpoint weights sum to {sum}; under the weighted policy they must sum to exactly 100"),
                ));
            }
        }
        Policy::RoundRobin | Policy::Random | Policy::LeastLoaded => {
            for (i, ep) in spec.endpoints.iter().enumerate() {
                if ep.weight.is_some() {
                    out.push(FieldError::new(
                        format!("endpoints[{i}].weight"),
                        format!("weights are only used by the weighted policy (policy is {}); remove it or choose weighted", spec.policy),
                    ));
                }
            }
        }
    }
}

impl Registry {
    pub fn model(&self, name: &str) -> Result<&Model, DomainError> {
        existing(&self.models, "model", "model", name)
    }

    /// The stored endpoint of `model` with this URL (its `nth` occurrence,
    /// for a URL listed twice): what edits and `apply` take a key from when
    /// they are not given one again.
    pub fn stored_endpoint(&self, model: &str, url: &str, nth: usize) -> Option<&Endpoint> {
        self.models
            .get(model)?
            .spec
            .endpoints
            .iter()
            .filter(|e| e.url == url)
            .nth(nth)
    }

    /// The stored upstream key of `model`'s endpoint with this URL, if any
    /// (lets edits and `apply` keep a key they were not given again).
    pub fn stored_endpoint_key(&self, model: &str, url: &str, nth: usize) -> Option<Secret> {
        self.stored_endpoint(model, url, nth)?.api_key.clone()
    }

    /// Whether marketplace entry `name` exists and is published.
    fn published(&self, name: &str) -> bool {
        self.market.get(name).is_some_and(|e| e.published)
    }

    /// Model `name` (checked to exist) about to change: marked touched and
    /// updated now.
    pub(super) fn touch_model(
        &mut self,
        name: &str,
        now: i64,
        touched: &mut Touched,
    ) -> &mut Model {
        touched.models.insert(name.to_string());
        let m = self.models.get_mut(name).expect("checked");
        m.updated = now;
        m
    }

    pub(super) fn create_model(
        &mut self,
        spec: ModelSpec,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.check_model(&spec, None)?;
        touched.models.insert(spec.name.clone());
        self.models.insert(
            spec.name.clone(),
            Model {
                spec,
                enabled: false,
                rules: Vec::new(),
                created: now,
                updated: now,
                rev: 0,
            },
        );
        Ok(Outcome::Done)
    }

    /// Replace model `name`'s spec (a new name moves it to another entry,
    /// rules and all).
    pub(super) fn update_model(
        &mut self,
        name: String,
        spec: ModelSpec,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        let old = self.model(&name)?.clone();
        self.check_model(&spec, Some(&name))?;
        if old.enabled && !self.published(&spec.name) {
            return Err(DomainError::refused(
                "name",
                format!(
                    "the model is enabled and marketplace entry '{}' is not published",
                    spec.name
                ),
            ));
        }
        if old.spec == spec {
            return Ok(Outcome::Unchanged);
        }
        if spec.name != name {
            self.not_a_fallback(&name, "renamed")?;
        }
        let mut m = old;
        m.spec = spec;
        m.updated = now;
        self.models.remove(&name);
        touched.models.insert(name);
        touched.models.insert(m.spec.name.clone());
        self.models.insert(m.spec.name.clone(), m);
        Ok(Outcome::Done)
    }

    pub(super) fn set_enabled(
        &mut self,
        name: String,
        enabled: bool,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        if self.model(&name)?.enabled == enabled {
            return Ok(Outcome::Unchanged);
        }
        if enabled && !self.published(&name) {
            return Err(DomainError::refused(
                "status",
                format!(
                    "model '{name}' cannot be enabled: marketplace entry '{name}' is not published; publish it first (maasctl market publish {name})"
                ),
            ));
        }
        self.touch_model(&name, now, touched).enabled = enabled;
        Ok(Outcome::Done)
    }

    pub(super) fn delete_model(
        &mut self,
        name: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.model(&name)?;
        self.not_a_fallback(&name, "deleted")?;
        self.models.remove(&name);
        touched.models.insert(name);
        Ok(Outcome::Done)
    }

    pub(super) fn set_endpoint_disabled(
        &mut self,
        model: String,
        index: usize,
        disabled: bool,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.set_endpoint_flag(model, index, (disabled, now), touched, |e| &mut e.disabled)
    }

    pub(super) fn set_endpoint_drain(
        &mut self,
        model: String,
        index: usize,
        drain: bool,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.set_endpoint_flag(model, index, (drain, now), touched, |e| &mut e.drain)
    }

    /// Set one switch of endpoint `index` of `model` (`flag` picks it); an
    /// index past the end is refused naming how many there are.
    fn set_endpoint_flag(
        &mut self,
        model: String,
        index: usize,
        (value, now): (bool, i64),
        touched: &mut Touched,
        flag: fn(&mut Endpoint) -> &mut bool,
    ) -> Result<Outcome, DomainError> {
        let endpoints = &self.model(&model)?.spec.endpoints;
        let n = endpoints.len();
        let Some(mut ep) = endpoints.get(index).cloned() else {
            return Err(DomainError::not_found(
                "endpoint",
                format!("model '{model}' has {n} endpoint(s); there is no endpoint {index}"),
            ));
        };
        if *flag(&mut ep) == value {
            return Ok(Outcome::Unchanged);
        }
        *flag(&mut self.touch_model(&model, now, touched).spec.endpoints[index]) = value;
        Ok(Outcome::Done)
    }

    /// A spec's shape, its marketplace entry and cluster, and (unless it is
    /// the model being edited) a free name.
    fn check_model(&self, spec: &ModelSpec, editing: Option<&str>) -> Result<(), DomainError> {
        let mut errs = validate(spec);
        let (name_ok, cluster_ok) = (!has_error(&errs, "name"), !has_error(&errs, "cluster"));
        if name_ok && !self.market.contains_key(&spec.name) {
            errs.push(FieldError::new(
                "name",
                format!("'{}' is not in the marketplace; pick an entry (maasctl market list) or add one", spec.name),
            ));
        }
        if cluster_ok && !self.clusters.contains_key(&spec.cluster) {
            errs.push(FieldError::new(
                "cluster",
                missing("cluster", &spec.cluster),
            ));
        }
        DomainError::check(errs)?;
        if editing != Some(spec.name.as_str()) {
            name_free(&self.models, "model", &spec.name)?;
        }
        self.check_fallbacks(spec)
    }

    /// Each fallback exists, and following fallbacks from this model never
    /// comes back to it.
    fn check_fallbacks(&self, spec: &ModelSpec) -> Result<(), DomainError> {
        for f in &spec.fallbacks {
            if !self.models.contains_key(f) {
                return Err(DomainError::invalid(
                    "fallbacks",
                    format!("'{f}' is not a model (maasctl model list)"),
                ));
            }
            if let Some(path) = self.fallback_path(f, &spec.name) {
                return Err(DomainError::invalid(
                    "fallbacks",
                    format!("'{f}' would make a cycle: {} -> {path}", spec.name),
                ));
            }
        }
        Ok(())
    }

    /// The chain of fallbacks from `from` that reaches `to`, if one does
    /// (`b -> c -> a`).
    fn fallback_path(&self, from: &str, to: &str) -> Option<String> {
        if from == to {
            return Some(to.to_string());
        }
        let m = self.models.get(from)?;
        m.spec
            .fallbacks
            .iter()
            .find_map(|f| self.fallback_path(f, to))
            .map(|rest| format!("{from} -> {rest}"))
    }

    /// Refuses to delete or rename model `name` while others name it as a
    /// fallback (their `fallbacks` must be edited first).
    fn not_a_fallback(&self, name: &str, what: &str) -> Result<(), DomainError> {
        let users: Vec<&str> = self
            .models
            .values()
            .filter(|m| m.spec.fallbacks.iter().any(|f| f == name))
            .map(|m| m.name())
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(DomainError::refused(
            "fallbacks",
            format!(
                "model '{name}' cannot be {what}: it is a fallback of {}; remove it from their fallbacks first",
                users.join(", ")
            ),
        ))
    }
}

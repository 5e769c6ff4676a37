//! Upstream keys across the wire.
//!
//! The registry leaves the server with every upstream key masked
//! (`sk-…4f2a`) and no platform key hashes, so no secret ever reaches a
//! remote console. Coming back, a model change may carry such a mask where
//! the operator did not retype the key: [`resolve_masked`] puts the stored
//! key back when the mask is the stored key's mask for that endpoint, and
//! refuses the change (naming `endpoints[i].api_key`) when it is not — a
//! mask is never stored as a key. A key typed anew is not a mask and is
//! stored as given.

use serde_json::Value;

use crate::domain::secret::is_masked;
use crate::domain::{Change, DomainError, FieldError, ModelSpec, Registry, Secret};

/// The registry as the admin API sends it: upstream keys masked, platform
/// key hashes left out.
pub fn redact(reg: &Registry) -> Value {
    let mut out = reg.clone();
    for m in out.models.values_mut() {
        for e in &mut m.spec.endpoints {
            if let Some(k) = &e.api_key {
                e.api_key = Some(Secret::new(k.masked()));
            }
        }
    }
    let mut v = serde_json::to_value(&out).expect("a registry serializes");
    if let Some(keys) = v.get_mut("keys").and_then(Value::as_object_mut) {
        for key in keys.values_mut() {
            if let Some(k) = key.as_object_mut() {
                k.remove("secret_hash");
            }
        }
    }
    v
}

/// Replace masked upstream keys in `changes` by the stored keys they stand
/// for; refuse masks that stand for none.
pub fn resolve_masked(reg: &Registry, changes: &mut [Change]) -> Result<(), DomainError> {
    let mut errors = Vec::new();
    for change in changes.iter_mut() {
        match change {
            Change::CreateModel(spec) => resolve_spec(reg, None, spec, &mut errors),
            Change::UpdateModel { name, spec } => {
                resolve_spec(reg, Some(name.as_str()), spec, &mut errors)
            }
            _ => {}
        }
    }
    DomainError::check(errors)
}

/// For endpoint `i`: the stored endpoint with the same URL (its same
/// occurrence, for a URL listed twice), else the one at the same position
/// (the URL was edited but the key not retyped); the mask must be that
/// endpoint's key's mask.
fn resolve_spec(
    reg: &Registry,
    editing: Option<&str>,
    spec: &mut ModelSpec,
    errors: &mut Vec<FieldError>,
) {
    let urls: Vec<String> = spec.endpoints.iter().map(|e| e.url.clone()).collect();
    for (i, ep) in spec.endpoints.iter_mut().enumerate() {
        let Some(given) = ep.api_key.as_ref().map(|k| k.expose().to_string()) else {
            continue;
        };
        if !is_masked(&given) {
            continue;
        }
        let stored = editing.and_then(|model| {
            let nth = urls[..i].iter().filter(|u| **u == ep.url).count();
            let by_url = reg.stored_endpoint_key(model, &ep.url, nth);
            let by_position = reg
                .models
                .get(model)
                .and_then(|m| m.spec.endpoints.get(i))
                .and_then(|e| e.api_key.clone());
            [by_url, by_position]
                .into_iter()
                .flatten()
                .find(|k| k.masked() == given)
        });
        match stored {
            Some(k) => ep.api_key = Some(k),
            None => errors.push(FieldError::new(
                format!("endpoints[{i}].api_key"),
                format!(
                    "'{given}' is a masked key that matches no stored key of this endpoint; type the key again, or clear it"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Endpoint, Model, Policy};

    const KEY: &str = "sk-upstream-secret-value-4f2a";

    fn registry() -> Registry {
        let mut reg = Registry::with_default_cluster("http://127.0.0.1:8080");
        let mut ep = Endpoint::new("https://a.example");
        ep.api_key = Some(Secret::new(KEY));
        let spec = ModelSpec {
            name: "M".into(),
            cluster: "local".into(),
            model_id: "m".into(),
            endpoints: vec![ep, Endpoint::new("https://b.example")],
            policy: Policy::RoundRobin,
            tags: vec![],
        };
        reg.models.insert(
            "M".into(),
            Model {
                spec,
                enabled: false,
                rules: vec![],
                created: 0,
                updated: 0,
                rev: 1,
            },
        );
        reg
    }

    fn edit(spec: ModelSpec) -> Vec<Change> {
        vec![Change::UpdateModel {
            name: "M".into(),
            spec,
        }]
    }

    #[test]
    fn redacted_registry_holds_no_secret() {
        let v = redact(&registry());
        let text = v.to_string();
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("sk-…4f2a"), "{text}");
        let back: Registry = serde_json::from_value(v).unwrap();
        assert_eq!(
            back.models["M"].spec.endpoints[0]
                .api_key
                .as_ref()
                .unwrap()
                .masked(),
            "sk-…4f2a"
        );
    }

    #[test]
    fn an_untouched_mask_keeps_the_stored_key_and_a_new_key_replaces_it() {
        let reg = registry();
        let sent: Registry = serde_json::from_value(redact(&reg)).unwrap();
        let spec = sent.models["M"].spec.clone();

        let mut keep = edit(spec.clone());
        resolve_masked(&reg, &mut keep).unwrap();
        let Change::UpdateModel { spec: kept, .. } = &keep[0] else {
            unreachable!()
        };
        assert_eq!(kept.endpoints[0].api_key.as_ref().unwrap().expose(), KEY);
        assert!(kept.endpoints[1].api_key.is_none());

        // The URL edited, the key not retyped: still the stored key.
        let mut moved = spec.clone();
        moved.endpoints[0].url = "https://a2.example".into();
        let mut changes = edit(moved);
        resolve_masked(&reg, &mut changes).unwrap();
        let Change::UpdateModel { spec: kept, .. } = &changes[0] else {
            unreachable!()
        };
        assert_eq!(kept.endpoints[0].api_key.as_ref().unwrap().expose(), KEY);

        let mut replaced = spec.clone();
        replaced.endpoints[0].api_key = Some(Secret::new("sk-brand-new-key-000000"));
        let mut changes = edit(replaced.clone());
        resolve_masked(&reg, &mut changes).unwrap();
        assert_eq!(changes, edit(replaced));
    }

    #[test]
    fn a_mask_that_stands_for_no_stored_key_is_refused() {
        let reg = registry();
        let sent: Registry = serde_json::from_value(redact(&reg)).unwrap();
        let mut spec = sent.models["M"].spec.clone();
        spec.endpoints[1].api_key = Some(Secret::new("sk-…9999"));
        let err = resolve_masked(&reg, &mut edit(spec.clone())).unwrap_err();
        assert!(
            err.for_field("endpoints[1].api_key")
                .unwrap()
                .contains("masked key"),
            "{err}"
        );
        spec.name = "N".into();
        let err = resolve_masked(&reg, &mut [Change::CreateModel(spec)]).unwrap_err();
        assert!(err.for_field("endpoints[0].api_key").is_some(), "{err}");
    }
}

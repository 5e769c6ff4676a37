//! Upstream keys across the wire.
//!
//! The registry leaves the server with every upstream key masked
//! (`sk-…4f2a`) and no platform key hashes, so no secret ever reaches a
//! remote console. Coming back, a model change may carry such a mask where
//! the operator did not retype the key: [`resolve_masked`] puts the stored
//! key back when the mask is the stored key's mask for that endpoint, and
//! refuses the change (naming `endpoints[i].api_key`) when it is not — a
//! mask is never stored as a key. A key typed anew is not a mask and is
//! stored as given. [`apply_resolved`] does that in one guarded step: the
//! masks are resolved against the very revision the batch is applied to.

use serde_json::Value;

use crate::domain::secret::is_masked;
use crate::domain::{Change, DomainError, FieldError, ModelSpec, Origin, Registry, Secret};
use crate::store::{Applied, Store, StoreError};

/// How often [`apply_resolved`] loads and resolves again when other writers
/// keep moving the registry between its load and its apply (as the CLI's
/// read-then-write commands do).
pub const RESOLVE_ATTEMPTS: usize = 20;

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

/// Apply a batch a remote client sent, its masked keys resolved against
/// the registry it is applied to: load at revision R, resolve, apply with
/// [`Change::ExpectRevision`] R first. If another writer changed the
/// registry in between, nothing is applied and it starts again (at most
/// [`RESOLVE_ATTEMPTS`] times), so a key replaced meanwhile is neither
/// overwritten by the old one nor stood in for by it. A batch without masks
/// needs no load and is applied as it is; a batch with its own
/// `expect-revision` is not retried (its guard decides, as it asked).
pub fn apply_resolved(
    store: &dyn Store,
    changes: Vec<Change>,
    origin: &Origin,
) -> Result<Applied, StoreError> {
    if !has_masks(&changes) {
        return store.apply(changes, origin);
    }
    let own_guard = changes
        .iter()
        .any(|c| matches!(c, Change::ExpectRevision { .. }));
    let mut attempt = 1;
    loop {
        let reg = store.load()?;
        let mut batch = Vec::with_capacity(changes.len() + 1);
        batch.push(Change::ExpectRevision {
            revision: reg.revision,
        });
        batch.extend(changes.iter().cloned());
        resolve_masked(&reg, &mut batch[1..])?;
        match store.apply(batch, origin) {
            Ok(mut applied) => {
                applied.outcomes.remove(0);
                return Ok(applied);
            }
            Err(StoreError::Domain(e))
                if e.is_stale_revision() && !own_guard && attempt < RESOLVE_ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a model change in `changes` carries a masked upstream key.
fn has_masks(changes: &[Change]) -> bool {
    changes.iter().any(|c| match c {
        Change::CreateModel(spec) | Change::UpdateModel { spec, .. } => spec
            .endpoints
            .iter()
            .any(|e| e.api_key.as_ref().is_some_and(|k| is_masked(k.expose()))),
        _ => false,
    })
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
            fallbacks: Vec::new(),
            completion_cap: None,
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

    /// A store where another writer gets in right after a load: each load
    /// hands out the registry as read, then applies the next of `between`.
    struct Racing {
        inner: crate::store::SqliteStore,
        between: parking_lot::Mutex<Vec<Vec<Change>>>,
        /// Keep writing after every load, not just the queued ones.
        always: bool,
        loads: std::sync::atomic::AtomicUsize,
        _dir: tempfile::TempDir,
    }

    impl Racing {
        /// Model DeepSeek-V3 with one endpoint whose key is [`KEY`].
        fn new(between: Vec<Vec<Change>>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let inner = crate::store::SqliteStore::open_dir(dir.path()).unwrap();
            inner
                .apply(vec![Change::CreateModel(spec(KEY))], &origin())
                .unwrap();
            Self {
                inner,
                between: parking_lot::Mutex::new(between.into_iter().rev().collect()),
                always: false,
                loads: Default::default(),
                _dir: dir,
            }
        }

        fn loads(&self) -> usize {
            self.loads.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn stored_key(&self) -> String {
            let reg = self.inner.load().unwrap();
            let ep = &reg.models["DeepSeek-V3"].spec.endpoints[0];
            ep.api_key.as_ref().unwrap().expose().to_string()
        }
    }

    fn origin() -> Origin {
        Origin::user("tester", crate::domain::Channel::Cli)
    }

    impl Store for Racing {
        fn load(&self) -> Result<Registry, StoreError> {
            let reg = self.inner.load()?;
            let n = self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let next = self.between.lock().pop();
            let other = match next {
                Some(c) => Some(c),
                None if self.always => Some(vec![Change::AddWorkspace {
                    name: format!("w{n}"),
                    description: String::new(),
                }]),
                None => None,
            };
            if let Some(c) = other {
                self.inner.apply(c, &origin())?;
            }
            Ok(reg)
        }
        fn revision(&self) -> Result<u64, StoreError> {
            self.inner.revision()
        }
        fn apply(
            &self,
            changes: Vec<Change>,
            origin: &crate::domain::Origin,
        ) -> Result<Applied, StoreError> {
            self.inner.apply(changes, origin)
        }
        fn audit(
            &self,
            q: &crate::domain::AuditQuery,
        ) -> Result<Vec<crate::domain::AuditEntry>, StoreError> {
            self.inner.audit(q)
        }
        fn journals(
            &self,
            after: u64,
        ) -> Result<Vec<(u64, crate::domain::history::Journal)>, StoreError> {
            self.inner.journals(after)
        }
        fn tokens(&self) -> Result<Vec<crate::domain::token::AdminTokenRecord>, StoreError> {
            self.inner.tokens()
        }
        fn change_token(
            &self,
            change: crate::domain::token::TokenChange,
            origin: &crate::domain::Origin,
        ) -> Result<crate::domain::token::AdminTokenRecord, StoreError> {
            self.inner.change_token(change, origin)
        }

        fn put_report(&self, r: &crate::domain::GatewayReport) -> Result<(), StoreError> {
            self.inner.put_report(r)
        }
        fn remove_report(&self, id: &str) -> Result<(), StoreError> {
            self.inner.remove_report(id)
        }
        fn reports_at(&self, now_ms: i64) -> Result<Vec<crate::domain::GatewayReport>, StoreError> {
            self.inner.reports_at(now_ms)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// DeepSeek-V3 (in the default catalog) with one endpoint keyed `key`.
    fn spec(key: &str) -> ModelSpec {
        let mut ep = Endpoint::new("https://a.example");
        ep.api_key = Some(Secret::new(key));
        ModelSpec {
            name: "DeepSeek-V3".into(),
            cluster: "local".into(),
            model_id: "deepseek-chat".into(),
            endpoints: vec![ep],
            policy: Policy::RoundRobin,
            tags: vec![],
            fallbacks: Vec::new(),
            completion_cap: None,
        }
    }

    /// What a remote console sends to tag the model: the spec it read, its
    /// key masked.
    fn remote_tag_edit() -> Vec<Change> {
        let mut spec = spec(&Secret::new(KEY).masked());
        spec.tags = vec!["chat".into()];
        edit_of("DeepSeek-V3", spec)
    }

    fn edit_of(name: &str, spec: ModelSpec) -> Vec<Change> {
        vec![Change::UpdateModel {
            name: name.into(),
            spec,
        }]
    }

    const ROTATED: &str = "sk-rotated-upstream-value-9b3c";

    #[test]
    fn a_key_replaced_between_resolve_and_apply_is_not_overwritten() {
        // Someone rotates the key right after the load the masks are
        // resolved against.
        let store = Racing::new(vec![edit_of("DeepSeek-V3", spec(ROTATED))]);
        let err = apply_resolved(&store, remote_tag_edit(), &origin()).unwrap_err();
        // Loaded again: the mask is the old key's, which is no longer
        // stored, so the edit is refused rather than putting it back.
        let StoreError::Domain(d) = err else {
            panic!("{err}")
        };
        assert!(
            d.for_field("endpoints[0].api_key")
                .is_some_and(|p| p.contains("matches no stored key")),
            "{d}"
        );
        assert_eq!(store.loads(), 2);
        assert_eq!(store.stored_key(), ROTATED, "the rotation is not lost");
    }

    #[test]
    fn an_unrelated_change_meanwhile_is_kept_and_the_batch_applied_again() {
        let ops = Change::AddWorkspace {
            name: "ops".into(),
            description: String::new(),
        };
        let store = Racing::new(vec![vec![ops]]);
        let before = store.inner.revision().unwrap();
        let applied = apply_resolved(&store, remote_tag_edit(), &origin()).unwrap();
        assert_eq!(applied.outcomes, vec![crate::domain::Outcome::Done]);
        assert_eq!(applied.revision, before + 2);
        assert_eq!(store.loads(), 2);
        let reg = store.inner.load().unwrap();
        assert!(reg.workspaces.contains_key("ops"));
        assert_eq!(reg.models["DeepSeek-V3"].spec.tags, ["chat"]);
        assert_eq!(store.stored_key(), KEY, "the mask stood for the stored key");
    }

    #[test]
    fn retries_are_bounded_and_a_batch_with_its_own_guard_is_not_retried() {
        let mut store = Racing::new(vec![]);
        store.always = true;
        let err = apply_resolved(&store, remote_tag_edit(), &origin()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Domain(d) if d.is_stale_revision()),
            "{err}"
        );
        assert_eq!(store.loads(), RESOLVE_ATTEMPTS);

        let mut store = Racing::new(vec![]);
        store.always = true;
        let mut guarded = vec![Change::ExpectRevision {
            revision: store.inner.revision().unwrap(),
        }];
        guarded.extend(remote_tag_edit());
        let err = apply_resolved(&store, guarded, &origin()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Domain(d) if d.is_stale_revision()),
            "{err}"
        );
        assert_eq!(store.loads(), 1);
        assert_eq!(store.stored_key(), KEY);

        // Without masks there is nothing to resolve: no load, no guard.
        let store = Racing::new(vec![]);
        apply_resolved(&store, edit_of("DeepSeek-V3", spec(ROTATED)), &origin()).unwrap();
        assert_eq!(
            (store.loads(), store.stored_key()),
            (0, ROTATED.to_string())
        );
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

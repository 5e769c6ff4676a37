//! `apply -f`: make the registry match a declarative file, in one guarded
//! transaction. The file's references (`env:VAR`, `file:PATH`) are read by
//! the caller, on the caller's machine — locally as the file is planned,
//! remotely before the request is sent ([`references`]) — so a file means
//! the same thing on either path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Origin;
use crate::domain::manifest::{self, Manifest, NewSecret, ReadRef, Report};
use crate::store::{Store, StoreError};

/// A reference as the caller read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reference {
    /// What it holds.
    Value(String),
    /// Why it cannot be read (a stored key from the same reference is kept).
    Error(String),
}

/// `POST /admin/v1/manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRequest {
    pub manifest: Manifest,
    /// Every `env:`/`file:` reference of the file, read by the caller.
    #[serde(default)]
    pub references: BTreeMap<String, Reference>,
    /// Report what would change; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The file's name, for the history (`apply -f registry.yaml`).
    #[serde(default)]
    pub source: Option<String>,
}

/// What `apply -f` did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestOutcome {
    /// The registry's revision afterwards.
    pub revision: u64,
    pub dry_run: bool,
    pub changed: bool,
    pub report: Vec<Report>,
    /// Secrets of keys created here; shown this once.
    pub secrets: Vec<NewSecret>,
}

/// Every reference the file's `api_key` and `secret` fields name, read
/// with `read`.
pub fn references(m: &Manifest, read: ReadRef) -> BTreeMap<String, Reference> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    match v {
                        Value::String(s)
                            if (k == "api_key" || k == "secret")
                                && (s.starts_with("env:") || s.starts_with("file:")) =>
                        {
                            out.push(s.clone())
                        }
                        other => walk(other, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(
        &serde_json::to_value(m).expect("a manifest serializes"),
        &mut found,
    );
    found
        .into_iter()
        .map(|r| {
            let read = match read(&r) {
                Ok(v) => Reference::Value(v),
                Err(e) => Reference::Error(e),
            };
            (r, read)
        })
        .collect()
}

/// A reader over references read elsewhere.
pub fn reader(refs: &BTreeMap<String, Reference>) -> impl Fn(&str) -> Result<String, String> + '_ {
    move |r: &str| match refs.get(r) {
        Some(Reference::Value(v)) => Ok(v.clone()),
        Some(Reference::Error(e)) => Err(e.clone()),
        None => Err(format!("'{r}' was not read by the client")),
    }
}

/// Plan `m` against the registry and apply it (unless `dry_run`), guarded
/// against concurrent writers; `source` names the file in the history.
pub fn apply(
    store: &dyn Store,
    origin: &Origin,
    m: &Manifest,
    read: ReadRef,
    dry_run: bool,
    source: Option<&str>,
) -> Result<ManifestOutcome, StoreError> {
    let (revision, plan) = if dry_run {
        let reg = store.load()?;
        let mut plan = manifest::plan(&reg, m, read)?;
        // Nothing is created: there is no secret to show.
        plan.secrets.clear();
        (reg.revision, plan)
    } else {
        let (applied, plan) = super::update(store, &noted(origin, source), |reg| {
            let plan = manifest::plan(reg, m, read)?;
            Ok((plan.changes.clone(), plan))
        })?;
        (applied.revision, plan)
    };
    Ok(ManifestOutcome {
        revision,
        dry_run,
        changed: !plan.is_noop(),
        report: plan.report,
        secrets: plan.secrets,
    })
}

/// `apply -f FILE` as the history names the batch (its entry lists every
/// entity it changed).
fn noted(origin: &Origin, source: Option<&str>) -> Origin {
    let file = source.unwrap_or("a declarative file");
    origin.clone().with_note(format!("apply -f {file}"))
}

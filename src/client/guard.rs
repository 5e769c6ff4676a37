//! Saves that do not overwrite what changed meanwhile (issue 10).
//!
//! A console form that edits an entity (a model, a rule, a cluster, a
//! marketplace entry) sends the whole entity back. If someone else changed
//! it since the form opened (the CLI, another console), a plain save would
//! silently overwrite their change. So an edit form keeps a [`Guard`]: what
//! the entity's saved part was when the form opened. [`apply_guarded`]
//! loads the registry as the platform holds it now (not the console's last
//! snapshot), compares, and applies only if it is the same, with
//! [`Change::ExpectRevision`] of what it loaded first, like the CLI's
//! `ctx.update` and `ops::update`: a change landing between the load and
//! the apply makes it look again rather than overwrite.
//!
//! What is compared is what the form would write: a model's spec (not its
//! rules or enabled flag, which the form does not send), a rule's spec, a
//! cluster, a marketplace entry. A change elsewhere to another part of the
//! same model, or to another entity, does not stop the save.

use serde_json::Value;

use super::{Client, ClientError};
use crate::domain::{Change, Registry};
use crate::store::Applied;

/// How often a guarded save looks again when the registry keeps moving
/// (elsewhere, on other entities) between its load and its apply.
const ATTEMPTS: usize = 20;

/// What an edit form saves over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Model(String),
    Rule { model: String, id: u64 },
    Cluster(String),
    Market(String),
}

impl Subject {
    /// `model DeepSeek-V3`, `rule #3 of DeepSeek-V3`, …
    pub fn label(&self) -> String {
        match self {
            Subject::Model(n) => format!("model {n}"),
            Subject::Rule { model, id } => format!("rule #{id} of {model}"),
            Subject::Cluster(n) => format!("cluster {n}"),
            Subject::Market(n) => format!("marketplace entry {n}"),
        }
    }

    /// The part of the entity a save writes, as it is in `reg` (`None`:
    /// it is not there).
    pub fn state(&self, reg: &Registry) -> Option<Value> {
        match self {
            Subject::Model(n) => reg.models.get(n).map(|m| json(&m.spec)),
            Subject::Rule { model, id } => reg
                .models
                .get(model)
                .and_then(|m| m.rules.iter().find(|r| r.id == *id))
                .map(|r| json(&r.spec)),
            Subject::Cluster(n) => reg.clusters.get(n).map(json),
            Subject::Market(n) => reg.market.get(n).map(json),
        }
    }
}

/// An entity part as JSON, for comparing (never shown: a model's spec
/// may hold an upstream key).
fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("an entity serializes")
}

/// An edit form's subject as it was when the form opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub subject: Subject,
    pub seen: Option<Value>,
}

impl Guard {
    /// `subject` as `reg` has it.
    pub fn new(subject: Subject, reg: &Registry) -> Self {
        let seen = subject.state(reg);
        Self { subject, seen }
    }

    /// Whether `reg` still has the subject as it was seen.
    pub fn holds(&self, reg: &Registry) -> bool {
        self.subject.state(reg) == self.seen
    }

    /// "model X changed elsewhere since you opened this form".
    pub fn changed_text(&self) -> String {
        format!(
            "{} changed elsewhere since you opened this form",
            self.subject.label()
        )
    }
}

/// What a guarded save did.
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded {
    Applied(Applied),
    /// Nothing was applied: the subject changed since the guard was taken.
    /// The registry as it is now, to reload the form from or to overwrite.
    Changed(Box<Registry>),
}

/// Apply `changes` if `guard` still holds on the registry as the platform
/// holds it now; see the module header.
pub async fn apply_guarded(
    client: &dyn Client,
    guard: &Guard,
    changes: Vec<Change>,
) -> Result<Guarded, ClientError> {
    let mut attempt = 0;
    loop {
        let reg = client.load().await?;
        if !guard.holds(&reg) {
            return Ok(Guarded::Changed(Box::new(reg)));
        }
        let mut batch = Vec::with_capacity(changes.len() + 1);
        batch.push(Change::ExpectRevision {
            revision: reg.revision,
        });
        batch.extend(changes.iter().cloned());
        match client.apply(batch).await {
            Ok(mut applied) => {
                applied.outcomes.remove(0);
                return Ok(Guarded::Applied(applied));
            }
            Err(ClientError::Domain(d)) if d.is_stale_revision() && attempt < ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

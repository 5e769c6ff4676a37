//! What every backend does inside its write transaction, written once: run
//! the registry's rules on the batch, then list every row to write — the
//! registry's, the audit entry's and the revision's journal — so one
//! transaction commits the change and its record together (a refused batch
//! writes none; a crash leaves both or neither). The same for admin tokens.

use super::sql::Statement;
use super::{Applied, StoreError, mapping};
use crate::domain::audit::{self, AuditEntry, EntityAction, EntityChange, Origin};
use crate::domain::history;
use crate::domain::token::{self, AdminTokenRecord, TokenChange};
use crate::domain::{Change, Registry, summarize};

/// Longest summary kept for a batch (the changes themselves are all in
/// the entry).
const SUMMARY_MAX: usize = 300;

/// What a batch made: its result, and the rows to write (none when it
/// changed nothing: the revision stays, nothing is recorded).
pub struct Planned {
    pub applied: Applied,
    pub statements: Vec<Statement>,
}

fn summary(origin: &Origin, changes: &[Change]) -> String {
    let s = origin.note.clone().unwrap_or_else(|| summarize(changes));
    if s.chars().count() <= SUMMARY_MAX {
        return s;
    }
    let cut: String = s.chars().take(SUMMARY_MAX).collect();
    format!("{cut}…")
}

/// Apply `changes` to `before` (the registry as the transaction read it)
/// at `now_ms`, by `origin`.
pub fn plan(
    before: Registry,
    changes: Vec<Change>,
    origin: &Origin,
    now_ms: i64,
) -> Result<Planned, StoreError> {
    let summary = summary(origin, &changes);
    let mut after = before.clone();
    let (outcomes, touched) = after.apply_all(changes, now_ms.div_euclid(1000))?;
    let applied = Applied {
        revision: after.revision,
        outcomes,
    };
    if touched.is_empty() {
        return Ok(Planned {
            applied,
            statements: Vec::new(),
        });
    }
    let mut statements = mapping::persist(&after, &touched)?;
    let entry = AuditEntry {
        id: 0,
        at_ms: now_ms,
        actor: origin.actor.clone(),
        channel: origin.channel,
        revision: Some(after.revision),
        summary,
        changes: audit::registry_changes(&before, &after, &touched),
    };
    statements.extend(mapping::append_audit(&entry)?);
    let journal = history::journal(&before, &after, &touched);
    statements.extend(mapping::record_journal(after.revision, &journal)?);
    Ok(Planned {
        applied,
        statements,
    })
}

/// Apply `change` to the stored `tokens` at `now_ms`, by `origin`: the
/// token as written, and the rows (the token's, its audit entry's).
pub fn plan_token(
    tokens: &[AdminTokenRecord],
    change: &TokenChange,
    origin: &Origin,
    now_ms: i64,
) -> Result<(AdminTokenRecord, Vec<Statement>), StoreError> {
    let before = match change {
        TokenChange::Create { .. } => None,
        TokenChange::Revoke { name } => tokens.iter().find(|t| t.name == *name),
    };
    let written = token::apply_token(tokens, change, now_ms.div_euclid(1000))?;
    if before == Some(&written) {
        return Ok((written, Vec::new()));
    }
    let fields =
        |t: &AdminTokenRecord| audit::token_fields(t.role.as_str(), &t.secret_hint, t.revoked);
    let action = if before.is_some() {
        EntityAction::Updated
    } else {
        EntityAction::Created
    };
    let entity = format!("token/{}", written.name);
    let change = audit::entity_change(entity.clone(), before.map(fields), Some(fields(&written)))
        .unwrap_or(EntityChange {
            entity,
            action,
            fields: Vec::new(),
        });
    let verb = match action {
        EntityAction::Created => format!("create-token {} ({})", written.name, written.role),
        _ => format!("revoke-token {}", written.name),
    };
    let entry = AuditEntry {
        id: 0,
        at_ms: now_ms,
        actor: origin.actor.clone(),
        channel: origin.channel,
        revision: None,
        summary: origin.note.clone().unwrap_or(verb),
        changes: vec![change],
    };
    let mut statements = vec![mapping::put_token(&written)?];
    statements.extend(mapping::append_audit(&entry)?);
    Ok((written, statements))
}

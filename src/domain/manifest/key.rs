//! Platform keys in a file: `keys: [{name, revoked, secret}]` under their
//! workspace. Created with a generated secret (printed once) or one
//! imported from a reference; revoked by declaration, never restored.

use serde::{Deserialize, Serialize};

use super::{ApplyAction, NewSecret, Planner, ReadRef, is_false};
use crate::domain::entities::ApiKey;
use crate::domain::error::DomainError;
use crate::domain::registry::Change;
use crate::domain::secret;
use crate::domain::validate;

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

impl KeyDecl {
    /// A stored key as declared in an export: by name, never its secret.
    pub(super) fn of(k: &ApiKey) -> Self {
        Self {
            name: k.name.clone(),
            revoked: k.is_revoked(),
            secret: None,
        }
    }
}

impl Planner {
    pub(super) fn key(
        &mut self,
        path: &str,
        ws: &str,
        d: &KeyDecl,
        read: ReadRef,
    ) -> Result<(), DomainError> {
        let label = format!("{ws}/{}", d.name);
        let existing = self
            .scratch
            .keys
            .values()
            .find(|k| k.workspace == ws && k.name == d.name)
            .cloned();
        let imported = imported_secret(path, d, existing.is_some(), read)?;
        let Some(k) = existing else {
            return self.create_key(path, ws, d, imported, label);
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
                self.note("key", label, ApplyAction::Changed, vec!["revoked".into()]);
                Ok(())
            }
            _ => {
                self.note("key", label, ApplyAction::Unchanged, vec![]);
                Ok(())
            }
        }
    }

    /// A declared key that does not exist yet: created with the imported
    /// secret, or a generated one kept for the report.
    fn create_key(
        &mut self,
        path: &str,
        ws: &str,
        d: &KeyDecl,
        imported: Option<String>,
        label: String,
    ) -> Result<(), DomainError> {
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
        self.note("key", label, ApplyAction::Created, vec![]);
        Ok(())
    }
}

/// The secret to import: needed to create the key; for an existing key,
/// checked when readable (a re-apply without it changes nothing).
fn imported_secret(
    path: &str,
    d: &KeyDecl,
    exists: bool,
    read: ReadRef,
) -> Result<Option<String>, DomainError> {
    let Some(r) = &d.secret else {
        return Ok(None);
    };
    let field = format!("{path}.secret");
    let mut errs = Vec::new();
    validate::key_reference(&field, r, &mut errs);
    DomainError::check(errs)?;
    match read(r) {
        Ok(s) => {
            secret::validate_imported_secret(&s)
                .map_err(|p| DomainError::invalid(&field, format!("the secret in {r} {p}")))?;
            Ok(Some(s))
        }
        Err(_) if exists => Ok(None),
        Err(e) => Err(DomainError::invalid(field, format!("cannot read {r}: {e}"))),
    }
}

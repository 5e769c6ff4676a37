//! Platform API keys: their shape, and creating, revoking and deleting them
//! (refused while rules use one).

use super::checks::{existing, not_found, unused_by_rules};
use super::{Change, Outcome, Registry, Touched};
use crate::domain::entities::ApiKey;
use crate::domain::error::{DomainError, FieldError};
use crate::domain::{limits, validate};

const WHAT: &str = "API key";

/// The shape of a new key: its name, its id (`key_` + letters or digits),
/// the SHA-256 of its secret and the secret's hint.
pub fn validate(k: &ApiKey) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate::name("name", &k.name, &mut out);
    let id = &k.id;
    if limits::KEY_ID.length("id", id, &mut out)
        && !id.strip_prefix("key_").is_some_and(|h| {
            !h.is_empty() && h.len() <= 32 && h.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    {
        out.push(FieldError::new(
            "id",
            format!("'{id}' is not a key id (key_ followed by letters or digits)"),
        ));
    }
    let hash = &k.secret_hash;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.push(FieldError::new("secret", "hash must be 64 hex digits"));
    }
    limits::SECRET_HINT.length("secret_hint", &k.secret_hint, &mut out);
    out
}

impl Registry {
    pub fn key(&self, id: &str) -> Result<&ApiKey, DomainError> {
        existing(&self.keys, "key", WHAT, id)
    }

    /// Find a key by id, or by `name` within `workspace`.
    pub fn find_key(&self, workspace: Option<&str>, id_or_name: &str) -> Option<&ApiKey> {
        if let Some(k) = self.keys.get(id_or_name) {
            return Some(k);
        }
        self.keys
            .values()
            .find(|k| k.name == id_or_name && workspace.is_none_or(|w| w == k.workspace))
    }

    /// Create `k` in its workspace: id, name (within the workspace) and
    /// secret are each unique.
    pub(super) fn create_key(
        &mut self,
        k: ApiKey,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&k))?;
        existing(&self.workspaces, "workspace", "workspace", &k.workspace)?;
        if self.keys.contains_key(&k.id) {
            return Err(DomainError::conflict(
                "id",
                format!("a key with id '{}' already exists", k.id),
            ));
        }
        if self
            .keys
            .values()
            .any(|o| o.workspace == k.workspace && o.name == k.name)
        {
            return Err(DomainError::conflict(
                "name",
                format!(
                    "workspace '{}' already has a key named '{}'",
                    k.workspace, k.name
                ),
            ));
        }
        if self.keys.values().any(|o| o.secret_hash == k.secret_hash) {
            return Err(DomainError::conflict(
                "secret",
                "another key already has this secret",
            ));
        }
        touched.keys.insert(k.id.clone());
        self.keys.insert(k.id.clone(), k);
        Ok(Outcome::Done)
    }

    pub(super) fn revoke_key(
        &mut self,
        id: String,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        let k = self
            .keys
            .get_mut(&id)
            .ok_or_else(|| not_found("key", WHAT, &id))?;
        if k.revoked.is_some() {
            return Ok(Outcome::Unchanged);
        }
        k.revoked = Some(now);
        touched.keys.insert(id);
        Ok(Outcome::Done)
    }

    pub(super) fn delete_key(
        &mut self,
        id: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.key(&id)?;
        unused_by_rules("key", &format!("key '{id}'"), &self.rules_using_key(&id))?;
        self.unused_by_budgets("key", crate::domain::RuleTarget::ApiKey, &id)?;
        self.keys.remove(&id);
        touched.keys.insert(id);
        Ok(Outcome::Done)
    }
}

/// A created platform key: the secret is here once, never again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub secret: String,
}

/// A new platform key for `workspace`: the change that stores its hash, and
/// the key with its secret (to show once). Shared by every client and the
/// admin API, so keys are made one way.
pub fn new_key(workspace: String, name: String) -> (Change, CreatedKey) {
    use crate::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
    let secret = generate_secret();
    let id = generate_key_id();
    let change = Change::CreateKey {
        id: id.clone(),
        workspace: workspace.clone(),
        name: name.clone(),
        secret_hash: hash_secret(&secret),
        secret_hint: secret_hint(&secret),
    };
    let created = CreatedKey {
        id,
        workspace,
        name,
        secret,
    };
    (change, created)
}

//! Named admin tokens with a role (`docs/operations.md`, "Admin tokens"): `read` tokens
//! watch (lists, counters, audit, explain), `admin` tokens change. The
//! secret is shown once, at creation; only its SHA-256 is stored. A revoked
//! token fails at once and stays listed (its name is not reused). The
//! bootstrap token (`admin.token`, `$MAASCTL_ADMIN_TOKEN`, the server's
//! `--admin-token-file`) is not one of these: it is the admin token named
//! [`BOOTSTRAP`].

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::{DomainError, FieldError};
use super::secret::hash_secret;
use super::validate;

/// The name changes made with the bootstrap token are recorded under.
pub const BOOTSTRAP: &str = "bootstrap";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read everything a console that watches needs; change nothing.
    Read,
    /// Read and change.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!("'{other}' is not a role; use read or admin")),
        }
    }
}

/// A stored admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenRecord {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the secret. Never sent: empty in listings.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_hash: String,
    /// The last four characters of the secret.
    pub secret_hint: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds when revoked.
    pub revoked: Option<i64>,
}

impl AdminTokenRecord {
    pub fn masked(&self) -> String {
        format!("maasadm_…{}", self.secret_hint)
    }

    /// The record as listings show it: without its hash.
    pub fn listed(&self) -> Self {
        Self {
            secret_hash: String::new(),
            ..self.clone()
        }
    }
}

/// A change to the admin tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    Create {
        name: String,
        role: Role,
        secret_hash: String,
        secret_hint: String,
    },
    Revoke {
        name: String,
    },
}

/// A created token: the secret is here once, never again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

/// A new token named `name`: the change that stores its hash, and the
/// token with its secret (to show once).
pub fn new_token(name: String, role: Role) -> (TokenChange, CreatedToken) {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    let secret = format!(
        "maasadm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    );
    let hint: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let change = TokenChange::Create {
        name: name.clone(),
        role,
        secret_hash: hash_secret(&secret),
        secret_hint: hint,
    };
    (change, CreatedToken { name, role, secret })
}

/// Check `change` against the stored `tokens`; the record it writes.
pub fn apply_token(
    tokens: &[AdminTokenRecord],
    change: &TokenChange,
    now: i64,
) -> Result<AdminTokenRecord, DomainError> {
    match change {
        TokenChange::Create {
            name,
            role,
            secret_hash,
            secret_hint,
        } => {
            let mut errs = Vec::new();
            validate::name("name", name, &mut errs);
            if name == BOOTSTRAP {
                errs.push(FieldError::new(
                    "name",
                    format!("'{BOOTSTRAP}' is the name of the server's own token; pick another"),
                ));
            }
            DomainError::check(errs)?;
            if let Some(t) = tokens.iter().find(|t| t.name == *name) {
                let state = if t.revoked.is_some() {
                    " (revoked; names are not reused)"
                } else {
                    ""
                };
                return Err(DomainError::conflict(
                    "name",
                    format!("an admin token named '{name}' already exists{state}"),
                ));
            }
            if tokens.iter().any(|t| t.secret_hash == *secret_hash) {
                return Err(DomainError::conflict(
                    "secret",
                    "another admin token already has this secret",
                ));
            }
            Ok(AdminTokenRecord {
                name: name.clone(),
                role: *role,
                secret_hash: secret_hash.clone(),
                secret_hint: secret_hint.clone(),
                created: now,
                revoked: None,
            })
        }
        TokenChange::Revoke { name } => {
            let t = tokens.iter().find(|t| t.name == *name).ok_or_else(|| {
                DomainError::not_found("name", format!("no admin token named '{name}'"))
            })?;
            let mut t = t.clone();
            t.revoked.get_or_insert(now);
            Ok(t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_named_once_and_revoked_for_good() {
        let (create, made) = new_token("ci".into(), Role::Read);
        assert!(made.secret.starts_with("maasadm_") && made.secret.len() > 40);
        let ci = apply_token(&[], &create, 5).unwrap();
        assert_eq!((ci.role, ci.created, ci.revoked), (Role::Read, 5, None));
        assert_eq!(ci.secret_hash, hash_secret(&made.secret));
        assert!(ci.masked().ends_with(&made.secret[made.secret.len() - 4..]));
        let again = apply_token(std::slice::from_ref(&ci), &create, 6).unwrap_err();
        assert_eq!(
            again.for_field("name"),
            Some("an admin token named 'ci' already exists")
        );
        let revoked = apply_token(
            std::slice::from_ref(&ci),
            &TokenChange::Revoke { name: "ci".into() },
            7,
        )
        .unwrap();
        assert_eq!(revoked.revoked, Some(7));
        let e = apply_token(&[], &TokenChange::Revoke { name: "x".into() }, 7).unwrap_err();
        assert!(
            e.for_field("name")
                .unwrap()
                .contains("no admin token named 'x'")
        );
        let (boot, _) = new_token(BOOTSTRAP.into(), Role::Admin);
        let e = apply_token(&[], &boot, 1).unwrap_err();
        assert!(
            e.for_field("name").unwrap().contains("server's own token"),
            "{e}"
        );
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("read or admin")
        );
    }
}

//! Secrets: upstream API keys (stored, always shown masked) and platform key
//! secrets (shown once, stored as a hash).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// An upstream API key. `Debug` and `Display` print it masked, so it cannot
/// reach a log line or a screen by accident; `expose()` is the one way out.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The real value, for the upstream's `Authorization` header and the store.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// What [`mask`] puts in place of a key too short to show a hint of.
pub const FULL_MASK: &str = "****";

/// `sk-abcdef…4f2a` → `sk-…4f2a`; short values are fully hidden. A value
/// that already is a mask is returned as is (the admin API sends masked
/// keys, and the remote console shows them through the same `Secret`).
pub fn mask(s: &str) -> String {
    if is_masked(s) {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 12 {
        return "****".to_string();
    }
    let prefix: String = if s.starts_with("sk-") {
        "sk-".into()
    } else {
        chars[..2].iter().collect()
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// Whether `s` is what [`mask`] makes of a key rather than a key: real
/// keys have no `…` and are not `****`.
pub fn is_masked(s: &str) -> bool {
    s == FULL_MASK || s.contains('…')
}

/// Lowercase hex SHA-256 of a platform key secret: the only form stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The last four characters of a secret (shown as `sk-…XXXX`).
pub fn secret_hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

/// A new platform key secret: `sk-` + 32 random bytes, base64url (43 chars).
pub fn generate_secret() -> String {
    format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

/// A new public key id: `key_` + 8 hex digits.
pub fn generate_key_id() -> String {
    format!("key_{}", hex::encode(random_bytes::<4>()))
}

/// Check an operator-supplied secret (imported from another platform).
pub fn validate_imported_secret(secret: &str) -> Result<(), String> {
    if !secret.starts_with("sk-") {
        return Err("must start with 'sk-'".into());
    }
    if secret.len() < 12 {
        return Err("must be at least 12 characters long".into());
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_a_hint() {
        assert_eq!(mask("sk-abcdefghijklmnop4f2a"), "sk-…4f2a");
        assert_eq!(mask("short"), "****");
        assert_eq!(
            format!("{:?}", Secret::new("sk-supersecretvalue9999")),
            "Secret(sk-…9999)"
        );
        assert!(!format!("{}", Secret::new("sk-supersecretvalue9999")).contains("supersecret"));
        // Masking a mask changes nothing.
        assert_eq!(mask("sk-…4f2a"), "sk-…4f2a");
        assert_eq!(mask("****"), "****");
        assert!(is_masked("sk-…4f2a") && !is_masked("sk-abcdefghijklmnop4f2a"));
    }

    #[test]
    fn secrets_are_long_random_and_hashed() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("sk-") && a.len() == 46, "{a}");
        assert_eq!(hash_secret("x").len(), 64);
        assert_eq!(secret_hint(&a).len(), 4);
        let id = generate_key_id();
        assert!(id.starts_with("key_") && id.len() == 12);
    }
}

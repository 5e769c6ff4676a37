//! Admin tokens: created (the secret shown once), listed (never a hash),
//! revoked (at once, for good). Each change is in the audit trail.

use serde::{Deserialize, Serialize};

use crate::domain::Origin;
use crate::domain::token::{AdminTokenRecord, CreatedToken, Role, TokenChange, new_token};
use crate::store::{Store, StoreError};

/// `POST /admin/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
}

/// `POST /admin/v1/tokens/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    pub name: String,
}

pub fn create(
    store: &dyn Store,
    origin: &Origin,
    req: NewToken,
) -> Result<CreatedToken, StoreError> {
    let (change, created) = new_token(req.name, req.role);
    store.change_token(change, origin)?;
    Ok(created)
}

/// Every token, without hashes, by name.
pub fn list(store: &dyn Store) -> Result<Vec<AdminTokenRecord>, StoreError> {
    Ok(store
        .tokens()?
        .iter()
        .map(AdminTokenRecord::listed)
        .collect())
}

pub fn revoke(
    store: &dyn Store,
    origin: &Origin,
    req: RevokeToken,
) -> Result<AdminTokenRecord, StoreError> {
    Ok(store
        .change_token(TokenChange::Revoke { name: req.name }, origin)?
        .listed())
}

//! The admin API's one error shape:
//! `{"error": {"kind", "message", "errors": [{"field", "problem"}]}}`.
//!
//! Refused registry changes keep the registry's kind and field errors, so a
//! remote console shows the same inline errors as an embedded one; errors
//! of the request itself (auth, route, method, body, query) name the part
//! of the request that was wrong in `field`.

use serde::{Deserialize, Serialize};

use crate::domain::{DomainError, ErrorKind, FieldError};
use crate::store::StoreError;

/// What went wrong, as a word in the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminErrorKind {
    /// The registry refused a value (400).
    Invalid,
    /// The registry has no such entity (404).
    NotFound,
    /// The name is taken, or the registry moved under an `expect-revision` (409).
    Conflict,
    /// The registry's state forbids the change (422).
    Refused,
    /// The request could not be read: bad JSON, a bad query parameter (400).
    BadRequest,
    /// No or a wrong admin token (401).
    Unauthorized,
    /// The token's role does not allow this route (403): a `read` token on
    /// a route that changes something.
    Forbidden,
    /// No such admin route (404).
    NoRoute,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// The body is over the size limit (413).
    PayloadTooLarge,
    /// The store failed (500).
    Internal,
}

impl AdminErrorKind {
    /// Every kind (the OpenAPI test checks the document lists them all).
    pub const ALL: [AdminErrorKind; 11] = [
        AdminErrorKind::Invalid,
        AdminErrorKind::NotFound,
        AdminErrorKind::Conflict,
        AdminErrorKind::Refused,
        AdminErrorKind::BadRequest,
        AdminErrorKind::Unauthorized,
        AdminErrorKind::Forbidden,
        AdminErrorKind::NoRoute,
        AdminErrorKind::MethodNotAllowed,
        AdminErrorKind::PayloadTooLarge,
        AdminErrorKind::Internal,
    ];

    pub fn status(self) -> u16 {
        match self {
            AdminErrorKind::Invalid | AdminErrorKind::BadRequest => 400,
            AdminErrorKind::Unauthorized => 401,
            AdminErrorKind::Forbidden => 403,
            AdminErrorKind::NotFound | AdminErrorKind::NoRoute => 404,
            AdminErrorKind::MethodNotAllowed => 405,
            AdminErrorKind::Conflict => 409,
            AdminErrorKind::PayloadTooLarge => 413,
            AdminErrorKind::Refused => 422,
            AdminErrorKind::Internal => 500,
        }
    }

    /// The registry's kind, for errors that are refusals of a change.
    fn domain(self) -> Option<ErrorKind> {
        match self {
            AdminErrorKind::Invalid => Some(ErrorKind::Invalid),
            AdminErrorKind::NotFound => Some(ErrorKind::NotFound),
            AdminErrorKind::Conflict => Some(ErrorKind::Conflict),
            AdminErrorKind::Refused => Some(ErrorKind::Refused),
            _ => None,
        }
    }
}

impl From<ErrorKind> for AdminErrorKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::Invalid => AdminErrorKind::Invalid,
            ErrorKind::NotFound => AdminErrorKind::NotFound,
            ErrorKind::Conflict => AdminErrorKind::Conflict,
            ErrorKind::Refused => AdminErrorKind::Refused,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    pub kind: AdminErrorKind,
    /// Every field error on one line.
    pub message: String,
    pub errors: Vec<FieldError>,
}

/// The body: the error under `"error"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminErrorBody {
    pub error: AdminError,
}

impl AdminError {
    /// One problem with one part of the request.
    pub fn new(kind: AdminErrorKind, field: impl Into<String>, problem: impl Into<String>) -> Self {
        let e = FieldError::new(field, problem);
        Self {
            kind,
            message: e.to_string(),
            errors: vec![e],
        }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The registry's refusal, when that is what this is.
    pub fn domain(&self) -> Option<DomainError> {
        self.kind.domain().map(|kind| DomainError {
            kind,
            errors: self.errors.clone(),
        })
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<DomainError> for AdminError {
    fn from(e: DomainError) -> Self {
        Self {
            kind: e.kind.into(),
            message: e.to_string(),
            errors: e.errors,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::Backend(s) => AdminError::new(AdminErrorKind::Internal, "store", s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_refusals_keep_kind_and_fields_across_the_wire() {
        let d = DomainError::refused("enabled", "publish it first");
        let api: AdminError = d.clone().into();
        assert_eq!(api.status(), 422);
        let json = serde_json::to_string(&AdminErrorBody { error: api }).unwrap();
        assert!(json.contains(r#""kind":"refused""#), "{json}");
        let back: AdminErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back.error.domain(), Some(d));
        let route = AdminError::new(AdminErrorKind::NoRoute, "path", "no such route");
        assert_eq!(route.status(), 404);
        assert_eq!(route.domain(), None);
        for (k, s) in [
            (ErrorKind::Invalid, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
        ] {
            assert_eq!(AdminErrorKind::from(k).status(), s);
        }
    }
}

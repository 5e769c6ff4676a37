//! Errors that name the field and the problem.
//!
//! Every refusal the registry gives carries the field (`endpoints[1].url`,
//! `weight`, `rules[3]`, …) and a sentence an operator can act on. Forms show
//! them next to the field; the CLI prints them on one line.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// What kind of refusal this is (drives CLI exit codes and HTTP statuses of
/// the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// A value is malformed or out of range.
    Invalid,
    /// The named entity does not exist.
    NotFound,
    /// The name is already taken.
    Conflict,
    /// The value is fine but the registry's state forbids the change
    /// (enabling an unpublished model, deleting a workspace rules use).
    Refused,
}

/// A refused registry change: one or more field errors of one kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainError {
    pub kind: ErrorKind,
    pub errors: Vec<FieldError>,
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::one(ErrorKind::Invalid, field, problem)
    }
    pub fn not_found(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::one(ErrorKind::NotFound, field, problem)
    }
    pub fn conflict(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::one(ErrorKind::Conflict, field, problem)
    }
    pub fn refused(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::one(ErrorKind::Refused, field, problem)
    }
    pub fn one(kind: ErrorKind, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            kind,
            errors: vec![FieldError::new(field, problem)],
        }
    }
    /// `Ok(())` when `errors` is empty, else an `Invalid` error with all of them.
    pub fn check(errors: Vec<FieldError>) -> Result<(), DomainError> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self {
                kind: ErrorKind::Invalid,
                errors,
            })
        }
    }
    /// Prefix every field with `prefix.` (e.g. `models[2].`), for batch applies.
    pub fn within(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.field = if e.field.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", e.field)
            };
        }
        self
    }
    /// The problem reported for `field`, if any (forms use this).
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.problem.as_str())
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DomainError {}

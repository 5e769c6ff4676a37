//! Forms: fields named exactly like the registry's error fields
//! (`endpoints[1].url`, `limit`, …), so a refusal from the store lands next
//! to the field it is about. Every edit re-runs the domain's own validation
//! on what is typed; nothing is sent until that passes, and what the store
//! refuses comes back inline too.
//!
//! [`form`] is the form itself; each other module makes one kind of form
//! and gives it its [`form::Behaviour`].

pub mod form;
pub mod model;
pub mod rule;
pub mod simple;

pub use form::{Choice, Field, FieldKind, Form, FormAction, FormEvent, FormKind, SELECT_HELP};

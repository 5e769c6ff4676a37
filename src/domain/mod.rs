//! Entities, validation and the registry's rules (`docs/architecture.md`, "Modules"). No I/O here.

pub mod audit;
pub mod budget;
pub mod entities;
pub mod error;
pub mod history;
pub mod limits;
pub mod manifest;
pub mod probe;
pub mod registry;
pub mod secret;
pub mod status;
pub mod token;
pub mod usage;
pub mod validate;

pub use audit::{Actor, ActorKind, AuditEntry, AuditQuery, Channel, EntityChange, Origin};
pub use entities::*;
pub use error::{DomainError, ErrorKind, FieldError};
pub use probe::{ProbeLease, ProbeResult};
pub use registry::key::{CreatedKey, new_key};
pub use registry::{Change, Outcome, REVISION_FIELD, Registry, Touched, summarize};
pub use secret::Secret;
pub use status::{
    EndpointHealth, EndpointRoute, EndpointState, GatewayReport, GatewayStatus, LimiterMode,
    STATE_SEVERITY, endpoint_routes, gateway_status,
};

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

//! Shared probes (`docs/gateway.md`, "Probes"): the lease that decides
//! which replica probes an endpoint this interval, and the last result the
//! others apply. No I/O here; the store keeps them (`probe_leases`).

use serde::{Deserialize, Serialize};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Answered below 500.
    pub ok: bool,
    /// Why it failed (empty when ok).
    pub reason: String,
    /// When it was probed (Unix ms, the prober's clock).
    pub at_ms: i64,
}

/// An endpoint's probe lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLease {
    /// The replica that probes it until `expires_ms`.
    pub holder: String,
    pub expires_ms: i64,
    /// The last result any replica recorded.
    pub last: Option<ProbeResult>,
}

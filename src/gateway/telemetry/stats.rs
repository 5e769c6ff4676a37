//! The counters snapshot: what the gateway publishes to the console, the
//! admin API and `/metrics` (`docs/gateway.md`, "Counters"). Plain data; the live side is atomics
//! in `gateway::telemetry::counters`. All totals are cumulative since the gateway
//! started, so a reader gets rates from two snapshots and totals that equal
//! what clients saw.

use serde::{Deserialize, Serialize};

use crate::domain::{EndpointState, LimiterMode};

/// Cumulative counts for one subject (the gateway, a model, a key, a workspace, an endpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Every request that reached routing for this subject (admitted + rejected).
    pub requests: u64,
    /// Answered 2xx by the upstream.
    pub success: u64,
    /// Rejected 401 (missing, invalid or revoked key). Gateway totals only:
    /// an unauthenticated request has no key or workspace.
    pub unauthorized: u64,
    /// Rejected 404 (unknown or disabled model).
    pub not_found: u64,
    /// Rejected 400/413 (malformed body, missing model, too large).
    pub bad_request: u64,
    /// Rejected 429 by a rate-limit rule.
    pub throttled: u64,
    /// Upstream answered 4xx (passed through to the caller).
    pub upstream_4xx: u64,
    /// Upstream answered 5xx, or could not be reached (502), or timed out
    /// (504), or no endpoint was in service (503).
    pub upstream_errors: u64,
    /// The caller went away before the answer's status was known. With the
    /// outcomes above and `in_flight`, every request is in exactly one.
    #[serde(default)]
    pub cancelled: u64,
    /// Requests being served right now.
    pub in_flight: u64,
    /// From the upstream's `usage` (streaming included).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Latency to the end of the response over the last minute, milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Latencies recorded (requests forwarded and answered to the end),
    /// cumulative: the `_count` of the `/metrics` latency summary.
    #[serde(default)]
    pub latency_count: u64,
    /// Their sum in microseconds, cumulative: the summary's `_sum`.
    #[serde(default)]
    pub latency_sum_us: u64,
}

/// One endpoint's counters and health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub model: String,
    pub index: usize,
    pub url: String,
    /// Configured weight (weighted policy), for the "share vs weight" column.
    pub weight: Option<u32>,
    pub state: EndpointState,
    /// Why it left the rotation (last error).
    pub reason: Option<String>,
    /// Unix ms when it left the rotation.
    pub since_ms: Option<i64>,
    pub totals: Totals,
}

/// One rate-limit rule, for one subject (a key id or a workspace name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStats {
    pub rule_id: u64,
    pub model: String,
    /// The key id (target api-key) or workspace name (target workspace).
    pub subject: String,
    pub limit: u32,
    pub duration_secs: u32,
    /// Requests admitted, cumulative.
    pub admitted: u64,
    /// Requests this rule rejected, cumulative.
    pub throttled: u64,
    /// Requests counted in the current window.
    pub used: u32,
    /// Milliseconds until the window has room again (0 if it has room now).
    pub reset_ms: u64,
}

/// What happened, for the traffic view's recent-events list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Throttled,
    UpstreamError,
    EndpointDown,
    EndpointUp,
    Reloaded,
}

/// A recent notable event (throttles, upstream errors, endpoints leaving or
/// rejoining the rotation, registry reloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic sequence number (readers show only new ones).
    pub seq: u64,
    /// Unix ms.
    pub at_ms: i64,
    pub kind: EventKind,
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub message: String,
}

/// Everything a reader gets, a few times a second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Unix ms when taken. A running gateway publishes at least one
    /// snapshot a second even when nothing moved, so a reader that hears
    /// nothing for longer knows its data is stale (see `docs/console.md`,
    /// "What the numbers mean").
    pub taken_ms: i64,
    /// Unix ms when the gateway that took it started: a reader seeing it
    /// change knows the counters started over (a restart) and must not
    /// compute rates across the two.
    #[serde(default)]
    pub started_ms: i64,
    /// Listen address of the gateway.
    pub listen: String,
    /// The registry revision being served.
    pub revision: u64,
    pub limiter: LimiterMode,
    pub gateway: Totals,
    /// By model name.
    pub models: std::collections::BTreeMap<String, Totals>,
    /// By key id.
    pub keys: std::collections::BTreeMap<String, Totals>,
    /// By workspace name.
    pub workspaces: std::collections::BTreeMap<String, Totals>,
    pub endpoints: Vec<EndpointStats>,
    pub rules: Vec<RuleStats>,
    /// The most recent events, oldest first (bounded).
    pub events: Vec<Event>,
}

//! Gateway status of a model, derived from what the live gateways report
//! (`docs/gateway.md`, "Hot reload": reports, heartbeats and expiry).

use serde::{Deserialize, Serialize};
use std::fmt;

use super::entities::Model;

/// Health of one endpoint as a gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    /// In rotation, and it answered (a real call or a probe).
    Healthy,
    /// In rotation, but never contacted yet: no evidence either way (a new
    /// or re-enabled endpoint until its first probe or call).
    Unknown,
    /// Out of back-off after an ejection: one trial request at a time.
    HalfOpen,
    /// The upstream answered 429: out until its Retry-After.
    Cooling,
    /// Ejected: out of rotation after a failure rate over the rule; tried
    /// again after its back-off.
    Down,
    /// Drained by the operator: no new requests, some still in flight.
    Draining,
    /// Drained by the operator, nothing in flight any more.
    Drained,
    /// Taken out by the operator.
    Disabled,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Healthy => "healthy",
            EndpointState::Unknown => "unknown",
            EndpointState::HalfOpen => "half-open",
            EndpointState::Cooling => "cooling",
            EndpointState::Down => "down",
            EndpointState::Draining => "draining",
            EndpointState::Drained => "drained",
            EndpointState::Disabled => "disabled",
        }
    }
}

/// One endpoint's health in a gateway report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    pub model: String,
    pub index: usize,
    pub url: String,
    pub state: EndpointState,
    /// Why it left the rotation (last error), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix ms when it left the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<i64>,
    /// Cooling: Unix ms when it is back in rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Tries sent to it in the last minute (failovers included).
    #[serde(default)]
    pub requests_1m: u64,
}

/// One endpoint of a model as `model routes` shows it: the worst state any
/// fresh gateway serving the model reports, and its share of the last
/// minute's tries summed over those gateways.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointRoute {
    pub index: usize,
    pub url: String,
    pub weight: Option<u32>,
    /// `None` when no fresh gateway reports it.
    pub state: Option<EndpointState>,
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub requests_1m: u64,
    /// Share (0..=1) of the model's tries in the last minute; `None` without any.
    pub share: Option<f64>,
}

/// Worst first: the state a summary shows when gateways disagree.
pub const STATE_SEVERITY: [EndpointState; 8] = [
    EndpointState::Down,
    EndpointState::Cooling,
    EndpointState::HalfOpen,
    EndpointState::Draining,
    EndpointState::Drained,
    EndpointState::Disabled,
    EndpointState::Unknown,
    EndpointState::Healthy,
];

/// The routes of `model` from the fresh reports of the gateways serving it.
pub fn endpoint_routes(
    model: &Model,
    reports: &[GatewayReport],
    now_ms: i64,
) -> Vec<EndpointRoute> {
    let fresh: Vec<&GatewayReport> = reports
        .iter()
        .filter(|r| r.is_fresh(now_ms) && r.serves(&model.spec.cluster))
        .collect();
    let mut rows: Vec<EndpointRoute> = model
        .spec
        .endpoints
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let seen: Vec<&EndpointHealth> = fresh
                .iter()
                .flat_map(|r| &r.endpoints)
                .filter(|h| h.model == model.spec.name && h.index == index)
                .collect();
            let worst = STATE_SEVERITY
                .iter()
                .find_map(|s| seen.iter().find(|h| h.state == *s));
            EndpointRoute {
                index,
                url: e.url.clone(),
                weight: e.weight,
                state: worst.map(|h| h.state),
                reason: worst.and_then(|h| h.reason.clone()),
                since_ms: worst.and_then(|h| h.since_ms),
                until_ms: worst.and_then(|h| h.until_ms),
                requests_1m: seen.iter().map(|h| h.requests_1m).sum(),
                share: None,
            }
        })
        .collect();
    let total: u64 = rows.iter().map(|r| r.requests_1m).sum();
    if total > 0 {
        for r in &mut rows {
            r.share = Some(r.requests_1m as f64 / total as f64);
        }
    }
    rows
}

/// How a gateway counts rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimiterMode {
    /// In this process only (no Redis configured).
    #[default]
    Local,
    /// Shared through Redis with the other replicas.
    Shared,
    /// Redis configured but unreachable: per-replica local limits until it is back.
    LocalFallback,
}

impl LimiterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LimiterMode::Local => "local",
            LimiterMode::Shared => "shared",
            LimiterMode::LocalFallback => "local-fallback",
        }
    }
}

/// What one running gateway says about itself, a few times a minute at least.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReport {
    /// Unique per process: `host:pid:listen`.
    pub id: String,
    /// The cluster it serves; `None` = every model.
    pub cluster: Option<String>,
    pub listen: String,
    /// The registry revision its routing snapshot was built from.
    pub applied_revision: u64,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms of this report.
    pub heartbeat_ms: i64,
    pub limiter: LimiterMode,
    pub endpoints: Vec<EndpointHealth>,
    /// Base URL of the admin API of the process running this gateway
    /// (`http://127.0.0.1:9090`), so CLIs on the same machine can find it
    /// (`maasctl rule explain`). Absent in reports of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

impl GatewayReport {
    /// How often a running gateway writes its report (the default of
    /// `GatewayConfig::report_interval`), plus once right after each reload.
    pub const HEARTBEAT_MS: i64 = 2_000;

    /// How long a report lives after its heartbeat: five heartbeats. An
    /// older report is expired (its gateway died, or has been cut off from
    /// the store that long): the store neither lists it nor keeps it (the
    /// next report any gateway writes deletes it), so no status counts it
    /// and a model no live gateway serves is `offline`.
    pub const STALE_MS: i64 = 5 * Self::HEARTBEAT_MS;

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms - self.heartbeat_ms <= Self::STALE_MS
    }

    pub fn serves(&self, cluster: &str) -> bool {
        self.cluster.as_deref().is_none_or(|c| c == cluster)
    }
}

/// The gateway status column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayStatus {
    /// Route loaded, every endpoint healthy.
    Serving,
    /// Some endpoints failing.
    Degraded,
    /// All endpoints failing or disabled.
    Down,
    /// A gateway has not yet applied the latest change.
    Pending,
    /// Route loaded, none of its endpoints contacted yet and none failing:
    /// no evidence it works (traffic still goes to them).
    Unknown,
    /// No gateway for this cluster reports in.
    Offline,
    /// The model is disabled.
    Off,
}

impl GatewayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayStatus::Serving => "serving",
            GatewayStatus::Degraded => "degraded",
            GatewayStatus::Down => "down",
            GatewayStatus::Pending => "pending",
            GatewayStatus::Unknown => "unknown",
            GatewayStatus::Offline => "offline",
            GatewayStatus::Off => "off",
        }
    }
}

impl fmt::Display for GatewayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Derive a model's gateway status from the fresh reports of the gateways
/// serving its cluster. Never assumed: no report, no `serving`.
pub fn gateway_status(model: &Model, reports: &[GatewayReport], now_ms: i64) -> GatewayStatus {
    if !model.enabled {
        return GatewayStatus::Off;
    }
    let serving: Vec<&GatewayReport> = reports
        .iter()
        .filter(|r| r.is_fresh(now_ms) && r.serves(&model.spec.cluster))
        .collect();
    if serving.is_empty() {
        return GatewayStatus::Offline;
    }
    if serving.iter().any(|r| r.applied_revision < model.rev) {
        return GatewayStatus::Pending;
    }
    let (mut healthy, mut failing, mut total) = (0usize, 0usize, 0usize);
    for r in &serving {
        for e in r.endpoints.iter().filter(|e| e.model == model.spec.name) {
            total += 1;
            match e.state {
                EndpointState::Healthy => healthy += 1,
                EndpointState::Unknown => {}
                EndpointState::HalfOpen
                | EndpointState::Cooling
                | EndpointState::Down
                | EndpointState::Draining
                | EndpointState::Drained
                | EndpointState::Disabled => failing += 1,
            }
        }
    }
    if total == 0 {
        // The gateway applied the revision but lists no route for the model.
        GatewayStatus::Pending
    } else if failing == total {
        GatewayStatus::Down
    } else if failing > 0 {
        GatewayStatus::Degraded
    } else if healthy == 0 {
        // Every endpoint unknown: never contacted, so no `serving` yet.
        GatewayStatus::Unknown
    } else {
        // Healthy ones, maybe unknown ones beside them: nothing failing.
        GatewayStatus::Serving
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Cluster, Endpoint, ModelSpec, Policy};

    fn status(states: &[EndpointState]) -> GatewayStatus {
        let model = Model {
            spec: ModelSpec {
                name: "m".into(),
                cluster: Cluster::DEFAULT.into(),
                model_id: "x".into(),
                endpoints: states.iter().map(|_| Endpoint::new("http://u")).collect(),
                policy: Policy::RoundRobin,
                tags: Vec::new(),
                fallbacks: Vec::new(),
                completion_cap: None,
            },
            enabled: true,
            rules: Vec::new(),
            created: 0,
            updated: 0,
            rev: 1,
        };
        let report = GatewayReport {
            id: "g".into(),
            cluster: None,
            listen: "l".into(),
            applied_revision: 1,
            started_ms: 0,
            heartbeat_ms: 1000,
            limiter: LimiterMode::Local,
            endpoints: states
                .iter()
                .enumerate()
                .map(|(index, &state)| EndpointHealth {
                    model: "m".into(),
                    index,
                    url: "http://u".into(),
                    state,
                    reason: None,
                    since_ms: None,
                    until_ms: None,
                    requests_1m: 0,
                })
                .collect(),
            admin: None,
        };
        gateway_status(&model, &[report], 1000)
    }

    #[test]
    fn unknown_endpoints_are_never_counted_healthy() {
        use EndpointState::*;
        assert_eq!(status(&[Unknown, Unknown]), GatewayStatus::Unknown);
        assert_eq!(status(&[Unknown, Disabled]), GatewayStatus::Degraded);
        assert_eq!(status(&[Unknown, Down]), GatewayStatus::Degraded);
        assert_eq!(status(&[Healthy, Unknown]), GatewayStatus::Serving);
        assert_eq!(status(&[Healthy, Healthy]), GatewayStatus::Serving);
        assert_eq!(status(&[Down, Disabled]), GatewayStatus::Down);
        assert_eq!(status(&[Healthy, Down]), GatewayStatus::Degraded);
        assert_eq!(GatewayStatus::Unknown.as_str(), "unknown");
        assert_eq!(EndpointState::Unknown.as_str(), "unknown");
        assert_eq!(
            serde_json::to_string(&EndpointState::Unknown).unwrap(),
            "\"unknown\""
        );
    }
}

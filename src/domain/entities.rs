//! The registry's entities (models, endpoints, rules, keys, workspaces, clusters, marketplace entries); their fields' limits are in `docs/limits.md`.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::secret::Secret;

/// A model offered by the marketplace (`DeepSeek-V3`, `Qwen2.5-72B-Instruct`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketEntry {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub published: bool,
    /// List price of input (prompt) tokens, USD per 1M tokens; none: unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_price: Option<Price>,
    /// List price of output (completion) tokens, USD per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_price: Option<Price>,
}

/// A price in USD per 1M tokens, as written (`0.27`). Validation
/// (`registry/market.rs`) keeps it finite and ≥ 0; equality is bitwise, so
/// an entry equals itself after a store round trip (stored as its shortest
/// decimal text).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(pub f64);

impl PartialEq for Price {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Price {}

impl Price {
    /// Micro-dollars per 1M tokens (what the ledger charges with), rounded.
    pub fn micros_per_m(self) -> u64 {
        if self.0.is_finite() && self.0 > 0.0 {
            (self.0 * 1e6).round().min(u64::MAX as f64) as u64
        } else {
            0
        }
    }
}

impl std::fmt::Display for Price {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Price {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: f64 = s
            .trim()
            .trim_start_matches('$')
            .parse()
            .map_err(|_| format!("'{s}' is not a price; use USD per 1M tokens, e.g. 0.27"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!(
                "'{s}' is not a price: it must be a finite number ≥ 0"
            ));
        }
        Ok(Price(v))
    }
}

impl MarketEntry {
    /// The entry's prices for the ledger, when it has any (a missing one
    /// counts as 0).
    pub fn prices(&self) -> Option<crate::domain::usage::Prices> {
        if self.input_price.is_none() && self.output_price.is_none() {
            return None;
        }
        Some(crate::domain::usage::Prices {
            input_micros_per_m: self.input_price.map_or(0, Price::micros_per_m),
            output_micros_per_m: self.output_price.map_or(0, Price::micros_per_m),
        })
    }
}

/// A cluster: where a model is entered. Its gateway answers at
/// `<entry_address>/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub entry_address: String,
}

impl Cluster {
    /// The name of the default cluster, served by gateways started without
    /// `--cluster` (the embedded gateway, single-node setups).
    pub const DEFAULT: &'static str = "local";

    /// The OpenAI base URL callers use for models entered here.
    pub fn access_path(&self) -> String {
        format!("{}/v1", self.entry_address.trim_end_matches('/'))
    }
}

/// A workspace: owns API keys; rules can target all its keys together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created: i64,
}

/// A platform API key. The secret itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Short public id, `key_` + 8 hex digits.
    pub id: String,
    pub workspace: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the secret. Defaults to empty when absent:
    /// the admin API leaves it out of the registry it sends.
    #[serde(default)]
    pub secret_hash: String,
    /// The last four characters of the secret, to tell keys apart (`sk-…4f2a`).
    pub secret_hint: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds when revoked.
    pub revoked: Option<i64>,
}

impl ApiKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked.is_some()
    }
    pub fn masked(&self) -> String {
        format!("sk-…{}", self.secret_hint)
    }
}

/// Load-balancing policy of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    #[default]
    RoundRobin,
    Random,
    Weighted,
    /// Power of two choices over the requests in flight per endpoint, ties
    /// by latency (`docs/gateway.md`, "Balancing").
    LeastLoaded,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::RoundRobin,
        Policy::Random,
        Policy::Weighted,
        Policy::LeastLoaded,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::Random => "random",
            Policy::Weighted => "weighted",
            Policy::LeastLoaded => "least-loaded",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "round-robin" | "roundrobin" | "rr" => Ok(Policy::RoundRobin),
            "random" => Ok(Policy::Random),
            "weighted" => Ok(Policy::Weighted),
            "least-loaded" | "leastloaded" => Ok(Policy::LeastLoaded),
            other => Err(format!(
                "'{other}' is not a policy; use round-robin, random, weighted or least-loaded"
            )),
        }
    }
}

/// How the gateway checks an endpoint that left the rotation (and one
/// saved while it runs). A probe never costs tokens: it is never a
/// completion, completions or embeddings route (`docs/gateway.md`, "Probes").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Probe {
    /// `GET <endpoint>/models` (no quota is used: it is not a completion).
    #[default]
    Models,
    /// No probe: the endpoint is put back after a cool-down and tried by real traffic.
    None,
    /// `GET` a health URL: a path (`/health`, on the endpoint's host, not
    /// under its base path) or a full URL on the endpoint's own scheme,
    /// host and port. Any answer below 500 counts as up.
    Get(String),
}

/// Routes a probe must never call: they spend tokens.
const SPENDING_ROUTES: [&str; 4] = [
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
];

impl Probe {
    pub fn as_str(&self) -> &str {
        match self {
            Probe::Models => "models",
            Probe::None => "none",
            Probe::Get(target) => target,
        }
    }

    /// Whether a probe target calls a route that spends tokens (its path,
    /// without query or trailing `/`, ends in a completion or embeddings
    /// route).
    pub fn spends_tokens(target: &str) -> bool {
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let path = path.trim_end_matches('/').to_ascii_lowercase();
        SPENDING_ROUTES.iter().any(|r| path.ends_with(r))
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "models" | "get-models" => return Ok(Probe::Models),
            "none" | "off" => return Ok(Probe::None),
            _ => {}
        }
        let lower = t.to_ascii_lowercase();
        if !(t.starts_with('/') || lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(format!(
                "'{t}' is not a probe; use models, none, a path on the endpoint's host (/health) or a URL (https://host/health)"
            ));
        }
        if Probe::spends_tokens(t) {
            return Err(format!(
                "'{t}' is a completion or embeddings route; probes must not spend tokens (use models, or a health path such as /health)"
            ));
        }
        Ok(Probe::Get(t.to_string()))
    }
}

impl Serialize for Probe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An upstream of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Base URL in the OpenAI SDK's sense: the gateway sends
    /// `/v1/chat/completions` to `<url>/chat/completions`.
    pub url: String,
    /// The upstream's API key; replaces the caller's. Masked everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Where `api_key` was read from (`env:VAR` or `file:PATH`) when the
    /// operator gave a reference rather than the value. Not a secret: `export`
    /// writes it in place of the key, and `apply` keeps the stored key while
    /// the reference is unchanged and cannot be read (see README, Decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_ref: Option<String>,
    /// Share of traffic under the weighted policy (all weights sum to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default)]
    pub probe: Probe,
    /// Taken out of rotation by the operator; no probe puts it back.
    #[serde(default)]
    pub disabled: bool,
    /// Draining: no new requests; those in flight (streams included)
    /// finish, then the gateway shows it `drained`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// Extra PEM CA bundle trusted for this endpoint (beside the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Endpoint {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            api_key_ref: None,
            weight: None,
            probe: Probe::Models,
            disabled: false,
            drain: false,
            ca_file: None,
        }
    }
}

/// Who a rate-limit rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleTarget {
    /// One API key's calls.
    ApiKey,
    /// All keys of a workspace together.
    Workspace,
}

impl RuleTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleTarget::ApiKey => "api-key",
            RuleTarget::Workspace => "workspace",
        }
    }
}

impl fmt::Display for RuleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuleTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "api-key" | "apikey" | "key" => Ok(RuleTarget::ApiKey),
            "workspace" | "ws" => Ok(RuleTarget::Workspace),
            other => Err(format!(
                "'{other}' is not a rule target; use api-key or workspace"
            )),
        }
    }
}

/// What a rate-limit rule counts: calls, or the tokens they use (prompt +
/// completion, reserved before forwarding and settled to the upstream's
/// `usage`; docs/rate-limits.md, "Token rules").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleUnit {
    /// One per call (the default).
    #[default]
    Requests,
    /// Prompt + completion tokens.
    Tokens,
}

impl RuleUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleUnit::Requests => "requests",
            RuleUnit::Tokens => "tokens",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == RuleUnit::Requests
    }
}

impl fmt::Display for RuleUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuleUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "requests" | "request" | "req" => Ok(RuleUnit::Requests),
            "tokens" | "token" | "tok" => Ok(RuleUnit::Tokens),
            other => Err(format!(
                "'{other}' is not a rule unit; use requests or tokens"
            )),
        }
    }
}

/// What a rule asks for (without its id): the form and CLI input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub target: RuleTarget,
    pub workspace: String,
    /// Key id; only for target `api-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Requests (or tokens, for unit `tokens`) admitted per window (≥ 1).
    pub limit: u32,
    /// Window length in seconds (≥ 1).
    pub duration_secs: u32,
    /// What `limit` counts; `requests` when absent.
    #[serde(default, skip_serializing_if = "RuleUnit::is_default")]
    pub unit: RuleUnit,
}

/// A rate-limit rule of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Registry-wide id, stable across edits (counters and limiter windows hang on it).
    pub id: u64,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

impl Rule {
    /// `api-key key_1234abcd: 50 per 2s` / `workspace acme: 1000 per 60s` /
    /// `workspace acme: 90000 tokens per 60s`.
    pub fn describe(&self) -> String {
        let subject = match self.spec.target {
            RuleTarget::ApiKey => format!("api-key {}", self.spec.key_id.as_deref().unwrap_or("?")),
            RuleTarget::Workspace => format!("workspace {}", self.spec.workspace),
        };
        let unit = match self.spec.unit {
            RuleUnit::Requests => "",
            RuleUnit::Tokens => " tokens",
        };
        format!(
            "rule #{} ({subject}: {}{unit} per {}s)",
            self.id, self.spec.limit, self.spec.duration_secs
        )
    }
}

/// What a model is made of, as the create/edit form and CLI give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A marketplace entry's name; unique among models.
    pub name: String,
    pub cluster: String,
    /// The upstream's own name for the model (`deepseek-chat`).
    pub model_id: String,
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Models tried in this order when none of this model's endpoints can
    /// answer (docs/gateway.md, "Fallback models").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Tokens a token rule reserves for the completion of a request that
    /// gives no `max_tokens`/`max_completion_tokens` (docs/rate-limits.md,
    /// "Token rules"); `None`: the default, 4096. 1..=1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_cap: Option<u32>,
}

/// A MaaS model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    #[serde(flatten)]
    pub spec: ModelSpec,
    pub enabled: bool,
    pub rules: Vec<Rule>,
    /// Unix seconds.
    pub created: i64,
    pub updated: i64,
    /// Registry revision of this model's last change (the gateway status is
    /// `pending` until a gateway has applied it).
    pub rev: u64,
}

impl Model {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

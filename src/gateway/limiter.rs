//! Rate limiting (SPEC §1/§2): the interface the gateway's request path calls.
//!
//! Every rule has exactly one subject: an `api-key` rule counts its key, a
//! `workspace` rule counts its workspace. So the limiter keeps one window per
//! rule id; a reload recompiles each model's rules into a [`ModelLimits`]
//! that points at those windows, keeping the windows of rules that survive
//! (an edited limit keeps its history) and dropping deleted ones.
//!
//! INTERFACE CONTRACT (the gateway depends on exactly these signatures):
//! - `Limiter::local()` — in-process limiter.
//! - `Limiter::compile(&self, model: &Model) -> ModelLimits` — on reload.
//! - `Limiter::retain(&self, live: &HashSet<u64>)` — after a reload, frees
//!   the windows of deleted rules.
//! - `Limiter::check(&self, limits, key_id, workspace).await -> Decision` —
//!   admits (and counts against every matching rule) or rejects (counts
//!   against none).
//! - `Limiter::stats(&self) -> Vec<RuleStats>`, `Limiter::mode()`.
//!
//! THIS FILE IS A PLACEHOLDER that admits everything; the rate-limiting work
//! replaces its body (not its signatures).

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::{LimiterMode, Model, RuleTarget};
use crate::gateway::stats::RuleStats;

/// Headroom of the tightest matching rule after an admitted request, for
/// `x-ratelimit-*` headers on successful responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    pub rule_id: u64,
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the window has fully rolled over.
    pub reset_ms: u64,
}

/// The rule that refused a request, for the 429 body and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule_id: u64,
    pub target: RuleTarget,
    /// The key id (target api-key) or workspace name (target workspace).
    pub subject: String,
    pub limit: u32,
    pub duration_secs: u32,
    /// Milliseconds until a request would be admitted (`Retry-After`, rounded up to seconds).
    pub retry_after_ms: u64,
    /// Milliseconds until the window has fully rolled over (`x-ratelimit-reset`).
    pub reset_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Admitted and counted against every matching rule.
    Admit(Option<Headroom>),
    /// Refused by this rule; counted against none.
    Reject(Rejection),
}

/// A model's rules, compiled for the request path.
#[derive(Debug, Clone, Default)]
pub struct ModelLimits {
    _rules: Vec<u64>,
}

impl ModelLimits {
    pub fn is_empty(&self) -> bool {
        self._rules.is_empty()
    }
}

/// The limiter, shared by every gateway worker.
#[derive(Debug, Default)]
pub struct Limiter {}

impl Limiter {
    pub fn local() -> Arc<Self> {
        Arc::new(Self {})
    }

    pub fn compile(&self, model: &Model) -> ModelLimits {
        ModelLimits {
            _rules: model.rules.iter().map(|r| r.id).collect(),
        }
    }

    pub fn retain(&self, _live: &HashSet<u64>) {}

    pub async fn check(&self, _limits: &ModelLimits, _key_id: &str, _workspace: &str) -> Decision {
        Decision::Admit(None)
    }

    pub fn stats(&self) -> Vec<RuleStats> {
        Vec::new()
    }

    pub fn mode(&self) -> LimiterMode {
        LimiterMode::Local
    }
}

//! Building rules and models for limiter tests, and running a local check
//! without an executor.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use maasctl::domain::{Model, ModelSpec, Policy, Rule, RuleSpec, RuleTarget};
use maasctl::gateway::limiter::{Decision, Limiter, ModelLimits};

pub fn key_rule(id: u64, workspace: &str, key: &str, limit: u32, duration_secs: u32) -> Rule {
    Rule {
        id,
        spec: RuleSpec {
            target: RuleTarget::ApiKey,
            workspace: workspace.into(),
            key_id: Some(key.into()),
            limit,
            duration_secs,
            unit: Default::default(),
        },
    }
}

pub fn workspace_rule(id: u64, workspace: &str, limit: u32, duration_secs: u32) -> Rule {
    Rule {
        id,
        spec: RuleSpec {
            target: RuleTarget::Workspace,
            workspace: workspace.into(),
            key_id: None,
            limit,
            duration_secs,
            unit: Default::default(),
        },
    }
}

pub fn model(name: &str, rules: Vec<Rule>) -> Model {
    Model {
        spec: ModelSpec {
            name: name.into(),
            cluster: "local".into(),
            model_id: name.to_lowercase(),
            endpoints: Vec::new(),
            policy: Policy::RoundRobin,
            tags: Vec::new(),
            fallbacks: Vec::new(),
            completion_cap: None,
        },
        enabled: true,
        rules,
        created: 0,
        updated: 0,
        rev: 1,
    }
}

/// A local check answers at once (`Limiter::check_now`, as the request
/// path calls it).
pub fn check_now(limiter: &Limiter, limits: &ModelLimits, key: &str, ws: &str) -> Decision {
    limiter
        .check_now(limits, key, ws)
        .expect("a local limiter answers at once")
}

/// The async `check`, run to completion here (a local one never waits).
pub fn check_polled(limiter: &Limiter, limits: &ModelLimits, key: &str, ws: &str) -> Decision {
    let mut fut = pin!(limiter.check(limits, key, ws));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(d) => d,
        Poll::Pending => panic!("a local check waited"),
    }
}

/// `rule`, counting tokens.
pub fn tokens(mut rule: Rule) -> Rule {
    rule.spec.unit = maasctl::domain::RuleUnit::Tokens;
    rule
}

/// A local reservation answers at once (`Limiter::reserve_now`).
pub fn reserve_now(
    limiter: &std::sync::Arc<Limiter>,
    limits: &ModelLimits,
    key: &str,
    ws: &str,
    estimate: maasctl::gateway::limiter::Estimate,
) -> (Decision, Option<maasctl::gateway::limiter::Reservation>) {
    limiter
        .reserve_now(limits, key, ws, estimate)
        .expect("a local limiter answers at once")
}

/// The async `reserve`, run to completion here (a local one never waits).
pub fn reserve_polled(
    limiter: &std::sync::Arc<Limiter>,
    limits: &ModelLimits,
    key: &str,
    ws: &str,
    estimate: maasctl::gateway::limiter::Estimate,
) -> (Decision, Option<maasctl::gateway::limiter::Reservation>) {
    let mut fut = pin!(limiter.reserve(limits, key, ws, estimate));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(d) => d,
        Poll::Pending => panic!("a local reservation waited"),
    }
}

//! Probes: what brings an ejected endpoint back, and what tells a newly
//! saved one works (`docs/gateway.md`, "Probes"). Runs on the control
//! thread, never on the request path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::HeaderMap;
use tokio::sync::Notify;
use tokio::time::{MissedTickBehavior, interval};

use super::EndpointKey;
use crate::domain::{EndpointState, Probe};
use crate::gateway::proxy::GatewayState;
use crate::gateway::snapshot::{EndpointRt, Route, Snapshot};
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::stats::EventKind;
use crate::gateway::upstream::SendError;
use crate::gateway::upstream::h1::RequestHead;
use crate::gateway::upstream::health::Transition;

pub(super) async fn probe_loop(shared: Arc<GatewayState>, reloaded: Arc<Notify>) {
    let mut tick = interval(shared.cfg.probe_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The endpoints of the last look, and whether they were disabled: one
    // not there before (or just re-enabled) is newly saved.
    let mut known = endpoint_keys(&shared.snapshot.load_full());
    loop {
        let after_reload = tokio::select! {
            _ = tick.tick() => false,
            _ = reloaded.notified() => true,
        };
        let snap = shared.snapshot.load_full();
        let mut fresh = HashSet::new();
        if after_reload {
            let now = endpoint_keys(&snap);
            fresh = now
                .iter()
                .filter(|(k, disabled)| !**disabled && known.get(*k).is_none_or(|was| *was))
                .map(|(k, _)| k.clone())
                .collect();
            known = now;
        }
        let mut probes = Vec::new();
        for route in &snap.routes {
            for ep in &route.endpoints {
                let state = ep.health.state();
                if ep.upstream.is_err() {
                    continue;
                }
                if ep.health.take_cool_ended() {
                    came_back(
                        &shared.events,
                        route,
                        ep,
                        Transition::CameBack,
                        "after cooling",
                    );
                }
                match (state, ep.probe) {
                    // Ejected: nothing until its back-off is over.
                    (EndpointState::Down, _) if !ep.health.trial_due() => {}
                    (EndpointState::Down, Probe::None) => {
                        if let Some(t) = ep.health.half_open() {
                            came_back(
                                &shared.events,
                                route,
                                ep,
                                t,
                                "after its back-off (probe: none)",
                            );
                        }
                    }
                    (EndpointState::Down, Probe::Models) => {
                        probes.push(probe(&shared, route, ep));
                    }
                    (EndpointState::Unknown, Probe::Models)
                        if fresh.contains(&(route.name.clone(), ep.index, ep.url.clone())) =>
                    {
                        probes.push(probe(&shared, route, ep));
                    }
                    // Healthy, disabled, or unknown since the start (or
                    // with probe none): the next real call decides.
                    _ => {}
                }
            }
        }
        futures_util::future::join_all(probes).await;
    }
}

/// Every endpoint of a snapshot, and whether the operator disabled it.
fn endpoint_keys(snap: &Snapshot) -> HashMap<EndpointKey, bool> {
    snap.routes
        .iter()
        .flat_map(|r| {
            r.endpoints.iter().map(|e| {
                (
                    (r.name.clone(), e.index, e.url.clone()),
                    e.health.state() == EndpointState::Disabled,
                )
            })
        })
        .collect()
}

/// An ejected endpoint's back-off is over: half-open, one trial request at
/// a time (its answer brings it back).
fn came_back(events: &Events, route: &Route, ep: &EndpointRt, t: Transition, how: &str) {
    if t == Transition::HalfOpen {
        tracing::info!(
            "model {} endpoint {} ({}) is half-open {how}",
            route.name,
            ep.index,
            ep.url
        );
        events.push(
            EventKind::EndpointUp,
            Some(&route.name),
            None,
            format!(
                "endpoint {} ({}) is half-open {how}: one trial request at a time",
                ep.index, ep.url
            ),
        );
    }
    if t == Transition::CameBack {
        tracing::info!(
            "model {} endpoint {} ({}) is back in rotation {how}",
            route.name,
            ep.index,
            ep.url
        );
        events.push(
            EventKind::EndpointUp,
            Some(&route.name),
            None,
            format!(
                "endpoint {} ({}) is back in rotation {how}",
                ep.index, ep.url
            ),
        );
    }
}

/// `GET <url>/models` with the endpoint's key. Any answer below 500 shows
/// the endpoint is reachable and serving; it costs no completion quota.
async fn probe(shared: &GatewayState, route: &Route, ep: &EndpointRt) {
    let Ok(upstream) = &ep.upstream else { return };
    let no_headers = HeaderMap::new();
    let head = RequestHead {
        method: "GET",
        target: ep.target.path("/models"),
        host: ep.target.host_header(),
        authorization: ep.auth.as_ref(),
        headers: &no_headers,
        content_length: None,
    };
    let slot = upstream.prober();
    let limit =
        shared.cfg.connect_timeout + shared.cfg.upstream_timeout.min(Duration::from_secs(10));
    let result = tokio::time::timeout(limit, async {
        let (answer, mut body) = upstream.send(slot, &head, &[]).await?;
        // Read the (small) answer so the connection can be reused.
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return Ok(answer.status);
            }
        }
        upstream.release(slot, &mut body);
        Ok::<_, SendError>(answer.status)
    })
    .await;
    let failed = match result {
        Ok(Ok(status)) if !status.is_server_error() => {
            if ep.health.confirm() {
                tracing::info!(
                    "model {} endpoint {} ({}) answered its first probe: healthy",
                    route.name,
                    ep.index,
                    ep.url
                );
            } else if let Some(t) = ep.health.half_open() {
                came_back(
                    &shared.events,
                    route,
                    ep,
                    t,
                    "after a successful probe (GET /models)",
                );
            }
            return;
        }
        Ok(Ok(status)) => format!("probe GET /models answered HTTP {}", status.as_u16()),
        Ok(Err(SendError::Connect(e) | SendError::Failed(e))) => format!("probe failed: {e}"),
        Err(_) => format!("probe got no answer within {}s", limit.as_secs_f64()),
    };
    let rule = shared.cfg.eject_rule();
    ep.health.trial_failed(&rule);
    if let Some(Transition::WentDown(why)) = ep.health.probe_failed(&failed, &rule) {
        // Never contacted, and the first probe failed: out at once.
        tracing::warn!(
            "model {} endpoint {} ({}) failed its first probe, out of rotation: {why}",
            route.name,
            ep.index,
            ep.url
        );
        shared.events.push(
            EventKind::EndpointDown,
            Some(&route.name),
            None,
            format!(
                "endpoint {} ({}) failed its first probe: {why}",
                ep.index, ep.url
            ),
        );
        return;
    }
    tracing::debug!(
        "model {} endpoint {} ({}): {failed}",
        route.name,
        ep.index,
        ep.url
    );
}

//! Probes: what brings an ejected endpoint back, and what tells a newly
//! saved one works (`docs/gateway.md`, "Probes"). Runs on the control
//! thread, never on the request path.
//!
//! Which endpoints are probed is today's rule: an ejected one once its
//! back-off is over, one saved while the gateway runs right after the
//! reload; a healthy one never (traffic judges it). A probe is `GET
//! <url>/models` or the endpoint's health path, never a route that spends
//! tokens.
//!
//! Replicas share the work through the store: before probing, a replica
//! takes the endpoint's lease in `probe_leases` (a conditional upsert, won
//! by one replica per interval); the winner probes and records the result,
//! the others apply the recorded result instead of probing. "The same
//! endpoint" is its URL, its probe and its upstream key (hashed), not the
//! model or index: two models on one upstream share one probe. When the
//! store cannot be reached, a replica probes on its own, as a single
//! gateway does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio::time::{MissedTickBehavior, interval};

use super::EndpointKey;
use crate::domain::secret::hash_secret;
use crate::domain::{EndpointState, Probe, ProbeLease, ProbeResult, now_ms};
use crate::gateway::proxy::GatewayState;
use crate::gateway::snapshot::{EndpointRt, Route, Snapshot};
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::stats::EventKind;
use crate::gateway::upstream::SendError;
use crate::gateway::upstream::h1::{HeaderLines, RequestHead};
use crate::gateway::upstream::health::Transition;
use crate::store::{Store, mapping};

/// Who this replica is in the probe leases, and where they are kept.
pub(super) struct Share {
    pub store: Arc<dyn Store>,
    /// The gateway report's id: unique per process.
    pub holder: String,
    /// The store failed last time (log once until it works again).
    failing: AtomicBool,
}

impl Share {
    pub(super) fn new(store: Arc<dyn Store>, holder: String) -> Self {
        Self {
            store,
            holder,
            failing: AtomicBool::new(false),
        }
    }

    /// Run `write` and read the lease of `key` back; `None` when the store
    /// cannot (the caller probes on its own).
    async fn lease(
        &self,
        key: &str,
        write: Vec<crate::store::sql::Statement>,
    ) -> Option<Option<ProbeLease>> {
        let (store, k) = (self.store.clone(), key.to_string());
        match tokio::task::spawn_blocking(move || store.probe_lease(&k, write)).await {
            Ok(Ok(lease)) => {
                if self.failing.swap(false, Relaxed) {
                    tracing::info!(
                        "probe leases work again: probes are shared with the other replicas"
                    );
                }
                Some(lease)
            }
            Ok(Err(e)) => {
                if !self.failing.swap(true, Relaxed) {
                    tracing::warn!("cannot share probes through the store, probing locally: {e}");
                }
                None
            }
            Err(_) => None,
        }
    }
}

/// What a due endpoint needs, per share key: its members (model routes
/// using the same upstream) and the time a result must be newer than.
struct Due<'a> {
    members: Vec<(&'a Route, &'a EndpointRt)>,
    after_ms: i64,
}

/// The share key of an endpoint: its URL, probe and upstream key, hashed
/// (the key never leaves the process in clear).
fn share_key(ep: &EndpointRt) -> String {
    let auth = ep.auth.as_ref().map(|a| a.as_bytes()).unwrap_or_default();
    hash_secret(&format!(
        "{}\n{}\n{}",
        ep.url,
        ep.probe,
        String::from_utf8_lossy(auth)
    ))
}

pub(super) async fn probe_loop(
    shared: Arc<GatewayState>,
    reloaded: Arc<Notify>,
    share: Arc<Share>,
) {
    let mut tick = interval(shared.cfg.probe_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The endpoints of the last look, and whether they were disabled: one
    // not there before (or just re-enabled) is newly saved.
    let mut known = endpoint_keys(&shared.snapshot.load_full());
    // Newly saved endpoints waiting for a first result (share key → since).
    let mut waiting: HashMap<String, i64> = HashMap::new();
    // Per share key, the newest result applied here (Unix ms).
    let mut applied: HashMap<String, i64> = HashMap::new();
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
        let due = due_endpoints(&shared, &snap, &fresh, &mut waiting, &applied);
        let probes = due
            .into_iter()
            .map(|(key, due)| run_share(&shared, &share, key, due));
        for (key, at) in futures_util::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
        {
            waiting.remove(&key);
            applied.insert(key, at);
        }
    }
}

/// The endpoints to probe this tick, grouped by share key. Probe `none`
/// endpoints whose back-off is over go half-open here, and cooling ends
/// are announced.
fn due_endpoints<'a>(
    shared: &GatewayState,
    snap: &'a Snapshot,
    fresh: &HashSet<EndpointKey>,
    waiting: &mut HashMap<String, i64>,
    applied: &HashMap<String, i64>,
) -> HashMap<String, Due<'a>> {
    let mut due: HashMap<String, Due<'a>> = HashMap::new();
    let now = now_ms();
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
            let after_ms = match (state, &ep.probe) {
                // Ejected: nothing until its back-off is over.
                (EndpointState::Down, _) if !ep.health.trial_due() => continue,
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
                    continue;
                }
                (EndpointState::Down, _) => {
                    let key = share_key(ep);
                    let since = ep.health.why().since_ms.unwrap_or(0);
                    since.max(applied.get(&key).copied().unwrap_or(0))
                }
                (EndpointState::Unknown, Probe::Models | Probe::Get(_)) => {
                    let key = share_key(ep);
                    if fresh.contains(&(route.name.clone(), ep.index, ep.url.clone())) {
                        *waiting.entry(key).or_insert(now)
                    } else if let Some(since) = waiting.get(&key) {
                        *since
                    } else {
                        // Unknown since the start: the next real call decides.
                        continue;
                    }
                }
                // Healthy, disabled, half-open, cooling: traffic decides.
                _ => continue,
            };
            let d = due.entry(share_key(ep)).or_insert(Due {
                members: Vec::new(),
                after_ms,
            });
            d.after_ms = d.after_ms.max(after_ms);
            d.members.push((route, ep));
        }
    }
    due
}

/// Probe one share key's endpoint, or apply a peer's result. Returns the
/// result's time when one was applied.
async fn run_share(
    shared: &GatewayState,
    share: &Share,
    key: String,
    due: Due<'_>,
) -> Option<(String, i64)> {
    let (_, first) = due.members[0];
    let now = now_ms();
    // A little under one interval: the holder's next tick finds it free.
    let lease_ms = (shared.cfg.probe_interval.as_millis() as i64 * 19 / 20).max(1);
    let until = now + lease_ms;
    let claim = mapping::claim_probe(&key, &share.holder, now, until);
    let lease = share.lease(&key, claim).await;
    let mine = match &lease {
        None => true,
        Some(Some(l)) => l.holder == share.holder && l.expires_ms == until,
        Some(None) => false,
    };
    if mine {
        let result = probe(shared, first).await;
        if lease.is_some() {
            let _ = share
                .lease(&key, mapping::put_probe_result(&key, &result))
                .await;
        }
        let how = format!("after a successful probe ({})", probe_label(&first.probe));
        for (route, ep) in &due.members {
            apply(shared, route, ep, &result, &how);
        }
        return Some((key, result.at_ms));
    }
    // Another replica holds the lease: its last result, if new enough.
    let l = lease.flatten()?;
    let last = l.last.filter(|r| r.at_ms > due.after_ms)?;
    let how = format!(
        "after a successful probe by replica {} ({})",
        l.holder,
        probe_label(&first.probe)
    );
    for (route, ep) in &due.members {
        apply(shared, route, ep, &last, &how);
    }
    Some((key, last.at_ms))
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

fn probe_label(p: &Probe) -> String {
    match p {
        Probe::Get(t) => format!("GET {t}"),
        _ => "GET /models".into(),
    }
}

/// `GET <url>/models` (or the endpoint's health path) with the endpoint's
/// key. Any answer below 500 shows the endpoint is reachable and serving;
/// it costs no completion quota.
async fn probe(shared: &GatewayState, ep: &EndpointRt) -> ProbeResult {
    let at_ms = now_ms();
    let failed = |reason: String| ProbeResult {
        ok: false,
        reason,
        at_ms,
    };
    let Ok(upstream) = &ep.upstream else {
        return failed("no usable upstream".into());
    };
    let owned;
    let target = match &ep.probe {
        Probe::Get(t) if t.starts_with('/') => [t.as_str(), ""],
        Probe::Get(t) => {
            owned = url::Url::parse(t)
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                })
                .unwrap_or_else(|_| "/".into());
            [owned.as_str(), ""]
        }
        _ => ep.target.path("/models"),
    };
    let no_headers = HeaderLines::default();
    let head = RequestHead {
        method: "GET",
        target,
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
    match result {
        Ok(Ok(status)) if !status.is_server_error() => ProbeResult {
            ok: true,
            reason: String::new(),
            at_ms,
        },
        Ok(Ok(status)) => failed(format!(
            "probe {} answered HTTP {}",
            probe_label(&ep.probe),
            status.as_u16()
        )),
        Ok(Err(SendError::Connect(e) | SendError::Failed(e))) => {
            failed(format!("probe failed: {e}"))
        }
        Err(_) => failed(format!(
            "probe got no answer within {}s",
            limit.as_secs_f64()
        )),
    }
}

/// Apply a probe's result (this replica's or a peer's) exactly alike: a
/// success confirms an unknown endpoint or makes an ejected one half-open;
/// a failure keeps it ejected with a doubled back-off, or ejects an
/// endpoint never contacted.
fn apply(shared: &GatewayState, route: &Route, ep: &EndpointRt, result: &ProbeResult, how: &str) {
    if result.ok {
        if ep.health.confirm() {
            tracing::info!(
                "model {} endpoint {} ({}) answered its first probe: healthy",
                route.name,
                ep.index,
                ep.url
            );
        } else if let Some(t) = ep.health.half_open() {
            came_back(&shared.events, route, ep, t, how);
        }
        return;
    }
    let failed = &result.reason;
    let rule = shared.cfg.eject_rule();
    ep.health.trial_failed(&rule);
    if let Some(Transition::WentDown(why)) = ep.health.probe_failed(failed, &rule) {
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

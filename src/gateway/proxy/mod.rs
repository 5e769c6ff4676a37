//! The request path of an API call, as named phases (accepting the
//! connection is [`server`](super::server)):
//!
//! ```text
//! on_head: count (Tally::new) → authenticate
//! (the server reads the body: server/driver.rs)
//! on_body: admit: find_model → route → budget → limit
//!        → forward (forward.rs): balance → send → relay
//!        → count (the Tally ends with the response body)
//! ```
//!
//! Each phase before forwarding returns the [`ProxyError`] that refuses the
//! request; `refuse` counts its outcome and answers it. The head's phases
//! are synchronous, so the server answers a request that needs no body
//! (and a 401) without reading one.
//!
//! Nothing here locks or does I/O besides the upstream call: the snapshot
//! is an atomic pointer load, auth a SHA-256 and a hash-map read, routing a
//! map read, balancing an atomic add, counting atomic adds on this worker's
//! own shard. The body is read once (it must be, to find `model`), the
//! `model` token is spliced, the rest of the request and the whole response
//! pass through as bytes.

pub mod body;
pub mod errors;
pub mod extract;
mod forward;
pub mod head;
pub mod ratelimit;
pub mod tally;

use std::ops::Range;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::gateway::config::GatewayConfig;
use crate::gateway::limiter::{Decision, Headroom, Limiter, Reservation, estimate};
use crate::gateway::snapshot::{Local, RouteRef, Snapshot};
use crate::gateway::telemetry::conns::ConnCounters;
use crate::gateway::telemetry::counters::RequestOutcome;
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::metrics;
use crate::gateway::telemetry::stats::{EventKind, StatsSnapshot};
use crate::gateway::upstream::h1::HeaderLines;
use body::ResBody;
use errors::ProxyError;
use extract::{ModelField, extract_model};
pub use head::CallerHead;
use tally::Tally;

/// What every worker shares (read-only or atomic).
pub struct GatewayState {
    pub cfg: GatewayConfig,
    pub snapshot: ArcSwap<Snapshot>,
    pub limiter: Arc<Limiter>,
    pub events: Arc<Events>,
    /// The latest published counters (for `/metrics`).
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
    /// The callers' connections (open, cap, shed).
    pub conns: ConnCounters,
    /// Keys and workspaces whose budget is spent (docs/usage.md "Budgets").
    pub budgets: crate::gateway::budget::Gate,
}

/// One worker thread's view.
pub struct Worker {
    pub id: usize,
    pub shared: Arc<GatewayState>,
}

const API_PATHS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// What the server does with a request head: the phases that need no body.
// Returned once per request and matched at once: boxing the large variant
// would cost an allocation on every API call.
#[allow(clippy::large_enum_variant)]
pub enum OnHead {
    /// Answer at once (`/v1/models`, `/healthz`, an unknown URL, a wrong
    /// method, a missing or bad key); the body, if any, is not read.
    Answer(Response<ResBody>),
    /// An authenticated API call: the server reads its body (within
    /// `--body-limit` and `--body-timeout`), then [`on_body`] takes it
    /// from there.
    ReadBody(Call),
}

/// An authenticated API call whose body is being read.
pub struct Call {
    tally: Tally,
    key: usize,
    /// Which of [`API_PATHS`] it was sent to.
    endpoint: &'static str,
    head: CallerHead,
}

impl Call {
    /// The body could not be read (too large, too slow, malformed): the
    /// answer, counted.
    pub fn refuse(mut self, e: ProxyError) -> Response<ResBody> {
        refuse(&mut self.tally, e)
    }
}

/// The phases of a request head: count, the URL and method, authenticate.
pub fn on_head(w: &Worker, head: CallerHead) -> OnHead {
    let path = head.path();
    if let Some(&endpoint) = API_PATHS.iter().find(|&&p| p == path) {
        if head.method != Method::POST {
            return OnHead::Answer(
                ProxyError::method_not_allowed(head.method.as_str(), path, "POST").into_response(),
            );
        }
        // Count: the tally counts the request now and its outcome when known.
        let mut tally = Tally::new(Local::current(&w.shared.snapshot), w.id);
        return match authenticate(tally.snap(), &head.headers) {
            Ok(key) => {
                tally.set_key(key);
                OnHead::ReadBody(Call {
                    tally,
                    key,
                    endpoint,
                    head,
                })
            }
            Err(e) => OnHead::Answer(refuse(&mut tally, e)),
        };
    }
    let method = &head.method;
    OnHead::Answer(match path {
        // `/metrics` is not served here (it names models, upstream URLs,
        // workspaces and keys): see `server::metrics` and the admin API.
        "/v1/models" | "/healthz" if method != Method::GET && method != Method::HEAD => {
            ProxyError::method_not_allowed(method.as_str(), path, "GET").into_response()
        }
        "/v1/models" => list_models(w, &head.headers),
        "/healthz" => plain(
            "application/json",
            format!(
                "{{\"status\":\"ok\",\"revision\":{},\"limiter\":\"{}\"}}",
                w.shared.snapshot.load().revision,
                w.shared.limiter.mode().as_str()
            ),
        ),
        _ => ProxyError::unknown_url(method.as_str(), path).into_response(),
    })
}

/// The phases after the body was read: find_model → route → limit →
/// forward.
pub async fn on_body(w: &Worker, call: Call, body: Bytes) -> Response<ResBody> {
    let Call {
        mut tally,
        key,
        endpoint,
        head,
    } = call;
    match admit(w, key, endpoint, head, body, &mut tally).await {
        // Boxed: each async fn's state is moved (memcpy) into its caller's
        // when awaited, so the deepest, largest one (forward: 2.5 KB) is
        // put on the heap once instead of copied at every level above it.
        Ok(admitted) => Box::pin(forward::forward(w, tally, admitted)).await,
        Err(e) => refuse(&mut tally, e),
    }
}

/// The Prometheus text of `/metrics` (see `telemetry::metrics`).
pub fn metrics_text(shared: &GatewayState) -> String {
    let stats = shared.stats.borrow().clone();
    metrics::render(
        &stats,
        &metrics::Options {
            key_series: shared.cfg.metrics_key_series,
            conns: shared.conns.gauges(),
        },
    )
}

/// The content type of [`metrics_text`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn plain(content_type: &'static str, body: String) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Who is calling: the key's index in the snapshot, or the 401 to send.
fn authenticate(snap: &Snapshot, headers: &HeaderLines) -> Result<usize, ProxyError> {
    let Some(v) = headers.get("authorization") else {
        return Err(ProxyError::missing_key());
    };
    let secret = match v.get(..7) {
        Some(s) if s.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
        _ => return Err(ProxyError::malformed_auth()),
    };
    if secret.is_empty() {
        return Err(ProxyError::missing_key());
    }
    let hash: [u8; 32] = Sha256::digest(secret).into();
    match snap.key(&hash) {
        Some(k) if snap.key_list[k].revoked => Err(ProxyError::revoked_key(&snap.key_list[k].id)),
        Some(k) => Ok(k),
        None => Err(ProxyError::invalid_key(&crate::domain::secret::mask(
            &String::from_utf8_lossy(secret),
        ))),
    }
}

fn list_models(w: &Worker, headers: &HeaderLines) -> Response<ResBody> {
    let snap = w.shared.snapshot.load();
    if let Err(e) = authenticate(&snap, headers) {
        return e.into_response();
    }
    plain_bytes("application/json", snap.models_body.clone())
}

fn plain_bytes(content_type: &'static str, body: Bytes) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// The outcome counted for an error answer.
fn outcome_of(e: &ProxyError) -> RequestOutcome {
    match e.status {
        StatusCode::UNAUTHORIZED => RequestOutcome::Unauthorized,
        StatusCode::NOT_FOUND => RequestOutcome::NotFound,
        StatusCode::TOO_MANY_REQUESTS => RequestOutcome::Throttled,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => {
            RequestOutcome::BadRequest
        }
        _ => RequestOutcome::UpstreamError,
    }
}

/// Answer an error, counting its outcome.
fn refuse(tally: &mut Tally, e: ProxyError) -> Response<ResBody> {
    tally.decide(outcome_of(&e));
    tally.set_status(e.status.as_u16());
    e.into_response()
}

/// A request that passed every phase before forwarding.
struct Admitted {
    snap: Arc<Local>,
    /// Index of the route in the snapshot.
    route: usize,
    /// Which of [`API_PATHS`] it was sent to.
    endpoint: &'static str,
    head: CallerHead,
    body: Bytes,
    /// Where the `model` string token is in `body`.
    model_span: Range<usize>,
    /// Where the completion caps are in `body` (token rules reserve them).
    caps: extract::CapFields,
    /// Of the tightest rate-limit rule, when the model has rules.
    headroom: Option<Headroom>,
    /// Tokens held in the model's token rules, settled when the answer
    /// ends (given back if it is dropped before: no answer).
    reservation: Option<Reservation>,
}

/// find_model → route → budget → limit (authenticated by [`on_head`],
/// the body read by the server).
async fn admit(
    w: &Worker,
    key: usize,
    endpoint: &'static str,
    head: CallerHead,
    body: Bytes,
    tally: &mut Tally,
) -> Result<Admitted, ProxyError> {
    let snap = tally.snap().clone();
    let model = find_model(&body)?;
    let r = route(&snap, &model.name)?;
    tally.set_route(r);
    over_budget(&w.shared, &snap, key, &model.name)?;
    let model_span = model.span.clone();
    let caps = model.caps.clone();
    let asked = Asked {
        endpoint,
        body: &body,
        caps: &caps,
    };
    let (headroom, reservation) = limit(&w.shared, &snap, key, r, asked, tally).await?;
    Ok(Admitted {
        snap,
        route: r,
        endpoint,
        head,
        body,
        model_span,
        caps,
        headroom,
        reservation,
    })
}

/// The `model` string of the body (see [`extract`]).
fn find_model(body: &[u8]) -> Result<ModelField<'_>, ProxyError> {
    extract_model(body).map_err(|e| ProxyError::bad_body(e.code(), e.message()))
}

/// The route serving `model`: unknown, disabled and other clusters' models
/// are 404.
fn route(snap: &Snapshot, model: &str) -> Result<usize, ProxyError> {
    match snap.route(model) {
        Some(RouteRef::Serve(r)) => Ok(*r),
        Some(RouteRef::Disabled) => Err(ProxyError::disabled_model(model)),
        Some(RouteRef::Elsewhere(path)) => Err(ProxyError::other_cluster(model, path)),
        None => Err(ProxyError::unknown_model(model)),
    }
}

/// 429 `insufficient_quota` when a budget of the key or its workspace is
/// spent (docs/usage.md "Budgets"): before the limiter, so a refused
/// request takes no rate-limit quota; counted as throttled.
fn over_budget(
    shared: &GatewayState,
    snap: &Snapshot,
    key: usize,
    model: &str,
) -> Result<(), ProxyError> {
    let k = &snap.key_list[key];
    let workspace = &snap.workspaces[k.workspace].name;
    let Some(refusal) = shared.budgets.check(&k.id, workspace) else {
        return Ok(());
    };
    shared.events.push(
        EventKind::Throttled,
        Some(model),
        Some(&k.id),
        format!(
            "budget {} is spent: refused key {}",
            refusal.budget_id, k.id
        ),
    );
    let retry = refusal.retry_after_secs(crate::domain::now_ms());
    let mut e = ProxyError::new(
        hyper::StatusCode::TOO_MANY_REQUESTS,
        "insufficient_quota",
        "insufficient_quota",
        refusal.message,
    );
    e.headers = vec![(header::RETRY_AFTER, HeaderValue::from(retry))];
    Err(e)
}

/// What the rate limiter reads of a request: for token rules, its endpoint
/// (one of [`API_PATHS`]), its body and the completion caps found in it.
#[derive(Clone, Copy)]
struct Asked<'a> {
    endpoint: &'static str,
    body: &'a [u8],
    caps: &'a extract::CapFields,
}

/// The rate limiter's decision, for models with rules: the headroom left
/// (for `x-ratelimit-*` headers) and, for models with token rules, the
/// tokens reserved (docs/rate-limits.md, "Token rules") — or the 429.
async fn limit(
    shared: &GatewayState,
    snap: &Snapshot,
    key: usize,
    r: usize,
    asked: Asked<'_>,
    tally: &mut Tally,
) -> Result<(Option<Headroom>, Option<Reservation>), ProxyError> {
    let Asked {
        endpoint,
        body,
        caps,
    } = asked;
    let route = &snap.routes[r];
    if route.limits.is_empty() {
        return Ok((None, None));
    }
    let k = &snap.key_list[key];
    let workspace = &snap.workspaces[k.workspace].name;
    // Without Redis the limiter answers at once (`*_now`); with it, its
    // future (the round trip) is large and boxed, so only models with rules
    // on a shared limiter pay for it.
    let limiter = &shared.limiter;
    let (decision, reservation) = if route.limits.counts_tokens() {
        let est = estimate::estimate_with(endpoint, body, route.completion_cap, || caps.read(body));
        match limiter.reserve_now(&route.limits, &k.id, workspace, est) {
            Some(now) => now,
            None => Box::pin(limiter.reserve(&route.limits, &k.id, workspace, est)).await,
        }
    } else {
        match limiter.check_now(&route.limits, &k.id, workspace) {
            Some(now) => (now, None),
            None => (
                Box::pin(limiter.check(&route.limits, &k.id, workspace)).await,
                None,
            ),
        }
    };
    match decision {
        Decision::Admit(h) => Ok((h, reservation)),
        Decision::Reject(rej) => {
            tally.set_rule(rej.rule_id);
            shared.events.push(
                EventKind::Throttled,
                Some(&route.name),
                Some(&k.id),
                format!(
                    "rule #{} ({} {}: {}{} per {}s) throttled key {}",
                    rej.rule_id,
                    rej.target.as_str(),
                    rej.subject,
                    rej.limit,
                    if rej.unit == crate::domain::RuleUnit::Tokens {
                        " tokens"
                    } else {
                        ""
                    },
                    rej.duration_secs,
                    k.id
                ),
            );
            Err(ProxyError::throttled(&route.name, &rej))
        }
    }
}

//! The request path of an API call, as named phases (accepting the
//! connection is [`server`](super::server)):
//!
//! ```text
//! proxy: count (Tally::new) → admit: authenticate → read_request
//!        → find_model → route → limit → forward (forward.rs): balance
//!        → send → relay → count (the Tally ends with the response body)
//! ```
//!
//! Each phase before forwarding returns the [`ProxyError`] that refuses the
//! request; `refuse` counts its outcome and answers it.
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
pub mod tally;

use std::convert::Infallible;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
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
use body::ResBody;
use errors::ProxyError;
use extract::{ModelField, extract_model};
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

/// Answer one request.
pub async fn handle(
    w: Arc<Worker>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let path = req.uri().path();
    let res = if API_PATHS.contains(&path) {
        if req.method() == Method::POST {
            proxy(&w, req).await
        } else {
            ProxyError::method_not_allowed(req.method().as_str(), path, "POST").into_response()
        }
    } else {
        match path {
            // `/metrics` is not served here (it names models, upstream URLs,
            // workspaces and keys): see `server::metrics` and the admin API.
            "/v1/models" | "/healthz"
                if req.method() != Method::GET && req.method() != Method::HEAD =>
            {
                ProxyError::method_not_allowed(req.method().as_str(), path, "GET").into_response()
            }
            "/v1/models" => list_models(&w, &req),
            "/healthz" => plain(
                "application/json",
                format!(
                    "{{\"status\":\"ok\",\"revision\":{},\"limiter\":\"{}\"}}",
                    w.shared.snapshot.load().revision,
                    w.shared.limiter.mode().as_str()
                ),
            ),
            _ => ProxyError::unknown_url(req.method().as_str(), path).into_response(),
        }
    };
    Ok(res)
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
fn authenticate(snap: &Snapshot, headers: &HeaderMap) -> Result<usize, ProxyError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ProxyError::missing_key());
    };
    let v = value.as_bytes();
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

fn list_models(w: &Worker, req: &Request<Incoming>) -> Response<ResBody> {
    let snap = w.shared.snapshot.load();
    if let Err(e) = authenticate(&snap, req.headers()) {
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

/// An API call: the phases in order.
async fn proxy(w: &Worker, req: Request<Incoming>) -> Response<ResBody> {
    // Count: the tally counts the request now and its outcome when known.
    let mut tally = Tally::new(Local::current(&w.shared.snapshot), w.id);
    match admit(w, req, &mut tally).await {
        // Boxed: each async fn's state is moved (memcpy) into its caller's
        // when awaited, so the deepest, largest one (forward: 2.5 KB) is
        // put on the heap once instead of copied at every level above it.
        Ok(admitted) => Box::pin(forward::forward(w, tally, admitted)).await,
        Err(e) => refuse(&mut tally, e),
    }
}

/// A request that passed every phase before forwarding.
struct Admitted {
    snap: Arc<Local>,
    /// Index of the route in the snapshot.
    route: usize,
    parts: Parts,
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

/// authenticate → read_body → find_model → route → limit.
async fn admit(
    w: &Worker,
    req: Request<Incoming>,
    tally: &mut Tally,
) -> Result<Admitted, ProxyError> {
    let snap = tally.snap().clone();
    let key = authenticate(&snap, req.headers())?;
    tally.set_key(key);
    let cfg = &w.shared.cfg;
    let (parts, body) = read_request(req, cfg.body_limit, cfg.body_timeout).await?;
    let model = find_model(&body)?;
    let r = route(&snap, &model.name)?;
    tally.set_route(r);
    over_budget(&w.shared, &snap, key, &model.name)?;
    let model_span = model.span.clone();
    let caps = model.caps.clone();
    let asked = Asked {
        parts: &parts,
        body: &body,
        caps: &caps,
    };
    let (headroom, reservation) = limit(&w.shared, &snap, key, r, asked, tally).await?;
    Ok(Admitted {
        snap,
        route: r,
        parts,
        body,
        model_span,
        caps,
        headroom,
        reservation,
    })
}

/// Read the body up to the size limit (a larger declared length is refused
/// before reading) within `timeout` of the headers.
async fn read_request(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<(Parts, Bytes), ProxyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(req.into_body());
        return Err(ProxyError::too_large(limit, declared));
    }
    let (parts, body) = req.into_parts();
    Ok((parts, read_body(body, limit, timeout).await?))
}

/// How much of a body refused for its declared size is read and thrown
/// away, and for how long (a bounded lingering close).
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Read and discard a refused body in the background, so a caller still
/// writing it reads the 413 (sent at once) instead of a reset: closing a
/// socket with unread data sends a reset that can overtake the answer.
fn drain(body: Incoming) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            DRAIN_TIME,
            http_body_util::Limited::new(body, DRAIN_LIMIT).collect(),
        )
        .await;
    });
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

/// What the rate limiter reads of a request: its path, and for token rules
/// its body and the completion caps found in it.
#[derive(Clone, Copy)]
struct Asked<'a> {
    parts: &'a Parts,
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
    let Asked { parts, body, caps } = asked;
    let route = &snap.routes[r];
    if route.limits.is_empty() {
        return Ok((None, None));
    }
    let k = &snap.key_list[key];
    let workspace = &snap.workspaces[k.workspace].name;
    // Boxed: the limiter's future (Redis round trip included) is large,
    // and only limited models pay for it.
    let (decision, reservation) = if route.limits.counts_tokens() {
        let est = estimate::estimate_with(parts.uri.path(), body, route.completion_cap, || {
            caps.read(body)
        });
        let reserve = shared.limiter.reserve(&route.limits, &k.id, workspace, est);
        Box::pin(reserve).await
    } else {
        let check = shared.limiter.check(&route.limits, &k.id, workspace);
        (Box::pin(check).await, None)
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

/// The next body frame if hyper has it without waiting for the caller:
/// asked once, and once more after yielding (hyper's connection task, which
/// is this task, moves what it has read into the body when the body asks
/// for it). `None`: the caller has not sent it yet. So the body timer is
/// only armed for a body that really is late, not for every request.
async fn next_frame(
    body: &mut Incoming,
) -> Option<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
    if let Some(f) = body.frame().now_or_never() {
        return Some(f);
    }
    tokio::task::yield_now().await;
    body.frame().now_or_never()
}

/// Read the whole request body, refusing it as soon as it passes `limit`
/// or when it is not complete `timeout` after the headers. The timer is
/// only set when a frame is not already there (a body that came with its
/// headers, the common case, costs no timer).
async fn read_body(
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut total = 0usize;
    // Set when a frame is not there after hyper had its turn (right after
    // the headers for a body that did not come with them).
    let mut deadline = None;
    loop {
        let next = match next_frame(&mut body).await {
            Some(f) => f,
            None => {
                let by = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                tokio::time::timeout_at(by, body.frame())
                    .await
                    .map_err(|_| ProxyError::body_timeout(timeout.as_secs_f64()))?
            }
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|e| ProxyError::bad_request_body(&e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(ProxyError::too_large(limit, None));
        }
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(f.len() + data.len());
                m.extend_from_slice(f);
                m.extend_from_slice(&data);
                more = Some(m);
            }
            (Some(_), Some(m)) => m.extend_from_slice(&data),
        }
    }
    Ok(match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    })
}

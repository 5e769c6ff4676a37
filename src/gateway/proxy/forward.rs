//! The upstream half of the request path: balance (which endpoints a
//! request tries, in order) → send (one try) → relay (the answer, counted).
//! A try that fails before any byte may have reached the upstream moves the
//! request to the next endpoint (see docs/gateway.md, "Failures").

use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use super::body::ResBody;
use super::errors::ProxyError;
use super::ratelimit::{RateHeaders, secs_up};
use super::{Admitted, GatewayState, Worker, refuse};
use quanta::Instant;

use crate::domain::{Policy, now_ms};
use crate::gateway::RateLimitHeaders;
use crate::gateway::limiter::{Headroom, Reservation};
use crate::gateway::proxy::tally::Tally;
use crate::gateway::snapshot::Route;
use crate::gateway::telemetry::counters::RequestOutcome;
use crate::gateway::telemetry::stats::EventKind;
use crate::gateway::upstream::balancer::Avail;
use crate::gateway::upstream::h1::{HeaderLines, RequestHead, ResponseHead};
use crate::gateway::upstream::health::{Health, Transition, retry_after};
use crate::gateway::upstream::{SendError, UpBody};

/// Upstream answers retried on the next endpoint (the request body is
/// buffered, nothing was relayed yet); the last try's answer passes through.
const RETRY_5XX: [u16; 4] = [500, 502, 503, 504];

/// What went wrong with one try of an endpoint.
enum TryError {
    /// No byte reached the upstream (refused, unreachable, TLS failure):
    /// safe to try the next endpoint.
    Connect(String),
    /// No answer within the upstream timeout.
    Timeout,
    /// The request may have reached the upstream; not retried.
    Other(String),
}

impl TryError {
    /// Why the try failed, as health and the logs say it.
    fn reason(&self, shared: &GatewayState) -> String {
        match self {
            TryError::Connect(m) | TryError::Other(m) => m.clone(),
            TryError::Timeout => format!(
                "no answer within {}s",
                shared.cfg.upstream_timeout.as_secs_f64()
            ),
        }
    }
}

/// Balance: the endpoints a request tries, in order. The policy's pick
/// first; the fallback order is only worked out when a try fails (or when
/// nothing is healthy: then only the last resort).
struct Balance<'a> {
    route: &'a Route,
    first: Option<usize>,
    /// Fallbacks, last to try first (popped from the end).
    order: Vec<usize>,
    ordered: bool,
}

impl<'a> Balance<'a> {
    fn new(route: &'a Route) -> Self {
        let n = route.endpoints.len();
        let avail = |i| route.avail(i);
        let first = route.balancer.pick_with(n, avail, |i| {
            let e = &route.endpoints[i];
            (e.counters.in_flight_now(), e.health.latency_ewma_us())
        });
        let mut b = Self {
            route,
            first,
            order: Vec::new(),
            ordered: first.is_none(),
        };
        if b.ordered {
            b.order = route.balancer.fallbacks(n, None, avail);
            b.last_resort_order();
        }
        b
    }

    /// Ejected endpoints (the last resort) by their last failure, least
    /// recent first; then reversed, to be popped.
    fn last_resort_order(&mut self) {
        let route = self.route;
        self.order.sort_by_key(|&i| match route.avail(i) {
            Avail::Down => (1, route.endpoints[i].health.last_failure()),
            _ => (0, 0),
        });
        self.order.reverse();
    }

    /// The endpoint of the first try.
    fn first(&mut self) -> Option<usize> {
        self.first.or_else(|| self.order.pop())
    }

    /// The endpoint of the next try, after one failed.
    fn next(&mut self) -> Option<usize> {
        if !self.ordered {
            let route = self.route;
            self.order = route
                .balancer
                .fallbacks(route.endpoints.len(), self.first, |i| route.avail(i));
            self.last_resort_order();
            self.ordered = true;
        }
        self.order.pop()
    }
}

/// How one model's tries ended.
enum Attempt {
    /// The answer to send (relayed, or the last failure).
    Answer(Response<ResBody>),
    /// Nothing answered before the first byte and a fallback model is left.
    Exhausted(Tally),
}

/// The header naming the model that answered.
const MODEL_HEADER: HeaderName = HeaderName::from_static("x-maasctl-model");

/// Forward an admitted request: the model's endpoints (see [`attempt`]),
/// then each of its fallback models in order while none could answer
/// (docs/gateway.md, "Fallback models"). A fallback's own rules apply; its
/// 429 is the answer.
pub(super) async fn forward(w: &Worker, mut tally: Tally, mut a: Admitted) -> Response<ResBody> {
    let snap = a.snap.clone();
    let fallbacks = &snap.routes[a.route].fallbacks;
    let mut r = a.route;
    let mut hop = 0;
    loop {
        let can_fall = hop < fallbacks.len();
        tally = match attempt(w, tally, &mut a, r, can_fall).await {
            Attempt::Answer(mut res) => {
                res.headers_mut()
                    .insert(MODEL_HEADER, snap.routes[r].name_header.clone());
                return res;
            }
            Attempt::Exhausted(t) => t,
        };
        let fb = fallbacks[hop];
        hop += 1;
        tracing::debug!(
            "model {} cannot answer; model {} takes the request (fallback)",
            snap.routes[r].name,
            snap.routes[fb].name
        );
        tally.move_route(fb);
        r = fb;
        let key = tally.key_index().unwrap_or_default();
        let asked = super::Asked {
            endpoint: a.endpoint,
            body: &a.body,
            caps: &a.caps,
        };
        let limited = super::limit(&w.shared, &snap, key, fb, asked, &mut tally);
        match limited.await {
            Ok((headroom, reservation)) => {
                a.headroom = headroom;
                a.reservation = reservation;
            }
            Err(e) => {
                let mut res = refuse(&mut tally, e);
                res.headers_mut()
                    .insert(MODEL_HEADER, snap.routes[fb].name_header.clone());
                return res;
            }
        }
    }
}

/// One model's tries: balance → send, failing over while a try can be
/// repeated → relay the answer (or answer the last failure). With
/// `can_fall`, a model none of whose endpoints answered before the first
/// byte gives the request back instead ([`Attempt::Exhausted`]).
async fn attempt(
    w: &Worker,
    mut tally: Tally,
    a: &mut Admitted,
    r: usize,
    can_fall: bool,
) -> Attempt {
    let shared = &*w.shared;
    let route = &a.snap.routes[r];
    let usable = (0..route.endpoints.len())
        .filter(|&i| matches!(route.avail(i), Avail::Healthy | Avail::Down))
        .count();
    if usable == 0 {
        if can_fall {
            return Attempt::Exhausted(tally);
        }
        let e = match soonest_back(route) {
            Some(secs) => all_cooling(&route.name, secs),
            None => ProxyError::no_endpoint(&route.name),
        };
        return Attempt::Answer(refuse(&mut tally, e));
    }
    // The body goes out in three pieces: around the `model` token, the
    // route's model ID in its place.
    let span = a.model_span.clone();
    let body: [&[u8]; 3] = [
        &a.body[..span.start],
        &route.model_id_json,
        &a.body[span.end..],
    ];
    let rest = rest_of(&a.head);
    let headers = &a.head.headers;
    let mut balance = Balance::new(route);
    let mut next = balance.first();
    let mut attempts = 0usize;
    let mut last = TryError::Other(String::new());
    while let Some(i) = next {
        let ep = &route.endpoints[i];
        // Half-open: the balancer picks it only while its one trial is free.
        let _trial = Trial(ep.health.admit().then_some(&*ep.health));
        attempts += 1;
        tally.begin_attempt(i);
        let timed = (route.balancer.policy() == Policy::LeastLoaded).then(Instant::now);
        let sent = send(w, route, i, headers, rest, &body).await;
        if let (Some(t), Ok(_)) = (timed, &sent) {
            ep.health.observe_latency(t.elapsed());
        }
        let (head, up) = match sent {
            Ok(answer) => answer,
            Err(e) => {
                let reason = e.reason(shared);
                health_failure(shared, route, i, &reason);
                last = e;
                if matches!(last, TryError::Other(_)) {
                    break;
                }
                tally.fail_attempt();
                next = if attempts < usable {
                    balance.next()
                } else {
                    None
                };
                tracing::debug!("model {} endpoint {i} ({}): {reason}", route.name, ep.url);
                continue;
            }
        };
        let status = head.status;
        let retry = status == StatusCode::TOO_MANY_REQUESTS || RETRY_5XX.contains(&status.as_u16());
        if !retry {
            let held = (a.headroom.take(), a.reservation.take());
            return Attempt::Answer(relay(shared, tally, route, i, head, up, held));
        }
        // A 429 cools the endpoint for its Retry-After; a 5xx counts as a
        // failure. Either way nothing was relayed yet: the next endpoint,
        // else the next model, else this answer passes on.
        if status == StatusCode::TOO_MANY_REQUESTS {
            cool(shared, route, i, &head.headers);
        }
        let more = if attempts < usable {
            balance.next()
        } else {
            None
        };
        if more.is_none() && !can_fall {
            let held = (a.headroom.take(), a.reservation.take());
            let mut res = relay(shared, tally, route, i, head, up, held);
            if status == StatusCode::TOO_MANY_REQUESTS
                && let Some(secs) = soonest_back(route)
            {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            return Attempt::Answer(res);
        }
        if status != StatusCode::TOO_MANY_REQUESTS {
            health_failure(
                shared,
                route,
                i,
                &format!("answered HTTP {}", status.as_u16()),
            );
        }
        tally.fail_attempt();
        drop(up); // closes that connection
        // Nothing of it was relayed: as safe to move on from as a refused
        // connection.
        last = TryError::Connect(format!("answered HTTP {}", status.as_u16()));
        next = more;
    }
    if can_fall && !matches!(last, TryError::Other(_)) {
        return Attempt::Exhausted(tally);
    }
    Attempt::Answer(give_up(shared, tally, route, last))
}

/// The caller's path after `/v1`, with its query (see `upstream::target`
/// for the join).
fn rest_of(head: &super::CallerHead) -> &str {
    head.path_and_query().get(3..).unwrap_or("")
}

/// Every try failed: answer the last failure (502/504), with an event.
fn give_up(
    shared: &GatewayState,
    mut tally: Tally,
    route: &Route,
    last: TryError,
) -> Response<ResBody> {
    let err = match last {
        TryError::Timeout => {
            ProxyError::timeout(&route.name, shared.cfg.upstream_timeout.as_secs_f64())
        }
        TryError::Connect(m) | TryError::Other(m) => ProxyError::unreachable(&route.name, &m),
    };
    shared.events.push(
        EventKind::UpstreamError,
        Some(&route.name),
        tally
            .key_index()
            .map(|k| tally.snap().key_list[k].id.as_str()),
        format!("{} {}", err.status.as_u16(), err.message),
    );
    refuse(&mut tally, err)
}

/// An upstream 429: endpoint `i` cools for its Retry-After.
fn cool(shared: &GatewayState, route: &Route, i: usize, headers: &HeaderLines) {
    let ep = &route.endpoints[i];
    let wait = retry_after(
        headers
            .get("retry-after")
            .and_then(|v| std::str::from_utf8(v).ok()),
    );
    if ep.health.cool(wait) {
        tracing::info!(
            "model {} endpoint {i} ({}) answered 429: cooling {:.1}s",
            route.name,
            ep.url,
            wait.as_secs_f64()
        );
        shared.events.push(
            EventKind::EndpointDown,
            Some(&route.name),
            None,
            format!(
                "endpoint {i} ({}) is cooling for {:.1}s: upstream answered 429",
                ep.url,
                wait.as_secs_f64()
            ),
        );
    }
}

/// Seconds until the first cooling endpoint of `route` is back, if any cools.
fn soonest_back(route: &Route) -> Option<u64> {
    let until = route
        .endpoints
        .iter()
        .filter_map(|e| e.health.cooling_until())
        .min()?;
    Some(secs_up(until.saturating_sub(now_ms()).max(0) as u64).max(1))
}

/// Every endpoint of the model cools after upstream 429s.
fn all_cooling(model: &str, secs: u64) -> ProxyError {
    let mut e = ProxyError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "upstream_rate_limited",
        format!(
            "Every endpoint of model '{model}' is rate limited by its upstream (HTTP 429). Retry after {secs}s."
        ),
    );
    e.headers.push((RETRY_AFTER, HeaderValue::from(secs)));
    e
}

fn health_failure(shared: &GatewayState, route: &Route, i: usize, reason: &str) {
    let ep = &route.endpoints[i];
    if let Some(Transition::WentDown(r)) = ep.health.failure(reason, &shared.cfg.eject_rule()) {
        tracing::warn!(
            "model {} endpoint {i} ({}) left the rotation: {r}",
            route.name,
            ep.url
        );
        shared.events.push(
            EventKind::EndpointDown,
            Some(&route.name),
            None,
            format!("endpoint {i} ({}) left the rotation: {r}", ep.url),
        );
    }
}

/// A half-open endpoint's trial: if the request ends before its outcome
/// (the caller left), the next request may be the trial.
struct Trial<'a>(Option<&'a Health>);

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.0 {
            h.end_trial();
        }
    }
}

/// Send: one try of endpoint `i`, up to the answer's head.
async fn send(
    w: &Worker,
    route: &Route,
    i: usize,
    headers: &HeaderLines,
    rest: &str,
    body: &[&[u8]],
) -> Result<(ResponseHead, UpBody), TryError> {
    let ep = &route.endpoints[i];
    let upstream = ep
        .upstream
        .as_ref()
        .map_err(|e| TryError::Connect(e.clone()))?;
    let head = RequestHead {
        method: "POST",
        target: ep.target.path(rest),
        host: ep.target.host_header(),
        authorization: ep.auth.as_ref(),
        headers,
        content_length: Some(body.iter().map(|p| p.len()).sum()),
    };
    let call = upstream.send(w.id, &head, body);
    match tokio::time::timeout(w.shared.cfg.upstream_timeout, call).await {
        Err(_) => Err(TryError::Timeout),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(SendError::Connect(m))) => Err(TryError::Connect(m)),
        Ok(Err(SendError::Failed(m))) => Err(TryError::Other(m)),
    }
}

/// Pass the upstream's answer through.
fn relay(
    shared: &GatewayState,
    mut tally: Tally,
    route: &Route,
    i: usize,
    head: ResponseHead,
    body: UpBody,
    (headroom, reservation): (Option<Headroom>, Option<Reservation>),
) -> Response<ResBody> {
    let status = head.status;
    tally.set_status(status.as_u16());
    let ep = &route.endpoints[i];
    let outcome = if status.is_server_error() {
        health_failure(
            shared,
            route,
            i,
            &format!("answered HTTP {}", status.as_u16()),
        );
        shared.events.push(
            EventKind::UpstreamError,
            Some(&route.name),
            tally
                .key_index()
                .map(|k| tally.snap().key_list[k].id.as_str()),
            format!(
                "endpoint {i} ({}) answered HTTP {}",
                ep.url,
                status.as_u16()
            ),
        );
        // Known now, whatever becomes of the body.
        tally.decide(RequestOutcome::UpstreamError);
        RequestOutcome::UpstreamError
    } else {
        if let Some(Transition::CameBack) = ep.health.success() {
            shared.events.push(
                EventKind::EndpointUp,
                Some(&route.name),
                None,
                format!(
                    "endpoint {i} ({}) answered again and is back in rotation",
                    ep.url
                ),
            );
        }
        // Counted when the body has been relayed to the end (a caller that
        // leaves part-way is `Cancelled`).
        if status.is_success() {
            RequestOutcome::Success
        } else {
            RequestOutcome::Upstream4xx
        }
    };
    // Token rules' headroom (no reservation, no work: models without token
    // rules); none when admitted answers do not show the limits.
    let always = shared.cfg.ratelimit_headers == RateLimitHeaders::Always;
    let headroom = headroom.filter(|_| always);
    let tokens = reservation
        .as_ref()
        .filter(|_| always)
        .and_then(|r| r.headroom().cloned());
    let rate = RateHeaders {
        requests: headroom.map(|h| (h.limit, h.remaining, h.reset_ms)),
        tokens: tokens.map(|t| (t.limit, t.remaining, t.reset_ms)),
    };
    let body = ResBody::relay(body, head.headers, tally, outcome)
        .settling(reservation, status)
        .with_rate_headers(rate);
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res
}

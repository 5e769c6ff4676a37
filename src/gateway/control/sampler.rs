//! Turning the live atomics into a [`StatsSnapshot`] a few times a second.
//!
//! Latency percentiles cover the last minute: the sampler keeps a copy of
//! each subject's cumulative histogram every few seconds and reports the
//! difference between now and the copy from about a minute ago.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::domain::now_ms;
use crate::gateway::limiter::Limiter;
use crate::gateway::snapshot::{CounterBook, Snapshot, Subject};
use crate::gateway::telemetry::counters::{
    BUCKETS, Counters, Reading, RequestOutcome, hist_delta, quantile_ms,
};
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::stats::{EndpointStats, StatsSnapshot, Totals};

/// Window of the latency percentiles.
const WINDOW: Duration = Duration::from_secs(60);
/// Spacing of the kept histogram copies.
const STEP: Duration = Duration::from_secs(5);

type Hist = Box<[u32; BUCKETS]>;

/// Histogram copies of one subject, oldest first.
#[derive(Default)]
struct Ring(VecDeque<(Instant, Hist)>);

impl Ring {
    /// Requests recorded in the last minute (up to one step more).
    fn last_minute(&mut self, now: Instant, hist: &[u32; BUCKETS]) -> [u32; BUCKETS] {
        if self.0.is_empty() {
            // First sight: everything recorded so far is recent.
            self.0.push_back((now, Box::new([0; BUCKETS])));
        }
        if self
            .0
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) >= STEP)
        {
            self.0.push_back((now, Box::new(*hist)));
        }
        while self.0.len() > 1 && now.duration_since(self.0[0].0) > WINDOW {
            self.0.pop_front();
        }
        hist_delta(hist, &self.0[0].1)
    }
}

#[derive(Default)]
pub struct Sampler {
    rings: HashMap<String, Ring>,
}

impl Sampler {
    fn totals(&mut self, now: Instant, ring_key: String, r: &Reading) -> Totals {
        let ring = self.rings.entry(ring_key).or_default();
        let recent = ring.last_minute(now, &r.hist);
        Totals {
            requests: r.started,
            success: r.outcome(RequestOutcome::Success),
            unauthorized: r.outcome(RequestOutcome::Unauthorized),
            not_found: r.outcome(RequestOutcome::NotFound),
            bad_request: r.outcome(RequestOutcome::BadRequest),
            throttled: r.outcome(RequestOutcome::Throttled),
            upstream_4xx: r.outcome(RequestOutcome::Upstream4xx),
            upstream_errors: r.outcome(RequestOutcome::UpstreamError),
            cancelled: r.outcome(RequestOutcome::Cancelled),
            in_flight: r.in_flight(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            latency_p50_ms: quantile_ms(&recent, 0.5),
            latency_p99_ms: quantile_ms(&recent, 0.99),
            latency_count: r.latency_count,
            latency_sum_us: r.latency_sum_us,
        }
    }

    fn subject_totals(
        &mut self,
        now: Instant,
        book: &CounterBook,
        kind: Subject,
        tag: &str,
    ) -> std::collections::BTreeMap<String, Totals> {
        book.all(kind)
            .into_iter()
            .map(|(name, c): (String, std::sync::Arc<Counters>)| {
                let t = self.totals(now, format!("{tag}\0{name}"), &c.read());
                (name, t)
            })
            .collect()
    }

    /// Take a snapshot of everything.
    pub fn sample(
        &mut self,
        snap: &Snapshot,
        book: &CounterBook,
        limiter: &Limiter,
        events: &Events,
        listen: &str,
    ) -> StatsSnapshot {
        let now = Instant::now();
        let mut seen_endpoints = Vec::new();
        let mut endpoints = Vec::new();
        for route in &snap.routes {
            for ep in &route.endpoints {
                let ring_key = format!("endpoint\0{}\0{}\0{}", route.name, ep.index, ep.url);
                let totals = self.totals(now, ring_key.clone(), &ep.counters.read());
                seen_endpoints.push(ring_key);
                let (state, why) = route.health_of(ep.index);
                endpoints.push(EndpointStats {
                    model: route.name.clone(),
                    index: ep.index,
                    url: ep.url.clone(),
                    weight: ep.weight,
                    state,
                    reason: why.reason,
                    since_ms: why.since_ms,
                    totals,
                });
            }
        }
        // Forget the rings of endpoints that are gone.
        self.rings
            .retain(|k, _| !k.starts_with("endpoint\0") || seen_endpoints.contains(k));
        StatsSnapshot {
            taken_ms: now_ms(),
            started_ms: 0,
            listen: listen.to_string(),
            revision: snap.revision,
            limiter: limiter.mode(),
            gateway: self.totals(now, "gateway".into(), &book.gateway.read()),
            models: self.subject_totals(now, book, Subject::Model, "model"),
            keys: self.subject_totals(now, book, Subject::Key, "key"),
            workspaces: self.subject_totals(now, book, Subject::Workspace, "workspace"),
            endpoints,
            rules: limiter.stats(),
            events: {
                // The live tail's events move from the channel to the ring.
                events.requests.drain();
                events.recent()
            },
        }
    }
}

/// Whether two snapshots differ in anything but the time they were taken.
pub fn changed(a: &StatsSnapshot, b: &StatsSnapshot) -> bool {
    // Destructured so a new field cannot be forgotten here.
    let StatsSnapshot {
        taken_ms: _,
        started_ms,
        listen,
        revision,
        limiter,
        gateway,
        models,
        keys,
        workspaces,
        endpoints,
        rules,
        events,
    } = a;
    started_ms != &b.started_ms
        || listen != &b.listen
        || revision != &b.revision
        || limiter != &b.limiter
        || gateway != &b.gateway
        || models != &b.models
        || keys != &b.keys
        || workspaces != &b.workspaces
        || endpoints != &b.endpoints
        || rules != &b.rules
        || events != &b.events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let mut ring = Ring::default();
        let t0 = Instant::now();
        let mut hist = [0u32; BUCKETS];
        hist[10] = 5;
        assert_eq!(ring.last_minute(t0, &hist)[10], 5);
        hist[20] = 3;
        let t = t0 + Duration::from_secs(30);
        let d = ring.last_minute(t, &hist);
        assert_eq!((d[10], d[20]), (5, 3));
        // 70 s later, the copy taken at 30 s is the baseline: only later requests count.
        hist[30] = 1;
        let d = ring.last_minute(t0 + Duration::from_secs(85), &hist);
        assert_eq!((d[10], d[20], d[30]), (0, 0, 1));
    }
}

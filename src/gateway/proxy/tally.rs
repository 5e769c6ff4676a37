//! Accounting of one request: which subjects it counts against and how it
//! ended.
//!
//! A `Tally` is created when a request arrives and travels with it (into
//! the streamed response body when there is one). Subjects are attached as
//! they become known (key and workspace after auth, model after routing,
//! endpoint per attempt); each is counted as started then. On drop, every
//! attached subject is counted as finished, so in-flight numbers cannot
//! leak, whatever path the request took: a request dropped before its
//! status was decided (the client went away) ends as `Cancelled`.

use std::sync::Arc;
// The TSC clock: a request is stamped when it arrives (its latency).
use quanta::Instant;

use crate::domain::now_ms;
use crate::gateway::snapshot::{EndpointRt, Local};
use crate::gateway::telemetry::counters::{Counters, RequestOutcome};
use crate::gateway::telemetry::events::RequestEvent;
use crate::gateway::telemetry::ledger::UsageCell;

pub struct Tally {
    snap: Arc<Local>,
    worker: usize,
    key: Option<usize>,
    route: Option<usize>,
    endpoint: Option<usize>,
    decided: bool,
    started: Instant,
    /// For the live tail's event: the status answered (0: none yet),
    /// failed tries, tokens, the endpoint tried last, the rule that refused.
    status: u16,
    hops: u32,
    tokens: (u64, u64),
    last_endpoint: Option<usize>,
    rule: Option<u64>,
}

impl Tally {
    pub fn new(snap: Arc<Local>, worker: usize) -> Self {
        snap.gateway.start(worker);
        Self {
            snap,
            worker,
            key: None,
            route: None,
            endpoint: None,
            decided: false,
            started: Instant::now(),
            status: 0,
            hops: 0,
            tokens: (0, 0),
            last_endpoint: None,
            rule: None,
        }
    }

    pub fn snap(&self) -> &Arc<Local> {
        &self.snap
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Call `f` on every attached subject's counters.
    fn each(&self, mut f: impl FnMut(&Counters)) {
        let s = &*self.snap;
        f(&s.gateway);
        if let Some(k) = self.key {
            let key = &s.key_list[k];
            f(&key.counters);
            f(&s.workspaces[key.workspace].counters);
        }
        if let Some(r) = self.route {
            let route = &s.routes[r];
            f(&route.counters);
            if let Some(e) = self.endpoint {
                f(&route.endpoints[e].counters);
            }
        }
    }

    /// The caller's key is known (counts its key and workspace).
    pub fn set_key(&mut self, k: usize) {
        let key = &self.snap.key_list[k];
        key.counters.start(self.worker);
        self.snap.workspaces[key.workspace]
            .counters
            .start(self.worker);
        self.key = Some(k);
    }

    pub fn key_index(&self) -> Option<usize> {
        self.key
    }

    /// The model is known and served.
    pub fn set_route(&mut self, r: usize) {
        self.snap.routes[r].counters.start(self.worker);
        self.route = Some(r);
    }

    /// The model could not answer and a fallback model takes the request
    /// (docs/gateway.md, "Fallback models"): the first model counts an
    /// upstream error and ends; the request goes on counted against `r`.
    pub fn move_route(&mut self, r: usize) {
        if self.endpoint.is_some() {
            self.fail_attempt();
        }
        if let Some(old) = self.route.take() {
            let c = &self.snap.routes[old].counters;
            c.outcome(self.worker, RequestOutcome::UpstreamError);
            c.finish(self.worker);
        }
        self.set_route(r);
    }

    /// The endpoint being tried (or that answered).
    pub fn endpoint(&self) -> Option<&EndpointRt> {
        Some(&self.snap.routes[self.route?].endpoints[self.endpoint?])
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    fn endpoint_counters(&self) -> Option<&Counters> {
        Some(&self.endpoint()?.counters)
    }

    /// A try of endpoint `e` of the route begins.
    pub fn begin_attempt(&mut self, e: usize) {
        self.endpoint = Some(e);
        self.last_endpoint = Some(e);
        if let Some(c) = self.endpoint_counters() {
            c.start(self.worker);
        }
    }

    /// The current try failed before any answer; the request moves on (the
    /// endpoint counts an upstream error, the request is not decided).
    pub fn fail_attempt(&mut self) {
        if let Some(c) = self.endpoint_counters() {
            c.outcome(self.worker, RequestOutcome::UpstreamError);
            c.finish(self.worker);
        }
        self.endpoint = None;
        self.hops += 1;
    }

    /// How the request ended (once).
    pub fn decide(&mut self, o: RequestOutcome) {
        if self.decided {
            return;
        }
        self.decided = true;
        let w = self.worker;
        self.each(|c| c.outcome(w, o));
        if let Some(cell) = self.usage_cell() {
            cell.outcome(o);
        }
    }

    /// The usage ledger's cell of this request's key and model, once both
    /// are known.
    fn usage_cell(&self) -> Option<&UsageCell> {
        Some(&self.snap.routes[self.route?].usage[self.key?])
    }

    /// The status answered to the caller (for the live tail).
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    /// The rate-limit rule that refused the request (for the live tail).
    pub fn set_rule(&mut self, rule: u64) {
        self.rule = Some(rule);
    }

    /// Tokens seen in the response.
    pub fn tokens(&mut self, prompt: u64, completion: u64) {
        self.tokens = (prompt, completion);
        if prompt == 0 && completion == 0 {
            return;
        }
        let w = self.worker;
        self.each(|c| c.tokens(w, prompt, completion));
        if let Some(cell) = self.usage_cell() {
            cell.tokens(prompt, completion);
        }
    }

    /// The response is complete: record its latency.
    pub fn latency(&self) {
        let d = self.started.elapsed();
        let w = self.worker;
        self.each(|c| c.latency(w, d));
    }
}

impl Tally {
    /// The live tail's event for this request: one `try_send` of numbers
    /// and shared names (reference counts, no allocation); nothing when the
    /// channel is full.
    fn record(&self) {
        let tail = &self.snap.events.requests;
        if !tail.has_room() {
            return;
        }
        let s = &*self.snap;
        let route = self.route.map(|r| &s.routes[r]);
        let endpoint = route
            .zip(self.last_endpoint)
            .map(|(r, e)| r.endpoints[e].tail_label.clone());
        tail.record(RequestEvent {
            seq: 0,
            at_ms: now_ms(),
            key_id: self.key.map(|k| s.key_list[k].tail_id.clone()),
            model: route.map(|r| r.tail_name.clone()),
            status: self.status,
            latency_ms: self.started.elapsed().as_millis() as u64,
            prompt_tokens: self.tokens.0,
            completion_tokens: self.tokens.1,
            endpoint,
            hops: self.hops,
            rule: self.rule,
        });
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.decide(RequestOutcome::Cancelled);
        let w = self.worker;
        self.each(|c| c.finish(w));
        self.record();
    }
}

//! Live rates and sparkline history from the gateway's cumulative counters.
//!
//! The gateway publishes cumulative totals; a rate is the difference of two
//! snapshots about a second apart divided by the time between them, so a
//! missed snapshot never distorts a number. Everything here is computed once
//! per snapshot, never per frame.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::gateway::{StatsSnapshot, Totals};

/// Requests, throttles and upstream errors per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub req: f64,
    pub thr: f64,
    pub err: f64,
}

impl Rate {
    fn between(cur: &Totals, base: Option<&Totals>, secs: f64) -> Rate {
        let base = base.copied().unwrap_or_default();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        Rate {
            req: d(cur.requests, base.requests),
            thr: d(cur.throttled, base.throttled),
            err: d(cur.upstream_errors, base.upstream_errors),
        }
    }
    pub fn is_zero(&self) -> bool {
        self.req == 0.0 && self.thr == 0.0 && self.err == 0.0
    }
}

/// Per-second samples of requests and throttles (newest last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub requests: VecDeque<u64>,
    pub throttled: VecDeque<u64>,
}

impl History {
    /// Samples kept: two minutes.
    pub const LEN: usize = 120;

    fn push(&mut self, req: u64, thr: u64) {
        for (q, v) in [(&mut self.requests, req), (&mut self.throttled, thr)] {
            if q.len() == Self::LEN {
                q.pop_front();
            }
            q.push_back(v);
        }
    }
}

/// The rates window: about one second.
const WINDOW_MS: i64 = 1000;

/// Everything the views show about traffic.
#[derive(Debug, Default)]
pub struct Live {
    /// Recent snapshots, oldest first, spanning a little over the window.
    recent: VecDeque<Arc<StatsSnapshot>>,
    /// The snapshot the last history sample was taken against.
    sample_base: Option<Arc<StatsSnapshot>>,
    pub current: Arc<StatsSnapshot>,
    pub gateway: Rate,
    pub models: HashMap<String, Rate>,
    pub keys: HashMap<String, Rate>,
    pub workspaces: HashMap<String, Rate>,
    /// Requests per second by (model, endpoint index).
    pub endpoints: HashMap<(String, usize), f64>,
    pub model_history: HashMap<String, History>,
    pub gateway_history: History,
    /// Moves whenever the rates may have changed (a rate sort redoes its
    /// order then).
    pub generation: u64,
}

fn rates(
    cur: &std::collections::BTreeMap<String, Totals>,
    base: &std::collections::BTreeMap<String, Totals>,
    secs: f64,
) -> HashMap<String, Rate> {
    cur.iter()
        .map(|(k, t)| (k.clone(), Rate::between(t, base.get(k), secs)))
        .filter(|(_, r)| !r.is_zero())
        .collect()
}

/// Whether two snapshots show the same counters (ignoring when they were taken).
fn same_counters(a: &StatsSnapshot, b: &StatsSnapshot) -> bool {
    a.gateway == b.gateway
        && a.revision == b.revision
        && a.models == b.models
        && a.keys == b.keys
        && a.workspaces == b.workspaces
        && a.endpoints == b.endpoints
        && a.rules == b.rules
        && a.events.last().map(|e| e.seq) == b.events.last().map(|e| e.seq)
}

impl Live {
    /// Take a new snapshot. Returns whether anything shown may have changed
    /// (new counters, or rates falling back to zero): when idle, nothing is
    /// redrawn.
    pub fn update(&mut self, snap: Arc<StatsSnapshot>) -> bool {
        let was_moving = !self.gateway.is_zero();
        let changed = self.recent.is_empty() || !same_counters(&self.current, &snap);
        // A restarted gateway (counters went back) starts the window afresh.
        if snap.gateway.requests < self.current.gateway.requests {
            self.recent.clear();
            self.sample_base = None;
        }
        self.recent.push_back(snap.clone());
        while self.recent.len() > 2 && self.recent[1].taken_ms <= snap.taken_ms - WINDOW_MS {
            self.recent.pop_front();
        }
        let base = self.recent.front().cloned().unwrap_or_else(|| snap.clone());
        let secs = (snap.taken_ms - base.taken_ms) as f64 / 1000.0;
        if secs > 0.0 {
            self.gateway = Rate::between(&snap.gateway, Some(&base.gateway), secs);
            self.models = rates(&snap.models, &base.models, secs);
            self.keys = rates(&snap.keys, &base.keys, secs);
            self.workspaces = rates(&snap.workspaces, &base.workspaces, secs);
            let base_eps: HashMap<(&str, usize), u64> = base
                .endpoints
                .iter()
                .map(|e| ((e.model.as_str(), e.index), e.totals.requests))
                .collect();
            self.endpoints = snap
                .endpoints
                .iter()
                .map(|e| {
                    let b = base_eps
                        .get(&(e.model.as_str(), e.index))
                        .copied()
                        .unwrap_or(0);
                    (
                        (e.model.clone(), e.index),
                        e.totals.requests.saturating_sub(b) as f64 / secs,
                    )
                })
                .collect();
        }
        self.sample(&snap);
        self.current = snap;
        let shown = changed || was_moving;
        if shown {
            self.generation += 1;
        }
        shown
    }

    /// One history sample per second of gateway time.
    fn sample(&mut self, snap: &Arc<StatsSnapshot>) {
        let Some(base) = self.sample_base.clone() else {
            self.sample_base = Some(snap.clone());
            return;
        };
        if snap.taken_ms - base.taken_ms < 1000 {
            return;
        }
        let d = |a: &Totals, b: Option<&Totals>| {
            let b = b.copied().unwrap_or_default();
            (
                a.requests.saturating_sub(b.requests),
                a.throttled.saturating_sub(b.throttled),
            )
        };
        let (r, t) = d(&snap.gateway, Some(&base.gateway));
        self.gateway_history.push(r, t);
        for (name, totals) in &snap.models {
            let (r, t) = d(totals, base.models.get(name));
            if r == 0 && t == 0 && !self.model_history.contains_key(name) {
                continue;
            }
            self.model_history
                .entry(name.clone())
                .or_default()
                .push(r, t);
        }
        self.sample_base = Some(snap.clone());
    }

    pub fn model(&self, name: &str) -> Rate {
        self.models.get(name).copied().unwrap_or_default()
    }
    pub fn key(&self, id: &str) -> Rate {
        self.keys.get(id).copied().unwrap_or_default()
    }
    pub fn workspace(&self, name: &str) -> Rate {
        self.workspaces.get(name).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(ms: i64, req: u64, thr: u64) -> Arc<StatsSnapshot> {
        let t = Totals {
            requests: req,
            throttled: thr,
            ..Default::default()
        };
        let mut s = StatsSnapshot {
            taken_ms: ms,
            gateway: t,
            ..Default::default()
        };
        s.models.insert("m".into(), t);
        Arc::new(s)
    }

    #[test]
    fn rates_over_about_a_second() {
        let mut live = Live::default();
        live.update(snap(0, 0, 0));
        live.update(snap(500, 5, 1));
        assert_eq!(live.gateway.req, 10.0);
        live.update(snap(1000, 10, 2));
        live.update(snap(1500, 20, 2));
        // Window is [500, 1500]: 15 requests in 1 s.
        assert_eq!(live.model("m").req, 15.0);
        assert_eq!(live.model("m").thr, 1.0);
        assert_eq!(live.model_history["m"].requests, [10]);
    }

    #[test]
    fn idle_counters_do_not_ask_for_a_redraw() {
        let mut live = Live::default();
        assert!(live.update(snap(0, 0, 0)), "the first snapshot is shown");
        assert!(live.update(snap(1000, 5, 0)));
        assert!(
            live.update(snap(2000, 5, 0)),
            "rate falls to zero: shown once"
        );
        assert!(!live.update(snap(3000, 5, 0)));
        assert!(live.update(snap(4000, 6, 0)));
    }
}

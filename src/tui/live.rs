//! Live rates and sparkline history from the gateway's cumulative counters.
//!
//! The gateway publishes cumulative totals; a rate is the difference of two
//! snapshots about a second apart divided by the time between them, so a
//! missed snapshot never distorts a number. Everything here is computed once
//! per snapshot, never per frame.
//!
//! A running gateway publishes a snapshot at least once a second even when
//! nothing moved (`gateway::control::HEARTBEAT`), so rates fall to zero
//! within about a second of the traffic stopping. No snapshot for
//! [`STALE_AFTER_MS`] (console clock), or the source saying it is down,
//! marks the data stale: the rates are dropped (never shown as current),
//! the age is kept for the header, and the next snapshot starts a new
//! window. So does a snapshot of a restarted gateway (another
//! `started_ms`, or counters that went back).

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

/// No snapshot for this long (three gateway heartbeats) and the data is
/// stale.
pub const STALE_AFTER_MS: i64 = 3000;

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
    /// Rates by (model, endpoint index): requests, and upstream errors
    /// (failed tries, failovers included).
    pub endpoints: HashMap<(String, usize), Rate>,
    pub model_history: HashMap<String, History>,
    pub gateway_history: History,
    /// Moves whenever the rates may have changed (a rate sort redoes its
    /// order then).
    pub generation: u64,
    /// Console clock (Unix ms) when the last snapshot arrived.
    pub received_ms: Option<i64>,
    /// The data stopped being current (see the module docs): no rates.
    pub stale: bool,
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
    /// Take a new snapshot, arrived at `now_ms` (console clock). Returns
    /// whether anything shown may have changed (new counters, rates falling
    /// back to zero, fresh data after stale): when idle, nothing is redrawn.
    pub fn update(&mut self, snap: Arc<StatsSnapshot>, now_ms: i64) -> bool {
        let was_moving = !self.gateway.is_zero();
        let was_stale = self.stale;
        let changed = self.recent.is_empty() || !same_counters(&self.current, &snap);
        // Back after a gap, or a restarted gateway (another start, or
        // counters that went back): the window starts afresh, nothing is
        // computed across the two.
        let restarted = !self.recent.is_empty()
            && (snap.started_ms != self.current.started_ms
                || snap.gateway.requests < self.current.gateway.requests);
        if was_stale || restarted {
            self.restart_window();
        }
        self.stale = false;
        self.received_ms = Some(now_ms);
        self.recent.push_back(snap.clone());
        while self.recent.len() > 2 && self.recent[1].taken_ms <= snap.taken_ms - WINDOW_MS {
            self.recent.pop_front();
        }
        let base = self.recent.front().cloned().unwrap_or_else(|| snap.clone());
        let secs = (snap.taken_ms - base.taken_ms) as f64 / 1000.0;
        if secs > 0.0 {
            self.compute_rates(&snap, &base, secs);
        } else {
            self.clear_rates();
        }
        self.sample(&snap);
        self.current = snap;
        let shown = changed || was_moving || was_stale || restarted;
        if shown {
            self.generation += 1;
        }
        shown
    }

    /// The clock moved, or the source's state did (`source_up`: the
    /// gateway, or the remote server, is answering). Marks the data stale
    /// when no snapshot came for [`STALE_AFTER_MS`] or the source is down;
    /// returns whether anything shown changed (while stale, the age shown
    /// does, every time).
    pub fn check(&mut self, now_ms: i64, source_up: bool) -> bool {
        let Some(at) = self.received_ms else {
            return false;
        };
        if self.stale || (source_up && now_ms - at <= STALE_AFTER_MS) {
            return self.stale;
        }
        self.stale = true;
        self.restart_window();
        self.generation += 1;
        true
    }

    /// How old the data is, if it is stale (ms, console clock).
    pub fn stale_age_ms(&self, now_ms: i64) -> Option<i64> {
        let at = self.received_ms?;
        self.stale.then(|| (now_ms - at).max(0))
    }

    /// Whether the rates are current: two snapshots of one gateway run
    /// span the window, and the data is not stale.
    pub fn rates_known(&self) -> bool {
        !self.stale && self.recent.len() >= 2
    }

    fn restart_window(&mut self) {
        self.recent.clear();
        self.sample_base = None;
        self.clear_rates();
    }

    fn clear_rates(&mut self) {
        self.gateway = Rate::default();
        self.models.clear();
        self.keys.clear();
        self.workspaces.clear();
        self.endpoints.clear();
    }

    fn compute_rates(&mut self, snap: &StatsSnapshot, base: &StatsSnapshot, secs: f64) {
        self.gateway = Rate::between(&snap.gateway, Some(&base.gateway), secs);
        self.models = rates(&snap.models, &base.models, secs);
        self.keys = rates(&snap.keys, &base.keys, secs);
        self.workspaces = rates(&snap.workspaces, &base.workspaces, secs);
        let base_eps: HashMap<(&str, usize), &Totals> = base
            .endpoints
            .iter()
            .map(|e| ((e.model.as_str(), e.index), &e.totals))
            .collect();
        self.endpoints = snap
            .endpoints
            .iter()
            .map(|e| {
                let b = base_eps.get(&(e.model.as_str(), e.index)).copied();
                (
                    (e.model.clone(), e.index),
                    Rate::between(&e.totals, b, secs),
                )
            })
            .collect();
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
    pub fn endpoint(&self, model: &str, index: usize) -> Rate {
        self.endpoints
            .get(&(model.to_string(), index))
            .copied()
            .unwrap_or_default()
    }
}

/// How old stale data is: `7s`, `4m10s` (whole seconds: it moves once a
/// second without flicker).
pub fn age_text(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
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

    /// Snapshots arrive when taken (the console's clock is the gateway's).
    fn feed(live: &mut Live, s: Arc<StatsSnapshot>) -> bool {
        let at = s.taken_ms;
        live.update(s, at)
    }

    #[test]
    fn rates_over_about_a_second() {
        let mut live = Live::default();
        feed(&mut live, snap(0, 0, 0));
        feed(&mut live, snap(500, 5, 1));
        assert_eq!(live.gateway.req, 10.0);
        feed(&mut live, snap(1000, 10, 2));
        feed(&mut live, snap(1500, 20, 2));
        // Window is [500, 1500]: 15 requests in 1 s.
        assert_eq!(live.model("m").req, 15.0);
        assert_eq!(live.model("m").thr, 1.0);
        assert_eq!(live.model_history["m"].requests, [10]);
    }

    #[test]
    fn idle_counters_do_not_ask_for_a_redraw() {
        let mut live = Live::default();
        assert!(
            feed(&mut live, snap(0, 0, 0)),
            "the first snapshot is shown"
        );
        assert!(feed(&mut live, snap(1000, 5, 0)));
        assert!(
            feed(&mut live, snap(2000, 5, 0)),
            "rate falls to zero: shown once"
        );
        assert!(!feed(&mut live, snap(3000, 5, 0)));
        assert!(feed(&mut live, snap(4000, 6, 0)));
    }

    #[test]
    fn rates_decay_to_zero_on_the_heartbeat_and_sparklines_go_on() {
        let mut live = Live::default();
        for (i, ms) in (0..=2000).step_by(250).enumerate() {
            feed(&mut live, snap(ms, 10 * i as u64, 0));
        }
        assert_eq!(live.gateway.req, 40.0);
        assert!(live.rates_known());
        // Traffic stops: the gateway publishes the same counters a second
        // later (its heartbeat), and the rates are zero.
        feed(&mut live, snap(3000, 80, 0));
        assert_eq!(live.gateway, Rate::default());
        assert_eq!(live.model("m"), Rate::default());
        assert!(live.models.is_empty());
        // The sparkline keeps a sample a second, zeros now.
        let before = live.gateway_history.requests.len();
        feed(&mut live, snap(4000, 80, 0));
        feed(&mut live, snap(5000, 80, 0));
        assert_eq!(live.gateway_history.requests.len(), before + 2);
        assert_eq!(live.gateway_history.requests.back(), Some(&0));
        assert_eq!(live.model_history["m"].requests.back(), Some(&0));
        assert!(
            !live.check(5000 + STALE_AFTER_MS, true),
            "heartbeats: not stale"
        );
    }

    #[test]
    fn silence_makes_the_data_stale_with_its_age_and_drops_the_rates() {
        let mut live = Live::default();
        assert!(
            !live.check(99_000, true),
            "nothing received: nothing is stale"
        );
        assert_eq!(live.stale_age_ms(99_000), None);
        feed(&mut live, snap(0, 0, 0));
        feed(&mut live, snap(1000, 10, 0));
        assert_eq!(live.gateway.req, 10.0);
        assert!(!live.check(1000 + STALE_AFTER_MS, true));
        assert!(live.rates_known());
        let g = live.generation;
        assert!(live.check(1001 + STALE_AFTER_MS, true), "silent: stale");
        assert!(live.stale && !live.rates_known());
        assert_eq!(
            live.gateway,
            Rate::default(),
            "no old rate shown as current"
        );
        assert!(live.models.is_empty() && live.endpoints.is_empty());
        assert!(live.generation > g, "a rate sort redoes its order");
        assert_eq!(live.stale_age_ms(13_000), Some(12_000));
        assert!(live.check(14_000, true), "the age moves: redraw");
    }

    #[test]
    fn a_source_that_says_it_is_down_is_stale_at_once() {
        let mut live = Live::default();
        feed(&mut live, snap(0, 0, 0));
        feed(&mut live, snap(1000, 10, 0));
        assert!(live.check(1200, false));
        assert_eq!(live.stale_age_ms(1200), Some(200));
        assert_eq!(live.gateway.req, 0.0);
    }

    #[test]
    fn after_stale_the_first_snapshot_shows_no_rate_from_before_the_gap() {
        let mut live = Live::default();
        feed(&mut live, snap(0, 0, 0));
        feed(&mut live, snap(1000, 10, 0));
        live.check(10_000, false);
        // The same gateway, 9 s later, 900 requests more: not 900 req/s,
        // and not the 10 req/s of before; unknown until a second snapshot.
        assert!(feed(&mut live, snap(10_000, 910, 0)));
        assert!(!live.stale && !live.rates_known());
        assert_eq!(live.gateway, Rate::default());
        feed(&mut live, snap(11_000, 915, 0));
        assert!(live.rates_known());
        assert_eq!(live.gateway.req, 5.0);
    }

    #[test]
    fn a_restarted_gateway_starts_a_new_window() {
        let mut live = Live::default();
        feed(&mut live, snap(0, 0, 0));
        feed(&mut live, snap(1000, 10, 0));
        // Restarted (another start time) and already past the old count.
        let mut s = (*snap(1500, 50, 0)).clone();
        s.started_ms = 1200;
        assert!(feed(&mut live, Arc::new(s)));
        assert!(!live.rates_known());
        assert_eq!(live.gateway, Rate::default());
        let mut s = (*snap(2500, 60, 0)).clone();
        s.started_ms = 1200;
        feed(&mut live, Arc::new(s));
        assert_eq!(live.gateway.req, 10.0);
        // Counters that went back are a restart too.
        feed(&mut live, snap(3000, 2, 0));
        assert!(!live.rates_known());
    }

    #[test]
    fn endpoint_rates_count_errors() {
        let mut live = Live::default();
        let mut a = (*snap(0, 0, 0)).clone();
        let mut b = (*snap(1000, 10, 0)).clone();
        for (s, req, err) in [(&mut a, 0, 0), (&mut b, 8, 2)] {
            s.endpoints.push(crate::gateway::EndpointStats {
                model: "m".into(),
                index: 1,
                url: "http://u".into(),
                weight: None,
                state: crate::domain::EndpointState::Healthy,
                reason: None,
                since_ms: None,
                totals: Totals {
                    requests: req,
                    upstream_errors: err,
                    ..Default::default()
                },
            });
        }
        feed(&mut live, Arc::new(a));
        feed(&mut live, Arc::new(b));
        let r = live.endpoint("m", 1);
        assert_eq!((r.req, r.err), (8.0, 2.0));
        assert_eq!(live.endpoint("m", 0), Rate::default());
    }
}

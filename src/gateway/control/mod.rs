//! The control thread: everything off the request path.
//!
//! - reload: polls `Store::revision()`; when it moved, loads the registry,
//!   builds a new snapshot and swaps it in (requests in flight keep theirs);
//! - report: writes the gateway's `GatewayReport` (heartbeat, applied
//!   revision, endpoint health) every few seconds and right after a reload;
//!   removes it on shutdown;
//! - stats: samples the counters and publishes a snapshot when it changed,
//!   and at least every [`HEARTBEAT`] when nothing did (so readers see rates
//!   fall to zero and can tell a quiet gateway from a silent one);
//! - probe (`probe.rs`): once an ejected endpoint's back-off is over, a successful
//!   `GET <url>/models` (or the back-off alone for probe `none`) makes it
//!   half-open (one trial request brings it back); a failed probe doubles
//!   the back-off (`upstream/health.rs`); disabled
//!   endpoints are never probed. An endpoint saved while the gateway runs
//!   (new, or re-enabled by the operator) is `unknown` and probed right
//!   after the reload that brings it, so it shows `healthy` or `down`
//!   within a probe, not after traffic found out. The endpoints the
//!   gateway starts with stay `unknown` until their first call.
//!
//! Store calls block, so they run on the blocking pool, never stalling the
//! other loops.

pub mod ledger;
pub mod probe;
pub mod sampler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::time::{MissedTickBehavior, interval};

use crate::domain::{EndpointHealth, GatewayReport, now_ms};
use crate::gateway::budget::{self, Tracker};
use crate::gateway::proxy::GatewayState;
use crate::gateway::snapshot::{Builder, CounterBook, EndpointRt};
use crate::gateway::telemetry::stats::{EventKind, StatsSnapshot};
use crate::store::Store;
use sampler::{Sampler, changed};

/// Longest time between two published stats snapshots, even when no
/// counter moved: a reader that hears nothing for a few of these knows its
/// data is stale.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the control thread owns.
pub struct Control {
    pub shared: Arc<GatewayState>,
    pub builder: Builder,
    pub store: Arc<dyn Store>,
    pub stats_tx: watch::Sender<Arc<StatsSnapshot>>,
    pub report_id: String,
    pub listen: String,
    pub started_ms: i64,
}

impl Control {
    /// Run until `stop` turns true, then publish the final counters and
    /// remove the report.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let Control {
            shared,
            builder,
            store,
            stats_tx,
            report_id,
            listen,
            started_ms,
        } = self;
        let book = builder.book.clone();
        let mut flusher = ledger::Flusher::new(builder.ledger.clone(), store.clone());
        let mut budgets = Tracker::new(store.clone(), builder.ledger.clone());
        let report_now = Arc::new(Notify::new());
        let probe_now = Arc::new(Notify::new());
        let reporter = Reporter {
            shared: shared.clone(),
            store: store.clone(),
            id: report_id.clone(),
            listen: listen.clone(),
            started_ms,
            recent: Default::default(),
        };
        let tasks = [
            tokio::spawn(reload_loop(
                shared.clone(),
                builder,
                store.clone(),
                [report_now.clone(), probe_now.clone()],
            )),
            tokio::spawn(report_loop(reporter, report_now)),
            tokio::spawn(probe::probe_loop(
                shared.clone(),
                probe_now,
                Arc::new(probe::Share::new(store.clone(), report_id.clone())),
            )),
            tokio::spawn(ledger::compact_loop(
                store.clone(),
                shared.cfg.usage_retention,
            )),
        ];
        let mut publisher = Publisher {
            sampler: Sampler::default(),
            tx: stats_tx,
            listen,
            started_ms,
            last: Instant::now(),
        };
        let mut tick = interval(shared.cfg.stats_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let flush_every = shared.cfg.usage_flush;
        let mut budget_tick = interval(budget::TICK);
        budget_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => publisher.publish(&shared, &book),
                _ = ledger::until_next(flush_every) => {
                    flusher.flush().await;
                    // What was just flushed left the cells: read it back
                    // from the store before the budgets are checked again.
                    let b = shared.snapshot.load().budgets.clone();
                    budgets.tick(&b, flusher.pending(), &shared.budgets, true).await;
                }
                _ = budget_tick.tick() => {
                    let b = shared.snapshot.load().budgets.clone();
                    budgets.tick(&b, flusher.pending(), &shared.budgets, false).await;
                }
                _ = stop.changed() => break,
            }
        }
        for t in &tasks {
            t.abort();
        }
        publisher.publish(&shared, &book);
        flusher.flush().await;
        let id = report_id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = store.remove_report(&id) {
                tracing::warn!("could not remove the gateway report: {e}");
            }
        })
        .await;
    }
}

/// Samples the counters and publishes what a reader needs.
struct Publisher {
    sampler: Sampler,
    tx: watch::Sender<Arc<StatsSnapshot>>,
    listen: String,
    started_ms: i64,
    /// When a snapshot was last published.
    last: Instant,
}

impl Publisher {
    /// Publish a snapshot if the counters moved, or if the last one is
    /// [`HEARTBEAT`] old (the same counters, taken now).
    fn publish(&mut self, shared: &GatewayState, book: &CounterBook) {
        let snap = shared.snapshot.load();
        let mut next =
            self.sampler
                .sample(&snap, book, &shared.limiter, &shared.events, &self.listen);
        next.started_ms = self.started_ms;
        let due = self.last.elapsed() >= HEARTBEAT;
        let sent = self.tx.send_if_modified(|cur| {
            if due || changed(cur, &next) {
                *cur = Arc::new(next);
                true
            } else {
                false
            }
        });
        if sent {
            self.last = Instant::now();
        }
    }
}

async fn reload_loop(
    shared: Arc<GatewayState>,
    mut builder: Builder,
    store: Arc<dyn Store>,
    // Told after each reload: the reporter and the prober.
    after_reload: [Arc<Notify>; 2],
) {
    let mut tick = interval(shared.cfg.reload_poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let applied = shared.snapshot.load().revision;
        let s = store.clone();
        let rev = match tokio::task::spawn_blocking(move || s.revision()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(
                        "cannot read the store's revision (still serving revision {applied}): {e}"
                    );
                }
                failing = true;
                continue;
            }
            Err(_) => continue,
        };
        if rev == applied {
            failing = false;
            continue;
        }
        let s = store.clone();
        let reg = match tokio::task::spawn_blocking(move || s.load()).await {
            Ok(Ok(reg)) => reg,
            Ok(Err(e)) => {
                tracing::warn!("cannot load revision {rev} (still serving {applied}): {e}");
                continue;
            }
            Err(_) => continue,
        };
        failing = false;
        let snap = builder.build(&reg);
        let served = snap.routes.len();
        shared.snapshot.store(Arc::new(snap));
        tracing::info!(
            "applied registry revision {} ({served} models served)",
            reg.revision
        );
        shared.events.push(
            EventKind::Reloaded,
            None,
            None,
            format!(
                "applied registry revision {} ({served} models served)",
                reg.revision
            ),
        );
        for n in &after_reload {
            n.notify_one();
        }
    }
}

struct Reporter {
    shared: Arc<GatewayState>,
    store: Arc<dyn Store>,
    id: String,
    listen: String,
    started_ms: i64,
    /// Per endpoint, (Unix ms, tries started) at each report of the last minute.
    recent: parking_lot::Mutex<HashMap<EndpointKey, std::collections::VecDeque<(i64, u64)>>>,
}

impl Reporter {
    /// Tries sent to endpoint `e` in the last minute (`model routes`' share):
    /// its started count now minus the one a minute ago (0 when first seen:
    /// an endpoint's counters start with it).
    fn last_minute(&self, model: &str, e: &EndpointRt) -> u64 {
        let now = now_ms();
        let started = e.counters.read().started;
        let mut recent = self.recent.lock();
        let seen = recent
            .entry((model.to_string(), e.index, e.url.clone()))
            .or_insert_with(|| [(now, 0)].into());
        seen.push_back((now, started));
        while seen.len() > 1 && seen[1].0 <= now - 60_000 {
            seen.pop_front();
        }
        started.saturating_sub(seen[0].1)
    }

    fn report(&self) -> GatewayReport {
        let snap = self.shared.snapshot.load();
        let endpoints = snap
            .routes
            .iter()
            .flat_map(|r| {
                r.endpoints.iter().map(|e| {
                    let (state, why) = r.health_of(e.index);
                    EndpointHealth {
                        model: r.name.clone(),
                        index: e.index,
                        url: e.url.clone(),
                        state,
                        reason: why.reason,
                        since_ms: why.since_ms,
                        until_ms: why.until_ms,
                        requests_1m: self.last_minute(&r.name, e),
                    }
                })
            })
            .collect();
        GatewayReport {
            id: self.id.clone(),
            cluster: self.shared.cfg.cluster.clone(),
            listen: self.listen.clone(),
            applied_revision: snap.revision,
            started_ms: self.started_ms,
            heartbeat_ms: now_ms(),
            limiter: self.shared.limiter.mode(),
            endpoints,
            admin: self.shared.cfg.admin.clone(),
        }
    }
}

async fn report_loop(r: Reporter, now: Arc<Notify>) {
    let mut tick = interval(r.shared.cfg.report_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let r = Arc::new(r);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = now.notified() => {}
        }
        let report = r.report();
        let store = r.store.clone();
        match tokio::task::spawn_blocking(move || store.put_report(&report)).await {
            Ok(Ok(())) => failing = false,
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!("cannot write the gateway report: {e}");
                }
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// An endpoint as the reporter and the prober key it: model, index, URL.
type EndpointKey = (String, usize, String);

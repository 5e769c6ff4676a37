//! Rate limiting (`docs/rate-limits.md`): what the gateway's request path calls.
//!
//! Every rule has exactly one subject: an `api-key` rule counts its key, a
//! `workspace` rule counts its workspace. So the limiter keeps one window per
//! rule id; a reload recompiles each model's rules into a [`ModelLimits`]
//! that points at those windows, keeping the windows of rules that survive
//! (an edited limit or duration keeps its history) and dropping deleted ones.
//!
//! A request for model M with key K of workspace W is admitted only if every
//! rule of M targeting K or W has room; then it counts against all of them,
//! otherwise against none — atomically (see `local` and `window.lua`). The
//! window algorithm and its guarantees are in `window` and
//! docs/rate-limits.md.
//!
//! INTERFACE CONTRACT (the gateway depends on exactly these signatures):
//! - `Limiter::local()` — in-process limiter; `Limiter::shared(url, config)`
//!   — windows in Redis, shared by replicas, with local fallback.
//! - `Limiter::compile(&self, model: &Model) -> ModelLimits` — on reload.
//! - `Limiter::retain(&self, live: &HashSet<u64>)` — after a reload, frees
//!   the windows of deleted rules.
//! - `Limiter::check(&self, limits, key_id, workspace).await -> Decision` —
//!   admits (and counts against every matching rule) or rejects (counts
//!   against none).
//! - `Limiter::reserve(self: &Arc<Self>, limits, key_id, workspace,
//!   estimate).await -> (Decision, Option<Reservation>)` — the same for a
//!   model with token rules (`ModelLimits::counts_tokens`): token rules
//!   count the estimate, held by the [`Reservation`] until it is settled to
//!   the answer's usage (`reserve.rs`, `estimate.rs`).
//! - `Limiter::stats(&self) -> Vec<RuleStats>`, `Limiter::mode()`,
//!   `Limiter::explain(…).await` (what `maasctl rule explain` shows).

mod clock;
pub mod estimate;
mod explain;
mod local;
mod lookup;
mod reserve;
mod shared;
mod window;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use estimate::{DEFAULT_COMPLETION_CAP, Estimate};
pub use explain::{Explanation, RuleExplanation};
pub use reserve::Reservation;
pub use shared::{DEFAULT_PREFIX, SharedConfig, redacted};
pub use window::{BUCKETS, bucket_width_ms};

use crate::domain::{LimiterMode, Model, RuleTarget, RuleUnit};
use crate::gateway::RuleStats;
use lookup::{FastMap, Name, WindowList};
use shared::{Answer, RedisLimiter};
use window::{Window, subject_of};

/// Headroom of the tightest matching rule after an admitted request, for
/// `x-ratelimit-*` headers on successful responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headroom {
    pub rule_id: u64,
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the window has fully rolled over.
    pub reset_ms: u64,
}

/// The rule that refused a request, for the 429 body and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule_id: u64,
    pub target: RuleTarget,
    /// What the rule counts.
    pub unit: RuleUnit,
    /// What the refused request needed of the rule: 1 (requests) or its
    /// token reservation (tokens; more than `limit` means it never fits).
    pub requested: u64,
    /// The key id (target api-key) or workspace name (target workspace).
    pub subject: String,
    pub limit: u32,
    /// What the rule had left when it refused (limit − used; a token rule
    /// can have some left and still refuse a larger reservation).
    pub remaining: u32,
    pub duration_secs: u32,
    /// Milliseconds until a request would be admitted (`Retry-After`, rounded up to seconds).
    pub retry_after_ms: u64,
    /// Milliseconds until the window has fully rolled over (`x-ratelimit-reset`).
    pub reset_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Admitted and counted against every matching rule.
    Admit(Option<Headroom>),
    /// Refused by this rule; counted against none.
    Reject(Rejection),
}

/// The rules of a key: its own and its workspace's, merged in rule-id order
/// at compile time so a request needs one lookup.
#[derive(Debug, Clone)]
struct KeyRules {
    workspace: Name,
    windows: WindowList,
}

/// A model's rules, compiled for the request path: by key id (the key's own
/// rules merged with its workspace's) and by workspace. Cheap to clone (one
/// `Arc`); a token reservation holds that `Arc` to keep the windows it
/// counted in alive (one reference count for the whole reservation, on a
/// line every request of the model keeps cached, instead of one per window).
#[derive(Debug, Clone, Default)]
pub struct ModelLimits(Arc<Compiled>);

#[derive(Default)]
struct Compiled {
    model: Arc<str>,
    by_key: FastMap<Name, KeyRules>,
    by_workspace: FastMap<Name, WindowList>,
    /// Some rule counts tokens: requests need an estimate and a reservation.
    tokens: bool,
    /// The limiter that compiled these windows, to tell it apart (never
    /// upgraded: the tables do not keep the limiter alive).
    limiter: Weak<Limiter>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelLimits")
            .field("model", &self.model)
            .field("keys", &self.by_key.len())
            .field("workspaces", &self.by_workspace.len())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl ModelLimits {
    pub fn is_empty(&self) -> bool {
        self.0.by_key.is_empty() && self.0.by_workspace.is_empty()
    }

    /// Whether some rule of the model counts tokens (then the gateway
    /// estimates each request and calls [`Limiter::reserve`]).
    pub fn counts_tokens(&self) -> bool {
        self.0.tokens
    }

    pub fn model(&self) -> &str {
        &self.0.model
    }

    /// The windows a request of `key_id` in `workspace` is counted against,
    /// in rule-id order (the lock order).
    fn matching(&self, key_id: &str, workspace: &str) -> Cow<'_, [Arc<Window>]> {
        let of_workspace = || {
            self.0
                .by_workspace
                .get(workspace)
                .map_or(&[][..], WindowList::as_slice)
        };
        match self.0.by_key.get(key_id) {
            None => Cow::Borrowed(of_workspace()),
            Some(k) if k.workspace.as_str() == workspace => Cow::Borrowed(k.windows.as_slice()),
            // The rule's workspace is not the caller's (the registry forbids
            // it; kept correct anyway): the key's own rules plus the caller's
            // workspace rules.
            Some(k) => {
                let mut all: Vec<Arc<Window>> = k
                    .windows
                    .as_slice()
                    .iter()
                    .filter(|w| w.target == RuleTarget::ApiKey)
                    .chain(of_workspace())
                    .cloned()
                    .collect();
                all.sort_by_key(|w| w.rule_id);
                Cow::Owned(all)
            }
        }
    }
}

type Windows = Vec<Arc<Window>>;

/// A decision and where it was counted: the limiter clock's `at` (the local
/// windows) and Redis's time when Redis decided.
struct Admission {
    decision: Decision,
    /// The tightest token rule after an admission (`x-ratelimit-*-tokens`).
    tokens: Option<Headroom>,
    at: u64,
    redis_at: Option<u64>,
}

/// The limiter, shared by every gateway worker.
#[derive(Debug)]
pub struct Limiter {
    clock: Arc<dyn Clock>,
    /// Every live rule's window, by rule id (compile, retain, stats; never
    /// touched by the request path).
    windows: Mutex<HashMap<u64, Arc<Window>>>,
    key_prefix: String,
    shared: Option<RedisLimiter>,
    /// This limiter, for the tables it compiles (see [`ModelLimits`]).
    me: Weak<Limiter>,
}

impl Limiter {
    /// In-process windows on the real clock.
    pub fn local() -> Arc<Self> {
        Self::with_clock(Arc::new(MonotonicClock::new()))
    }

    /// In-process windows on `clock` (tests drive a [`ManualClock`]).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            clock,
            windows: Mutex::new(HashMap::new()),
            key_prefix: DEFAULT_PREFIX.to_owned(),
            shared: None,
            me: me.clone(),
        })
    }

    /// Windows in the Redis at `redis_url`, shared with every replica using
    /// the same Redis and key prefix. Waits for the first connection attempt
    /// only: if Redis is down the limiter starts in local fallback and keeps
    /// trying. Errors only on a malformed URL. Call inside a tokio runtime.
    pub async fn shared(redis_url: &str, config: SharedConfig) -> Result<Arc<Self>, String> {
        let key_prefix = config.key_prefix.clone();
        let clock = config
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(MonotonicClock::new()));
        let shared = RedisLimiter::start(redis_url, config).await?;
        Ok(Arc::new_cyclic(|me| Self {
            clock,
            windows: Mutex::new(HashMap::new()),
            key_prefix,
            shared: Some(shared),
            me: me.clone(),
        }))
    }

    /// Compile `model`'s rules, creating windows for new rules and applying
    /// edits to existing ones in place (history kept). A rule whose subject
    /// changed gets a fresh window: its history counted someone else.
    pub fn compile(&self, model: &Model) -> ModelLimits {
        let now = self.clock.now_ms();
        let name = model.name();
        let mut registry = self.windows.lock();
        // key id -> (its workspace, its own rules' windows)
        let mut by_key: HashMap<Box<str>, (Box<str>, Windows)> = HashMap::new();
        let mut by_workspace: HashMap<Box<str>, Windows> = HashMap::new();
        for rule in &model.rules {
            let window = match registry.get(&rule.id) {
                Some(w) if w.counts(rule, name) => {
                    w.update(rule.spec.limit, rule.spec.duration_secs, now);
                    Arc::clone(w)
                }
                _ => {
                    let w = Arc::new(Window::new(rule, name, &self.key_prefix, now));
                    registry.insert(rule.id, Arc::clone(&w));
                    w
                }
            };
            match rule.spec.target {
                RuleTarget::ApiKey => {
                    by_key
                        .entry(subject_of(rule).into())
                        .or_insert_with(|| (rule.spec.workspace.as_str().into(), Vec::new()))
                        .1
                        .push(window);
                }
                RuleTarget::Workspace => by_workspace
                    .entry(rule.spec.workspace.as_str().into())
                    .or_default()
                    .push(window),
            }
        }
        drop(registry);
        let by_key = by_key
            .into_iter()
            .map(|(key, (workspace, mut windows))| {
                windows.extend(by_workspace.get(&workspace).into_iter().flatten().cloned());
                windows.sort_by_key(|w| w.rule_id);
                let rules = KeyRules {
                    workspace: Name::from(&*workspace),
                    windows: windows.into(),
                };
                (Name::from(&*key), rules)
            })
            .collect();
        let by_workspace = by_workspace
            .into_iter()
            .map(|(ws, mut windows)| {
                windows.sort_by_key(|w| w.rule_id);
                (Name::from(&*ws), windows.into())
            })
            .collect();
        ModelLimits(Arc::new(Compiled {
            model: name.into(),
            by_key,
            by_workspace,
            tokens: model.rules.iter().any(|r| r.spec.unit == RuleUnit::Tokens),
            limiter: self.me.clone(),
        }))
    }

    /// Drop the windows of rules not in `live` (deleted rules): their
    /// subjects are free at once and their counters leave the stats.
    pub fn retain(&self, live: &HashSet<u64>) {
        self.windows.lock().retain(|id, _| live.contains(id));
    }

    /// Admit (counting against every rule of `limits` that targets `key_id`
    /// or `workspace`) or reject (counting against none). A token rule
    /// counts one token here (and shows in the headroom): requests to
    /// models with token rules go through [`reserve`](Self::reserve).
    pub async fn check(&self, limits: &ModelLimits, key_id: &str, workspace: &str) -> Decision {
        let windows = limits.matching(key_id, workspace);
        self.admit(&windows, None).await.decision
    }

    /// [`check`](Self::check) for a model with token rules: its token rules
    /// count `estimate.total()`, held by the returned [`Reservation`] until
    /// it is settled to what the answer used (dropped unsettled, it gives
    /// everything back). No reservation when rejected or when no token rule
    /// matched.
    pub async fn reserve(
        self: &Arc<Self>,
        limits: &ModelLimits,
        key_id: &str,
        workspace: &str,
        estimate: Estimate,
    ) -> (Decision, Option<Reservation>) {
        let windows = limits.matching(key_id, workspace);
        let admission = self.admit(&windows, Some(estimate.total())).await;
        let borrowed = matches!(windows, Cow::Borrowed(_));
        self.reservation(limits, (&windows, borrowed), admission, estimate)
    }

    /// [`check`](Self::check) at once when it needs no round trip (no
    /// Redis): no future to box and poll on the request path. `None`: it
    /// does; call `check`.
    pub fn check_now(
        &self,
        limits: &ModelLimits,
        key_id: &str,
        workspace: &str,
    ) -> Option<Decision> {
        if self.shared.is_some() {
            return None;
        }
        let windows = limits.matching(key_id, workspace);
        Some(self.admit_local(&windows, None, 1).decision)
    }

    /// [`reserve`](Self::reserve) at once when it needs no round trip (no
    /// Redis). `None`: it does; call `reserve`.
    pub fn reserve_now(
        self: &Arc<Self>,
        limits: &ModelLimits,
        key_id: &str,
        workspace: &str,
        estimate: Estimate,
    ) -> Option<(Decision, Option<Reservation>)> {
        if self.shared.is_some() {
            return None;
        }
        let windows = limits.matching(key_id, workspace);
        let admission = self.admit_local(&windows, Some(estimate.total()), 1);
        let borrowed = matches!(windows, Cow::Borrowed(_));
        Some(self.reservation(limits, (&windows, borrowed), admission, estimate))
    }

    /// What an admission holds in token rules until it is settled.
    fn reservation(
        self: &Arc<Self>,
        limits: &ModelLimits,
        (windows, borrowed): (&[Arc<Window>], bool),
        admission: Admission,
        estimate: Estimate,
    ) -> (Decision, Option<Reservation>) {
        let Admission {
            decision,
            tokens,
            at,
            redis_at,
        } = admission;
        if !matches!(decision, Decision::Admit(_)) {
            return (decision, None);
        }
        // The windows stay alive through the compiled tables that list them
        // (one reference count); a list built for this request (see
        // `matching`) or tables of another limiter are held window by window.
        let tables = (borrowed && std::ptr::eq(limits.0.limiter.as_ptr(), Arc::as_ptr(self)))
            .then_some(&limits.0);
        let held = reserve::Held::new(tables, windows);
        if held.is_empty() {
            return (decision, None);
        }
        let reservation = Reservation {
            limiter: Arc::clone(self),
            held,
            estimate,
            headroom: tokens,
            at,
            redis_at,
            settled: false,
        };
        (decision, Some(reservation))
    }

    /// The decision over `windows` counted in this process (no Redis, or
    /// Redis down: then `replicas` shares), at the local clock.
    fn admit_local(
        &self,
        windows: &[Arc<Window>],
        tokens: Option<u64>,
        replicas: u32,
    ) -> Admission {
        if windows.is_empty() {
            return Admission {
                decision: Decision::Admit(None),
                tokens: None,
                at: 0,
                redis_at: None,
            };
        }
        for w in windows {
            w.prefetch(tokens.is_some());
        }
        let now = self.clock.now_ms();
        let (decision, tokens) = local::check(windows, now, replicas, tokens);
        Admission {
            decision,
            tokens,
            at: now,
            redis_at: None,
        }
    }

    /// The decision over `windows` for a request costing `tokens` in token
    /// rules (`None`: 1 everywhere, see `local::cost`), with the instants it
    /// was counted at.
    async fn admit(&self, windows: &[Arc<Window>], tokens: Option<u64>) -> Admission {
        let Some(shared) = self.shared.as_ref().filter(|_| !windows.is_empty()) else {
            return self.admit_local(windows, tokens, 1);
        };
        // Start loading every window's lines now: they arrive while the
        // round trip runs.
        for w in windows {
            w.prefetch(tokens.is_some());
        }
        match shared.run(windows, true, tokens).await {
            Some(answer) => {
                let now = self.clock.now_ms();
                let (decision, tokens) = self.apply(windows, &answer, tokens, now);
                Admission {
                    decision,
                    tokens,
                    at: now,
                    redis_at: Some(answer.now),
                }
            }
            // Redis down: counted here, each replica its share.
            None => self.admit_local(windows, tokens, shared.replicas()),
        }
    }

    /// Turn Redis's answer into a decision, and keep this replica's
    /// counters and local windows (at `now`) in step with it.
    fn apply(
        &self,
        windows: &[Arc<Window>],
        answer: &Answer,
        tokens: Option<u64>,
        now: u64,
    ) -> (Decision, Option<Headroom>) {
        for (w, &(used, room, reset)) in windows.iter().zip(&answer.windows) {
            w.observed.record(used, room, reset, now, answer.now);
        }
        if let Some(i) = answer.blocking.filter(|_| !answer.admitted) {
            let w = &windows[i];
            w.ring.lock().throttled += 1;
            let (used, room, reset) = answer.windows[i];
            let (limit, cost) = (u64::from(w.limit()), local::cost(w, tokens));
            let mut r = local::rejection(w, limit, cost, room, reset);
            r.remaining = local::clamp_u32(limit.saturating_sub(used));
            return (Decision::Reject(r), None);
        }
        local::record(windows, now, tokens);
        let (mut tightest, mut of_tokens): (Option<Headroom>, Option<Headroom>) = (None, None);
        for (w, &(used, _, reset)) in windows.iter().zip(&answer.windows) {
            let limit = u64::from(w.limit());
            let slot = if local::in_headers(w, tokens) {
                &mut tightest
            } else {
                &mut of_tokens
            };
            local::keep_tightest(slot, w.rule_id, limit, limit.saturating_sub(used), reset);
        }
        (Decision::Admit(tightest), of_tokens)
    }

    /// Which rules of `limits` apply to `key_id` of `workspace`, how full
    /// they are, and which would reject the next request. Counts nothing.
    pub async fn explain(
        &self,
        limits: &ModelLimits,
        key_id: &str,
        workspace: &str,
    ) -> Explanation {
        let windows = limits.matching(key_id, workspace);
        let mut states = None;
        if let Some(shared) = &self.shared {
            if let Some(answer) = shared.run(&windows[..], false, None).await {
                states = Some(
                    windows
                        .iter()
                        .zip(answer.windows)
                        .map(|(w, (used, room_ms, reset_ms))| local::Peek {
                            used,
                            limit: u64::from(w.limit()),
                            room_ms,
                            reset_ms,
                        })
                        .collect(),
                );
            }
        }
        let states = states
            .unwrap_or_else(|| local::peek(&windows[..], self.clock.now_ms(), self.divisor()));
        Explanation::new(
            limits.model(),
            key_id,
            workspace,
            self.mode(),
            &windows,
            &states,
        )
    }

    /// The divisor of local limits: 1, or the live replicas while fallen back.
    fn divisor(&self) -> u32 {
        match &self.shared {
            Some(s) if s.mode() != LimiterMode::Shared => s.replicas(),
            _ => 1,
        }
    }

    /// Every live rule's counters. In shared mode `used` and `reset_ms` are
    /// what Redis said at this replica's last request for the rule.
    pub fn stats(&self) -> Vec<RuleStats> {
        let windows: Vec<Arc<Window>> = self.windows.lock().values().cloned().collect();
        let now = self.clock.now_ms();
        let shared = self.mode() == LimiterMode::Shared;
        let divisor = self.divisor();
        let mut out: Vec<RuleStats> = windows
            .iter()
            .map(|w| {
                let (admitted, throttled, local) = {
                    let mut ring = w.ring.lock();
                    let p = local::Peek::of(&mut ring, w, now, divisor);
                    (ring.admitted, ring.throttled, p)
                };
                let (used, limit, reset_ms) = if shared {
                    let o = &w.observed;
                    let live = now < o.reset_at.load(Ordering::Relaxed);
                    let used = if live {
                        o.used.load(Ordering::Relaxed)
                    } else {
                        0
                    };
                    let room_at = o.room_at.load(Ordering::Relaxed);
                    (used, w.limit(), room_at.saturating_sub(now))
                } else {
                    (
                        local::clamp_u32(local.used),
                        local::clamp_u32(local.limit),
                        local.room_ms,
                    )
                };
                RuleStats {
                    rule_id: w.rule_id,
                    model: w.model.clone(),
                    subject: w.subject.clone(),
                    limit,
                    duration_secs: w.duration_secs(),
                    admitted,
                    throttled,
                    used,
                    reset_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.model, a.rule_id).cmp(&(&b.model, b.rule_id)));
        out
    }

    pub fn mode(&self) -> LimiterMode {
        self.shared
            .as_ref()
            .map_or(LimiterMode::Local, RedisLimiter::mode)
    }

    /// Shared mode: the replicas last seen live in Redis (this one included),
    /// which divide the limits while fallen back. `None` in local mode.
    pub fn live_replicas(&self) -> Option<u32> {
        self.shared.as_ref().map(RedisLimiter::replicas)
    }
}

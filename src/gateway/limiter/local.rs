//! The in-process decision over the windows a request matches.
//!
//! Atomic across rules: the windows are locked in rule-id order (one global
//! order, so two requests never wait on each other in a cycle), all are
//! checked, and only then are all counted — or none, if one is full. Each
//! lock is held for a few arithmetic operations; a window is contended only
//! by requests of the same subject.

use parking_lot::MutexGuard;

use super::window::{Ring, Window};
use super::{Decision, Headroom, Rejection};
use crate::domain::RuleUnit;

/// What a request counts in `w`: 1 in a request rule's window, its
/// reservation (`Some(tokens)`) in a token rule's. `None` — a model without
/// token rules, the request path's usual case — is 1 everywhere and never
/// reads the window's unit (off the cache line a check touches).
pub fn cost(w: &Window, tokens: Option<u64>) -> u64 {
    match tokens {
        None => 1,
        Some(t) => match w.unit {
            RuleUnit::Requests => 1,
            RuleUnit::Tokens => t,
        },
    }
}

/// Whether `w`'s headroom goes into the `x-ratelimit-*` headers (they speak
/// of request rules; token rules have their own `x-ratelimit-*-tokens`).
pub fn in_headers(w: &Window, tokens: Option<u64>) -> bool {
    tokens.is_none() || w.unit == RuleUnit::Requests
}

/// Milliseconds until `ring` (advanced to `now`) has room for `cost` more
/// under `limit`: never for a cost above the limit, then the time until
/// the window is empty is the answer (it still would not fit).
pub fn wait_for(ring: &Ring, limit: u64, cost: u64, now: u64) -> u64 {
    if cost > limit {
        ring.reset_in(now)
    } else {
        ring.room_in(limit - cost + 1, now)
    }
}

/// The limit a replica enforces: the rule's own, or its share of it while
/// shared mode has fallen back to local windows (`divisor` = live replicas).
pub fn effective_limit(limit: u32, divisor: u32) -> u64 {
    if divisor <= 1 {
        // The usual case; a division costs as much as the rest of a check's arithmetic.
        return u64::from(limit);
    }
    u64::from((limit / divisor).max(1))
}

/// Lock `windows` (sorted by rule id) in order and run `f` on their rings.
pub fn with_locked<W: AsRef<Window>, R>(
    windows: &[W],
    f: impl FnOnce(&mut [MutexGuard<'_, Ring>]) -> R,
) -> R {
    // Arrays for the usual one to three windows: no allocation per request.
    match windows {
        [a] => f(&mut [a.as_ref().ring.lock()]),
        [a, b] => f(&mut [a.as_ref().ring.lock(), b.as_ref().ring.lock()]),
        [a, b, c] => f(&mut [
            a.as_ref().ring.lock(),
            b.as_ref().ring.lock(),
            c.as_ref().ring.lock(),
        ]),
        _ => {
            let mut guards: Vec<_> = windows.iter().map(|w| w.as_ref().ring.lock()).collect();
            f(&mut guards)
        }
    }
}

/// Admit and count against every window (1 in a request rule's window,
/// `tokens` in a token rule's, see [`cost`]), or reject and count against none.
///
/// The second value is the headroom of the tightest token rule (fewest
/// tokens left) after an admission, for the `x-ratelimit-*-tokens` headers;
/// always `None` for a model without token rules (`tokens` = `None`).
pub fn check<W: AsRef<Window>>(
    windows: &[W],
    now: u64,
    divisor: u32,
    tokens: Option<u64>,
) -> (Decision, Option<Headroom>) {
    if windows.is_empty() {
        return (Decision::Admit(None), None);
    }
    with_locked(windows, |rings| {
        // The window that frees last decides when the request would pass.
        let mut blocking: Option<(usize, u64, u64)> = None;
        for (i, ring) in rings.iter_mut().enumerate() {
            ring.advance(now);
            let w = windows[i].as_ref();
            let limit = effective_limit(w.limit(), divisor);
            let cost = cost(w, tokens);
            if ring.used() + cost > limit {
                let wait = wait_for(ring, limit, cost, now);
                if blocking.is_none_or(|(_, _, w)| wait > w) {
                    blocking = Some((i, limit, wait));
                }
            }
        }
        if let Some((i, limit, wait)) = blocking {
            let w = windows[i].as_ref();
            rings[i].throttled += 1;
            let requested = cost(w, tokens);
            let left = limit.saturating_sub(rings[i].used());
            let reset = rings[i].reset_in(now);
            let mut r = rejection(w, limit, requested, wait, reset);
            r.remaining = clamp_u32(left);
            return (Decision::Reject(r), None);
        }
        let (mut tightest, mut of_tokens): (Option<Headroom>, Option<Headroom>) = (None, None);
        for (i, ring) in rings.iter_mut().enumerate() {
            let w = windows[i].as_ref();
            ring.add(cost(w, tokens));
            ring.admitted += 1;
            let limit = effective_limit(w.limit(), divisor);
            let remaining = limit.saturating_sub(ring.used());
            let slot = if in_headers(w, tokens) {
                &mut tightest
            } else {
                &mut of_tokens
            };
            keep_tightest(slot, w.rule_id, limit, remaining, ring.reset_in(now));
        }
        (Decision::Admit(tightest), of_tokens)
    })
}

/// Keep in `slot` whichever has fewer left: what it holds, or rule
/// `rule_id` with `remaining` of `limit`, empty in `reset_ms`.
pub fn keep_tightest(
    slot: &mut Option<Headroom>,
    rule_id: u64,
    limit: u64,
    remaining: u64,
    reset_ms: u64,
) {
    if slot
        .as_ref()
        .is_none_or(|t| remaining < u64::from(t.remaining))
    {
        *slot = Some(Headroom {
            rule_id,
            limit: clamp_u32(limit),
            remaining: clamp_u32(remaining),
            reset_ms,
        });
    }
}

/// The 429 details for window `w`, refusing a request that needed `requested`.
pub fn rejection(
    w: &Window,
    limit: u64,
    requested: u64,
    retry_after_ms: u64,
    reset_ms: u64,
) -> Rejection {
    Rejection {
        rule_id: w.rule_id,
        target: w.target,
        unit: w.unit,
        requested,
        subject: w.subject.clone(),
        limit: clamp_u32(limit),
        remaining: 0,
        duration_secs: w.duration_secs(),
        retry_after_ms,
        reset_ms,
    }
}

/// One window's state now, without counting anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub used: u64,
    pub limit: u64,
    pub room_ms: u64,
    pub reset_ms: u64,
}

impl Peek {
    /// `ring` (of window `w`) at `now`.
    pub fn of(ring: &mut Ring, w: &Window, now: u64, divisor: u32) -> Self {
        ring.advance(now);
        let limit = effective_limit(w.limit(), divisor);
        Peek {
            used: ring.used(),
            limit,
            room_ms: ring.room_in(limit, now),
            reset_ms: ring.reset_in(now),
        }
    }
}

/// The state of each of `windows` (sorted by rule id) at `now`.
pub fn peek<W: AsRef<Window>>(windows: &[W], now: u64, divisor: u32) -> Vec<Peek> {
    if windows.is_empty() {
        return Vec::new();
    }
    with_locked(windows, |rings| {
        rings
            .iter_mut()
            .zip(windows)
            .map(|(ring, w)| Peek::of(ring, w.as_ref(), now, divisor))
            .collect()
    })
}

/// Count an admission decided elsewhere (by Redis) in the local windows too,
/// so that a fall-back to local limits starts from this replica's history,
/// and in the rules' admitted totals.
pub fn record<W: AsRef<Window>>(windows: &[W], now: u64, tokens: Option<u64>) {
    if windows.is_empty() {
        return;
    }
    with_locked(windows, |rings| {
        for (ring, w) in rings.iter_mut().zip(windows) {
            ring.advance(now);
            ring.add(cost(w.as_ref(), tokens));
            ring.admitted += 1;
        }
    });
}

/// Give back `n` tokens of a reservation counted at `at` in token window
/// `w` (whose buckets were `width` ms wide then), from the bucket it was
/// counted in, if the ring still holds that bucket and was not re-cut
/// since. No clock read: a bucket the ring still holds but that has left
/// the window by now is dropped at the next advance whatever it holds, so
/// taking from it changes nothing a check will see.
pub fn give_back(w: &Window, at: u64, width: u64, n: u64) {
    let mut ring = w.ring.lock();
    if ring.width() == width {
        ring.refund(at, n);
    }
}

/// Count `n` tokens used beyond a reservation in token window `w` at `now`.
pub fn count_excess(w: &Window, n: u64, now: u64) {
    let mut ring = w.ring.lock();
    ring.advance(now);
    ring.add(n);
}

pub fn clamp_u32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX)) as u32
}

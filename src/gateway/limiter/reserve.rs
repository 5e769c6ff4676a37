//! A request's hold on its token rules, from admission to settlement.
//!
//! [`Limiter::reserve`](super::Limiter::reserve) counts the request's
//! estimate (prompt estimate + completion cap) in every token rule it
//! matches, atomically with its request rules. When the answer ends the
//! gateway calls [`Reservation::settle`] with what the upstream reported
//! using: the difference goes back to the bucket the reservation was
//! counted in (or, if more was used than reserved, is counted now). A
//! reservation dropped unsettled — the upstream could not be reached, the
//! caller went away before an answer — gives everything back.
//!
//! In shared mode the settlement is one more call of a Lua script
//! (`settle.lua`), run on a task of its own so that the end of a response
//! never waits for Redis; the replica's local mirror windows are settled at
//! once.

use std::ptr::NonNull;
use std::sync::Arc;

use super::estimate::Estimate;
use super::local;
use super::window::Window;
use super::{Compiled, Headroom, Limiter};
use crate::domain::RuleUnit;

/// What keeps a reservation's windows alive (held, never read).
#[allow(dead_code)]
enum Owner {
    /// The compiled tables listing the windows: one reference count for the
    /// whole reservation.
    Tables(Arc<Compiled>),
    /// Windows listed for this request only (see `ModelLimits::matching`),
    /// or tables compiled by another limiter: each window held itself.
    Own(Vec<Arc<Window>>),
}

/// Token windows a reservation counted in, with their bucket width then
/// (the usual one or two in place: no allocation per request), and what
/// keeps them alive.
pub(super) struct Held {
    /// Held for what it keeps alive, never read.
    _owner: Owner,
    windows: smallvec::SmallVec<[(NonNull<Window>, u64); 2]>,
}

// SAFETY: `windows` point at windows `_owner` keeps alive (`Window` is
// `Sync`: its state is behind a mutex and atomics), so the pointers are
// shared and sent as `&Window`s would be.
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

impl Held {
    /// The token windows of `windows`, kept alive by `tables` (the tables
    /// `windows` was borrowed from, compiled by the reserving limiter) or,
    /// without, one by one.
    pub(super) fn new(tables: Option<&Arc<Compiled>>, windows: &[Arc<Window>]) -> Self {
        let tokens = windows
            .iter()
            .filter(|w| w.unit == RuleUnit::Tokens)
            // The ring's bucket width, from the duration: no second lock.
            .map(|w| {
                (
                    NonNull::from(&**w),
                    super::bucket_width_ms(w.duration_secs()),
                )
            })
            .collect();
        let owner = match tables {
            Some(t) => Owner::Tables(Arc::clone(t)),
            None => Owner::Own(
                windows
                    .iter()
                    .filter(|w| w.unit == RuleUnit::Tokens)
                    .cloned()
                    .collect(),
            ),
        };
        Held {
            _owner: owner,
            windows: tokens,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Each window with its bucket width at admission.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Window, u64)> {
        // SAFETY: `_owner` keeps every window alive as long as `self`.
        self.windows
            .iter()
            .map(|(w, width)| (unsafe { w.as_ref() }, *width))
    }
}

/// Tokens held in a request's token rules until its answer is settled.
pub struct Reservation {
    pub(super) limiter: Arc<Limiter>,
    pub(super) held: Held,
    pub(super) estimate: Estimate,
    /// The tightest token rule right after the reservation was counted.
    pub(super) headroom: Option<Headroom>,
    /// Limiter-clock ms of the admission (the local windows' bucket).
    pub(super) at: u64,
    /// Redis `TIME` (ms) of the admission when Redis counted it.
    pub(super) redis_at: Option<u64>,
    pub(super) settled: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("estimate", &self.estimate)
            .field("rules", &self.held.windows.len())
            .field("redis_at", &self.redis_at)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// What was reserved: the prompt estimate and the completion cap.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// The tokens left in the tightest token rule the reservation counted
    /// in, right after it was counted (the `x-ratelimit-*-tokens` headers).
    pub fn headroom(&self) -> Option<&Headroom> {
        self.headroom.as_ref()
    }

    /// The answer used `used` tokens (prompt + completion): keep that much
    /// counted, give back the rest of the reservation (or count the excess).
    pub fn settle(mut self, used: u64) {
        self.finish(used);
    }

    fn finish(&mut self, used: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let reserved = self.estimate.total();
        if used == reserved || self.held.is_empty() {
            return;
        }
        let limiter = &self.limiter;
        if used < reserved {
            // No clock read: the give-back goes to the admission's bucket.
            for (w, width) in self.held.iter() {
                local::give_back(w, self.at, width, reserved - used);
            }
        } else {
            let now = limiter.clock.now_ms();
            for (w, _) in self.held.iter() {
                local::count_excess(w, used - reserved, now);
            }
        }
        let (Some(redis_at), Some(_)) = (self.redis_at, &limiter.shared) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                "token reservation settled outside a runtime: Redis keeps it until it expires"
            );
            return;
        };
        let limiter = Arc::clone(limiter);
        let held = std::mem::replace(
            &mut self.held,
            Held {
                _owner: Owner::Own(Vec::new()),
                windows: Default::default(),
            },
        );
        rt.spawn(async move {
            if let Some(shared) = &limiter.shared {
                let windows: smallvec::SmallVec<[_; 2]> = held.iter().collect();
                shared.settle(&windows, redis_at, reserved, used).await;
            }
        });
    }
}

impl Drop for Reservation {
    /// Unsettled: nothing reached an upstream that reported usage; give
    /// everything back.
    fn drop(&mut self) {
        self.finish(0);
    }
}

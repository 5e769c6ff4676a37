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

use std::sync::Arc;

use super::estimate::Estimate;
use super::local;
use super::window::Window;
use super::{Headroom, Limiter};

/// Token windows a reservation counted in, with their bucket width then:
/// the usual one or two in place (no allocation per request).
pub(super) type Held = smallvec::SmallVec<[(Arc<Window>, u64); 2]>;

/// Tokens held in a request's token rules until its answer is settled.
pub struct Reservation {
    pub(super) limiter: Arc<Limiter>,
    pub(super) windows: Held,
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
            .field("rules", &self.windows.len())
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
        if used == reserved || self.windows.is_empty() {
            return;
        }
        let now = self.limiter.clock.now_ms();
        for (w, width) in &self.windows {
            local::settle(w, self.at, *width, reserved, used, now);
        }
        let (Some(redis_at), Some(_)) = (self.redis_at, &self.limiter.shared) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                "token reservation settled outside a runtime: Redis keeps it until it expires"
            );
            return;
        };
        let limiter = Arc::clone(&self.limiter);
        let windows = std::mem::take(&mut self.windows);
        rt.spawn(async move {
            if let Some(shared) = &limiter.shared {
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

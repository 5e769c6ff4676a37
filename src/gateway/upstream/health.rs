//! Endpoint health: in rotation, out after consecutive failures, back in
//! after a probe (or a cool-down), and never touched while the operator has
//! the endpoint disabled.
//!
//! A new endpoint (or one the operator just re-enabled) is `unknown`: in
//! rotation, but nothing says it works yet. The first evidence decides: an
//! answer (a real call, or the probe the control thread sends at once)
//! makes it healthy; a failed probe takes it out (down) at once; failed
//! calls take it out after the usual threshold. An endpoint with probe
//! `none` stays unknown until a real call.
//!
//! The request path reads one atomic to know whether an endpoint is in
//! rotation and writes only when something changes (a failure, or the first
//! success after failures), so a healthy endpoint costs two loads per
//! request. The reason and time an endpoint left the rotation sit behind a
//! mutex that only failures and the reporter touch. A `Health` outlives
//! reloads (it is keyed by model, index and URL), so a registry edit does not
//! wipe what the gateway learned.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::Relaxed};
use std::time::Instant;

use crate::domain::{EndpointState, now_ms};

// In rotation: HEALTHY and UNKNOWN (the two lowest, so one compare says it).
const HEALTHY: u8 = 0;
const UNKNOWN: u8 = 1;
const DOWN: u8 = 2;
const DISABLED: u8 = 3;

/// Why and since when an endpoint is out of rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Why {
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
}

#[derive(Debug)]
pub struct Health {
    state: AtomicU8,
    consecutive: AtomicU32,
    why: Mutex<(Why, Option<Instant>)>,
}

/// A change of rotation, for the event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    WentDown(String),
    CameBack,
}

impl Health {
    pub fn new(disabled: bool) -> Self {
        let h = Self {
            state: AtomicU8::new(UNKNOWN),
            consecutive: AtomicU32::new(0),
            why: Mutex::new((Why::default(), None)),
        };
        h.set_disabled(disabled);
        h
    }

    pub fn state(&self) -> EndpointState {
        match self.state.load(Relaxed) {
            HEALTHY => EndpointState::Healthy,
            UNKNOWN => EndpointState::Unknown,
            DOWN => EndpointState::Down,
            _ => EndpointState::Disabled,
        }
    }

    /// Healthy, or unknown (not yet contacted): either takes traffic.
    #[inline]
    pub fn in_rotation(&self) -> bool {
        self.state.load(Relaxed) <= UNKNOWN
    }

    pub fn why(&self) -> Why {
        self.why.lock().0.clone()
    }

    /// When the endpoint left the rotation (for the prober's cool-down).
    pub fn down_since(&self) -> Option<Instant> {
        self.why.lock().1
    }

    /// Apply the operator's switch. Disabling wins over everything; enabling
    /// puts the endpoint back in rotation with a clean slate.
    pub fn set_disabled(&self, disabled: bool) {
        let mut why = self.why.lock();
        let now = self.state.load(Relaxed);
        if disabled && now != DISABLED {
            self.state.store(DISABLED, Relaxed);
            *why = (
                Why {
                    reason: Some("disabled by the operator".into()),
                    since_ms: Some(now_ms()),
                },
                None,
            );
        } else if !disabled && now == DISABLED {
            self.consecutive.store(0, Relaxed);
            self.state.store(UNKNOWN, Relaxed);
            *why = (Why::default(), None);
        }
    }

    /// A request got an answer from the endpoint.
    #[inline]
    pub fn success(&self) -> Option<Transition> {
        if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
        match self.state.load(Relaxed) {
            HEALTHY => None,
            DOWN => self.bring_back(),
            _ => {
                // The first answer: evidence it works (once; a disabled
                // endpoint stays disabled).
                let _ = self
                    .state
                    .compare_exchange(UNKNOWN, HEALTHY, Relaxed, Relaxed);
                None
            }
        }
    }

    /// The endpoint failed (could not connect, timed out, answered 5xx).
    /// After `threshold` failures in a row it leaves the rotation.
    pub fn failure(&self, reason: &str, threshold: u32) -> Option<Transition> {
        let n = self.consecutive.fetch_add(1, Relaxed) + 1;
        if n < threshold.max(1) {
            return None;
        }
        let mut why = self.why.lock();
        if self.state.load(Relaxed) > UNKNOWN {
            // Already out (or disabled): keep why and since when it left.
            return None;
        }
        self.state.store(DOWN, Relaxed);
        *why = (
            Why {
                reason: Some(reason.to_string()),
                since_ms: Some(now_ms()),
            },
            Some(Instant::now()),
        );
        Some(Transition::WentDown(reason.to_string()))
    }

    /// The probe of an endpoint never contacted failed: that is evidence
    /// enough, it leaves the rotation at once (probes bring it back).
    pub fn probe_failed(&self, reason: &str) -> Option<Transition> {
        let mut why = self.why.lock();
        if self
            .state
            .compare_exchange(UNKNOWN, DOWN, Relaxed, Relaxed)
            .is_err()
        {
            return None;
        }
        *why = (
            Why {
                reason: Some(reason.to_string()),
                since_ms: Some(now_ms()),
            },
            Some(Instant::now()),
        );
        Some(Transition::WentDown(reason.to_string()))
    }

    /// A probe of an endpoint never contacted got an answer: healthy.
    /// Returns whether it was unknown.
    pub fn confirm(&self) -> bool {
        self.state
            .compare_exchange(UNKNOWN, HEALTHY, Relaxed, Relaxed)
            .is_ok()
    }

    /// A probe succeeded (or the cool-down passed): back in rotation. A probe
    /// never touches a disabled endpoint.
    pub fn bring_back(&self) -> Option<Transition> {
        let mut why = self.why.lock();
        if self.state.load(Relaxed) != DOWN {
            return None;
        }
        self.consecutive.store(0, Relaxed);
        self.state.store(HEALTHY, Relaxed);
        *why = (Why::default(), None);
        Some(Transition::CameBack)
    }

    /// Back in rotation on probation: one more failure takes it out again
    /// (used after a cool-down, when no probe confirmed it works).
    pub fn on_probation(&self, threshold: u32) -> Option<Transition> {
        let t = self.bring_back();
        if t.is_some() {
            self.consecutive.store(threshold.saturating_sub(1), Relaxed);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_evidence_and_in_rotation_meanwhile() {
        let h = Health::new(false);
        assert_eq!(h.state(), EndpointState::Unknown);
        assert!(h.in_rotation(), "unknown takes traffic");
        assert_eq!(h.failure("refused", 3), None);
        assert_eq!(h.state(), EndpointState::Unknown, "one failure is not down");
        assert_eq!(h.success(), None);
        assert_eq!(h.state(), EndpointState::Healthy, "an answer is evidence");
        // A failed first probe takes it out at once.
        let h = Health::new(false);
        assert_eq!(
            h.probe_failed("probe failed: refused"),
            Some(Transition::WentDown("probe failed: refused".into()))
        );
        assert_eq!(h.state(), EndpointState::Down);
        assert!(!h.in_rotation());
        assert!(h.why().since_ms.is_some());
        assert_eq!(h.probe_failed("again"), None, "only from unknown");
        assert!(!h.confirm(), "a down endpoint comes back by bring_back");
        assert_eq!(h.bring_back(), Some(Transition::CameBack));
        // A successful first probe makes it healthy.
        let h = Health::new(false);
        assert!(h.confirm());
        assert_eq!(h.state(), EndpointState::Healthy);
        // Unknown after failures: the threshold still takes it out.
        let h = Health::new(false);
        h.failure("x", 2);
        assert!(h.failure("x", 2).is_some());
        assert_eq!(h.state(), EndpointState::Down);
    }

    #[test]
    fn leaves_after_threshold_and_comes_back() {
        let h = Health::new(false);
        assert!(h.confirm());
        assert_eq!(h.failure("connection refused", 3), None);
        assert_eq!(h.failure("connection refused", 3), None);
        assert!(h.success().is_none());
        assert_eq!(h.failure("x", 3), None);
        assert_eq!(h.failure("x", 3), None);
        assert_eq!(
            h.failure("timed out", 3),
            Some(Transition::WentDown("timed out".into()))
        );
        assert_eq!(h.state(), EndpointState::Down);
        assert_eq!(h.why().reason.as_deref(), Some("timed out"));
        assert!(h.why().since_ms.is_some());
        assert_eq!(h.bring_back(), Some(Transition::CameBack));
        assert!(h.in_rotation() && h.why() == Why::default());
        assert_eq!(h.state(), EndpointState::Healthy);
    }

    #[test]
    fn a_disabled_endpoint_is_never_brought_back() {
        let h = Health::new(true);
        assert_eq!(h.state(), EndpointState::Disabled);
        assert_eq!(h.bring_back(), None);
        assert_eq!(h.success(), None);
        assert_eq!(h.failure("x", 1), None);
        assert_eq!(h.state(), EndpointState::Disabled);
        assert_eq!(h.why().reason.as_deref(), Some("disabled by the operator"));
        assert!(!h.confirm() && h.probe_failed("x").is_none());
        h.set_disabled(false);
        assert!(h.in_rotation());
        assert_eq!(
            h.state(),
            EndpointState::Unknown,
            "re-enabled: no evidence yet"
        );
    }

    #[test]
    fn probation_takes_one_failure() {
        let h = Health::new(false);
        h.failure("x", 2);
        h.failure("x", 2);
        assert_eq!(h.on_probation(2), Some(Transition::CameBack));
        assert!(h.failure("again", 2).is_some());
    }
}

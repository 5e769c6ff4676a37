//! Endpoint health: outlier ejection by failure *rate*, back through
//! half-open, cooling after an upstream 429, and never touched while the
//! operator has the endpoint disabled (`docs/gateway.md`, "Failures,
//! failover, health").
//!
//! - Every outcome of a try (an answer, or a failure: connect error,
//!   timeout, 5xx before the first byte) is counted in a sliding window of
//!   the last [`WINDOW_SECS`] seconds (one-second buckets). A failure ejects
//!   the endpoint when the window holds at least `min_failures` failures and
//!   they are at least `ratio_pct` % of its tries. One error never ejects.
//! - An ejected endpoint (`down`) waits out its back-off (`base`, doubled
//!   after each failed trial or repeated ejection, up to `max`); then a
//!   probe (`GET /models`, probe `models`) or the back-off alone (probe
//!   `none`) makes it `half-open`: in rotation for ONE trial request at a
//!   time. The trial's answer brings it back (`healthy`, window cleared); its
//!   failure ejects it again with a doubled back-off. A failed probe doubles
//!   the back-off too. An endpoint back for a minute without ejection starts
//!   over from `base`.
//! - `cooling`: an upstream 429 takes the endpoint out until its
//!   Retry-After; then it is back in rotation as it was.
//! - A new endpoint (or one the operator just re-enabled) is `unknown`: in
//!   rotation, but nothing says it works yet. An answer makes it healthy; a
//!   failed first probe ejects it at once.
//!
//! The request path reads one atomic to know whether an endpoint is in
//! rotation and counts its outcome with one compare-and-swap on the
//! current bucket; a healthy endpoint costs nothing more. The reason and
//! time an endpoint left the rotation sit behind a mutex that only state
//! changes and the reporter touch. A `Health` outlives reloads (it is keyed
//! by model, index and URL), so a registry edit does not wipe what the
//! gateway learned.

use parking_lot::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::domain::{EndpointState, now_ms};

// In rotation: HEALTHY, UNKNOWN, HALF_OPEN (the lowest, so one compare says it).
const HEALTHY: u8 = 0;
const UNKNOWN: u8 = 1;
const HALF_OPEN: u8 = 2;
const COOLING: u8 = 3;
const DOWN: u8 = 4;
const DISABLED: u8 = 5;

/// The sliding window of outcomes: this many one-second buckets.
pub const WINDOW_SECS: u64 = 10;
/// Back in rotation this long without a new ejection: the back-off starts over.
const STABLE: Duration = Duration::from_secs(60);

/// When an endpoint leaves the rotation and how long it waits to be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectRule {
    /// Failures in the window before the rate is looked at (≥ 1).
    pub min_failures: u32,
    /// Failures as a share of the window's tries that eject (1..=100).
    pub ratio_pct: u32,
    /// First back-off after an ejection.
    pub base: Duration,
    /// The longest back-off.
    pub max: Duration,
}

impl Default for EjectRule {
    fn default() -> Self {
        Self {
            min_failures: 5,
            ratio_pct: 20,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

/// Why and since (until) when an endpoint is out of rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Why {
    pub reason: Option<String>,
    pub since_ms: Option<i64>,
    /// Cooling: until when (Unix ms).
    pub until_ms: Option<i64>,
}

/// A change of rotation, for the event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    WentDown(String),
    /// Out of its back-off: one trial request at a time.
    HalfOpen,
    CameBack,
}

/// Milliseconds on a monotonic clock (process-relative, never 0).
pub fn clock_ms() -> u64 {
    // The TSC clock (one `rdtsc`, no vDSO call): read on every request.
    static START: OnceLock<quanta::Instant> = OnceLock::new();
    START
        .get_or_init(quanta::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

// A window bucket packs [second: 24 bits | failures: 20 | tries: 20].
const FIELD: u64 = (1 << 20) - 1;
const SEC_MASK: u64 = (1 << 24) - 1;

fn unpack(v: u64) -> (u64, u64, u64) {
    (v >> 40, (v >> 20) & FIELD, v & FIELD)
}

#[derive(Debug)]
pub struct Health {
    state: AtomicU8,
    window: [AtomicU64; WINDOW_SECS as usize],
    /// Clock ms a half-open trial was claimed; 0: none in flight.
    trial: AtomicU64,
    /// Clock ms an ejected endpoint may be tried again.
    next_trial: AtomicU64,
    /// Clock ms of the last failure (orders the last resort).
    last_failure: AtomicU64,
    /// Clock ms a cooling endpoint is back.
    cool_until: AtomicU64,
    /// Ejections in a row without a stable minute in between.
    strikes: AtomicU32,
    /// Clock ms it last came back.
    back_at: AtomicU64,
    /// Latency to the answer's head, µs, EWMA (α = 1/8; least-loaded only).
    ewma_us: AtomicU64,
    /// A cooling ended (for the prober's event; it ends lazily when read).
    cool_ended: AtomicBool,
    why: Mutex<Why>,
}

impl Health {
    pub fn new(disabled: bool) -> Self {
        let h = Self {
            state: AtomicU8::new(UNKNOWN),
            window: Default::default(),
            trial: AtomicU64::new(0),
            next_trial: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            cool_until: AtomicU64::new(0),
            strikes: AtomicU32::new(0),
            back_at: AtomicU64::new(0),
            ewma_us: AtomicU64::new(0),
            cool_ended: AtomicBool::new(false),
            why: Mutex::new(Why::default()),
        };
        h.set_disabled(disabled);
        h
    }

    pub fn state(&self) -> EndpointState {
        match self.state.load(Relaxed) {
            HEALTHY => EndpointState::Healthy,
            UNKNOWN => EndpointState::Unknown,
            HALF_OPEN => EndpointState::HalfOpen,
            COOLING if self.cooled() => EndpointState::Healthy,
            COOLING => EndpointState::Cooling,
            DOWN => EndpointState::Down,
            _ => EndpointState::Disabled,
        }
    }

    /// Healthy, unknown, or half-open with no trial in flight: may take a
    /// request. A cooling endpoint whose time is up is back here.
    #[inline]
    pub fn in_rotation(&self) -> bool {
        match self.state.load(Relaxed) {
            HEALTHY | UNKNOWN => true,
            HALF_OPEN => self.trial.load(Relaxed) == 0,
            COOLING => self.cooled(),
            _ => false,
        }
    }

    /// Cooling, and the time is up: back to healthy (a 429 is an answer).
    fn cooled(&self) -> bool {
        if clock_ms() < self.cool_until.load(Relaxed) {
            return false;
        }
        if self
            .state
            .compare_exchange(COOLING, HEALTHY, Relaxed, Relaxed)
            .is_ok()
        {
            *self.why.lock() = Why::default();
            self.cool_ended.store(true, Relaxed);
        }
        true
    }

    /// Whether a cooling ended since the last call (ends it if due).
    pub fn take_cool_ended(&self) -> bool {
        let _ = self.in_rotation();
        self.cool_ended.swap(false, Relaxed)
    }

    /// Out of rotation after failures (ejected); may serve as the last resort.
    pub fn is_down(&self) -> bool {
        self.state.load(Relaxed) == DOWN
    }

    /// Cooling after a 429: Unix ms when it is back, if it still cools.
    pub fn cooling_until(&self) -> Option<i64> {
        let until = self.cool_until.load(Relaxed);
        let now = clock_ms();
        (self.state.load(Relaxed) == COOLING && now < until)
            .then(|| now_ms() + (until - now) as i64)
    }

    pub fn why(&self) -> Why {
        self.why.lock().clone()
    }

    /// An answer's head came after `d` (the least-loaded policy's tie-break).
    /// A load and a store: a lost update between workers only delays it.
    #[inline]
    pub fn observe_latency(&self, d: Duration) {
        let sample = d.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.ewma_us.load(Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.ewma_us.store(new.max(1), Relaxed);
    }

    /// The latency EWMA in µs (0: no answer seen yet).
    #[inline]
    pub fn latency_ewma_us(&self) -> u64 {
        self.ewma_us.load(Relaxed)
    }

    /// Clock ms of the last failure (0: never).
    pub fn last_failure(&self) -> u64 {
        self.last_failure.load(Relaxed)
    }

    /// Half-open: claim its one trial (true when this request is it). The
    /// balancer picks a half-open endpoint only while its trial is free;
    /// with one in flight it is a last resort, like an ejected one.
    #[inline]
    pub fn admit(&self) -> bool {
        self.state.load(Relaxed) == HALF_OPEN
            && self
                .trial
                .compare_exchange(0, clock_ms(), Relaxed, Relaxed)
                .is_ok()
    }

    /// The trial request ended without an outcome (the caller left): the
    /// next request may be the trial.
    pub fn end_trial(&self) {
        if self.state.load(Relaxed) == HALF_OPEN {
            self.trial.store(0, Relaxed);
        }
    }

    /// Apply the operator's switch. Disabling wins over everything; enabling
    /// puts the endpoint back in rotation with a clean slate.
    pub fn set_disabled(&self, disabled: bool) {
        let mut why = self.why.lock();
        let now = self.state.load(Relaxed);
        if disabled && now != DISABLED {
            self.state.store(DISABLED, Relaxed);
            *why = Why {
                reason: Some("disabled by the operator".into()),
                since_ms: Some(now_ms()),
                until_ms: None,
            };
        } else if !disabled && now == DISABLED {
            self.clear_window();
            self.strikes.store(0, Relaxed);
            self.trial.store(0, Relaxed);
            self.state.store(UNKNOWN, Relaxed);
            *why = Why::default();
        }
    }

    fn record(&self, failed: bool) {
        let sec = (clock_ms() / 1000) & SEC_MASK;
        let slot = &self.window[(sec % WINDOW_SECS) as usize];
        let mut v = slot.load(Relaxed);
        loop {
            let (s, f, t) = unpack(v);
            let (f, t) = if s == sec { (f, t) } else { (0, 0) };
            let f = (f + u64::from(failed)).min(FIELD);
            let next = (sec << 40) | (f << 20) | (t + 1).min(FIELD);
            match slot.compare_exchange_weak(v, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(cur) => v = cur,
            }
        }
    }

    /// Failures and tries in the window.
    pub fn window(&self) -> (u64, u64) {
        let sec = (clock_ms() / 1000) & SEC_MASK;
        self.window.iter().fold((0, 0), |(fs, ts), slot| {
            let (s, f, t) = unpack(slot.load(Relaxed));
            if sec.wrapping_sub(s) & SEC_MASK < WINDOW_SECS {
                (fs + f, ts + t)
            } else {
                (fs, ts)
            }
        })
    }

    fn clear_window(&self) {
        for slot in &self.window {
            slot.store(0, Relaxed);
        }
    }

    /// A request got an answer (other than 5xx) from the endpoint.
    #[inline]
    pub fn success(&self) -> Option<Transition> {
        self.record(false);
        match self.state.load(Relaxed) {
            HEALTHY => None,
            // The first answer: evidence it works.
            UNKNOWN => {
                let _ = self
                    .state
                    .compare_exchange(UNKNOWN, HEALTHY, Relaxed, Relaxed);
                None
            }
            HALF_OPEN => self.come_back(),
            // Down (serving as the last resort), cooling, disabled: an
            // answer does not change them; only a trial brings one back.
            _ => None,
        }
    }

    fn come_back(&self) -> Option<Transition> {
        let mut why = self.why.lock();
        if self.state.load(Relaxed) != HALF_OPEN {
            return None;
        }
        self.clear_window();
        self.back_at.store(clock_ms(), Relaxed);
        self.trial.store(0, Relaxed);
        self.state.store(HEALTHY, Relaxed);
        *why = Why::default();
        Some(Transition::CameBack)
    }

    /// The endpoint failed (could not connect, timed out, answered 5xx).
    /// Ejects it when the window's failure rate passes the rule; a failed
    /// half-open trial ejects it again at once.
    pub fn failure(&self, reason: &str, rule: &EjectRule) -> Option<Transition> {
        self.record(true);
        self.last_failure.store(clock_ms(), Relaxed);
        match self.state.load(Relaxed) {
            HALF_OPEN => self.eject(&format!("trial failed: {reason}"), rule),
            HEALTHY | UNKNOWN => {
                let (f, t) = self.window();
                let over = f >= u64::from(rule.min_failures.max(1))
                    && f * 100 >= u64::from(rule.ratio_pct.clamp(1, 100)) * t;
                if !over {
                    return None;
                }
                self.eject(
                    &format!("{f} of {t} tries failed in {WINDOW_SECS}s, last: {reason}"),
                    rule,
                )
            }
            _ => None,
        }
    }

    /// Out of rotation now (a failed first probe, an unusable config, a
    /// failed trial, a failure rate over the rule).
    pub fn eject(&self, reason: &str, rule: &EjectRule) -> Option<Transition> {
        let mut why = self.why.lock();
        let state = self.state.load(Relaxed);
        if !(state <= HALF_OPEN || state == COOLING) {
            return None;
        }
        let now = clock_ms();
        if state != HALF_OPEN
            && now.saturating_sub(self.back_at.load(Relaxed)) > STABLE.as_millis() as u64
        {
            self.strikes.store(0, Relaxed);
        }
        self.last_failure.store(now, Relaxed);
        self.back_off(rule, now);
        self.trial.store(0, Relaxed);
        self.state.store(DOWN, Relaxed);
        *why = Why {
            reason: Some(reason.to_string()),
            since_ms: Some(now_ms()),
            until_ms: None,
        };
        Some(Transition::WentDown(reason.to_string()))
    }

    /// Set the next trial after `base × 2^strikes` (capped), one strike more.
    fn back_off(&self, rule: &EjectRule, now: u64) {
        let strikes = self.strikes.fetch_add(1, Relaxed).min(20);
        let wait = rule
            .base
            .saturating_mul(1 << strikes)
            .min(rule.max.max(rule.base));
        self.next_trial
            .store(now + wait.as_millis() as u64, Relaxed);
    }

    /// Ejected and its back-off is over: time for a trial (a probe, or
    /// half-open for probe `none`).
    pub fn trial_due(&self) -> bool {
        self.state.load(Relaxed) == DOWN && clock_ms() >= self.next_trial.load(Relaxed)
    }

    /// How long until the next trial of an ejected endpoint.
    pub fn next_trial_in(&self) -> Duration {
        Duration::from_millis(self.next_trial.load(Relaxed).saturating_sub(clock_ms()))
    }

    /// Half-open: the probe succeeded or (probe `none`) the back-off passed.
    pub fn half_open(&self) -> Option<Transition> {
        let mut why = self.why.lock();
        if self
            .state
            .compare_exchange(DOWN, HALF_OPEN, Relaxed, Relaxed)
            .is_err()
        {
            return None;
        }
        self.trial.store(0, Relaxed);
        let reason = why.reason.take().unwrap_or_default();
        why.reason = Some(format!("on trial after: {reason}"));
        Some(Transition::HalfOpen)
    }

    /// The probe of an ejected endpoint failed: it waits longer.
    pub fn trial_failed(&self, rule: &EjectRule) {
        let _why = self.why.lock();
        if self.state.load(Relaxed) == DOWN {
            self.back_off(rule, clock_ms());
        }
    }

    /// The probe of an endpoint never contacted failed: that is evidence
    /// enough, it leaves the rotation at once.
    pub fn probe_failed(&self, reason: &str, rule: &EjectRule) -> Option<Transition> {
        if self.state.load(Relaxed) != UNKNOWN {
            return None;
        }
        self.eject(reason, rule)
    }

    /// A probe of an endpoint never contacted got an answer: healthy.
    /// Returns whether it was unknown.
    pub fn confirm(&self) -> bool {
        self.state
            .compare_exchange(UNKNOWN, HEALTHY, Relaxed, Relaxed)
            .is_ok()
    }

    /// The upstream answered 429: out of rotation for `wait`. Returns
    /// whether it started cooling now (not already cooling or out).
    pub fn cool(&self, wait: Duration) -> bool {
        let mut why = self.why.lock();
        let state = self.state.load(Relaxed);
        let until = clock_ms() + wait.as_millis() as u64;
        if state == COOLING {
            self.cool_until.fetch_max(until, Relaxed);
            why.until_ms = self.cooling_until();
            return false;
        }
        if state > HALF_OPEN {
            return false;
        }
        self.cool_until.store(until, Relaxed);
        self.trial.store(0, Relaxed);
        self.state.store(COOLING, Relaxed);
        *why = Why {
            reason: Some(format!(
                "upstream answered 429 Too Many Requests (cooling {:.1}s)",
                wait.as_secs_f64()
            )),
            since_ms: Some(now_ms()),
            until_ms: Some(now_ms() + wait.as_millis() as i64),
        };
        true
    }
}

/// Cooling when an upstream 429 says nothing usable.
pub const COOL_DEFAULT: Duration = Duration::from_secs(5);
/// The longest cooling, whatever the upstream says.
pub const COOL_MAX: Duration = Duration::from_secs(300);

/// How long an upstream 429 cools its endpoint: its `Retry-After` (seconds,
/// or an HTTP date), [`COOL_DEFAULT`] when absent or unreadable, at least
/// one second (0, or a date past), at most [`COOL_MAX`].
pub fn retry_after(value: Option<&str>) -> Duration {
    let Some(v) = value.map(str::trim) else {
        return COOL_DEFAULT;
    };
    let wait = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(at) = httpdate::parse_http_date(v) {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    } else {
        COOL_DEFAULT
    };
    wait.clamp(Duration::from_secs(1), COOL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> EjectRule {
        EjectRule {
            min_failures: 5,
            ratio_pct: 20,
            base: Duration::from_millis(50),
            max: Duration::from_millis(400),
        }
    }

    #[test]
    fn one_error_does_not_eject_a_rate_does() {
        let h = Health::new(false);
        assert_eq!(h.state(), EndpointState::Unknown);
        assert!(h.in_rotation(), "unknown takes traffic");
        assert_eq!(h.failure("refused", &rule()), None);
        assert_eq!(h.state(), EndpointState::Unknown, "one failure is not down");
        h.success();
        assert_eq!(h.state(), EndpointState::Healthy, "an answer is evidence");
        // 4 failures among many answers: under the minimum count.
        for _ in 0..40 {
            h.success();
        }
        for _ in 0..3 {
            assert_eq!(h.failure("x", &rule()), None);
        }
        assert_eq!(h.window(), (4, 45));
        // 5 failures but 5/46 < 20 %: still in.
        assert_eq!(h.failure("x", &rule()), None);
        // Failures until 20 %: 11 of 52.
        let mut out = None;
        for _ in 0..10 {
            if let Some(t) = h.failure("HTTP 500", &rule()) {
                out = Some(t);
                break;
            }
        }
        assert_eq!(h.window(), (11, 52));
        assert!(matches!(out, Some(Transition::WentDown(r)) if r.contains("11 of 52")));
        assert_eq!(h.state(), EndpointState::Down);
        assert!(!h.in_rotation());
        assert!(h.why().since_ms.is_some());
    }

    #[test]
    fn half_open_admits_one_trial_and_backs_off_exponentially() {
        let h = Health::new(false);
        assert!(h.eject("probe failed", &rule()).is_some());
        assert!(!h.trial_due(), "back-off first");
        let first = h.next_trial_in();
        assert!(first <= Duration::from_millis(50) && first > Duration::ZERO);
        while !h.trial_due() {
            std::thread::yield_now();
        }
        assert_eq!(h.half_open(), Some(Transition::HalfOpen));
        assert_eq!(h.state(), EndpointState::HalfOpen);
        assert!(h.in_rotation());
        assert!(h.admit(), "the trial");
        assert!(!h.admit(), "one at a time");
        assert!(!h.in_rotation());
        // The trial fails: ejected again, back-off doubled.
        assert!(matches!(
            h.failure("HTTP 502", &rule()),
            Some(Transition::WentDown(_))
        ));
        let second = h.next_trial_in();
        assert!(
            second > Duration::from_millis(50) && second <= Duration::from_millis(100),
            "{second:?}"
        );
        // A failed probe doubles it again, up to the cap.
        h.trial_failed(&rule());
        assert!(h.next_trial_in() > Duration::from_millis(100));
        for _ in 0..10 {
            h.trial_failed(&rule());
        }
        assert!(h.next_trial_in() <= Duration::from_millis(400));
        // A successful trial brings it back with a clean window.
        h.next_trial.store(0, Relaxed);
        assert!(h.trial_due());
        h.half_open();
        assert!(h.admit());
        assert_eq!(h.success(), Some(Transition::CameBack));
        assert_eq!(h.state(), EndpointState::Healthy);
        assert_eq!(h.window(), (0, 0));
        assert_eq!(h.why(), Why::default());
        assert!(!h.admit(), "healthy: no trial needed");
    }

    #[test]
    fn a_success_while_down_does_not_bring_it_back() {
        let h = Health::new(false);
        h.eject("x", &rule());
        assert_eq!(h.success(), None);
        assert_eq!(h.state(), EndpointState::Down);
    }

    #[test]
    fn a_disabled_endpoint_is_never_brought_back() {
        let h = Health::new(true);
        assert_eq!(h.state(), EndpointState::Disabled);
        assert_eq!(h.success(), None);
        assert_eq!(h.failure("x", &rule()), None);
        assert_eq!(h.eject("x", &rule()), None);
        assert_eq!(h.half_open(), None);
        assert!(!h.cool(Duration::from_secs(1)));
        assert_eq!(h.state(), EndpointState::Disabled);
        assert_eq!(h.why().reason.as_deref(), Some("disabled by the operator"));
        assert!(!h.confirm() && h.probe_failed("x", &rule()).is_none());
        h.set_disabled(false);
        assert!(h.in_rotation());
        assert_eq!(
            h.state(),
            EndpointState::Unknown,
            "re-enabled: no evidence yet"
        );
    }

    #[test]
    fn cooling_ends_by_itself() {
        let h = Health::new(false);
        h.success();
        assert!(h.cool(Duration::from_millis(30)));
        assert_eq!(h.state(), EndpointState::Cooling);
        assert!(!h.in_rotation());
        assert!(h.cooling_until().is_some());
        assert!(h.why().until_ms.is_some());
        assert!(!h.cool(Duration::from_millis(10)), "already cooling");
        assert!(!h.take_cool_ended());
        while !h.in_rotation() {
            std::thread::yield_now();
        }
        assert_eq!(h.state(), EndpointState::Healthy);
        assert!(h.take_cool_ended(), "once");
        assert!(!h.take_cool_ended());
        assert_eq!(h.why(), Why::default());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_with_a_default_and_bounds() {
        assert_eq!(retry_after(Some("2")), Duration::from_secs(2));
        assert_eq!(retry_after(Some(" 17 ")), Duration::from_secs(17));
        assert_eq!(retry_after(None), COOL_DEFAULT);
        assert_eq!(retry_after(Some("soon")), COOL_DEFAULT);
        assert_eq!(retry_after(Some("-3")), COOL_DEFAULT);
        assert_eq!(retry_after(Some("0")), Duration::from_secs(1));
        assert_eq!(retry_after(Some("86400")), COOL_MAX);
        let at = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = retry_after(Some(&httpdate::fmt_http_date(at)));
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            retry_after(Some("Sun, 06 Nov 1994 08:49:37 GMT")),
            Duration::from_secs(1),
            "a date past"
        );
    }

    #[test]
    fn old_buckets_leave_the_window() {
        let h = Health::new(false);
        let sec = (clock_ms() / 1000) & SEC_MASK;
        let bucket = |age: u64| ((sec.wrapping_sub(age) & SEC_MASK) << 40) | (5 << 20) | 5;
        let slot = &h.window[((sec + 1) % WINDOW_SECS) as usize];
        slot.store(bucket(WINDOW_SECS), Relaxed);
        assert_eq!(h.window(), (0, 0), "10 s old: out");
        slot.store(bucket(WINDOW_SECS - 1), Relaxed);
        assert_eq!(h.window(), (5, 5), "9 s old: in");
    }
}

//! One rule's window: a bucketed sliding window with conservative edges.
//!
//! A window of `D` seconds is cut into [`BUCKETS`] buckets of `w = D/100`
//! (10·D ms); a ring of `BUCKETS + 1` counters holds the current bucket and
//! the 100 before it. The count at instant `t` is the sum of the bucket
//! holding `t` and the 100 before it: every request of `(t − D, t]` is in it
//! (so a rule never admits more than `L` in any `D`-second span), and nothing
//! older than `t − D − w` is (so it never rejects while fewer than `L` were
//! admitted in the last `D + w`). Memory is fixed per rule (404 bytes)
//! whatever the limit, unlike a sliding log. docs/rate-limits.md has the proof.
//!
//! Times are the limiter clock's milliseconds; everything here is pure
//! arithmetic on a `now` passed in, so the property tests drive it exactly.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::domain::{Rule, RuleTarget, RuleUnit};

/// Buckets per window length: the granularity is 1% of the duration.
pub const BUCKETS: u64 = 100;
const SLOTS: u64 = BUCKETS + 1;
const SLOTS_LEN: usize = SLOTS as usize;

/// Bucket width in ms for a duration in seconds (`D/100`, at least 1 ms).
pub fn bucket_width_ms(duration_secs: u32) -> u64 {
    (u64::from(duration_secs) * 1000 / BUCKETS).max(1)
}

/// The counters of one window. `repr(C)`: the header a check reads sits
/// next to the lock, in the window's first cache line (see [`Window`]).
///
/// The newest bucket's count lives in the header (`head_count`), the older
/// ones in `slots`: while a subject's requests stay within one bucket, a
/// check reads and writes only the header line.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Ring {
    /// Requests admitted since the rule was loaded (counted under the lock
    /// the check holds anyway: no atomic operation of its own).
    pub admitted: u64,
    /// Bucket width, ms.
    width: u64,
    /// Where the newest bucket ends (ms, exclusive): before it, a check
    /// needs no division to know the window has not moved. The newest
    /// bucket's index is `head_end / width - 1`.
    head_end: u64,
    /// Count of the newest bucket (its slot is kept at 0).
    head_count: u64,
    /// Total counted: `head_count` plus all slots.
    sum: u64,
    slots: [u32; SLOTS_LEN],
    /// Requests refused in this rule's name since it was loaded (off the
    /// admit path's cache line).
    pub throttled: u64,
}

impl Ring {
    pub fn new(duration_secs: u32, now: u64) -> Self {
        let width = bucket_width_ms(duration_secs);
        Self {
            admitted: 0,
            width,
            head_end: (now / width + 1) * width,
            head_count: 0,
            sum: 0,
            slots: [0; SLOTS_LEN],
            throttled: 0,
        }
    }

    fn slot(bucket: u64) -> usize {
        (bucket % SLOTS) as usize
    }

    /// Index of the newest bucket.
    fn head(&self) -> u64 {
        self.head_end / self.width - 1
    }

    /// Count of `bucket` (one of the last `SLOTS`).
    fn count(&self, bucket: u64) -> u64 {
        if bucket == self.head() {
            self.head_count
        } else {
            u64::from(self.slots[Self::slot(bucket)])
        }
    }

    /// Drop the buckets that left the window by `now`.
    pub fn advance(&mut self, now: u64) {
        if now < self.head_end {
            return;
        }
        let (head, cur) = (self.head(), now / self.width);
        let older = self.sum - self.head_count;
        if cur - head >= SLOTS {
            if older > 0 {
                self.slots.fill(0);
            }
            self.sum = 0;
        } else {
            if self.head_count > 0 {
                // The old head becomes a past bucket. (A bucket never holds
                // more than a limit, a u32: admissions stop at the limit.)
                self.slots[Self::slot(head)] = u32::try_from(self.head_count).unwrap_or(u32::MAX);
            }
            // Nothing older counted: the slots about to be reused are already 0.
            if older > 0 {
                for b in head + 1..=cur {
                    let i = Self::slot(b);
                    self.sum -= u64::from(self.slots[i]);
                    self.slots[i] = 0;
                }
            }
        }
        self.head_count = 0;
        self.head_end = (cur + 1) * self.width;
    }

    /// Requests counted now (call [`advance`](Self::advance) first).
    pub fn used(&self) -> u64 {
        self.sum
    }

    /// Count `n` requests (or tokens) in the newest bucket.
    pub fn add(&mut self, n: u64) {
        self.head_count += n;
        self.sum += n;
    }

    /// Bucket width, ms.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// Take back up to `n` of what was counted at instant `at` (a token
    /// reservation settled below what it reserved), if the ring still holds
    /// `at`'s bucket. Needs no [`advance`](Self::advance) first: a bucket
    /// still held but already out of the window by now is zeroed (and taken
    /// off `sum`) at the next advance, so what is taken from it changes no
    /// later count. Returns what was taken back.
    pub fn refund(&mut self, at: u64, n: u64) -> u64 {
        let (bucket, head) = (at / self.width, self.head());
        if bucket > head || head - bucket >= SLOTS {
            return 0;
        }
        let take = n.min(self.count(bucket));
        if bucket == head {
            self.head_count -= take;
        } else {
            // `take` ≤ the slot's count, a u32.
            self.slots[Self::slot(bucket)] -= take as u32;
        }
        self.sum -= take;
        take
    }

    /// When `bucket` stops being counted (ms).
    fn expiry(&self, bucket: u64) -> u64 {
        (bucket + SLOTS) * self.width
    }

    /// The non-empty buckets still counted, oldest first, with the instant
    /// (ms) at which each stops being counted.
    fn live(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let head = self.head();
        (0..SLOTS).rev().filter_map(move |age| {
            let bucket = head.checked_sub(age)?;
            let count = self.count(bucket);
            (count > 0).then_some((self.expiry(bucket), count))
        })
    }

    /// Milliseconds until a request would fit under `limit` (0 if it fits now).
    pub fn room_in(&self, limit: u64, now: u64) -> u64 {
        if self.sum < limit {
            return 0;
        }
        let mut left = self.sum;
        for (expires, count) in self.live() {
            left -= count;
            if left < limit {
                return expires.saturating_sub(now);
            }
        }
        // Unreachable with limit ≥ 1 (left reaches 0); the full window length is the safe answer.
        self.width * SLOTS
    }

    /// Milliseconds until every counted request has left the window (0 if
    /// empty). After an admission the newest bucket is the answer, read
    /// from the header.
    pub fn reset_in(&self, now: u64) -> u64 {
        if self.sum == 0 {
            return 0;
        }
        if self.head_count > 0 {
            return (self.head_end + BUCKETS * self.width).saturating_sub(now);
        }
        let head = self.head();
        (1..SLOTS)
            .filter_map(|age| head.checked_sub(age))
            .find(|&bucket| self.count(bucket) > 0)
            .map_or(0, |bucket| self.expiry(bucket).saturating_sub(now))
    }

    /// Re-cut the window for a new duration, keeping its history: each old
    /// bucket's count moves to the new bucket holding that bucket's last
    /// instant (never earlier, so the new window stays conservative).
    pub fn resize(&mut self, duration_secs: u32, now: u64) {
        let mut next = Ring::new(duration_secs, now.max(self.head_end - self.width));
        next.admitted = self.admitted;
        next.throttled = self.throttled;
        let (head, next_head) = (self.head(), next.head());
        for age in 0..SLOTS {
            let Some(bucket) = head.checked_sub(age) else {
                break;
            };
            let count = self.count(bucket);
            if count == 0 {
                continue;
            }
            let last_ms = (bucket + 1) * self.width - 1;
            let target = (last_ms / next.width).min(next_head);
            if target == next_head {
                next.head_count += count;
            } else if target + BUCKETS >= next_head {
                let i = Self::slot(target);
                next.slots[i] =
                    next.slots[i].saturating_add(u32::try_from(count).unwrap_or(u32::MAX));
            } else {
                continue;
            }
            next.sum += count;
        }
        *self = next;
    }
}

/// What shared mode last learnt from Redis about a window, for the stats of
/// a replica (limiter-clock ms). Written after every Redis answer.
#[derive(Debug, Default)]
pub struct Observed {
    pub used: AtomicU32,
    /// When the window has room again.
    pub room_at: AtomicU64,
    /// When every counted request has left the window.
    pub reset_at: AtomicU64,
    /// The newest answer recorded: Redis's time of it and the use it
    /// reported. Answers to concurrent requests come back in any order
    /// (tasks on several threads); an older one must not overwrite a newer
    /// (a burst's stats showed 46 of 50 used after the 50th admission).
    newest: parking_lot::Mutex<(u64, u64)>,
}

impl Observed {
    /// Record an answer Redis gave at `redis_now` (its clock, shared by the
    /// replicas), unless a newer one was recorded already: later in Redis
    /// time, or in the same millisecond with more used (within one
    /// millisecond use only grows).
    pub fn record(&self, used: u64, room_ms: u64, reset_ms: u64, now: u64, redis_now: u64) {
        let mut newest = self.newest.lock();
        if (redis_now, used) < *newest {
            return;
        }
        *newest = (redis_now, used);
        self.used
            .store(used.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
        self.room_at.store(now + room_ms, Ordering::Relaxed);
        self.reset_at.store(now + reset_ms, Ordering::Relaxed);
    }
}

/// One rule's window and counters. Its identity (rule id, model, target,
/// subject) never changes; an edit of limit or duration updates it in place.
///
/// Laid out for the request path: the fields a check touches (limit, rule
/// id, the lock and the ring's header with the totals) fill the first
/// 64-byte line; the bucket it counts in is the only other line it reads.
#[repr(C, align(64))]
pub struct Window {
    limit: AtomicU32,
    duration_secs: AtomicU32,
    pub rule_id: u64,
    pub ring: Mutex<Ring>,
    pub target: RuleTarget,
    /// What the window counts (a changed unit gets a fresh window).
    pub unit: RuleUnit,
    pub model: String,
    /// The key id (target api-key) or workspace name (target workspace).
    pub subject: String,
    /// The Redis key of this window in shared mode.
    pub redis_key: String,
    pub observed: Observed,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("rule_id", &self.rule_id)
            .field("target", &self.target)
            .field("subject", &self.subject)
            .field("limit", &self.limit())
            .field("duration_secs", &self.duration_secs())
            .finish_non_exhaustive()
    }
}

impl Window {
    /// A fresh, empty window for `rule` of `model`; `redis_prefix` names its
    /// Redis key (`<prefix>:<rule id>:<target>:<subject>`).
    pub fn new(rule: &Rule, model: &str, redis_prefix: &str, now: u64) -> Self {
        let subject = subject_of(rule);
        Self {
            rule_id: rule.id,
            model: model.to_owned(),
            target: rule.spec.target,
            unit: rule.spec.unit,
            subject: subject.to_owned(),
            redis_key: format!("{redis_prefix}:{}:{}:{subject}", rule.id, rule.spec.target),
            limit: AtomicU32::new(rule.spec.limit),
            duration_secs: AtomicU32::new(rule.spec.duration_secs),
            ring: Mutex::new(Ring::new(rule.spec.duration_secs, now)),
            observed: Observed::default(),
        }
    }

    /// Whether this window counts what `rule` of `model` counts (same id,
    /// target and subject): then an edit keeps it, otherwise it starts afresh.
    pub fn counts(&self, rule: &Rule, model: &str) -> bool {
        self.rule_id == rule.id
            && self.model == model
            && self.target == rule.spec.target
            && self.unit == rule.spec.unit
            && self.subject == subject_of(rule)
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Start loading the line a check locks and counts in (and, for a
    /// token reservation, the line holding `unit`), without waiting for it:
    /// a hint, no effect on what the program computes.
    #[inline(always)]
    pub fn prefetch(&self, unit_too: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let at = (self as *const Window).cast::<i8>();
            // SAFETY: a prefetch only hints the cache; both addresses lie
            // inside this window (SSE, which every x86_64 has).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(at);
                if unit_too {
                    _mm_prefetch::<_MM_HINT_T0>(
                        at.wrapping_add(std::mem::offset_of!(Window, unit)),
                    );
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = unit_too;
    }

    pub fn duration_secs(&self) -> u32 {
        self.duration_secs.load(Ordering::Relaxed)
    }

    /// Apply an edited limit/duration, keeping the counted history.
    pub fn update(&self, limit: u32, duration_secs: u32, now: u64) {
        let mut ring = self.ring.lock();
        if duration_secs != self.duration_secs() {
            ring.advance(now);
            ring.resize(duration_secs, now);
            self.duration_secs.store(duration_secs, Ordering::Relaxed);
        }
        self.limit.store(limit, Ordering::Relaxed);
    }
}

/// What a rule counts: its key id (target api-key) or its workspace.
pub fn subject_of(rule: &Rule) -> &str {
    match rule.spec.target {
        RuleTarget::ApiKey => rule.spec.key_id.as_deref().unwrap_or_default(),
        RuleTarget::Workspace => &rule.spec.workspace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_redis_answer_does_not_overwrite_a_newer_one() {
        let o = Observed::default();
        o.record(50, 10, 20, 1_000, 5_000);
        // Answered earlier, applied later (another thread).
        o.record(46, 30, 40, 1_001, 4_999);
        o.record(47, 30, 40, 1_001, 5_000);
        assert_eq!(o.used.load(Ordering::Relaxed), 50);
        assert_eq!(o.room_at.load(Ordering::Relaxed), 1_010);
        // Newer ones are recorded, fewer used included (requests left).
        o.record(12, 5, 6, 3_000, 7_000);
        assert_eq!(o.used.load(Ordering::Relaxed), 12);
        assert_eq!(o.reset_at.load(Ordering::Relaxed), 3_006);
    }

    /// A ring for a 2 s window (20 ms buckets) starting at `start`.
    fn ring(start: u64) -> Ring {
        Ring::new(2, start)
    }

    #[test]
    fn counts_expire_exactly_one_window_after_their_bucket_ends() {
        let mut r = ring(1_000);
        r.add(3); // bucket [1000, 1020): counted until 1020 + 2000
        r.advance(3_019);
        assert_eq!(r.used(), 3);
        r.advance(3_020);
        assert_eq!(r.used(), 0);
    }

    #[test]
    fn room_in_names_the_first_instant_with_room_and_reset_the_last() {
        let mut r = ring(0);
        r.add(2); // bucket 0: expires 2020
        r.advance(500);
        r.add(3); // bucket 25: expires 2520
        r.advance(1_000);
        assert_eq!(r.room_in(5, 1_000), 1_020);
        assert_eq!(
            r.room_in(3, 1_000),
            1_520,
            "dropping bucket 0 leaves 3, not < 3"
        );
        assert_eq!(r.room_in(4, 1_000), 1_020);
        assert_eq!(r.room_in(6, 1_000), 0);
        assert_eq!(r.reset_in(1_000), 1_520);
        // Check the claims against the ring itself.
        let mut later = r.clone();
        later.advance(2_019);
        assert_eq!(later.used(), 5);
        later.advance(2_020);
        assert_eq!(later.used(), 3);
    }

    /// A settlement gives back without reading the clock (no advance):
    /// from a bucket still in the window, or from one the ring still holds
    /// though it has left the window, which changes no later count.
    #[test]
    fn a_refund_without_advancing_keeps_every_later_count_exact() {
        let mut r = ring(0);
        r.add(5); // bucket 0: counted until 2020
        r.advance(500);
        r.add(2); // bucket 25: counted until 2520
        assert_eq!(r.refund(0, 3), 3, "bucket 0 is still held");
        assert_eq!(r.used(), 4);
        r.advance(2_019);
        assert_eq!(r.used(), 4);
        r.advance(2_020);
        assert_eq!(r.used(), 2);
        // Bucket 25 left the window at 2520, but the ring (not advanced
        // since 2020) still holds it: taking from it changes nothing later.
        assert_eq!(r.refund(500, 1), 1);
        r.advance(2_520);
        assert_eq!(r.used(), 0);
        r.add(1);
        assert_eq!(r.used(), 1);
        // A bucket the ring no longer holds gives nothing back.
        assert_eq!(r.refund(0, 1), 0);
        assert_eq!(r.used(), 1);
    }

    #[test]
    fn a_long_idle_gap_clears_everything() {
        let mut r = ring(0);
        r.add(7);
        r.advance(1_000_000);
        assert_eq!(r.used(), 0);
        assert_eq!(r.reset_in(1_000_000), 0);
        r.add(1);
        assert_eq!(r.used(), 1);
    }

    #[test]
    fn resizing_keeps_history_and_never_moves_a_count_earlier() {
        let mut r = ring(10_000);
        r.add(4); // [10000, 10020)
        r.advance(11_500);
        r.add(1); // [11500, 11520)
        // Lengthen to 10 s (100 ms buckets): both buckets still counted.
        let mut longer = r.clone();
        longer.resize(10, 11_500);
        assert_eq!(longer.used(), 5);
        // The older count now expires when its 100 ms bucket holding 10019 does: 10100 + 10000.
        longer.advance(20_099);
        assert_eq!(longer.used(), 5);
        longer.advance(20_100);
        assert_eq!(longer.used(), 1);
        // Shorten to 1 s (10 ms buckets): the 4 from 10000 are older than the window.
        let mut shorter = r.clone();
        shorter.resize(1, 11_500);
        assert_eq!(shorter.used(), 1);
    }

    #[test]
    fn bucket_width_is_one_percent_of_the_duration() {
        assert_eq!(bucket_width_ms(1), 10);
        assert_eq!(bucket_width_ms(2), 20);
        assert_eq!(bucket_width_ms(3600), 36_000);
    }
}

#[cfg(test)]
mod layout {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn what_a_check_touches_fits_one_cache_line() {
        let ring_header_end = offset_of!(Ring, sum) + 8;
        // The lock precedes the data inside the mutex.
        let m = Mutex::new(Ring::new(1, 0));
        let data_at = &*m.lock() as *const Ring as usize - &m as *const Mutex<Ring> as usize;
        assert_eq!(data_at, size_of::<Mutex<Ring>>() - size_of::<Ring>());
        let hot_end = offset_of!(Window, ring) + size_of::<Mutex<Ring>>() - size_of::<Ring>()
            + ring_header_end;
        assert!(hot_end <= 64, "hot fields end at byte {hot_end}");
        assert!(offset_of!(Window, rule_id) < 64);
        assert_eq!(align_of::<Window>(), 64);
    }
}

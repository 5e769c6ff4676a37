//! The usage ledger's gateway side (docs/usage.md): one [`UsageCell`] per
//! (key, model) a snapshot can serve, bumped by the request's tally with
//! relaxed `fetch_add`s, and drained (`swap(0)`, so no increment is lost
//! between a read and a reset) by the control thread, which adds the
//! deltas to the store's ledger every flush interval and on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::counters::RequestOutcome;
use crate::domain::usage::Usage;

/// What one key used of one model since the last drain.
#[derive(Debug, Default)]
pub struct UsageCell {
    requests: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    prompt: AtomicU64,
    completion: AtomicU64,
}

impl UsageCell {
    /// How a request of this key for this model ended.
    #[inline]
    pub fn outcome(&self, o: RequestOutcome) {
        self.requests.fetch_add(1, Relaxed);
        let slot = match o {
            RequestOutcome::Success => &self.ok,
            RequestOutcome::Throttled => &self.throttled,
            RequestOutcome::Cancelled => return,
            _ => &self.errors,
        };
        slot.fetch_add(1, Relaxed);
    }

    #[inline]
    pub fn tokens(&self, prompt: u64, completion: u64) {
        if prompt > 0 {
            self.prompt.fetch_add(prompt, Relaxed);
        }
        if completion > 0 {
            self.completion.fetch_add(completion, Relaxed);
        }
    }

    /// What was counted since the last take, left as it is (budgets add
    /// it to what the store has).
    pub fn peek(&self) -> Usage {
        Usage {
            requests: self.requests.load(Relaxed),
            ok: self.ok.load(Relaxed),
            throttled: self.throttled.load(Relaxed),
            errors: self.errors.load(Relaxed),
            prompt_tokens: self.prompt.load(Relaxed),
            completion_tokens: self.completion.load(Relaxed),
            cost_nanos: 0,
        }
    }

    /// What was counted since the last take, leaving zeros.
    pub fn take(&self) -> Usage {
        Usage {
            requests: self.requests.swap(0, Relaxed),
            ok: self.ok.swap(0, Relaxed),
            throttled: self.throttled.swap(0, Relaxed),
            errors: self.errors.swap(0, Relaxed),
            prompt_tokens: self.prompt.swap(0, Relaxed),
            completion_tokens: self.completion.swap(0, Relaxed),
            cost_nanos: 0,
        }
    }
}

/// A key as the ledger names it: its id and its workspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    pub key_id: String,
    pub workspace: String,
    pub model: String,
}

/// Every cell the gateway ever handed out, kept across reloads (a request
/// in flight on an old snapshot still counts into the same cell), and the
/// market prices of the models as of the latest snapshot.
#[derive(Debug, Default)]
pub struct LedgerBook {
    cells: Mutex<HashMap<Pair, Arc<UsageCell>>>,
    prices: Mutex<HashMap<String, crate::domain::usage::Prices>>,
}

impl LedgerBook {
    /// The cells of `model` for each key (`(id, workspace)`), in the keys' order.
    pub fn cells(&self, model: &str, keys: &[(&str, &str)]) -> Box<[Arc<UsageCell>]> {
        let mut cells = self.cells.lock();
        keys.iter()
            .map(|(id, ws)| {
                let pair = Pair {
                    key_id: (*id).to_string(),
                    workspace: (*ws).to_string(),
                    model: model.to_string(),
                };
                cells.entry(pair).or_default().clone()
            })
            .collect()
    }

    /// The prices the next flush charges, per model (replaced at each reload).
    pub fn set_prices(&self, prices: HashMap<String, crate::domain::usage::Prices>) {
        *self.prices.lock() = prices;
    }

    /// Every non-empty delta since the last drain, costed at the current prices.
    pub fn drain(&self) -> Vec<(Pair, Usage)> {
        self.collect(UsageCell::take)
    }

    /// What [`drain`](Self::drain) would return, without draining: the
    /// usage not yet flushed (docs/usage.md "Budgets").
    pub fn unflushed(&self) -> Vec<(Pair, Usage)> {
        self.collect(UsageCell::peek)
    }

    fn collect(&self, read: fn(&UsageCell) -> Usage) -> Vec<(Pair, Usage)> {
        let prices = self.prices.lock().clone();
        let cells = self.cells.lock();
        let mut out: Vec<(Pair, Usage)> = cells
            .iter()
            .filter_map(|(pair, cell)| {
                let mut u = read(cell);
                if u.is_empty() {
                    return None;
                }
                if let Some(p) = prices.get(&pair.model) {
                    u.cost_nanos = p.cost_nanos(u.prompt_tokens, u.completion_tokens);
                }
                Some((pair.clone(), u))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

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
    cells: Mutex<Cells>,
    prices: Mutex<HashMap<String, crate::domain::usage::Prices>>,
}

/// The cells, in the order they were handed out (never removed), indexed
/// by pair, by key and by workspace (the budget tracker reads only the
/// cells of the keys and workspaces that have budgets:
/// [`LedgerBook::unflushed_of`]).
#[derive(Debug, Default)]
struct Cells {
    all: Vec<(Arc<Pair>, Arc<UsageCell>)>,
    by_pair: HashMap<Arc<Pair>, usize>,
    by_key: HashMap<String, Vec<usize>>,
    by_workspace: HashMap<String, Vec<usize>>,
}

impl Cells {
    fn get_or_add(&mut self, pair: Pair) -> Arc<UsageCell> {
        if let Some(&i) = self.by_pair.get(&pair) {
            return self.all[i].1.clone();
        }
        let i = self.all.len();
        let pair = Arc::new(pair);
        let cell = Arc::new(UsageCell::default());
        self.by_key.entry(pair.key_id.clone()).or_default().push(i);
        self.by_workspace
            .entry(pair.workspace.clone())
            .or_default()
            .push(i);
        self.by_pair.insert(pair.clone(), i);
        self.all.push((pair, cell.clone()));
        cell
    }
}

impl LedgerBook {
    /// The cells of `model` for each key (`(id, workspace)`), in the keys' order.
    pub fn cells(&self, model: &str, keys: &[(&str, &str)]) -> Box<[Arc<UsageCell>]> {
        let mut cells = self.cells.lock();
        keys.iter()
            .map(|(id, ws)| {
                cells.get_or_add(Pair {
                    key_id: (*id).to_string(),
                    workspace: (*ws).to_string(),
                    model: model.to_string(),
                })
            })
            .collect()
    }

    /// The prices the next flush charges, per model (replaced at each reload).
    pub fn set_prices(&self, prices: HashMap<String, crate::domain::usage::Prices>) {
        *self.prices.lock() = prices;
    }

    /// Every non-empty delta since the last drain, costed at the current prices.
    pub fn drain(&self) -> Vec<(Pair, Usage)> {
        let cells = self.cells.lock();
        self.collect(cells.all.iter(), UsageCell::take)
    }

    /// What [`drain`](Self::drain) would return, without draining: the
    /// usage not yet flushed (docs/usage.md "Budgets").
    pub fn unflushed(&self) -> Vec<(Pair, Usage)> {
        let cells = self.cells.lock();
        self.collect(cells.all.iter(), UsageCell::peek)
    }

    /// What [`unflushed`](Self::unflushed) returns of the keys `keys` and
    /// of every key of the workspaces `workspaces` only (the subjects of
    /// the budgets): it reads their cells alone, however many others the
    /// gateway has (docs/usage.md "Budgets").
    pub fn unflushed_of<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
        workspaces: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(Pair, Usage)> {
        let cells = self.cells.lock();
        let mut at: Vec<usize> = keys
            .into_iter()
            .filter_map(|k| cells.by_key.get(k))
            .chain(
                workspaces
                    .into_iter()
                    .filter_map(|w| cells.by_workspace.get(w)),
            )
            .flatten()
            .copied()
            .collect();
        at.sort_unstable();
        at.dedup();
        self.collect(at.iter().map(|&i| &cells.all[i]), UsageCell::peek)
    }

    fn collect<'a>(
        &self,
        cells: impl Iterator<Item = &'a (Arc<Pair>, Arc<UsageCell>)>,
        read: fn(&UsageCell) -> Usage,
    ) -> Vec<(Pair, Usage)> {
        let prices = self.prices.lock();
        let mut out: Vec<(Pair, Usage)> = cells
            .filter_map(|(pair, cell)| {
                let mut u = read(cell);
                if u.is_empty() {
                    return None;
                }
                if let Some(p) = prices.get(&pair.model) {
                    u.cost_nanos = p.cost_nanos(u.prompt_tokens, u.completion_tokens);
                }
                Some(((**pair).clone(), u))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget tracker's read is the full read's rows of the subjects:
    /// the keys named, and every key of the workspaces named (a key of a
    /// named workspace that is also named counts once), costed the same.
    #[test]
    fn unflushed_of_subjects_is_the_full_read_of_their_keys() {
        let book = LedgerBook::default();
        book.set_prices(HashMap::from([(
            "m1".to_string(),
            crate::domain::usage::Prices {
                input_micros_per_m: 1_000_000,
                output_micros_per_m: 2_000_000,
            },
        )]));
        let keys = [
            ("k1", "acme"),
            ("k2", "acme"),
            ("k3", "beta"),
            ("k4", "gamma"),
        ];
        for model in ["m1", "m2"] {
            for (i, cell) in book.cells(model, &keys).iter().enumerate() {
                cell.outcome(RequestOutcome::Success);
                cell.tokens(10 * (i as u64 + 1), 3);
            }
        }
        // Never used: not returned.
        let _ = book.cells("m3", &keys);
        let all = book.unflushed();
        assert_eq!(all.len(), 8);
        let of = |keys: &[&str], workspaces: &[&str]| {
            book.unflushed_of(keys.iter().copied(), workspaces.iter().copied())
        };
        let want = |f: &dyn Fn(&Pair) -> bool| -> Vec<(Pair, Usage)> {
            all.iter().filter(|(p, _)| f(p)).cloned().collect()
        };
        assert_eq!(
            of(&["k1", "k3"], &["acme"]),
            want(&|p| p.workspace == "acme" || p.key_id == "k3")
        );
        assert_eq!(of(&["k4"], &[]), want(&|p| p.key_id == "k4"));
        assert_eq!(
            of(&[], &["beta", "nobody"]),
            want(&|p| p.workspace == "beta")
        );
        assert!(of(&["k9"], &["nobody"]).is_empty());
        assert!(all.iter().any(|(p, u)| p.model == "m1" && u.cost_nanos > 0));
        // Peeking drains nothing.
        assert_eq!(book.unflushed(), all);
        assert_eq!(book.drain(), all);
        assert!(of(&["k1"], &["acme"]).is_empty());
    }
}

//! Budgets at the gateway (docs/usage.md "Budgets").
//!
//! Two halves:
//!
//! - [`Gate`], read on the request path: the subjects (keys, workspaces)
//!   whose budget is spent, swapped in whole by the control thread. A
//!   request is one atomic pointer load and, only when some budget is
//!   spent, two hash-map reads. No store I/O.
//! - [`Tracker`], on the control thread: every [`TICK`] it sums what each
//!   budget's subject spent this period — the store's ledger as of its
//!   last read (re-read every [`STORE_EVERY`], right after each of this
//!   gateway's flushes, and when the budgets change) plus this gateway's
//!   usage not flushed yet (the ledger cells, and rows a failed flush
//!   kept) — and publishes the spent ones to the [`Gate`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::domain::budget::{self, Budget, BudgetStatus};
use crate::domain::entities::RuleTarget;
use crate::domain::now_ms;
use crate::domain::usage::Usage;
use crate::domain::usage::{Span, UsageRow};
use crate::gateway::telemetry::ledger::{LedgerBook, Pair};
use crate::store::Store;

/// How often the control thread re-checks the budgets (what this gateway
/// serves past a spent budget is at most this long of its traffic, plus
/// the requests in flight).
pub const TICK: Duration = Duration::from_millis(250);
/// How often it re-reads the store's ledger (other replicas' flushes show
/// up then).
pub const STORE_EVERY: Duration = Duration::from_secs(5);

/// Why requests of a subject are refused: the budget that is spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub budget_id: String,
    /// The caller's message (OpenAI's `insufficient_quota` wording first).
    pub message: String,
    /// When the period ends, Unix ms (`Retry-After` counts down to it).
    pub resets_at_ms: i64,
}

impl Refusal {
    fn of(s: &BudgetStatus) -> Self {
        Self {
            budget_id: s.id.clone(),
            message: format!(
                "You exceeded your current quota: budget {} of {} per {} for {} {} is spent ({} used); it resets at {}.",
                s.id,
                s.unit.show(s.amount),
                s.period,
                s.target.as_str(),
                s.subject,
                s.unit.show(s.spent),
                budget::rfc3339(s.resets_at_ms)
            ),
            resets_at_ms: s.resets_at_ms,
        }
    }

    /// Whole seconds until the reset, at least 1.
    pub fn retry_after_secs(&self, now_ms: i64) -> u64 {
        let ms = (self.resets_at_ms - now_ms).max(0).unsigned_abs();
        ms.div_ceil(1000).max(1)
    }
}

/// The spent budgets, by subject.
#[derive(Debug, Default)]
pub struct Spent {
    keys: HashMap<String, Refusal>,
    workspaces: HashMap<String, Refusal>,
}

impl Spent {
    /// From every budget's status: for each subject, the spent budget that
    /// resets last (retrying after its reset passes every one).
    pub fn of(statuses: &[BudgetStatus]) -> Self {
        let mut out = Spent::default();
        for s in statuses.iter().filter(|s| s.exhausted()) {
            let map = match s.target {
                RuleTarget::ApiKey => &mut out.keys,
                RuleTarget::Workspace => &mut out.workspaces,
            };
            let r = Refusal::of(s);
            match map.get(&s.subject) {
                Some(cur) if cur.resets_at_ms >= r.resets_at_ms => {}
                _ => {
                    map.insert(s.subject.clone(), r);
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.workspaces.is_empty()
    }
}

/// What the request path reads.
#[derive(Debug, Default)]
pub struct Gate {
    spent: ArcSwap<Spent>,
}

impl Gate {
    /// The refusal for a request of key `key_id` of `workspace`, if a
    /// budget of either is spent (the one resetting last).
    #[inline]
    pub fn check(&self, key_id: &str, workspace: &str) -> Option<Refusal> {
        let spent = self.spent.load();
        if spent.is_empty() {
            return None;
        }
        let k = spent.keys.get(key_id);
        let w = spent.workspaces.get(workspace);
        match (k, w) {
            (Some(k), Some(w)) if w.resets_at_ms > k.resets_at_ms => Some(w.clone()),
            (Some(k), _) => Some(k.clone()),
            (None, w) => w.cloned(),
        }
    }

    pub fn publish(&self, spent: Spent) {
        self.spent.store(Arc::new(spent));
    }
}

/// The keys and workspaces that have budgets: the only ones whose usage a
/// tick reads (the ledger cells of the others are not touched, their rows
/// from the store not kept), so a tick costs what the budgeted subjects
/// used, however many other keys the gateway serves.
#[derive(Debug, Default)]
pub struct Subjects {
    keys: HashSet<String>,
    workspaces: HashSet<String>,
}

impl Subjects {
    pub fn of(budgets: &[Budget]) -> Self {
        let mut out = Subjects::default();
        for b in budgets {
            match b.spec.target {
                RuleTarget::ApiKey => out.keys.insert(b.spec.subject.clone()),
                RuleTarget::Workspace => out.workspaces.insert(b.spec.subject.clone()),
            };
        }
        out
    }

    /// Whether a budget may count `r` (its key's or its workspace's).
    fn counts(&self, r: &UsageRow) -> bool {
        self.keys.contains(&r.key_id) || self.workspaces.contains(&r.workspace)
    }

    /// The rows a budget may count.
    fn of_rows(&self, rows: &[UsageRow]) -> Vec<UsageRow> {
        rows.iter().filter(|r| self.counts(r)).cloned().collect()
    }

    /// What this gateway counted and has not flushed yet, of these
    /// subjects only ([`LedgerBook::unflushed_of`]).
    pub fn unflushed(&self, book: &LedgerBook) -> Vec<(Pair, Usage)> {
        book.unflushed_of(
            self.keys.iter().map(String::as_str),
            self.workspaces.iter().map(String::as_str),
        )
    }
}

/// The control thread's side: the store's ledger as last read, folded to
/// one row per (key, model) and period part.
pub struct Tracker {
    store: Arc<dyn Store>,
    book: Arc<LedgerBook>,
    /// The budgets' subjects, and for which budgets.
    subjects: Subjects,
    subjects_for: Option<Arc<[Budget]>>,
    /// Rows read from the store (folded), and for which budgets and when;
    /// `stored` is those of the subjects (what a tick reads).
    stored_all: Vec<UsageRow>,
    stored: Vec<UsageRow>,
    read_for: Option<Arc<[Budget]>>,
    read_at: Option<Instant>,
    /// The statuses of the last tick (for logs: what changed).
    last_spent: Vec<String>,
}

impl Tracker {
    pub fn new(store: Arc<dyn Store>, book: Arc<LedgerBook>) -> Self {
        Self {
            store,
            book,
            subjects: Subjects::default(),
            subjects_for: None,
            stored_all: Vec::new(),
            stored: Vec::new(),
            read_for: None,
            read_at: None,
            last_spent: Vec::new(),
        }
    }

    /// Re-check `budgets` and publish the spent ones to `gate`. `reread`:
    /// read the store's ledger now (this gateway just flushed).
    pub async fn tick(
        &mut self,
        budgets: &Arc<[Budget]>,
        pending: &[UsageRow],
        gate: &Gate,
        reread: bool,
    ) {
        if budgets.is_empty() {
            if !self.last_spent.is_empty() || self.read_for.is_some() {
                gate.publish(Spent::default());
                self.last_spent.clear();
                self.read_for = None;
                self.stored.clear();
                self.stored_all.clear();
                self.subjects_for = None;
            }
            return;
        }
        if !self
            .subjects_for
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, budgets))
        {
            self.subjects = Subjects::of(budgets);
            self.subjects_for = Some(budgets.clone());
            self.stored = self.subjects.of_rows(&self.stored_all);
        }
        let changed = !self
            .read_for
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, budgets) || **b == **budgets);
        let due = self.read_at.is_none_or(|t| t.elapsed() >= STORE_EVERY);
        if reread || changed || due {
            self.read_store(budgets).await;
        }
        let now = now_ms();
        let mut local: Vec<UsageRow> = pending
            .iter()
            .filter(|r| self.subjects.counts(r))
            .cloned()
            .collect();
        local.extend(
            self.subjects
                .unflushed(&self.book)
                .into_iter()
                .map(|(p, usage)| UsageRow {
                    span: Span::Minute,
                    bucket_ms: now,
                    key_id: p.key_id,
                    workspace: p.workspace,
                    model: p.model,
                    usage,
                }),
        );
        let mut rows = self.stored.clone();
        rows.extend(fold(local, now));
        let statuses = budget::status(budgets.iter(), &rows, now);
        let spent = Spent::of(&statuses);
        let ids: Vec<String> = statuses
            .iter()
            .filter(|s| s.exhausted())
            .map(|s| s.id.clone())
            .collect();
        if ids != self.last_spent {
            for s in statuses.iter().filter(|s| s.exhausted()) {
                if !self.last_spent.contains(&s.id) {
                    tracing::info!("{}", Refusal::of(s).message);
                }
            }
            self.last_spent = ids;
        }
        gate.publish(spent);
    }

    /// Read the ledger from the earliest period start of `budgets`, summed
    /// by the store per key: today, and earlier this month.
    async fn read_store(&mut self, budgets: &Arc<[Budget]>) {
        let now = now_ms();
        let Some(since) = budget::earliest_start(budgets.iter(), now) else {
            return;
        };
        let (day, _) = budget::BudgetPeriod::Day.bounds(now);
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.usage_totals(since, day)).await;
        let rows = match read {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::warn!(
                    "budgets: cannot read the usage ledger (keeping the last read): {e}"
                );
                return;
            }
            Err(_) => return,
        };
        self.stored_all = fold(rows, now);
        self.stored = self.subjects.of_rows(&self.stored_all);
        self.read_for = Some(budgets.clone());
        self.read_at = Some(Instant::now());
    }
}

/// `rows` summed per (key, workspace) and period part: today's to the
/// day's start, earlier ones to the month's (rows before the month are not
/// read). Models are summed together: a budget counts them all. What the
/// budgets are checked against is then about two rows per key.
fn fold(rows: Vec<UsageRow>, now: i64) -> Vec<UsageRow> {
    let (day, _) = budget::BudgetPeriod::Day.bounds(now);
    let (month, _) = budget::BudgetPeriod::Month.bounds(now);
    let mut folded: HashMap<(String, String, i64), UsageRow> = HashMap::new();
    for r in rows {
        let bucket = if r.bucket_ms >= day { day } else { month };
        let k = (r.key_id.clone(), r.workspace.clone(), bucket);
        folded
            .entry(k)
            .and_modify(|f| f.usage.add(&r.usage))
            .or_insert(UsageRow {
                bucket_ms: bucket,
                model: String::new(),
                ..r
            });
    }
    folded.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::budget::{BudgetPeriod, BudgetUnit};

    fn status(
        id: &str,
        target: RuleTarget,
        subject: &str,
        resets: i64,
        spent: u64,
    ) -> BudgetStatus {
        BudgetStatus {
            id: id.into(),
            target,
            subject: subject.into(),
            unit: BudgetUnit::Tokens,
            period: BudgetPeriod::Day,
            amount: 100,
            spent,
            left: 100u64.saturating_sub(spent),
            period_start_ms: 0,
            resets_at_ms: resets,
        }
    }

    #[test]
    fn the_gate_refuses_the_spent_subject_naming_the_budget_resetting_last() {
        let gate = Gate::default();
        assert_eq!(gate.check("k1", "acme"), None);
        gate.publish(Spent::of(&[
            status("b1", RuleTarget::Workspace, "acme", 1_000, 100),
            status("b2", RuleTarget::Workspace, "acme", 9_000, 150),
            status("b3", RuleTarget::ApiKey, "k2", 5_000, 100),
            status("b4", RuleTarget::Workspace, "beta", 5_000, 99),
        ]));
        assert_eq!(gate.check("k1", "acme").unwrap().budget_id, "b2");
        assert_eq!(gate.check("k2", "other").unwrap().budget_id, "b3");
        assert_eq!(gate.check("k2", "acme").unwrap().budget_id, "b2");
        assert_eq!(gate.check("k3", "beta"), None);
        let r = gate.check("k1", "acme").unwrap();
        assert!(
            r.message.contains(
                "budget b2 of 100 tokens per day for workspace acme is spent (150 tokens used)"
            ),
            "{}",
            r.message
        );
        assert_eq!(r.retry_after_secs(7_001), 2);
        assert_eq!(r.retry_after_secs(10_000), 1);
    }
}

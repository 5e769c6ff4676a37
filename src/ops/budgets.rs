//! Budgets with what was spent (docs/usage.md "Budgets"): the CLI's
//! `budget list` (local), the admin API's `GET /admin/v1/budgets` and the
//! console's in-process client all call [`status`].

use crate::domain::budget::{self, BudgetStatus};
use crate::store::{Store, StoreError};

/// Every budget with its subject's spending this period, from the store's
/// ledger as of `now_ms` (what gateways have flushed: up to one flush
/// interval behind them), in id order.
pub fn status(store: &dyn Store, now_ms: i64) -> Result<Vec<BudgetStatus>, StoreError> {
    let reg = store.load()?;
    let Some(since) = budget::earliest_start(reg.budgets.values(), now_ms) else {
        return Ok(Vec::new());
    };
    let (day, _) = budget::BudgetPeriod::Day.bounds(now_ms);
    let rows = store.usage_totals(since, day)?;
    let mut out = budget::status(reg.budgets.values(), &rows, now_ms);
    out.sort_by_key(|s| budget::id_number(&s.id));
    Ok(out)
}

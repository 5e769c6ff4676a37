//! Usage reports (docs/usage.md): the ledger rows of a range, grouped. The
//! CLI (local), the admin API's `GET /admin/v1/usage` and the console's
//! in-process client all call [`report`].

use crate::domain::usage::{self, UsageQuery, UsageReport};
use crate::store::{Store, StoreError};

/// The report `q` asks for, read from `store`'s ledger.
pub fn report(store: &dyn Store, q: &UsageQuery) -> Result<UsageReport, StoreError> {
    if q.until_ms <= q.since_ms {
        return Err(StoreError::Domain(crate::domain::DomainError::invalid(
            "until",
            "must be after since",
        )));
    }
    // Summed per (key, model, series step) by the store: a month of minute
    // rows is millions; the report needs one row per group and step.
    let step = usage::step_ms(q.since_ms, q.until_ms);
    let rows = store.usage_summary(q.since_ms, q.until_ms, step)?;
    Ok(usage::report(&rows, q))
}

//! Usage reports (docs/usage.md): the ledger rows of a range, grouped. The
//! CLI (local), the admin API's `GET /admin/v1/usage` and the console's
//! in-process client all call [`report`].

use crate::domain::usage::{self, UsageQuery, UsageReport};
use crate::store::{Store, StoreError};

/// The report `q` asks for, read from `store`'s ledger now.
pub fn report(store: &dyn Store, q: &UsageQuery) -> Result<UsageReport, StoreError> {
    report_at(store, q, crate::domain::now_ms())
}

/// The report `q` asks for, read from `store`'s ledger at `now_ms`: a range
/// ending after the start of the minute `now_ms` is in has an open end
/// ([`usage::open_end`]), whose hour or day is read from its one row.
pub fn report_at(
    store: &dyn Store,
    q: &UsageQuery,
    now_ms: i64,
) -> Result<UsageReport, StoreError> {
    if q.until_ms <= q.since_ms {
        return Err(StoreError::Domain(crate::domain::DomainError::invalid(
            "until",
            "must be after since",
        )));
    }
    // Summed per (key, model, series step) by the store: a month of minute
    // rows is millions; the report needs one row per group and step.
    let step = usage::step_ms(q.since_ms, q.until_ms);
    let open = usage::open_end(q.until_ms, now_ms);
    let rows = store.usage_summary(q.since_ms, q.until_ms, step, open)?;
    Ok(usage::report(&rows, q))
}

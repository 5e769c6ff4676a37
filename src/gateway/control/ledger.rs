//! Adding the gateway's usage to the store's ledger (docs/usage.md), off
//! the request path: every flush interval, aligned to the wall clock (so an
//! interval that divides a minute never straddles one and each delta lands
//! in the minute it was counted in), and once more on a clean shutdown.
//! A write that fails is kept and retried with the next flush.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::now_ms;
use crate::domain::usage::{MINUTE_MS, Retention, Span, UsageRow, floor};
use crate::gateway::telemetry::ledger::LedgerBook;
use crate::store::Store;

/// How often the ledger is aged (and once when the gateway starts).
pub const COMPACT_EVERY: Duration = Duration::from_secs(3600);

/// Sleep until the next multiple of `every` on the wall clock.
pub async fn until_next(every: Duration) {
    let step = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let now = now_ms();
    let wait = (floor(now, step) + step - now).max(1);
    tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
}

/// Drains the cells and writes the deltas.
pub struct Flusher {
    book: Arc<LedgerBook>,
    store: Arc<dyn Store>,
    /// When the counts being drained began (the last flush).
    since_ms: i64,
    /// Rows a failed write left, retried first.
    pending: Vec<UsageRow>,
}

impl Flusher {
    pub fn new(book: Arc<LedgerBook>, store: Arc<dyn Store>) -> Self {
        Self {
            book,
            store,
            since_ms: now_ms(),
            pending: Vec::new(),
        }
    }

    /// Rows a failed write left (not in the store yet).
    pub fn pending(&self) -> &[UsageRow] {
        &self.pending
    }

    /// Add what was counted since the last flush to the ledger, in the
    /// minute the interval began in.
    pub async fn flush(&mut self) {
        let bucket_ms = floor(self.since_ms, MINUTE_MS);
        self.since_ms = now_ms();
        let mut rows = std::mem::take(&mut self.pending);
        rows.extend(self.book.drain().into_iter().map(|(pair, usage)| UsageRow {
            span: Span::Minute,
            bucket_ms,
            key_id: pair.key_id,
            workspace: pair.workspace,
            model: pair.model,
            usage,
        }));
        if rows.is_empty() {
            return;
        }
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || {
            let r = store.add_usage(&rows);
            (rows, r)
        })
        .await;
        match result {
            Ok((_, Ok(()))) => {}
            Ok((rows, Err(e))) => {
                tracing::warn!(
                    "could not add {} usage rows to the ledger (retried): {e}",
                    rows.len()
                );
                self.pending = rows;
            }
            Err(e) => tracing::warn!("the usage ledger write did not finish: {e}"),
        }
    }
}

/// Age the ledger now and every [`COMPACT_EVERY`].
pub async fn compact_loop(store: Arc<dyn Store>, keep: Retention) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.compact_usage(now_ms(), &keep)).await {
            Ok(Err(e)) => tracing::warn!("could not age the usage ledger: {e}"),
            Err(e) => tracing::warn!("aging the usage ledger did not finish: {e}"),
            Ok(Ok(())) => {}
        }
        tokio::time::sleep(COMPACT_EVERY).await;
    }
}

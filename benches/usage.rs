//! The 30-day usage report (`ops::usage::report`, by workspace and model)
//! over a SQLite ledger holding a month of traffic (issue 12; target
//! < 100 ms).
//!
//! The fixture is what the default retention (`Retention::default()`:
//! minute rows for 7 days, hour rows up to 90) leaves of 1,000 active
//! (key, model) pairs busy every minute for 30 days: a minute row per pair
//! per minute for the last 7 days, an hour row per pair per hour for the 23
//! days before; and the hour and day rollups of all of it (docs/usage.md:
//! a gateway writes every delta at the three spans). Written once per run
//! into a temporary directory, in bulk: the minute and aged hour rows by
//! one prepared `INSERT` in one transaction, then the rollups by the same
//! statements as the migration that backfills them (schema 11), which
//! makes exactly what `Store::add_usage` would have (a test checks the
//! backfill against the deltas). Prints its row count and file size.
//!
//! MAASCTL_BENCH_USAGE_PAIRS changes the number of pairs (default 1,000;
//! 0 skips the report and its fixture).
//!
//! Also the budget tracker's tick (`tracker`, bench/RESULTS.md "Budget
//! tracker"): one budget, and 0, 10,000 or 100,000 other ledger cells.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use maasctl::domain::usage::{Dim, Retention, Span, Usage, UsageQuery, UsageRow};
use maasctl::store::Store;
use maasctl::store::sqlite::SqliteStore;
use maasctl::tui::views::usage::Range;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

fn pairs() -> usize {
    std::env::var("MAASCTL_BENCH_USAGE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// Pair `p`: key `p` of workspace `p % 50`, model `p % 20`.
fn row(p: usize, span: Span, bucket_ms: i64) -> UsageRow {
    let n = (p as u64 % 7) + 1;
    UsageRow {
        span,
        bucket_ms,
        key_id: format!("key_{p:08x}"),
        workspace: format!("ws-{:02}", p % 50),
        model: format!("model-{:02}", p % 20),
        usage: Usage {
            requests: n,
            ok: n,
            throttled: 0,
            errors: 0,
            prompt_tokens: 120 * n,
            completion_tokens: 300 * n,
            cost_nanos: 1_000 * n,
        },
    }
}

fn fixture(path: &std::path::Path, now: i64) -> usize {
    let keep = Retention::default();
    let (minute_cut, _) = keep.cutoffs(now);
    let start = now - 30 * DAY;
    let mut conn = rusqlite::Connection::open(path).expect("open the ledger file");
    let tx = conn.transaction().expect("transaction");
    let mut written = 0;
    {
        let mut st = tx
            .prepare(
                "INSERT INTO usage_ledger (span, bucket_ms, key_id, workspace, model, requests, ok, \
                 throttled, errors, prompt_tokens, completion_tokens, cost_nanos) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .expect("prepare");
        let mut put = |r: UsageRow| {
            let u = r.usage;
            st.execute(rusqlite::params![
                r.span.as_str(),
                r.bucket_ms,
                r.key_id,
                r.workspace,
                r.model,
                u.requests as i64,
                u.ok as i64,
                u.throttled as i64,
                u.errors as i64,
                u.prompt_tokens as i64,
                u.completion_tokens as i64,
                u.cost_nanos as i64
            ])
            .expect("ledger write");
            written += 1;
        };
        let mut t = start - start.rem_euclid(HOUR);
        while t < minute_cut {
            (0..pairs()).for_each(|p| put(row(p, Span::Hour, t)));
            t += HOUR;
        }
        let mut t = minute_cut;
        while t < now {
            (0..pairs()).for_each(|p| put(row(p, Span::Minute, t)));
            t += MINUTE;
        }
    }
    // The rollups, as migration 11 backfills them (the last migration).
    let backfill = maasctl::store::migrations::MIGRATIONS
        .last()
        .expect("migrations")
        .portable;
    assert!(backfill.contains("'hour'") && backfill.contains("'day'"));
    tx.execute_batch(backfill).expect("rollups");
    tx.commit().expect("commit");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM usage_ledger", [], |r| r.get(0))
        .expect("count");
    assert!(rows as usize > written);
    rows as usize
}

fn report(c: &mut Criterion) {
    if pairs() == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let now = maasctl::domain::now_ms();
    let now = now - now.rem_euclid(MINUTE);
    let t0 = Instant::now();
    drop(SqliteStore::open(&path).expect("sqlite store (the schema)"));
    let rows = fixture(&path, now);
    let store = SqliteStore::open(&path).expect("sqlite store");
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "usage fixture: {} pairs, {rows} rows, {:.1} MB on disk (db + wal), written in {:.1}s",
        pairs(),
        size as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    // The reader asks at the last millisecond of the fixture's last minute:
    // `[t - 30 d, t)` holds every row of the month.
    let t = now - 1;
    let by = vec![Dim::Workspace, Dim::Model];
    let q = UsageQuery {
        since_ms: t - 30 * DAY,
        until_ms: t,
        by: by.clone(),
    };
    // The console's 30 days: 30 UTC days, today's to 00:00 tomorrow.
    let console = maasctl::tui::views::usage::query_for(Range::Month, &by, t);
    let step = maasctl::domain::usage::step_ms(q.since_ms, q.until_ms);
    // The plan before open ends (every end read exactly, as of a reader
    // whose clock is past the range).
    let exact = |q: &UsageQuery| {
        let rows = store
            .usage_summary(q.since_ms, q.until_ms, step, false)
            .unwrap();
        maasctl::domain::usage::report(&rows, q)
    };
    // The report made from the rows the plan reads (`Store::usage`, each
    // delta once), not summed by the store: timed once.
    let t1 = Instant::now();
    let every = maasctl::domain::usage::report(&store.usage(q.since_ms, q.until_ms).unwrap(), &q);
    eprintln!(
        "usage report from the planned rows (Store::usage + domain::usage::report), once: {:.0} ms",
        t1.elapsed().as_secs_f64() * 1e3
    );
    let check = maasctl::ops::usage::report_at(&store, &q, t).expect("report");
    assert_eq!(check, every, "the summed report is the report of every row");
    assert_eq!(exact(&q), every, "the exact plan's report is the same");
    let calendar = maasctl::ops::usage::report_at(&store, &console, t).expect("report");
    let calendar_rows = store.usage(console.since_ms, console.until_ms).unwrap();
    assert_eq!(
        calendar,
        maasctl::domain::usage::report(&calendar_rows, &console),
        "the console's 30 days, summed, are the report of every row"
    );
    eprintln!(
        "usage report: {} groups, {} requests in total; reader at {t} (UTC hour {} of its day)",
        check.groups.len(),
        check.total.requests,
        t.rem_euclid(DAY) / HOUR
    );
    let conn = rusqlite::Connection::open(&path).expect("a second connection");
    let before = summary_before(q.since_ms, q.until_ms, step);
    let now_sql =
        maasctl::store::mapping::usage_summary_query(q.since_ms, q.until_ms, step, true).sql;
    eprintln!(
        "rows out: {} as before, {} now",
        fetch_all(&conn, &before),
        fetch_all(&conn, &now_sql)
    );
    let mut g = c.benchmark_group("usage");
    g.sample_size(10);
    g.bench_function(
        "sql/30 days, as before (exact end, every row grouped)",
        |b| b.iter(|| black_box(fetch_all(&conn, black_box(&before)))),
    );
    g.bench_function("sql/30 days, now (open end, day rows not grouped)", |b| {
        b.iter(|| black_box(fetch_all(&conn, black_box(&now_sql))))
    });
    g.bench_function("report/30 days by workspace,model, exact end", |b| {
        b.iter(|| black_box(exact(black_box(&q))))
    });
    g.bench_function("report/30 days by workspace,model", |b| {
        b.iter(|| black_box(maasctl::ops::usage::report_at(&store, black_box(&q), t).unwrap()))
    });
    // The start's worst hour: 23 whole hours of the first day to read (a
    // rolling 30 days asked just after 00:00 UTC), 29 days and 23 hours.
    let day0 = t - t.rem_euclid(DAY);
    let worst = UsageQuery {
        since_ms: day0 - 29 * DAY + MINUTE,
        until_ms: t,
        by: by.clone(),
    };
    g.bench_function(
        "report/from 00:01 UTC 29 days ago (23 hours at the start)",
        |b| {
            b.iter(|| {
                black_box(maasctl::ops::usage::report_at(&store, black_box(&worst), t).unwrap())
            })
        },
    );
    g.bench_function("report/console 30 UTC days by workspace,model", |b| {
        b.iter(|| {
            black_box(maasctl::ops::usage::report_at(&store, black_box(&console), t).unwrap())
        })
    });
    g.finish();
}

/// The summary query as it was before open ends and ungrouped day rows
/// (commit aaacdbc): the exact plan's rows, all grouped per (key, model,
/// step), ordered.
fn summary_before(since: i64, until: i64, step: i64) -> String {
    let rows = maasctl::store::mapping::usage_query(since, until).sql;
    let from = rows.find(" FROM (").expect("a FROM") + " FROM ".len();
    let to = rows.rfind(" ORDER BY").expect("an ORDER BY");
    let sums = [
        "requests",
        "ok",
        "throttled",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cost_nanos",
    ]
    .map(|c| format!("CAST(SUM(\"{c}\") AS BIGINT) AS \"{c}\""))
    .join(", ");
    format!(
        "SELECT MIN(\"span\") AS \"span\", MIN(\"bucket_ms\") AS \"bucket_ms\", \"key_id\", \
         MIN(\"workspace\") AS \"workspace\", \"model\", {sums} FROM {} \
         GROUP BY \"key_id\", \"model\", \"bucket_ms\" - (\"bucket_ms\" % {step}) ORDER BY 2, 3, 5",
        &rows[from..to]
    )
}

/// Runs `sql` and reads every column of every row (as the store does);
/// the number of rows.
fn fetch_all(conn: &rusqlite::Connection, sql: &str) -> usize {
    let mut st = conn.prepare_cached(sql).expect("prepare");
    let mut rows = st.query([]).expect("query");
    let mut n = 0;
    while let Some(r) = rows.next().expect("row") {
        let texts: (String, String, String, String) = (
            r.get(0).unwrap(),
            r.get(2).unwrap(),
            r.get(3).unwrap(),
            r.get(4).unwrap(),
        );
        let ints: i64 =
            (5..12).map(|i| r.get::<_, i64>(i).unwrap()).sum::<i64>() + r.get::<_, i64>(1).unwrap();
        black_box((texts, ints));
        n += 1;
    }
    n
}

/// The budget tracker's tick (`gateway::budget::Tracker::tick`, every
/// 250 ms while any budget exists) with one budget (a workspace of one
/// key, one model) and `n` other ledger cells with usage not flushed yet
/// (keys of other workspaces, 20 models), on an empty SQLite ledger.
fn tracker(c: &mut Criterion) {
    use maasctl::domain::budget::{Budget, BudgetPeriod, BudgetSpec, BudgetUnit};
    use maasctl::domain::entities::RuleTarget;
    use maasctl::gateway::budget::{Gate, Tracker};
    use maasctl::gateway::telemetry::counters::RequestOutcome;
    use maasctl::gateway::telemetry::ledger::LedgerBook;
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("budget.db")).expect("sqlite store"));
    let budgets: Arc<[Budget]> = Arc::from(vec![Budget {
        id: "b1".into(),
        spec: BudgetSpec {
            target: RuleTarget::Workspace,
            subject: "budgeted".into(),
            unit: BudgetUnit::Tokens,
            amount: 1_000_000,
            period: BudgetPeriod::Day,
        },
    }]);
    let mut g = c.benchmark_group("budget");
    g.sample_size(20);
    for n in [0usize, 10_000, 100_000] {
        let book = Arc::new(LedgerBook::default());
        let used = |cells: &[Arc<maasctl::gateway::telemetry::ledger::UsageCell>]| {
            for cell in cells {
                cell.outcome(RequestOutcome::Success);
                cell.tokens(13, 29);
            }
        };
        used(&book.cells("model-00", &[("key_budgeted", "budgeted")]));
        let keys: Vec<(String, String)> = (0..n / 20)
            .map(|k| (format!("key_{k:08x}"), format!("ws-{:02}", k % 50)))
            .collect();
        let refs: Vec<(&str, &str)> = keys.iter().map(|(k, w)| (k.as_str(), w.as_str())).collect();
        for m in 0..20 {
            used(&book.cells(&format!("model-{m:02}"), &refs));
        }
        let mut tracker = Tracker::new(store.clone(), book.clone());
        let gate = Gate::default();
        rt.block_on(tracker.tick(&budgets, &[], &gate, true));
        g.bench_function(format!("tick/1 budget, {n} other cells"), |b| {
            b.iter(|| rt.block_on(tracker.tick(black_box(&budgets), &[], &gate, false)))
        });
    }
    g.finish();
}

criterion_group!(benches, report, tracker);
criterion_main!(benches);

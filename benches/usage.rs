//! The 30-day usage report (`ops::usage::report`, by workspace and model)
//! over a SQLite ledger holding a month of traffic (issue 12; target
//! < 100 ms).
//!
//! The fixture is what the default retention (`Retention::default()`:
//! minute rows for 7 days, hour rows up to 90) leaves of 1,000 active
//! (key, model) pairs busy every minute for 30 days: a minute row per pair
//! per minute for the last 7 days, an hour row per pair per hour for the 23
//! days before. Written once per run through the store's ledger API
//! (`Store::add_usage`, chunks of 100,000 rows, each one transaction) into
//! a temporary directory. Prints its row count and file size.
//!
//! MAASCTL_BENCH_USAGE_PAIRS changes the number of pairs (default 1,000).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use maasctl::domain::usage::{Dim, Retention, Span, Usage, UsageQuery, UsageRow};
use maasctl::store::Store;
use maasctl::store::sqlite::SqliteStore;

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

fn fixture(store: &SqliteStore, now: i64) -> usize {
    let keep = Retention::default();
    let (minute_cut, _) = keep.cutoffs(now);
    let start = now - 30 * DAY;
    let mut buf = Vec::with_capacity(100_000);
    let mut written = 0;
    let mut flush = |buf: &mut Vec<UsageRow>| {
        store.add_usage(buf).expect("ledger write");
        written += buf.len();
        buf.clear();
    };
    let mut t = start - start.rem_euclid(HOUR);
    while t < minute_cut {
        for p in 0..pairs() {
            buf.push(row(p, Span::Hour, t));
        }
        if buf.len() >= 100_000 {
            flush(&mut buf);
        }
        t += HOUR;
    }
    let mut t = minute_cut;
    while t < now {
        for p in 0..pairs() {
            buf.push(row(p, Span::Minute, t));
        }
        if buf.len() >= 100_000 {
            flush(&mut buf);
        }
        t += MINUTE;
    }
    flush(&mut buf);
    written
}

fn report(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).expect("sqlite store");
    let now = maasctl::domain::now_ms();
    let now = now - now.rem_euclid(MINUTE);
    let t0 = Instant::now();
    let rows = fixture(&store, now);
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
    let q = UsageQuery {
        since_ms: now - 30 * DAY,
        until_ms: now,
        by: vec![Dim::Workspace, Dim::Model],
    };
    // The report made from every ledger row, as before the store summed
    // them (`Store::usage`): timed once, it takes seconds.
    let t1 = Instant::now();
    let every = maasctl::domain::usage::report(&store.usage(q.since_ms, q.until_ms).unwrap(), &q);
    eprintln!(
        "usage report from every row (Store::usage + domain::usage::report), once: {:.0} ms",
        t1.elapsed().as_secs_f64() * 1e3
    );
    let check = maasctl::ops::usage::report(&store, &q).expect("report");
    assert_eq!(check, every, "the summed report is the report of every row");
    eprintln!(
        "usage report: {} groups, {} requests in total",
        check.groups.len(),
        check.total.requests
    );
    let mut g = c.benchmark_group("usage");
    g.sample_size(10);
    g.bench_function("report/30 days by workspace,model", |b| {
        b.iter(|| black_box(maasctl::ops::usage::report(&store, black_box(&q)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);

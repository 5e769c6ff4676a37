//! The usage ledger (docs/usage.md), on SQLite and on PostgreSQL: traffic
//! through real gateways against a mock upstream that reports known usage
//! ends up in the store's ledger exactly (requests, 200s, 429s, tokens),
//! across a gateway restart and with two gateways on one store at once;
//! every delta is written at minute, hour and day and a report over any
//! range reads it once, before and after aging and after the rollup
//! backfill (migration 11); the cost
//! comes from the marketplace entry's prices, which the CLI sets and
//! checks; `maasctl usage` reports it locally and through `--server`.

#[allow(dead_code)]
#[path = "store/backend.rs"]
mod backend;
mod common;
#[path = "support/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::{Backend, Kind, on_both};
use common::{Env, Serve};
use maasctl::demo::upstream::{MockConfig, MockUpstream};
use maasctl::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
use maasctl::domain::usage::{DAY_MS, HOUR_MS, MINUTE_MS, Retention, Span, Usage, UsageRow};
use maasctl::domain::*;
use maasctl::gateway::{Gateway, GatewayConfig, GatewayHandle};
use maasctl::store::Store;

const PROMPT: u64 = 13;
const COMPLETION: u64 = 29;
/// Requests a gateway admits per key before answering 429 (a local rule).
const LIMIT: u32 = 4;

fn by() -> Origin {
    Origin::user("tester", Channel::Cli)
}

/// Workspace `acme`, a key in it (its secret returned), model `m` on the
/// mock with a key rule of [`LIMIT`] requests per hour.
fn seed(store: &dyn Store, upstream: &str) -> String {
    let secret = generate_secret();
    let id = generate_key_id();
    let changes = vec![
        Change::AddWorkspace {
            name: "acme".into(),
            description: String::new(),
        },
        Change::CreateKey {
            id: id.clone(),
            workspace: "acme".into(),
            name: "k".into(),
            secret_hash: hash_secret(&secret),
            secret_hint: secret_hint(&secret),
        },
        Change::AddMarket(MarketEntry {
            name: "m".into(),
            provider: "Test".into(),
            tags: vec![],
            description: String::new(),
            published: true,
            input_price: Some(Price(0.27)),
            output_price: Some(Price(1.10)),
        }),
        Change::CreateModel(ModelSpec {
            name: "m".into(),
            cluster: "local".into(),
            model_id: "m-up".into(),
            endpoints: vec![Endpoint::new(upstream)],
            policy: Policy::RoundRobin,
            tags: vec![],
            fallbacks: vec![],
            completion_cap: None,
        }),
        Change::SetEnabled {
            name: "m".into(),
            enabled: true,
        },
        Change::AddRule {
            model: "m".into(),
            spec: RuleSpec {
                target: RuleTarget::ApiKey,
                workspace: "acme".into(),
                key_id: Some(id),
                limit: LIMIT,
                duration_secs: 3600,
                unit: RuleUnit::Requests,
            },
        },
    ];
    store.apply(changes, &by()).expect("seed applies");
    secret
}

fn gateway(store: &Arc<dyn Store>) -> GatewayHandle {
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        reload_poll: Duration::from_millis(50),
        report_interval: Duration::from_millis(200),
        stats_interval: Duration::from_millis(50),
        usage_flush: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    Gateway::start(cfg, store.clone()).expect("gateway starts")
}

/// What the client saw: (200s, 429s).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    ok: u64,
    throttled: u64,
}

async fn traffic(gw: &GatewayHandle, secret: &str, n: usize, seen: &mut Seen) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{}/v1/chat/completions", gw.local_addr());
    for _ in 0..n {
        let res = http
            .post(&url)
            .bearer_auth(secret)
            .json(
                &serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .expect("the gateway answers");
        match res.status().as_u16() {
            200 => seen.ok += 1,
            429 => seen.throttled += 1,
            s => panic!(
                "unexpected status {s}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
        let _ = res.bytes().await;
    }
}

/// The ledger's totals (all spans, all time).
fn totals(store: &dyn Store) -> (Usage, Vec<UsageRow>) {
    let rows = store.usage(0, i64::MAX).expect("ledger reads");
    let mut t = Usage::default();
    for r in &rows {
        t.add(&r.usage);
    }
    (t, rows)
}

fn expected(seen: Seen) -> Usage {
    Usage {
        requests: seen.ok + seen.throttled,
        ok: seen.ok,
        throttled: seen.throttled,
        errors: 0,
        prompt_tokens: seen.ok * PROMPT,
        completion_tokens: seen.ok * COMPLETION,
        // $0.27 and $1.10 per 1M tokens, in nano-dollars.
        cost_nanos: seen.ok * (PROMPT * 270 + COMPLETION * 1100),
    }
}

async fn wait_totals(store: &Arc<dyn Store>, want: Usage, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = store.clone();
        let (got, _) = tokio::task::spawn_blocking(move || totals(&*s))
            .await
            .unwrap();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: ledger {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both! {
fn the_ledger_adds_up_to_what_the_upstream_reported_across_restarts_and_replicas(b) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mock = MockUpstream::start(MockConfig {
            prompt_tokens: PROMPT,
            completion_tokens: COMPLETION,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let store = b.open();
        let secret = seed(&*store, &format!("{}/v1", mock.base_url()));
        let mut seen = Seen::default();

        // One gateway, then a clean shutdown: its last interval is flushed.
        let a = tokio::task::block_in_place(|| gateway(&store));
        traffic(&a, &secret, 7, &mut seen).await;
        a.shutdown().await;
        assert_eq!(seen, Seen { ok: 4, throttled: 3 });
        let (got, rows) = totals(&*store);
        assert_eq!(got, expected(seen), "after the first gateway stopped");
        // Read back over all time: whole days, so the day rollups.
        assert!(rows.iter().all(|r| r.workspace == "acme" && r.model == "m" && r.span == Span::Day));

        // A restart and a second replica at once, on the same store: the
        // periodic flush brings the ledger to what the client saw, and the
        // shutdown flush adds nothing twice.
        let (b1, b2) = tokio::task::block_in_place(|| (gateway(&store), gateway(&store)));
        traffic(&b1, &secret, 6, &mut seen).await;
        traffic(&b2, &secret, 5, &mut seen).await;
        assert_eq!(seen, Seen { ok: 12, throttled: 6 });
        wait_totals(&store, expected(seen), "two gateways flushing").await;
        b1.shutdown().await;
        b2.shutdown().await;
        assert_eq!(totals(&*store).0, expected(seen), "after both stopped");
        assert_eq!(mock.hits(), seen.ok, "every 200 reached the upstream once");
    });
}
}

fn row(span: Span, bucket_ms: i64, key: &str, n: u64) -> UsageRow {
    UsageRow {
        span,
        bucket_ms,
        key_id: key.into(),
        workspace: "acme".into(),
        model: "m".into(),
        usage: Usage {
            requests: n,
            ok: n,
            throttled: 0,
            errors: 0,
            prompt_tokens: 10 * n,
            completion_tokens: 20 * n,
            cost_nanos: 7 * n,
        },
    }
}

on_both! {
fn adding_writes_every_span_and_aging_deletes_the_finer_rows(b) {
    let store = b.open();
    let now = 400 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS;
    let old = now - 10 * DAY_MS; // past the 7 days of minutes
    let ancient = now - 100 * DAY_MS; // past the 90 days of hours
    let recent = now - 2 * MINUTE_MS;
    let write = vec![
        row(Span::Minute, old, "k1", 1),
        row(Span::Minute, old + MINUTE_MS, "k1", 2),
        row(Span::Minute, old, "k2", 4),
        row(Span::Minute, ancient, "k1", 8),
        row(Span::Minute, recent, "k1", 16),
    ];
    store.add_usage(&write).unwrap();
    // The same bucket again (another replica): added, not replaced.
    store.add_usage(&[row(Span::Minute, recent, "k1", 32)]).unwrap();
    let before = totals(&*store).0;
    assert_eq!(before.requests, 63);
    let count = || {
        b.raw_query(
            "SELECT span, COUNT(*) FROM usage_ledger GROUP BY span ORDER BY span",
            "SELECT span, COUNT(*) FROM usage_ledger GROUP BY span ORDER BY span",
        )
    };
    // Every delta is in its minute, its hour and its day.
    let written = count();
    store.compact_usage(now, &Retention::default()).unwrap();
    // Twice is the same as once.
    store.compact_usage(now, &Retention::default()).unwrap();
    let (after, _) = totals(&*store);
    assert_eq!(after, before, "aging keeps every count");
    assert_ne!(written, count(), "aging deleted rows");
    let hour = |t: i64| t - t.rem_euclid(HOUR_MS);
    let day = |t: i64| t - t.rem_euclid(DAY_MS);
    let shape = |since: i64, until: i64| -> Vec<(Span, i64, String, u64)> {
        store
            .usage(since, until)
            .unwrap()
            .iter()
            .map(|r| (r.span, r.bucket_ms, r.key_id.clone(), r.usage.requests))
            .collect()
    };
    // Minutes are kept for the last 7 days only, hours for 90, days for ever.
    assert_eq!(shape(recent, recent + MINUTE_MS), vec![(Span::Minute, recent, "k1".into(), 48)]);
    assert_eq!(shape(old, old + 2 * MINUTE_MS), vec![], "the minutes of 10 days ago are gone");
    assert_eq!(
        shape(hour(old), hour(old) + HOUR_MS),
        vec![(Span::Hour, hour(old), "k1".into(), 3), (Span::Hour, hour(old), "k2".into(), 4)]
    );
    assert_eq!(shape(hour(ancient), hour(ancient) + HOUR_MS), vec![]);
    assert_eq!(shape(day(ancient), day(ancient) + DAY_MS), vec![(Span::Day, day(ancient), "k1".into(), 8)]);
}
}

/// `rows` as the report reads them once aged: each at its minute, or at
/// its hour when its minute is before `minutes_before` (the end of a range
/// is then as precise as an hour), or at its day before `hours_before`.
fn as_aged(rows: &[UsageRow], minutes_before: i64, hours_before: i64) -> Vec<UsageRow> {
    rows.iter()
        .map(|r| {
            let mut r = r.clone();
            let at = if r.bucket_ms < hours_before {
                DAY_MS
            } else if r.bucket_ms < minutes_before {
                HOUR_MS
            } else {
                r.span.ms()
            };
            r.bucket_ms -= r.bucket_ms.rem_euclid(at.max(r.span.ms()));
            r
        })
        .collect()
}

/// Ranges with whole days, whole hours and minutes at either end, inside
/// one hour, across the minute retention, short (hour series) and long.
fn ranges(now: i64) -> Vec<(i64, i64)> {
    let d0 = now - now.rem_euclid(DAY_MS);
    vec![
        (now - 30 * DAY_MS, now),
        (d0 - 3 * DAY_MS, d0),
        (
            d0 - 9 * DAY_MS + 7 * MINUTE_MS,
            d0 - 2 * DAY_MS + 3 * HOUR_MS + 11 * MINUTE_MS,
        ),
        (
            now - 7 * DAY_MS - 90 * MINUTE_MS,
            now - 7 * DAY_MS + 20 * MINUTE_MS,
        ),
        (
            now - 8 * DAY_MS + 5 * MINUTE_MS,
            now - 8 * DAY_MS + 50 * MINUTE_MS,
        ),
        (
            now - 8 * DAY_MS - 13 * MINUTE_MS,
            now - 6 * DAY_MS - 13 * MINUTE_MS,
        ),
        (now - 2 * DAY_MS, now),
        (now - 36 * HOUR_MS + 1, now - 3 * MINUTE_MS),
        (now - 50 * MINUTE_MS, now - 10 * MINUTE_MS),
        (d0, d0 + DAY_MS),
        (now - 400 * DAY_MS, now + DAY_MS),
    ]
}

/// Every range's report from the store is the report of `expected`.
fn check_reports(store: &dyn Store, expected: &[UsageRow], now: i64) {
    use maasctl::domain::usage::{UsageQuery, parse_by, report};
    for (since, until) in ranges(now) {
        for dims in ["workspace,model", "key"] {
            let q = UsageQuery {
                since_ms: since,
                until_ms: until,
                by: parse_by(dims).unwrap(),
            };
            let got = maasctl::ops::usage::report(store, &q).unwrap();
            assert_eq!(got, report(expected, &q), "{since}..{until} by {dims}");
            let every = report(&store.usage(since, until).unwrap(), &q);
            assert_eq!(every, got, "every row of {since}..{until}");
        }
    }
    // Budgets' totals: this month before today, and today.
    let today = now - now.rem_euclid(DAY_MS);
    let since = today - 20 * DAY_MS;
    let got = store.usage_totals(since, today).unwrap();
    for (from, to) in [(since, today), (today, i64::MAX)] {
        let want: u64 = expected
            .iter()
            .filter(|r| r.bucket_ms >= from && r.bucket_ms < to)
            .map(|r| r.usage.tokens())
            .sum();
        let have: u64 = got
            .iter()
            .filter(|r| r.bucket_ms == from)
            .map(|r| r.usage.tokens())
            .sum();
        assert_eq!(have, want, "budget totals from {from}");
    }
}

/// Deltas every 37 minutes over the last 12 days, for 3 keys in 2
/// workspaces and 2 models.
fn deltas(now: i64) -> Vec<UsageRow> {
    let start = now - 12 * DAY_MS;
    (0..(12 * DAY_MS / (37 * MINUTE_MS)))
        .map(|i| {
            let t = start + i * 37 * MINUTE_MS;
            let mut r = row(
                Span::Minute,
                t - t.rem_euclid(MINUTE_MS),
                ["k1", "k2", "k3"][i as usize % 3],
                (i % 7 + 1) as u64,
            );
            r.model = ["m", "n"][i as usize % 2].into();
            r.workspace = if r.key_id == "k3" {
                "beta".into()
            } else {
                "acme".into()
            };
            r
        })
        .collect()
}

on_both! {
/// Each delta is written at three spans and read at one: a report over any
/// range, before and after aging, is the report of the raw deltas (aged
/// ones at their hour).
fn a_report_over_any_range_counts_each_delta_once(b) {
    let store = b.open();
    let now = 400 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS + 4321;
    let raw = deltas(now);
    store.add_usage(&raw).unwrap();
    check_reports(&*store, &raw, now);
    let keep = Retention::default();
    store.compact_usage(now, &keep).unwrap();
    let (minutes_before, hours_before) = keep.cutoffs(now);
    check_reports(&*store, &as_aged(&raw, minutes_before, hours_before), now);
    // Shorter retention: hours aged too, reads fall back to days.
    let short = Retention { minute_days: 2, hour_days: 5 };
    store.compact_usage(now, &short).unwrap();
    let (minutes_before, hours_before) = short.cutoffs(now);
    check_reports(&*store, &as_aged(&raw, minutes_before, hours_before), now);
}
}

/// The deltas of [`deltas`] and some at the very end: in the minute
/// `now` is in, the minute before, the first minute of its hour and of its
/// day (all dated at or before `now`'s minute, as a gateway dates them).
fn deltas_to_now(now: i64) -> Vec<UsageRow> {
    let mut rows = deltas(now);
    let minute = now - now.rem_euclid(MINUTE_MS);
    for (i, t) in [
        minute,
        minute - MINUTE_MS,
        now - now.rem_euclid(HOUR_MS),
        now - now.rem_euclid(DAY_MS) + MINUTE_MS,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = row(Span::Minute, t, ["k1", "k3"][i % 2], 100 + i as u64);
        r.workspace = if r.key_id == "k3" {
            "beta".into()
        } else {
            "acme".into()
        };
        rows.push(r);
    }
    rows
}

/// Ranges ending at `now` or later (an open end at `now`), and ranges
/// ending just before or at the start of `now`'s minute (not open: read
/// exactly, though rows after their end exist).
fn ranges_to_now(now: i64) -> Vec<(i64, i64, bool)> {
    let minute = now - now.rem_euclid(MINUTE_MS);
    let d0 = now - now.rem_euclid(DAY_MS);
    vec![
        (now - 30 * DAY_MS, now, true),
        (d0 - 29 * DAY_MS, d0 + DAY_MS, true),
        (now - 7 * DAY_MS - 13 * MINUTE_MS, now + 5 * MINUTE_MS, true),
        (now - 2 * DAY_MS, now, true),
        (now - 36 * HOUR_MS + 1, now, true),
        (now - 50 * MINUTE_MS, now, true),
        (d0 + 7 * MINUTE_MS, minute + 1, true),
        (minute, now, true),
        (now - 30 * DAY_MS, minute, false),
        (now - 2 * DAY_MS, minute - 1, false),
        (now - 50 * MINUTE_MS, minute, false),
        (d0 + 7 * MINUTE_MS, minute - MINUTE_MS, false),
    ]
}

/// Reports at `now` of [`ranges_to_now`] are the reports of `expected`.
fn check_reports_to_now(store: &dyn Store, expected: &[UsageRow], now: i64) {
    use maasctl::domain::usage::{UsageQuery, open_end, parse_by, report};
    for (since, until, open) in ranges_to_now(now) {
        assert_eq!(open_end(until, now), open, "{since}..{until} open at {now}");
        for dims in ["workspace,model", "key"] {
            let q = UsageQuery {
                since_ms: since,
                until_ms: until,
                by: parse_by(dims).unwrap(),
            };
            let got = maasctl::ops::usage::report_at(store, &q, now).unwrap();
            assert_eq!(
                got,
                report(expected, &q),
                "{since}..{until} by {dims} at {now}"
            );
            assert!(got.total.requests > 0, "{since}..{until} counts something");
        }
    }
}

on_both! {
/// A range ending now has an open end: its last hour or day is read from
/// its one row (docs/usage.md), and counts exactly what its minutes would,
/// with deltas in the last minute, hour and day; a range ending at or
/// before the current minute's start is read exactly, though later rows
/// exist. Before and after aging. A delta dated ahead of the reader's
/// clock (a replica whose clock is ahead) counts once, in the open end of
/// its hour only.
fn a_report_ending_now_reads_its_last_hour_or_day_once(b) {
    use maasctl::domain::usage::{UsageQuery, parse_by, report};
    let store = b.open();
    let now = 400 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS + 4321;
    let raw = deltas_to_now(now);
    store.add_usage(&raw).unwrap();
    check_reports_to_now(&*store, &raw, now);
    let keep = Retention::default();
    store.compact_usage(now, &keep).unwrap();
    let (minutes_before, hours_before) = keep.cutoffs(now);
    check_reports_to_now(&*store, &as_aged(&raw, minutes_before, hours_before), now);
    // A replica 2 minutes ahead: its delta is in the reader's future.
    let ahead = row(Span::Minute, now - now.rem_euclid(MINUTE_MS) + 2 * MINUTE_MS, "k1", 1000);
    store.add_usage(std::slice::from_ref(&ahead)).unwrap();
    let q = |since: i64, until: i64| UsageQuery { since_ms: since, until_ms: until, by: parse_by("key").unwrap() };
    let aged = as_aged(&raw, minutes_before, hours_before);
    for (since, until, open) in ranges_to_now(now) {
        let got = maasctl::ops::usage::report_at(&*store, &q(since, until), now).unwrap();
        let exact = report(&aged, &q(since, until)).total.requests;
        let same_step = maasctl::domain::usage::step_ms(since, until);
        let counted = open && ahead.bucket_ms - ahead.bucket_ms.rem_euclid(same_step) < until;
        let extra = if counted { ahead.usage.requests } else { 0 };
        assert_eq!(got.total.requests, exact + extra, "{since}..{until} with a delta ahead");
    }
}
}

on_both! {
/// A ledger of schema 10 (minute rows, and hour and day rows only where
/// the finer ones were aged out) is backfilled by migration 11: the
/// reports are the ones the old rows make.
fn the_rollup_migration_backfills_hours_and_days(b) {
    drop(b.open());
    let now = 400 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS;
    let (minutes_before, hours_before) = Retention { minute_days: 3, hour_days: 6 }.cutoffs(now);
    // The old compaction: minutes before the cut-off rolled into hours,
    // hours before theirs into days; a late minute row in an aged hour too.
    let mut old: Vec<UsageRow> = as_aged(&deltas(now), minutes_before, hours_before)
        .into_iter()
        .map(|mut r| {
            r.span = if r.bucket_ms < hours_before { Span::Day } else if r.bucket_ms < minutes_before { Span::Hour } else { Span::Minute };
            r
        })
        .collect();
    old.push(row(Span::Minute, minutes_before - 2 * HOUR_MS + 5 * MINUTE_MS, "k1", 3));
    let mut merged: std::collections::BTreeMap<(Span, i64, String, String), UsageRow> = Default::default();
    for r in &old {
        merged
            .entry((r.span, r.bucket_ms, r.key_id.clone(), r.model.clone()))
            .and_modify(|m| m.usage.add(&r.usage))
            .or_insert_with(|| r.clone());
    }
    let values: Vec<String> = merged
        .values()
        .map(|r| {
            let u = &r.usage;
            format!(
                "('{}', {}, '{}', '{}', '{}', {}, {}, {}, {}, {}, {}, {})",
                r.span.as_str(), r.bucket_ms, r.key_id, r.workspace, r.model,
                u.requests, u.ok, u.throttled, u.errors, u.prompt_tokens, u.completion_tokens, u.cost_nanos
            )
        })
        .collect();
    let insert = format!(
        "INSERT INTO usage_ledger (span, bucket_ms, key_id, workspace, model, requests, ok, throttled, errors, prompt_tokens, completion_tokens, cost_nanos) VALUES {};",
        values.join(", ")
    );
    b.raw_sql(&insert, &insert);
    b.set_schema_version(10);
    let store = b.open();
    assert_eq!(b.schema_version(), b.current_schema());
    check_reports(&*store, &old, now);
}
}

on_both! {
/// The store sums a report's rows per (key, model, step) before handing
/// them over (`Store::usage_summary`): the report is exactly the one made
/// from every row, for hour and day steps, with minute, hour and day rows,
/// buckets at both ends of the range and a key in two workspaces' models.
fn a_summed_report_is_the_report_of_every_row(b) {
    let store = b.open();
    let t0 = 400 * DAY_MS + 3 * HOUR_MS + 7 * MINUTE_MS;
    let mut rows = Vec::new();
    for i in 0..200i64 {
        let mut r = row(Span::Minute, t0 + i * 13 * MINUTE_MS, ["k1", "k2", "k3"][i as usize % 3], (i % 5 + 1) as u64);
        r.model = ["m", "n"][i as usize % 2].into();
        r.workspace = if r.key_id == "k3" { "beta".into() } else { "acme".into() };
        rows.push(r);
    }
    rows.push(row(Span::Hour, t0 - t0.rem_euclid(HOUR_MS) - 5 * HOUR_MS, "k1", 9));
    rows.push(row(Span::Day, t0 - t0.rem_euclid(DAY_MS) - 4 * DAY_MS, "k2", 11));
    store.add_usage(&rows).unwrap();
    let by = |d: &str| maasctl::domain::usage::parse_by(d).unwrap();
    for (since, until) in [
        (t0, t0 + 2 * DAY_MS),
        (t0 + 17 * MINUTE_MS, t0 + 20 * HOUR_MS),
        (t0 - 6 * DAY_MS, t0 + 30 * DAY_MS),
        (t0 - 3 * DAY_MS + 5 * MINUTE_MS, t0 + DAY_MS + 1),
    ] {
        for dims in ["workspace,model", "key", "model,key,workspace", "workspace"] {
            let q = maasctl::domain::usage::UsageQuery { since_ms: since, until_ms: until, by: by(dims) };
            let summed = maasctl::ops::usage::report(&*store, &q).unwrap();
            let every = maasctl::domain::usage::report(&store.usage(since, until).unwrap(), &q);
            assert_eq!(summed, every, "{since}..{until} by {dims}");
            assert!(summed.total.requests > 0);
        }
    }
}
}

on_both! {
fn prices_are_set_edited_and_checked_naming_the_field(b) {
    let env = &b.env;
    env.ok(&["market", "add", "priced", "--provider", "P", "--input-price", "0.27", "--output-price", "1.10"]);
    let e = env.json(&["market", "list"]);
    let priced = e.as_array().unwrap().iter().find(|e| e["name"] == "priced").unwrap();
    assert_eq!((priced["input_price"].as_f64(), priced["output_price"].as_f64()), (Some(0.27), Some(1.10)));
    env.ok(&["market", "edit", "priced", "--output-price", "2.5", "--input-price", "none"]);
    let m = b.open().load().unwrap().market["priced"].clone();
    assert_eq!((m.input_price, m.output_price), (None, Some(Price(2.5))));
    let table = env.ok(&["market", "list"]);
    assert!(table.contains("OUT $/1M") && table.contains("2.5"), "{table}");
    for (flag, bad) in [("--input-price", "-1"), ("--output-price", "inf"), ("--input-price", "cheap")] {
        let out = env.run(&["market", "edit", "priced", flag, bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
        assert!(err.contains(flag), "{flag} {bad}: {err}");
    }
    // A file is checked by the registry's rules, which name the field.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, "market:\n  - name: neg\n    provider: P\n    input_price: -0.5\n").unwrap();
    let err = env.fails(&["apply", "-f", file.to_str().unwrap()]);
    assert!(err.contains("input_price") && err.contains("≥ 0"), "{err}");
    // The default catalog carries list prices.
    let v3 = b.open().load().unwrap().market["DeepSeek-V3"].clone();
    assert_eq!((v3.input_price, v3.output_price), (Some(Price(0.27)), Some(Price(1.10))));
}
}

fn ledger_row(
    bucket_ms: i64,
    ws: &str,
    key: &str,
    model: &str,
    ok: u64,
    throttled: u64,
) -> UsageRow {
    UsageRow {
        span: Span::Minute,
        bucket_ms: bucket_ms - bucket_ms.rem_euclid(MINUTE_MS),
        key_id: key.into(),
        workspace: ws.into(),
        model: model.into(),
        usage: Usage {
            requests: ok + throttled,
            ok,
            throttled,
            errors: 0,
            prompt_tokens: ok * 100,
            completion_tokens: ok * 10,
            cost_nanos: ok * 1_000_000,
        },
    }
}

on_both! {
fn usage_reports_group_and_total_locally_and_through_the_server(b) {
    let store = b.open();
    let now = now_ms();
    store
        .add_usage(&[
            ledger_row(now - HOUR_MS, "acme", "key_a1", "m1", 3, 1),
            ledger_row(now - 2 * HOUR_MS, "acme", "key_a2", "m1", 2, 0),
            ledger_row(now - 3 * HOUR_MS, "acme", "key_a1", "m2", 1, 0),
            ledger_row(now - 5 * HOUR_MS, "beta", "key_b1", "m1", 4, 2),
            // Out of a 1-day range, in a 7-day one.
            ledger_row(now - 3 * DAY_MS, "beta", "key_b1", "m2", 10, 0),
        ])
        .unwrap();
    drop(store);
    let env = &b.env;
    let j = env.json(&["usage", "--since", "1d", "--by", "workspace,model"]);
    let groups: Vec<(String, u64, u64, u64)> = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (
            format!("{}/{}", g["keys"][0].as_str().unwrap(), g["keys"][1].as_str().unwrap()),
            g["ok"].as_u64().unwrap(),
            g["throttled"].as_u64().unwrap(),
            g["prompt_tokens"].as_u64().unwrap() + g["completion_tokens"].as_u64().unwrap(),
        ))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("acme/m1".into(), 5, 1, 550),
            ("beta/m1".into(), 4, 2, 440),
            ("acme/m2".into(), 1, 0, 110),
        ]
    );
    assert_eq!((j["total"]["requests"].as_u64(), j["total"]["cost_nanos"].as_u64()), (Some(13), Some(10_000_000)));
    assert_eq!(j["series"].as_array().unwrap().len(), 25, "hourly points over a day (both ends' hours)");

    let table = env.ok(&["usage", "--since", "7d", "--by", "key"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KEY") && lines[0].contains("REQUESTS") && lines[0].contains("COST"), "{table}");
    assert!(lines[1].starts_with("key_b1"), "most tokens first: {table}");
    let total = lines.last().unwrap();
    assert!(total.starts_with("TOTAL") && total.contains(" 23 ") && total.contains("$0.0200"), "{table}");

    let csv = env.ok(&["usage", "--since", "7d", "--until", "2d", "--by", "model", "-o", "csv"]);
    assert_eq!(
        csv,
        "model,requests,ok,throttled,errors,prompt,completion,tokens,cost_usd\n\
         m2,10,10,0,0,1000,100,1100,0.010000000\n\
         TOTAL,10,10,0,0,1000,100,1100,0.010000000\n"
    );

    for (args, flag) in [
        (vec!["usage", "--by", "team"], "--by"),
        (vec!["usage", "--since", "7"], "--since"),
        (vec!["usage", "--since", "1d", "--until", "2d"], "--until"),
    ] {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(flag), "{args:?}: {err}");
    }

    // The same report through a server's admin API.
    let serve_env = Env::new()
        .var("MAASCTL_STORE", &b.url())
        .var("MAASCTL_ADMIN_TOKEN", "usage-test-token-1234");
    let serve = Serve::start(&serve_env, &["--admin-listen", "127.0.0.1:0"]);
    let remote = Env::new()
        .var("MAASCTL_SERVER", &serve.admin())
        .var("MAASCTL_ADMIN_TOKEN", "usage-test-token-1234");
    let r = remote.json(&["usage", "--since", "1d", "--by", "workspace,model"]);
    assert_eq!(r["groups"], j["groups"]);
    assert_eq!(r["total"], j["total"]);
    let err = remote.fails(&["usage", "--since", "1d", "--until", "3d"]);
    assert!(err.contains("--until"), "{err}");
    drop(serve);
}
}

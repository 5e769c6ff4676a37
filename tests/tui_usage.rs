//! The console's usage data path (issue 12): `Client::usage` reads the same
//! report as `maasctl usage` (ops::usage::report) from the store's ledger.

use std::sync::Arc;

use maasctl::client::Client;
use maasctl::client::in_process::InProcessClient;
use maasctl::domain::usage::{Dim, Span, Usage, UsageQuery, UsageRow};
use maasctl::domain::{Channel, Origin};
use maasctl::store::{SqliteStore, Store};

const HOUR: i64 = 3_600_000;

fn row(bucket_ms: i64, key: &str, ws: &str, model: &str, prompt: u64, done: u64) -> UsageRow {
    UsageRow {
        span: Span::Hour,
        bucket_ms,
        key_id: key.into(),
        workspace: ws.into(),
        model: model.into(),
        usage: Usage {
            requests: 2,
            ok: 1,
            throttled: 1,
            errors: 0,
            prompt_tokens: prompt,
            completion_tokens: done,
            cost_nanos: 1_000,
        },
    }
}

#[tokio::test]
async fn in_process_client_reports_the_ledger() {
    let dir = std::env::temp_dir().join(format!("maasctl-tui-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    let base = 1_000 * HOUR;
    store
        .add_usage(&[
            row(base, "k1", "team-a", "m1", 10, 5),
            row(base + HOUR, "k2", "team-b", "m1", 100, 50),
        ])
        .unwrap();
    let origin = Origin::user("tester", Channel::Console);
    let client = InProcessClient::start(store, None, origin).await.unwrap();
    let report = client
        .usage(UsageQuery {
            since_ms: base,
            until_ms: base + 2 * HOUR,
            by: vec![Dim::Workspace],
        })
        .await
        .unwrap();
    assert_eq!(report.groups.len(), 2);
    assert_eq!(report.groups[0].keys, vec!["team-b".to_string()]);
    assert_eq!(report.total.requests, 4);
    assert_eq!(report.total.tokens(), 165);
    assert_eq!(report.series.iter().map(|p| p.tokens).sum::<u64>(), 165);
    // A bad range is refused naming the field.
    let err = client
        .usage(UsageQuery {
            since_ms: base,
            until_ms: base,
            by: vec![Dim::Workspace],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("until"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

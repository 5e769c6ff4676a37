//! `maasctl usage`: the usage ledger grouped by workspace, key and/or model
//! over a range (docs/usage.md), as a table with a totals row, JSON or CSV;
//! locally or through `--server` (`GET /admin/v1/usage`).

use clap::Args;

use super::output::{Table, print_out};
use super::{CliError, CliResult, Ctx, Output};
use crate::domain::now_ms;
use crate::domain::usage::{Usage, UsageQuery, UsageReport, parse_by, parse_time};

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Start of the range: a duration ago (30m, 12h, 7d), now, or Unix ms.
    #[arg(long, default_value = "7d", value_name = "TIME")]
    since: String,
    /// End of the range (exclusive), same forms as --since.
    #[arg(long, default_value = "now", value_name = "TIME")]
    until: String,
    /// What to group by: workspace, key, model, comma-separated.
    #[arg(long, default_value = "workspace,model", value_name = "DIMS")]
    by: String,
}

/// The query `--since/--until/--by` ask for, at `now_ms`.
fn query(a: &UsageArgs, now_ms: i64) -> CliResult<UsageQuery> {
    let since_ms = parse_time(&a.since, now_ms).map_err(|e| CliError(format!("--since: {e}")))?;
    let until_ms = parse_time(&a.until, now_ms).map_err(|e| CliError(format!("--until: {e}")))?;
    if until_ms <= since_ms {
        return Err(CliError(format!(
            "--until: must be after --since ({} is not after {})",
            a.until, a.since
        )));
    }
    let by = parse_by(&a.by).map_err(|e| CliError(format!("--by: {e}")))?;
    Ok(UsageQuery {
        since_ms,
        until_ms,
        by,
    })
}

pub fn run(ctx: &Ctx, a: UsageArgs) -> CliResult {
    let q = query(&a, now_ms())?;
    let report = ctx.backend().usage(&q)?;
    match ctx.output {
        Output::Csv => print_out(&csv(&report)),
        _ => ctx.emit(&report, || table(&report)),
    }
}

/// Dollars with 4 decimals (fractions of a cent show).
pub fn dollars(nanos: u64) -> String {
    format!("${:.4}", nanos as f64 / 1e9)
}

const COUNTS: [&str; 8] = [
    "REQUESTS",
    "2XX",
    "429",
    "ERRORS",
    "PROMPT",
    "COMPLETION",
    "TOKENS",
    "COST",
];

fn counts(u: &Usage, cost: String) -> Vec<String> {
    vec![
        u.requests.to_string(),
        u.ok.to_string(),
        u.throttled.to_string(),
        u.errors.to_string(),
        u.prompt_tokens.to_string(),
        u.completion_tokens.to_string(),
        u.tokens().to_string(),
        cost,
    ]
}

fn header(r: &UsageReport) -> Vec<String> {
    r.by.iter()
        .map(|d| d.as_str().to_uppercase())
        .chain(COUNTS.iter().map(|c| c.to_string()))
        .collect()
}

/// Rows for people, then `TOTAL`.
fn table(r: &UsageReport) -> String {
    let mut t = Table::with_header(header(r));
    for g in &r.groups {
        let mut cells = g.keys.clone();
        cells.extend(counts(&g.usage, dollars(g.usage.cost_nanos)));
        t.push(cells);
    }
    let mut total = vec!["TOTAL".to_string()];
    total.extend(std::iter::repeat_n(String::new(), r.by.len() - 1));
    total.extend(counts(&r.total, dollars(r.total.cost_nanos)));
    t.push(total);
    t.render()
}

/// One line per group, then `TOTAL`; cost in USD without the `$`.
fn csv(r: &UsageReport) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let line = |cells: Vec<String>| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    let usd = |n: u64| format!("{:.9}", n as f64 / 1e9);
    let mut out = String::new();
    let head: Vec<String> = header(r)
        .into_iter()
        .map(|h| match h.as_str() {
            "COST" => "cost_usd".into(),
            "2XX" => "ok".into(),
            "429" => "throttled".into(),
            h => h.to_lowercase(),
        })
        .collect();
    out.push_str(&line(head));
    out.push('\n');
    for g in &r.groups {
        let mut cells = g.keys.clone();
        cells.extend(counts(&g.usage, usd(g.usage.cost_nanos)));
        out.push_str(&line(cells));
        out.push('\n');
    }
    let mut total = vec!["TOTAL".to_string()];
    total.extend(std::iter::repeat_n(String::new(), r.by.len() - 1));
    total.extend(counts(&r.total, usd(r.total.cost_nanos)));
    out.push_str(&line(total));
    out.push('\n');
    out
}

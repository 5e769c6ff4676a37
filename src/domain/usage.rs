//! The usage ledger (docs/usage.md): what each key used of each model, per
//! minute, hour and UTC day (every delta is added at the three spans; aging
//! deletes the finer rows). Gateways add their deltas; rows of several
//! gateways for the same bucket add up.

use serde::{Deserialize, Serialize};

/// One minute, one hour, one day, in Unix milliseconds.
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// How long a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Span {
    Minute,
    Hour,
    Day,
}

impl Span {
    pub fn as_str(self) -> &'static str {
        match self {
            Span::Minute => "minute",
            Span::Hour => "hour",
            Span::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Span::Minute),
            "hour" => Some(Span::Hour),
            "day" => Some(Span::Day),
            _ => None,
        }
    }

    pub fn ms(self) -> i64 {
        match self {
            Span::Minute => MINUTE_MS,
            Span::Hour => HOUR_MS,
            Span::Day => DAY_MS,
        }
    }
}

/// What a key used of a model in one bucket (or, as a delta, since the last
/// flush).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Requests that reached routing (their key and model known), however
    /// they ended.
    pub requests: u64,
    /// Answered 2xx by the upstream.
    pub ok: u64,
    /// Refused by a rate-limit rule (429).
    pub throttled: u64,
    /// Ended in an error after routing (upstream 4xx/5xx, unreachable,
    /// too large, …); cancelled requests are in `requests` only.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Cost in nano-dollars (1e-9 USD), from the model's market prices at
    /// flush time; 0 when the entry has no prices.
    pub cost_nanos: u64,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    pub fn add(&mut self, o: &Usage) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.throttled += o.throttled;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost_nanos += o.cost_nanos;
    }

    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// Cost in dollars.
    pub fn cost_usd(&self) -> f64 {
        self.cost_nanos as f64 / 1e9
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub span: Span,
    /// Start of the bucket (Unix ms, a multiple of the span's length).
    pub bucket_ms: i64,
    pub key_id: String,
    /// The key's workspace (a key never moves between workspaces).
    pub workspace: String,
    pub model: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// How long each granularity is kept (docs/usage.md, "Retention").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Minute rows older than this many days are deleted (their hours stay).
    pub minute_days: u32,
    /// Hour rows older than this many days are deleted (their days are kept).
    pub hour_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            minute_days: 7,
            hour_days: 90,
        }
    }
}

impl Retention {
    /// Where aging cuts at `now_ms`: minute rows before the first cut-off
    /// and hour rows before the second are deleted. Both are aligned to the
    /// coarser bucket, so an hour keeps all its minutes or none.
    pub fn cutoffs(&self, now_ms: i64) -> (i64, i64) {
        let minutes = now_ms - i64::from(self.minute_days) * DAY_MS;
        let hours = now_ms - i64::from(self.hour_days.max(self.minute_days)) * DAY_MS;
        (floor(minutes, HOUR_MS), floor(hours, DAY_MS))
    }
}

/// `t` rounded down to a multiple of `step`.
pub fn floor(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

/// One part of a report's range, read at one span (docs/usage.md, "How a
/// report reads the ledger"): the rows of `span` whose bucket starts in
/// `[from_ms, until_ms)`. With `unless_finer`, only when the finer span
/// has no row in `[from_ms, from_ms + span)` (it was aged out there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub span: Span,
    pub from_ms: i64,
    pub until_ms: i64,
    pub unless_finer: Option<Span>,
}

impl Span {
    /// The next finer span (none under a minute).
    pub fn finer(self) -> Option<Span> {
        match self {
            Span::Minute => None,
            Span::Hour => Some(Span::Minute),
            Span::Day => Some(Span::Hour),
        }
    }
}

/// `t` rounded up to a multiple of `step` (saturating).
fn ceil(t: i64, step: i64) -> i64 {
    let f = floor(t, step);
    if f == t { t } else { f.saturating_add(step) }
}

/// Whether a range ending at `until_ms` has an *open end* at `now_ms`
/// (the reader's clock): no delta can be dated at or after `until_ms`, so
/// the hour and day rows that start before it hold nothing later.
///
/// A gateway dates a delta by the minute its flush interval began in, on
/// its own clock, so no minute bucket is later than `floor(now, minute)`:
/// an `until_ms` past that minute's start is open. A replica whose clock
/// runs `s` ahead of the reader's may have dated deltas up to `s` past
/// `until_ms`; a report with an open end counts those (once, in the
/// coarse row of the hour or day `until_ms` is in) where an exact one
/// would count them only once its `until` passes them (docs/usage.md).
pub fn open_end(until_ms: i64, now_ms: i64) -> bool {
    until_ms > floor(now_ms, MINUTE_MS)
}

/// How to read `[since_ms, until_ms)` so each delta counts once (every
/// delta is in a minute, an hour and a day row): day rows for the whole
/// UTC days inside, hour rows for the whole hours of the rest, minute rows
/// for what is left at the ends. Never coarser than the series step
/// ([`step_ms`]: hour rows for ranges up to 2 days). Where the finer rows
/// were aged out, a bucket of the coarser span that starts in a piece is
/// read instead (so past the minute retention an end is an hour).
///
/// A range with an `open` end (the caller knows nothing is dated at or
/// after `until_ms`: [`open_end`]) is read as if it ended at the next edge
/// of its series step: the hour or UTC day `until_ms` is in is read from
/// its one row (which holds every delta written so far) instead of its
/// minutes and hours. Otherwise (a range ending in the past) the range is
/// read exactly.
pub fn plan(since_ms: i64, until_ms: i64, open: bool) -> Vec<Piece> {
    let top = if step_ms(since_ms, until_ms) == HOUR_MS {
        Span::Hour
    } else {
        Span::Day
    };
    let end = if open {
        ceil(until_ms, top.ms())
    } else {
        until_ms
    };
    let mut out = Vec::new();
    cover(since_ms, end, top, &mut out);
    if out.is_empty() {
        out.push(Piece {
            span: Span::Minute,
            from_ms: since_ms,
            until_ms: since_ms,
            unless_finer: None,
        });
    }
    out
}

fn cover(a: i64, b: i64, span: Span, out: &mut Vec<Piece>) {
    if a >= b {
        return;
    }
    let Some(finer) = span.finer() else {
        push(Span::Minute, a, b, out);
        return;
    };
    let (first, last) = (ceil(a, span.ms()), floor(b, span.ms()));
    if first < last {
        cover(a, first, finer, out);
        push(span, first, last, out);
        cover(last, b, finer, out);
    } else {
        cover(a, b, finer, out);
    }
}

/// The piece, and the coarser buckets starting in it that stand for it
/// where its rows were aged out.
fn push(span: Span, a: i64, b: i64, out: &mut Vec<Piece>) {
    out.push(Piece {
        span,
        from_ms: a,
        until_ms: b,
        unless_finer: None,
    });
    for coarse in [Span::Hour, Span::Day].into_iter().filter(|c| *c > span) {
        let mut t = ceil(a, coarse.ms());
        while t < b && out.len() < 64 {
            out.push(Piece {
                span: coarse,
                from_ms: t,
                until_ms: t.saturating_add(1),
                unless_finer: coarse.finer(),
            });
            t = t.saturating_add(coarse.ms());
        }
    }
}

/// A model's list prices, in micro-dollars per million tokens (so $0.27
/// per 1M tokens is 270_000): integers keep costs exact and comparable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    pub input_micros_per_m: u64,
    pub output_micros_per_m: u64,
}

impl Prices {
    /// The cost of `prompt` input and `completion` output tokens, in
    /// nano-dollars (rounded down), saturating at `u64::MAX`.
    pub fn cost_nanos(&self, prompt: u64, completion: u64) -> u64 {
        let n = u128::from(prompt) * u128::from(self.input_micros_per_m)
            + u128::from(completion) * u128::from(self.output_micros_per_m);
        u64::try_from(n / 1000).unwrap_or(u64::MAX)
    }
}

/// What a usage report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dim {
    Workspace,
    Key,
    Model,
}

impl Dim {
    pub const ALL: [Dim; 3] = [Dim::Workspace, Dim::Key, Dim::Model];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Workspace => "workspace",
            Dim::Key => "key",
            Dim::Model => "model",
        }
    }

    fn of(self, r: &UsageRow) -> &str {
        match self {
            Dim::Workspace => &r.workspace,
            Dim::Key => &r.key_id,
            Dim::Model => &r.model,
        }
    }
}

/// `workspace,model` → the dimensions, in order (none repeated).
pub fn parse_by(s: &str) -> Result<Vec<Dim>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d = Dim::ALL
            .into_iter()
            .find(|d| d.as_str() == part)
            .ok_or_else(|| format!("'{part}' is not workspace, key or model"))?;
        if out.contains(&d) {
            return Err(format!("'{part}' is given twice"));
        }
        out.push(d);
    }
    if out.is_empty() {
        return Err("name at least one of workspace, key, model".into());
    }
    Ok(out)
}

/// A point in time: `now`, a duration ago (`90s`, `30m`, `12h`, `7d`), or
/// Unix milliseconds.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && t.len() >= 10 {
        return t.parse().map_err(|_| format!("'{s}' is too large"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        format!("'{s}' is not a time; use now, a duration ago (30m, 12h, 7d) or Unix ms")
    })?;
    let step = match unit {
        "s" => 1_000,
        "m" => MINUTE_MS,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        "" => {
            return Err(format!(
                "'{s}' has no unit; use s, m, h or d (e.g. 7d), now, or Unix ms"
            ));
        }
        other => {
            return Err(format!(
                "'{s}': '{other}' is not a unit; use s, m, h or d (e.g. 7d), now, or Unix ms"
            ));
        }
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(step)))
}

/// What to report: rows whose bucket starts in `[since_ms, until_ms)`,
/// grouped by `by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: Vec<Dim>,
}

/// One group of a report: its values of the query's dimensions, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageGroup {
    pub keys: Vec<String>,
    #[serde(flatten)]
    pub usage: Usage,
}

/// Tokens and cost of one step of the report's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub bucket_ms: i64,
    pub tokens: u64,
    pub cost_nanos: u64,
}

/// A usage report: groups (most tokens first), the total, and tokens over
/// time (hourly for ranges up to 2 days, daily beyond).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: Vec<Dim>,
    pub groups: Vec<UsageGroup>,
    pub total: Usage,
    pub step_ms: i64,
    pub series: Vec<SeriesPoint>,
}

/// The report `q` asks for, from the ledger rows of its range.
/// The series step of a report over `[since_ms, until_ms)`: an hour for
/// ranges up to 2 days, a day beyond.
pub fn step_ms(since_ms: i64, until_ms: i64) -> i64 {
    if until_ms - since_ms <= 2 * DAY_MS {
        HOUR_MS
    } else {
        DAY_MS
    }
}

pub fn report(rows: &[UsageRow], q: &UsageQuery) -> UsageReport {
    let mut groups: std::collections::BTreeMap<Vec<String>, Usage> = Default::default();
    let step_ms = step_ms(q.since_ms, q.until_ms);
    let first = floor(q.since_ms, step_ms);
    let steps = ((q.until_ms - first).max(0) + step_ms - 1) / step_ms;
    let mut series: Vec<SeriesPoint> = (0..steps.min(10_000))
        .map(|i| SeriesPoint {
            bucket_ms: first + i * step_ms,
            tokens: 0,
            cost_nanos: 0,
        })
        .collect();
    let mut total = Usage::default();
    for r in rows
        .iter()
        .filter(|r| r.bucket_ms >= q.since_ms && r.bucket_ms < q.until_ms)
    {
        let key: Vec<String> = q.by.iter().map(|d| d.of(r).to_string()).collect();
        groups.entry(key).or_default().add(&r.usage);
        total.add(&r.usage);
        let i = usize::try_from((r.bucket_ms - first) / step_ms).unwrap_or(usize::MAX);
        if let Some(p) = series.get_mut(i) {
            p.tokens += r.usage.tokens();
            p.cost_nanos += r.usage.cost_nanos;
        }
    }
    let mut groups: Vec<UsageGroup> = groups
        .into_iter()
        .map(|(keys, usage)| UsageGroup { keys, usage })
        .collect();
    groups.sort_by(|a, b| {
        b.usage
            .tokens()
            .cmp(&a.usage.tokens())
            .then(b.usage.requests.cmp(&a.usage.requests))
            .then(a.keys.cmp(&b.keys))
    });
    UsageReport {
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        by: q.by.clone(),
        groups,
        total,
        step_ms,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket_ms: i64, ws: &str, key: &str, model: &str, tokens: u64) -> UsageRow {
        UsageRow {
            span: Span::Minute,
            bucket_ms,
            key_id: key.into(),
            workspace: ws.into(),
            model: model.into(),
            usage: Usage {
                requests: 1,
                ok: 1,
                prompt_tokens: tokens,
                cost_nanos: tokens * 10,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn reports_group_total_and_chart_the_range() {
        let now = 100 * DAY_MS;
        let rows = vec![
            row(now - HOUR_MS, "a", "k1", "m1", 5),
            row(now - HOUR_MS, "a", "k2", "m1", 7),
            row(now - 30 * MINUTE_MS, "b", "k3", "m2", 100),
            row(now - 3 * DAY_MS, "a", "k1", "m1", 1000),
        ];
        let q = UsageQuery {
            since_ms: parse_time("1d", now).unwrap(),
            until_ms: now,
            by: parse_by("workspace,model").unwrap(),
        };
        let r = report(&rows, &q);
        let g: Vec<(Vec<String>, u64)> = r
            .groups
            .iter()
            .map(|g| (g.keys.clone(), g.usage.tokens()))
            .collect();
        assert_eq!(
            g,
            vec![
                (vec!["b".to_string(), "m2".to_string()], 100),
                (vec!["a".to_string(), "m1".to_string()], 12)
            ]
        );
        assert_eq!(
            (r.total.tokens(), r.total.requests, r.total.cost_nanos),
            (112, 3, 1120)
        );
        assert_eq!((r.step_ms, r.series.len()), (HOUR_MS, 24));
        assert_eq!(r.series[23].tokens, 112);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * DAY_MS);
        assert_eq!(
            parse_time("7", now).unwrap_err(),
            "'7' has no unit; use s, m, h or d (e.g. 7d), now, or Unix ms"
        );
        assert_eq!(
            parse_time("7x", now).unwrap_err(),
            "'7x': 'x' is not a unit; use s, m, h or d (e.g. 7d), now, or Unix ms"
        );
        assert!(parse_by("team").unwrap_err().contains("'team'"));
        assert!(parse_by("key,key").is_err());
    }

    /// The pieces of a plan as (span, from, until), without the stand-ins
    /// for aged rows.
    fn pieces(since: i64, until: i64, open: bool) -> Vec<(Span, i64, i64)> {
        plan(since, until, open)
            .into_iter()
            .filter(|p| p.unless_finer.is_none())
            .map(|p| (p.span, p.from_ms, p.until_ms))
            .collect()
    }

    #[test]
    fn an_open_end_is_read_from_its_hour_or_day_row() {
        let now = 400 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS + 4321;
        let (d0, h0, m0) = (
            floor(now, DAY_MS),
            floor(now, HOUR_MS),
            floor(now, MINUTE_MS),
        );
        assert!(open_end(now, now) && open_end(m0 + 1, now));
        assert!(!open_end(m0, now) && !open_end(now - MINUTE_MS, now));
        let since = now - 30 * DAY_MS;
        let exact = pieces(since, now, false);
        assert_eq!(
            exact[exact.len() - 2..],
            [(Span::Hour, d0, h0), (Span::Minute, h0, now)]
        );
        let open = pieces(since, now, true);
        assert_eq!(
            open.last(),
            Some(&(Span::Day, d0 - 29 * DAY_MS, d0 + DAY_MS))
        );
        assert_eq!(open[..open.len() - 1], exact[..exact.len() - 3]);
        // An hour series (up to 2 days) ends on the current hour's row.
        let open = pieces(now - 2 * DAY_MS, now, true);
        assert_eq!(
            open.last(),
            Some(&(Span::Hour, h0 - 47 * HOUR_MS, h0 + HOUR_MS))
        );
        // Within one hour, minutes up to its end (none is later than now).
        assert_eq!(
            pieces(m0 - 5 * MINUTE_MS, now, true),
            [(Span::Minute, m0 - 5 * MINUTE_MS, h0 + HOUR_MS)]
        );
        // A range ending on a day edge is the same either way.
        assert_eq!(
            pieces(d0 - 9 * DAY_MS, d0, true),
            pieces(d0 - 9 * DAY_MS, d0, false)
        );
    }
}

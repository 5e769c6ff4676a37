//! Budgets (issue 12, docs/usage.md "Budgets"): a token or cost allowance
//! per workspace or API key per UTC day or UTC month. Over it, the gateway
//! answers 429 `insufficient_quota` until the period resets.
//!
//! The entity is here with its shape checks, the period arithmetic (UTC
//! calendar days and months, no time-zone database) and what has been
//! spent, summed from usage-ledger rows. No I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::entities::RuleTarget;
use super::error::FieldError;
use super::limits;
use super::usage::UsageRow;

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetUnit {
    /// Prompt + completion tokens.
    Tokens,
    /// Cost in US dollars, at the marketplace prices (the ledger's
    /// `cost_nanos`); amounts are kept in nano-dollars.
    Usd,
}

impl BudgetUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetUnit::Tokens => "tokens",
            BudgetUnit::Usd => "usd",
        }
    }

    /// `1000 tokens`, `$12.50`.
    pub fn show(self, amount: u64) -> String {
        match self {
            BudgetUnit::Tokens => format!("{amount} tokens"),
            BudgetUnit::Usd => format!("${}", show_usd(amount)),
        }
    }
}

impl fmt::Display for BudgetUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BudgetUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tokens" => Ok(BudgetUnit::Tokens),
            "usd" => Ok(BudgetUnit::Usd),
            other => Err(format!("'{other}' is not a budget unit; use tokens or usd")),
        }
    }
}

/// The calendar period a budget renews over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetPeriod {
    /// 00:00 UTC to the next 00:00 UTC.
    Day,
    /// The 1st 00:00 UTC to the next month's 1st.
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        }
    }

    /// The current period at `now_ms`: `[start, end)` in Unix ms.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let days = now_ms.div_euclid(DAY_MS);
        match self {
            BudgetPeriod::Day => (days * DAY_MS, (days + 1) * DAY_MS),
            BudgetPeriod::Month => {
                let (y, m, _) = civil(days);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m, 1) * DAY_MS,
                    days_from_civil(ny, nm, 1) * DAY_MS,
                )
            }
        }
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BudgetPeriod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(BudgetPeriod::Day),
            "month" | "monthly" => Ok(BudgetPeriod::Month),
            other => Err(format!(
                "'{other}' is not a budget period; use day or month"
            )),
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// Year, month (1–12), day of a count of days since 1970-01-01 (Howard
/// Hinnant's civil-from-days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-01-01T00:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Nano-dollars per dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// `12.5` → 12 500 000 000 nano-dollars: a plain decimal, at most 9
/// decimals, parsed exactly (no float).
pub fn parse_usd(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_start_matches('$');
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(format!("'{s}' is not an amount in dollars (e.g. 12.50)"));
    }
    if frac.len() > 9 {
        return Err(format!(
            "'{s}' has more than 9 decimals (amounts are kept in nano-dollars)"
        ));
    }
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse()
            .map_err(|_| format!("'{s}' is too large an amount"))?
    };
    let frac_nanos: u64 = format!("{frac:0<9}").parse().unwrap_or(0);
    whole
        .checked_mul(NANOS_PER_USD)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(|| format!("'{s}' is too large an amount"))
}

/// Nano-dollars as dollars: at least 2 decimals, more only when needed.
pub fn show_usd(nanos: u64) -> String {
    let whole = nanos / NANOS_PER_USD;
    let frac = format!("{:09}", nanos % NANOS_PER_USD);
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("{whole}.{frac}")
}

/// A budget's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// `workspace` (all its keys together) or `api-key` (one key).
    pub target: RuleTarget,
    /// The workspace's name (target workspace) or the key's id (api-key).
    pub subject: String,
    pub unit: BudgetUnit,
    /// Tokens (unit tokens, ≥ 1) or nano-dollars (unit usd, > 0).
    pub amount: u64,
    pub period: BudgetPeriod,
}

impl BudgetSpec {
    /// `workspace acme`, `api-key key_7f3a12cd`.
    pub fn subject_label(&self) -> String {
        format!("{} {}", self.target.as_str(), self.subject)
    }

    /// `1000 tokens per day for workspace acme`.
    pub fn describe(&self) -> String {
        format!(
            "{} per {} for {}",
            self.unit.show(self.amount),
            self.period,
            self.subject_label()
        )
    }

    /// Whether usage of key `key_id` (of `workspace`) counts toward this budget.
    pub fn counts(&self, key_id: &str, workspace: &str) -> bool {
        match self.target {
            RuleTarget::Workspace => workspace == self.subject,
            RuleTarget::ApiKey => key_id == self.subject,
        }
    }

    /// The amount of `usage` in this budget's unit.
    pub fn measure(&self, prompt: u64, completion: u64, cost_nanos: u64) -> u64 {
        match self.unit {
            BudgetUnit::Tokens => prompt.saturating_add(completion),
            BudgetUnit::Usd => cost_nanos,
        }
    }
}

/// A stored budget: its registry-wide id (`b1`, `b2`, …) and definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub id: String,
    pub spec: BudgetSpec,
}

/// The shape of a budget (what needs no other entity); errors name the
/// field (`workspace`/`key`, `tokens`/`usd`, `per`).
pub fn validate(spec: &BudgetSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    let field = subject_field(spec.target);
    if spec.subject.trim().is_empty() {
        out.push(FieldError::new(field, "must not be empty"));
    } else if spec.target == RuleTarget::Workspace {
        limits::NAME.length(field, &spec.subject, &mut out);
    } else {
        limits::KEY_ID.length(field, &spec.subject, &mut out);
    }
    if spec.amount == 0 {
        out.push(match spec.unit {
            BudgetUnit::Tokens => FieldError::new("tokens", "must be at least 1"),
            BudgetUnit::Usd => FieldError::new("usd", "must be more than 0"),
        });
    } else if spec.amount > i64::MAX as u64 {
        out.push(FieldError::new(
            amount_field(spec.unit),
            format!("{} is too large", spec.amount),
        ));
    }
    out
}

/// The field naming a budget's subject: `workspace` or `key`.
pub fn subject_field(target: RuleTarget) -> &'static str {
    match target {
        RuleTarget::Workspace => "workspace",
        RuleTarget::ApiKey => "key",
    }
}

/// The field naming a budget's amount: `tokens` or `usd`.
pub fn amount_field(unit: BudgetUnit) -> &'static str {
    match unit {
        BudgetUnit::Tokens => "tokens",
        BudgetUnit::Usd => "usd",
    }
}

/// A budget with what its subject spent in the current period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub id: String,
    pub target: RuleTarget,
    pub subject: String,
    pub unit: BudgetUnit,
    pub period: BudgetPeriod,
    /// Tokens or nano-dollars, as `unit` says.
    pub amount: u64,
    pub spent: u64,
    /// `amount - spent`, 0 when spent.
    pub left: u64,
    /// When the current period began and ends (the reset), Unix ms.
    pub period_start_ms: i64,
    pub resets_at_ms: i64,
}

impl BudgetStatus {
    pub fn exhausted(&self) -> bool {
        self.spent >= self.amount
    }

    /// Share of the amount spent, 0–100 (capped).
    pub fn percent(&self) -> u64 {
        if self.amount == 0 {
            return 100;
        }
        (u128::from(self.spent) * 100 / u128::from(self.amount)).min(100) as u64
    }
}

/// Each budget with what `rows` (ledger rows, any span) say its subject
/// spent in the period current at `now_ms`. Rows are counted when their
/// bucket starts in the period (day and month starts are bucket edges at
/// every span, so a period never splits a bucket).
pub fn status<'a>(
    budgets: impl IntoIterator<Item = &'a Budget>,
    rows: &[UsageRow],
    now_ms: i64,
) -> Vec<BudgetStatus> {
    budgets
        .into_iter()
        .map(|b| {
            let s = &b.spec;
            let (start, end) = s.period.bounds(now_ms);
            let spent = rows
                .iter()
                .filter(|r| r.bucket_ms >= start && r.bucket_ms < end)
                .filter(|r| s.counts(&r.key_id, &r.workspace))
                .map(|r| {
                    let u = &r.usage;
                    s.measure(u.prompt_tokens, u.completion_tokens, u.cost_nanos)
                })
                .fold(0u64, u64::saturating_add);
            BudgetStatus {
                id: b.id.clone(),
                target: s.target,
                subject: s.subject.clone(),
                unit: s.unit,
                period: s.period,
                amount: s.amount,
                spent,
                left: s.amount.saturating_sub(spent),
                period_start_ms: start,
                resets_at_ms: end,
            }
        })
        .collect()
}

/// The earliest period start among `budgets` at `now_ms` (what a spent
/// query must read from), or `None` without budgets.
pub fn earliest_start<'a>(
    budgets: impl IntoIterator<Item = &'a Budget>,
    now_ms: i64,
) -> Option<i64> {
    budgets
        .into_iter()
        .map(|b| b.spec.period.bounds(now_ms).0)
        .min()
}

/// `b12` → 12, for ordering ids as numbers.
pub fn id_number(id: &str) -> u64 {
    id.trim_start_matches('b').parse().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_calendar_days_and_months() {
        // 2025-12-31T23:59:59Z
        let t = 1_767_225_599_000;
        assert_eq!(rfc3339(t), "2025-12-31T23:59:59Z");
        let (s, e) = BudgetPeriod::Month.bounds(t);
        assert_eq!(rfc3339(s), "2025-12-01T00:00:00Z");
        assert_eq!(rfc3339(e), "2026-01-01T00:00:00Z");
        let (s, e) = BudgetPeriod::Day.bounds(t);
        assert_eq!(rfc3339(s), "2025-12-31T00:00:00Z");
        assert_eq!(rfc3339(e), "2026-01-01T00:00:00Z");
        // February of a leap year.
        let feb = days_from_civil(2028, 2, 10) * DAY_MS;
        let (_, e) = BudgetPeriod::Month.bounds(feb);
        assert_eq!(rfc3339(e), "2028-03-01T00:00:00Z");
    }

    #[test]
    fn dollars_parse_exactly() {
        assert_eq!(parse_usd("12.5"), Ok(12_500_000_000));
        assert_eq!(parse_usd("0.000000001"), Ok(1));
        assert_eq!(parse_usd("$3"), Ok(3_000_000_000));
        assert!(parse_usd("1.0000000001").is_err());
        assert!(parse_usd("-1").is_err());
        assert!(parse_usd("abc").is_err());
        assert_eq!(show_usd(12_500_000_000), "12.50");
        assert_eq!(show_usd(1), "0.000000001");
    }
}

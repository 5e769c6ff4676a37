//! The usage ledger (docs/usage.md): what each key used of each model, per
//! minute, rolled into hours and days as it ages. Gateways add their
//! deltas; rows of several gateways for the same bucket add up.

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
    /// Minute rows older than this many days are rolled into hours.
    pub minute_days: u32,
    /// Hour rows older than this many days are rolled into days (kept).
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
    /// Where each rollup stops at `now_ms`: minute rows before the first
    /// cut-off become hour rows, hour rows before the second become day
    /// rows. Both are aligned to the coarser bucket, so no bucket is split.
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

//! `maasctl rule explain`: which rules apply to a key on a model, how full
//! they are, and which would reject the next request — read without
//! counting anything.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::local::{Peek, clamp_u32};
use super::window::Window;
use crate::domain::{LimiterMode, RuleTarget, RuleUnit};

/// One applicable rule, as the limiter sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleExplanation {
    pub rule_id: u64,
    pub target: RuleTarget,
    /// What `limit`, `used` and `remaining` count (requests or tokens).
    #[serde(default)]
    pub unit: RuleUnit,
    /// The key id (target api-key) or workspace name (target workspace).
    pub subject: String,
    /// The limit enforced now (this replica's share while fallen back).
    pub limit: u32,
    pub duration_secs: u32,
    /// Requests counted in the current window.
    pub used: u32,
    pub remaining: u32,
    /// Milliseconds until every counted request has left the window.
    pub reset_ms: u64,
    /// Milliseconds until this rule would admit (0: it would now).
    pub room_in_ms: u64,
    /// This rule alone would refuse the next request.
    pub full: bool,
}

/// What `maasctl rule explain --model M --key K` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub model: String,
    pub key_id: String,
    pub workspace: String,
    pub limiter: LimiterMode,
    /// The rules targeting the key or its workspace, in rule-id order.
    pub rules: Vec<RuleExplanation>,
    /// The rule a request sent now would be refused by (the one that frees
    /// last), if any.
    pub rejected_by: Option<u64>,
    /// Milliseconds until a request would be admitted (0: now).
    pub retry_after_ms: u64,
}

impl Explanation {
    pub(super) fn new(
        model: &str,
        key_id: &str,
        workspace: &str,
        limiter: LimiterMode,
        windows: &[Arc<Window>],
        states: &[Peek],
    ) -> Self {
        let rules: Vec<RuleExplanation> = windows
            .iter()
            .zip(states)
            .map(|(w, p)| RuleExplanation {
                rule_id: w.rule_id,
                target: w.target,
                unit: w.unit,
                subject: w.subject.clone(),
                limit: clamp_u32(p.limit),
                duration_secs: w.duration_secs(),
                used: clamp_u32(p.used),
                remaining: clamp_u32(p.limit.saturating_sub(p.used)),
                reset_ms: p.reset_ms,
                room_in_ms: p.room_ms,
                full: p.used >= p.limit,
            })
            .collect();
        // Same choice as a real check: among full rules, the one freeing last.
        let blocking = rules
            .iter()
            .filter(|r| r.full)
            .fold(None::<&RuleExplanation>, |best, r| match best {
                Some(b) if b.room_in_ms >= r.room_in_ms => Some(b),
                _ => Some(r),
            });
        Self {
            model: model.to_owned(),
            key_id: key_id.to_owned(),
            workspace: workspace.to_owned(),
            limiter,
            rejected_by: blocking.map(|r| r.rule_id),
            retry_after_ms: blocking.map_or(0, |r| r.room_in_ms),
            rules,
        }
    }
}

/// `` for requests, ` tokens` for tokens: after a count.
fn unit_suffix(unit: RuleUnit) -> &'static str {
    match unit {
        RuleUnit::Requests => "",
        RuleUnit::Tokens => " tokens",
    }
}

/// `850ms`, `1.2s`, `2m05s`.
fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms.div_ceil(1000);
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model {} · key {} · workspace {} · limiter {}",
            self.model,
            self.key_id,
            self.workspace,
            self.limiter.as_str()
        )?;
        if self.rules.is_empty() {
            return writeln!(
                f,
                "no rule of model {} applies to key {} or workspace {}: its requests are not rate limited",
                self.model, self.key_id, self.workspace
            );
        }
        let header = [
            "RULE",
            "TARGET",
            "SUBJECT",
            "USED/LIMIT",
            "PER",
            "RESET",
            "NEXT REQUEST",
        ];
        let rows: Vec<[String; 7]> = self
            .rules
            .iter()
            .map(|r| {
                [
                    format!("#{}", r.rule_id),
                    r.target.to_string(),
                    r.subject.clone(),
                    format!("{}/{}{}", r.used, r.limit, unit_suffix(r.unit)),
                    format!("{}s", r.duration_secs),
                    if r.used == 0 {
                        "-".into()
                    } else {
                        human_ms(r.reset_ms)
                    },
                    if r.full {
                        format!("full, room in {}", human_ms(r.room_in_ms))
                    } else {
                        format!("ok, {}{} left", r.remaining, unit_suffix(r.unit))
                    },
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
            let last = cells.len() - 1;
            for (i, cell) in cells.iter().enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<width$}  ", width = widths[i])?;
                }
            }
            Ok(())
        };
        line(f, &header)?;
        for row in &rows {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        match self
            .rejected_by
            .and_then(|id| self.rules.iter().find(|r| r.rule_id == id))
        {
            Some(r) => writeln!(
                f,
                "next request: rejected by rule #{} ({} {}: {}{} per {}s); admitted again in {}",
                r.rule_id,
                r.target,
                r.subject,
                r.limit,
                unit_suffix(r.unit),
                r.duration_secs,
                human_ms(self.retry_after_ms)
            ),
            None => writeln!(f, "next request: admitted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human_ms;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ms(0), "0ms");
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(1240), "1.2s");
        assert_eq!(human_ms(125_000), "2m05s");
    }
}

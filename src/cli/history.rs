//! `maasctl audit`, `history`, `diff`, `rollback`: who changed what, the
//! registry's revisions, what changed between two, and going back to one.

use clap::Args;
use serde::Serialize;

use super::output::{Table, print_out, utc};
use super::{CliError, CliResult, Ctx};
use crate::domain::audit::{self, EntityAction, EntityChange, FieldChange, show};
use crate::domain::{AuditEntry, AuditQuery, Registry, manifest, now_ms};
use crate::ops::rollback::{RollbackReport, RollbackRequest};
use crate::store::catalog;

/// Entries `audit` shows without `--limit`.
const AUDIT_LIMIT: usize = 100;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries since: a duration ago (90s, 15m, 2h, 7d), a date
    /// (2026-05-01) or a UTC time (2026-05-01T12:30Z).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only entries that changed this entity: KIND/NAME (model/DeepSeek-V3,
    /// key/key_7f3a12cd, workspace/acme, cluster/east, market/NAME,
    /// token/NAME).
    #[arg(long, value_name = "KIND/NAME")]
    entity: Option<String>,
    /// At most this many (the newest), oldest first. Default: 100 (all
    /// with --since).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// At most this many revisions (the newest). Default: all.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier revision.
    from: u64,
    /// The later revision (default: the current one).
    to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The revision whose registry to return to.
    revision: u64,
    /// Report what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `--since`: a duration ago, a date or a UTC time, as Unix ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "'{s}' is not a time; use a duration ago (90s, 15m, 2h, 7d), a date (2026-05-01) or a UTC time (2026-05-01T12:30Z)"
        )
    };
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = t[..t.len() - 1].parse::<i64>()
    {
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => 86_400,
        };
        return Ok(now_ms - n.saturating_mul(secs * 1000));
    }
    let (date, time) = match t.split_once(['T', ' ']) {
        Some((d, rest)) => (d, Some(rest.trim_end_matches('Z'))),
        None => (t, None),
    };
    let nums: Vec<i64> = date
        .split('-')
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, mo, d] = nums[..] else {
        return Err(bad());
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if let Some(time) = time {
        let hm: Vec<i64> = time
            .split(':')
            .map(|p| p.parse::<i64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match hm[..] {
            [h, m] | [h, m, _] if (0..24).contains(&h) && (0..60).contains(&m) => {
                secs += h * 3600 + m * 60 + hm.get(2).copied().unwrap_or(0);
            }
            _ => return Err(bad()),
        }
    }
    Ok(secs * 1000)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn at(ms: i64) -> String {
    utc(ms.div_euclid(1000))
}

/// `before → after` of one field (`-`: no value; times in UTC).
fn field_line(f: &FieldChange) -> String {
    let time = f.field == "revoked";
    let v = |v: &Option<serde_json::Value>| match v {
        None => "-".to_string(),
        Some(n) if time && n.is_i64() => utc(n.as_i64().unwrap_or_default()),
        Some(v) => show(v),
    };
    format!("{}: {} → {}", f.field, v(&f.before), v(&f.after))
}

fn change_lines(c: &EntityChange, out: &mut String) {
    out.push_str(&format!("  {} {}\n", c.entity, c.action.as_str()));
    for f in &c.fields {
        out.push_str(&format!("    {}\n", field_line(f)));
    }
}

pub fn audit(ctx: &Ctx, a: AuditArgs) -> CliResult {
    let since_ms = a
        .since
        .as_deref()
        .map(|s| parse_since(s, now_ms()).map_err(|e| CliError::field("since", e)))
        .transpose()?;
    let entity = a
        .entity
        .as_deref()
        .map(|e| audit::parse_entity(e).map_err(|p| CliError::field("entity", p)))
        .transpose()?;
    let limit = a.limit.or((since_ms.is_none()).then_some(AUDIT_LIMIT));
    let entries = ctx.backend().audit(&AuditQuery {
        since_ms,
        entity: entity.clone(),
        revisions_only: false,
        limit,
    })?;
    ctx.emit(&entries, || render_audit(&entries, entity.as_deref()))
}

/// Each entry, with its entities' fields (only `entity`'s when filtering).
fn render_audit(entries: &[AuditEntry], entity: Option<&str>) -> String {
    if entries.is_empty() {
        return "no audit entries".into();
    }
    let mut out = String::new();
    for e in entries {
        let rev = e
            .revision
            .map_or(String::new(), |r| format!(" · revision {r}"));
        out.push_str(&format!(
            "#{} {} · {} via {}{rev} · {}\n",
            e.id,
            at(e.at_ms),
            e.actor,
            e.channel,
            e.summary
        ));
        let shown = e
            .changes
            .iter()
            .filter(|c| entity.is_none_or(|want| c.entity == want));
        for c in shown {
            change_lines(c, &mut out);
        }
        let others = e.changes.len()
            - e.changes
                .iter()
                .filter(|c| entity.is_none_or(|w| c.entity == w))
                .count();
        if others > 0 {
            out.push_str(&format!("  (and {others} other entities)\n"));
        }
    }
    out
}

pub fn history(ctx: &Ctx, a: HistoryArgs) -> CliResult {
    let revisions = ctx.backend().history(a.limit)?;
    ctx.emit(&revisions, || {
        if revisions.is_empty() {
            return "no revisions recorded yet".into();
        }
        let mut t = Table::new(["REV", "WHEN", "WHO", "VIA", "SUMMARY"]);
        for r in &revisions {
            t.row([
                r.revision.to_string(),
                at(r.at_ms),
                r.actor.to_string(),
                r.channel.to_string(),
                r.summary.clone(),
            ]);
        }
        t.render()
    })
}

/// `diff -o json`: what changed, entity by entity.
#[derive(Debug, Serialize)]
struct DiffOutput {
    from: u64,
    to: u64,
    changes: Vec<EntityChange>,
}

/// A registry as `export` writes it (without what a new store has).
fn declared(reg: &Registry) -> CliResult<String> {
    let m = manifest::export(reg, Some(&catalog::baseline()));
    serde_yaml_ng::to_string(&m).map_err(|e| CliError(e.to_string()))
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> CliResult {
    let current = ctx.load()?;
    let to = a.to.unwrap_or(current.revision);
    let at_rev = |r: u64| {
        if r == current.revision {
            Ok(current.clone())
        } else {
            ctx.backend().registry_at(r)
        }
    };
    let (old, new) = (at_rev(a.from)?, at_rev(to)?);
    if ctx.json() {
        let changes = audit::registry_changes(&old, &new, &audit::both(&old, &new));
        return ctx.emit(
            &DiffOutput {
                from: a.from,
                to,
                changes,
            },
            String::new,
        );
    }
    let (old_text, new_text) = (declared(&old)?, declared(&new)?);
    if old_text == new_text {
        return print_out(&format!(
            "revisions {} and {to} declare the same registry",
            a.from
        ));
    }
    let text = similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&format!("revision {}", a.from), &format!("revision {to}"))
        .to_string();
    print_out(&text)
}

pub fn rollback(ctx: &Ctx, a: RollbackArgs) -> CliResult {
    let report = ctx.backend().rollback(&RollbackRequest {
        revision: a.revision,
        dry_run: a.dry_run,
    })?;
    ctx.emit(&report, || render_rollback(&report))
}

fn render_rollback(r: &RollbackReport) -> String {
    if !r.changed {
        return format!(
            "the registry at revision {} is the registry now (revision {}): nothing to roll back",
            r.to, r.from
        );
    }
    let n = match r.changes.len() {
        1 => "1 entity".to_string(),
        n => format!("{n} entities"),
    };
    let mut out = if r.dry_run {
        format!(
            "dry run: rolling back to revision {} would change {n}; nothing was changed\n",
            r.to
        )
    } else {
        format!(
            "rolled back to revision {} as revision {}: {n} changed\n",
            r.to, r.revision
        )
    };
    let mut t = Table::new(["ENTITY", "ACTION", "FIELDS"]);
    for c in &r.changes {
        let fields: Vec<&str> = c.fields.iter().map(|f| f.field.as_str()).collect();
        let fields = match c.action {
            EntityAction::Updated => fields.join(", "),
            _ => "-".into(),
        };
        t.row([c.entity.clone(), c.action.as_str().into(), fields]);
    }
    out.push_str(&t.render());
    let k = &r.keys;
    for (list, what) in [
        (&k.deleted, "created since, deleted"),
        (&k.restored_revoked, "deleted since, back revoked"),
        (&k.kept_revoked, "revoked since, stay revoked"),
    ] {
        if !list.is_empty() {
            out.push_str(&format!(
                "keys {what} (no key secret ever comes back): {}\n",
                list.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_dates_and_times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_since("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_since("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400_000);
        assert_eq!(parse_since("2000-02-29", now).unwrap(), 951_782_400_000);
        assert_eq!(
            parse_since("2000-02-29T01:02Z", now).unwrap(),
            951_782_400_000 + 3_720_000
        );
        assert_eq!(
            parse_since("2000-02-29 01:02:03", now).unwrap(),
            951_782_400_000 + 3_723_000
        );
        for bad in ["yesterday", "2000-13-01", "2000-02-29T25:00", "5w", ""] {
            assert!(
                parse_since(bad, now).unwrap_err().contains("is not a time"),
                "{bad}"
            );
        }
    }
}

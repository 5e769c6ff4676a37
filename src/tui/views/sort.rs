//! Sorting the list views by a column, k9s-style: a shifted letter sorts
//! by its column (`N` name, `R` req/s, …), the same letter again reverses.
//!
//! The filtered rows come in a base order (names: the registry's maps are
//! sorted);
//! a sort reorders them once per change of what it depends on (the
//! registry, the filter, the live rates for a rate sort, the statuses for a
//! status sort), never per frame. A rate sort costs one hash lookup per row:
//! only rows with traffic are sorted, the idle ones keep their name order.

use std::collections::HashMap;

use crate::domain::GatewayStatus;
use crate::tui::data::Data;
use crate::tui::live::Rate;

use super::ViewId;

/// What a list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortBy {
    Name,
    ModelId,
    /// Enabled first, then the gateway status (problems first).
    Status,
    Requests,
    Throttled,
    Workspace,
    /// Active keys first.
    State,
    Created,
    /// Active keys of a workspace.
    Keys,
}

impl SortBy {
    /// How the sort is named in the list's title and the help.
    pub fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::ModelId => "model ID",
            SortBy::Status => "status",
            SortBy::Requests => "req/s",
            SortBy::Throttled => "thr/s",
            SortBy::Workspace => "workspace",
            SortBy::State => "state",
            SortBy::Created => "created",
            SortBy::Keys => "keys",
        }
    }

    /// Numbers and dates start with the biggest/newest; words with A.
    fn starts_descending(self) -> bool {
        matches!(
            self,
            SortBy::Requests | SortBy::Throttled | SortBy::Created | SortBy::Keys
        )
    }
}

/// A list's order: a column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub by: SortBy,
    pub desc: bool,
}

impl Sort {
    pub fn new(by: SortBy) -> Self {
        Self {
            by,
            desc: by.starts_descending(),
        }
    }

    /// The order after the sort key for `by` is pressed: that column in
    /// its natural direction, or the other direction if already on it.
    pub fn pressed(self, by: SortBy) -> Self {
        if self.by == by {
            Self {
                by,
                desc: !self.desc,
            }
        } else {
            Self::new(by)
        }
    }

    /// `↑` ascending, `↓` descending.
    pub fn arrow(self) -> &'static str {
        if self.desc { "↓" } else { "↑" }
    }
}

/// The order a view starts in.
pub fn default_sort(view: ViewId) -> Sort {
    match view {
        ViewId::Keys => Sort::new(SortBy::Workspace),
        _ => Sort::new(SortBy::Name),
    }
}

/// The column title each sort of `view` marks with its arrow.
pub fn column(view: ViewId, by: SortBy) -> Option<&'static str> {
    Some(match (view, by) {
        (ViewId::Models | ViewId::Workspaces | ViewId::Keys, SortBy::Name) => "NAME",
        (ViewId::Models, SortBy::ModelId) => "MODEL ID",
        (ViewId::Models, SortBy::Status) => "STATUS",
        (ViewId::Keys, SortBy::State) => "STATE",
        (ViewId::Keys, SortBy::Workspace) => "WORKSPACE",
        (ViewId::Keys, SortBy::Created) => "CREATED (UTC)",
        (ViewId::Workspaces, SortBy::Keys) => "KEYS",
        (ViewId::Models | ViewId::Workspaces | ViewId::Keys, SortBy::Requests) => "REQ/S",
        (ViewId::Models | ViewId::Workspaces | ViewId::Keys, SortBy::Throttled) => "THR/S",
        _ => return None,
    })
}

/// What a sort of `view` reads besides the registry and filter: a rate
/// sort must be redone when the rates move, a status sort when the
/// statuses do. Part of the list's cache key.
pub fn depends_on(data: &Data, sort: Sort) -> u64 {
    match sort.by {
        SortBy::Requests | SortBy::Throttled => data.live.generation,
        SortBy::Status => data.status_generation,
        _ => 0,
    }
}

/// Put `ids` (the view's rows in their base order: by name, keys by
/// workspace then name) in `sort`'s order. Ties keep the base order.
pub fn apply(data: &Data, view: ViewId, sort: Sort, ids: Vec<String>) -> Vec<String> {
    let reg = data.registry();
    match (view, sort.by) {
        (ViewId::Models | ViewId::Workspaces | ViewId::Keys, SortBy::Requests) => {
            by_rate(ids, rates(data, view), |r| r.req, sort.desc)
        }
        (ViewId::Models | ViewId::Workspaces | ViewId::Keys, SortBy::Throttled) => {
            by_rate(ids, rates(data, view), |r| r.thr, sort.desc)
        }
        (ViewId::Models, SortBy::ModelId) => by_key(ids, sort.desc, |id| {
            reg.models.get(id).map(|m| m.spec.model_id.to_lowercase())
        }),
        (ViewId::Models, SortBy::Status) => by_key(ids, sort.desc, |id| {
            let m = reg.models.get(id)?;
            Some((!m.enabled, status_rank(data.status(id))))
        }),
        (ViewId::Keys, SortBy::Workspace) => by_key(ids, sort.desc, |id| {
            reg.keys
                .get(id)
                .map(|k| (k.workspace.clone(), k.name.clone()))
        }),
        (ViewId::Keys, SortBy::Name) => by_key(ids, sort.desc, |id| {
            reg.keys
                .get(id)
                .map(|k| (k.name.clone(), k.workspace.clone()))
        }),
        (ViewId::Keys, SortBy::State) => by_key(ids, sort.desc, |id| {
            reg.keys
                .get(id)
                .map(|k| (k.is_revoked(), k.workspace.clone(), k.name.clone()))
        }),
        (ViewId::Keys, SortBy::Created) => by_key(ids, sort.desc, |id| {
            reg.keys.get(id).map(|k| (k.created, k.id.clone()))
        }),
        (ViewId::Workspaces, SortBy::Keys) => {
            let mut active: HashMap<&str, usize> = HashMap::new();
            for k in reg.keys.values().filter(|k| !k.is_revoked()) {
                *active.entry(k.workspace.as_str()).or_default() += 1;
            }
            by_key(ids, sort.desc, |id| {
                Some(active.get(id).copied().unwrap_or(0))
            })
        }
        // Name order is the order the rows come in.
        _ if sort.desc => ids.into_iter().rev().collect(),
        _ => ids,
    }
}

/// Problems first: down, degraded, pending, offline, serving, off.
fn status_rank(s: GatewayStatus) -> u8 {
    match s {
        GatewayStatus::Down => 0,
        GatewayStatus::Degraded => 1,
        GatewayStatus::Pending => 2,
        GatewayStatus::Offline => 3,
        GatewayStatus::Serving => 4,
        GatewayStatus::Off => 5,
    }
}

fn rates(data: &Data, view: ViewId) -> &HashMap<String, Rate> {
    match view {
        ViewId::Models => &data.live.models,
        ViewId::Keys => &data.live.keys,
        _ => &data.live.workspaces,
    }
}

/// A stable sort on a key computed once per row: equal keys keep name
/// order either way, a row whose entity is gone sorts last.
fn by_key<K: Ord>(ids: Vec<String>, desc: bool, key: impl Fn(&str) -> Option<K>) -> Vec<String> {
    let mut keyed: Vec<(Option<K>, String)> = ids.into_iter().map(|id| (key(&id), id)).collect();
    keyed.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) if desc => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
        (a, b) => b.is_some().cmp(&a.is_some()),
    });
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// Rows with traffic sorted by `value`, the idle ones (absent from
/// `rates`, which holds only non-zero rates) in name order after them
/// (before them when ascending).
fn by_rate(
    ids: Vec<String>,
    rates: &HashMap<String, Rate>,
    value: fn(&Rate) -> f64,
    desc: bool,
) -> Vec<String> {
    type Keyed = Vec<(f64, String)>;
    let (mut busy, idle): (Keyed, Keyed) = ids
        .into_iter()
        .map(|id| (rates.get(&id).map_or(0.0, value), id))
        .partition(|(v, _)| *v > 0.0);
    busy.sort_by(|a, b| {
        let o = a.0.total_cmp(&b.0);
        if desc { o.reverse() } else { o }.then_with(|| a.1.cmp(&b.1))
    });
    let (first, second) = if desc { (busy, idle) } else { (idle, busy) };
    first.into_iter().chain(second).map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_order(a: &[String], b: &[&str]) -> bool {
        a.iter().map(String::as_str).eq(b.iter().copied())
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pressing_the_same_key_again_reverses() {
        let s = Sort::new(SortBy::Name);
        assert!(!s.desc);
        let s = s.pressed(SortBy::Requests);
        assert_eq!((s.by, s.desc), (SortBy::Requests, true), "busiest first");
        let s = s.pressed(SortBy::Requests);
        assert_eq!((s.by, s.desc), (SortBy::Requests, false));
        let s = s.pressed(SortBy::Name);
        assert_eq!((s.by, s.desc), (SortBy::Name, false));
    }

    #[test]
    fn rate_order_sorts_the_busy_rows_and_keeps_idle_ones_by_name() {
        let rate = |req| Rate {
            req,
            thr: 0.0,
            err: 0.0,
        };
        let rates: HashMap<String, Rate> = [("b".to_string(), rate(1.0)), ("d".into(), rate(5.0))]
            .into_iter()
            .collect();
        let rows = ids(&["a", "b", "c", "d", "e"]);
        let desc = by_rate(rows.clone(), &rates, |r| r.req, true);
        assert!(same_order(&desc, &["d", "b", "a", "c", "e"]), "{desc:?}");
        let asc = by_rate(rows, &rates, |r| r.req, false);
        assert!(same_order(&asc, &["a", "c", "e", "b", "d"]), "{asc:?}");
    }

    #[test]
    fn keyed_order_is_stable_and_missing_rows_go_last() {
        let rows = ids(&["a", "b", "c", "d"]);
        let key = |id: &str| match id {
            "a" => Some(2),
            "b" => Some(1),
            "c" => None,
            _ => Some(1),
        };
        assert!(same_order(
            &by_key(rows.clone(), false, key),
            &["b", "d", "a", "c"]
        ));
        assert!(same_order(&by_key(rows, true, key), &["a", "b", "d", "c"]));
    }
}

//! Sorting the list views by a column, k9s-style: a shifted letter sorts
//! by its column (`N` name, `R` req/s, …), the same letter again reverses.
//!
//! The filtered rows come in a base order (names: the registry's maps are
//! sorted);
//! a sort reorders them once per change of what it depends on (the
//! registry, the filter, the live rates for a rate sort, the statuses for a
//! status sort), never per frame. A rate sort costs one hash lookup per row:
//! only rows with traffic are sorted, the idle ones keep their name order.
//! Each list view says which sorts it has ([`super::list::Table::sort`]);
//! these are the orders they share.

use std::collections::HashMap;

use crate::domain::GatewayStatus;
use crate::tui::data::Data;
use crate::tui::ids::{Sort, SortBy};
use crate::tui::live::Rate;

/// What a sort reads besides the registry and filter: a rate sort must be
/// redone when the rates move, a status sort when the statuses do. Part of
/// the list's cache key.
pub fn depends_on(data: &Data, sort: Sort) -> u64 {
    match sort.by {
        SortBy::Requests | SortBy::Throttled => data.live.generation,
        SortBy::Status => data.status_generation,
        _ => 0,
    }
}

/// Name order is the order the rows come in.
pub fn by_name(sort: Sort, ids: Vec<String>) -> Vec<String> {
    if sort.desc {
        ids.into_iter().rev().collect()
    } else {
        ids
    }
}

/// Problems first: down, degraded, pending, offline, unknown, serving, off.
pub fn status_rank(s: GatewayStatus) -> u8 {
    match s {
        GatewayStatus::Down => 0,
        GatewayStatus::Degraded => 1,
        GatewayStatus::Pending => 2,
        GatewayStatus::Offline => 3,
        GatewayStatus::Unknown => 4,
        GatewayStatus::Serving => 5,
        GatewayStatus::Off => 6,
    }
}

/// A stable sort on a key computed once per row: equal keys keep name
/// order either way, a row whose entity is gone sorts last.
pub fn by_key<K: Ord>(
    ids: Vec<String>,
    desc: bool,
    key: impl Fn(&str) -> Option<K>,
) -> Vec<String> {
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
pub fn by_rate(
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

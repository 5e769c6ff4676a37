//! The request path's lookup tables, shaped for few cache misses: with
//! 100,000 keys a check's cost is the memory lines it touches, one after
//! the other, so short names live inside the table entry, one- and two-rule
//! lists inside their owner, and the hash is a fast non-keyed one.
//!
//! Why a non-keyed hash is safe here: the tables are keyed by key ids and
//! workspace names from the registry, and looked up with the id and
//! workspace of a key that already passed authentication. Callers cannot
//! choose what is hashed, so the flooding resistance of the default (keyed
//! SipHash) buys nothing, while its cost is a good part of a check. This is
//! the Fx hash of rustc (the `rustc-hash` crate).

use std::sync::Arc;

use super::window::Window;

pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// A name stored in place when short (up to 24 bytes; key ids are 12), so
/// comparing a table entry's name reads no other memory line. Hashes and
/// compares exactly as the `str` it holds, so tables keyed by it are looked
/// up with a `&str`.
pub type Name = compact_str::CompactString;

/// Windows in rule-id order; the usual one or two held in place.
#[derive(Debug, Clone)]
pub enum WindowList {
    One([Arc<Window>; 1]),
    Two([Arc<Window>; 2]),
    Many(Box<[Arc<Window>]>),
}

impl WindowList {
    pub fn as_slice(&self) -> &[Arc<Window>] {
        match self {
            WindowList::One(w) => w,
            WindowList::Two(w) => w,
            WindowList::Many(w) => w,
        }
    }
}

impl From<Vec<Arc<Window>>> for WindowList {
    /// `windows` must be sorted by rule id.
    fn from(windows: Vec<Arc<Window>>) -> Self {
        match <[Arc<Window>; 2]>::try_from(windows) {
            Ok(two) => WindowList::Two(two),
            Err(windows) => match <[Arc<Window>; 1]>::try_from(windows) {
                Ok(one) => WindowList::One(one),
                Err(many) => WindowList::Many(many.into_boxed_slice()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxBuildHasher;
    use std::hash::BuildHasher;

    #[test]
    fn names_inline_or_not_read_back_and_hash_as_their_str() {
        let b = FxBuildHasher;
        for s in [
            "",
            "key_1234abcd",
            "exactly-twenty-two-ch",
            "a-workspace-name-longer-than-inline",
            "wörkspace",
        ] {
            let n = Name::from(s);
            assert_eq!(n.as_str(), s);
            assert_eq!(b.hash_one(&n), b.hash_one(s));
        }
        assert!(!Name::from("key_1234abcd").is_heap_allocated());
        assert!(Name::from("a-workspace-name-longer-than-inline").is_heap_allocated());
        let mut m: FastMap<Name, u32> = FastMap::default();
        m.insert("a-workspace-name-longer-than-inline".into(), 1);
        m.insert("acme".into(), 2);
        assert_eq!(m.get("a-workspace-name-longer-than-inline"), Some(&1));
        assert_eq!(m.get("acme"), Some(&2));
        assert_eq!(m.get("acm"), None);
    }

    #[test]
    fn distinct_short_ids_hash_apart_and_equal_ones_alike() {
        let b = FxBuildHasher;
        let ids: Vec<String> = (0..10_000).map(|i| format!("key_{i:08x}")).collect();
        let hashes: std::collections::HashSet<u64> =
            ids.iter().map(|s| b.hash_one(s.as_str())).collect();
        assert_eq!(hashes.len(), ids.len());
        assert_eq!(
            b.hash_one("acme"),
            b.hash_one(String::from("acme").as_str())
        );
    }
}

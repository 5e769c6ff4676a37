//! What a new store starts with: the default marketplace catalog shipped in
//! `assets/catalog.toml` and the default cluster.

use crate::domain::{MarketEntry, Registry};

/// Entry address given to the default cluster `local` of a new store: the
/// embedded gateway's default listen address.
pub const DEFAULT_ENTRY: &str = "http://127.0.0.1:8080";

const CATALOG: &str = include_str!("../../assets/catalog.toml");

#[derive(serde::Deserialize)]
struct Catalog {
    entry: Vec<MarketEntry>,
}

/// The entries loaded into a new store.
pub fn default_catalog() -> Vec<MarketEntry> {
    toml::from_str::<Catalog>(CATALOG)
        .expect("assets/catalog.toml is valid (checked by a test)")
        .entry
}

/// The registry of a new store (revision 0). `export` leaves out what still
/// equals it, since applying onto a new store finds it already there.
pub fn baseline() -> Registry {
    let mut reg = Registry::with_default_cluster(DEFAULT_ENTRY);
    for e in default_catalog() {
        reg.market.insert(e.name.clone(), e);
    }
    reg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::registry;

    #[test]
    fn catalog_parses_and_every_entry_is_valid() {
        let c = default_catalog();
        assert!(c.len() >= 10);
        for e in &c {
            assert!(registry::market::validate(e).is_empty(), "{e:?}");
        }
        assert!(
            c.iter().any(|e| !e.published),
            "some entries ship unpublished"
        );
        let v3 = c.iter().find(|e| e.name == "DeepSeek-V3").unwrap();
        assert_eq!(
            (v3.input_price, v3.output_price),
            (
                Some(crate::domain::Price(0.27)),
                Some(crate::domain::Price(1.10))
            )
        );
    }
}

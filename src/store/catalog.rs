//! The default marketplace catalog shipped in `assets/catalog.toml`.

use crate::domain::MarketEntry;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validate;

    #[test]
    fn catalog_parses_and_every_entry_is_valid() {
        let c = default_catalog();
        assert!(c.len() >= 10);
        for e in &c {
            assert!(validate::market_entry(e).is_empty(), "{e:?}");
        }
        assert!(
            c.iter().any(|e| !e.published),
            "some entries ship unpublished"
        );
    }
}

//! Marketplace entries: their shape, and adding, editing, publishing and
//! deleting them (an entry a model is registered from stays).

use super::checks::{existing, name_free};
use super::{Outcome, Registry, Touched};
use crate::domain::entities::MarketEntry;
use crate::domain::error::{DomainError, FieldError};
use crate::domain::{limits, validate};

const WHAT: &str = "marketplace entry";

/// The shape of an entry: everything that needs no other entity.
pub fn validate(m: &MarketEntry) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate::name("name", &m.name, &mut out);
    if m.provider.trim().is_empty() {
        out.push(FieldError::new("provider", "must not be empty"));
    } else {
        limits::PROVIDER.length("provider", &m.provider, &mut out);
    }
    validate::tags("tags", &m.tags, &mut out);
    limits::DESCRIPTION.length("description", &m.description, &mut out);
    for (field, price) in [
        ("input_price", m.input_price),
        ("output_price", m.output_price),
    ] {
        if let Some(p) = price
            && !(p.0.is_finite() && p.0 >= 0.0)
        {
            out.push(FieldError::new(
                field,
                format!("must be a finite number ≥ 0 (USD per 1M tokens), not {p}"),
            ));
        }
    }
    out
}

impl Registry {
    pub(super) fn add_market(
        &mut self,
        entry: MarketEntry,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&entry))?;
        name_free(&self.market, WHAT, &entry.name)?;
        touched.market.insert(entry.name.clone());
        self.market.insert(entry.name.clone(), entry);
        Ok(Outcome::Done)
    }

    /// Replace entry `name`; a rename is refused while a model is
    /// registered from it.
    pub(super) fn update_market(
        &mut self,
        name: String,
        entry: MarketEntry,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&entry))?;
        let old = existing(&self.market, "name", WHAT, &name)?;
        if *old == entry {
            return Ok(Outcome::Unchanged);
        }
        if entry.name != name {
            name_free(&self.market, WHAT, &entry.name)?;
            if self.models.contains_key(&name) {
                return Err(DomainError::refused(
                    "name",
                    format!("model '{name}' is registered from this entry; it cannot be renamed"),
                ));
            }
        }
        self.check_unpublish(&name, entry.published)?;
        self.market.remove(&name);
        touched.market.insert(name);
        touched.market.insert(entry.name.clone());
        self.market.insert(entry.name.clone(), entry);
        Ok(Outcome::Done)
    }

    pub(super) fn set_published(
        &mut self,
        name: String,
        published: bool,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        if existing(&self.market, "name", WHAT, &name)?.published == published {
            return Ok(Outcome::Unchanged);
        }
        self.check_unpublish(&name, published)?;
        self.market.get_mut(&name).expect("checked").published = published;
        touched.market.insert(name);
        Ok(Outcome::Done)
    }

    pub(super) fn delete_market(
        &mut self,
        name: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        existing(&self.market, "name", WHAT, &name)?;
        if self.models.contains_key(&name) {
            return Err(DomainError::refused(
                "name",
                format!("model '{name}' is registered from this entry; delete the model first"),
            ));
        }
        self.market.remove(&name);
        touched.market.insert(name);
        Ok(Outcome::Done)
    }

    /// An enabled model needs its entry published.
    fn check_unpublish(&self, name: &str, published: bool) -> Result<(), DomainError> {
        if !published && self.models.get(name).is_some_and(|m| m.enabled) {
            return Err(DomainError::refused(
                "published",
                format!(
                    "model '{name}' is enabled and needs this entry published; disable the model first"
                ),
            ));
        }
        Ok(())
    }
}

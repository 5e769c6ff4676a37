//! Marketplace entries in a file: `market: [{name, provider, tags,
//! description, published, input_price, output_price}]` (prices in USD per
//! 1M tokens, optional).

use serde::{Deserialize, Serialize};

use super::{ApplyAction, Planner, diff};
use crate::domain::entities::{MarketEntry, Price};
use crate::domain::error::DomainError;
use crate::domain::registry::{Change, Registry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDecl {
    pub name: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_price: Option<Price>,
}

impl MarketDecl {
    fn entry(&self) -> MarketEntry {
        MarketEntry {
            name: self.name.clone(),
            provider: self.provider.clone(),
            tags: self.tags.clone(),
            description: self.description.clone(),
            published: self.published,
            input_price: self.input_price,
            output_price: self.output_price,
        }
    }

    fn of(e: &MarketEntry) -> Self {
        Self {
            name: e.name.clone(),
            provider: e.provider.clone(),
            tags: e.tags.clone(),
            description: e.description.clone(),
            published: e.published,
            input_price: e.input_price,
            output_price: e.output_price,
        }
    }
}

/// The entries of `reg`, without those equal to `baseline`'s.
pub(super) fn export(reg: &Registry, baseline: Option<&Registry>) -> Vec<MarketDecl> {
    reg.market
        .values()
        .filter(|e| baseline.and_then(|b| b.market.get(&e.name)) != Some(*e))
        .map(MarketDecl::of)
        .collect()
}

impl Planner {
    pub(super) fn market(&mut self, path: &str, d: &MarketDecl) -> Result<(), DomainError> {
        let entry = d.entry();
        let Some(old) = self.scratch.market.get(&d.name).cloned() else {
            self.push(path, Change::AddMarket(entry))?;
            self.note("market", d.name.clone(), ApplyAction::Created, vec![]);
            return Ok(());
        };
        if old == entry {
            self.note("market", d.name.clone(), ApplyAction::Unchanged, vec![]);
            return Ok(());
        }
        let mut details = Vec::new();
        diff(&mut details, "provider", &old.provider, &entry.provider);
        diff(&mut details, "tags", &old.tags, &entry.tags);
        diff(
            &mut details,
            "description",
            &old.description,
            &entry.description,
        );
        diff(
            &mut details,
            "input_price",
            &old.input_price,
            &entry.input_price,
        );
        diff(
            &mut details,
            "output_price",
            &old.output_price,
            &entry.output_price,
        );
        if old.published != entry.published {
            details.push(
                if entry.published {
                    "published"
                } else {
                    "unpublished"
                }
                .into(),
            );
        }
        // Unpublish last, after the models it backs may have been disabled.
        let unpublish = old.published && !entry.published;
        let now = MarketEntry {
            published: old.published,
            ..entry.clone()
        };
        if !unpublish || now != old {
            let entry = if unpublish { now } else { entry };
            self.push(
                path,
                Change::UpdateMarket {
                    name: d.name.clone(),
                    entry,
                },
            )?;
        }
        if unpublish {
            self.late.push((
                format!("{path}.published"),
                Change::SetPublished {
                    name: d.name.clone(),
                    published: false,
                },
            ));
        }
        self.note("market", d.name.clone(), ApplyAction::Changed, details);
        Ok(())
    }
}

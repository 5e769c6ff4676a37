//! `maasctl market list|add|edit|publish|unpublish|delete`: the model marketplace.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{Table, or_dash};
use super::{CliError, CliResult, Ctx};
use crate::domain::{Change, MarketEntry, Price};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List marketplace entries.
    List {
        /// Only published entries.
        #[arg(long)]
        published: bool,
    },
    /// Add an entry (unpublished unless --publish).
    Add(AddArgs),
    /// Edit an entry's provider, description or prices (what is not given stays).
    Edit(EditArgs),
    /// Publish an entry: models registered from it can be enabled.
    Publish { name: String },
    /// Unpublish an entry (refused while an enabled model needs it).
    Unpublish { name: String },
    /// Delete an entry (refused while a model is registered from it).
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    name: String,
    #[arg(long)]
    provider: Option<String>,
    /// Tags (repeat, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    publish: bool,
    /// List price of input tokens, USD per 1M tokens (e.g. 0.27).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    input_price: Option<Price>,
    /// List price of output tokens, USD per 1M tokens (e.g. 1.10).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    output_price: Option<Price>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    name: String,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    description: Option<String>,
    /// Input price, USD per 1M tokens; `none` removes it.
    #[arg(long, value_name = "USD|none", value_parser = price_or_none, allow_negative_numbers = true)]
    input_price: Option<PriceEdit>,
    /// Output price, USD per 1M tokens; `none` removes it.
    #[arg(long, value_name = "USD|none", value_parser = price_or_none, allow_negative_numbers = true)]
    output_price: Option<PriceEdit>,
}

/// A new price, or none (removed).
#[derive(Debug, Clone, Copy)]
struct PriceEdit(Option<Price>);

fn price_or_none(s: &str) -> Result<PriceEdit, String> {
    match s.trim() {
        "none" | "-" => Ok(PriceEdit(None)),
        v => v.parse().map(|p| PriceEdit(Some(p))),
    }
}

fn edit(ctx: &Ctx, a: EditArgs) -> CliResult {
    let reg = ctx.load()?;
    let Some(old) = reg.market.get(&a.name) else {
        return Err(CliError(format!(
            "name: no marketplace entry '{}' (see `maasctl market list`)",
            a.name
        )));
    };
    let mut e = old.clone();
    if let Some(p) = a.provider {
        e.provider = p;
    }
    if let Some(d) = a.description {
        e.description = d;
    }
    if let Some(p) = a.input_price {
        e.input_price = p.0;
    }
    if let Some(p) = a.output_price {
        e.output_price = p.0;
    }
    ctx.apply(vec![Change::UpdateMarket {
        name: a.name.clone(),
        entry: e.clone(),
    }])?;
    ctx.emit(&e, || format!("edited marketplace entry {}", e.name))
}

fn price_text(p: Option<Price>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p}"))
}

#[derive(Debug, Serialize)]
struct EntryView<'a> {
    #[serde(flatten)]
    entry: &'a MarketEntry,
    /// A model is registered from this entry.
    registered: bool,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::List { published } => list(ctx, published),
        Cmd::Add(a) => {
            let e = MarketEntry {
                name: a.name,
                provider: a.provider.unwrap_or_default(),
                tags: a.tags.into_iter().filter(|t| !t.is_empty()).collect(),
                description: a.description.unwrap_or_default(),
                published: a.publish,
                input_price: a.input_price,
                output_price: a.output_price,
            };
            ctx.apply(vec![Change::AddMarket(e.clone())])?;
            ctx.emit(&e, || {
                let state = if e.published {
                    "published"
                } else {
                    "unpublished"
                };
                format!("added marketplace entry {} ({state})", e.name)
            })
        }
        Cmd::Edit(a) => edit(ctx, a),
        Cmd::Publish { name } => set_published(ctx, name, true),
        Cmd::Unpublish { name } => set_published(ctx, name, false),
        Cmd::Delete { name } => {
            ctx.apply(vec![Change::DeleteMarket { name: name.clone() }])?;
            ctx.emit(&serde_json::json!({ "deleted": name }), || {
                format!("deleted marketplace entry {name}")
            })
        }
    }
}

fn set_published(ctx: &Ctx, name: String, published: bool) -> CliResult {
    ctx.apply(vec![Change::SetPublished {
        name: name.clone(),
        published,
    }])?;
    let verb = if published {
        "published"
    } else {
        "unpublished"
    };
    ctx.emit(
        &serde_json::json!({ "name": name, "published": published }),
        || format!("{verb} marketplace entry {name}"),
    )
}

fn list(ctx: &Ctx, only_published: bool) -> CliResult {
    let reg = ctx.load()?;
    let views: Vec<EntryView> = reg
        .market
        .values()
        .filter(|e| !only_published || e.published)
        .map(|e| EntryView {
            entry: e,
            registered: reg.models.contains_key(&e.name),
        })
        .collect();
    ctx.emit(&views, || {
        let mut t = Table::new([
            "NAME",
            "PROVIDER",
            "TAGS",
            "PUBLISHED",
            "MODEL",
            "IN $/1M",
            "OUT $/1M",
            "DESCRIPTION",
        ]);
        for v in &views {
            let e = v.entry;
            t.row([
                e.name.clone(),
                e.provider.clone(),
                or_dash(e.tags.join(",")),
                if e.published { "yes" } else { "no" }.into(),
                if v.registered { "registered" } else { "-" }.into(),
                price_text(e.input_price),
                price_text(e.output_price),
                or_dash(e.description.clone()),
            ]);
        }
        t.render()
    })
}

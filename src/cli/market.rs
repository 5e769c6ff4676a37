//! `maasctl market list|add|publish|unpublish|delete`: the model marketplace.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{Table, or_dash};
use super::{CliResult, Ctx};
use crate::domain::{Change, MarketEntry};

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
                or_dash(e.description.clone()),
            ]);
        }
        t.render()
    })
}

//! `maasctl apply -f FILE` and `maasctl export`: the registry as a
//! declarative file (format and semantics in `domain::manifest`).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::output::Table;
use super::refs::read_ref;
use super::{CliError, CliResult, Ctx};
use crate::domain::manifest::{self, ApplyAction, Manifest};
use crate::ops::manifest::ManifestOutcome;
use crate::store::catalog;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The file: YAML (.yaml, .yml, .json) or TOML (.toml).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Report what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Default: yaml (json with --output json).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Include the default catalog and cluster even where a new store has
    /// them already.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    fn of(path: &Path) -> CliResult<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("json") => Ok(Format::Json),
            Some("toml") => Ok(Format::Toml),
            _ => Err(CliError::field(
                "file",
                format!(
                    "{} does not end in .yaml, .yml, .json or .toml; the extension tells its format",
                    path.display()
                ),
            )),
        }
    }
}

/// Read and parse a manifest; errors name the file and the place in it.
pub fn read_manifest(path: &Path) -> CliResult<Manifest> {
    let format = Format::of(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::field("file", format!("cannot read {}: {e}", path.display())))?;
    let at = path.display();
    match format {
        // YAML is a superset of JSON: one parser for both.
        Format::Yaml | Format::Json => {
            serde_yaml_ng::from_str(&text).map_err(|e| CliError::field(at, e))
        }
        Format::Toml => toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .map_or(String::new(), |l| format!("line {l}: "));
            CliError::field(at, format!("{line}{}", e.message()))
        }),
    }
}

pub fn apply(ctx: &Ctx, a: ApplyArgs) -> CliResult {
    let m = read_manifest(&a.file)?;
    let source = a.file.file_name().map_or_else(
        || a.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let out = ctx
        .backend()
        .apply_manifest(&m, &read_ref, a.dry_run, &source)?;
    ctx.emit(&out, || render(&out))
}

fn render(out: &ManifestOutcome) -> String {
    if out.report.is_empty() {
        return "the file declares nothing; nothing was changed".into();
    }
    let mut t = Table::new(["KIND", "NAME", "ACTION", "DETAILS"]);
    for r in &out.report {
        t.row([
            r.kind.clone(),
            r.name.clone(),
            r.action.as_str().into(),
            r.details.join(", "),
        ]);
    }
    let count = |a: ApplyAction| out.report.iter().filter(|r| r.action == a).count();
    let summary = format!(
        "{} created, {} changed, {} unchanged",
        count(ApplyAction::Created),
        count(ApplyAction::Changed),
        count(ApplyAction::Unchanged)
    );
    let mut s = t.render();
    s.push_str(&match (out.dry_run, out.changed) {
        (true, _) => format!("dry run: would apply {summary}; nothing was changed\n"),
        (false, true) => format!("applied at revision {}: {summary}\n", out.revision),
        (false, false) => format!("nothing to change (revision {}): {summary}\n", out.revision),
    });
    if !out.secrets.is_empty() {
        s.push_str("\nNew key secrets, shown only now and never again; store them safely:\n");
        let mut t = Table::new(["KEY", "ID", "SECRET"]);
        for n in &out.secrets {
            t.row([
                format!("{}/{}", n.workspace, n.name),
                n.id.clone(),
                n.secret.clone(),
            ]);
        }
        s.push_str(&t.render());
    }
    s
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> CliResult {
    let reg = ctx.load()?;
    let baseline = (!a.all).then(catalog::baseline);
    let m = manifest::export(&reg, baseline.as_ref());
    let header = format!(
        "# maasctl export, registry revision {}. Secrets are not included: keys are\n# listed by name, upstream keys as their env:/file: references (if any).\n",
        reg.revision
    );
    let format = a.format.unwrap_or(if ctx.json() {
        Format::Json
    } else {
        Format::Yaml
    });
    let body = match format {
        Format::Yaml => serde_yaml_ng::to_string(&m)
            .map(|b| header + &b)
            .map_err(|e| CliError(e.to_string()))?,
        Format::Toml => toml::to_string(&m)
            .map(|b| header + &b)
            .map_err(|e| CliError(e.to_string()))?,
        Format::Json => {
            serde_json::to_string_pretty(&m).map_err(|e| CliError(e.to_string()))? + "\n"
        }
    };
    super::output::print_out(&body)
}

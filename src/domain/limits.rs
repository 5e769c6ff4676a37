//! How long or how many: the one table of limits on what the registry
//! stores. The registry checks every change against it, so the CLI, the
//! console's forms, `apply -f` and the admin API refuse the same values
//! with the same words: `description: 10485760 characters is over the
//! limit of 1024`. docs/limits.md lists the table (a test keeps the two
//! equal). Lengths count characters (Unicode scalar values), not bytes.

use super::error::FieldError;

/// The most of something one field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The fields it bounds, as docs/limits.md names them.
    pub what: &'static str,
    /// The most allowed.
    pub max: usize,
    /// What is counted: `characters`, `tags`, `endpoints`.
    pub unit: &'static str,
}

/// Workspace, cluster, API key, marketplace entry and model names; the
/// names rules and models refer to (`workspace`, `key`, `cluster`).
pub const NAME: Limit = chars(
    "names (workspace, cluster, API key, marketplace entry, model) and the names rules and models refer to",
    64,
);
/// Workspace and marketplace entry descriptions.
pub const DESCRIPTION: Limit = chars("descriptions (workspace, marketplace entry)", 1024);
/// A marketplace entry's provider.
pub const PROVIDER: Limit = chars("marketplace entry provider", 64);
/// One tag of a model or marketplace entry.
pub const TAG: Limit = chars("one tag (model, marketplace entry)", 32);
/// Tags of one model or marketplace entry.
pub const TAGS: Limit = Limit {
    what: "tags of one model or marketplace entry",
    max: 16,
    unit: "tags",
};
/// Endpoint URLs and cluster entry addresses.
pub const URL: Limit = chars("URLs (endpoint url, cluster entry_address)", 2048);
/// The upstream's name of a model.
pub const MODEL_ID: Limit = chars("model_id", 256);
/// Endpoints of one model.
pub const ENDPOINTS: Limit = Limit {
    what: "endpoints of one model",
    max: 128,
    unit: "endpoints",
};
/// Fallback models of one model (docs/gateway.md, "Fallback models").
pub const FALLBACKS: Limit = Limit {
    what: "fallbacks of one model",
    max: 3,
    unit: "fallback models",
};
/// An upstream API key's value.
pub const UPSTREAM_KEY: Limit = chars("upstream API key (endpoint api_key)", 4096);
/// `env:VAR` / `file:PATH` references and CA file paths.
pub const PATH: Limit = chars(
    "key references (env:VAR, file:PATH) and CA file paths (endpoint ca_file)",
    1024,
);
/// A platform key's id: `key_` and up to 32 letters or digits.
pub const KEY_ID: Limit = chars("API key id", 36);
/// The hint of a platform key's secret: its last four characters.
pub const SECRET_HINT: Limit = chars("API key secret_hint", 4);

/// Every limit, in the order docs/limits.md lists them.
pub const LIMITS: [Limit; 13] = [
    NAME,
    DESCRIPTION,
    PROVIDER,
    TAG,
    TAGS,
    URL,
    MODEL_ID,
    ENDPOINTS,
    FALLBACKS,
    UPSTREAM_KEY,
    PATH,
    KEY_ID,
    SECRET_HINT,
];

const fn chars(what: &'static str, max: usize) -> Limit {
    Limit {
        what,
        max,
        unit: "characters",
    }
}

impl Limit {
    /// Whether `n` is within the limit; if not, says so for `field`:
    /// `{n} {unit} is over the limit of {max}`.
    pub fn count(self, field: &str, n: usize, out: &mut Vec<FieldError>) -> bool {
        if n <= self.max {
            return true;
        }
        out.push(FieldError::new(
            field,
            format!("{n} {} is over the limit of {}", self.unit, self.max),
        ));
        false
    }

    /// Whether `value` is short enough (in characters); if not, says so
    /// for `field`.
    pub fn length(self, field: &str, value: &str, out: &mut Vec<FieldError>) -> bool {
        self.count(field, value.chars().count(), out)
    }
}

/// `name` as an error shows it: cut at [`NAME`]'s length with `…`, so a
/// refusal never echoes a megabyte of input.
pub fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    match name.char_indices().nth(NAME.max) {
        None => name.into(),
        Some((end, _)) => format!("{}…", &name[..end]).into(),
    }
}

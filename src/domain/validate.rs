//! Field validation that needs no registry context: names, URLs, tags,
//! upstream keys and key references: the pieces each entity's shape check
//! (`registry::<entity>::validate`, next to its changes, which forms also
//! call before they send) is made of. The registry adds the checks that
//! need context (existence, uniqueness, published, in use).

use super::error::FieldError;
use super::limits;

/// Names: 1–64 characters from letters, digits and `-_.:/@+`, not starting
/// with a separator. Covers marketplace names like `Qwen/Qwen2.5-72B-Instruct`.
pub fn name(field: &str, value: &str, out: &mut Vec<FieldError>) {
    if value.trim().is_empty() {
        out.push(FieldError::new(field, "must not be empty"));
        return;
    }
    if !limits::NAME.length(field, value, out) {
        return;
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_alphanumeric() || "-_.:/@+".contains(*c)))
    {
        out.push(FieldError::new(
            field,
            format!(
                "contains {}; use letters, digits and - _ . : / @ +",
                describe_char(c)
            ),
        ));
        return;
    }
    if value.starts_with(['-', '.', '/', ':']) {
        out.push(FieldError::new(field, "must start with a letter or digit"));
    }
}

fn describe_char(c: char) -> String {
    if c == ' ' {
        "a space".into()
    } else if c.is_control() {
        format!("a control character (U+{:04X})", c as u32)
    } else {
        format!("'{c}'")
    }
}

/// A base URL that parses, is http or https, has a host and no query/fragment.
pub fn base_url(field: &str, value: &str, out: &mut Vec<FieldError>) {
    let v = value.trim();
    if v.is_empty() {
        out.push(FieldError::new(field, "must not be empty"));
        return;
    }
    if !limits::URL.length(field, value, out) {
        return;
    }
    if v != value {
        out.push(FieldError::new(field, "must not start or end with spaces"));
        return;
    }
    match url::Url::parse(v) {
        Err(e) => out.push(FieldError::new(
            field,
            format!("'{v}' is not a valid URL ({e}); expected e.g. https://api.deepseek.com"),
        )),
        Ok(u) => {
            if u.scheme() != "http" && u.scheme() != "https" {
                out.push(FieldError::new(
                    field,
                    format!(
                        "scheme '{}' is not supported; use http or https",
                        u.scheme()
                    ),
                ));
            } else if u.host_str().is_none_or(str::is_empty) {
                out.push(FieldError::new(field, "has no host"));
            } else if u.query().is_some() || u.fragment().is_some() {
                out.push(FieldError::new(
                    field,
                    "must not have a query (?…) or fragment (#…)",
                ));
            } else if !u.username().is_empty() || u.password().is_some() {
                out.push(FieldError::new(
                    field,
                    "must not carry credentials; put the upstream key in the endpoint's api key",
                ));
            }
        }
    }
}

/// A health probe's target: a path on the endpoint's host (`/health`) or a
/// full URL on the endpoint's own scheme, host and port; never a route that
/// spends tokens.
pub fn probe_target(field: &str, target: &str, endpoint_url: &str, out: &mut Vec<FieldError>) {
    if !limits::URL.length(field, target, out) {
        return;
    }
    if let Some(c) = target.chars().find(|c| c.is_whitespace() || c.is_control()) {
        out.push(FieldError::new(
            field,
            format!("must not contain {}", describe_char(c)),
        ));
        return;
    }
    if crate::domain::Probe::spends_tokens(target) {
        out.push(FieldError::new(
            field,
            format!("'{target}' is a completion or embeddings route; probes must not spend tokens (use models, or a health path such as /health)"),
        ));
        return;
    }
    if target.starts_with('/') {
        return;
    }
    let (Ok(probe), Ok(base)) = (url::Url::parse(target), url::Url::parse(endpoint_url)) else {
        out.push(FieldError::new(
            field,
            format!("'{target}' is neither a path starting with / nor a valid http(s) URL"),
        ));
        return;
    };
    if probe.scheme() != "http" && probe.scheme() != "https" {
        out.push(FieldError::new(
            field,
            "use an http or https URL, or a path starting with /",
        ));
    } else if probe.origin() != base.origin() {
        out.push(FieldError::new(
            field,
            format!(
                "'{target}' is not on the endpoint's host ({}); a probe checks this endpoint, so give a path (/health) or a URL on the same scheme, host and port",
                base.origin().ascii_serialization()
            ),
        ));
    }
}

/// Tags: a few short words, no spaces or commas, no duplicates.
pub fn tags(field: &str, tags: &[String], out: &mut Vec<FieldError>) {
    if !limits::TAGS.count(field, tags.len(), out) {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if t.is_empty() {
            out.push(FieldError::new(f, "must not be empty"));
            continue;
        }
        if !limits::TAG.length(&f, t, out) {
            continue;
        }
        if let Some(c) = t
            .chars()
            .find(|c| c.is_whitespace() || *c == ',' || c.is_control())
        {
            out.push(FieldError::new(
                f,
                format!("'{t}' contains {}", describe_char(c)),
            ));
        } else if !seen.insert(t.as_str()) {
            out.push(FieldError::new(f, format!("'{t}' is listed twice")));
        }
    }
}

/// Split a comma/space separated tag list as typed in a form or flag.
pub fn parse_tags(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// An upstream API key value: no whitespace or control characters (it goes
/// into an HTTP header).
pub fn upstream_key(field: &str, key: &str, out: &mut Vec<FieldError>) {
    if key.is_empty() {
        out.push(FieldError::new(
            field,
            "must not be empty (leave it out for no key)",
        ));
        return;
    }
    if !limits::UPSTREAM_KEY.length(field, key, out) {
        return;
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        out.push(FieldError::new(
            field,
            "must not contain spaces, newlines or control characters",
        ));
    }
}

/// A reference to a secret kept outside maasctl: `env:VAR` or `file:PATH`.
pub fn key_reference(field: &str, r: &str, out: &mut Vec<FieldError>) {
    if !limits::PATH.length(field, r, out) {
        return;
    }
    let ok = match r.split_once(':') {
        Some(("env", var)) => {
            !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        Some(("file", path)) => !path.trim().is_empty(),
        _ => false,
    };
    if !ok {
        out.push(FieldError::new(
            field,
            format!("'{r}' is not a reference; use env:VARIABLE or file:PATH"),
        ));
    }
}

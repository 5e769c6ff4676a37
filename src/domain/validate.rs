//! Field validation that needs no registry context. The registry adds the
//! checks that do (existence, uniqueness, published, in use).

use super::entities::*;
use super::error::FieldError;

/// Longest name of any entity.
pub const MAX_NAME: usize = 64;
/// Longest tag.
pub const MAX_TAG: usize = 32;
/// Longest rule window: 31 days.
pub const MAX_DURATION_SECS: u32 = 31 * 24 * 3600;

/// Names: 1–64 characters from letters, digits and `-_.:/@+`, not starting
/// with a separator. Covers marketplace names like `Qwen/Qwen2.5-72B-Instruct`.
pub fn name(field: &str, value: &str, out: &mut Vec<FieldError>) {
    if value.trim().is_empty() {
        out.push(FieldError::new(field, "must not be empty"));
        return;
    }
    if value.chars().count() > MAX_NAME {
        out.push(FieldError::new(
            field,
            format!(
                "is {} characters long; at most {MAX_NAME} are allowed",
                value.chars().count()
            ),
        ));
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

/// Tags: short words, no spaces or commas, no duplicates.
pub fn tags(field: &str, tags: &[String], out: &mut Vec<FieldError>) {
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if t.is_empty() {
            out.push(FieldError::new(f, "must not be empty"));
        } else if t.chars().count() > MAX_TAG {
            out.push(FieldError::new(
                f,
                format!("'{t}' is longer than {MAX_TAG} characters"),
            ));
        } else if let Some(c) = t
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
    } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        out.push(FieldError::new(
            field,
            "must not contain spaces, newlines or control characters",
        ));
    }
}

/// A reference to a secret kept outside maasctl: `env:VAR` or `file:PATH`.
pub fn key_reference(field: &str, r: &str, out: &mut Vec<FieldError>) {
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

/// The shape of a model: everything that needs no other entity.
pub fn model_spec(spec: &ModelSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    name("name", &spec.name, &mut out);
    if spec.cluster.trim().is_empty() {
        out.push(FieldError::new("cluster", "must not be empty"));
    }
    if spec.model_id.trim().is_empty() {
        out.push(FieldError::new(
            "model_id",
            "must not be empty (the upstream's model name, e.g. deepseek-chat)",
        ));
    } else if spec
        .model_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        out.push(FieldError::new(
            "model_id",
            "must not contain spaces, quotes, backslashes or control characters",
        ));
    } else if spec.model_id.len() > 256 {
        out.push(FieldError::new("model_id", "is longer than 256 characters"));
    }
    if spec.endpoints.is_empty() {
        out.push(FieldError::new(
            "endpoints",
            "at least one endpoint is required",
        ));
    }
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let f = |k: &str| format!("endpoints[{i}].{k}");
        base_url(&f("url"), &ep.url, &mut out);
        if let Some(k) = &ep.api_key {
            upstream_key(&f("api_key"), k.expose(), &mut out);
        }
        if let Some(r) = &ep.api_key_ref {
            if ep.api_key.is_none() {
                out.push(FieldError::new(
                    f("api_key_ref"),
                    "names where the key came from, but the endpoint has no key",
                ));
            } else {
                key_reference(&f("api_key_ref"), r, &mut out);
            }
        }
        if let Some(ca) = &ep.ca_file
            && ca.trim().is_empty()
        {
            out.push(FieldError::new(
                f("ca_file"),
                "must not be empty (leave it out for the system roots only)",
            ));
        }
    }
    match spec.policy {
        Policy::Weighted => {
            let mut sum: u64 = 0;
            let mut missing = false;
            for (i, ep) in spec.endpoints.iter().enumerate() {
                match ep.weight {
                    None => {
                        missing = true;
                        out.push(FieldError::new(
                            format!("endpoints[{i}].weight"),
                            "is required under the weighted policy",
                        ));
                    }
                    Some(w) if w > 100 => out.push(FieldError::new(
                        format!("endpoints[{i}].weight"),
                        format!("{w} is more than 100"),
                    )),
                    Some(w) => sum += u64::from(w),
                }
            }
            if !missing && !spec.endpoints.is_empty() && sum != 100 {
                out.push(FieldError::new(
                    "weight",
                    format!("endpoint weights sum to {sum}; under the weighted policy they must sum to exactly 100"),
                ));
            }
        }
        Policy::RoundRobin | Policy::Random => {
            for (i, ep) in spec.endpoints.iter().enumerate() {
                if ep.weight.is_some() {
                    out.push(FieldError::new(
                        format!("endpoints[{i}].weight"),
                        format!("weights are only used by the weighted policy (policy is {}); remove it or choose weighted", spec.policy),
                    ));
                }
            }
        }
    }
    tags("tags", &spec.tags, &mut out);
    out
}

/// The shape of a rule: numbers in range, key given exactly when targeted.
pub fn rule_spec(spec: &RuleSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    if spec.workspace.trim().is_empty() {
        out.push(FieldError::new("workspace", "must not be empty"));
    }
    match (spec.target, &spec.key_id) {
        (RuleTarget::ApiKey, None) => out.push(FieldError::new("key", "is required when the target is api-key")),
        (RuleTarget::ApiKey, Some(k)) if k.trim().is_empty() => {
            out.push(FieldError::new("key", "is required when the target is api-key"))
        }
        (RuleTarget::Workspace, Some(_)) => out.push(FieldError::new(
            "key",
            "must be left out when the target is workspace (the rule counts all the workspace's keys)",
        )),
        _ => {}
    }
    if spec.limit < 1 {
        out.push(FieldError::new(
            "limit",
            format!(
                "{} is less than 1; a rule admits at least 1 request",
                spec.limit
            ),
        ));
    }
    if spec.duration_secs < 1 {
        out.push(FieldError::new(
            "duration",
            format!("{} is less than 1 second", spec.duration_secs),
        ));
    } else if spec.duration_secs > MAX_DURATION_SECS {
        out.push(FieldError::new(
            "duration",
            format!(
                "{} seconds is longer than the maximum of 31 days ({MAX_DURATION_SECS})",
                spec.duration_secs
            ),
        ));
    }
    out
}

/// A cluster's entry address: the base URL of its gateway.
pub fn cluster(c: &Cluster) -> Vec<FieldError> {
    let mut out = Vec::new();
    name("name", &c.name, &mut out);
    base_url("entry_address", &c.entry_address, &mut out);
    if c.entry_address.trim_end_matches('/').ends_with("/v1") {
        out.push(FieldError::new(
            "entry_address",
            "must be the gateway's base address without /v1 (the access path adds it)",
        ));
    }
    out
}

pub fn market_entry(m: &MarketEntry) -> Vec<FieldError> {
    let mut out = Vec::new();
    name("name", &m.name, &mut out);
    if m.provider.trim().is_empty() {
        out.push(FieldError::new("provider", "must not be empty"));
    }
    tags("tags", &m.tags, &mut out);
    if m.description.chars().count() > 1000 {
        out.push(FieldError::new(
            "description",
            "is longer than 1000 characters",
        ));
    }
    out
}

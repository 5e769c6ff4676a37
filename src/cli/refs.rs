//! Secrets on the command line without putting them in shell history
//! (`env:VAR`, `file:PATH`, `stdin`), and the `--endpoint` syntax.

use std::io::Read;

use super::{CliError, CliResult};
use crate::domain::{Endpoint, Probe, Registry, Secret, validate};

/// Read a reference: `env:VAR` (an environment variable) or `file:PATH` (a
/// file's content, trailing newline removed; relative paths from the
/// current directory). The error says why it cannot be read.
pub fn read_ref(r: &str) -> Result<String, String> {
    let value = match r.split_once(':') {
        Some(("env", var)) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?
        }
        Some(("file", path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read file {path}: {e}"))?
        }
        _ => return Err(format!("'{r}' is not env:VARIABLE or file:PATH")),
    };
    non_empty(value, r)
}

/// One secret from standard input (trailing newline removed).
pub fn read_stdin() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    non_empty(s, "standard input")
}

fn non_empty(mut s: String, from: &str) -> Result<String, String> {
    let len = s.trim_end_matches(['\n', '\r']).len();
    s.truncate(len);
    if s.is_empty() {
        Err(format!("{from} is empty"))
    } else {
        Ok(s)
    }
}

/// How an `--endpoint` gives its upstream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyArg {
    /// `key=` left out: keep the key stored for this URL (none when new).
    Keep,
    /// `key=none`: no key.
    Remove,
    /// `key=env:VAR` / `key=file:PATH`: read now, remembered for `export`.
    Ref(String),
    /// `key=stdin`: read from standard input.
    Stdin,
    /// `key=sk-…`: the value itself (lands in shell history; prefer the others).
    Value(String),
}

/// One `--endpoint URL[,key=…][,weight=N][,probe=models|none|/PATH|URL][,ca=PATH][,disabled][,drain]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointArg {
    pub url: String,
    pub key: KeyArg,
    pub weight: Option<u32>,
    pub probe: Probe,
    pub disabled: bool,
    pub drain: bool,
    pub ca_file: Option<String>,
}

/// Parse the `i`th `--endpoint` (errors name `endpoints[i]…`).
pub fn parse_endpoint(i: usize, s: &str) -> CliResult<EndpointArg> {
    let f = |k: &str| format!("endpoints[{i}].{k}");
    let mut parts = s.split(',');
    let first = parts.next().unwrap_or_default().trim();
    let url = first.strip_prefix("url=").unwrap_or(first).to_string();
    let mut ep = EndpointArg {
        url,
        key: KeyArg::Keep,
        weight: None,
        probe: Probe::default(),
        disabled: false,
        drain: false,
        ca_file: None,
    };
    for part in parts {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (k.trim(), v.trim()) {
            ("key", "none") => ep.key = KeyArg::Remove,
            ("key", "stdin") => ep.key = KeyArg::Stdin,
            ("key", "") => return Err(CliError::field(f("api_key"), "key= needs a value")),
            ("key", r) if r.starts_with("env:") || r.starts_with("file:") => {
                let mut errs = Vec::new();
                validate::key_reference(&f("api_key"), r, &mut errs);
                if let Some(e) = errs.first() {
                    return Err(CliError(e.to_string()));
                }
                ep.key = KeyArg::Ref(r.to_string());
            }
            ("key", v) => ep.key = KeyArg::Value(v.to_string()),
            ("weight", v) => {
                ep.weight = Some(v.parse().map_err(|_| {
                    CliError::field(
                        f("weight"),
                        format!("'{v}' is not a whole number from 0 to 100"),
                    )
                })?)
            }
            ("probe", v) => ep.probe = v.parse().map_err(|e| CliError::field(f("probe"), e))?,
            ("ca", v) => ep.ca_file = Some(v.to_string()),
            ("disabled", "" | "true") => ep.disabled = true,
            ("disabled", "false") => ep.disabled = false,
            ("drain", "" | "true") => ep.drain = true,
            ("drain", "false") => ep.drain = false,
            (k, _) => {
                return Err(CliError::field(
                    format!("endpoints[{i}]"),
                    format!(
                        "unknown option '{k}' in '{s}'; use URL[,key=env:VAR|file:PATH|stdin|none|VALUE][,weight=N][,probe=models|none|/PATH|URL][,ca=PATH][,disabled][,drain]"
                    ),
                ));
            }
        }
    }
    Ok(ep)
}

/// An endpoint's key as decided before touching the store (reading stdin or
/// a file once, even if the change is retried).
#[derive(Debug, Clone)]
pub enum KeyChoice {
    Keep,
    Set(Option<Secret>, Option<String>),
}

/// Parse every `--endpoint` and read the keys they reference.
pub fn read_endpoints(args: &[String]) -> CliResult<Vec<(EndpointArg, KeyChoice)>> {
    let mut stdin_used = false;
    args.iter()
        .enumerate()
        .map(|(i, s)| {
            let ep = parse_endpoint(i, s)?;
            let field = format!("endpoints[{i}].api_key");
            let choice = match &ep.key {
                KeyArg::Keep => KeyChoice::Keep,
                KeyArg::Remove => KeyChoice::Set(None, None),
                KeyArg::Value(v) => KeyChoice::Set(Some(Secret::new(v.clone())), None),
                KeyArg::Ref(r) => {
                    let v = read_ref(r).map_err(|e| CliError::field(&field, e))?;
                    KeyChoice::Set(Some(Secret::new(v)), Some(r.clone()))
                }
                KeyArg::Stdin => {
                    if std::mem::replace(&mut stdin_used, true) {
                        return Err(CliError::field(
                            field,
                            "only one endpoint can read its key from stdin",
                        ));
                    }
                    let v = read_stdin().map_err(|e| CliError::field(&field, e))?;
                    KeyChoice::Set(Some(Secret::new(v)), None)
                }
            };
            Ok((ep, choice))
        })
        .collect()
}

/// The endpoints to store for `model`: a key left out is the one `reg` has
/// for the same URL (same occurrence), so editing weights does not drop keys.
pub fn build_endpoints(
    args: &[(EndpointArg, KeyChoice)],
    reg: &Registry,
    model: &str,
) -> Vec<Endpoint> {
    args.iter()
        .enumerate()
        .map(|(i, (a, choice))| {
            let (api_key, api_key_ref) = match choice {
                KeyChoice::Set(k, r) => (k.clone(), r.clone()),
                KeyChoice::Keep => {
                    let nth = args[..i].iter().filter(|(p, _)| p.url == a.url).count();
                    reg.stored_endpoint(model, &a.url, nth)
                        .map_or((None, None), |e| (e.api_key.clone(), e.api_key_ref.clone()))
                }
            };
            Endpoint {
                url: a.url.clone(),
                api_key,
                api_key_ref,
                weight: a.weight,
                probe: a.probe.clone(),
                disabled: a.disabled,
                drain: a.drain,
                ca_file: a.ca_file.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_syntax() {
        let e = parse_endpoint(
            0,
            "https://a.example,key=env:A_KEY,weight=70,probe=none,disabled",
        )
        .unwrap();
        assert_eq!(e.url, "https://a.example");
        assert_eq!(e.key, KeyArg::Ref("env:A_KEY".into()));
        assert_eq!(
            (e.weight, e.probe.clone(), e.disabled),
            (Some(70), Probe::None, true)
        );
        let e = parse_endpoint(0, "http://a:8000/v1,probe=/health").unwrap();
        assert_eq!(e.probe, Probe::Get("/health".into()));
        let err = parse_endpoint(0, "http://a:8000/v1,probe=/v1/chat/completions").unwrap_err();
        assert!(err.to_string().contains("must not spend tokens"), "{err}");
        let e = parse_endpoint(1, "url=http://b,key=none,ca=/etc/ca.pem").unwrap();
        assert_eq!(
            (e.key, e.ca_file.as_deref()),
            (KeyArg::Remove, Some("/etc/ca.pem"))
        );
        let err = parse_endpoint(2, "http://c,wieght=3")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("endpoints[2]: unknown option 'wieght'"),
            "{err}"
        );
        let err = parse_endpoint(0, "http://c,weight=x")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("endpoints[0].weight: 'x' is not a whole number"),
            "{err}"
        );
        let err = parse_endpoint(0, "http://c,key=env:")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("endpoints[0].api_key: 'env:' is not a reference"),
            "{err}"
        );
    }
}

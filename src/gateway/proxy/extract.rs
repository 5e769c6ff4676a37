//! Reading the top-level `model` field of a request body without building a
//! JSON tree.
//!
//! The request path needs two things from the body: the MaaS model name (to
//! route) and where its string token sits (to splice in the upstream's model
//! ID). Parsing the whole document into a tree would allocate for every
//! message of every request; this scanner walks the top-level object once,
//! skipping nested values by depth, and allocates nothing unless the name
//! itself contains escapes.
//!
//! What it checks: the body is one JSON object; top-level keys are
//! well-formed strings followed by `:`; values are separated by `,`; strings
//! end; brackets balance; nothing follows the object. Nested values are
//! skipped, not validated (the upstream validates what it receives). A body
//! with two top-level `model` keys is refused: parsers disagree on which one
//! wins, and the gateway must route and rewrite the same one the upstream
//! reads.

use std::borrow::Cow;
use std::ops::Range;

/// The `model` field found in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelField<'a> {
    /// The decoded name.
    pub name: Cow<'a, str>,
    /// Byte range of the string token, quotes included: replace
    /// `body[span]` with the new quoted value to rewrite it.
    pub span: Range<usize>,
    /// The completion caps found on the way (token rules reserve them).
    pub caps: CapFields,
}

/// Where the top-level `max_tokens`, `max_completion_tokens` and `n`
/// values are (found in the same pass as `model`, so a token rule's
/// reservation does not parse the body a second time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapFields {
    pub max_tokens: Option<Range<usize>>,
    pub max_completion_tokens: Option<Range<usize>>,
    pub n: Option<Range<usize>>,
    /// One of them appeared twice.
    pub duplicate: bool,
}

impl CapFields {
    /// Read as the estimator's [`Caps`](crate::gateway::limiter::estimate::Caps),
    /// as serde would: a cap that is `null` or absent is `None`; any value
    /// that is not a whole number in `u64`, or a cap given twice, makes the
    /// caps unreadable (`None`: the request reserves the model's default).
    pub fn read(&self, body: &[u8]) -> Option<crate::gateway::limiter::estimate::Caps> {
        if self.duplicate {
            return None;
        }
        let field = |r: &Option<Range<usize>>| -> Result<Option<u64>, ()> {
            let Some(r) = r else { return Ok(None) };
            let v = &body[r.clone()];
            if v == b"null" {
                return Ok(None);
            }
            // JSON's integers: digits, no sign, no leading zero.
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || (v.len() > 1 && v[0] == b'0') {
                return Err(());
            }
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(Some)
                .ok_or(())
        };
        Some(crate::gateway::limiter::estimate::Caps {
            max_tokens: field(&self.max_tokens).ok()?,
            max_completion_tokens: field(&self.max_completion_tokens).ok()?,
            n: field(&self.n).ok()?,
        })
    }

    /// The slot of a top-level key that names a cap.
    fn slot(&mut self, key: &[u8]) -> Option<&mut Option<Range<usize>>> {
        match key {
            b"max_tokens" => Some(&mut self.max_tokens),
            b"max_completion_tokens" => Some(&mut self.max_completion_tokens),
            b"n" => Some(&mut self.n),
            _ => None,
        }
    }
}

/// Why a body was refused. Each variant maps to a 400 message a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// Empty body.
    Empty,
    /// Not a JSON object at the top level.
    NotObject,
    /// Broken JSON at byte `at`.
    Malformed { at: usize, problem: &'static str },
    /// No top-level `model` key.
    Missing,
    /// `model` is present but not a string.
    NotString,
    /// `model` is an empty string.
    EmptyName,
    /// Two top-level `model` keys.
    Duplicate,
}

impl ExtractError {
    /// A sentence for the 400 body.
    pub fn message(&self) -> String {
        match self {
            ExtractError::Empty => {
                "The request body is empty; send a JSON object with a \"model\" field.".into()
            }
            ExtractError::NotObject => {
                "The request body must be a JSON object (starting with '{'), with a \"model\" field."
                    .into()
            }
            ExtractError::Malformed { at, problem } => format!(
                "The request body is not valid JSON: {problem} at byte {at}. Check the body is complete, UTF-8 encoded JSON."
            ),
            ExtractError::Missing => {
                "The request body has no \"model\" field; add \"model\": \"<model name>\" (GET /v1/models lists them).".into()
            }
            ExtractError::NotString => {
                "The \"model\" field must be a string naming the model (GET /v1/models lists them).".into()
            }
            ExtractError::EmptyName => {
                "The \"model\" field is empty; name a model (GET /v1/models lists them).".into()
            }
            ExtractError::Duplicate => {
                "The request body has more than one \"model\" field; send exactly one.".into()
            }
        }
    }

    /// The OpenAI-style `code` of the 400.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Empty | ExtractError::NotObject | ExtractError::Malformed { .. } => {
                "invalid_json"
            }
            ExtractError::Missing | ExtractError::EmptyName => "missing_model",
            ExtractError::NotString | ExtractError::Duplicate => "invalid_model",
        }
    }
}

fn malformed(at: usize, problem: &'static str) -> ExtractError {
    ExtractError::Malformed { at, problem }
}

/// Find the top-level `model` field of `body`.
pub fn extract_model(body: &[u8]) -> Result<ModelField<'_>, ExtractError> {
    let mut i = skip_ws(body, 0);
    if i == body.len() {
        return Err(ExtractError::Empty);
    }
    if body[i] != b'{' {
        return Err(ExtractError::NotObject);
    }
    i = skip_ws(body, i + 1);
    let mut found: Option<ModelField<'_>> = None;
    let mut caps = CapFields::default();
    if body.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if body.get(i) != Some(&b'"') {
                return Err(malformed(i, "expected a quoted key"));
            }
            let key = scan_string(body, i)?;
            // The key's text (decoded only when it has escapes).
            let decoded;
            let key_text: &[u8] = if key.escaped {
                decoded = decode(body, &key)?;
                decoded.as_bytes()
            } else {
                &body[key.start + 1..key.end - 1]
            };
            let is_model = key_text == b"model";
            i = skip_ws(body, key.end);
            if body.get(i) != Some(&b':') {
                return Err(malformed(i, "expected ':' after a key"));
            }
            i = skip_ws(body, i + 1);
            if is_model {
                if found.is_some() {
                    return Err(ExtractError::Duplicate);
                }
                if body.get(i) != Some(&b'"') {
                    // Still check the rest is well-formed JSON, so a broken
                    // body gets the "not valid JSON" answer.
                    return finish(body, i).and(Err(ExtractError::NotString));
                }
                let tok = scan_string(body, i)?;
                let name = decode(body, &tok)?;
                if name.is_empty() {
                    return Err(ExtractError::EmptyName);
                }
                found = Some(ModelField {
                    name,
                    span: i..tok.end,
                    caps: CapFields::default(),
                });
                i = tok.end;
            } else {
                let start = i;
                i = skip_value(body, i)?;
                if let Some(slot) = caps.slot(key_text) {
                    caps.duplicate |= slot.replace(start..i).is_some();
                }
            }
            i = skip_ws(body, i);
            match body.get(i) {
                Some(b',') => i = skip_ws(body, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                Some(_) => return Err(malformed(i, "expected ',' or '}' after a value")),
                None => return Err(malformed(i, "the object is not closed")),
            }
        }
    }
    let end = skip_ws(body, i);
    if end != body.len() {
        return Err(malformed(end, "unexpected data after the JSON object"));
    }
    let mut found = found.ok_or(ExtractError::Missing)?;
    found.caps = caps;
    Ok(found)
}

/// `Ok` if only the rest of the object after a non-string `model` value at
/// `i` is well-formed (used to pick the right error).
fn finish(body: &[u8], i: usize) -> Result<(), ExtractError> {
    let mut i = skip_ws(body, skip_value(body, i)?);
    let mut depth = 1usize;
    while depth > 0 {
        match body.get(i) {
            None => return Err(malformed(i, "the object is not closed")),
            Some(b'"') => i = scan_string(body, i)?.end,
            Some(b'{' | b'[') => {
                depth += 1;
                i += 1
            }
            Some(b'}' | b']') => {
                depth -= 1;
                i += 1
            }
            Some(_) => i += 1,
        }
    }
    if skip_ws(body, i) != body.len() {
        return Err(malformed(i, "unexpected data after the JSON object"));
    }
    Ok(())
}

/// A string token: `start` is the opening quote, `end` one past the closing quote.
struct Token {
    start: usize,
    end: usize,
    escaped: bool,
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = body.get(i) {
        i += 1;
    }
    i
}

/// Scan the string starting with the quote at `start`.
fn scan_string(body: &[u8], start: usize) -> Result<Token, ExtractError> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        let Some(off) = memchr::memchr2(b'"', b'\\', &body[i..]) else {
            return Err(malformed(start, "a string is not closed"));
        };
        i += off;
        if body[i] == b'"' {
            return Ok(Token {
                start,
                end: i + 1,
                escaped,
            });
        }
        escaped = true;
        match body.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
            Some(b'u') => {
                let hex = body.get(i + 2..i + 6);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(malformed(i, "a \\u escape needs four hex digits"));
                }
                i += 6;
            }
            Some(_) => return Err(malformed(i, "invalid escape in a string")),
            None => return Err(malformed(start, "a string is not closed")),
        }
    }
}

/// The decoded text of a string token (borrowed unless it has escapes).
fn decode<'a>(body: &'a [u8], tok: &Token) -> Result<Cow<'a, str>, ExtractError> {
    let raw = &body[tok.start..tok.end];
    if raw[1..raw.len() - 1].iter().any(|&b| b < 0x20) {
        return Err(malformed(tok.start, "a control character inside a string"));
    }
    if !tok.escaped {
        return std::str::from_utf8(&raw[1..raw.len() - 1])
            .map(Cow::Borrowed)
            .map_err(|_| malformed(tok.start, "a string is not valid UTF-8"));
    }
    // Rare: let serde_json decode the escapes (surrogate pairs included).
    let s = std::str::from_utf8(raw)
        .map_err(|_| malformed(tok.start, "a string is not valid UTF-8"))?;
    serde_json::from_str::<String>(s)
        .map(Cow::Owned)
        .map_err(|_| malformed(tok.start, "invalid escape in a string"))
}

/// Skip one value starting at `i`; returns the index just past it.
fn skip_value(body: &[u8], i: usize) -> Result<usize, ExtractError> {
    match body.get(i) {
        None => Err(malformed(i, "a value is missing")),
        Some(b'"') => Ok(scan_string(body, i)?.end),
        Some(b'{' | b'[') => skip_nested(body, i),
        Some(_) => {
            let mut j = i;
            while let Some(b) = body.get(j) {
                if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
                    j += 1;
                } else {
                    break;
                }
            }
            if j == i {
                return Err(malformed(i, "expected a value"));
            }
            let lit = &body[i..j];
            let ok = matches!(lit, b"true" | b"false" | b"null")
                || (lit[0] == b'-' || lit[0].is_ascii_digit())
                    && lit[1..].iter().all(|b| {
                        b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E')
                    });
            if ok {
                Ok(j)
            } else {
                Err(malformed(
                    i,
                    "expected a value (string, number, object, array, true, false or null)",
                ))
            }
        }
    }
}

/// Skip an object or array starting at `i` by bracket depth (strings honoured).
fn skip_nested(body: &[u8], start: usize) -> Result<usize, ExtractError> {
    let mut depth = 0usize;
    let mut i = start;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i = scan_string(body, i)?.end;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(malformed(start, "an object or array is not closed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `body` with the token at `span` replaced by `quoted` (what the
    /// gateway sends, in pieces).
    fn splice(body: &[u8], span: &Range<usize>, quoted: &[u8]) -> Vec<u8> {
        [&body[..span.start], quoted, &body[span.end..]].concat()
    }

    fn name(body: &str) -> Result<String, ExtractError> {
        extract_model(body.as_bytes()).map(|f| f.name.into_owned())
    }

    #[test]
    fn finds_the_top_level_model() {
        assert_eq!(name(r#"{"model":"m1","messages":[]}"#).unwrap(), "m1");
        assert_eq!(
            name(r#" { "messages" : [ {"role":"user","content":"model"} ] , "model" : "DeepSeek-V3" } "#).unwrap(),
            "DeepSeek-V3"
        );
        // A nested "model" key is not the top-level one.
        assert_eq!(
            name(r#"{"tools":[{"model":"inner"}],"meta":{"model":{"x":1}},"model":"outer"}"#)
                .unwrap(),
            "outer"
        );
        // Quotes and braces inside strings do not confuse depth.
        assert_eq!(
            name(r#"{"messages":[{"content":"a \"quoted\" } ] { [ \\"}],"model":"x"}"#).unwrap(),
            "x"
        );
        // Escapes in the name and in the key.
        assert_eq!(
            name(r#"{"model":"Qwen\/Qwen2.5"}"#).unwrap(),
            "Qwen/Qwen2.5"
        );
        assert_eq!(name(r#"{"\u006dodel":"esc"}"#).unwrap(), "esc");
        assert_eq!(name(r#"{"model":"caf\u00e9"}"#).unwrap(), "café");
        assert_eq!(name("{\"model\":\"ünï\"}").unwrap(), "ünï");
    }

    #[test]
    fn span_covers_the_token_so_splicing_rewrites_it() {
        let body = br#"{"a":1,"model" : "DeepSeek-V3","stream":true}"#;
        let f = extract_model(body).unwrap();
        assert_eq!(&body[f.span.clone()], br#""DeepSeek-V3""#);
        let out = splice(body, &f.span, br#""deepseek-chat""#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"a":1,"model":"deepseek-chat","stream":true}));
    }

    #[test]
    fn refuses_bad_bodies_with_the_right_reason() {
        assert_eq!(name(""), Err(ExtractError::Empty));
        assert_eq!(name("  \n"), Err(ExtractError::Empty));
        assert_eq!(name("[1,2]"), Err(ExtractError::NotObject));
        assert_eq!(name("\"model\""), Err(ExtractError::NotObject));
        assert_eq!(name("{}"), Err(ExtractError::Missing));
        assert_eq!(name(r#"{"messages":[]}"#), Err(ExtractError::Missing));
        assert_eq!(name(r#"{"model":42}"#), Err(ExtractError::NotString));
        assert_eq!(
            name(r#"{"model":null,"x":[1]}"#),
            Err(ExtractError::NotString)
        );
        assert_eq!(name(r#"{"model":""}"#), Err(ExtractError::EmptyName));
        assert_eq!(
            name(r#"{"model":"a","model":"b"}"#),
            Err(ExtractError::Duplicate)
        );
        for bad in [
            r#"{"model":"a""#,
            r#"{"model":"a"#,
            r#"{"model":"a",}"#,
            r#"{"model" "a"}"#,
            r#"{model:"a"}"#,
            r#"{"model":"a"} x"#,
            r#"{"model":"a","m":[1,2}"#,
            r#"{"model":"a","m":{"k":"v"}"#,
            r#"{"model":"a\q"}"#,
            r#"{"model":"a\u12"}"#,
            r#"{"model":"a","x":tru e}"#,
            r#"{"model":"a","x":}"#,
            r#"{"model":"a" "x":1}"#,
            r#"{"model":{"nested":1}"#,
            "{\"model\":\"a\tb\"}",
        ] {
            assert!(
                matches!(name(bad), Err(ExtractError::Malformed { .. })),
                "{bad}: {:?}",
                name(bad)
            );
        }
        assert!(matches!(
            extract_model(b"{\"model\":\"\xff\"}"),
            Err(ExtractError::Malformed { .. })
        ));
    }

    /// A small deterministic generator of JSON values (no dependency on a
    /// fuzzing crate): the scanner must agree with serde_json on every one.
    fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
        let pick = if depth > 3 {
            rng.u8(0..4)
        } else {
            rng.u8(0..6)
        };
        match pick {
            0 => Value::Null,
            1 => json!(rng.bool()),
            // Quarters print and parse back exactly.
            2 => json!(rng.i64(-1_000_000..1_000_000) as f64 / 4.0),
            3 => Value::String(random_string(rng)),
            4 => Value::Array(
                (0..rng.usize(0..4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.usize(0..4))
                    .map(|_| {
                        let k = if rng.u8(0..4) == 0 {
                            "model".to_string()
                        } else {
                            random_string(rng)
                        };
                        (k, random_value(rng, depth + 1))
                    })
                    .collect(),
            ),
        }
    }

    fn random_string(rng: &mut fastrand::Rng) -> String {
        const ALPHABET: &[char] = &[
            'a',
            'Z',
            '"',
            '\\',
            '{',
            '}',
            '[',
            ']',
            ':',
            ',',
            ' ',
            '/',
            'é',
            '\n',
            '\u{1F600}',
            'm',
        ];
        (0..rng.usize(0..12))
            .map(|_| ALPHABET[rng.usize(0..ALPHABET.len())])
            .collect()
    }

    #[test]
    fn agrees_with_serde_json_on_random_documents() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..3000 {
            let mut obj = serde_json::Map::new();
            for _ in 0..rng.usize(0..5) {
                obj.insert(random_string(&mut rng), random_value(&mut rng, 0));
            }
            let model = random_string(&mut rng);
            if round % 5 != 0 {
                obj.insert("model".into(), Value::String(model.clone()));
            }
            let doc = Value::Object(obj);
            for text in [
                serde_json::to_string(&doc).unwrap(),
                serde_json::to_string_pretty(&doc).unwrap(),
            ] {
                let got = extract_model(text.as_bytes());
                match doc.get("model") {
                    Some(Value::String(s)) if s.is_empty() => {
                        assert_eq!(got, Err(ExtractError::EmptyName))
                    }
                    Some(Value::String(s)) => {
                        let f = got.unwrap_or_else(|e| panic!("{text}: {e:?}"));
                        assert_eq!(&f.name, s, "{text}");
                        // Splicing keeps the document valid and changes only the model.
                        let out = splice(text.as_bytes(), &f.span, br#""rewritten""#);
                        let mut back: Value = serde_json::from_slice(&out).unwrap();
                        back["model"] = Value::String(s.clone());
                        assert_eq!(back, doc);
                    }
                    Some(_) => assert_eq!(got, Err(ExtractError::NotString), "{text}"),
                    None => assert_eq!(got, Err(ExtractError::Missing), "{text}"),
                }
                // Every strict prefix of a document is refused, never accepted or panicking.
                let cut = rng.usize(0..text.len());
                let prefix = &text.as_bytes()[..cut];
                assert!(
                    extract_model(prefix).is_err(),
                    "accepted a truncated body: {}",
                    String::from_utf8_lossy(prefix)
                );
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        let base =
            br#"{"model":"m","messages":[{"role":"user","content":"hi \"x\" {"}],"n":1.5e3}"#;
        for _ in 0..20_000 {
            let mut b = base.to_vec();
            for _ in 0..rng.usize(1..4) {
                let i = rng.usize(0..b.len());
                match rng.u8(0..3) {
                    0 => b[i] = rng.u8(..),
                    1 => {
                        b.remove(i);
                    }
                    _ => b.insert(i, b"\"\\{}[],: "[rng.usize(0..9)]),
                }
            }
            if let Ok(f) = extract_model(&b) {
                // Whatever it accepted, the span is a string token in bounds.
                assert!(
                    f.span.end <= b.len() && b[f.span.start] == b'"' && b[f.span.end - 1] == b'"'
                );
            }
        }
    }

    /// The caps read in the scan are what serde reads from the whole body
    /// (the estimator's reference), for every body the scan accepts.
    #[test]
    fn the_caps_read_in_the_scan_match_serde() {
        use crate::gateway::limiter::estimate::Caps;
        let values = [
            "1",
            "0",
            "4096",
            "18446744073709551615",
            "18446744073709551616",
            "null",
            "-1",
            "-0",
            "1.0",
            "1e3",
            "01",
            "\"5\"",
            "true",
            "[1]",
            "{\"a\":1}",
        ];
        let mut bodies = Vec::new();
        for v in values {
            for key in [
                "max_tokens",
                "max_completion_tokens",
                "n",
                "max\\u005ftokens",
            ] {
                bodies.push(format!(r#"{{"model":"m","{key}":{v}}}"#));
                bodies.push(format!(
                    r#"{{"{key}": {v} ,"model":"m","messages":[{{"max_tokens":7}}]}}"#
                ));
            }
            bodies.push(format!(
                r#"{{"model":"m","max_tokens":{v},"n":3,"max_completion_tokens":9}}"#
            ));
            bodies.push(format!(
                r#"{{"model":"m","max_tokens":{v},"max_tokens":10}}"#
            ));
            bodies.push(format!(r#"{{"model":"m","n":2,"n":{v}}}"#));
        }
        bodies.push(r#"{"model":"m"}"#.to_string());
        bodies.push(r#"{"model":"m","stream":true,"max_tokens":12,"n":2}"#.to_string());
        let mut checked = 0;
        for b in &bodies {
            let Ok(f) = extract_model(b.as_bytes()) else {
                continue;
            };
            let serde = serde_json::from_str::<Caps>(b).ok();
            assert_eq!(f.caps.read(b.as_bytes()), serde, "body {b}");
            checked += 1;
        }
        assert!(checked > 150, "only {checked} bodies scanned");
        let f = extract_model(br#"{"model":"m","max_tokens":12,"n":2}"#).unwrap();
        assert_eq!(
            f.caps.read(br#"{"model":"m","max_tokens":12,"n":2}"#),
            Some(Caps {
                max_tokens: Some(12),
                max_completion_tokens: None,
                n: Some(2)
            })
        );
    }
}

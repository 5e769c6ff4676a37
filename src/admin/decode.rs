//! Request bodies, read strictly: a field the request does not have is
//! refused with 400 naming it and where it is
//! (`body[0].spec: unknown field `duration`, expected one of …`), never
//! dropped. The strictness itself is the types' (`deny_unknown_fields` on
//! `Change` and the entities it carries); this module reads a batch one
//! change at a time so an error names the change, and finds the object in
//! it the unknown field is in.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{AdminError, AdminErrorKind};
use crate::domain::Change;

/// The body of `POST /apply`: a JSON array of changes.
pub fn changes(body: &[u8]) -> Result<Vec<Change>, AdminError> {
    let items: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| bad_request("body", format!("expected a JSON array of changes: {e}")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| value(&format!("body[{i}]"), v))
        .collect()
}

/// `v`, found at `path` of the body, as a `T`; an error names `path` (and,
/// for an unknown field, the object within it that has the field).
pub fn value<T: DeserializeOwned>(path: &str, v: &Value) -> Result<T, AdminError> {
    T::deserialize(v).map_err(|e| {
        let problem = e.to_string();
        let within = unknown_field_at(v, &problem).unwrap_or_default();
        bad_request(format!("{path}{within}"), problem)
    })
}

fn bad_request(field: impl Into<String>, problem: impl Into<String>) -> AdminError {
    AdminError::new(AdminErrorKind::BadRequest, field, problem)
}

/// Where serde's "unknown field `x`, expected `a` or `b`" is in `v`: the
/// path (`""` for `v` itself, `.spec`, `.endpoints[1]`) of the object that
/// has the field `x`: the only one, or else the only one whose other fields
/// are all expected ones (an internally tagged change's `op` included).
fn unknown_field_at(v: &Value, problem: &str) -> Option<String> {
    let (name, rest) = problem.strip_prefix("unknown field `")?.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let mut holders = Vec::new();
    objects_with(v, String::new(), name, &mut holders);
    if holders.len() > 1 {
        holders.retain(|(path, obj)| {
            obj.keys().all(|k| {
                k == name || expected.contains(&k.as_str()) || (path.is_empty() && k == "op")
            })
        });
    }
    match holders.as_slice() {
        [(path, _)] => Some(path.clone()),
        _ => None,
    }
}

/// Every object in `v` (at `path`) that has a field `name`, with its path.
fn objects_with<'a>(
    v: &'a Value,
    path: String,
    name: &str,
    out: &mut Vec<(String, &'a serde_json::Map<String, Value>)>,
) {
    match v {
        Value::Object(obj) => {
            if obj.contains_key(name) {
                out.push((path.clone(), obj));
            }
            for (k, child) in obj {
                objects_with(child, format!("{path}.{k}"), name, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                objects_with(child, format!("{path}[{i}]"), name, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field and problem of the refusal of `body`.
    fn refusal(body: &str) -> (String, String) {
        let e = changes(body.as_bytes()).expect_err(body);
        assert_eq!(e.kind, AdminErrorKind::BadRequest, "{e}");
        (e.errors[0].field.clone(), e.errors[0].problem.clone())
    }

    #[test]
    fn unknown_fields_are_refused_where_they_are() {
        let rule = r#"{"target":"workspace","workspace":"acme","limit":5,"duration_secs":60"#;
        let (field, problem) = refusal(&format!(
            r#"[{{"op":"delete-model","name":"x"}},{{"op":"add-rule","model":"M","spec":{rule},"duration":10}}}}]"#
        ));
        assert_eq!(field, "body[1].spec");
        assert!(
            problem.starts_with("unknown field `duration`, expected one of `target`"),
            "{problem}"
        );
        let (field, problem) =
            refusal(r#"[{"op":"set-enabled","name":"M","enabled":true,"enable":false}]"#);
        assert_eq!(field, "body[0]");
        assert_eq!(
            problem,
            "unknown field `enable`, expected `name` or `enabled`"
        );
        // A newtype change: the entity's fields sit beside `op`.
        let (field, problem) = refusal(
            r#"[{"op":"create-model","name":"M","cluster":"local","model_id":"m","endpoints":[{"url":"http://a"},{"url":"http://b","weigth":3}]}]"#,
        );
        assert_eq!(field, "body[0].endpoints[1]");
        assert!(problem.starts_with("unknown field `weigth`"), "{problem}");
        let (field, _) = refusal(
            r#"[{"op":"add-cluster","name":"eu","entry_address":"http://e","region":"x"}]"#,
        );
        assert_eq!(field, "body[0]");
    }

    #[test]
    fn a_field_name_found_twice_is_placed_by_the_expected_ones() {
        // `workspace` belongs in the rule's spec, not beside it.
        let (field, problem) = refusal(
            r#"[{"op":"add-rule","model":"M","workspace":"a","spec":{"target":"workspace","workspace":"a","limit":1,"duration_secs":1}}]"#,
        );
        assert_eq!(field, "body[0]");
        assert_eq!(
            problem,
            "unknown field `workspace`, expected `model` or `spec`"
        );
        // `model` belongs beside the spec, not in it.
        let (field, _) = refusal(
            r#"[{"op":"update-rule","model":"M","id":1,"spec":{"target":"workspace","workspace":"a","limit":1,"duration_secs":1,"model":"M"}}]"#,
        );
        assert_eq!(field, "body[0].spec");
    }

    #[test]
    fn other_mistakes_name_the_change() {
        let (field, problem) =
            refusal(r#"[{"op":"add-workspace","name":"a","description":""},{"op":"fly"}]"#);
        assert_eq!(field, "body[1]");
        assert!(problem.starts_with("unknown variant `fly`"), "{problem}");
        let (field, problem) = refusal(r#"[{"op":"set-enabled","name":"M"}]"#);
        assert_eq!(
            (field.as_str(), problem.as_str()),
            ("body[0]", "missing field `enabled`")
        );
        let (field, problem) = refusal(r#"{"op":"set-enabled"}"#);
        assert_eq!(field, "body");
        assert!(
            problem.starts_with("expected a JSON array of changes"),
            "{problem}"
        );
        let ok = changes(br#"[{"op":"set-enabled","name":"M","enabled":true}]"#).unwrap();
        assert_eq!(
            ok,
            vec![Change::SetEnabled {
                name: "M".into(),
                enabled: true
            }]
        );
    }
}

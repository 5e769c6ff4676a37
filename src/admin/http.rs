//! The admin API's HTTP plumbing, shared by the routes and the stats
//! stream: the response body type, JSON answers and the one error answer,
//! request bodies (size-limited) and query strings.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{AdminError, AdminErrorBody, AdminErrorKind};

/// Every response body: complete JSON, or the stats stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body read (an apply batch).
const BODY_LIMIT: usize = 16 << 20;

/// The body as `T`, or a 400/413 naming the body and what was expected.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    expected: &str,
) -> Result<T, AdminError> {
    let bytes = read_body(req).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        AdminError::new(
            AdminErrorKind::BadRequest,
            "body",
            format!("expected {expected}: {e}"),
        )
    })
}

fn too_large() -> AdminError {
    AdminError::new(
        AdminErrorKind::PayloadTooLarge,
        "body",
        format!("larger than {} MiB", BODY_LIMIT >> 20),
    )
}

/// How much of a refused body is read and thrown away, and for how long,
/// so a client that sends it anyway reads the 413 instead of a reset.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Read and discard a refused body in the background (a bounded lingering
/// close): the 413 goes out at once; a client that is still writing its
/// body is not reset before it reads it (closing with unread data in the
/// socket would send a reset that can overtake the answer).
fn drain(body: Incoming) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_TIME, Limited::new(body, DRAIN_LIMIT).collect()).await;
    });
}

/// The whole body, or a 413 over [`BODY_LIMIT`] (400 if it cannot be
/// read). A declared `Content-Length` over the limit is refused at once,
/// before reading (the answer closes the connection: the body is not read).
pub async fn read_body(req: Request<Incoming>) -> Result<Bytes, AdminError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        drain(req.into_body());
        return Err(too_large());
    }
    Ok(Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                AdminError::new(
                    AdminErrorKind::BadRequest,
                    "body",
                    format!("cannot be read: {e}"),
                )
            }
        })?
        .to_bytes())
}

/// The query string, decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// Refuse a parameter not in `known` (named, with the ones there are).
    pub fn only(&self, known: &[&str]) -> Result<(), AdminError> {
        let Some((name, _)) = self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) else {
            return Ok(());
        };
        let takes = if known.is_empty() {
            "this route takes no query parameters".to_string()
        } else {
            format!("this route takes {}", known.join(", "))
        };
        Err(AdminError::new(
            AdminErrorKind::BadRequest,
            format!("query.{name}"),
            format!("not a parameter; {takes}"),
        ))
    }

    pub fn required(&self, name: &str, usage: &str) -> Result<String, AdminError> {
        self.get(name).map(str::to_string).ok_or_else(|| {
            AdminError::new(
                AdminErrorKind::BadRequest,
                format!("query.{name}"),
                format!("missing; use {usage}"),
            )
        })
    }

    pub fn number(&self, name: &str) -> Result<Option<u64>, AdminError> {
        self.get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    AdminError::new(
                        AdminErrorKind::BadRequest,
                        format!("query.{name}"),
                        format!("'{v}' is not a whole number"),
                    )
                })
            })
            .transpose()
    }
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("ASCII header value")
}

pub fn empty() -> Body {
    Full::new(Bytes::new()).boxed_unsync()
}

/// A plain-text answer (`/metrics`).
pub fn text(content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// A JSON answer.
pub fn json<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Result<Response<Body>, AdminError> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        AdminError::new(
            AdminErrorKind::Internal,
            "response",
            format!("cannot encode: {e}"),
        )
    })?;
    let mut res = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

pub fn error_response(e: AdminError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = e.kind;
    let mut res = json(status, &AdminErrorBody { error: e }).expect("an error body encodes");
    if kind == AdminErrorKind::PayloadTooLarge {
        // The rest of the body is not read: the connection cannot carry
        // another request.
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if kind == AdminErrorKind::Unauthorized {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"maasctl-admin\""),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_name_bad_parameters() {
        let q = Query::parse(Some("model=Deep%20Seek&key=ci&after=x&empty="));
        assert_eq!(q.get("model"), Some("Deep Seek"));
        assert_eq!(q.get("empty"), None);
        let e = q.number("after").unwrap_err();
        assert_eq!(e.errors[0].field, "query.after");
        let e = q.required("workspace", "?workspace=W").unwrap_err();
        assert_eq!(e.errors[0].field, "query.workspace");
        assert_eq!(q.number("missing").unwrap(), None);
        assert!(q.only(&["model", "key", "after", "empty"]).is_ok());
        let e = q.only(&["model", "key", "after"]).unwrap_err();
        assert_eq!(
            e.errors[0].to_string(),
            "query.empty: not a parameter; this route takes model, key, after"
        );
        let e = Query::parse(Some("x=1")).only(&[]).unwrap_err();
        assert_eq!(
            e.errors[0].to_string(),
            "query.x: not a parameter; this route takes no query parameters"
        );
        assert!(Query::parse(None).only(&[]).is_ok());
    }
}

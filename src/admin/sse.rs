//! `GET /admin/v1/stats/stream`: the gateway's counter snapshots as
//! server-sent events — one at once, then one each time the counters
//! change, at most ten a second, with a comment line every few seconds of
//! quiet so either side notices a dead connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::http::Body;
use crate::gateway::StatsSnapshot;

/// Shortest time between two snapshots sent (≤ 10/s).
pub const MIN_GAP: Duration = Duration::from_millis(100);
/// A keep-alive comment after this much quiet.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// The event carrying a snapshot: `event: stats` + one `data:` line.
pub fn event(snap: &StatsSnapshot) -> Bytes {
    let json = serde_json::to_string(snap).expect("a snapshot serializes");
    Bytes::from(format!("event: stats\ndata: {json}\n\n"))
}

/// The stream of `stats`, until the client goes, the gateway's counters
/// end, or `stop` turns true (server shutdown).
pub fn stats_stream(
    mut stats: watch::Receiver<Arc<StatsSnapshot>>,
    mut stop: watch::Receiver<bool>,
) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        loop {
            let snap = stats.borrow_and_update().clone();
            if tx.send(event(&snap)).await.is_err() {
                return;
            }
            let sent = Instant::now();
            loop {
                tokio::select! {
                    r = stats.changed() => match r {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                    _ = tokio::time::sleep(KEEPALIVE) => {
                        if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                            return;
                        }
                    }
                    _ = stop.changed() => return,
                    _ = tx.closed() => return,
                }
            }
            tokio::time::sleep_until(sent + MIN_GAP).await;
        }
    });
    let frames = stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(Frame::data(chunk)), rx))
    });
    StreamBody::new(frames).boxed_unsync()
}

/// The response around a stream body.
pub fn response(body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

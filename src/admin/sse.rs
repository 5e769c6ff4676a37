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

/// Reads events back out of a stream of bytes (the remote console's side).
#[derive(Debug, Default)]
pub struct EventReader {
    buf: Vec<u8>,
}

impl EventReader {
    /// Feed bytes; get the `data` of every complete `stats` event.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = find(&self.buf, b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let mut kind = "message";
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if kind == "stats" && !data.is_empty() {
                out.push(data);
            }
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_chunking() {
        let snap = StatsSnapshot {
            revision: 7,
            listen: "127.0.0.1:1".into(),
            ..Default::default()
        };
        let mut wire = b": keep-alive\n\n".to_vec();
        wire.extend_from_slice(&event(&snap));
        wire.extend_from_slice(&event(&snap));
        for size in [1, 3, 64, wire.len()] {
            let mut r = EventReader::default();
            let got: Vec<String> = wire.chunks(size).flat_map(|c| r.push(c)).collect();
            assert_eq!(got.len(), 2, "chunks of {size}");
            let back: StatsSnapshot = serde_json::from_str(&got[1]).unwrap();
            assert_eq!(back, snap);
        }
    }
}

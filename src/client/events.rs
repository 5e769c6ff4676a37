//! Reading the admin API's stats stream (server-sent events, see
//! [`crate::admin::sse`]) back into its JSON payloads.

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
    use crate::admin::sse::event;
    use crate::gateway::StatsSnapshot;

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

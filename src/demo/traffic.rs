//! The demo's traffic: a few clients calling the gateway at a gentle,
//! steady pace — one of them (the trial key) faster than its rate limit, so
//! throttling shows — plus embeddings and the occasional streamed answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::seed::{DemoKey, Keys};

/// One steady caller.
struct Caller {
    key: DemoKey,
    model: &'static str,
    path: &'static str,
    /// Time between two calls.
    every: Duration,
}

/// Calls in flight at most (slow upstreams must not pile up).
const MAX_IN_FLIGHT: usize = 32;

fn callers(keys: &Keys) -> Vec<Caller> {
    let c = |key: &DemoKey, model, path, ms| Caller {
        key: key.clone(),
        model,
        path,
        every: Duration::from_millis(ms),
    };
    vec![
        c(&keys.prod, "DeepSeek-V3", "chat/completions", 350),
        c(&keys.batch, "Qwen2.5-72B-Instruct", "chat/completions", 500),
        c(&keys.notebook, "DeepSeek-R1", "chat/completions", 1500),
        c(&keys.notebook, "text-embedding-3-small", "embeddings", 1000),
        // 4 per second against a rule of 2 per second.
        c(&keys.trial, "DeepSeek-V3", "chat/completions", 250),
    ]
}

fn body(model: &str, path: &str, n: u64) -> serde_json::Value {
    if path == "embeddings" {
        serde_json::json!({ "model": model, "input": format!("demo sentence {n}") })
    } else {
        serde_json::json!({
            "model": model,
            "stream": n % 5 == 0,
            "messages": [{ "role": "user", "content": format!("demo question {n}") }],
        })
    }
}

/// Run the callers against the gateway at `addr` until the task is aborted.
pub async fn run(addr: String, keys: Keys) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("demo traffic cannot start: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut set = JoinSet::new();
    for caller in callers(&keys) {
        let (http, slots, addr) = (http.clone(), slots.clone(), addr.clone());
        set.spawn(async move {
            let url = format!("http://{addr}/v1/{}", caller.path);
            let mut tick = tokio::time::interval(caller.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for n in 0u64.. {
                tick.tick().await;
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let req = http.post(&url).bearer_auth(&caller.key.secret).json(&body(
                    caller.model,
                    caller.path,
                    n,
                ));
                tokio::spawn(async move {
                    // Read the whole answer (streams included) so the
                    // gateway counts a complete request.
                    if let Ok(resp) = req.send().await {
                        let _ = resp.bytes().await;
                    }
                    drop(permit);
                });
            }
        });
    }
    while set.join_next().await.is_some() {}
}

//! The real binary in tmux for the console's weights at the keyboard
//! (issue 15): a weight nudged in the model detail and saved with `enter`
//! is what `maasctl model show` reads from the store afterwards.

#[path = "support/tmux.rs"]
mod tmux;
use tmux::*;

fn weights(data: &std::path::Path) -> Vec<Option<u64>> {
    let v: serde_json::Value = serde_json::from_str(&cli_ok(
        data,
        &["model", "show", "DeepSeek-V3", "-o", "json"],
    ))
    .unwrap();
    v["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["weight"].as_u64())
        .collect()
}

#[test]
fn a_weight_nudged_and_saved_in_the_detail_is_in_the_store() {
    let data = tempfile::tempdir().unwrap();
    cli_ok(
        data.path(),
        &[
            "model",
            "create",
            "--name",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-chat",
            "--policy",
            "weighted",
            "--endpoint",
            "http://127.0.0.1:9/v1,weight=70",
            "--endpoint",
            "http://127.0.0.1:10/v1,weight=30",
        ],
    );
    assert_eq!(weights(data.path()), vec![Some(70), Some(30)]);
    let t = Tmux::start(
        "weights",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    t.wait("the models list", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some()
    });
    t.keys(&["Enter"]);
    t.wait_for("endpoints policy weighted");
    // → on the first endpoint: 75/25, shown pending, nothing saved yet.
    t.keys(&["Right"]);
    let s = t.wait_for("70→75");
    assert!(line_with(&s, "30→25").is_some(), "{s}");
    assert!(s.contains("<enter>save <esc>discard"), "{s}");
    assert_eq!(weights(data.path()), vec![Some(70), Some(30)]);
    // H on the second: 76/24 (the first follows).
    t.keys(&["Down", "H"]);
    t.wait_for("30→24");
    t.keys(&["Enter"]);
    t.wait_for("weights of DeepSeek-V3 saved: 76/24");
    assert_eq!(weights(data.path()), vec![Some(76), Some(24)]);
    // Shown as stored once the registry reloads: nothing pending.
    t.wait("the stored weights", |s| {
        line_with(s, " 76% ").is_some() && !s.contains('→') && !s.contains("<enter>save")
    });
    // esc discards a nudge (← on the second, still selected): the store
    // keeps 76/24.
    t.keys(&["Left"]);
    t.wait_for("24→19");
    t.keys(&["Escape"]);
    t.wait_for("discarded");
    assert_eq!(weights(data.path()), vec![Some(76), Some(24)]);
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

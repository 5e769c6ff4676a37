//! Frame cost of the console: the model list with 10,000 models at
//! 160×48 (target: < 2 ms per frame), scrolled to the middle so the
//! visible rows are not the first ones, with a filter applied, and sorted
//! by req/s with new counters (1,000 busy models) before every frame, so
//! the re-sort a rate order needs is counted too.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use maasctl::gateway::{StatsSnapshot, Totals};
use maasctl::tui::action::Action;
use maasctl::tui::app::App;
use maasctl::tui::chrome;
use maasctl::tui::ids::{SortBy, ViewId};
use maasctl::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

#[path = "../tests/support/tui_fixtures.rs"]
mod fixtures;

/// One frame as the console's loop draws it: scroll positions fitted to
/// the terminal, then drawn from `&App`.
fn frame(term: &mut Terminal<TestBackend>, app: &mut App) {
    app.layout(Rect::new(0, 0, 160, 48));
    term.draw(|f| chrome::render(app, f)).unwrap();
}

/// Counters `step` seconds on: model `i` of the first 1,000 took `i % 97`
/// more requests, so the busy ones change places every snapshot.
fn counters(base: &StatsSnapshot, step: u64) -> Arc<StatsSnapshot> {
    let mut s = base.clone();
    s.taken_ms += 1000 * step as i64;
    for i in 0..1000u64 {
        let requests = step * ((i * 31 + step * 7) % 97 + 1);
        s.models.insert(
            format!("model-{i:05}"),
            Totals {
                requests,
                success: requests,
                ..Default::default()
            },
        );
    }
    Arc::new(s)
}

fn render(c: &mut Criterion) {
    let mut app = fixtures::app(10_000, Theme::colored());
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    // The 5,000th row: after the four named models, model-04996.
    assert!(app.select(ViewId::Models, "model-04996"));
    assert_eq!(app.list(ViewId::Models).selected, 5_000);
    c.bench_function("model list 10k models 160x48", |b| {
        b.iter(|| {
            frame(&mut term, &mut app);
        })
    });
    app.set_filter("model-0", false);
    c.bench_function("model list 10k models 160x48 filtered", |b| {
        b.iter(|| {
            frame(&mut term, &mut app);
        })
    });
    app.set_filter("", false);
    app.dispatch(Action::Sort(SortBy::Requests));
    let base = (*app.data.live.current).clone();
    let mut step = 0;
    c.bench_function(
        "model list 10k models 160x48 by req/s, new counters each frame",
        |b| {
            b.iter_batched(
                || {
                    step += 1;
                    counters(&base, step)
                },
                |snap| {
                    app.on_stats(snap);
                    frame(&mut term, &mut app);
                },
                BatchSize::SmallInput,
            )
        },
    );
    app.jump(ViewId::Traffic);
    c.bench_function("traffic view 10k models 160x48", |b| {
        b.iter(|| {
            frame(&mut term, &mut app);
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);

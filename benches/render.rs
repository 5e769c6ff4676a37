//! Frame cost of the console: the model list with 10,000 models at
//! 160×48 (target: < 2 ms per frame), scrolled to the middle so the
//! visible rows are not the first ones, and with a filter applied.

use criterion::{Criterion, criterion_group, criterion_main};
use maasctl::tui::fixtures;
use maasctl::tui::theme::Theme;
use maasctl::tui::views::{ViewId, chrome};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(c: &mut Criterion) {
    let mut app = fixtures::app(10_000, Theme::colored());
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    app.list(ViewId::Models).step(5_000);
    c.bench_function("model list 10k models 160x48", |b| {
        b.iter(|| {
            term.draw(|f| chrome::render(&mut app, f)).unwrap();
        })
    });
    app.list(ViewId::Models).filter = "model-0".into();
    c.bench_function("model list 10k models 160x48 filtered", |b| {
        b.iter(|| {
            term.draw(|f| chrome::render(&mut app, f)).unwrap();
        })
    });
    app.list(ViewId::Models).filter.clear();
    app.jump(ViewId::Traffic);
    c.bench_function("traffic view 10k models 160x48", |b| {
        b.iter(|| {
            term.draw(|f| chrome::render(&mut app, f)).unwrap();
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);

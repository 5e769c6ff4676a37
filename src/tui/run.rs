//! The console's loop: one `select!` over terminal input, the client's
//! snapshots, replies of background calls, signals and a slow tick. It
//! draws only when something changed: at once after a key, at most ten
//! times a second for counters, never when idle.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::layout::Rect;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::Client;
use crate::domain::now_ms;
use crate::logging::LogRing;

use super::app::App;
use super::chrome;
use super::ids::ViewId;
use super::terminal::TerminalGuard;
use super::theme::Theme;

/// Shortest time between two frames drawn for new counters.
const FRAME: Duration = Duration::from_millis(100);
/// The slow tick: clock-driven changes (stale reports, flash expiry).
const TICK: Duration = Duration::from_secs(1);
/// How often `:tail`, while shown, asks for new request lines.
const TAIL_POLL: Duration = Duration::from_millis(250);
/// How often `:budgets`, while shown, asks for the budgets' spending.
const BUDGETS_POLL: Duration = Duration::from_secs(2);

/// Run the console on this terminal until the operator quits, input ends,
/// or the session hangs up.
pub async fn console(client: Arc<dyn Client>, logs: Option<LogRing>) -> Result<(), String> {
    let mut app = App::new(
        Theme::from_env(),
        client.registry().borrow().clone(),
        client.gateway().borrow().clone(),
        now_ms(),
        logs,
    );
    app.set_role(client.role());
    app.data.attached = client.attached();
    let mut guard =
        TerminalGuard::enter().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(&mut guard, &mut app, client).await;
    drop(guard);
    result
}

async fn event_loop(
    guard: &mut TerminalGuard,
    app: &mut App,
    client: Arc<dyn Client>,
) -> Result<(), String> {
    let sig = |k| signal(k).map_err(|e| format!("cannot watch signals: {e}"));
    let mut hangup = sig(SignalKind::hangup())?;
    let mut terminate = sig(SignalKind::terminate())?;
    let mut interrupt = sig(SignalKind::interrupt())?;
    let mut events = EventStream::new();
    let mut registry = client.registry();
    let mut stats = client.stats();
    let mut gateway = client.gateway();
    let mut log_lines = app.data.logs.as_ref().map(LogRing::subscribe);
    // A closed channel would be "ready" forever: stop listening to it.
    let (mut registry_open, mut stats_open, mut gateway_open) = (true, true, true);
    let (reply_tx, mut replies) = mpsc::unbounded_channel();
    let mut tick = interval(TICK);
    let mut tail_poll = interval(TAIL_POLL);
    let mut budgets_poll = interval(BUDGETS_POLL);

    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if dirty && (urgent || last_draw.elapsed() >= FRAME) {
            let size = guard
                .terminal
                .size()
                .map_err(|e| format!("cannot read the terminal size: {e}"))?;
            app.layout(Rect::new(0, 0, size.width, size.height));
            guard
                .draw(|f| chrome::render(app, f))
                .map_err(|e| format!("cannot draw: {e}"))?;
            last_draw = Instant::now();
            dirty = false;
            urgent = false;
        }
        if app.quit {
            return Ok(());
        }
        let logs_shown = app.current() == ViewId::Logs;
        let tail_shown = app.current() == ViewId::Tail;
        let budgets_shown = app.current() == ViewId::Budgets;
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(key))) => {
                    #[cfg(debug_assertions)]
                    debug_panic(&key);
                    app.on_key(key);
                    dirty = true;
                    urgent = true;
                }
                Some(Ok(Event::Resize(..))) => {
                    let _ = guard.terminal.autoresize();
                    dirty = true;
                    urgent = true;
                }
                Some(Ok(_)) => {}
                // The terminal is gone (EOF, hang-up, read error): quit
                // rather than spin on a dead input.
                Some(Err(e)) => {
                    tracing::warn!("terminal input failed, quitting: {e}");
                    return Ok(());
                }
                None => {
                    tracing::info!("terminal input ended, quitting");
                    return Ok(());
                }
            },
            r = registry.changed(), if registry_open => match r {
                Ok(()) => {
                    let view = registry.borrow_and_update().clone();
                    app.on_registry(view);
                    dirty = true;
                }
                Err(_) => registry_open = false,
            },
            r = stats.changed(), if stats_open => match r {
                Ok(()) => {
                    let snap = stats.borrow_and_update().clone();
                    dirty |= app.on_stats_at(snap, now_ms());
                }
                Err(_) => stats_open = false,
            },
            r = gateway.changed(), if gateway_open => match r {
                Ok(()) => {
                    let info = gateway.borrow_and_update().clone();
                    app.on_gateway(info);
                    dirty = true;
                }
                Err(_) => gateway_open = false,
            },
            Some(reply) = replies.recv() => {
                app.on_reply(reply);
                dirty = true;
                urgent = true;
            }
            r = async { log_lines.as_mut().expect("guarded").changed().await }, if log_lines.is_some() && logs_shown => {
                if r.is_err() {
                    log_lines = None;
                }
                app.on_logs();
                dirty = true;
            }
            _ = tick.tick() => dirty |= app.tick(now_ms()),
            _ = tail_poll.tick(), if tail_shown => app.poll_tail(),
            _ = budgets_poll.tick(), if budgets_shown => app.poll_budgets(),
            _ = tokio::time::sleep_until(last_draw + FRAME), if dirty => {}
            _ = hangup.recv() => {
                tracing::info!("hang-up: quitting");
                return Ok(());
            }
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
        carry_out(app, &client, &reply_tx);
    }
}

/// A timer that skips the ticks it missed.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
}

/// What the app asked for outside itself: the calls it queued, each on its
/// own task (replies come back through `tx`), and text to copy to the
/// operator's clipboard (written to the terminal between frames).
fn carry_out(
    app: &mut App,
    client: &Arc<dyn Client>,
    tx: &mpsc::UnboundedSender<super::action::Reply>,
) {
    for request in app.take_requests() {
        let client = client.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(request.run(&*client).await);
        });
    }
    if let Some(text) = app.take_clipboard()
        && let Err(e) = super::clipboard::emit(&text)
    {
        app.say(format!("cannot copy: {e}"), true);
    }
}

/// Debug builds only (compiled out of release builds): with
/// `MAASCTL_DEBUG_PANIC` set, F12 panics inside the running console, so the
/// end-to-end test can prove that a panic restores the terminal and leaves
/// its message readable on the normal screen.
#[cfg(debug_assertions)]
fn debug_panic(key: &crossterm::event::KeyEvent) {
    if key.code == crossterm::event::KeyCode::F(12)
        && std::env::var_os("MAASCTL_DEBUG_PANIC").is_some()
    {
        panic!("debug panic requested (F12 with MAASCTL_DEBUG_PANIC set)");
    }
}

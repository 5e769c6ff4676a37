#!/usr/bin/env bash
# CPU used by the console, as an operator runs it: the release binary in a
# real terminal (tmux, 80x24), measured from /proc/PID/stat (user + system
# time of every thread) over a window, as % of one core.
#
#   bash bench/console-cpu.sh idle   # console + embedded gateway, registry of assets/example.yaml, no traffic
#   bash bench/console-cpu.sh demo   # `maasctl demo`: mock upstreams and the traffic generator
#   bash bench/console-cpu.sh tail   # `maasctl demo` with the live request tail (`:tail`) open
#
# Knobs: MAASCTL_BIN (default: release build under $CARGO_TARGET_DIR or
# ./target), SECONDS_MEASURED (30), SETTLE (5 s after the first frame).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${MAASCTL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/maasctl}
MODE=${1:-idle}
WINDOW=${SECONDS_MEASURED:-30}
SETTLE=${SETTLE:-5}
[ -x "$BIN" ] || { echo "console-cpu.sh: $BIN not found; run 'cargo build --release' first" >&2; exit 1; }
command -v tmux >/dev/null || { echo "console-cpu.sh: tmux is needed" >&2; exit 1; }

DATA=$(mktemp -d)
SESSION="maasctl-cpu-$$"
cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

case "$MODE" in
  idle)
    # The example's endpoint keys are env: references; dummies do here.
    DEEPSEEK_API_KEY=sk-bench-deepseek OPENAI_API_KEY=sk-bench-openai \
      "$BIN" --data-dir "$DATA" apply -f "$ROOT/assets/example.yaml" >/dev/null
    CMD="$BIN --data-dir $DATA --listen 127.0.0.1:0"
    ;;
  demo|tail) CMD="$BIN demo --listen 127.0.0.1:0" ;;
  *) echo "usage: $0 idle|demo|tail" >&2; exit 2 ;;
esac

tmux new-session -d -s "$SESSION" -x 80 -y 24 "TERM=xterm-256color $CMD"
# Wait for the first frame (the model list), polling.
for _ in $(seq 100); do
  tmux capture-pane -p -t "$SESSION" | grep -q "models" && break
  sleep 0.1
done
if [ "$MODE" = tail ]; then
  # Open the live request tail (it polls the gateway's ring four times a
  # second while shown) and wait until it is drawn.
  tmux send-keys -t "$SESSION" ':tail' Enter
  for _ in $(seq 100); do
    tmux capture-pane -p -t "$SESSION" | grep -q "LATENCY" && break
    sleep 0.1
  done
  tmux capture-pane -p -t "$SESSION" | grep -q "LATENCY" \
    || { echo "console-cpu.sh: :tail did not open" >&2; tmux capture-pane -p -t "$SESSION" >&2; exit 1; }
fi
PANE_PID=$(tmux list-panes -t "$SESSION" -F '#{pane_pid}')
PID=$(pgrep -P "$PANE_PID" -f maasctl || echo "$PANE_PID")
sleep "$SETTLE"

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep "$WINDOW"
t1=$(ticks); s1=$(date +%s.%N)
echo "$MODE: pid $PID, $(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$s0" -v e="$s1" \
  'BEGIN { printf "%.2f%% of one core over %.1f s (%d ticks of 1/%d s)", (b-a)/hz/(e-s)*100, e-s, b-a, hz }')"
tmux capture-pane -p -t "$SESSION" | head -3

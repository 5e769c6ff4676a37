#!/usr/bin/env bash
# token-ab.sh: the cost of token rules on the request path, A/B in one run.
# Two gateways from the same binary serve the same upstream (the rig's
# fixed-response nginx, one worker): A without rules, B with the two
# never-triggering token rules of `MAASCTL_BENCH_RULES=tokens`
# (bench/candidate.sh). wrk (the rig's Lua script) loads A and B
# alternately, PAIRS pairs of DURATION s per concurrency, the order
# swapped every pair. Each run also records the gateway's CPU time (user +
# system, /proc/PID/stat) per request: steadier than req/s on a shared VM.
#
#   MAASCTL_BIN=target/release/maasctl bash bench/token-ab.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=${RIG:-$ROOT/../shared/bench}
BIN=${MAASCTL_BIN:-$ROOT/target/release/maasctl}
PAIRS=${PAIRS:-8}; DURATION=${DURATION:-5}; CONCS=${CONCS:-"32 256"}
KEY=sk-token-ab-bench-key
W=$(mktemp -d /tmp/token-ab.XXXXXX)
UP=$((20000 + RANDOM % 20000)); PA=$((UP + 1)); PB=$((UP + 2))
sed -e "s#@RUN@#$W#g" -e "s#@UP_PORT@#$UP#g" -e "s#@UP_WORKERS@#1#g" "$RIG/upstream.conf.in" > "$W/upstream.conf"
cleanup() { pkill -f -- "$W/" 2>/dev/null || true; }   # both gateways and the upstream nginx
trap cleanup EXIT
(setsid nginx -c "$W/upstream.conf" -p "$W") >/dev/null 2>&1 &
BODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
start() { # PORT RULES NAME
  mkdir -p "$W/$3"
  (
    cd "$W/$3"
    export CANDIDATE_PORT=$1 CANDIDATE_KEY=$KEY MAASCTL_BIN=$BIN MAASCTL_BENCH_RULES=$2 \
      MAASCTL_BENCH_DATA=$W/$3/data UPSTREAM_BASE=http://127.0.0.1:$UP/v1 \
      UPSTREAM_STREAM_BASE=http://127.0.0.1:$UP/stream/v1
    exec setsid bash "$ROOT/bench/candidate.sh"
  ) >"$W/$3.log" 2>&1 &
  local _
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$1/v1/chat/completions" -d "$BODY")" = 200 ] && return 0
    sleep 0.2
  done
  echo "the gateway on port $1 did not answer 200: $(tail -5 "$W/$3.log")" >&2
  exit 1
}
start "$PA" 0 a
start "$PB" tokens b
A=$(pgrep -f -- "--data-dir $W/a/data serve" | head -1)
B=$(pgrep -f -- "--data-dir $W/b/data serve" | head -1)
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
export BENCH_BODY=$BODY BENCH_KEY=$KEY
run() { # PORT PID CONC -> "req/s cpu_us_per_request"
  local t0 t1 out
  t0=$(ticks "$2")
  out=$(wrk -t2 -c"$3" -d"${DURATION}s" -s "$RIG/wrk-post.lua" "http://127.0.0.1:$1/v1/chat/completions" | tail -1)
  t1=$(ticks "$2")
  python3 -c 'import json, sys
d = json.loads(sys.argv[1]); t0, t1, hz = map(int, sys.argv[2:])
n = d["requests"] - d["non2xx"]; us = d["duration_us"]
print("%.0f %.2f" % (n * 1e6 / us, (t1 - t0) * 1e6 / hz / max(n, 1)))' "$out" "$t0" "$t1" "$HZ"
}
echo "token-ab: pairs=$PAIRS duration=${DURATION}s binary=$BIN"
for c in $CONCS; do
  run "$PA" "$A" "$c" >/dev/null; run "$PB" "$B" "$c" >/dev/null   # warm-up
  : > "$W/pairs.$c"
  for i in $(seq 1 "$PAIRS"); do
    if ((i % 2)); then a=$(run "$PA" "$A" "$c"); b=$(run "$PB" "$B" "$c")
    else b=$(run "$PB" "$B" "$c"); a=$(run "$PA" "$A" "$c"); fi
    echo "$a $b" >> "$W/pairs.$c"
    echo "  c=$c pair $i: no rules $a | token rules $b   (req/s, gateway CPU us/request)"
  done
  python3 - "$W/pairs.$c" "$c" <<'PY'
import sys, statistics as st
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
r = [x[2] / x[0] for x in rows]; u = [x[3] / x[1] for x in rows]
print(f"c={sys.argv[2]}: req/s token rules / none: median {st.median(r):.3f} (pairs {min(r):.3f}..{max(r):.3f}); "
      f"gateway CPU per request: none {st.median(x[1] for x in rows):.2f} us, token rules {st.median(x[3] for x in rows):.2f} us, "
      f"ratio median {st.median(u):.3f} (pairs {min(u):.3f}..{max(u):.3f})")
PY
done

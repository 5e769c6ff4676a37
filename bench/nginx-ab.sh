#!/usr/bin/env bash
# nginx-ab.sh: the gateway against nginx's proxy_pass, A/B in one run.
# The rig (../shared/bench/rig.sh) runs direct, nginx and the candidate one
# after the other, 3 rounds: on a shared 2-core VM nginx's own req/s moves
# ±10% from round to round, so one rig run cannot tell a few percent apart.
# Here the rig's two nginx configurations (the fixed-response upstream, one
# worker; the proxy_pass proxy with its keep-alive pool, two workers) and
# `maasctl serve` (bench/candidate.sh, no rules) run side by side; wrk (the
# rig's Lua script, the rig's POST body) loads nginx and the gateway
# alternately, PAIRS pairs of DURATION s per concurrency, the order swapped
# every pair; each run records req/s, p99 and the proxy's CPU time per
# request (/proc). The medians of the per-pair ratios are the figures.
#
#   MAASCTL_BIN=target/release/maasctl PAIRS=8 DURATION=5 bash bench/nginx-ab.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=${RIG:-$ROOT/../shared/bench}
BIN=${MAASCTL_BIN:-$ROOT/target/release/maasctl}
PAIRS=${PAIRS:-8}; DURATION=${DURATION:-5}; CONCS=${CONCS:-"32 256"}
KEY=sk-nginx-ab-bench-key
W=$(mktemp -d /tmp/nginx-ab.XXXXXX)
UP=$((20000 + RANDOM % 20000)); PN=$((UP + 1)); PG=$((UP + 2))
sub() { sed -e "s#@RUN@#$W#g; s#@UP_PORT@#$UP#g; s#@PROXY_PORT@#$PN#g; s#@UP_WORKERS@#1#g; s#@PROXY_WORKERS@#2#g; s#@MASTER_KEY@#unused#g" "$1" > "$2"; }
sub "$RIG/upstream.conf.in" "$W/upstream.conf"
sub "$RIG/proxy.conf.in" "$W/proxy.conf"
cleanup() { pkill -f -- "$W/" 2>/dev/null || true; }
trap cleanup EXIT
(setsid nginx -c "$W/upstream.conf" -p "$W") >/dev/null 2>&1 &
(setsid nginx -c "$W/proxy.conf" -p "$W") >/dev/null 2>&1 &
BODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
(
  cd "$W"
  export CANDIDATE_PORT=$PG CANDIDATE_KEY=$KEY MAASCTL_BIN=$BIN MAASCTL_BENCH_DATA=$W/data \
    UPSTREAM_BASE=http://127.0.0.1:$UP/v1 UPSTREAM_STREAM_BASE=http://127.0.0.1:$UP/stream/v1
  exec setsid bash "$ROOT/bench/candidate.sh"
) >"$W/gateway.log" 2>&1 &
up() { # PORT: answers 200
  local _
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$1/v1/chat/completions" -d "$BODY")" = 200 ] && return 0
    sleep 0.2
  done
  echo "nothing answers 200 on port $1: $(tail -5 "$W/gateway.log")" >&2
  exit 1
}
up "$PN"; up "$PG"
G=$(pgrep -f -- "--data-dir $W/data serve" | head -1)
NM=$(pgrep -f -- "nginx -c $W/proxy.conf" | head -1)
N=$(pgrep -P "$NM" | tr '\n' ' ')   # the proxy's workers
HZ=$(getconf CLK_TCK)
ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }
export BENCH_BODY=$BODY BENCH_KEY=$KEY
run() { # PORT CONC PIDS... -> "req/s p99_ms cpu_us_per_request"
  local port=$1 conc=$2 t0 t1 out; shift 2
  t0=$(ticks "$@")
  out=$(wrk -t2 -c"$conc" -d"${DURATION}s" -s "$RIG/wrk-post.lua" "http://127.0.0.1:$port/v1/chat/completions" | tail -1)
  t1=$(ticks "$@")
  python3 -c 'import json, sys
d = json.loads(sys.argv[1]); t0, t1, hz = map(int, sys.argv[2:])
n = d["requests"] - d["non2xx"]; us = d["duration_us"]
print("%.0f %.3f %.2f" % (n * 1e6 / us, d["p99_us"] / 1000, (t1 - t0) * 1e6 / hz / max(n, 1)))' "$out" "$t0" "$t1" "$HZ"
}
echo "nginx-ab: pairs=$PAIRS duration=${DURATION}s binary=$BIN; $(nginx -v 2>&1); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in $CONCS; do
  # shellcheck disable=SC2086 # N is a list of pids
  run "$PN" "$c" $N >/dev/null; run "$PG" "$c" "$G" >/dev/null   # warm-up
  : > "$W/pairs.$c"
  for i in $(seq 1 "$PAIRS"); do
    # shellcheck disable=SC2086
    if ((i % 2)); then a=$(run "$PN" "$c" $N); b=$(run "$PG" "$c" "$G")
    else b=$(run "$PG" "$c" "$G"); a=$(run "$PN" "$c" $N); fi
    echo "$a $b" >> "$W/pairs.$c"
    echo "  c=$c pair $i: nginx $a | maasctl $b   (req/s, p99 ms, proxy CPU us/request)"
  done
  python3 - "$W/pairs.$c" "$c" <<'PY'
import sys, statistics as st
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
rps = [x[3] / x[0] for x in rows]; p99 = [x[4] / x[1] for x in rows]; cpu = [x[5] / x[2] for x in rows]
print(f"c={sys.argv[2]}: maasctl / nginx, median of {len(rows)} pairs: req/s {st.median(rps):.3f} "
      f"(pairs {min(rps):.3f}..{max(rps):.3f}), p99 {st.median(p99):.3f} ({min(p99):.3f}..{max(p99):.3f}), "
      f"CPU per request {st.median(cpu):.3f} (nginx {st.median(x[2] for x in rows):.2f} us, maasctl {st.median(x[5] for x in rows):.2f} us)")
PY
done

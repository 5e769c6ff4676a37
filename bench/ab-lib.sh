# ab-lib.sh: what bench/token-ab.sh and bench/nginx-ab.sh share (sourced,
# not run): a work directory with the rig's fixed-response upstream nginx
# on a random port, gateways started through bench/candidate.sh, and one
# wrk run with the proxy's CPU time per request.
#
# After sourcing: ROOT, RIG, BIN, PAIRS, DURATION, CONCS, W (work
# directory, removed processes on exit), UP (upstream port), KEY, BODY,
# AB_LOG (where the output is kept).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=${RIG:-$ROOT/../shared/bench}
BIN=$(realpath "${MAASCTL_BIN:-$ROOT/target/release/maasctl}")
PAIRS=${PAIRS:-8}; DURATION=${DURATION:-5}; CONCS=${CONCS:-"32 256"}
KEY=${KEY:-sk-ab-bench-key}
BODY='{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
W=$(mktemp -d /tmp/ab.XXXXXX)
UP=$((20000 + RANDOM % 20000))
ab_cleanup() { pkill -f -- "$W/" 2>/dev/null || true; }   # every process started from $W
trap ab_cleanup EXIT
# What the run prints is also kept, in bench/results/SCRIPT-DATE.txt
# (AB_LOG= another file; AB_LOG=/dev/null: none).
AB_LOG=${AB_LOG:-$ROOT/bench/results/$(basename "$0" .sh)-$(date -u +%Y%m%d-%H%M%S).txt}
exec > >(tee "$AB_LOG") 2>&1

# ab_conf TEMPLATE OUT [PROXY_PORT]: one of the rig's nginx templates.
ab_conf() {
  sed -e "s#@RUN@#$W#g; s#@UP_PORT@#$UP#g; s#@PROXY_PORT@#${3:-0}#g; s#@UP_WORKERS@#1#g; s#@PROXY_WORKERS@#2#g; s#@MASTER_KEY@#unused#g" "$1" > "$2"
}
ab_conf "$RIG/upstream.conf.in" "$W/upstream.conf"
(setsid nginx -c "$W/upstream.conf" -p "$W") >/dev/null 2>&1 &

# ab_gateway PORT RULES NAME: `maasctl serve` through bench/candidate.sh
# (RULES as its MAASCTL_BENCH_RULES), data in $W/NAME, log in $W/NAME.log.
ab_gateway() {
  mkdir -p "$W/$3"
  (
    cd "$W/$3"
    export CANDIDATE_PORT=$1 CANDIDATE_KEY=$KEY MAASCTL_BIN=$BIN MAASCTL_BENCH_RULES=$2 \
      MAASCTL_BENCH_DATA=$W/$3/data UPSTREAM_BASE=http://127.0.0.1:$UP/v1 \
      UPSTREAM_STREAM_BASE=http://127.0.0.1:$UP/stream/v1
    exec setsid bash "$ROOT/bench/candidate.sh"
  ) >"$W/$3.log" 2>&1 &
}

# ab_pid NAME: the gateway started as NAME.
ab_pid() { pgrep -f -- "--data-dir $W/$1/data serve" | head -1; }

# ab_wait PORT: until the port answers the bench request with 200.
ab_wait() {
  local _
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$1/v1/chat/completions" -d "$BODY")" = 200 ] && return 0
    sleep 0.2
  done
  echo "nothing answers 200 on port $1: $(tail -n 5 "$W"/*.log 2>/dev/null)" >&2
  exit 1
}

ab_ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$s"; }

# ab_run PORT CONC PIDS... -> "req/s p99_ms cpu_us_per_request": one wrk
# run (the rig's Lua script) and the CPU time PIDS spent per 200.
ab_run() {
  local port=$1 conc=$2 t0 t1 out; shift 2
  t0=$(ab_ticks "$@")
  out=$(BENCH_BODY=$BODY BENCH_KEY=$KEY wrk -t2 -c"$conc" -d"${DURATION}s" -s "$RIG/wrk-post.lua" \
    "http://127.0.0.1:$port/v1/chat/completions" | tail -1)
  t1=$(ab_ticks "$@")
  python3 -c 'import json, sys
d = json.loads(sys.argv[1]); t0, t1, hz = map(int, sys.argv[2:])
n = d["requests"] - d["non2xx"]; us = d["duration_us"]
print("%.0f %.3f %.2f" % (n * 1e6 / us, d["p99_us"] / 1000, (t1 - t0) * 1e6 / hz / max(n, 1)))' \
    "$out" "$t0" "$t1" "$(getconf CLK_TCK)"
}

# ab_pairs CONC LABEL_A PORT_A "PIDS_A" LABEL_B PORT_B "PIDS_B": a warm-up
# run of each, then PAIRS pairs of runs, the order swapped every pair;
# each pair's "A-figures B-figures" (see ab_run) appended to $W/pairs.CONC.
ab_pairs() {
  local c=$1 la=$2 pa=$3 la_pids=$4 lb=$5 pb=$6 lb_pids=$7 i a b
  local -a ia ib
  read -r -a ia <<< "$la_pids"; read -r -a ib <<< "$lb_pids"
  ab_run "$pa" "$c" "${ia[@]}" >/dev/null; ab_run "$pb" "$c" "${ib[@]}" >/dev/null   # warm-up
  : > "$W/pairs.$c"
  for i in $(seq 1 "$PAIRS"); do
    if ((i % 2)); then a=$(ab_run "$pa" "$c" "${ia[@]}"); b=$(ab_run "$pb" "$c" "${ib[@]}")
    else b=$(ab_run "$pb" "$c" "${ib[@]}"); a=$(ab_run "$pa" "$c" "${ia[@]}"); fi
    echo "$a $b" >> "$W/pairs.$c"
    echo "  c=$c pair $i: $la $a | $lb $b   (req/s, p99 ms, CPU us/request)"
  done
}

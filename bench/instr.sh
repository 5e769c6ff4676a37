#!/usr/bin/env bash
# instr.sh: user-space instructions per request of the gateway's worker
# thread, counted by callgrind (valgrind): deterministic, so a change of a
# few hundred instructions per request shows where req/s on a shared VM
# (±10% from round to round) cannot. Kernel time is not counted: compare
# it with the CPU per request of bench/token-ab.sh or the rig.
#
# The rig's fixed-response nginx upstream, then for each configuration in
# CONFIGS (MAASCTL_BENCH_RULES values of bench/candidate.sh: 0 = no rules,
# 1 = two request rules, tokens = two token rules; or `nginx`: the rig's
# nginx proxy_pass configuration, one worker, no master process) a
# one-worker proxy under callgrind: WARM requests, counters zeroed, N
# requests on one keep-alive connection, counters dumped; the busiest
# thread's Ir / N.
#
#   MAASCTL_BIN=target/release/maasctl N=2000 CONFIGS="nginx 0 tokens" bash bench/instr.sh
#
# INSTR_SERVE_FLAGS: more `serve` flags for the gateways (e.g.
# "--ratelimit-headers on-429").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=${RIG:-$ROOT/../shared/bench}
BIN=${MAASCTL_BIN:-$ROOT/target/release/maasctl}
N=${N:-2000}; WARM=${WARM:-300}; CONFIGS=${CONFIGS:-"0 tokens"}
command -v valgrind >/dev/null || { echo "instr.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
KEY=sk-instr-bench-key
W=$(mktemp -d /tmp/instr.XXXXXX)
UP=$((20000 + RANDOM % 20000))
sed -e "s#@RUN@#$W#g" -e "s#@UP_PORT@#$UP#g" -e "s#@UP_WORKERS@#1#g" "$RIG/upstream.conf.in" > "$W/upstream.conf"
cleanup() { pkill -f -- "$W/" 2>/dev/null || true; }
trap cleanup EXIT
(setsid nginx -c "$W/upstream.conf" -p "$W") >/dev/null 2>&1 &
# `serve` runs under callgrind, `apply` natively.
cat > "$W/bin.sh" <<SH
#!/usr/bin/env bash
case " \$* " in
  *" serve "*) exec valgrind --tool=callgrind --separate-threads=yes \
      --callgrind-out-file="\$INSTR_OUT/cg.%p" "$BIN" "\$@" ;;
  *) exec "$BIN" "\$@" ;;
esac
SH
chmod +x "$W/bin.sh"
requests() { # PORT COUNT -> number of 200s
  python3 - "$1" "$2" "$KEY" <<'PY'
import http.client, json, sys
port, n, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
body = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]})
ok = 0
for _ in range(n):
    c.request("POST", "/v1/chat/completions", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse(); r.read(); ok += r.status == 200
print(ok)
PY
}
echo "instr.sh: N=$N warm-up=$WARM binary=$BIN ($(valgrind --version))"
for rules in $CONFIGS; do
  port=$((UP + 1 + RANDOM % 1000)); out=$W/out-$rules; mkdir -p "$out"
  if [ "$rules" = nginx ]; then
    sed -e "s#@RUN@#$W#g; s#@UP_PORT@#$UP#g; s#@PROXY_PORT@#$port#g; s#@PROXY_WORKERS@#1#g" \
      -e 's/^daemon off;/daemon off;\nmaster_process off;/' "$RIG/proxy.conf.in" > "$W/proxy.conf"
    (setsid valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" nginx -c "$W/proxy.conf" -p "$W") \
      >"$W/gw-nginx.log" 2>&1 &
  else
  (
    cd "$W"
    export CANDIDATE_PORT=$port CANDIDATE_KEY=$KEY MAASCTL_BIN=$W/bin.sh MAASCTL_BENCH_RULES=$rules \
      MAASCTL_BENCH_DATA=$W/data-$rules MAASCTL_SERVE_FLAGS="--workers 1 ${INSTR_SERVE_FLAGS:-}" INSTR_OUT=$out \
      UPSTREAM_BASE=http://127.0.0.1:$UP/v1 UPSTREAM_STREAM_BASE=http://127.0.0.1:$UP/stream/v1
    exec setsid bash "$ROOT/bench/candidate.sh"
  ) >"$W/gw-$rules.log" 2>&1 &
  fi
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H "Authorization: Bearer $KEY" \
      "http://127.0.0.1:$port/v1/chat/completions" -d '{"model":"bench-model","messages":[]}')" = 200 ] && break
    sleep 0.5
  done
  if [ "$rules" = nginx ]; then pid=$(pgrep -f -- "valgrind.*nginx -c $W/proxy.conf" | head -1)
  else pid=$(pgrep -f -- "valgrind.*--data-dir $W/data-$rules serve" | head -1); fi
  [ -n "$pid" ] || { echo "the gateway did not start: $(tail -5 "$W/gw-$rules.log")" >&2; exit 1; }
  [ "$(requests "$port" "$WARM")" = "$WARM" ] || { echo "warm-up requests failed" >&2; exit 1; }
  callgrind_control -z "$pid" >/dev/null 2>&1
  ok=$(requests "$port" "$N")
  [ "$ok" = "$N" ] || { echo "only $ok of $N requests answered 200" >&2; exit 1; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  # The busiest thread of the dump: the worker (it also talks to the upstream).
  ir=$(for f in "$out"/cg."$pid".1*; do awk '/^summary:/ {print $2}' "$f"; done | sort -n | tail -1)
  python3 -c "import sys; print('rules=%-7s %10.0f instructions per request (worker thread, user space)' % (sys.argv[1], int(sys.argv[2]) / int(sys.argv[3])))" "$rules" "$ir" "$N"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
done

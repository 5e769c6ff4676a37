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
# shellcheck source=bench/ab-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-lib.sh"
PN=$((UP + 1)); PG=$((UP + 2))
ab_conf "$RIG/proxy.conf.in" "$W/proxy.conf" "$PN"
(setsid nginx -c "$W/proxy.conf" -p "$W") >/dev/null 2>&1 &
ab_gateway "$PG" 0 gateway
ab_wait "$PN"; ab_wait "$PG"
G=$(ab_pid gateway)
NM=$(pgrep -f -- "nginx -c $W/proxy.conf" | head -1)
N=$(pgrep -P "$NM" | tr '\n' ' ')   # the proxy's workers
echo "nginx-ab: pairs=$PAIRS duration=${DURATION}s binary=$BIN (checkout $(git -C "$ROOT" describe --always --dirty 2>/dev/null)); $(nginx -v 2>&1); load: $(cut -d' ' -f1-3 /proc/loadavg); kept in $AB_LOG"
for c in $CONCS; do
  ab_pairs "$c" nginx "$PN" "$N" maasctl "$PG" "$G"
  python3 - "$W/pairs.$c" "$c" <<'PY'
import sys, statistics as st
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
rps = [x[3] / x[0] for x in rows]; p99 = [x[4] / x[1] for x in rows]; cpu = [x[5] / x[2] for x in rows]
print(f"c={sys.argv[2]}: maasctl / nginx, median of {len(rows)} pairs: req/s {st.median(rps):.3f} "
      f"(pairs {min(rps):.3f}..{max(rps):.3f}), p99 {st.median(p99):.3f} ({min(p99):.3f}..{max(p99):.3f}), "
      f"CPU per request {st.median(cpu):.3f} (nginx {st.median(x[2] for x in rows):.2f} us, maasctl {st.median(x[5] for x in rows):.2f} us)")
PY
done

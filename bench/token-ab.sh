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
#   MAASCTL_BIN=target/release/maasctl PAIRS=8 DURATION=5 bash bench/token-ab.sh
set -euo pipefail
# shellcheck source=bench/ab-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-lib.sh"
PA=$((UP + 1)); PB=$((UP + 2))
ab_gateway "$PA" 0 a
ab_gateway "$PB" tokens b
ab_wait "$PA"; ab_wait "$PB"
A=$(ab_pid a); B=$(ab_pid b)
echo "token-ab: pairs=$PAIRS duration=${DURATION}s binary=$BIN (checkout $(git -C "$ROOT" describe --always --dirty 2>/dev/null)); load: $(cut -d' ' -f1-3 /proc/loadavg); kept in $AB_LOG"
for c in $CONCS; do
  ab_pairs "$c" "no rules" "$PA" "$A" "token rules" "$PB" "$B"
  python3 - "$W/pairs.$c" "$c" <<'PY'
import random, sys, statistics as st
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
r = [x[3] / x[0] for x in rows]; u = [x[5] / x[2] for x in rows]
# The mean of the pairs' ratios with a 95% bootstrap interval (10,000
# resamples of the pairs, fixed seed): how far noise can move the figure.
rng = random.Random(12)
boot = sorted(st.fmean(rng.choices(r, k=len(r))) for _ in range(10000))
print(f"c={sys.argv[2]}: req/s token rules / none: median {st.median(r):.3f}, mean {st.fmean(r):.3f} "
      f"(95% interval {boot[250]:.3f}..{boot[9749]:.3f}; pairs {min(r):.3f}..{max(r):.3f}); "
      f"gateway CPU per request: none {st.median(x[2] for x in rows):.2f} us, token rules {st.median(x[5] for x in rows):.2f} us, "
      f"ratio median {st.median(u):.3f} (pairs {min(u):.3f}..{max(u):.3f})")
PY
done

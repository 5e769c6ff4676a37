#!/usr/bin/env bash
# Start `maasctl serve` as the benchmark rig's candidate (../shared/bench/README.md,
# "Candidate contract"): a fresh store seeded with `maasctl apply -f` so that
# `bench-model` routes to $UPSTREAM_BASE and `bench-model-stream` to
# $UPSTREAM_STREAM_BASE, the rig's key $CANDIDATE_KEY imported as a platform
# key, then the gateway in the foreground on 127.0.0.1:$CANDIDATE_PORT.
#
#   CANDIDATE_CMD="bash $PWD/bench/candidate.sh" bash ../shared/bench/rig.sh
#
# Knobs: MAASCTL_BIN (default: the release build under $CARGO_TARGET_DIR or
# ./target), MAASCTL_BENCH_DATA (store directory; default ./maasctl-data in
# the rig's run folder, wiped first), MAASCTL_SERVE_FLAGS (extra serve flags,
# e.g. "--workers 1"), MAASCTL_BENCH_RULES=1 (both models get rate-limit
# rules that never trigger: one on the rig's key, one on its workspace, so the
# limiter's cost shows against a run without them; MAASCTL_BENCH_RULES=tokens:
# the same two rules counting tokens, 4e9 a minute, so every request is
# estimated, reserved and settled to the upstream's usage).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${MAASCTL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/maasctl}
: "${CANDIDATE_PORT:?set by the rig}" "${CANDIDATE_KEY:?set by the rig}"
: "${UPSTREAM_BASE:?set by the rig}" "${UPSTREAM_STREAM_BASE:?set by the rig}"
[ -x "$BIN" ] || { echo "candidate.sh: $BIN not found; run 'cargo build --release' first" >&2; exit 1; }

DATA=${MAASCTL_BENCH_DATA:-$PWD/maasctl-data}
rm -rf "$DATA"
mkdir -p "$DATA"
cat > "$DATA/bench.yaml" <<YAML
market:
  - {name: bench-model, provider: bench, published: true}
  - {name: bench-model-stream, provider: bench, published: true}
workspaces:
  - name: bench
    keys:
      - {name: rig, secret: "env:CANDIDATE_KEY"}
models:
  - name: bench-model
    model_id: bench-model
    enabled: true
    endpoints: [{url: "$UPSTREAM_BASE"}]
  - name: bench-model-stream
    model_id: bench-model
    enabled: true
    endpoints: [{url: "$UPSTREAM_STREAM_BASE"}]
YAML
if [ "${MAASCTL_BENCH_RULES:-0}" != 0 ]; then
  # Appended to each model: 1e9 requests (or 4e9 tokens) a minute never triggers.
  python3 - "$DATA/bench.yaml" "${MAASCTL_BENCH_RULES}" <<'PY'
import sys
p, kind = sys.argv[1], sys.argv[2]
if kind not in ("1", "tokens"):
    sys.exit(f"candidate.sh: MAASCTL_BENCH_RULES must be 1 or tokens, not {kind!r}")
extra = ", unit: tokens, limit: 4000000000" if kind == "tokens" else ", limit: 1000000000"
rules = f"""    rules:
      - {{target: api-key, workspace: bench, key: rig, duration: 60{extra}}}
      - {{target: workspace, workspace: bench, duration: 60{extra}}}
"""
out = []
for line in open(p).read().splitlines(keepends=True):
    out.append(line)
    if line.startswith("    endpoints:"):
        out.append(rules)
open(p, "w").write("".join(out))
PY
fi
"$BIN" --data-dir "$DATA" apply -f "$DATA/bench.yaml" >&2
# shellcheck disable=SC2086 # MAASCTL_SERVE_FLAGS is a list of flags
# No admin API: its default port is fixed and the benchmark does not use it.
exec "$BIN" --data-dir "$DATA" serve --listen "127.0.0.1:$CANDIDATE_PORT" --admin-listen off ${MAASCTL_SERVE_FLAGS:-}

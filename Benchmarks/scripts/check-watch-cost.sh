#!/usr/bin/env bash
# What `crdtctl check`'s visibility watch costs the run it measures: the CI-shaped load (5 nodes,
# 500 ops/s, every fault, an 8 k preload) with the watch on (--visibility-interval 0.1, the default) and
# off (0), alternating on/off ROUNDS times with the same seed, so that drift on a shared machine hits
# both alike. Prints one line per run: ok ops/s, latency and agreement after the final heal.
#
# Usage: Benchmarks/scripts/check-watch-cost.sh [ROUNDS] [extra crdtctl check flags...]
# Environment: CRDTCTL (the binary; default .build/debug/crdtctl), BASE_PORT (default 47000).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
crdtctl=${CRDTCTL:-$repo/.build/debug/crdtctl}
rounds=${1:-2}
shift || true
out=$(mktemp -d /tmp/check-watch-cost.XXXXXX)
for round in $(seq "$rounds"); do
  for interval in 0.1 0; do
    log="$out/$round-$interval.txt"
    "$crdtctl" check --nodes 5 --base-port "${BASE_PORT:-47000}" --dir "$out/cluster" --rate 500 --duration 30 \
      --fault-duration 3 --fault-gap 2 --converge-timeout 30 --preload 8000 --seed 7 --visibility-interval "$interval" \
      --quiet "$@" > "$log" 2>&1 || true
    echo "round $round, --visibility-interval $interval: $(grep -E '^operations' "$log" | sed 's/.*), //') |" \
      "$(grep -E '^latency' "$log" | sed 's/latency of ok operations (ms): //') | $(grep -E '^convergence' "$log")"
  done
done
echo "verdicts in $out"

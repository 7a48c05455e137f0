#!/usr/bin/env bash
# What keyspace notifications cost a writer: redis-benchmark SET against one crdtd node in three
# configurations, interleaved, each cell the median of ROUNDS runs, in one run:
#   off        notify-keyspace-events empty, nobody subscribed
#   flags      notify-keyspace-events KEA, nobody subscribed (the engine should record nothing)
#   watched    notify-keyspace-events KEA and one client PSUBSCRIBEd to __key*__:* reading everything
#              (two messages per SET)
# and PUBLISH to one subscriber. Prints ops/s and the ratios to "off".
#
# Usage: Benchmarks/scripts/pubsub-cost.sh [BINARY] [--rounds N] [--requests N] [--port P]
set -euo pipefail

binary=.build/release/crdtd
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then binary=$1; shift; fi
rounds=3
requests=200000
port=42600
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --requests) requests=$2; shift ;;
        --port) port=$2; shift ;;
        *) echo "pubsub-cost: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$binary" ] || { echo "pubsub-cost: $binary is not an executable (swift build -c release)" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "pubsub-cost: needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }

work=$(mktemp -d /tmp/crdtd-pubsub-cost.XXXXXX)
"$binary" --node-id bench --data-dir "$work/db" --client-addr "127.0.0.1:$port" --peer-addr "127.0.0.1:$((port + 1))" \
    --insecure --log-level warning >"$work/crdtd.log" 2>&1 &
pid=$!
watcher=""
cleanup() {
    [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done

bench() {  # $1: redis-benchmark test or command; prints ops/s
    redis-benchmark -p "$port" -c 50 -P 16 -n "$requests" -r 100000 -q "$@" 2>/dev/null \
        | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -1 | grep -oE '^[0-9.]+'
}
watch_start() {
    redis-cli -p "$port" PSUBSCRIBE '__key*__:*' >/dev/null 2>&1 &
    watcher=$!
    sleep 0.3
}
watch_stop() { kill "$watcher" 2>/dev/null || true; wait "$watcher" 2>/dev/null || true; watcher=""; sleep 0.2; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run_config() {
    case "$1" in
        off) redis-cli -p "$port" CONFIG SET notify-keyspace-events "" >/dev/null; results[off]+="$(bench -t set) " ;;
        flags) redis-cli -p "$port" CONFIG SET notify-keyspace-events KEA >/dev/null; results[flags]+="$(bench -t set) " ;;
        watched)
            redis-cli -p "$port" CONFIG SET notify-keyspace-events KEA >/dev/null
            watch_start
            results[watched]+="$(bench -t set) "
            watch_stop ;;
        publish)
            redis-cli -p "$port" SUBSCRIBE chat >/dev/null 2>&1 &
            watcher=$!
            sleep 0.3
            results[publish]+="$(bench PUBLISH chat hello) "
            watch_stop ;;
    esac
}

# Each round starts one configuration later, so none always runs first (on a fresher database).
declare -A results
configs=(off flags watched publish)
for round in $(seq 0 $((rounds - 1))); do
    for i in 0 1 2 3; do run_config "${configs[$(((round + i) % 4))]}"; done
done

off=$(echo ${results[off]} | tr ' ' '\n' | median)
printf '%-10s %12s %8s\n' config "ops/s" "/off"
for config in off flags watched publish; do
    value=$(echo ${results[$config]} | tr ' ' '\n' | median)
    printf '%-10s %12s %8s\n' "$config" "$value" "$(awk -v a="$value" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"
done
echo "($rounds rounds of $requests requests, 50 clients, pipeline 16; medians; $(nproc) cores)"

#!/usr/bin/env bash
# Replication's cost on throughput (issue 8): redis-benchmark against a single crdtd node and against n1
# of a 3-node crdtd cluster (the other two replicating), interleaved in one run (single, cluster,
# single, cluster ...) so that drift on a noisy machine hits both alike; each cell is the median of
# ROUNDS runs. After each cluster run it measures how long the other nodes take to hold every write
# (equal root digests, `CRDT.DIGEST`: the same state, not only the same number of keys), from the end
# of the run.
#
# crdtd against Redis lives in redis-compare.sh; this script compares crdtd with itself.
#
# Usage: Benchmarks/scripts/replication-cost.sh [--no-build] [--rounds N] [--tests "set incr sadd"]
#            [--pipelines "1 16"] [--requests N] [--clients 50] [--keyspace 100000]
# Environment: CRDTD_BIN (use this binary; implies --no-build).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=1
rounds=3
tests="set incr sadd"
pipelines="1 16"
requests=100000
clients=50
keyspace=100000
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --rounds) rounds=$2; shift ;;
        --tests) tests=$2; shift ;;
        --pipelines) pipelines=$2; shift ;;
        --requests) requests=$2; shift ;;
        --clients) clients=$2; shift ;;
        --keyspace) keyspace=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "replication-cost: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "replication-cost: $*" >&2; }

command -v redis-benchmark >/dev/null || { log "installing redis-tools"; apt-get install -y -qq redis-tools >/dev/null; }
if [ -n "${CRDTD_BIN:-}" ]; then
    bin=$CRDTD_BIN
else
    if [ $build = 1 ]; then
        log "building crdtd (release)"
        (cd "$repo" && swift build -c release --product crdtd >&2)
    fi
    bin="$repo/.build/release/crdtd"
fi

work=$(mktemp -d /tmp/replication-cost.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start NAME CLIENT_PORT PEER_PORT [SEED_PORT ...]
start() {
    local name=$1 client=$2 peer=$3
    shift 3
    local args=(--node-id "$name" --data-dir "$work/$name" --client-addr "127.0.0.1:$client"
                --peer-addr "127.0.0.1:$peer" --insecure)
    for seed in "$@"; do args+=(--seed "127.0.0.1:$seed"); done
    mkdir -p "$work/$name"
    "$bin" "${args[@]}" >>"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do redis-cli -p "$client" PING >/dev/null 2>&1 && return; sleep 0.05; done
    log "$name does not answer on $client"; exit 1
}
stop_all() {
    for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    rm -rf "${work:?}"/n* "${work:?}"/single*
}

# bench PORT TEST PIPELINE -> "ops/s p50"
bench() {
    local out
    out=$(timeout 300 redis-benchmark -p "$1" -c "$clients" -r "$keyspace" -n "$requests" -P "$3" -t "$2" --csv 2>/dev/null \
          | grep -v '^"test"' | tail -1)
    echo "$out" | awk -F'","' '{ gsub(/"/, "", $0); split($0, f, ","); print f[2], f[5] }'
}

state_of() { # PORT: the root digest, which covers every key's whole state
    redis-cli -p "$1" CRDT.DIGEST
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

results="$work/results.csv"
: >"$results"
for test in $tests; do
    for pipeline in $pipelines; do
        for round in $(seq "$rounds"); do
            p=$(free_port); q=$(free_port)
            start single "$p" "$q"
            read -r ops p50 < <(bench "$p" "$test" "$pipeline")
            echo "$test,$pipeline,single,$ops,$p50," >>"$results"
            stop_all

            c1=$(free_port); c2=$(free_port); c3=$(free_port)
            p1=$(free_port); p2=$(free_port); p3=$(free_port)
            start n1 "$c1" "$p1" "$p2" "$p3"; start n2 "$c2" "$p2" "$p1" "$p3"; start n3 "$c3" "$p3" "$p1" "$p2"
            sleep 2  # membership settles
            read -r ops p50 < <(bench "$c1" "$test" "$pipeline")
            ended=$(date +%s.%N)
            converged=""
            for _ in $(seq 600); do
                a=$(state_of "$c1"); b=$(state_of "$c2"); c=$(state_of "$c3")
                if [ "$a" = "$b" ] && [ "$a" = "$c" ]; then
                    converged=$(echo "$(date +%s.%N) - $ended" | bc); break
                fi
                sleep 0.05
            done
            echo "$test,$pipeline,cluster,$ops,$p50,${converged:-timeout}" >>"$results"
            log "$test -P $pipeline round $round: single $(grep "^$test,$pipeline,single" "$results" | tail -1 | cut -d, -f4)/s, cluster $ops/s, digests equal ${converged:-never (30 s)} s after"
            stop_all
        done
    done
done

echo "| command | -P | single node ops/s | n1 of 3 ops/s | cluster/single | digests equal on all nodes, s after the run (median, max) |"
echo "|---|---:|---:|---:|---:|---|"
for test in $tests; do
    for pipeline in $pipelines; do
        single=$(grep "^$test,$pipeline,single," "$results" | cut -d, -f4 | median)
        cluster=$(grep "^$test,$pipeline,cluster," "$results" | cut -d, -f4 | median)
        lag_median=$(grep "^$test,$pipeline,cluster," "$results" | cut -d, -f6 | grep -v timeout | median || true)
        lag_max=$(grep "^$test,$pipeline,cluster," "$results" | cut -d, -f6 | sort -n | tail -1)
        ratio=$(echo "scale=2; $cluster / $single" | bc)
        printf '| %s | %s | %.0f | %.0f | %s | %s, %s |\n' "$(echo "$test" | tr a-z A-Z)" "$pipeline" "$single" "$cluster" "$ratio" "${lag_median:-n/a}" "$lag_max"
    done
done
echo
echo "Median of $rounds interleaved runs per cell; $clients clients; -n $requests; -r $keyspace; --durability normal; 2 cores shared by every process."

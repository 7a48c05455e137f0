#!/usr/bin/env bash
# Large replies (issue 14): how long a PING on another connection waits while a node answers SMEMBERS,
# HGETALL and ZRANGE 0 -1 of one key holding MEMBERS members, crdtd and Redis side by side in one run.
# Fills one set, one hash and one sorted set of 16-byte members with fill.py (1,000 members per
# command, 16 in flight), then for each read: a PING loop on a second connection (pinglat.py, 2 ms apart) runs
# while redis-cli sends the read once; prints the read's time, its reply size and the PINGs' p50/p99/max.
#
# Usage: Benchmarks/scripts/large-replies.sh [--members N] [--port-base P]
# Environment: CRDTD_BIN (default .build/release/crdtd; build it with swift build -c release --product crdtd).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
members=1000000
base=44100
while [ $# -gt 0 ]; do
    case "$1" in
        --members) members=$2; shift ;;
        --port-base) base=$2; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "large-replies: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
bin=${CRDTD_BIN:-$repo/.build/release/crdtd}
work=$(mktemp -d /tmp/large-replies.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "large-replies: $*" >&2; }


wait_up() { for _ in $(seq 400); do redis-cli -p "$1" PING >/dev/null 2>&1 && return; sleep 0.05; done; log "port $1 does not answer"; exit 1; }

measure() { # NAME PORT
    local name=$1 port=$2
    local t0 t1
    t0=$(date +%s.%N)
    for kind in "set s" "hash h" "zset z"; do
        # shellcheck disable=SC2086
        python3 "$repo/Benchmarks/scripts/fill.py" "$port" $kind "$members"
    done
    t1=$(date +%s.%N)
    log "$name: filled in $(echo "$t1 - $t0" | bc) s; SCARD $(redis-cli -p "$port" SCARD s), HLEN $(redis-cli -p "$port" HLEN h), ZCARD $(redis-cli -p "$port" ZCARD z)"
    sleep 3  # staged snapshots and the like settle
    for read in "SMEMBERS s" "HGETALL h" "ZRANGE z 0 -1"; do
        rm -f "$work/done"
        python3 "$repo/Benchmarks/scripts/pinglat.py" "$port" 60 --until-file "$work/done" >"$work/ping" &
        local prober=$!
        sleep 0.5
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        bytes=$(redis-cli -p "$port" $read | wc -c)
        t1=$(date +%s.%N)
        sleep 0.3
        touch "$work/done"
        wait "$prober"
        read -r count p50 p99 max <"$work/ping"
        printf '| %s | %s | %s | %.2f s | %s MiB | %s | %s ms | %s ms | %s ms |\n' "$name" "$read" "$members" "$(echo "$t1 - $t0" | bc)" \
            "$((bytes >> 20))" "$count" "$p50" "$p99" "$max"
    done
}

echo "| server | read | members | read took (redis-cli, to its output) | output | PINGs | PING p50 | PING p99 | PING max |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
redis-server --port "$base" --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_up "$base"
measure redis "$base"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

mkdir -p "$work/crdtd"
"$bin" --node-id n1 --data-dir "$work/crdtd" --client-addr "127.0.0.1:$((base + 1))" --peer-addr "127.0.0.1:$((base + 2))" \
    --insecure --durability normal >"$work/crdtd.log" 2>&1 &
pids+=($!)
wait_up "$((base + 1))"
measure crdtd "$((base + 1))"

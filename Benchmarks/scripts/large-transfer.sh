#!/usr/bin/env bash
# Transfer of a large set to a new node (issue 14), end to end: n1 alone takes MEMBERS 16-byte members
# into one set (fill.py, 1,000 per SADD, 16 in flight); then n2 starts with an empty data directory, seeded
# with n1, and the script waits until both answer the same CRDT.DIGEST. Prints the time from n2's start
# to equal digests, the peer bytes n1 sent and n2 received meanwhile (crdtd_peer_bytes_total), the set's
# stored size, and the PING latency on both nodes during the transfer (pinglat.py, 2 ms apart).
# Then the same for a wiped node: n2 is stopped, its directory removed, and it restarts.
#
# Usage: Benchmarks/scripts/large-transfer.sh [--members N] [--port-base P]
# Environment: CRDTD_BIN (default .build/release/crdtd).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
members=1000000
base=44200
while [ $# -gt 0 ]; do
    case "$1" in
        --members) members=$2; shift ;;
        --port-base) base=$2; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "large-transfer: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
bin=${CRDTD_BIN:-$repo/.build/release/crdtd}
work=$(mktemp -d /tmp/large-transfer.XXXXXX)
declare -A pid
cleanup() { for p in "${pid[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "large-transfer: $*" >&2; }

c1=$base; p1=$((base + 1)); m1=$((base + 2)); c2=$((base + 3)); p2=$((base + 4)); m2=$((base + 5))
start() { # NAME CLIENT PEER METRICS SEEDPEER
    mkdir -p "$work/$1"
    "$bin" --node-id "$1" --data-dir "$work/$1" --client-addr "127.0.0.1:$2" --peer-addr "127.0.0.1:$3" \
        --metrics-addr "127.0.0.1:$4" --seed "127.0.0.1:$5" --insecure --durability normal >>"$work/$1.log" 2>&1 &
    pid[$1]=$!
    for _ in $(seq 400); do redis-cli -p "$2" PING >/dev/null 2>&1 && return; sleep 0.05; done
    log "$1 does not answer on $2"; exit 1
}
peer_bytes() { # METRICS-PORT DIRECTION
    curl -s "http://127.0.0.1:$1/metrics" | awk -v d="$2" '$1 ~ "^crdtd_peer_bytes_total" && $1 ~ "direction=\""d"\"" { print $2 }' | head -1
}


start n1 "$c1" "$p1" "$m1" "$p2"
t0=$(date +%s.%N)
python3 "$repo/Benchmarks/scripts/fill.py" "$c1" set big "$members"
log "n1 filled in $(echo "$(date +%s.%N) - $t0" | bc) s, SCARD $(redis-cli -p "$c1" SCARD big)"
sleep 3

transfer() { # LABEL
    local out1 in2 t0 t1 equal=""
    out1=$(peer_bytes "$m1" out); out1=${out1:-0}
    rm -f "$work/done"
    python3 "$repo/Benchmarks/scripts/pinglat.py" "$c1" 120 --until-file "$work/done" >"$work/ping1" &
    local prober1=$!
    t0=$(date +%s.%N)
    start n2 "$c2" "$p2" "$m2" "$p1"
    python3 "$repo/Benchmarks/scripts/pinglat.py" "$c2" 120 --until-file "$work/done" >"$work/ping2" &
    local prober2=$!
    for _ in $(seq 2400); do
        if [ "$(redis-cli -p "$c1" CRDT.DIGEST)" = "$(redis-cli -p "$c2" CRDT.DIGEST)" ]; then equal=1; break; fi
        sleep 0.05
    done
    t1=$(date +%s.%N)
    touch "$work/done"
    wait "$prober1" "$prober2"
    local sent received
    sent=$(( $(peer_bytes "$m1" out) - out1 )); received=$(peer_bytes "$m2" in)
    read -r n1count n1p50 n1p99 n1max <"$work/ping1"
    read -r n2count n2p50 n2p99 n2max <"$work/ping2"
    printf '| %s | %s | %s | %.2f s | %.1f MB | %.1f MB | %s | %s / %s / %s ms | %s / %s / %s ms |\n' "$1" "$members" \
        "$(redis-cli -p "$c2" SCARD big)" "$(echo "$t1 - $t0" | bc)" "$(echo "$sent / 1000000" | bc -l)" \
        "$(echo "${received:-0} / 1000000" | bc -l)" "${equal:+yes}" "$n1p50" "$n1p99" "$n1max" "$n2p50" "$n2p99" "$n2max"
}

echo "| case | members | SCARD on n2 | n2 start to equal digests | n1 sent | n2 received | digests equal | PING on n1 p50 / p99 / max | PING on n2 p50 / p99 / max |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|"
transfer "new node n2 joins"
sleep 2
kill "${pid[n2]}"; wait "${pid[n2]}" 2>/dev/null || true; unset "pid[n2]"
rm -rf "$work/n2"
sleep 1
transfer "n2 wiped and restarted"

#!/usr/bin/env bash
# What a list pop means without coordination: two crdtd nodes on loopback, a queue of jobs, a
# partition, and one LPOP on each side. Both consumers get the same job; after the heal both nodes
# hold the same list, without it. Use a list as a log or a feed, not as a work queue that must hand
# each job to exactly one worker (docs/redis-compatibility.md, Lists).
#
#   examples/list-pop-partition.sh            (uses crdtd from CRDTD_BIN or the PATH, else builds it)
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${CRDTD_BIN:-$(command -v crdtd || true)}"
if [ -z "$binary" ]; then nice -n 10 swift build --product crdtd >/dev/null; binary=.build/debug/crdtd; fi
command -v redis-cli >/dev/null || { echo "redis-cli is missing (scripts/setup installs it)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
dir=$(mktemp -d /tmp/crdtd-list-pop.XXXXXX)
head -c 32 /dev/urandom | base64 >"$dir/cluster.key"
c1=$(free_port); p1=$(free_port); c2=$(free_port); p2=$(free_port)
start() {  # name client-port peer-port seed-port
    "$binary" --node-id "$1" --data-dir "$dir/$1" --client-addr "127.0.0.1:$2" --peer-addr "127.0.0.1:$3" \
        --seed "127.0.0.1:$4" --cluster-key-file "$dir/cluster.key" --allow-fault-injection --gossip-interval 50 \
        --log-level warning >"$dir/$1.log" 2>&1 &
    echo $!
}
pid1=$(start n1 "$c1" "$p1" "$p2")
pid2=$(start n2 "$c2" "$p2" "$p1")
trap 'kill "$pid1" "$pid2" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
on() { local port=$1; shift; redis-cli -p "$port" "$@"; }
for port in "$c1" "$c2"; do
    for _ in $(seq 1 100); do on "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
converged() {
    for _ in $(seq 1 100); do
        [ "$(on "$c1" CRDT.DIGEST)" = "$(on "$c2" CRDT.DIGEST)" ] && return 0
        sleep 0.1
    done
    echo "the nodes did not converge" >&2; return 1
}

echo "== n1: RPUSH jobs job-1 job-2 job-3"
on "$c1" RPUSH jobs job-1 job-2 job-3 >/dev/null
converged
echo "   n2 sees: $(on "$c2" LRANGE jobs 0 -1 | paste -sd' ')"
echo "== partition n1 | n2"
on "$c1" CRDT.PARTITION n2 >/dev/null
on "$c2" CRDT.PARTITION n1 >/dev/null
echo "   worker on n1: LPOP jobs -> $(on "$c1" LPOP jobs)"
echo "   worker on n2: LPOP jobs -> $(on "$c2" LPOP jobs)      (the same job: nobody could tell it was taken)"
echo "   n1: RPUSH jobs job-4 -> $(on "$c1" RPUSH jobs job-4)"
echo "== heal"
on "$c1" CRDT.HEAL >/dev/null
on "$c2" CRDT.HEAL >/dev/null
converged
echo "   n1: $(on "$c1" LRANGE jobs 0 -1 | paste -sd' ')"
echo "   n2: $(on "$c2" LRANGE jobs 0 -1 | paste -sd' ')  (one list on both: job-1 removed once, job-4 kept)"

# Expected output:
# == n1: RPUSH jobs job-1 job-2 job-3
#    n2 sees: job-1 job-2 job-3
# == partition n1 | n2
#    worker on n1: LPOP jobs -> job-1
#    worker on n2: LPOP jobs -> job-1      (the same job: nobody could tell it was taken)
#    n1: RPUSH jobs job-4 -> 3
# == heal
#    n1: job-2 job-3 job-4
#    n2: job-2 job-3 job-4  (one list on both: job-1 removed once, job-4 kept)

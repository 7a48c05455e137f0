#!/usr/bin/env bash
# A counter through a partition and a heal: both sides keep counting, and after the heal every node holds
# the sum of every increment, with no coordination. Needs crdtctl (and crdtd beside it or on the PATH):
#   swift build && PATH=$PWD/.build/debug:$PATH examples/counter-partition.sh
# CRDTD_EXAMPLE_BASE_PORT (default 19000) chooses the ports. scripts/check-examples runs this and compares
# what it prints with the expected output at the end.
set -euo pipefail
dir=$(mktemp -d /tmp/crdtd-example-XXXXXX)
base=${CRDTD_EXAMPLE_BASE_PORT:-19000}
# Shows each command, then runs it on the example's cluster.
run() { echo "\$ crdtctl $*"; crdtctl "$@" --dir "$dir"; }
# Waits (at most 30 s) until every node reports the same CRDT.DIGEST.
converge() { crdtctl verify --dir "$dir" --timeout 30 >/dev/null && echo "(every node agrees)"; }
# Waits (at most 10 s) until NODE reads VALUE: replication inside one side of the cut is asynchronous too.
wait_for() {
    for _ in $(seq 100); do
        [ "$(crdtctl counter get visits --node "$1" --dir "$dir")" = "$2" ] && { echo "(${1} reads $2)"; return; }
        sleep 0.1
    done
    echo "(${1} never read $2)"; return 1
}

crdtctl cluster start --nodes 3 --base-port "$base" --dir "$dir" >/dev/null
trap 'crdtctl cluster stop --dir "$dir" >/dev/null; rm -rf "$dir"' EXIT

run counter incr visits 10 --node n1
converge
run partition n1 n2,n3                   # n1 alone on one side, n2 and n3 on the other
run counter incr visits 5 --node n1      # both sides take writes during the cut
run counter incr visits 3 --node n2
wait_for n3 13                           # n3 sees n2's increment, not n1's
run counter get visits --node n1
run heal
converge
run counter get visits --node n1
run counter get visits --node n3

# Expected output:
# $ crdtctl counter incr visits 10 --node n1
# 10
# (every node agrees)
# $ crdtctl partition n1 n2,n3
# n1 cut from n2, n3
# n2 cut from n1
# n3 cut from n1
# $ crdtctl counter incr visits 5 --node n1
# 15
# $ crdtctl counter incr visits 3 --node n2
# 13
# (n3 reads 13)
# $ crdtctl counter get visits --node n1
# 15
# $ crdtctl heal
# healed
# (every node agrees)
# $ crdtctl counter get visits --node n1
# 18
# $ crdtctl counter get visits --node n3
# 18

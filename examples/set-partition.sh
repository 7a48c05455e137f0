#!/usr/bin/env bash
# An add-wins set through a partition and a heal: one side removes an element while the other removes it
# and adds it again; after the heal the add wins (it was not seen by the remove), and every other change of
# both sides is kept. Needs crdtctl (and crdtd beside it or on the PATH):
#   swift build && PATH=$PWD/.build/debug:$PATH examples/set-partition.sh
# CRDTD_EXAMPLE_BASE_PORT (default 19100) chooses the ports. scripts/check-examples runs this and compares
# what it prints with the expected output at the end.
set -euo pipefail
dir=$(mktemp -d /tmp/crdtd-example-XXXXXX)
base=${CRDTD_EXAMPLE_BASE_PORT:-19100}
# Shows each command, then runs it on the example's cluster.
run() { echo "\$ crdtctl $*"; crdtctl "$@" --dir "$dir"; }
# Waits (at most 30 s) until every node reports the same CRDT.DIGEST.
converge() { crdtctl verify --dir "$dir" --timeout 30 >/dev/null && echo "(every node agrees)"; }

crdtctl cluster start --nodes 3 --base-port "$base" --dir "$dir" >/dev/null
trap 'crdtctl cluster stop --dir "$dir" >/dev/null; rm -rf "$dir"' EXIT

run set add cart apple banana --node n1
converge
run partition n1,n3 n2                   # n2 alone on one side
run set rm cart banana --node n1         # removes the banana it has seen
run set add cart cherry --node n1
run set rm cart banana --node n2         # the other side removes it too, then adds it again:
run set add cart banana --node n2        # a new add, which n1's remove never saw
run set members cart --node n1
run set members cart --node n2
run heal
converge
run set members cart --node n3
run set contains cart banana --node n1 --json

# Expected output:
# $ crdtctl set add cart apple banana --node n1
# 2
# (every node agrees)
# $ crdtctl partition n1,n3 n2
# n1 cut from n2
# n2 cut from n1, n3
# n3 cut from n2
# $ crdtctl set rm cart banana --node n1
# 1
# $ crdtctl set add cart cherry --node n1
# 1
# $ crdtctl set rm cart banana --node n2
# 1
# $ crdtctl set add cart banana --node n2
# 1
# $ crdtctl set members cart --node n1
# apple
# cherry
# $ crdtctl set members cart --node n2
# apple
# banana
# $ crdtctl heal
# healed
# (every node agrees)
# $ crdtctl set members cart --node n3
# apple
# banana
# cherry
# $ crdtctl set contains cart banana --node n1 --json
# {"key":"cart","value":true}

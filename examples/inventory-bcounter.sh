#!/usr/bin/env bash
# An inventory that must never go negative, kept with a bounded counter on both sides of a partition. Each
# node may take stock only within the rights it holds, so the two sides together can never sell more than
# there is, with no coordination during the cut; a side that runs out of rights is refused (and says so)
# even though its own view still shows stock. Needs crdtctl (and crdtd beside it or on the PATH):
#   swift build && PATH=$PWD/.build/debug:$PATH examples/inventory-bcounter.sh
# CRDTD_EXAMPLE_BASE_PORT (default 19200) chooses the ports. scripts/check-examples runs this and compares
# what it prints with the expected output at the end.
set -euo pipefail
dir=$(mktemp -d /tmp/crdtd-example-XXXXXX)
base=${CRDTD_EXAMPLE_BASE_PORT:-19200}
# Shows each command, then runs it on the example's cluster; a refusal prints its message and exit code.
run() { echo "\$ crdtctl $*"; crdtctl "$@" --dir "$dir" 2>&1 || echo "(exit $?)"; }
# Waits (at most 30 s) until every node reports the same CRDT.DIGEST.
converge() { crdtctl verify --dir "$dir" --timeout 30 >/dev/null && echo "(every node agrees)"; }

crdtctl cluster start --nodes 3 --base-port "$base" --dir "$dir" >/dev/null
trap 'crdtctl cluster stop --dir "$dir" >/dev/null; rm -rf "$dir"' EXIT

run bcounter incr stock 10 --node n1        # 10 in stock; n1 holds all 10 rights
converge
run bcounter transfer stock n2 4 --node n1  # n2 may now sell 4, n1 6
converge
run partition n1 n2,n3
run bcounter decr stock 6 --node n1         # n1 sells its 6
run bcounter decr stock 3 --node n2         # n2 sells 3 of its 4
run bcounter decr stock 2 --node n2         # refused: n2 holds 1 right, though it still sees 7 in stock
run bcounter rights stock --node n2
run heal
converge
run bcounter get stock --node n3            # 10 - 6 - 3: never below zero

# Expected output:
# $ crdtctl bcounter incr stock 10 --node n1
# 10
# (every node agrees)
# $ crdtctl bcounter transfer stock n2 4 --node n1
# 10
# (every node agrees)
# $ crdtctl partition n1 n2,n3
# n1 cut from n2, n3
# n2 cut from n1
# n3 cut from n1
# $ crdtctl bcounter decr stock 6 --node n1
# 4
# $ crdtctl bcounter decr stock 3 --node n2
# 7
# $ crdtctl bcounter decr stock 2 --node n2
# crdtctl: n2 refused CRDT.BDECRBY: ERR insufficient rights: this node holds 1 and needs 2; move rights here with CRDT.BTRANSFER on a node that has them, or decrement elsewhere
# (exit 1)
# $ crdtctl bcounter rights stock --node n2
# 1
# $ crdtctl heal
# healed
# (every node agrees)
# $ crdtctl bcounter get stock --node n3
# 1

#!/usr/bin/env bash
# Why "a user name is taken at most once" cannot be kept without coordination (it is not invariant-
# confluent: two sides of a partition can each check that a name is free and take it, and merging those
# two valid states breaks the rule), and what to do instead: reserve the name by escrow, with a bounded
# counter whose one right lives on one node (the name's designated owner), so at most one claim can ever
# succeed, partition or not. Needs crdtctl (and crdtd beside it or on the PATH):
#   swift build && PATH=$PWD/.build/debug:$PATH examples/unique-name.sh
# CRDTD_EXAMPLE_BASE_PORT (default 19300) chooses the ports. scripts/check-examples runs this and compares
# what it prints with the expected output at the end.
set -euo pipefail
dir=$(mktemp -d /tmp/crdtd-example-XXXXXX)
base=${CRDTD_EXAMPLE_BASE_PORT:-19300}
# Shows each command, then runs it on the example's cluster; a refusal prints its message and exit code.
run() { echo "\$ crdtctl $*"; crdtctl "$@" --dir "$dir" 2>&1 || echo "(exit $?)"; }
# Waits (at most 30 s) until every node reports the same CRDT.DIGEST.
converge() { crdtctl verify --dir "$dir" --timeout 30 >/dev/null && echo "(every node agrees)"; }

crdtctl cluster start --nodes 3 --base-port "$base" --dir "$dir" >/dev/null
trap 'crdtctl cluster stop --dir "$dir" >/dev/null; rm -rf "$dir"' EXIT

echo "== the naive way: check that the name is free, then take it"
run partition n1 n2,n3
run register get user:alice --node n1       # free on this side...
run register set user:alice ada --node n1   # ... so ada takes it, and is told OK
run register get user:alice --node n2       # free on the other side too...
run register set user:alice alan --node n2  # ... so alan takes it, and is told OK as well
run heal
converge
owner=$(crdtctl register get user:alice --node n3 --dir "$dir")
case "$owner" in
    ada | alan) echo "(user:alice is now one of ada or alan: the other was told OK and has lost the name)" ;;
    *) echo "(unexpected owner: $owner)"; exit 1 ;;
esac
# "Set if absent" is refused outright: it would need every node to agree that the key is absent.
echo "\$ crdtctl run n1 SETNX user:bob ada"
crdtctl run --dir "$dir" n1 SETNX user:bob ada

echo "== by escrow: the name is one right, held by one node"
run bcounter incr name:carol 1 --node n1    # n1 holds carol's single right
converge
run partition n1 n2,n3
run bcounter decr name:carol 1 --node n1    # n1's side claims carol (then writes user:carol)
run bcounter decr name:carol 1 --node n2    # the other side cannot: the right is not there
run heal
converge
run bcounter get name:carol --node n3       # 0: carol was claimed exactly once

# Expected output:
# == the naive way: check that the name is free, then take it
# $ crdtctl partition n1 n2,n3
# n1 cut from n2, n3
# n2 cut from n1
# n3 cut from n1
# $ crdtctl register get user:alice --node n1
# (nil)
# $ crdtctl register set user:alice ada --node n1
# OK
# $ crdtctl register get user:alice --node n2
# (nil)
# $ crdtctl register set user:alice alan --node n2
# OK
# $ crdtctl heal
# healed
# (every node agrees)
# (user:alice is now one of ada or alan: the other was told OK and has lost the name)
# $ crdtctl run n1 SETNX user:bob ada
# (error) ERR SETNX needs coordination between nodes, which crdtd does not do (two partitioned nodes would both succeed); use SET, or CRDT.BINCRBY for a claim that must be unique
# == by escrow: the name is one right, held by one node
# $ crdtctl bcounter incr name:carol 1 --node n1
# 1
# (every node agrees)
# $ crdtctl partition n1 n2,n3
# n1 cut from n2, n3
# n2 cut from n1
# n3 cut from n1
# $ crdtctl bcounter decr name:carol 1 --node n1
# 0
# $ crdtctl bcounter decr name:carol 1 --node n2
# crdtctl: n2 refused CRDT.BDECRBY: ERR insufficient rights: this node holds 0 and needs 1; move rights here with CRDT.BTRANSFER on a node that has them, or decrement elsewhere
# (exit 1)
# $ crdtctl heal
# healed
# (every node agrees)
# $ crdtctl bcounter get name:carol --node n3
# 0

#!/usr/bin/env bash
# Runs StoreBench's large-object measurements on the store of revision REV and on this working tree,
# one after the other on the same machine, and prints each table with both rows and their ratio.
# The bench sources of this tree are used for both (they need only the Store and CRDT public APIs).
#
# Usage: examples/StoreBench/ab.sh REV [commits|restart]...
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
rev=$1; shift
sections=${*:-commits restart}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/storebench-ab.XXXXXX)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach "$work/base" "$rev" >/dev/null 2>&1
rm -rf "$work/base/examples/StoreBench"
tar -C "$root/examples" --exclude=.build -cf - StoreBench | tar -C "$work/base/examples" -xf -
for tree in "$work/base" "$root"; do
    swift build -c release --package-path "$tree/examples/StoreBench" >"$work/build.log" 2>&1 \
        || { cat "$work/build.log" >&2; exit 1; }
done
before="$work/base/examples/StoreBench/.build/release/StoreBench"
after="$root/examples/StoreBench/.build/release/StoreBench"
label_before=$(git -C "$root" rev-parse --short "$rev")
label_after="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- Sources || echo +changes)"
for section in $sections; do
    "$before" large-objects "$section" "$label_before" 2>/dev/null | tee "$work/before.txt"
    "$after" large-objects "$section" "$label_after" --no-header 2>/dev/null | tee "$work/after.txt"
    # The ratio of each numeric cell, after / before (a number followed by its unit, if any).
    paste -d '\n' <(tail -n 1 "$work/before.txt") <(tail -n 1 "$work/after.txt") | awk -F'|' '
        NR == 1 { for (i = 3; i < NF; i++) b[i] = $i + 0; next }
        { line = "| after / before |"; for (i = 3; i < NF; i++) line = line " " (b[i] ? sprintf("%.2f", ($i + 0) / b[i]) : "-") " |"; print line }'
    echo
done

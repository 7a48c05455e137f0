#!/usr/bin/env bash
# The thesis, measured (issue 11): crdtd side by side with a 3-member etcd cluster and with Redis.
#
# Installs what is missing from Debian (etcd-server, etcd-client, redis-server, redis-tools, the SQLite
# headers), builds crdtd and the load client in release mode, runs Benchmarks/scripts/redis-compare.sh
# for the crdtd-against-Redis rows, then the Thesis program (Benchmarks/Sources/Thesis), which starts
# every server it measures on 127.0.0.1 (free ports, data in this run's temporary directory), measures
# increments, availability under partition, visibility latency, scale, memory and persistence, and
# rewrites the thesis section of docs/benchmarks.md, its plots in docs/img/ and the README's headline.
# Every server's PID is recorded in the run's `pids` file; the trap stops each one still alive, always.
#
# Usage: Benchmarks/scripts/thesis.sh [--quick] [--no-build] [--only LIST] [--no-redis-compare] [--keep-work]
#   --quick             the quick version (about 10 minutes); without it the full suite (over an hour)
#   --no-build          reuse .build/release/crdtd, the Thesis binary and the compiled SQLite ceiling
#   --only LIST         comma-separated: increments,partition,visibility,scale,memory,persistence;
#                       prints the section and leaves docs/ and README.md alone
#   --no-redis-compare  skip the redis-benchmark table
#   --keep-work         keep the temporary directory (data, logs) for inspection
#   --partition-via M   auto (default), netns or freeze: how the partition measurement cuts both systems
#                       (netns: every node and member in a network namespace, one nftables cut for both;
#                       root only; auto uses it where it can, else freezes etcd members with SIGSTOP)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
quick=0
build=1
only=""
redis_compare=1
keep=0
partition_via=auto
args="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-build) build=0 ;;
        --only) only=$2; shift ;;
        --no-redis-compare) redis_compare=0 ;;
        --keep-work) keep=1 ;;
        --partition-via) partition_via=$2; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "thesis: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "thesis: $*" >&2; }

# --- Dependencies: install only what is missing. ------------------------------------------------------
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v cc >/dev/null || need+=(gcc)
if [ "$(id -u)" -eq 0 ] && [ "$partition_via" != freeze ]; then
    # The partition measurement's network namespaces and cuts.
    { command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } || need+=(iproute2)
    { command -v nft >/dev/null || [ -x /usr/sbin/nft ] || [ -x /sbin/nft ]; } || need+=(nftables)
fi
pkg-config --exists sqlite3 2>/dev/null || need+=(libsqlite3-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
    # shellcheck disable=SC2207
    need=($(printf '%s\n' "${need[@]}" | sort -u))
    log "installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

# --- Builds. --------------------------------------------------------------------------------------------
crdtd="$repo/.build/release/crdtd"
thesis_bin="$repo/Benchmarks/.build/release/Thesis"
ceiling="$repo/Benchmarks/.build/sqlite-ceiling"
if [ "$build" = 1 ]; then
    log "building crdtd and the Thesis load client (release)"
    (cd "$repo" && swift build -c release --product crdtd >&2)
    (cd "$repo" && swift build -c release --package-path Benchmarks --product Thesis >&2)
    mkdir -p "$(dirname "$ceiling")"
    cc -O2 -o "$ceiling" "$repo/Benchmarks/scripts/sqlite-ceiling.c" $(pkg-config --cflags --libs sqlite3)
fi
for binary in "$crdtd" "$thesis_bin" "$ceiling"; do
    [ -x "$binary" ] || { log "missing $binary: run without --no-build"; exit 1; }
done

# --- The run's directory; every server still alive at the end is stopped by its PID. -----------------
work=$(mktemp -d /tmp/thesis.XXXXXX)
cleanup() {
    local pid name
    if [ -f "$work/run/pids" ]; then
        while read -r pid name; do
            # Only a process of this run: its command line names this run's directory.
            if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$work"; then
                log "stopping $name (pid $pid), left running"
                kill -CONT "$pid" 2>/dev/null || true
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$work/run/pids"
    fi
    # The partition measurement's network lab (namespaces crdtnsb-n1..3, bridge crdtnsb-br), if the run
    # died inside it; its processes were stopped above.
    if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
        for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^crdtnsb-/ {print $1}'); do
            log "removing network namespace $ns, left behind"
            ip netns delete "$ns" 2>/dev/null || true
        done
        ip link delete crdtnsb-br 2>/dev/null || true
    fi
    if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

revision=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?')
if ! (cd "$repo" && git diff --quiet HEAD -- Sources Package.swift 2>/dev/null); then revision="$revision with uncommitted changes"; fi

compare_args=()
if [ "$redis_compare" = 1 ] && [ -z "$only" ]; then
    log "crdtd against Redis: Benchmarks/scripts/redis-compare.sh"
    rounds=3; [ "$quick" = 1 ] && rounds=1
    CRDTD_BIN="$crdtd" "$repo/Benchmarks/scripts/redis-compare.sh" --no-build --rounds "$rounds" --out "$work/redis-compare" >&2
    compare_args=(--redis-compare "$work/redis-compare/table.md")
fi

images="$repo/docs/img"; [ -n "$only" ] && images="$work/img"
thesis_args=(--work "$work/run" --crdtd "$crdtd" --etcd "$(command -v etcd)" --redis-server "$(command -v redis-server)"
    --sqlite-ceiling "$ceiling" --images "$images" --command-line "Benchmarks/scripts/thesis.sh${args:+ $args}"
    --revision "$revision" --partition-via "$partition_via")
[ "$quick" = 1 ] && thesis_args+=(--quick)
if [ -n "$only" ]; then
    thesis_args+=(--only "$only")
else
    thesis_args+=(--doc "$repo/docs/benchmarks.md" --readme "$repo/README.md")
fi
"$thesis_bin" "${thesis_args[@]}" "${compare_args[@]}"

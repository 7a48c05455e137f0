#!/usr/bin/env bash
# Instructions per command on each of crdtd's threads, with callgrind (issue 9, "A write path as cheap
# as Redis's"). Instruction counts do not depend on the load of the machine, so two builds compare
# exactly where a redis-benchmark ratio wanders by +-15%.
#
# For each test, starts a fresh release crdtd (--durability normal) under
# `valgrind --tool=callgrind --separate-threads=yes`, runs one redis-benchmark of N requests against
# it, stops it by PID, and prints the instructions of the engine, writer and loop threads divided by N
# (startup and idle ticks included: a few hundred instructions per command at N = 100000).
#
# Usage: Benchmarks/scripts/callgrind-writes.sh [--tests "set incr sadd hset"] [--requests N]
#            [--pipeline P] [--clients C] [--keyspace R] [--out DIR]
# Environment: CRDTD_BIN (default .build/release/crdtd; build it first).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
tests="set incr sadd hset"
requests=100000
pipeline=16
clients=50
keyspace=100000
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tests) tests=$2; shift ;;
        --requests) requests=$2; shift ;;
        --pipeline) pipeline=$2; shift ;;
        --clients) clients=$2; shift ;;
        --keyspace) keyspace=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "callgrind-writes: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "callgrind-writes: $*" >&2; }
crdtd=${CRDTD_BIN:-$repo/.build/release/crdtd}
[ -x "$crdtd" ] || { log "no crdtd at $crdtd (swift build -c release --product crdtd, or set CRDTD_BIN)"; exit 1; }
for tool in valgrind callgrind_annotate redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { log "needs $tool (apt-get install valgrind redis-tools)"; exit 1; }
done

work=$(mktemp -d /tmp/callgrind-writes.XXXXXX)
[ -n "$out" ] || out=$work
mkdir -p "$out"
# Valgrind 3.19 (Debian 12) cannot read the DWARF 5 that Swift emits: profile a copy without debug
# information (the symbol table stays, so functions keep their names).
objcopy --strip-debug "$crdtd" "$work/crdtd"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work/data" "$work/crdtd"
}
trap cleanup EXIT

free_port() {
    local port
    for port in $(seq 18000 18999); do
        ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
    done
    log "no free port in 18000-18999"; exit 1
}

# The profile of the thread that runs the given function (mangled names keep the type's name).
thread_file() {
    local prefix=$1 marker=$2 file
    for file in "$prefix"-*; do
        if grep -q "$marker" "$file"; then echo "$file"; return 0; fi
    done
}

# Inclusive instructions of the first function matching $2 in profile $1.
inclusive() {
    [ -n "$1" ] || { echo 0; return 0; }
    # awk reads everything (no early exit): under pipefail a SIGPIPE to callgrind_annotate would fail the script.
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null | awk -v f="$2" '!done && index($0, f) { gsub(",", "", $1); print $1; done = 1 }'
}

# The thread whose profile holds the given Swift type's run loop (mangled names keep the type's name).
thread_total() {
    local prefix=$1 marker=$2 file
    for file in "$prefix"-*; do
        if grep -q "$marker" "$file"; then
            sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file"
            return 0
        fi
    done
    echo 0
}

printf '| command | -P | commands run | Engine.execute instr/cmd | engine thread instr/cmd | writer instr/cmd | loop instr/cmd | all threads instr/cmd |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for test in $tests; do
    rm -rf "$work/data"; mkdir -p "$work/data"
    client_port=$(free_port)
    peer_port=$((client_port + 1))
    prefix="$out/callgrind.$test"
    rm -f "$prefix"-* "$prefix"
    valgrind --tool=callgrind --separate-threads=yes --fair-sched=yes --callgrind-out-file="$prefix" \
        "$work/crdtd" --node-id cg --data-dir "$work/data" --client-addr "127.0.0.1:$client_port" \
        --peer-addr "127.0.0.1:$peer_port" --insecure --durability normal --log-level warning \
        >"$out/crdtd.$test.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        [ "$(redis-cli -h 127.0.0.1 -p "$client_port" PING 2>/dev/null)" = PONG ] && break
        kill -0 "$pid" 2>/dev/null || { log "crdtd exited under valgrind (log: $out/crdtd.$test.log)"; exit 1; }
        sleep 0.1
    done
    redis-benchmark -h 127.0.0.1 -p "$client_port" -c "$clients" -n "$requests" -P "$pipeline" \
        -r "$keyspace" -t "$test" -q >"$out/benchmark.$test.txt" 2>&1 || log "redis-benchmark failed for $test"
    # Commands the engine ran (the benchmark's, plus this INFO and the PINGs above), the divisor.
    commands=$(redis-cli -h 127.0.0.1 -p "$client_port" INFO stats | tr -d '\r' | sed -n 's/^total_commands_processed://p')
    grep -q 'BUSY\|Error' "$out/benchmark.$test.txt" && log "$test: the benchmark saw errors (see $out/benchmark.$test.txt)"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    engine=$(thread_total "$prefix" 'EngineThreadC3run')
    writer=$(thread_total "$prefix" 'WriterThreadC3run')
    # The commands themselves (parse, run, reply), without the thread's ticks and idle wake-ups.
    execute=$(inclusive "$(thread_file "$prefix" 'EngineThreadC3run')" 'EngineAAV7execute_3for4into')
    all=0
    for file in "$prefix"-*; do
        n=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file"); all=$((all + ${n:-0}))
    done
    # The loop thread is the main thread: the first profile.
    loop=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$prefix-01" 2>/dev/null || echo 0)
    awk -v t="$(echo "$test" | tr a-z A-Z)" -v p="$pipeline" -v n="${commands:-0}" -v e="$engine" -v x="${execute:-0}" -v w="$writer" -v l="$loop" -v a="$all" \
        'BEGIN { if (n == 0) n = 1; printf "| %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n", t, p, n, x / n, e / n, w / n, l / n, a / n }'
done
echo
echo "crdtd $crdtd; valgrind --tool=callgrind --separate-threads=yes; redis-benchmark -c $clients -n $requests -P $pipeline -r $keyspace; profiles in $out"

#!/usr/bin/env bash
# crdtd vs Redis with redis-benchmark (issue 4, "Benchmark").
#
# Starts a release crdtd and Debian's redis-server on free 127.0.0.1 ports and runs redis-benchmark
# against both, interleaved (A, B, A, B ...) so that drift on a noisy machine hits both alike; each
# cell is the median of ROUNDS runs. Two passes compare like with like on durability:
#   normal: crdtd --durability normal  vs  redis --appendonly yes --appendfsync everysec
#   full:   crdtd --durability full    vs  redis --appendonly yes --appendfsync always
# Prints a Markdown table (ops/s, ratio crdtd/redis, p50 latency) and keeps the raw CSV.
#
# Usage: Benchmarks/scripts/redis-compare.sh [--no-build] [--rounds N] [--passes "normal full"]
#            [--tests "ping_mbulk set get incr sadd hset"] [--pipelines "1 16"] [--clients 50]
#            [--requests-p1 N] [--requests-p16 N] [--keyspace N] [--cluster N] [--out DIR]
# --cluster N: crdtd runs as N release nodes on 127.0.0.1 peered with each other (as `crdtctl cluster
#   start` does); redis-benchmark runs against node 1, and after every crdtd run the script polls
#   CRDT.DIGEST on every node until they agree (the others hold every write), for at most 1 s.
# Environment: CRDTD_BIN (use this binary; implies --no-build).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=1
rounds=3
passes="normal full"
tests="ping_mbulk set get incr sadd hset"
pipelines="1 16"
clients=50
requests_p1=50000
requests_p16=200000
keyspace=100000
cluster=1
out=""
# One redis-benchmark run may not take longer than this (a wedged server must not hang the script).
run_timeout=120

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --rounds) rounds=$2; shift ;;
        --passes) passes=$2; shift ;;
        --tests) tests=$2; shift ;;
        --pipelines) pipelines=$2; shift ;;
        --clients) clients=$2; shift ;;
        --requests-p1) requests_p1=$2; shift ;;
        --requests-p16) requests_p16=$2; shift ;;
        --keyspace) keyspace=$2; shift ;;
        --cluster) cluster=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "redis-compare: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "redis-compare: $*" >&2; }

# --- Dependencies: install only what is missing. ------------------------------------------------------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-cli >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
    # shellcheck disable=SC2207
    need=($(printf '%s\n' "${need[@]}" | sort -u))
    log "installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

# --- The crdtd binary. ----------------------------------------------------------------------------------
if [ -n "${CRDTD_BIN:-}" ]; then
    crdtd=$CRDTD_BIN
elif [ "$build" = 1 ]; then
    log "building crdtd (release)"
    (cd "$repo" && swift build -c release --product crdtd >&2)
    crdtd="$repo/.build/release/crdtd"
else
    crdtd="$repo/.build/release/crdtd"
fi
[ -x "$crdtd" ] || { log "no crdtd binary at $crdtd: build it (swift build -c release --product crdtd) or set CRDTD_BIN"; exit 1; }

# --- Servers, each stopped by PID on exit. --------------------------------------------------------------
work=$(mktemp -d /tmp/redis-compare.XXXXXX)
[ -n "$out" ] || out=$work
mkdir -p "$out"
redis_pid=""
crdtd_pid=""
# With --cluster: every node's pid and client port (node 1 first: crdtd_pid and crdtd_port).
node_pids=()
node_ports=()

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    log "pid $pid ignored SIGTERM for 5 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
stop_servers() {
    local pid
    for pid in "${node_pids[@]}"; do stop_pid "$pid"; done
    node_pids=(); node_ports=(); crdtd_pid=""
    stop_pid "$redis_pid"; redis_pid=""
}
cleanup() {
    stop_servers
    # Keep the raw results when they were asked for elsewhere; the data directories always go.
    rm -rf "$work/redis" "$work"/crdtd*
    [ "$out" = "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets the variable named $1 to a port nobody listens on (not in a subshell: it must remember what it gave).
used_ports=" "
free_port() {
    local port
    for port in $(seq 17000 17999); do
        case "$used_ports" in *" $port "*) continue ;; esac
        if ! ss -Htln "sport = :$port" | grep -q .; then
            used_ports="$used_ports$port "
            printf -v "$1" '%s' "$port"
            return 0
        fi
    done
    log "no free port in 17000-17999"; exit 1
}

wait_ping() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || { log "$name exited during startup (log: $work/$name.log)"; tail -20 "$work/$name.log" >&2; exit 1; }
        [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    log "$name did not answer PING on port $port within 10 s"; exit 1
}

start_servers() {
    local pass=$1 fsync durability
    case "$pass" in
        normal) fsync=everysec; durability=normal ;;
        full) fsync=always; durability=full ;;
        *) log "unknown pass '$pass' (normal or full)"; exit 2 ;;
    esac
    rm -rf "$work/redis" "$work"/crdtd*; mkdir -p "$work/redis"
    used_ports=" "
    free_port redis_port
    local i peer_ports=() client_port_i="" peer_port_i=""
    for i in $(seq "$cluster"); do
        free_port client_port_i; node_ports+=("$client_port_i")
        free_port peer_port_i; peer_ports+=("$peer_port_i")
    done
    crdtd_port=${node_ports[0]}
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save '' \
        --appendonly yes --appendfsync "$fsync" --daemonize no --protected-mode yes \
        --logfile "$work/redis.log" &
    redis_pid=$!
    for i in $(seq 0 $((cluster - 1))); do
        local name=bench seeds=() j
        [ "$cluster" = 1 ] || name="n$((i + 1))"
        for j in $(seq 0 $((cluster - 1))); do [ "$j" = "$i" ] || seeds+=(--seed "127.0.0.1:${peer_ports[$j]}"); done
        mkdir -p "$work/crdtd-$name"
        "$crdtd" --node-id "$name" --data-dir "$work/crdtd-$name" --client-addr "127.0.0.1:${node_ports[$i]}" \
            --peer-addr "127.0.0.1:${peer_ports[$i]}" ${seeds[@]+"${seeds[@]}"} --insecure --durability "$durability" \
            --log-level warning >"$work/crdtd-$name.log" 2>&1 &
        node_pids+=($!)
    done
    crdtd_pid=${node_pids[0]}
    wait_ping "$redis_port" "$redis_pid" redis
    for i in $(seq 0 $((cluster - 1))); do wait_ping "${node_ports[$i]}" "${node_pids[$i]}" "crdtd-$( [ "$cluster" = 1 ] && echo bench || echo "n$((i + 1))")"; done
    log "pass $pass: redis (appendfsync $fsync) pid $redis_pid port $redis_port; crdtd (--durability $durability, $cluster node(s)) pids ${node_pids[*]} client ports ${node_ports[*]}"
}

# With --cluster: milliseconds until every node reports node 1's CRDT.DIGEST, polled every 20 ms for
# at most 1 s after the run; "late" when they still differ then.
replicated_ms() {
    local start now digest port same
    start=$(date +%s%N)
    while true; do
        digest=$(redis-cli -h 127.0.0.1 -p "$crdtd_port" CRDT.DIGEST 2>/dev/null)
        same=1
        for port in "${node_ports[@]:1}"; do
            [ "$(redis-cli -h 127.0.0.1 -p "$port" CRDT.DIGEST 2>/dev/null)" = "$digest" ] || { same=0; break; }
        done
        now=$(date +%s%N)
        if [ "$same" = 1 ]; then echo $(( (now - start) / 1000000 )); return 0; fi
        if [ $(( now - start )) -gt 1000000000 ]; then echo late; return 0; fi
        sleep 0.02
    done
}

# One redis-benchmark run; appends "pass,server,round,test,pipeline,rps,p50,replicated_ms" to the raw file.
run_one() {
    local pass=$1 server=$2 port=$3 round=$4 test=$5 pipeline=$6 requests line
    requests=$requests_p1; [ "$pipeline" = 1 ] || requests=$requests_p16
    if ! line=$(timeout "$run_timeout" redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$requests" \
            -P "$pipeline" -r "$keyspace" -t "$test" --csv 2>>"$work/benchmark.err" | tail -n 1); then
        log "redis-benchmark failed or timed out: $server $test -P $pipeline (stderr in $work/benchmark.err)"
        line='"?","0","0","0","0"'
    fi
    # Redis 7 CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    echo "$line" | tr -d '"' | awk -F, -v pass="$pass" -v s="$server" -v r="$round" -v t="$test" -v p="$pipeline" \
        '{ printf "%s,%s,%s,%s,%s,%s,%s,", pass, s, r, t, p, $2, $5 }' >>"$raw"
    if [ "$server" = crdtd ] && [ "$cluster" -gt 1 ]; then replicated_ms >>"$raw"; else echo >>"$raw"; fi
}

raw="$out/raw.csv"
echo "pass,server,round,test,pipeline,rps,p50_ms,replicated_ms" >"$raw"
started=$(date +%s)
for pass in $passes; do
    start_servers "$pass"
    # Warm-up: connections, allocator and page cache, not measured.
    for port in "$redis_port" "$crdtd_port"; do
        redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n 5000 -r "$keyspace" -t set -q >/dev/null 2>&1 || true
    done
    for round in $(seq "$rounds"); do
        for test in $tests; do
            for pipeline in $pipelines; do
                # Alternate which server goes first, so neither always runs right after the other's load.
                if [ $((round % 2)) = 1 ]; then
                    run_one "$pass" redis "$redis_port" "$round" "$test" "$pipeline"
                    run_one "$pass" crdtd "$crdtd_port" "$round" "$test" "$pipeline"
                else
                    run_one "$pass" crdtd "$crdtd_port" "$round" "$test" "$pipeline"
                    run_one "$pass" redis "$redis_port" "$round" "$test" "$pipeline"
                fi
            done
        done
        log "pass $pass: round $round of $rounds done ($(( $(date +%s) - started )) s elapsed)"
    done
    for pid in "${node_pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { log "a crdtd node (pid $pid) died during pass $pass (logs: $work/crdtd-*.log)"; exit 1; }
    done
    stop_servers
done
elapsed=$(( $(date +%s) - started ))

# --- Medians and the table. -----------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { awk -F, -v a="$1" -v s="$2" -v t="$3" -v p="$4" -v c="$5" 'NR > 1 && $1 == a && $2 == s && $4 == t && $5 == p { print $c }' "$raw" | median; }

# The slowest round's replication time of a cell ("late" if any round missed 1 s).
replicated() { awk -F, -v a="$1" -v t="$2" -v p="$3" 'NR > 1 && $1 == a && $2 == "crdtd" && $4 == t && $5 == p {
    if ($8 == "late") late = 1; else if ($8 + 0 > worst) worst = $8 + 0 }
    END { if (late) print "no (over 1 s)"; else printf "yes, %d ms\n", worst }' "$raw"; }

{
    if [ "$cluster" -gt 1 ]; then
        echo "| durability | command | -P | Redis ops/s | crdtd ops/s | crdtd/Redis | Redis p50 ms | crdtd p50 ms | nodes agree within 1 s (slowest round) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    else
        echo "| durability | command | -P | Redis ops/s | crdtd ops/s | crdtd/Redis | Redis p50 ms | crdtd p50 ms |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|"
    fi
    nodes=""; [ "$cluster" = 1 ] || nodes=" ($cluster nodes)"
    for pass in $passes; do
        case "$pass" in normal) label="crdtd normal$nodes / Redis everysec" ;; full) label="crdtd full$nodes / Redis always" ;; esac
        for test in $tests; do
            for pipeline in $pipelines; do
                r_rps=$(cell "$pass" redis "$test" "$pipeline" 6); c_rps=$(cell "$pass" crdtd "$test" "$pipeline" 6)
                r_p50=$(cell "$pass" redis "$test" "$pipeline" 7); c_p50=$(cell "$pass" crdtd "$test" "$pipeline" 7)
                awk -v l="$label" -v t="$(echo "$test" | tr a-z A-Z)" -v p="$pipeline" -v rr="$r_rps" -v cr="$c_rps" -v rp="$r_p50" -v cp="$c_p50" \
                    'BEGIN { printf "| %s | %s | %s | %.0f | %.0f | %s | %.3f | %.3f |", l, t, p, rr, cr, (rr > 0 ? sprintf("%.2f", cr / rr) : "n/a"), rp, cp }'
                if [ "$cluster" -gt 1 ]; then echo " $(replicated "$pass" "$test" "$pipeline") |"; else echo; fi
            done
        done
    done
    echo
    echo "Median of $rounds interleaved runs per cell; $clients clients; -n $requests_p1 (-P 1) / $requests_p16 (other -P);" \
        "-r $keyspace; $(nproc) cores shared by both servers and redis-benchmark; ${elapsed} s."
    if [ -n "${CRDTD_BIN:-}" ]; then crdtd_label="$CRDTD_BIN"; else crdtd_label="$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?')"; fi
    echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'); crdtd $crdtd_label; raw runs: $raw"
} | tee "$out/table.md"

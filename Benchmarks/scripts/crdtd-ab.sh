#!/usr/bin/env bash
# Two crdtd builds side by side with redis-benchmark: to check that a patch helps, measured in one run.
# Runs are interleaved (A, B, then B, A on the next round) and each cell is the median of ROUNDS runs;
# the table gives ops/s of both and the ratio B/A.
#
# Usage: Benchmarks/scripts/crdtd-ab.sh BINARY_A BINARY_B [--rounds N] [--durability normal|full]
#            [--tests "ping_mbulk set get incr sadd"] [--pipelines "1 16"] [--clients 50]
#            [--requests-p1 N] [--requests-p16 N] [--keyspace N]
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
bin_a=$1; bin_b=$2; shift 2
rounds=3
durability=normal
tests="ping_mbulk set get incr sadd"
pipelines="1 16"
clients=50
requests_p1=50000
requests_p16=200000
keyspace=100000
run_timeout=120
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --durability) durability=$2; shift ;;
        --tests) tests=$2; shift ;;
        --pipelines) pipelines=$2; shift ;;
        --clients) clients=$2; shift ;;
        --requests-p1) requests_p1=$2; shift ;;
        --requests-p16) requests_p16=$2; shift ;;
        --keyspace) keyspace=$2; shift ;;
        *) echo "crdtd-ab: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
for bin in "$bin_a" "$bin_b"; do [ -x "$bin" ] || { echo "crdtd-ab: $bin is not an executable" >&2; exit 1; }; done
command -v redis-benchmark >/dev/null || { echo "crdtd-ab: needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }

work=$(mktemp -d /tmp/crdtd-ab.XXXXXX)
pid_a=""; pid_b=""
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
    kill -KILL "$1" 2>/dev/null || true
}
trap 'stop_pid "$pid_a"; stop_pid "$pid_b"; rm -rf "$work/a" "$work/b"' EXIT
trap 'exit 130' INT TERM

ports=()
for port in $(seq 17500 17999); do
    ss -Htln "sport = :$port" | grep -q . || ports+=("$port")
    [ ${#ports[@]} -lt 4 ] || break
done
[ ${#ports[@]} = 4 ] || { echo "crdtd-ab: no 4 free ports in 17500-17999" >&2; exit 1; }
port_a=${ports[0]}; port_b=${ports[2]}

"$bin_a" --node-id a --data-dir "$work/a" --client-addr "127.0.0.1:$port_a" --peer-addr "127.0.0.1:${ports[1]}" \
    --insecure --durability "$durability" --log-level warning >"$work/a.log" 2>&1 &
pid_a=$!
"$bin_b" --node-id b --data-dir "$work/b" --client-addr "127.0.0.1:$port_b" --peer-addr "127.0.0.1:${ports[3]}" \
    --insecure --durability "$durability" --log-level warning >"$work/b.log" 2>&1 &
pid_b=$!
for port in "$port_a" "$port_b"; do
    for _ in $(seq 200); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
done

raw="$work/raw.csv"
: >"$raw"
run_one() {
    local which=$1 port=$2 round=$3 test=$4 pipeline=$5 requests line
    requests=$requests_p1; [ "$pipeline" = 1 ] || requests=$requests_p16
    line=$(timeout "$run_timeout" redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
        -r "$keyspace" -t "$test" --csv 2>/dev/null | tail -n 1) || line='"?","0","0","0","0"'
    echo "$line" | tr -d '"' | awk -F, -v w="$which" -v r="$round" -v t="$test" -v p="$pipeline" '{ print w "," r "," t "," p "," $2 "," $5 }' >>"$raw"
}
for round in $(seq "$rounds"); do
    for test in $tests; do
        for pipeline in $pipelines; do
            if [ $((round % 2)) = 1 ]; then
                run_one a "$port_a" "$round" "$test" "$pipeline"; run_one b "$port_b" "$round" "$test" "$pipeline"
            else
                run_one b "$port_b" "$round" "$test" "$pipeline"; run_one a "$port_a" "$round" "$test" "$pipeline"
            fi
        done
    done
    echo "crdtd-ab: round $round of $rounds done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
cell() { awk -F, -v w="$1" -v t="$2" -v p="$3" -v c="$4" '$1 == w && $3 == t && $4 == p { print $c }' "$raw" | median; }
echo "| command | -P | A ops/s | B ops/s | B/A | A p50 ms | B p50 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for test in $tests; do
    for pipeline in $pipelines; do
        awk -v t="$(echo "$test" | tr a-z A-Z)" -v p="$pipeline" -v a="$(cell a "$test" "$pipeline" 5)" -v b="$(cell b "$test" "$pipeline" 5)" \
            -v ap="$(cell a "$test" "$pipeline" 6)" -v bp="$(cell b "$test" "$pipeline" 6)" \
            'BEGIN { printf "| %s | %s | %.0f | %.0f | %s | %.3f | %.3f |\n", t, p, a, b, (a > 0 ? sprintf("%.2f", b / a) : "n/a"), ap, bp }'
    done
done
echo
echo "A: $bin_a; B: $bin_b; --durability $durability; median of $rounds interleaved runs; $clients clients;" \
    "-n $requests_p1 (-P 1) / $requests_p16 (other -P); -r $keyspace; $(nproc) cores shared by both and redis-benchmark."

#!/usr/bin/env bash
# Tombstone collection (issue 13): what causal-stability collection of deleted keys gives back (resident
# memory, used_memory, database + log bytes) and what it costs a writer while it runs, on a 3-node cluster.
#   1. empty: stability settled, then RSS / used_memory / *.db + *.db-wal per node ("cold"); then the same
#      traffic as the fill on 100 keys, deleted and collected, and the same measures again ("empty"): the
#      memory any traffic touches once (ring slots, SQLite's page cache, thread caches) is in both
#      "empty" and "after", so that "after vs empty" is what 50,000 keys leave behind
#   2. full: N keys SET through n1 (pipelined), DBSIZE N everywhere, same measures
#   3. baseline: one connection to n2, SET probe:<i mod 100> x at RATE/s for 10 s, latency of each
#   4. DEL every key through n1, DBSIZE 100 (the probe keys) everywhere, then the same probe on n2 until
#      keys_held is 100 on every node (collection done; 60 s timeout)
#   5. after: database files unchanged for 5 s (60 s at most), same measures
# Prints a markdown summary on stdout, progress on stderr; exits non-zero when a phase times out.
#
# Usage: Benchmarks/scripts/collection-cost.sh [BINDIR] [--keys N] [--rate R] [--base-port P]
#   BINDIR holds crdtd (default .build/release); ports P..P+20 on 127.0.0.1 (default 23500).
set -euo pipefail

cmdline="$0 $*"
bindir=.build/release
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then bindir=$1; shift; fi
keys=50000
rate=500
base=23500
while [ $# -gt 0 ]; do
    case "$1" in
        --keys) keys=$2; shift ;;
        --rate) rate=$2; shift ;;
        --base-port) base=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "collection-cost: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
log() { echo "collection-cost: $(date -u +%H:%M:%S) $*" >&2; }
die() { echo "collection-cost: $*" >&2; exit 1; }
bin="$bindir/crdtd"
[ -x "$bin" ] || die "$bin is not an executable (swift build -c release --product crdtd)"
command -v redis-cli >/dev/null || die "needs redis-cli (apt-get install redis-tools)"
command -v python3 >/dev/null || die "needs python3"
probe_keys=100

work=$(mktemp -d /tmp/collection-cost.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Node i (1..3): client port base+i, peer port base+10+i.
cport() { echo $((base + $1)); }
pport() { echo $((base + 10 + $1)); }
head -c 32 /dev/urandom | base64 >"$work/cluster.key"

cat >"$work/tool.py" <<'PY'
import socket, sys, time, os

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out

def bulk(port, op, n, prefix="key", modulo=None):
    """SET key:i value-i or DEL key:i for i < n (i mod modulo when given), 1,000 per batch, 4 batches in
    flight; replies are one line each. Commands refused with BUSY (the node's disk behind) are sent again
    until taken (120 s at most)."""
    s = connect(port)
    batch, inflight, buf = 1000, 4, b""
    refused_total = 0
    def payload(i):
        name = "%s:%d" % (prefix, i % modulo if modulo else i)
        return cmd("SET", name, "value-%d" % i) if op == "set" else cmd("DEL", name)
    def read_batch(indices, retry):
        nonlocal buf, refused_total
        for i in indices:
            while True:
                j = buf.find(b"\r\n")
                if j >= 0:
                    break
                chunk = s.recv(1 << 16)
                if not chunk:
                    sys.exit("connection closed")
                buf += chunk
            line, buf = buf[:j], buf[j + 2:]
            if line.startswith(b"-BUSY"):
                if refused_total == 0:
                    print("%s: BUSY, retrying: %r" % (op, line[:160]), file=sys.stderr)
                refused_total += 1
                retry.append(i)
            elif line[:1] == b"-":
                sys.exit("error reply: %r" % line)
    todo = list(range(n))
    deadline = time.monotonic() + 120
    while todo:
        retry, pending = [], []
        for start in range(0, len(todo), batch):
            indices = todo[start:start + batch]
            s.sendall(b"".join(payload(i) for i in indices))
            pending.append(indices)
            if len(pending) >= inflight:
                read_batch(pending.pop(0), retry)
        for indices in pending:
            read_batch(indices, retry)
        todo = retry
        if todo:
            if time.monotonic() > deadline:
                sys.exit("%d commands still refused with BUSY after 120 s" % len(todo))
            time.sleep(0.2)
    if refused_total:
        print("%s: %d BUSY refusals, all retried" % (op, refused_total), file=sys.stderr)

def probe(port, rate, seconds, until, keys, out):
    """SET probe:<i mod keys> x at a fixed rate on one connection; writes one latency (ms) per line to out,
    and the count of writes refused with BUSY (disk behind; not in the latencies) to out.busy."""
    s = connect(port)
    interval = 1.0 / rate
    lat, busy = [], []
    start = time.monotonic()
    end = start + seconds
    i = 0
    while True:
        now = time.monotonic()
        if now >= end or (until and os.path.exists(until)):
            break
        due = start + i * interval
        if due > now:
            time.sleep(due - now)
        t0 = time.monotonic()
        s.sendall(cmd("SET", "probe:%d" % (i % keys), "x"))
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                sys.exit("connection closed")
            buf += chunk
        ms = (time.monotonic() - t0) * 1000
        if buf.startswith(b"-BUSY"):
            busy.append(ms)
            if len(busy) == 1:
                print("probe: first BUSY reply: %r" % buf[:200], file=sys.stderr)
        elif buf[:1] == b"-":
            sys.exit("probe error reply: %r" % buf)
        else:
            lat.append(ms)
        i += 1
    with open(out, "w") as f:
        f.write("\n".join("%.4f" % x for x in lat) + "\n")
    with open(out + ".busy", "w") as f:
        f.write("%d\n" % len(busy))

def stats(path):
    lat = sorted(float(l) for l in open(path) if l.strip())
    if not lat:
        print("0 0 0 0 0"); return
    def q(p): return lat[min(len(lat) - 1, int(len(lat) * p))]
    print(len(lat), "%.3f" % q(0.5), "%.3f" % q(0.99), "%.3f" % q(0.999), "%.3f" % lat[-1])

op = sys.argv[1]
if op in ("set", "del"):
    bulk(int(sys.argv[2]), op, int(sys.argv[3]))
elif op in ("warm-set", "warm-del"):
    bulk(int(sys.argv[2]), op[5:], int(sys.argv[3]), prefix="warm", modulo=100)
elif op == "probe":
    until = sys.argv[5] if sys.argv[5] != "-" else None
    probe(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), until, int(sys.argv[6]), sys.argv[7])
elif op == "stats":
    stats(sys.argv[2])
PY

start_node() {  # I SEED_I
    local i=$1 seed=$2
    mkdir -p "$work/n$i"
    "$bin" --node-id "n$i" --data-dir "$work/n$i" --client-addr "127.0.0.1:$(cport "$i")" \
        --peer-addr "127.0.0.1:$(pport "$i")" --seed "127.0.0.1:$(pport "$seed")" \
        --cluster-key-file "$work/cluster.key" --gossip-interval 50 --log-level warning >"$work/n$i.log" 2>&1 &
    pids[$i]=$!
}
wait_up() {  # I
    for _ in $(seq 300); do
        redis-cli -p "$(cport "$1")" PING 2>/dev/null | grep -q PONG && return
        kill -0 "${pids[$1]}" 2>/dev/null || { tail -20 "$work/n$1.log" >&2; die "n$1 exited during start"; }
        sleep 0.1
    done
    die "n$1 does not answer PING on port $(cport "$1") within 30 s"
}
field() {  # I SECTION NAME -> value ("" if absent)
    redis-cli -p "$(cport "$1")" INFO "$2" 2>/dev/null | tr -d '\r' | awk -F: -v n="$3" '$1 == n { sub(/^[^:]*:/, ""); print; exit }'
}
has_field() { redis-cli -p "$(cport "$1")" INFO "$2" 2>/dev/null | tr -d '\r' | grep -q "^$3:"; }
dbsize() { redis-cli -p "$(cport "$1")" DBSIZE 2>/dev/null | tr -d '\r'; }
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/${pids[$1]}/status"; }
dbbytes() {
    local total=0 f
    for f in "$work/n$1"/*.db "$work/n$1"/*.db-wal; do [ -f "$f" ] && total=$((total + $(stat -c %s "$f"))); done
    echo "$total"
}
all_dbbytes() { echo "$(dbbytes 1) $(dbbytes 2) $(dbbytes 3)"; }
declare -A m
record() {  # PHASE
    for i in 1 2 3; do
        m[$1,rss,$i]=$(rss "$i")
        m[$1,heap,$i]=$(field "$i" memory used_memory)
        m[$1,db,$i]=$(dbbytes "$i")
    done
    log "$1: rss ${m[$1,rss,1]} ${m[$1,rss,2]} ${m[$1,rss,3]}; used_memory ${m[$1,heap,1]} ${m[$1,heap,2]} ${m[$1,heap,3]}; db+wal ${m[$1,db,1]} ${m[$1,db,2]} ${m[$1,db,3]}"
}
# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s; dies on timeout.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$(($(date +%s) + seconds))
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || die "timed out after $seconds s waiting for $what"
        for i in 1 2 3; do kill -0 "${pids[$i]}" 2>/dev/null || die "n$i exited (log: $(tail -3 "$work/n$i.log"))"; done
        sleep 0.2
    done
}
stable_all() { for i in 1 2 3; do has_field "$i" replication stability_unreported || return 1; [ -z "$(field "$i" replication stability_unreported)" ] || return 1; done; }
dbsize_all() { for i in 1 2 3; do [ "$(dbsize "$i")" = "$1" ] || return 1; done; }
held_all() { for i in 1 2 3; do [ "$(field "$i" keyspace keys_held)" = "$1" ] || return 1; done; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

log "starting 3 nodes in $work (ports $base..$((base + 13)))"
start_node 1 2
start_node 2 1
start_node 3 1
for i in 1 2 3; do wait_up "$i"; done

# 1. empty
log "phase 1: waiting for stability reports from every node"
wait_for 30 "stability_unreported to be empty on every node" stable_all
sleep 2
record cold
log "phase 1b: the same traffic on 100 keys, deleted and collected"
python3 "$work/tool.py" warm-set "$(cport 1)" "$keys" || die "warming failed"
python3 "$work/tool.py" warm-del "$(cport 1)" 100 || die "warming failed"
wait_for 60 "keys_held 0 on every node" held_all 0
sleep 2
record empty

# 2. full
log "phase 2: SET $keys keys through n1"
t0=$(now)
python3 "$work/tool.py" set "$(cport 1)" "$keys" || die "filling failed"
log "filled in $(elapsed "$t0" "$(now)") s; waiting for DBSIZE $keys everywhere"
wait_for 120 "DBSIZE $keys on every node" dbsize_all "$keys"
log "replicated $(elapsed "$t0" "$(now)") s after the fill started"
sleep 2
record full

# 3. baseline probe
log "phase 3: baseline probe, $rate SET/s on n2 for 10 s"
python3 "$work/tool.py" probe "$(cport 2)" "$rate" 10 - "$probe_keys" "$work/baseline.lat" || die "baseline probe failed"
read -r b_count b_p50 b_p99 b_p999 b_max < <(python3 "$work/tool.py" stats "$work/baseline.lat")
b_busy=$(cat "$work/baseline.lat.busy")
log "baseline: $b_count writes ($b_busy BUSY), p50 $b_p50 ms, p99 $b_p99 ms, max $b_max ms"
wait_for 30 "DBSIZE $((keys + probe_keys)) on every node" dbsize_all "$((keys + probe_keys))"

# 4. delete, then probe while collection runs
log "phase 4: DEL $keys keys through n1"
t_del=$(now)
python3 "$work/tool.py" del "$(cport 1)" "$keys" || die "deleting failed"
t_del_end=$(now)
log "deleted in $(elapsed "$t_del" "$t_del_end") s; waiting for DBSIZE $probe_keys everywhere"
wait_for 120 "DBSIZE $probe_keys on every node" dbsize_all "$probe_keys"
t_visible=$(now)
held_at_start="$(field 1 keyspace keys_held) $(field 2 keyspace keys_held) $(field 3 keyspace keys_held)"
log "deletes visible everywhere $(elapsed "$t_del" "$t_visible") s after the first DEL; keys_held $held_at_start; probing during collection"
rm -f "$work/collected"
python3 "$work/tool.py" probe "$(cport 2)" "$rate" 70 "$work/collected" "$probe_keys" "$work/during.lat" &
prober=$!
pids+=("$prober")
collection_timeout=0
deadline=$(($(date +%s) + 60))
until held_all "$probe_keys"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then collection_timeout=1; break; fi
    sleep 0.1
done
t_collected=$(now)
touch "$work/collected"
wait "$prober" || die "probe during collection failed"
read -r d_count d_p50 d_p99 d_p999 d_max < <(python3 "$work/tool.py" stats "$work/during.lat")
d_busy=$(cat "$work/during.lat.busy")
held_at_end="$(field 1 keyspace keys_held) $(field 2 keyspace keys_held) $(field 3 keyspace keys_held)"
log "collection: keys_held $held_at_end after $(elapsed "$t_visible" "$t_collected") s of probing (timeout: $collection_timeout)"
gc_fields=""
for i in 1 2 3; do
    gc_fields+="n$i: $(redis-cli -p "$(cport "$i")" INFO replication | tr -d '\r' | grep -E '^[^:]*(tombstone|collect)[^:]*:' | tr '\n' ' ')"$'\n'
done

# 5. after: database files stop shrinking
log "phase 5: waiting for the database files to stop changing (5 s unchanged, 60 s at most)"
t_shrink=$(now)
last=$(all_dbbytes)
unchanged=0
shrink_timeout=1
for _ in $(seq 60); do
    sleep 1
    cur=$(all_dbbytes)
    if [ "$cur" = "$last" ]; then unchanged=$((unchanged + 1)); else unchanged=0; last=$cur; fi
    if [ "$unchanged" -ge 5 ]; then shrink_timeout=0; break; fi
done
shrink_took=$(elapsed "$t_shrink" "$(now)")
[ "$unchanged" -ge 5 ] && shrink_took=$(awk -v t="$shrink_took" 'BEGIN { printf "%.1f", t - 5 }')
record after

# Summary
pct() { awk -v a="$1" -v e="$2" 'BEGIN { if (e > 0) printf "%+.0f %%", (a - e) * 100 / e; else print "n/a" }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "# Tombstone collection cost ($keys keys, 3 nodes)"
echo
echo "Command: \`$cmdline\`"
echo
echo "Binary: $bin; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo
echo "| node | measure | cold KiB | empty KiB | full KiB | after KiB | after vs empty |"
echo "|---|---|---:|---:|---:|---:|---:|"
for i in 1 2 3; do
    for measure in rss:VmRSS heap:used_memory db:db+wal; do
        k=${measure%%:*}; name=${measure#*:}
        echo "| n$i | $name | $(kib "${m[cold,$k,$i]}") | $(kib "${m[empty,$k,$i]}") | $(kib "${m[full,$k,$i]}") | $(kib "${m[after,$k,$i]}") | $(pct "${m[after,$k,$i]}" "${m[empty,$k,$i]}") |"
    done
done
echo
echo "| SET probe on n2 ($rate/s) | OK count | BUSY refused | p50 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| baseline (10 s) | $b_count | $b_busy | $b_p50 | $b_p99 | $b_p999 | $b_max |"
echo "| during collection ($(elapsed "$t_visible" "$t_collected") s) | $d_count | $d_busy | $d_p50 | $d_p99 | $d_p999 | $d_max |"
echo "| ratio | | | $(ratio "$d_p50" "$b_p50") | $(ratio "$d_p99" "$b_p99") | $(ratio "$d_p999" "$b_p999") | $(ratio "$d_max" "$b_max") |"
echo
echo "Latencies are of OK replies only (send to reply, one connection); BUSY refusals (the node's disk behind) are counted apart."
echo
echo "- DEL of $keys keys took $(elapsed "$t_del" "$t_del_end") s; deletes visible on every node (DBSIZE $probe_keys) $(elapsed "$t_del" "$t_visible") s after the first DEL; keys_held then: $held_at_start"
if [ "$collection_timeout" = 1 ]; then
    echo "- **collection did not finish within 60 s** of the deletes being visible: keys_held $held_at_end (want $probe_keys each)"
else
    echo "- collection (keys_held $probe_keys on every node): $(elapsed "$t_visible" "$t_collected") s after the deletes were visible, $(elapsed "$t_del" "$t_collected") s after the first DEL"
fi
if [ "$shrink_timeout" = 1 ]; then
    echo "- **database files still changing after 60 s**: $(all_dbbytes) bytes"
else
    echo "- database files settled $shrink_took s after collection (unchanged for 5 s)"
fi
echo "- collection fields at the end:"
echo '```'
printf '%s' "$gc_fields"
echo '```'
[ "$collection_timeout" = 0 ] || die "collection timed out"
[ "$shrink_timeout" = 0 ] || die "database files did not settle"

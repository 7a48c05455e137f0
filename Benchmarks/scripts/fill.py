#!/usr/bin/env python3
"""Fill one key of a Redis-protocol server with N 16-byte members ("m" + 15 digits), 1,000 per
command, keeping at most WINDOW commands in flight (a pipelining client that reads its replies, as
redis-py pipelines do; redis-cli --pipe sends everything at once, which crdtd answers with -BUSY once
64 MiB wait for its disk). A -BUSY reply is retried after 50 ms.

    fill.py PORT KIND KEY N [WINDOW]      KIND: set | hash | zset
"""
import socket, sys, time

port, kind, key, n = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
window = int(sys.argv[5]) if len(sys.argv) > 5 else 16
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")

def encode(words):
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)

def command(start):
    ms = [b"m%015d" % i for i in range(start, min(n, start + 1000))]
    if kind == "set":
        return encode([b"SADD", key] + ms)
    if kind == "hash":
        return encode([b"HSET", key] + [x for m in ms for x in (m, b"value")])
    return encode([b"ZADD", key] + [x for i, m in enumerate(ms) for x in (b"%d" % (start + i), m)])

starts = list(range(0, n, 1000))
pending = []  # starts in flight, in order
i = 0
while i < len(starts) or pending:
    while i < len(starts) and len(pending) < window:
        s.sendall(command(starts[i]))
        pending.append(starts[i])
        i += 1
    line = f.readline()
    start = pending.pop(0)
    if line.startswith(b"-"):
        if b"BUSY" not in line:
            sys.exit("fill: " + line.decode(errors="replace").strip())
        time.sleep(0.05)
        s.sendall(command(start))
        pending.append(start)

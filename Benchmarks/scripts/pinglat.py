#!/usr/bin/env python3
"""PING a Redis-protocol server in a loop on one connection and report the latency distribution.

    pinglat.py PORT SECONDS [--until-file PATH]

Prints one line: count, p50, p99, max (milliseconds). With --until-file it stops when PATH exists
(or after SECONDS, whichever comes first). Used by large-replies.sh and large-transfer.sh to see how
long other clients wait while a node answers a large read or takes a large transfer.
"""
import os, socket, sys, time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
until = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--until-file" else None
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
end = time.monotonic() + seconds
while time.monotonic() < end and not (until and os.path.exists(until)):
    t0 = time.monotonic()
    s.sendall(b"PING\r\n")
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    lat.append((time.monotonic() - t0) * 1000)
    time.sleep(0.002)
lat.sort()
if not lat:
    print("0 0 0 0"); sys.exit(0)
print(len(lat), "%.2f" % lat[len(lat) // 2], "%.2f" % lat[min(len(lat) - 1, len(lat) * 99 // 100)], "%.2f" % lat[-1])

#!/usr/bin/python3
"""roomd -R, the downtime it adds: how long moving N rooms takes.

Starts two redis-servers of its own on free loopback ports
(tests/integration/redisd.py: appendonly yes, noeviction) and one roomd
host (one worker) with the first as its cluster line; makes N canvas
rooms through the host's REST API, each joined by a guest (so that each
has its meta, log and members); stops the host; then times
`roomd -c two.conf -R one.conf` (growing to two primaries: about half the
rooms move) and `roomd -c one.conf -R two.conf` (shrinking back).  Prints
the figures; it never fails on a number, only when a move fails or
loses a room.

usage: tests/bench/reshard.py [N] [ROOMD_BIN]
"""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from redisd import Group, free_port  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BIN = sys.argv[2] if len(sys.argv) > 2 else os.path.join(TOP, "roomd")


def conf(d, name, port, urls):
    lines = [f"listen 127.0.0.1:{port}", f"arena_path {d}/arena",
             "arena_size 256M", "cluster_host bench", "cluster_lease 10",
             "room_ttl 3600", f"control_socket {d}/roomd.sock",
             f"pidfile {d}/roomd.pid", f"cluster {urls[0]}"]
    lines += [f"cluster_shard {u}" for u in urls[1:]]
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write("\n".join(lines) + "\n")
    return p


def post(c, path, body):
    c.request("POST", path, json.dumps(body),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status not in (200, 201):
        raise RuntimeError(f"POST {path}: {r.status} {data[:200]!r}")


def rooms(server):
    return server.client().scard("roomd:rooms:canvas")


def move(new, old):
    t = time.monotonic()
    p = subprocess.run([BIN, "-c", new, "-R", old], capture_output=True,
                       text=True, timeout=600)
    secs = time.monotonic() - t
    m = re.fullmatch(r"roomd: moved (\d+) rooms, (\d+) stayed, to \d+ "
                     r"shards?\n", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"roomd -R failed: {p.stdout!r} {p.stderr!r}")
    return int(m.group(1)), int(m.group(2)), secs


def main():
    g = Group()
    d = tempfile.mkdtemp(prefix="roomd-bench-reshard-")
    host = None
    try:
        a, b = g.server(), g.server()
        urls = [f"redis://127.0.0.1:{a.port}", f"redis://127.0.0.1:{b.port}"]
        port = free_port()
        one = conf(d, "one.conf", port, urls[:1])
        two = conf(d, "two.conf", port, urls)
        host = subprocess.Popen([BIN, "-f", "-w", "1", "-c", one],
                                stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "log"), "w"))
        deadline = time.monotonic() + 20
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/canvas/rooms")
                c.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # The host answers before it has joined the cluster: 503 until.
        while True:
            try:
                post(c, "/canvas/rooms", {"host": "al", "roomId": "probe"})
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        t = time.monotonic()
        for i in range(N):
            rid = f"bench-{i}"
            try:
                post(c, "/canvas/rooms", {"host": "al", "roomId": rid})
                post(c, f"/canvas/rooms/{rid}/join", {"name": "bo"})
            except RuntimeError as e:
                raise RuntimeError(f"room {i}: {e}; host log: "
                                   f"{open(os.path.join(d, 'log')).read()[-2000:]}")
        made = time.monotonic() - t
        c.close()
        host.terminate()
        host.wait(30)
        host = None
        N1 = N + 1              # and the probe
        if rooms(a) != N1:
            raise RuntimeError(f"{rooms(a)} rooms in Redis, not {N1}")
        keys = a.client().dbsize()
        print(f"{N1:,} canvas rooms ({keys:,} keys) made in {made:.1f} s "
              f"through the REST API")
        moved, stayed, secs = move(two, one)
        print(f"grow 1 -> 2 primaries: moved {moved:,}, stayed {stayed:,} "
              f"in {secs:.2f} s ({secs / max(moved, 1) * 1e6:.0f} us per "
              f"room moved)")
        if (moved + stayed, rooms(a) + rooms(b)) != (N1, N1):
            raise RuntimeError("rooms lost growing")
        moved, stayed, secs = move(one, two)
        print(f"shrink 2 -> 1 primary: moved {moved:,}, stayed {stayed:,} "
              f"in {secs:.2f} s ({secs / max(moved, 1) * 1e6:.0f} us per "
              f"room moved)")
        if rooms(a) != N1 or b.client().dbsize() != 0:
            raise RuntimeError("rooms lost shrinking")
    finally:
        if host is not None:
            host.kill()
            host.wait()
        g.close()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()

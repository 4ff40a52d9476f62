#!/usr/bin/python3
"""W5, idle members: what an idle canvas WebSocket costs roomd.

Starts its own roomd (one worker) on a free loopback port, opens N idle
WebSockets to one canvas room, and reports the growth of private memory
(RssAnon) of all roomd processes, plus arena bytes used, per connection.
It prints figures; it never fails on a number.

usage: tests/bench/idle_memory.py [N] [ROOMD_BIN]
"""
import base64
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def roomd_pids(master):
    kids = open(f"/proc/{master}/task/{master}/children").read().split()
    return [master] + [int(k) for k in kids]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    binary = sys.argv[2] if len(sys.argv) > 2 else "build/roomd"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    with tempfile.TemporaryDirectory() as tmp:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(f"pidfile {tmp}/pid\ncontrol_socket {tmp}/sock\n"
                    f"room_max_members {n + 10}\nmount canvas /canvas\n")
        proc = subprocess.Popen([binary, "-f", "-c", conf, "-w", "1", "-l",
                                 f"127.0.0.1:{port}"],
                                stderr=subprocess.DEVNULL)
        socks = []
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    time.sleep(0.05)
            base = f"http://127.0.0.1:{port}/canvas/rooms"
            req = urllib.request.Request(base, data=b'{"host":"h"}',
                                         method="POST")
            room = json.load(urllib.request.urlopen(req))

            def ws():
                c = socket.create_connection(("127.0.0.1", port))
                key = base64.b64encode(os.urandom(16)).decode()
                c.sendall((f"GET /canvas/rooms/{room['roomId']}/ws?token="
                           f"{room['token']} HTTP/1.1\r\nHost: x\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
                c.recv(4096)
                socks.append(c)

            for _ in range(100):
                ws()
            time.sleep(0.5)
            pids = roomd_pids(proc.pid)
            before = sum(rss_anon(p) for p in pids)
            for _ in range(n):
                ws()
            time.sleep(1.0)
            after = sum(rss_anon(p) for p in pids)
            print(f"{n} idle canvas WebSockets on one worker: "
                  f"{(after - before) / n:.0f} bytes of private memory "
                  f"each (RssAnon of all roomd processes)")
        finally:
            for c in socks:
                c.close()
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()

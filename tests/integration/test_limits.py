"""Per-client limits: connections and rooms per address (counted in the
arena, so across workers), the message rate of a connection, wrong
passwords per address and room, the Origin allow-list, and a full arena.

Loopback clients are exempt unless limits_on_loopback says yes, so every
daemon here sets it; 127.0.0.2 stands for a second client address.
"""
import asyncio
import http.client
import json
import os
import signal
import socket
import time

import pytest
import websockets

from conftest import (assert_error, create_room, http_req, join_room,
                      new_key, parse_worker, poll, run, ws_url)

T = 10.0
MOUNTS = "mount canvas /canvas\nmount echo /echo\nmount lobby /lobby\n"


def start(factory, extra, workers=2):
    return factory(MOUNTS + "limits_on_loopback yes\n" + extra, workers)


def request(d, method, path, body=None, source="127.0.0.1", headers=None):
    c = http.client.HTTPConnection(d.host, d.port, timeout=5,
                                   source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = dict(headers or {})
        if data:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        return r.status, (json.loads(payload) if payload else None)
    finally:
        c.close()


class Held:
    """A keep-alive HTTP connection that answered once (so roomd accepted
    and counted it); .slot and .pid of the worker holding it."""

    def __init__(self, d, source="127.0.0.1"):
        self.c = http.client.HTTPConnection(d.host, d.port, timeout=3,
                                            source_address=(source, 0))
        self.c.request("GET", "/canvas/rooms")
        r = self.c.getresponse()
        r.read()
        assert r.status == 200
        self.slot, self.pid = parse_worker(r.getheader("X-Roomd-Worker"))

    def close(self):
        self.c.close()


def refused(d, source="127.0.0.1"):
    """True if a new connection from source is closed without an answer."""
    try:
        h = Held(d, source)
    except (ConnectionError, http.client.RemoteDisconnected, OSError):
        return True
    h.close()
    return False


def held_eventually(d, source="127.0.0.1", timeout=5.0):
    """A Held connection, retried while the server has yet to see that an
    earlier one closed (a close reaches it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Held(d, source)
        except (ConnectionError, http.client.RemoteDisconnected, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def hold(d, n, source="127.0.0.1"):
    out = []
    try:
        for _ in range(n):
            out.append(held_eventually(d, source))
    except BaseException:
        for h in out:
            h.close()
        raise
    return out


# ---------------------------------------------------------------- connections

def test_connections_per_ip_at_the_boundary_and_released_on_close(
        roomd_factory):
    n = 8
    d = start(roomd_factory, f"max_connections_per_ip {n}\n")
    held = hold(d, n)
    try:
        slots = {h.slot for h in held}
        # The N+1st is closed before anything is read, whichever worker
        # accepts it: the count is shared.
        for _ in range(6):
            assert refused(d), "connection past the limit was served"
        # Another address is not affected.
        other = Held(d, "127.0.0.2")
        other.close()
        # One closes: exactly one more fits.
        held.pop().close()
        held.append(held_eventually(d))
        for _ in range(3):
            assert refused(d)
    finally:
        for h in held:
            h.close()
    # All closed: the whole allowance is back.
    again = hold(d, n)
    for h in again:
        h.close()
    assert slots, slots


def test_connections_of_a_killed_worker_are_released(roomd_factory):
    n = 10
    d = start(roomd_factory, f"max_connections_per_ip {n}\n")
    held = hold(d, n)
    try:
        assert refused(d)
        by_slot = {}
        for h in held:
            by_slot.setdefault(h.slot, []).append(h)
        slot, victims = max(by_slot.items(), key=lambda kv: len(kv[1]))
        k = len(victims)
        os.kill(victims[0].pid, signal.SIGKILL)
        for h in victims:
            h.close()
        held = [h for h in held if h.slot != slot]
        # Once the master has reaped it, exactly k places are free again.
        held.append(held_eventually(d, timeout=10))
        held += hold(d, k - 1)
        for _ in range(3):
            assert refused(d)
        assert len(held) == n
    finally:
        for h in held:
            h.close()


def test_websocket_connections_count_too(roomd_factory):
    d = start(roomd_factory, "max_connections_per_ip 3\n")

    async def go():
        wss = []
        try:
            for _ in range(3):
                wss.append(await websockets.connect(
                    f"ws://127.0.0.1:{d.port}/echo", open_timeout=T,
                    ping_interval=None))
            with pytest.raises((OSError, websockets.InvalidHandshake,
                                websockets.ConnectionClosed,
                                asyncio.TimeoutError)):
                w = await websockets.connect(f"ws://127.0.0.1:{d.port}/echo",
                                             open_timeout=3,
                                             ping_interval=None)
                await w.close()
            await wss.pop().close()
            await asyncio.sleep(0.2)
            wss.append(await websockets.connect(
                f"ws://127.0.0.1:{d.port}/echo", open_timeout=T,
                ping_interval=None))
        finally:
            for w in wss:
                await w.close()
    run(go(), 30)


# ---------------------------------------------------------------- rooms

def test_rooms_per_ip_at_the_boundary_and_released_on_delete(roomd_factory):
    n = 3
    d = start(roomd_factory, f"max_rooms_per_ip {n}\n")
    rooms = []
    for i in range(n):
        st, body = request(d, "POST", "/canvas/rooms", {"host": f"h{i}"})
        assert st == 201, body
        rooms.append(body)
    for _ in range(4):      # whichever worker answers
        r = http_req(d, "POST", "/canvas/rooms", {"host": "x"})
        assert_error(r, 429, "too_many_rooms")
    st, body = request(d, "POST", "/canvas/rooms", {"host": "y"},
                       source="127.0.0.2")
    assert st == 201, body
    # Joining is not creating.
    join_room(d, rooms[0]["roomId"], "guest")
    # The lobby refuses in its own format (an HTTP JSON error).
    st, body = request(d, "POST", "/lobby/rooms")
    assert st >= 400 and isinstance(body.get("error"), str), body
    # Delete one: one more may be made.
    st, _ = request(d, "DELETE", f"/canvas/rooms/{rooms[0]['roomId']}",
                    headers={"Authorization": f"Bearer {rooms[0]['token']}"})
    assert st == 204
    st, body = request(d, "POST", "/canvas/rooms", {"host": "z"})
    assert st == 201, body
    r = http_req(d, "POST", "/canvas/rooms", {"host": "x"})
    assert_error(r, 429, "too_many_rooms")


def test_expired_rooms_are_released(roomd_factory):
    d = start(roomd_factory, "max_rooms_per_ip 1\nroom_ttl 1\n")
    st, body = request(d, "POST", "/canvas/rooms", {"host": "a"})
    assert st == 201
    assert request(d, "POST", "/canvas/rooms", {"host": "b"})[0] == 429
    # Nobody connected: reaped after room_ttl, and the count with it.
    assert poll(lambda: request(d, "POST", "/canvas/rooms",
                                {"host": "c"})[0] == 201, 8)


# ---------------------------------------------------------------- messages

def test_message_rate_burst_then_close_1008(roomd_factory):
    d = start(roomd_factory, "message_rate 2 10\n")

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{d.port}/echo",
                                      open_timeout=T, ping_interval=None)
        try:
            for i in range(10):
                await ws.send(f"m{i}")
            for i in range(10):
                assert await asyncio.wait_for(ws.recv(), T) == f"m{i}"
            await ws.send("one too many")
            with pytest.raises(websockets.ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), T)
            return e.value.rcvd.code if e.value.rcvd else None
        finally:
            await ws.close()
    assert run(go(), 30) == 1008

    async def steady():
        # At the rate (a message per 0.6 s against 2 a second, after
        # spending the burst), a connection is never closed.
        ws = await websockets.connect(f"ws://127.0.0.1:{d.port}/echo",
                                      open_timeout=T, ping_interval=None)
        try:
            for i in range(10):
                await ws.send(f"b{i}")
            for i in range(10):
                await asyncio.wait_for(ws.recv(), T)
            for i in range(4):
                await asyncio.sleep(0.6)
                await ws.send(f"s{i}")
                assert await asyncio.wait_for(ws.recv(), T) == f"s{i}"
        finally:
            await ws.close()
    run(steady(), 30)


def test_message_rate_does_not_apply_to_loopback_by_default(roomd_factory):
    d = roomd_factory(MOUNTS + "message_rate 1 1\n")

    async def go():
        ws = await websockets.connect(f"ws://127.0.0.1:{d.port}/echo",
                                      open_timeout=T, ping_interval=None)
        try:
            for i in range(20):
                await ws.send(f"m{i}")
            for i in range(20):
                assert await asyncio.wait_for(ws.recv(), T) == f"m{i}"
        finally:
            await ws.close()
    run(go(), 30)


# ---------------------------------------------------------------- passwords

def test_wrong_passwords_per_ip_and_room(roomd_factory):
    n = 3
    d = start(roomd_factory, f"join_failures_per_minute {n}\n")
    room = create_room(d, host="ann", password="right")
    other = create_room(d, host="bob", password="right")
    path = f"/canvas/rooms/{room['roomId']}/join"
    for i in range(n):
        st, body = request(d, "POST", path, {"name": f"g{i}",
                                             "password": "wrong"})
        assert st == 403 and body["error"] == "wrong_password", body
    for pw in ("wrong", "right"):     # even the right one waits now
        r = http_req(d, "POST", path, {"name": "late", "password": pw})
        assert_error(r, 429, "too_many_attempts")
    # Another address, and another room, are not affected.
    st, body = request(d, "POST", path, {"name": "c", "password": "right"},
                       source="127.0.0.2")
    assert st == 200, body
    st, body = request(d, "POST", f"/canvas/rooms/{other['roomId']}/join",
                       {"name": "c", "password": "right"})
    assert st == 200, body
    # A missing password is no guess.
    st, body = request(d, "POST", f"/canvas/rooms/{other['roomId']}/join",
                       {"name": "d"})
    assert st == 403
    for i in range(n):
        st, body = request(d, "POST", f"/canvas/rooms/{other['roomId']}"
                           "/join", {"name": "d"})
        assert st == 403, body


# ---------------------------------------------------------------- origins

def upgrade_status(d, path, origin=None):
    s = socket.create_connection((d.host, d.port), timeout=5)
    try:
        req = (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {new_key()}\r\n"
               "Sec-WebSocket-Version: 13\r\n")
        if origin is not None:
            req += f"Origin: {origin}\r\n"
        s.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                break
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        body = None
        if status != 101:
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
                    while len(rest) < n:
                        rest += s.recv(4096)
                    body = json.loads(rest[:n])
        return status, body
    finally:
        s.close()


def test_origin_allow_list(roomd_factory):
    d = roomd_factory(MOUNTS + "allowed_origins https://good.example "
                      "http://localhost:3000\nallowed_origins "
                      "https://also.example\n")
    assert upgrade_status(d, "/echo", "https://good.example")[0] == 101
    assert upgrade_status(d, "/echo", "HTTPS://GOOD.example")[0] == 101
    assert upgrade_status(d, "/echo", "https://also.example")[0] == 101
    assert upgrade_status(d, "/echo", "http://localhost:3000")[0] == 101
    assert upgrade_status(d, "/echo")[0] == 101          # no browser
    for bad in ("https://evil.example", "https://good.example.evil",
                "http://good.example", "null", "http://localhost:30"):
        st, body = upgrade_status(d, "/echo", bad)
        assert st == 403 and body["error"] == "forbidden_origin", (bad, st)
    # Plain HTTP requests are not subject to it.
    assert http_req(d, "GET", "/canvas/rooms",
                    headers={"Origin": "https://evil.example"}).status == 200


def test_any_origin_without_a_list(roomd_factory):
    d = roomd_factory(MOUNTS)
    assert upgrade_status(d, "/echo", "https://anything.example")[0] == 101


# ---------------------------------------------------------------- arena

def test_a_full_arena_is_refused_cleanly(roomd_factory):
    d = roomd_factory(MOUNTS + "arena_size 4M\nroom_log_max_bytes 1G\n"
                      "max_message_bytes 1M\n")
    pids = {parse_worker(http_req(d, "GET", "/canvas/rooms")
                         .header("X-Roomd-Worker")) for _ in range(20)}
    room = create_room(d, host="ann")
    pad = "z" * (200 * 1024)

    async def fill():
        ws = await websockets.connect(ws_url(d, room["roomId"],
                                             room["token"]),
                                      open_timeout=T, max_size=None,
                                      ping_interval=None)
        try:
            assert json.loads(await asyncio.wait_for(ws.recv(), T)) == []
            for i in range(40):             # 8 MB into a 4 MB arena
                await ws.send(json.dumps([{"i": i, "pad": pad}]))
                m = json.loads(await asyncio.wait_for(ws.recv(), T))
                if isinstance(m, dict):
                    return i, m
            return None, None
        finally:
            await ws.close()
    i, err = run(fill(), 60)
    assert err is not None, "the arena never filled"
    assert err["error"] == "arena_full" and i > 3, err
    # Rooms are refused in the dialect's own format while it is full,
    # the daemon stays up and no worker died.
    r = http_req(d, "POST", "/canvas/rooms", {"host": "x" * 60})
    assert r.status in (201, 503), r
    if r.status == 503:
        assert_error(r, 503, "arena_full")
    after = {parse_worker(http_req(d, "GET", "/canvas/rooms")
                          .header("X-Roomd-Worker")) for _ in range(20)}
    assert after <= pids | after and {p for _, p in after} <= \
        {p for _, p in pids}, (pids, after)
    # The last member left, so the room went and its space came back: a
    # new room takes a large action again.
    assert poll(lambda: http_req(d, "POST", "/canvas/rooms",
                                 {"host": "y"}).status == 201, 5)
    room = create_room(d, host="bea")

    async def again():
        ws = await websockets.connect(ws_url(d, room["roomId"],
                                             room["token"]),
                                      open_timeout=T, max_size=None,
                                      ping_interval=None)
        try:
            await asyncio.wait_for(ws.recv(), T)
            await ws.send(json.dumps([{"pad": pad}]))
            m = json.loads(await asyncio.wait_for(ws.recv(), T))
            assert isinstance(m, list) and m[0]["pointer"] == 1, str(m)[:200]
        finally:
            await ws.close()
    run(again(), 30)

"""Hostile clients.

Every test starts a daemon of its own (echo and canvas mounted) and, after
its hostile client has done its worst, proves that the daemon still serves
everyone else: a fresh echo round trip on every worker, canvas members on
both workers drawing, and the same worker process on every slot as before
(X-Roomd-Worker), so no worker crashed and was quietly replaced.

Everything runs on 127.0.0.1, every wait is bounded and every socket,
thread and process is closed at the end of its test.
"""
import asyncio
import bisect
import concurrent.futures
import errno
import json
import os
import re
import resource
import selectors
import socket
import threading
import time
import uuid

import pytest

from conftest import (RawWS, close_all, close_ws, collect_actions, connect,
                      create_room, http_req, join_room, log_text, new_key,
                      open_on_slot, parse_worker, pointers, poll, run,
                      server_side_states)

MOUNTS = "mount echo /echo\nmount canvas /canvas\n"
SANITIZED = os.environ.get("ROOMD_SANITIZED") == "1"


# ---------------------------------------------------------------- helpers

def start(factory, extra="", workers=2):
    """A daemon with echo and canvas mounted; -> (daemon, slot->pid)."""
    d = factory(MOUNTS + extra, workers)
    return d, worker_pids(d)


def worker_pids(d, tries=400):
    """slot -> pid of the worker serving each slot, from the X-Roomd-Worker
    field of new connections.  Fails if a slot is never seen or is seen
    served by two processes."""
    seen = {}
    for _ in range(tries):
        r = http_req(d, "GET", "/canvas/rooms", timeout=5.0)
        slot, pid = parse_worker(r.header("X-Roomd-Worker"))
        seen.setdefault(slot, set()).add(pid)
        if len(seen) >= d.workers:
            break
    assert set(seen) == set(range(d.workers)), \
        f"new connections reached slots {sorted(seen)} of {d.workers} in " \
        f"{tries} tries"
    assert all(len(p) == 1 for p in seen.values()), \
        f"a slot was served by two processes while probed: {seen}"
    return {s: next(iter(p)) for s, p in seen.items()}


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rss_anon_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def daemon_rss_anon_kib(d):
    return sum(rss_anon_kib(p) for p in [d.master_pid] + children(d.master_pid))


async def echo_roundtrips(d, n=3, slot=None):
    """n round trips on a fresh echo WebSocket (on `slot` if given);
    returns the worst latency in seconds."""
    ws, _ = await open_on_slot(f"{d.ws_base}/echo", slot)
    worst = 0.0
    try:
        for i in range(n):
            msg = f"hello-{i}-{uuid.uuid4().hex}"
            t0 = time.monotonic()
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            worst = max(worst, time.monotonic() - t0)
            assert got == msg, f"echo sent {msg!r}, got back {got!r:.200}"
        blob = os.urandom(300)
        await ws.send(blob)
        got = await asyncio.wait_for(ws.recv(), 5)
        assert got == blob, "binary echo came back different"
    finally:
        await close_ws(ws)
    return worst


async def canvas_draw_check(d):
    """A canvas room with a member on every worker; each draws, each
    receives everything in the same order with pointers 1, 2, ..."""
    loop = asyncio.get_running_loop()
    rid = f"hc-{uuid.uuid4().hex[:12]}"
    names = [f"m{s}" for s in range(d.workers)]

    def mk():
        toks = {names[0]: create_room(d, host=names[0], room_id=rid)["token"]}
        for n in names[1:]:
            toks[n] = join_room(d, rid, n)["token"]
        return toks
    toks = await loop.run_in_executor(None, mk)
    wss = []
    try:
        ws, first, (slot0, _) = await connect(d, rid, toks[names[0]])
        wss.append(ws)
        assert first == [], first
        others = [s for s in range(d.workers) if s != slot0]
        for n, s in zip(names[1:], others):
            w, first, _ = await connect(d, rid, toks[n], slot=s)
            wss.append(w)
            assert first == [], first
        acts = []
        for i, w in enumerate(wss):
            a = {"lineto": [i, i], "by": names[i], "tag": uuid.uuid4().hex}
            acts.append(a)
            await w.send(json.dumps(a))
            # every member, the sender too, receives it next
            for k, r in enumerate(wss):
                got = await collect_actions(r, 1, quiet=0)
                assert [x.get("tag") for x in got] == [a["tag"]], \
                    f"member {names[k]} got {got!r:.300}, wanted {a}"
                assert got[0]["pointer"] == len(acts), got
        # the whole log, seen by a fresh connection
        v, log, _ = await connect(d, rid, toks[names[0]])
        wss.append(v)
        assert pointers(log) == list(range(1, len(acts) + 1)), log
        assert [x["tag"] for x in log] == [x["tag"] for x in acts], log
    finally:
        await close_all(wss)


def worker_deaths(d):
    return [ln for ln in log_text(d).splitlines()
            if "killed by signal" in ln or "exited with status" in ln]


def assert_others_still_served(d, before, what, deaths=0):
    """The daemon is alive, serves echo on every worker and canvas members
    on every worker, and runs the same worker processes as before."""
    tail = ""
    assert d.proc.poll() is None, \
        f"after {what}: the master exited with {d.proc.returncode}"

    async def body():
        worst = 0.0
        for s in range(d.workers):
            worst = max(worst, await echo_roundtrips(d, 2, slot=s))
        await canvas_draw_check(d)
        return worst
    worst = run(body(), timeout=60)
    assert worst < 2.0, f"after {what}: an echo round trip took {worst:.2f} s"
    after = worker_pids(d)
    if after != before:
        tail = "\n".join(log_text(d).splitlines()[-20:])
    assert after == before, \
        f"after {what}: a worker was replaced (slot->pid {before} became " \
        f"{after}); log:\n{tail}"
    dead = worker_deaths(d)
    assert len(dead) == deaths, \
        f"after {what}: the log reports {len(dead)} worker deaths, " \
        f"expected {deaths}: {dead}"


class Findings(list):
    """What a hostile test found wrong; reported together with whether the
    daemon still served everyone else, so one failure shows both."""

    def check(self, ok, msg):
        if not ok:
            self.append(msg)
        return ok


def verdict(d, before, what, found):
    """Prove the others are still served, then fail with every finding."""
    health = None
    try:
        assert_others_still_served(d, before, what)
    except (Exception, pytest.fail.Exception) as e:
        health = f"other clients after {what}: {e!r:.2000}" \
            if not isinstance(e, AssertionError) else \
            f"other clients after {what}: {e}"
    msgs = list(found) + ([health] if health else [])
    assert not msgs, "\n".join(msgs)


def read_until_eof(sock, timeout):
    """Read until the peer closes; -> (data, closed, how)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True, "reset"
        except OSError as e:
            return data, True, f"error {e}"
        if not chunk:
            return data, True, "eof"
        data += chunk
    return data, False, "still open"


def raw_http(d, data, timeout=5.0):
    """Send raw bytes as one request; -> (response bytes, closed, how,
    send error)."""
    s = socket.create_connection((d.host, d.port), timeout=timeout)
    try:
        send_err = None
        try:
            s.sendall(data)
        except OSError as e:
            send_err = e
        got, closed, how = read_until_eof(s, timeout)
        return got, closed, how, send_err
    finally:
        s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", resp)
    return int(m.group(1)) if m else None


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    try:
        return json.loads(body)
    except ValueError:
        return None


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    return RawWS.frame(opcode, payload, fin=fin, mask=mask, rsv=rsv)


def masked_header(b0, length):
    """A client frame header (masked) announcing `length` in the 64-bit
    field, whatever the value."""
    return bytes([b0, 0x80 | 127]) + length.to_bytes(8, "big") + os.urandom(4)


def open_echo(d, timeout=5.0):
    ws = RawWS(d, timeout=timeout)
    try:
        ws.open("/echo")
    except BaseException:
        ws.close()
        raise
    return ws


def expect_close_frame(ws, timeout=5.0):
    """-> (code, reason, frames skipped, seconds until it came); code is
    None for an empty close payload; raises AssertionError if the
    connection ended or stayed silent without a close frame."""
    ws.sock.settimeout(timeout)
    t0 = time.monotonic()
    try:
        code, reason, skipped = ws.recv_close()
    except EOFError:
        raise AssertionError(
            f"the server closed TCP after {time.monotonic() - t0:.2f} s "
            f"without a close frame")
    except socket.timeout:
        raise AssertionError(f"no close frame within {timeout} s")
    except ConnectionResetError:
        raise AssertionError(
            f"the server reset TCP after {time.monotonic() - t0:.2f} s "
            f"without a close frame")
    return code, reason, skipped, time.monotonic() - t0


def ends_after_close(ws, timeout=4.0):
    """After the closing handshake the server closes TCP; True if it did."""
    _, closed, _ = read_until_eof(ws.sock, timeout)
    return closed


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


# ---------------------------------------------------------------- 1 slowloris

IDLE = 2
SLACK = 1.5


def test_slowloris_headers_are_closed_within_idle_timeout(roomd_factory):
    """A request whose header bytes trickle in one every 0.2 s and never end
    must not hold its connection past idle_timeout."""
    d, before = start(roomd_factory, f"idle_timeout {IDLE}\n")
    data = (b"GET /canvas/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            + b"a" * 4000)
    limit = IDLE + SLACK + 2.0
    found = Findings()
    s = socket.create_connection((d.host, d.port), timeout=5)
    closed_at, how, got, sent = None, None, b"", 0
    try:
        s.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < limit:
                if sel.select(0.2):
                    try:
                        chunk = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        closed_at, how = time.monotonic() - t0, "reset"
                        break
                    if not chunk:
                        closed_at, how = time.monotonic() - t0, "eof"
                        break
                    got += chunk
                    continue
                try:
                    s.send(data[sent:sent + 1])
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    closed_at, how = time.monotonic() - t0, "send failed"
                    break
        finally:
            sel.close()
        if found.check(closed_at is not None, (
                f"slowloris: sent {sent} header bytes of one request, one "
                f"every 0.2 s, never ending the headers; with idle_timeout "
                f"{IDLE} the connection was still open after {limit:.1f} s "
                f"(server sent {got[:200]!r})")):
            found.check(closed_at <= IDLE + SLACK, (
                f"slowloris: closed only after {closed_at:.2f} s ({how}), "
                f"idle_timeout is {IDLE}"))
        if got:
            found.check(status_of(got) in (400, 408, 431),
                        f"slowloris: answered {got[:300]!r}")
        # the others are checked while the slow client still holds on
        verdict(d, before, "a slowloris client", found)
    finally:
        s.close()


# ---------------------------------------------------------------- 2 headers

@pytest.mark.parametrize("kind", ["2000-small-headers", "one-20KB-value"])
def test_oversized_headers_get_431_and_close(roomd_factory, kind):
    d, before = start(roomd_factory)
    if kind == "2000-small-headers":
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
    else:
        hdrs = b"X-Big: " + b"v" * 20000 + b"\r\n"
    req = (b"GET /canvas/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\n" + hdrs
           + b"\r\n")
    found = Findings()
    got, closed, how, send_err = raw_http(d, req)
    if found.check(status_of(got) == 431, (
            f"{kind} ({len(req)} bytes of request head): expected 431, got "
            f"{got[:300]!r} (connection {how}, send error {send_err!r})")):
        j = body_of(got)
        found.check(isinstance(j, dict) and
                    j.get("error") == "headers_too_large",
                    f"{kind}: 431 body {got[:400]!r}")
    found.check(closed, f"{kind}: connection still open 5 s after the answer")
    verdict(d, before, f"a {kind} request", found)


# ---------------------------------------------------------------- 3 body

@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_request_body_over_max_body_bytes_gets_413(roomd_factory, framing):
    limit = 4096
    d, before = start(roomd_factory, f"max_body_bytes {limit}\n")
    body = json.dumps({"host": "h", "pad": "x" * (limit * 3)}).encode()
    head = b"POST /canvas/rooms HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
           b"Content-Type: application/json\r\n"
    if framing == "content-length":
        req = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        req = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    found = Findings()
    got, closed, how, send_err = raw_http(d, req)
    if found.check(status_of(got) == 413, (
            f"POST /canvas/rooms with a {len(body)}-byte body ({framing}), "
            f"max_body_bytes {limit}: expected 413, got {got[:300]!r} "
            f"(connection {how}, send error {send_err!r})")):
        j = body_of(got)
        found.check(isinstance(j, dict) and j.get("error") == "body_too_large",
                    f"413 body {got[:400]!r}")
    found.check(closed, "connection still open 5 s after the answer")
    verdict(d, before, f"an oversized {framing} body", found)


# ---------------------------------------------------------------- 4 fragments

def test_message_in_one_byte_fragments_is_echoed_whole(roomd_factory):
    d, before = start(roomd_factory, "max_message_bytes 4096\n")
    text = ("fragmented-" + "0123456789" * 20)[:200].encode()
    assert len(text) == 200
    frames = [frame(0x1, text[:1], fin=False)]
    frames += [frame(0x0, text[i:i + 1], fin=False) for i in range(1, 199)]
    frames += [frame(0x0, text[199:], fin=True)]
    # and a valid multi-byte character split across fragments
    euro = "price: 5\u20ac".encode()
    frames += [frame(0x1, euro[:-2], fin=False),
               frame(0x0, euro[-2:-1], fin=False),
               frame(0x0, euro[-1:], fin=True)]
    found = Findings()
    with open_echo(d) as ws:
        ws.sock.sendall(b"".join(frames))
        try:
            op, payload = ws.recv_message()
            if found.check((op, payload) == (0x1, text), (
                    f"200 one-byte fragments of a text: came back as opcode "
                    f"{op}: {payload!r:.300}")):
                op, payload = ws.recv_message()
                found.check((op, payload) == (0x1, euro), (
                    f"'€' split over fragments: came back as opcode {op}: "
                    f"{payload!r:.300}"))
        except (AssertionError, EOFError, OSError) as e:
            found.append(f"fragmented messages: no echo, {e!r}")
    verdict(d, before, "messages in one-byte fragments", found)


def test_5000_one_byte_fragments_past_max_message_bytes_close_1009(roomd_factory):
    d, before = start(roomd_factory, "max_message_bytes 4096\n")
    frames = [frame(0x1, b"a", fin=False)]
    frames += [frame(0x0, b"b", fin=False) for _ in range(4998)]
    frames += [frame(0x0, b"c", fin=True)]
    found = Findings()
    with open_echo(d) as ws:
        try:
            ws.sock.sendall(b"".join(frames))
        except OSError:
            pass
        try:
            code, reason, skipped, _ = expect_close_frame(ws)
        except AssertionError as e:
            found.append(f"5000 one-byte fragments (max_message_bytes 4096): {e}")
        else:
            found.check(code == 1009, (
                f"5000 one-byte fragments (max_message_bytes 4096): close "
                f"{code} {reason!r}, frames before it {skipped!r:.200}"))
            found.check(not [f for f in skipped if f[0] in (0x1, 0x2)],
                        f"part of the oversized message was echoed: "
                        f"{skipped!r:.200}")
            try:
                ws.send_frame(0x8, close_payload(1009))
            except OSError:
                pass
            found.check(ends_after_close(ws),
                        f"connection still open after close {code}")
    verdict(d, before, "5000 fragments past the limit", found)


# ---------------------------------------------------------------- 5 length

@pytest.mark.parametrize("length", [2 ** 63, 2 ** 64 - 1, 2 ** 62, 2 ** 32],
                         ids=["2^63", "2^64-1", "2^62", "2^32"])
def test_huge_64bit_length_closes_promptly(roomd_factory, length):
    d, before = start(roomd_factory)
    found = Findings()
    with open_echo(d) as ws:
        ws.sock.sendall(masked_header(0x82, length) + b"x" * 100)
        try:
            code, reason, skipped, took = expect_close_frame(ws, timeout=5)
        except AssertionError as e:
            found.append(f"binary frame announcing {length} bytes: {e}")
        else:
            found.check(code in (1009, 1002), (
                f"binary frame announcing {length} bytes: close {code} "
                f"{reason!r}"))
            found.check(took < 2.0, f"close came only after {took:.2f} s")
            try:
                ws.send_frame(0x8, close_payload(code or 1000))
            except OSError:
                pass
            found.check(ends_after_close(ws),
                        "connection still open after the close")
    verdict(d, before, f"a frame announcing {length} bytes", found)


# ---------------------------------------------------------------- 6 ping flood

def test_ping_flood_is_answered_or_closed_and_others_stay_fast(roomd_factory):
    d, before = start(roomd_factory)
    N = 10000

    def pay(i):
        return (b"%08d" % i) + b"p" * 92
    blob = b"".join(frame(0x9, pay(i)) for i in range(N))
    final = b"final-" + uuid.uuid4().hex.encode()
    flood = open_echo(d, timeout=15)
    res = {"pongs": [], "close": None, "end": None, "bad": [],
           "send_err": None, "final": False}

    def reader():
        try:
            while True:
                fin, op, payload, masked = flood.recv_frame()
                if op == 0xA:
                    if payload == final:
                        res["final"] = True
                        return
                    res["pongs"].append(payload)
                elif op == 0x8:
                    res["close"] = payload
                    return
                else:
                    res["bad"].append((op, payload[:100]))
        except Exception as e:
            res["end"] = repr(e)

    def sender():
        try:
            for i in range(0, len(blob), 65536):
                flood.sock.sendall(blob[i:i + 65536])
            flood.sock.sendall(frame(0x9, final))
        except Exception as e:
            res["send_err"] = repr(e)

    rt = threading.Thread(target=reader, daemon=True)
    st = threading.Thread(target=sender, daemon=True)

    async def others():
        wss = []
        try:
            for s in range(d.workers):
                wss.append((await open_on_slot(f"{d.ws_base}/echo", s))[0])
            st.start()
            rt.start()
            lat, k = [], 0
            deadline = time.monotonic() + 20
            while (st.is_alive() or rt.is_alive() or k < 5) and \
                    time.monotonic() < deadline:
                for w in wss:
                    m = f"other-{k}"
                    t0 = time.monotonic()
                    await w.send(m)
                    got = await asyncio.wait_for(w.recv(), 10)
                    lat.append(time.monotonic() - t0)
                    assert got == m, (m, got)
                    k += 1
                await asyncio.sleep(0.02)
            return lat
        finally:
            await close_all(wss)

    try:
        lat = run(others(), timeout=40)
        st.join(15)
        rt.join(15)
        assert not st.is_alive() and not rt.is_alive(), \
            f"ping flood did not finish in time: {len(res['pongs'])} pongs"
    finally:
        flood.close()
        st.join(5) if st.ident else None
        rt.join(5) if rt.ident else None
    worst = max(lat)
    print(f"ping flood: {len(res['pongs'])} pongs, final pong {res['final']}, "
          f"close {res['close']!r}, reader end {res['end']}, sender "
          f"{res['send_err']}; {len(lat)} echo round trips, worst "
          f"{worst:.3f} s")
    assert worst < 2.0, (
        f"during a flood of {N} pings an echo client's round trip took "
        f"{worst:.2f} s (of {len(lat)})")
    assert not res["bad"], f"non-pong frames to a ping flood: {res['bad'][:5]}"
    if res["close"] is None:
        assert res["final"], (
            f"flood of {N} pings: neither a close frame nor a pong for the "
            f"last ping; {len(res['pongs'])} pongs, reader ended "
            f"{res['end']}, sender {res['send_err']}")
        idx = []
        for p in res["pongs"]:
            assert len(p) == 100 and p[8:] == b"p" * 92, p
            idx.append(int(p[:8]))
        assert all(a < b for a, b in zip(idx, idx[1:])), \
            "pongs out of order or repeated"
        assert 0 < len(idx) <= N
    assert_others_still_served(d, before, f"a flood of {N} pings")


# ---------------------------------------------------------------- 7 protocol

CLOSE = 0x8
PROTOCOL_CASES = [
    ("invalid-utf8-split-across-fragments",
     [frame(0x1, b"ab\xe2", fin=False), frame(0x0, b"\x28\xa1ok")], 1007),
    ("overlong-2-byte-slash", [frame(0x1, b"a\xc0\xafb")], 1007),
    ("overlong-3-byte-slash", [frame(0x1, b"a\xe0\x80\xafb")], 1007),
    ("overlong-nul", [frame(0x1, b"\xc0\x80")], 1007),
    ("ping-126-bytes", [frame(0x9, b"x" * 126)], 1002),
    ("close-126-bytes", [frame(CLOSE, close_payload(1000, b"r" * 124))], 1002),
    ("rsv1", [frame(0x1, b"hi", rsv=4)], 1002),
    ("rsv2", [frame(0x1, b"hi", rsv=2)], 1002),
    ("rsv3", [frame(0x1, b"hi", rsv=1)], 1002),
    ("opcode-0x3", [frame(0x3, b"x")], 1002),
    ("opcode-0xB", [frame(0xB, b"x")], 1002),
    ("continuation-without-start", [frame(0x0, b"x")], 1002),
    ("close-1-byte-payload", [frame(CLOSE, b"\x03")], 1002),
    ("close-code-1005", [frame(CLOSE, close_payload(1005))], 1002),
    ("close-code-999", [frame(CLOSE, close_payload(999))], 1002),
    ("close-code-1006", [frame(CLOSE, close_payload(1006))], 1002),
    ("close-code-1015", [frame(CLOSE, close_payload(1015))], 1002),
    ("close-code-0", [frame(CLOSE, close_payload(0))], 1002),
    ("fragmented-ping", [frame(0x9, b"x", fin=False)], 1002),
    ("new-text-inside-fragmented-message",
     [frame(0x1, b"a", fin=False), frame(0x1, b"b")], 1002),
    ("unmasked-client-frame", [frame(0x1, b"hi", mask=False)], 1002),
]


@pytest.mark.parametrize("name,frames,want",
                         PROTOCOL_CASES, ids=[c[0] for c in PROTOCOL_CASES])
def test_protocol_violation_closes_with_code(roomd_factory, name, frames,
                                             want):
    d, before = start(roomd_factory)
    sent_close = any((f[0] & 0x0F) == CLOSE for f in frames)
    found = Findings()
    with open_echo(d) as ws:
        ws.sock.sendall(b"".join(frames))
        try:
            code, reason, skipped, took = expect_close_frame(ws)
        except AssertionError as e:
            found.append(f"{name}: sent {b''.join(frames)[:16]!r}, expected "
                         f"close {want}: {e}")
        else:
            data = [f for f in skipped if f[0] in (0x1, 0x2)]
            found.check(code == want, (
                f"{name}: sent {b''.join(frames)[:16]!r}, expected close "
                f"{want}, got close {code} {reason!r} (data frames before "
                f"it: {data!r:.200})"))
            found.check(not data, f"{name}: message echoed before the close: "
                        f"{data!r:.200}")
            if not sent_close:
                try:
                    ws.send_frame(CLOSE, close_payload(code or 1000))
                except OSError:
                    pass
            found.check(ends_after_close(ws),
                        f"{name}: TCP still open after close {code}")
    verdict(d, before, name, found)


# ---------------------------------------------------------------- 8 conn flood

def _raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return soft, hard


def test_thousand_idle_connections_do_not_starve_a_normal_client(roomd_factory):
    idle = 5
    n = 1000
    old = _raise_nofile(n + 512)
    socks = []
    sel = selectors.DefaultSelector()
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and soft < n + 200:
            pytest.skip(f"RLIMIT_NOFILE {soft}: cannot open {n} sockets")
        d, before = start(roomd_factory, f"idle_timeout {idle}\n")
        t0 = time.monotonic()
        for i in range(n):
            s = socket.create_connection((d.host, d.port), timeout=5)
            s.setblocking(False)
            socks.append(s)
            sel.register(s, selectors.EVENT_READ, i)
        opened = time.monotonic() - t0
        # a normal client is served while the 1000 are open and idle
        t1 = time.monotonic()
        assert_others_still_served(d, before, f"{n} idle connections")
        served = time.monotonic() - t1
        assert time.monotonic() - t0 < idle, (
            f"opening {n} connections ({opened:.2f} s) and serving a client "
            f"({served:.2f} s) took past idle_timeout; test is inconclusive")
        # then the server closes every one of them at idle_timeout
        open_ = set(range(n))
        deadline = t0 + idle + 4
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                i = key.data
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    open_.discard(i)
                    sel.unregister(key.fileobj)
        assert not open_, (
            f"{len(open_)} of {n} idle connections still open "
            f"{time.monotonic() - t0:.1f} s after they were opened "
            f"(idle_timeout {idle})")
        assert_others_still_served(d, before, f"{n} idle connections closed")
    finally:
        sel.close()
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


# ---------------------------------------------------------------- 9 big room
#
# A 1000-member canvas room with 100 members that never read, driven by one
# selectors loop over raw non-blocking sockets in this process (Python
# WebSocket clients cannot read 900 x N messages in time).  roomd frames
# from the server are unmasked and never fragmented, so the parser below
# only splits frames, answers pings, and checks every text frame against
# the bytes it must hold.

BIG_MEMBERS = 1000              # drawer + live readers + stalled
BIG_STALLED = 100
BIG_OBB = 8 * 1024              # output_buffer_bytes
BIG_PING = 6 if SANITIZED else 4    # ping_interval
BIG_WINDOW = 16                 # actions the drawer may be ahead of anyone
BIG_ACTIONS = 300 if SANITIZED else 600
BIG_MORE = 20                   # drawn after the stalled ones are gone
BIG_PAD = 1000
# A stalled socket: a 4 KiB receive buffer and a 536-byte MSS.  Over
# loopback (MSS 65483) Linux grows roomd's send buffer to tcp_wmem's
# maximum and a client that never reads soaks up ~3 MB in the kernel
# before roomd's own queue holds a byte; with a 536-byte MSS (what many
# internet peers announce) the kernel takes ~100 KB, and roomd's
# output_buffer_bytes is what the test exercises.
BIG_RCVBUF = 4096
BIG_MSS = 536
PTR_RE = re.compile(rb'"pointer":(\d+)\}')


def _big_actions(n):
    """The drawer's messages and the bytes of each as members receive it
    (pointer p for action p - 1: one drawer, a fresh room)."""
    sent, recv = [], [b""]
    for i in range(n):
        a = json.dumps({"lineto": [i, i], "i": i, "pad": "x" * BIG_PAD},
                       separators=(",", ":")).encode()
        sent.append(a)
        recv.append(a[:-1] + b',"pointer":%d}' % (i + 1))
    # all received actions joined by commas; start[p]/end[p] of action p
    start, end, off = [0] * (n + 1), [0] * (n + 1), 0
    for p in range(1, n + 1):
        start[p], off = off, off + len(recv[p])
        end[p] = off
        off += 1
    return sent, b",".join(recv[1:]), start, end


def _masked(opcode, payload):
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    m = int.from_bytes(payload, "big") ^ int.from_bytes(
        (key * (n // 4 + 1))[:n], "big")
    return hdr + key + (m.to_bytes(n, "big") if n else b"")


class _Member:
    def __init__(self, idx, kind, token):
        self.idx, self.kind, self.token = idx, kind, token
        self.sock = None
        self.buf = bytearray()
        self.out = b""
        self.head = None            # None until the 101 arrived
        self.slot = None
        self.first = False          # the initial "[]" arrived
        self.next = 1               # next pointer due
        self.frames = 0
        self.pings = 0
        self.close = None           # payload of a close frame
        self.eof = None             # how the stream ended
        self.bad = []
        self.sent_at = self.open_at = self.closed_at = None
        self.port = None


class _BigRoom:
    """One selectors loop over every member's socket."""

    def __init__(self, d, rid, acts):
        self.d = d
        self.rid = rid
        self.sent, self.all, self.start, self.end = acts
        self.n = len(self.sent)
        self.span = max(e - s for s, e in zip(self.start, self.end)) + 2
        self.sel = selectors.DefaultSelector()
        self.members = []
        self.scratch = bytearray(262144)
        self.view = memoryview(self.scratch)

    # -- connecting
    def connect(self, ms, small=False, batch=100, timeout=30.0):
        for b in range(0, len(ms), batch):
            self._connect(ms[b:b + batch], small, timeout)

    def _connect(self, ms, small, timeout):
        for m in ms:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            m.sock = s
            self.members.append(m)
            if small:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                             BIG_RCVBUF)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, BIG_MSS)
            s.setblocking(False)
            err = s.connect_ex((self.d.host, self.d.port))
            assert err in (0, errno.EINPROGRESS), os.strerror(err)
            m.port = s.getsockname()[1]
            self.sel.register(s, selectors.EVENT_WRITE, m)
        deadline = time.monotonic() + timeout
        waiting = set(id(m) for m in ms)
        while waiting:
            assert time.monotonic() < deadline, \
                f"{len(waiting)} of {len(ms)} WebSockets not open in " \
                f"{timeout} s"
            for key, ev in self.sel.select(0.2):
                m = key.data
                if ev & selectors.EVENT_WRITE and m.sent_at is None:
                    err = m.sock.getsockopt(socket.SOL_SOCKET,
                                            socket.SO_ERROR)
                    assert err == 0, f"connect: {os.strerror(err)}"
                    m.sock.sendall(
                        (f"GET /canvas/rooms/{self.rid}/ws?token={m.token} "
                         f"HTTP/1.1\r\nHost: {self.d.host}:{self.d.port}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {new_key()}\r\n"
                         f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
                    m.sent_at = time.monotonic()
                    self.sel.modify(m.sock, selectors.EVENT_READ, m)
                elif ev & selectors.EVENT_READ:
                    self._read(m)
                    if m.first:
                        waiting.discard(id(m))
                        if m.kind == "stalled":
                            # from now on it never reads again
                            self.sel.unregister(m.sock)
        for m in ms:
            assert not m.bad, f"member {m.idx}: {m.bad[:3]}"

    # -- reading
    def _read(self, m, answer=True):
        try:
            k = m.sock.recv_into(self.scratch)
        except BlockingIOError:
            return
        except ConnectionResetError:
            k, m.eof = 0, "reset"
        if not k:
            m.eof = m.eof or "eof"
            m.closed_at = m.closed_at or time.monotonic()
            try:
                self.sel.unregister(m.sock)
            except (KeyError, ValueError):
                pass
            return
        m.buf += self.view[:k]
        if m.head is None:
            i = m.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(m.buf[:i]).decode("iso-8859-1")
            del m.buf[:i + 4]
            m.head = head
            if not head.startswith("HTTP/1.1 101 "):
                m.bad.append(f"upgrade answered {head[:200]!r}")
                return
            m.open_at = time.monotonic()
            for ln in head.split("\r\n"):
                k, _, v = ln.partition(":")
                if k.strip().lower() == "x-roomd-worker":
                    m.slot = parse_worker(v.strip())[0]
        self._frames(m, answer)

    def _frames(self, m, answer):
        buf, pos, n = m.buf, 0, len(m.buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, h = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, h = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, h = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if n - pos < h + ln:
                break
            if b1 & 0x80 or b0 & 0x70 or not b0 & 0x80:
                m.bad.append(f"frame header {b0:#x} {b1:#x}")
            payload = memoryview(buf)[pos + h:pos + h + ln]
            pos += h + ln
            op = b0 & 0x0F
            if op == 0x1:
                self._text(m, payload)
            elif op == 0x9:
                m.pings += 1
                if answer:
                    m.out += _masked(0xA, bytes(payload))
            elif op == 0x8:
                m.close = bytes(payload)
            else:
                m.bad.append(f"opcode {op}")
            payload.release()
        del buf[:pos]
        if m.out:
            self.flush(m)

    def _text(self, m, p):
        m.frames += 1
        if not m.first:
            if bytes(p) != b"[]":
                m.bad.append(f"first message {bytes(p[:100])!r}")
            m.first = True
            return
        hit = PTR_RE.search(bytes(p[:self.span]))
        p0 = m.next
        if hit is None or int(hit.group(1)) != p0 or p0 > self.n:
            m.bad.append(f"frame of {len(p)} bytes starts "
                         f"{bytes(p[:80])!r}, pointer {p0} was due")
            return
        # the frame holds actions p0..p1 whole: find p1 from its length
        want = self.start[p0] + len(p) - 2
        p1 = bisect.bisect_left(self.end, want, p0)
        if p1 > self.n or self.end[p1] != want or \
                p[0] != 0x5B or p[-1] != 0x5D or \
                p[1:-1] != self.all[self.start[p0]:want]:
            m.bad.append(f"frame of {len(p)} bytes from pointer {p0} is "
                         f"not actions {p0}.. as sent: {bytes(p[:80])!r}")
            m.next = self.n + 1
            return
        m.next = p1 + 1

    def flush(self, m):
        if not m.out:
            return
        try:
            k = m.sock.send(m.out)
        except BlockingIOError:
            return
        except OSError as e:
            m.bad.append(f"send: {e}")
            m.out = b""
            return
        m.out = m.out[k:]

    def step(self, timeout=0.05):
        for key, ev in self.sel.select(timeout):
            self._read(key.data)
        for m in self.members:
            if m.out:
                self.flush(m)

    def close(self):
        self.sel.close()
        for m in self.members:
            if m.sock is not None:
                m.sock.close()


def test_1000_member_room_with_100_stalled_readers(roomd_factory):
    """A canvas room of 1000 members on 2 workers: 899 read, one draws,
    100 never read.  roomd queues at most output_buffer_bytes for each and
    sends a full one nothing more (roomd.conf(5)); a stalled member, which
    answers no ping, is closed once nothing came from it for twice
    ping_interval (a TCP close: no close frame could reach it).  Every
    other member, pinged too, answers and receives every action exactly
    once, in order; the daemon's private memory stays within what the
    configuration allows."""
    live_n = BIG_MEMBERS - 1 - BIG_STALLED
    old = _raise_nofile(BIG_MEMBERS + 400)
    t_start = time.monotonic()
    hub = None
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and soft < BIG_MEMBERS + 100:
            pytest.skip(f"RLIMIT_NOFILE hard limit {old[1]}: cannot open "
                        f"{BIG_MEMBERS} sockets and the test's own")
        d, before = start(roomd_factory,
                          f"output_buffer_bytes {BIG_OBB}\n"
                          f"ping_interval {BIG_PING}\n"
                          f"room_max_members {BIG_MEMBERS}\n")
        rid = f"big-{uuid.uuid4().hex[:12]}"
        toks = [create_room(d, host="m0000", room_id=rid)["token"]]
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            toks += [j["token"] for j in ex.map(
                lambda i: join_room(d, rid, f"m{i:04d}"),
                range(1, BIG_MEMBERS))]
        acts = _big_actions(BIG_ACTIONS + BIG_MORE)
        hub = _BigRoom(d, rid, acts)
        drawer = _Member(0, "drawer", toks[0])
        live = [_Member(i, "live", toks[i]) for i in range(1, live_n + 1)]
        stalled = [_Member(i, "stalled", toks[i])
                   for i in range(live_n + 1, BIG_MEMBERS)]
        readers = [drawer] + live
        hub.connect([drawer])
        hub.connect(live)
        t_joined = time.monotonic()
        hub.connect(stalled, small=True)
        t_open = time.monotonic()
        for kind, ms in (("live", readers), ("stalled", stalled)):
            slots = {m.slot for m in ms}
            assert slots == set(range(d.workers)), \
                f"{kind} members only on worker slots {slots}"
        rss0 = daemon_rss_anon_kib(d)
        peak = {"rss": rss0}

        def stalled_states():
            return server_side_states(d, {m.port for m in stalled})

        def watch(now):
            if now - watch.last >= 0.1:
                peak["rss"] = max(peak["rss"], daemon_rss_anon_kib(d))
                watch.last = now
            if now - watch.tcp >= 0.25 and any(
                    m.closed_at is None for m in stalled):
                st = stalled_states()
                for m in stalled:
                    if m.closed_at is None and st.get(m.port) != "01":
                        m.closed_at = now
                watch.tcp = now
        watch.last = watch.tcp = 0.0

        def draw(upto, limit):
            """Send actions up to `upto`, never more than BIG_WINDOW ahead
            of the slowest reader; until every reader had all of them."""
            deadline = time.monotonic() + limit
            sent = draw.sent
            while True:
                low = min(m.next for m in readers) - 1
                if low >= upto:
                    return
                bad = [m for m in readers if m.bad or m.eof or m.close]
                assert not bad, \
                    f"{len(bad)} readers went wrong; member " \
                    f"{bad[0].idx}: {bad[0].bad[:3]} eof {bad[0].eof} " \
                    f"close {bad[0].close!r}"
                now = time.monotonic()
                assert now < deadline, \
                    f"readers had actions up to {low} of {upto} after " \
                    f"{limit} s (drawer sent {sent})"
                while sent < upto and sent < low + BIG_WINDOW:
                    drawer.out += _masked(0x1, acts[0][sent])
                    sent += 1
                hub.flush(drawer)
                hub.step()
                watch(now)
                draw.sent = sent
        draw.sent = 0

        # 1: draw while the stalled ones fill up
        t0 = time.monotonic()
        draw(BIG_ACTIONS, 40)
        t_drawn_end = time.monotonic()
        t_drawn = t_drawn_end - t0
        # 2: the stalled ones are closed at twice ping_interval, the
        # others, which answer pings, stay
        slack = 6.0 if SANITIZED else 2.5
        deadline = max(m.open_at for m in stalled) + 2 * BIG_PING + slack
        while any(m.closed_at is None for m in stalled) and \
                time.monotonic() < deadline:
            hub.step(0.05)
            watch(time.monotonic())
        late = [m for m in stalled if m.closed_at is None]
        assert not late, \
            f"{len(late)} of {BIG_STALLED} stalled members still open " \
            f"{time.monotonic() - t_open:.1f} s after they joined " \
            f"(ping_interval {BIG_PING})"
        took = [m.closed_at - m.sent_at for m in stalled]
        early = [t for t in took if t < 2 * BIG_PING - 0.3]
        assert not early, \
            f"{len(early)} stalled members closed before twice " \
            f"ping_interval ({2 * BIG_PING} s): after {min(early):.2f} s"
        over = [m.closed_at - m.open_at for m in stalled]
        assert max(over) <= 2 * BIG_PING + slack, max(over)
        # 3: everyone else keeps working
        t1 = time.monotonic()
        draw(BIG_ACTIONS + BIG_MORE, 20)
        t_more = time.monotonic() - t1
        st = server_side_states(d, {m.port for m in readers})
        gone = [m.idx for m in readers if st.get(m.port) != "01"]
        assert not gone, f"readers closed by roomd: {gone[:10]}"
        pinged = sum(1 for m in readers if m.pings)
        # what a stalled member had: a correct prefix, then the end
        for m in stalled:
            hub.sel.register(m.sock, selectors.EVENT_READ, m)
        end = time.monotonic() + 10
        while any(m.eof is None for m in stalled) and \
                time.monotonic() < end:
            for key, _ in hub.sel.select(0.1):
                if key.data.kind == "stalled":
                    hub._read(key.data, answer=False)
                else:
                    hub._read(key.data)
        open_ = [m.idx for m in stalled if m.eof is None]
        assert not open_, \
            f"stalled members whose stream did not end: {open_[:10]}"
        bad = [(m.idx, m.bad[:2]) for m in stalled if m.bad]
        assert not bad, f"stalled members got wrong data: {bad[:3]}"
        # Held back: all BIG_ACTIONS were drawn before any stalled member
        # could be closed, and what never reached one is more than roomd
        # may queue for it (output_buffer_bytes + one frame), so roomd
        # stopped queueing for it rather than buffering everything.
        got = sorted(m.next - 1 for m in stalled)
        frame_max = BIG_WINDOW * (max(len(a) for a in acts[0]) + 24) + 10
        assert t_drawn_end < min(m.sent_at for m in stalled) + \
            2 * BIG_PING, \
            f"drawing ended only after the stalled members could be " \
            f"closed: inconclusive (drawing took {t_drawn:.1f} s)"
        missed = acts[3][BIG_ACTIONS] - acts[3][got[-1]]
        assert missed > BIG_OBB + frame_max, \
            f"a stalled member received {got[-1]} of {BIG_ACTIONS} " \
            f"actions: only {missed} bytes were held back from it, " \
            f"no more than roomd may queue ({BIG_OBB} + {frame_max})"
        codes = {m.close[:2] for m in stalled if m.close}
        rss1 = daemon_rss_anon_kib(d)
    finally:
        if hub is not None:
            hub.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    # Memory.  What roomd may hold for a member is its output queue:
    # output_buffer_bytes, plus the one frame that went past it.  The
    # drawer is never more than BIG_WINDOW actions ahead of the slowest
    # reader, so no frame holds more than BIG_WINDOW actions (a stalled
    # member gets nothing more once full).  Allow 4 MiB of allocator and
    # libevent slack for each of the 3 processes.
    bound = rss0 + (BIG_MEMBERS * (BIG_OBB + frame_max)) // 1024 + 3 * 4096
    print(f"\n1000-member room: set up in {t_open - t_start:.1f} s "
          f"(live ones open at {t_joined - t_start:.1f} s), {BIG_ACTIONS} "
          f"actions to {len(readers)} readers in {t_drawn:.2f} s, "
          f"{BIG_MORE} more "
          f"in {t_more:.2f} s; stalled closed after "
          f"{min(took):.2f}..{max(took):.2f} s (ping_interval {BIG_PING}), "
          f"close frames {codes or 'none'}, actions a stalled member had "
          f"{got[0]}..{got[-1]}; readers pinged {pinged}; RssAnon "
          f"{rss0} KiB at start, peak {peak['rss']} KiB, {rss1} KiB at "
          f"the end, bound {bound} KiB; total "
          f"{time.monotonic() - t_start:.1f} s")
    if not SANITIZED:
        assert peak["rss"] <= bound, (
            f"daemon RssAnon (master + workers) peaked at {peak['rss']} KiB, "
            f"over {bound} KiB = {rss0} at the start + {BIG_MEMBERS} x "
            f"({BIG_OBB} + {frame_max}) bytes + 3 x 4 MiB")
    assert_others_still_served(d, before,
                               "a 1000-member room with stalled readers")


# The chaos test (workers killed under traffic) moved to test_chaos.py,
# which runs it across every dialect.


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_the_worker_waits_instead_of_spinning(
        roomd_factory):
    """A worker at its descriptor limit stops accepting for a moment (it
    does not spin on accept() or flood the log) and serves again once
    connections close."""
    d, before = start(roomd_factory, workers=1)
    pid = before[0]
    used = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 16, used + 16))
    socks = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection((d.host, d.port),
                                                  timeout=5))
        cpu0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(2.0)
        spent = _cpu_seconds(pid) - cpu0
        assert spent < 0.5 * (time.monotonic() - t0), \
            f"the worker burnt {spent:.2f} s of CPU in 2 s at its fd limit"
        lines = [ln for ln in log_text(d).splitlines() if "accept" in ln]
        assert 0 < len(lines) < 40, lines[:5]
    finally:
        for s in socks:
            s.close()
    assert poll(lambda: http_req(d, "GET", "/canvas/rooms").status == 200,
                10), d.log_tail()
    assert_others_still_served(d, before, "a worker out of descriptors")

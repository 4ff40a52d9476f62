"""Administration: roomctl and the master's admin socket, the Prometheus
metrics endpoint, reload (SIGHUP / roomctl reload), reattaching a named
arena after a master restart, roomd -t with the admin settings, and
dropping privileges to `user`.

Every test starts a daemon of its own (roomd_factory): counters, room counts
and signals must not be shared with other tests.
"""
import asyncio
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import websockets

from conftest import (_pid_gone, assert_strictly_increasing, close_all,
                      close_ws, collect_actions, connect, create_room,
                      expect_close, free_port, http_req, join_room, log_text,
                      parse_worker, pointers, poll, recv_json, room_listed,
                      roomctl_path, roomd_bin, run, strip_pointers)


def uid(prefix="adm"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- roomctl

@pytest.fixture
def roomctl():
    if os.environ.get("ROOMD_URL"):
        pytest.skip("administration needs daemons of the tests' own")
    path = roomctl_path()
    if not os.path.exists(path):
        pytest.fail(f"no roomctl binary at {path} (next to ROOMD_BIN)")
    return path


def ctl(sock, *args, timeout=10):
    """Run roomctl -s sock args...; -> CompletedProcess (text)."""
    return subprocess.run([roomctl_path(), "-s", sock, *args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def ctl_ok(d, *args):
    p = ctl(d.control_socket, *args)
    assert p.returncode == 0, (
        f"roomctl {' '.join(args)} exited {p.returncode}\nstdout: "
        f"{p.stdout}\nstderr: {p.stderr}\n--- log ---\n{d.log_tail()}")
    return p


def ctl_json(d, *args):
    p = ctl_ok(d, "-j", *args)
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"roomctl -j {' '.join(args)} printed no JSON: "
                             f"{p.stdout!r}")


def rooms_by_id(d):
    o = ctl_json(d, "rooms")
    assert isinstance(o.get("rooms"), list), o
    return {r["id"]: r for r in o["rooms"]}


def members_by_name(d, rid):
    o = ctl_json(d, "room", rid)
    assert isinstance(o.get("members"), list), o
    return {m["name"]: m for m in o["members"]}


def wait_log(d, pattern, count=1, timeout=5.0):
    """Wait until the daemon's log has `count` lines matching pattern;
    return those lines (fewer on timeout)."""
    rx = re.compile(pattern)

    def lines():
        return [ln for ln in log_text(d).splitlines() if rx.search(ln)]
    poll(lambda: len(lines()) >= count, timeout, 0.05)
    return lines()


def proc_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for pid {pid}")


def status_workers(d):
    st = ctl_json(d, "status")
    return {w["slot"]: (w["pid"], w["restarts"]) for w in st["workers"]}


# ---------------------------------------------------------------- canvas

def new_room(d, host="host", guests=()):
    """-> (roomId, {name: token})."""
    rid = uid()
    toks = {host: create_room(d, host=host, room_id=rid)["token"]}
    for g in guests:
        toks[g] = join_room(d, rid, g)["token"]
    return rid, toks


def n_actions(messages):
    return sum(len(m) if isinstance(m, list) else 1 for m in messages)


def flat(messages):
    out = []
    for m in messages:
        out.extend(m if isinstance(m, list) else [m])
    return out


async def drain(ws, quiet=0.3):
    """Read and drop whatever arrives until `quiet` seconds pass without a
    message (bounded by 10 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        try:
            await asyncio.wait_for(ws.recv(), quiet)
        except asyncio.TimeoutError:
            return


async def send_and_echo(ws, messages):
    """Send each message (an action or a list of them) and wait until all
    their actions came back to the sender."""
    for m in messages:
        await ws.send(json.dumps(m))
    got = await collect_actions(ws, n_actions(messages), quiet=0.1)
    assert strip_pointers(got) == flat(messages), got
    return got


def sized_action(size, tag="big"):
    """A canvas action whose JSON text is exactly `size` bytes."""
    base = {"moveto": [1, 1], "tag": tag, "pad": ""}
    n = size - len(json.dumps(base))
    assert n >= 0
    base["pad"] = "x" * n
    text = json.dumps(base)
    assert len(text) == size
    return text


async def message_outcome(d, rid, token, slot, size):
    """On a new WebSocket on worker `slot`, send one `size`-byte action.
    -> "accepted" (it came back) or the close code the server sent."""
    ws, _, _ = await connect(d, rid, token, slot=slot)
    try:
        await ws.send(sized_action(size))
        try:
            m = await recv_json(ws, 5)
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
        assert isinstance(m, list) and m and m[0].get("tag") == "big", m
        return "accepted"
    finally:
        await close_ws(ws)


async def outcomes_until(d, rid, token, size, want, timeout=5.0):
    """Per worker slot, retry new connections until the outcome of a
    `size`-byte message is `want` (bounded); -> {slot: last outcome}."""
    res = {}
    for slot in range(d.workers):
        deadline = time.monotonic() + timeout
        while True:
            res[slot] = await message_outcome(d, rid, token, slot, size)
            if res[slot] == want or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    return res


# ---------------------------------------------------------------- metrics

def metrics_req(port, path="/metrics", method="GET", timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type") or "", \
            r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def parse_prometheus(text):
    """Check the text exposition format; -> {sample key: value}."""
    assert text.endswith("\n"), "exposition does not end with a newline"
    helps, types, samples = {}, {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            assert name not in helps, f"second HELP for {name}"
            assert h.strip(), f"empty HELP for {name}"
            helps[name] = h
        elif line.startswith("# TYPE "):
            parts = line[7:].split()
            assert len(parts) == 2, f"bad TYPE line {line!r}"
            assert parts[0] not in types, f"second TYPE for {parts[0]}"
            assert parts[1] in ("counter", "gauge"), line
            types[parts[0]] = parts[1]
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? '
                             r'([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)', line)
            assert m, f"not a Prometheus sample line: {line!r}"
            name = m.group(1)
            assert name in helps and name in types, \
                f"sample {name} without HELP and TYPE before it"
            key = name + (m.group(2) or "")
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = float(m.group(3))
    assert samples, "no samples"
    return samples, helps, types


def scrape(port):
    status, ctype, body = metrics_req(port)
    assert status == 200, (status, body[:300])
    assert ctype.split(";")[0].strip() == "text/plain", ctype
    return parse_prometheus(body)[0]


CANVAS_IN = 'roomd_messages_in_total{dialect="canvas"}'
CANVAS_APPENDS = 'roomd_log_appends_total{dialect="canvas"}'


# ---------------------------------------------------------------- 1. roomctl

def test_status_table_and_json(roomd_factory, roomctl):
    d = roomd_factory("arena_size 64M\n", workers=2)
    p = ctl_ok(d, "status")
    st = ctl_json(d, "status")

    assert isinstance(st.get("version"), str) and st["version"], st
    assert st.get("pid") == d.master_pid, (st, d.master_pid)
    ws = st.get("workers")
    assert isinstance(ws, list) and len(ws) == 2, st
    assert sorted(w["slot"] for w in ws) == [0, 1], st
    pids = [w["pid"] for w in ws]
    for w in ws:
        assert isinstance(w["pid"], int) and w["pid"] > 0, st
        assert w["pid"] != d.master_pid
        assert w["restarts"] == 0, st
        assert w["draining"] is False, st
        assert not _pid_gone(w["pid"]), f"worker {w} is not alive"
    assert len(set(pids)) == 2, st
    assert st.get("rooms") == 0, st
    assert st.get("arena_bytes_size") == 64 << 20, st
    assert 0 < st.get("arena_bytes_used") <= st["arena_bytes_size"], st

    # The worker pids are those serving requests.
    seen = set()
    for _ in range(200):
        seen.add(parse_worker(http_req(d, "GET", "/canvas/rooms")
                              .header("X-Roomd-Worker")))
        if len(seen) == 2:
            break
    assert seen == {(w["slot"], w["pid"]) for w in ws}, (seen, ws)

    # The table names the master and both workers.
    out = p.stdout
    assert f"pid {d.master_pid}" in out, out
    for w in ws:
        assert re.search(rf"^{w['slot']}\s+{w['pid']}\s+0\s+serving\s*$",
                         out, re.M), \
            f"no table row for worker {w}: {out}"

    # rooms counts in status follow what is created.
    new_room(d)
    new_room(d)
    assert ctl_json(d, "status")["rooms"] == 2


def test_status_counts_a_worker_restart(roomd_factory, roomctl):
    d = roomd_factory()
    before = status_workers(d)
    s0 = ctl_json(d, "stats")
    victim_slot = 1
    victim = before[victim_slot][0]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        w = status_workers(d)
        return w if w[victim_slot][0] not in (0, victim) else None
    after = poll(replaced, 5)
    assert after, f"slot {victim_slot} not re-forked: {status_workers(d)}"
    assert after[victim_slot][1] == 1, after
    assert after[1 - victim_slot] == before[1 - victim_slot], (before, after)
    s1 = ctl_json(d, "stats")
    assert s1["worker_restarts_total"] - s0["worker_restarts_total"] == 1, \
        (s0, s1)


def test_rooms_and_room_show_members_and_connections(roomd_factory, roomctl):
    d = roomd_factory()
    ra, ta = new_room(d, "alice", ["bob", "carol"])
    rb, tb = new_room(d, "dave")

    async def body():
        wss = []
        try:
            for rid, tok in ((ra, ta["alice"]), (ra, ta["bob"]),
                             (rb, tb["dave"])):
                ws, _, _ = await connect(d, rid, tok)
                wss.append(ws)
            await send_and_echo(wss[0], [{"moveto": [1, 2]},
                                         [{"lineto": [3, 4]},
                                          {"lineto": [5, 6]}]])
            await collect_actions(wss[1], 3, quiet=0)

            rooms = rooms_by_id(d)
            assert set(rooms) == {ra, rb}, rooms
            assert rooms[ra]["dialect"] == "canvas", rooms
            assert rooms[ra]["members"] == 3, rooms[ra]
            assert rooms[ra]["connections"] == 2, rooms[ra]
            assert rooms[ra]["log"] == 3, rooms[ra]
            assert rooms[rb]["members"] == 1, rooms[rb]
            assert rooms[rb]["connections"] == 1, rooms[rb]
            assert rooms[rb]["log"] == 0, rooms[rb]

            table = ctl_ok(d, "rooms").stdout
            for rid, members, conns, log in ((ra, 3, 2, 3), (rb, 1, 1, 0)):
                assert re.search(rf"^canvas\s+{rid}\s+{members}\s+{conns}\s+"
                                 rf"{log}\s+\d+\s*$", table, re.M), \
                    f"no row for {rid} ({members}, {conns}): {table}"

            ms = members_by_name(d, ra)
            assert set(ms) == {"alice", "bob", "carol"}, ms
            assert ms["alice"]["role"] == "host", ms
            assert ms["bob"]["role"] == "member", ms
            assert ms["carol"]["role"] == "member", ms
            assert ms["alice"]["connected"] is True, ms
            assert ms["bob"]["connected"] is True, ms
            assert ms["carol"]["connected"] is False, ms
            assert len({m["id"] for m in ms.values()}) == 3, ms

            table = ctl_ok(d, "room", ra).stdout
            for name, role, conn in (("alice", "host", "yes"),
                                     ("bob", "member", "yes"),
                                     ("carol", "member", "no")):
                assert re.search(rf"^{name}\s+\S+\s+{role}\s+{conn}\s*$",
                                 table, re.M), \
                    f"no row {name} {role} {conn}: {table}"
            # dialect:id names the same room
            o = ctl_json(d, "room", f"canvas:{ra}")
            assert o["id"] == ra and o["dialect"] == "canvas", o
            assert {m["name"] for m in o["members"]} == set(ms), o
        finally:
            await close_all(wss)
    run(body())


def test_room_errors_exit_1_with_message_on_stderr(roomd_factory, roomctl):
    d = roomd_factory()
    p = ctl(d.control_socket, "room", "nope")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "no room nope" in p.stderr, p.stderr
    assert p.stdout == "", p.stdout

    rid, t = new_room(d, "h")
    p = ctl(d.control_socket, "kick", rid, "nobody-here")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "no member nobody-here" in p.stderr, p.stderr
    p = ctl(d.control_socket, "close", "nope")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "no room nope" in p.stderr, p.stderr
    assert room_listed(d, rid)


def test_kick_closes_that_member_with_1008_and_others_stay(roomd_factory,
                                                           roomctl):
    d = roomd_factory()
    rid, t = new_room(d, "h", ["g1", "g2"])

    async def body():
        wh, _, (sh, _) = await connect(d, rid, t["h"])
        # g1 on the other worker (kicked by name), g2 on the host's worker
        # (kicked by member id).
        w1, _, _ = await connect(d, rid, t["g1"], slot=1 - sh)
        w2, _, _ = await connect(d, rid, t["g2"], slot=sh)
        try:
            ms = members_by_name(d, rid)
            assert all(ms[n]["connected"] for n in ("h", "g1", "g2")), ms

            p = await asyncio.to_thread(ctl_ok, d, "kick", rid, "g1")
            assert p.stdout.strip() == "ok", p.stdout
            _, code, reason = await expect_close(w1)
            assert code == 1008, (code, reason)

            p = await asyncio.to_thread(ctl_ok, d, "kick", rid,
                                        ms["g2"]["id"])
            _, code, reason = await expect_close(w2)
            assert code == 1008, (code, reason)

            # The host is still connected and served.
            await send_and_echo(wh, [{"moveto": [9, 9], "after": "kick"}])
            ok = poll(lambda: not any(
                m["connected"] for n, m in members_by_name(d, rid).items()
                if n != "h"), 3)
            ms = members_by_name(d, rid)
            assert ok, f"kicked members still shown connected: {ms}"
            assert ms["h"]["connected"] is True, ms
            # kicking closes the connection, it does not remove the member
            assert set(ms) == {"h", "g1", "g2"}, ms
            assert rooms_by_id(d)[rid]["connections"] == 1
        finally:
            await close_all([wh, w1, w2])
    run(body())


def test_close_room_closes_everyone_with_1000_and_room_is_gone(
        roomd_factory, roomctl):
    d = roomd_factory()
    rid, t = new_room(d, "h", ["g"])
    other, to = new_room(d, "o")

    async def body():
        wh, _, (sh, _) = await connect(d, rid, t["h"])
        wg, _, _ = await connect(d, rid, t["g"], slot=1 - sh)
        wo, _, _ = await connect(d, other, to["o"])
        try:
            await send_and_echo(wh, [{"moveto": [1, 1]}])
            p = await asyncio.to_thread(ctl_ok, d, "close", rid)
            assert p.stdout.strip() == "ok", p.stdout
            res = await asyncio.gather(expect_close(wh), expect_close(wg))
            for name, (_, code, reason) in zip(("h", "g"), res):
                assert code == 1000, (name, code, reason)
            assert not room_listed(d, rid)
            assert rid not in rooms_by_id(d)
            p = ctl(d.control_socket, "room", rid)
            assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
            # The other room and its member are untouched.
            assert room_listed(d, other)
            await send_and_echo(wo, [{"moveto": [2, 2]}])
        finally:
            await close_all([wh, wg, wo])
    run(body())


def test_stats_counters_grow_with_traffic(roomd_factory, roomctl):
    d = roomd_factory()
    s0 = ctl_json(d, "stats")
    for k in ("connections_total", "connections_open", "http_requests_total",
              "bytes_in_total", "bytes_out_total", "worker_restarts_total"):
        assert isinstance(s0.get(k), int), (k, s0)
    for k in ("messages_in_total", "messages_out_total", "log_appends_total",
              "websockets_open"):
        assert isinstance(s0.get(k), dict) and "canvas" in s0[k], (k, s0)

    conns = 0
    rid, t = new_room(d, "h", ["g"])
    conns += 2
    msgs_h = [{"moveto": [0, 0]}, [{"lineto": [1, 1]}, {"lineto": [2, 2]}],
              {"moveto": [3, 3]}]
    msgs_g = [[{"lineto": [4, 4]}, {"lineto": [5, 5]}, {"lineto": [6, 6]}]]
    n_msgs = len(msgs_h) + len(msgs_g)
    n_acts = n_actions(msgs_h) + n_actions(msgs_g)

    async def body():
        nonlocal conns
        wh, _, _ = await connect(d, rid, t["h"])
        wg, _, _ = await connect(d, rid, t["g"])
        conns += 2
        try:
            await send_and_echo(wh, msgs_h)
            await collect_actions(wg, n_actions(msgs_h), quiet=0)
            await send_and_echo(wg, msgs_g)
            await collect_actions(wh, n_actions(msgs_g), quiet=0)
            return await asyncio.to_thread(ctl_json, d, "stats")
        finally:
            await close_all([wh, wg])
    s1 = run(body())
    for _ in range(3):
        http_req(d, "GET", "/canvas/rooms")
        conns += 1

    s2 = ctl_json(d, "stats")
    assert s1["websockets_open"]["canvas"] == 2, s1
    assert s1["connections_open"] >= 2, s1
    assert s2["connections_total"] - s0["connections_total"] >= conns, \
        (conns, s0, s2)
    assert s2["http_requests_total"] - s0["http_requests_total"] >= 5, (s0, s2)
    assert s2["messages_in_total"]["canvas"] - \
        s0["messages_in_total"]["canvas"] == n_msgs, (n_msgs, s0, s2)
    assert s2["log_appends_total"]["canvas"] - \
        s0["log_appends_total"]["canvas"] == n_acts, (n_acts, s0, s2)
    # every append went out to both members (at least one message each)
    assert s2["messages_out_total"]["canvas"] - \
        s0["messages_out_total"]["canvas"] >= n_msgs, (s0, s2)
    assert s2["bytes_in_total"] > s0["bytes_in_total"]
    assert s2["bytes_out_total"] > s0["bytes_out_total"]
    for other in ("chat", "classroom", "lobby", "screenshare"):
        if other in s2["messages_in_total"]:
            assert s2["messages_in_total"][other] == \
                s0["messages_in_total"][other], (other, s0, s2)
    # the plain form prints the same counters
    text = ctl_ok(d, "stats").stdout
    assert re.search(r'^messages_in_total\{dialect="canvas"\} \d+$', text,
                     re.M), text
    assert re.search(r"^connections_total \d+$", text, re.M), text


def test_stop_makes_master_exit_0_and_removes_socket(roomd_factory, roomctl):
    d = roomd_factory()
    workers = [p for p, _ in status_workers(d).values()]
    assert os.path.exists(d.control_socket)
    p = ctl_ok(d, "stop")
    assert p.stdout.strip() == "ok", p.stdout
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("master still running 10 s after roomctl stop")
    assert rc == 0, f"master exited {rc}\n{d.log_tail()}"
    assert not os.path.exists(d.control_socket), "admin socket left behind"
    assert poll(lambda: all(_pid_gone(w) for w in workers), 5), \
        f"workers {workers} outlived the master"
    p = ctl(d.control_socket, "status")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)


def test_unknown_command_exits_1(roomd_factory, roomctl):
    d = roomd_factory()
    p = ctl(d.control_socket, "frobnicate")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "unknown command" in p.stderr and "frobnicate" in p.stderr, \
        p.stderr
    # the daemon still answers
    ctl_ok(d, "status")


def test_missing_socket_exits_1_and_names_the_path(roomctl):
    with tempfile.TemporaryDirectory(prefix="roomd-it-") as tmp:
        path = os.path.join(tmp, "no-such.sock")
        p = ctl(path, "status")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert path in p.stderr, p.stderr


# ---------------------------------------------------------------- 2. metrics

@pytest.fixture
def metrics_daemon(roomd_factory, roomctl):
    port = free_port()
    d = roomd_factory(f"metrics_listen 127.0.0.1:{port}\n")
    d.metrics_port = port

    # start_roomd waits for the public port, which the master binds
    # before it opens the metrics socket (a while later under ASan).
    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    assert poll(listening, 15), f"no metrics listener on {port}"
    return d


def test_metrics_is_prometheus_text(metrics_daemon):
    d = metrics_daemon
    status, ctype, body = metrics_req(d.metrics_port)
    assert status == 200, (status, body[:300])
    assert ctype.split(";")[0].strip() == "text/plain", ctype
    samples, helps, types = parse_prometheus(body)
    for name, kind in (("roomd_connections_total", "counter"),
                       ("roomd_connections_open", "gauge"),
                       ("roomd_rooms", "gauge"),
                       ("roomd_messages_in_total", "counter"),
                       ("roomd_log_appends_total", "counter")):
        assert types.get(name) == kind, (name, types)
        assert name in helps, name
    assert CANVAS_IN in samples and CANVAS_APPENDS in samples, samples
    assert samples["roomd_rooms"] == 0, samples


def test_metrics_count_messages_appends_and_rooms(metrics_daemon):
    d = metrics_daemon
    m0 = scrape(d.metrics_port)
    ra, ta = new_room(d, "h", ["g"])
    rb, tb = new_room(d, "k")
    msgs_a = [{"moveto": [0, 0]}, [{"lineto": [1, 1]}, {"lineto": [2, 2]}],
              {"lineto": [3, 3]}]
    msgs_b = [[{"moveto": [5, 5]}, {"lineto": [6, 6]}, {"lineto": [7, 7]}],
              {"moveto": [8, 8]}]
    n = len(msgs_a) + len(msgs_b)
    acts = n_actions(msgs_a) + n_actions(msgs_b)

    async def body():
        wa, _, _ = await connect(d, ra, ta["h"])
        wg, _, _ = await connect(d, ra, ta["g"])
        wb, _, _ = await connect(d, rb, tb["k"])
        try:
            await send_and_echo(wa, msgs_a)
            await collect_actions(wg, n_actions(msgs_a), quiet=0)
            await send_and_echo(wb, msgs_b)
            m = await asyncio.to_thread(scrape, d.metrics_port)
            # the same number through the admin socket
            st = await asyncio.to_thread(ctl_json, d, "status")
            assert st["rooms"] == 2, st
            return m
        finally:
            await close_all([wa, wg, wb])
    m1 = run(body())
    assert m1[CANVAS_IN] - m0[CANVAS_IN] == n, (n, m0[CANVAS_IN], m1[CANVAS_IN])
    assert m1[CANVAS_APPENDS] - m0[CANVAS_APPENDS] == acts, \
        (acts, m0[CANVAS_APPENDS], m1[CANVAS_APPENDS])
    assert m1["roomd_rooms"] == 2, m1["roomd_rooms"]
    assert m1['roomd_websockets_open{dialect="canvas"}'] == 3, m1
    assert m1["roomd_connections_total"] - m0["roomd_connections_total"] >= 6
    # rooms whose last member left are gone, and the gauge follows
    assert poll(lambda: scrape(d.metrics_port)["roomd_rooms"] == 0, 5), \
        scrape(d.metrics_port)["roomd_rooms"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/metricsx"), ("GET", "/metrics/x"),
    ("GET", "/canvas/rooms"), ("POST", "/metrics")])
def test_metrics_other_paths_are_404(metrics_daemon, method, path):
    status, _, body = metrics_req(metrics_daemon.metrics_port, path, method)
    assert status == 404, (status, body[:200])


def test_metrics_are_not_on_the_public_port(metrics_daemon):
    d = metrics_daemon
    assert d.metrics_port != d.port
    r = http_req(d, "GET", "/metrics")
    assert r.status == 404, r
    assert "roomd_" not in r.body.decode("utf-8", "replace"), r


# ---------------------------------------------------------------- 3. reload

def rewrite_conf(d, extra):
    """Keep the harness's first lines (pidfile, control_socket) and put
    `extra` after them; replaced atomically."""
    with open(d.conf_path) as f:
        head = [ln for ln in f.read().splitlines()
                if ln.startswith(("pidfile ", "control_socket "))]
    assert len(head) == 2, head
    tmp = d.conf_path + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(head) + "\n" + extra)
    os.replace(tmp, d.conf_path)


APPLIED = r"reload: .* applied"


def test_reload_applies_max_message_bytes(roomd_factory, roomctl):
    d = roomd_factory("max_message_bytes 1M\n")
    rid, t = new_room(d, "h", ["g"])
    pids = status_workers(d)

    async def body():
        # The host stays connected throughout so that the room lives.
        wh, _, _ = await connect(d, rid, t["h"])
        try:
            before = await outcomes_until(d, rid, t["g"], 5000, "accepted", 0)
            assert before == {0: "accepted", 1: "accepted"}, before

            rewrite_conf(d, "max_message_bytes 4096\n")
            os.kill(d.master_pid, signal.SIGHUP)
            assert await asyncio.to_thread(wait_log, d, APPLIED), \
                f"no reload line\n{d.log_tail()}"
            after = await outcomes_until(d, rid, t["g"], 5000, 1009)
            assert after == {0: 1009, 1: 1009}, \
                f"5000-byte message after reload to 4096: {after}"
            small = await outcomes_until(d, rid, t["g"], 4000, "accepted", 0)
            assert small == {0: "accepted", 1: "accepted"}, small

            # and back through roomctl reload
            rewrite_conf(d, "max_message_bytes 1M\n")
            p = await asyncio.to_thread(ctl_ok, d, "reload")
            assert p.stdout.strip() == "ok", p.stdout
            assert len(await asyncio.to_thread(wait_log, d, APPLIED, 2)) \
                >= 2, d.log_tail()
            again = await outcomes_until(d, rid, t["g"], 5000, "accepted")
            assert again == {0: "accepted", 1: "accepted"}, again

            assert status_workers(d) == pids, "workers were replaced"
            # The held connection was not touched: it still appends.
            await drain(wh)
            await send_and_echo(wh, [{"moveto": [1, 1], "still": "here"}])
        finally:
            await close_ws(wh)
    run(body())


@pytest.mark.parametrize("bad", ["no_such_setting 1\n",
                                 "max_message_bytes 12\n"])
def test_bad_config_on_reload_keeps_old_settings(roomd_factory, roomctl, bad):
    d = roomd_factory("max_message_bytes 4096\n")
    rid, t = new_room(d, "h", ["g"])
    pids = status_workers(d)

    async def body():
        wh, _, _ = await connect(d, rid, t["h"])
        try:
            rewrite_conf(d, "max_message_bytes 1M\n" + bad)
            await asyncio.to_thread(ctl_ok, d, "reload")
            lines = await asyncio.to_thread(
                wait_log, d, r"reload: .*keeping the running configuration")
            assert lines, f"bad reload not logged\n{d.log_tail()}"
            assert f"{d.conf_path}:4:" in lines[0], lines
            # Also SIGHUP: the same.
            os.kill(d.master_pid, signal.SIGHUP)
            assert len(await asyncio.to_thread(
                wait_log, d, r"keeping the running configuration", 2)) >= 2, \
                d.log_tail()
            assert not wait_log(d, APPLIED, timeout=0), d.log_tail()
            await asyncio.sleep(0.3)
            assert d.proc.poll() is None, f"roomd exited\n{d.log_tail()}"
            res = await outcomes_until(d, rid, t["g"], 5000, 1009, 0)
            assert res == {0: 1009, 1: 1009}, \
                f"old max_message_bytes 4096 not kept after a bad reload: {res}"
            ok = await outcomes_until(d, rid, t["g"], 4000, "accepted", 0)
            assert ok == {0: "accepted", 1: "accepted"}, ok
            assert status_workers(d) == pids
            await drain(wh)
            await send_and_echo(wh, [{"moveto": [1, 1]}])
        finally:
            await close_ws(wh)
    run(body())


def test_twenty_sighups_under_live_traffic(roomd_factory, roomctl):
    d = roomd_factory("room_ttl 60\n")
    rid, t = new_room(d, "a", ["b"])
    pids = status_workers(d)
    worker_pids = {p for p, _ in pids.values()}
    http_errors, http_count, http_workers = [], [0], set()
    stop_http = threading.Event()

    def http_loop():
        while not stop_http.is_set():
            try:
                r = http_req(d, "GET", "/canvas/rooms", timeout=3)
                http_count[0] += 1
                if r.status != 200:
                    http_errors.append(repr(r))
                http_workers.add(parse_worker(r.header("X-Roomd-Worker")))
            except Exception as e:      # refused, reset, timeout
                http_errors.append(repr(e))
            time.sleep(0.005)

    async def body():
        wa, _, (sa, _) = await connect(d, rid, t["a"])
        wb, _, (sb, _) = await connect(d, rid, t["b"], slot=1 - sa)
        assert sa != sb
        sent = {"a": [], "b": []}
        got = {"a": [], "b": []}
        closed = {}
        hups_done = asyncio.Event()

        async def sender(name, ws):
            for i in itertools.count():
                if hups_done.is_set():
                    break
                act = {"moveto": [i, i], "by": name, "n": i}
                await ws.send(json.dumps(act))
                sent[name].append(act)
                await asyncio.sleep(0.01)

        async def receiver(name, ws):
            try:
                while True:
                    m = await ws.recv()
                    got[name].extend(json.loads(m))
            except websockets.ConnectionClosed as e:
                closed[name] = e.rcvd.code if e.rcvd else None

        async def hups():
            for i in range(20):
                rewrite_conf(d, f"room_ttl {60 + i % 2}\n")
                os.kill(d.master_pid, signal.SIGHUP)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)
            hups_done.set()

        recv_tasks = [asyncio.create_task(receiver("a", wa)),
                      asyncio.create_task(receiver("b", wb))]
        try:
            await asyncio.gather(sender("a", wa), sender("b", wb), hups())
            total = len(sent["a"]) + len(sent["b"])
            deadline = asyncio.get_running_loop().time() + 10
            while (len(got["a"]) < total or len(got["b"]) < total) and \
                    not closed and \
                    asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)    # anything surplus
            return sent, got, dict(closed)
        finally:
            for task in recv_tasks:
                task.cancel()
            await asyncio.gather(*recv_tasks, return_exceptions=True)
            await close_all([wa, wb])

    th = threading.Thread(target=http_loop, daemon=True)
    th.start()
    try:
        sent, got, closed = run(body())
    finally:
        stop_http.set()
        th.join(10)
    assert not closed, f"connections closed during the SIGHUPs: {closed}"
    total = len(sent["a"]) + len(sent["b"])
    assert len(sent["a"]) > 20 and len(sent["b"]) > 20, sent
    for name in ("a", "b"):
        g = got[name]
        assert len(g) == total, \
            f"{name} got {len(g)} actions of {total}"
        assert_strictly_increasing(pointers(g))
        for who in ("a", "b"):
            mine = [x for x in strip_pointers(g) if x["by"] == who]
            assert mine == sent[who], \
                f"{name} saw {who}'s actions out of order or changed"
    assert got["a"] == got["b"], "the two members saw different logs"
    assert not http_errors, f"{len(http_errors)} of {http_count[0]} HTTP " \
        f"requests failed: {http_errors[:5]}"
    assert http_count[0] > 20, http_count
    assert {p for _, p in http_workers} <= worker_pids, (http_workers, pids)
    assert status_workers(d) == pids, "workers were replaced"
    applied = wait_log(d, APPLIED, 20, timeout=2)
    # 0.1 s apart, few (if any) SIGHUPs may coalesce into one reload
    assert len(applied) >= 10, f"{len(applied)} reloads\n{d.log_tail()}"
    assert not wait_log(d, r"killed by signal|exited with status", timeout=0)


# ---------------------------------------------------------------- 4. reattach

_arena_seq = itertools.count(1)


@pytest.fixture
def arena_name():
    name = f"/roomd-test-{os.getpid()}-{next(_arena_seq)}-" \
           f"{uuid.uuid4().hex[:6]}"
    path = "/dev/shm" + name
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    try:
        yield name
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


MSGS = [{"moveto": [1, 1]}, [{"lineto": [2, 2]}, {"lineto": [3, 3]}],
        {"moveto": [4, 4], "color": "red"}]


async def check_room_back(d, rid, t, actions):
    """After a restart: the room is listed with nobody connected; a member
    reconnecting with pointer=0 gets every action, and the log goes on.
    Returns the two open WebSockets (closing both deletes the room)."""
    assert room_listed(d, rid), f"room {rid} not listed after restart\n" \
        f"{d.log_tail()}"
    r = rooms_by_id(d).get(rid)
    assert r is not None and r["members"] == 2 and r["connections"] == 0, r
    assert r["log"] == len(actions), r
    ms = members_by_name(d, rid)
    assert not any(m["connected"] for m in ms.values()), \
        f"members still shown connected after the restart: {ms}"
    wg, first, _ = await connect(d, rid, t["g"], pointer=0)
    wh = None
    try:
        assert strip_pointers(first) == actions, first
        assert pointers(first) == list(range(1, len(actions) + 1)), first
        wh, first_h, _ = await connect(d, rid, t["h"])
        assert strip_pointers(first_h) == actions, first_h
        more = {"moveto": [99, 99], "after": "restart"}
        await wh.send(json.dumps(more))
        got = await collect_actions(wg, 1)
        assert strip_pointers(got) == [more], got
        assert got[0]["pointer"] == len(actions) + 1, got
    except BaseException:
        await close_all([wg, wh])
        raise
    return wg, wh


def test_master_sigkill_restart_reattaches_arena(roomd_factory, roomctl,
                                                 arena_name):
    conf = f"arena_path {arena_name}\narena_size 64M\n"
    d1 = roomd_factory(conf)
    assert os.path.exists("/dev/shm" + arena_name)
    rid, t = new_room(d1, "h", ["g"])
    workers = [p for p, _ in status_workers(d1).values()]

    async def before():
        wh, _, _ = await connect(d1, rid, t["h"])
        try:
            await send_and_echo(wh, MSGS)
            # the whole process group: master and workers at once
            os.killpg(d1.master_pid, signal.SIGKILL)
            await asyncio.to_thread(d1.proc.wait, 10)
            assert poll(lambda: all(_pid_gone(p) for p in workers), 5), \
                f"workers {workers} still alive after SIGKILL of the group"
        finally:
            wh.transport.abort()
    run(before())

    d2 = roomd_factory(conf)
    assert wait_log(d2, r"reattached to arena"), d2.log_tail()

    async def after():
        wss = await check_room_back(d2, rid, t, flat(MSGS))
        await close_all(wss)
    run(after())


def test_graceful_stop_and_restart_keeps_rooms(roomd_factory, roomctl,
                                               arena_name):
    conf = f"arena_path {arena_name}\narena_size 64M\n"
    d1 = roomd_factory(conf)
    rid, t = new_room(d1, "h", ["g"])

    async def first():
        wh, _, _ = await connect(d1, rid, t["h"])
        try:
            await send_and_echo(wh, MSGS)
            rc = await asyncio.to_thread(d1.stop)
            assert rc == 0, f"SIGTERM stop exited {rc}"
            await expect_close(wh)
        finally:
            await close_ws(wh)
    run(first())
    assert os.path.exists("/dev/shm" + arena_name), \
        "the named arena was removed by a stop"

    d2 = roomd_factory(conf)
    assert wait_log(d2, r"reattached to arena"), d2.log_tail()

    # Once more, stopping through roomctl while both members are connected.
    async def second():
        wss = await check_room_back(d2, rid, t, flat(MSGS))
        try:
            await asyncio.to_thread(ctl_ok, d2, "stop")
            rc = await asyncio.to_thread(d2.proc.wait, 10)
            assert rc == 0, rc
        finally:
            await close_all(wss)
    run(second())

    d3 = roomd_factory(conf)
    assert room_listed(d3, rid), d3.log_tail()
    r = rooms_by_id(d3)[rid]
    assert r["log"] == len(flat(MSGS)) + 1, r


# ---------------------------------------------------------------- 5. roomd -t

def check_conf(lines):
    with tempfile.TemporaryDirectory(prefix="roomd-it-") as tmp:
        conf = os.path.join(tmp, "admin.conf")
        text = "\n".join(lines).replace("@TMP@", tmp) + "\n"
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.run([roomd_bin(), "-t", "-c", conf],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
        left = sorted(os.listdir(tmp))
    return p, conf, left


GOOD = [
    "control_socket @TMP@/ctl.sock",
    "metrics_listen 127.0.0.1:9100",
    "metrics_listen [::1]:9100",
    "metrics_listen :9100",
    "user nobody",
]


@pytest.mark.parametrize("setting", GOOD)
def test_config_check_accepts_admin_settings(setting):
    if not os.path.exists(roomd_bin()):
        pytest.fail(f"no roomd at {roomd_bin()}")
    p, conf, left = check_conf(["room_ttl 5", setting, "workers 2"])
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "configuration OK" in p.stderr, p.stderr
    # -t binds and creates nothing
    assert left == ["admin.conf"], left


BAD = [
    ("control_socket", "one value"),
    ("control_socket a b", "one value"),
    ("control_socket /" + "x" * 120, "too long"),
    ("metrics_listen", "one value"),
    ("metrics_listen bogus", None),
    ("metrics_listen 127.0.0.1", None),
    ("metrics_listen 127.0.0.1:99999", None),
    ("metrics_listen 127.0.0.1:0", None),
    ("metrics_listen localhost:9100", None),
    ("user", "one value"),
    ("user no-such-user-roomd-test", None),
]


@pytest.mark.parametrize("setting,why", BAD, ids=[b[0][:40] for b in BAD])
def test_config_check_rejects_bad_admin_settings(setting, why):
    if not os.path.exists(roomd_bin()):
        pytest.fail(f"no roomd at {roomd_bin()}")
    p, conf, left = check_conf(["room_ttl 5", "# admin", setting,
                                "workers 2"])
    assert p.returncode == 1, \
        f"roomd -t accepted {setting!r}: {p.returncode} {p.stderr!r}"
    assert f"{conf}:3:" in p.stderr, p.stderr
    if why:
        assert why in p.stderr, p.stderr
    assert "configuration OK" not in p.stderr


def test_bad_metrics_address_stops_startup(roomd_factory):
    """At startup (not only -t) a metrics address that cannot be used makes
    roomd exit non-zero, saying so."""
    with tempfile.TemporaryDirectory(prefix="roomd-it-") as tmp:
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(f"pidfile {tmp}/roomd.pid\ncontrol_socket {tmp}/s.sock\n"
                    "metrics_listen 127.0.0.1:99999\n")
        proc = subprocess.Popen([roomd_bin(), "-f", "-c", conf, "-l",
                                 f"127.0.0.1:{free_port()}", "-w", "1"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
            raise AssertionError("roomd kept running with a bad "
                                 "metrics_listen")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    assert proc.returncode != 0, out
    assert b"metrics" in out, out


# ---------------------------------------------------------------- 6. user

def test_user_nobody_workers_drop_privileges(roomd_factory, roomctl):
    if os.geteuid() != 0:
        pytest.skip("needs root to change user")
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    d = roomd_factory("user nobody\n")
    st = ctl_json(d, "status")
    pids = [w["pid"] for w in st["workers"]]
    assert len(pids) == 2 and all(p > 0 for p in pids), st
    for p in pids:
        assert proc_uid(p) == [nobody.pw_uid] * 4, \
            f"worker {p} runs as {proc_uid(p)}, not nobody {nobody.pw_uid}"
    assert wait_log(d, r"running as user nobody"), d.log_tail()

    # still serving: HTTP on both workers, a room and its WebSocket
    seen = set()
    for _ in range(200):
        r = http_req(d, "GET", "/canvas/rooms")
        assert r.status == 200, r
        seen.add(parse_worker(r.header("X-Roomd-Worker")))
        if len(seen) == 2:
            break
    assert {p for _, p in seen} == set(pids), (seen, pids)
    rid, t = new_room(d, "h", ["g"])

    async def body():
        wh, _, (sh, _) = await connect(d, rid, t["h"])
        wg, _, _ = await connect(d, rid, t["g"], slot=1 - sh)
        try:
            await send_and_echo(wh, [{"moveto": [1, 1]}])
            got = await collect_actions(wg, 1)
            assert strip_pointers(got) == [{"moveto": [1, 1]}], got
        finally:
            await close_all([wh, wg])
    run(body())

"""The daemon: command line, workers, supervision, shutdown, fan-out."""
import asyncio
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import (_pid_gone, assert_strictly_increasing, close_all,
                      close_ws, collect_actions, connect, create_room,
                      expect_close, join_room, parse_worker, pointers,
                      room_listed, roomd_bin, run, strip_pointers,
                      worker_of_new_request)


def uid(prefix="d"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def binary():
    b = roomd_bin()
    if not os.path.exists(b):
        if os.environ.get("ROOMD_URL"):
            pytest.skip(f"no roomd binary at {b}")
        pytest.fail(f"no roomd binary at {b} (set ROOMD_BIN)")
    return b


def cli(binary, *args):
    return subprocess.run([binary, *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=10)


def ppid_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def worker_pids(d, want_slots=2, tries=100):
    """Map slot -> pid from X-Roomd-Worker of new connections."""
    seen = {}
    for _ in range(tries):
        slot, pid = worker_of_new_request(d)
        seen.setdefault(slot, set()).add(pid)
        if len(seen) >= want_slots:
            break
    return seen


# ---------------------------------------------------------------- command line

def test_config_check_of_good_file_exits_0_and_says_configuration_ok(binary):
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "good.conf")
        with open(conf, "w") as f:
            f.write("# a comment line\n\nroom_ttl 5   # trailing comment\n"
                    "max_message_bytes 65536\noutput_buffer_bytes 1048576\n"
                    "idle_timeout 5\nping_interval 2\nworkers 2\n"
                    "arena_size 64M\nroom_max_members 100\n"
                    "room_log_max_bytes 1M\n")
        p = cli(binary, "-t", "-c", conf)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert "configuration OK" in p.stderr, (p.stdout, p.stderr)


def test_config_check_of_unknown_key_names_file_and_line_and_exits_1(binary):
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write("room_ttl 5\n# fine so far\nno_such_setting 1\nworkers 2\n")
        p = cli(binary, "-t", "-c", conf)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "bad.conf:3:" in p.stderr, p.stderr
    assert "configuration OK" not in p.stderr


def test_config_check_of_bad_value_names_its_line_and_exits_1(binary):
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "badval.conf")
        with open(conf, "w") as f:
            f.write("workers 2\nroom_ttl soon\n")
        p = cli(binary, "-t", "-c", conf)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "badval.conf:2:" in p.stderr, p.stderr


def test_help_prints_usage_and_exits_0(binary):
    p = cli(binary, "-h")
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = (p.stdout + "\n" + p.stderr).splitlines()
    assert any(l.startswith("usage: roomd") for l in lines), (p.stdout, p.stderr)


def test_unknown_option_prints_usage_on_stderr_and_exits_1(binary):
    p = cli(binary, "-Z")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert any(l.startswith("usage: roomd") for l in p.stderr.splitlines()), p.stderr


# ---------------------------------------------------------------- HTTP plumbing

def test_keepalive_connection_answers_two_requests_on_one_worker(roomd):
    conn = http.client.HTTPConnection(roomd.host, roomd.port, timeout=5)
    try:
        conn.request("GET", "/canvas/rooms")
        r1 = conn.getresponse()
        b1 = r1.read()
        w1 = r1.getheader("X-Roomd-Worker")
        sock1 = conn.sock
        assert r1.status == 200, (r1.status, b1)
        assert sock1 is not None, "server closed the keep-alive connection"
        rid = uid("ka")
        conn.request("POST", "/canvas/rooms", body=json.dumps({"host": "k", "roomId": rid}),
                     headers={"Content-Type": "application/json"})
        r2 = conn.getresponse()
        b2 = r2.read()
        assert conn.sock is sock1, "second request needed a new TCP connection"
        assert r2.status == 201, (r2.status, b2)
        assert json.loads(b2)["roomId"] == rid
        assert r2.getheader("X-Roomd-Worker") == w1, "one connection, two workers?"
    finally:
        conn.close()


def test_two_workers_answer_with_distinct_slots_and_child_pids(roomd):
    seen = worker_pids(roomd)
    assert all(isinstance(s, int) and s >= 0 for s in seen), seen
    if roomd.external:
        return
    assert set(seen) == {0, 1}, f"-w 2 but slots seen in 100 connections: {seen}"
    for slot, pids in seen.items():
        assert len(pids) == 1, f"slot {slot} answered from several pids {pids}"
    p0, p1 = next(iter(seen[0])), next(iter(seen[1]))
    assert p0 != p1
    for p in (p0, p1):
        assert p != roomd.master_pid
        assert ppid_of(p) == roomd.master_pid, f"worker {p} is not the master's child"


# ---------------------------------------------------------------- two workers

def test_members_on_different_workers_see_the_identical_sequence(roomd):
    d = roomd
    rid = uid("two")
    t = {"host": create_room(d, host="A", room_id=rid)["token"]}
    t["B"] = join_room(d, rid, "B")["token"]
    t["anchor"] = join_room(d, rid, "anchor")["token"]

    async def draw(ws, who, nbatches, size):
        for i in range(nbatches):
            await ws.send(json.dumps([{"lineto": [i, j], "who": who,
                                       "batch": i, "idx": j} for j in range(size)]))
            await asyncio.sleep(0.003)

    async def body():
        anchor, _, _ = await connect(d, rid, t["anchor"])
        a = b = None
        try:
            a, fa, wa = await connect(d, rid, t["host"], slot=0)
            b, fb, wb = await connect(d, rid, t["B"], slot=1)
            assert fa == [] and fb == []
            assert wa[1] != wb[1]
            await asyncio.gather(draw(a, "A", 12, 3), draw(b, "B", 12, 2))
            return await asyncio.gather(collect_actions(a, 60, timeout=10),
                                        collect_actions(b, 60, timeout=10),
                                        collect_actions(anchor, 60, timeout=10))
        finally:
            await close_all([a, b, anchor])
    sa, sb, sx = run(body())
    assert len(sa) == 60, sa
    assert sa == sb, "members on worker 0 and worker 1 saw different sequences"
    assert sa == sx
    assert sa[0]["pointer"] == 1
    assert_strictly_increasing(pointers(sa))
    for who in ("A", "B"):
        mine = [(x["batch"], x["idx"]) for x in sa if x["who"] == who]
        assert mine == sorted(mine), f"{who}'s actions out of order: {mine}"
    # every batch is contiguous in the log
    pos = {}
    for i, x in enumerate(sa):
        pos.setdefault((x["who"], x["batch"]), []).append(i)
    for k, idxs in pos.items():
        assert idxs == list(range(idxs[0], idxs[0] + len(idxs))), \
            f"batch {k} was interleaved with another: positions {idxs}"


def test_killed_worker_is_replaced_and_its_member_resumes_from_its_pointer(roomd_factory):
    d = roomd_factory()
    rid = uid("kill")
    t = {"host": create_room(d, host="A", room_id=rid)["token"]}
    t["B"] = join_room(d, rid, "B")["token"]
    t["anchor"] = join_room(d, rid, "anchor")["token"]

    async def body():
        anchor, _, _ = await connect(d, rid, t["anchor"])
        a = b = a2 = None
        try:
            a, _, (slot_a, pid_a) = await connect(d, rid, t["host"], slot=0)
            b, _, (slot_b, pid_b) = await connect(d, rid, t["B"], slot=1)
            await a.send(json.dumps([{"moveto": [1, 1], "n": 1}, {"lineto": [2, 2], "n": 2}]))
            await b.send(json.dumps({"lineto": [3, 3], "n": 3}))
            await a.send(json.dumps({"lineto": [4, 4], "n": 4}))
            seen_a = await collect_actions(a, 4, quiet=0.2)
            seen_b = await collect_actions(b, 4, quiet=0.2)
            assert seen_a == seen_b
            last_a = seen_a[-1]["pointer"]

            os.kill(pid_a, signal.SIGKILL)
            killed_at = time.monotonic()
            # A's connection ends with its worker
            await expect_close(a, timeout=5)

            # B, on the other worker, keeps working
            await b.send(json.dumps([{"lineto": [5, 5], "n": 5}, {"lineto": [6, 6], "n": 6}]))
            more_b = await collect_actions(b, 2, quiet=0.2)
            assert [x["n"] for x in more_b] == [5, 6], more_b

            # a replacement appears on slot 0 with a new pid
            new_pid = None
            while time.monotonic() - killed_at < 5 and new_pid is None:
                try:
                    s, p = worker_of_new_request(d)
                except (OSError, http.client.HTTPException):
                    s, p = None, None
                if s == slot_a and p != pid_a:
                    new_pid = p
                else:
                    await asyncio.sleep(0.05)
            replaced_after = time.monotonic() - killed_at
            assert new_pid is not None, \
                f"no new worker on slot {slot_a} within 5 s of SIGKILL of {pid_a}"
            assert d.proc.poll() is None, "the master died"
            assert ppid_of(new_pid) == d.master_pid
            assert room_listed(d, rid), "room lost with the killed worker"

            a2, first, _ = await connect(d, rid, t["host"], pointer=last_a)
            await b.send(json.dumps({"lineto": [7, 7], "n": 7}))
            after = await collect_actions(a2, 1, quiet=0.5)
            tail_b = await collect_actions(b, 1, quiet=0.2)
            return seen_a, more_b, first, after, tail_b, replaced_after
        finally:
            await close_all([a, b, a2, anchor])
    seen_a, more_b, first, after, tail_b, replaced_after = run(body())
    assert first == more_b, \
        f"reconnect with pointer={seen_a[-1]['pointer']}: expected {more_b}, got {first}"
    assert after == tail_b, f"after reconnecting expected {tail_b}, got {after}"
    assert [x["n"] for x in after] == [7]
    assert replaced_after < 5


# ---------------------------------------------------------------- shutdown

def test_sigterm_closes_every_websocket_with_1001_and_master_exits_0(roomd_factory):
    d = roomd_factory()
    rid = uid("term")
    t = {"host": create_room(d, room_id=rid)["token"]}
    for g in ("g0", "g1", "g2"):
        t[g] = join_room(d, rid, g)["token"]

    async def body():
        wss = []
        try:
            ws, _, _ = await connect(d, rid, t["host"])
            wss.append(ws)
            ws, _, _ = await connect(d, rid, t["g0"], slot=0)
            wss.append(ws)
            ws, _, _ = await connect(d, rid, t["g1"], slot=1)
            wss.append(ws)
            ws, _, _ = await connect(d, rid, t["g2"])
            wss.append(ws)
            d.proc.send_signal(signal.SIGTERM)
            res = await asyncio.gather(*(expect_close(w, timeout=10) for w in wss))
            return [code for _, code, _ in res]
        finally:
            await close_all(wss)
    t0 = time.monotonic()
    codes = run(body())
    try:
        rc = d.proc.wait(timeout=max(0.1, 10 - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        rc = "still running 10 s after SIGTERM"
    assert codes == [1001] * 4, f"close codes after SIGTERM: {codes}"
    assert rc == 0, f"master exit status after SIGTERM: {rc}"


def test_sigterm_leaves_no_worker_process_behind(roomd_factory):
    d = roomd_factory()
    seen = worker_pids(d)
    pids = [p for s in seen.values() for p in s]
    assert len(pids) == 2, seen
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=10)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(_pid_gone(p) for p in pids):
        time.sleep(0.05)
    left = [p for p in pids if not _pid_gone(p)]
    assert left == [], f"workers {left} still alive after the master exited ({rc})"


# ---------------------------------------------------------------- fan-out

def test_fifty_members_across_both_workers_receive_all_twenty_actions_in_order(roomd):
    rid = uid("fifty")
    toks = [create_room(roomd, host="m0", room_id=rid)["token"]]
    toks += [join_room(roomd, rid, f"m{i}")["token"] for i in range(1, 50)]
    acts = [{"lineto": [i, i * i], "seq": i} for i in range(20)]

    async def body():
        conns = await asyncio.gather(*(connect(roomd, rid, tk) for tk in toks))
        wss = [c[0] for c in conns]
        try:
            slots = {c[2][0] for c in conns}
            assert all(c[1] == [] for c in conns)
            for a in acts:
                await wss[0].send(json.dumps(a))
            got = await asyncio.gather(*(collect_actions(w, 20, timeout=15, quiet=0.3)
                                         for w in wss))
            return slots, got
        finally:
            await close_all(wss)
    slots, got = run(body(), timeout=90)
    if not roomd.external:
        assert slots == {0, 1}, f"50 members all on slots {slots}"
    for i, g in enumerate(got):
        assert strip_pointers(g) == acts, f"member m{i} got {g}"
        assert g == got[0], f"member m{i} saw other pointers than m0"
    assert_strictly_increasing(pointers(got[0]))


def test_a_crowd_of_connections_waits_in_the_backlog_while_the_worker_is_busy(
        roomd_factory):
    """The worker listens with the master's backlog (4096, or the system's
    limit), not libevent's default of 128: with the worker stopped, 600
    connections complete their handshakes in the kernel, and all are
    served once it goes on."""
    d = roomd_factory("", workers=1)
    with open("/proc/sys/net/core/somaxconn") as f:
        n = min(600, int(f.read()) - 8)
    wpid = next(iter(worker_pids(d, want_slots=1)[0]))
    socks = []
    os.kill(wpid, signal.SIGSTOP)
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", d.port))
            socks.append(s)
        deadline = time.monotonic() + 5
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            _, w, _ = select.select([], pending, [], 0.2)
            pending = [s for s in pending if s not in w]
        # A dropped SYN leaves its socket connecting, for a second or more.
        assert pending == [], f"{len(pending)} of {n} connections not accepted"
    finally:
        os.kill(wpid, signal.SIGCONT)
    try:
        req = b"GET /canvas/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            s.sendall(req)
        for s in socks:
            assert s.recv(12) == b"HTTP/1.1 200"
    finally:
        for s in socks:
            s.close()

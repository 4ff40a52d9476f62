"""Crash injection under load, a 60 s chaos run across every dialect, and a
whole daemon killed and started again on a named arena (issue 8).

1. For every crash site of shm/ (found by grepping shm/*.c for
   SHM_CRASH("...") when the tests are collected, so a new site is covered
   at once), a roomd built with --enable-crash-points runs two workers with
   ROOMD_CRASH_AT=site and ROOMD_CRASH_ARM=file in their environment.
   Canvas members sit on both workers; worker 0 is loaded with traffic
   that passes the site (actions appended; rooms created, joined and
   deleted over a keep-alive HTTP connection served by worker 0).  Then
   the crash is armed for worker 0 alone (file.PID) and the test checks:
   the worker died and the lock it held was repaired, the master's arena
   checker (run after every worker death under -v) found no fault, no
   lock was ever beyond repair, worker 1's clients were never closed and
   are still served, slot 0 serves again within 1 s, every acknowledged
   action is in the log exactly once and in order, and every acknowledged
   room creation, join and deletion holds.
2. Sixty seconds of mixed traffic in all five dialects (and echo) while a
   random worker is killed with SIGKILL every 1 to 4 s, with per-dialect
   checks (see test_chaos_all_dialects_60s).
3. The whole daemon, master and workers, killed with SIGKILL on a named
   arena and started again: canvas rooms and logs, chat channels and
   history, lobby rooms and snapshots are back.

Each test starts daemons of its own on 127.0.0.1 (with -v, so the master
checks the arena after each worker death), every wait is bounded, and
every daemon, socket, arm file and arena is removed at the end.
"""
import asyncio
import http.client
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, REPO, Roomd, _LIVE, _pid_gone,
                      close_all, close_ws, connect, create_room, free_port,
                      http_req, join_room, parse_worker, pointers, poll,
                      recv_json, roomd_bin, run, ws_open, ws_open_headers,
                      ws_url, ws_worker)

MOUNTS = ("mount canvas /canvas\nmount chat /chat\nmount lobby /lobby\n"
          "mount classroom /classroom\nmount screenshare /ws\n"
          "mount echo /echo\n")
SANITIZED = os.environ.get("ROOMD_SANITIZED") == "1"
CLOSED = (OSError, asyncio.TimeoutError, websockets.ConnectionClosed,
          websockets.InvalidHandshake, EOFError)


def crash_sites():
    """Every SHM_CRASH("site") of shm/*.c, in the order of the sources."""
    sites = []
    shm = os.path.join(REPO, "shm")
    for name in sorted(os.listdir(shm)):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(shm, name)) as f:
            for s in re.findall(r'SHM_CRASH\("([A-Za-z0-9_]+)"\)', f.read()):
                if s not in sites:
                    sites.append(s)
    return sites


SITES = crash_sites()


def crash_points_built():
    """None if the roomd under test has armable crash points, else why not.
    Site names are in the binary only where SHM_CRASH() calls were built
    (tx_freeing is no other string), ROOMD_CRASH_ARM only where the crash
    point can be armed once."""
    try:
        with open(roomd_bin(), "rb") as f:
            data = f.read()
    except OSError as e:
        return f"cannot read {roomd_bin()}: {e}"
    if b"\0tx_freeing\0" not in data:
        return (f"{roomd_bin()} has no crash points: configure with "
                "--enable-crash-points")
    if b"ROOMD_CRASH_ARM" not in data:
        return f"{roomd_bin()} has crash points that cannot be armed once"
    return None


# ---------------------------------------------------------------- daemons

def start_daemon(conf="", workers=2, env=None, timeout=10.0):
    """roomd -f -v with conf, extra environment (where "{tmp}" stands for
    its temporary directory) -> Roomd with .tmp."""
    binary = roomd_bin()
    if not os.path.exists(binary):
        pytest.fail(f"roomd binary not found at {binary} (set ROOMD_BIN)")
    tmp = tempfile.TemporaryDirectory(prefix="roomd-chaos-")
    conf_path = os.path.join(tmp.name, "roomd.conf")
    with open(conf_path, "w") as f:
        f.write(f"pidfile {tmp.name}/roomd.pid\n"
                f"control_socket {tmp.name}/roomd.sock\n{conf}\n")
    port = free_port()
    log_path = os.path.join(tmp.name, "roomd.log")
    penv = dict(os.environ)
    for k, v in (env or {}).items():
        penv[k] = v.replace("{tmp}", tmp.name)
    argv = [binary, "-f", "-v", "-c", conf_path, "-l", f"127.0.0.1:{port}",
            "-w", str(workers)]
    logf = open(log_path, "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, env=penv,
                                start_new_session=True)
    except OSError:
        logf.close()
        tmp.cleanup()
        raise
    d = Roomd("127.0.0.1", port, proc, tmp, log_path)
    d._logf = logf
    d.conf_path = conf_path
    d.control_socket = os.path.join(tmp.name, "roomd.sock")
    d.workers = workers
    d.tmp = tmp.name
    d.started = time.monotonic()
    _LIVE.append(d)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = d.log_tail()
            d.stop()
            pytest.fail(f"roomd exited with {proc.returncode} at startup"
                        f"\n--- log ---\n{tail}")
        try:
            http_req(d, "GET", "/canvas/rooms", timeout=0.5)
            if len(status(d)["workers"]) == workers and all(
                    w["pid"] > 0 for w in status(d)["workers"]):
                break
        except (OSError, AssertionError, ValueError):
            pass
        if time.monotonic() > deadline:
            tail = d.log_tail()
            d.stop()
            pytest.fail(f"roomd not serving within {timeout} s\n--- log ---"
                        f"\n{tail}")
        time.sleep(0.05)
    return d


@pytest.fixture
def daemons():
    if EXTERNAL_URL:
        pytest.skip("needs daemons of its own; ROOMD_URL names an external one")
    started = []

    def make(*a, **kw):
        d = start_daemon(*a, **kw)
        started.append(d)
        return d
    yield make
    for d in started:
        d.stop()


@pytest.fixture
def crash_points():
    why = crash_points_built()
    if why is not None:
        pytest.skip(why)


def roomctl(d, *args):
    p = subprocess.run([os.path.join(os.path.dirname(roomd_bin()), "roomctl"),
                        "-j", "-s", d.control_socket, *args],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, f"roomctl {args}: {p.returncode} {p.stderr}"
    return json.loads(p.stdout)


def status(d):
    return roomctl(d, "status")


def slot_pids(d):
    return {w["slot"]: w["pid"] for w in status(d)["workers"]}


def log_text(d):
    try:
        with open(d.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_faults(text):
    """Lines that must never appear: the arena checker's faults and locks
    beyond repair (ENOTRECOVERABLE, shm_strerror(SHM_ESTATE))."""
    return [ln for ln in text.splitlines()
            if "arena check" in ln or "could not be recovered" in ln or
            "ENOTRECOVERABLE" in ln or "not recoverable" in ln.lower() or
            "sanitizer" in ln.lower()]


def check_log(d, killed):
    """The master noticed every worker killed (pids), repaired what they
    held, checked the arena after each (verbose: the 'worker N is pid'
    lines prove -v took effect) and found no fault."""
    text = log_text(d)
    assert re.search(r"worker \d+ is pid \d+", text), \
        "the daemon does not run verbose: the arena check is not run"
    for pid in killed:
        assert re.search(rf"worker \d+ \(pid {pid}\) killed by signal 9",
                         text), f"no death of pid {pid} in the log"
    bad = log_faults(text)
    assert not bad, "arena faults or locks beyond repair:\n" + "\n".join(bad)
    return text


def served_by(d, slot, not_pid=None, timeout=1.0):
    """Whether a new HTTP request reaches slot served by a pid other than
    not_pid within timeout; -> (seconds, pid) or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            r = http_req(d, "GET", "/canvas/rooms", timeout=timeout)
            s, p = parse_worker(r.header("X-Roomd-Worker"))
            if s == slot and p != not_pid:
                return time.monotonic() - t0, p
        except OSError:
            time.sleep(0.01)
    return None


# ---------------------------------------------------------------- load

class PinnedHTTP:
    """A keep-alive HTTP connection served by one worker slot: canvas rooms
    created, joined and deleted, each outcome recorded.  Stops at the first
    broken connection (its worker died) or when told."""

    def __init__(self, d, slot):
        self.d, self.slot = d, slot
        self.conn = None
        self.rooms = {}         # id -> {"token", "created", "guests", "deleted"}
        self.inflight = None    # the room of the request whose answer was lost
        self.errors = []        # unexpected answers
        self.ops = 0
        self.broken = None

    def pin(self, tries=200):
        for _ in range(tries):
            c = http.client.HTTPConnection(self.d.host, self.d.port, timeout=5)
            c.request("GET", "/canvas/rooms")
            r = c.getresponse()
            r.read()
            if parse_worker(r.getheader("X-Roomd-Worker"))[0] == self.slot:
                self.conn = c
                return
            c.close()
        pytest.fail(f"no HTTP connection landed on slot {self.slot}")

    def req(self, method, path, body=None, token=None):
        h = {"Content-Type": "application/json"}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=None if body is None else
                          json.dumps(body), headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if parse_worker(r.getheader("X-Roomd-Worker"))[0] != self.slot:
            self.errors.append(f"{method} {path} answered by another slot")
        self.ops += 1
        return r.status, data

    def cycle(self, i):
        rid = f"ld-{uuid.uuid4().hex[:10]}"
        self.inflight = rid
        st, data = self.req("POST", "/canvas/rooms", {"host": "h",
                                                      "roomId": rid})
        if st != 201:
            self.errors.append(f"create {rid}: {st} {data[:200]!r}")
            return
        room = {"token": json.loads(data)["token"], "guests": [],
                "deleted": False}
        self.rooms[rid] = room
        for g in range(5):      # the fifth outgrows the member table
            st, data = self.req("POST", f"/canvas/rooms/{rid}/join",
                                {"name": f"g{g}"})
            if st != 200:
                self.errors.append(f"join {rid}: {st} {data[:200]!r}")
                return
            room["guests"].append(f"g{g}")
        if i % 2 == 0:          # every other room stays
            st, data = self.req("DELETE", f"/canvas/rooms/{rid}",
                                token=room["token"])
            if st != 204:
                self.errors.append(f"delete {rid}: {st} {data[:200]!r}")
                return
            room["deleted"] = True
        self.inflight = None

    def fresh(self, i):
        """A request on a new connection from a loopback address of its
        own (127.1.x.y): new per-address entries in the arena."""
        c = http.client.HTTPConnection(
            self.d.host, self.d.port, timeout=5,
            source_address=(f"127.1.{i // 250 % 250}.{1 + i % 250}", 0))
        try:
            c.request("GET", "/canvas/rooms")
            c.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass        # the other slot's worker is not under test
        finally:
            c.close()

    def run(self, stop, max_ops=3000):
        i = 0
        try:
            while not stop.is_set() and self.ops < max_ops:
                self.cycle(i)
                self.fresh(i)
                i += 1
        except (OSError, http.client.HTTPException) as e:
            self.broken = repr(e)
        finally:
            self.conn.close()


class Drawer:
    """A canvas member that sends batches of actions with unique ids and
    waits for each batch to come back with its pointers."""

    def __init__(self, d, rid, name, token):
        self.d, self.rid, self.name, self.token = d, rid, name, token
        self.ws = None
        self.last = 0
        self.sent, self.acked, self.seen = [], [], []
        self.violations = []
        self.k = 0

    def absorb(self, msg):
        if not isinstance(msg, list):
            self.violations.append(f"not an array: {msg!r:.200}")
            return
        for a in msg:
            p = a.get("pointer")
            if p != self.last + 1:
                self.violations.append(f"pointer {p} after {self.last}")
            if isinstance(p, int):
                self.last = p
            self.seen.append((p, a.get("id")))
            if str(a.get("id", "")).startswith(self.name + ":"):
                self.acked.append(a["id"])

    async def open(self, slot=None):
        ws, first, w = await connect(self.d, self.rid, self.token,
                                     pointer=self.last, slot=slot)
        self.ws, self.worker = ws, w
        self.absorb(first)
        return w

    async def batch(self, rng, timeout=5.0):
        """Send 1-3 actions and wait for them; False if the connection
        broke (the batch is then unacknowledged, or acknowledged later)."""
        acts = []
        for _ in range(rng.randint(1, 3)):
            acts.append({"lineto": [self.k, rng.randint(0, 999)],
                         "id": f"{self.name}:{self.k}"})
            self.sent.append(acts[-1]["id"])
            self.k += 1
        want = {a["id"] for a in acts}
        try:
            await self.ws.send(json.dumps(acts))
            end = time.monotonic() + timeout
            while not want <= set(self.acked):
                left = end - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError()
                self.absorb(await recv_json(self.ws, left))
        except CLOSED:
            self.ws.transport.abort()
            self.ws = None
            return False
        return True

    async def drain(self, quiet=0.3):
        """Read what others appended until quiet; False if closed."""
        try:
            while True:
                self.absorb(await recv_json(self.ws, quiet))
        except asyncio.TimeoutError:
            return True
        except CLOSED:
            return False


def check_canvas_log(log, drawers, info=""):
    """log: the room's whole log from pointer 0.  Pointers 1..n; every
    acknowledged action once; each drawer's actions in its order; what each
    drawer was sent agrees with the log."""
    ps = pointers(log)
    assert ps == list(range(1, len(log) + 1)), \
        f"log pointers not 1..{len(log)}: {ps[:40]}\n{info}"
    ids = [a.get("id") for a in log]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    assert not dup, f"actions in the log twice: {dup[:20]}\n{info}"
    sent = {i for m in drawers for i in m.sent}
    assert set(ids) <= sent, f"actions nobody sent: {set(ids) - sent}"
    by_ptr = dict(zip(ps, ids))
    for m in drawers:
        assert not m.violations, f"{m.name}: {m.violations[:5]}\n{info}"
        missing = [i for i in m.acked if i not in by_ptr.values()]
        assert not missing, \
            f"{m.name}: acknowledged actions missing: {missing[:20]}\n{info}"
        wrong = [(p, i) for p, i in m.seen if by_ptr.get(p) != i]
        assert not wrong, f"{m.name} was sent {wrong[:10]}, not the log\n{info}"
        mine = [int(i.split(":")[1]) for i in ids if i.startswith(m.name + ":")]
        assert mine == sorted(mine), f"{m.name}'s actions out of order"


async def whole_log(d, rid, token):
    for _ in range(20):
        try:
            ws = await ws_open(ws_url(d, rid, token, 0))
            break
        except CLOSED:
            await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"cannot open room {rid} to read its log")
    try:
        return await recv_json(ws, 10)
    finally:
        await close_ws(ws)


async def echo_ok(d, ws, what):
    msg = f"echo-{uuid.uuid4().hex}"
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 5)
    assert got == msg, f"{what}: echo {msg!r} came back as {got!r:.100}"


# ---------------------------------------------------------------- 1. sites

@pytest.mark.parametrize("site", SITES)
def test_worker_killed_at_crash_site_under_load(daemons, crash_points, site):
    with open(roomd_bin(), "rb") as f:
        if site.encode() + b"\0" not in f.read():
            pytest.skip(f"{roomd_bin()} was built without crash site {site}")
    d = daemons(MOUNTS + "room_ttl 30\n", 2,
                env={"ROOMD_CRASH_AT": site,
                     "ROOMD_CRASH_ARM": "{tmp}/arm"})
    pids = slot_pids(d)
    victim, other = pids[0], pids[1]
    rng = random.Random(f"site-{site}")
    rid = f"site-{uuid.uuid4().hex[:10]}"
    toks = {"a": create_room(d, host="a", room_id=rid)["token"]}
    for n in ("b", "c"):
        toks[n] = join_room(d, rid, n)["token"]
    a, b, c = (Drawer(d, rid, n, toks[n]) for n in "abc")
    http_load = PinnedHTTP(d, 0)
    stop = threading.Event()
    timing = {}

    async def scenario():
        loop = asyncio.get_running_loop()
        others = []
        try:
            # worker 1: two canvas members, an echo socket, a chat user
            await place([(c, None), (b, 1), (a, 0), (c, 1)])
            echo, _ = await open_ws_on(f"{d.ws_base}/echo", 1)
            others.append(echo)
            chat, _ = await open_ws_on(f"{d.ws_base}/chat?name=by1", 1)
            others.append(chat)
            await loop.run_in_executor(None, http_load.pin)
            # the respawn must not be delayed for a worker under 1 s old
            await asyncio.sleep(max(0.0, d.started + 1.5 - time.monotonic()))
            ht = loop.run_in_executor(None, http_load.run, stop)
            for _ in range(3):      # load is flowing before the arming
                assert await a.batch(rng), "a batch failed before arming"
            arm = os.path.join(d.tmp, f"arm.{victim}")
            open(arm, "w").close()
            t_arm = time.monotonic()
            while a.ws is not None and time.monotonic() - t_arm < 10:
                if _pid_gone(victim):
                    break
                await a.batch(rng)
            gone = await loop.run_in_executor(
                None, poll, lambda: _pid_gone(victim), 10, 0.005)
            t_dead = time.monotonic()
            assert gone, (f"worker 0 (pid {victim}) never passed {site} "
                          f"under load in 10 s; arm file still there: "
                          f"{os.path.exists(arm)}")
            assert not os.path.exists(arm), "the arm file was not used"
            back = await loop.run_in_executor(None, served_by, d, 0, victim,
                                              3.0)
            timing["back"] = None if back is None else \
                time.monotonic() - t_dead
            stop.set()
            await asyncio.wait_for(ht, 15)
            # worker 1's clients were never closed, and are served
            for m in (b, c):
                assert await m.drain(), f"{m.name} on worker 1 was closed"
                assert await m.batch(rng), f"{m.name} on worker 1 failed"
            await echo_ok(d, echo, "echo on worker 1")
            await chat.send(json.dumps({"type": "message", "target": "@by1",
                                        "message": "still here"}))
            got = await recv_json(chat, 5)
            assert got.get("message") == "still here", got
            # a reconnects where it stopped and draws on
            if a.ws is not None:
                await close_ws(a.ws)
            await a.open()
            assert await a.batch(rng), "a after reconnecting"
            for m in (a, b, c):
                assert await m.drain(), f"{m.name} closed at the end"
            log = await whole_log(d, rid, toks["b"])
            return log
        finally:
            stop.set()
            await close_all([m.ws for m in (a, b, c)] + others)

    log = run(scenario(), timeout=60)
    info = (f"site {site}: actions sent {sum(len(m.sent) for m in (a, b, c))}"
            f" acked {sum(len(m.acked) for m in (a, b, c))}; http ops "
            f"{http_load.ops} ({http_load.broken}); back after "
            f"{timing.get('back')}")
    print(info)
    assert timing["back"] is not None and timing["back"] <= 1.0, \
        f"slot 0 not served again within 1 s of the death: {info}"
    check_canvas_log(log, [a, b, c], info)
    assert not http_load.errors, http_load.errors[:5]
    # every acknowledged creation, join and deletion holds
    listed = {r["roomId"]: r for r in http_req(d, "GET", "/canvas/rooms").json}
    for rid2, room in http_load.rooms.items():
        if rid2 == http_load.inflight:
            continue
        if room["deleted"]:
            assert rid2 not in listed, f"deleted room {rid2} is back"
        else:
            assert rid2 in listed, f"created room {rid2} is gone\n{info}"
            names = sorted(g["name"] for g in listed[rid2]["guests"])
            assert names == room["guests"], (rid2, names, room)
    st = status(d)
    restarts = {w["slot"]: w["restarts"] for w in st["workers"]}
    assert restarts == {0: 1, 1: 0}, st
    assert slot_pids(d)[1] == other, "worker 1 was replaced"
    assert st["lock_recoveries"] >= 1, st
    text = check_log(d, [victim])
    assert re.search(rf"lock was held by dead pid {victim}: recovered",
                     text), f"no lock repaired after the crash at {site}"
    assert d.proc.poll() is None, "the master died"


async def place(plan):
    """Open drawers on slots in order [(drawer, slot or None)]; the first
    goes anywhere (a stray closed on another slot would be the room's last
    connection, and delete it).  A drawer named again is moved: its new
    connection opens before the old one closes."""
    for m, slot in plan:
        if m.ws is not None:
            if m.worker[0] == slot:
                continue
            old = m.ws
            await m.open(slot=slot)
            await close_ws(old)
        else:
            await m.open(slot=slot)


async def open_ws_on(url, slot, attempts=60):
    """A WebSocket to url served by worker slot; -> (ws, (slot, pid))."""
    for _ in range(attempts):
        ws = await ws_open_headers(url)
        w = ws_worker(ws)
        if w[0] == slot:
            return ws, w
        await close_ws(ws)
    pytest.fail(f"no WebSocket to {url} landed on slot {slot}")

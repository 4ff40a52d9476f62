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
import threading
import time
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, REPO, _pid_gone,
                      close_all, close_ws, connect, create_room,
                      http_req, join_room, log_text, own_daemons, parse_worker,
                      pointers, poll, recv_json, roomctl_path, roomd_bin, run,
                      start_roomd, ws_open, ws_open_headers,
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
# Sites that no client of these tests can reach, and why.
UNREACHABLE = {
    "ip_insert": "the per-address counters (max_connections_per_ip, "
                 "max_rooms_per_ip) exempt loopback clients "
                 "(server_addr_limited in src/server.c), and every test "
                 "client is on loopback",
}


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
    """roomd -f -v with conf and extra environment (conftest.start_roomd),
    once every worker slot has its worker -> Roomd with .tmp."""
    d = start_roomd(conf, workers, timeout, env=env, args=("-v",))
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws = status(d)["workers"]
            if len(ws) == workers and all(w["pid"] > 0 for w in ws):
                return d
        except (OSError, AssertionError, ValueError):
            pass
        if time.monotonic() > deadline:
            tail = d.log_tail()
            d.stop()
            pytest.fail(f"roomd workers not up within {timeout} s\n"
                        f"--- log ---\n{tail}")
        time.sleep(0.05)


@pytest.fixture
def daemons():
    if EXTERNAL_URL:
        pytest.skip("needs daemons of its own; ROOMD_URL names an external one")
    yield from own_daemons(start_daemon)


@pytest.fixture
def crash_points():
    why = crash_points_built()
    if why is not None:
        pytest.skip(why)


def roomctl(d, *args):
    p = subprocess.run([roomctl_path(),
                        "-j", "-s", d.control_socket, *args],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, f"roomctl {args}: {p.returncode} {p.stderr}"
    return json.loads(p.stdout)


def status(d):
    return roomctl(d, "status")


def slot_pids(d):
    return {w["slot"]: w["pid"] for w in status(d)["workers"]}


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
            # g3's name is too long for a member record: it takes a block
            # of its own (the member_name crash site)
            name = f"g{g}" + ("-a-name-longer-than-the-record" if g == 3
                              else "")
            st, data = self.req("POST", f"/canvas/rooms/{rid}/join",
                                {"name": name})
            if st != 200:
                self.errors.append(f"join {rid}: {st} {data[:200]!r}")
                return
            room["guests"].append(name)
        if i % 2 == 0:          # every other room stays
            st, data = self.req("DELETE", f"/canvas/rooms/{rid}",
                                token=room["token"])
            if st != 204:
                self.errors.append(f"delete {rid}: {st} {data[:200]!r}")
                return
            room["deleted"] = True
        self.inflight = None

    def run(self, stop, max_ops=3000):
        i = 0
        try:
            while not stop.is_set() and self.ops < max_ops:
                self.cycle(i)
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
    if site in UNREACHABLE:
        pytest.skip(f"crash site {site} is not reachable: {UNREACHABLE[site]}")
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


@pytest.mark.parametrize("then", ["next_message", "quiet"])
def test_chat_message_whose_relay_died_with_its_worker_is_not_skipped(
        daemons, crash_points, then):
    """A chat message is kept in its channel's history, then relayed live
    through the chat's server room.  Worker 0 is killed between the two
    (crash point chat_relay) while sending "one": the history keeps it as
    seq 2, and a listener on worker 1 gets it before the next message,
    "two" (seq 3), not a gap (the cluster pass failed so once) nor a seq
    given twice.  With "quiet" nobody says anything for a while: the
    listener gets "one" all the same, from the history, within seconds
    (the chat's tick), and "two" after it once."""
    d = daemons(MOUNTS, 2, env={"ROOMD_CRASH_AT": "chat_relay",
                                "ROOMD_CRASH_ARM": "{tmp}/arm"})
    tag = uuid.uuid4().hex[:8]
    channel = f"#relay-{tag}"

    def cmd(action):
        return json.dumps({"type": "command", "action": action,
                           "target": channel})

    def say(text):
        return json.dumps({"type": "message", "target": channel,
                           "message": text})

    async def until(ws, pred, what):
        seen = []
        while True:
            try:
                m = await recv_json(ws, 10)
            except CLOSED as e:
                raise AssertionError(f"{what}: {e!r}; saw {seen}") from None
            seen.append(m)
            if pred(m):
                return seen     # up to m, m included

    def msg(text):
        return lambda m: m.get("type") == "message" and \
            m.get("message") == text

    async def scenario():
        conns = []
        try:
            lis, (_, _) = await open_ws_on(
                f"{d.ws_base}/chat?name=lis-{tag}", 1)
            conns.append(lis)
            snd, (_, victim) = await open_ws_on(
                f"{d.ws_base}/chat?name=snd-{tag}", 0)
            conns.append(snd)
            await lis.send(cmd("create"))
            await lis.send(cmd("join"))
            await until(lis, lambda m: m.get("event") == "join", "lis join")
            await snd.send(cmd("join"))
            await until(snd, lambda m: m.get("event") == "join", "snd join")
            await snd.send(say("zero"))
            got = [(m.get("seq"), m.get("message"))
                   for m in await until(lis, msg("zero"), "zero")
                   if m.get("type") == "message"]
            assert got == [(1, "zero")], got
            open(os.path.join(d.tmp, f"arm.{victim}"), "w").close()
            await snd.send(say("one"))
            assert await asyncio.get_running_loop().run_in_executor(
                None, poll, lambda: _pid_gone(victim), 10, 0.01), \
                f"worker 0 (pid {victim}) did not pass chat_relay"
            early = []
            if then == "quiet":
                t0 = time.monotonic()
                early = [(m.get("seq"), m.get("message"))
                         for m in await until(lis, msg("one"), "one")
                         if m.get("type") == "message"]
                assert early == [(2, "one")], early
                assert time.monotonic() - t0 < 5, "one came late"
            snd2 = await ws_open(f"{d.ws_base}/chat?name=snd2-{tag}")
            conns.append(snd2)
            await snd2.send(cmd("join"))
            await until(snd2, lambda m: m.get("event") == "join",
                        "snd2 join")
            await snd2.send(say("two"))
            got = early + [(m.get("seq"), m.get("message"))
                           for m in await until(lis, msg("two"), "two")
                           if m.get("type") == "message"]
            assert got == [(2, "one"), (3, "two")], got
            hist = await chat_history(d, channel, f"aud-{tag}")
            assert [(m.get("seq"), m.get("message")) for m in hist] == \
                [(1, "zero"), (2, "one"), (3, "two")], hist
        finally:
            await close_all(conns)

    run(scenario(), timeout=60)


# ---------------------------------------------------------------- 2. chaos

class Chaos:
    """What the 60 s run saw: kills, per-dialect counters and violations.
    A connection closed while the worker serving it was never killed is an
    unexpected close: a violation."""

    def __init__(self, d):
        self.d = d
        self.t0 = time.monotonic()
        self.kills = []             # (t, slot, pid)
        self.seen_ids = set()       # classroom ids ever listed
        self.killed = set()
        self.violations = []
        self.count = {}

    def now(self):
        return round(time.monotonic() - self.t0, 2)

    def bump(self, key, n=1):
        self.count[key] = self.count.get(key, 0) + n

    def bad(self, what):
        self.violations.append(f"t={self.now()} {what}")

    def lost(self, what, pid, exc):
        """A connection served by pid failed with exc."""
        self.bump("drops")
        if pid not in self.killed:
            self.bad(f"{what}: connection to live worker pid {pid} "
                     f"ended: {exc!r:.200}")

    def killed_since(self, t):
        return any(k[0] >= t - self.t0 - 0.05 for k in self.kills)

    async def retry(self, what, fn, tries=60, pause=0.25):
        """await fn() until it returns a value that is not None."""
        for _ in range(tries):
            try:
                v = await fn()
            except CLOSED:
                v = None
            if v is not None:
                return v
            await asyncio.sleep(pause)
        self.bad(f"{what}: not served again in {tries} tries")
        return None


async def chaos_killer(ch, stop, rng, duration):
    loop = asyncio.get_running_loop()
    at = rng.uniform(1, 4)
    while at < duration - 2 and not stop.is_set():
        await asyncio.sleep(max(0.0, ch.t0 + at - time.monotonic()))
        pids = await loop.run_in_executor(None, slot_pids, ch.d)
        slot = rng.randrange(len(pids))
        pid = pids[slot]
        if pid > 0 and pid not in ch.killed:
            ch.killed.add(pid)
            os.kill(pid, signal.SIGKILL)
            ch.kills.append((ch.now(), slot, pid))
        at += rng.uniform(1, 4)


async def canvas_actor(ch, m, stop, rng):
    while not stop.is_set():
        if m.ws is None:
            async def again():
                await m.open()
                return m.ws
            if await ch.retry(f"canvas {m.name}", again) is None:
                return
            ch.bump("canvas reconnects")
        pid = m.worker[1]
        if not await m.batch(rng):
            ch.lost(f"canvas {m.name}", pid, "batch not acknowledged")
            continue
        ch.bump("canvas batches")
        await asyncio.sleep(rng.uniform(0.03, 0.12))


async def echo_actor(ch, stop):
    ws, pid, i = None, None, 0
    while not stop.is_set():
        if ws is None:
            async def again():
                return await ws_open(f"{ch.d.ws_base}/echo", timeout=5)
            if (ws := await ch.retry("echo", again)) is None:
                return
            pid = ws_worker(ws)[1]
        msg = f"e{i}"
        i += 1
        try:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            if got != msg:
                ch.bad(f"echo {msg!r} came back as {got!r:.100}")
            ch.bump("echo round trips")
        except CLOSED as e:
            ch.lost("echo", pid, e)
            ws.transport.abort()
            ws = None
            continue
        await asyncio.sleep(0.05)
    if ws is not None:
        await close_ws(ws)


class ChatUser:
    def __init__(self, ch, name, channel):
        self.ch, self.name, self.channel = ch, name, channel
        self.ws, self.pid = None, None
        self.last = 0               # last seq received in the channel
        self.sent, self.acked = [], []
        self.k = 0

    def absorb(self, m):
        if m.get("type") == "message" and m.get("target") == self.channel:
            seq = m.get("seq")
            if seq != self.last + 1:
                self.ch.bad(f"chat {self.name}: seq {seq} after {self.last}")
            if isinstance(seq, int):
                self.last = seq
            if m.get("name") == self.name:
                self.acked.append(m.get("message"))
        elif m.get("type") == "error":
            self.ch.bad(f"chat {self.name}: error {m!r:.300}")

    async def enter(self):
        """Connect and join the channel from the last seq seen; None while
        the name is still held by a lost connection."""
        ws = await ws_open(f"{self.ch.d.ws_base}/chat?name={self.name}",
                           timeout=5)
        await ws.send(json.dumps({"type": "command", "action": "join",
                                  "target": self.channel,
                                  "since": self.last}))
        try:
            while True:
                m = await recv_json(ws, 5)
                if m.get("code") == "name_taken":
                    ws.transport.abort()
                    return None
                if m.get("type") == "event" and m.get("event") == "join" \
                        and m.get("name") == self.name:
                    break
                self.absorb(m)
        except CLOSED:
            ws.transport.abort()
            return None
        self.ws, self.pid = ws, ws_worker(ws)[1]
        return ws

    async def say(self, timeout=5.0):
        text = f"{self.name}:{self.k}"
        self.k += 1
        self.sent.append(text)
        await self.ws.send(json.dumps({"type": "message",
                                       "target": self.channel,
                                       "message": text}))
        end = time.monotonic() + timeout
        while text not in self.acked:
            left = end - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError()
            self.absorb(await recv_json(self.ws, left))


async def chat_actor(ch, u, stop, rng):
    while not stop.is_set():
        if u.ws is None:
            if await ch.retry(f"chat {u.name}", u.enter, tries=80) is None:
                return
            ch.bump("chat reconnects")
        try:
            await u.say()
            ch.bump("chat messages")
        except CLOSED as e:
            ch.lost(f"chat {u.name}", u.pid, e)
            u.ws.transport.abort()
            u.ws = None
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.15))


async def chat_lurker(ch, tag, stop):
    """A chat user that only listens, under a new name after each loss.
    The chat frees the names of users lost with a worker only while some
    user is connected (roomd-protocols(7), "Leaving the chat"): without it
    a user whose every peer died with it would be refused as name_taken
    until room_ttl passes."""
    i, ws, pid = 0, None, None
    while not stop.is_set():
        if ws is None:
            async def again():
                return await ws_open(f"{ch.d.ws_base}/chat?name=lurk{i}-{tag}",
                                     timeout=5)
            if (ws := await ch.retry("chat lurker", again)) is None:
                return
            pid = ws_worker(ws)[1]
            i += 1
        try:
            m = await recv_json(ws, 0.5)
            if m.get("type") == "error":
                ch.bad(f"chat lurker: {m!r:.200}")
        except asyncio.TimeoutError:
            pass
        except CLOSED as e:
            ch.lost("chat lurker", pid, e)
            ws.transport.abort()
            ws = None
    if ws is not None:
        await close_ws(ws)


class LobbyClient:
    def __init__(self, ch, name):
        self.ch, self.name = ch, name
        self.ws, self.pid, self.ident = None, None, None
        self.versions = []          # (k, version) acknowledged saves
        self.k = 0
        self.answers = 0
        self.offers = 0

    async def join(self, code, host):
        ws = await ws_open(f"{self.ch.d.ws_base}/lobby", timeout=5)
        try:
            m = await recv_json(ws, 5)
            assert m.get("type") == "identity", m
            data = {"roomCode": code} if code else None
            if self.ident is not None:
                data.update(self.ident)
            else:
                self.ident = {k: m["data"][k] for k in ("clientId", "token")}
            await ws.send(json.dumps({"type": "joinRoom", "data": data} if
                                     code else {"type": "createRoom"}))
            m = await recv_json(ws, 5)
            # the same answer under groovejet's later name follows
            later = {"roomCreated": "createdRoom",
                     "roomJoined": "joinedRoom"}.get(m.get("type"))
            if later is not None:
                m2 = await recv_json(ws, 5)
                if m2.get("type") != later:
                    self.ch.bad(f"lobby {self.name}: {later} expected, "
                                f"got {m2!r:.300}")
        except CLOSED:
            ws.transport.abort()
            return None
        if m.get("type") == "error":
            ws.transport.abort()
            if m.get("errorType") != "hostDisconnected":
                self.ch.bad(f"lobby {self.name}: {m!r:.300}")
            return None
        if code is None:
            self.code = m["data"]["roomCode"]
        elif m.get("type") != "roomJoined" or \
                m["data"].get("clientIsHost") is not host:
            self.ch.bad(f"lobby {self.name}: joinRoom -> {m!r:.300}")
        self.ws, self.pid = ws, ws_worker(ws)[1]
        return ws


async def lobby_host(ch, h, stop, rng, timeout=5.0):
    while not stop.is_set():
        if h.ws is None:
            if await ch.retry("lobby host", lambda: h.join(h.code, True)) \
                    is None:
                return
            ch.bump("lobby reconnects")
        try:
            h.k += 1
            await h.ws.send(json.dumps({"type": "saveSnapshot",
                                        "data": {"k": h.k}}))
            end = time.monotonic() + timeout
            while True:
                m = await recv_json(h.ws, max(0.01, end - time.monotonic()))
                if m.get("type") == "snapshotSaved":
                    h.versions.append((h.k, m["data"]["version"]))
                    break
                if m.get("type") == "guestOfferSignal":
                    h.offers += 1
                    await h.ws.send(json.dumps({
                        "type": "hostAnswerSignal",
                        "data": {"answerSignal": m["data"]["offerSignal"],
                                 "clientId": m["data"]["clientId"]}}))
            ch.bump("lobby snapshots")
        except CLOSED as e:
            ch.lost("lobby host", h.pid, e)
            h.ws.transport.abort()
            h.ws = None
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.2))


async def lobby_guest(ch, g, code, stop, rng):
    while not stop.is_set():
        if g.ws is None:
            if await ch.retry(f"lobby {g.name}", lambda: g.join(code, False),
                              tries=80) is None:
                return
            ch.bump("lobby reconnects")
        try:
            await g.ws.send(json.dumps({"type": "guestOfferSignal",
                                        "data": {"offerSignal": g.k}}))
            g.k += 1
            try:
                while True:
                    m = await recv_json(g.ws, 0.3)
                    if m.get("type") == "hostAnswerSignal":
                        g.answers += 1
                        ch.bump("lobby answers")
                    elif m.get("type") not in ("hostDisconnected",
                                               "hostRejoined",
                                               "joinedRoom"):
                        ch.bad(f"lobby {g.name}: {m!r:.300}")
            except asyncio.TimeoutError:
                pass
        except CLOSED as e:
            ch.lost(f"lobby {g.name}", g.pid, e)
            g.ws.transport.abort()
            g.ws = None
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.2))


class Pupil:
    def __init__(self, ch, name, room):
        self.ch, self.name, self.room = ch, name, room
        self.ws = self.pid = self.id = None
        self.admin = False
        self.ids = []               # (t, id, (slot, pid)) of each entry

    async def open(self):
        """A new connection and its first message -> (ws, message, the ids
        seen before it was opened), or None if it closed first."""
        before = set(self.ch.seen_ids)
        q = f"name={self.name}&room={self.room}"
        ws = await ws_open(f"{self.ch.d.ws_base}/classroom?{q}", timeout=5)
        try:
            m = await recv_json(ws, 5)
        except CLOSED:
            ws.transport.abort()
            return None
        return ws, m, before

    def took(self, ws, m, before):
        """Check the first message m of a new stay on ws; -> ws, or None
        (a violation) if m is not this stay's own entrance.

        The first message is the ParticipantEnter of its own entrance, and
        participants are listed in the order they entered, so its own
        record is the last one.  Stays of the same name that were lost
        with a killed worker may still be listed before it, even one
        whose first message never arrived.  Its id must be new, but new
        as of the opening of this connection: a pupil that entered just
        after it (often one that lost the same worker) lists it too, and
        may well have been read first."""
        parts = m.get("data", {}).get("participants", [])
        self.ch.seen_ids.update(p.get("id") for p in parts)
        own = parts[-1] if parts else {}
        if m.get("type") != "ParticipantEnter" or \
                own.get("name") != self.name or own.get("id") in before:
            self.ch.bad(f"classroom {self.name}: first message {m!r:.300}")
            ws.transport.abort()
            return None
        self.id, self.admin = own["id"], own["admin"]
        self.ids.append((self.ch.now(), self.id, ws_worker(ws)))
        self.ws, self.pid = ws, ws_worker(ws)[1]
        return ws

    async def enter(self):
        opened = await self.open()
        return None if opened is None else self.took(*opened)


async def classroom_actor(ch, p, stop, rng, timeout=5.0):
    while not stop.is_set():
        if p.ws is None:
            if await ch.retry(f"classroom {p.name}", p.enter) is None:
                return
            ch.bump("classroom reconnects")
        try:
            kind = "Broadcast" if p.admin else "Petition"
            await p.ws.send(json.dumps({"type": kind, "data": {"from":
                                                              p.name}}))
            end = time.monotonic() + timeout
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError()
                m = await recv_json(p.ws, left)
                if m.get("type") == "ServerResponse":
                    break
            if m["data"]["value"] == "ok":
                ch.bump("classroom sent")
            elif m["data"]["details"] != "admins not found":
                ch.bad(f"classroom {p.name}: {kind} -> {m!r:.200}")
        except CLOSED as e:
            ch.lost(f"classroom {p.name}", p.pid, e)
            p.ws.transport.abort()
            p.ws = None
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.2))


class Sharer:
    """A screenshare member.  The host's room is shared state: when the
    host is lost its room lives on without it, so the host makes a new
    room and the users move there."""

    def __init__(self, ch, name, room):
        self.ch, self.name, self.room = ch, name, room   # room: dict
        self.ws = self.pid = None
        self.in_room = None

    async def enter(self, host):
        ws = await ws_open(f"{self.ch.d.ws_base}/ws", timeout=5)
        try:
            if host:
                await ws.send(json.dumps({"type": "CREATE_ROOM",
                                          "username": self.name}))
                m = await recv_json(ws, 5)
                if m.get("type") != "ROOM_CREATED":
                    self.ch.bad(f"screenshare host: {m!r:.200}")
                    ws.transport.abort()
                    return None
                self.room["id"] = self.in_room = m["roomid"]
            else:
                if self.room.get("id") is None:
                    ws.transport.abort()
                    return None
                await ws.send(json.dumps({"type": "JOIN_ROOM",
                                          "roomid": self.room["id"],
                                          "username": self.name}))
                m = await recv_json(ws, 5)
                if m.get("type") != "ROOM_JOINED":
                    ws.transport.abort()
                    return None     # the name is not free yet, or no room
                self.in_room = self.room["id"]
        except CLOSED:
            ws.transport.abort()
            return None
        self.ws, self.pid = ws, ws_worker(ws)[1]
        return ws


async def share_host(ch, h, stop):
    while not stop.is_set():
        if h.ws is None:
            if await ch.retry("screenshare host", lambda: h.enter(True)) \
                    is None:
                return
            ch.bump("screenshare rooms")
        try:
            m = await recv_json(h.ws, 0.5)
            if m.get("type") == "REQUEST_SHARING":
                await h.ws.send(json.dumps({"type": "ALLOW_SHARING",
                                            "username": m["username"]}))
        except asyncio.TimeoutError:
            pass
        except CLOSED as e:
            ch.lost("screenshare host", h.pid, e)
            h.ws.transport.abort()
            h.ws = None


async def share_user(ch, u, stop, rng, timeout=5.0):
    while not stop.is_set():
        if u.ws is None or u.in_room != u.room.get("id"):
            if u.ws is not None:
                await close_ws(u.ws)
                u.ws = None
            if await ch.retry(f"screenshare {u.name}", lambda: u.enter(False),
                              tries=80) is None:
                return
            ch.bump("screenshare joins")
        t = time.monotonic()
        try:
            await u.ws.send(json.dumps({"type": "REQUEST_SHARING"}))
            end = time.monotonic() + timeout
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise asyncio.TimeoutError()
                m = await recv_json(u.ws, left)
                if m.get("type") == "ALLOW_SHARING":
                    ch.bump("screenshare round trips")
                    break
                if m.get("type") == "HOST_LEFT":
                    u.in_room = None        # move to the host's new room
                    break
        except asyncio.TimeoutError:
            # the host (or this user) was on a worker killed meanwhile,
            # the host is between rooms, or it stopped at the end
            if not ch.killed_since(t) and u.in_room == u.room.get("id") \
                    and not stop.is_set():
                ch.bad(f"screenshare {u.name}: no ALLOW_SHARING in "
                       f"{timeout} s and no kill meanwhile")
            continue
        except CLOSED as e:
            ch.lost(f"screenshare {u.name}", u.pid, e)
            u.ws.transport.abort()
            u.ws = None
            continue
        await asyncio.sleep(rng.uniform(0.05, 0.2))


async def chat_history(d, channel, name="auditor"):
    """Every message of channel, as a fresh user joining with since 0."""
    ws = await ws_open(f"{d.ws_base}/chat?name={name}")
    try:
        await ws.send(json.dumps({"type": "command", "action": "join",
                                  "target": channel, "since": 0}))
        out = []
        while True:
            m = await recv_json(ws, 10)
            if m.get("type") == "event" and m.get("event") == "join" and \
                    m.get("name") == name:
                return out
            if m.get("type") == "message":
                out.append(m)
            elif m.get("type") == "error":
                raise AssertionError(f"joining {channel}: {m!r:.300}")
    finally:
        await close_ws(ws)


def check_chat_history(hist, users, info=""):
    seqs = [m.get("seq") for m in hist]
    assert seqs == list(range(1, len(hist) + 1)), \
        f"chat history seq not 1..{len(hist)}: {seqs[:40]}\n{info}"
    texts = [m.get("message") for m in hist]
    dup = sorted({t for t in texts if texts.count(t) > 1})
    assert not dup, f"chat messages in the history twice: {dup[:10]}"
    sent = {t for u in users for t in u.sent}
    assert set(texts) <= sent, f"chat messages nobody sent: {set(texts) - sent}"
    for u in users:
        missing = [t for t in u.acked if t not in texts]
        assert not missing, \
            f"chat {u.name}: acknowledged messages missing: {missing[:10]}"
        mine = [int(t.split(":")[1]) for t in texts
                if t.startswith(u.name + ":")]
        assert mine == sorted(mine), f"chat {u.name}: out of order"
        assert all(m.get("name") == t.split(":")[0]
                   for m, t in zip(hist, texts)), "chat: wrong sender names"


async def classroom_members(d, room, want, timeout=6.0):
    """The ids a newcomer's ParticipantEnter lists (itself left out), once
    they are want or timeout passes."""
    end = time.monotonic() + timeout
    while True:
        ws = await ws_open(f"{d.ws_base}/classroom?name=probe&room={room}")
        try:
            m = await recv_json(ws, 5)
        finally:
            await close_ws(ws)
        ids = {p["id"] for p in m["data"]["participants"]
               if p["name"] != "probe"}
        if ids == want or time.monotonic() > end:
            return ids, m["data"]["participants"]
        await asyncio.sleep(0.5)


def test_chaos_classroom_check_reads_first_messages_out_of_order(daemons):
    """The chaos run's classroom check (Pupil) in the order that made it
    flaky (issue 14): p1 and p2 are lost with the worker that served them
    and enter again, p1 first, but the client reads p2's first message,
    which lists p1's new stay too, before p1's.  Neither is a violation,
    and each pupil takes its own, last, record."""
    d = daemons(MOUNTS, 2)
    ch = Chaos(d)
    croom = f"cr-{uuid.uuid4().hex[:8]}"
    p0, p1, p2 = (Pupil(ch, f"p{i}", croom) for i in range(3))

    async def on_slot(p, slot):
        for _ in range(60):
            assert await p.enter() is not None, ch.violations
            if ws_worker(p.ws)[0] == slot:
                return
            await close_ws(p.ws)
            p.ws = None
        pytest.fail(f"{p.name} did not land on worker {slot}")

    async def reopen(p):
        for _ in range(60):
            try:
                opened = await p.open()
            except CLOSED:
                opened = None
            if opened is not None:
                return opened
            await asyncio.sleep(0.1)
        pytest.fail(f"{p.name} was not served again")

    async def scenario():
        try:
            await on_slot(p0, 0)
            await on_slot(p1, 1)
            await on_slot(p2, 1)
            lost = {p1.id, p2.id}
            ch.killed.add(p1.pid)
            os.kill(p1.pid, signal.SIGKILL)
            for p in (p1, p2):
                p.ws.transport.abort()
                p.ws = None
            o1 = await reopen(p1)       # p1 is in the room again ...
            o2 = await reopen(p2)       # ... before p2 enters
            ids1 = [x["id"] for x in o1[1]["data"]["participants"]]
            ids2 = [x["id"] for x in o2[1]["data"]["participants"]]
            assert ids1[-1] in ids2[:-1], (o1[1], o2[1])
            assert p2.took(*o2) is not None, ch.violations
            assert p1.took(*o1) is not None, ch.violations
            assert (p1.id, p2.id) == (ids1[-1], ids2[-1])
            assert not lost & {p1.id, p2.id}
        finally:
            await close_all([p.ws for p in (p0, p1, p2) if p.ws is not None])

    run(scenario(), timeout=60)
    assert not ch.violations, ch.violations


def test_chaos_all_dialects_60s(daemons):
    """Continuous traffic in every dialect while a random worker is killed
    with SIGKILL every 1-4 s for 60 s (seeded).  Canvas: every acknowledged
    action in the log once, in order, and every member's stream gap-free.
    Chat: the channel history holds every acknowledged message once, in
    order, seq 1..n, and each user's stream is gap-free across reconnects
    (join since its last seq).  Lobby: the host's snapshots survive (the
    final one is the last acknowledged), guests and host come back with
    their identities.  Classroom: participants come back, the dead ones
    leave the room.  Screenshare: requests reach the host and allowances
    come back.  In every dialect (and echo) no connection served by a
    worker that was not killed is ever closed, and a client whose worker
    was killed is served again."""
    seed = 8008
    rng = random.Random(seed)
    duration = float(os.environ.get("ROOMD_CHAOS_SECONDS", "60"))
    d = daemons(MOUNTS + "room_ttl 30\nlobby_grace 30\n", 2)
    ch = Chaos(d)
    tag = uuid.uuid4().hex[:8]
    rid = f"chaos-{tag}"
    names = [f"c{i}" for i in range(4)]
    toks = {names[0]: create_room(d, host=names[0], room_id=rid)["token"]}
    for n in names[1:]:
        toks[n] = join_room(d, rid, n)["token"]
    drawers = [Drawer(d, rid, n, toks[n]) for n in names]
    channel = f"#chaos-{tag}"
    chatters = [ChatUser(ch, f"u{i}-{tag}", channel) for i in range(3)]
    host = LobbyClient(ch, "host")
    guests = [LobbyClient(ch, f"g{i}") for i in range(2)]
    croom = f"cr-{tag}"
    pupils = [Pupil(ch, f"p{i}", croom) for i in range(3)]
    sroom = {}
    sharers = [Sharer(ch, f"s{i}", sroom) for i in range(3)]
    final = {}

    async def scenario():
        stop = asyncio.Event()
        tasks = []
        try:
            for m in drawers:
                await m.open()
            cr = await ws_open(f"{d.ws_base}/chat?name=creator-{tag}")
            await cr.send(json.dumps({"type": "command", "action": "create",
                                      "target": channel}))
            m = await recv_json(cr, 5)
            assert m.get("event") == "create", m
            await close_ws(cr)
            for u in chatters:
                assert await u.enter() is not None, u.name
            assert await host.join(None, True) is not None
            host.code = host.code
            for g in guests:
                assert await g.join(host.code, False) is not None, g.name
            for p in pupils:
                assert await p.enter() is not None, p.name
            assert pupils[0].admin, "the first pupil is not the admin"
            assert await sharers[0].enter(True) is not None
            for s in sharers[1:]:
                assert await s.enter(False) is not None, s.name
            ch.t0 = time.monotonic()
            r = random.Random(rng.random())
            tasks = [asyncio.ensure_future(canvas_actor(ch, m, stop,
                     random.Random(r.random()))) for m in drawers]
            tasks.append(asyncio.ensure_future(echo_actor(ch, stop)))
            tasks.append(asyncio.ensure_future(chat_lurker(ch, tag, stop)))
            tasks += [asyncio.ensure_future(chat_actor(
                ch, u, stop, random.Random(r.random()))) for u in chatters]
            tasks.append(asyncio.ensure_future(lobby_host(
                ch, host, stop, random.Random(r.random()))))
            tasks += [asyncio.ensure_future(lobby_guest(
                ch, g, host.code, stop, random.Random(r.random())))
                for g in guests]
            tasks += [asyncio.ensure_future(classroom_actor(
                ch, p, stop, random.Random(r.random()))) for p in pupils]
            tasks.append(asyncio.ensure_future(share_host(ch, sharers[0],
                                                          stop)))
            tasks += [asyncio.ensure_future(share_user(
                ch, s, stop, random.Random(r.random())))
                for s in sharers[1:]]
            kt = asyncio.ensure_future(chaos_killer(
                ch, stop, random.Random(rng.random()), duration))
            await asyncio.sleep(duration)
            stop.set()
            await asyncio.wait_for(kt, 15)
            await asyncio.wait_for(asyncio.gather(*tasks), 40)
            # the final state, read by fresh clients
            final["canvas"] = await whole_log(d, rid, toks[names[0]])
            final["chat"] = await chat_history(d, channel)
            await guests[0].ws.send(json.dumps({"type": "getSnapshot"}))
            final["snapshot"] = await recv_json(guests[0].ws, 5)
            probe = LobbyClient(ch, "probe")
            final["lobby join"] = await probe.join(host.code, False)
            if probe.ws is not None:
                await close_ws(probe.ws)
            final["classroom"] = await classroom_members(
                d, croom, {p.id for p in pupils})
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close_all([x.ws for x in drawers + chatters + [host] +
                             guests + pupils + sharers if x.ws is not None])

    run(scenario(), timeout=duration + 120)
    info = (f"seed {seed}; {len(ch.kills)} kills (t, slot, pid) {ch.kills}; "
            f"counts {ch.count}")
    print(info)
    assert not ch.violations, \
        f"{len(ch.violations)} violations:\n" + "\n".join(
            ch.violations[:20]) + f"\n{info}"
    assert len(ch.kills) >= duration / 4, f"too few kills: {info}"
    check_canvas_log(final["canvas"], drawers, info)
    check_chat_history(final["chat"], chatters, info)
    snap = final["snapshot"]
    assert snap.get("type") == "snapshot", snap
    vs = [v for _, v in host.versions]
    assert vs == sorted(set(vs)), f"snapshot versions not increasing: {vs}"
    last_k, last_v = host.versions[-1]
    assert snap["data"]["version"] >= last_v and \
        snap["data"]["state"]["k"] >= last_k, (snap, host.versions[-3:])
    if last_k == host.k:
        assert snap["data"] == {"version": last_v, "state": {"k": last_k}}, \
            (snap, host.versions[-3:])
    assert final["lobby join"] is not None, "the lobby room is gone"
    assert final["classroom"][0] == {p.id for p in pupils}, \
        (f"classroom members {final['classroom'][1]}, connected "
         f"{[(p.name, p.ids) for p in pupils]}\n{info}")
    for key in ("canvas batches", "echo round trips", "chat messages",
                "lobby snapshots", "lobby answers", "classroom sent",
                "screenshare round trips"):
        assert ch.count.get(key, 0) > 0, f"no {key}: {info}"
    # the master is alive, counted every kill, and its arena checks passed
    assert d.proc.poll() is None, f"the master exited: {d.proc.returncode}"
    st = status(d)
    assert sum(w["restarts"] for w in st["workers"]) == len(ch.kills), \
        f"roomctl counts restarts {st['workers']} for {len(ch.kills)} kills"
    assert all(w["pid"] > 0 for w in st["workers"]), st
    check_log(d, [k[2] for k in ch.kills])


# ---------------------------------------------------------------- 3. reattach

def test_whole_daemon_killed_then_reattached_keeps_rooms_and_logs(daemons):
    """Master and workers SIGKILLed at once on a named arena; a new roomd
    on the same arena has the canvas room and its log, the chat channel
    and its history, and the lobby room with its latest snapshot."""
    name = f"/roomd-chaos-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    conf = MOUNTS + f"arena_path {name}\narena_size 64M\nroom_ttl 60\n"
    tag = uuid.uuid4().hex[:8]
    rid, channel = f"re-{tag}", f"#re-{tag}"
    try:
        d1 = daemons(conf, 2)
        toks = {"h": create_room(d1, host="h", room_id=rid)["token"]}
        toks["g"] = join_room(d1, rid, "g")["token"]
        drawer = Drawer(d1, rid, "h", toks["h"])
        user = ChatUser(Chaos(d1), f"w-{tag}", channel)
        host = LobbyClient(user.ch, "host")
        rng = random.Random(5)

        async def before():
            try:
                await drawer.open()
                for _ in range(10):
                    assert await drawer.batch(rng)
                cr = await ws_open(f"{d1.ws_base}/chat?name=cr-{tag}")
                await cr.send(json.dumps({"type": "command",
                                          "action": "create",
                                          "target": channel}))
                assert (await recv_json(cr, 5)).get("event") == "create"
                await close_ws(cr)
                assert await user.enter() is not None
                for _ in range(10):
                    await user.say()
                assert await host.join(None, True) is not None
                for k in (1, 2, 3):
                    await host.ws.send(json.dumps({"type": "saveSnapshot",
                                                   "data": {"k": k}}))
                    m = await recv_json(host.ws, 5)
                    assert m == {"type": "snapshotSaved",
                                 "data": {"version": k}}, m
                workers = list(slot_pids(d1).values())
                os.killpg(d1.master_pid, signal.SIGKILL)
                await asyncio.to_thread(d1.proc.wait, 10)
                assert poll(lambda: all(_pid_gone(p) for p in workers), 5), \
                    f"workers {workers} outlived the SIGKILL of the group"
            finally:
                for ws in (drawer.ws, user.ws, host.ws):
                    if ws is not None:
                        ws.transport.abort()
        run(before())
        assert user.ch.violations == [], user.ch.violations
        d1.stop()

        d2 = daemons(conf, 2)
        assert "reattached to arena" in log_text(d2), d2.log_tail()
        drawer.d = d2
        user.ch.d = d2
        host.ch = user.ch

        async def after():
            log = await whole_log(d2, rid, toks["g"])
            check_canvas_log(log, [drawer])
            assert len(log) == len(drawer.acked) == len(drawer.sent), log
            hist = await chat_history(d2, channel)
            check_chat_history(hist, [user])
            assert len(hist) == 10, hist
            assert await host.join(host.code, True) is not None, \
                f"the lobby host cannot come back: {user.ch.violations}"
            try:
                await host.ws.send(json.dumps({"type": "getSnapshot"}))
                m = await recv_json(host.ws, 5)
            finally:
                await close_ws(host.ws)
            assert m == {"type": "snapshot",
                         "data": {"version": 3, "state": {"k": 3}}}, m
        run(after())
        assert user.ch.violations == [], user.ch.violations
        check_log(d2, [])
    finally:
        try:
            os.unlink("/dev/shm" + name)
        except FileNotFoundError:
            pass

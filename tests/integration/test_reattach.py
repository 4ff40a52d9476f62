"""Reattaching a file-backed arena after the whole daemon was killed, the
arena's epoch, `roomctl check`, and two startup bugs.

- The master and its workers SIGKILLed at once, roomd started again on the
  same arena_path: rooms, canvas logs and the epoch are back, and the arena
  passes `roomctl check`.
- The arena file damaged between the kill and the restart: roomd says the
  arena is not trusted, moves the file aside, starts with no rooms and the
  epoch plus one, which canvas (GET /canvas/rooms/ID), the lobby
  (getRoomState) and `roomctl status` show.
- `roomctl check` on a busy daemon exits 0, and 1 when a record is bad.
- A second roomd on a running one's address exits 1 instead of sharing the
  port; a second one on its arena waits for it and then exits 1.
- SIGHUP sent again and again while the master starts does not kill it.
"""
import asyncio
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import websockets

from conftest import (_pid_gone, close_all, collect_actions, connect,
                      create_room, free_port, http_req, join_room, own_daemons,
                      poll, roomctl_path, roomd_bin, run, strip_pointers,
                      ws_open, recv_json, T)


@pytest.fixture
def arena_dir():
    """A directory for the arena file and whatever is moved aside."""
    if os.environ.get("ROOMD_URL"):
        pytest.skip("needs daemons of the test's own")
    if not os.path.exists(roomctl_path()):
        pytest.fail(f"no roomctl binary at {roomctl_path()}")
    with tempfile.TemporaryDirectory(prefix="roomd-reattach-") as tmp:
        yield tmp


@pytest.fixture
def daemons():
    """start(conf) -> a daemon stopped at teardown, whatever happened."""
    yield from own_daemons()


def ctl(d, *args, timeout=20):
    return subprocess.run([roomctl_path(), "-s", d.control_socket, *args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def ctl_json(d, *args):
    p = ctl(d, "-j", *args)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return json.loads(p.stdout)


def log_lines(d, pattern):
    rx = re.compile(pattern)
    with open(d.log_path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return [ln for ln in text.splitlines() if rx.search(ln)]


def kill_whole(d):
    """SIGKILL the master and every worker at once; wait until all are gone."""
    workers = [w["pid"] for w in ctl_json(d, "status")["workers"]]
    assert workers, "no workers"
    os.killpg(d.master_pid, signal.SIGKILL)
    d.proc.wait(10)
    assert poll(lambda: all(_pid_gone(p) for p in workers), 10), \
        f"workers {workers} outlived the SIGKILL of their group"


def canvas_epoch(d, rid):
    r = http_req(d, "GET", f"/canvas/rooms/{rid}")
    assert r.status == 200, (r.status, r.body)
    assert r.json["roomId"] == rid, r.json
    e = r.json.get("epoch")
    assert isinstance(e, int) and 0 < e < 2 ** 53, r.json
    return e


def conf_for(arena_dir):
    path = os.path.join(arena_dir, "arena")
    return path, f"arena_path {path}\narena_size 16M\nroom_ttl 60\n"


ACTIONS = [[{"moveto": [i, i]}, {"lineto": [i + 5, i * 2]}] for i in range(8)]
FLAT = [a for batch in ACTIONS for a in batch]


async def draw(d, rid, token):
    """Connect as a member, send ACTIONS, wait for their echoes; the
    WebSocket stays open (closing the last one would end the room)."""
    ws, first, _ = await connect(d, rid, token)
    assert first == [], first
    for batch in ACTIONS:
        await ws.send(json.dumps(batch))
    got = await collect_actions(ws, len(FLAT), quiet=0.1)
    assert strip_pointers(got) == FLAT, got
    return ws


async def lobby_state(d):
    """A lobby room made over its future usage; -> its roomState data."""
    ws = await ws_open(f"{d.ws_base}/lobby")
    try:
        ident = await recv_json(ws)
        assert ident.get("type") == "identity", ident
        await ws.send(json.dumps({"type": "createRoom"}))
        m = await recv_json(ws)
        assert m.get("type") == "roomCreated", m
        code = m["data"]["roomCode"]
        m = await recv_json(ws)
        assert m == {"type": "createdRoom", "data": {"roomCode": code}}, m
        await ws.send(json.dumps({"type": "getRoomState"}))
        m = await recv_json(ws)
        assert m.get("type") == "roomState", m
        assert m["data"]["roomCode"] == code, m
        assert m["data"]["clientIsHost"] is True, m
        return m["data"]
    finally:
        await close_all([ws])


# ---------------------------------------------------------------- (a)

def test_whole_daemon_sigkill_keeps_rooms_logs_and_epoch(arena_dir, daemons):
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    rid = f"kept-{uuid.uuid4().hex[:10]}"
    host = create_room(d1, host="ann", room_id=rid)
    guest = join_room(d1, rid, "bob")
    epoch = canvas_epoch(d1, rid)
    assert host["epoch"] == epoch and guest["epoch"] == epoch, (host, guest)
    assert ctl_json(d1, "status")["epoch"] == epoch

    async def before():
        ws = await draw(d1, rid, host["token"])
        try:
            await asyncio.to_thread(kill_whole, d1)
        finally:
            ws.transport.abort()
    run(before())
    assert os.path.exists(path)

    d2 = daemons(conf)
    assert log_lines(d2, r"reattached to arena .*: 1 rooms kept"), \
        d2.log_tail()
    assert not log_lines(d2, r"not trusted"), d2.log_tail()
    assert canvas_epoch(d2, rid) == epoch
    assert ctl_json(d2, "status")["epoch"] == epoch
    assert not glob.glob(path + ".untrusted*")

    async def after():
        # The guest comes back with its token: the whole log, in order.
        ws, first, _ = await connect(d2, rid, guest["token"])
        try:
            assert isinstance(first, list), first
            got = first + (await collect_actions(ws, len(FLAT) - len(first),
                                                 quiet=0.2)
                           if len(first) < len(FLAT) else [])
            assert strip_pointers(got) == FLAT, got
            assert [a["pointer"] for a in got] == \
                list(range(1, len(FLAT) + 1)), got
        finally:
            await close_all([ws])
    run(after())

    p = ctl(d2, "check")
    assert p.returncode == 0, (p.stdout, p.stderr, d2.log_tail())
    assert re.match(r"arena OK: \d+ rooms, ", p.stdout), p.stdout
    assert f"epoch {epoch}" in p.stdout, p.stdout


# ---------------------------------------------------------------- (b)

def corrupt_room(path, rid):
    """Write garbage over the index chain link (hnext) of the room whose id
    is rid.  In struct shm_room (shm/shm.h) the id follows rid, next_free,
    hnext and dialect, eight bytes each, so hnext is 16 bytes before it."""
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(rid.encode() + b"\0")
        assert at > 0 and data.find(rid.encode() + b"\0", at + 1) == -1, \
            "the room id is not in the arena file exactly once"
        f.seek(at - 16)
        f.write(b"\x41" * 8)


def test_damaged_arena_is_moved_aside_with_next_epoch(arena_dir, daemons):
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    rid = f"doomed-{uuid.uuid4().hex[:10]}"
    host = create_room(d1, host="ann", room_id=rid)
    epoch = canvas_epoch(d1, rid)
    old_lobby = run(lobby_state(d1))
    assert old_lobby["epoch"] == epoch, old_lobby

    async def before():
        ws = await draw(d1, rid, host["token"])
        try:
            await asyncio.to_thread(kill_whole, d1)
        finally:
            ws.transport.abort()
    run(before())
    corrupt_room(path, rid)

    d2 = daemons(conf)
    assert log_lines(d2, rf"arena {re.escape(path)} is not trusted: "
                     r"room index: bad room"), d2.log_tail()
    moved = log_lines(d2, r"moved aside to ")
    assert moved, d2.log_tail()
    aside = glob.glob(path + ".untrusted.*")
    assert len(aside) == 1 and aside[0] in moved[0], (aside, moved)
    # The damaged file is kept as it was, for whoever wants to look.
    with open(aside[0], "rb") as f:
        assert b"\x41" * 8 + b"" in f.read()
    os.unlink(aside[0])

    r = http_req(d2, "GET", f"/canvas/rooms/{rid}")
    assert r.status == 404, (r.status, r.body)
    assert http_req(d2, "GET", "/canvas/rooms").json == []
    assert ctl_json(d2, "status")["rooms"] == 0
    assert ctl_json(d2, "status")["epoch"] == epoch + 1

    # The same id made again is another room, and says so by its epoch.
    again = create_room(d2, host="ann", room_id=rid)
    assert again["epoch"] == epoch + 1, again
    assert canvas_epoch(d2, rid) == epoch + 1
    assert run(lobby_state(d2))["epoch"] == epoch + 1
    p = ctl(d2, "check")
    assert p.returncode == 0, (p.stdout, p.stderr)

    # The fresh arena is reattached, epoch and all, by the next start.
    kill_whole(d2)
    d3 = daemons(conf)
    assert canvas_epoch(d3, rid) == epoch + 1
    assert not glob.glob(path + ".untrusted*")


# ---------------------------------------------------------------- (c)

def test_check_on_a_busy_daemon(arena_dir, daemons):
    path, conf = conf_for(arena_dir)
    d = daemons(conf)
    stop = threading.Event()
    made = []

    def churn():
        # Rooms come and go over HTTP while the check walks the arena.
        i = 0
        while not stop.is_set() and i < 400:
            rid = f"churn-{uuid.uuid4().hex[:8]}"
            h = create_room(d, host="h", room_id=rid)
            http_req(d, "DELETE", f"/canvas/rooms/{rid}",
                     headers={"Authorization": f"Bearer {h['token']}"})
            i += 1
        made.append(i)

    async def busy():
        rooms = [create_room(d, host="h", room_id=f"busy-{k}-"
                             f"{uuid.uuid4().hex[:6]}") for k in range(3)]
        wss = [(await connect(d, r["roomId"], r["token"]))[0] for r in rooms]
        t = threading.Thread(target=churn)
        t.start()
        results = []
        try:
            for n in range(40):
                for k, ws in enumerate(wss):
                    await ws.send(json.dumps(
                        [{"lineto": [n, k]}] * 20))
                if n % 4 == 0:
                    results.append(await asyncio.to_thread(ctl, d, "check"))
            for ws in wss:
                got = await collect_actions(ws, 40 * 20, quiet=0)
                assert len(got) == 800
        finally:
            stop.set()
            await asyncio.to_thread(t.join, 30)
            await close_all(wss)
        return results
    results = run(busy(), timeout=90)
    assert len(results) == 10 and made and made[0] > 0
    for p in results:
        assert p.returncode == 0, (p.stdout, p.stderr, d.log_tail())
        assert p.stdout.startswith("arena OK: "), p.stdout
    assert d.proc.poll() is None


def test_check_reports_a_fault_and_exits_1(arena_dir, daemons):
    """A member name with no terminating NUL, written into the live arena
    file, is found by roomctl check; put back, the check passes again."""
    path, conf = conf_for(arena_dir)
    d = daemons(conf)
    rid = f"named-{uuid.uuid4().hex[:8]}"
    name = f"zed{uuid.uuid4().hex[:12]}"
    create_room(d, host=name, room_id=rid)
    assert ctl(d, "check").returncode == 0
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(name.encode() + b"\0")
        assert at > 0 and data.find(name.encode() + b"\0", at + 1) == -1
        f.seek(at)
        f.write(b"Z" * 128)             # MEMBER_NAME_MAX + 1 bytes
        f.flush()
        try:
            p = ctl(d, "check")
            pj = ctl(d, "-j", "check")
        finally:
            f.seek(at)
            f.write(name.encode() + b"\0" * (128 - len(name)))
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.startswith("arena fault: ") and \
        "member name not terminated" in p.stdout, p.stdout
    assert pj.returncode == 1 and json.loads(pj.stdout)["ok"] is False
    p = ctl(d, "check")
    assert p.returncode == 0, p.stdout


# ---------------------------------------------------------------- startup

def test_second_roomd_on_the_same_address_exits(daemons):
    d1 = daemons("")
    with tempfile.TemporaryDirectory(prefix="roomd-reattach-") as tmp:
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(f"pidfile {tmp}/pid\ncontrol_socket {tmp}/s.sock\n")
        p = subprocess.run([roomd_bin(), "-f", "-c", conf, "-l",
                            f"127.0.0.1:{d1.port}", "-w", "1"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20, start_new_session=True)
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert f"roomd: 127.0.0.1:{d1.port}: address already in use" in \
            p.stderr, p.stderr
        assert not os.path.exists(f"{tmp}/s.sock")
    # The first one still has every connection.
    pids = {http_req(d1, "GET", "/canvas/rooms").header("X-Roomd-Worker")
            for _ in range(20)}
    assert pids and d1.proc.poll() is None


def test_second_roomd_on_the_same_arena_exits(arena_dir, daemons):
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    rid = f"mine-{uuid.uuid4().hex[:8]}"
    create_room(d1, host="ann", room_id=rid)
    with tempfile.TemporaryDirectory(prefix="roomd-reattach-") as tmp:
        cf = os.path.join(tmp, "roomd.conf")
        with open(cf, "w") as f:
            f.write(f"pidfile {tmp}/pid\ncontrol_socket {tmp}/s.sock\n"
                    + conf)
        t0 = time.monotonic()
        p = subprocess.run([roomd_bin(), "-f", "-c", cf, "-l",
                            f"127.0.0.1:{free_port()}", "-w", "1"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=40, start_new_session=True)
        took = time.monotonic() - t0
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "in use by another roomd" in p.stderr, p.stderr
    assert took >= 5, took              # it waited for the first to go
    assert canvas_epoch(d1, rid) > 0
    assert ctl(d1, "check").returncode == 0


def conf_is_open(pid, conf):
    """True once process pid has the file conf open (it reads it in main,
    after the dynamic loader and before any handler is installed)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == conf:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def test_sighup_during_startup_does_not_kill_the_master():
    """SIGHUP from the moment the master reads its configuration (a long
    one, so that this lasts) until it is up: it must come up and stay."""
    if os.environ.get("ROOMD_URL"):
        pytest.skip("needs a daemon of its own")
    with tempfile.TemporaryDirectory(prefix="roomd-reattach-") as tmp:
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(f"pidfile {tmp}/pid\ncontrol_socket {tmp}/s.sock\n")
            f.write("# a comment line to make the file long\n" * 300000)
        port = free_port()
        log = open(os.path.join(tmp, "log"), "wb")
        proc = subprocess.Popen([roomd_bin(), "-f", "-c", conf, "-l",
                                 f"127.0.0.1:{port}", "-w", "2"],
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)
        sent = during_read = 0
        try:
            deadline = time.monotonic() + 20
            while not conf_is_open(proc.pid, conf) and \
                    not os.path.exists(f"{tmp}/s.sock"):
                assert proc.poll() is None, proc.returncode
                assert time.monotonic() < deadline, "roomd never started"
            while not os.path.exists(f"{tmp}/s.sock"):
                assert proc.poll() is None, \
                    f"roomd died after {sent} SIGHUPs: {proc.returncode}"
                assert time.monotonic() < deadline, "roomd never came up"
                during_read += conf_is_open(proc.pid, conf)
                proc.send_signal(signal.SIGHUP)
                sent += 1
                time.sleep(0.001)
            time.sleep(0.5)
            assert proc.poll() is None, \
                f"roomd died after {sent} SIGHUPs: {proc.returncode}"
            d = type("D", (), {"host": "127.0.0.1", "port": port})
            r = http_req(d, "GET", "/canvas/rooms")
            assert r.status == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            log.close()
    # Some of them came while the configuration was being read.
    assert sent >= 2 and during_read >= 1, (sent, during_read)


# ---------------------------------------------------------- bad input

def test_describing_a_room_that_is_not_there_is_a_canvas_error(roomd_factory):
    d = roomd_factory("mount canvas /canvas\n")
    rid = create_room(d, host="h")["roomId"]
    for bad, status, code in ((f"{rid}x", 404, "no_such_room"),
                              ("nope", 404, "no_such_room"),
                              ("x" * 300, 404, "not_found"),
                              (f"{rid}/more", 404, "not_found")):
        r = http_req(d, "GET", f"/canvas/rooms/{bad}")
        assert r.status == status, (bad, r.status, r.body)
        assert json.loads(r.body)["error"] == code, (bad, r.body)
    # and nothing changed: the room is still described, once
    r = http_req(d, "GET", f"/canvas/rooms/{rid}")
    assert r.status == 200 and json.loads(r.body)["roomId"] == rid


def test_get_room_state_outside_a_room_is_ignored(roomd_factory):
    """Like every message but createRoom and joinRoom before a client is
    in a room (roomd-protocols(7)): no answer, nothing changed."""
    d = roomd_factory("mount lobby /lobby\n")

    async def body():
        async with websockets.connect(
                f"ws://{d.host}:{d.port}/lobby") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), T))
            assert first["type"] == "identity"
            await ws.send(json.dumps({"type": "getRoomState"}))
            await ws.send(json.dumps({"type": "createRoom"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), T))
            assert reply["type"] == "roomCreated", reply
            again = json.loads(await asyncio.wait_for(ws.recv(), T))
            assert again["type"] == "createdRoom", again
            await ws.send(json.dumps({"type": "getRoomState"}))
            state = json.loads(await asyncio.wait_for(ws.recv(), T))
            assert state["type"] == "roomState", state
            assert state["data"]["roomCode"] == reply["data"]["roomCode"]
    asyncio.run(asyncio.wait_for(body(), 30))


# ---------------------------------------------------------------- the epoch everywhere

async def chat_epoch(d):
    """The epoch of a chat join event (a channel made for it)."""
    ch = f"#e{uuid.uuid4().hex[:10]}"
    ws = await ws_open(f"{d.ws_base}/chat?name=e{uuid.uuid4().hex[:8]}")
    try:
        await ws.send(json.dumps({"type": "command", "action": "create",
                                  "target": ch}))
        await ws.send(json.dumps({"type": "command", "action": "join",
                                  "target": ch}))
        while True:
            m = await recv_json(ws)
            if m.get("type") == "event" and m.get("event") == "join":
                return m["epoch"]
    finally:
        await close_all([ws])


async def classroom_epoch(d):
    """The epoch of the room description of a classroom's
    ParticipantEnter."""
    ws = await ws_open(f"{d.ws_base}/classroom?name=ann&room="
                       f"e{uuid.uuid4().hex[:10]}")
    try:
        m = await recv_json(ws)
        assert m.get("type") == "ParticipantEnter", m
        assert list(m["data"]) == ["id", "participants", "epoch"], m
        return m["data"]["epoch"]
    finally:
        await close_all([ws])


async def screenshare_epochs(d):
    """The epochs of ROOM_CREATED and ROOM_JOINED."""
    h = await ws_open(f"{d.ws_base}/ws")
    u = await ws_open(f"{d.ws_base}/ws")
    try:
        await h.send(json.dumps({"type": "CREATE_ROOM", "username": "h"}))
        m = await recv_json(h)
        assert list(m) == ["type", "roomid", "epoch"], m
        await u.send(json.dumps({"type": "JOIN_ROOM", "roomid": m["roomid"],
                                 "username": "u"}))
        j = await recv_json(u)
        assert list(j) == ["type", "roomid", "epoch"], j
        return m["epoch"], j["epoch"]
    finally:
        await close_all([h, u])


def epochs_of_the_other_dialects(d):
    async def all_of_them():
        return (await chat_epoch(d), await classroom_epoch(d),
                *(await screenshare_epochs(d)))
    return run(all_of_them())


def test_chat_classroom_and_screenshare_show_the_epoch(arena_dir, daemons):
    """The epoch that canvas and the lobby show is in the chat's join
    event, the classroom's room description and the screenshare's
    ROOM_CREATED and ROOM_JOINED, and it moves on with a replaced arena."""
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    rid = f"doomed-{uuid.uuid4().hex[:10]}"
    host = create_room(d1, host="ann", room_id=rid)
    epoch = canvas_epoch(d1, rid)
    assert epochs_of_the_other_dialects(d1) == (epoch,) * 4

    async def before():
        ws = await draw(d1, rid, host["token"])
        try:
            await asyncio.to_thread(kill_whole, d1)
        finally:
            ws.transport.abort()
    run(before())
    corrupt_room(path, rid)
    d2 = daemons(conf)
    assert ctl_json(d2, "status")["epoch"] == epoch + 1, d2.log_tail()
    assert epochs_of_the_other_dialects(d2) == (epoch + 1,) * 4


# ---------------------------------------------------------------- a damaged header

def damage_header(path, word, value):
    """Overwrite one 64-bit word of the arena header: 0 magic, 1 layout,
    2 size."""
    with open(path, "r+b") as f:
        f.seek(8 * word)
        f.write(value.to_bytes(8, "little"))


@pytest.mark.parametrize("word,value,says", [
    (0, 0x4141414141414141, "bad magic"),
    (1, 0x7fff, "layout"),
    (2, 1 << 40, "header says"),
], ids=["magic", "layout", "size"])
def test_arena_with_a_bad_header_is_moved_aside_with_next_epoch(
        arena_dir, daemons, word, value, says):
    """A header that is bad is as untrusted as a failed walk: the file is
    moved aside and a fresh arena starts with the next epoch, instead of
    roomd refusing to start."""
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    rid = f"doomed-{uuid.uuid4().hex[:10]}"
    create_room(d1, host="ann", room_id=rid)
    epoch = canvas_epoch(d1, rid)
    d1.stop()
    damage_header(path, word, value)

    d2 = daemons(conf)
    assert log_lines(d2, rf"arena {re.escape(path)} is not trusted: .*"
                     + re.escape(says)), d2.log_tail()
    moved = log_lines(d2, r"moved aside to ")
    aside = glob.glob(path + ".untrusted.*")
    assert len(aside) == 1 and moved and aside[0] in moved[0], \
        (aside, moved, d2.log_tail())
    os.unlink(aside[0])
    assert ctl_json(d2, "status")["epoch"] == epoch + 1
    assert ctl_json(d2, "status")["rooms"] == 0
    r = http_req(d2, "GET", f"/canvas/rooms/{rid}")
    assert r.status == 404, (r.status, r.body)
    assert create_room(d2, host="ann", room_id=rid)["epoch"] == epoch + 1


def test_arena_of_another_size_than_configured_is_still_refused(arena_dir,
                                                                daemons):
    """A file of another size than arena_size is the configuration's to
    settle: roomd says so and exits, and the file is left as it was."""
    path, conf = conf_for(arena_dir)
    d1 = daemons(conf)
    d1.stop()
    size = os.path.getsize(path)
    conf2 = conf.replace("arena_size 16M", "arena_size 32M")
    with tempfile.TemporaryDirectory() as tmp:
        cf = os.path.join(tmp, "roomd.conf")
        with open(cf, "w") as f:
            f.write(conf2 + f"pidfile {tmp}/pid\ncontrol_socket {tmp}/sock\n")
        p = subprocess.run([roomd_bin(), "-f", "-c", cf, "-l",
                            f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "bytes" in p.stderr, p.stderr
    assert os.path.getsize(path) == size
    assert not glob.glob(path + ".untrusted*")

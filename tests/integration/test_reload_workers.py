"""A reload that changes the mounts (or listen addresses, or the number of
workers) starts a new generation of workers in other slots while the old
ones drain: the old connections keep working, and talk to the new ones
through the shared arena, until they end or drain_timeout passes (then
close 1001); no connection is refused meanwhile; the old workers exit.

The tests start roomd with -l and -w on the command line (conftest), so the
reloads here change the mounts, which come from the file."""
import asyncio
import json
import os
import signal
import threading
import time
import urllib.request
import uuid

from conftest import (close_all, collect_actions, connect, create_room,
                      expect_close, http_req, join_room, parse_worker, poll,
                      run)
from test_admin import ctl, wait_log
from test_static import raw_get

RELOADS = 40
MOUNTS = "mount canvas /canvas\nmount chat /chat\n"


def write_conf(d, text):
    with open(d.conf_path, "r") as f:
        head = [ln for ln in f.read().splitlines(True)
                if ln.startswith(("pidfile", "control_socket"))]
    with open(d.conf_path, "w") as f:
        f.write("".join(head) + text)


def status(d):
    r = ctl(d.control_socket, "-j", "status")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def slots_of(d):
    return sorted((w["slot"], w["draining"]) for w in status(d)["workers"])


def test_new_mounts_start_new_workers_and_old_connections_drain(
        roomd_factory):
    d = roomd_factory("drain_timeout 4\n" + MOUNTS, workers=2)
    rid = f"gen-{uuid.uuid4().hex[:10]}"
    tok = {"host": create_room(d, host="A", room_id=rid)["token"]}
    tok["B"] = join_room(d, rid, "B")["token"]
    assert http_req(d, "GET", "/echo").status == 404

    # Requests all through the reload: none may be refused or reset.
    stop, failures, served = threading.Event(), [], [0]

    def hammer():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(d.base + "/canvas/rooms",
                                            timeout=5) as r:
                    assert r.status == 200
                    served[0] += 1
            except Exception as e:      # noqa: BLE001 - any failure counts
                failures.append(repr(e))

    async def body():
        a, first, wa = await connect(d, rid, tok["host"])
        assert first == [] and wa[0] in (0, 1)
        t = threading.Thread(target=hammer)
        t.start()
        try:
            write_conf(d, "drain_timeout 4\n" + MOUNTS +
                       "mount echo /echo\n")
            os.kill(d.master_pid, signal.SIGHUP)
            assert wait_log(d, r"reload: 2 new workers"), d.log_tail()
            # The new generation serves the new mount...
            assert poll(lambda: http_req(d, "GET", "/echo").status == 426,
                        5), d.log_tail()
            # ...and new members, in slots 2 and 3.
            b, fb, wb = await connect(d, rid, tok["B"])
            assert wb[0] in (2, 3), wb
            # The old worker that holds a's connection drains; one
            # without connections is gone at once.
            now = slots_of(d)
            assert [s for s, dr in now if not dr] == [2, 3], now
            assert (wa[0], True) in now and all(dr for s, dr in now
                                                if s < 2), now
            # Old and new generation share the room.
            await a.send(json.dumps([{"lineto": [1, 1], "who": "old"}]))
            await b.send(json.dumps([{"lineto": [2, 2], "who": "new"}]))
            sa = await collect_actions(a, 2)
            sb = await collect_actions(b, 2)
            assert sa == sb and {x["who"] for x in sa} == {"old", "new"}
            # After drain_timeout the old connection is closed with 1001
            # and the old workers are gone.
            rest, code, _ = await expect_close(a, timeout=10)
            assert code == 1001 and rest == [], (rest, code)
            assert wait_log(d, rf"worker {wa[0]} \(pid \d+\) drained",
                            timeout=30), d.log_tail()
            assert slots_of(d) == [(2, False), (3, False)]
            await b.send(json.dumps([{"lineto": [3, 3], "who": "new"}]))
            assert len(await collect_actions(b, 1)) == 1
            await close_all([b])
        finally:
            stop.set()
            t.join(10)
            await close_all([a])

    run(body(), timeout=60)
    assert failures == [], failures[:5]
    assert served[0] > 0
    assert "killed by signal" not in d.log_tail(200)


def test_a_second_generation_reuses_the_free_slots(roomd_factory):
    d = roomd_factory("drain_timeout 1\n" + MOUNTS, workers=2)
    for extra, want in (("mount echo /echo\n", [2, 3]), ("", [0, 1])):
        write_conf(d, "drain_timeout 1\n" + MOUNTS + extra)
        os.kill(d.master_pid, signal.SIGHUP)
        assert poll(lambda: [s for s, _ in slots_of(d)] == want, 30), \
            (slots_of(d), d.log_tail())
        w = parse_worker(urllib.request.urlopen(
            d.base + "/canvas/rooms", timeout=5).headers["X-Roomd-Worker"])
        assert w[0] in want, w
    assert http_req(d, "GET", "/echo").status == 404


def test_a_reload_without_such_changes_keeps_the_workers(roomd_factory):
    d = roomd_factory(MOUNTS, workers=2)
    before = status(d)["workers"]
    write_conf(d, MOUNTS + "max_message_bytes 2M\n")
    os.kill(d.master_pid, signal.SIGHUP)
    assert wait_log(d, r"reload: .* applied"), d.log_tail()
    time.sleep(0.3)
    assert status(d)["workers"] == before


def test_reloads_under_a_stream_of_connections_reset_none(roomd_factory):
    """Each reload hands the listening sockets on the addresses that stay
    to the new generation, so the old workers' closing theirs resets no
    connection that reached it after their last accept.  Four clients
    connect without pause through 40 reloads."""
    d = roomd_factory("drain_timeout 1\n" + MOUNTS, workers=2)
    stop, failures, served = threading.Event(), [], [0]

    def hammer():
        while not stop.is_set():
            try:
                status = raw_get(d, "/canvas/rooms")[0]
                assert status == 200, status
                served[0] += 1
            except Exception as e:      # noqa: BLE001 - any failure counts
                failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(RELOADS):
            extra = "mount echo /echo\n" if k % 2 == 0 else ""
            write_conf(d, "drain_timeout 1\n" + MOUNTS + extra)
            os.kill(d.master_pid, signal.SIGHUP)
            want = [2, 3] if k % 2 == 0 else [0, 1]
            assert poll(lambda: [s for s, _ in slots_of(d)] == want, 30), \
                (slots_of(d), d.log_tail())
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == [], (len(failures), failures[:5])
    assert served[0] > 100, served
    assert "killed by signal" not in d.log_tail(200)

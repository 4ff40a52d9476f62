"""Cluster mode's keepers (src/cluster_keeper.c): a process per shard
holds the host's session and lease there, reads the shard's channel and
reaps dead hosts, so that the master itself never waits for Redis.

- A shard whose Redis hangs (SIGSTOP: connections are accepted, nothing
  is answered) holds up neither the deliveries between hosts on the
  other shard nor the master's answers to roomctl.  Before the keepers,
  the master's blocking calls to the hung shard (a second each) held its
  whole loop: the other shard's channel and the admin socket.
- A keeper killed is forked again; the host keeps its session (no
  client is closed) and what was published meanwhile arrives, once.
- Clients of a hung shard's rooms that keep coming back cost their
  worker one timeout, not one per attempt: the first call that fails
  makes the shard suspect, and until its keeper has an answer again no
  other process calls it.
- The master holds no connection to Redis; each keeper only to its own
  shard.
- The keeper's check of its copies (every 5 s, a round trip per room)
  goes in slices, between which it renews its lease and reads its
  channel.
"""
import asyncio
import json
import os
import signal
import time

from cluster import (LEASE, cluster_hosts,  # noqa: F401
                     redis_factory, redis_url, wait_for)
from conftest import (close_all, close_ws, collect_actions, connect,
                      create_room, join_room, pointers, recv_json, run,
                      ws_open, ws_url)
from redisd import tcp_proxy  # noqa: F401
from test_cluster_shards import acts, ids_on, sharded


def keeper_pids(h):
    return [s["keeper"] for s in h.ctl_json("status")["cluster"]["shards"]]


def redis_peers(pid, ports):
    """The Redis ports (of ports) that process pid has a TCP connection
    to, from its fds and /proc/net/tcp."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    found = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            port = int(p[2].split(":")[1], 16)
            if p[9] in inodes and port in ports and p[3] == "01":
                found.add(port)
    return found


def test_the_master_holds_no_link_to_redis_and_each_keeper_its_own_shard(
        cluster_hosts, redis_factory):
    c, reds = sharded(cluster_hosts, redis_factory, n=1)
    h = c[0]
    ports = {r.port for r in reds}
    # A room of each shard in use, so that the workers have links too.
    for shard in (0, 1):
        rid = ids_on("canvas", shard, 2, 1)[0]
        create_room(h, host="alice", room_id=rid)
    pids = keeper_pids(h)
    assert len(pids) == 2 and all(p > 0 for p in pids), pids
    # Each keeper holds its links (the first ones, the master's) once it runs.
    for i in (0, 1):
        wait_for(lambda: redis_peers(pids[i], ports) == {reds[i].port}, 5,
                 f"the keeper of shard {i} on its Redis alone: "
                 f"{redis_peers(pids[i], ports)}")
    assert redis_peers(h.d.master_pid, ports) == set()


def test_a_hanging_shard_holds_up_neither_the_other_nor_the_master(
        cluster_hosts, redis_factory):
    c, reds = sharded(cluster_hosts, redis_factory)
    rid = ids_on("canvas", 1, 2, 1)[0]
    toks = (create_room(c[0], host="alice", room_id=rid)["token"],
            join_room(c[1], rid, "bob")["token"])
    lat, ctl, suspect = [], [], []

    async def body():
        ws = [(await connect(h, rid, t))[0] for h, t in zip(c, toks)]
        try:
            await ws[0].send(json.dumps(acts("warm", 1)))
            got = await collect_actions(ws[1], 1)
            os.kill(reds[0].pid, signal.SIGSTOP)
            try:
                end = time.monotonic() + LEASE + 1
                i = 0
                while time.monotonic() < end:
                    t0 = time.monotonic()
                    await ws[0].send(json.dumps(acts(f"hang-{i}", 1)))
                    got += await collect_actions(ws[1], 1, quiet=0)
                    lat.append(time.monotonic() - t0)
                    if i % 5 == 0:
                        t0 = time.monotonic()
                        st = await asyncio.to_thread(c[1].ctl_json,
                                                     "status")
                        ctl.append(time.monotonic() - t0)
                        suspect.append(
                            st["cluster"]["shards"][0]["suspect"])
                    i += 1
                    await asyncio.sleep(0.05)
            finally:
                os.kill(reds[0].pid, signal.SIGCONT)
            return got
        finally:
            await close_all(ws)
    got = run(body(), 60)
    assert pointers(got) == list(range(1, len(got) + 1))
    assert len(lat) >= 20, lat
    # A blocking call to the hung shard waits a second; nothing here
    # waits for one.
    assert max(lat) < 0.5, sorted(lat)[-5:]
    assert max(ctl) < 0.5, ctl
    # The hung shard was shown suspect, and is not once it answers.
    assert suspect[-1] is True, suspect
    wait_for(lambda: not c[1].ctl_json("status")["cluster"]["shards"][0][
        "suspect"], 10, "shard 0 no longer suspect")


def test_a_keeper_killed_is_forked_again_and_the_host_keeps_its_session(
        cluster_hosts, redis_factory):
    c = cluster_hosts(2)
    rid = "keeper-killed"
    toks = (create_room(c[0], host="alice", room_id=rid)["token"],
            join_room(c[1], rid, "bob")["token"])
    session = c[1].ctl_json("status")["cluster"]["session"]
    old = keeper_pids(c[1])[0]

    async def body():
        ws = [(await connect(h, rid, t))[0] for h, t in zip(c, toks)]
        try:
            await ws[0].send(json.dumps(acts("before", 2)))
            got = await collect_actions(ws[1], 2)
            os.kill(old, signal.SIGKILL)
            # Published while h2 has no keeper: caught up by the new one.
            await ws[0].send(json.dumps(acts("between", 3)))
            await asyncio.to_thread(
                wait_for, lambda: keeper_pids(c[1])[0] not in (old, 0), 10,
                "a new keeper")
            await ws[0].send(json.dumps(acts("after", 2)))
            got += await collect_actions(ws[1], 5, timeout=10)
            return got
        finally:
            await close_all(ws)
    got = run(body(), 60)
    assert pointers(got) == [1, 2, 3, 4, 5, 6, 7], pointers(got)
    assert [a["by"] for a in got] == ["before"] * 2 + ["between"] * 3 + \
        ["after"] * 2
    st = c[1].ctl_json("status")["cluster"]
    assert st["session"] == session and st["up"], st
    assert f"keeper of cluster shard 0 (pid {old}) killed by signal 9" \
        in c[1].log()


def test_a_hanging_shard_costs_a_worker_one_timeout_not_one_per_call(
        cluster_hosts, redis_factory):
    """One worker per host serves a room of each shard.  While shard 0
    hangs, a client of its room comes back every 50 ms (as clients closed
    1012 do); the other room's deliveries wait for none of its attempts
    once the first has timed out.  Before, each attempt past the
    reconnection interval waited a whole timeout (a second) in the
    worker, and the other room with it."""
    c, reds = sharded(cluster_hosts, redis_factory, workers=1, lease=10)
    ra = ids_on("canvas", 0, 2, 1)[0]
    rb = ids_on("canvas", 1, 2, 1)[0]
    tok_a = create_room(c[0], host="ann", room_id=ra)["token"]
    toks = (create_room(c[0], host="bob", room_id=rb)["token"],
            join_room(c[1], rb, "carol")["token"])
    lat = []

    async def knock(stop):
        """ann comes back to ra on h1 until stop is set: -> attempts."""
        n = 0
        while not stop.is_set():
            n += 1
            try:
                w = await ws_open(ws_url(c[0], ra, tok_a))
                try:
                    await recv_json(w, 2)
                finally:
                    await close_ws(w)
            except Exception:       # noqa: B902 (refused: what we expect)
                pass
            await asyncio.sleep(0.05)
        return n

    async def body():
        ws = [(await connect(h, rb, t))[0] for h, t in zip(c, toks)]
        stop = asyncio.Event()
        try:
            await ws[0].send(json.dumps(acts("warm", 1)))
            got = await collect_actions(ws[1], 1, quiet=0)
            os.kill(reds[0].pid, signal.SIGSTOP)
            t_stop = time.monotonic()
            knocker = asyncio.create_task(knock(stop))
            try:
                # Past the first timeout, up to half the lease (when h1
                # cuts the shard off and refuses without calling it).
                i = 0
                while time.monotonic() < t_stop + 4.5:
                    t0 = time.monotonic()
                    await ws[0].send(json.dumps(acts(f"b-{i}", 1)))
                    got += await collect_actions(ws[1], 1, quiet=0)
                    if t0 > t_stop + 1.5:
                        lat.append(time.monotonic() - t0)
                    i += 1
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                os.kill(reds[0].pid, signal.SIGCONT)
                tries = await knocker
            return got, tries
        finally:
            stop.set()
            await close_all(ws)
    got, tries = run(body(), 60)
    assert pointers(got) == list(range(1, len(got) + 1))
    assert lat and max(lat) < 0.5, sorted(lat)[-5:]
    assert len(lat) >= 10, lat
    assert tries >= 10, tries


def test_a_check_of_many_copies_lets_the_keeper_renew_between_rooms(
        cluster_hosts, redis_factory, tcp_proxy):
    """Every 5 s (and after a resubscribe) the keeper catches each copy of
    its shard's rooms up with the log, a round trip per room.  With 300
    copies and Redis about 10 ms away (a proxy that holds each chunk
    5 ms), a pass takes some 3 s: it must go in slices between which the
    keeper renews its lease (2 s here; cut off after 1 s without a
    renewal), or the host cuts itself off, closes its clients with 1012
    and starts a new session at every pass.  Before, the pass went whole:
    the bench of roomd -R (10,000 rooms made through one host with a
    2 s lease) got 503 from the host once it had some 5,000 copies."""
    r = redis_factory()
    p = tcp_proxy(r.port)
    c = cluster_hosts(1, redis=redis_url(p.port), lease=2, room_ttl=120,
                      workers=1)
    for i in range(300):
        create_room(c[0], host="al", room_id=f"copy-{i}")
    tok = create_room(c[0], host="al", room_id="watched")["token"]
    session = c[0].ctl_json("status")["cluster"]["session"]
    assert session.startswith("h1/"), session

    async def body():
        ws, first, _ = await connect(c[0], "watched", tok)
        assert first == []
        p.delay = 0.005
        try:
            # Long enough for two passes (one every 5 s).
            end = time.monotonic() + 12
            n = 0
            while time.monotonic() < end:
                n += 1
                await ws.send(json.dumps(acts(f"t{n}", 1)))
                got = await collect_actions(ws, 1, timeout=5, quiet=0)
                assert [a["by"] for a in got] == [f"t{n}"], got
                await asyncio.sleep(0.2)
        finally:
            p.delay = 0.0
        await close_ws(ws)
        return n
    n = run(body(), 60)
    assert n >= 20, n
    now = c[0].ctl_json("status")["cluster"]["session"]
    assert now == session, \
        f"the host was cut off: session {session}, then {now}"


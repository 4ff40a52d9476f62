"""Cluster mode, canvas dialect (issue 15, 1 and 2): three roomd hosts on
one Redis serve every room from any host.  REST create, list, join and
delete work from any host; the pointer is dense and the same on every
host; a host that never saw a room serves its catch-up; a host killed
whole loses its members once, the room goes on, and its members
reconnect to another host with their pointer, missing nothing and getting
nothing twice.

Each test has hosts of its own (cluster.py) with a short lease (LEASE).
Ground truth is read from Redis with the keys of doc/cluster.txt.
"""
import asyncio
import json
import time
import uuid

from cluster import (LEASE, cluster_hosts,  # noqa: F401
                     host_sessions, redis_factory, wait_for)
from conftest import (assert_error, close_all, close_ws, collect_actions,
                      connect, create_room, expect_close, http_req,
                      join_room, list_rooms, pointers, run, strip_pointers,
                      ws_open, ws_url)


def uid(prefix="cc"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def listed(h, rid):
    return any(x.get("roomId") == rid for x in list_rooms(h))


def dense_from(ps, first):
    """ps is first, first + 1, first + 2...: the pointer is dense."""
    assert ps == list(range(first, first + len(ps))), \
        f"pointers not dense from {first}: {ps}"


def acts(tag, n):
    return [{"moveto": [i, i], "by": tag} for i in range(n)]


# ---------------------------------------------------------------- REST

def test_a_room_created_on_one_host_is_listed_and_joined_on_every_host(
        cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()
    made = create_room(c[0], host="alice", room_id=rid, password="pw")
    assert made["roomId"] == rid
    for h in c:
        assert wait_for(lambda: listed(h, rid), 5, f"{rid} listed on {h}")
    g1 = join_room(c[1], rid, "bob", password="pw")
    g2 = join_room(c[2], rid, "carol", password="pw")
    assert g1["token"] != g2["token"] != made["token"]
    # The same description, epoch included, whichever host answers.
    descs = [http_req(h, "GET", f"/canvas/rooms/{rid}").json for h in c]
    for d in descs:
        assert d["host"] == "alice" and d["locked"] is True, d
        assert [g["name"] for g in d["guests"]] == ["bob", "carol"], d
    assert descs[0] == descs[1] == descs[2], descs
    assert descs[0]["epoch"] == made["epoch"] == g1["epoch"], \
        (made, g1, descs[0])
    # Refusals are the same from any host.
    assert_error(http_req(c[0], "POST", f"/canvas/rooms/{rid}/join",
                          {"name": "bob", "password": "pw"}), 409,
                 "name_taken")
    assert_error(http_req(c[2], "POST", f"/canvas/rooms/{rid}/join",
                          {"name": "dave", "password": "no"}), 403,
                 "wrong_password")
    assert_error(http_req(c[1], "POST", "/canvas/rooms",
                          {"host": "x", "roomId": rid}), 409, "room_exists")


def test_two_hosts_creating_the_same_room_at_once_make_one(cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()

    async def body():
        return await asyncio.gather(*(asyncio.to_thread(
            http_req, h, "POST", "/canvas/rooms",
            {"host": h.name, "roomId": rid}) for h in c))
    res = run(body())
    ok = [r for r in res if r.status == 201]
    assert len(ok) == 1, f"{len(ok)} creates of one room succeeded: {res}"
    for r in res:
        if r.status != 201:
            assert_error(r, 409, "room_exists")


def test_delete_from_another_host_closes_members_on_every_host(
        cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()
    t0 = create_room(c[0], host="alice", room_id=rid)["token"]
    t1 = join_room(c[1], rid, "bob")["token"]
    t2 = join_room(c[2], rid, "carol")["token"]

    async def body():
        wss = [(await connect(h, rid, t))[0]
               for h, t in zip(c, (t0, t1, t2))]
        try:
            r = await asyncio.to_thread(
                http_req, c[1], "DELETE", f"/canvas/rooms/{rid}",
                headers={"Authorization": f"Bearer {t1}"})
            assert_error(r, 403, "forbidden")
            r = await asyncio.to_thread(
                http_req, c[2], "DELETE", f"/canvas/rooms/{rid}",
                headers={"Authorization": f"Bearer {t0}"})
            assert r.status == 204, r
            res = await asyncio.gather(*(expect_close(w) for w in wss))
            return [(code, reason) for _, code, reason in res]
        finally:
            await close_all(wss)
    closes = run(body())
    assert closes == [(1000, "room deleted")] * 3, closes
    for h in c:
        assert wait_for(lambda: not listed(h, rid), 5,
                        f"{rid} gone from {h}'s list")
        assert_error(http_req(h, "GET", f"/canvas/rooms/{rid}"), 404,
                     "no_such_room")


# ---------------------------------------------------------------- actions

def test_actions_from_two_hosts_reach_the_third_with_the_same_dense_pointers(
        cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()
    toks = [create_room(c[0], host="alice", room_id=rid)["token"],
            join_room(c[1], rid, "bob")["token"],
            join_room(c[2], rid, "carol")["token"]]
    n = 40

    async def body():
        wss = [(await connect(h, rid, t))[0] for h, t in zip(c, toks)]
        try:
            async def send(ws, tag):
                for i in range(0, n, 4):
                    await ws.send(json.dumps(acts(tag, n)[i:i + 4]))
                    await asyncio.sleep(0.005)
            await asyncio.gather(send(wss[0], "h1"), send(wss[1], "h2"))
            return await asyncio.gather(*(collect_actions(w, 2 * n)
                                          for w in wss))
        finally:
            await close_all(wss)
    seen = run(body())
    dense_from(pointers(seen[2]), 1)
    assert seen[0] == seen[1] == seen[2], \
        "the hosts' members saw different logs"
    # Each sender's batches kept their order and stayed whole.
    for tag in ("h1", "h2"):
        mine = [a for a in strip_pointers(seen[2]) if a["by"] == tag]
        assert mine == acts(tag, n), f"{tag}'s actions out of order"
    # No action of another message came between those of one message.
    at = {(a["by"], a["moveto"][0]): i for i, a in enumerate(seen[2])}
    for tag in ("h1", "h2"):
        for b in range(0, n, 4):
            idx = [at[(tag, k)] for k in range(b, b + 4)]
            assert idx == list(range(idx[0], idx[0] + 4)), \
                f"{tag}'s batch {b // 4} was split: positions {idx}"


def test_a_host_that_never_saw_the_room_serves_the_whole_catch_up(
        cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()
    t0 = create_room(c[0], host="alice", room_id=rid)["token"]
    n = 300

    async def body():
        ws, first, _ = await connect(c[0], rid, t0)
        try:
            assert first == []
            for i in range(0, n, 10):
                await ws.send(json.dumps(acts("a", n)[i:i + 10]))
            got = await collect_actions(ws, n, timeout=20)
            dense_from(pointers(got), 1)
            # h3 has never had a member of the room.
            t2 = (await asyncio.to_thread(join_room, c[2], rid, "late"))[
                "token"]
            w2, whole, _ = await connect(c[2], rid, t2)
            w3, tail, _ = await connect(c[1], rid, t2, pointer=250)
            w4, none, _ = await connect(c[2], rid, t2, pointer=n)
            await close_all([w2, w3, w4])
            return got, whole, tail, none
        finally:
            await close_ws(ws)
    got, whole, tail, none = run(body(), 60)
    assert whole == got, "catch-up on a fresh host differs from the log"
    assert tail == got[250:], "catch-up from pointer 250 on another host"
    assert none == []


def test_a_pointer_beyond_the_end_is_refused_on_another_host(cluster_hosts):
    c = cluster_hosts(2)
    rid = uid()
    t0 = create_room(c[0], host="alice", room_id=rid)["token"]
    t1 = join_room(c[1], rid, "bob")["token"]

    async def body():
        ws, _, _ = await connect(c[0], rid, t0)
        try:
            await ws.send(json.dumps(acts("a", 5)))
            await collect_actions(ws, 5, quiet=0)
            w = await ws_open(ws_url(c[1], rid, t1, 9))
            msgs, code, _ = await expect_close(w)
            return msgs, code
        finally:
            await close_ws(ws)
    msgs, code = run(body())
    assert msgs and json.loads(msgs[0]).get("error") == "bad_pointer", msgs
    assert code == 1008


def test_reconnect_to_another_host_with_the_pointer_misses_nothing(
        cluster_hosts):
    """A member goes from host to host, each time with its last pointer,
    while another member appends all along."""
    c = cluster_hosts(3)
    rid = uid()
    t0 = create_room(c[0], host="alice", room_id=rid)["token"]
    t1 = join_room(c[1], rid, "bob")["token"]

    async def body():
        w0, _, _ = await connect(c[0], rid, t0)
        stop = asyncio.Event()
        sent = 0

        async def writer():
            nonlocal sent
            while not stop.is_set():
                await w0.send(json.dumps({"lineto": [sent, 0]}))
                sent += 1
                await asyncio.sleep(0.01)
        wt = asyncio.create_task(writer())
        seen, ptr = [], 0
        try:
            for hop in range(6):
                ws, first, _ = await connect(c[hop % 3], rid, t1,
                                             pointer=ptr)
                seen += first
                more = await collect_actions(ws, 5, quiet=0)
                seen += more
                await close_ws(ws)
                ptr = seen[-1]["pointer"]
            stop.set()
            await wt
            total = await collect_actions(w0, sent, timeout=10, quiet=0.3)
            ws, first, _ = await connect(c[2], rid, t1, pointer=ptr)
            await close_ws(ws)
            return seen + first, total
        finally:
            stop.set()
            await close_ws(w0)
    seen, total = run(body(), 60)
    dense_from(pointers(seen), 1)
    assert seen == total, "the hopping member's log differs from the writer's"


# ---------------------------------------------------------------- host death

def test_a_host_killed_whole_its_members_leave_once_and_resume_elsewhere(
        cluster_hosts):
    c = cluster_hosts(3)
    rid = uid()
    names = ["alice", "bob", "carol", "dave"]
    toks = {"alice": create_room(c[0], host="alice", room_id=rid)["token"]}
    for nm, h in zip(names[1:], (c[1], c[2], c[2])):
        toks[nm] = join_room(h, rid, nm)["token"]
    where = {"alice": 0, "bob": 1, "carol": 2, "dave": 2}
    r = c.redis.client()

    async def body():
        wss = {nm: (await connect(c[where[nm]], rid, toks[nm]))[0]
               for nm in names}
        try:
            await wss["alice"].send(json.dumps(acts("before", 10)))
            logs = {nm: await collect_actions(w, 10, quiet=0)
                    for nm, w in wss.items()}
            h3_sessions = host_sessions(r, "h3")
            assert h3_sessions, "h3 holds no lease in Redis"
            killed_at = time.monotonic()
            c[2].kill()
            # The room goes on: the surviving members append and read.
            await wss["bob"].send(json.dumps(acts("after", 10)))
            for nm in ("alice", "bob"):
                logs[nm] += await collect_actions(wss[nm], 10, quiet=0)

            # Within the lease (and a reaper's round), h3's session is
            # reaped and forgotten.
            await asyncio.to_thread(
                wait_for, lambda: not host_sessions(r, "h3") & h3_sessions,
                LEASE + 3, "h3's session reaped")
            took = time.monotonic() - killed_at
            # carol and dave come back on h1 and h2 with their pointers.
            back = {}
            for nm, h in (("carol", c[0]), ("dave", c[1])):
                ptr = logs[nm][-1]["pointer"]
                ws, first, _ = await connect(h, rid, toks[nm], pointer=ptr)
                wss[nm + "2"] = ws
                back[nm] = logs[nm] + first
            await wss["carol2"].send(json.dumps(acts("back", 3)))
            for nm in ("alice", "bob"):
                logs[nm] += await collect_actions(wss[nm], 3, quiet=0)
            for nm in ("carol", "dave"):
                back[nm] += await collect_actions(wss[nm + "2"], 3)
            # The room still stands; the members lost with h3 are still
            # members (their tokens worked on h1 and h2 above).
            assert await asyncio.to_thread(listed, c[0], rid)
            desc = (await asyncio.to_thread(
                http_req, c[1], "GET", f"/canvas/rooms/{rid}")).json
            assert [g["name"] for g in desc["guests"]] == \
                ["bob", "carol", "dave"], desc
            return logs, back, took, h3_sessions
        finally:
            await close_all(list(wss.values()))
    logs, back, took, h3_sessions = run(body(), 60)
    assert took <= LEASE + 3
    dense_from(pointers(logs["alice"]), 1)
    assert logs["alice"] == logs["bob"] == back["carol"] == back["dave"], \
        "a member resumed on another host with a gap or a duplicate"


def test_a_host_killed_and_restarted_serves_its_rooms_again(cluster_hosts):
    """The restarted host (same port, same arena file, a new session)
    serves a room it had members in, with everything appended while it was
    dead."""
    c = cluster_hosts(2)
    rid = uid()
    t0 = create_room(c[0], host="alice", room_id=rid)["token"]
    t1 = join_room(c[1], rid, "bob")["token"]

    async def body():
        w0, _, _ = await connect(c[0], rid, t0)
        w1, _, _ = await connect(c[1], rid, t1)
        try:
            await w0.send(json.dumps(acts("a", 5)))
            seen1 = await collect_actions(w1, 5, quiet=0)
            await asyncio.to_thread(c[1].kill)
            await w0.send(json.dumps(acts("b", 5)))
            await collect_actions(w0, 10, quiet=0)
            await asyncio.to_thread(c[1].start)
            w2, first, _ = await connect(c[1], rid, t1,
                                         pointer=seen1[-1]["pointer"])
            await close_ws(w2)
            w3, whole, _ = await connect(c[1], rid, t1)
            await close_ws(w3)
            return seen1 + first, whole
        finally:
            await close_all([w0, w1])
    resumed, whole = run(body(), 60)
    dense_from(pointers(whole), 1)
    assert len(whole) == 10 and resumed == whole

"""Cluster mode over several Redis primaries (issue 15, cluster_shard):
the cluster line is shard 0 and each cluster_shard line the next; a room
lives on the shard its "dialect:id" hashes to (FNV-1a 32, modulo the
count: roomd.conf(5)), every host serves every room of every shard, a
host whose list of primaries differs is refused, and a shard that fails
takes down only its own rooms.

Ground truth is read from each Redis with the keys of doc/cluster.txt.
"""
import asyncio
import json
import time
import uuid

from cluster import (LEASE, at, cluster_hosts,  # noqa: F401
                     redis_factory, redis_url, room_base, wait_for)
from conftest import (close_all, collect_actions, connect, create_room,
                      expect_close, http_req, join_room, list_rooms,
                      pointers, run)
from test_chat import ev_participant, create, join, quiet, say, session


def shard_of(tag, n):
    """roomd.conf(5)'s rule: FNV-1a 32 of "dialect:id", modulo n."""
    h = 2166136261
    for b in tag.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h % n


def ids_on(dialect, shard, n, count, prefix="sh"):
    """count fresh room ids that live on shard (of n)."""
    out = []
    while len(out) < count:
        rid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if shard_of(f"{dialect}:{rid}", n) == shard:
            out.append(rid)
    return out


def sharded(cluster_hosts, redis_factory, n=2, **kw):
    """n hosts on two primaries: (cluster, [primary 0, primary 1])."""
    reds = [redis_factory(), redis_factory()]
    c = cluster_hosts(n, redis=reds[0], cluster_shard=redis_url(reds[1]),
                      **kw)
    return c, reds


def sessions(server):
    return {m.decode().split("/")[0]
            for m in server.client().zrange("roomd:leases", 0, -1)}


def acts(tag, n):
    return [{"moveto": [i, i], "by": tag} for i in range(n)]


def test_rooms_are_spread_by_the_hash_and_served_from_every_host(
        cluster_hosts, redis_factory):
    c, reds = sharded(cluster_hosts, redis_factory)
    for r in reds:
        wait_for(lambda: sessions(r) == {"h1", "h2"}, 5,
                 f"both hosts hold a lease on the shard on {r.port}")
    rids = [f"spread-{uuid.uuid4().hex[:8]}-{i}" for i in range(16)]
    for rid in rids:
        create_room(c[0], host="alice", room_id=rid)
    on = {0: [], 1: []}
    for rid in rids:
        want = shard_of(f"canvas:{rid}", 2)
        on[want].append(rid)
        meta = room_base("canvas", rid) + ":meta"
        assert reds[want].client().exists(meta), \
            f"{rid} is not on shard {want}"
        assert not reds[1 - want].client().exists(meta), \
            f"{rid} is also on shard {1 - want}"
    assert on[0] and on[1], f"16 rooms all on one shard: {on}"
    # Each shard remembers its place.
    assert reds[0].client().get("roomd:shard") == b"0/2"
    assert reds[1].client().get("roomd:shard") == b"1/2"
    # Every host lists the rooms of both shards.
    for h in c:
        listed = {x["roomId"] for x in list_rooms(h)}
        assert set(rids) <= listed, f"{h.name} lists {listed}"
    # A room on each shard: actions from h1 reach h2, densely.
    for shard in (0, 1):
        rid = on[shard][0]
        tok_b = join_room(c[1], rid, "bob")["token"]
        tok_a = http_req(c[0], "POST", f"/canvas/rooms/{rid}/join",
                         {"name": "al"}).json["token"]

        async def body():
            wa, _, _ = await connect(c[0], rid, tok_a)
            wb, _, _ = await connect(c[1], rid, tok_b)
            try:
                await wa.send(json.dumps(acts("a", 5)))
                return await collect_actions(wb, 5)
            finally:
                await close_all([wa, wb])
        got = run(body())
        assert pointers(got) == [1, 2, 3, 4, 5], (shard, got)
    # status and /metrics show both shards.
    st = c[1].ctl_json("status")["cluster"]
    assert st["up"] is True and len(st["shards"]) == 2, st
    assert {s["primary"] for s in st["shards"]} == \
        {f"127.0.0.1:{r.port}" for r in reds}, st
    assert all(s["up"] for s in st["shards"]), st
    assert "shard 1 up" in c[1].ctl("status").stdout
    assert "roomd_cluster_shards_up 2" in c[0].metrics()


def test_a_host_with_another_list_of_primaries_is_refused(
        cluster_hosts, redis_factory):
    c, reds = sharded(cluster_hosts, redis_factory, n=1)
    wait_for(lambda: reds[1].client().get("roomd:shard") == b"1/2", 5,
             "shard 1 claimed")
    # The same two primaries in the other order.
    odd = cluster_hosts(1, redis=reds[1], cluster_shard=redis_url(reds[0]),
                        cluster_host="odd")
    wait_for(lambda: "not 0/2" in odd[0].log(), 5,
             "the odd host says why it is refused")
    time.sleep(1)
    for r in reds:
        assert "odd" not in sessions(r), "the odd host holds a lease"
    st = odd[0].ctl_json("status")["cluster"]
    assert st["up"] is False, st
    # Its clients get the dialect's refusal, not a room on a wrong shard.
    r = http_req(odd[0], "POST", "/canvas/rooms", {"host": "x"})
    assert r.status == 503, r
    # And the hosts that agree go on.
    assert create_room(c[0], host="y")["roomId"]


def test_a_shard_mark_of_the_wrong_shape_is_refused_and_said(
        cluster_hosts, redis_factory):
    """roomd:shard holding what no host wrote (another word, a list): the
    host takes no lease on that shard, says why in its log, and is not
    ready; the other shard is served."""
    for bad in ("banana", ["x", "y"]):
        reds = [redis_factory(), redis_factory()]
        cl = reds[1].client()
        if isinstance(bad, list):
            cl.rpush("roomd:shard", *bad)
        else:
            cl.set("roomd:shard", bad)
        c = cluster_hosts(1, redis=reds[0],
                          cluster_shard=redis_url(reds[1]))
        wait_for(lambda: "shard" in c[0].log() and
                 ("banana" in c[0].log() or "WRONGTYPE" in c[0].log()), 5,
                 f"the host says why it refuses {bad!r}")
        assert sessions(reds[1]) == set(), "a lease on the marked shard"
        assert cl.type("roomd:shard") == (b"list" if isinstance(bad, list)
                                          else b"string")
        st = c[0].ctl_json("status")["cluster"]
        assert st["up"] is False and st["shards"][0]["up"], st
        rid = ids_on("canvas", 0, 2, 1)[0]
        assert create_room(c[0], host="x", room_id=rid)["roomId"] == rid


def test_a_failed_shard_takes_down_only_its_rooms(cluster_hosts,
                                                  redis_factory):
    c, reds = sharded(cluster_hosts, redis_factory)
    r0 = ids_on("canvas", 0, 2, 1)[0]
    r1 = ids_on("canvas", 1, 2, 1)[0]
    toks = {}
    for rid in (r0, r1):
        toks[rid] = (create_room(c[0], host="alice", room_id=rid)["token"],
                     join_room(c[1], rid, "bob")["token"])

    async def body():
        ws = {}
        for rid in (r0, r1):
            ws[rid] = [(await connect(h, rid, t))[0]
                       for h, t in zip(c, toks[rid])]
        try:
            await ws[r1][0].send(json.dumps(acts("before", 3)))
            before = await collect_actions(ws[r1][1], 3)
            t0 = time.monotonic()
            reds[1].kill9()
            # The members of r1 are closed 1012 on both hosts.
            for w in ws[r1]:
                _, code, _ = await expect_close(w, LEASE + 5)
                assert code == 1012, code
            took = time.monotonic() - t0
            # r0 goes on meanwhile, its connections kept, for a whole
            # lease after the other shard failed.
            for i in range(3):
                await ws[r0][0].send(json.dumps(acts(f"r0-{i}", 2)))
                got = await collect_actions(ws[r0][1], 2)
                assert len(got) == 2
                await asyncio.sleep(LEASE / 3)
            # A room of the failed shard answers 503 from every host.
            for h in c:
                r = await asyncio.to_thread(
                    http_req, h, "GET", f"/canvas/rooms/{r1}")
                assert r.status == 503, (h, r)
            # Redis comes back (its log kept): r1 is served again, and
            # bob resumes with his pointer.
            reds[1].start()
            # Once both hosts hold a lease there again (and their workers
            # have closed what the old sessions held: a tick), r1 is
            # served again, and bob resumes with his pointer.
            await asyncio.to_thread(
                wait_for, lambda: all(h.ctl_json("status")["cluster"]["up"]
                                      for h in c), 15,
                "every host back on the shard")
            await asyncio.sleep(1.5)
            ptr = before[-1]["pointer"]
            wb, first, _ = await connect(c[1], r1, toks[r1][1], pointer=ptr)
            ws["bob"] = [wb]
            wa, _, _ = await connect(c[0], r1, toks[r1][0])
            ws["alice"] = [wa]
            await wa.send(json.dumps(acts("after", 2)))
            again = first + await collect_actions(wb, 2 - len(first))
            return before, again, took
        finally:
            await close_all([w for x in ws.values() for w in x])
    before, again, took = run(body(), 90)
    assert took <= LEASE + 5
    assert pointers(before) == [1, 2, 3]
    assert pointers(again) == [4, 5], again


def test_a_host_killed_whole_its_users_leave_channels_on_both_shards_once(
        cluster_hosts, redis_factory):
    c3, reds = sharded(cluster_hosts, redis_factory, n=3)
    on0 = ids_on("chat", 0, 2, 1, prefix="c")[0]
    on1 = ids_on("chat", 1, 2, 1, prefix="c")[0]

    async def body(c):
        a = await at(c, c3[0]).open()
        b = await at(c, c3[1]).open()
        d = await at(c, c3[2]).open()
        chans = []
        for ch in (on0, on1):
            ch = "#" + ch if not ch.startswith("#") else ch
            await create(a, ch, [b, d])
            await join(a, ch)
            await join(b, ch, [a])
            await join(d, ch, [a, b])
            chans.append(ch)
        await say(a, chans[0], "m0", 1, [b, d])
        await say(a, chans[1], "m1", 1, [b, d])
        t0 = time.monotonic()
        c3[2].kill()
        want = sorted(json.dumps(ev_participant(d, "left", ch))
                      for ch in chans)
        for x in (a, b):
            got = [await x.recv("h3's user leaves", LEASE + 5)
                   for _ in chans]
            assert sorted(map(json.dumps, got)) == want, got
        assert time.monotonic() - t0 <= LEASE + 5
        await quiet(a, b, t=LEASE)
    session(c3[0], body, timeout=60)


def test_while_a_shard_is_lost_leaves_on_the_other_are_announced(
        cluster_hosts, redis_factory):
    """A host closes the clients of a lost shard's rooms as "coming back"
    (1012, nobody announced as leaving); a user who leaves a channel of
    the shard that holds, from the same worker at the same time, is
    announced as leaving, as always.  The chat's server room "@" hashes
    to shard 1, so shard 0 is the one lost."""
    assert shard_of("chat:@", 2) == 1
    c2, reds = sharded(cluster_hosts, redis_factory, workers=2)
    r0 = ids_on("canvas", 0, 2, 1)[0]
    ch = "#" + ids_on("chat", 1, 2, 1, prefix="c")[0]
    made = create_room(c2[0], host="alice", room_id=r0)

    async def body(c):
        wa, _, _ = await connect(c2[0], r0, made["token"])
        try:
            a = await at(c, c2[1]).open()
            d = await at(c, c2[0]).open()
            await create(a, ch, [d])
            await join(a, ch)
            await join(d, ch, [a])
            reds[0].kill9()
            # h1 (one worker) closes alice, of the lost shard, 1012...
            _, code, _ = await expect_close(wa, LEASE + 5)
            assert code == 1012, code
            # ...and right then d, on the same worker, leaves.
            await d.ws.close()
            await a.expect(ev_participant(d, "left", ch),
                           "d's leave, announced while shard 0 is lost")
            await quiet(a)
        finally:
            await close_all([wa])
    session(c2[0], body, timeout=60)

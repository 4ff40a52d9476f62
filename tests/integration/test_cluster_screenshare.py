"""Cluster mode, screenshare dialect (issue 15, 1 and 2): a room's host on
one host of the cluster and its users on the others; every relay crosses
hosts; a host killed whole makes its users leave once (USER_LEFT to the
room's host; HOST_LEFT to the users when it was the host's).

Each test has hosts of its own (cluster.py); messages and helpers are
test_screenshare.py's.
"""
from cluster import (LEASE, at, cluster_hosts,  # noqa: F401
                     redis_factory)
from conftest import recv_json, send_json
from test_screenshare import (HOST_LEFT, LEFT_ROOM, NAME_TAKEN,
                              ROOM_NOT_FOUND, USER_NOT_FOUND, create, expect,
                              join, quiet, session)


async def room_across(c, hosts, users):
    """The room's host on hosts[0], user i on hosts[1 + i % (n - 1)]."""
    h = await at(c, hosts[0]).open()
    rid = await create(h, "host")
    us = []
    for i, name in enumerate(users):
        u = await at(c, hosts[1 + i % (len(hosts) - 1)]).open()
        await join(u, rid, name, host=h)
        us.append(u)
    return h, rid, us


def test_signalling_between_a_host_and_users_on_other_hosts(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        h, rid, (bob, ann) = await room_across(c, c3.hosts, ["bob", "ann"])
        await send_json(bob, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
        await send_json(h, {"type": "ALLOW_SHARING", "username": "bob"})
        await expect(bob, {"type": "ALLOW_SHARING"}, "allow at bob")
        await send_json(bob, {"type": "RCP_OFFER", "sdp": "v=0\r\n"})
        await expect(h, {"type": "RCP_OFFER", "username": "bob",
                         "sdp": "v=0\r\n"})
        await send_json(h, {"type": "RCP_ANSWER", "username": "bob",
                            "sdp": "v=1\r\n"})
        await expect(bob, {"type": "RCP_ANSWER", "sdp": "v=1\r\n"})
        await send_json(ann, {"type": "ICE_CANDIDATE", "candidate": "c1"})
        await expect(h, {"type": "ICE_CANDIDATE", "username": "ann",
                         "candidate": "c1"})
        await send_json(h, {"type": "ICE_CANDIDATE", "username": "ann",
                            "candidate": "c2"})
        await expect(ann, {"type": "ICE_CANDIDATE", "candidate": "c2"})
        await send_json(h, {"type": "STOP_SHARING"})
        await expect(bob, {"type": "STOP_SHARING"})
        await expect(ann, {"type": "STOP_SHARING"})
        await send_json(h, {"type": "RCP_ANSWER", "username": "ghost",
                            "sdp": "x"})
        await expect(h, USER_NOT_FOUND)
        await quiet(h, bob, ann)
        # A name is taken in the room whatever host the joiner is on.
        dup = await at(c, c3[0]).open()
        await send_json(dup, {"type": "JOIN_ROOM", "roomid": rid,
                              "username": "bob"})
        await expect(dup, NAME_TAKEN)
        # LEAVE_ROOM on h3 tells the host on h1.
        await send_json(ann, {"type": "LEAVE_ROOM"})
        await expect(ann, LEFT_ROOM)
        await expect(h, {"type": "USER_LEFT", "username": "ann"})
        await quiet(h, bob)
    session(c3[0], body)


def test_a_room_is_found_from_any_host_and_gone_from_all(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        h, rid, (bob,) = await room_across(c, c3.hosts, ["bob"])
        await send_json(bob, {"type": "LEAVE_ROOM"})
        await expect(bob, LEFT_ROOM)
        await expect(h, {"type": "USER_LEFT", "username": "bob"})
        await send_json(h, {"type": "LEAVE_ROOM"})
        await expect(h, LEFT_ROOM)
        for host in c3:
            x = await at(c, host).open()
            await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                                "username": "late"})
            await expect(x, ROOM_NOT_FOUND, f"{host.name}: the room is gone")
    session(c3[0], body)


def test_a_host_killed_whole_its_users_leave_once(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        h, rid, (bob, ann, eve) = await room_across(c, c3.hosts,
                                                    ["bob", "ann", "eve"])
        # bob and eve are on h2, ann on h3.
        c3[1].kill()
        got = [await recv_json(h, LEASE + 5) for _ in range(2)]
        assert sorted(m["username"] for m in got) == ["bob", "eve"], got
        assert all(m["type"] == "USER_LEFT" for m in got), got
        await quiet(h, ann, t=LEASE)
        # The room goes on: the host relays to ann, and bob joins again
        # on h3 under his name.
        await send_json(h, {"type": "ICE_CANDIDATE", "username": "ann",
                            "candidate": "still"})
        await expect(ann, {"type": "ICE_CANDIDATE", "candidate": "still"})
        b2 = await at(c, c3[2]).open()
        await join(b2, rid, "bob", host=h)
    session(c3[0], body, timeout=60)


def test_the_rooms_host_lost_with_its_host_tells_the_users(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        h, rid, (bob, ann) = await room_across(c, c3.hosts, ["bob", "ann"])
        c3[0].kill()
        await expect(bob, HOST_LEFT, "bob", timeout=LEASE + 5)
        await expect(ann, HOST_LEFT, "ann", timeout=LEASE + 5)
        await quiet(bob, ann, t=LEASE)
    session(c3[1], body, timeout=60)



def test_a_join_redis_cannot_take_is_unavailable_not_full(cluster_hosts,
                                                          redis_factory):
    """A join is committed to Redis before it is answered: one that Redis
    refuses (out of memory here) closes the joiner 1012, come back later,
    and is not told that the room is full; once Redis has memory again
    the same join goes through."""
    from conftest import expect_close
    r = redis_factory()
    c1 = cluster_hosts(1, redis=r)
    cl = r.client()

    async def body(c):
        h = await at(c, c1[0]).open()
        rid = await create(h, "host")
        for i in range(20):
            cl.set(f"ballast:{i}", b"x" * 100000)
        cl.config_set("maxmemory", "1mb")
        try:
            u = await at(c, c1[0]).open()
            await send_json(u, {"type": "JOIN_ROOM", "roomid": rid,
                                "username": "bob"})
            msgs, code, _ = await expect_close(u, 10)
            assert code == 1012, (code, msgs)
            assert not any("full" in str(m) for m in msgs), msgs
        finally:
            cl.config_set("maxmemory", "0")
        u = await at(c, c1[0]).open()
        await join(u, rid, "bob", host=h)
    session(c1[0], body)

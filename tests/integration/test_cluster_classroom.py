"""Cluster mode, classroom dialect (issue 15, 1 and 2): participants on
three hosts of one cluster in one room: enter and exit snapshots,
broadcast, direct messages, authorities granted on one host and enforced
at once on another, petitions, kick and close across hosts; a host killed
whole makes its participants exit once each.

Each test has hosts of its own (cluster.py); the participants and message
shapes are test_classroom.py's, opened on one host or another with
at(c, host).
"""
import asyncio
import json

from cluster import (LEASE, at, cluster_hosts,  # noqa: F401
                     redis_factory)
from conftest import expect_close, recv_json, send_json, session
from test_classroom import (DISCONNECTED, FORBIDDEN, SENT, check_room_msg,
                            control, enter, expect, expect_room, quiet, rid)


async def spread(c, hosts, names, room=None):
    """Enter names[i] on hosts[i % n] in order, the first in a fresh
    room. -> [P]"""
    room = room or rid("ccl")
    ps = []
    for i, n in enumerate(names):
        p = await enter(at(c, hosts[i % len(hosts)]), n,
                        ps[0].room if ps else room, None, ps)
        ps.append(p)
    return ps


def test_relays_and_authorities_across_three_hosts(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a, b, cc, dv = ps = await spread(c, c3.hosts,
                                         ["alice", "bob", "carol", "dave"])
        assert a.admin is True and not b.admin
        # Broadcast from h1 reaches h2, h3 and h1 again (dave).
        await send_json(a.ws, {"type": "Broadcast", "data": {"n": 1}})
        want = {"type": "Broadcast", "data": {"n": 1}, "from": a.id}
        for p in (b, cc, dv):
            await expect(p, want, p.name)
        await expect(a, SENT)
        # Direct from h3 to dave (h1) only, once bob (h2) may send it.
        await send_json(b.ws, {"type": "Direct", "participants": [dv.id],
                               "data": "x"})
        await expect(b, FORBIDDEN)
        await control(a, ps, [b], True, ["Direct"])
        await send_json(b.ws, {"type": "Direct", "participants": [dv.id],
                               "data": "hi"})
        await expect(dv, {"type": "Direct", "data": "hi",
                          "participants": [dv.id], "from": b.id})
        await expect(b, SENT)
        # Petition from carol (h3) reaches the admin (h1).
        await send_json(cc.ws, {"type": "Petition", "data": "please"})
        await expect(a, {"type": "Petition", "data": "please",
                         "from": cc.id})
        await expect(cc, SENT)
        # Revoked on h1: refused at once on h2.
        await control(a, ps, [b], False, ["Direct"])
        await send_json(b.ws, {"type": "Direct", "participants": [dv.id],
                               "data": "again"})
        await expect(b, FORBIDDEN)
        await quiet(*ps)
    session(c3[0], body)


def test_kick_and_close_across_hosts(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a, b, cc = await spread(c, c3.hosts, ["alice", "bob", "carol"])
        await send_json(a.ws, {"type": "Kick", "participants": [b.id]})
        msgs, code, _ = await expect_close(b.ws)
        assert [json.loads(m) for m in msgs] == [DISCONNECTED], msgs
        await expect_room(cc, "ParticipantExit", [a, cc], "carol")
        got = [await recv_json(a.ws), await recv_json(a.ws)]
        exits = [m for m in got if m != SENT]
        assert SENT in got and len(exits) == 1, got
        check_room_msg(exits[0], "ParticipantExit", a.room, [a, cc], "alice")
        await quiet(a, cc)
        # Close on h1 ends carol on h3 too; the room is gone everywhere.
        await send_json(a.ws, {"type": "Close"})
        res = await asyncio.gather(*(expect_close(p.ws) for p in (a, cc)))
        for p, (msgs, _, _) in zip((a, cc), res):
            assert [json.loads(m) for m in msgs] == [DISCONNECTED], \
                (p.name, msgs)
        n = await enter(at(c, c3[2]), "newbie", a.room)
        check_room_msg(n.enter, "ParticipantEnter", a.room, [n], "newcomer")
        assert n.admin is True
    session(c3[0], body)


def test_a_host_killed_whole_its_participants_exit_once(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a, b, cc, dv = await spread(c, c3.hosts,
                                    ["alice", "bob", "carol", "dave"])
        # carol is on h3; kill it.  dave is on h1 and stays.
        c3[2].kill()
        for p in (a, b, dv):
            m = await recv_json(p.ws, LEASE + 5)
            check_room_msg(m, "ParticipantExit", a.room, [a, b, dv],
                           f"{p.name}: carol lost with h3")
        await quiet(a, b, dv, t=LEASE)
        # The room goes on; carol enters again on h2.
        c2 = await enter(at(c, c3[1]), "carol", a.room, None, [a, b, dv])
        await send_json(c2.ws, {"type": "Petition", "data": "back"})
        await expect(a, {"type": "Petition", "data": "back", "from": c2.id})
        await expect(c2, SENT)
    session(c3[0], body, timeout=60)

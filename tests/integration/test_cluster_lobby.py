"""Cluster mode, lobby dialect (issue 15, 1 and 2): a room code made on one
host of the cluster serves a room's host and guests on the others; signals
relay across hosts; identities reconnect on another host; snapshots are
read from any host; the grace timer fires once cluster-wide (one
becomeHost, one roomClosed); a host killed whole counts as its clients'
sockets closing (hostDisconnected once, then migration).

Each test has hosts of its own (cluster.py); messages and helpers are
test_lobby.py's, opened on one host or another with at(c, host).
"""
import asyncio

from cluster import (LEASE, at, cluster_hosts,  # noqa: F401
                     redis_factory)
from conftest import (close_ws, expect, expect_close, recv_json, send_json)
from test_lobby import (PATIENT, SHORT, STATES, expect_error, get_snapshot,
                        offer_msg, offer_seen, post_room, quiet,
                        reconnect_current, relay, save, session)

# Migration with a grace of 3 s: a guest that does not accept is passed
# over after lobby_grace, so "offered once" is listened for 1.5 s.
MIGRATE = SHORT + "lobby_grace 3\nlobby_migration yes\n"


def lobby_settings(text):
    """The lobby's settings (roomd.conf lines, the last of a keyword
    winning) as cluster_hosts(**settings)."""
    return dict(ln.split(None, 1) for ln in text.strip().splitlines())


async def spread_room(c, hosts, nguests=2):
    """POST on hosts[0], the room's host connects on hosts[1], guest i on
    hosts[(2 + i) % n]. -> (code, host, [guests])"""
    code = post_room(hosts[0])
    h = await at(c, hosts[1 % len(hosts)]).client(f"code={code}&host=true")
    await quiet(h.ws)
    gs = []
    for i in range(nguests):
        gs.append(await at(c, hosts[(2 + i) % len(hosts)]).client(
            f"code={code}"))
    return code, h, gs


def test_codes_relays_snapshots_and_identities_across_hosts(cluster_hosts):
    c3 = cluster_hosts(3, **lobby_settings(PATIENT))

    async def body(c):
        code, h, (g1, g2) = await spread_room(c, c3.hosts)
        await relay(h, g1, "to-h3", others=[g2])
        await relay(h, g2, "to-h1", others=[g1])
        v = await save(h, STATES["object"])
        await get_snapshot(g1, v, STATES["object"], "snapshot read on h3")
        await get_snapshot(g2, v, STATES["object"], "snapshot read on h1")
        # A guest comes back with its identity on another host.
        await close_ws(g1.ws)
        await quiet(h.ws, g2.ws)
        g1b = await reconnect_current(at(c, c3[1]), code, g1,
                                      host_flag=False)
        await relay(h, g1b, "again", others=[g2])
        # The room's host comes back on another host within the grace.
        await close_ws(h.ws)
        for g in (g1b, g2):
            await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        h2 = await reconnect_current(at(c, c3[0]), code, h, host_flag=True)
        for g in (g1b, g2):
            await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await relay(h2, g2, "back", others=[g1b])
        # A second host of the room is refused on every host.
        for host in c3:
            x = await at(c, host).client(f"code={code}&host=true")
            await expect_error(x.ws, "hostAlreadyExists", None, host.name)
    session(c3[0], body)


def test_grace_end_closes_the_room_once_cluster_wide(cluster_hosts):
    c3 = cluster_hosts(3, **lobby_settings(SHORT))

    async def body(c):
        code, h, gs = await spread_room(c, c3.hosts, 3)
        await close_ws(h.ws)
        for g in gs:
            await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        for i, g in enumerate(gs):
            m = await recv_json(g.ws, 5.0)
            assert m.get("type") == "error" and \
                m.get("errorType") == "roomClosed", (i, m)
            msgs, code_, _ = await expect_close(g.ws)
            assert msgs == [] and code_ is not None, (msgs, code_)
        for host in c3:
            x = await at(c, host).client(f"code={code}")
            await expect_error(x.ws, "noRoomFound", None, host.name)
    session(c3[0], body)


def test_migration_offers_the_seat_once_cluster_wide(cluster_hosts):
    c3 = cluster_hosts(3, **lobby_settings(MIGRATE))

    async def body(c):
        code, h, (g1, g2) = await spread_room(c, c3.hosts)
        v = await save(h, STATES["array"])
        await close_ws(h.ws)
        for g in (g1, g2):
            await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        await expect(g1.ws, {"type": "becomeHost",
                             "data": {"snapshot": STATES["array"]}},
                     "the longest-connected guest", timeout=6.0)
        # Once: no second offer from another host's timer.
        await quiet(g1.ws, g2.ws, t=1.5)
        await send_json(g1.ws, {"type": "hostReady"})
        await expect(g2.ws, {"type": "hostChanged",
                             "data": {"clientId": g1.id}}, "other guest")
        await send_json(g2.ws, offer_msg("to-new-host"))
        await expect(g1.ws, offer_seen("to-new-host", g2.id), "new host")
        v2 = await save(g1, {"after": 1})
        assert v2 > v
    session(c3[0], body)


def test_a_host_killed_whole_counts_as_its_sockets_closing(cluster_hosts):
    c3 = cluster_hosts(3, **lobby_settings(MIGRATE))

    async def body(c):
        # The room's host is on h2 (spread_room); kill h2.
        code, h, (g1, g2) = await spread_room(c, c3.hosts)
        c3[1].kill()
        for g in (g1, g2):
            await expect(g.ws, {"type": "hostDisconnected"}, "guest",
                         timeout=LEASE + 5)
        await expect(g1.ws, {"type": "becomeHost",
                             "data": {"snapshot": None}},
                     "the longest-connected guest", timeout=6.0)
        await quiet(g1.ws, g2.ws, t=1.5)
        await send_json(g1.ws, {"type": "hostReady"})
        await expect(g2.ws, {"type": "hostChanged",
                             "data": {"clientId": g1.id}}, "other guest")
        await quiet(g1.ws, g2.ws, t=1)
    session(c3[0], body, timeout=60)


def test_a_guest_lost_with_its_host_reconnects_elsewhere(cluster_hosts):
    c3 = cluster_hosts(3, **lobby_settings(PATIENT))

    async def body(c):
        code, h, (g1, g2) = await spread_room(c, c3.hosts)
        # g1 is on h3: kill it; g1 comes back with its identity on h1.
        c3[2].kill()
        await asyncio.sleep(0.2)
        g1b = await reconnect_current(at(c, c3[0]), code, g1,
                                      host_flag=False)
        await relay(h, g1b, "after the kill", others=[g2])
    session(c3[0], body, timeout=60)


def test_a_snapshot_outlives_a_long_relay_on_every_host(cluster_hosts):
    """A snapshot, then more signals than a mirror's log chunk holds (64
    KB) and than Redis keeps of a relay room's log (1000 entries): the
    snapshot is still read on every host, and by a guest on a host that
    never had the room."""
    c4 = cluster_hosts(4, **lobby_settings(PATIENT))
    n = 1100

    async def body(c):
        code, h, (g1, g2) = await spread_room(c, c4.hosts[:3])
        v = await save(h, STATES["object"])
        pad = "s" * 150
        for i in range(n):
            await send_json(g1.ws, offer_msg(f"{i} {pad}"))
            await expect(h.ws, offer_seen(f"{i} {pad}", g1.id), "offer")
        for who, where in ((h, "h2"), (g1, "h3"), (g2, "h1")):
            await get_snapshot(who, v, STATES["object"], f"read on {where}")
        g3 = await at(c, c4[3]).client(f"code={code}")
        await get_snapshot(g3, v, STATES["object"], "read on h4")
    session(c4[0], body)

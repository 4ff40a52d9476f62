"""Cluster mode under faults (issue 15, 3 and 4), with canvas members that
append and resume as real clients do (cluster.CanvasMember) and the
checker's rules (cluster.check_members):

- Redis killed and restarted on its port and data: the hosts reconnect,
  resubscribe and catch up; no acknowledged op is lost.
- Sentinel failover (the primary killed): the hosts follow the new primary
  within seconds; with cluster_wait 1 no acknowledged op is lost; without
  it, a lost tail shows as a new epoch, never as a pointer reused for
  different data.
- A host cut off from Redis (a paused proxy between them) closes its
  clients with 1012 after half its lease, takes no writes, and what it
  had in flight is never appended once its lease ran out; healed, it
  serves again.
"""
import asyncio
import time

import pytest

from cluster import (LEASE, MASTER, cluster_hosts, drive,  # noqa: F401
                     final_logs, load_library, members_on, read_whole,
                     redis_factory, redis_url, room_lived,
                     sentinel_url, tcp_proxy, verdict)
from conftest import (close_ws, connect, create_room, expect_close,
                      http_req, join_room, recv_json, run)
from redisd import Group, Proxy, _wait


# ---------------------------------------------------------------- Redis restarted

def test_redis_restarted_hosts_catch_up_and_lose_no_acknowledged_op(
        cluster_hosts):
    c = cluster_hosts(3, room_ttl=60)
    rid = "restart"
    ms = members_on(c, rid)

    async def body():
        return await drive(ms, c.redis.restart, 2.0, 8.0,
                           final=lambda: final_logs(c, rid, ms[0].token))
    before, logs = run(body(), 60)
    after = sum(len(m.acked) for m in ms)
    assert after > before + 20, \
        f"few ops acknowledged after the restart ({before} -> {after}): " \
        f"{[(m.name, m.errors[-3:]) for m in ms]}"
    verdict(ms, logs, "all")
    room_lived(ms)


def test_redis_restarted_live_delivery_crosses_hosts_again(cluster_hosts):
    """After the restart a member on h3 receives, live, what a member on
    h1 appends: h3 subscribed again."""
    c = cluster_hosts(3, room_ttl=60)
    rid = "resub"
    t0 = create_room(c[0], host="a", room_id=rid)["token"]
    t2 = join_room(c[2], rid, "b")["token"]

    async def body():
        w0, _, _ = await connect(c[0], rid, t0)
        w2, _, _ = await connect(c[2], rid, t2)
        try:
            await asyncio.to_thread(c.redis.restart)
            # Either connection may be closed for a new epoch: then
            # reconnect (no pointer: the whole log).
            deadline = time.monotonic() + 15
            while True:
                try:
                    await w0.send('{"moveto":[1,1],"op":"x"}')
                    got = []
                    while not any(a.get("op") == "x" for a in got):
                        m = await recv_json(w2, 2.0)
                        got += m if isinstance(m, list) else []
                    return True
                except Exception:
                    assert time.monotonic() < deadline, \
                        "no live delivery from h1 to h3 after the restart"
                    await close_ws(w0)
                    await close_ws(w2)
                    await asyncio.sleep(0.5)
                    try:
                        w0, _, _ = await connect(c[0], rid, t0)
                        w2, _, _ = await connect(c[2], rid, t2)
                    except Exception:
                        pass
        finally:
            await close_ws(w0)
            await close_ws(w2)
    assert run(body(), 40)


def test_redis_out_of_reach_longer_than_the_lease_keeps_the_rooms(
        cluster_hosts, redis_factory, tcp_proxy):
    """Every host loses Redis for longer than its lease (a proxy that
    stops passing bytes): they are fenced and close their clients; once
    Redis is back the room is still there with all it acknowledged, and
    its members resume with their pointers."""
    r = redis_factory()
    p = tcp_proxy(r.port)
    c = cluster_hosts(3, redis=redis_url(p.port), room_ttl=60)
    rid = "outage"
    ms = members_on(c, rid)

    def outage():
        p.pause()
        time.sleep(LEASE + 2)
        p.resume()

    async def body():
        return await drive(ms, outage, 2.0, LEASE + 2 + 8.0,
                           final=lambda: final_logs(c, rid, ms[0].token))
    before, logs = run(body(), 90)
    after = sum(len(m.acked) for m in ms)
    assert after > before + 20, \
        f"few ops acknowledged after the outage ({before} -> {after})"
    verdict(ms, logs, "all")
    room_lived(ms)


# ---------------------------------------------------------------- Sentinel failover

# A failover takes Sentinel's down-after (1 s here) and an election: the
# hosts' lease must outlast it, or they are fenced and start over.
FAILOVER_LEASE = 8


def test_failover_with_cluster_wait_1_loses_no_acknowledged_op(
        cluster_hosts, one_replica):
    """cluster_wait 1 with one replica: every acknowledged op is on the
    replica Sentinel promotes.  (With two replicas, WAIT 1 may be met by
    the one Sentinel does not promote: it picks by the offsets the
    replicas last reported, up to a second old, and 1 run in 5 to 10
    lost the last acknowledged ops that way; roomd.conf(5) says
    cluster_wait must count every replica.)  The old primary comes back
    as the new one's replica, so that WAIT 1 is met again."""
    g, primary, _, replicas, sentinels = one_replica
    c = cluster_hosts(3, redis=sentinel_url(sentinels), cluster_wait=1,
                      room_ttl=60, lease=FAILOVER_LEASE)
    rid = "failover-wait"
    ms = members_on(c, rid)

    def failover():
        primary.kill9()
        _wait(lambda: sentinels[0].primary() == ("127.0.0.1",
                                                 replicas[0].port),
              20, "Sentinel names the replica")
        primary.start()

    async def body():
        return await drive(ms, failover, 2.0, 14.0,
                           final=lambda: final_logs(c, rid, ms[0].token))
    before, logs = run(body(), 90)
    # Sentinel named a replica; the hosts wrote to it.
    assert sentinels[0].primary() in [("127.0.0.1", r.port)
                                      for r in replicas]
    after = sum(len(m.acked) for m in ms)
    assert after > before + 20, \
        f"the hosts did not follow the new primary ({before} -> {after})"
    verdict(ms, logs, "all")
    room_lived(ms)


def _sentinel_group(proxied, n=2):
    """A primary, two replicas, three sentinels; with proxied, the first
    replica is fed through a pausable proxy (so that it can be made to
    lag).  -> (group, primary, proxy or None, [replicas], sentinels);
    everything is stopped at teardown."""
    g = Group()
    proxy = None
    try:
        primary = g.server()
        load_library(primary.client())
        if proxied:
            proxy = Proxy(primary.port)
        replicas = [g.server(replicaof=proxy.port if proxy else primary)]
        replicas += [g.server(replicaof=primary) for _ in range(n - 1)]
        for rp in replicas:
            _wait(lambda: rp.client().info("replication")
                  .get("master_link_status") == "up", 10, "replica in sync")
        sentinels = [g.sentinel(primary) for _ in range(3)]

        def aware():
            for s in sentinels:
                cl = s.client(socket_timeout=1.0)
                if len(cl.execute_command("SENTINEL", "REPLICAS",
                                          MASTER)) < n:
                    return False
                if len(cl.execute_command("SENTINEL", "SENTINELS",
                                          MASTER)) < 2:
                    return False
            return True
        _wait(aware, 15, "sentinels aware of the replicas and each other")
        yield g, primary, proxy, replicas, sentinels
    finally:
        if proxy is not None:
            proxy.close()
        g.close()


@pytest.fixture
def one_replica():
    """_sentinel_group with one replica, not proxied."""
    yield from _sentinel_group(False, 1)


@pytest.fixture
def two_replicas():
    """_sentinel_group without a proxy: after a failover the new primary
    still has a replica, so that cluster_wait 1 can be met."""
    yield from _sentinel_group(False)


@pytest.fixture
def lagging_group():
    """_sentinel_group whose first replica can be made to lag."""
    yield from _sentinel_group(True)


@pytest.mark.parametrize("lease", [FAILOVER_LEASE, LEASE],
                         ids=["within-lease", "hosts-fenced"])
def test_failover_without_wait_a_lost_tail_is_a_new_epoch(
        cluster_hosts, lagging_group, lease):
    g, primary, proxy, replicas, sentinels = lagging_group
    c = cluster_hosts(3, redis=sentinel_url(sentinels), room_ttl=60,
                      lease=lease)
    rid = "failover-lost"
    ms = members_on(c, rid)
    epoch0 = http_req(c[0], "GET", f"/canvas/rooms/{rid}").json["epoch"]

    def lag_then_kill():
        # The first replica stops hearing from the primary, the second is
        # killed: what the members append now is acknowledged but lives
        # on the primary alone, and the lagging replica is promoted.
        replicas[1].kill9()
        proxy.pause()
        time.sleep(1.5)
        primary.kill9()

    async def body():
        return await drive(ms, lag_then_kill, 1.5, 12.0,
                           final=lambda: final_logs(c, rid, ms[0].token))
    _, logs = run(body(), 90)
    epoch, log = verdict(ms, logs, "last")
    acked0 = {op for m in ms for op, (e, _) in m.acked.items()
              if e == epoch0}
    kept = {op for _, op in log}
    lost = acked0 - kept
    # The scenario itself: the promoted replica lacked a tail.
    assert lost, "nothing acknowledged was lost: the replica did not lag"
    assert epoch != epoch0, \
        f"{len(lost)} acknowledged ops were lost and the epoch stayed"
    room_lived(ms)


# ---------------------------------------------------------------- partition

def test_a_host_cut_off_from_redis_closes_1012_and_never_appends_late(
        cluster_hosts, redis_factory, tcp_proxy):
    r = redis_factory()
    p = tcp_proxy(r.port)
    # h1 reaches Redis through the proxy, h2 directly.
    c = cluster_hosts(2, redis=[redis_url(p.port), r], room_ttl=60)
    rid = "partition"
    ta = create_room(c[1], host="a", room_id=rid)["token"]
    tb = join_room(c[0], rid, "b")["token"]

    async def body():
        wa, _, _ = await connect(c[1], rid, ta)
        wb, _, _ = await connect(c[0], rid, tb)
        try:
            await wb.send('{"moveto":[0,0],"op":"b:ok"}')
            seen = []
            while not any(x.get("op") == "b:ok" for x in seen):
                seen += await recv_json(wa)
            t0 = time.monotonic()
            p.pause()
            # In flight towards Redis while cut off: never to be appended
            # once the lease ran out.
            for i in range(5):
                await wb.send(f'{{"moveto":[{i},0],"op":"b:stale{i}"}}')
            msgs, code, reason = await expect_close(wb, LEASE + 3)
            closed_after = time.monotonic() - t0
            # h1 takes no writes while cut off.
            made = await asyncio.to_thread(
                http_req, c[0], "POST", "/canvas/rooms",
                {"host": "x", "roomId": "during"})
            # h2 goes on meanwhile.
            await wa.send('{"moveto":[1,1],"op":"a:during"}')
            got = []
            while not any(x.get("op") == "a:during" for x in got):
                got += await recv_json(wa)
            # Heal after the lease ran out.
            left = t0 + LEASE + 1 - time.monotonic()
            if left > 0:
                await asyncio.sleep(left)
            p.resume()
            await asyncio.sleep(2)
            # h1 serves again, as a new session, from where b stopped.
            ptr = max(x["pointer"] for x in seen)
            deadline = time.monotonic() + 10
            while True:
                try:
                    wb2, first, _ = await connect(c[0], rid, tb, pointer=ptr)
                    await close_ws(wb2)
                    break
                except Exception:
                    assert time.monotonic() < deadline, \
                        "h1 does not serve again after the heal"
                    await asyncio.sleep(0.5)
            whole = await read_whole(c[1], rid, ta)
            return (code, reason, msgs), closed_after, made, first, whole
        finally:
            await close_ws(wa)
            await close_ws(wb)
    (code, reason, msgs), closed_after, made, first, (epoch, log) = \
        run(body(), 60)
    assert code == 1012, \
        f"cut-off host closed its client with {code} {reason!r} after {msgs}"
    assert closed_after <= LEASE / 2 + 1.5, \
        f"closed {closed_after:.1f} s after the cut (lease {LEASE} s)"
    assert made.status >= 500, f"a cut-off host took a create: {made!r}"
    ops = [op for _, op in log]
    assert not [o for o in ops if o and o.startswith("b:stale")], \
        f"a stale host appended after its lease ran out: {ops}"
    assert ops.count("a:during") == 1 and ops.count("b:ok") == 1, ops
    assert [a.get("op") for a in first] == ops[ops.index("b:ok") + 1:]


def test_failover_longer_than_the_lease_keeps_the_rooms(cluster_hosts,
                                                         two_replicas):
    """The hosts' lease (3 s) is shorter than the failover: they are
    fenced and start over on the new primary, which has every record (the
    replicas were in sync): the room goes on and nothing acknowledged is
    lost."""
    g, primary, _, replicas, sentinels = two_replicas
    c = cluster_hosts(3, redis=sentinel_url(sentinels), room_ttl=60)
    rid = "failover-fenced"
    ms = members_on(c, rid)

    async def body():
        return await drive(ms, primary.kill9, 2.0, 12.0,
                           final=lambda: final_logs(c, rid, ms[0].token))
    before, logs = run(body(), 90)
    after = sum(len(m.acked) for m in ms)
    assert after > before + 20, \
        f"few ops acknowledged after the failover ({before} -> {after})"
    verdict(ms, logs, "last")
    room_lived(ms)

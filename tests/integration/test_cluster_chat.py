"""Cluster mode, chat dialect (issue 15, 1 and 2): users on three hosts of
one cluster share channels, @messages, events and history; a name is
taken cluster-wide; a host killed whole makes its users leave once, as a
closed connection does ("left" to each channel's participants).

Each test has hosts of its own (cluster.py); the chat clients and message
shapes are test_chat.py's, the connections of one test opened on one host
or another with at(c, host).
"""
import asyncio
import json
import os
import signal
import time

import pytest

from cluster import (LEASE, at, children, cluster_hosts,  # noqa: F401
                     redis_factory)
from conftest import (_pid_gone, close_ws, expect_close, poll,
                      ws_open_headers)
from test_chaos import crash_points_built
from test_chat import (TABS_SECRET, Client, alive, chan_msg, chat_url,
                       collect, create, ev_channel, ev_participant,
                       expect_all, expect_error, is_chan_msg, join, listed,
                       members_of, open_tab, priv_msg, quiet, quiet_until,
                       say, session, tab_user)


def test_channels_events_and_messages_cross_three_hosts(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a = await at(c, c3[0]).open()
        b = await at(c, c3[1]).open()
        d = await at(c, c3[2]).open()
        ch = c.channel()
        await create(a, ch, [b, d])
        await join(a, ch)
        await join(b, ch, [a])
        await join(d, ch, [a, b])
        await say(a, ch, "from h1", 1, [b, d])
        await say(b, ch, "from h2", 2, [a, d])
        await say(d, ch, "from h3", 3, [a, b])
        # @messages between hosts, to the addressee only.
        await d.say("@" + a.name, "psst")
        await a.expect(priv_msg(d, "@" + a.name, "psst"), "@ across hosts")
        await d.expect(priv_msg(d, "@" + a.name, "psst"), "sender's copy")
        await quiet(a, b, d)
        await b.cmd("leave", ch)
        await expect_all([a, d], ev_participant(b, "left", ch), "b left")
        await say(d, ch, "after b left", 4, [a])
        await quiet(b)
        # Destroyed on h1: every client on every host is told.
        await a.cmd("destroy", ch)
        await expect_all([a, b, d], ev_channel(ch, "destroy"), "destroy")
        req = await d.cmd("join", ch)
        await expect_error(d, "no_such_channel", req, "join after destroy")
    session(c3[0], body)


def test_two_hosts_creating_one_channel_at_once_make_it_once(cluster_hosts):
    c3 = cluster_hosts(2)

    async def body(c):
        a = await at(c, c3[0]).open()
        b = await at(c, c3[1]).open()
        ch = c.channel()
        await a.cmd("create", ch)
        await b.cmd("create", ch)
        got = []
        for who in (a, b):
            while True:
                try:
                    got.append(await who.recv("create race", 1.0))
                except AssertionError:
                    break
        creates = [m for m in got if m == ev_channel(ch, "create")]
        errors = [m for m in got if m.get("type") == "error"]
        # One create event to each client, one channel_exists to the loser.
        assert len(creates) == 2 and len(errors) == 1 and \
            len(got) == 3, got
        assert errors[0].get("code") == "channel_exists", errors
        await quiet(a, b)
    session(c3[0], body)


def test_history_since_is_served_by_any_host(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a = await at(c, c3[0]).open()
        ch = c.channel()
        await create(a, ch)
        await join(a, ch)
        sent = [await say(a, ch, f"m{i}", i) for i in range(1, 8)]
        b = await at(c, c3[2]).open()
        await join(b, ch, [a], sent[2:], since=2)
        await b.cmd("leave", ch)
        await a.expect(ev_participant(b, "left", ch), "b left")
        sent += [await say(a, ch, f"n{i}", i) for i in range(8, 11)]
        # back on another host, from where it stopped
        b2 = await at(c, c3[1]).open()
        await join(b2, ch, [a], sent[7:], since=7)
        await say(b2, ch, "back", 11, [a])
    session(c3[0], body)


def test_a_long_history_is_kept_whole_on_every_host(cluster_hosts):
    """More messages than a mirror's log chunk holds (64 KB) and than Redis
    keeps of a relay room's log (1000 entries): the channel's history is
    whole, read with since 0 on the host that followed it live and on one
    that never had the channel.  (A channel is a room of the chat, a relay
    dialect; only the chat's server room relays.)"""
    c3 = cluster_hosts(3)
    n = 1200

    async def body(c):
        a = await at(c, c3[0]).open()
        ch = c.channel()
        await create(a, ch)
        await join(a, ch)
        b = await at(c, c3[1]).open()
        await join(b, ch, [a])
        pad = "x" * 100
        sent = [await say(a, ch, f"{i} {pad}", i) for i in range(1, n + 1)]
        got, _ = await collect(b, n, is_chan_msg(ch), "live on h2", 60)
        assert got == sent
        here = [a, b]
        for h in (c3[2], c3[1]):
            d = await at(c, h).open()
            await join(d, ch, here, sent, since=0)
            here.append(d)
    session(c3[0], body)


def test_a_name_is_taken_on_every_host(cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        holder = await at(c, c3[0]).open()
        await alive(holder)
        for h in c3.hosts[1:]:
            ws = await ws_open_headers(chat_url(h, holder.name))
            c.all.append(ws)
            msgs, code, _ = await expect_close(ws)
            assert len(msgs) == 1 and json.loads(msgs[0]).get("code") == \
                "name_taken", (h, msgs)
            assert code == 1008, (h, code)
        await alive(holder, "the holder after name_taken elsewhere")
        # Free again, cluster-wide, once its connection closed.
        await close_ws(holder.ws)
        deadline = time.monotonic() + 5
        while True:
            ws = await ws_open_headers(chat_url(c3[2], holder.name))
            c.all.append(ws)
            again = Client(ws, holder.name)
            try:
                await alive(again, "the name on another host")
                break
            except AssertionError:
                await close_ws(ws)
                assert time.monotonic() < deadline, \
                    "the name still taken 5 s after its holder closed"
    session(c3[0], body)


def test_a_host_killed_whole_its_users_leave_each_channel_once(
        cluster_hosts):
    c3 = cluster_hosts(3)

    async def body(c):
        a = await at(c, c3[0]).open()
        b = await at(c, c3[1]).open()
        d = await at(c, c3[2]).open()
        e = await at(c, c3[2]).open()
        ch, ch2 = c.channel(), c.channel()
        await create(a, ch, [b, d, e])
        await create(a, ch2, [b, d, e])
        await join(a, ch)
        await join(b, ch, [a])
        await join(d, ch, [a, b])
        await join(e, ch, [a, b, d])
        await join(b, ch2)
        await join(d, ch2, [b])
        sent = [await say(a, ch, f"m{i}", i, [b, d, e]) for i in (1, 2)]
        t0 = time.monotonic()
        c3[2].kill()
        # Each survivor hears "left" once for each of d and e, in each
        # channel it shares with them, and nothing else.
        left = [ev_participant(d, "left", ch), ev_participant(e, "left", ch)]
        got = [await a.recv("h3's users leave", LEASE + 5) for _ in left]
        assert sorted(map(json.dumps, got)) == \
            sorted(map(json.dumps, left)), got
        assert time.monotonic() - t0 <= LEASE + 5
        got_b = [await b.recv("h3's users leave", LEASE + 5)
                 for _ in range(3)]
        want_b = left + [ev_participant(d, "left", ch2)]
        assert sorted(map(json.dumps, got_b)) == \
            sorted(map(json.dumps, want_b)), got_b
        await quiet(a, b, t=LEASE)
        # The channel goes on; d comes back on h1 under its name and gets
        # what it missed with since.
        sent.append(await say(b, ch, "meanwhile", 3, [a]))
        deadline = time.monotonic() + 5
        while True:
            ws = await ws_open_headers(chat_url(c3[0], d.name))
            c.all.append(ws)
            d2 = Client(ws, d.name)
            try:
                await alive(d2, "d under its name on h1")
                break
            except AssertionError:
                await close_ws(ws)
                assert time.monotonic() < deadline, \
                    f"{d.name} still taken after h3 was reaped"
        await join(d2, ch, [a, b], sent[2:], since=2)
        await say(d2, ch, "back", 4, [a, b])
        await quiet(a, b, d2)
    session(c3[0], body, timeout=60)


def test_a_message_is_sent_once_when_its_host_dies_after_sending(
        cluster_hosts):
    """Messages a user on h2 said before h2 was killed reach h1's users
    exactly once each, in order, with dense seqs."""
    c3 = cluster_hosts(2)

    async def body(c):
        a = await at(c, c3[0]).open()
        b = await at(c, c3[1]).open()
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        for i in range(30):
            await b.say(ch, f"burst {i}")
        c3[1].kill()
        got = []
        while True:
            m = await a.recv("the burst and b's leave", LEASE + 5)
            if m.get("type") == "event":
                assert m == ev_participant(b, "left", ch), m
                break
            got.append(m)
        seqs = [m["seq"] for m in got]
        assert seqs == list(range(1, len(got) + 1)), seqs
        assert [m["message"] for m in got] == \
            [f"burst {i}" for i in range(len(got))], got
        assert got == [chan_msg(b, ch, f"burst {i}", i + 1)
                       for i in range(len(got))]
        await quiet(a, t=LEASE)
    session(c3[0], body, timeout=60)


@pytest.mark.parametrize("then", ["next_message", "quiet"])
def test_a_relay_lost_with_its_senders_worker_reaches_other_hosts_in_order(
        cluster_hosts, then):
    """h1's worker is killed as it relays a message it has just kept in
    the channel's history (crash point chat_relay): a listener on h2 gets
    it, seq 2, before the next message, seq 3, said on h1 by another user;
    and a joiner's history has both.  With "quiet" the listener gets it
    from the history within seconds, before anyone says anything else."""
    why = crash_points_built()
    if why is not None:
        pytest.skip(why)
    c2 = cluster_hosts(2, env={"ROOMD_CRASH_AT": "chat_relay",
                               "ROOMD_CRASH_ARM": "{tmp}/arm"})

    async def body(c):
        a = await at(c, c2[1]).open()
        s = await at(c, c2[0]).open()
        ch = c.channel()
        await create(a, ch, [s])
        await join(a, ch)
        await join(s, ch, [a])
        zero = await say(s, ch, "zero", 1, [a])
        open(os.path.join(c2[0].d.tmp, f"arm.{s.pid}"), "w").close()
        await s.say(ch, "one")
        assert await asyncio.to_thread(poll, lambda: _pid_gone(s.pid), 10), \
            f"h1's worker {s.pid} did not pass chat_relay"
        one = chan_msg(s, ch, "one", 2)
        early = []
        if then == "quiet":
            early, _ = await collect(a, 1, is_chan_msg(ch), "one", 5)
        s2 = await at(c, c2[0]).open()
        await join(s2, ch, history=[zero, one])
        await say(s2, ch, "two", 3)
        got, _ = await collect(a, 2 - len(early), is_chan_msg(ch),
                               "one, then two")
        assert early + got == [one, chan_msg(s2, ch, "two", 3)], got
    session(c2[0], body, timeout=60)


def test_channel_events_cross_hosts_whose_rooms_are_numbered_apart(
        cluster_hosts):
    """A host numbers the rooms of its arena in the order it made them, so
    the same channel has another local number on each host once one of
    them made a room the other did not: the channel's events and messages,
    carried by the server room, must be named alike on every host."""
    from conftest import create_room
    c2 = cluster_hosts(2)
    create_room(c2[0], host="first", room_id="numbered-apart")

    async def body(c):
        a = await at(c, c2[1]).open()
        d = await at(c, c2[0]).open()
        ch = c.channel()
        await create(a, ch, [d])
        await join(a, ch)
        await join(d, ch, [a])
        await say(d, ch, "from h1", 1, [a])
        await say(a, ch, "from h2", 2, [d])
        await d.cmd("leave", ch)
        await a.expect(ev_participant(d, "left", ch), "d left, on h2")
        await quiet(a, d)
    session(c2[0], body)


def test_a_user_on_two_hosts_leaves_once_with_the_worker_of_the_last_tab(
        cluster_hosts):
    """A signed-in user has a tab on h1 and one on h2.  h1's worker with
    the first is killed (SIGKILL): the user is still in, on h2, and nobody
    hears a thing.  Then h2's worker with the second is killed: the user
    leaves, told once to a watcher on each host (on a worker of its own).
    The host that lost the worker lets the member go in the commit that
    ends its presence, from the copy's count of the other hosts'."""
    c2 = cluster_hosts(2, chat_session_secret=TABS_SECRET)

    def connections(h, uid):
        return [u for u, _ in members_of(h, "@")].count(uid)

    async def body(c):
        w1 = await at(c, c2[0]).open(slot=1)
        w2 = await at(c, c2[1]).open(slot=1)
        ch = c.channel()
        await create(w1, ch, [w2])
        await join(w1, ch)
        await join(w2, ch, [w1])
        user = tab_user(c)
        uid = user[2]
        t1 = await open_tab(at(c, c2[0]), user, 0)
        t2 = await open_tab(at(c, c2[1]), user, 0)
        await join(t1, ch, [w1, w2])
        await join(t2, ch)
        await quiet(w1, w2, t1)
        os.kill(t1.pid, signal.SIGKILL)
        # h2 hears that h1 has the user no more; nobody is told anything.
        await quiet_until([w1, w2, t2],
                          lambda: connections(c2[1], uid) == 1, 8.0,
                          "h1's lost tab swept, as h2 sees it")
        await quiet(w1, w2, t2, t=1.0)
        for h in c2:
            assert listed(h, ch, uid) == 1, (h.name, members_of(h, ch))
        await say(w2, ch, "still here?", 1, [w1, t2])
        os.kill(t2.pid, signal.SIGKILL)
        left = ev_participant(t2, "left", ch)
        await w2.expect(left, "the last tab lost, on its host", timeout=8.0)
        await w1.expect(left, "the last tab lost, on the other host",
                        timeout=8.0)
        await quiet(w1, w2, t=1.5)
        for h in c2:
            assert listed(h, ch, uid) == 0, (h.name, members_of(h, ch))
    session(c2[0], body, timeout=60)


async def _user_of_worker_0(c, c2):
    """Watchers on h1 (its worker 1) and h2, and a user whose only
    connection is on h1's worker 0, all in one channel: (w1, w2, t, ch)."""
    w1 = await at(c, c2[0]).open(slot=1)
    w2 = await at(c, c2[1]).open()
    ch = c.channel()
    await create(w1, ch, [w2])
    await join(w1, ch)
    await join(w2, ch, [w1])
    t = await at(c, c2[0]).open(slot=0)
    await join(t, ch, [w1, w2])
    await quiet(w1, w2, t)
    return w1, w2, t, ch


async def _left_once(w1, w2, t, ch):
    """t's user leaves ch, told once to the watcher on each host."""
    left = ev_participant(t, "left", ch)
    await w1.expect(left, "the lost user, on its host", timeout=10.0)
    await w2.expect(left, "the lost user, on the other host", timeout=10.0)
    await quiet(w1, w2, t=1.5)


def test_a_worker_lost_while_redis_is_away_lets_its_user_go_once_it_is_back(
        cluster_hosts, redis_factory):
    """h1's worker with a user's only connection is killed while Redis is
    stopped (SIGSTOP, for less than half the lease: no host is cut off).
    The helper that tells Redis what the worker left cannot, and tries
    again until Redis answers: then the user leaves, told once to a
    watcher on each host.  (Before, the one try failed and the user stayed
    in the channel, present on h1 with no connection, for as long as h1's
    session lived.)"""
    red = redis_factory()
    c2 = cluster_hosts(2, redis=red, lease=10)

    async def body(c):
        w1, w2, t, ch = await _user_of_worker_0(c, c2)
        os.kill(red.pid, signal.SIGSTOP)
        try:
            os.kill(t.pid, signal.SIGKILL)
            # The helper's first try waits out its call's timeout (1 s);
            # the next ones fail at once (the primary is suspect).
            await asyncio.sleep(2.5)
        finally:
            os.kill(red.pid, signal.SIGCONT)
        await _left_once(w1, w2, t, ch)
    session(c2[0], body, timeout=60)


def test_a_worker_lost_while_redis_refuses_writes_for_long_lets_its_user_go(
        cluster_hosts, redis_factory):
    """h1's worker with a user's only connection is killed while Redis
    refuses writes (out of memory: maxmemory below what it holds) for
    longer than twice the lease and more.  The hosts' sessions live on
    (a renewal is taken out of memory), so no reaping would ever let the
    user go: the helper tries again for as long as the session it told of
    lives, and the user leaves, told once on each host, once Redis takes
    writes again.  (Before, the helper gave up after twice the lease and
    5 s, and the user stayed for as long as h1's session lived.)"""
    red = redis_factory()
    c2 = cluster_hosts(2, redis=red, lease=2)
    r = red.client()

    async def body(c):
        w1, w2, t, ch = await _user_of_worker_0(c, c2)
        sessions = [h.ctl_json("status")["cluster"]["session"] for h in c2]
        r.config_set("maxmemory", 1)
        try:
            os.kill(t.pid, signal.SIGKILL)
            await quiet(w1, w2, t=2 * 2 + 5 + 1.5)
        finally:
            r.config_set("maxmemory", 0)
        assert [h.ctl_json("status")["cluster"]["session"]
                for h in c2] == sessions, "a host's session ended"
        await _left_once(w1, w2, t, ch)
    session(c2[0], body, timeout=90)


def test_a_helper_killed_before_it_told_redis_is_forked_again(
        cluster_hosts, redis_factory):
    """h1's worker with a user's only connection is killed while Redis is
    stopped, and so is the helper that would tell Redis (SIGKILL, while it
    waits for Redis).  The master forks the helper again with the same
    job, and the user leaves, told once on each host, once Redis answers.
    (Before, the job died with its helper and the user stayed for as long
    as h1's session lived.)"""
    red = redis_factory()
    c2 = cluster_hosts(2, redis=red, lease=10)
    h1 = c2[0]

    def helpers():
        st = h1.ctl_json("status")
        known = {w["pid"] for w in st["workers"]} | {st["cluster"]["keeper"]}
        return [p for p in children(h1.d.proc.pid) if p not in known]

    async def body(c):
        w1, w2, t, ch = await _user_of_worker_0(c, c2)
        assert helpers() == []
        os.kill(red.pid, signal.SIGSTOP)
        try:
            os.kill(t.pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while not helpers() and time.monotonic() < end:
                await asyncio.sleep(0.05)
            first = helpers()
            assert len(first) == 1, first
            os.kill(first[0], signal.SIGKILL)
            end = time.monotonic() + 5
            while helpers() in ([], first) and time.monotonic() < end:
                await asyncio.sleep(0.05)
            assert len(helpers()) == 1 and helpers() != first
            await quiet(w1, w2, t=1.0)
        finally:
            os.kill(red.pid, signal.SIGCONT)
        assert f"helper (pid {first[0]}) killed by signal 9: forked again" \
            in h1.log(), h1.log()
        await _left_once(w1, w2, t, ch)
        end = time.monotonic() + 10
        while helpers() and time.monotonic() < end:
            await asyncio.sleep(0.1)
        assert helpers() == [], "the helper did not finish"
    session(c2[0], body, timeout=60)


"""The chat dialect, mounted at /chat: channels (#name) with a history,
private messages (@name), anonymous users named by ?name= (seed 001, "Simple
chat").

Placement: a connection's worker is read from X-Roomd-Worker on its 101
response.  A connection is placed on a worker by opening it again under a
fresh name until it lands there (a stray changes nothing that matters: it
joins no channel and its name is never used again); so the tests use the
names the harness chose (Client.name) unless the name is the point.

Every user's identifier is learnt from its first event or message and then
required to be the same in all of them.  Messages are compared whole (dict
equality); the key order is not part of the contract and is not checked.

The module's tests share one daemon (2 workers, default settings) and use
channel and user names unique to each test; the tests that need settings
of their own (chat_history, chat_anonymous, max_message_bytes) start one."""
import asyncio
import functools
import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, T, Conns, RawWS, close_ws, expect_close,
                      expect_quiet, recv_json, roomd_bin, send_json, session,
                      start_roomd, watched_daemon, ws_open_headers, ws_worker)
from jwt_helper import mint

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ABSENT = object()       # expect_error: the error must carry no "request"

# (first client's worker slot, second client's worker slot)
PLACES = pytest.mark.parametrize("s1,s2", [(0, 0), (0, 1)],
                                 ids=["same-worker", "cross-worker"])


# ---------------------------------------------------------------- daemon

@pytest.fixture(scope="module")
def chat():
    """A daemon shared by the module's tests that need no settings of their
    own (2 workers), or the ROOMD_URL one."""
    yield from watched_daemon("", 2, "the chat tests' roomd")


# ---------------------------------------------------------------- helpers

def chat_url(d, name=None, query=None):
    if query is None:
        query = "" if name is None else f"name={name}"
    return f"{d.ws_base}/chat" + ("?" + query if query else "")


def without_epoch(m, who=None):
    """A join event carries the arena's epoch last (an addition of roomd):
    check it and take it off, so that events compare as the original's."""
    if isinstance(m, dict) and m.get("type") == "event" and \
            m.get("event") == "join":
        assert list(m)[-1] == "epoch", f"join event without epoch: {m!r}"
        e = m.pop("epoch")
        assert isinstance(e, int) and not isinstance(e, bool) and \
            0 < e < 2 ** 53, f"epoch {e!r}"
        if who is not None:
            who.epoch = e
    return m


class Client:
    """One chat connection: .ws .name .slot .pid and .uid (the user
    identifier, learnt from the first event or message that shows it)."""

    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.slot, self.pid = ws_worker(ws)
        self.uid = None

    def __repr__(self):
        return f"<{self.name} slot {self.slot}>"

    async def send(self, obj):
        await send_json(self.ws, obj)

    async def cmd(self, action, target, **extra):
        req = {"type": "command", "action": action, "target": target}
        req.update(extra)
        await self.send(req)
        return req

    async def say(self, target, text):
        req = {"type": "message", "target": target, "message": text}
        await self.send(req)
        return req

    async def recv(self, what="", timeout=T):
        try:
            return without_epoch(await recv_json(self.ws, timeout), self)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: {what}: nothing within "
                                 f"{timeout} s") from None
        except websockets.ConnectionClosed as e:
            raise AssertionError(f"{self.name}: {what}: connection closed "
                                 f"({e.rcvd})") from None

    async def expect(self, expected, what="", timeout=T):
        m = await self.recv(what or f"expected {expected!r}", timeout)
        assert m == expected, (f"{self.name}: {what}: expected "
                               f"{expected!r}, got {m!r:.600}")
        return m

    def learn(self, uid, what):
        assert isinstance(uid, str) and UUID.match(uid), \
            f"{self.name}: {what}: identifier {uid!r} is not a UUID"
        if self.uid is None:
            self.uid = uid
        assert uid == self.uid, (f"{self.name}: {what}: identifier {uid!r}, "
                                 f"earlier {self.uid!r}")


class Chat(Conns):
    """The connections of one test, all closed at its end, and names unique
    to the test."""

    def __init__(self, d):
        super().__init__(d)
        self.tag = uuid.uuid4().hex[:8]
        self.n = 0

    def fresh(self, stem="u"):
        self.n += 1
        return f"{stem}{self.n}-{self.tag}"

    def channel(self, stem="c"):
        return "#" + self.fresh(stem)

    async def open_raw(self, query):
        ws = await ws_open_headers(chat_url(self.d, query=query))
        self.all.append(ws)
        return ws

    async def open(self, slot=None, name=None, stem="u", attempts=60):
        """A connected user (on worker `slot` if given).  A fixed name and a
        slot do not go together: a stray closing under that name could
        still hold it when the next attempt comes."""
        assert slot is None or name is None
        for _ in range(attempts):
            nm = name if name is not None else self.fresh(stem)
            ws = await ws_open_headers(chat_url(self.d, nm))
            self.all.append(ws)
            if slot is None or ws_worker(ws)[0] == slot:
                return Client(ws, nm)
            await close_ws(ws)
        pytest.fail(f"no chat connection landed on worker slot {slot} in "
                    f"{attempts} tries")


# Every test's session: its Chat, 45 s.
session = functools.partial(session, timeout=45.0, conns=Chat)


def ev_channel(ch, event):
    return {"type": "event", "emitter": "channel", "identifier": ch,
            "event": event}


def ev_participant(who, event, ch):
    assert who.uid is not None, f"{who.name}: identifier not known yet"
    return {"type": "event", "emitter": "participant", "identifier": who.uid,
            "event": event, "name": who.name, "target": ch}


def chan_msg(who, ch, text, seq):
    return {"type": "message", "emitter": "participant", "target": ch,
            "identifier": who.uid, "message": text, "name": who.name,
            "seq": seq}


def priv_msg(who, target, text):
    return {"type": "message", "emitter": "participant", "target": target,
            "identifier": who.uid, "message": text, "name": who.name}


async def quiet(*clients, t=0.3):
    async def one(c):
        try:
            await expect_quiet(c.ws, t)
        except AssertionError as e:
            raise AssertionError(f"{c.name}: {e}") from None
    await asyncio.gather(*(one(c) for c in clients))


async def expect_all(clients, expected, what=""):
    await asyncio.gather(*(c.expect(expected, what) for c in clients))


async def expect_error(c, code, request=ABSENT, what=""):
    m = await c.recv(what or f"error {code}")
    assert isinstance(m, dict) and m.get("type") == "error", \
        f"{c.name}: {what}: expected error {code}, got {m!r:.600}"
    assert m.get("code") == code, \
        f"{c.name}: {what}: expected error {code}, got {m!r:.600}"
    assert isinstance(m.get("message"), str), f"{c.name}: no message: {m!r}"
    if request is ABSENT:
        assert "request" not in m, \
            f"{c.name}: {what}: error {code} carries a request: {m!r:.600}"
    else:
        assert "request" in m and m["request"] == request, \
            (f"{c.name}: {what}: error {code} should echo {request!r} as "
             f"request: {m!r:.600}")
    assert set(m) <= {"type", "code", "message", "request"}, m
    return m


async def alive(c, what="still usable"):
    """Prove c's connection is up and served: a private message to itself
    comes back (and identifies it)."""
    text = f"ping {uuid.uuid4().hex[:6]}"
    await c.say("@" + c.name, text)
    m = await c.recv(what)
    assert isinstance(m, dict) and m.get("type") == "message" and \
        m.get("message") == text, f"{c.name}: {what}: got {m!r:.600}"
    c.learn(m.get("identifier"), what)
    assert m == priv_msg(c, "@" + c.name, text), m
    return m


async def create(c, ch, everyone=()):
    """c creates ch; c and everyone get the create event."""
    await c.cmd("create", ch)
    await expect_all([c, *everyone], ev_channel(ch, "create"),
                     f"create {ch}")


async def join(c, ch, participants=(), history=(), **extra):
    """c joins ch: first the history (exact objects), then its own join
    event; participants (already in ch) get the same join event."""
    await c.cmd("join", ch, **extra)
    for i, h in enumerate(history):
        await c.expect(h, f"join {ch}: history message {i}")
    m = await c.recv(f"join {ch}: own join event")
    assert isinstance(m, dict) and m.get("type") == "event" and \
        m.get("event") == "join", \
        f"{c.name}: join {ch}: expected the join event, got {m!r:.600}"
    c.learn(m.get("identifier"), f"join {ch}")
    assert m == ev_participant(c, "join", ch), m
    await expect_all(participants, ev_participant(c, "join", ch),
                     f"{c.name} joined {ch}")


async def say(c, ch, text, seq, participants=()):
    """c says text in ch; c and participants get it with seq."""
    await c.say(ch, text)
    if c.uid is None:
        m = await c.recv(f"own message in {ch}")
        assert isinstance(m, dict), m
        c.learn(m.get("identifier"), f"message in {ch}")
        assert m == chan_msg(c, ch, text, seq), m
    else:
        await c.expect(chan_msg(c, ch, text, seq), f"own message in {ch}")
    expected = chan_msg(c, ch, text, seq)
    await expect_all(participants, expected, f"{c.name}'s message")
    return expected


async def collect(c, n, pred, what, timeout=10.0):
    """The next n messages satisfying pred (others are kept apart)."""
    got, other = [], []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < n:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"{c.name}: {what}: {len(got)} of {n} "
                                 f"within {timeout} s; last {got[-3:]!r}; "
                                 f"other {other[:5]!r}")
        try:
            m = without_epoch(await recv_json(c.ws, left), c)
        except asyncio.TimeoutError:
            continue
        (got if pred(m) else other).append(m)
    return got, other


def is_chan_msg(ch):
    return lambda m: (isinstance(m, dict) and m.get("type") == "message"
                      and m.get("target") == ch)


def handshake_status(d, query):
    with RawWS(d) as raw:
        status, headers, _ = raw.handshake("/chat" + ("?" + query
                                                      if query else ""))
        return status, headers, raw.last_request


# ---------------------------------------------------------------- connecting

# 1 and 64 characters, every kind of character allowed.  The single
# characters are used by this test only; the others carry the test's tag.
VALID_NAMES = {"one-letter": lambda t: "a", "one-digit": lambda t: "7",
               "dash": lambda t: "-", "underscore": lambda t: "_",
               "mixed": lambda t: "Ab-_9" + t,
               "63-chars": lambda t: (t + "Z" * 63)[:63],
               "64-chars": lambda t: (t + "Z" * 64)[:64]}


@pytest.mark.parametrize("kind", list(VALID_NAMES))
def test_valid_names_connect_quietly_and_are_usable(chat, kind):
    async def body(c):
        name = VALID_NAMES[kind](c.tag)
        u = await c.open(name=name)
        await quiet(u)
        await alive(u)
        # the name comes back as given
        assert u.name == name
    session(chat, body)


@pytest.mark.parametrize("query", [
    "", "name=", "name", "nick=alice", "name=" + "x" * 65, "name=a%20b",
    "name=a+b", "name=a.b", "name=%23chan", "name=%40bob", "name=%C3%A9t%C3%A9",
    "name=a%2Fb", "name=a%00b"],
    ids=["no-query", "empty", "no-value", "other-key", "65-chars", "space",
         "plus", "dot", "hash", "at", "non-ascii", "slash", "nul"])
def test_missing_or_invalid_name_is_400(chat, query):
    status, headers, req = handshake_status(chat, query)
    assert status == 400, (f"request {req!r}: expected 400, got {status} "
                           f"{headers}")


def test_chat_anonymous_no_is_401(roomd_factory):
    d = roomd_factory("chat_anonymous no\n")
    status, headers, req = handshake_status(d, "name=alice")
    assert status == 401, (f"request {req!r} with chat_anonymous no: "
                           f"expected 401, got {status} {headers}")


@pytest.mark.parametrize("slot", [0, 1], ids=["same-worker", "cross-worker"])
def test_name_taken_is_error_then_close_1008(chat, slot):
    async def body(c):
        holder = await c.open(slot=0)
        # Every attempt under the taken name is refused, whatever the
        # worker; keep trying until one lands on `slot`.
        for _ in range(60):
            ws = await ws_open_headers(chat_url(chat, holder.name))
            c.all.append(ws)
            dup = Client(ws, holder.name)
            msgs, code, reason = await expect_close(ws)
            assert len(msgs) == 1, (f"second connection as {holder.name}: "
                                    f"expected one error, got {msgs!r}")
            m = json.loads(msgs[0])
            assert m.get("type") == "error" and m.get("code") == \
                "name_taken" and isinstance(m.get("message"), str) and \
                "request" not in m and set(m) == {"type", "code",
                                                  "message"}, m
            assert code == 1008, (f"name_taken: expected close 1008, got "
                                  f"{code} {reason!r}")
            if dup.slot == slot:
                break
        else:
            pytest.fail(f"no duplicate landed on worker slot {slot}")
        await alive(holder, "the first holder of the name after name_taken")
    session(chat, body)


def test_name_is_free_again_after_disconnect_with_a_new_identifier(chat):
    async def body(c):
        a = await c.open()
        await alive(a)
        first = a.uid
        await close_ws(a.ws)
        deadline = time.monotonic() + 5
        while True:
            ws = await ws_open_headers(chat_url(chat, a.name))
            c.all.append(ws)
            b = Client(ws, a.name)
            try:
                await send_json(ws, {"type": "message",
                                     "target": "@" + a.name,
                                     "message": "probe"})
            except websockets.ConnectionClosed:
                pass
            try:
                m = await b.recv("reconnect under the same name")
            except AssertionError:
                m = {"code": "closed"}
            if m.get("type") == "message":
                break
            assert m.get("code") in ("name_taken", "closed"), m
            await close_ws(ws)
            assert time.monotonic() < deadline, \
                f"{a.name} still taken 5 s after its connection closed"
            await asyncio.sleep(0.05)
        b.learn(m.get("identifier"), "reconnected")
        assert m == priv_msg(b, "@" + b.name, "probe"), m
        assert b.uid != first, ("a reconnect must get a new identifier: "
                                f"both {first}")
    session(chat, body)


# ---------------------------------------------------------------- create

def test_create_is_announced_to_every_client_on_every_worker(chat):
    async def body(c):
        creator = await c.open(slot=0)
        others = [await c.open(slot=s) for s in (0, 0, 1, 1)]
        assert {o.slot for o in others} == {0, 1}
        ch = c.channel()
        await create(creator, ch, others)
        await quiet(creator, *others)
        # the creator has not joined: it is not a participant
        req = await creator.say(ch, "hello?")
        await expect_error(creator, "not_a_participant", req,
                           "the creator messaging before joining")
        # ... and may join as anybody else (nobody else is in the channel)
        await join(creator, ch)
        await quiet(*others)
    session(chat, body)


@PLACES
def test_create_existing_channel_is_channel_exists(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b])
        req = await b.cmd("create", ch)
        await expect_error(b, "channel_exists", req, "create by another")
        req = await a.cmd("create", ch)
        await expect_error(a, "channel_exists", req, "create again by creator")
        await quiet(a, b)
        await alive(a)
        await alive(b)
    session(chat, body)


@pytest.mark.parametrize("n", [63, 64])
def test_longest_channel_name_works(chat, n):
    """Channel names are 1 to 64 characters, 64 included."""
    async def body(c):
        a = await c.open()
        ch = "#" + (c.tag + "L" * n)[:n]
        await create(a, ch)
        await join(a, ch)
        await say(a, ch, "long", 1)
        await a.cmd("destroy", ch)
    session(chat, body)


BAD_CHANNELS = {"no-sigil": "main", "sigil-only": "#", "at-sigil": "@main",
                "65-chars": "#" + "c" * 65, "space": "#a b", "dot": "#a.b",
                "hash-in-name": "#a#b", "non-ascii": "#\u00e9t\u00e9",
                "empty": "", "number": 5, "null": None, "list": ["#a"],
                "missing": ABSENT}


@pytest.mark.parametrize("action", ["create", "destroy", "join", "leave"])
@pytest.mark.parametrize("target", list(BAD_CHANNELS))
def test_command_with_bad_target_is_bad_target(chat, action, target):
    async def body(c):
        a = await c.open()
        req = {"type": "command", "action": action}
        if BAD_CHANNELS[target] is not ABSENT:
            req["target"] = BAD_CHANNELS[target]
        await a.send(req)
        await expect_error(a, "bad_target", req, f"{action} {target}")
        await alive(a)
    session(chat, body)


# ---------------------------------------------------------------- join

@PLACES
def test_join_is_announced_to_every_participant_joiner_included(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=1 - s2)
        outsider = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b, d, outsider])
        await join(a, ch)
        await join(b, ch, [a])
        await join(d, ch, [a, b])
        assert len({a.uid, b.uid, d.uid}) == 3, (a.uid, b.uid, d.uid)
        await quiet(a, b, d, outsider)
    session(chat, body)


def test_join_unknown_channel_is_no_such_channel(chat):
    async def body(c):
        a = await c.open()
        req = await a.cmd("join", c.channel("never"))
        await expect_error(a, "no_such_channel", req)
        await alive(a)
    session(chat, body)


@PLACES
def test_join_twice_is_already_joined(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        req = await b.cmd("join", ch)
        await expect_error(b, "already_joined", req)
        await quiet(a, b)
        await say(b, ch, "still in", 1, [a])
    session(chat, body)


# ---------------------------------------------------------------- history

HISTORY3 = "chat_history 3\n"


@pytest.fixture(scope="module")
def chat3():
    """A daemon with chat_history 3 (none with ROOMD_URL)."""
    if EXTERNAL_URL:
        pytest.skip("needs chat_history 3; ROOMD_URL names an external "
                    "daemon")
    d = start_roomd(HISTORY3, 2)
    try:
        yield d
        assert d.proc.poll() is None, (f"the chat_history 3 roomd died\n"
                                       f"--- log ---\n{d.log_tail()}")
    finally:
        d.stop()


async def channel_with_messages(c, n, slot=0):
    """A channel whose creator (a participant) said n messages; -> (a, ch,
    [the n message objects as delivered live])."""
    a = await c.open(slot=slot)
    ch = c.channel()
    await create(a, ch)
    await join(a, ch)
    sent = []
    for i in range(1, n + 1):
        sent.append(await say(a, ch, f"m{i} \u00e9 \"q\"", i))
    return a, ch, sent


@pytest.mark.parametrize("since,first", [
    (None, 3), (0, 1), (1, 2), (3, 4), (4, 5), (5, None), (9, None)],
    ids=["no-since", "since-0", "since-1", "since-3", "since-4", "since-5",
         "since-beyond"])
@pytest.mark.parametrize("slot", [0, 1], ids=["same-worker", "cross-worker"])
def test_join_replays_history_before_the_join_event(chat3, since, first,
                                                    slot):
    """chat_history 3, 5 messages: without since the last 3; with since N
    every message after N (more than chat_history if need be)."""
    async def body(c):
        a, ch, sent = await channel_with_messages(c, 5)
        b = await c.open(slot=slot)
        extra = {} if since is None else {"since": since}
        hist = [] if first is None else sent[first - 1:]
        await join(b, ch, [a], hist, **extra)
        await quiet(a, b)
        # live messages continue the sequence, for both
        await say(a, ch, "after", 6, [b])
        await say(b, ch, "reply", 7, [a])
    session(chat3, body)


def test_history_goes_to_the_joiner_only(chat3):
    async def body(c):
        a, ch, sent = await channel_with_messages(c, 4)
        b = await c.open(slot=1)
        await join(b, ch, [a], sent[1:])
        d = await c.open(slot=0)
        await join(d, ch, [a, b], sent[1:])
        await quiet(a, b, d)
    session(chat3, body)


def test_history_default_is_the_last_50(chat):
    async def body(c):
        a, ch, sent = await channel_with_messages(c, 53)
        b = await c.open(slot=1)
        await join(b, ch, [a], sent[3:])
        await quiet(a, b)
    session(chat, body)


def test_rejoin_with_since_gets_what_was_missed(chat3):
    async def body(c):
        a, ch, sent = await channel_with_messages(c, 2)
        b = await c.open(slot=1)
        await join(b, ch, [a], sent)
        await b.cmd("leave", ch)
        await a.expect(ev_participant(b, "left", ch), "b left")
        for i in range(3, 7):
            sent.append(await say(a, ch, f"while away {i}", i))
        await quiet(b)
        await join(b, ch, [a], sent[2:], since=2)
    session(chat3, body)


@pytest.mark.parametrize("slot", [0, 1], ids=["same-worker", "cross-worker"])
def test_join_during_traffic_loses_and_repeats_nothing(chat, slot):
    """A participant says 150 messages in a stream; another user joins with
    since 0 in the middle of it: history plus live messages are exactly
    seq 1..150, in order, each once, history before the join event."""
    n = 150

    async def body(c):
        a = await c.open(slot=0)
        ch = c.channel()
        await create(a, ch)
        await join(a, ch)
        b = await c.open(slot=slot)

        async def stream():
            for i in range(1, n + 1):
                await a.say(ch, f"s{i}")
                await asyncio.sleep(0.002)

        task = asyncio.ensure_future(stream())
        try:
            got_a, _ = await collect(a, 40, is_chan_msg(ch), "a's first 40")
            await b.cmd("join", ch, since=0)
            seen = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            join_at = None
            while len([m for m in seen if m.get("type") == "message"]) < n:
                left = deadline - loop.time()
                assert left > 0, (f"b got {len(seen)} messages, last "
                                  f"{seen[-3:]!r}")
                m = await b.recv("b's stream", left)
                if m.get("type") == "event":
                    assert join_at is None and m.get("event") == "join", m
                    b.learn(m.get("identifier"), "join")
                    join_at = len(seen)
                seen.append(m)
            await task
        finally:
            task.cancel()
        rest, other = await collect(a, n - 40, is_chan_msg(ch), "a's rest")
        got_a += rest
        assert [m["seq"] for m in got_a] == list(range(1, n + 1)), \
            [m.get("seq") for m in got_a]
        assert other == [ev_participant(b, "join", ch)], other
        assert join_at is not None, "b never got its join event"
        msgs = [m for m in seen if m.get("type") == "message"]
        seqs = [m.get("seq") for m in msgs]
        assert seqs == list(range(1, n + 1)), \
            f"b's seqs (history + live, join event at {join_at}): {seqs}"
        assert msgs == got_a, "b's copies differ from a's"
        assert seen[join_at] == ev_participant(b, "join", ch)
        assert join_at >= 40, \
            f"history before the join event: only {join_at} messages"
        await quiet(a, b)
    session(chat, body)


# ---------------------------------------------------------------- leave

@PLACES
def test_leave_tells_the_other_participants_not_the_leaver(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=1 - s2)
        outsider = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b, d, outsider])
        await join(a, ch)
        await join(b, ch, [a])
        await join(d, ch, [a, b])
        await b.cmd("leave", ch)
        await expect_all([a, d], ev_participant(b, "left", ch), "b left")
        await quiet(a, b, d, outsider)
        # b is no participant any more: no messages, and may not say any
        await say(a, ch, "without b", 1, [d])
        req = await b.say(ch, "me too")
        await expect_error(b, "not_a_participant", req, "after leaving")
        await quiet(a, b, d)
        # b may come back (same connection, same identifier)
        await join(b, ch, [a, d], [chan_msg(a, ch, "without b", 1)])
        await say(b, ch, "back", 2, [a, d])
    session(chat, body)


def test_leave_when_not_a_participant_is_not_a_participant(chat):
    async def body(c):
        a = await c.open()
        b = await c.open()
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        req = await b.cmd("leave", ch)
        await expect_error(b, "not_a_participant", req, "never joined")
        await join(b, ch, [a])
        await b.cmd("leave", ch)
        await a.expect(ev_participant(b, "left", ch))
        req = await b.cmd("leave", ch)
        await expect_error(b, "not_a_participant", req, "left already")
        await quiet(a, b)
        await alive(b)
    session(chat, body)


def test_leave_of_an_unknown_channel_is_no_such_channel(chat):
    """The checks run in the order of roomd-protocols(7)'s list, where
    no_such_channel comes before not_a_participant."""
    async def body(c):
        b = await c.open()
        req = await b.cmd("leave", c.channel("never"))
        await expect_error(b, "no_such_channel", req, "unknown channel")
        await quiet(b)
        await alive(b)
    session(chat, body)


def test_creator_leaving_keeps_the_channel_and_may_still_destroy_it(chat):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        await a.cmd("leave", ch)
        await b.expect(ev_participant(a, "left", ch))
        await say(b, ch, "alone", 1)
        await a.cmd("destroy", ch)
        await expect_all([a, b], ev_channel(ch, "destroy"), "destroy")
        await quiet(a, b)
    session(chat, body)


# ---------------------------------------------------------------- destroy

@pytest.mark.parametrize("creator_joined", [False, True],
                         ids=["creator-outside", "creator-inside"])
def test_destroy_by_creator_is_announced_to_every_client(chat,
                                                         creator_joined):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        others = [await c.open(slot=s) for s in (0, 1)]
        everyone = [b, *others]
        ch = c.channel()
        await create(a, ch, everyone)
        if creator_joined:
            await join(a, ch)
            await join(b, ch, [a])
        else:
            await join(b, ch)
        await a.cmd("destroy", ch)
        await expect_all([a, *everyone], ev_channel(ch, "destroy"),
                         "destroy")
        await quiet(a, *everyone)
        # gone: join and messages are refused
        req = await others[0].cmd("join", ch)
        await expect_error(others[0], "no_such_channel", req, "join after "
                           "destroy")
        req = await a.say(ch, "anyone?")
        await expect_error(a, "no_such_channel", req, "creator's message "
                           "after destroy")
        req = await b.say(ch, "anyone?")
        await expect_error(b, "no_such_channel", req, "participant's "
                           "message after destroy")
        req = await a.cmd("destroy", ch)
        await expect_error(a, "no_such_channel", req, "destroy twice")
        # the name may be used again, by anybody
        await create(others[1], ch, [a, b, others[0]])
        await quiet(a, *everyone)
        for who in (a, b, others[0]):
            await alive(who)
    session(chat, body)


@PLACES
def test_destroy_by_anyone_but_the_creator_is_forbidden(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b, d])
        await join(a, ch)
        await join(b, ch, [a])
        req = await b.cmd("destroy", ch)
        await expect_error(b, "forbidden", req, "participant destroys")
        req = await d.cmd("destroy", ch)
        await expect_error(d, "forbidden", req, "outsider destroys")
        await quiet(a, b, d)
        await alive(d)
        await say(b, ch, "still here", 1, [a])
    session(chat, body)


def test_destroy_unknown_channel_is_no_such_channel(chat):
    async def body(c):
        a = await c.open()
        req = await a.cmd("destroy", c.channel("never"))
        await expect_error(a, "no_such_channel", req)
        await alive(a)
    session(chat, body)


def test_a_reconnect_under_the_creators_name_is_not_the_creator(chat):
    """Anonymous users are per connection: the creator's name, taken again
    after it disconnected, is another user, who may not destroy."""
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b])
        await close_ws(a.ws)
        a2 = None
        deadline = time.monotonic() + 5
        while a2 is None:
            ws = await ws_open_headers(chat_url(chat, a.name))
            c.all.append(ws)
            cand = Client(ws, a.name)
            try:
                await alive(cand, "reconnect under the creator's name")
                a2 = cand
            except (AssertionError, websockets.ConnectionClosed):
                await close_ws(ws)
                assert time.monotonic() < deadline, \
                    f"{a.name} still taken 5 s after its connection closed"
                await asyncio.sleep(0.05)
        req = await a2.cmd("destroy", ch)
        await expect_error(a2, "forbidden", req, "destroy by a namesake")
        await quiet(b)
        await alive(a2)
        await join(b, ch)
    session(chat, body)


async def recreated_channel(c):
    """a creates ch, a and b join and talk, a destroys ch, d creates ch again
    and joins it (getting no history) and says "new 1" (seq 1): the former
    participants a and b hear nothing of it.  -> (a, b, d, ch)"""
    a = await c.open(slot=0)
    b = await c.open(slot=1)
    d = await c.open(slot=0)
    ch = c.channel()
    await create(a, ch, [b, d])
    await join(a, ch)
    await join(b, ch, [a])
    await say(b, ch, "old 1", 1, [a])
    await say(a, ch, "old 2", 2, [b])
    await a.cmd("destroy", ch)
    await expect_all([a, b, d], ev_channel(ch, "destroy"))
    await create(d, ch, [a, b])
    await join(d, ch, since=0)         # nothing of the old history
    await say(d, ch, "new 1", 1)       # seq starts again
    await quiet(a, b)                  # former participants hear nothing
    return a, b, d, ch


class ERR:
    """Compares equal to an error of that code echoing that request (any
    message text)."""

    def __init__(self, code, request):
        self.code, self.request = code, request

    def __eq__(self, m):
        return (isinstance(m, dict) and m.get("type") == "error" and
                m.get("code") == self.code and
                isinstance(m.get("message"), str) and
                m.get("request") == self.request and
                set(m) == {"type", "code", "message", "request"})

    def __repr__(self):
        return f"<error {self.code} request={self.request!r}>"


async def replies(*clients, t=0.5):
    """Everything each client receives within t seconds."""
    async def drain(cl):
        out = []
        loop = asyncio.get_running_loop()
        end = loop.time() + t
        while True:
            left = end - loop.time()
            if left <= 0:
                return out
            try:
                out.append(without_epoch(await recv_json(cl.ws, left), cl))
            except asyncio.TimeoutError:
                return out
    return await asyncio.gather(*(drain(cl) for cl in clients))


def test_a_channel_created_again_has_no_history_and_seq_from_1(chat):
    async def body(c):
        a, b, d, ch = await recreated_channel(c)
        await say(d, ch, "new 2", 2)
        await quiet(a, b)
    session(chat, body)


def test_former_participants_may_not_message_a_channel_created_again(chat):
    async def body(c):
        a, b, d, ch = await recreated_channel(c)
        req = await b.say(ch, "am I in?")
        got_b, got_d = await replies(b, d)
        assert got_b == [ERR("not_a_participant", req)] and got_d == [], (
            f"request (by {b.name}, a former participant) {req!r}: "
            f"expected error not_a_participant and nothing for the "
            f"participant {d.name}; got {got_b!r} and {d.name} got {got_d!r}")
        await say(d, ch, "new 2", 2)
    session(chat, body)


def test_former_participants_may_not_leave_a_channel_created_again(chat):
    async def body(c):
        a, b, d, ch = await recreated_channel(c)
        req = await b.cmd("leave", ch)
        got_b, got_d = await replies(b, d)
        assert got_b == [ERR("not_a_participant", req)] and got_d == [], (
            f"request (by {b.name}, a former participant) {req!r}: "
            f"expected error not_a_participant and nothing for the "
            f"participant {d.name}; got {got_b!r} and {d.name} got {got_d!r}")
    session(chat, body)


def test_former_participants_may_join_a_channel_created_again(chat):
    async def body(c):
        a, b, d, ch = await recreated_channel(c)
        await join(b, ch, [d], [chan_msg(d, ch, "new 1", 1)], since=0)
        await say(b, ch, "new 2", 2, [d])
        await say(d, ch, "new 3", 3, [b])
        await quiet(a)
    session(chat, body)


def test_leave_after_destroy_is_refused(chat):
    """Once the channel is destroyed nobody is a participant of it: leave is
    refused (not_a_participant by the contract; no_such_channel also
    accepted) - and never silently ignored."""
    async def body(c):
        a = await c.open()
        b = await c.open()
        ch = c.channel()
        await create(a, ch, [b])
        await join(b, ch)
        await a.cmd("destroy", ch)
        await expect_all([a, b], ev_channel(ch, "destroy"))
        req = await b.cmd("leave", ch)
        (got,) = await replies(b, t=1.0)
        assert got in ([ERR("not_a_participant", req)],
                       [ERR("no_such_channel", req)]), (
            f"request (by {b.name}, a participant of the destroyed {ch}) "
            f"{req!r}: expected error not_a_participant (or "
            f"no_such_channel), got {got!r}")
        await alive(b)
    session(chat, body)


# ---------------------------------------------------------------- channel messages

@PLACES
def test_channel_message_reaches_every_participant_sender_included(chat, s1,
                                                                  s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=1 - s2)
        outsider = await c.open(slot=s2)
        ch = c.channel()
        await create(a, ch, [b, d, outsider])
        await join(a, ch)
        await join(b, ch, [a])
        await join(d, ch, [a, b])
        await say(a, ch, "Hello guys!", 1, [b, d])
        await say(b, ch, "hi", 2, [a, d])
        await say(d, ch, "yo", 3, [a, b])
        await quiet(a, b, d, outsider)
    session(chat, body)


TEXTS = {"empty": "", "unicode": "\u00e9t\u00e9 \u2603 \U0001F600",
         "quotes": "say \"hi\" \\ / \b\f\n\r\t", "json-like":
         '{"type":"command","action":"destroy","target":"#x"}',
         "long": "x" * 20000, "control": "\u0001\u001f"}


@pytest.mark.parametrize("kind", list(TEXTS))
def test_message_text_is_delivered_unchanged(chat, kind):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        await say(a, ch, TEXTS[kind], 1, [b])
        await b.say("@" + a.name, TEXTS[kind])
        await expect_all([a, b], priv_msg(b, "@" + a.name, TEXTS[kind]))
    session(chat, body)


def test_message_to_a_channel_by_a_non_participant(chat):
    async def body(c):
        a = await c.open()
        b = await c.open()
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        req = await b.say(ch, "let me in")
        await expect_error(b, "not_a_participant", req)
        req = await b.say(c.channel("never"), "anyone?")
        await expect_error(b, "no_such_channel", req)
        await quiet(a, b)
        await alive(b)
        # nothing was recorded: the first message is seq 1
        await say(a, ch, "first", 1)
    session(chat, body)


def test_seq_counts_per_channel(chat):
    async def body(c):
        a = await c.open()
        x, y = c.channel("x"), c.channel("y")
        await create(a, x)
        await create(a, y)
        await join(a, x)
        await join(a, y)
        await say(a, x, "x1", 1)
        await say(a, y, "y1", 1)
        await say(a, y, "y2", 2)
        await say(a, x, "x2", 2)
        await say(a, x, "x3", 3)
        await say(a, y, "y3", 3)
    session(chat, body)


def test_participants_on_two_workers_see_one_order(chat):
    """Two participants on different workers say 60 messages each at the
    same time; they and an observer on each worker all see the same 120
    messages in the same order, seq 1..120, each sender's in its order."""
    n = 60

    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        o0 = await c.open(slot=0)
        o1 = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b, o0, o1])
        await join(a, ch)
        await join(b, ch, [a])
        await join(o0, ch, [a, b])
        await join(o1, ch, [a, b, o0])

        async def stream(who):
            for i in range(n):
                await who.say(ch, f"{who.name}:{i}")
                await asyncio.sleep(0.001)

        everyone = [a, b, o0, o1]
        results = await asyncio.gather(
            stream(a), stream(b),
            *(collect(w, 2 * n, is_chan_msg(ch), "stream") for w in everyone))
        lists = [r[0] for r in results[2:]]
        for w, (got, other) in zip(everyone, results[2:]):
            assert other == [], f"{w.name}: unexpected {other!r:.500}"
            assert [m.get("seq") for m in got] == list(range(1, 2 * n + 1)), \
                f"{w.name}: seqs {[m.get('seq') for m in got]}"
        for w, got in zip(everyone[1:], lists[1:]):
            assert got == lists[0], (f"{w.name} saw another order than "
                                     f"{a.name}")
        for who in (a, b):
            mine = [m for m in lists[0] if m["identifier"] == who.uid]
            assert [m["message"] for m in mine] == \
                [f"{who.name}:{i}" for i in range(n)], who.name
            assert all(m == chan_msg(who, ch, m["message"], m["seq"])
                       for m in mine)
        senders = [m["identifier"] for m in lists[0]]
        assert a.uid in senders[:n + 10] and b.uid in senders[:n + 10], \
            "the two streams did not interleave at all (test too weak)"
        await quiet(*everyone)
    session(chat, body)


# ---------------------------------------------------------------- private messages

@PLACES
def test_private_message_reaches_the_user_and_the_sender(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=1 - s2)
        await alive(a)
        await b.say("@" + a.name, "psst")       # b's identifier not known
        m = await a.recv("private message")
        b.learn(m.get("identifier"), "private message")
        assert m == priv_msg(b, "@" + a.name, "psst"), m
        await b.expect(priv_msg(b, "@" + a.name, "psst"), "sender's copy")
        await a.say("@" + b.name, "back")
        await expect_all([a, b], priv_msg(a, "@" + b.name, "back"))
        await quiet(a, b, d)
    session(chat, body)


def test_private_message_to_oneself_arrives_once(chat):
    async def body(c):
        a = await c.open()
        await alive(a)
        await a.say("@" + a.name, "note to self")
        await a.expect(priv_msg(a, "@" + a.name, "note to self"))
        await quiet(a)
    session(chat, body)


def test_private_messages_need_no_common_channel_and_have_no_seq(chat):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        await say(a, ch, "public", 1, [b])
        await a.say("@" + b.name, "private")
        await expect_all([a, b], priv_msg(a, "@" + b.name, "private"))
        # a private message takes no seq of the channel, nor its history
        await say(b, ch, "public 2", 2, [a])
        d = await c.open(slot=0)
        await join(d, ch, [a, b], [chan_msg(a, ch, "public", 1),
                                   chan_msg(b, ch, "public 2", 2)])
    session(chat, body)


def test_private_message_to_an_unknown_user_is_no_such_user(chat):
    async def body(c):
        a = await c.open()
        req = await a.say("@" + c.fresh("nobody"), "hello?")
        await expect_error(a, "no_such_user", req)
        await alive(a)
    session(chat, body)


@pytest.mark.parametrize("slot", [0, 1], ids=["same-worker", "cross-worker"])
def test_private_message_to_a_user_gone_is_no_such_user(chat, slot):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=slot)
        await a.say("@" + b.name, "are you there?")
        await a.recv("a's copy")
        await b.recv("b's copy")
        await close_ws(b.ws)
        deadline = time.monotonic() + 5
        while True:
            req = await a.say("@" + b.name, "are you there?")
            m = await a.recv("to a user gone")
            if m.get("type") == "error":
                break
            assert m.get("message") == "are you there?", m
            assert time.monotonic() < deadline, \
                f"{b.name} still reachable 5 s after its connection closed"
            await asyncio.sleep(0.05)
        assert m == ERR("no_such_user", req), m
        await alive(a)
    session(chat, body)


BAD_USERS = {"at-only": "@", "65-chars": "@" + "u" * 65, "space": "@a b",
             "dot": "@a.b", "no-sigil": "alice", "non-ascii": "@\u00e9",
             "empty": "", "number": 7, "null": None, "missing": ABSENT}


@pytest.mark.parametrize("target", list(BAD_USERS))
def test_message_with_bad_target_is_bad_target(chat, target):
    async def body(c):
        a = await c.open()
        req = {"type": "message", "message": "hi"}
        if BAD_USERS[target] is not ABSENT:
            req["target"] = BAD_USERS[target]
        await a.send(req)
        await expect_error(a, "bad_target", req, target)
        await alive(a)
    session(chat, body)


# ---------------------------------------------------------------- refusals

BAD_JSON = {"not-json": "hello", "truncated": '{"type":"command"',
            "trailing": '{"type":"message"} x', "empty": "",
            "single-quotes": "{'type':'message'}", "two-values": "{} {}"}


@pytest.mark.parametrize("kind", list(BAD_JSON))
def test_text_that_is_not_json_is_bad_json_without_request(chat, kind):
    async def body(c):
        a = await c.open()
        await a.ws.send(BAD_JSON[kind])
        await expect_error(a, "bad_json", ABSENT, f"text {BAD_JSON[kind]!r}")
        await alive(a)
    session(chat, body)


@pytest.mark.parametrize("payload", [b'{"type":"message","target":"@x",'
                                     b'"message":"hi"}', b"\x00\xff"],
                         ids=["json", "bytes"])
def test_binary_frame_is_bad_json_without_request(chat, payload):
    async def body(c):
        a = await c.open()
        await a.ws.send(payload)
        await expect_error(a, "bad_json", ABSENT, "binary frame")
        await alive(a)
    session(chat, body)


BAD_REQUESTS = {
    "array": [], "array-of-object": [{"type": "message"}], "number": 5,
    "string": "message", "true": True, "empty-object": {},
    "no-type": {"action": "create", "target": "#x"},
    "type-number": {"type": 1, "action": "create", "target": "#x"},
    "type-null": {"type": None, "message": "x", "target": "@x"},
    "unknown-type": {"type": "event", "target": "#x"},
    "type-case": {"type": "Command", "action": "create", "target": "#x"},
    "unknown-action": {"type": "command", "action": "rename",
                       "target": "#x"},
    "action-case": {"type": "command", "action": "CREATE", "target": "#x"},
    "no-action": {"type": "command", "target": "#x"},
    "action-number": {"type": "command", "action": 1, "target": "#x"},
    "message-number": {"type": "message", "target": "#x", "message": 5},
    "message-null": {"type": "message", "target": "#x", "message": None},
    "message-object": {"type": "message", "target": "@x",
                       "message": {"text": "hi"}},
    "no-message": {"type": "message", "target": "#x"},
}


@pytest.mark.parametrize("kind", list(BAD_REQUESTS))
def test_bad_request_echoes_the_request_and_keeps_the_connection(chat, kind):
    async def body(c):
        a = await c.open()
        req = BAD_REQUESTS[kind]
        await a.ws.send(json.dumps(req))
        await expect_error(a, "bad_request", req, f"request {req!r}")
        await alive(a)
    session(chat, body)


def test_json_null_is_bad_request(chat):
    """null is JSON but no object: bad_request ("request" null or absent)."""
    async def body(c):
        a = await c.open()
        await a.ws.send("null")
        m = await a.recv("null")
        assert m.get("type") == "error" and m.get("code") == "bad_request" \
            and isinstance(m.get("message"), str) and \
            m.get("request", None) is None, m
        await alive(a)
    session(chat, body)


def test_error_echoes_the_request_with_its_extra_fields(chat):
    async def body(c):
        a = await c.open()
        req = {"type": "command", "action": "join", "target": "#" +
               c.fresh("never"), "id": 42, "extra": {"k": [1, "two", None]},
               "since": 3}
        await a.send(req)
        await expect_error(a, "no_such_channel", req)
        await alive(a)
    session(chat, body)


def test_connection_survives_a_burst_of_errors_and_stays_in_its_channels(chat):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(a, ch, [b])
        await join(a, ch)
        await join(b, ch, [a])
        bad = [("bad_json", "nope", ABSENT),
               ("bad_request", [1, 2], [1, 2]),
               ("bad_target", {"type": "command", "action": "join",
                               "target": "x"}, None),
               ("already_joined", {"type": "command", "action": "join",
                                   "target": ch}, None),
               ("channel_exists", {"type": "command", "action": "create",
                                   "target": ch}, None),
               ("forbidden", {"type": "command", "action": "destroy",
                              "target": ch}, None),
               ("no_such_user", {"type": "message", "target": "@" +
                                 c.fresh("nobody"), "message": "x"}, None)]
        for code, msg, _ in bad:
            await b.ws.send(msg if isinstance(msg, str) else json.dumps(msg))
        for code, msg, echo in bad:
            await expect_error(b, code, msg if echo is None else echo,
                               f"burst: {msg!r}")
        await quiet(a)
        await say(b, ch, "still here", 1, [a])
    session(chat, body)


# ---------------------------------------------------------------- connections closing

@PLACES
def test_closing_leaves_every_channel_and_the_others_are_told(chat, s1, s2):
    async def body(c):
        a = await c.open(slot=s1)
        b = await c.open(slot=s2)
        d = await c.open(slot=1 - s2)
        x, y = c.channel("x"), c.channel("y")
        await create(a, x, [b, d])
        await create(a, y, [b, d])
        await join(a, x)
        await join(a, y)
        await join(b, x, [a])
        await join(d, y, [a])
        await close_ws(a.ws)
        await b.expect(ev_participant(a, "left", x), f"{a.name} closed ({x})")
        await d.expect(ev_participant(a, "left", y), f"{a.name} closed ({y})")
        await quiet(b, d)
        # a is no participant any more: the channels go on without it
        await say(b, x, "gone", 1)
        await say(d, y, "gone", 1)
    session(chat, body)


def test_closing_without_channels_tells_nobody(chat):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        ch = c.channel()
        await create(b, ch, [a])
        await join(b, ch)
        await close_ws(a.ws)
        await quiet(b, t=0.5)
    session(chat, body)


def test_one_identifier_per_connection_in_all_its_events_and_messages(chat):
    async def body(c):
        a = await c.open(slot=0)
        b = await c.open(slot=1)
        x, y = c.channel("x"), c.channel("y")
        await create(b, x, [a])
        await create(b, y, [a])
        await join(b, x)
        await join(b, y)
        await alive(a)                  # a.uid from a private message
        await join(a, x, [b])           # checks the join event's identifier
        await say(a, x, "in x", 1, [b])
        await join(a, y, [b])
        await say(a, y, "in y", 1, [b])
        await a.say("@" + b.name, "private")
        await expect_all([a, b], priv_msg(a, "@" + b.name, "private"))
        await a.cmd("leave", x)
        await b.expect(ev_participant(a, "left", x))
        assert a.uid != b.uid
    session(chat, body)


# ---------------------------------------------------------------- frames

def test_invalid_utf8_closes_1007(chat):
    with RawWS(chat) as raw:
        raw.open(f"/chat?name=utf8-{uuid.uuid4().hex[:8]}")
        raw.send_frame(0x1, b'{"type":"message","target":"@x",'
                            b'"message":"\xc3\x28"}')
        code, reason, skipped = raw.recv_close()
        assert code == 1007, (code, reason, skipped)


def test_message_over_max_message_bytes_closes_1009(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    name = "big"
    with RawWS(d) as raw:
        raw.open(f"/chat?name={name}")
        # at the limit: served (the private message comes back)
        head = '{"type":"message","target":"@big","message":"'
        ok = head + "a" * (4096 - len(head) - 2) + '"}'
        assert len(ok) == 4096
        raw.send_text(ok)
        m = raw.recv_json()
        assert m.get("type") == "message" and \
            m.get("message") == "a" * (4096 - len(head) - 2), m
        raw.send_text(head + "a" * 5000 + '"}')
        code, reason, skipped = raw.recv_close()
        assert code == 1009, (code, reason, skipped)


# ---------------------------------------------------------------- tabs

# A signed-in user may have several connections (tabs), on any worker: it
# joins a channel once, when its first tab does, and leaves it once, when
# its last tab does, also when that tab is lost with a killed worker.  The
# users sign in with session tokens minted here over chat_session_secret.

TABS_SECRET = "chat-tabs-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def tabsd():
    """A daemon of the module's own (2 workers) that knows TABS_SECRET."""
    if EXTERNAL_URL:
        pytest.skip("signs users in with a secret of the tests' own")
    d = start_roomd(f"chat_session_secret {TABS_SECRET}\n", 2)
    try:
        yield d
    finally:
        d.stop()


def tab_user(c, stem="tabs"):
    """A new signed-in user -> (session token, name, identifier)."""
    name = c.fresh(stem)
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "chat tabs " + name))
    claims = {"iss": "roomd", "sub": uid, "name": name,
              "exp": int(time.time()) + 600}
    return mint(claims, TABS_SECRET, alg="HS256"), name, uid


async def open_tab(c, user, slot, attempts=60):
    """A connection of user (tab_user) on worker slot; the strays on the
    other worker are closed at once and join nothing."""
    token, name, uid = user
    for _ in range(attempts):
        ws = await ws_open_headers(chat_url(c.d, query=f"token={token}"))
        c.all.append(ws)
        if ws_worker(ws)[0] == slot:
            tab = Client(ws, name)
            tab.uid = uid
            return tab
        await close_ws(ws)
    pytest.fail(f"no connection of {name} landed on worker slot {slot}")


def members_of(d, room):
    """The members roomctl lists for a chat room ("#channel", or "@": the
    connections): [(identifier, connected)].  A channel's room is named
    without its "#"."""
    p = subprocess.run([os.path.join(os.path.dirname(roomd_bin()),
                                     "roomctl"), "-s", d.control_socket,
                        "-j", "room", "chat:" + room.lstrip("#")],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return [(m["id"], m["connected"]) for m in json.loads(p.stdout)[
        "members"]]


def listed(d, ch, uid):
    """How many times the channel's member list names uid."""
    return [u for u, _ in members_of(d, ch)].count(uid)


async def tab_goes(tab, ch, how):
    if how == "leave":
        await tab.cmd("leave", ch)
    else:
        await close_ws(tab.ws)


@PLACES
@pytest.mark.parametrize("how", ["leave", "close"])
def test_a_user_with_two_tabs_joins_once_and_leaves_once(tabsd, s1, s2, how):
    """Two tabs of one user on workers s1 and s2, a watcher on the other
    worker: one join, nothing when the first tab goes (leaving or closing),
    left when the last one goes; the channel lists the user once."""
    async def body(c):
        user = tab_user(c)
        w = await c.open(slot=1 - s2)
        ch = c.channel()
        await create(w, ch)
        await join(w, ch)
        t1 = await open_tab(c, user, s1)
        t2 = await open_tab(c, user, s2)
        await join(t1, ch, [w])
        # the second tab alone hears its join: the user was in already
        await join(t2, ch)
        await quiet(w, t1)
        assert listed(tabsd, ch, user[2]) == 1, members_of(tabsd, ch)
        # both tabs are participants
        await say(w, ch, "to both tabs", 1, [t1, t2])
        # the first tab goes: the user stays, nobody is told
        await tab_goes(t1, ch, how)
        await quiet(w, t2, t=0.5)
        await say(w, ch, "to the second tab", 2, [t2])
        if how == "leave":
            await quiet(t1)
        assert listed(tabsd, ch, user[2]) == 1, members_of(tabsd, ch)
        # the last tab goes: the user leaves
        await tab_goes(t2, ch, how)
        await w.expect(ev_participant(t2, "left", ch), "the last tab went")
        await quiet(w)
        assert listed(tabsd, ch, user[2]) == 0, members_of(tabsd, ch)
    session(tabsd, body)


def test_a_tab_joining_again_after_the_other_left_is_announced(tabsd):
    """The user is out once its only tab in the channel left: another tab
    joining then is announced again, and the user is listed once."""
    async def body(c):
        user = tab_user(c)
        w = await c.open(slot=0)
        ch = c.channel()
        await create(w, ch)
        await join(w, ch)
        t1 = await open_tab(c, user, 0)
        t2 = await open_tab(c, user, 1)
        await join(t1, ch, [w])
        await t1.cmd("leave", ch)
        await w.expect(ev_participant(t1, "left", ch))
        await join(t2, ch, [w])
        await join(t1, ch)
        await quiet(w, t2)
        assert listed(tabsd, ch, user[2]) == 1, members_of(tabsd, ch)
        await say(t1, ch, "from tab 1", 1, [w, t2])
    session(tabsd, body)


async def quiet_until(clients, cond, timeout, what):
    """Wait (at most timeout s) until cond() holds, clients receiving
    nothing meanwhile."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await quiet(*clients, t=0.2)


def test_a_tab_lost_with_its_worker_leaves_only_with_the_last(roomd_factory):
    """Tabs on both workers, a watcher on worker 1: killing worker 0 (SIGKILL)
    takes one tab away and tells nobody; a tab on the new worker 0 joins
    quietly; once it is the last tab, killing worker 0 again makes the
    sweep tell the watcher the user left.  A daemon of its own."""
    d = roomd_factory(f"chat_session_secret {TABS_SECRET}\n")

    def connections(uid):
        """The user's connections the chat lists, lost ones included."""
        return [u for u, _ in members_of(d, "@")].count(uid)

    async def body(c):
        user = tab_user(c)
        uid = user[2]
        w = await c.open(slot=1)
        ch = c.channel()
        await create(w, ch)
        await join(w, ch)
        t1 = await open_tab(c, user, 0)
        t2 = await open_tab(c, user, 1)
        await join(t1, ch, [w])
        await join(t2, ch)
        await quiet(w, t1)
        os.kill(t1.pid, signal.SIGKILL)
        # the lost tab is swept (one connection of the user listed, none
        # waiting to be swept); the watcher hears nothing meanwhile
        await quiet_until([w, t2], lambda: connections(uid) == 1, 6.0,
                          "the lost tab swept")
        await quiet(w, t2, t=1.2)
        assert listed(d, ch, uid) == 1, members_of(d, ch)
        said = await say(w, ch, "after the kill", 1, [t2])
        # a tab on the new worker 0 joins (the history, then its own join
        # alone): the user is in already
        t3 = await open_tab(c, user, 0)
        assert t3.pid != t1.pid
        await join(t3, ch, history=[said])
        await quiet(w, t2)
        await t2.cmd("leave", ch)
        await quiet(w, t2, t3, t=0.5)
        await say(w, ch, "to the third tab", 2, [t3])
        # the last tab is lost with its worker: the user leaves
        os.kill(t3.pid, signal.SIGKILL)
        await w.expect(ev_participant(t3, "left", ch), "the last tab lost",
                       timeout=6.0)
        await quiet(w)
        assert listed(d, ch, uid) == 0, members_of(d, ch)
    session(d, body, timeout=40.0)

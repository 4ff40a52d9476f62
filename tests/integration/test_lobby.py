"""The lobby dialect ("groovejet", seed 002, NOTES.md "lobby"), mounted at
/lobby (and, in two tests, at / like the original server): a WebRTC lobby
where guests reach a room's host by room code and the server relays offer
and answer signals tagged with client ids.

Both usages are covered:
- current usage: POST /lobby/rooms, then WebSockets with ?code=C (and
  ?host for the host), with reconnection by ?clientId=&token=;
- future usage: a bare WebSocket, identity, then createRoom / joinRoom.
And the host life cycle: grace period, host rejoining, migration to a
guest, snapshots of game state, retention of an empty room, keepalive.

Placement: a connection's worker is read from X-Roomd-Worker on its 101
response.  A bare connection changes no state, so it is opened again until
it lands on the wanted worker; a current-usage host cannot be placed that
way (a stray host would hold the room's host seat through its grace
period), so its guests are placed on the OTHER worker instead.

Messages are compared whole (dict equality) and, at the top level and in
"data", in the key order the original Node server sends."""
import asyncio
import functools
import json
import os
import re
import shlex
import subprocess
import signal
import socket
import tempfile
import time
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, T, Conns, RawWS, check, close_ws, expect,
                      expect_close, http_req, parse_worker, quiet, recv_json,
                      recv_until, roomd_bin, send_json, session,
                      watched_daemon, ws_open, ws_worker)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                   r"-[0-9a-f]{12}$")
TOKEN = re.compile(r"^[0-9a-fA-F]{32}$")
CODE = re.compile(r"^[0-9a-z]{5}$")

MISSING_CODE = "Missing room code in query string"

# Timers of the daemons of this file: short, so that the file runs in about
# a minute.  The server keeps time in whole seconds and checks its timers
# once a second, so a timer of N seconds fires after N-1 to N+1 seconds: an
# event due after N seconds is awaited for N + 3, and nothing that must
# still exist is left alone for more than N - 1.  room_ttl is 2, not 1, so
# that a POSTed room surely lives until its host connects.
SHORT = ("lobby_grace 1\nlobby_ping_interval 1\nlobby_retention 4\n"
         "room_ttl 2\n")
# The module's shared daemon: a grace long enough for a host to reconnect
# well within it.
PATIENT = "lobby_grace 4\nlobby_ping_interval 1\nlobby_retention 4\n"

SIGNALS = {"string": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n",
           "object": {"type": "offer", "sdp": "v=0\r\n", "n": [1, 2.5, None],
                      "deep": {"a": {"b": [True, False]}}},
           "array": [1, "two", {"three": 3}, [], {}],
           "number": 12345,
           "float": -1.5e10,
           "bool": True,
           "null": None,
           "unicode": "\u00e9\u2603\U0001F600 \"quoted\" \\ /",
           "empty-object": {}}

STATES = {"object": {"level": 3, "players": [{"id": "a", "hp": 10},
                                             {"id": "b", "hp": 0}],
                     "map": {"seed": 12345, "name": "\u00e9t\u00e9"}},
          "array": [1, [2, [3, [4]]], {"k": None}],
          "string": "saved \"state\" \u2603",
          "number": 42,
          "bool": False}


# ---------------------------------------------------------------- daemons

@pytest.fixture(scope="module")
def lobby():
    """A daemon shared by the module's tests that need no settings of their
    own (2 workers, PATIENT timers), or the ROOMD_URL one."""
    yield from watched_daemon(PATIENT, 2, "the lobby tests' roomd")


# ---------------------------------------------------------------- helpers

class Client:
    """One lobby connection and the identity the server gave it."""

    def __init__(self, ws, ident):
        self.ws = ws
        self.id = ident["clientId"]
        self.token = ident["token"]
        self.slot, self.pid = ws_worker(ws)

    def pair(self):
        return f"clientId={self.id}&token={self.token}"


class LobbyConns(Conns):
    """The connections of one test, all closed at its end, under prefix."""

    def __init__(self, d, prefix="/lobby"):
        super().__init__(d)
        self.prefix = prefix

    def url(self, query="", path=None):
        path = (self.prefix or "/") if path is None else path
        return self.d.ws_base + path + ("?" + query if query else "")

    async def open(self, query="", slot=None, path=None, attempts=60):
        """Open a WebSocket (on worker `slot` if given).  Connections that
        land elsewhere are closed again: use slot only for bare or guest
        connections, never for a host's."""
        url = self.url(query, path)
        for _ in range(attempts):
            ws = await ws_open(url)
            self.all.append(ws)
            if slot is None or ws_worker(ws)[0] == slot:
                return ws
            await close_ws(ws)
        pytest.fail(f"no WebSocket to {url} landed on worker slot {slot} "
                    f"in {attempts} tries")

    async def client(self, query="", slot=None, path=None):
        """open(), then read the identity message every connection gets
        first."""
        ws = await self.open(query, slot, path)
        ident = await read_identity(ws, f"connection {query!r}")
        return Client(ws, ident)


# Every test's session opens its connections with LobbyConns (a prefix
# may be given: session(d, body, prefix="/")).
session = functools.partial(session, conns=LobbyConns)


QUIET = 0.2     # how long "nothing arrives" is listened for
quiet = functools.partial(quiet, t=QUIET)


async def read_identity(ws, what=""):
    try:
        m = await recv_json(ws)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: no identity message within {T} s") \
            from None
    assert m.get("type") == "identity", f"{what}: expected identity first, " \
        f"got {m!r:.500}"
    assert list(m) == ["type", "data"], f"{what}: {m!r}"
    data = m["data"]
    assert isinstance(data, dict) and set(data) == {"clientId", "token"}, \
        f"{what}: identity data {data!r}"
    assert isinstance(data["clientId"], str) and UUID4.match(data["clientId"]), \
        f"{what}: clientId is not a UUID v4: {data!r}"
    assert isinstance(data["token"], str) and TOKEN.match(data["token"]), \
        f"{what}: token is not 32 hex digits: {data!r}"
    return data


async def expect_error(ws, etype, message=None, what=""):
    """The error message, then the server closes the connection."""
    try:
        m = await recv_json(ws)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: expected error {etype}, got nothing "
                             f"within {T} s") from None
    except websockets.ConnectionClosed as e:
        raise AssertionError(f"{what}: expected error {etype}, but the "
                             f"connection closed first ({e})") from None
    assert m.get("type") == "error" and m.get("errorType") == etype, \
        f"{what}: expected error {etype!r}, got {m!r:.500}"
    assert list(m) == ["type", "errorType", "errorMessage"], \
        f"{what}: error keys {list(m)}: {m!r:.500}"
    assert isinstance(m["errorMessage"], str), f"{what}: {m!r}"
    if message is not None:
        assert m["errorMessage"] == message, \
            f"{what}: errorMessage {m['errorMessage']!r}, expected {message!r}"
    try:
        msgs, code, reason = await expect_close(ws)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: error {etype} sent but the connection "
                             f"was not closed within {T} s") from None
    assert msgs == [], f"{what}: messages after the error: {msgs!r:.500}"
    assert code is not None, f"{what}: the server dropped the connection " \
        "without a close frame"
    return m


async def expect_invalid_token(ws, tried_ids, what=""):
    """A fresh identity (none of tried_ids), then invalidToken and a
    close."""
    ident = await read_identity(ws, what)
    assert ident["clientId"] not in tried_ids, \
        f"{what}: identity after a wrong pair is not fresh: {ident!r}"
    await expect_error(ws, "invalidToken", None, what)
    return ident


async def every_case(c, cases, fn):
    """Run `await fn(c, name, value)` for every case at once (each in a room
    of its own); fail naming every case that failed."""
    names = list(cases)
    res = await asyncio.gather(*(fn(c, n, cases[n]) for n in names),
                               return_exceptions=True)
    bad = [(n, r) for n, r in zip(names, res) if isinstance(r, BaseException)]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(names)} cases failed:\n" +
                             "\n".join(f"  [{n}] {type(r).__name__}: {r}"
                                        for n, r in bad))


def post_room(d, path="/lobby/rooms"):
    r = http_req(d, "POST", path)
    assert r.status == 200, f"create room: {r!r}"
    assert isinstance(r.json, dict) and list(r.json) == ["code"], \
        f"create room body: {r!r}"
    assert isinstance(r.json["code"], str) and CODE.match(r.json["code"]), \
        f"room code: {r!r}"
    return r.json["code"]


def offer_msg(signal, **extra):
    return {"type": "guestOfferSignal",
            "data": dict({"offerSignal": signal}, **extra)}


def offer_seen(signal, guest_id):
    return {"type": "guestOfferSignal",
            "data": {"offerSignal": signal, "clientId": guest_id}}


def answer_msg(signal, guest_id):
    return {"type": "hostAnswerSignal",
            "data": {"answerSignal": signal, "clientId": guest_id}}


def answer_seen(signal):
    return {"type": "hostAnswerSignal", "data": {"answerSignal": signal}}


async def relay(host, guest, signal="sig", others=()):
    """Offer guest -> host and answer host -> guest, both delivered whole;
    nobody else hears anything."""
    await send_json(guest.ws, offer_msg(signal))
    await expect(host.ws, offer_seen(signal, guest.id), "offer at the host")
    await send_json(host.ws, answer_msg(signal, guest.id))
    await expect(guest.ws, answer_seen(signal), "answer at the guest")
    await quiet(host.ws, guest.ws, *[o.ws for o in others])


async def current_room(c, guests=("other",), host_flag="host=true"):
    """POST a room; its host connects with ?code=C&<host_flag> wherever it
    lands; guests connect with ?code=C on the worker named by each entry of
    guests: "other" (not the host's), "same" (the host's) or a slot.
    -> (code, host, [guests])"""
    code = post_room(c.d)
    h = await c.client(f"code={code}&{host_flag}")
    await quiet(h.ws, t=0.2)        # no error: it is the host
    gs = []
    for where in guests:
        gs.append(await guest_on(c, code, h, where))
    return code, h, gs


async def guest_on(c, code, host, where="other", extra=""):
    slot = {"other": 1 - host.slot, "same": host.slot}.get(where, where)
    g = await c.client(f"code={code}{extra}", slot=slot)
    assert g.id != host.id
    return g


async def create_room(c, slot=None, migration=None):
    """A bare connection on `slot` sends createRoom. -> (code, host)"""
    h = await c.client(slot=slot)
    msg = {"type": "createRoom"}
    if migration is not None:
        msg["data"] = {"migration": migration}
    await send_json(h.ws, msg)
    m = await recv_json(h.ws)
    assert m.get("type") == "roomCreated", f"createRoom: {m!r:.500}"
    assert list(m) == ["type", "data"] and isinstance(m["data"], dict) and \
        list(m["data"]) == ["roomCode"], f"roomCreated: {m!r}"
    assert isinstance(m["data"]["roomCode"], str) and \
        CODE.match(m["data"]["roomCode"]), f"roomCreated: {m!r}"
    # then the same under groovejet's later name (lobby_replies both)
    await expect(h.ws, created(m["data"]["roomCode"]), "createdRoom")
    return m["data"]["roomCode"], h


def created(code):
    return {"type": "createdRoom", "data": {"roomCode": code}}


def joined(is_host, reconnected):
    return {"type": "roomJoined",
            "data": {"clientIsHost": is_host, "reconnected": reconnected}}


def joined_gj(is_host):
    return {"type": "joinedRoom", "data": {"isHost": is_host}}


async def expect_joined(ws, is_host, reconnected, what=""):
    """roomJoined, then joinedRoom (lobby_replies both)."""
    await expect(ws, joined(is_host, reconnected), what)
    await expect(ws, joined_gj(is_host), what + " (joinedRoom)")


async def join_room(c, code, slot=None, **data):
    """A bare connection on `slot` sends joinRoom; returns it and the
    message that followed (the caller checks it)."""
    x = await c.client(slot=slot)
    await send_json(x.ws, {"type": "joinRoom",
                           "data": dict({"roomCode": code}, **data)})
    return x


async def join_guest(c, code, slot=None):
    g = await join_room(c, code, slot)
    await expect_joined(g.ws, False, False, "joinRoom as a guest")
    return g


async def future_room(c, host_slot=0, guest_slots=(1,), migration=None):
    code, h = await create_room(c, host_slot, migration)
    gs = [await join_guest(c, code, s) for s in guest_slots]
    return code, h, gs


async def rejoin(c, code, who, is_host, slot=None):
    """Reconnect `who` by joinRoom with its clientId and token.  An identity
    message before roomJoined is allowed, and must then carry who's
    identity.  Returns a Client standing for who."""
    x = await join_room(c, code, slot, clientId=who.id, token=who.token)
    m, skipped = await recv_until(x.ws, lambda m: m.get("type") != "identity")
    for s in skipped:
        assert s.get("data", {}).get("clientId") == who.id and \
            s["data"].get("token") == who.token, \
            f"identity on reconnection is not the restored one: {s!r}"
    check(m, joined(is_host, True), "joinRoom with a known clientId/token")
    await expect(x.ws, joined_gj(is_host), "joinedRoom on reconnection")
    x.id, x.token = who.id, who.token
    return x


async def reconnect_current(c, code, who, host_flag=True, slot=None):
    """Reconnect `who` with ?code=C&clientId=&token= (and host): the identity
    must carry the same clientId and token."""
    q = f"code={code}&{who.pair()}" + ("&host=true" if host_flag else "")
    ws = await c.open(q, slot)
    ident = await read_identity(ws, "reconnection")
    assert (ident["clientId"], ident["token"]) == (who.id, who.token), \
        f"reconnection got identity {ident!r}, expected {who.id}/{who.token}"
    return Client(ws, ident)


async def save(host, state):
    await send_json(host.ws, {"type": "saveSnapshot", "data": state})
    m = await recv_json(host.ws)
    assert m.get("type") == "snapshotSaved", f"saveSnapshot: {m!r:.500}"
    assert list(m) == ["type", "data"] and list(m["data"]) == ["version"], m
    v = m["data"]["version"]
    assert isinstance(v, int) and not isinstance(v, bool) and v >= 1, m
    return v


async def get_snapshot(who, version, state, what="getSnapshot"):
    await send_json(who.ws, {"type": "getSnapshot"})
    await expect(who.ws, {"type": "snapshot",
                          "data": {"version": version, "state": state}}, what)


def random_pair():
    return str(uuid.uuid4()), os.urandom(16).hex()


def wait_respawn(d, slot, old_pid, timeout=10.0):
    """Block until a new process serves worker `slot` (call via to_thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = http_req(d, "GET", "/canvas/rooms", timeout=1.0)
            s, p = parse_worker(r.header("X-Roomd-Worker"))
            if s == slot and p != old_pid:
                return p
        except (OSError, AssertionError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"worker slot {slot} (pid {old_pid}, SIGKILLed) "
                         f"was not replaced within {timeout} s")


# ---------------------------------------------------------------- HTTP

def test_post_rooms_returns_a_code_with_cors(lobby):
    r = http_req(lobby, "POST", "/lobby/rooms")
    assert r.status == 200, r
    ct = (r.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ct == "application/json", f"Content-Type: {r!r}"
    assert r.header("Access-Control-Allow-Origin") == "*", r
    assert isinstance(r.json, dict) and list(r.json) == ["code"], r
    assert isinstance(r.json["code"], str) and CODE.match(r.json["code"]), r


def test_post_rooms_with_a_json_body_is_the_same(lobby):
    r = http_req(lobby, "POST", "/lobby/rooms", body={"anything": 1},
                 headers={"Origin": "http://game.example"})
    assert r.status == 200, r
    assert r.header("Access-Control-Allow-Origin") == "*", r
    assert list(r.json) == ["code"] and CODE.match(r.json["code"]), r


def test_room_codes_are_unique(lobby):
    codes = [post_room(lobby) for _ in range(60)]
    assert len(set(codes)) == len(codes), f"duplicate codes: {codes}"


def test_options_rooms_is_204_with_cors_headers(lobby):
    r = http_req(lobby, "OPTIONS", "/lobby/rooms", headers={
        "Origin": "http://game.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status == 204, r
    assert r.body == b"", r
    assert r.header("Access-Control-Allow-Origin") == "*", r
    methods = (r.header("Access-Control-Allow-Methods") or "").upper()
    assert "POST" in [m.strip() for m in methods.split(",")], \
        f"POST not in Access-Control-Allow-Methods: {r!r}"
    allowed = (r.header("Access-Control-Allow-Headers") or "").lower()
    assert "content-type" in [h.strip() for h in allowed.split(",")] or \
        allowed.strip() == "*", \
        f"Content-Type not in Access-Control-Allow-Headers: {r!r}"


def test_room_nobody_connects_to_expires_after_room_ttl(roomd_factory):
    d = roomd_factory(SHORT)

    # room_ttl 2: a fresh room exists, one left alone for 4.5 s is gone.
    async def body(c):
        fresh = post_room(d)
        idle = post_room(d)
        g = await c.client(f"code={fresh}")
        await expect_error(g.ws, "hostDisconnected",
                           f"The host for room {fresh} has disconnected",
                           "guest of a fresh room")
        await asyncio.sleep(4.5)
        x = await c.client(f"code={idle}")
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {idle}",
                           "guest of a room left alone past room_ttl")
        x = await c.client(f"code={idle}&host=true")
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {idle}",
                           "host of a room left alone past room_ttl")
    session(d, body)


# ---------------------------------------------------------------- identity

@pytest.mark.parametrize("path", ["/lobby", "/lobby/"])
def test_bare_connection_gets_identity_then_waits(lobby, path):
    async def body(c):
        x = await c.client(path=path)
        await quiet(x.ws, t=0.5)
    session(lobby, body)


def test_identities_are_unique(lobby):
    async def body(c):
        xs = [await c.client() for _ in range(20)]
        ids = [x.id for x in xs]
        toks = [x.token for x in xs]
        assert len(set(ids)) == len(ids), f"duplicate clientIds: {ids}"
        assert len(set(toks)) == len(toks), f"duplicate tokens: {toks}"
        assert {x.slot for x in xs} == {0, 1}, "all on one worker"
    session(lobby, body)


# ---------------------------------------------------------------- current usage: errors

MISSING_QUERIES = ["host", "host=true", "host=false", "code={c}&code={c}",
                   "host&code={c}&code={c}", "code={c}&code=zzzzz",
                   "foo=bar&host="]


def test_missing_room_code(lobby):
    async def one(c, query, _):
        code, h, _ = await current_room(c, guests=())
        x = await c.client(query.format(c=code))
        await expect_error(x.ws, "missingRoomCode", MISSING_CODE,
                           f"?{query}")
        await quiet(h.ws)

    async def body(c):
        await every_case(c, dict.fromkeys(MISSING_QUERIES), one)
    session(lobby, body)


@pytest.mark.parametrize("role", ["guest", "host"])
@pytest.mark.parametrize("code", ["zzzzz", "NOPE"])
def test_unknown_room_code_is_no_room_found(lobby, role, code):
    async def body(c):
        q = f"code={code}" + ("&host=true" if role == "host" else "")
        x = await c.client(q)
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {code}", f"?{q}")
    session(lobby, body)


def test_second_host_is_host_already_exists(lobby):
    async def one(c, flag, _):
        code, h, (g,) = await current_room(c)
        x = await c.client(f"code={code}&{flag}")
        await expect_error(
            x.ws, "hostAlreadyExists",
            f"You're trying to connect as a host, but the room {code} "
            f"already has a host", f"second host ?{flag}")
        await quiet(h.ws, g.ws)
        await relay(h, g)           # the first host is still the host

    async def body(c):
        await every_case(c, dict.fromkeys(["host", "host=true",
                                           "host=false"]), one)
    session(lobby, body)


def test_host_without_identity_takes_a_disconnected_hosts_seat_at_once(lobby):
    """The original frees the host's seat when its socket closes: a new
    ?code=C&host connection is the host at once (the guests hear
    hostRejoined), and the old host, coming back, is a guest."""
    async def body(c):
        code, h, (g,) = await current_room(c)
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        h2 = await c.client(f"code={code}&host=true")
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await quiet(h2.ws, g.ws)
        await relay(h2, g, "new host")
        # a third host is refused: the new one is connected
        x = await c.client(f"code={code}&host=true")
        await expect_error(
            x.ws, "hostAlreadyExists",
            f"You're trying to connect as a host, but the room {code} "
            f"already has a host", "host while the new one is connected")
        # the old host comes back with its identity: as a guest
        old = await reconnect_current(c, code, h)
        await quiet(old.ws, g.ws, h2.ws)
        await relay(h2, old, "old host as a guest", others=[g])
    session(lobby, body)


def test_guest_before_the_host_connected_is_host_disconnected(lobby):
    async def body(c):
        code = post_room(lobby)
        g = await c.client(f"code={code}")
        await expect_error(g.ws, "hostDisconnected",
                           f"The host for room {code} has disconnected",
                           "guest of a room without host yet")
        # the room is still there for its host
        h = await c.client(f"code={code}&host")
        await quiet(h.ws, t=0.2)
        g = await guest_on(c, code, h)
        await relay(h, g)
    session(lobby, body)


def test_guest_while_the_host_is_disconnected_is_host_disconnected(lobby):
    async def body(c):
        code, h, (g1,) = await current_room(c)
        await close_ws(h.ws)
        await expect(g1.ws, {"type": "hostDisconnected"}, "connected guest")
        g2 = await c.client(f"code={code}", slot=g1.slot)
        await expect_error(g2.ws, "hostDisconnected",
                           f"The host for room {code} has disconnected",
                           "guest arriving during the grace period")
        await quiet(g1.ws)
    session(lobby, body)


# ---------------------------------------------------------------- current usage: relay

@pytest.mark.parametrize("where", ["other", "same"],
                         ids=["cross-worker", "same-worker"])
def test_offer_and_answer_are_relayed_whole(lobby, where):
    async def body(c):
        code, h, (g1, g2) = await current_room(c, guests=(where, "other"))
        for kind, sig in SIGNALS.items():
            await send_json(g1.ws, offer_msg(sig))
            await expect(h.ws, offer_seen(sig, g1.id),
                         f"{kind} offer at the host")
            await send_json(h.ws, answer_msg(sig, g1.id))
            await expect(g1.ws, answer_seen(sig), f"{kind} answer at the guest")
        await quiet(h.ws, g1.ws, g2.ws)
    session(lobby, body)


def test_host_present_with_any_value_is_host(lobby):
    async def one(c, flag, _):
        code = post_room(lobby)
        h = await c.client(f"{flag}&code={code}")
        await quiet(h.ws)
        g = await guest_on(c, code, h)
        await relay(h, g)

    async def body(c):
        await every_case(c, dict.fromkeys(["host", "host=", "host=false",
                                           "host=0", "host=true"]), one)
    session(lobby, body)


def test_lobby_and_lobby_slash_and_extra_query_keys_serve_the_same_rooms(lobby):
    async def body(c):
        code = post_room(lobby)
        h = await c.client(f"code={code}&host=true&v=2", path="/lobby/")
        await quiet(h.ws, t=0.2)
        g1 = await c.client(f"code={code}", slot=1 - h.slot, path="/lobby")
        g2 = await c.client(f"name=x&code={code}", slot=1 - h.slot,
                            path="/lobby/")
        await relay(h, g1, "a", others=[g2])
        await relay(h, g2, "b", others=[g1])
    session(lobby, body)


def test_guest_data_extra_keys_are_dropped_and_client_id_cannot_be_forged(lobby):
    async def body(c):
        code, h, (g1, g2) = await current_room(c, guests=("other", "other"))
        await send_json(g1.ws, offer_msg("o1", clientId=g2.id, extra=[1],
                                         answerSignal="x"))
        await expect(h.ws, offer_seen("o1", g1.id), "offer with extra keys")
        await send_json(g1.ws, {"type": "guestOfferSignal", "clientId": g2.id,
                                "data": {"clientId": h.id,
                                         "offerSignal": {"x": 1}}})
        await expect(h.ws, offer_seen({"x": 1}, g1.id), "forged clientId")
        await quiet(h.ws, g1.ws, g2.ws)
    session(lobby, body)


def test_answer_reaches_only_the_addressed_guest(lobby):
    async def body(c):
        code, h, gs = await current_room(c, guests=("other", "same", "other"))
        for i, g in enumerate(gs):
            await send_json(h.ws, answer_msg(f"to-{i}", g.id))
            await expect(g.ws, answer_seen(f"to-{i}"), f"guest {i}")
            await quiet(h.ws, *[o.ws for o in gs])
    session(lobby, body)


def test_many_guests_on_both_workers_signal_at_once(lobby):
    n = 12

    async def body(c):
        code, h, gs = await current_room(
            c, guests=["other" if i % 3 else "same" for i in range(n)])
        await asyncio.gather(*(send_json(g.ws, offer_msg({"n": i}))
                               for i, g in enumerate(gs)))
        got = [await recv_json(h.ws) for _ in gs]
        want = [offer_seen({"n": i}, g.id) for i, g in enumerate(gs)]
        key = lambda m: json.dumps(m, sort_keys=True)   # noqa: E731
        assert sorted(got, key=key) == sorted(want, key=key), got
        for i, g in enumerate(gs):
            await send_json(h.ws, answer_msg({"to": i}, g.id))
        for i, g in enumerate(gs):
            await expect(g.ws, answer_seen({"to": i}), f"guest {i}")
        await quiet(h.ws, *[g.ws for g in gs])
    session(lobby, body)


# (sender, frame kind, payload builder(host, g1, g2))
DROPPED = {
    "guest-unknown-type": ("guest", "text",
                           lambda h, g1, g2: {"type": "noSuchType",
                                              "data": {"offerSignal": "x"}}),
    "host-unknown-type": ("host", "text",
                          lambda h, g1, g2: {"type": "noSuchType",
                                             "data": {"clientId": g1.id}}),
    "guest-no-type": ("guest", "text",
                      lambda h, g1, g2: {"data": {"offerSignal": "x"}}),
    "guest-identity-type": ("guest", "text",
                            lambda h, g1, g2: {"type": "identity",
                                               "data": {"clientId": h.id}}),
    "host-answer-unknown-id": ("host", "text",
                               lambda h, g1, g2: answer_msg(
                                   "a", str(uuid.uuid4()))),
    "host-answer-no-id": ("host", "text",
                          lambda h, g1, g2: {"type": "hostAnswerSignal",
                                             "data": {"answerSignal": "a"}}),
    "host-answer-id-not-a-string": ("host", "text",
                                    lambda h, g1, g2: answer_msg("a", 7)),
    "guest-binary-offer": ("guest", "binary",
                           lambda h, g1, g2: offer_msg("bin")),
    "host-binary-answer": ("host", "binary",
                           lambda h, g1, g2: answer_msg("bin", g1.id)),
    "guest-bad-json": ("guest", "raw", lambda h, g1, g2: '{"type": "guestOf'),
    "host-bad-json": ("host", "raw", lambda h, g1, g2: "{bad json"),
    "guest-array": ("guest", "raw",
                    lambda h, g1, g2: json.dumps([offer_msg("arr")])),
    "guest-string": ("guest", "raw", lambda h, g1, g2: '"guestOfferSignal"'),
    "guest-null": ("guest", "raw", lambda h, g1, g2: "null"),
    "host-empty": ("host", "raw", lambda h, g1, g2: ""),
    "guest-sends-answer-to-other-guest": ("guest", "text",
                                          lambda h, g1, g2: answer_msg(
                                              "hijack", g2.id)),
    "host-sends-offer": ("host", "text", lambda h, g1, g2: offer_msg("x")),
}


def test_dropped_silently_and_connection_stays_up(lobby):
    async def one(c, case, spec):
        who, kind, build = spec
        code, h, (g1, g2) = await current_room(c, guests=("other", "same"))
        sender = h if who == "host" else g1
        payload = build(h, g1, g2)
        if kind == "text":
            await sender.ws.send(json.dumps(payload))
        elif kind == "binary":
            await sender.ws.send(json.dumps(payload).encode())
        else:
            await sender.ws.send(payload)
        await quiet(h.ws, g1.ws, g2.ws, t=0.3)
        # everyone is still connected and the relays work
        await relay(h, g1, "after-1", others=[g2])
        await relay(h, g2, "after-2", others=[g1])

    async def body(c):
        await every_case(c, DROPPED, one)
    session(lobby, body)


def test_offer_while_the_host_is_away_is_dropped(lobby):
    async def body(c):
        code, h, (g,) = await current_room(c)
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        await send_json(g.ws, offer_msg("lost"))
        await quiet(g.ws)
        h2 = await reconnect_current(c, code, h)
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await quiet(h2.ws, g.ws)        # the lost offer is not replayed
        await relay(h2, g, "found")
    session(lobby, body)


# ---------------------------------------------------------------- current usage: reconnection

@pytest.mark.parametrize("flag", [True, False], ids=["with-host", "without-host"])
def test_host_reconnects_with_its_identity(lobby, flag):
    async def body(c):
        code, h, (g1, g2) = await current_room(c, guests=("other", "same"))
        await relay(h, g1, "before")
        await close_ws(h.ws)
        await expect(g1.ws, {"type": "hostDisconnected"}, "guest 1")
        await expect(g2.ws, {"type": "hostDisconnected"}, "guest 2")
        h2 = await reconnect_current(c, code, h, host_flag=flag)
        await expect(g1.ws, {"type": "hostRejoined"}, "guest 1")
        await expect(g2.ws, {"type": "hostRejoined"}, "guest 2")
        await quiet(h2.ws, g1.ws, g2.ws)
        await relay(h2, g1, "after-1", others=[g2])
        await relay(h2, g2, "after-2", others=[g1])
        # and a new guest on the other worker than the reconnected host
        g3 = await guest_on(c, code, h2)
        await relay(h2, g3, "after-3", others=[g1, g2])
    session(lobby, body)


def test_guest_reconnects_with_its_identity(lobby):
    async def body(c):
        code, h, (g, o) = await current_room(c, guests=("other", "other"))
        await close_ws(g.ws)
        await quiet(h.ws, o.ws)
        g2 = await reconnect_current(c, code, g, host_flag=False,
                                     slot=1 - h.slot)
        await quiet(h.ws, o.ws)
        await relay(h, g2, "again", others=[o])     # tagged with the old id
    session(lobby, body)


# (who attempts: guest/host flag, clientId, token) built from (h, g1, g2)
WRONG_PAIRS = {
    "unknown-id": (False, lambda h, g1, g2: random_pair()),
    "unknown-id-as-host": (True, lambda h, g1, g2: random_pair()),
    "guest-id-wrong-token": (False,
                             lambda h, g1, g2: (g1.id, os.urandom(16).hex())),
    "guest-id-other-guests-token": (False, lambda h, g1, g2: (g1.id, g2.token)),
    "host-id-wrong-token": (True,
                            lambda h, g1, g2: (h.id, os.urandom(16).hex())),
    "host-id-guests-token": (False, lambda h, g1, g2: (h.id, g1.token)),
    "host-id-guest-token-as-host": (True, lambda h, g1, g2: (h.id, g1.token)),
    "guest-id-hosts-token": (False, lambda h, g1, g2: (g1.id, h.token)),
}


def test_wrong_identity_pair_is_invalid_token(lobby):
    async def one(c, case, spec):
        as_host, build = spec
        code, h, (g1, g2) = await current_room(c, guests=("other", "same"))
        cid, tok = build(h, g1, g2)
        q = f"code={code}&clientId={cid}&token={tok}" + \
            ("&host=true" if as_host else "")
        x = await c.open(q)
        await expect_invalid_token(x, {cid, h.id, g1.id, g2.id}, case)
        await quiet(h.ws, g1.ws, g2.ws)
        # nobody took over: the real owners still work under their ids
        await relay(h, g1, "one", others=[g2])
        await relay(h, g2, "two", others=[g1])

    async def body(c):
        await every_case(c, WRONG_PAIRS, one)
    session(lobby, body)


def test_wrong_pair_of_a_disconnected_host_does_not_take_its_seat(lobby):
    async def body(c):
        code, h, (g,) = await current_room(c)
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        x = await c.open(f"code={code}&clientId={h.id}&token="
                         f"{os.urandom(16).hex()}&host=true")
        await expect_invalid_token(x, {h.id, g.id}, "host id, wrong token")
        await quiet(g.ws)
        h2 = await reconnect_current(c, code, h)
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await relay(h2, g)
    session(lobby, body)


# ---------------------------------------------------------------- future usage

def test_create_room_then_join_room_and_relay(lobby):
    async def body(c):
        code, h = await create_room(c, slot=0)
        await quiet(h.ws)
        g1 = await join_guest(c, code, slot=1)
        await quiet(h.ws)
        g2 = await join_guest(c, code, slot=1)
        await relay(h, g1, {"sdp": "one"}, others=[g2])
        await relay(h, g2, {"sdp": "two"}, others=[g1])
        # a current-usage guest joins the same room
        g3 = await c.client(f"code={code}", slot=1)
        await relay(h, g3, "three", others=[g1, g2])
    session(lobby, body)


def test_create_room_codes_are_unique_and_shared_with_post(lobby):
    async def body(c):
        codes = []
        for i in range(10):
            code, _ = await create_room(c, slot=i % 2)
            codes.append(code)
        codes += [post_room(lobby) for _ in range(10)]
        assert len(set(codes)) == len(codes), codes
    session(lobby, body)


def test_current_usage_host_with_future_usage_guests(lobby):
    async def body(c):
        code, h, _ = await current_room(c, guests=())
        g = await join_guest(c, code, slot=1 - h.slot)
        await relay(h, g)
    session(lobby, body)


@pytest.mark.parametrize("msg", [{"type": "joinRoom"},
                                 {"type": "joinRoom", "data": {}},
                                 {"type": "joinRoom",
                                  "data": {"canHost": True}}],
                         ids=["no-data", "empty-data", "canHost-only"])
def test_join_room_without_room_code_is_missing_room_code(lobby, msg):
    async def body(c):
        x = await c.client()
        await send_json(x.ws, msg)
        await expect_error(x.ws, "missingRoomCode", None, json.dumps(msg))
    session(lobby, body)


@pytest.mark.parametrize("can_host", [None, False, True])
def test_join_room_unknown_code_is_no_room_found(lobby, can_host):
    async def body(c):
        data = {} if can_host is None else {"canHost": can_host}
        x = await join_room(c, "zzzzz", **data)
        await expect_error(x.ws, "noRoomFound", None, "joinRoom zzzzz")
    session(lobby, body)


@pytest.mark.parametrize("can_host", [None, False])
def test_join_room_without_a_connected_host_is_host_disconnected(lobby, can_host):
    async def body(c):
        data = {} if can_host is None else {"canHost": can_host}
        # a room nobody hosted yet
        code = post_room(lobby)
        x = await join_room(c, code, **data)
        await expect_error(x.ws, "hostDisconnected", None,
                           "joinRoom, host never connected")
        # a room whose host is away (within its grace period)
        code, h, (g,) = await future_room(c, 0, (1,))
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        x = await join_room(c, code, slot=1, **data)
        await expect_error(x.ws, "hostDisconnected", None,
                           "joinRoom, host away")
        await quiet(g.ws)
    session(lobby, body)


def test_join_room_can_host_takes_a_room_without_host(lobby):
    async def body(c):
        code = post_room(lobby)
        h = await join_room(c, code, slot=0, canHost=True)
        await expect_joined(h.ws, True, False, "joinRoom canHost, no host")
        # a second one that could host finds a host and is a guest
        g1 = await join_room(c, code, slot=1, canHost=True)
        await expect_joined(g1.ws, False, False, "joinRoom canHost, host")
        g2 = await c.client(f"code={code}", slot=1)
        await quiet(h.ws)
        await relay(h, g1, "one", others=[g2])
        await relay(h, g2, "two", others=[g1])
        # a current-usage host is refused now
        x = await c.client(f"code={code}&host")
        await expect_error(x.ws, "hostAlreadyExists", None, "second host")
    session(lobby, body)


async def bare_with_pair(c, who, slot=None):
    """A bare connection with who's clientId and token in its query
    string: its identity must be who's."""
    ws = await c.open(who.pair(), slot)
    ident = await read_identity(ws, "bare connection with a pair")
    assert (ident["clientId"], ident["token"]) == (who.id, who.token), \
        f"identity {ident!r}, expected {who.id}/{who.token}"
    return Client(ws, ident)


def test_bare_connection_with_a_pair_restores_the_host(lobby):
    """A valid pair in the query string of a connection without a room
    code restores the identity: joinRoom then seats the host as itself,
    reconnected, and the guests hear hostRejoined."""
    async def body(c):
        code, h, (g,) = await future_room(c, 0, (1,))
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        h2 = await bare_with_pair(c, h, slot=0)
        await quiet(h2.ws, g.ws)
        await send_json(h2.ws, {"type": "joinRoom",
                                "data": {"roomCode": code}})
        await expect_joined(h2.ws, True, True, "host back by its pair")
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await relay(h2, g, "back")
    session(lobby, body)


def test_bare_connection_with_a_pair_restores_a_guest(lobby):
    async def body(c):
        code, h, (g, o) = await future_room(c, 0, (1, 1))
        await close_ws(g.ws)
        g2 = await bare_with_pair(c, g, slot=1)
        await send_json(g2.ws, {"type": "joinRoom",
                                "data": {"roomCode": code}})
        await expect_joined(g2.ws, False, True, "guest back by its pair")
        await quiet(h.ws, o.ws)
        await relay(h, g2, "again", others=[o])
    session(lobby, body)


def test_bare_connection_with_a_wrong_pair_is_invalid_token(lobby):
    async def one(c, case, _):
        code, h, (g,) = await future_room(c, 0, (1,))
        cid, tok = {"unknown-id": random_pair(),
                    "wrong-token": (g.id, os.urandom(16).hex()),
                    "short-token": (g.id, g.token[:-1]),
                    "other-clients-token": (g.id, h.token)}[case]
        x = await c.open(f"clientId={cid}&token={tok}")
        await expect_invalid_token(x, {cid, g.id, h.id}, case)
        await quiet(h.ws, g.ws)

    async def body(c):
        await every_case(c, dict.fromkeys(["unknown-id", "wrong-token",
                                           "short-token",
                                           "other-clients-token"]), one)
    session(lobby, body)


def test_join_room_host_reconnects(lobby):
    async def body(c):
        code, h, (g1, g2) = await future_room(c, 0, (1, 1))
        await close_ws(h.ws)
        await expect(g1.ws, {"type": "hostDisconnected"}, "guest 1")
        await expect(g2.ws, {"type": "hostDisconnected"}, "guest 2")
        h2 = await rejoin(c, code, h, True, slot=0)
        await expect(g1.ws, {"type": "hostRejoined"}, "guest 1")
        await expect(g2.ws, {"type": "hostRejoined"}, "guest 2")
        await quiet(h2.ws, g1.ws, g2.ws)
        await relay(h2, g1, "one", others=[g2])
        await relay(h2, g2, "two", others=[g1])
    session(lobby, body)


def test_join_room_guest_reconnects(lobby):
    async def body(c):
        code, h, (g, o) = await future_room(c, 0, (1, 1))
        await close_ws(g.ws)
        await quiet(h.ws, o.ws)
        g2 = await rejoin(c, code, g, False, slot=1)
        await quiet(h.ws, o.ws)
        await relay(h, g2, "again", others=[o])
    session(lobby, body)


def test_join_room_host_can_reconnect_in_current_usage_and_vice_versa(lobby):
    async def body(c):
        code, h, (g,) = await future_room(c, 0, (1,))
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        h2 = await reconnect_current(c, code, h, host_flag=False)
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await relay(h2, g, "current")
        await close_ws(h2.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        h3 = await rejoin(c, code, h, True, slot=0)
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await relay(h3, g, "future")
    session(lobby, body)


def test_join_room_wrong_pair_is_invalid_token(lobby):
    async def one(c, case, _):
        code, h, (g,) = await future_room(c, 0, (1,))
        cid, tok = {"unknown-id": random_pair(),
                    "guest-id-wrong-token": (g.id, os.urandom(16).hex()),
                    "host-id-wrong-token": (h.id, os.urandom(16).hex()),
                    "host-id-guests-token": (h.id, g.token)}[case]
        x = await join_room(c, code, clientId=cid, token=tok, canHost=True)
        await expect_invalid_token(x.ws, {cid, h.id, g.id}, case)
        await quiet(h.ws, g.ws)
        await relay(h, g)

    async def body(c):
        await every_case(c, dict.fromkeys(["unknown-id",
                                           "guest-id-wrong-token",
                                           "host-id-wrong-token",
                                           "host-id-guests-token"]), one)
    session(lobby, body)


@pytest.mark.parametrize("bad", ["unknown-type", "bad-json", "binary",
                                 "offer-before-joining",
                                 "saveSnapshot-before-joining"])
def test_unknown_messages_before_joining_are_dropped(lobby, bad):
    async def body(c):
        x = await c.client()
        if bad == "unknown-type":
            await send_json(x.ws, {"type": "noSuchType"})
        elif bad == "bad-json":
            await x.ws.send("{not json")
        elif bad == "binary":
            await x.ws.send(json.dumps({"type": "createRoom"}).encode())
        elif bad == "offer-before-joining":
            await send_json(x.ws, offer_msg("early"))
        else:
            await send_json(x.ws, {"type": "saveSnapshot", "data": 1})
        await quiet(x.ws)
        await send_json(x.ws, {"type": "createRoom"})
        m = await recv_json(x.ws)
        assert m.get("type") == "roomCreated", f"after {bad}: {m!r:.400}"
    session(lobby, body)


# ---------------------------------------------------------------- host life cycle

def test_host_socket_closing_tells_every_guest(lobby):
    async def body(c):
        code, h, gs = await current_room(c, guests=("other", "same", "other"))
        await close_ws(h.ws)
        for i, g in enumerate(gs):
            await expect(g.ws, {"type": "hostDisconnected"}, f"guest {i}")
        await quiet(*[g.ws for g in gs])
    session(lobby, body)


def test_host_dropping_without_close_handshake_tells_guests(lobby):
    async def body(c):
        code, h, (g,) = await future_room(c, 0, (1,))
        h.ws.transport.abort()          # a TCP reset, no close frame
        await expect(g.ws, {"type": "hostDisconnected"}, "guest")
        await quiet(g.ws)
    session(lobby, body)


@pytest.mark.parametrize("how", ["current", "create", "create-false"])
def test_grace_end_without_migration_closes_the_room(roomd_factory, how):
    d = roomd_factory(SHORT)

    async def body(c):
        if how == "current":
            code, h, gs = await current_room(c, guests=("other", "same"))
        else:
            code, h, gs = await future_room(
                c, 0, (1, 0), None if how == "create" else False)
        await close_ws(h.ws)
        for i, g in enumerate(gs):
            await expect(g.ws, {"type": "hostDisconnected"}, f"guest {i}")
        # grace 1 s; timers are checked once a second
        for i, g in enumerate(gs):
            try:
                m = await recv_json(g.ws, 4.0)
            except websockets.ConnectionClosed as e:
                raise AssertionError(
                    f"guest {i}: closed ({e}) without the roomClosed error "
                    "after the grace period") from None
            except asyncio.TimeoutError:
                raise AssertionError(f"guest {i}: no roomClosed within 4 s "
                                     "after hostDisconnected") from None
            assert m.get("type") == "error" and \
                m.get("errorType") == "roomClosed", f"guest {i}: {m!r:.400}"
            assert list(m) == ["type", "errorType", "errorMessage"] and \
                isinstance(m["errorMessage"], str), m
            msgs, code_, _ = await expect_close(g.ws)
            assert msgs == [] and code_ is not None, (msgs, code_)
        x = await c.client(f"code={code}")
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {code}", "guest after")
        x = await c.client(f"code={code}&host=true")
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {code}", "host after")
        x = await join_room(c, code, canHost=True)
        await expect_error(x.ws, "noRoomFound", None, "joinRoom after")
    session(d, body)


async def _migrate(c, h, g1, g2, state, version):
    """h leaves; g1 (the longest-connected guest) is offered the host seat
    with the snapshot; on hostReady g2 hears of it; signals then go to g1."""
    await close_ws(h.ws)
    await expect(g1.ws, {"type": "hostDisconnected"}, "guest 1")
    await expect(g2.ws, {"type": "hostDisconnected"}, "guest 2")
    await expect(g1.ws, {"type": "becomeHost", "data": {"snapshot": state}},
                 "longest-connected guest after the grace period",
                 timeout=4.0)
    await quiet(g2.ws, t=0.3)               # nothing until it confirms
    await send_json(g1.ws, {"type": "hostReady"})
    await expect(g2.ws, {"type": "hostChanged", "data": {"clientId": g1.id}},
                 "other guest")
    await send_json(g2.ws, offer_msg("to-new-host"))
    m, _ = await recv_until(g1.ws, lambda m: m.get("type") ==
                            "guestOfferSignal")
    check(m, offer_seen("to-new-host", g2.id), "offer at the new host")
    await send_json(g1.ws, answer_msg("from-new-host", g2.id))
    await expect(g2.ws, answer_seen("from-new-host"), "answer from new host")
    await quiet(g1.ws, g2.ws)
    # the new host keeps snapshots of its own, numbered after the old ones
    v2 = await save(g1, {"after": "migration"})
    assert v2 > version, f"snapshot version {v2} after {version}"
    await get_snapshot(g2, v2, {"after": "migration"}, "guest after migration")


def test_migration_by_setting(roomd_factory):
    d = roomd_factory(SHORT + "lobby_migration yes\n")
    state = STATES["object"]

    async def body(c):
        code, h, (g1, g2) = await current_room(c, guests=("other", "same"))
        v = await save(h, state)
        await _migrate(c, h, g1, g2, state, v)
        # a guest arriving now reaches the new host
        g3 = await c.client(f"code={code}", slot=g2.slot)
        await relay(g1, g3, "late", others=[g2])
        # and a host connecting now is refused: the room has one
        x = await c.client(f"code={code}&host")
        await expect_error(x.ws, "hostAlreadyExists", None, "after migration")
    session(d, body)


def test_migration_by_create_room_flag_without_snapshot(roomd_factory):
    d = roomd_factory(SHORT)

    async def body(c):
        code, h, (g1, g2) = await future_room(c, 0, (1, 0), migration=True)
        await _migrate(c, h, g1, g2, None, 0)
    session(d, body)


def test_migration_picks_the_longest_connected_guest(roomd_factory):
    d = roomd_factory(SHORT + "lobby_migration yes\n")

    async def body(c):
        code, h, (first,) = await future_room(c, 0, (1,))
        # later guests, some of them joined and left before
        gone = await join_guest(c, code, slot=0)
        later = await join_guest(c, code, slot=0)
        await close_ws(gone.ws)
        await close_ws(h.ws)
        await expect(first.ws, {"type": "hostDisconnected"}, "first guest")
        await expect(later.ws, {"type": "hostDisconnected"}, "later guest")
        await expect(first.ws, {"type": "becomeHost",
                                "data": {"snapshot": None}},
                     "first guest", timeout=4.0)
        await quiet(later.ws)
        await send_json(first.ws, {"type": "hostReady"})
        await expect(later.ws, {"type": "hostChanged",
                                "data": {"clientId": first.id}}, "later")
    session(d, body)


# ---------------------------------------------------------------- snapshots

def test_snapshot_save_and_get(lobby):
    async def body(c):
        code, h, (g,) = await current_room(c)
        await get_snapshot(g, 0, None, "guest, nothing saved")
        await get_snapshot(h, 0, None, "host, nothing saved")
        last = 0
        for kind, state in STATES.items():
            v = await save(h, state)
            assert v > last, f"version {v} after {last}"
            last = v
            await get_snapshot(h, v, state, f"host, {kind}")
            await get_snapshot(g, v, state, f"guest on the other worker, {kind}")
        await quiet(h.ws, g.ws)
    session(lobby, body)


def test_snapshot_in_a_created_room(lobby):
    async def body(c):
        code, h, (g,) = await future_room(c, 1, (0,))
        v = await save(h, STATES["array"])
        await get_snapshot(g, v, STATES["array"], "guest")
    session(lobby, body)


def test_save_snapshot_from_a_guest_is_dropped(lobby):
    async def body(c):
        code, h, (g,) = await current_room(c)
        v = await save(h, {"by": "host"})
        await send_json(g.ws, {"type": "saveSnapshot", "data": {"by": "guest"}})
        await quiet(h.ws, g.ws)
        await get_snapshot(g, v, {"by": "host"}, "guest")
        await get_snapshot(h, v, {"by": "host"}, "host")
        await relay(h, g)
    session(lobby, body)


def test_snapshot_too_large_is_refused_and_connection_stays(roomd_factory):
    d = roomd_factory(SHORT + "lobby_snapshot_max_bytes 1K\n")

    async def body(c):
        code, h, (g,) = await current_room(c)
        v = await save(h, {"small": "x" * 200})
        await send_json(h.ws, {"type": "saveSnapshot",
                               "data": {"big": "x" * 4000}})
        m = await recv_json(h.ws)
        assert m.get("type") == "error" and \
            m.get("errorType") == "snapshotTooLarge", m
        assert list(m) == ["type", "errorType", "errorMessage"] and \
            isinstance(m["errorMessage"], str), m
        await quiet(h.ws, g.ws)
        await get_snapshot(g, v, {"small": "x" * 200}, "after the refusal")
        await relay(h, g)
        v2 = await save(h, {"small": "y" * 500})
        assert v2 > v
    session(d, body)


def test_snapshot_and_host_seat_survive_sigkill_of_the_hosts_worker(roomd_factory):
    d = roomd_factory("lobby_grace 10\nlobby_ping_interval 1\n"
                      "lobby_retention 30\nroom_ttl 2\n")
    state = STATES["object"]

    async def body(c):
        code, h, (g,) = await future_room(c, 0, (1,))
        v = await save(h, state)
        os.kill(h.pid, signal.SIGKILL)
        await expect(g.ws, {"type": "hostDisconnected"},
                     "guest after SIGKILL of the host's worker", timeout=4.0)
        await get_snapshot(g, v, state, "guest on the surviving worker")
        await asyncio.to_thread(wait_respawn, d, 0, h.pid)
        h2 = await rejoin(c, code, h, True)
        await expect(g.ws, {"type": "hostRejoined"}, "guest")
        await get_snapshot(h2, v, state, "host after reconnecting")
        await relay(h2, g)
    session(d, body)


def test_snapshot_survives_sigkill_with_everyone_gone(roomd_factory):
    d = roomd_factory("lobby_grace 1\nlobby_ping_interval 1\n"
                      "lobby_retention 30\nroom_ttl 2\n")
    state = STATES["string"]

    async def body(c):
        code, h, _ = await current_room(c, guests=())
        v = await save(h, state)
        os.kill(h.pid, signal.SIGKILL)
        await asyncio.to_thread(wait_respawn, d, h.slot, h.pid)
        await asyncio.sleep(2.5)            # past grace and room_ttl
        h2 = await reconnect_current(c, code, h, host_flag=False)
        await quiet(h2.ws, t=0.2)
        await get_snapshot(h2, v, state, "host after the crash")
        g = await guest_on(c, code, h2)
        await relay(h2, g)
    session(d, body)


# ---------------------------------------------------------------- retention

def test_empty_room_is_kept_for_retention_then_gone(roomd_factory):
    d = roomd_factory(SHORT)
    state = STATES["object"]

    async def body(c):
        code, h, (g,) = await current_room(c)
        v = await save(h, state)
        await close_ws(g.ws)
        await close_ws(h.ws)
        await asyncio.sleep(1.5)            # likely past the grace period
        h2 = await reconnect_current(c, code, h, host_flag=False)
        await quiet(h2.ws, t=0.2)
        await get_snapshot(h2, v, state, "host back within retention")
        g2 = await reconnect_current(c, code, g, host_flag=False,
                                     slot=1 - h2.slot)
        await relay(h2, g2, "back")
        await close_ws(g2.ws)
        await close_ws(h2.ws)
        await asyncio.sleep(6.5)            # retention 4 s, + timer slack
        x = await c.client(f"code={code}")
        await expect_error(x.ws, "noRoomFound",
                           f"No room exists with code {code}",
                           "guest after the retention time")
        x = await c.open(f"code={code}&{h.pair()}")
        await read_identity(x, "host after the retention time")
        m = await recv_json(x)
        assert m.get("type") == "error" and m.get("errorType") in (
            "noRoomFound", "invalidToken"), m
    session(d, body, timeout=40.0)


def test_empty_created_room_host_rejoins_within_retention(roomd_factory):
    d = roomd_factory(SHORT)

    async def body(c):
        code, h, _ = await future_room(c, 0, ())
        v = await save(h, [1, 2, 3])
        await close_ws(h.ws)
        await asyncio.sleep(2.0)
        h2 = await rejoin(c, code, h, True, slot=1)
        await get_snapshot(h2, v, [1, 2, 3], "host back within retention")
        g = await join_guest(c, code, slot=0)
        await relay(h2, g)
    session(d, body)


# ---------------------------------------------------------------- keepalive

def _wait_ping(ws, bound, what="ping"):
    """Read raw frames until a ping; return seconds waited."""
    t0 = time.monotonic()
    while True:
        left = bound - (time.monotonic() - t0)
        assert left > 0, f"{what}: no ping within {bound} s"
        ws.sock.settimeout(left)
        try:
            fin, op, payload, masked = ws.recv_frame()
        except socket.timeout:
            raise AssertionError(f"{what}: no ping within {bound} s") from None
        except EOFError:
            raise AssertionError(f"{what}: the server closed the connection "
                                 f"(no close frame) before a ping") from None
        assert op != 0x8, f"{what}: closed before a ping: {payload!r}"
        assert not masked, "server frame is masked"
        if op == 0x9:
            return time.monotonic() - t0


def _wait_closed(ws, bound):
    """Never answering pings, read until the server closes; return seconds
    waited."""
    t0 = time.monotonic()
    while True:
        left = bound - (time.monotonic() - t0)
        assert left > 0, f"not closed within {bound} s"
        ws.sock.settimeout(left)
        try:
            fin, op, payload, masked = ws.recv_frame()
        except socket.timeout:
            raise AssertionError(f"not closed within {bound} s") from None
        except (EOFError, ConnectionResetError):
            return time.monotonic() - t0
        if op == 0x8:
            return time.monotonic() - t0


def test_server_pings_every_interval(roomd_factory):
    d = roomd_factory(SHORT)
    with RawWS(d) as ws:
        ws.open("/lobby")
        ident = ws.recv_json()
        assert ident.get("type") == "identity", ident
        for i in range(2):
            # interval 1, checked once a second: within 3 s each time
            _wait_ping(ws, 3.0, f"ping {i + 1}")
            ws.send_frame(0xA, b"")     # answered: the connection stays


@pytest.mark.parametrize("role", ["bare", "guest"])
def test_client_that_never_answers_pings_is_closed(roomd_factory, role):
    d = roomd_factory(SHORT)

    async def body(c):
        path = "/lobby"
        if role == "guest":
            code, h, _ = await current_room(c, guests=())
            path += f"?code={code}"
        ws = RawWS(d)
        try:
            ws.open(path)
            ident = ws.recv_json()
            assert ident.get("type") == "identity", ident
            waited = await asyncio.to_thread(_wait_closed, ws, 7.0)
            assert waited < 7.0
        finally:
            ws.close()
        if role == "guest":
            await quiet(h.ws)
    session(d, body)


def test_host_that_never_answers_pings_is_closed_and_guests_told(roomd_factory):
    d = roomd_factory(SHORT)

    async def body(c):
        code = post_room(d)
        ws = RawWS(d)
        try:
            hdrs = ws.open(f"/lobby?code={code}&host=true")
            slot, _ = parse_worker(hdrs.get("x-roomd-worker"))
            ident = ws.recv_json()
            assert ident.get("type") == "identity", ident
            await asyncio.sleep(0.2)
            g = await c.client(f"code={code}", slot=1 - slot)
            await asyncio.to_thread(_wait_closed, ws, 7.0)
        finally:
            ws.close()
        await expect(g.ws, {"type": "hostDisconnected"}, "guest", timeout=4.0)
    session(d, body)


def test_clients_answering_pings_stay_connected(roomd_factory):
    d = roomd_factory(SHORT)

    async def body(c):
        code, h, (g,) = await current_room(c)
        await asyncio.sleep(4.0)            # 4 ping intervals
        await quiet(h.ws, g.ws, t=0.1)
        await relay(h, g, "still here")
    session(d, body)


# ---------------------------------------------------------------- mounted at /

def start_with_extra_args(roomd_factory, monkeypatch, conf, args):
    """roomd_factory(conf) for a daemon whose command line also has args: a
    wrapper script named by ROOMD_BIN execs the real binary with them (the
    daemon keeps the wrapper's pid)."""
    real = roomd_bin()
    with tempfile.TemporaryDirectory(prefix="roomd-it-wrap-") as tmp:
        wrapper = os.path.join(tmp, "roomd")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec " + shlex.quote(real) + ' "$@" ' +
                    " ".join(shlex.quote(a) for a in args) + "\n")
        os.chmod(wrapper, 0o755)
        monkeypatch.setenv("ROOMD_BIN", wrapper)
        try:
            return roomd_factory(conf)
        finally:
            monkeypatch.setenv("ROOMD_BIN", real)


@pytest.mark.parametrize("how", ["-M", "config"])
def test_mounted_at_root_the_original_client_works_unchanged(
        roomd_factory, monkeypatch, how):
    """A whole current-usage session as the original groovejet client runs
    it, with the lobby mounted on /: by `-M lobby=/` (the default mounts
    stay), or by `mount lobby /` in the config (which then mounts only
    that)."""
    if how == "-M":
        d = start_with_extra_args(roomd_factory, monkeypatch, "",
                                  ["-M", "lobby=/"])
        # the default mounts are still there
        r = http_req(d, "POST", "/lobby/rooms")
        assert r.status == 200 and CODE.match(r.json.get("code", "")), r
    else:
        d = roomd_factory("mount lobby /\n")
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
             "s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"}
    answer = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}

    r = http_req(d, "OPTIONS", "/rooms", headers={
        "Origin": "http://game.example",
        "Access-Control-Request-Method": "POST"})
    assert r.status == 204 and r.header("Access-Control-Allow-Origin") == "*", r
    code = post_room(d, "/rooms")
    r = http_req(d, "POST", "/rooms")
    assert r.status == 200 and r.header("Access-Control-Allow-Origin") == "*", r

    async def body(c):
        x = await c.client("host=true")
        await expect_error(x.ws, "missingRoomCode", MISSING_CODE, "/?host=true")
        x = await c.client("code=zzzzz")
        await expect_error(x.ws, "noRoomFound",
                           "No room exists with code zzzzz", "/?code=zzzzz")
        x = await c.client(f"code={code}")
        await expect_error(x.ws, "hostDisconnected",
                           f"The host for room {code} has disconnected",
                           "guest before the host")
        h = await c.client(f"host=true&code={code}")
        await quiet(h.ws, t=0.2)
        x = await c.client(f"host=true&code={code}")
        await expect_error(
            x.ws, "hostAlreadyExists",
            f"You're trying to connect as a host, but the room {code} "
            f"already has a host", "second host")
        g = await guest_on(c, code, h)
        await send_json(g.ws, {"type": "guestOfferSignal",
                               "data": {"offerSignal": offer}})
        await expect(h.ws, offer_seen(offer, g.id), "offer at the host")
        await send_json(h.ws, {"type": "hostAnswerSignal",
                               "data": {"answerSignal": answer,
                                        "clientId": g.id}})
        await expect(g.ws, answer_seen(answer), "answer at the guest")
        g2 = await guest_on(c, code, h, "same")
        await relay(h, g2, "second guest", others=[g])
        await close_ws(h.ws)
        await expect(g.ws, {"type": "hostDisconnected"}, "guest 1")
        await expect(g2.ws, {"type": "hostDisconnected"}, "guest 2")
    session(d, body, prefix="/")


# ---------------------------------------------------------------- groovejet's later replies

async def wait_for_type(ws, mtype, what=""):
    """Wait, as groovejet's later client does, for a message of one type,
    ignoring every other type but error. -> its data"""
    try:
        m, _ = await recv_until(ws, lambda m: m.get("type") in (mtype,
                                                                 "error"))
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: no {mtype} within {T} s") from None
    assert m.get("type") == mtype, f"{what}: {m!r:.400}"
    return m["data"]


def test_a_client_of_groovejets_later_code_creates_joins_and_signals(lobby):
    """The sequence of pearl-multiplayer-socket (the client groovejet was
    written for): a bare connection waits for identity; the host sends
    createRoom and waits for createdRoom; a guest sends joinRoom, waits
    for joinedRoom and sends its offer at once; the host answers."""
    async def body(c):
        hws = await c.open(slot=0)
        host_id = (await wait_for_type(hws, "identity", "host"))["clientId"]
        await send_json(hws, {"type": "createRoom"})
        code = (await wait_for_type(hws, "createdRoom", "host"))["roomCode"]
        assert CODE.match(code), code
        gws = await c.open(slot=1)
        guest_id = (await wait_for_type(gws, "identity", "guest"))["clientId"]
        assert guest_id != host_id
        await send_json(gws, {"type": "joinRoom", "data": {"roomCode": code}})
        data = await wait_for_type(gws, "joinedRoom", "guest")
        assert data == {"isHost": False}, data
        offer = {"type": "offer", "sdp": "v=0\r\n"}
        await send_json(gws, {"type": "guestOfferSignal",
                              "data": {"offerSignal": offer}})
        data = await wait_for_type(hws, "guestOfferSignal", "host")
        assert data == {"offerSignal": offer, "clientId": guest_id}, data
        answer = {"type": "answer", "sdp": "v=0\r\n"}
        await send_json(hws, {"type": "hostAnswerSignal",
                              "data": {"answerSignal": answer,
                                       "clientId": guest_id}})
        data = await wait_for_type(gws, "hostAnswerSignal", "guest")
        assert data == {"answerSignal": answer}, data
    session(lobby, body)


def test_join_room_answers_roomjoined_then_joinedroom(lobby):
    async def body(c):
        code, h = await create_room(c, 0)
        g = await join_room(c, code, slot=1)
        await expect_joined(g.ws, False, False, "guest")
        x = await join_room(c, code, slot=1, canHost=True)
        await expect_joined(x.ws, False, False, "guest that could host")
        await quiet(h.ws, g.ws, x.ws)
    session(lobby, body)


@pytest.mark.parametrize("setting,created_types,joined_types", [
    ("document", ["roomCreated"], ["roomJoined"]),
    ("groovejet", ["createdRoom"], ["joinedRoom"]),
    ("both", ["roomCreated", "createdRoom"], ["roomJoined", "joinedRoom"]),
])
def test_lobby_replies_setting_chooses_the_names(roomd_factory, setting,
                                                 created_types, joined_types):
    d = roomd_factory(PATIENT + f"lobby_replies {setting}\n")

    async def body(c):
        h = await c.client()
        await send_json(h.ws, {"type": "createRoom"})
        got = [await recv_json(h.ws) for _ in created_types]
        assert [m["type"] for m in got] == created_types, got
        code = got[0]["data"]["roomCode"]
        assert all(m["data"] == {"roomCode": code} for m in got), got
        g = await c.client()
        await send_json(g.ws, {"type": "joinRoom",
                               "data": {"roomCode": code}})
        got = [await recv_json(g.ws) for _ in joined_types]
        assert [m["type"] for m in got] == joined_types, got
        want = {"roomJoined": {"clientIsHost": False, "reconnected": False},
                "joinedRoom": {"isHost": False}}
        assert all(m["data"] == want[m["type"]] for m in got), got
        await quiet(h.ws, g.ws)
    session(d, body)


@pytest.mark.parametrize("value", ["", "readme", "both document", "BOTH"])
def test_lobby_replies_refuses_other_values(value):
    if EXTERNAL_URL:
        pytest.skip("starts roomd itself")
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "roomd.conf")
        with open(conf, "w") as f:
            f.write(f"lobby_replies {value}\n")
        p = subprocess.run([roomd_bin(), "-t", "-c", conf],
                           capture_output=True, text=True, timeout=10)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert "lobby_replies" in p.stderr, p.stderr

"""The classroom dialect, mounted at /classroom: rooms with an admin and
per-participant authorities, identity from a JWT in the handshake (or, in
open rooms, from the query string).  Seed 003 and NOTES.md "classroom" are
the contract.

Relays are tried with sender and receivers on the same worker and on
different workers (placement by X-Roomd-Worker on the 101 response).  A
connection that lands on the wrong worker enters the room and is closed
again, so the others' queues are first drained up to the room snapshot that
holds exactly the intended participants."""
import asyncio
import json
import os
import re
import signal
import urllib.parse
import uuid

import pytest
import websockets

from conftest import (EXTERNAL_URL, T, RawWS, close_ws, expect_close,
                      expect_quiet, recv_json, recv_until, send_json, session,
                      start_roomd, ws_open_headers, ws_worker)
from jwt_helper import (claims_for, in_seconds, mint, mint_none,
                        tamper_payload)

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECRET = "roomd-classroom-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
SUBJECT = "roomd-classroom"
AUTHORITIES = ["Broadcast", "Direct", "Control", "Kick", "Close"]


def resp(value, details):
    return {"type": "ServerResponse", "data": {"value": value,
                                               "details": details}}


SENT = resp("ok", "sent")
DISCONNECTED = resp("ok", "disconnected")
FORBIDDEN = resp("fail", "forbidden")
NO_PARTICIPANTS = resp("fail", "participants are missing")
BAD_CONTROL = resp("fail", "invalid control message")
PARSING = resp("fail", "parsing error")
NOT_SUPPORTED = resp("fail", "message type not supported")
NO_ADMINS = resp("fail", "admins not found")

PLACES = pytest.mark.parametrize("s0,s1", [(0, 0), (0, 1)],
                                 ids=["same-worker", "cross-worker"])


def rid(prefix="cr"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- helpers

class P:
    """One participant: its socket, name, room, id, worker slot and what
    the tests expect its record to say."""

    def __init__(self, ws, name, room, pid, slot, admin, enter):
        self.ws = ws
        self.name = name
        self.room = room
        self.id = pid
        self.slot = slot
        self.admin = admin
        self.auth = set()
        self.enter = enter          # its first message (ParticipantEnter)

    def record(self):
        return {"name": self.name, "room": self.room, "admin": self.admin,
                "authorities": sorted(self.auth), "id": self.id}

    def __repr__(self):
        return f"<P {self.name} {self.id} slot {self.slot}>"


def is_snapshot(m):
    return isinstance(m, dict) and m.get("type") in (
        "ParticipantEnter", "ParticipantExit") and isinstance(
        m.get("data"), dict)


def snap_ids(m):
    return {x.get("id") for x in m["data"].get("participants", [])}


def room_json(room, ps):
    return {"id": room, "participants": [p.record() for p in ps]}


def norm(data):
    """data with every participant's authorities sorted (their order is
    not part of the contract)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    # the arena's epoch, last (an addition of roomd)
    if list(out)[-1:] == ["epoch"] and isinstance(out["epoch"], int) and \
            0 < out["epoch"] < 2 ** 53:
        del out["epoch"]
    if isinstance(out.get("participants"), list):
        out["participants"] = [
            dict(x, authorities=sorted(x["authorities"]))
            if isinstance(x, dict) and isinstance(x.get("authorities"), list)
            else x for x in out["participants"]]
    return out


def check_room_msg(m, mtype, room, ps, what=""):
    assert isinstance(m, dict) and m.get("type") == mtype, \
        f"{what}: expected {mtype}, got {m!r:.600}"
    assert set(m) == {"type", "data"}, f"{what}: keys {list(m)}"
    assert norm(m["data"]) == room_json(room, ps), \
        f"{what}: expected room {room_json(room, ps)!r}, got {m['data']!r}"


async def expect(p, expected, what="", timeout=T):
    try:
        m = await recv_json(p.ws, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what or p.name}: expected {expected!r}, "
                             f"got nothing within {timeout} s") from None
    assert m == expected, f"{what or p.name}: expected {expected!r}, got {m!r:.600}"
    return m


async def expect_room(p, mtype, ps, what=""):
    try:
        m = await recv_json(p.ws)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what or p.name}: expected {mtype}, got "
                             "nothing") from None
    check_room_msg(m, mtype, ps[0].room if ps else p.room, ps,
                   what or p.name)
    return m


async def quiet(*ps, t=0.25):
    await asyncio.gather(*(expect_quiet(p.ws, t) for p in ps))


def open_url(d, name, room, path="/classroom"):
    return d.ws_base + path + "?" + urllib.parse.urlencode(
        {"name": name, "room": room}, quote_via=urllib.parse.quote)


async def enter(c, name, room, slot=None, others=(), auth=None, fresh=False,
                admin=None, path="/classroom"):
    """Connect a participant (on worker `slot` if given).  auth=None: an open
    room, identity in the query string; else auth(room) is the value of the
    Authorization header.  fresh: try room-0, room-1, ... so that strays on
    the wrong worker never share a room with anyone.  others: everyone
    already in the room; each is drained up to the snapshot that holds
    exactly others + the newcomer.  Without strays that snapshot must be the
    very next message and a ParticipantEnter."""
    d = c.d
    strays = 0
    for attempt in range(60):
        r = f"{room}-{attempt}" if fresh else room
        if auth is None:
            ws = await ws_open_headers(open_url(d, name, r, path))
        else:
            ws = await ws_open_headers(d.ws_base + path,
                                       [("Authorization", auth(r))])
        w = ws_worker(ws)
        if slot is None or w[0] == slot:
            c.all.append(ws)
            break
        strays += 1
        await close_ws(ws)
    else:
        pytest.fail(f"no connection of {name} landed on worker {slot}")
    first = await recv_json(ws)
    assert is_snapshot(first) and first["type"] == "ParticipantEnter", \
        f"{name}'s first message is not a ParticipantEnter: {first!r:.600}"
    mine = [x for x in first["data"].get("participants", [])
            if isinstance(x, dict) and x.get("name") == name]
    assert mine, f"{name} is not in its own ParticipantEnter: {first!r:.600}"
    rec = mine[-1]
    if admin is None:
        admin = rec.get("admin")
    p = P(ws, name, r, rec.get("id"), w[0], admin, first)
    want = {o.id for o in others} | {p.id}
    if snap_ids(first) != want:
        assert strays, (f"{name}'s ParticipantEnter lists {snap_ids(first)}, "
                        f"the room should hold {want}: {first!r:.600}")
        await recv_until(ws, lambda m: is_snapshot(m) and snap_ids(m) == want)
    for o in others:
        m, skipped = await recv_until(
            o.ws, lambda m: is_snapshot(m) and snap_ids(m) == want)
        if not strays:
            assert skipped == [] and m["type"] == "ParticipantEnter", \
                (f"{o.name} got {skipped!r:.600} then {m!r:.600} when "
                 f"{name} entered")
        o.last = m
    return p


async def group(c, names, slots, room=None, auth=None):
    """Enter names[i] on slots[i] in order; the first one in a fresh room.
    -> [P]."""
    room = room or rid()
    ps = []
    for i, (n, s) in enumerate(zip(names, slots)):
        p = await enter(c, n, ps[0].room if ps else room, s, ps,
                        auth=auth(n) if auth else None, fresh=not ps)
        ps.append(p)
    return ps


async def control(sender, ps, targets, allow, auths):
    """Send a Control message; everyone in ps gets RolesApplied with the
    new authorities (and the sender no "sent")."""
    await send_json(sender.ws, {"type": "Control",
                                "participants": [t.id for t in targets],
                                "data": {"allow": allow,
                                         "authorities": auths}})
    for t in targets:
        if allow:
            t.auth |= set(auths)
        else:
            t.auth -= set(auths)
    for p in ps:
        await expect_room(p, "RolesApplied", ps, f"{p.name} after Control")


# ---------------------------------------------------------------- entering

def test_open_room_enter_events_and_first_participant_is_admin(roomd):
    room = rid()

    async def body(c):
        a = await enter(c, "alice", room)
        check_room_msg(a.enter, "ParticipantEnter", room, [a], "alice")
        assert a.admin is True, a.enter
        b = await enter(c, "bob", room, others=[a])
        assert b.admin is False, b.enter
        check_room_msg(b.enter, "ParticipantEnter", room, [a, b], "bob")
        check_room_msg(a.last, "ParticipantEnter", room, [a, b], "alice")
        cc = await enter(c, "carol", room, others=[a, b])
        assert cc.admin is False, cc.enter
        check_room_msg(cc.enter, "ParticipantEnter", room, [a, b, cc], "carol")
        for p in (a, b):
            check_room_msg(p.last, "ParticipantEnter", room, [a, b, cc], p.name)
        for p in (a, b, cc):
            assert isinstance(p.id, str) and UUID.match(p.id), p.enter
        assert len({a.id, b.id, cc.id}) == 3
        await quiet(a, b, cc)
    session(roomd, body)


def test_names_and_rooms_of_64_bytes_enter_and_65_are_refused(roomd):
    """The length bounds at both ends: 1 to 64 bytes (a non-ASCII
    character counts its bytes)."""
    room = ("r" + uuid.uuid4().hex + "x" * 64)[:64]
    name = "\u00e9" * 32           # 64 bytes

    async def body(c):
        a = await enter(c, name, room)
        check_room_msg(a.enter, "ParticipantEnter", room, [a])
        b = await enter(c, "b", "Z")
        check_room_msg(b.enter, "ParticipantEnter", "Z", [b])
    session(roomd, body)
    q = urllib.parse.quote
    for n, r in (("n" * 65, "room65"), ("\u00e9" * 32 + "x", "r"),
                 ("ann", "r" * 65), ("", "r"), ("ann", "")):
        assert_401(roomd, f"/classroom?name={q(n)}&room={q(r)}")


def test_query_parameters_are_percent_decoded(roomd):
    room = "148 " + uuid.uuid4().hex[:6] + " \u00e9"

    async def body(c):
        a = await enter(c, "\u0418\u0432\u0430\u043d \u0418\u0432\u0430\u043d"
                           "\u043e\u0432\u0438\u0447 & co=1", room)
        check_room_msg(a.enter, "ParticipantEnter", room, [a])
    session(roomd, body)


def test_rooms_are_separate(roomd):
    async def body(c):
        a = await enter(c, "alice", rid())
        b = await enter(c, "bob", rid())
        assert b.admin is True, b.enter
        check_room_msg(b.enter, "ParticipantEnter", b.room, [b])
        await send_json(a.ws, {"type": "Broadcast", "data": "x"})
        await expect(a, SENT)
        await quiet(a, b)
    session(roomd, body)


@PLACES
def test_participant_exit_goes_to_those_who_remain(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await close_ws(b.ws)
        for p in (a, cc):
            await expect_room(p, "ParticipantExit", [a, cc], p.name)
        await quiet(a, cc)
    session(roomd, body)


def test_participants_are_listed_in_the_order_they_entered(roomd):
    """A newcomer who takes the member-table place of one who left is
    still listed after those who entered before it."""
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [0, 0, 0])
        await close_ws(b.ws)
        for p in (a, cc):
            await expect_room(p, "ParticipantExit", [a, cc], p.name)
        dave = await enter(c, "dave", a.room, None, [a, cc])
        names = [x["name"] for x in dave.enter["data"]["participants"]]
        assert names == ["alice", "carol", "dave"], names
    session(roomd, body)


def test_admin_leaving_last_deletes_the_room(roomd):
    room = rid()

    async def body(c):
        a = await enter(c, "alice", room)
        await close_ws(a.ws)
        await asyncio.sleep(0.2)
        b = await enter(c, "bob", room)
        check_room_msg(b.enter, "ParticipantEnter", room, [b])
        assert b.admin is True
    session(roomd, body)


@pytest.mark.parametrize("slot", [0, 1],
                         ids=["other-worker", "respawned-worker"])
def test_entering_again_after_the_worker_was_killed(roomd_factory, slot):
    """p1's worker is killed (SIGKILL) and p1 enters again at once under
    the same name, on the other worker or on the one started in the dead
    one's place.  Every first message, on a stray connection too, is the
    ParticipantEnter of its own entrance, with the newcomer last and a new
    id, the lost stay listed before it or already gone; p0 hears the same.
    Once roomd has noticed the loss the lost stay leaves (ParticipantExit
    without it) and the new stay does not: a newcomer after that is listed
    after p0 and p1's new stay, and that stay is still served."""
    d = roomd_factory()

    async def body(c):
        p0, p1 = await group(c, ["p0", "p1"], [0, 1])
        lost = p1.id
        os.kill(ws_worker(p1.ws)[1], signal.SIGKILL)
        p1.ws.transport.abort()
        gone = {lost}          # ids of stays that may still be listed
        for attempt in range(60):
            try:
                ws = await ws_open_headers(open_url(d, "p1", p0.room))
                first = await recv_json(ws)
            except (OSError, asyncio.TimeoutError,
                    websockets.ConnectionClosed,
                    websockets.InvalidHandshake):
                await asyncio.sleep(0.1)    # the slot is between workers
                continue
            parts = first["data"]["participants"] \
                if is_snapshot(first) else []
            ids = [x.get("id") for x in parts]
            assert first["type"] == "ParticipantEnter" and parts and \
                parts[-1]["name"] == "p1" and UUID.match(ids[-1]) and \
                ids[-1] not in gone and ids[0] == p0.id and \
                set(ids[1:-1]) <= gone, \
                (f"attempt {attempt}: p1's first message is not its own "
                 f"entrance (lost stays {gone}): {first!r:.800}")
            m, _ = await recv_until(p0.ws, lambda m: is_snapshot(m) and
                                    ids[-1] in snap_ids(m))
            assert m == first, f"p0 heard {m!r:.600}, p1 got {first!r:.600}"
            if ws_worker(ws)[0] == slot:
                break
            gone.add(ids[-1])
            await close_ws(ws)
        else:
            pytest.fail(f"p1 did not enter again on worker {slot}")
        c.all.append(ws)
        p1 = P(ws, "p1", p0.room, ids[-1], slot, False, first)
        if lost in ids:
            for p in (p0, p1):
                await recv_until(p.ws, lambda m: is_snapshot(m) and
                                 m["type"] == "ParticipantExit" and
                                 snap_ids(m) == {p0.id, p1.id}, timeout=10)
        await asyncio.sleep(2.5)    # the lost-member sweep runs each second
        p2 = await enter(c, "p2", p0.room, None, [p0, p1])
        assert [x["id"] for x in p2.enter["data"]["participants"]] == \
            [p0.id, p1.id, p2.id], p2.enter
        await send_json(p1.ws, {"type": "Petition", "data": {"n": 1}})
        await expect(p0, {"type": "Petition", "data": {"n": 1},
                          "from": p1.id})
        await expect(p1, SENT)
    session(d, body)


# ---------------------------------------------------------------- broadcast

DATA = {"object": {"some": "data", "n": [1, 2.5, {"x": True}]},
        "string": "h\u00e9llo \u2603 \"q\"", "number": 42, "array": [1, "a", []],
        "bool": False}


@PLACES
def test_broadcast_reaches_everyone_but_the_sender_then_sent(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        for kind, data in DATA.items():
            await send_json(a.ws, {"type": "Broadcast", "data": data})
            want = {"type": "Broadcast", "data": data, "from": a.id}
            await expect(b, want, f"bob, {kind}")
            await expect(cc, want, f"carol, {kind}")
            await expect(a, SENT, f"sender, {kind}")
        await quiet(a, b, cc)
    session(roomd, body)


def test_broadcast_keeps_participants_when_given(roomd):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [0, 1, 0])
        await send_json(a.ws, {"type": "Broadcast", "data": {"k": 1},
                               "participants": [b.id]})
        want = {"type": "Broadcast", "data": {"k": 1},
                "participants": [b.id], "from": a.id}
        await expect(b, want)
        await expect(cc, want)
        await expect(a, SENT)
        await quiet(a, b, cc)
    session(roomd, body)


def test_broadcast_null_data_is_left_out(roomd):
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, {"type": "Broadcast", "data": None})
        await expect(b, {"type": "Broadcast", "from": a.id})
        await expect(a, SENT)
    session(roomd, body)


@PLACES
def test_broadcast_without_permission_is_forbidden(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await send_json(b.ws, {"type": "Broadcast", "data": "hi"})
        await expect(b, FORBIDDEN)
        await quiet(a, b, cc)
    session(roomd, body)


# ---------------------------------------------------------------- direct

@PLACES
def test_direct_reaches_only_the_listed_participants(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await send_json(a.ws, {"type": "Direct", "participants": [b.id],
                               "data": {"some": "data"}})
        await expect(b, {"type": "Direct", "data": {"some": "data"},
                         "participants": [b.id], "from": a.id})
        await expect(a, SENT)
        await quiet(a, b, cc)
    session(roomd, body)


def test_direct_ignores_unknown_ids_and_includes_a_listed_sender(roomd):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [0, 1, 0])
        ids = [b.id, "00000000-0000-0000-0000-000000000000", a.id]
        await send_json(a.ws, {"type": "Direct", "participants": ids,
                               "data": [1, 2]})
        want = {"type": "Direct", "data": [1, 2], "participants": ids,
                "from": a.id}
        await expect(b, want, "bob")
        await expect(a, want, "sender (listed)")
        await expect(a, SENT, "sender")
        await quiet(a, b, cc)
    session(roomd, body)


def test_direct_without_participants_is_participants_are_missing(roomd):
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, {"type": "Direct", "data": "x"})
        await expect(a, NO_PARTICIPANTS)
        await quiet(a, b)
    session(roomd, body)


@pytest.mark.parametrize("msg", [
    {"type": "Direct", "data": "x"},
    {"type": "Direct", "participants": ["P"], "data": "x"},
    {"type": "Control", "data": {"allow": True, "authorities": ["Broadcast"]}},
    {"type": "Control", "participants": ["P"],
     "data": {"allow": True, "authorities": ["Broadcast"]}},
    {"type": "Control", "participants": ["P"]},
    {"type": "Kick"},
    {"type": "Kick", "participants": ["P"]},
    {"type": "Close"},
], ids=["direct-no-list", "direct", "control-no-list", "control",
        "control-no-data", "kick-no-list", "kick", "close"])
def test_permission_is_checked_before_participants_and_data(roomd, msg):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [0, 1, 0])
        m = json.loads(json.dumps(msg).replace('"P"', json.dumps(cc.id)))
        await send_json(b.ws, m)
        await expect(b, FORBIDDEN, f"non-admin sends {m}")
        await quiet(a, b, cc)
        # the connection stays open and the room is unchanged
        await send_json(b.ws, {"type": "Petition", "data": 1})
        await expect(a, {"type": "Petition", "data": 1, "from": b.id})
        await expect(b, SENT)
    session(roomd, body)


# ---------------------------------------------------------------- control

@PLACES
def test_grant_through_one_worker_is_enforced_at_once_on_the_other(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, s0])
        assert (a.slot, b.slot) == (s0, s1)
        await control(a, [a, b, cc], [b], True, ["Broadcast"])
        await quiet(a)          # no "sent" for Control
        await send_json(b.ws, {"type": "Broadcast", "data": "granted"})
        want = {"type": "Broadcast", "data": "granted", "from": b.id}
        await expect(a, want)
        await expect(cc, want)
        await expect(b, SENT)
        await control(a, [a, b, cc], [b], False, ["Broadcast"])
        await send_json(b.ws, {"type": "Broadcast", "data": "revoked"})
        await expect(b, FORBIDDEN)
        await quiet(a, b, cc)
    session(roomd, body)


def test_control_grants_and_revokes_several_authorities(roomd):
    async def body(c):
        ps = await group(c, ["alice", "bob", "carol"], [0, 1, 0])
        a, b, cc = ps
        await control(a, ps, [b, cc], True, ["Direct", "Kick"])
        await control(a, ps, [b], False, ["Kick"])
        # granting what is held already adds no duplicate
        await control(a, ps, [cc], True, ["Direct"])
        # revoking what is not held changes nothing
        await control(a, ps, [b], False, ["Close"])
        await control(a, ps, [b], True, AUTHORITIES)
        assert b.auth == set(AUTHORITIES)
        await quiet(*ps)
        # bob now holds Direct: he may use it
        await send_json(b.ws, {"type": "Direct", "participants": [cc.id],
                               "data": "d"})
        await expect(cc, {"type": "Direct", "data": "d",
                          "participants": [cc.id], "from": b.id})
        await expect(b, SENT)
    session(roomd, body)


def test_control_holder_may_grant(roomd):
    async def body(c):
        ps = await group(c, ["alice", "bob", "carol"], [0, 1, 1])
        a, b, cc = ps
        await control(a, ps, [b], True, ["Control"])
        await control(b, ps, [cc], True, ["Broadcast"])
        await send_json(cc.ws, {"type": "Broadcast", "data": 1})
        await expect(a, {"type": "Broadcast", "data": 1, "from": cc.id})
        await expect(b, {"type": "Broadcast", "data": 1, "from": cc.id})
        await expect(cc, SENT)
    session(roomd, body)


@pytest.mark.parametrize("data,expected", [
    ("__absent__", BAD_CONTROL),
    ({}, BAD_CONTROL),
    ({"allow": True}, BAD_CONTROL),
    ({"authorities": ["Broadcast"]}, BAD_CONTROL),
    ({"allow": True, "authorities": "Broadcast"}, BAD_CONTROL),
    ({"allow": True, "authorities": ["Fly"]}, PARSING),
    ({"allow": True, "authorities": ["petition"]}, PARSING),
    ({"allow": True, "authorities": ["broadcast"]}, PARSING),
    ({"allow": False, "authorities": ["Broadcast", "Nope"]}, PARSING),
], ids=["no-data", "empty-data", "no-authorities", "no-allow",
        "authorities-not-array", "unknown-authority", "lowercase-type-name",
        "lowercase-authority",
        "one-unknown-of-two"])
def test_control_with_bad_data_fails_and_changes_nothing(roomd, data, expected):
    async def body(c):
        ps = await group(c, ["alice", "bob"], [0, 1])
        a, b = ps
        msg = {"type": "Control", "participants": [b.id]}
        if data != "__absent__":
            msg["data"] = data
        await send_json(a.ws, msg)
        await expect(a, expected, f"{msg}")
        await quiet(a, b)
        # still open, bob still holds nothing
        await send_json(b.ws, {"type": "Broadcast", "data": 1})
        await expect(b, FORBIDDEN)
        await control(a, ps, [b], True, ["Broadcast"])
    session(roomd, body)


def test_control_without_participants_is_participants_are_missing(roomd):
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, {"type": "Control", "data": {
            "allow": True, "authorities": ["Broadcast"]}})
        await expect(a, NO_PARTICIPANTS)
        await quiet(a, b)
    session(roomd, body)


# ---------------------------------------------------------------- petition

@PLACES
def test_petition_reaches_admins_and_control_holders(roomd, s0, s1):
    async def body(c):
        ps = await group(c, ["alice", "bob", "carol", "dave"],
                         [s0, s1, 1 - s1, s1])
        a, b, cc, dv = ps
        await send_json(b.ws, {"type": "Petition", "data": {"please": 1}})
        await expect(a, {"type": "Petition", "data": {"please": 1},
                         "from": b.id})
        await expect(b, SENT)
        await quiet(*ps)
        await control(a, ps, [dv], True, ["Control"])
        await send_json(b.ws, {"type": "Petition", "data": "again"})
        want = {"type": "Petition", "data": "again", "from": b.id}
        await expect(a, want, "admin")
        await expect(dv, want, "control holder")
        await expect(b, SENT)
        await quiet(*ps)
    session(roomd, body)


def test_petition_from_an_admin_reaches_itself(roomd):
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, {"type": "Petition", "data": 7})
        await expect(a, {"type": "Petition", "data": 7, "from": a.id})
        await expect(a, SENT)
        await quiet(a, b)
    session(roomd, body)


# ---------------------------------------------------------------- disconnect, kick, close

@PLACES
def test_disconnect_closes_the_sender_and_others_get_exit(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await send_json(b.ws, {"type": "Disconnect"})
        msgs, code, _ = await expect_close(b.ws)
        assert msgs == [], f"Disconnect got an answer: {msgs}"
        for p in (a, cc):
            await expect_room(p, "ParticipantExit", [a, cc], p.name)
        await quiet(a, cc)
    session(roomd, body)


@PLACES
def test_kick_disconnects_the_target(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await send_json(a.ws, {"type": "Kick", "participants": [b.id]})
        msgs, code, _ = await expect_close(b.ws)
        assert [json.loads(m) for m in msgs] == [DISCONNECTED], msgs
        await expect_room(cc, "ParticipantExit", [a, cc], "carol")
        got = [await recv_json(a.ws), await recv_json(a.ws)]
        exits = [m for m in got if m != SENT]
        assert SENT in got and len(exits) == 1, got
        check_room_msg(exits[0], "ParticipantExit", a.room, [a, cc], "kicker")
        await quiet(a, cc)
    session(roomd, body)


def test_kick_of_several_and_unknown_ids(roomd):
    async def body(c):
        a, b, cc, dv = await group(c, ["alice", "bob", "carol", "dave"],
                                   [0, 1, 0, 1])
        await send_json(a.ws, {"type": "Kick", "participants": [
            b.id, "00000000-0000-0000-0000-000000000000", cc.id]})
        for p in (b, cc):
            msgs, _, _ = await expect_close(p.ws)
            assert [json.loads(m) for m in msgs] == [DISCONNECTED], (p, msgs)
        want = {a.id, dv.id}
        for p in (a, dv):
            seen = []
            while True:
                m = await recv_json(p.ws)
                seen.append(m)
                if m == SENT:
                    assert p is a, f"{p.name} got the kicker's sent"
                    continue
                assert m.get("type") == "ParticipantExit", (p.name, seen)
                if snap_ids(m) == want:
                    check_room_msg(m, "ParticipantExit", a.room, [a, dv])
                    break
            if p is a and SENT not in seen:
                await expect(a, SENT)
        await quiet(a, dv)
    session(roomd, body)


@pytest.mark.parametrize("msg", [
    {"type": "Direct", "participants": [], "data": "x"},
    {"type": "Control", "participants": [],
     "data": {"allow": True, "authorities": ["Broadcast"]}},
    {"type": "Kick", "participants": []},
], ids=["direct", "control", "kick"])
def test_empty_participants_is_participants_are_missing(roomd, msg):
    """The original refuses an empty list as it does a missing one."""
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, msg)
        await expect(a, NO_PARTICIPANTS, f"{msg}")
        await quiet(a, b)
    session(roomd, body)


def test_control_grants_any_message_type_name(roomd):
    """The original's authorities are its message types: Control accepts
    every type name and RolesApplied lists it; it allows nothing more."""
    async def body(c):
        ps = await group(c, ["alice", "bob"], [0, 1])
        a, b = ps
        await control(a, ps, [b], True, ["Petition", "Disconnect",
                                         "ParticipantEnter",
                                         "ParticipantExit", "RolesApplied",
                                         "ServerResponse"])
        await send_json(b.ws, {"type": "Broadcast", "data": 1})
        await expect(b, FORBIDDEN)
        await control(a, ps, [b], True, ["Broadcast"])
        await control(a, ps, [b], False, ["Petition", "RolesApplied"])
        await quiet(a, b)
    session(roomd, body)


def test_kick_without_participants_is_participants_are_missing(roomd):
    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await send_json(a.ws, {"type": "Kick"})
        await expect(a, NO_PARTICIPANTS)
        await quiet(a, b)
    session(roomd, body)


def test_kick_authority_lets_a_non_admin_kick(roomd):
    async def body(c):
        ps = await group(c, ["alice", "bob", "carol"], [0, 1, 0])
        a, b, cc = ps
        await control(a, ps, [b], True, ["Kick"])
        await send_json(b.ws, {"type": "Kick", "participants": [cc.id]})
        msgs, _, _ = await expect_close(cc.ws)
        assert [json.loads(m) for m in msgs] == [DISCONNECTED], msgs
        await expect_room(a, "ParticipantExit", [a, b], "alice")
        got = [await recv_json(b.ws), await recv_json(b.ws)]
        assert SENT in got, got
    session(roomd, body)


@PLACES
def test_close_disconnects_everyone_and_removes_the_room(roomd, s0, s1):
    async def body(c):
        a, b, cc = await group(c, ["alice", "bob", "carol"], [s0, s1, 1 - s1])
        await send_json(a.ws, {"type": "Close"})
        res = await asyncio.gather(*(expect_close(p.ws) for p in (a, b, cc)))
        for p, (msgs, code, _) in zip((a, b, cc), res):
            assert [json.loads(m) for m in msgs] == [DISCONNECTED], \
                f"{p.name} got {msgs} before its close"
        n = await enter(c, "newbie", a.room)
        check_room_msg(n.enter, "ParticipantEnter", a.room, [n], "newcomer")
        assert n.admin is True
    session(roomd, body)


def test_close_authority_lets_a_non_admin_close(roomd):
    async def body(c):
        ps = await group(c, ["alice", "bob"], [0, 1])
        a, b = ps
        await control(a, ps, [b], True, ["Close"])
        await send_json(b.ws, {"type": "Close"})
        res = await asyncio.gather(*(expect_close(p.ws) for p in ps))
        for p, (msgs, _, _) in zip(ps, res):
            assert [json.loads(m) for m in msgs] == [DISCONNECTED], (p, msgs)
    session(roomd, body)


# ---------------------------------------------------------------- bad input

BAD = {
    "not-json": ("{bad", PARSING),
    "truncated": ('{"type":"Broadcast","data":', PARSING),
    "unknown-type": ('{"type":"Shout","data":1}', PARSING),
    "lowercase-type": ('{"type":"broadcast","data":1}', PARSING),
    "participants-string": ('{"type":"Broadcast","data":1,"participants":"x"}',
                            PARSING),
    "participants-object": ('{"type":"Direct","data":1,"participants":{"a":1}}',
                            PARSING),
    "participants-number": ('{"type":"Kick","participants":5}', PARSING),
    "missing-type": ('{"data":1}', NOT_SUPPORTED),
    "empty-object": ("{}", NOT_SUPPORTED),
    "ParticipantEnter": ('{"type":"ParticipantEnter","data":{}}', NOT_SUPPORTED),
    "ParticipantExit": ('{"type":"ParticipantExit","data":{}}', NOT_SUPPORTED),
    "RolesApplied": ('{"type":"RolesApplied","data":{}}', NOT_SUPPORTED),
    "ServerResponse": ('{"type":"ServerResponse","data":{"value":"ok"}}',
                       NOT_SUPPORTED),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_message_fails_and_connection_stays_open(roomd, case):
    text, expected = BAD[case]

    async def body(c):
        a, b = await group(c, ["alice", "bob"], [0, 1])
        await a.ws.send(text)
        await expect(a, expected, f"{text!r}")
        await quiet(a, b)
        await send_json(a.ws, {"type": "Broadcast", "data": "still here"})
        await expect(b, {"type": "Broadcast", "data": "still here",
                         "from": a.id})
        await expect(a, SENT)
    session(roomd, body)


def test_invalid_utf8_closes_1007(roomd):
    with RawWS(roomd) as ws:
        ws.open("/classroom?" + urllib.parse.urlencode(
            {"name": "u", "room": rid()}))
        first = ws.recv_json()
        assert first.get("type") == "ParticipantEnter", first
        ws.send_frame(0x1, b'{"type":"Broadcast","data":"\xed\xa0\x80"}')
        code, reason, skipped = ws.recv_close()
        assert code == 1007, (code, reason, skipped)


def test_message_over_max_message_bytes_closes_1009(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    with RawWS(d) as ws:
        ws.open("/classroom?name=u&room=big")
        first = ws.recv_json()
        assert first.get("type") == "ParticipantEnter", first
        # the only participant of an open room is its admin: a Broadcast
        # at the limit is answered "sent"
        head = '{"type":"Broadcast","data":"'
        ok = head + "a" * (4096 - len(head) - 2) + '"}'
        assert len(ok) == 4096
        ws.send_text(ok)
        assert ws.recv_json() == SENT
        ws.send_text(head + "a" * 5000 + '"}')
        code, reason, skipped = ws.recv_close()
        assert code == 1009, (code, reason, skipped)


# ---------------------------------------------------------------- JWT

@pytest.fixture(scope="module")
def jroomd():
    """A daemon with a secret and a subject configured (open rooms unset)."""
    if EXTERNAL_URL:
        pytest.skip("needs a daemon of its own; ROOMD_URL names an external one")
    d = start_roomd(f"classroom_jwt_secret {SECRET}\n"
                    f"classroom_jwt_subject {SUBJECT}\n")
    try:
        yield d
    finally:
        d.stop()


def token(name, room, admin=None, alg="HS512", sub=SUBJECT, secret=SECRET,
          **kw):
    return mint(claims_for(name, room, sub=sub, admin=admin, **kw), secret,
                alg)


def jwt_auth(admin=None, alg="HS256", bearer=False, **kw):
    """name -> (room -> Authorization value).  HS256 unless a test is about
    the algorithm, so that each test fails for its own reason only (both
    algorithms are checked in test_jwt_token_makes_the_participant)."""
    def per_name(name):
        def f(room):
            t = token(name, room, admin=admin, alg=alg, **kw)
            return "Bearer " + t if bearer else t
        return f
    return per_name


def handshake_status(d, path="/classroom", auth=None):
    """-> (status, headers, body) of an upgrade attempt."""
    with RawWS(d) as ws:
        extra = [("Authorization", auth)] if auth is not None else []
        status, h, _ = ws.handshake(path, extra=extra)
        body = ws.read_body(h) if status != 101 else b""
    return status, h, body


def assert_401(d, path="/classroom", auth=None):
    status, h, body = handshake_status(d, path, auth)
    assert status == 401, f"{path} Authorization={auth!r}: got {status} {h} {body!r}"
    try:
        j = json.loads(body)
    except ValueError:
        raise AssertionError(f"401 body is not JSON: {body!r}") from None
    assert isinstance(j, dict) and j.get("error") == "unauthorized", j


@pytest.mark.parametrize("alg", ["HS512", "HS256"])
@pytest.mark.parametrize("bearer", [False, True], ids=["plain", "bearer"])
def test_jwt_token_makes_the_participant(jroomd, alg, bearer):
    room = rid("jr")

    async def body(c):
        t = await enter(c, "Teacher Name", room,
                        auth=jwt_auth(True, alg, bearer)("Teacher Name"))
        assert t.admin is True
        check_room_msg(t.enter, "ParticipantEnter", room, [t])
        s = await enter(c, "Student", room, others=[t],
                        auth=jwt_auth(False, alg, bearer)("Student"))
        d2 = await enter(c, "Default", room, others=[t, s],
                         auth=jwt_auth(None, alg, bearer)("Default"))
        assert s.admin is False and d2.admin is False
        check_room_msg(d2.enter, "ParticipantEnter", room, [t, s, d2])
        for p in (t, s, d2):
            assert UUID.match(p.id), p.enter
        # the admin claim is what grants power
        await send_json(s.ws, {"type": "Broadcast", "data": 1})
        await expect(s, FORBIDDEN)
        await send_json(t.ws, {"type": "Broadcast", "data": 2})
        await expect(s, {"type": "Broadcast", "data": 2, "from": t.id})
        await expect(d2, {"type": "Broadcast", "data": 2, "from": t.id})
        await expect(t, SENT)
    session(jroomd, body)


def test_jwt_first_participant_without_admin_claim_is_not_admin(jroomd):
    room = rid("jr")

    async def body(c):
        s = await enter(c, "first", room, auth=jwt_auth(False)("first"))
        assert s.admin is False
        check_room_msg(s.enter, "ParticipantEnter", room, [s])
    session(jroomd, body)


def test_jwt_exp_in_the_future_is_accepted(jroomd):
    room = rid("jr")

    async def body(c):
        p = await enter(c, "p", room,
                        auth=jwt_auth(True, exp=in_seconds(3600))("p"))
        check_room_msg(p.enter, "ParticipantEnter", room, [p])
    session(jroomd, body)


def test_petition_with_nobody_to_receive_it_is_admins_not_found(jroomd):
    room = rid("jr")

    async def body(c):
        ps = await group(c, ["s1", "s2"], [0, 1], room, auth=jwt_auth(False))
        await send_json(ps[0].ws, {"type": "Petition", "data": "anyone?"})
        await expect(ps[0], NO_ADMINS)
        await quiet(*ps)
    session(jroomd, body)


def test_jwt_cross_worker_grant_and_revoke(jroomd):
    room = rid("jr")

    async def body(c):
        a = await enter(c, "admin", room, slot=0, fresh=True,
                        auth=jwt_auth(True)("admin"))
        b = await enter(c, "pupil", a.room, slot=1, others=[a],
                        auth=jwt_auth(False)("pupil"))
        await control(a, [a, b], [b], True, ["Broadcast"])
        await send_json(b.ws, {"type": "Broadcast", "data": "ok"})
        await expect(a, {"type": "Broadcast", "data": "ok", "from": b.id})
        await expect(b, SENT)
        await control(a, [a, b], [b], False, ["Broadcast"])
        await send_json(b.ws, {"type": "Broadcast", "data": "no"})
        await expect(b, FORBIDDEN)
    session(jroomd, body)


def _bad_tokens(room):
    good = claims_for("x", room, sub=SUBJECT, admin=True)
    valid = mint(good, SECRET)
    return {
        "missing": None,
        "empty": "",
        "bearer-only": "Bearer ",
        "basic": "Basic dXNlcjpwYXNz",
        "garbage": "not-a-jwt",
        "two-parts": valid.rsplit(".", 1)[0],
        "four-parts": valid + ".x",
        "bad-base64": "@@@." + valid.split(".", 1)[1],
        "wrong-secret": mint(good, SECRET + "x"),
        "wrong-secret-hs256": mint(good, "other", "HS256"),
        "alg-none": mint_none(good),
        "alg-none-with-signature": mint(good, SECRET, header={"alg": "none"},
                                        sign_alg="HS512"),
        "rs256-header": mint(good, SECRET, header={"alg": "RS256",
                                                   "typ": "JWT"},
                             sign_alg="HS256"),
        "hs512-header-hs256-signature": mint(good, SECRET, header={
            "alg": "HS512", "typ": "JWT"}, sign_alg="HS256"),
        "tampered": tamper_payload(mint(claims_for("x", room, sub=SUBJECT,
                                                   admin=False), SECRET),
                                   admin=True),
        "truncated-signature": valid[:-4],
        "wrong-subject": mint(claims_for("x", room, sub="someone-else"),
                              SECRET),
        "no-subject": mint(claims_for("x", room), SECRET),
        "expired": mint(claims_for("x", room, sub=SUBJECT,
                                   exp=in_seconds(-120)), SECRET),
        "bearer-expired": "Bearer " + mint(claims_for(
            "x", room, sub=SUBJECT, exp=in_seconds(-120)), SECRET),
    }


@pytest.mark.parametrize("case", list(_bad_tokens("r")))
def test_bad_token_refuses_the_handshake_with_401(jroomd, case):
    room = rid("jr-bad")
    bad = _bad_tokens(room)[case]

    async def body(c):
        # a participant of the room the bad token names sees nobody enter
        p = await enter(c, "listener", room, auth=jwt_auth(True)("listener"))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, assert_401, jroomd, "/classroom",
                                   bad)
        # nobody entered the room
        await quiet(p)
    session(jroomd, body)


def test_query_only_connection_is_401_when_a_secret_is_configured(jroomd):
    assert_401(jroomd, "/classroom?" + urllib.parse.urlencode(
        {"name": "anon", "room": rid()}))


def test_open_rooms_yes_with_a_secret_accepts_both(roomd_factory):
    d = roomd_factory(f"classroom_jwt_secret {SECRET}\n"
                      f"classroom_jwt_subject {SUBJECT}\n"
                      "classroom_open_rooms yes\n")
    room = rid()

    async def body(c):
        a = await enter(c, "anon", room)
        assert a.admin is True
        t = await enter(c, "tok", room, others=[a],
                        auth=jwt_auth(False)("tok"))
        assert t.admin is False
        check_room_msg(t.enter, "ParticipantEnter", room, [a, t])
        q = await enter(c, "anon2", room, others=[a, t])
        assert q.admin is False
    session(d, body)
    # a bad token is still refused
    assert_401(d, "/classroom", mint(claims_for("x", room, sub=SUBJECT),
                                     "wrong"))


def test_without_subject_configured_any_sub_is_accepted(roomd_factory):
    d = roomd_factory(f"classroom_jwt_secret {SECRET}\n")
    room = rid()

    async def body(c):
        a = await enter(c, "a", room, auth=lambda r: mint(
            claims_for("a", r, sub="whoever", admin=True), SECRET))
        b = await enter(c, "b", room, others=[a], auth=lambda r: mint(
            claims_for("b", r), SECRET, "HS256"))
        check_room_msg(b.enter, "ParticipantEnter", room, [a, b])
    session(d, body)
    assert_401(d, "/classroom?name=n&room=" + room)

"""The screenshare dialect, mounted at /ws (and /ws/): screen-sharing
signaling between a room's host and its users, byte-compatible with the
original FastAPI server (seed 004, NOTES.md "screenshare").

Every relay is tried with sender and receiver on the same worker and on
different workers (placement by X-Roomd-Worker on the 101 response).
Messages are compared whole (dict equality) and, at the top level, in the
key order the original sends."""
import asyncio
import functools
import json
import re

import pytest

from conftest import (Conns, RawWS, check, close_all, close_ws, expect,
                      open_on_slot, quiet, recv_json, run, send_json, session,
                      ws_open_headers, ws_worker)

ROOM_ID = re.compile(r"^[a-z0-9]{4}$")
MUST_JOIN = {"type": "ERROR", "message": "You must join a room first"}
USER_NOT_FOUND = {"type": "ERROR", "message": "User not found"}
ROOM_NOT_FOUND = {"type": "INVALID_ROOM_ID",
                  "message": "Room with given ID not found"}
ROOM_REQUIRED = {"type": "INVALID_ROOM_ID", "message": "Room ID is required"}
NAME_MISSING = {"type": "INVALID_USERNAME", "message": "Username missing"}
NAME_INVALID = {"type": "INVALID_USERNAME", "message": "Invalid username"}
NAME_TAKEN = {"type": "INVALID_USERNAME",
              "message": "Username already exists in this room"}
LEFT_ROOM = {"type": "LEFT_ROOM"}
HOST_LEFT = {"type": "HOST_LEFT"}

# (host slot, user slot)
PLACES = pytest.mark.parametrize("hs,us", [(0, 0), (0, 1)],
                                 ids=["same-worker", "cross-worker"])
PLACES3 = pytest.mark.parametrize("hs,us", [(0, 0), (0, 1), (1, 0)],
                                  ids=["same-worker", "cross-worker",
                                       "cross-worker-reversed"])


# ---------------------------------------------------------------- helpers

class ShareConns(Conns):
    """The connections of one test, opened on a worker slot if asked."""

    async def open(self, slot=None, path="/ws"):
        ws, _ = await open_on_slot(self.d.ws_base + path, slot)
        self.all.append(ws)
        return ws


# Every test's session opens its connections with ShareConns.
session = functools.partial(session, conns=ShareConns)


def without_epoch(m):
    """ROOM_CREATED and ROOM_JOINED carry the arena's epoch last (an
    addition of roomd): check it and take it off."""
    if isinstance(m, dict) and m.get("type") in ("ROOM_CREATED",
                                                  "ROOM_JOINED"):
        assert list(m)[-1] == "epoch", f"no epoch: {m!r}"
        e = m.pop("epoch")
        assert isinstance(e, int) and not isinstance(e, bool) and \
            0 < e < 2 ** 53, f"epoch {e!r}"
    return m


# Messages are compared without their epoch (without_epoch checks it).
check = functools.partial(check, norm=without_epoch)
expect = functools.partial(expect, norm=without_epoch)


async def create(ws, username="host"):
    await send_json(ws, {"type": "CREATE_ROOM", "username": username})
    m = without_epoch(await recv_json(ws))
    assert m.get("type") == "ROOM_CREATED", m
    assert list(m) == ["type", "roomid"], m
    assert isinstance(m["roomid"], str) and ROOM_ID.match(m["roomid"]), m
    return m["roomid"]


async def join(ws, rid, username, host=None):
    await send_json(ws, {"type": "JOIN_ROOM", "roomid": rid,
                         "username": username})
    await expect(ws, {"type": "ROOM_JOINED", "roomid": rid}, "joiner")
    if host is not None:
        await expect(host, {"type": "USER_JOINED", "username": username},
                     "host after join")


async def make_room(c, host_slot=None, users=(), host_name="host"):
    """A host on host_slot and users [(name, slot)] joined; -> (host, rid,
    [user sockets])."""
    h = await c.open(host_slot)
    rid = await create(h, host_name)
    us = []
    for name, slot in users:
        u = await c.open(slot)
        await join(u, rid, name, host=h)
        us.append(u)
    return h, rid, us


async def expect_after_optional_left(ws, expected, what):
    """The reply to CREATE/JOIN from someone already in a room, tolerating
    one LEFT_ROOM notice before it (the contract does not say whether the
    implicit leave is announced to the mover)."""
    m = await recv_json(ws)
    if m == LEFT_ROOM:
        m = await recv_json(ws)
    check(m, expected, what)
    return m


async def unknown_room_id(c):
    """A well-formed room id that is not live: create a room and delete it
    by leaving."""
    ws = await c.open()
    rid = await create(ws, "tmp")
    await send_json(ws, {"type": "LEAVE_ROOM"})
    await expect(ws, LEFT_ROOM, "leave")
    return rid


# ---------------------------------------------------------------- create / join

@pytest.mark.parametrize("path", ["/ws", "/ws/"])
def test_create_room_replies_room_created_with_4_char_id(roomd, path):
    async def body(c):
        ws = await c.open(path=path)
        await send_json(ws, {"type": "CREATE_ROOM", "username": "alice"})
        m = without_epoch(await recv_json(ws))
        assert list(m) == ["type", "roomid"], m
        assert m["type"] == "ROOM_CREATED", m
        assert isinstance(m["roomid"], str) and ROOM_ID.match(m["roomid"]), m
        await quiet(ws)
    session(roomd, body)


def test_room_ids_are_unique_among_live_rooms(roomd):
    n = 40

    async def body(c):
        wss = [await c.open() for _ in range(n)]
        slots = {ws_worker(w)[0] for w in wss}
        await asyncio.gather(*(send_json(w, {"type": "CREATE_ROOM",
                                             "username": f"h{i}"})
                               for i, w in enumerate(wss)))
        ms = await asyncio.gather(*(recv_json(w) for w in wss))
        return slots, ms
    slots, ms = session(roomd, body)
    ids = [m.get("roomid") for m in ms]
    assert all(m.get("type") == "ROOM_CREATED" for m in ms), ms
    assert all(isinstance(i, str) and ROOM_ID.match(i) for i in ids), ids
    assert len(set(ids)) == n, f"duplicate room ids among live rooms: {ids}"
    assert len(slots) >= 2, f"all {n} connections landed on one worker"


def test_ws_and_ws_slash_serve_the_same_rooms(roomd):
    async def body(c):
        h = await c.open(path="/ws/")
        rid = await create(h, "host")
        u = await c.open(path="/ws")
        await join(u, rid, "viewer", host=h)
        h2 = await c.open(path="/ws")
        rid2 = await create(h2, "host2")
        u2 = await c.open(path="/ws/")
        await join(u2, rid2, "viewer2", host=h2)
    session(roomd, body)


@PLACES3
def test_join_room_answers_joiner_first_then_tells_host(roomd, hs, us):
    async def body(c):
        h = await c.open(hs)
        rid = await create(h, "host")
        u = await c.open(us)
        await send_json(u, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "bob"})
        await expect(u, {"type": "ROOM_JOINED", "roomid": rid}, "joiner")
        await expect(h, {"type": "USER_JOINED", "username": "bob"}, "host")
        await quiet(h, u)
    session(roomd, body)


@PLACES
def test_join_room_id_is_stripped_and_lowercased_and_echoed_as_sent(roomd, hs, us):
    async def body(c):
        h = await c.open(hs)
        rid = await create(h, "host")
        sent = [f"  {rid.upper()} ", f"\t{rid}\n", rid.upper()]
        for i, s in enumerate(sent):
            u = await c.open(us)
            await send_json(u, {"type": "JOIN_ROOM", "roomid": s,
                                "username": f"u{i}"})
            await expect(u, {"type": "ROOM_JOINED", "roomid": s},
                         f"join with {s!r}")
            await expect(h, {"type": "USER_JOINED", "username": f"u{i}"},
                         f"host after join with {s!r}")
    session(roomd, body)


# ---------------------------------------------------------------- usernames

MISSING = {"absent": "__absent__", "null": None, "number": 123,
           "array": ["ann"], "object": {"n": "ann"}, "bool": True}
INVALID = {"empty": "", "31-chars": "x" * 31, "31-non-ascii": "\u00e9" * 31,
           "31-astral": "\U0001F600" * 31, "nul": "a\u0000b",
           "ctrl-01": "a\u0001b", "tab": "a\tb", "newline": "ann\nlee",
           "del": "a\u007fb", "c1-control": "a\u0085b", "esc": "\u001b[31m"}
VALID = {"30-chars": "y" * 30, "30-non-ascii": "\u00e9" * 30,
         "30-astral": "\U0001F600" * 30, "space-inside": "Ann Lee",
         "cyrillic": "\u0418\u0432\u0430\u043d", "punct": "a.b-c_d@e!"}


def _with_username(msg, value):
    msg = dict(msg)
    if value != "__absent__":
        msg["username"] = value
    return msg


@pytest.mark.parametrize("op", ["CREATE_ROOM", "JOIN_ROOM"])
@pytest.mark.parametrize("case", list(MISSING))
def test_username_missing(roomd, op, case):
    async def body(c):
        h, rid, _ = await make_room(c)
        ws = await c.open()
        msg = {"type": op} if op == "CREATE_ROOM" else {"type": op, "roomid": rid}
        await send_json(ws, _with_username(msg, MISSING[case]))
        await expect(ws, NAME_MISSING, f"{op} with username {case}")
        # still in no room, and the room's host heard nothing
        await send_json(ws, {"type": "REQUEST_SHARING"})
        await expect(ws, MUST_JOIN, "after the refused request")
        await quiet(h)
    session(roomd, body)


@pytest.mark.parametrize("op", ["CREATE_ROOM", "JOIN_ROOM"])
@pytest.mark.parametrize("case", list(INVALID))
def test_username_invalid(roomd, op, case):
    async def body(c):
        h, rid, _ = await make_room(c)
        ws = await c.open()
        msg = {"type": op} if op == "CREATE_ROOM" else {"type": op, "roomid": rid}
        await send_json(ws, _with_username(msg, INVALID[case]))
        await expect(ws, NAME_INVALID, f"{op} with username {INVALID[case]!r}")
        await send_json(ws, {"type": "REQUEST_SHARING"})
        await expect(ws, MUST_JOIN, "after the refused request")
        await quiet(h)
    session(roomd, body)


@pytest.mark.parametrize("case", list(VALID))
def test_username_valid_edge_cases_are_accepted_and_kept(roomd, case):
    name = VALID[case]

    async def body(c):
        h = await c.open()
        await create(h, name)
        # and as a joiner, announced to the host exactly as sent
        h2, rid2, _ = await make_room(c)
        u = await c.open()
        await join(u, rid2, name, host=h2)
    session(roomd, body)


@PLACES
def test_username_case_is_kept_ann_and_ann_are_different_users(roomd, hs, us):
    async def body(c):
        h = await c.open(hs)
        rid = await create(h, "Ann")
        u1 = await c.open(us)
        await join(u1, rid, "ann", host=h)
        u2 = await c.open(us)
        await join(u2, rid, "ANN", host=h)
        await send_json(u1, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "ann"})
    session(roomd, body)


def test_roomid_presence_then_username_then_the_room_are_checked(roomd):
    """The original checks that roomid is given first, then the username,
    then looks the room up."""
    async def body(c):
        ws = await c.open()
        # unknown room and no username: the username error wins
        await send_json(ws, {"type": "JOIN_ROOM", "roomid": "no-such-room"})
        await expect(ws, NAME_MISSING, "unknown room, no username")
        # no roomid and an invalid or missing username: Room ID is required
        await send_json(ws, {"type": "JOIN_ROOM", "username": ""})
        await expect(ws, ROOM_REQUIRED, "no roomid, empty username")
        await send_json(ws, {"type": "JOIN_ROOM"})
        await expect(ws, ROOM_REQUIRED, "no roomid, no username")
        await send_json(ws, {"type": "JOIN_ROOM", "roomid": "",
                             "username": "  "})
        await expect(ws, ROOM_REQUIRED, "empty roomid, blank username")
        await send_json(ws, {"type": "JOIN_ROOM", "username": "x" * 31,
                             "roomid": "no-such-room"})
        await expect(ws, NAME_INVALID, "unknown room, long username")
    session(roomd, body)


def test_join_without_roomid_is_room_id_required(roomd):
    async def body(c):
        ws = await c.open()
        await send_json(ws, {"type": "JOIN_ROOM", "username": "bob"})
        await expect(ws, ROOM_REQUIRED)
        await send_json(ws, {"type": "REQUEST_SHARING"})
        await expect(ws, MUST_JOIN)
    session(roomd, body)


def test_join_unknown_room_is_not_found(roomd):
    async def body(c):
        gone = await unknown_room_id(c)
        ws = await c.open()
        for rid in ("no-such-room", "!!!!", gone, gone.upper()):
            await send_json(ws, {"type": "JOIN_ROOM", "roomid": rid,
                                 "username": "bob"})
            await expect(ws, ROOM_NOT_FOUND, f"join {rid!r}")
        await send_json(ws, {"type": "REQUEST_SHARING"})
        await expect(ws, MUST_JOIN)
    session(roomd, body)


@PLACES
@pytest.mark.parametrize("taken", ["bob", " bob "])
def test_join_with_a_name_used_in_the_room_is_refused(roomd, hs, us, taken):
    async def body(c):
        h, rid, (u,) = await make_room(c, hs, [("bob", 1 - us)])
        x = await c.open(us)
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": taken})
        await expect(x, NAME_TAKEN, f"join as {taken!r}")
        await quiet(h, u)
        # the refused one is in no room; the name is still the first one's
        await send_json(x, {"type": "REQUEST_SHARING"})
        await expect(x, MUST_JOIN)
        # another name works
        await join(x, rid, "carol", host=h)
    session(roomd, body)


# ---------------------------------------------------------------- outside a room

@pytest.mark.parametrize("msg", [
    {"type": "REQUEST_SHARING"},
    {"type": "STOP_SHARING"},
    {"type": "ALLOW_SHARING", "username": "bob"},
    {"type": "RCP_OFFER", "sdp": "v=0"},
    {"type": "RCP_ANSWER", "username": "bob", "sdp": "v=0"},
    {"type": "ICE_CANDIDATE", "candidate": "c"},
    {"type": "LEAVE_ROOM"},
    {"type": "NO_SUCH_TYPE"},
    {"type": "create_room", "username": "lower"},
    {"type": 7},
    {"username": "no-type"},
    {},
], ids=lambda m: json.dumps(m)[:40])
def test_before_joining_everything_else_is_you_must_join_a_room_first(roomd, msg):
    async def body(c):
        ws = await c.open()
        await send_json(ws, msg)
        await expect(ws, MUST_JOIN, f"{msg!r}")
        # still open and still usable
        await create(ws, "after")
    session(roomd, body)


# ---------------------------------------------------------------- bad input

BAD_TEXT = {"not-json": "{bad json", "truncated": '{"type": "CREATE_ROOM"',
            "array": '[{"type": "CREATE_ROOM", "username": "x"}]',
            "string": '"CREATE_ROOM"', "number": "42", "null": "null",
            "true": "true", "empty": "", "nan": '{"type": NaN}'}


async def _bad_input_then_usable(c, send_bad, in_room):
    if in_room:
        h, rid, (u,) = await make_room(c, users=[("bob", None)])
        ws = u
    else:
        ws = await c.open()
    await send_bad(ws)
    m = await recv_json(ws)
    assert list(m) == ["type", "message"], m
    assert m["type"] == "ERROR", m
    assert isinstance(m["message"], str) and \
        m["message"].startswith("Invalid message"), m
    if in_room:
        # still open and still in the room
        await send_json(ws, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
    else:
        await create(ws, "after")


@pytest.mark.parametrize("in_room", [False, True], ids=["no-room", "in-room"])
@pytest.mark.parametrize("case", list(BAD_TEXT))
def test_invalid_text_message_gets_error_and_connection_stays_open(roomd, case, in_room):
    async def body(c):
        await _bad_input_then_usable(c, lambda ws: ws.send(BAD_TEXT[case]),
                                     in_room)
    session(roomd, body)


@pytest.mark.parametrize("in_room", [False, True], ids=["no-room", "in-room"])
def test_binary_frame_gets_error_and_connection_stays_open(roomd, in_room):
    payload = json.dumps({"type": "CREATE_ROOM", "username": "bin"}).encode()

    async def body(c):
        await _bad_input_then_usable(c, lambda ws: ws.send(payload), in_room)
    session(roomd, body)


def test_invalid_utf8_closes_1007(roomd):
    with RawWS(roomd) as ws:
        ws.open("/ws")
        ws.send_frame(0x1, b'{"type":"CREATE_ROOM","username":"\xc3\x28"}')
        code, reason, skipped = ws.recv_close()
        assert code == 1007, (code, reason, skipped)


def test_message_over_max_message_bytes_closes_1009(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    with RawWS(d) as ws:
        ws.open("/ws")
        # at the limit: accepted (an answer comes back)
        head = '{"type":"CREATE_ROOM","username":"u","pad":"'
        ok = head + "a" * (4096 - len(head) - 2) + '"}'
        assert len(ok) == 4096
        ws.send_text(ok)
        m = ws.recv_json()
        assert m.get("type") == "ROOM_CREATED", m
        big = '{"type":"LEAVE_ROOM","pad":"' + "a" * 5000 + '"}'
        ws.send_text(big)
        code, reason, skipped = ws.recv_close()
        assert code == 1009, (code, reason, skipped)


# ---------------------------------------------------------------- in a room

@pytest.mark.parametrize("who", ["host", "user"])
@pytest.mark.parametrize("msg", [{"type": "NO_SUCH_TYPE"},
                                 {"type": "create_room", "username": "z"},
                                 {"type": "USER_JOINED", "username": "z"},
                                 {"type": "ROOM_CREATED", "roomid": "abcd"}],
                         ids=lambda m: m["type"])
def test_unknown_type_in_a_room_is_ignored(roomd, who, msg):
    async def body(c):
        h, rid, (u,) = await make_room(c, 0, [("bob", 1)])
        sender = h if who == "host" else u
        await send_json(sender, msg)
        await quiet(h, u)
        # both still work
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
    session(roomd, body)


@PLACES3
def test_request_sharing_from_user_reaches_host_with_username(roomd, hs, us):
    async def body(c):
        h, rid, (u, other) = await make_room(c, hs, [("bob", us), ("eve", us)])
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
        await quiet(h, u, other)
    session(roomd, body)


@PLACES
@pytest.mark.parametrize("msg,expected", [
    ({"type": "REQUEST_SHARING", "username": "eve"},
     {"type": "REQUEST_SHARING", "username": "bob"}),
    ({"type": "STOP_SHARING", "username": "eve"},
     {"type": "STOP_SHARING", "username": "bob"}),
    ({"type": "RCP_OFFER", "username": "eve", "sdp": "o"},
     {"type": "RCP_OFFER", "username": "bob", "sdp": "o"}),
    ({"type": "ICE_CANDIDATE", "username": "eve", "candidate": "c"},
     {"type": "ICE_CANDIDATE", "username": "bob", "candidate": "c"}),
], ids=["request", "stop", "offer", "ice"])
def test_user_cannot_claim_another_username(roomd, hs, us, msg, expected):
    async def body(c):
        h, rid, (u, e) = await make_room(c, hs, [("bob", us), ("eve", 1 - us)])
        await send_json(u, msg)
        await expect(h, expected, "host")
        await quiet(h, u, e)
    session(roomd, body)


@PLACES
def test_stop_sharing_from_host_with_username_reaches_only_that_user(roomd, hs, us):
    async def body(c):
        h, rid, (a, b) = await make_room(c, hs, [("ann", 1 - us), ("bob", us)])
        await send_json(h, {"type": "STOP_SHARING", "username": "bob"})
        await expect(b, {"type": "STOP_SHARING"}, "bob")
        await quiet(h, a, b)
    session(roomd, body)


def test_stop_sharing_from_host_to_unknown_user_is_user_not_found(roomd):
    async def body(c):
        h, rid, (a,) = await make_room(c, 0, [("ann", 1)])
        for name in ("ghost", "ANN", "host"):
            await send_json(h, {"type": "STOP_SHARING", "username": name})
            await expect(h, USER_NOT_FOUND, f"stop {name!r}")
        await quiet(h, a)
    session(roomd, body)


def test_stop_sharing_from_host_without_username_reaches_every_user(roomd):
    async def body(c):
        h, rid, us = await make_room(c, 0, [("ann", 0), ("bob", 1),
                                            ("cid", 1)])
        await send_json(h, {"type": "STOP_SHARING"})
        for name, u in zip(("ann", "bob", "cid"), us):
            await expect(u, {"type": "STOP_SHARING"}, name)
        await quiet(h, *us)
    session(roomd, body)


@PLACES
def test_stop_sharing_from_user_reaches_host_with_username(roomd, hs, us):
    async def body(c):
        h, rid, (u, o) = await make_room(c, hs, [("bob", us), ("ann", us)])
        await send_json(u, {"type": "STOP_SHARING"})
        await expect(h, {"type": "STOP_SHARING", "username": "bob"})
        await quiet(h, u, o)
    session(roomd, body)


@PLACES3
def test_allow_sharing_from_host_reaches_that_user(roomd, hs, us):
    async def body(c):
        h, rid, (a, b) = await make_room(c, hs, [("ann", 1 - us), ("bob", us)])
        await send_json(h, {"type": "ALLOW_SHARING", "username": "bob"})
        await expect(b, {"type": "ALLOW_SHARING"}, "bob")
        await quiet(h, a, b)
    session(roomd, body)


def test_allow_sharing_to_unknown_user_is_user_not_found(roomd):
    async def body(c):
        h, rid, (a,) = await make_room(c, 0, [("ann", 1)])
        await send_json(h, {"type": "ALLOW_SHARING", "username": "ghost"})
        await expect(h, USER_NOT_FOUND)
        await quiet(h, a)
    session(roomd, body)


SDPS = {"string": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n",
        "object": {"type": "offer", "sdp": "v=0\r\n", "n": [1, 2.5, None],
                   "deep": {"a": {"b": [True, False]}}},
        "array": [1, "two", {"three": 3}, [], {}],
        "number": 12345,
        "float": -1.5e10,
        "unicode": "\u00e9\u2603\U0001F600 \"quoted\" \\ /",
        "empty-object": {}}


@PLACES3
@pytest.mark.parametrize("kind", list(SDPS))
def test_rcp_offer_and_answer_pass_sdp_through_untouched(roomd, hs, us, kind):
    sdp = SDPS[kind]

    async def body(c):
        h, rid, (u, o) = await make_room(c, hs, [("bob", us), ("ann", 1 - us)])
        await send_json(u, {"type": "RCP_OFFER", "sdp": sdp})
        await expect(h, {"type": "RCP_OFFER", "username": "bob", "sdp": sdp},
                     "offer at host")
        await send_json(h, {"type": "RCP_ANSWER", "username": "bob",
                            "sdp": sdp})
        await expect(u, {"type": "RCP_ANSWER", "sdp": sdp}, "answer at user")
        await quiet(h, u, o)
    session(roomd, body)


def test_rcp_answer_to_unknown_user_is_user_not_found(roomd):
    async def body(c):
        h, rid, (a,) = await make_room(c, 0, [("ann", 1)])
        await send_json(h, {"type": "RCP_ANSWER", "username": "ghost",
                            "sdp": "v=0"})
        await expect(h, USER_NOT_FOUND)
        await quiet(h, a)
    session(roomd, body)


CANDIDATES = {"object": {"candidate": "candidate:1 1 UDP 2122252543 "
                                      "192.168.1.2 49203 typ host",
                         "sdpMid": "0", "sdpMLineIndex": 0,
                         "usernameFragment": None},
              "string": "candidate:842163049 1 udp 1677729535 1.2.3.4 "
                        "46154 typ srflx",
              "array": [{"a": 1}, 2],
              "number": 0}


@PLACES3
@pytest.mark.parametrize("kind", list(CANDIDATES))
def test_ice_candidate_is_relayed_both_ways(roomd, hs, us, kind):
    cand = CANDIDATES[kind]

    async def body(c):
        h, rid, (u, o) = await make_room(c, hs, [("bob", us), ("ann", 1 - us)])
        await send_json(u, {"type": "ICE_CANDIDATE", "candidate": cand})
        await expect(h, {"type": "ICE_CANDIDATE", "username": "bob",
                         "candidate": cand}, "user -> host")
        await send_json(h, {"type": "ICE_CANDIDATE", "username": "bob",
                            "candidate": cand})
        await expect(u, {"type": "ICE_CANDIDATE", "candidate": cand},
                     "host -> user")
        await quiet(h, u, o)
    session(roomd, body)


def test_ice_candidate_from_host_to_unknown_user_is_user_not_found(roomd):
    async def body(c):
        h, rid, (a,) = await make_room(c, 0, [("ann", 1)])
        await send_json(h, {"type": "ICE_CANDIDATE", "username": "ghost",
                            "candidate": "c"})
        await expect(h, USER_NOT_FOUND)
        await quiet(h, a)
    session(roomd, body)


# ---------------------------------------------------------------- leaving

@PLACES
def test_leave_room_from_user(roomd, hs, us):
    async def body(c):
        h, rid, (u, o) = await make_room(c, hs, [("bob", us), ("ann", 1 - us)])
        await send_json(u, {"type": "LEAVE_ROOM"})
        await expect(u, LEFT_ROOM, "leaver")
        await expect(h, {"type": "USER_LEFT", "username": "bob"}, "host")
        await quiet(h, u, o)
        # in no room any more
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(u, MUST_JOIN, "after leaving")
        await quiet(h)
        # the host no longer finds bob
        await send_json(h, {"type": "ALLOW_SHARING", "username": "bob"})
        await expect(h, USER_NOT_FOUND, "allow the leaver")
        # and the name is free again
        await join(u, rid, "bob", host=h)
    session(roomd, body)


@PLACES
def test_leave_room_from_host_tells_every_user_host_left(roomd, hs, us):
    async def body(c):
        h, rid, (a, b) = await make_room(c, hs, [("ann", us), ("bob", 1 - us)])
        await send_json(h, {"type": "LEAVE_ROOM"})
        await expect(h, LEFT_ROOM, "host")
        await expect(a, HOST_LEFT, "ann")
        await expect(b, HOST_LEFT, "bob")
        await quiet(h, a, b)
        await send_json(h, {"type": "STOP_SHARING"})
        await expect(h, MUST_JOIN, "host after leaving")
        await quiet(a, b)
    session(roomd, body)


def test_room_without_host_lives_while_users_remain(roomd):
    async def body(c):
        h, rid, (a,) = await make_room(c, 0, [("ann", 1)])
        await send_json(h, {"type": "LEAVE_ROOM"})
        await expect(h, LEFT_ROOM)
        await expect(a, HOST_LEFT)
        n = await c.open(0)
        await send_json(n, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "new"})
        await expect(n, {"type": "ROOM_JOINED", "roomid": rid},
                     "join a room whose host left")
        # the last users leave: now it is gone
        for ws in (a, n):
            await send_json(ws, {"type": "LEAVE_ROOM"})
            await expect(ws, LEFT_ROOM)
        x = await c.open(1)
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "late"})
        await expect(x, ROOM_NOT_FOUND, "join after everyone left")
    session(roomd, body)


@PLACES
def test_user_socket_closing_tells_host_user_left(roomd, hs, us):
    async def body(c):
        h, rid, (u, o) = await make_room(c, hs, [("bob", us), ("ann", 1 - us)])
        await close_ws(u)
        await expect(h, {"type": "USER_LEFT", "username": "bob"}, "host")
        await quiet(h, o)
        n = await c.open(us)
        await join(n, rid, "bob", host=h)
    session(roomd, body)


@PLACES
def test_host_socket_closing_tells_users_host_left(roomd, hs, us):
    async def body(c):
        h, rid, (a, b) = await make_room(c, hs, [("ann", us), ("bob", 1 - us)])
        await close_ws(h)
        await expect(a, HOST_LEFT, "ann")
        await expect(b, HOST_LEFT, "bob")
        await quiet(a, b)
    session(roomd, body)


@PLACES
def test_room_is_deleted_when_host_and_users_are_gone(roomd, hs, us):
    async def body(c):
        h, rid, (u,) = await make_room(c, hs, [("bob", us)])
        await close_ws(u)
        await expect(h, {"type": "USER_LEFT", "username": "bob"})
        await close_ws(h)
        # the close handshake is over; give the worker a moment to drop
        # the host, then the room must be gone
        await asyncio.sleep(0.2)
        x = await c.open(us)
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "late"})
        m = await recv_json(x)
        check(m, ROOM_NOT_FOUND, "join a room whose host and users closed")
    session(roomd, body)


def test_lone_host_leaving_deletes_the_room(roomd):
    async def body(c):
        h = await c.open(0)
        rid = await create(h, "host")
        await send_json(h, {"type": "LEAVE_ROOM"})
        await expect(h, LEFT_ROOM)
        for slot in (0, 1):
            x = await c.open(slot)
            await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                                "username": "late"})
            await expect(x, ROOM_NOT_FOUND, f"join from worker {slot}")
    session(roomd, body)


# ---------------------------------------------------------------- moving

@PLACES
def test_create_room_from_a_user_leaves_the_old_room_first(roomd, hs, us):
    async def body(c):
        h, rid, (u,) = await make_room(c, hs, [("bob", us)])
        await send_json(u, {"type": "CREATE_ROOM", "username": "bob"})
        m = await recv_json(u)
        if m == LEFT_ROOM:
            m = await recv_json(u)
        m = without_epoch(m)
        assert m.get("type") == "ROOM_CREATED" and list(m) == ["type", "roomid"], m
        assert ROOM_ID.match(m["roomid"]) and m["roomid"] != rid, m
        await expect(h, {"type": "USER_LEFT", "username": "bob"}, "old host")
        # bob now hosts the new room
        x = await c.open(hs)
        await join(x, m["roomid"], "xan", host=u)
        await quiet(h)
    session(roomd, body)


@PLACES
def test_join_room_from_a_user_leaves_the_old_room_first(roomd, hs, us):
    async def body(c):
        h1, r1, (u,) = await make_room(c, hs, [("bob", us)], "host1")
        h2, r2, _ = await make_room(c, 1 - hs, [], "host2")
        await send_json(u, {"type": "JOIN_ROOM", "roomid": r2,
                            "username": "bob"})
        await expect_after_optional_left(
            u, {"type": "ROOM_JOINED", "roomid": r2}, "mover")
        await expect(h1, {"type": "USER_LEFT", "username": "bob"}, "old host")
        await expect(h2, {"type": "USER_JOINED", "username": "bob"}, "new host")
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h2, {"type": "REQUEST_SHARING", "username": "bob"})
        await quiet(h1)
    session(roomd, body)


def test_rejoining_the_same_room_under_the_same_name_is_name_taken(roomd):
    """The original leaves only once a join succeeds: bob is still in the
    room when his name is checked."""
    async def body(c):
        h, rid, (u,) = await make_room(c, 0, [("bob", 1)])
        await send_json(u, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "bob"})
        await expect(u, NAME_TAKEN, "rejoiner")
        await quiet(h, u)
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
    session(roomd, body)


def test_rejoining_the_same_room_under_another_name_leaves_then_joins(roomd):
    async def body(c):
        h, rid, (u,) = await make_room(c, 0, [("bob", 1)])
        await send_json(u, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "rob"})
        await expect_after_optional_left(
            u, {"type": "ROOM_JOINED", "roomid": rid}, "rejoiner")
        await expect(h, {"type": "USER_LEFT", "username": "bob"}, "host 1st")
        await expect(h, {"type": "USER_JOINED", "username": "rob"}, "host 2nd")
    session(roomd, body)


@PLACES
@pytest.mark.parametrize("msg,expected", [
    ({"type": "JOIN_ROOM", "username": "bob"}, ROOM_REQUIRED),
    ({"type": "JOIN_ROOM", "roomid": "zzzzzz", "username": "bob"},
     ROOM_NOT_FOUND),
    ({"type": "JOIN_ROOM", "roomid": "ROOM", "username": ""}, NAME_INVALID),
    ({"type": "JOIN_ROOM", "roomid": "ROOM", "username": "ann"}, NAME_TAKEN),
    ({"type": "CREATE_ROOM", "username": " "}, NAME_INVALID),
], ids=["no-roomid", "unknown-room", "bad-name", "name-taken",
        "create-bad-name"])
def test_a_failed_join_or_create_keeps_the_member_in_its_room(roomd, hs, us,
                                                              msg, expected):
    """The original leaves the current room only when the request
    succeeds: a refused one tells the host nothing and changes nothing."""
    async def body(c):
        h, rid, (u, a) = await make_room(c, hs, [("bob", us), ("ann", us)])
        m = dict(msg)
        if m.get("roomid") == "ROOM":
            m["roomid"] = rid
        await send_json(u, m)
        await expect(u, expected, f"{m}")
        await quiet(h, u, a)
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
    session(roomd, body)


@PLACES
def test_username_is_stripped_before_it_is_checked_and_kept(roomd, hs, us):
    """As the original: " bob " joins as, and is announced as, "bob"."""
    async def body(c):
        h = await c.open(hs)
        rid = await create(h, "  host\t")
        u = await c.open(us)
        await send_json(u, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": " bob "})
        await expect(u, {"type": "ROOM_JOINED", "roomid": rid}, "joiner")
        await expect(h, {"type": "USER_JOINED", "username": "bob"}, "host")
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "bob"})
        await send_json(h, {"type": "ALLOW_SHARING", "username": "bob"})
        await expect(u, {"type": "ALLOW_SHARING"})
        x = await c.open(us)
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "bob\u3000"})
        await expect(x, NAME_TAKEN, "bob with an ideographic space")
        for blank in (" ", "   ", "\t\n", "\u00a0\u2003"):
            await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                                "username": blank})
            await expect(x, NAME_INVALID, f"username {blank!r}")
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": " " + "y" * 30 + " "})
        await expect(x, {"type": "ROOM_JOINED", "roomid": rid}, "30 + spaces")
        await expect(h, {"type": "USER_JOINED", "username": "y" * 30})
    session(roomd, body)


@PLACES
def test_a_user_may_take_the_hosts_username(roomd, hs, us):
    """The original never keeps the host's name (its front end names
    every host "hostname"), so a user may be called the same."""
    async def body(c):
        h = await c.open(hs)
        rid = await create(h, "hostname")
        u = await c.open(us)
        await join(u, rid, "hostname", host=h)
        await send_json(u, {"type": "REQUEST_SHARING"})
        await expect(h, {"type": "REQUEST_SHARING", "username": "hostname"})
        await send_json(h, {"type": "ALLOW_SHARING", "username": "hostname"})
        await expect(u, {"type": "ALLOW_SHARING"})
        x = await c.open(us)
        await send_json(x, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "hostname"})
        await expect(x, NAME_TAKEN, "a second user named hostname")
        await quiet(h, u)
    session(roomd, body)


@PLACES
def test_create_room_from_a_host_leaves_the_old_room_first(roomd, hs, us):
    async def body(c):
        h, rid, (a,) = await make_room(c, hs, [("ann", us)])
        await send_json(h, {"type": "CREATE_ROOM", "username": "host"})
        m = await recv_json(h)
        if m == LEFT_ROOM:
            m = await recv_json(h)
        assert m.get("type") == "ROOM_CREATED" and m.get("roomid") != rid, m
        await expect(a, HOST_LEFT, "user of the old room")
        await quiet(a)
    session(roomd, body)


def test_lone_host_joining_its_own_room_finds_it_deleted(roomd):
    # "first leaves the old room, then handles the request": the room lost
    # its only member, so it is gone when the join is handled
    async def body(c):
        h = await c.open()
        rid = await create(h, "host")
        await send_json(h, {"type": "JOIN_ROOM", "roomid": rid,
                            "username": "other"})
        await expect_after_optional_left(h, ROOM_NOT_FOUND, "join own room")
    session(roomd, body)


# ---------------------------------------------------------------- the original client

def test_original_client_session_works_unchanged(roomd_factory):
    """A whole host+user session as the original front end runs it, on a
    daemon started with only -l 127.0.0.1:PORT (default mounts)."""
    d = roomd_factory()
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
             "s=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"}
    answer = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n"}
    cand_u = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.2 54321 "
              "typ host generation 0", "sdpMid": "0", "sdpMLineIndex": 0}
    cand_h = {"candidate": "candidate:2 1 udp 2122260223 10.0.0.1 12345 "
              "typ host generation 0", "sdpMid": "0", "sdpMLineIndex": 0}

    async def main():
        url = f"ws://127.0.0.1:{d.port}/ws"
        host = user = None
        try:
            host = await ws_open_headers(url)
            user = await ws_open_headers(url)
            await send_json(host, {"type": "CREATE_ROOM", "username": "Teacher"})
            m = without_epoch(await recv_json(host))
            assert list(m) == ["type", "roomid"] and m["type"] == "ROOM_CREATED", m
            rid = m["roomid"]
            assert ROOM_ID.match(rid), m
            steps = [
                (user, {"type": "JOIN_ROOM", "roomid": rid, "username": "Student"},
                 [(user, {"type": "ROOM_JOINED", "roomid": rid}),
                  (host, {"type": "USER_JOINED", "username": "Student"})]),
                (user, {"type": "REQUEST_SHARING"},
                 [(host, {"type": "REQUEST_SHARING", "username": "Student"})]),
                (host, {"type": "ALLOW_SHARING", "username": "Student"},
                 [(user, {"type": "ALLOW_SHARING"})]),
                (user, {"type": "RCP_OFFER", "sdp": offer},
                 [(host, {"type": "RCP_OFFER", "username": "Student",
                          "sdp": offer})]),
                (host, {"type": "RCP_ANSWER", "username": "Student",
                        "sdp": answer},
                 [(user, {"type": "RCP_ANSWER", "sdp": answer})]),
                (user, {"type": "ICE_CANDIDATE", "candidate": cand_u},
                 [(host, {"type": "ICE_CANDIDATE", "username": "Student",
                          "candidate": cand_u})]),
                (host, {"type": "ICE_CANDIDATE", "username": "Student",
                        "candidate": cand_h},
                 [(user, {"type": "ICE_CANDIDATE", "candidate": cand_h})]),
                (user, {"type": "STOP_SHARING"},
                 [(host, {"type": "STOP_SHARING", "username": "Student"})]),
                (host, {"type": "STOP_SHARING", "username": "Student"},
                 [(user, {"type": "STOP_SHARING"})]),
                (host, {"type": "STOP_SHARING"},
                 [(user, {"type": "STOP_SHARING"})]),
                (user, {"type": "LEAVE_ROOM"},
                 [(user, {"type": "LEFT_ROOM"}),
                  (host, {"type": "USER_LEFT", "username": "Student"})]),
            ]
            for sender, msg, replies in steps:
                await send_json(sender, msg)
                for who, exp in replies:
                    await expect(who, exp, f"after {msg['type']}")
            await quiet(host, user)
        finally:
            await close_all([host, user])
    run(main())

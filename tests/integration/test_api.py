"""The server API (issue 16): HTTP and JSON on api_listen, with bearer keys.

Every route with good and bad input: a wrong or missing key, a malformed
body, an unknown room, dialect or member, an oversized body and a wrong
method each get a 4xx with a JSON error and change nothing; a publish
reaches real connected clients of canvas, chat and classroom in exactly
the frame that dialect's own clients receive."""
import json
import os
import signal
import socket
import time
import urllib.parse

import pytest

from conftest import (EXTERNAL_URL, connect, create_room, collect_actions,
                      expect_close, expect_quiet, free_port, http_req,
                      join_room, recv_json, recv_until, roomd_t, session,
                      start_roomd, stop_clean, ws_open)

KEY = "test-key-0123456789abcdef"
KEY2 = "second-key-ABCDEFGHIJKLMNOP"
BODY_MAX = 4096


class Api:
    """The API listener of a daemon: api(method, path, ...) -> Resp."""

    def __init__(self, d, port):
        self.d = d
        self.host = "127.0.0.1"
        self.port = port

    def __call__(self, method, path, body=None, raw=None, key=KEY,
                 headers=None):
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        return http_req(self, method, path, body=body, raw=raw, headers=h)


def api_conf(port, extra=""):
    return (f"api_listen 127.0.0.1:{port}\napi_key {KEY}\napi_key {KEY2}\n"
            f"max_body_bytes {BODY_MAX}\n{extra}")


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing on port {port}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def api():
    if EXTERNAL_URL:
        pytest.skip("needs a daemon with api_listen of its own")
    port = free_port()
    d = start_roomd(api_conf(port), workers=2)
    try:
        wait_listening(port)
        yield Api(d, port)
        stop_clean(d)
    finally:
        d.stop()


def assert_api_error(r, status, code):
    """A 4xx of the API: its JSON error, and no CORS header (the API is no
    browser's)."""
    assert r.status == status, f"expected {status} {code}: {r!r}"
    ct = (r.header("Content-Type") or "").split(";")[0].strip()
    assert ct == "application/json", r
    assert isinstance(r.json, dict), r
    assert r.json.get("error") == code, f"expected error {code!r}: {r!r}"
    assert isinstance(r.json.get("message"), str), r
    assert r.header("Access-Control-Allow-Origin") is None, r


def room_state(api, dialect, rid):
    """What the API says of a room (members, log), to show nothing changed."""
    r = api("GET", f"/api/rooms/{dialect}/{rid}")
    assert r.status == 200, r
    return r.json


def fresh(stem):
    return f"{stem}{time.monotonic_ns() % 10**12}"


# ---------------------------------------------------------------- keys


def test_every_route_refuses_a_request_without_a_key_or_with_a_wrong_one(api):
    canvas = create_room(api.d, "h", room_id=fresh("k"))["roomId"]
    routes = [("GET", "/api/rooms"), ("GET", "/api/rooms/canvas"),
              ("GET", f"/api/rooms/canvas/{canvas}"),
              ("GET", f"/api/rooms/canvas/{canvas}/members"),
              ("GET", f"/api/rooms/canvas/{canvas}/members/h"),
              ("DELETE", f"/api/rooms/canvas/{canvas}/members/h"),
              ("POST", f"/api/rooms/canvas/{canvas}/publish"),
              ("DELETE", f"/api/rooms/canvas/{canvas}"),
              ("GET", "/api/nowhere")]
    body = {"actions": [{"moveto": [1, 1]}]}
    for method, path in routes:
        for key, headers in ((None, None), (None, {"Authorization": KEY}),
                             (None, {"Authorization": f"Basic {KEY}"}),
                             ("wrong-key-0123456789", None),
                             (KEY[:-1], None), (KEY + "x", None),
                             (KEY.upper(), None)):
            r = api(method, path, body=body if method == "POST" else None,
                    key=key, headers=headers)
            assert_api_error(r, 401, "unauthorized")
            assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), r
    assert room_state(api, "canvas", canvas)["log"] == 0
    assert [m["name"] for m in room_state(api, "canvas", canvas)["members"]] \
        == ["h"]


def test_any_of_the_api_key_lines_opens_the_api(api):
    for key in (KEY, KEY2):
        r = api("GET", "/api/rooms", key=key)
        assert r.status == 200, r
    r = api("GET", "/api/rooms", key=None,
            headers={"Authorization": f"bearer   {KEY2}"})
    assert r.status == 200, r


def test_the_api_is_not_served_on_the_public_port_nor_the_public_routes_on_the_api(api):
    r = http_req(api.d, "GET", "/api/rooms",
                 headers={"Authorization": f"Bearer {KEY}"})
    assert r.status == 404, r
    for path in ("/canvas/rooms", "/", "/index.html", "/chat"):
        assert_api_error(api("GET", path), 404, "not_found")
    # An OPTIONS preflight gets no CORS answer either.
    r = api("OPTIONS", "/api/rooms")
    assert_api_error(r, 405, "method_not_allowed")


# ---------------------------------------------------------------- reading


def test_rooms_are_listed_all_together_and_by_dialect(api):
    rid = fresh("list")
    create_room(api.d, "host", room_id=rid)
    code = http_req(api.d, "POST", "/lobby/rooms").json["code"]
    r = api("GET", "/api/rooms")
    assert r.status == 200, r
    rooms = {(x["dialect"], x["id"]): x for x in r.json["rooms"]}
    assert rooms[("canvas", rid)] == {
        "dialect": "canvas", "id": rid, "members": 1, "connections": 0,
        "log": 0, "log_bytes": 0}
    assert ("lobby", code) in rooms
    r = api("GET", "/api/rooms/canvas")
    assert r.status == 200, r
    assert {x["dialect"] for x in r.json["rooms"]} == {"canvas"}
    assert rid in [x["id"] for x in r.json["rooms"]]
    r = api("GET", "/api/rooms/canvas/")
    assert r.status == 200 and rid in [x["id"] for x in r.json["rooms"]], r
    assert_api_error(api("GET", "/api/rooms/nodialect"), 404,
                     "no_such_dialect")


def test_a_room_and_its_members_are_described(api):
    rid = fresh("desc")
    create_room(api.d, "alice", room_id=rid)
    join_room(api.d, rid, "bob")
    r = api("GET", f"/api/rooms/canvas/{rid}")
    assert r.status == 200, r
    room = r.json
    assert list(room) == ["dialect", "id", "members", "connections", "log",
                          "log_bytes"]
    assert [(m["name"], m["role"], m["connected"]) for m in room["members"]] \
        == [("alice", "host", False), ("bob", "member", False)]
    r = api("GET", f"/api/rooms/canvas/{rid}/members")
    assert r.status == 200 and r.json == {"members": room["members"]}, r
    bob = room["members"][1]
    for who in ("bob", bob["id"], urllib.parse.quote(bob["id"])):
        r = api("GET", f"/api/rooms/canvas/{rid}/members/{who}")
        assert r.status == 200 and r.json == bob, r
    # HEAD is GET without the body.
    r = api("HEAD", f"/api/rooms/canvas/{rid}")
    assert r.status == 200 and r.body == b"", r


def test_unknown_rooms_members_and_paths_are_404_and_bad_paths_400(api):
    rid = fresh("unk")
    create_room(api.d, "h", room_id=rid)
    for path, code in ((f"/api/rooms/canvas/{rid}x", "no_such_room"),
                       (f"/api/rooms/chat/{rid}", "no_such_room"),
                       ("/api/rooms/canvas/" + "a" * 65, "no_such_room"),
                       (f"/api/rooms/canvas/{rid}/members/nobody",
                        "no_such_member"),
                       (f"/api/rooms/canvas/{rid}/members/" + "m" * 200,
                        "no_such_member"),
                       (f"/api/rooms/canvas/{rid}/bogus", "not_found"),
                       (f"/api/rooms/canvas/{rid}/members/h/x", "not_found"),
                       ("/api/rooms/canvas//x", "not_found"),
                       ("/api/roomsx", "not_found"), ("/api", "not_found")):
        assert_api_error(api("GET", path), 404, code)
    for path in (f"/api/rooms/canvas/{rid}%zz", "/api/rooms/canvas/a%00b",
                 "/api/rooms/canvas/a%4"):
        assert_api_error(api("GET", path), 400, "bad_request")
    for method, path in (("DELETE", f"/api/rooms/canvas/{rid}x"),
                         ("DELETE", f"/api/rooms/canvas/{rid}/members/zz"),
                         ("POST", f"/api/rooms/canvas/{rid}x/publish")):
        r = api(method, path, body={"actions": [{"a": 1}]})
        assert r.status == 404, r
    assert room_state(api, "canvas", rid)["log"] == 0


def test_a_wrong_method_is_405_with_the_methods_the_path_takes(api):
    rid = fresh("meth")
    create_room(api.d, "h", room_id=rid)
    for method, path, allow in (
            ("POST", "/api/rooms", "GET"),
            ("DELETE", "/api/rooms/canvas", "GET"),
            ("PUT", f"/api/rooms/canvas/{rid}", "GET, DELETE"),
            ("POST", f"/api/rooms/canvas/{rid}/members", "GET"),
            ("POST", f"/api/rooms/canvas/{rid}/members/h", "GET, DELETE"),
            ("GET", f"/api/rooms/canvas/{rid}/publish", "POST"),
            ("DELETE", f"/api/rooms/canvas/{rid}/publish", "POST")):
        r = api(method, path, body={} if method in ("POST", "PUT") else None)
        assert_api_error(r, 405, "method_not_allowed")
        assert r.header("Allow") == allow, r
    assert room_state(api, "canvas", rid)["members"][0]["name"] == "h"


# ---------------------------------------------------------------- changing


def test_kick_closes_the_members_connections_and_no_one_elses(api):
    rid = fresh("kick")
    host = create_room(api.d, "host", room_id=rid)
    guest = join_room(api.d, rid, "guest")

    async def body(c):
        hws, _, w = await connect(api.d, rid, host["token"])
        c.all.append(hws)
        gws, _, _ = await connect(api.d, rid, guest["token"], slot=1 - w[0])
        c.all.append(gws)
        r = api("DELETE", f"/api/rooms/canvas/{rid}/members/nobody")
        assert_api_error(r, 404, "no_such_member")
        await expect_quiet(gws)
        r = api("DELETE", f"/api/rooms/canvas/{rid}/members/guest")
        assert r.status == 200 and r.json == {"ok": True}, r
        _, code, _ = await expect_close(gws)
        assert code == 1008, f"the kicked member got close {code}"
        await expect_quiet(hws)
        assert hws.open
    session(api.d, body)


def test_close_deletes_the_room_and_closes_every_connection(api):
    rid = fresh("close")
    host = create_room(api.d, "host", room_id=rid)
    guest = join_room(api.d, rid, "guest")

    async def body(c):
        hws, _, w = await connect(api.d, rid, host["token"])
        c.all.append(hws)
        gws, _, _ = await connect(api.d, rid, guest["token"], slot=1 - w[0])
        c.all.append(gws)
        r = api("DELETE", f"/api/rooms/canvas/{rid}")
        assert r.status == 200 and r.json == {"ok": True}, r
        for ws in (hws, gws):
            _, code, _ = await expect_close(ws)
            assert code == 1000, code
    session(api.d, body)
    assert_api_error(api("GET", f"/api/rooms/canvas/{rid}"), 404,
                     "no_such_room")
    assert_api_error(api("DELETE", f"/api/rooms/canvas/{rid}"), 404,
                     "no_such_room")


# ---------------------------------------------------------------- publish


def test_bad_publish_bodies_are_400_or_413_and_append_nothing(api):
    rid = fresh("bad")
    create_room(api.d, "h", room_id=rid)
    path = f"/api/rooms/canvas/{rid}/publish"
    for raw in (None, b"", b"{", b"[]", b'"x"', b"1", b"null",
                b'{"actions":[{"a":1}]} x', b'{"a":NaN}', b"\xff\xfe"):
        assert_api_error(api("POST", path, raw=raw), 400, "bad_json")
    for body in ({}, {"actions": []}, {"actions": "x"}, {"actions": None},
                 {"actions": [{"a": 1}, 2]}, {"actions": [{}]},
                 {"actions": [{"pointer": 3}]}, {"action": {"a": 1}}):
        assert_api_error(api("POST", path, body=body), 400, "bad_action")
    big = {"actions": [{"lineto": [i, i]} for i in range(BODY_MAX // 10)]}
    assert len(json.dumps(big)) > BODY_MAX
    assert_api_error(api("POST", path, body=big), 413, "body_too_large")
    state = room_state(api, "canvas", rid)
    assert state["log"] == 0 and state["log_bytes"] == 0, state


def test_a_canvas_publish_reaches_every_member_as_a_canvas_action(api):
    rid = fresh("cpub")
    host = create_room(api.d, "host", room_id=rid)
    guest = join_room(api.d, rid, "guest")

    async def body(c):
        hws, first, w = await connect(api.d, rid, host["token"])
        c.all.append(hws)
        assert first == []
        gws, _, _ = await connect(api.d, rid, guest["token"], slot=1 - w[0])
        c.all.append(gws)
        r = api("POST", f"/api/rooms/canvas/{rid}/publish",
                body={"actions": [{"moveto": [1, 2]},
                                  {"lineto": [3, 4], "pointer": 99}]})
        assert r.status == 200, r
        assert r.json == {"ok": True, "pointer": 2}, r
        want = [{"moveto": [1, 2], "pointer": 1},
                {"lineto": [3, 4], "pointer": 2}]
        for ws in (hws, gws):
            assert await collect_actions(ws, 2) == want
        # One object alone is one action, as on the socket.
        r = api("POST", f"/api/rooms/canvas/{rid}/publish",
                body={"actions": {"fill": "red"}})
        assert r.status == 200 and r.json["pointer"] == 3, r
        for ws in (hws, gws):
            assert await collect_actions(ws, 1) == [{"fill": "red",
                                                     "pointer": 3}]
    session(api.d, body)


async def chat_open(d, name):
    ws = await ws_open(f"{d.ws_base}/chat?name={name}")
    return ws


async def chat_cmd(ws, action, target):
    await ws.send(json.dumps({"type": "command", "action": action,
                              "target": target}))


def is_msg(m):
    return m.get("type") == "message"


def test_a_chat_publish_reaches_a_channel_and_a_user_from_the_server(api):
    ch = fresh("ch")
    alice, bob = fresh("alice"), fresh("bob")

    async def body(c):
        a = await chat_open(api.d, alice)
        c.all.append(a)
        b = await chat_open(api.d, bob)
        c.all.append(b)
        await chat_cmd(a, "create", f"#{ch}")
        for ws in (a, b):
            await recv_until(ws, lambda m: m.get("event") == "create" and
                             m.get("identifier") == f"#{ch}")
            await chat_cmd(ws, "join", f"#{ch}")
            await recv_until(ws, lambda m: m.get("event") == "join")
        await recv_until(a, lambda m: m.get("event") == "join" and
                         m.get("name") == bob)
        r = api("POST", f"/api/rooms/chat/{ch}/publish",
                body={"message": "hello, channel"})
        assert r.status == 200 and r.json == {"ok": True, "seq": 1}, r
        want = {"type": "message", "emitter": "server", "target": f"#{ch}",
                "identifier": "roomd", "message": "hello, channel",
                "name": "roomd", "seq": 1}
        for ws in (a, b):
            m, _ = await recv_until(ws, is_msg)
            assert m == want and list(m) == list(want), m
        # The same with the channel named; the history keeps both.
        r = api("POST", f"/api/rooms/chat/{ch}/publish",
                body={"message": "again", "target": f"#{ch}"})
        assert r.status == 200 and r.json["seq"] == 2, r
        for ws in (a, b):
            m, _ = await recv_until(ws, is_msg)
            assert m["seq"] == 2 and m["message"] == "again", m
        # A private message goes to bob alone.
        r = api("POST", "/api/rooms/chat/%40/publish",
                body={"target": f"@{bob}", "message": "psst"})
        assert r.status == 200 and r.json == {"ok": True}, r
        m, _ = await recv_until(b, is_msg)
        want = {"type": "message", "emitter": "server", "target": f"@{bob}",
                "identifier": "roomd", "message": "psst", "name": "roomd"}
        assert m == want and list(m) == list(want), m
        await expect_quiet(a)
        # Someone who joins later reads the channel's messages in its
        # history.
        late = await chat_open(api.d, fresh("late"))
        c.all.append(late)
        await chat_cmd(late, "join", f"#{ch}")
        m, _ = await recv_until(late, is_msg)
        assert m["message"] == "hello, channel" and m["seq"] == 1, m
    session(api.d, body)


def test_bad_chat_publishes_are_refused_and_send_nothing(api):
    ch = fresh("badch")
    alice = fresh("alice")

    async def body(c):
        a = await chat_open(api.d, alice)
        c.all.append(a)
        await chat_cmd(a, "create", f"#{ch}")
        await chat_cmd(a, "join", f"#{ch}")
        await recv_until(a, lambda m: m.get("event") == "join")
        path = f"/api/rooms/chat/{ch}/publish"
        for body_, status, code in (
                ({}, 400, "bad_request"),
                ({"message": 5}, 400, "bad_request"),
                ({"message": "x", "target": 5}, 400, "bad_request"),
                ({"message": "x", "target": "#other"}, 400, "bad_target"),
                ({"message": "x", "target": f"@{alice}"}, 400, "bad_target")):
            assert_api_error(api("POST", path, body=body_), status, code)
        user = "/api/rooms/chat/@/publish"
        for body_, status, code in (
                ({"message": "x"}, 400, "bad_target"),
                ({"message": "x", "target": f"#{ch}"}, 400, "bad_target"),
                ({"message": "x", "target": "@no body"}, 400, "bad_target"),
                ({"message": "x", "target": "@nobody-here"}, 404,
                 "no_such_user")):
            assert_api_error(api("POST", user, body=body_), status, code)
        assert_api_error(api("POST", "/api/rooms/chat/nochannel/publish",
                             body={"message": "x"}), 404, "no_such_room")
        await expect_quiet(a)
        assert room_state(api, "chat", ch)["log"] == 0
    session(api.d, body)


def test_a_chat_user_is_kicked_from_the_server_room(api):
    alice, bob = fresh("alice"), fresh("bob")

    async def body(c):
        a = await chat_open(api.d, alice)
        c.all.append(a)
        b = await chat_open(api.d, bob)
        c.all.append(b)
        r = api("GET", f"/api/rooms/chat/%40/members/{alice}")
        assert r.status == 200 and r.json["connected"] is True, r
        r = api("DELETE", f"/api/rooms/chat/@/members/{alice}")
        assert r.status == 200, r
        _, code, _ = await expect_close(a)
        assert code == 1008, code
        assert b.open
        await expect_quiet(b)
    session(api.d, body)


async def cls_open(d, name, room):
    ws = await ws_open(f"{d.ws_base}/classroom?name={name}&room={room}")
    return ws


def test_a_classroom_publish_is_a_broadcast_or_a_direct_from_the_system(api):
    room = fresh("cls")

    async def body(c):
        t = await cls_open(api.d, "teacher", room)
        c.all.append(t)
        await recv_until(t, lambda m: m.get("type") == "ParticipantEnter")
        s = await cls_open(api.d, "student", room)
        c.all.append(s)
        enter, _ = await recv_until(s, lambda m: m.get("type") ==
                                    "ParticipantEnter")
        await recv_until(t, lambda m: m.get("type") == "ParticipantEnter")
        ids = {p["name"]: p["id"] for p in enter["data"]["participants"]}
        path = f"/api/rooms/classroom/{room}/publish"
        r = api("POST", path, body={"type": "Broadcast",
                                    "data": {"some": "data"}})
        assert r.status == 200 and r.json == {"ok": True}, r
        want = {"type": "Broadcast", "data": {"some": "data"},
                "from": "roomd"}
        for ws in (t, s):
            m = await recv_json(ws)
            assert m == want and list(m) == list(want), m
        r = api("POST", path, body={"type": "Direct", "data": "hi",
                                    "participants": [ids["student"]]})
        assert r.status == 200, r
        want = {"type": "Direct", "data": "hi",
                "participants": [ids["student"]], "from": "roomd"}
        m = await recv_json(s)
        assert m == want and list(m) == list(want), m
        await expect_quiet(t)
        # Bad input sends nothing.
        for body_, status, code in (
                ({"data": 1}, 400, "bad_type"),
                ({"type": "Kick", "participants": [ids["student"]]}, 400,
                 "bad_type"),
                ({"type": "Direct", "data": 1}, 400, "participants_missing"),
                ({"type": "Direct", "participants": []}, 400,
                 "participants_missing"),
                ({"type": "Direct", "participants": "x"}, 400,
                 "participants_missing"),
                ({"type": "Direct", "participants": [ids["student"],
                                                     "no-such-id"]}, 404,
                 "no_such_member"),
                ({"type": "Direct", "participants": [ids["student"], 7]},
                 404, "no_such_member")):
            assert_api_error(api("POST", path, body=body_), status, code)
        await expect_quiet(t)
        await expect_quiet(s)
    session(api.d, body)


def test_lobby_rooms_have_nothing_to_publish_from_the_server(api):
    code = http_req(api.d, "POST", "/lobby/rooms").json["code"]
    r = api("POST", f"/api/rooms/lobby/{code}/publish", body={"x": 1})
    assert_api_error(r, 400, "not_supported")
    assert room_state(api, "lobby", code)["log"] == 0


# ---------------------------------------------------------------- robustness


def test_a_slow_api_client_holds_up_neither_the_api_nor_the_public_port(api):
    """Two stalled clients (one mid-headers, one mid-body) hold their own
    connections only: every worker keeps serving both listeners."""
    slow = []
    try:
        for head in (b"GET /api/rooms HTTP/1.1\r\nHost: x\r\nAuthoriz",
                     b"POST /api/rooms/canvas/x/publish HTTP/1.1\r\n"
                     b"Host: x\r\nContent-Length: 100\r\n\r\n{\"a\""):
            for _ in range(4):
                s = socket.create_connection((api.host, api.port), timeout=5)
                s.sendall(head)
                slow.append(s)
        t0 = time.monotonic()
        for _ in range(10):
            assert api("GET", "/api/rooms").status == 200
            assert http_req(api.d, "GET", "/canvas/rooms").status == 200
        assert time.monotonic() - t0 < 5
    finally:
        for s in slow:
            s.close()


def test_roomd_t_refuses_an_api_listen_without_a_key_or_on_a_taken_port():
    port = free_port()
    for conf, words in (
            (f"api_listen 127.0.0.1:{port}\n", "no api_key"),
            (f"listen 127.0.0.1:{port}\napi_listen 127.0.0.1:{port}\n"
             f"api_key {KEY}\n", "listener of its own"),
            (f"listen *:{port}\napi_listen 127.0.0.1:{port}\n"
             f"api_key {KEY}\n", "listener of its own"),
            (f"listen 127.0.0.1:{port}\napi_listen :{port}\n"
             f"api_key {KEY}\n", "listener of its own"),
            (f"metrics_listen 127.0.0.1:{port}\n"
             f"api_listen 127.0.0.1:{port}\napi_key {KEY}\n",
             "metrics_listen"),
            (f"api_listen 127.0.0.1:{port}\napi_key short\n", "api_key"),
            (f"api_listen 127.0.0.1:{port}\napi_key {'k' * 257}\n",
             "api_key"),
            (f"api_listen 127.0.0.1:{port}\napi_key {KEY} more\n",
             "one value"),
            (f"api_listen nowhere\napi_key {KEY}\n", "api_listen"),
            ("api_sender not/a/name\n", "api_sender"),
            ("arena_walk_interval -1\n", "arena_walk_interval")):
        rc, out, path = roomd_t(conf)
        assert rc != 0 and words in out, (conf, rc, out)
    rc, out, _ = roomd_t(f"listen 127.0.0.1:{port}\n"
                         f"api_listen 127.0.0.1:{free_port()}\n"
                         f"api_key {KEY}\napi_sender ops-bot\n"
                         "arena_walk_interval 5\n")
    assert rc == 0, out


def test_a_reload_replaces_the_keys_and_the_sender(roomd_factory):
    port = free_port()
    d = roomd_factory(api_conf(port))
    wait_listening(port)
    api = Api(d, port)
    assert api("GET", "/api/rooms").status == 200
    new = "rotated-key-000000000000"
    with open(d.conf_path, "a") as f:
        f.write("api_sender ops\n")
    text = open(d.conf_path).read().replace(KEY, new)
    with open(d.conf_path, "w") as f:
        f.write(text)
    os.kill(d.master_pid, signal.SIGHUP)

    def rotated():
        return all(api("GET", "/api/rooms", key=new).status == 200 and
                   api("GET", "/api/rooms").status == 401
                   for _ in range(6))
    deadline = time.monotonic() + 10
    while not rotated():
        assert time.monotonic() < deadline, "the keys did not change"
        time.sleep(0.1)
    assert api("GET", "/api/rooms", key=KEY2).status == 200
    room = fresh("snd")

    async def body(c):
        t = await cls_open(d, "t", room)
        c.all.append(t)
        await recv_until(t, lambda m: m.get("type") == "ParticipantEnter")
        r = api("POST", f"/api/rooms/classroom/{room}/publish",
                body={"type": "Broadcast", "data": 1}, key=new)
        assert r.status == 200, r
        m = await recv_json(t)
        assert m == {"type": "Broadcast", "data": 1, "from": "ops"}, m
    session(d, body)
    stop_clean(d)


def test_a_new_generation_of_workers_serves_the_api_after_a_reload(
        roomd_factory):
    """A reload that changes the mounts starts new workers and drains the
    old: the API's one socket stays open in the master, so the new
    workers serve it and no request is refused meanwhile."""
    port = free_port()
    d = roomd_factory(api_conf(port))
    wait_listening(port)
    api = Api(d, port)
    old = {int(api("GET", "/api/rooms").header("X-Roomd-Worker")
               .split("/")[1]) for _ in range(20)}
    with open(d.conf_path, "a") as f:
        f.write("mount canvas /canvas\nmount chat /chat\n")
    os.kill(d.master_pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while True:
        pids = set()
        for _ in range(10):
            r = api("GET", "/api/rooms")
            assert r.status == 200, r
            pids.add(int(r.header("X-Roomd-Worker").split("/")[1]))
        if not pids & old:
            break
        assert time.monotonic() < deadline, "the old workers still answer"
        time.sleep(0.1)
    assert http_req(d, "GET", "/chat").status == 426
    assert http_req(d, "GET", "/lobby/rooms").status == 404
    stop_clean(d)

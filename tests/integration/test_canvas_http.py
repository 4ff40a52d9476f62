"""The canvas dialect's HTTP API at /canvas (rooms, join, delete, CORS)."""
import asyncio
import json
import re
import time
import uuid

import pytest

from conftest import (assert_error, assert_json_response, create_room,
                      http_req, join_room, list_rooms, poll, room_listed,
                      parse_worker, run, connect, close_all)

HEX32 = re.compile(r"^[0-9a-f]{32}$", re.I)


def uid(prefix="r"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- list

def test_list_rooms_is_200_json_array_with_cors(roomd):
    r = http_req(roomd, "GET", "/canvas/rooms")
    assert r.status == 200, repr(r)
    assert_json_response(r)
    assert isinstance(r.json, list), repr(r)


def test_list_shows_created_room_with_host_guests_and_locked_flag(roomd):
    open_id, locked_id = uid("open"), uid("locked")
    create_room(roomd, host="alice", room_id=open_id)
    create_room(roomd, host="carol", password="s3cret", room_id=locked_id)
    join_room(roomd, open_id, "bob")
    rooms = {x["roomId"]: x for x in list_rooms(roomd) if "roomId" in x}
    assert open_id in rooms and locked_id in rooms, rooms
    o, l = rooms[open_id], rooms[locked_id]
    assert o["host"] == "alice"
    assert o["guests"] == [{"name": "bob"}]
    assert o["locked"] is False
    assert l["host"] == "carol"
    assert l["guests"] == []
    assert l["locked"] is True


def test_list_never_exposes_passwords_or_tokens(roomd):
    rid = uid()
    pw = "pw-" + uuid.uuid4().hex
    c = create_room(roomd, host="h", password=pw, room_id=rid)
    j = join_room(roomd, rid, "g", password=pw)
    r = http_req(roomd, "GET", "/canvas/rooms")
    assert r.status == 200
    text = r.body.decode()
    assert pw not in text, f"password leaked in list: {r!r}"
    assert c["token"] not in text, f"host token leaked in list: {r!r}"
    assert j["token"] not in text, f"guest token leaked in list: {r!r}"
    for room in r.json:
        assert "password" not in room and "token" not in room, room
        for g in room.get("guests", []):
            assert "token" not in g and "password" not in g, room
    mine = [x for x in r.json if x.get("roomId") == rid]
    assert len(mine) == 1
    assert {"roomId", "host", "guests", "locked"} <= set(mine[0]), mine[0]


# ---------------------------------------------------------------- create

def test_create_room_returns_201_with_generated_id_null_password_and_hex_token(roomd):
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "alice"})
    assert r.status == 201, repr(r)
    assert_json_response(r)
    b = r.json
    assert b["host"] == "alice"
    assert b["guests"] == []
    assert b["password"] is None
    assert isinstance(b["roomId"], str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", b["roomId"]), b
    assert HEX32.match(b["token"]), b
    assert room_listed(roomd, b["roomId"])


def test_create_room_with_password_echoes_it(roomd):
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "alice", "password": "pw1"})
    assert r.status == 201, repr(r)
    assert r.json["password"] == "pw1", repr(r)


def test_create_room_with_given_id_uses_that_id(roomd):
    rid = uid("Given_ID")
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "alice", "roomId": rid})
    assert r.status == 201, repr(r)
    assert r.json["roomId"] == rid


def test_create_room_id_of_64_chars_is_accepted(roomd):
    rid = ("x" + uuid.uuid4().hex * 2)[:64]
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "alice", "roomId": rid})
    assert r.status == 201, repr(r)
    assert r.json["roomId"] == rid


def test_create_room_with_taken_id_is_409_room_exists(roomd):
    rid = uid()
    create_room(roomd, room_id=rid)
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "other", "roomId": rid})
    assert_error(r, 409, "room_exists")


@pytest.mark.parametrize("bad_id", ["", "has space", "a/b", "dot.dot", "é",
                                    "x" * 65, 123, ["a"], {"id": "a"}],
                         ids=["empty", "space", "slash", "dot", "non-ascii",
                              "65-chars", "number", "array", "object"])
def test_create_room_with_invalid_id_is_400_bad_request(roomd, bad_id):
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "alice", "roomId": bad_id})
    assert_error(r, 400, "bad_request")


def test_generated_room_ids_are_unique(roomd):
    ids = [create_room(roomd, host=f"h{i}")["roomId"] for i in range(25)]
    assert len(set(ids)) == len(ids), ids


def test_tokens_are_unique_across_hosts_and_guests(roomd):
    rid = uid()
    toks = [create_room(roomd, room_id=rid)["token"]]
    toks += [join_room(roomd, rid, f"g{i}")["token"] for i in range(5)]
    assert all(HEX32.match(t) for t in toks), toks
    assert len(set(toks)) == len(toks), toks


def test_host_name_of_64_bytes_is_accepted(roomd):
    name = "n" * 64
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": name})
    assert r.status == 201, repr(r)
    assert r.json["host"] == name


@pytest.mark.parametrize("body", [
    {}, {"host": ""}, {"host": "x" * 65}, {"host": "é" * 33}, {"host": 12},
    {"host": None}, {"host": ["a"]}, {"host": "a", "password": 5},
    {"host": "a", "password": ["p"]},
], ids=["missing", "empty", "65-bytes", "66-utf8-bytes", "number", "null",
        "array", "password-number", "password-array"])
def test_create_room_with_bad_fields_is_400_bad_request(roomd, body):
    r = http_req(roomd, "POST", "/canvas/rooms", body)
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize("raw", [b"not json", b"{\"host\": \"a\"", b"[]",
                                 b"\"host\"", b"42", b"null", b""],
                         ids=["garbage", "truncated", "array", "string",
                              "number", "null", "empty"])
def test_create_room_with_body_not_a_json_object_is_400(roomd, raw):
    r = http_req(roomd, "POST", "/canvas/rooms", raw=raw)
    assert_error(r, 400, "bad_request")


def test_create_room_body_over_max_body_bytes_is_413(roomd):
    raw = json.dumps({"host": "alice", "password": "x" * 70000}).encode()
    assert len(raw) > 65536
    r = http_req(roomd, "POST", "/canvas/rooms", raw=raw)
    assert_error(r, 413)


def test_create_room_body_under_max_body_bytes_is_accepted(roomd):
    raw = json.dumps({"host": "alice", "password": "x" * 60000}).encode()
    assert len(raw) < 65536
    r = http_req(roomd, "POST", "/canvas/rooms", raw=raw)
    assert r.status == 201, repr(r)


# ---------------------------------------------------------------- join

def test_join_returns_200_with_all_guests_and_a_token(roomd):
    rid = uid()
    c = create_room(roomd, host="alice", room_id=rid)
    j1 = join_room(roomd, rid, "bob")
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "carol"})
    assert r.status == 200, repr(r)
    assert_json_response(r)
    b = r.json
    assert b["roomId"] == rid
    assert b["host"] == "alice"
    assert b["guests"] == [{"name": "bob"}, {"name": "carol"}]
    assert HEX32.match(b["token"])
    assert b["token"] not in (c["token"], j1["token"])
    assert j1["guests"] == [{"name": "bob"}]


def test_join_unknown_room_is_404_no_such_room(roomd):
    r = http_req(roomd, "POST", f"/canvas/rooms/{uid('nope')}/join", {"name": "bob"})
    assert_error(r, 404, "no_such_room")


def test_join_locked_room_with_wrong_password_is_403(roomd):
    rid = uid()
    create_room(roomd, password="right", room_id=rid)
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                 {"name": "bob", "password": "wrong"})
    assert_error(r, 403, "wrong_password")


def test_join_locked_room_without_password_is_403(roomd):
    rid = uid()
    create_room(roomd, password="right", room_id=rid)
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "bob"})
    assert_error(r, 403, "wrong_password")


def test_join_locked_room_with_right_password_is_200(roomd):
    rid = uid()
    create_room(roomd, password="right", room_id=rid)
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                 {"name": "bob", "password": "right"})
    assert r.status == 200, repr(r)
    assert r.json["guests"] == [{"name": "bob"}]


def test_join_with_hosts_name_is_409_name_taken(roomd):
    rid = uid()
    create_room(roomd, host="alice", room_id=rid)
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "alice"})
    assert_error(r, 409, "name_taken")


def test_join_with_existing_guests_name_is_409_name_taken(roomd):
    rid = uid()
    create_room(roomd, host="alice", room_id=rid)
    join_room(roomd, rid, "bob")
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "bob"})
    assert_error(r, 409, "name_taken")
    assert [x for x in list_rooms(roomd) if x["roomId"] == rid][0]["guests"] == [{"name": "bob"}]


@pytest.mark.parametrize("raw", [b"nope", b"[]", b"{}", b"{\"name\": \"\"}",
                                 b"{\"name\": 7}", b"{\"name\": null}",
                                 ("{\"name\": \"%s\"}" % ("y" * 65)).encode(),
                                 b"{\"name\": \"bob\", \"password\": 1}"],
                         ids=["garbage", "array", "missing-name", "empty-name",
                              "number-name", "null-name", "65-byte-name",
                              "password-number"])
def test_join_with_bad_body_is_400_bad_request(roomd, raw):
    rid = uid()
    create_room(roomd, room_id=rid)
    r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", raw=raw)
    assert_error(r, 400, "bad_request")


# ---------------------------------------------------------------- delete

def test_delete_room_with_host_token_is_204_and_room_disappears(roomd):
    rid = uid()
    c = create_room(roomd, room_id=rid)
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{rid}",
                 headers={"Authorization": f"Bearer {c['token']}"})
    assert r.status == 204, repr(r)
    assert r.body == b"", repr(r)
    assert not room_listed(roomd, rid)
    j = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "late"})
    assert_error(j, 404, "no_such_room")


def test_delete_room_without_authorization_is_401(roomd):
    rid = uid()
    create_room(roomd, room_id=rid)
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{rid}")
    assert_error(r, 401, "unauthorized")
    assert room_listed(roomd, rid)


def test_delete_room_with_wrong_token_is_403(roomd):
    rid = uid()
    create_room(roomd, room_id=rid)
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{rid}",
                 headers={"Authorization": "Bearer " + "0" * 32})
    assert_error(r, 403, "forbidden")
    assert room_listed(roomd, rid)


def test_delete_room_with_guest_token_is_403(roomd):
    rid = uid()
    create_room(roomd, room_id=rid)
    g = join_room(roomd, rid, "bob")
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{rid}",
                 headers={"Authorization": f"Bearer {g['token']}"})
    assert_error(r, 403, "forbidden")
    assert room_listed(roomd, rid)


def test_delete_room_with_another_rooms_host_token_is_403(roomd):
    rid, other = uid(), uid()
    create_room(roomd, room_id=rid)
    o = create_room(roomd, room_id=other)
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{rid}",
                 headers={"Authorization": f"Bearer {o['token']}"})
    assert_error(r, 403, "forbidden")
    assert room_listed(roomd, rid)


def test_delete_unknown_room_is_404(roomd):
    r = http_req(roomd, "DELETE", f"/canvas/rooms/{uid('nope')}",
                 headers={"Authorization": "Bearer " + "a" * 32})
    assert_error(r, 404, "no_such_room")


# ---------------------------------------------------------------- CORS, 404, 405

@pytest.mark.parametrize("path", ["/canvas/rooms", "/canvas/rooms/abc",
                                  "/canvas/rooms/abc/join",
                                  "/canvas/rooms/abc/ws"])
def test_options_preflight_is_204_with_cors_headers(roomd, path):
    r = http_req(roomd, "OPTIONS", path, headers={
        "Origin": "http://example.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status == 204, repr(r)
    assert r.header("Access-Control-Allow-Origin") == "*", repr(r)
    methods = {m.strip().upper() for m in
               (r.header("Access-Control-Allow-Methods") or "").split(",")}
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= methods, repr(r)
    hdrs = {h.strip().lower() for h in
            (r.header("Access-Control-Allow-Headers") or "").split(",")}
    assert {"authorization", "content-type"} <= hdrs, repr(r)


# Paths outside every mount belong to the document root (HTML 404s, see
# test_static.py); these are unknown paths under the canvas mount.
@pytest.mark.parametrize("path", ["/canvas/nope", "/canvas/roomsx",
                                  "/canvas/rooms/abc/bogus",
                                  "/canvas/rooms/abc/join/extra"])
def test_unknown_path_is_404_not_found(roomd, path):
    r = http_req(roomd, "GET", path)
    assert_error(r, 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("PUT", "/canvas/rooms"), ("DELETE", "/canvas/rooms"),
    ("PATCH", "/canvas/rooms"), ("GET", "/canvas/rooms/abc/join"),
    ("DELETE", "/canvas/rooms/abc/join"), ("PUT", "/canvas/rooms/abc"),
    ("POST", "/canvas/rooms/abc"),
])
def test_known_path_with_wrong_method_is_405(roomd, method, path):
    r = http_req(roomd, method, path, raw=b"{}" if method in ("PUT", "PATCH", "POST") else None)
    assert_error(r, 405, "method_not_allowed")


def test_every_response_carries_x_roomd_worker(roomd):
    rid = uid()
    rs = [http_req(roomd, "GET", "/canvas/rooms"),
          http_req(roomd, "POST", "/canvas/rooms", {"host": "h", "roomId": rid}),
          http_req(roomd, "POST", f"/canvas/rooms/{rid}/join", {"name": "g"}),
          http_req(roomd, "GET", "/canvas/nope"),
          http_req(roomd, "OPTIONS", "/canvas/rooms")]
    for r in rs:
        slot, pid = parse_worker(r.header("X-Roomd-Worker"))
        assert slot >= 0 and pid > 1, repr(r)


# ---------------------------------------------------------------- expiry

def test_room_never_opened_expires_after_room_ttl(roomd_factory):
    d = roomd_factory("room_ttl 1\n")
    rid = uid()
    create_room(d, room_id=rid)
    assert room_listed(d, rid)
    time.sleep(2.5)
    gone = poll(lambda: not room_listed(d, rid), 3.0)
    assert gone, f"room {rid} still listed 5.5 s after creation with room_ttl 1"
    r = http_req(d, "POST", f"/canvas/rooms/{rid}/join", {"name": "late"})
    assert_error(r, 404, "no_such_room")


def test_room_with_open_websocket_does_not_expire_after_room_ttl(roomd_factory):
    d = roomd_factory("room_ttl 1\n")
    rid = uid()
    c = create_room(d, room_id=rid)

    async def body():
        ws, first, _ = await connect(d, rid, c["token"])
        try:
            assert first == []
            await asyncio.sleep(3)
            assert room_listed(d, rid), "room with an open WebSocket expired"
            r = http_req(d, "POST", f"/canvas/rooms/{rid}/join", {"name": "g"})
            assert r.status == 200, repr(r)
        finally:
            await close_all([ws])
    run(body())

"""The canvas replies that list a room (create, join, show, list), byte for
byte.  They are written as JSON text rather than through json-c objects;
the bytes must be what json-c made of them: keys in the same order, no
spaces, \\" \\\\ \\b \\f \\n \\r \\t by name, other control characters as
\\u00xx in lower case, the slash, DEL and UTF-8 as they are.  Python's
json.dumps with compact separators and ensure_ascii=False escapes the same
way, so the expected bytes are built with it (this file passes against
the json-c build too).  Names of more than 21 bytes are also the ones a
member record keeps apart (shm/), so both kinds are here."""
import json
import uuid

from conftest import http_req

# Canvas names: 1..64 bytes of UTF-8, no control characters.
NAMES = [
    'say "hi"',
    "back\\slash\\",
    "caf\u00e9 \u65e5\u672c \U0001f3a8",
    "a/b</script>",
    '"\\"\\/' * 10 + "\u00e9" * 2,                  # 64 bytes, long
    "exactly twenty-one b.",                       # 21 bytes, kept inline
    "twenty-two bytes long.",                      # 22 bytes, kept apart
]
HOST = 'the "host" \\ \u00e9\u00e9 with a name too long for the record'
# Passwords may hold anything a JSON string can.
PASSWORD = 'p"w\\ \b\f\n\r\t \x01\x1f\x7f / \u00e9 \U0001f3a8'


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def same(got, want):
    assert got == want, f"reply {got!r}\nwanted {want!r}"


def room_obj(rid, host, guests):
    return {"roomId": rid, "host": host,
            "guests": [{"name": g} for g in guests]}


def test_replies_are_json_c_bytes(roomd):
    for name in NAMES:
        assert 1 <= len(name.encode()) <= 64, name
    rid = "bytes-" + uuid.uuid4().hex[:12]
    r = http_req(roomd, "POST", "/canvas/rooms",
                 {"host": HOST, "password": PASSWORD, "roomId": rid})
    assert r.status == 201, repr(r)
    b = r.json
    want = room_obj(rid, HOST, [])
    want.update(password=PASSWORD, token=b["token"], epoch=b["epoch"])
    same(r.body, compact(want))
    epoch = b["epoch"]

    for i, name in enumerate(NAMES):
        r = http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                     {"name": name, "password": PASSWORD})
        assert r.status == 200, repr(r)
        want = room_obj(rid, HOST, NAMES[:i + 1])
        want.update(token=r.json["token"], epoch=epoch)
        same(r.body, compact(want))

    r = http_req(roomd, "GET", f"/canvas/rooms/{rid}")
    assert r.status == 200, repr(r)
    want = room_obj(rid, HOST, NAMES)
    want.update(locked=True, epoch=epoch)
    same(r.body, compact(want))

    r = http_req(roomd, "GET", "/canvas/rooms")
    assert r.status == 200, repr(r)
    same(r.body, compact(r.json))
    want = room_obj(rid, HOST, NAMES)
    want.update(locked=True)
    assert compact(want) in r.body


def test_reply_of_a_room_without_password_or_guests(roomd):
    rid = "bytes-" + uuid.uuid4().hex[:12]
    r = http_req(roomd, "POST", "/canvas/rooms", {"host": "h", "roomId": rid})
    assert r.status == 201, repr(r)
    assert r.body == compact({"roomId": rid, "host": "h", "guests": [],
                              "password": None, "token": r.json["token"],
                              "epoch": r.json["epoch"]})
    r = http_req(roomd, "GET", f"/canvas/rooms/{rid}")
    assert r.body == compact({"roomId": rid, "host": "h", "guests": [],
                              "locked": False, "epoch": r.json["epoch"]})
    # A name taken, long or short, is refused; the room is unchanged.
    long_name = "n" * 40
    assert http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                    {"name": long_name}).status == 200
    assert http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                    {"name": long_name}).status == 409
    assert http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                    {"name": "h"}).status == 409
    assert http_req(roomd, "POST", f"/canvas/rooms/{rid}/join",
                    {"name": "n" * 39}).status == 200
    r = http_req(roomd, "GET", f"/canvas/rooms/{rid}")
    assert r.json["guests"] == [{"name": long_name}, {"name": "n" * 39}]

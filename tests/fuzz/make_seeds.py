#!/usr/bin/python3
"""Write the seed corpora of tests/fuzz/corpus/{http,ws,dialect}.

Run from anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py.  The seeds
are real requests and messages of every dialect (as tests/integration and
roomd-protocols(7) have them) in each harness's input format; see the
comment at the top of each harness.  Tokens, ids and room codes below are
the ones the harness's fixed pseudo-random sequence produces for its set-up
(FUZZ_VERBOSE=1 shows them); a change to the set-up changes them, and the
fuzzer finds the new ones from these soon enough.
"""
import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def j(o):
    return json.dumps(o, separators=(",", ":"))


# ------------------------------------------------------------ fuzz_http

UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")


def req(method, target, body=None, headers=""):
    h = f"{method} {target} HTTP/1.1\r\nHost: fuzz\r\n{headers}"
    if body is not None:
        b = body.encode() if isinstance(body, str) else body
        return (h + f"Content-Length: {len(b)}\r\n\r\n").encode() + b
    return (h + "\r\n").encode()


def http_seed(name, stream, sizes=()):
    write("http", name, bytes([len(sizes)]) + bytes(sizes) + stream)


def masked(op, payload, fin=True, key=b"\x11\x22\x33\x44"):
    n = len(payload)
    if n < 126:
        h = bytes([(0x80 if fin else 0) | op, 0x80 | n])
    else:
        h = bytes([(0x80 if fin else 0) | op, 0x80 | 126]) + struct.pack(">H", n)
    return h + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def http_seeds():
    http_seed("get_index", req("GET", "/"))
    http_seed("get_static_304", req("GET", "/style.css",
              headers='If-None-Match: "x"\r\n'), (7, 3, 0))
    http_seed("head_favicon", req("HEAD", "/favicon.svg"))
    http_seed("path_escape", req("GET", "/%2e%2e/%2e%2e/etc/passwd") +
              req("GET", "/a%00b") + req("GET", "/%zz"))
    http_seed("options", req("OPTIONS", "/canvas/rooms",
              headers="Origin: http://x\r\n"))
    http_seed("canvas_rest", req("POST", "/canvas/rooms",
              j({"host": "ann", "roomId": "r1", "password": "pw"})) +
              req("POST", "/canvas/rooms/r1/join",
                  j({"name": "bob", "password": "pw"})) +
              req("GET", "/canvas/rooms") +
              req("DELETE", "/canvas/rooms/r1",
                  headers="Authorization: Bearer f9001852daa332033666aa0787749400\r\n"),
              (1, 2, 5, 0))
    http_seed("canvas_errors", req("POST", "/canvas/rooms", "[1]") +
              req("POST", "/canvas/rooms/nope/join", j({"name": "x"})) +
              req("PUT", "/canvas/rooms") + req("GET", "/canvas/rooms/r1/ws") +
              req("DELETE", "/canvas/rooms/r1"))
    http_seed("chunked", b"POST /canvas/rooms HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"hos\r\n"
              b"d\r\nt\":\"a\",\"x\":1}\r\n0\r\n\r\n", (9,))
    http_seed("lobby_rest", req("POST", "/lobby/rooms", "") +
              req("GET", "/lobby") + req("GET", "/lobby/rooms"))
    http_seed("http10", b"GET / HTTP/1.0\r\n\r\n")
    http_seed("bad_method", b"BREW /pot HTTP/1.1\r\n\r\n")
    http_seed("big_header", req("GET", "/", headers="X-A: " + "a" * 3000 + "\r\n"))
    http_seed("big_body", req("POST", "/canvas/rooms", "x" * 2100))
    http_seed("many_headers", req("GET", "/", headers="X: 1\r\n" * 120))
    http_seed("upgrade_echo", req("GET", "/echo", headers=UPGRADE) +
              masked(1, b"hello") + masked(8, b"\x03\xe8"), (200, 0))
    http_seed("upgrade_bad_version", req("GET", "/echo",
              headers=UPGRADE.replace("13", "8")))
    http_seed("upgrade_bad_key", req("GET", "/chat?name=x",
              headers=UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short")))
    http_seed("upgrade_post", req("POST", "/echo", "", headers=UPGRADE))
    http_seed("upgrade_nowhere", req("GET", "/nowhere", headers=UPGRADE))
    http_seed("upgrade_h2c", req("GET", "/", headers="Upgrade: h2c\r\n"
                                 "Connection: Upgrade\r\n"))
    http_seed("upgrade_classroom_jwt", req("GET", "/classroom",
              headers=UPGRADE + "Authorization: Bearer " + jwt(
                  {"name": "dan", "room": "r1"}) + "\r\n"))
    http_seed("upgrade_lobby_code", req("GET",
              "/lobby?code=abcde&clientId=x&token=y", headers=UPGRADE))
    http_seed("pipelined_keepalive", req("GET", "/index.js") * 3, (3,))


# ------------------------------------------------------------ fuzz_ws

ENDPOINT = {"echo": 0, "chat": 4, "screenshare": 5, "lobby": 6,
            "classroom": 7}


def frames(*fs):
    out = b""
    for first, payload in fs:
        n = len(payload)
        if n < 254:
            out += bytes([first, n]) + payload
        else:
            out += bytes([first, 254]) + struct.pack(">H", n) + payload
    return out


def ws_seed(name, endpoint, body, sizes=(), raw=False):
    write("ws", name, bytes([ENDPOINT[endpoint], (0x80 if raw else 0) |
                             len(sizes)]) + bytes(sizes) + body)


def ws_seeds():
    ws_seed("echo_text", "echo", frames((0x81, b"hello"), (0x82, b"\x00\xff")))
    ws_seed("echo_fragments", "echo", frames((0x01, b"hel"), (0x89, b"p"),
            (0x00, b"l"), (0x80, b"o")), (3, 1))
    ws_seed("echo_close_codes", "echo", frames((0x88, b"\x03\xe8bye")))
    ws_seed("echo_close_one_byte", "echo", frames((0x88, b"\x03")))
    ws_seed("echo_close_bad_code", "echo", frames((0x88, b"\x03\xed")))
    ws_seed("echo_bad_utf8", "echo", frames((0x81, b"\xc0\xaf"),
            (0x81, b"ok")))
    ws_seed("echo_rsv", "echo", frames((0xc1, b"x")))
    ws_seed("echo_long_ping", "echo", frames((0x89, b"p" * 200)))
    ws_seed("echo_big", "echo", frames((0x82, bytes(range(256)) * 4)), (100,))
    ws_seed("echo_pong_unsolicited", "echo", frames((0x8a, b"x"),
            (0x81, b"after")))
    ws_seed("echo_unmasked", "echo", bytes([0x81, 255, 0, 2]) + b"hi")
    ws_seed("echo_raw", "echo", masked(1, b"raw") + masked(8, b""), (2,),
            raw=True)
    ws_seed("echo_raw_len64", "echo", bytes([0x82, 0xff]) + b"\x7f" +
            b"\xff" * 7 + b"\x00" * 4, raw=True)
    ws_seed("chat", "chat", frames(
        (0x81, j({"type": "command", "action": "create",
                  "target": "#g"}).encode()),
        (0x81, j({"type": "message", "target": "#g",
                  "message": "hi"}).encode())))
    ws_seed("screenshare", "screenshare", frames(
        (0x81, j({"type": "CREATE_ROOM", "username": "ann"}).encode()),
        (0x81, j({"type": "LEAVE_ROOM"}).encode())))
    ws_seed("lobby", "lobby", frames(
        (0x81, j({"type": "createRoom"}).encode()),
        (0x81, j({"type": "saveSnapshot", "data": {"a": 1}}).encode())))
    ws_seed("classroom", "classroom", frames(
        (0x81, j({"type": "Broadcast", "data": "x"}).encode()),
        (0x81, j({"type": "Disconnect"}).encode())))


# ------------------------------------------------------------ fuzz_dialect

DIALECT = {"canvas": 0, "chat": 1, "classroom": 2, "echo": 3, "lobby": 4,
           "screenshare": 5}
CANVAS_TOKENS = ["f9001852daa332033666aa0787749400",
                 "6ad676c582efd36b1b2f423a771f359a",
                 "e5e07bd6257c041d06b352dfa4cb9ea9"]
CLASS_IDS = ["10e4229d-d189-475a-acbe-b1c78f6bb3e9",
             "04b06356-c204-4627-abe7-36c5077be403",
             "12068de3-625c-44ba-813b-8e7e2644dc75"]
LOBBY_CODE = "yyahm"
LOBBY_IDS = [("f9001852-daa3-4203-b666-aa0787749400",
              "10e4229dd189575a6cbeb1c78f6bb3e9"),
             ("efd36b1b-2f42-4a77-9f35-9a04b06356c2",
              "0406276be736c5077be403e5e07bd625"),
             ("7c041d06-b352-4fa4-8b9e-a912068de362",
              "5c84ba013b8e7e2644dc750b500d5d74")]
SS_ROOM = "7ayk"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret=b"fuzz-secret", alg="HS256"):
    h = b64u(j({"alg": alg, "typ": "JWT"}).encode())
    p = b64u(j(claims).encode())
    dig = hashlib.sha256 if alg == "HS256" else hashlib.sha512
    s = b64u(hmac.new(secret, f"{h}.{p}".encode(), dig).digest())
    return f"{h}.{p}.{s}"


def dialect_seed(name, dialect, ops):
    lines = [op if isinstance(op, str) else f"{op[0]}{j(op[1])}"
             for op in ops]
    write("dialect", name, bytes([DIALECT[dialect]]) +
          "\n".join(lines).encode())


def dialect_seeds():
    dialect_seed("canvas_draw", "canvas", [
        (0, [{"moveto": [10, 10]}, {"lineto": [80, 40]}]),
        (1, {"lineto": [1, 2], "pointer": 7}),
        (2, []), (0, {}), (0, [1]), "0not json", "b0" + j({"a": 1}),
        "c1", "r1", "d2", "r2",
        f"w/canvas/rooms/r1/ws?token={CANVAS_TOKENS[0]}&pointer=1",
        f"w/canvas/rooms/r1/ws?token={CANVAS_TOKENS[1]}&pointer=99",
        "w/canvas/rooms/r1/ws?token=bad", "w/canvas/rooms/nope/ws?token=x",
        "hGET /canvas/rooms ",
        "hPOST /canvas/rooms/r1/join " + j({"name": "dan"}),
        "hPOST /canvas/rooms " + j({"host": "eve", "roomId": "r2",
                                     "password": "pw"}),
        "hPOST /canvas/rooms/r2/join " + j({"name": "x", "password": "no"}),
    ])
    dialect_seed("canvas_full", "canvas",
                 [(i % 3, [{"text": "x" * 1500}]) for i in range(12)] +
                 ["d0", "d1", "d2", "r0"])
    dialect_seed("chat_channels", "chat", [
        (0, {"type": "command", "action": "create", "target": "#general"}),
        (1, {"type": "command", "action": "join", "target": "#general"}),
        (2, {"type": "command", "action": "join", "target": "#general",
             "since": 0}),
        (1, {"type": "message", "target": "#general", "message": "hi"}),
        (0, {"type": "message", "target": "@bob", "message": "psst"}),
        (0, {"type": "message", "target": "@nobody", "message": "?"}),
        (2, {"type": "command", "action": "leave", "target": "#general"}),
        (1, {"type": "command", "action": "join", "target": "#general"}),
        (2, {"type": "command", "action": "destroy", "target": "#general"}),
        (0, {"type": "command", "action": "destroy", "target": "#general"}),
        "t", "d1", "t", "r1",
    ])
    dialect_seed("chat_history", "chat",
                 [(0, {"type": "command", "action": "create", "target": "#h"}),
                  (0, {"type": "command", "action": "join", "target": "#h"})] +
                 [(0, {"type": "message", "target": "#h", "message": f"m{i}"})
                  for i in range(8)] +
                 [(1, {"type": "command", "action": "join", "target": "#h"}),
                  (2, {"type": "command", "action": "join", "target": "#h",
                       "since": 3}), "c0", "t"])
    dialect_seed("chat_errors", "chat", [
        (0, {"type": "command", "action": "join", "target": "#none"}),
        (0, {"type": "command", "action": "create", "target": "nohash"}),
        (0, {"type": "message", "target": "#x"}), (0, {"type": 5}),
        (0, [1]), "0{", "b0{}", "w/chat?name=ann", "w/chat?name=bad name",
        "w/chat",
    ])
    ann, bob, cat = CLASS_IDS
    dialect_seed("classroom_roles", "classroom", [
        (0, {"type": "Broadcast", "data": "hello"}),
        (1, {"type": "Broadcast", "data": 1}),
        (0, {"type": "Control", "participants": [bob],
             "data": {"allow": True,
                      "authorities": ["Broadcast", "Direct", "Kick"]}}),
        (1, {"type": "Direct", "participants": [cat, ann, cat],
             "data": {"x": 1}}),
        (2, {"type": "Petition", "data": "may I"}),
        (0, {"type": "Control", "participants": [cat],
             "data": {"allow": True, "authorities": ["Nope"]}}),
        (0, {"type": "Control", "participants": [cat], "data": {}}),
        (1, {"type": "Kick", "participants": [cat]}),
        (1, {"type": "Direct"}), (0, {"type": "RolesApplied"}),
        (0, {"type": ["x"]}), (2, {"participants": 3}),
        "2{\"type\":\"Disconnect\"}", "t", "r2",
    ])
    dialect_seed("classroom_close", "classroom", [
        (1, {"type": "Close"}), (0, {"type": "Close"}), "t", "r0", "r1",
    ])
    dialect_seed("classroom_jwt", "classroom", [
        "a" + jwt({"name": "dan", "room": "r1", "admin": True}),
        "a" + jwt({"name": "eve", "room": "r2"}, alg="HS512"),
        "a" + jwt({"name": "x", "room": "r1"}, secret=b"wrong"),
        "a" + jwt({"name": "x", "room": "r1", "exp": 1}),
        "a" + jwt({"room": "r1"}), "anot.a.jwt",
        (3, {"type": "Broadcast", "data": "from dan"}),
    ])
    dialect_seed("echo", "echo", ["0hello", "b1\x00\x01\x02", "2", "c0",
                                  "r0", "0again"])
    (h_id, h_tok), (g1_id, g1_tok), (g2_id, g2_tok) = LOBBY_IDS
    dialect_seed("lobby_signals", "lobby", [
        (1, {"type": "guestOfferSignal", "data": {"offerSignal": {"sdp": "x"}}}),
        (0, {"type": "hostAnswerSignal",
             "data": {"answerSignal": {"sdp": "y"}, "clientId": g1_id}}),
        (0, {"type": "saveSnapshot", "data": {"board": [1, 2, 3]}}),
        (2, {"type": "getSnapshot"}),
        (0, {"type": "saveSnapshot", "data": "x" * 2100}),
        (1, {"type": "createRoom"}), (1, {"type": "nope"}),
        "d0", "t", "t", (1, {"type": "hostReady"}), (2, {"type": "hostReady"}),
        f"w/lobby?code={LOBBY_CODE}&clientId={h_id}&token={h_tok}",
        f"w/lobby?code={LOBBY_CODE}&clientId={g2_id}&token=bad",
        f"w/lobby?code={LOBBY_CODE}&host=1", "w/lobby?code=zzzzz",
        "w/lobby?code=", "hPOST /lobby/rooms ",
    ])
    dialect_seed("lobby_migration", "lobby", [
        (0, {"type": "saveSnapshot", "data": {"turn": 4}}),
        "c0", "t", "t", (1, {"type": "hostReady"}), (2, {"type": "hostReady"}),
        (2, {"type": "guestOfferSignal", "data": {"offerSignal": 1}}),
        "r0", "t", "d1", "d2", "t",
    ])
    dialect_seed("lobby_join_msgs", "lobby", [
        "w/lobby",
        (3, {"type": "joinRoom", "data": {"roomCode": LOBBY_CODE,
                                          "clientId": g1_id,
                                          "token": g1_tok}}),
        (3, {"type": "joinRoom", "data": {}}),
        (3, {"type": "createRoom", "data": {"migration": False}}),
        "d0", "t",
    ])
    dialect_seed("screenshare_relay", "screenshare", [
        (1, {"type": "REQUEST_SHARING"}),
        (0, {"type": "ALLOW_SHARING", "username": "bob"}),
        (0, {"type": "RCP_OFFER", "username": "bob", "sdp": "v=0"}),
        (1, {"type": "RCP_ANSWER", "sdp": "v=0"}),
        (0, {"type": "ICE_CANDIDATE", "username": "cat", "candidate": {"c": 1}}),
        (2, {"type": "ICE_CANDIDATE", "candidate": "x"}),
        (0, {"type": "STOP_SHARING"}),
        (0, {"type": "STOP_SHARING", "username": "nobody"}),
        (2, {"type": "LEAVE_ROOM"}), (2, {"type": "REQUEST_SHARING"}),
        (2, {"type": "JOIN_ROOM", "roomid": " " + SS_ROOM.upper() + " ",
             "username": "cat"}),
        (1, {"type": "JOIN_ROOM", "roomid": SS_ROOM, "username": "cat"}),
        (1, {"type": "CREATE_ROOM", "username": "\u200bbad"}),
        (1, {"type": "CREATE_ROOM", "username": "x" * 31}),
        (1, {"type": "CREATE_ROOM"}), "b0x", "d0", "t",
    ])


def main():
    http_seeds()
    ws_seeds()
    dialect_seeds()


if __name__ == "__main__":
    main()

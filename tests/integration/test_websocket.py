"""RFC 6455 details of roomd's WebSocket, driven over raw sockets."""
import base64
import json
import os
import socket
import time
import uuid

import pytest

from conftest import (RawWS, accept_for, create_room, join_room, new_key,
                      parse_worker, strip_pointers)


def room_path(d):
    rid = f"raw-{uuid.uuid4().hex[:12]}"
    tok = create_room(d, room_id=rid)["token"]
    return f"/canvas/rooms/{rid}/ws?token={tok}"


def opened(d, path=None):
    """A RawWS past the handshake and past its first message ('[]')."""
    ws = RawWS(d)
    try:
        ws.open(path or room_path(d))
        first = ws.recv_json()
        assert first == [], first
    except BaseException:
        ws.close()
        raise
    return ws


def close_code(payload):
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


# ---------------------------------------------------------------- handshake

def test_handshake_is_101_with_correct_accept_upgrade_and_worker_header(roomd):
    with RawWS(roomd) as ws:
        status, h, key = ws.handshake(room_path(roomd))
        assert status == 101, (status, h)
        assert h.get("upgrade", "").lower() == "websocket", h
        assert "upgrade" in [x.strip().lower() for x in h.get("connection", "").split(",")], h
        assert h.get("sec-websocket-accept") == accept_for(key), h
        slot, pid = parse_worker(h.get("x-roomd-worker"))
        assert slot >= 0 and pid > 1


def test_first_server_frame_is_a_final_unmasked_text_frame_holding_empty_array(roomd):
    with RawWS(roomd) as ws:
        ws.open(room_path(roomd))
        fin, op, payload, masked = ws.recv_frame()
        assert (fin, op, masked) == (True, 0x1, False), (fin, op, masked, payload)
        assert json.loads(payload) == []


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_handshake_with_version_other_than_13_is_426_naming_version_13(roomd, version):
    with RawWS(roomd) as ws:
        status, h, _ = ws.handshake(room_path(roomd), version=version)
        assert status == 426, (ws.last_request, status, h)
        assert h.get("sec-websocket-version") == "13", h
        body = ws.read_body(h)
        j = json.loads(body)
        assert isinstance(j.get("error"), str) and isinstance(j.get("message"), str), body


def test_handshake_without_version_is_rejected(roomd):
    with RawWS(roomd) as ws:
        status, h, _ = ws.handshake(room_path(roomd), version=None)
        assert status in (400, 426), (ws.last_request, status, h)


def test_handshake_without_key_is_400(roomd):
    with RawWS(roomd) as ws:
        status, h, _ = ws.handshake(room_path(roomd), key=None)
        assert status == 400, (ws.last_request, status, h)
        j = json.loads(ws.read_body(h))
        assert isinstance(j.get("error"), str) and isinstance(j.get("message"), str), j


@pytest.mark.parametrize("key", [
    "not base64 at all!!",
    base64.b64encode(os.urandom(15)).decode(),
    base64.b64encode(os.urandom(17)).decode(),
    base64.b64encode(os.urandom(32)).decode(),
    "",
], ids=["garbage", "15-bytes", "17-bytes", "32-bytes", "empty"])
def test_handshake_with_malformed_key_is_400(roomd, key):
    with RawWS(roomd) as ws:
        status, h, _ = ws.handshake(room_path(roomd), key=key)
        assert status == 400, (ws.last_request, status, h)


def test_rfc_sample_key_gets_rfc_sample_accept(roomd):
    # RFC 6455 section 1.3's worked example
    with RawWS(roomd) as ws:
        status, h, _ = ws.handshake(room_path(roomd), key="dGhlIHNhbXBsZSBub25jZQ==")
        assert status == 101, (status, h)
        assert h.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", h


# ---------------------------------------------------------------- framing

def test_unmasked_client_frame_closes_1002(roomd):
    ws = opened(roomd)
    with ws:
        ws.send_text(json.dumps({"moveto": [1, 1]}), mask=False)
        code, reason, skipped = ws.recv_close()
        assert code == 1002, (code, reason, skipped)


@pytest.mark.parametrize("payload", [
    b"\xff\xfe",
    b'{"moveto": "\xc3\x28"}',
    b'{"text": "\xed\xa0\x80"}',          # encoded surrogate
    b'{"text": "\xf4\x90\x80\x80"}',      # above U+10FFFF
    b'{"text": "\xc0\xaf"}',              # overlong '/'
], ids=["ff-fe", "bad-continuation", "surrogate", "too-large", "overlong"])
def test_invalid_utf8_in_text_frame_closes_1007(roomd, payload):
    ws = opened(roomd)
    with ws:
        ws.send_frame(0x1, payload)
        code, reason, skipped = ws.recv_close()
        assert code == 1007, (payload, code, reason, skipped)


def test_ping_payload_is_echoed_in_pong(roomd):
    ws = opened(roomd)
    with ws:
        ws.send_frame(0x9, b"payload-\x00\x01\xfe")
        for _ in range(10):
            fin, op, payload, masked = ws.recv_frame()
            if op == 0xA:
                break
        assert op == 0xA, "no pong"
        assert payload == b"payload-\x00\x01\xfe"
        assert fin and not masked


def test_close_frame_is_answered_with_close_and_connection_ends(roomd):
    ws = opened(roomd)
    with ws:
        ws.send_frame(0x8, (1000).to_bytes(2, "big") + b"bye")
        code, reason, skipped = ws.recv_close()
        assert code in (1000, None), (code, reason)
        with pytest.raises(EOFError):
            for _ in range(10):
                ws.recv_frame()


def test_fragmented_text_message_is_reassembled(roomd):
    ws = opened(roomd)
    with ws:
        text = json.dumps([{"moveto": [1, 2]}, {"lineto": [3, 4], "note": "frag"}]).encode()
        a, b, c = text[:5], text[5:17], text[17:]
        ws.send_frame(0x1, a, fin=False)
        ws.send_frame(0x0, b, fin=False)
        ws.send_frame(0x0, c, fin=True)
        got = []
        while len(got) < 2:
            m = ws.recv_json()
            assert isinstance(m, list), m
            got += m
        assert strip_pointers(got) == [{"moveto": [1, 2]}, {"lineto": [3, 4], "note": "frag"}]


def test_ping_between_fragments_is_answered_and_message_reassembled(roomd):
    ws = opened(roomd)
    with ws:
        text = json.dumps({"moveto": [8, 9]}).encode()
        ws.send_frame(0x1, text[:4], fin=False)
        ws.send_frame(0x9, b"mid")
        ws.send_frame(0x0, text[4:], fin=True)
        pong, msg = None, None
        for _ in range(10):
            fin, op, payload, _ = ws.recv_frame()
            if op == 0xA:
                pong = payload
            elif op == 0x1:
                msg = json.loads(payload)
            assert op != 0x8, f"closed: {payload!r}"
            if pong is not None and msg is not None:
                break
        assert pong == b"mid"
        assert strip_pointers(msg) == [{"moveto": [8, 9]}]


@pytest.mark.parametrize("size", [200, 70000], ids=["16-bit-length", "64-bit-length"])
def test_extended_payload_lengths_roundtrip(roomd, size):
    ws = opened(roomd)
    with ws:
        act = {"text": "z" * size}
        ws.send_text(json.dumps(act))
        fin, op, payload, masked = ws.recv_frame()
        while op in (0x9, 0xA):
            fin, op, payload, masked = ws.recv_frame()
        parts = [payload]
        while not fin:
            fin, op2, p2, _ = ws.recv_frame()
            parts.append(p2)
        got = json.loads(b"".join(parts))
        assert strip_pointers(got) == [act]


def test_message_of_exactly_max_message_bytes_is_accepted(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    ws = opened(d)
    with ws:
        head = '{"text":"'
        msg = head + "a" * (4096 - len(head) - 2) + '"}'
        assert len(msg) == 4096
        ws.send_text(msg)
        got = ws.recv_json()
        assert strip_pointers(got) == [json.loads(msg)]


def test_message_one_byte_over_max_message_bytes_closes_1009(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    ws = opened(d)
    with ws:
        head = '{"text":"'
        msg = head + "a" * (4097 - len(head) - 2) + '"}'
        assert len(msg) == 4097
        ws.send_text(msg)
        code, reason, skipped = ws.recv_close()
        assert code == 1009, (code, reason, skipped)


def test_fragmented_message_over_max_message_bytes_closes_1009(roomd_factory):
    d = roomd_factory("max_message_bytes 4096\n")
    ws = opened(d)
    with ws:
        head = '{"text":"'
        msg = (head + "a" * (6000 - len(head) - 2) + '"}').encode()
        chunks = [msg[i:i + 1000] for i in range(0, len(msg), 1000)]
        for i, ch in enumerate(chunks):
            ws.send_frame(0x1 if i == 0 else 0x0, ch, fin=(i == len(chunks) - 1))
        code, reason, skipped = ws.recv_close()
        assert code == 1009, (code, reason, skipped)


def test_frame_in_the_same_packet_as_the_upgrade_is_answered(roomd_factory):
    """A client that sends its first frame right behind the handshake, in
    one write, gets its echo without sending anything more."""
    d = roomd_factory("mount echo /echo\nmount canvas /canvas\n")
    key = base64.b64encode(os.urandom(16)).decode()
    req = (f"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
    mask, payload = b"\x01\x02\x03\x04", b"first words"
    frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))
    with socket.create_connection((d.host, d.port), timeout=5) as s:
        s.sendall(req + frame)
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data or not data.endswith(payload):
            if time.monotonic() > deadline:
                break
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 101"), data[:80]
    assert data.endswith(bytes([0x81, len(payload)]) + payload), data

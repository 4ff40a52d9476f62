"""permessage-deflate (RFC 7692) conformance, case by case.

The server cases of the Autobahn testsuite's groups 12 (compression of
different payloads) and 13 (different negotiated parameters), written anew
from the published case descriptions over raw sockets with the client of
test_conformance.py, against the echo dialect of a daemon with
websocket_compression yes.  Each case echoes messages one at a time and
checks every echo octet for octet after inflating it; it ends with a clean
close, as in test_conformance.py.

Where these differ from Autobahn:
  * the payloads are made here (seeded, so every run sends the same
    octets) instead of read from Autobahn's files: JSON, a bitmap, English
    text, HTML and random octets;
  * Autobahn sends 1000 messages per case; here a case sends
    min(1000, max(8, 1 MiB / size)) so that the whole suite stays short;
  * each echo is inflated with a fresh decompressor and the window the
    server agreed to, so a server that took context over between messages
    or used a larger window than agreed fails.

Cases with other names (deflate.*) are not Autobahn's: negotiation, RSV1
where it is not allowed, bad DEFLATE data, and a message that inflates
past max_message_bytes, which must be refused with 1009 while it inflates
(before its last frame is even sent).
"""
import random
import signal
import zlib

import pytest

from conftest import EXTERNAL_URL, log_text, start_roomd, stop_clean
from test_conformance import (BINARY, CLOSE, CONT, PING, PONG, TEXT,
                              SANITIZER_RE, Client, Timeout, _workers,
                              clean_close, close_body, expect_fail, frame,
                              grade, msg, shorts)

MAX = 1 << 20                   # max_message_bytes of the daemon under test
CONF = ("mount echo /echo\n"
        f"max_message_bytes {MAX}\n"
        "ping_interval 60\n"
        "websocket_compression yes\n")
T = 10.0
TAIL = b"\x00\x00\xff\xff"
RSV1 = 0x40

pytestmark = pytest.mark.skipif(
    bool(EXTERNAL_URL), reason="needs a daemon of its own "
    "(websocket_compression yes); ROOMD_URL names an external one")


@pytest.fixture(scope="module")
def pmd_d():
    d = start_roomd(CONF, workers=2)
    try:
        d.initial_workers = _workers(d)
        yield d
        stop_clean(d)
    finally:
        d.stop()


# ---------------------------------------------------------------- the client

def parse_extensions(value):
    """[(name, {param: value or True})] of a Sec-WebSocket-Extensions."""
    out = []
    for ext in (value or "").split(","):
        parts = [p.strip() for p in ext.split(";")]
        if not parts[0]:
            continue
        params = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            params[k.strip()] = v.strip().strip('"') if eq else True
        out.append((parts[0], params))
    return out


class DeflateClient(Client):
    """test_conformance's client with permessage-deflate offered."""

    def __init__(self, d, offer="permessage-deflate; client_max_window_bits",
                 path="/echo"):
        super().__init__(d, path, headers=(
            f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""))
        exts = parse_extensions(self.fields.get("sec-websocket-extensions"))
        assert len(exts) <= 1, exts
        self.params = exts[0][1] if exts else None
        if exts:
            assert exts[0][0] == "permessage-deflate", exts
            self.allowed_rsv = RSV1
        self.compressed = 0     # messages that came compressed

    def server_bits(self):
        return int(self.params.get("server_max_window_bits", 15))

    def client_bits(self):
        v = (self.params or {}).get("client_max_window_bits", 15)
        return 15 if v is True else int(v)

    def compress(self, payload, bits=None):
        # A fresh compressor per message: roomd always answers
        # client_no_context_takeover.
        c = zlib.compressobj(wbits=-(bits or self.client_bits()))
        z = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        assert z.endswith(TAIL)
        return z[:-4]

    def message_frames(self, op, payload, fragment=0, compress=True):
        data = self.compress(payload) if compress else payload
        rsv = 4 if compress else 0      # frame() takes RSV as 3 bits
        if not fragment or len(data) <= fragment:
            return [frame(op, data, rsv=rsv)]
        out = []
        for i in range(0, len(data), fragment):
            out.append(frame(op if i == 0 else CONT, data[i:i + fragment],
                             fin=i + fragment >= len(data),
                             rsv=rsv if i == 0 else 0))
        return out

    def event(self, deadline):
        """As Client.event, with compressed messages inflated (each with a
        fresh decompressor: the server takes no context over)."""
        op0, parts, rsv0 = None, [], 0
        while True:
            fin, op, payload = self.frame(deadline)
            if op == CLOSE:
                assert not self.rsv, "RSV1 on a close frame"
                if len(payload) == 0:
                    return ("close", None, b"")
                return ("close", int.from_bytes(payload[:2], "big"),
                        payload[2:])
            if op in (PING, PONG):
                assert not self.rsv, "RSV1 on a control frame"
                return ("pong" if op == PONG else "ping", payload)
            if op0 is None:
                assert op != CONT, "continuation frame with no message"
                op0, rsv0 = op, self.rsv
            else:
                assert op == CONT and not self.rsv, \
                    "new message or RSV1 inside a fragmented one"
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                if rsv0:
                    dz = zlib.decompressobj(wbits=-self.server_bits())
                    data = dz.decompress(data + TAIL)
                    self.compressed += 1
                return ("message", op0, data)


# ---------------------------------------------------------------- payloads

def _payloads(n=1 << 18):
    r = random.Random(7692)
    words = ("the of and to in room server message frame window deflate "
             "member canvas stroke point colour join leave history echo "
             "compressed octets client browser").split()
    items, size = [], 0
    while size < n:
        it = {"id": r.randrange(1 << 30), "name": r.choice(words),
              "x": round(r.uniform(0, 1000), 2), "y": r.randrange(800),
              "tags": r.sample(words, 3), "ok": r.random() < 0.5}
        items.append(it)
        size += 90
    import json
    text_json = json.dumps(items).encode()[:n]
    sentences = []
    while sum(len(s) for s in sentences) < n:
        s = " ".join(r.choice(words) for _ in range(r.randrange(5, 16)))
        sentences.append(s.capitalize() + ". ")
    text = "".join(sentences).encode()[:n]
    html = b"".join(b"<div class=\"m\"><p>" + s.encode() + b"</p></div>\n"
                    for s in sentences)[:n]
    bmp = bytearray()
    for i in range(n):
        x, y = i % 512, i // 512
        bmp.append(((x * y) // 64 + r.randrange(4)) & 0xFF)
    return {
        1: (TEXT, text_json),           # 12.1: JSON
        2: (BINARY, bytes(bmp)),        # 12.2: a picture
        3: (TEXT, text),                # 12.3: human-readable text
        4: (TEXT, html),                # 12.4: HTML
        5: (BINARY, r.randbytes(n)),    # 12.5: random octets
    }


PAYLOADS = _payloads()

# Sub-cases 1 to 18: (payload size, auto-fragment size; 0 = none).
SUBCASES = ([(s, 0) for s in (16, 64, 256, 1024, 4096, 8192, 16384, 32768,
                              65536, 131072)] +
            [(s, 256) for s in (256, 1024, 4096, 8192, 16384, 32768, 65536,
                                131072)])


def _count(size):
    return min(1000, max(8, (1 << 20) // size))


def _echo_many(cid, ws, op, data, size, fragment):
    """Echo count messages one at a time (each a different slice of the
    payload), each checked, then close cleanly."""
    count = _count(size)
    for i in range(count):
        off = (i * 97) % (len(data) - size + 1)
        payload = data[off:off + size]
        ws.send(ws.message_frames(op, payload, fragment))
        got = ws.events(1)
        if got != [msg(op, payload)]:
            grade(cid, got, [msg(op, payload)])     # raises, saying what
    grade(cid, [], [])
    clean_close(ws)


CASES = {}

for _k in PAYLOADS:
    for _y, (_size, _frag) in enumerate(SUBCASES, 1):
        def _c12(d, _k=_k, _size=_size, _frag=_frag, _cid=f"12.{_k}.{_y}"):
            ws = DeflateClient(d)
            try:
                assert ws.params is not None, "permessage-deflate refused"
                op, data = PAYLOADS[_k]
                _echo_many(_cid, ws, op, data, _size, _frag)
                if _k != 5 and _size >= 256:
                    assert ws.compressed > 0, \
                        "no echo came back compressed"
            finally:
                ws.close()
        CASES[f"12.{_k}.{_y}"] = _c12

# Group 13: the offers, as (server_no_context_takeover asked,
# server_max_window_bits asked; 0: not), with client_no_context_takeover
# and client_max_window_bits offered; 13.7 offers three in turn.
OFFERS13 = {
    1: [(False, 0)], 2: [(True, 0)], 3: [(False, 8)], 4: [(False, 15)],
    5: [(True, 8)], 6: [(True, 15)], 7: [(True, 9), (True, 0), (False, 0)],
}


def offer_text(offers):
    out = []
    for nct, bits in offers:
        o = "permessage-deflate; client_no_context_takeover; " \
            "client_max_window_bits"
        if nct:
            o += "; server_no_context_takeover"
        if bits:
            o += f"; server_max_window_bits={bits}"
        out.append(o)
    return ", ".join(out)


for _k, _offers in OFFERS13.items():
    for _y, (_size, _frag) in enumerate(SUBCASES, 1):
        def _c13(d, _offers=_offers, _size=_size, _frag=_frag,
                 _cid=f"13.{_k}.{_y}"):
            ws = DeflateClient(d, offer_text(_offers))
            try:
                p = ws.params
                assert p is not None, "permessage-deflate refused"
                assert p.get("server_no_context_takeover") is True, p
                assert p.get("client_no_context_takeover") is True, p
                asked = _offers[0][1]
                if asked:
                    assert int(p["server_max_window_bits"]) <= asked, p
                else:
                    assert "server_max_window_bits" not in p, p
                op, data = PAYLOADS[1]
                _echo_many(_cid, ws, op, data, _size, _frag)
                if _size >= 256:
                    assert ws.compressed > 0, "no echo came back compressed"
            finally:
                ws.close()
        CASES[f"13.{_k}.{_y}"] = _c13


def _key(cid):
    return [int(x) for x in cid.split(".")]


@pytest.mark.parametrize("cid", sorted(CASES, key=_key))
def test_case(pmd_d, cid):
    CASES[cid](pmd_d)


# ---------------------------------------------------------------- negotiation

def _answer(d, offer):
    ws = DeflateClient(d, offer)
    try:
        return ws.fields.get("sec-websocket-extensions")
    finally:
        ws.close()


def test_no_extension_is_answered_without_websocket_compression():
    d = start_roomd("mount echo /echo\n", workers=1)
    try:
        ws = DeflateClient(d)
        try:
            assert ws.params is None, ws.fields
            # And RSV1 stays a protocol error there.
            ws.send(ws.message_frames(TEXT, b"hello" * 20))
            expect_fail("deflate.off", ws, 1002)
        finally:
            ws.close()
    finally:
        d.stop()


def test_no_extension_is_answered_without_an_offer(pmd_d):
    assert _answer(pmd_d, None) is None
    assert _answer(pmd_d, "x-webkit-deflate-frame") is None


@pytest.mark.parametrize("offer", [
    "permessage-deflate; server_max_window_bits",        # needs a value
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; client_max_window_bits=0",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover; "
    "client_no_context_takeover",
    "permessage-deflate; x_unknown",
    "permessage-deflate; server_max_window_bits=\"1",   # unterminated
])
def test_an_invalid_offer_is_declined(pmd_d, offer):
    assert _answer(pmd_d, offer) is None


def test_the_first_valid_offer_is_taken(pmd_d):
    got = parse_extensions(_answer(
        pmd_d, "permessage-deflate; x_unknown, "
        "permessage-deflate; server_max_window_bits=\"10\", "
        "permessage-deflate"))
    assert got == [("permessage-deflate", {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": "10"})], got


def test_offers_on_several_header_lines_are_one_list(pmd_d):
    ws = Client(pmd_d, headers="Sec-WebSocket-Extensions: foo\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; "
                "server_max_window_bits=12\r\n")
    try:
        got = parse_extensions(ws.fields.get("sec-websocket-extensions"))
        assert got and got[0][1].get("server_max_window_bits") == "12", got
    finally:
        ws.close()


@pytest.mark.parametrize("bits", range(9, 16))
def test_client_max_window_bits_is_honoured(pmd_d, bits):
    """A client that offers a window of its own compresses with it; roomd
    reads it (and says nothing of it, which leaves the client's choice)."""
    ws = DeflateClient(pmd_d, "permessage-deflate; "
                       f"client_max_window_bits={bits}")
    try:
        assert ws.params is not None
        assert "client_max_window_bits" not in ws.params, ws.params
        data = PAYLOADS[3][1][:50000]
        ws.send([frame(TEXT, ws.compress(data, bits), rsv=4)])
        assert ws.events(1) == [msg(TEXT, data)]
        clean_close(ws)
    finally:
        ws.close()


# ---------------------------------------------------------------- failures

def test_rsv1_on_a_continuation_frame_fails_the_connection(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        z = ws.compress(b"abc" * 100)
        ws.send([frame(TEXT, z[:5], fin=False, rsv=4),
                 frame(CONT, z[5:], rsv=4)])
        expect_fail("deflate.rsv1-continuation", ws, 1002)
    finally:
        ws.close()


def test_rsv1_on_a_ping_fails_the_connection(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        ws.send([frame(PING, b"x", rsv=4)])
        expect_fail("deflate.rsv1-ping", ws, 1002)
    finally:
        ws.close()


def test_invalid_deflate_data_is_refused_with_1007(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        ws.send([frame(TEXT, b"\xff\xff\xff\xff garbage", rsv=4)])
        expect_fail("deflate.bad-data", ws, 1007)
    finally:
        ws.close()


def test_compressed_invalid_utf8_is_refused_with_1007(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        ws.send(ws.message_frames(TEXT, b"ok \xc3\x28 not utf-8" * 10))
        expect_fail("deflate.utf8", ws, 1007)
    finally:
        ws.close()


def test_a_message_that_inflates_past_max_message_bytes_is_refused_while_it_inflates(pmd_d):
    """4 MiB of zeros compress to about 4 KiB.  The first fragment alone
    inflates past the 1 MiB limit: roomd must answer 1009 then, with the
    message's last frame never sent."""
    ws = DeflateClient(pmd_d)
    try:
        z = ws.compress(b"\0" * (4 << 20))
        assert len(z) < 8192
        half = len(z) // 2
        ws.send([frame(BINARY, z[:half], fin=False, rsv=4)])
        expect_fail("deflate.1009-while-inflating", ws, 1009)
    finally:
        ws.close()


def test_a_message_that_inflates_to_exactly_the_limit_is_echoed(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        data = bytes(range(256)) * (MAX // 256)
        assert len(data) == MAX
        ws.send(ws.message_frames(BINARY, data, fragment=1000))
        assert ws.events(1) == [msg(BINARY, data)]
        clean_close(ws)
    finally:
        ws.close()


def test_uncompressed_messages_still_pass_on_a_compressing_connection(pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        ws.send(ws.message_frames(TEXT, b"plain", compress=False))
        ws.send(ws.message_frames(TEXT, b"x" * 3000))
        ws.send(ws.message_frames(BINARY, b"", compress=True))
        got = ws.events(3)
        assert got == [msg(TEXT, b"plain"), msg(TEXT, b"x" * 3000),
                       msg(BINARY, b"")], shorts(got)
        clean_close(ws)
    finally:
        ws.close()


def test_daemon_intact_after_all_cases(pmd_d):
    assert pmd_d.proc.poll() is None, "roomd exited"
    assert _workers(pmd_d) == pmd_d.initial_workers, \
        "a worker was replaced (crashed) during the cases"
    text = log_text(pmd_d)
    m = SANITIZER_RE.search(text)
    assert m is None, text[max(0, m.start() - 2000):m.start() + 6000]


def test_a_ping_between_the_fragments_of_a_compressed_message_is_answered(
        pmd_d):
    ws = DeflateClient(pmd_d)
    try:
        data = PAYLOADS[4][1][:20000]
        frames = ws.message_frames(TEXT, data, fragment=300)
        assert len(frames) >= 3
        ws.send_framewise(frames[:2] + [frame(PING, b"mid")] + frames[2:])
        got = ws.events(2)
        assert got == [("pong", b"mid"), msg(TEXT, data)], shorts(got)
        clean_close(ws)
    finally:
        ws.close()

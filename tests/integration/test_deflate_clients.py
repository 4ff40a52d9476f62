"""permessage-deflate with real clients: Chromium, Python's websockets with
compression="deflate", and a client without compression get the same
messages, octet for octet.

A chat channel is the meeting point, so that what is compared went through
the fan-out's shared frames (compressed once, sent to every member that
negotiated compression) and not through a per-connection send.  A Python
client without compression publishes messages of several sizes and kinds
(short, long and repetitive, non-ASCII, hard to compress); every member,
the publisher too, records the channel's messages as the text frames it
got.

Chromium runs headless (it always offers permessage-deflate) on a page
that roomd serves from a temporary htdocs: the page joins the channel,
collects the messages, writes them into its DOM and sends them back on its
WebSocket as one message, which is how the test reads them (--dump-dom
would dump the page before a WebSocket has said anything).  The browser
part is skipped, with the reason, when /usr/bin/chromium is missing; the
Python clients are compared in any case.

This is a plain pytest module, not part of tests/browser, so that it runs
wherever the integration tests run.
"""
import asyncio
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import websockets

from conftest import EXTERNAL_URL, run, start_roomd

CHROMIUM = "/usr/bin/chromium"
CHANNEL = "#deflate"
T = 30.0

pytestmark = pytest.mark.skipif(
    bool(EXTERNAL_URL), reason="needs a daemon of its own "
    "(websocket_compression yes, a temporary htdocs)")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>deflate</title></head>
<body><pre id="result">waiting</pre>
<script>
const want = %(want)d;
const got = [];
let ext = null;
const ws = new WebSocket("ws://" + location.host +
    "/chat?name=" + %(name)s);
ws.onopen = () => {
  ext = ws.extensions;
  ws.send(JSON.stringify({type: "command", action: "join",
      target: %(channel)s}));
};
ws.onmessage = (ev) => {
  const m = JSON.parse(ev.data);
  if (m.type === "message" && m.target === %(channel)s &&
      !String(m.message).startsWith("result:")) {
    got.push(ev.data);
    if (got.length === want) {
      const result = JSON.stringify({extensions: ext, messages: got});
      document.getElementById("result").textContent = result;
      ws.send(JSON.stringify({type: "message", target: %(channel)s,
          message: "result:" + result}));
    }
  }
};
</script></body></html>
"""


def _messages():
    rnd = __import__("random").Random(7692)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return [
        "hi",
        "a short sentence of a few words",
        "the same words again and again, " * 40,
        "h\u00e9llo w\u00f6rld \u2713 \U0001f600 " * 300,
        "".join(rnd.choice(letters) for _ in range(3000)),
        json.dumps([{"x": i, "y": i * 2, "c": "#ff0000"} for i in
                    range(2000)]),
        "z" * 60000,
    ]


async def _client(d, name, compression):
    return await websockets.connect(
        f"{d.ws_base}/chat?name={name}", compression=compression,
        max_size=None, ping_interval=None, open_timeout=T, close_timeout=2)


async def _send(ws, obj):
    await ws.send(json.dumps(obj))


async def _join_seen(ws, n):
    while n > 0:
        m = json.loads(await asyncio.wait_for(ws.recv(), T))
        if m.get("type") == "event" and m.get("event") == "join":
            n -= 1


async def _scenario(d, browser):
    texts = _messages()
    pub = await _client(d, "publisher", None)
    zipped = await _client(d, "zipped", "deflate")
    plain = await _client(d, "plain", None)
    assert "permessage-deflate" in \
        zipped.response_headers.get("Sec-WebSocket-Extensions", "")
    assert plain.response_headers.get("Sec-WebSocket-Extensions") is None
    await _send(pub, {"type": "command", "action": "create",
                      "target": CHANNEL})
    await _send(pub, {"type": "command", "action": "join",
                      "target": CHANNEL})
    await _join_seen(pub, 1)
    browser_proc = browser() if browser is not None else None
    try:
        for ws in (zipped, plain):
            await _send(ws, {"type": "command", "action": "join",
                             "target": CHANNEL})
        # The publisher sees every other member's join, the browser's too.
        await _join_seen(pub, 2 + (browser is not None))
        for t in texts:
            await _send(pub, {"type": "message", "target": CHANNEL,
                              "message": t})
        got = {}
        for name, ws in (("publisher", pub), ("zipped", zipped),
                         ("plain", plain)):
            msgs = []
            while len(msgs) < len(texts):
                raw = await asyncio.wait_for(ws.recv(), T)
                m = json.loads(raw)
                if m.get("type") == "message" and m.get("target") == CHANNEL:
                    msgs.append(raw)
            got[name] = msgs
        if browser is not None:
            while True:
                raw = await asyncio.wait_for(plain.recv(), T)
                m = json.loads(raw)
                if m.get("type") == "message" and \
                        str(m.get("message")).startswith("result:"):
                    got["chromium"] = json.loads(m["message"][7:])
                    break
        return texts, got
    finally:
        for ws in (pub, zipped, plain):
            await ws.close()
        if browser_proc is not None:
            browser_proc.kill()
            browser_proc.wait(timeout=10)


def _check(texts, got):
    assert [json.loads(r)["message"] for r in got["plain"]] == texts
    assert got["zipped"] == got["plain"]
    assert got["publisher"] == got["plain"]


@pytest.fixture
def deflate_site():
    root = tempfile.mkdtemp(prefix="roomd-deflate-")
    d = start_roomd(f"mount chat /chat\nhtdocs {root}\n"
                    "websocket_compression yes\n", workers=2)
    try:
        d.htdocs = root
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_python_clients_with_and_without_compression_get_the_same_frames(
        deflate_site):
    texts, got = run(_scenario(deflate_site, None), timeout=90)
    _check(texts, got)


def test_chromium_gets_the_same_messages_as_python_clients(deflate_site):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: the browser comparison needs "
                    "Chromium (Debian: chromium)")
    d = deflate_site
    texts = _messages()
    with open(os.path.join(d.htdocs, "deflate.html"), "w") as f:
        f.write(PAGE % {"want": len(texts), "name": json.dumps("chromium"),
                        "channel": json.dumps(CHANNEL)})
    profile = tempfile.mkdtemp(prefix="roomd-chromium-")

    def browser():
        return subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}",
             f"{d.base}/deflate.html"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    try:
        texts, got = run(_scenario(d, browser), timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    _check(texts, got)
    assert "permessage-deflate" in (got["chromium"]["extensions"] or ""), \
        got["chromium"]["extensions"]
    assert got["chromium"]["messages"] == got["plain"]


def test_a_channel_message_reaches_a_member_compressed_once_per_worker(
        deflate_site):
    """The shared frame's compressed variant: a raw member that negotiated
    compression gets the long messages with RSV1 set, and inflates them to
    the text the plain member got."""
    from test_conformance_deflate import DeflateClient

    d = deflate_site
    raw = DeflateClient(d, path="/chat?name=raw")
    try:
        assert raw.params is not None
        texts = _messages()

        async def publish():
            pub = await _client(d, "pub2", None)
            try:
                await _send(pub, {"type": "command", "action": "create",
                                  "target": CHANNEL})
                await _send(pub, {"type": "command", "action": "join",
                                  "target": CHANNEL})
                await _join_seen(pub, 1)
                raw.send(raw.message_frames(0x1, json.dumps(
                    {"type": "command", "action": "join",
                     "target": CHANNEL}).encode()))
                await _join_seen(pub, 1)
                for t in texts:
                    await _send(pub, {"type": "message", "target": CHANNEL,
                                      "message": t})
                got = []
                while len(got) < len(texts):
                    m = json.loads(await asyncio.wait_for(pub.recv(), T))
                    if m.get("type") == "message":
                        got.append(m["message"])
                return got
            finally:
                await pub.close()

        assert run(publish(), timeout=60) == texts
        seen = []
        while len(seen) < len(texts):
            ev = raw.events(1)
            assert ev and ev[0][0] == "message", ev
            m = json.loads(ev[0][2])
            if m.get("type") == "message":
                seen.append(m["message"])
        assert seen == texts
        assert raw.compressed >= 3, raw.compressed
    finally:
        raw.close()

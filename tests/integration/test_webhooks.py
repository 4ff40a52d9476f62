"""Webhooks (roomd-protocols(7), WEBHOOKS): rooms created and deleted,
members joined and left, in each dialect's meaning, POSTed as JSON signed
with HMAC-SHA256 over the timestamp and the body; retries with backoff;
what is dropped counted on /metrics and logged."""
import asyncio
import http.client
import json
import os
import subprocess
import time

import pytest

from conftest import (create_room, free_port, http_req, join_room, log_text,
                      poll, roomctl_path, run, stop_clean, ws_open, recv_json,
                      close_ws)
from fake_backend import FakeBackend, Refused, sign, verify

SECRET = "s3cret-for-tests"


@pytest.fixture
def backend():
    b = FakeBackend()
    yield b
    b.stop()


def hook_conf(b, extra=""):
    return (f"webhook {b.hook_url}\nwebhook_secret {SECRET}\n"
            f"metrics_listen 127.0.0.1:{free_port()}\n{extra}")


def metric(d, name):
    port = int(open(d.conf_path).read().split("metrics_listen 127.0.0.1:")[1]
               .split()[0])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    for line in text.splitlines():
        if line.startswith(f"roomd_{name} "):
            return int(line.split()[1])
    raise AssertionError(f"no roomd_{name} in /metrics:\n{text}")


def types(events, room=None):
    return [e["type"] for e in events if room is None or e["room"] == room]


def test_canvas_events_arrive_signed_and_in_order(roomd_factory, backend):
    d = roomd_factory(hook_conf(backend), workers=1)
    room = create_room(d, host="ann", room_id="wh-canvas")
    join_room(d, "wh-canvas", "bob")
    r = http_req(d, "DELETE", "/canvas/rooms/wh-canvas",
                 headers={"Authorization": f"Bearer {room['token']}"})
    assert r.status == 204
    ev = backend.wait_events(SECRET, lambda ev: "room.deleted" in
                             types(ev, "wh-canvas"))
    ev = [e for e in ev if e["room"] == "wh-canvas"]
    assert types(ev) == ["room.created", "member.joined", "member.joined",
                         "room.deleted"]
    assert ev[1]["member"]["name"] == "ann" and ev[1]["member"]["host"]
    assert ev[2]["member"]["name"] == "bob" and not ev[2]["member"]["host"]
    assert ev[3]["reason"] == "room deleted"
    for e in ev:
        assert e["dialect"] == "canvas"
        assert isinstance(e["time"], int) and abs(e["time"] - time.time()) < 60
        assert len(e["id"]) == 36
    assert len({e["id"] for e in ev}) == len(ev)
    w = backend.webhooks[0]
    assert w["headers"]["Content-Type"] == "application/json"
    assert w["headers"]["X-Roomd-Event"] == json.loads(w["body"])["type"]
    assert w["headers"]["X-Roomd-Delivery"] == json.loads(w["body"])["id"]
    stop_clean(d)


def test_a_verifier_refuses_a_forged_a_tampered_and_a_replayed_webhook(
        roomd_factory, backend):
    d = roomd_factory(hook_conf(backend), workers=1)
    create_room(d, host="ann", room_id="wh-verify")
    backend.wait_events(SECRET, lambda ev: "member.joined" in
                        types(ev, "wh-verify"))
    w = backend.webhooks[0]
    h, body = dict(w["headers"]), w["body"]
    # The signature is HMAC-SHA256(secret, timestamp "." body), in hex.
    assert h["X-Roomd-Signature"] == sign(SECRET, h["X-Roomd-Timestamp"],
                                          body)
    verify(SECRET, h, body)
    with pytest.raises(Refused):
        verify("another secret", h, body)
    with pytest.raises(Refused):
        verify(SECRET, h, body.replace(b"wh-verify", b"wh-forged"))
    # The same delivery played again ten minutes later: its timestamp is
    # signed, so it cannot be refreshed, and it is too old.
    with pytest.raises(Refused, match="replay"):
        verify(SECRET, h, body, now=int(h["X-Roomd-Timestamp"]) + 600)
    # Nor can the replayer put a fresh timestamp on it.
    fresh = dict(h, **{"X-Roomd-Timestamp":
                       str(int(h["X-Roomd-Timestamp"]) + 1)})
    with pytest.raises(Refused, match="signature"):
        verify(SECRET, fresh, body)
    stop_clean(d)


def test_a_failing_backend_gets_the_event_again_with_backoff(roomd_factory,
                                                             backend):
    backend.hook_policy = ("fail", 2)
    d = roomd_factory(hook_conf(backend, "webhook_retries 3\n"), workers=1)
    create_room(d, host="ann", room_id="wh-retry")
    ev = backend.wait_events(SECRET, lambda ev: "member.joined" in
                             types(ev, "wh-retry"), timeout=20)
    assert types(ev, "wh-retry") == ["room.created", "member.joined"]
    tries = [w for w in backend.webhooks
             if json.loads(w["body"])["type"] == "room.created"]
    assert [w["answered"] for w in tries] == ["500", "500", "ok"]
    # The same event (same id and body), each time signed anew; 1 s then
    # 2 s of backoff between the attempts.
    assert len({w["body"] for w in tries}) == 1
    gaps = [b["at"] - a["at"] for a, b in zip(tries, tries[1:])]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps
    assert metric(d, "webhooks_retried_total") == 2
    assert metric(d, "webhooks_dropped_total") == 0
    stop_clean(d)


def test_events_past_the_queue_or_the_retries_are_dropped_counted_and_logged(
        roomd_factory, backend):
    backend.hook_policy = "hang"
    d = roomd_factory(hook_conf(backend, "webhook_queue 2\nwebhook_retries 0\n"
                                "webhook_timeout 1\n"), workers=1)
    for i in range(5):
        create_room(d, host="ann", room_id=f"wh-drop{i}")
    # 10 events, 2 queue places: most dropped at once, the queued ones
    # after their single attempt times out.
    assert poll(lambda: metric(d, "webhooks_dropped_total") == 10, 15)
    assert metric(d, "webhooks_sent_total") == 0
    log = log_text(d)
    assert "event dropped: the queue is full" in log
    # Logged once per interval, not once per event.
    assert log.count("event dropped") <= 3, log
    # The room API kept answering meanwhile.
    assert http_req(d, "GET", "/canvas/rooms").status == 200
    stop_clean(d)


def test_chat_events_are_channels_and_their_participants(roomd_factory,
                                                         backend):
    d = roomd_factory(hook_conf(backend), workers=2)

    async def go():
        a = await ws_open(f"{d.ws_base}/chat?name=alice")
        b = await ws_open(f"{d.ws_base}/chat?name=bob")
        await a.send(json.dumps({"type": "command", "action": "create",
                                 "target": "#lounge"}))
        await recv_json(a)
        for ws in (a, b):
            await ws.send(json.dumps({"type": "command", "action": "join",
                                      "target": "#lounge"}))
        await asyncio.sleep(0.3)
        await b.send(json.dumps({"type": "command", "action": "leave",
                                 "target": "#lounge"}))
        await asyncio.sleep(0.3)
        await close_ws(a)
        await close_ws(b)

    run(go())
    ev = backend.wait_events(SECRET, lambda ev: types(ev, "#lounge").count(
        "member.left") == 2)
    ev = [e for e in ev if e["room"] == "#lounge"]
    assert types(ev)[0] == "room.created"
    joined = [e["member"]["name"] for e in ev if e["type"] == "member.joined"]
    left = [(e["member"]["name"], e["reason"]) for e in ev
            if e["type"] == "member.left"]
    assert sorted(joined) == ["alice", "bob"]
    assert sorted(left) == [("alice", "disconnected"), ("bob", "left")]
    # The chat's own server room is not one of its rooms to its users.
    assert all(e["room"].startswith("#") for e in backend.events(SECRET))
    stop_clean(d)


def test_the_master_hands_its_events_to_a_worker(roomd_factory, backend):
    """roomctl close deletes a room in the master, which has no event loop
    to send from: a worker sends the event for it."""
    d = roomd_factory(hook_conf(backend), workers=2)
    create_room(d, host="ann", room_id="wh-admin")
    p = subprocess.run([roomctl_path(), "-s", d.control_socket, "close",
                        "wh-admin"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 0, p.stderr
    ev = backend.wait_events(SECRET, lambda ev: "room.deleted" in
                             types(ev, "wh-admin"))
    gone = [e for e in ev if e["type"] == "room.deleted"]
    assert gone[0]["reason"] == "closed by the administrator"
    stop_clean(d)


def test_a_webhook_needs_a_secret_and_a_safe_url():
    from conftest import roomd_t
    rc, out, _ = roomd_t("webhook http://127.0.0.1:9/hook\n")
    assert rc != 0 and "webhook_secret" in out
    rc, out, _ = roomd_t("webhook http://example.com/hook\n"
                         "webhook_secret x\n")
    assert rc != 0 and "loopback" in out
    rc, out, _ = roomd_t("webhook https://example.com/hook\n"
                         "webhook_secret x\nwebhook_queue 0\n")
    assert rc != 0
    rc, out, _ = roomd_t("webhook https://example.com/hook\n"
                         "webhook_secret x\n")
    assert rc == 0, out

"""chat.html end to end in Chromium.

Alice, Bob and Carol enter under their names; Alice creates #room, all
three join, messages appear on every page with their sender's name; a
private message from Alice reaches Bob (and Alice) but not Carol; errors
are shown in words (channel_exists, no_such_user, name_taken); leaving and
destroying are told in the event log.  A dropped connection comes back and
misses nothing."""
import re
import time

import pytest

from chat_page import enter, shown_messages, wait_chat_state, wait_message
from conftest import Proxy, start_roomd


@pytest.fixture(scope="module")
def d():
    d = start_roomd()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def proxy(d):
    p = Proxy(d.port)
    yield p
    p.close()


def test_channels_messages_with_names_private_messages_and_errors(d, session):
    s = session("chat")
    alice = s.person("alice", [d.base])
    bob = s.person("bob", [d.base])
    carol = s.person("carol", [d.base])
    everyone = (alice, bob, carol)

    alice.goto(d.base + "/chat.html")
    assert re.search("as a guest", alice.text("#signin"))
    alice.shot("signin-form")
    enter(alice, d.base, "alice")
    enter(bob, d.base, "bob")
    enter(carol, d.base, "carol")
    for p in everyone:
        wait_chat_state(p, "connected")
        assert p.text("#conn-state") == "connected"
        assert re.search("guest", p.text(".who"))

    # Alice creates #room: everybody is told.
    alice.fill("#channel-name", "room")
    alice.click("#channel-create")
    for p in everyone:
        p.wait_text("#log", "#room was created.")

    # All three join: Alice with the form, the others from the list of
    # channels heard of.
    alice.click("#channel-join")
    alice.wait_for('#channel-list li[data-name="#room"]')
    for p in (bob, carol):
        p.click('#other-list li[data-name="#room"] button.join')
        p.wait_for('#channel-list li[data-name="#room"]')
    alice.wait_text("#log", "bob joined #room.")
    alice.wait_text("#log", "carol joined #room.")
    for p in everyone:
        assert p.text("#conv-title") == "#room"

    # Messages reach every participant, with names.
    alice.fill("#message-input", "hello from alice")
    alice.press_enter("#message-input")
    bob.fill("#message-input", "hi alice, bob here")
    bob.click("#message-send")
    for p in everyone:
        wait_message(p, "alice: hello from alice")
        wait_message(p, "bob: hi alice, bob here")
    alice.shot("alice-channel-messages")
    carol.shot("carol-channel-messages")

    # A private message reaches Bob only (and comes back to Alice, its
    # sender).
    alice.fill("#private-name", "@bob")
    alice.click("#private-open")
    assert alice.text("#conv-title") == "Private with @bob"
    alice.fill("#message-input", "psst, bob only")
    alice.press_enter("#message-input")
    wait_message(alice, "alice: psst, bob only")
    from_alice = '#private-list li[data-name="@alice"]'
    bob.wait_for(from_alice)
    assert bob.text(from_alice + " .unread") == "1"
    bob.shot("bob-private-unread")
    bob.click(from_alice + " button.conv")
    wait_message(bob, "alice: psst, bob only")
    bob.shot("bob-private-message")
    # Carol, in the same channel, never sees it.
    time.sleep(0.5)
    assert carol.count("#private-list li") == 0, \
        "carol has a private conversation"
    assert "psst" not in carol.evaluate("return document.body.innerText"), \
        "carol's page shows the private message"
    carol.shot("carol-without-private-message")

    # Errors in words: a channel that exists, a user that does not.
    bob.fill("#channel-name", "#room")
    bob.click("#channel-create")
    shown = bob.wait_text("#error", "channel_exists")
    assert re.search("exists", shown)
    bob.wait_text("#log", "channel_exists")
    bob.fill("#private-name", "nobody")
    bob.click("#private-open")
    bob.fill("#message-input", "anyone there?")
    bob.press_enter("#message-input")
    bob.wait_text("#error", "no_such_user")
    bob.shot("bob-errors-shown")

    # A name in use is refused in words.
    dave = s.person("dave", [d.base])
    enter(dave, d.base, "alice")
    shown = dave.wait_text("#error", "name_taken")
    assert re.search("taken", shown)
    dave.wait_for("#signin")
    wait_chat_state(dave, "disconnected")
    dave.shot("name-taken-shown")

    # Carol leaves; Alice is told.
    carol.click('#channel-list li[data-name="#room"] button.leave')
    alice.wait_text("#log", "carol left #room.")
    assert carol.count('#channel-list li[data-name="#room"]') == 0

    # Alice, its creator, destroys #room; all are told.
    alice.click('#channel-list li[data-name="#room"] button.destroy')
    for p in everyone:
        p.wait_text("#log", "#room was destroyed.")
    assert bob.count('#channel-list li[data-name="#room"]') == 0
    alice.shot("alice-room-destroyed")


def test_a_dropped_chat_connection_comes_back_and_misses_nothing(d, proxy,
                                                                 session):
    s = session("chat-reconnect")
    ann = s.person("ann", [d.base])
    ben = s.person("ben", [proxy.base])
    enter(ann, d.base, "ann")
    enter(ben, proxy.base, "ben")
    wait_chat_state(ann, "connected")
    wait_chat_state(ben, "connected")
    ann.fill("#channel-name", "#lobby")
    ann.click("#channel-create")
    ben.wait_text("#log", "#lobby was created.")
    ann.click("#channel-join")
    ann.wait_for('#channel-list li[data-name="#lobby"]')
    ben.fill("#channel-name", "#lobby")
    ben.click("#channel-join")
    ann.wait_text("#log", "ben joined #lobby.")
    ann.fill("#message-input", "before the cut")
    ann.press_enter("#message-input")
    wait_message(ben, "ann: before the cut")

    # Ben's connection is cut, and new ones refused.
    reqs_before = len(proxy.requests)
    proxy.block()
    proxy.cut()
    wait_chat_state(ben, "reconnecting")
    assert ben.text("#conn-state") == "reconnecting"
    ben.shot("ben-reconnecting")
    ann.wait_text("#log", "ben left #lobby.")
    ann.fill("#message-input", "while ben was away")
    ann.press_enter("#message-input")
    wait_message(ann, "ann: while ben was away")

    # He comes back by himself, rejoins, and gets what he missed, once.
    proxy.unblock()
    wait_chat_state(ben, "connected")
    wait_message(ben, "ann: while ben was away")
    ann.wait_text("#log", re.compile(
        r"ben joined #lobby\.[\s\S]*ben joined #lobby\."))
    ann.fill("#message-input", "welcome back")
    ann.press_enter("#message-input")
    wait_message(ben, "ann: welcome back")
    assert shown_messages(ben) == ["ann: before the cut",
                                   "ann: while ben was away",
                                   "ann: welcome back"]
    again = proxy.requests[reqs_before:]
    assert any(r.startswith("GET /chat?name=ben") for r in again), \
        f"no reconnection seen: {again}"
    ben.shot("ben-back-nothing-missed")

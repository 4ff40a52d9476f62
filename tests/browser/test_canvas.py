"""The room list and the shared canvas, end to end in Chromium.

Alice creates a room from index.html; Bob joins it through the join form
(through a relay that the test can cut); both draw on what the server sends
back, so their boards must hold the same pixels.  Carol joins late and gets
the whole picture.  Bob's connection is cut: his page says it is
reconnecting, comes back by itself with pointer=LAST and catches up on
what Alice drew meanwhile.  Alice deletes the room and the others are
told.  A finger draws too."""
import re
import urllib.parse

import pytest

from canvas_page import (at, board_box, board_png, differing_pixels,
                         draw_stroke, inked_pixels, state, wait_idle,
                         wait_received, wait_state)
from conftest import WAIT, Proxy, http, start_roomd


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


def same_boards(reference, others):
    """Every page shows the same pixels as reference."""
    want = board_png(reference)
    for o in others:
        if board_png(o) != want:
            n = differing_pixels(reference, o)
            pytest.fail(f"{o.label}'s board differs from "
                        f"{reference.label}'s in {n} pixels")
    return want


def all_caught_up(people):
    """Until every page has drawn the whole log: as many actions as all
    pages sent."""
    for p in people:
        wait_idle(p)
    total = sum(state(p)["sent"] for p in people)
    for p in people:
        wait_received(p, total)
    return total


def room_of(page):
    q = urllib.parse.urlsplit(page.url).query
    return urllib.parse.parse_qs(q).get("room", [None])[0]


def test_two_people_draw_together_a_late_joiner_and_a_reconnect_catch_up_the_host_deletes_the_room(d, proxy, session):
    s = session("canvas")
    direct = [d.base]
    alice = s.person("alice", direct)
    # Bob goes through the relay, so that it can be cut.
    bob = s.person("bob", [proxy.base])

    # Alice creates a room from the list page.
    alice.goto(d.base + "/index.html")
    alice.wait_text("#rooms-status", re.compile("room"))
    alice.shot("alice-index")
    alice.fill("#create-name", "alice")
    alice.click("#create-button")
    alice.wait_url(r"/canvas\.html\?room=")
    room = room_of(alice)
    assert room, "no room id in the canvas URL"
    wait_state(alice, "connected")
    assert alice.text("#conn-state") == "connected"
    assert alice.text("#room-id") == room
    assert alice.is_visible("#delete-room"), "the host has no Delete button"
    alice.shot("alice-canvas-connected")

    # Bob sees the room in the list and joins it.
    bob.goto(proxy.base + "/index.html")
    row = f'#rooms-body tr[data-room-id="{room}"]'
    bob.wait_for(row)
    assert bob.text(row + " .room-host") == "alice"
    assert bob.text(row + " .room-guests") == "0"
    bob.shot("bob-index-lists-room")
    bob.click(row + " button.join-this")
    assert bob.input_value("#join-room") == room
    bob.fill("#join-name", "bob")
    bob.click("#join-button")
    bob.wait_url(r"/canvas\.html\?room=")
    wait_state(bob, "connected")
    assert not bob.is_visible("#delete-room"), "a guest has a Delete button"
    assert bob.evaluate("return !!sessionStorage.getItem("
                        "'roomd.canvas.' + arguments[0])", room) is True, \
        "no token in sessionStorage"

    # Alice draws a stroke; Bob's board shows it.
    draw_stroke(alice, [(100, 100), (250, 180), (400, 120), (520, 300),
                        (650, 260)])
    n1 = all_caught_up([alice, bob])
    assert n1 >= 5, f"only {n1} actions for a stroke"
    assert inked_pixels(alice) > 500, "alice's board is blank after her stroke"
    same_boards(alice, [bob])
    alice.shot("alice-after-stroke")
    bob.shot("bob-sees-stroke")

    # Bob draws too, in another colour.
    bob.click("#palette .swatch:nth-child(2)")
    draw_stroke(bob, [(120, 400), (300, 350), (480, 450)])
    all_caught_up([alice, bob])
    same_boards(alice, [bob])

    # Carol joins late (typing the room id) and gets the whole picture.
    carol = s.person("carol", direct)
    carol.goto(d.base + "/")
    carol.fill("#join-room", room)
    carol.fill("#join-name", "carol")
    carol.click("#join-button")
    carol.wait_url(r"/canvas\.html\?room=")
    wait_state(carol, "connected")
    all_caught_up([alice, bob, carol])
    assert state(carol)["sent"] == 0
    same_boards(alice, [bob, carol])
    carol.shot("carol-late-joiner-same-picture")

    # Bob's connection is cut hard, and new ones refused.
    before = state(bob)
    reqs_before = len(proxy.requests)
    proxy.block()
    proxy.cut()
    wait_state(bob, "reconnecting")
    assert bob.text("#conn-state") == "reconnecting"
    bob.shot("bob-cut-reconnecting")

    # Alice draws meanwhile; Carol sees it, Bob cannot.
    draw_stroke(alice, [(600, 60), (700, 200), (760, 420)])
    wait_idle(alice)
    total = state(alice)["sent"] + state(bob)["sent"]
    wait_received(carol, total)
    wait_received(alice, total)
    cut = state(bob)
    assert cut["received"] == before["received"], \
        "bob received something while cut off"
    assert cut["state"] == "reconnecting"
    same_boards(alice, [carol])
    assert board_png(bob) != board_png(alice), \
        "bob's board changed while cut off"

    # The relay lets him through again: he comes back by himself, from
    # where he stopped.
    proxy.unblock()
    wait_state(bob, "connected", 15)
    wait_received(bob, total)
    back = state(bob)
    assert back["received"] == total, \
        f"bob drew {back['received']} actions, the log has {total}"
    same_boards(alice, [bob, carol])
    ws = [r for r in proxy.requests[reqs_before:] if "/ws?" in r]
    assert ws, f"bob never reconnected through the relay: {proxy.requests}"
    assert any(f"&pointer={before['pointer']}" in r for r in ws), \
        f"bob did not resume with pointer={before['pointer']}: {ws}"
    bob.shot("bob-reconnected-caught-up")

    # Alice deletes the room; Bob and Carol are told.
    alice.click("#delete-room")
    alice.click("#delete-yes")
    for p in (alice, bob, carol):
        wait_state(p, "deleted")
        assert p.text("#conn-state") == "room deleted"
        assert re.search("room deleted", p.text("#notice"))
    bob.shot("bob-room-deleted")
    carol.shot("carol-room-deleted")
    rooms = http(d, "GET", "/canvas/rooms").json
    assert not any(r["roomId"] == room for r in rooms), \
        "the deleted room is still listed"


def test_a_finger_draws_too_a_drag_and_a_tap_on_a_touch_screen(d, session):
    s = session("touch")
    page = s.person("tablet", [d.base], touch=True, size=(800, 900))
    page.goto(d.base + "/index.html")
    page.fill("#create-name", "tess")
    page.click("#create-button")
    page.wait_url(r"/canvas\.html\?room=")
    wait_state(page, "connected")

    box = board_box(page, scroll=False)

    def touch(kind, points):
        page.cdp("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": x, "y": y} for x, y in points]})

    touch("touchStart", [at(box, 100, 250)])
    for i in range(1, 11):
        touch("touchMove", [at(box, 100 + 50 * i, 250 + 10 * i)])
    touch("touchEnd", [])
    # A tap: a touch that starts and ends at one point.
    touch("touchStart", [at(box, 700, 100)])
    touch("touchEnd", [])

    wait_idle(page)
    st = state(page)
    assert st["sent"] >= 12, f"only {st['sent']} actions sent"
    wait_received(page, st["sent"])
    assert inked_pixels(page) > 500, \
        "the board is blank after a finger drew on it"
    dot = page.evaluate("return Array.from(document.getElementById('board')"
                        ".getContext('2d').getImageData(700, 100, 1, 1)"
                        ".data);")
    assert dot != [255, 255, 255, 255], "the tap left no dot"
    assert page.evaluate("return window.scrollY") == 0, \
        "the drag scrolled the page"
    page.shot("finger-drawing")

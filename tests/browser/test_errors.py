"""The server's errors are shown in words on the page, not only in the
console: a wrong password, a name taken, a room that does not exist
(index.html), and a token the server refuses on the drawing WebSocket
(canvas.html).  Each message shown must be the one the server sends for
the same request, with its code."""
import re
import urllib.parse

import pytest

from canvas_page import wait_state
from conftest import http, start_roomd


@pytest.fixture(scope="module")
def d():
    d = start_roomd()
    yield d
    d.stop()


def join_and_read_error(page, room, name, password):
    """The join form, filled and sent; the error shown."""
    page.evaluate("const e = document.getElementById('error');"
                  "e.hidden = true; e.textContent = '';")
    page.fill("#join-room", room)
    page.fill("#join-name", name)
    page.fill("#join-password", password)
    page.click("#join-button")
    return page.text("#error")


def server_says(d, room, name, password):
    """What the server answers to the same join, asked by the test."""
    r = http(d, "POST", f"/canvas/rooms/{room}/join",
             {"name": name, "password": password})
    assert r.json and isinstance(r.json.get("error"), str), \
        f"the server did not refuse: {r!r}"
    return r.json


def test_join_errors_and_refused_tokens_are_shown_in_words(d, session):
    s = session("errors")
    host = s.person("host", [d.base])
    guest = s.person("guest", [d.base])

    # The host makes a locked room.
    host.goto(d.base + "/index.html")
    host.fill("#create-name", "alice")
    host.fill("#create-password", "s3cret")
    host.click("#create-button")
    host.wait_url(r"/canvas\.html\?room=")
    room = urllib.parse.parse_qs(urllib.parse.urlsplit(host.url).query)[
        "room"][0]
    wait_state(host, "connected")

    # The guest sees it locked in the list.
    guest.goto(d.base + "/index.html")
    row = f'#rooms-body tr[data-room-id="{room}"]'
    guest.wait_for(row)
    assert guest.text(row + " .lock-text") == "locked"
    guest.click(row + " button.join-this")
    assert re.search("locked", guest.text("#join-password-hint"))
    guest.shot("locked-room-listed")

    # A wrong password.
    wrong = server_says(d, room, "bob", "nope")
    assert wrong["error"] == "wrong_password"
    shown = join_and_read_error(guest, room, "bob", "nope")
    assert wrong["message"] in shown, \
        f"{shown!r} lacks the server's {wrong['message']!r}"
    assert "wrong_password" in shown, shown
    assert re.search(r"index\.html$", guest.url)
    guest.shot("wrong-password-shown")

    # A name taken (the host's).
    taken = server_says(d, room, "alice", "s3cret")
    assert taken["error"] == "name_taken"
    shown = join_and_read_error(guest, room, "alice", "s3cret")
    assert taken["message"] in shown, \
        f"{shown!r} lacks the server's {taken['message']!r}"
    assert "name_taken" in shown, shown
    guest.shot("name-taken-shown")

    # A room that does not exist.
    none = server_says(d, "no-such-room-here", "bob", "")
    assert none["error"] == "no_such_room"
    shown = join_and_read_error(guest, "no-such-room-here", "bob", "")
    assert none["message"] in shown, shown
    assert "no_such_room" in shown, shown
    guest.shot("no-such-room-shown")

    # The right password lets the guest in.
    guest.fill("#join-room", room)
    guest.fill("#join-name", "bob")
    guest.fill("#join-password", "s3cret")
    guest.click("#join-button")
    guest.wait_url(r"/canvas\.html\?room=")
    wait_state(guest, "connected")
    assert not guest.is_visible("#error")

    # A token the server does not know: the socket's error is shown in
    # words and the page does not retry.
    guest.evaluate("sessionStorage.setItem('roomd.canvas.' + arguments[0], "
                   "JSON.stringify({token: 'f'.repeat(32), name: 'mallory',"
                   " host: false}));", room)
    guest.reload()
    wait_state(guest, "disconnected")
    shown = guest.wait_text("#error", "bad_token")
    assert re.search("bad_token", shown)
    guest.shot("bad-token-shown")

    # Without any token for the room in this tab.
    stranger = s.person("stranger", [d.base])
    stranger.goto(d.base + "/canvas.html?room=" + urllib.parse.quote(room))
    assert re.search("not joined this room", stranger.text("#error"))
    stranger.shot("no-token-shown")

"""A WebRTC data channel opened through roomd's lobby by two Chromium
pages that speak groovejet as its later code does, the generation
pearl-multiplayer-socket (the client groovejet was written for) speaks: a
bare connection waits for identity; the host sends createRoom and waits
for createdRoom; the guest sends joinRoom, waits for joinedRoom, then
sends its offer; the host answers.  Each waits for the one type it wants
and ignores the others, as that client does, so this fails on a roomd
that sends only roomCreated and roomJoined.  The client code is this
file's own."""
import re

import pytest

from conftest import WAIT, start_roomd

# In the page: window.lobby(url) -> a connection whose next(type) resolves
# with the data of the next message of that type (rejects on an error
# message) and whose other messages go to onOther; and window.gathered(pc),
# the local description once ICE gathering is over (the signals carry
# every candidate, no trickling).
CLIENT = """
window.lobby = (url) => {
    const ws = new WebSocket(url);
    const c = { ws, waiter: null, onOther: () => {} };
    ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        const w = c.waiter;
        if (w && (m.type === w.type || m.type === 'error')) {
            c.waiter = null;
            if (m.type === 'error')
                w.reject(new Error(m.errorType));
            else
                w.resolve(m.data);
        } else
            c.onOther(m);
    };
    c.next = (type) => new Promise((resolve, reject) => {
        c.waiter = { type, resolve, reject };
    });
    c.send = (o) => ws.send(JSON.stringify(o));
    return c;
};
window.gathered = (pc) => new Promise((resolve) => {
    const done = () => pc.iceGatheringState === 'complete' &&
        resolve(pc.localDescription);
    pc.addEventListener('icegatheringstatechange', done);
    done();
});
"""

# The host: creates a room; answers each offer, and echoes what its data
# channel receives.  Resolves to the room code.
HOST = """
const url = arguments[0];
return (async () => {
    const host = window.lobby(url);
    await host.next('identity');
    host.send({ type: 'createRoom' });
    const { roomCode } = await host.next('createdRoom');
    window.received = [];
    host.onOther = async (m) => {
        if (m.type !== 'guestOfferSignal')
            return;
        const pc = new RTCPeerConnection();
        pc.ondatachannel = (ev) => {
            ev.channel.onmessage = (x) => {
                window.received.push(x.data);
                ev.channel.send('echo:' + x.data);
            };
        };
        await pc.setRemoteDescription(m.data.offerSignal);
        await pc.setLocalDescription(await pc.createAnswer());
        host.send({ type: 'hostAnswerSignal', data: {
            answerSignal: await window.gathered(pc),
            clientId: m.data.clientId } });
    };
    return roomCode;
})();
"""

# The guest: joins, offers, and sends one message over the data channel
# once it is open.  Resolves to { joined, echo }.
GUEST = """
const [url, roomCode] = arguments;
return (async () => {
    const guest = window.lobby(url);
    await guest.next('identity');
    guest.send({ type: 'joinRoom', data: { roomCode } });
    const joined = await guest.next('joinedRoom');
    const pc = new RTCPeerConnection();
    const dc = pc.createDataChannel('reliable');
    const echo = new Promise((resolve) => {
        dc.onmessage = (x) => resolve(x.data);
    });
    dc.onopen = () => dc.send('hello through roomd');
    await pc.setLocalDescription(await pc.createOffer());
    const answer = guest.next('hostAnswerSignal');
    guest.send({ type: 'guestOfferSignal',
        data: { offerSignal: await window.gathered(pc) } });
    await pc.setRemoteDescription((await answer).answerSignal);
    return { joined, echo: await echo };
})();
"""


@pytest.fixture(scope="module")
def d():
    d = start_roomd()
    yield d
    d.stop()


def within(page, seconds, what, script, *args):
    """A promise from a page (WebDriver waits for it), or a failure after
    seconds."""
    page.driver.set_script_timeout(seconds)
    try:
        return page.evaluate(script, *args)
    except Exception as e:
        raise AssertionError(f"{what}: nothing within {seconds} s ({e})")
    finally:
        page.driver.set_script_timeout(WAIT)


def test_two_pages_open_a_webrtc_data_channel_through_the_lobby_as_groovejets_later_client_does(d, session):
    s = session("pearl")
    url = f"ws://127.0.0.1:{d.port}/lobby"
    hp = s.person("host", [d.base])
    gp = s.person("guest", [d.base])
    for p in (hp, gp):
        p.goto(d.base + "/")
        p.evaluate(CLIENT)
    code = within(hp, WAIT, "createRoom (the host waits for createdRoom)",
                  HOST, url)
    assert re.fullmatch(r"[0-9a-z]{5}", code), code
    got = within(gp, 2 * WAIT, "joinRoom and the data channel", GUEST, url,
                 code)
    assert got == {"joined": {"isHost": False},
                   "echo": "echo:hello through roomd"}
    hp.wait_js("return window.received.length === 1",
               what="the host's data channel got one message")
    assert hp.evaluate("return window.received") == ["hello through roomd"]

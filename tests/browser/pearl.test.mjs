/*
 * pearl.test.mjs: a WebRTC data channel opened through roomd's lobby by
 * two Chromium pages that speak groovejet as its later code does, the
 * generation pearl-multiplayer-socket (the client groovejet was written
 * for) speaks: a bare connection waits for identity; the host sends
 * createRoom and waits for createdRoom; the guest sends joinRoom, waits
 * for joinedRoom, then sends its offer; the host answers.  Each waits for
 * the one type it wants and ignores the others, as that client does, so
 * this fails on a roomd that sends only roomCreated and roomJoined.
 * The client code is this file's own.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Session, WAIT, launchBrowser, startRoomd, steps } from
    './lib/harness.mjs';

let d, browser;

before(async () => {
	d = await startRoomd();
	browser = await launchBrowser();
});

after(async () => {
	if (browser)
		await browser.close().catch(() => {});
	if (d)
		await d.stop();
});

/*
 * In the page: window.lobby(url) -> a connection whose next(type)
 * resolves with the data of the next message of that type (rejects on an
 * error message) and whose other messages go to onOther; and
 * window.gathered(pc), the local description once ICE gathering is over
 * (the signals carry every candidate, no trickling).
 */
function installClient() {
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
}

/* The host: creates a room; answers each offer, and echoes what its data
 * channel receives.  Resolves to the room code. */
function hostSide(url) {
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
}

/* The guest: joins, offers, and sends one message over the data channel
 * once it is open.  Resolves to { joined, echo }. */
function guestSide([url, roomCode]) {
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
}

/* A promise from a page, or a failure after ms: page.evaluate itself
 * waits as long as the page does. */
function within(ms, what, promise) {
	let timer;
	return Promise.race([promise, new Promise((resolve, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: nothing ` +
		    `within ${ms} ms`)), ms);
	})]).finally(() => clearTimeout(timer));
}

test('two pages open a WebRTC data channel through the lobby as ' +
    'groovejet\'s later client does', async () => {
	const s = new Session(browser, 'pearl');
	const origin = d.base;
	const url = `ws://127.0.0.1:${d.port}/lobby`;
	try {
		await steps(s, d, async () => {
			const hp = await s.person('host', [origin]);
			const gp = await s.person('guest', [origin]);
			for (const p of [hp, gp]) {
				await p.goto(`${origin}/`);
				await p.evaluate(installClient);
			}
			const code = await within(WAIT, 'createRoom ' +
			    '(the host waits for createdRoom)',
			    hp.evaluate(hostSide, url));
			assert.match(code, /^[0-9a-z]{5}$/);
			const got = await within(2 * WAIT, 'joinRoom and ' +
			    'the data channel', gp.evaluate(guestSide,
			    [url, code]));
			assert.deepEqual(got, { joined: { isHost: false },
			    echo: 'echo:hello through roomd' });
			await hp.waitForFunction(() =>
			    window.received.length === 1, null,
			    { timeout: WAIT });
			assert.deepEqual(await hp.evaluate(() =>
			    window.received), ['hello through roomd']);
		});
	} finally {
		await s.close();
	}
});

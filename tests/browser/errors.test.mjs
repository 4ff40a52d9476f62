/*
 * errors.test.mjs: the server's errors are shown in words on the page, not
 * only in the console: a wrong password, a name taken, a room that does not
 * exist (index.html), and a token the server refuses on the drawing
 * WebSocket (canvas.html).  Each message shown must be the one the server
 * sends for the same request, with its code.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { waitState } from './lib/canvas.mjs';
import { Session, http, launchBrowser, startRoomd, steps, visibleText,
    waitText } from './lib/harness.mjs';

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

/* The join form, filled and sent; resolves to the error shown. */
async function joinAndReadError(page, roomId, name, password) {
	await page.evaluate(() => {
		const e = document.getElementById('error');
		e.hidden = true;
		e.textContent = '';
	});
	await page.fill('#join-room', roomId);
	await page.fill('#join-name', name);
	await page.fill('#join-password', password);
	await page.click('#join-button');
	return visibleText(page, '#error');
}

/* What the server answers to the same join, from the test itself. */
async function serverSays(roomId, name, password) {
	const r = await http(d, 'POST', `/canvas/rooms/${roomId}/join`,
	    { name, password });
	assert.ok(r.json && typeof r.json.error === 'string',
	    `the server did not refuse: ${r.status} ${r.text}`);
	return r.json;
}

test('join errors and refused tokens are shown in words',
    { timeout: 60000 }, async () => {
	const s = new Session(browser, 'errors');
	try {
		await steps(s, d, async () => {
			const host = await s.person('host', [d.base]);
			const guest = await s.person('guest', [d.base]);

			/* The host makes a locked room. */
			await host.goto(d.base + '/index.html');
			await host.fill('#create-name', 'alice');
			await host.fill('#create-password', 's3cret');
			await host.click('#create-button');
			await host.waitForURL(/\/canvas\.html\?room=/);
			const roomId = new URL(host.url()).searchParams
			    .get('room');
			await waitState(host, 'connected');

			/* The guest sees it locked in the list. */
			await guest.goto(d.base + '/index.html');
			const row = guest.locator(
			    `#rooms-body tr[data-room-id="${roomId}"]`);
			await row.waitFor();
			assert.equal((await row.locator('.lock-text')
			    .textContent()).trim(), 'locked');
			await row.locator('button.join-this').click();
			assert.match(await visibleText(guest,
			    '#join-password-hint'), /locked/);
			await s.shot(guest, 'locked-room-listed');

			/* A wrong password. */
			const wrong = await serverSays(roomId, 'bob', 'nope');
			assert.equal(wrong.error, 'wrong_password');
			let shown = await joinAndReadError(guest, roomId, 'bob',
			    'nope');
			assert.ok(shown.includes(wrong.message),
			    `"${shown}" lacks the server's "${wrong.message}"`);
			assert.ok(shown.includes('wrong_password'), shown);
			assert.match(guest.url(), /index\.html$/);
			await s.shot(guest, 'wrong-password-shown');

			/* A name taken (the host's). */
			const taken = await serverSays(roomId, 'alice', 's3cret');
			assert.equal(taken.error, 'name_taken');
			shown = await joinAndReadError(guest, roomId, 'alice',
			    's3cret');
			assert.ok(shown.includes(taken.message),
			    `"${shown}" lacks the server's "${taken.message}"`);
			assert.ok(shown.includes('name_taken'), shown);
			await s.shot(guest, 'name-taken-shown');

			/* A room that does not exist. */
			const none = await serverSays('no-such-room-here', 'bob',
			    '');
			assert.equal(none.error, 'no_such_room');
			shown = await joinAndReadError(guest, 'no-such-room-here',
			    'bob', '');
			assert.ok(shown.includes(none.message), shown);
			assert.ok(shown.includes('no_such_room'), shown);
			await s.shot(guest, 'no-such-room-shown');

			/* The right password lets the guest in. */
			await guest.fill('#join-room', roomId);
			await guest.fill('#join-name', 'bob');
			await guest.fill('#join-password', 's3cret');
			await guest.click('#join-button');
			await guest.waitForURL(/\/canvas\.html\?room=/);
			await waitState(guest, 'connected');
			assert.ok(await guest.locator('#error').isHidden());

			/* A token the server does not know: the socket's error
			 * is shown in words and the page does not retry. */
			await guest.evaluate((id) => sessionStorage.setItem(
			    'roomd.canvas.' + id, JSON.stringify({
			    token: 'f'.repeat(32), name: 'mallory',
			    host: false })), roomId);
			await guest.reload();
			await waitState(guest, 'disconnected');
			shown = await waitText(guest, '#error', 'bad_token');
			assert.match(shown, /bad_token/);
			await s.shot(guest, 'bad-token-shown');

			/* Without any token for the room in this tab. */
			const stranger = await s.person('stranger', [d.base]);
			await stranger.goto(d.base + '/canvas.html?room=' +
			    encodeURIComponent(roomId));
			assert.match(await visibleText(stranger, '#error'),
			    /not joined this room/);
			await s.shot(stranger, 'no-token-shown');
		});
	} finally {
		await s.close();
	}
});

/*
 * canvas.test.mjs: the room list and the shared canvas, end to end in
 * Chromium.  Alice creates a room from index.html; Bob joins it through the
 * join form (through a relay that the test can cut); both draw on what the
 * server sends back, so their boards must hold the same pixels.  Carol
 * joins late and gets the whole picture.  Bob's connection is cut: his page
 * says it is reconnecting, comes back by itself with pointer=LAST and
 * catches up on what Alice drew meanwhile.  Alice deletes the room and the
 * others are told.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { boardPNG, differingPixels, drawStroke, inkedPixels, canvasState,
    waitIdle, waitReceived, waitState } from './lib/canvas.mjs';
import { Session, WAIT, http, launchBrowser, startRoomd, steps, waitText,
    visibleText } from './lib/harness.mjs';
import { startProxy } from './lib/proxy.mjs';

let d, proxy, browser;

before(async () => {
	d = await startRoomd();
	proxy = await startProxy(d.port);
	browser = await launchBrowser();
});

after(async () => {
	if (browser)
		await browser.close().catch(() => {});
	if (proxy)
		await proxy.close().catch(() => {});
	if (d)
		await d.stop();
});

/* Every page shows the same pixels, and not a blank board. */
async function sameBoards(reference, others) {
	const want = await boardPNG(reference.page);
	for (const o of others) {
		const got = await boardPNG(o.page);
		if (got !== want) {
			const n = await differingPixels(reference.page, o.page);
			assert.fail(`${o.label}'s board differs from ` +
			    `${reference.label}'s in ${n} pixels`);
		}
	}
	return want;
}

/* Wait until every page has drawn the whole log: as many actions as all
 * pages sent. */
async function allCaughtUp(people) {
	for (const p of people)
		await waitIdle(p.page);
	let total = 0;
	for (const p of people)
		total += (await canvasState(p.page)).sent;
	for (const p of people)
		await waitReceived(p.page, total);
	return total;
}

test('two people draw together, a late joiner and a reconnect catch up, ' +
    'the host deletes the room', { timeout: 90000 }, async () => {
	const s = new Session(browser, 'canvas');
	try {
		await steps(s, d, async () => {
			const direct = [d.base];
			const alice = { label: 'alice',
			    page: await s.person('alice', direct) };
			/* Bob goes through the relay, so that it can be cut. */
			const bob = { label: 'bob',
			    page: await s.person('bob', [proxy.base]) };

			/* Alice creates a room from the list page. */
			await alice.page.goto(d.base + '/index.html');
			await waitText(alice.page, '#rooms-status', /room/);
			await s.shot(alice.page, 'alice-index');
			await alice.page.fill('#create-name', 'alice');
			await alice.page.click('#create-button');
			await alice.page.waitForURL(/\/canvas\.html\?room=/);
			const roomId = new URL(alice.page.url())
			    .searchParams.get('room');
			assert.ok(roomId, 'no room id in the canvas URL');
			await waitState(alice.page, 'connected');
			assert.equal(await visibleText(alice.page,
			    '#conn-state'), 'connected');
			assert.equal(await visibleText(alice.page, '#room-id'),
			    roomId);
			assert.ok(await alice.page.locator('#delete-room')
			    .isVisible(), 'the host has no Delete button');
			await s.shot(alice.page, 'alice-canvas-connected');

			/* Bob sees the room in the list and joins it. */
			await bob.page.goto(proxy.base + '/index.html');
			const row = bob.page.locator(
			    `#rooms-body tr[data-room-id="${roomId}"]`);
			await row.waitFor({ timeout: WAIT });
			assert.equal((await row.locator('.room-host')
			    .textContent()).trim(), 'alice');
			assert.equal((await row.locator('.room-guests')
			    .textContent()).trim(), '0');
			await s.shot(bob.page, 'bob-index-lists-room');
			await row.locator('button.join-this').click();
			assert.equal(await bob.page.inputValue('#join-room'),
			    roomId);
			await bob.page.fill('#join-name', 'bob');
			await bob.page.click('#join-button');
			await bob.page.waitForURL(/\/canvas\.html\?room=/);
			await waitState(bob.page, 'connected');
			assert.ok(!(await bob.page.locator('#delete-room')
			    .isVisible()), 'a guest has a Delete button');
			assert.equal(await bob.page.evaluate((id) =>
			    !!sessionStorage.getItem('roomd.canvas.' + id),
			    roomId), true, 'no token in sessionStorage');

			/* Alice draws a stroke; Bob's board shows it. */
			await drawStroke(alice.page, [[100, 100], [250, 180],
			    [400, 120], [520, 300], [650, 260]]);
			const n1 = await allCaughtUp([alice, bob]);
			assert.ok(n1 >= 5, `only ${n1} actions for a stroke`);
			assert.ok(await inkedPixels(alice.page) > 500,
			    'alice\'s board is blank after her stroke');
			await sameBoards(alice, [bob]);
			await s.shot(alice.page, 'alice-after-stroke');
			await s.shot(bob.page, 'bob-sees-stroke');

			/* Bob draws too, in another colour. */
			await bob.page.click('#palette .swatch:nth-child(2)');
			await drawStroke(bob.page, [[120, 400], [300, 350],
			    [480, 450]]);
			await allCaughtUp([alice, bob]);
			await sameBoards(alice, [bob]);

			/* Carol joins late (typing the room id) and gets the
			 * whole picture. */
			const carol = { label: 'carol',
			    page: await s.person('carol', direct) };
			await carol.page.goto(d.base + '/');
			await carol.page.fill('#join-room', roomId);
			await carol.page.fill('#join-name', 'carol');
			await carol.page.click('#join-button');
			await carol.page.waitForURL(/\/canvas\.html\?room=/);
			await waitState(carol.page, 'connected');
			await allCaughtUp([alice, bob, carol]);
			assert.equal((await canvasState(carol.page)).sent, 0);
			await sameBoards(alice, [bob, carol]);
			await s.shot(carol.page, 'carol-late-joiner-same-picture');

			/* Bob's connection is cut hard, and new ones refused. */
			const before = await canvasState(bob.page);
			const reqsBefore = proxy.requests.length;
			proxy.block();
			proxy.cut();
			await waitState(bob.page, 'reconnecting');
			assert.equal(await visibleText(bob.page, '#conn-state'),
			    'reconnecting');
			await s.shot(bob.page, 'bob-cut-reconnecting');

			/* Alice draws meanwhile; Carol sees it, Bob cannot. */
			await drawStroke(alice.page, [[600, 60], [700, 200],
			    [760, 420]]);
			await waitIdle(alice.page);
			const total = (await canvasState(alice.page)).sent +
			    (await canvasState(bob.page)).sent;
			await waitReceived(carol.page, total);
			await waitReceived(alice.page, total);
			const cut = await canvasState(bob.page);
			assert.equal(cut.received, before.received,
			    'bob received something while cut off');
			assert.equal(cut.state, 'reconnecting');
			await sameBoards(alice, [carol]);
			assert.notEqual(await boardPNG(bob.page),
			    await boardPNG(alice.page),
			    'bob\'s board changed while cut off');

			/* The relay lets him through again: he comes back by
			 * himself, from where he stopped. */
			proxy.unblock();
			await waitState(bob.page, 'connected', 15000);
			await waitReceived(bob.page, total);
			const back = await canvasState(bob.page);
			assert.equal(back.received, total,
			    `bob drew ${back.received} actions, the log has ` +
			    `${total}`);
			await sameBoards(alice, [bob, carol]);
			const ws = proxy.requests.slice(reqsBefore).filter(
			    (r) => r.includes('/ws?'));
			assert.ok(ws.length >= 1, 'bob never reconnected through ' +
			    `the relay: ${JSON.stringify(proxy.requests)}`);
			assert.ok(ws.some((r) => r.includes(
			    `&pointer=${before.pointer}`)),
			    `bob did not resume with pointer=${before.pointer}: ` +
			    JSON.stringify(ws));
			await s.shot(bob.page, 'bob-reconnected-caught-up');

			/* Alice deletes the room; Bob and Carol are told. */
			await alice.page.click('#delete-room');
			await alice.page.click('#delete-yes');
			for (const p of [alice, bob, carol]) {
				await waitState(p.page, 'deleted');
				assert.equal(await visibleText(p.page,
				    '#conn-state'), 'room deleted');
				assert.match(await visibleText(p.page, '#notice'),
				    /room deleted/);
			}
			await s.shot(bob.page, 'bob-room-deleted');
			await s.shot(carol.page, 'carol-room-deleted');
			const list = await http(d, 'GET', '/canvas/rooms');
			assert.ok(!list.json.some((r) => r.roomId === roomId),
			    'the deleted room is still listed');
		});
	} finally {
		await s.close();
	}
});

test('a finger draws too: a drag and a tap on a touch screen',
    { timeout: 60000 }, async () => {
	const s = new Session(browser, 'touch');
	try {
		await steps(s, d, async () => {
			const page = await s.person('tablet', [d.base],
			    { hasTouch: true, isMobile: true,
			    viewport: { width: 800, height: 900 } });
			await page.goto(d.base + '/index.html');
			await page.fill('#create-name', 'tess');
			await page.click('#create-button');
			await page.waitForURL(/\/canvas\.html\?room=/);
			await waitState(page, 'connected');

			const box = await page.locator('#board').boundingBox();
			const at = (x, y) => ({ x: box.x + x * box.width / 800,
			    y: box.y + y * box.height / 500 });
			const cdp = await page.context().newCDPSession(page);
			await cdp.send('Input.dispatchTouchEvent', {
			    type: 'touchStart', touchPoints: [at(100, 250)] });
			for (let i = 1; i <= 10; i++)
				await cdp.send('Input.dispatchTouchEvent', {
				    type: 'touchMove',
				    touchPoints: [at(100 + 50 * i, 250 + 10 * i)] });
			await cdp.send('Input.dispatchTouchEvent', {
			    type: 'touchEnd', touchPoints: [] });
			await page.touchscreen.tap(at(700, 100).x, at(700, 100).y);

			await waitIdle(page);
			const st = await canvasState(page);
			assert.ok(st.sent >= 12, `only ${st.sent} actions sent`);
			await waitReceived(page, st.sent);
			assert.ok(await inkedPixels(page) > 500,
			    'the board is blank after a finger drew on it');
			const dot = await page.evaluate(() => Array.from(document
			    .getElementById('board').getContext('2d')
			    .getImageData(700, 100, 1, 1).data));
			assert.notDeepEqual(dot, [255, 255, 255, 255],
			    'the tap left no dot');
			assert.equal(await page.evaluate(() => window.scrollY), 0,
			    'the drag scrolled the page');
			await s.shot(page, 'finger-drawing');
		});
	} finally {
		await s.close();
	}
});

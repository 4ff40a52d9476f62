/*
 * chat.test.mjs: chat.html end to end in Chromium.  Alice, Bob and Carol
 * enter under their names; Alice creates #room, all three join, messages
 * appear on every page with their sender's name; a private message from
 * Alice reaches Bob (and Alice) but not Carol; errors are shown in words
 * (channel_exists, no_such_user, name_taken); leaving and destroying are
 * told in the event log.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Session, launchBrowser, sleep, startRoomd, steps, visibleText,
    waitText } from './lib/harness.mjs';
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

async function enter(page, name, base = d.base) {
	await page.goto(base + '/chat.html');
	await page.fill('#chat-name', name);
	await page.click('#signin-button');
}

async function waitChatState(page, state) {
	try {
		await page.waitForFunction((want) => window.roomdChat &&
		    window.roomdChat.state === want, state);
	} catch (e) {
		const now = await page.evaluate(() => window.roomdChat &&
		    window.roomdChat.state).catch(() => null);
		throw new Error(`chat page not "${state}" (it is "${now}")`);
	}
}

/* The messages shown in the selected conversation, as "name: text". */
function shownMessages(page) {
	return page.$$eval('#messages li.msg', (lis) => lis.map((li) =>
	    li.querySelector('.from').textContent + ': ' +
	    li.querySelector('.text').textContent));
}

async function waitMessage(page, line) {
	try {
		await page.waitForFunction((want) => [...document
		    .querySelectorAll('#messages li.msg')].some((li) =>
		    li.querySelector('.from').textContent + ': ' +
		    li.querySelector('.text').textContent === want), line);
	} catch (e) {
		throw new Error(`"${line}" not shown; shown: ` +
		    JSON.stringify(await shownMessages(page)));
	}
}

test('channels, messages with names, private messages and errors',
    { timeout: 60000 }, async () => {
	const s = new Session(browser, 'chat');
	try {
		await steps(s, d, async () => {
			const alice = await s.person('alice', [d.base]);
			const bob = await s.person('bob', [d.base]);
			const carol = await s.person('carol', [d.base]);
			const all = [alice, bob, carol];

			await alice.goto(d.base + '/chat.html');
			assert.match(await visibleText(alice, '#signin'),
			    /as a guest/);
			await s.shot(alice, 'signin-form');
			await enter(alice, 'alice');
			await enter(bob, 'bob');
			await enter(carol, 'carol');
			for (const p of all) {
				await waitChatState(p, 'connected');
				assert.equal(await visibleText(p, '#conn-state'),
				    'connected');
				assert.match(await visibleText(p, '.who'),
				    /guest/);
			}

			/* Alice creates #room: everybody is told. */
			await alice.fill('#channel-name', 'room');
			await alice.click('#channel-create');
			for (const p of all)
				await waitText(p, '#log', '#room was created.');

			/* All three join: Alice with the form, the others
			 * from the list of channels heard of. */
			await alice.click('#channel-join');
			await alice.locator('#channel-list li[data-name="#room"]')
			    .waitFor();
			for (const p of [bob, carol]) {
				await p.locator('#other-list li[data-name="#room"] ' +
				    'button.join').click();
				await p.locator('#channel-list ' +
				    'li[data-name="#room"]').waitFor();
			}
			await waitText(alice, '#log', 'bob joined #room.');
			await waitText(alice, '#log', 'carol joined #room.');
			for (const p of all)
				assert.equal(await visibleText(p, '#conv-title'),
				    '#room');

			/* Messages reach every participant, with names. */
			await alice.fill('#message-input', 'hello from alice');
			await alice.press('#message-input', 'Enter');
			await bob.fill('#message-input', 'hi alice, bob here');
			await bob.click('#message-send');
			for (const p of all) {
				await waitMessage(p, 'alice: hello from alice');
				await waitMessage(p, 'bob: hi alice, bob here');
			}
			await s.shot(alice, 'alice-channel-messages');
			await s.shot(carol, 'carol-channel-messages');

			/* A private message reaches Bob only (and comes back to
			 * Alice, its sender). */
			await alice.fill('#private-name', '@bob');
			await alice.click('#private-open');
			assert.equal(await visibleText(alice, '#conv-title'),
			    'Private with @bob');
			await alice.fill('#message-input', 'psst, bob only');
			await alice.press('#message-input', 'Enter');
			await waitMessage(alice, 'alice: psst, bob only');
			const fromAlice = bob.locator(
			    '#private-list li[data-name="@alice"]');
			await fromAlice.waitFor();
			assert.equal((await fromAlice.locator('.unread')
			    .textContent()).trim(), '1');
			await s.shot(bob, 'bob-private-unread');
			await fromAlice.locator('button.conv').click();
			await waitMessage(bob, 'alice: psst, bob only');
			await s.shot(bob, 'bob-private-message');
			/* Carol, in the same channel, never sees it. */
			await sleep(500);
			assert.equal(await carol.locator('#private-list li')
			    .count(), 0, 'carol has a private conversation');
			const carolText = await carol.evaluate(() =>
			    document.body.innerText);
			assert.ok(!carolText.includes('psst'),
			    'carol\'s page shows the private message');
			await s.shot(carol, 'carol-without-private-message');

			/* Errors in words: a channel that exists, a user that
			 * does not. */
			await bob.fill('#channel-name', '#room');
			await bob.click('#channel-create');
			let shown = await waitText(bob, '#error', 'channel_exists');
			assert.match(shown, /exists/);
			await waitText(bob, '#log', 'channel_exists');
			await bob.fill('#private-name', 'nobody');
			await bob.click('#private-open');
			await bob.fill('#message-input', 'anyone there?');
			await bob.press('#message-input', 'Enter');
			shown = await waitText(bob, '#error', 'no_such_user');
			await s.shot(bob, 'bob-errors-shown');

			/* A name in use is refused in words. */
			const dave = await s.person('dave', [d.base]);
			await enter(dave, 'alice');
			shown = await waitText(dave, '#error', 'name_taken');
			assert.match(shown, /taken/);
			await dave.locator('#signin').waitFor();
			await waitChatState(dave, 'disconnected');
			await s.shot(dave, 'name-taken-shown');

			/* Carol leaves; Alice is told. */
			await carol.locator('#channel-list li[data-name="#room"] ' +
			    'button.leave').click();
			await waitText(alice, '#log', 'carol left #room.');
			assert.equal(await carol.locator(
			    '#channel-list li[data-name="#room"]').count(), 0);

			/* Alice, its creator, destroys #room; all are told. */
			await alice.locator('#channel-list li[data-name="#room"] ' +
			    'button.destroy').click();
			for (const p of all)
				await waitText(p, '#log', '#room was destroyed.');
			assert.equal(await bob.locator(
			    '#channel-list li[data-name="#room"]').count(), 0);
			await s.shot(alice, 'alice-room-destroyed');
		});
	} finally {
		await s.close();
	}
});

test('a dropped chat connection comes back and misses nothing',
    { timeout: 60000 }, async () => {
	const s = new Session(browser, 'chat-reconnect');
	try {
		await steps(s, d, async () => {
			const ann = await s.person('ann', [d.base]);
			const ben = await s.person('ben', [proxy.base]);
			await enter(ann, 'ann');
			await enter(ben, 'ben', proxy.base);
			await waitChatState(ann, 'connected');
			await waitChatState(ben, 'connected');
			await ann.fill('#channel-name', '#lobby');
			await ann.click('#channel-create');
			await waitText(ben, '#log', '#lobby was created.');
			await ann.click('#channel-join');
			await ann.locator('#channel-list li[data-name="#lobby"]')
			    .waitFor();
			await ben.fill('#channel-name', '#lobby');
			await ben.click('#channel-join');
			await waitText(ann, '#log', 'ben joined #lobby.');
			await ann.fill('#message-input', 'before the cut');
			await ann.press('#message-input', 'Enter');
			await waitMessage(ben, 'ann: before the cut');

			/* Ben's connection is cut, and new ones refused. */
			const reqsBefore = proxy.requests.length;
			proxy.block();
			proxy.cut();
			await waitChatState(ben, 'reconnecting');
			assert.equal(await visibleText(ben, '#conn-state'),
			    'reconnecting');
			await s.shot(ben, 'ben-reconnecting');
			await waitText(ann, '#log', 'ben left #lobby.');
			await ann.fill('#message-input', 'while ben was away');
			await ann.press('#message-input', 'Enter');
			await waitMessage(ann, 'ann: while ben was away');

			/* He comes back by himself, rejoins, and gets what he
			 * missed, once. */
			proxy.unblock();
			await waitChatState(ben, 'connected');
			await waitMessage(ben, 'ann: while ben was away');
			await waitText(ann, '#log', /ben joined #lobby\.[^]*ben joined #lobby\./);
			await ann.fill('#message-input', 'welcome back');
			await ann.press('#message-input', 'Enter');
			await waitMessage(ben, 'ann: welcome back');
			assert.deepEqual(await shownMessages(ben), [
			    'ann: before the cut', 'ann: while ben was away',
			    'ann: welcome back']);
			const again = proxy.requests.slice(reqsBefore);
			assert.ok(again.some((r) => r.startsWith('GET /chat?name=ben')),
			    `no reconnection seen: ${JSON.stringify(again)}`);
			await s.shot(ben, 'ben-back-nothing-missed');
		});
	} finally {
		await s.close();
	}
});

/*
 * signin.test.mjs: signing in to the chat page through account providers,
 * in Chromium.  A fake provider (tests/integration/fake_provider.py, over
 * HTTPS with a CA of its own) stands for Google (OpenID Connect) and
 * GitHub (OAuth 2.0 with a user endpoint).  Each person clicks a provider's
 * button, goes through the provider and comes back signed in under the
 * name the provider vouches for; they then talk in a channel; signing out
 * forgets the session.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, Session, launchBrowser, startRoomd, steps, visibleText,
    waitText } from './lib/harness.mjs';

let d, idp, idpBase, browser;

/* Start the fake provider; resolves with the roomd.conf lines it prints. */
function startProvider() {
	return new Promise((resolve, reject) => {
		idp = spawn('/usr/bin/python3', [path.join(REPO, 'tests',
		    'integration', 'fake_provider.py')], { stdio: ['ignore',
		    'pipe', 'inherit'] });
		let out = '';
		const timer = setTimeout(() => reject(new Error('the fake ' +
		    'provider printed no configuration in 30 s')), 30000);
		idp.once('exit', (code) => reject(new Error('the fake ' +
		    `provider exited (${code})`)));
		idp.stdout.on('data', (b) => {
			out += b;
			/* the last line names the user endpoint */
			if (/chat_provider gh userinfo \S+\n/.test(out)) {
				clearTimeout(timer);
				idpBase = /fake provider on (\S+);/.exec(out)[1];
				resolve(out);
			}
		});
	});
}

before(async () => {
	const conf = await startProvider();
	d = await startRoomd({ conf });
	browser = await launchBrowser();
});

after(async () => {
	if (browser)
		await browser.close().catch(() => {});
	if (d)
		await d.stop();
	if (idp && idp.exitCode === null) {
		/* SIGINT: it removes its keys and certificates, then exits */
		const gone = new Promise((r) => idp.once('exit', r));
		idp.kill('SIGINT');
		await Promise.race([gone, new Promise((r) => setTimeout(r,
		    5000))]);
		if (idp.exitCode === null)
			idp.kill('SIGKILL');
	}
});

async function waitChatState(page, state) {
	await page.waitForFunction((want) => window.roomdChat &&
	    window.roomdChat.state === want, state);
}

async function signIn(s, label, provider) {
	const page = await s.person(label, [d.base, idpBase],
	    { ignoreHTTPSErrors: true });
	await page.goto(d.base + '/chat.html');
	const button = page.locator(`a[data-provider="${provider}"]`);
	await button.waitFor();
	assert.equal((await button.textContent()).trim(),
	    `Sign in with ${provider}`);
	await button.click();
	await waitChatState(page, 'connected');
	return page;
}

test('sign in through two providers, talk, sign out', { timeout: 60000 },
    async () => {
	const s = new Session(browser, 'signin');
	try {
		await steps(s, d, async () => {
			const ada = await signIn(s, 'ada', 'fake');
			await s.shot(ada, 'ada-signed-in');
			assert.equal(await visibleText(ada, '#chat-me'), 'ada');
			assert.equal(await visibleText(ada, '#chat-badge'),
			    'signed in');
			assert.equal(await ada.evaluate(() => location.hash),
			    '', 'the token is taken out of the address');
			assert.equal(await ada.evaluate(() =>
			    window.roomdChat.signedIn), true);

			const mona = await signIn(s, 'mona', 'gh');
			assert.equal(await visibleText(mona, '#chat-me'),
			    'octocat');

			/* They talk in a channel, under their names. */
			await ada.fill('#channel-name', 'signed');
			await ada.click('#channel-create');
			await waitText(mona, '#log', '#signed was created.');
			await ada.click('#channel-join');
			await mona.locator('#other-list li[data-name="#signed"] ' +
			    'button.join').click();
			await waitText(ada, '#log', 'octocat joined #signed.');
			await ada.fill('#message-input', 'hello, signed in');
			await ada.press('#message-input', 'Enter');
			await mona.waitForFunction(() => [...document
			    .querySelectorAll('#messages li.msg')].some((li) =>
			    li.querySelector('.from').textContent === 'ada' &&
			    li.querySelector('.text').textContent ===
			    'hello, signed in'));
			await s.shot(mona, 'mona-sees-ada');

			/* A reload keeps the session (this tab's storage)... */
			await ada.reload();
			await waitChatState(ada, 'connected');
			assert.equal(await visibleText(ada, '#chat-me'), 'ada');

			/* ...and signing out forgets it. */
			await ada.click('#disconnect');
			await ada.locator('#signin').waitFor();
			await ada.reload();
			await ada.locator('a[data-provider="fake"]').waitFor();
			assert.equal(await ada.evaluate(() =>
			    window.roomdChat.signedIn), false);
			await s.shot(ada, 'ada-signed-out');
			assert.deepEqual(s.problems, []);
		});
	} finally {
		await s.close();
	}
});

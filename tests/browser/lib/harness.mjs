/*
 * harness.mjs: what the browser tests share.  Each test file starts its
 * own roomd on a free loopback port (serving the repository's htdocs) and
 * its own headless Chromium (Debian's, never a download), and stops both
 * at its end, also when a test fails.  Every wait is bounded.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const TESTDIR = path.resolve(path.dirname(fileURLToPath(
    import.meta.url)), '..');
export const REPO = path.resolve(TESTDIR, '..', '..');
export const HTDOCS = path.join(REPO, 'htdocs');
export const ARTIFACTS = path.join(TESTDIR, 'artifacts');
export const ROOMD_BIN = process.env.ROOMD_BIN ||
    path.join(REPO, 'build', 'roomd');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/* Bound of one wait in a page (ms). */
export const WAIT = 10000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ---------------------------------------------------------------- roomd */

const live = new Set();		/* daemons not stopped yet */

/* Whatever happens, no daemon outlives the test process. */
process.on('exit', () => {
	for (const d of live)
		d.killNow();
});
for (const sig of ['SIGINT', 'SIGTERM']) {
	process.once(sig, () => {
		for (const d of live)
			d.killNow();
		process.exit(130);
	});
}

export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.unref();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

function canConnect(port) {
	return new Promise((resolve) => {
		const c = net.connect({ port, host: '127.0.0.1' });
		const done = (ok) => {
			c.destroy();
			resolve(ok);
		};
		c.setTimeout(500, () => done(false));
		c.once('connect', () => done(true));
		c.once('error', () => done(false));
	});
}

/*
 * Start roomd with a configuration of its own in a temporary directory:
 * htdocs is the repository's, pidfile and control socket are in that
 * directory.  Resolves to { port, base, tmp, logTail(), stop() }.
 */
export async function startRoomd({ workers = 2, conf = '' } = {}) {
	if (!fs.existsSync(ROOMD_BIN))
		throw new Error(`roomd binary not found at ${ROOMD_BIN} ` +
		    '(build it, or set ROOMD_BIN)');
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'roomd-browser-'));
	const confPath = path.join(tmp, 'roomd.conf');
	fs.writeFileSync(confPath, `htdocs ${HTDOCS}\n` +
	    `pidfile ${tmp}/roomd.pid\n` +
	    `control_socket ${tmp}/roomd.sock\n` + conf +
	    (conf && !conf.endsWith('\n') ? '\n' : ''));
	const port = await freePort();
	const logPath = path.join(tmp, 'roomd.log');
	const logFd = fs.openSync(logPath, 'w');
	const argv = ['-f', '-c', confPath, '-w', String(workers),
	    '-l', `127.0.0.1:${port}`];
	let proc;
	try {
		proc = spawn(ROOMD_BIN, argv, { detached: true,
		    stdio: ['ignore', logFd, logFd] });
	} finally {
		fs.closeSync(logFd);
	}
	let exited = null;
	const exitP = new Promise((resolve) => proc.once('exit',
	    (code, sig) => {
		exited = { code, sig };
		resolve(exited);
	}));
	proc.once('error', () => {});

	const d = {
		port,
		base: `http://127.0.0.1:${port}`,
		tmp,
		proc,
		logTail(n = 40) {
			try {
				return fs.readFileSync(logPath, 'utf8')
				    .split('\n').slice(-n).join('\n');
			} catch (e) {
				return `(no log: ${e.message})`;
			}
		},
		/* SIGKILL to the whole process group, synchronously. */
		killNow() {
			try {
				process.kill(-proc.pid, 'SIGKILL');
			} catch (e) { /* gone already */ }
			try {
				fs.rmSync(tmp, { recursive: true, force: true });
			} catch (e) { /* never mind */ }
			live.delete(d);
		},
		/* SIGTERM, up to 5 s for a clean stop, then SIGKILL. */
		async stop() {
			if (!live.has(d))
				return exited;
			if (exited === null) {
				try {
					proc.kill('SIGTERM');
				} catch (e) { /* gone */ }
				let timer;
				await Promise.race([exitP, new Promise((r) => {
					timer = setTimeout(r, 5000);
				})]);
				clearTimeout(timer);
			}
			d.killNow();
			return exited;
		},
	};
	live.add(d);

	const deadline = Date.now() + 10000;
	for (;;) {
		if (exited !== null) {
			const tail = d.logTail();
			d.killNow();
			throw new Error(`roomd exited (${JSON.stringify(exited)}) ` +
			    `at startup: ${ROOMD_BIN} ${argv.join(' ')}\n${tail}`);
		}
		if (await canConnect(port))
			break;
		if (Date.now() > deadline) {
			const tail = d.logTail();
			await d.stop();
			throw new Error(`roomd did not accept on port ${port} ` +
			    `within 10 s\n${tail}`);
		}
		await sleep(50);
	}
	return d;
}

/* One HTTP request from the test itself, on a connection of its own that
 * is closed afterwards: { status, headers, text, json }. */
export function http(d, method, urlPath, body, headers = {}) {
	return new Promise((resolve, reject) => {
		const data = body === undefined ? null :
		    Buffer.from(JSON.stringify(body));
		const h = { ...headers };
		if (data) {
			h['Content-Type'] = 'application/json';
			h['Content-Length'] = data.length;
		}
		const req = nodeHttp.request({ host: '127.0.0.1', port: d.port,
		    method, path: urlPath, headers: h, agent: false,
		    timeout: 5000 }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				const text = Buffer.concat(chunks).toString('utf8');
				let json = null;
				try {
					json = text ? JSON.parse(text) : null;
				} catch (e) { /* not JSON */ }
				resolve({ status: res.statusCode,
				    headers: res.headers, text, json });
			});
			res.on('error', reject);
		});
		req.on('timeout', () => req.destroy(new Error(
		    `${method} ${urlPath}: no answer within 5 s`)));
		req.on('error', reject);
		req.end(data || undefined);
	});
}

/* -------------------------------------------------------------- Chromium */

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
    '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];

export async function launchBrowser() {
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`no Chromium at ${CHROMIUM}: apt-get install ` +
		    'chromium');
	return chromium.launch({ executablePath: CHROMIUM,
	    args: CHROMIUM_ARGS, timeout: 30000 });
}

/*
 * The browser side of one test file: contexts (one per person), their
 * pages, screenshots numbered in order, and the page errors and foreign
 * requests seen, which fail the test.
 */
export class Session {
	constructor(browser, prefix) {
		this.browser = browser;
		this.prefix = prefix;
		this.step = 0;
		this.pages = new Map();		/* label -> page */
		this.problems = [];
		fs.mkdirSync(ARTIFACTS, { recursive: true });
		for (const f of fs.readdirSync(ARTIFACTS))
			if (f.startsWith(prefix + '-') && f.endsWith('.png'))
				fs.rmSync(path.join(ARTIFACTS, f));
	}

	/* A new person: a context of its own (own sessionStorage, own
	 * cookies) and one page in it.  allowed: the origins it may load
	 * from. */
	async person(label, allowed, options = {}) {
		const context = await this.browser.newContext({
		    viewport: { width: 1200, height: 860 }, ...options });
		context.setDefaultTimeout(WAIT);
		context.setDefaultNavigationTimeout(WAIT);
		const page = await context.newPage();
		page.on('pageerror', (e) => this.problems.push(
		    `${label}: uncaught error in the page: ${e.message}`));
		page.on('request', (r) => {
			const u = r.url();
			if (!allowed.some((o) => u.startsWith(o + '/')) &&
			    !u.startsWith('data:') && !u.startsWith('blob:'))
				this.problems.push(`${label}: request to a ` +
				    `foreign origin: ${u}`);
		});
		this.pages.set(label, page);
		return page;
	}

	async shot(page, what) {
		this.step++;
		const name = `${this.prefix}-${String(this.step).padStart(2, '0')}` +
		    `-${what}.png`;
		await page.screenshot({ path: path.join(ARTIFACTS, name),
		    fullPage: true, timeout: WAIT });
		return name;
	}

	/* After a failure: a picture of every page, for the artifacts. */
	async shotAll(what) {
		for (const [label, page] of this.pages) {
			try {
				if (!page.isClosed())
					await this.shot(page, `${what}-${label}`);
			} catch (e) { /* the page may be gone */ }
		}
	}

	async close() {
		for (const page of this.pages.values()) {
			try {
				await page.context().close();
			} catch (e) { /* closed already */ }
		}
		this.pages.clear();
	}
}

/*
 * Run body; on failure, take a picture of every page and add the daemon's
 * log to the error.  Page errors and foreign requests fail the test too.
 */
export async function steps(session, d, body) {
	try {
		await body();
	} catch (e) {
		await session.shotAll('FAILED');
		e.message += `\n--- roomd log (last lines) ---\n${d.logTail()}`;
		throw e;
	}
	if (session.problems.length)
		throw new Error('problems in the pages:\n' +
		    session.problems.join('\n'));
}

/* ------------------------------------------------------------- helpers */

/* The text of a selector, once it is visible. */
export async function visibleText(page, selector) {
	const loc = page.locator(selector);
	await loc.waitFor({ state: 'visible', timeout: WAIT });
	return (await loc.textContent()).trim();
}

/* Wait until the element's text contains want (a string or a RegExp). */
export async function waitText(page, selector, want, timeout = WAIT) {
	await page.waitForFunction(([sel, src, flags]) => {
		const el = document.querySelector(sel);
		if (!el)
			return false;
		const t = el.textContent;
		return flags === null ? t.includes(src) :
		    new RegExp(src, flags).test(t);
	}, [selector, want instanceof RegExp ? want.source : want,
	    want instanceof RegExp ? want.flags : null], { timeout });
	return (await page.locator(selector).textContent()).trim();
}

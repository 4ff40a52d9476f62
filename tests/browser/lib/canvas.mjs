/*
 * canvas.mjs: driving and reading canvas.html from a test.
 */
import { WAIT } from './harness.mjs';

export const W = 800, H = 500;

/* Draw a stroke with the mouse through logical board points. */
export async function drawStroke(page, points, steps = 4) {
	const board = page.locator('#board');
	await board.scrollIntoViewIfNeeded();
	const box = await board.boundingBox();
	if (!box)
		throw new Error('the board is not on screen');
	const at = ([x, y]) => [box.x + x * box.width / W,
	    box.y + y * box.height / H];
	const [x0, y0] = at(points[0]);
	await page.mouse.move(x0, y0);
	await page.mouse.down();
	for (const p of points.slice(1)) {
		const [x, y] = at(p);
		await page.mouse.move(x, y, { steps });
	}
	await page.mouse.up();
}

/* What the page knows of its connection and log. */
export function canvasState(page) {
	return page.evaluate(() => {
		const c = window.roomdCanvas;
		return c ? { state: c.state, pointer: c.pointer,
		    received: c.received, sent: c.sent, idle: c.idle } : null;
	});
}

/* Wait until the page has sent everything drawn on it. */
export async function waitIdle(page, timeout = WAIT) {
	await page.waitForFunction(() => window.roomdCanvas &&
	    window.roomdCanvas.idle, null, { timeout });
}

/* Wait until the page has drawn n actions of the log. */
export async function waitReceived(page, n, timeout = WAIT) {
	try {
		await page.waitForFunction((want) => window.roomdCanvas &&
		    window.roomdCanvas.received >= want, n, { timeout });
	} catch (e) {
		const s = await canvasState(page).catch(() => null);
		throw new Error(`the page did not draw ${n} actions within ` +
		    `${timeout} ms: ${JSON.stringify(s)}`);
	}
}

export async function waitState(page, state, timeout = WAIT) {
	try {
		await page.waitForFunction((want) => window.roomdCanvas &&
		    window.roomdCanvas.state === want, state, { timeout });
	} catch (e) {
		const s = await canvasState(page).catch(() => null);
		throw new Error(`the page is not "${state}" within ${timeout} ` +
		    `ms: ${JSON.stringify(s)}`);
	}
}

/* The board as a PNG data URL: equal strings, equal pixels. */
export function boardPNG(page) {
	return page.evaluate(() => document.getElementById('board')
	    .toDataURL('image/png'));
}

/* How many pixels of the board are not white. */
export function inkedPixels(page) {
	return page.evaluate(() => {
		const c = document.getElementById('board');
		const d = c.getContext('2d').getImageData(0, 0, c.width,
		    c.height).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 4)
			if (d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255)
				n++;
		return n;
	});
}

/* Pixels that differ between two pages' boards (0 when equal). */
export async function differingPixels(a, b) {
	const grab = (p) => p.evaluate(() => {
		const c = document.getElementById('board');
		return Array.from(c.getContext('2d').getImageData(0, 0,
		    c.width, c.height).data);
	});
	const [da, db] = await Promise.all([grab(a), grab(b)]);
	if (da.length !== db.length)
		return Infinity;
	let n = 0;
	for (let i = 0; i < da.length; i += 4)
		if (da[i] !== db[i] || da[i + 1] !== db[i + 1] ||
		    da[i + 2] !== db[i + 2] || da[i + 3] !== db[i + 3])
			n++;
	return n;
}

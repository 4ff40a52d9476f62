/*
 * pages.test.mjs: the files of htdocs as roomd serves them: each with its
 * type, ETag and 304, the 404 of a missing page; and none refers to
 * anything outside the server (no CDN, no external font or script).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { HTDOCS, http, startRoomd } from './lib/harness.mjs';

const TYPES = {
	'.html': 'text/html', '.css': 'text/css', '.js': 'text/javascript',
	'.svg': 'image/svg+xml', '.json': 'application/json',
	'.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain',
};

let d;
before(async () => {
	d = await startRoomd();
});
after(async () => {
	if (d)
		await d.stop();
});

function htdocsFiles() {
	return fs.readdirSync(HTDOCS, { recursive: true })
	    .filter((f) => fs.statSync(path.join(HTDOCS, f)).isFile())
	    .map((f) => f.split(path.sep).join('/'));
}

test('every file of htdocs is served with its type, an ETag and 304',
    async () => {
	const files = htdocsFiles();
	for (const want of ['index.html', 'canvas.html', 'canvas.js',
	    'chat.html', 'chat.js', 'common.js', 'index.js', 'style.css'])
		assert.ok(files.includes(want), `htdocs has no ${want}`);
	for (const f of files) {
		const r = await http(d, 'GET', '/' + f);
		assert.equal(r.status, 200, `/${f}: ${r.status}`);
		const type = TYPES[path.extname(f)];
		assert.ok(type, `/${f}: a type roomd does not know`);
		assert.equal(r.headers['content-type'].split(';')[0], type,
		    `/${f}`);
		assert.equal(r.text, fs.readFileSync(path.join(HTDOCS, f),
		    'utf8'), `/${f}: not the file's content`);
		const etag = r.headers.etag;
		assert.ok(etag, `/${f}: no ETag`);
		const again = await http(d, 'GET', '/' + f, undefined,
		    { 'If-None-Match': etag });
		assert.equal(again.status, 304, `/${f} with its ETag`);
	}
	const root = await http(d, 'GET', '/');
	assert.equal(root.status, 200);
	assert.equal(root.text, fs.readFileSync(path.join(HTDOCS,
	    'index.html'), 'utf8'), '/ is not index.html');
	const missing = await http(d, 'GET', '/no-such-page.html');
	assert.equal(missing.status, 404);
	assert.match(missing.headers['content-type'], /^text\/html/);
});

test('no page refers to anything outside the server', () => {
	for (const f of htdocsFiles()) {
		const text = fs.readFileSync(path.join(HTDOCS, f), 'utf8')
		    .replace(/xmlns(:\w+)?="[^"]*"/g, '');
		const bad = text.match(/\b(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi);
		assert.equal(bad, null, `${f} refers to ${bad}`);
		assert.ok(!/@import\s+url\(\s*['"]?(https?:)?\/\//.test(text),
		    `${f} imports from outside`);
	}
});

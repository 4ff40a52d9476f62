/*
 * proxy.mjs: a TCP relay in front of roomd, so that a test can cut a
 * browser's connections the hard way (no close frame: the page sees an
 * abnormal close, 1006) and refuse new ones for a while.  It also notes the
 * request line of every HTTP request that passes, so a test can see what
 * URL a page reconnected with.
 */
import net from 'node:net';

export async function startProxy(targetPort) {
	const sockets = new Set();
	const requests = [];		/* "GET /path HTTP/1.1" */
	let blocked = false;

	const server = net.createServer((client) => {
		if (blocked) {
			client.resetAndDestroy();
			return;
		}
		const upstream = net.connect({ port: targetPort,
		    host: '127.0.0.1' });
		sockets.add(client);
		sockets.add(upstream);
		let upgraded = false;
		const end = () => {
			client.destroy();
			upstream.destroy();
			sockets.delete(client);
			sockets.delete(upstream);
		};
		client.on('data', (buf) => {
			if (upgraded)
				return;
			const text = buf.toString('latin1');
			for (const m of text.matchAll(/^([A-Z]+) (\S+) HTTP\/1\.[01]\r$/gm))
				requests.push(`${m[1]} ${m[2]}`);
			if (/^upgrade: *websocket\r$/im.test(text))
				upgraded = true;	/* frames from here */
		});
		client.pipe(upstream);
		upstream.pipe(client);
		client.on('error', end);
		upstream.on('error', end);
		client.on('close', end);
		upstream.on('close', end);
	});
	await new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', resolve);
	});
	const port = server.address().port;

	return {
		port,
		base: `http://127.0.0.1:${port}`,
		requests,
		/* Reset every connection that passes now. */
		cut() {
			for (const s of [...sockets]) {
				try {
					s.resetAndDestroy();
				} catch (e) {
					s.destroy();
				}
			}
			sockets.clear();
		},
		/* Refuse (reset) every new connection, or let them pass. */
		block() { blocked = true; },
		unblock() { blocked = false; },
		async close() {
			this.cut();
			await new Promise((resolve) => server.close(resolve));
		},
	};
}

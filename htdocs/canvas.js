/*
 * canvas.js: one member's view of a shared drawing board of the canvas
 * dialect.
 *
 * What is drawn here is only what roomd sends: a stroke goes out as
 * actions, {"moveto":[x,y]} then {"lineto":[x,y]}..., batched per animation
 * frame, and is drawn when it comes back with its pointer, like everybody
 * else's.  Every page thus replays the same log in the same order and shows
 * the same pixels.  Each batch starts with a moveto, so that a batch of
 * another member slipped in between two batches of a stroke (roomd keeps
 * each batch whole) never joins their lines.
 *
 * A dropped connection comes back by itself with pointer=LAST, the highest
 * pointer received, after 0.5 s, 1 s, 2 s, 4 s, then every 5 s.
 */
'use strict';

(function () {
	const $ = (id) => document.getElementById(id);
	const W = 800, H = 500;			/* logical size of the board */
	const BACKGROUND = '#ffffff';
	const COLOURS = ['#1b1b1b', '#d62828', '#1d6fd6', '#2a9d3f',
	    '#f4a300', '#8e44ad'];
	const DEFAULT_COLOUR = COLOURS[0];
	const DEFAULT_WIDTH = 4;
	const BACKOFF_MIN = 500, BACKOFF_MAX = 5000;
	const OPEN_TIMEOUT = 10000;		/* a handshake that hangs */
	/* Errors after which roomd closes the socket for good (status 1008). */
	const FATAL = new Set(['no_such_room', 'bad_token', 'bad_pointer']);

	const board = $('board');
	const ctx = board.getContext('2d');
	const errorBox = $('error');
	const notice = $('notice');

	const params = new URLSearchParams(location.search);
	const roomId = params.get('room') || '';
	const member = roomId ? Roomd.loadMember(roomId) : null;

	/* Connection. */
	let ws = null;
	let synced = false;		/* the first message of ws has come */
	let everSynced = false;
	let pointer = 0;		/* highest pointer received */
	let received = 0;		/* actions of the log drawn */
	let sent = 0;			/* actions sent */
	let backoff = BACKOFF_MIN;
	let retryTimer = null;
	let openTimer = null;
	let ended = false;		/* deleted, refused: no more reconnects */
	let fatalError = null;

	/* Outgoing actions. */
	let pending = [];		/* this frame's batch */
	let outbox = [];		/* batches waiting for a connection */
	let frameQueued = false;

	/* Input. */
	let colour = DEFAULT_COLOUR;
	let width = DEFAULT_WIDTH;
	let activeId = null;		/* the pointer (finger, pen) drawing */
	let last = null;		/* last point of the stroke being drawn */
	let moved = false;
	let needMoveto = false;

	/* Playback of the log. */
	let pen = null;			/* current point of the log */
	let penColour = DEFAULT_COLOUR;
	let penWidth = DEFAULT_WIDTH;

	/* ---------------------------------------------------------- state */

	function setState(state, text, detail) {
		const el = $('conn-state');
		el.dataset.state = state;
		el.textContent = text || state;
		$('conn-detail').textContent = detail || '';
		board.dataset.state = state;
	}

	function serverError(code, message) {
		Roomd.showError(errorBox, Roomd.errorText(code, message),
		    'The server says');
	}

	/* -------------------------------------------------------- drawing */

	function clearBoard() {
		ctx.save();
		ctx.setTransform(1, 0, 0, 1, 0, 0);
		ctx.fillStyle = BACKGROUND;
		ctx.fillRect(0, 0, W, H);
		ctx.restore();
	}

	function point(v) {
		if (!Array.isArray(v) || v.length < 2)
			return null;
		const x = Number(v[0]), y = Number(v[1]);
		return Number.isFinite(x) && Number.isFinite(y) ? [x, y] : null;
	}

	function validColour(c) {
		return typeof c === 'string' && /^#[0-9a-fA-F]{6}$/.test(c) ?
		    c : DEFAULT_COLOUR;
	}

	function validWidth(w) {
		return typeof w === 'number' && w >= 1 && w <= 64 ? w :
		    DEFAULT_WIDTH;
	}

	/* Draw one action of the log.  Actions unknown here are skipped. */
	function apply(a) {
		if (a === null || typeof a !== 'object')
			return;
		if ('moveto' in a) {
			const p = point(a.moveto);
			if (!p)
				return;
			pen = p;
			penColour = validColour(a.color);
			penWidth = validWidth(a.width);
		} else if ('lineto' in a) {
			const p = point(a.lineto);
			if (!p)
				return;
			const from = pen || p;
			/* One path per segment, so that the pixels do not
			 * depend on how the log was cut into messages. */
			ctx.beginPath();
			if (from[0] === p[0] && from[1] === p[1]) {
				/* a dot: browsers draw no zero-length line */
				ctx.arc(p[0], p[1], penWidth / 2, 0, 2 * Math.PI);
				ctx.fillStyle = penColour;
				ctx.fill();
			} else {
				ctx.moveTo(from[0], from[1]);
				ctx.lineTo(p[0], p[1]);
				ctx.strokeStyle = penColour;
				ctx.lineWidth = penWidth;
				ctx.lineCap = 'round';
				ctx.stroke();
			}
			pen = p;
		}
	}

	function receive(actions) {
		for (const a of actions) {
			const p = a && typeof a.pointer === 'number' ?
			    a.pointer : null;
			if (p !== null && p <= pointer)
				continue;	/* seen already */
			apply(a);
			received++;
			if (p !== null)
				pointer = p;
		}
		board.dataset.pointer = String(pointer);
	}

	/* ----------------------------------------------------- connection */

	function connect() {
		retryTimer = null;
		if (ended)
			return;
		synced = false;
		setState(everSynced ? 'reconnecting' : 'connecting',
		    everSynced ? 'reconnecting' : 'connecting');
		let url = Roomd.CANVAS + '/rooms/' + encodeURIComponent(roomId) +
		    '/ws?token=' + encodeURIComponent(member.token);
		if (pointer > 0)
			url += '&pointer=' + pointer;
		let sock;
		try {
			sock = new WebSocket(Roomd.wsURL(url));
		} catch (e) {
			serverError('network', e.message);
			retry();
			return;
		}
		ws = sock;
		openTimer = setTimeout(() => {
			if (ws === sock && sock.readyState === WebSocket.CONNECTING)
				sock.close();
		}, OPEN_TIMEOUT);
		sock.onmessage = (ev) => {
			if (ws !== sock)
				return;
			let m;
			try {
				m = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			if (Array.isArray(m)) {
				if (!synced)
					onSynced();
				receive(m);
			} else if (m && typeof m.error === 'string') {
				if (FATAL.has(m.error))
					fatalError = m;
				serverError(m.error, m.message);
			}
		};
		sock.onclose = (ev) => {
			clearTimeout(openTimer);
			if (ws !== sock)
				return;
			ws = null;
			synced = false;
			onClosed(ev);
		};
		/* onerror is always followed by onclose. */
	}

	function onSynced() {
		synced = true;
		everSynced = true;
		backoff = BACKOFF_MIN;
		if (fatalError === null)
			Roomd.clearError(errorBox);
		setState('connected', 'connected');
		const queued = outbox;
		outbox = [];
		for (const b of queued)
			send(b);
	}

	function onClosed(ev) {
		if (ev.code === 1000) {
			/* The room is gone: deleted by its host, or closed by an
			 * administrator. */
			ended = true;
			const deleted = ev.reason === 'room deleted' ||
			    ev.reason === '';
			setState('deleted', deleted ? 'room deleted' :
			    'room closed');
			notice.textContent = deleted ?
			    'The room was deleted by its host: this drawing is ' +
			    'over (room deleted).' :
			    'The server closed the room (' + ev.reason + ').';
			const back = document.createElement('a');
			back.href = 'index.html';
			back.textContent = 'Back to the room list';
			notice.append(' ', back);
			notice.hidden = false;
			Roomd.forgetMember(roomId);
			endRoom();
			return;
		}
		if (ev.code === 1008 || fatalError !== null) {
			ended = true;
			setState('disconnected', 'disconnected');
			if (fatalError === null)
				serverError('refused', 'the server closed the ' +
				    'connection (' + (ev.reason || 'policy') +
				    ')');
			endRoom();
			return;
		}
		retry(ev);
	}

	function retry(ev) {
		if (ended || retryTimer !== null)
			return;
		const delay = backoff;
		backoff = Math.min(backoff * 2, BACKOFF_MAX);
		const why = ev && ev.code === 1001 ? 'the server is restarting' :
		    'the connection was lost';
		setState('reconnecting', 'reconnecting', why + '; trying ' +
		    'again in ' + (delay / 1000).toFixed(1) + ' s');
		retryTimer = setTimeout(connect, delay);
	}

	/* The room is over for this page: no more drawing or deleting. */
	function endRoom() {
		board.classList.add('ended');
		$('delete-area').hidden = true;
		$('tools').hidden = true;
		$('members').textContent = '—';
		pending = [];
		outbox = [];
		activeId = null;
	}

	/* Coming back online: do not wait for the end of a long backoff. */
	window.addEventListener('online', () => {
		if (retryTimer !== null) {
			clearTimeout(retryTimer);
			connect();
		}
	});

	/* ---------------------------------------------------------- input */

	function send(batch) {
		if (ended || batch.length === 0)
			return;
		if (ws && synced && ws.readyState === WebSocket.OPEN) {
			ws.send(JSON.stringify(batch));
			sent += batch.length;
		} else
			outbox.push(batch);
	}

	function flush() {
		frameQueued = false;
		if (pending.length === 0)
			return;
		const batch = pending;
		pending = [];
		send(batch);
		if (activeId !== null)
			needMoveto = true;
	}

	function queue(action) {
		if (needMoveto && 'lineto' in action) {
			pending.push(movetoAction(last));
			needMoveto = false;
		}
		pending.push(action);
		if (!frameQueued) {
			frameQueued = true;
			requestAnimationFrame(flush);
		}
	}

	function movetoAction(p) {
		return { moveto: p, color: colour, width };
	}

	/* A pointer event's position on the board, in logical pixels. */
	function logical(e) {
		const r = board.getBoundingClientRect();
		const cw = board.clientWidth || W, ch = board.clientHeight || H;
		let x = (e.clientX - r.left - board.clientLeft) * W / cw;
		let y = (e.clientY - r.top - board.clientTop) * H / ch;
		x = Math.min(W, Math.max(0, Math.round(x)));
		y = Math.min(H, Math.max(0, Math.round(y)));
		return [x, y];
	}

	function canDraw() {
		return !ended && member !== null;
	}

	board.addEventListener('pointerdown', (e) => {
		if (!canDraw() || activeId !== null)
			return;
		if (e.pointerType === 'mouse' && e.button !== 0)
			return;
		e.preventDefault();
		try {
			board.setPointerCapture(e.pointerId);
		} catch (err) { /* not capturable: fine */ }
		activeId = e.pointerId;
		last = logical(e);
		moved = false;
		needMoveto = false;
		queue(movetoAction(last));
	});

	board.addEventListener('pointermove', (e) => {
		if (e.pointerId !== activeId)
			return;
		e.preventDefault();
		const evs = typeof e.getCoalescedEvents === 'function' ?
		    e.getCoalescedEvents() : [];
		for (const c of evs.length ? evs : [e]) {
			const p = logical(c);
			if (p[0] === last[0] && p[1] === last[1])
				continue;
			queue({ lineto: p });
			last = p;
			moved = true;
		}
	});

	function endStroke(e) {
		if (e.pointerId !== activeId)
			return;
		const p = logical(e);
		if (!moved || p[0] !== last[0] || p[1] !== last[1]) {
			/* a tap is a dot: a line to the same point */
			queue({ lineto: moved ? p : last });
			last = p;
		}
		activeId = null;
		needMoveto = false;
		flush();
	}
	board.addEventListener('pointerup', endStroke);
	board.addEventListener('pointercancel', endStroke);
	board.addEventListener('contextmenu', (e) => e.preventDefault());

	/* Palette and width. */
	for (const c of COLOURS) {
		const b = document.createElement('button');
		b.type = 'button';
		b.className = 'swatch';
		b.style.background = c;
		b.title = c;
		b.setAttribute('role', 'radio');
		b.setAttribute('aria-checked', String(c === colour));
		b.setAttribute('aria-label', 'colour ' + c);
		b.addEventListener('click', () => {
			colour = c;
			for (const o of $('palette').children)
				o.setAttribute('aria-checked',
				    String(o.title === c));
		});
		$('palette').appendChild(b);
	}
	$('width').addEventListener('change', () => {
		width = validWidth(Number($('width').value));
	});
	width = validWidth(Number($('width').value));

	/* -------------------------------------------------- delete, members */

	$('delete-room').addEventListener('click', () => {
		$('delete-room').hidden = true;
		$('delete-confirm').hidden = false;
	});
	$('delete-no').addEventListener('click', () => {
		$('delete-confirm').hidden = true;
		$('delete-room').hidden = false;
	});
	$('delete-yes').addEventListener('click', async () => {
		$('delete-yes').disabled = true;
		try {
			await Roomd.api('DELETE', Roomd.CANVAS + '/rooms/' +
			    encodeURIComponent(roomId), undefined, member.token);
			/* roomd now closes every socket with 1000 "room
			 * deleted", this one included. */
		} catch (e) {
			Roomd.showError(errorBox, e, 'Could not delete the room');
			$('delete-confirm').hidden = true;
			$('delete-room').hidden = false;
		} finally {
			$('delete-yes').disabled = false;
		}
	});

	async function refreshMembers() {
		if (ended)
			return;
		try {
			const list = await Roomd.api('GET', Roomd.CANVAS + '/rooms');
			const r = Array.isArray(list) ?
			    list.find((x) => x.roomId === roomId) : null;
			if (!r) {
				$('members').textContent = 'the room is not listed';
			} else {
				const names = [r.host + ' (host)'].concat(
				    (r.guests || []).map((g) => g.name));
				$('members').textContent = names.join(', ') +
				    (r.locked ? ' · locked' : '');
			}
		} catch (e) {
			$('members').textContent = 'unknown (' + e.message + ')';
		}
	}

	/* ----------------------------------------------------------- start */

	/* For the tests and the curious: the state of this page. */
	window.roomdCanvas = {
		get pointer() { return pointer; },
		get received() { return received; },
		get sent() { return sent; },
		/* nothing drawn here is waiting to be sent */
		get idle() {
			return activeId === null && pending.length === 0 &&
			    outbox.length === 0 && !frameQueued;
		},
		get state() { return $('conn-state').dataset.state; },
		get roomId() { return roomId; },
	};

	clearBoard();
	board.dataset.pointer = '0';
	$('room-id').textContent = roomId || '(none)';
	document.title = 'roomd — canvas ' + roomId;

	if (!roomId || member === null) {
		ended = true;
		setState('disconnected', 'not connected');
		Roomd.showError(errorBox, roomId ?
		    'You have not joined this room in this tab: join it from ' +
		    'the room list first.' :
		    'No room given: pick one in the room list.');
		board.classList.add('ended');
		$('tools').hidden = true;
		return;
	}

	$('me').textContent = member.name;
	$('me-line').hidden = false;
	$('host-mark').hidden = !member.host;
	$('delete-area').hidden = !member.host;

	connect();
	(async function loop() {
		await refreshMembers();
		if (!ended)
			setTimeout(loop, 2000);
	})();
})();

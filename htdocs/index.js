/*
 * index.js: the list of live canvas rooms, and the forms that create and
 * join one.  On success the token goes to sessionStorage and the browser
 * goes on to canvas.html?room=ID.
 */
'use strict';

(function () {
	const $ = (id) => document.getElementById(id);
	const errorBox = $('error');
	const REFRESH_MS = 2000;
	let rooms = [];			/* the last list fetched */
	let busy = false;		/* a create or join is under way */

	const LOCK_SVG = '<svg class="lock-icon" viewBox="0 0 16 16" ' +
	    'aria-hidden="true"><rect x="3" y="7" width="10" height="8" ' +
	    'rx="1.5"/><path d="M5 7V5a3 3 0 0 1 6 0v2" fill="none" ' +
	    'stroke="currentColor" stroke-width="1.6"/></svg>';

	/* Remember the name typed last, as a convenience. */
	const savedName = localStorage.getItem('roomd.name') || '';
	$('create-name').value = savedName;
	$('join-name').value = savedName;

	function rememberName(name) {
		try {
			localStorage.setItem('roomd.name', name);
		} catch (e) { /* private mode: never mind */ }
	}

	function render() {
		const body = $('rooms-body');
		const selected = $('join-room').value.trim();
		body.textContent = '';
		for (const r of rooms) {
			const tr = document.createElement('tr');
			tr.dataset.roomId = r.roomId;
			if (r.roomId === selected)
				tr.classList.add('selected');

			const id = document.createElement('td');
			id.className = 'room-id';
			id.textContent = r.roomId;
			id.title = r.roomId;

			const host = document.createElement('td');
			host.className = 'room-host';
			host.textContent = r.host;

			const guests = document.createElement('td');
			guests.className = 'room-guests';
			const n = Array.isArray(r.guests) ? r.guests.length : 0;
			guests.textContent = String(n);
			guests.title = n ? r.guests.map((g) => g.name).join(', ') :
			    'no guests';

			const lock = document.createElement('td');
			lock.className = 'room-lock';
			if (r.locked) {
				lock.innerHTML = LOCK_SVG;
				const t = document.createElement('span');
				t.className = 'lock-text';
				t.textContent = 'locked';
				lock.appendChild(t);
				lock.title = 'a password is needed to join';
			}

			const act = document.createElement('td');
			const b = document.createElement('button');
			b.type = 'button';
			b.className = 'join-this';
			b.textContent = 'Join';
			b.addEventListener('click', () => pick(r));
			act.appendChild(b);

			tr.append(id, host, guests, lock, act);
			body.appendChild(tr);
		}
		$('rooms').hidden = rooms.length === 0;
	}

	/* A room picked in the list: fill the join form with it. */
	function pick(r) {
		$('join-room').value = r.roomId;
		updatePasswordHint();
		render();
		const name = $('join-name');
		if (!name.value)
			name.focus();
		else if (r.locked)
			$('join-password').focus();
		else
			$('join-button').focus();
	}

	function updatePasswordHint() {
		const id = $('join-room').value.trim();
		const r = rooms.find((x) => x.roomId === id);
		const hint = $('join-password-hint');
		if (r && r.locked) {
			hint.textContent = '(this room is locked: give its password)';
			hint.classList.add('needed');
		} else {
			hint.textContent = '(only for locked rooms)';
			hint.classList.remove('needed');
		}
	}

	async function refresh() {
		const status = $('rooms-status');
		try {
			const list = await Roomd.api('GET', Roomd.CANVAS + '/rooms');
			rooms = Array.isArray(list) ? list : [];
			status.textContent = rooms.length ? rooms.length +
			    (rooms.length === 1 ? ' room' : ' rooms') +
			    ', refreshed every 2 s' :
			    'No rooms yet: create one.';
			status.classList.remove('error-text');
			render();
			updatePasswordHint();
		} catch (e) {
			status.textContent = 'Could not load the room list: ' +
			    Roomd.errorText(e.code, e.message);
			status.classList.add('error-text');
		}
	}

	function checkName(name) {
		if (name.length === 0)
			return 'Give your name.';
		if (Roomd.byteLength(name) > 64)
			return 'Your name is too long (at most 64 bytes).';
		return null;
	}

	function setBusy(b) {
		busy = b;
		$('create-button').disabled = b;
		$('join-button').disabled = b;
	}

	$('create-form').addEventListener('submit', async (ev) => {
		ev.preventDefault();
		if (busy)
			return;
		Roomd.clearError(errorBox);
		const host = $('create-name').value.trim();
		const password = $('create-password').value;
		const bad = checkName(host);
		if (bad) {
			Roomd.showError(errorBox, bad);
			return;
		}
		const body = { host };
		if (password !== '')
			body.password = password;
		setBusy(true);
		try {
			const r = await Roomd.api('POST', Roomd.CANVAS + '/rooms',
			    body);
			if (!r || typeof r.roomId !== 'string' ||
			    typeof r.token !== 'string')
				throw new Error('the server\'s answer has no room');
			rememberName(host);
			Roomd.saveMember(r.roomId, { token: r.token, name: host,
			    host: true });
			location.href = Roomd.canvasPage(r.roomId);
		} catch (e) {
			Roomd.showError(errorBox, e, 'Could not create the room');
			setBusy(false);
		}
	});

	$('join-form').addEventListener('submit', async (ev) => {
		ev.preventDefault();
		if (busy)
			return;
		Roomd.clearError(errorBox);
		const roomId = $('join-room').value.trim();
		const name = $('join-name').value.trim();
		const password = $('join-password').value;
		const bad = roomId === '' ? 'Pick a room.' : checkName(name);
		if (bad) {
			Roomd.showError(errorBox, bad);
			return;
		}
		const body = { name };
		if (password !== '')
			body.password = password;
		setBusy(true);
		try {
			const r = await Roomd.api('POST', Roomd.CANVAS + '/rooms/' +
			    encodeURIComponent(roomId) + '/join', body);
			if (!r || typeof r.token !== 'string')
				throw new Error('the server\'s answer has no token');
			rememberName(name);
			Roomd.saveMember(roomId, { token: r.token, name,
			    host: false });
			location.href = Roomd.canvasPage(roomId);
		} catch (e) {
			Roomd.showError(errorBox, e, 'Could not join the room');
			setBusy(false);
		}
	});

	$('join-room').addEventListener('input', () => {
		updatePasswordHint();
		render();
	});

	/* A page brought back from the back/forward cache: forms usable. */
	window.addEventListener('pageshow', () => setBusy(false));

	(async function loop() {
		await refresh();
		setTimeout(loop, REFRESH_MS);
	})();
})();

/*
 * chat.js: a client of the chat dialect: one WebSocket at /chat?name=NAME
 * for a guest, or /chat?token=TOKEN for someone who signed in through one
 * of the server's providers (GET /chat/auth/providers lists them; the
 * sign-in comes back to this page with #token=TOKEN),
 * channels (#name) to create, join and leave, private messages (@name),
 * and the events roomd tells of.
 *
 * The join and left events of participants name their channel in
 * "target"; the page recognises its own joins by its name (names are
 * unique while connected).
 * A dropped connection comes back by itself under the same name and joins
 * its channels again with since=LAST, the last seq seen in each.
 */
'use strict';

(function () {
	const $ = (id) => document.getElementById(id);
	const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
	const CHANNEL_RE = /^#[A-Za-z0-9_-]{1,64}$/;
	const BACKOFF_MIN = 500, BACKOFF_MAX = 5000;
	const RETRIES_NAME_TAKEN = 10;	/* our old connection may hold it */
	const errorBox = $('error');

	const CHAT_ERRORS = {
		bad_json: 'The server could not read the message',
		bad_request: 'The server refused the request',
		bad_target: 'That is not a valid channel or user',
		no_such_channel: 'There is no such channel',
		channel_exists: 'That channel exists already',
		already_joined: 'You are in that channel already',
		not_a_participant: 'You are not in that channel',
		no_such_user: 'Nobody of that name is connected',
		forbidden: 'Not allowed',
		name_taken: 'That name is taken',
	};

	let me = '';			/* our name */
	let token = null;		/* our session token, signed in */
	let myId = null;		/* our identifier, once seen */
	let ws = null;
	let wanted = false;		/* the user wants to be connected */
	let everOpen = false;
	let backoff = BACKOFF_MIN;
	let retryTimer = null;
	let takenRetries = 0;

	/* name -> { kind: 'channel'|'private', joined, lastSeq, messages,
	 *          unread, mine, gone } */
	const convs = new Map();
	const others = new Set();	/* channels heard of, not joined */
	const pendingJoins = [];	/* channels we asked to join, in order */
	const pendingCreates = new Set();
	const rejoins = new Set();	/* channels joined again on reconnect */
	let selected = null;

	/* ---------------------------------------------------------- views */

	function setState(state, text, detail) {
		const el = $('conn-state');
		el.dataset.state = state;
		el.textContent = text || state;
		$('conn-detail').textContent = detail || '';
	}

	function time() {
		const d = new Date();
		return String(d.getHours()).padStart(2, '0') + ':' +
		    String(d.getMinutes()).padStart(2, '0');
	}

	function log(kind, text) {
		const li = document.createElement('li');
		li.className = 'log-' + kind;
		const t = document.createElement('span');
		t.className = 'time';
		t.textContent = time();
		li.append(t, ' ', text);
		$('log').appendChild(li);
		$('log').scrollTop = $('log').scrollHeight;
	}

	function errorWords(code, message) {
		return Roomd.errorText(code, message, CHAT_ERRORS);
	}

	function showError(code, message, prefix) {
		const text = errorWords(code, message);
		Roomd.showError(errorBox, text, prefix || 'The server says');
		log('error', 'Error: ' + text);
	}

	function conv(name, kind) {
		let c = convs.get(name);
		if (!c) {
			c = { kind, joined: false, lastSeq: 0, messages: [],
			    unread: 0, mine: false, gone: false };
			convs.set(name, c);
		}
		return c;
	}

	function renderLists() {
		const chl = $('channel-list'), pl = $('private-list');
		const ol = $('other-list');
		chl.textContent = '';
		pl.textContent = '';
		ol.textContent = '';
		let nch = 0;
		for (const [name, c] of convs) {
			if (c.kind === 'channel' && !c.joined)
				continue;
			const li = document.createElement('li');
			li.dataset.name = name;
			if (name === selected)
				li.classList.add('selected');
			const b = document.createElement('button');
			b.type = 'button';
			b.className = 'conv';
			b.textContent = name;
			b.addEventListener('click', () => select(name));
			li.appendChild(b);
			if (c.unread > 0) {
				const u = document.createElement('span');
				u.className = 'unread';
				u.textContent = String(c.unread);
				u.title = c.unread + ' unread';
				li.appendChild(u);
			}
			if (c.kind === 'channel') {
				nch++;
				const l = document.createElement('button');
				l.type = 'button';
				l.className = 'small-btn leave';
				l.textContent = 'Leave';
				l.addEventListener('click', () => leave(name));
				li.appendChild(l);
				if (c.mine)
					li.appendChild(destroyButton(name));
				chl.appendChild(li);
			} else {
				pl.appendChild(li);
			}
		}
		$('no-channels').hidden = nch > 0;
		for (const name of others) {
			const c = convs.get(name);
			if (c && c.joined)
				continue;
			const li = document.createElement('li');
			li.dataset.name = name;
			const s = document.createElement('span');
			s.className = 'conv-name';
			s.textContent = name;
			const j = document.createElement('button');
			j.type = 'button';
			j.className = 'small-btn join';
			j.textContent = 'Join';
			j.addEventListener('click', () => join(name));
			li.append(s, j);
			if (c && c.mine)
				li.appendChild(destroyButton(name));
			ol.appendChild(li);
		}
		$('no-others').hidden = ol.children.length > 0;
	}

	function destroyButton(name) {
		const d = document.createElement('button');
		d.type = 'button';
		d.className = 'small-btn danger destroy';
		d.textContent = 'Destroy';
		d.title = 'you created it: delete it and its history';
		d.addEventListener('click', () => command('destroy', name));
		return d;
	}

	function messageItem(m) {
		const li = document.createElement('li');
		li.className = 'msg' + (m.name === me ? ' own' : '');
		const t = document.createElement('span');
		t.className = 'time';
		t.textContent = m.time;
		const from = document.createElement('b');
		from.className = 'from';
		from.textContent = m.name;
		const text = document.createElement('span');
		text.className = 'text';
		text.textContent = m.message;
		li.append(t, ' ', from, ': ', text);
		if (m.system)
			li.className = 'msg system';
		return li;
	}

	function renderConversation() {
		const ul = $('messages');
		ul.textContent = '';
		const c = selected ? convs.get(selected) : null;
		const canSend = !!c && !c.gone &&
		    (c.kind === 'private' || c.joined) && ws !== null &&
		    ws.readyState === WebSocket.OPEN;
		$('conv-title').textContent = c ? (c.kind === 'private' ?
		    'Private with ' + selected : selected) +
		    (c.gone ? ' (destroyed)' : c.kind === 'channel' &&
		    !c.joined ? ' (left)' : '') :
		    'Pick a channel or a user';
		$('message-input').disabled = !canSend;
		$('message-send').disabled = !canSend;
		if (!c)
			return;
		for (const m of c.messages)
			ul.appendChild(messageItem(m));
		ul.scrollTop = ul.scrollHeight;
	}

	function select(name) {
		selected = name;
		const c = convs.get(name);
		if (c)
			c.unread = 0;
		renderLists();
		renderConversation();
		if (!$('message-input').disabled)
			$('message-input').focus();
	}

	function addMessage(name, m) {
		const c = convs.get(name);
		c.messages.push(m);
		if (name === selected) {
			$('messages').appendChild(messageItem(m));
			$('messages').scrollTop = $('messages').scrollHeight;
		} else {
			c.unread++;
			renderLists();
		}
	}

	/* ----------------------------------------------------- connection */

	function connect() {
		retryTimer = null;
		if (!wanted)
			return;
		setState(everOpen ? 'reconnecting' : 'connecting',
		    everOpen ? 'reconnecting' : 'connecting');
		const sock = new WebSocket(Roomd.wsURL(Roomd.CHAT + (token ?
		    '?token=' + encodeURIComponent(token) :
		    '?name=' + encodeURIComponent(me))));
		ws = sock;
		let refused = null;
		let confirmTimer = null;
		/* roomd says nothing to a connection it accepts, and sends
		 * name_taken at once to one it refuses: a connection is taken
		 * as accepted once it has lasted a moment, or has been sent
		 * anything else. */
		const confirm = () => {
			clearTimeout(confirmTimer);
			confirmTimer = null;
			if (ws !== sock || refused !== null ||
			    $('conn-state').dataset.state === 'connected')
				return;
			const again = everOpen;
			everOpen = true;
			takenRetries = 0;
			backoff = BACKOFF_MIN;
			setState('connected', 'connected');
			log('info', again ? 'Connected again as ' + me + '.' :
			    'Connected as ' + me + (token ? ' (signed in).' :
			    ' (guest).'));
			renderConversation();
		};
		sock.onopen = () => {
			if (ws !== sock)
				return;
			myId = null;
			pendingJoins.length = 0;
			rejoins.clear();
			/* Back in every channel we were in, from where we were
			 * (refused, the connection ignores them). */
			for (const [name, c] of convs) {
				if (c.kind !== 'channel' || !c.joined)
					continue;
				c.joined = false;
				rejoins.add(name);
				sendJoin(name, c.lastSeq);
			}
			confirmTimer = setTimeout(confirm, 300);
		};
		sock.onmessage = (ev) => {
			if (ws !== sock)
				return;
			let m;
			try {
				m = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			if (m && m.type === 'error' && m.code === 'name_taken')
				refused = m;
			else
				confirm();
			handle(m);
		};
		sock.onclose = (ev) => {
			clearTimeout(confirmTimer);
			if (ws !== sock)
				return;
			ws = null;
			onClosed(ev, refused);
		};
	}

	function onClosed(ev, refused) {
		renderConversation();
		if (!wanted) {
			setState('disconnected', 'disconnected');
			return;
		}
		if (refused !== null) {
			if (everOpen && takenRetries < RETRIES_NAME_TAKEN) {
				/* our own lost connection still holds the name
				 * for about a second */
				takenRetries++;
				retry('the name is still held');
				return;
			}
			wanted = false;
			setState('disconnected', 'disconnected');
			if (everOpen)
				Roomd.showError(errorBox, 'Could not get back in: ' +
				    errorWords(refused.code, refused.message));
			showSignin();
			return;
		}
		if (!everOpen) {
			/* The handshake failed, or the connection was closed
			 * at once (the chat is full, for one). */
			wanted = false;
			setState('disconnected', 'disconnected');
			if (token) {
				/* expired, or the server has a new key */
				signOut();
				Roomd.showError(errorBox, 'Your sign-in is no ' +
				    'longer valid (or the server refused it): ' +
				    'sign in again.');
			} else
				Roomd.showError(errorBox, 'Could not connect to ' +
				    'the chat ' + (ev.code === 1013 ? '(the chat ' +
				    'is full; try again later).' : '(the server ' +
				    'refused the connection or cannot be ' +
				    'reached).'));
			showSignin();
			return;
		}
		log('info', 'Connection lost (' + ev.code +
		    (ev.reason ? ' ' + ev.reason : '') + ').');
		retry(ev.code === 1001 ? 'the server is restarting' :
		    'the connection was lost');
	}

	function retry(why) {
		if (!wanted || retryTimer !== null)
			return;
		const delay = backoff;
		backoff = Math.min(backoff * 2, BACKOFF_MAX);
		setState('reconnecting', 'reconnecting', why + '; trying again in ' +
		    (delay / 1000).toFixed(1) + ' s');
		retryTimer = setTimeout(connect, delay);
	}

	window.addEventListener('online', () => {
		if (retryTimer !== null) {
			clearTimeout(retryTimer);
			connect();
		}
	});

	function send(obj) {
		if (!ws || ws.readyState !== WebSocket.OPEN) {
			Roomd.showError(errorBox, 'Not connected: wait for the ' +
			    'connection to come back.');
			return false;
		}
		ws.send(JSON.stringify(obj));
		return true;
	}

	function command(action, target, extra) {
		return send(Object.assign({ type: 'command', action, target },
		    extra || {}));
	}

	function sendJoin(name, since) {
		pendingJoins.push(name);
		if (!command('join', name, since > 0 ? { since } : undefined))
			pendingJoins.pop();
	}

	/* ------------------------------------------------------- incoming */

	function handle(m) {
		if (!m || typeof m !== 'object')
			return;
		if (m.type === 'error')
			onError(m);
		else if (m.type === 'event')
			onEvent(m);
		else if (m.type === 'message')
			onMessage(m);
	}

	function learn(m) {
		if (m.name === me && typeof m.identifier === 'string')
			myId = m.identifier;
	}

	function onError(m) {
		const req = m.request && typeof m.request === 'object' ?
		    m.request : null;
		if (req && req.type === 'command') {
			if (req.action === 'join') {
				const again = rejoins.delete(req.target);
				const i = pendingJoins.indexOf(req.target);
				if (i >= 0)
					pendingJoins.splice(i, 1);
				if (m.code === 'already_joined') {
					/* then we are in: say so */
					const c = conv(req.target, 'channel');
					c.joined = true;
					renderLists();
				}
				if (again && m.code === 'no_such_channel') {
					/* destroyed while we were away */
					const c = conv(req.target, 'channel');
					c.gone = true;
					others.delete(req.target);
					log('event', req.target + ' was destroyed ' +
					    'while you were away.');
					renderLists();
					renderConversation();
					return;
				}
			} else if (req.action === 'create') {
				pendingCreates.delete(req.target);
			}
		}
		if (m.code === 'name_taken') {
			if (everOpen) {
				/* coming back: our old connection may still hold
				 * the name; it is tried again */
				log('info', 'The name ' + me + ' is still held; ' +
				    'trying again.');
				return;
			}
			Roomd.showError(errorBox, errorWords(m.code, m.message),
			    'Could not enter the chat');
			log('error', 'Error: ' + errorWords(m.code, m.message));
			return;
		}
		showError(m.code, m.message);
	}

	/* The channel a participant event is about: its target, or, from a
	 * server that does not say, the one joined channel if there is one. */
	function eventChannel(m) {
		if (typeof m.target === 'string')
			return m.target;
		const joined = [...convs].filter(([, c]) => c.kind ===
		    'channel' && c.joined);
		return joined.length === 1 ? joined[0][0] : null;
	}

	function onEvent(m) {
		if (m.emitter === 'channel') {
			const ch = m.identifier;
			if (m.event === 'create') {
				others.add(ch);
				const c = convs.get(ch);
				if (c) {	/* a new channel of an old name */
					c.gone = false;
					c.lastSeq = 0;
				}
				if (pendingCreates.delete(ch))
					conv(ch, 'channel').mine = true;
				log('event', ch + ' was created.');
			} else if (m.event === 'destroy') {
				others.delete(ch);
				const c = convs.get(ch);
				if (c) {
					const was = c.joined;
					c.joined = false;
					c.gone = true;
					c.mine = false;
					c.lastSeq = 0;
					if (was)
						c.messages.push({ time: time(),
						    name: '', system: true,
						    message: ch + ' was destroyed' });
				}
				log('event', ch + ' was destroyed.');
			}
			renderLists();
			renderConversation();
			return;
		}
		if (m.emitter !== 'participant')
			return;
		learn(m);
		const who = typeof m.name === 'string' ? m.name : m.identifier;
		if (m.event === 'join') {
			if (m.name === me && pendingJoins.length > 0) {
				const ch = pendingJoins.shift();
				const c = conv(ch, 'channel');
				c.joined = true;
				c.gone = false;
				others.add(ch);
				log('event', rejoins.delete(ch) ? 'You are back in ' +
				    ch + '.' : 'You joined ' + ch + '.');
				if (selected === null || selected === ch ||
				    !convs.has(selected))
					select(ch);
				else
					renderLists();
				renderConversation();
				return;
			}
			const ch = eventChannel(m);
			log('event', who + ' joined ' + (ch || 'one of your ' +
			    'channels') + '.');
		} else if (m.event === 'left') {
			const ch = eventChannel(m);
			log('event', who + ' left ' + (ch || 'one of your ' +
			    'channels') + '.');
		}
	}

	function onMessage(m) {
		learn(m);
		if (typeof m.target !== 'string' || typeof m.message !== 'string')
			return;
		const item = { time: time(), name: String(m.name || m.identifier),
		    message: m.message };
		if (m.target.startsWith('#')) {
			const c = conv(m.target, 'channel');
			if (typeof m.seq === 'number') {
				if (m.seq <= c.lastSeq)
					return;		/* had it already */
				c.lastSeq = m.seq;
			}
			addMessage(m.target, item);
		} else if (m.target.startsWith('@')) {
			/* to us from someone, or from us to someone */
			const peer = m.name === me ? m.target : '@' + m.name;
			const fresh = !convs.has(peer);
			conv(peer, 'private');
			addMessage(peer, item);
			if (fresh) {
				log('event', 'Private conversation with ' + peer +
				    '.');
				renderLists();
			}
		}
	}

	/* ------------------------------------------------------ commands */

	function channelName(raw) {
		let s = raw.trim();
		if (s && !s.startsWith('#'))
			s = '#' + s;
		return CHANNEL_RE.test(s) ? s : null;
	}

	function join(name) {
		const c = convs.get(name);
		Roomd.clearError(errorBox);
		sendJoin(name, c && !c.gone ? c.lastSeq : 0);
	}

	function leave(name) {
		const c = convs.get(name);
		Roomd.clearError(errorBox);
		if (!command('leave', name))
			return;
		/* roomd tells the others, not the leaver */
		if (c)
			c.joined = false;
		log('event', 'You left ' + name + '.');
		renderLists();
		renderConversation();
	}

	$('channel-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const ch = channelName($('channel-name').value);
		if (!ch) {
			Roomd.showError(errorBox, 'A channel name is # and 1 to ' +
			    '64 letters, digits, _ or -.');
			return;
		}
		Roomd.clearError(errorBox);
		pendingCreates.add(ch);
		if (!command('create', ch))
			pendingCreates.delete(ch);
	});

	$('channel-join').addEventListener('click', () => {
		const ch = channelName($('channel-name').value);
		if (!ch) {
			Roomd.showError(errorBox, 'A channel name is # and 1 to ' +
			    '64 letters, digits, _ or -.');
			return;
		}
		join(ch);
	});

	$('private-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		let s = $('private-name').value.trim();
		if (s.startsWith('@'))
			s = s.slice(1);
		if (!NAME_RE.test(s)) {
			Roomd.showError(errorBox, 'A user name is 1 to 64 ' +
			    'letters, digits, _ or -.');
			return;
		}
		Roomd.clearError(errorBox);
		conv('@' + s, 'private');
		$('private-name').value = '';
		select('@' + s);
	});

	$('message-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const text = $('message-input').value;
		if (!selected || text === '')
			return;
		/* what comes back is shown, not what was typed */
		if (send({ type: 'message', target: selected, message: text }))
			$('message-input').value = '';
	});

	/* -------------------------------------------------- signing in/out */

	function showSignin() {
		$('signin').hidden = false;
		$('chat').hidden = true;
		$('signin-button').disabled = false;
	}

	/* The claims of a JWT, unverified (the server verifies it). */
	function claimsOf(jwt) {
		try {
			const b = jwt.split('.')[1].replace(/-/g, '+')
			    .replace(/_/g, '/');
			return JSON.parse(atob(b + '==='.slice((b.length + 3) %
			    4)));
		} catch (e) {
			return null;
		}
	}

	function signOut() {
		token = null;
		try {
			sessionStorage.removeItem('roomd.chatToken');
		} catch (e) { /* never mind */ }
	}

	/* The providers of this server, as buttons that start a sign-in. */
	async function showProviders() {
		let list;
		try {
			list = await Roomd.api('GET', Roomd.CHAT +
			    '/auth/providers');
		} catch (e) {
			return;		/* an older server: guests only */
		}
		const box = $('provider-buttons');
		box.textContent = '';
		for (const p of list.providers || []) {
			const a = document.createElement('a');
			a.className = 'button provider';
			a.dataset.provider = p.name;
			a.href = p.login + '?return=' + encodeURIComponent(
			    location.pathname);
			a.textContent = 'Sign in with ' + p.name;
			box.appendChild(a);
		}
		$('providers').hidden = box.children.length === 0;
		$('signin-form').hidden = list.anonymous === false;
		$('no-guests').hidden = list.anonymous !== false;
	}

	$('signin-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const name = $('chat-name').value.trim();
		if (!NAME_RE.test(name)) {
			Roomd.showError(errorBox, 'A name is 1 to 64 letters, ' +
			    'digits, _ or - (no spaces).');
			return;
		}
		try {
			localStorage.setItem('roomd.chatName', name);
		} catch (e) { /* never mind */ }
		signOut();
		enter(name);
	});

	/* Into the chat as name (with token set, as a signed-in user). */
	function enter(name) {
		Roomd.clearError(errorBox);
		me = name;
		wanted = true;
		everOpen = false;
		takenRetries = 0;
		backoff = BACKOFF_MIN;
		convs.clear();
		others.clear();
		pendingJoins.length = 0;
		pendingCreates.clear();
		rejoins.clear();
		selected = null;
		$('log').textContent = '';
		$('chat-me').textContent = me;
		$('chat-badge').textContent = token ? 'signed in' : 'guest';
		$('chat-badge').title = token ? 'signed in through an ' +
		    'account provider' : 'a guest: not signed in';
		$('disconnect').textContent = token ? 'Sign out' : 'Disconnect';
		$('signin').hidden = true;
		$('chat').hidden = false;
		renderLists();
		renderConversation();
		connect();
	}

	$('disconnect').addEventListener('click', () => {
		wanted = false;
		if (retryTimer !== null) {
			clearTimeout(retryTimer);
			retryTimer = null;
		}
		if (ws)
			ws.close(1000, 'bye');
		signOut();
		setState('disconnected', 'disconnected');
		log('info', 'Disconnected.');
		showSignin();
	});

	/* For the tests and the curious. */
	window.roomdChat = {
		get state() { return $('conn-state').dataset.state; },
		get me() { return me; },
		get id() { return myId; },
		get signedIn() { return token !== null; },
	};

	$('chat-name').value = localStorage.getItem('roomd.chatName') || '';
	showProviders();
	/* Back from a sign-in (#token=...), or still signed in in this tab. */
	const back = new URLSearchParams(location.hash.slice(1)).get('token');
	if (back) {
		history.replaceState(null, '', location.pathname +
		    location.search);
		try {
			sessionStorage.setItem('roomd.chatToken', back);
		} catch (e) { /* then only for this visit */ }
	}
	let kept = back;
	try {
		kept = kept || sessionStorage.getItem('roomd.chatToken');
	} catch (e) { /* never mind */ }
	const claims = kept ? claimsOf(kept) : null;
	if (claims && typeof claims.name === 'string' &&
	    (!claims.exp || claims.exp * 1000 > Date.now())) {
		token = kept;
		enter(claims.name);
	} else if (kept)
		signOut();
})();

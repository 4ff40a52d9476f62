/*
 * common.js: what the pages of roomd share.  Plain browser JavaScript, no
 * build step: it defines one global, Roomd.
 */
'use strict';

(function () {
	/* Where the dialects are mounted (the defaults of roomd.conf). */
	const CANVAS = '/canvas';
	const CHAT = '/chat';

	/* Words for the error codes of the canvas dialect's HTTP routes. */
	const CANVAS_ERRORS = {
		bad_request: 'The request was refused',
		wrong_password: 'Wrong password',
		no_such_room: 'There is no such room',
		name_taken: 'That name is taken in this room',
		room_exists: 'A room with that id exists already',
		unauthorized: 'Not allowed (no token)',
		forbidden: 'Not allowed',
		bad_token: 'The server does not know your token for this room',
		bad_pointer: 'The server refused the resume position',
		bad_json: 'The server could not read a message',
		bad_action: 'The server refused a drawing action',
		bad_frame: 'The server refused a message',
		log_full: 'The room\'s drawing is full',
		arena_full: 'The server is out of memory for rooms',
	};

	class ApiError extends Error {
		constructor(status, code, message) {
			super(message);
			this.status = status;
			this.code = code;
		}
	}

	/* fetch a JSON route; resolves to the parsed body (or null), rejects
	 * with an ApiError carrying the server's {"error","message"}. */
	async function api(method, path, body, token) {
		const headers = {};
		const init = { method, headers, cache: 'no-store' };
		if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(body);
		}
		if (token)
			headers.Authorization = 'Bearer ' + token;
		let r;
		try {
			r = await fetch(path, init);
		} catch (e) {
			throw new ApiError(0, 'network',
			    'could not reach the server (' + e.message + ')');
		}
		const text = await r.text();
		let data = null;
		if (text) {
			try {
				data = JSON.parse(text);
			} catch (e) {
				data = null;
			}
		}
		if (!r.ok) {
			if (data && typeof data.error === 'string')
				throw new ApiError(r.status, data.error,
				    typeof data.message === 'string' ?
				    data.message : '');
			throw new ApiError(r.status, 'http_' + r.status,
			    'the server answered ' + r.status + ' ' +
			    r.statusText);
		}
		return data;
	}

	/* The server's message with its code, "wrong or missing password
	 * (wrong_password)"; words of our own when it sent none. */
	function errorText(code, message, words) {
		let s = message || (words || CANVAS_ERRORS)[code] || code ||
		    'unknown error';
		if (code && code !== 'network' && code !== 'refused')
			s += ' (' + code + ')';
		return s;
	}

	/* Show an error (an ApiError, an Error or a string) in element el. */
	function showError(el, err, prefix) {
		let text;
		if (err instanceof ApiError)
			text = errorText(err.code, err.message);
		else if (err && typeof err === 'object' && 'message' in err)
			text = String(err.message);
		else
			text = String(err);
		el.textContent = (prefix ? prefix + ': ' : '') + text;
		el.hidden = false;
	}

	function clearError(el) {
		el.textContent = '';
		el.hidden = true;
	}

	function wsURL(path) {
		return (location.protocol === 'https:' ? 'wss://' : 'ws://') +
		    location.host + path;
	}

	/* The token of each canvas room, kept for this tab. */
	const KEY = 'roomd.canvas.';

	function saveMember(roomId, member) {
		sessionStorage.setItem(KEY + roomId, JSON.stringify(member));
	}

	function loadMember(roomId) {
		try {
			const m = JSON.parse(sessionStorage.getItem(KEY + roomId));
			return m && typeof m.token === 'string' ? m : null;
		} catch (e) {
			return null;
		}
	}

	function forgetMember(roomId) {
		sessionStorage.removeItem(KEY + roomId);
	}

	function canvasPage(roomId) {
		return 'canvas.html?room=' + encodeURIComponent(roomId);
	}

	/* The byte length of a string in UTF-8, as the server counts names. */
	function byteLength(s) {
		return new TextEncoder().encode(s).length;
	}

	window.Roomd = {
		CANVAS, CHAT, ApiError, api, errorText, showError, clearError,
		wsURL, saveMember, loadMember, forgetMember, canvasPage,
		byteLength,
	};
})();

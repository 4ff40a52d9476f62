/*
 * server_ws.c: the WebSocket upgrade and RFC 6455 framing.
 *
 * wslay does the reading: it is fed from the connection's input buffer
 * and answers pings and close frames itself; roomd checks UTF-8 of text
 * messages.  A wslay context is 8.8 KB, most of what an idle connection
 * would cost, so a connection has one only while wslay holds something of
 * it: it is made when octets or a close or ping are due, and freed when a
 * read ends between messages with nothing queued.  Data frames that roomd sends are framed here and appended to
 * the output buffer directly.  That is safe because wslay's send callback
 * below always takes everything, so wslay never holds half a frame when
 * roomd adds one of its own.
 *
 * With websocket_compression, a connection may negotiate permessage-deflate
 * (server_deflate.c has the codec): its state is then a larger struct
 * ws_pmd, its wslay context lets RSV1 through and passes the payloads of
 * a compressed message to be inflated as they come, and the frames roomd
 * sends it are compressed when that makes them smaller.  A connection
 * that did not negotiate it is served exactly as before.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "roomd.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* conn->ws: wslay's context, and where the frame it reads ends. */
struct ws {
	wslay_event_context_ptr	 ctx;	/* NULL between messages */
	uint64_t		 left;	/* octets of it not passed to wslay */
	unsigned		 fragmented:1; /* a message's frames to come */
	unsigned		 pmd_bits:4;	/* permessage-deflate: window */
	unsigned		 pmd_feed:1;	/* this frame goes to inflate */
	struct evbuffer		*held;	/* messages read while held */
};
#define WS(conn)	((struct ws *)(conn)->ws)
/* The state of a connection that negotiated permessage-deflate. */
struct ws_pmd {
	struct ws			 ws;
	struct server_deflate_in	*in;	/* while a message is read */
};
#define WS_PMD(conn)	((struct ws_pmd *)(conn)->ws)

/* A shared frame (roomd.h) and its compressed variants. */
struct ws_frame {
	struct evbuffer	*plain;		/* header and payload */
	struct evbuffer	*packed[8];	/* by window bits - 8; NULL: plain */
	uint8_t		 tried;		/* bit i: packed[i] was made */
	uint8_t		 hlen;		/* of plain's header */
	uint8_t		 opcode;
};

static void	ws_flush(struct conn *, int);
static wslay_event_context_ptr ws_ctx(struct conn *);

/*
 * How many of the input's first `want' octets may go to wslay now: all of
 * them, except that a frame header goes whole and a close frame goes whole
 * within one read, or waits.  wslay checks the UTF-8 of a close reason
 * piece by piece and skips the first two octets of every piece, as if each
 * began with the status code: a close frame that arrived in two pieces had
 * its valid reason refused with 1007, one that arrived octet by octet had
 * an invalid reason accepted and echoed.  With whole headers wslay never
 * holds part of one, so it always asks for a whole buffer (4096 octets),
 * which a close frame (at most 131 octets) fits.
 */
static size_t
ws_passable(struct ws *ws, struct evbuffer *in, size_t want)
{
	struct evbuffer_ptr	 p;
	uint8_t			 h[14];
	size_t			 avail, pos = 0, need, ext, k;
	ev_ssize_t		 got;
	uint64_t		 plen, n;

	avail = evbuffer_get_length(in);
	if (want > avail)
		want = avail;
	while (pos < want) {
		if (ws->left > 0) {
			n = ws->left < want - pos ? ws->left : want - pos;
			pos += n;
			ws->left -= n;
			continue;
		}
		/* A frame starts at pos. */
		if (evbuffer_ptr_set(in, &p, pos, EVBUFFER_PTR_SET) == -1 ||
		    (got = evbuffer_copyout_from(in, &p, h, sizeof(h))) < 2)
			break;
		plen = h[1] & 0x7f;
		ext = plen == 126 ? 2 : plen == 127 ? 8 : 0;
		need = 2 + ext + (h[1] & 0x80 ? 4 : 0);
		if ((size_t)got < need)
			break;		/* the rest of the header is to come */
		for (k = 0; k < ext; k++)
			plen = (k == 0 ? 0 : plen << 8) | h[2 + k];
		if ((h[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && plen <= 125 &&
		    (avail - pos < need + plen ||
		    (pos > 0 && want - pos < need + plen)))
			break;
		if (pos > 0 && want - pos < need)
			break;
		ws->left = plen > UINT64_MAX - need ? UINT64_MAX : need + plen;
		if ((h[0] & 0x0f) == WSLAY_TEXT_FRAME ||
		    (h[0] & 0x0f) == WSLAY_BINARY_FRAME)
			ws->fragmented = !(h[0] & 0x80);
		else if ((h[0] & 0x0f) == WSLAY_CONTINUATION_FRAME &&
		    (h[0] & 0x80))
			ws->fragmented = 0;
	}
	return pos;
}

static ssize_t
ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *arg)
{
	struct conn	*conn = arg;
	struct evbuffer	*in;
	int		 n;

	if (conn->closed) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	/* Held (server_ws_hold): the rest waits in the input buffer. */
	if (conn->held || (in = conn_in(conn)) == NULL ||
	    (len = ws_passable(WS(conn), in, len)) == 0 ||
	    (n = evbuffer_remove(in, buf, len)) <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	stats_add(STAT_BYTES_IN, n);
	return n;
}

static ssize_t
ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	struct conn	*conn = arg;
	struct evbuffer	*out = conn_out(conn);

	if (out == NULL || evbuffer_add(out, data, len) == -1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	stats_add(STAT_BYTES_OUT, len);
	return (ssize_t)len;
}

/*
 * Write a close frame with code here, bypassing wslay: to answer a
 * protocol error wslay does not answer itself (1002), or when there is
 * no memory for wslay.  wslay's own queue is not sent after it.
 */
static void
ws_close_raw(struct conn *conn, int code)
{
	struct evbuffer	*out;
	uint8_t		 f[4] = { 0x88, 0x02 };

	if (conn->raw_closed || (WS(conn)->ctx != NULL &&
	    wslay_event_get_close_sent(WS(conn)->ctx)))
		return;
	f[2] = (uint8_t)(code >> 8);
	f[3] = (uint8_t)code;
	if ((out = conn_out(conn)) != NULL)
		evbuffer_add(out, f, sizeof(f));
	conn->raw_closed = 1;
	conn->peer_closed = 1;
	conn->state = CONN_CLOSING;
}

static void	ws_on_message(wslay_event_context_ptr,
		    const struct wslay_event_on_msg_recv_arg *, void *);

/* A data frame of a connection with permessage-deflate begins: the first
 * of a message with RSV1, and its continuations, go to inflate. */
static void
ws_pmd_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *f, void *arg)
{
	struct conn	*conn = arg;
	struct ws_pmd	*pmd = WS_PMD(conn);

	if (f->opcode == WSLAY_TEXT_FRAME || f->opcode == WSLAY_BINARY_FRAME) {
		server_deflate_in_free(pmd->in);
		pmd->in = NULL;
		if (wslay_get_rsv1(f->rsv) && conn->state == CONN_WS &&
		    (pmd->in = server_deflate_in_new()) == NULL)
			server_ws_close(conn, 1011, "out of memory");
		pmd->ws.pmd_feed = pmd->in != NULL;
	} else
		pmd->ws.pmd_feed = f->opcode == WSLAY_CONTINUATION_FRAME &&
		    pmd->in != NULL;
}

/* Inflate as the octets come, so that a message that inflates past
 * max_message_bytes is refused then, not once it is all in memory. */
static void
ws_pmd_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *c, void *arg)
{
	struct conn	*conn = arg;
	struct ws_pmd	*pmd = WS_PMD(conn);
	int		 rc;

	if (!pmd->ws.pmd_feed || pmd->in == NULL || c->data_length == 0)
		return;
	rc = server_deflate_in_feed(pmd->in, c->data, c->data_length,
	    env->conf.max_message_bytes);
	if (rc != 0) {
		server_deflate_in_free(pmd->in);
		pmd->in = NULL;
		pmd->ws.pmd_feed = 0;
		server_ws_close(conn, rc == DEFLATE_ETOOBIG ? 1009 :
		    rc == DEFLATE_EDATA ? 1007 : 1011,
		    server_deflate_strerror(rc));
	}
}

/* A compressed message is all in: hand the inflated one on. */
static void
ws_pmd_message(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct conn			*conn = arg;
	struct ws_pmd			*pmd = WS_PMD(conn);
	struct wslay_event_on_msg_recv_arg copy = *m;
	int				 rc;

	if (pmd->in == NULL || conn->state != CONN_WS)
		return;		/* refused while it inflated */
	rc = server_deflate_in_finish(pmd->in, env->conf.max_message_bytes,
	    &copy.msg, &copy.msg_length);
	if (rc != 0)
		server_ws_close(conn, rc == DEFLATE_ETOOBIG ? 1009 :
		    rc == DEFLATE_EDATA ? 1007 : 1011,
		    server_deflate_strerror(rc));
	else {
		copy.rsv = 0;
		ws_on_message(ctx, &copy, arg);
	}
	server_deflate_in_free(pmd->in);
	pmd->in = NULL;
}

/*
 * A message read while the connection is held waits for
 * server_ws_resume: its length, whether it is binary, its octets.  At
 * most max_message_bytes wait; a client that sends more is closed.
 */
static void
ws_keep(struct conn *conn, int binary, const uint8_t *msg, size_t len)
{
	struct ws	*ws = WS(conn);
	uint32_t	 n = (uint32_t)len;
	uint8_t		 b = binary != 0;

	if ((ws->held == NULL && (ws->held = evbuffer_new()) == NULL) ||
	    evbuffer_get_length(ws->held) + len + 5 >
	    env->conf.max_message_bytes ||
	    evbuffer_add(ws->held, &n, sizeof(n)) == -1 ||
	    evbuffer_add(ws->held, &b, 1) == -1 ||
	    evbuffer_add(ws->held, msg, len) == -1)
		server_ws_close(conn, 1008, "too many messages while the "
		    "server waits");
}

static void
ws_on_message(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
	struct conn	*conn = arg;

	if (wslay_get_rsv1(m->rsv) && WS(conn)->pmd_bits != 0) {
		ws_pmd_message(ctx, m, arg);
		return;
	}
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!util_valid_utf8(m->msg, m->msg_length)) {
			server_ws_close(conn, 1007, "invalid UTF-8");
			return;
		}
		/* FALLTHROUGH */
	case WSLAY_BINARY_FRAME:
		if (conn->state == CONN_WS && !server_message_allowed(conn)) {
			server_ws_close(conn, 1008, "message rate exceeded");
			return;
		}
		stats_dadd(conn->mount->dialect->id,
		    STAT_D_MESSAGES_IN, 1);
		/* Pongs wslay queued for pings that came before this message
		 * (between its fragments, say) go out before anything the
		 * dialect sends in answer, as the pings came first. */
		if (conn->state == CONN_WS && wslay_event_want_write(ctx))
			ws_flush(conn, 0);
		if (conn->state == CONN_WS && conn->held)
			ws_keep(conn, m->opcode == WSLAY_BINARY_FRAME,
			    m->msg, m->msg_length);
		else if (conn->state == CONN_WS)
			conn->mount->dialect->ws_message(conn,
			    m->opcode == WSLAY_BINARY_FRAME,
			    (const char *)m->msg, m->msg_length);
		break;
	case WSLAY_CONNECTION_CLOSE:
		/* A close body is empty or holds a two-byte status: one byte
		 * is a protocol error, answered as such, not echoed. */
		if (m->msg_length == 1)
			ws_close_raw(conn, 1002);
		conn->peer_closed = 1;
		conn->state = CONN_CLOSING;
		break;
	default:
		break;
	}
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = ws_recv,
	.send_callback = ws_send,
	.on_msg_recv_callback = ws_on_message,
};
static const struct wslay_event_callbacks ws_callbacks_pmd = {
	.recv_callback = ws_recv,
	.send_callback = ws_send,
	.on_frame_recv_start_callback = ws_pmd_start,
	.on_frame_recv_chunk_callback = ws_pmd_chunk,
	.on_msg_recv_callback = ws_on_message,
};

/*
 * A Sec-WebSocket-Key must be the base64 of 16 bytes: 22 digits and two
 * pads.  (EVP_DecodeBlock says 18 octets for any 24 characters it takes,
 * pads or not, so the digits are counted here.)
 */
static int
ws_key_valid(const char *key)
{
	static const char	 digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char		 raw[32];

	if (key == NULL || strlen(key) != 24 || strspn(key, digits) != 22 ||
	    strcmp(key + 22, "==") != 0)
		return 0;
	return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

/*
 * Answer the handshake.  Returns 0 and the connection speaks WebSocket, or
 * -1 after answering 426 or 400.
 */
int
server_ws_upgrade(struct conn *conn, struct http_req *req)
{
	char		 buf[128], accept[64], ext[160] = "";
	struct ws	*ws;
	struct evbuffer	*out;
	int		 bits = 0;

	if (req->ws_version == NULL || strcmp(req->ws_version, "13") != 0) {
		static const char body[] = "{\"error\":\"bad_version\","
		    "\"message\":\"WebSocket version 13 is required\"}";

		server_http_respond(conn, 426, "application/json", body,
		    sizeof(body) - 1, "Sec-WebSocket-Version: 13\r\n");
		return -1;
	}
	if (!ws_key_valid(req->ws_key)) {
		server_http_error(conn, 400, "bad_request", "missing or "
		    "malformed Sec-WebSocket-Key");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s%s", req->ws_key, WS_GUID);
	if (env->conf.websocket_compression &&
	    !server_deflate_negotiate(req->ws_extensions, &bits, ext,
	    sizeof(ext)))
		bits = 0;
	if (util_sha1_base64(buf, strlen(buf), accept, sizeof(accept)) == -1 ||
	    (ws = calloc(1, bits ? sizeof(struct ws_pmd) :
	    sizeof(*ws))) == NULL) {
		server_http_error(conn, 500, "internal", "cannot upgrade");
		return -1;
	}
	if ((out = conn_out(conn)) == NULL) {
		free(ws);
		return -1;
	}
	evbuffer_add_printf(out,
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s"
	    "X-Roomd-Worker: %d/%d\r\n\r\n", accept, bits ? ext : "",
	    env->slot, (int)getpid());
	ws->pmd_bits = bits;
	conn->ws = ws;
	conn->state = CONN_WS;
	server_ws_set_ping(conn, env->conf.ping_interval);
	return 0;
}

void
server_ws_free(struct conn *conn)
{
	if (conn->ws != NULL) {
		if (WS(conn)->held != NULL)
			evbuffer_free(WS(conn)->held);
		if (WS(conn)->ctx != NULL)
			wslay_event_context_free(WS(conn)->ctx);
		if (WS(conn)->pmd_bits != 0)
			server_deflate_in_free(WS_PMD(conn)->in);
		free(conn->ws);
	}
	conn->ws = NULL;
}

/* The connection's wslay context, made if it has none; NULL without
 * memory. */
static wslay_event_context_ptr
ws_ctx(struct conn *conn)
{
	struct ws	*ws = WS(conn);

	if (ws->ctx == NULL) {
		if (wslay_event_context_server_init(&ws->ctx, ws->pmd_bits ?
		    &ws_callbacks_pmd : &ws_callbacks, conn) != 0) {
			ws->ctx = NULL;
			return NULL;
		}
		if (ws->pmd_bits)
			wslay_event_config_set_allowed_rsv_bits(ws->ctx,
			    WSLAY_RSV1_BIT);
		wslay_event_config_set_max_recv_msg_length(ws->ctx,
		    env->conf.max_message_bytes);
	}
	return ws->ctx;
}

/* wslay holds nothing of an open connection between messages: let its
 * context go. */
static void
ws_idle(struct conn *conn)
{
	struct ws	*ws = WS(conn);

	if (ws->ctx != NULL && conn->state == CONN_WS && ws->left == 0 &&
	    !ws->fragmented && !wslay_event_want_write(ws->ctx) &&
	    wslay_event_get_queued_msg_count(ws->ctx) == 0) {
		wslay_event_context_free(ws->ctx);
		ws->ctx = NULL;
	}
}

/*
 * Let wslay write what it has queued (pongs, close frames).  With
 * may_close, a connection whose closing handshake is over is closed now;
 * without, it closes once its output drains (server.c's write callback),
 * so callers iterating over connections never see one vanish.
 */
static void
ws_flush(struct conn *conn, int may_close)
{
	wslay_event_context_ptr	 ctx = WS(conn)->ctx;

	if (conn->raw_closed || ctx == NULL)
		return;		/* closes once the output drains */
	if (wslay_event_send(ctx) != 0) {
		if (may_close) {
			server_close(conn, "WebSocket write failed");
			return;
		}
		/* Closed from the write callback, later in this loop. */
		conn->peer_closed = 1;
		conn->state = CONN_CLOSING;
		conn_io_flush_later(conn);
		return;
	}
	if (!wslay_event_want_read(ctx) && !wslay_event_want_write(ctx)) {
		/* Both close frames have passed: done once written out. */
		conn->peer_closed = 1;
		conn->state = CONN_CLOSING;
		if (may_close && conn_out_len(conn) == 0)
			server_close(conn, "WebSocket closed");
	}
}

void
server_ws_hold(struct conn *conn, void (*cancel)(void *), void *arg)
{
	conn->held = 1;
	conn->hold_cancel = cancel;
	conn->hold_arg = arg;
	conn_reading(conn, 0);
}

/* The next message kept while held, passed to the dialect; 0, or -1 if
 * none is left. */
static int
ws_replay(struct conn *conn)
{
	struct ws	*ws = WS(conn);
	uint32_t	 n;
	uint8_t		 b;
	char		*msg;

	if (ws->held == NULL || evbuffer_remove(ws->held, &n, sizeof(n)) !=
	    sizeof(n) || evbuffer_remove(ws->held, &b, 1) != 1)
		return -1;
	if ((msg = malloc(n + 1)) == NULL) {
		server_ws_close(conn, 1011, "out of memory");
		return -1;
	}
	evbuffer_remove(ws->held, msg, n);
	msg[n] = '\0';
	conn->mount->dialect->ws_message(conn, b, msg, n);
	free(msg);
	return 0;
}

/*
 * The dialect's wait is over: the messages kept meanwhile go to it in
 * order (one of them may hold the connection again), then reading goes
 * on, with what arrived in the input buffer.
 */
void
server_ws_resume(struct conn *conn)
{
	struct evbuffer	*in;

	conn->held = 0;
	conn->hold_cancel = NULL;
	conn->hold_arg = NULL;
	if (conn->closed || conn->ws == NULL)
		return;
	while (!conn->closed && !conn->held && conn->state == CONN_WS &&
	    ws_replay(conn) == 0)
		;
	if (conn->closed || conn->held)
		return;
	if (WS(conn)->held != NULL) {
		evbuffer_free(WS(conn)->held);
		WS(conn)->held = NULL;
	}
	conn_reading(conn, 1);
	if ((in = conn_in(conn)) != NULL && evbuffer_get_length(in) > 0)
		server_ws_read(conn);
}

void
server_ws_read(struct conn *conn)
{
	wslay_event_context_ptr	 ctx;
	int			 rc;

	if ((ctx = ws_ctx(conn)) == NULL) {
		server_close(conn, "out of memory");
		return;
	}
	conn->in_recv = 1;
	rc = wslay_event_recv(ctx);
	conn->in_recv = 0;
	if (conn->closed)
		return;
	if (rc != 0) {
		/* wslay refused a frame (a length past 2^63, a control frame
		 * too long or fragmented): say so with 1002 before closing,
		 * unless a close went out already. */
		ws_close_raw(conn, 1002);
		conn->peer_closed = 1;
		conn->state = CONN_CLOSING;
		log_debug("connection %llu: WebSocket protocol error",
		    (unsigned long long)conn->id);
		return;
	}
	ws_flush(conn, 1);
	if (!conn->closed)
		ws_idle(conn);
}

static void
ws_header(struct evbuffer *out, int opcode, size_t len, int prepend)
{
	uint8_t	 h[10];
	size_t	 n, i;

	h[0] = 0x80 | (uint8_t)opcode;
	if (len < 126) {
		h[1] = (uint8_t)len;
		n = 2;
	} else if (len < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		n = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		n = 10;
	}
	if (prepend)
		evbuffer_prepend(out, h, n);
	else
		evbuffer_add(out, h, n);
}

void
server_ws_send_text(struct conn *conn, const char *text, size_t len)
{
	server_ws_send(conn, 0, text, len);
}

void
server_ws_send(struct conn *conn, int binary, const char *text, size_t len)
{
	struct evbuffer	*out, *buf;
	struct ws_frame	*frame;

	if (conn->state != CONN_WS || (out = conn_out(conn)) == NULL)
		return;
	if (WS(conn)->pmd_bits != 0 && (buf = evbuffer_new()) != NULL) {
		/* Compressed (or not) as a frame for one. */
		evbuffer_add(buf, text, len);
		if ((frame = server_ws_frame_seal(buf, binary)) != NULL) {
			server_ws_frame_send(conn, frame);
			server_ws_frame_free(frame);
			return;
		}
	}
	ws_header(out, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, len, 0);
	evbuffer_add(out, text, len);
	stats_add(STAT_BYTES_OUT, len);
	stats_dadd(conn->mount->dialect->id, STAT_D_MESSAGES_OUT, 1);
}

void
server_ws_send_json(struct conn *conn, struct json_object *obj)
{
	const char	*text;
	size_t		 len;

	text = json_text(obj, &len);
	server_ws_send_text(conn, text, len);
	json_object_put(obj);
}

struct ws_frame *
server_ws_frame_seal(struct evbuffer *payload, int binary)
{
	struct ws_frame	*frame;
	size_t		 len = evbuffer_get_length(payload);

	if ((frame = calloc(1, sizeof(*frame))) == NULL) {
		evbuffer_free(payload);
		return NULL;
	}
	frame->opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
	ws_header(payload, frame->opcode, len, 1);
	frame->hlen = (uint8_t)(evbuffer_get_length(payload) - len);
	frame->plain = payload;
	return frame;
}

/*
 * The frame for a connection that negotiated a window of 2^bits: its
 * compressed variant, made on first need, unless compression does not
 * make it smaller (or there is no memory for it).
 */
static struct evbuffer *
ws_frame_packed(struct ws_frame *frame, int bits)
{
	struct evbuffer	*z;
	size_t		 len;
	int		 i = bits - 8;

	if (frame->tried & (1 << i))
		return frame->packed[i] ? frame->packed[i] : frame->plain;
	frame->tried |= 1 << i;
	if ((z = evbuffer_new()) == NULL)
		return frame->plain;
	if (server_deflate_message(bits, frame->plain, frame->hlen, z) == -1 ||
	    (len = evbuffer_get_length(z)) >=
	    evbuffer_get_length(frame->plain) - frame->hlen) {
		evbuffer_free(z);
		return frame->plain;
	}
	ws_header(z, frame->opcode | 0x40, len, 1);	/* RSV1 */
	return frame->packed[i] = z;
}

void
server_ws_frame_send(struct conn *conn, struct ws_frame *frame)
{
	struct evbuffer	*out, *f = frame->plain;

	if (conn->state != CONN_WS || (out = conn_out(conn)) == NULL)
		return;
	if (WS(conn)->pmd_bits != 0)
		f = ws_frame_packed(frame, WS(conn)->pmd_bits);
	evbuffer_add_buffer_reference(out, f);
	stats_add(STAT_BYTES_OUT, evbuffer_get_length(f));
	stats_dadd(conn->mount->dialect->id, STAT_D_MESSAGES_OUT, 1);
}

void
server_ws_frame_free(struct ws_frame *frame)
{
	size_t	 i;

	if (frame == NULL)
		return;
	for (i = 0; i < sizeof(frame->packed) / sizeof(frame->packed[0]); i++)
		if (frame->packed[i] != NULL)
			evbuffer_free(frame->packed[i]);
	evbuffer_free(frame->plain);
	free(frame);
}

/* Start the closing handshake; the connection ends when it completes. */
void
server_ws_close(struct conn *conn, int code, const char *reason)
{
	if (conn->ws == NULL || conn->closed || conn->state == CONN_CLOSING)
		return;
	conn->state = CONN_CLOSING;
	if (ws_ctx(conn) == NULL) {
		/* No memory for wslay: the close frame goes out raw. */
		ws_close_raw(conn, code);
		return;
	}
	wslay_event_queue_close(WS(conn)->ctx, (uint16_t)code,
	    (const uint8_t *)reason, strlen(reason));
	conn_timeouts(conn, ROOMD_STOP_TIMEOUT, ROOMD_STOP_TIMEOUT);
	/* Inside wslay's read, server_ws_read flushes when it returns. */
	if (!conn->in_recv)
		ws_flush(conn, 0);
}

void
server_ws_ping(struct conn *conn)
{
	struct wslay_event_msg	 msg = { WSLAY_PING, (const uint8_t *)"", 0 };

	if (conn->state != CONN_WS || ws_ctx(conn) == NULL)
		return;
	wslay_event_queue_msg(WS(conn)->ctx, &msg);
	ws_flush(conn, 0);
	if (!conn->in_recv)
		ws_idle(conn);
}

/*
 * A dialect may ping more often than ping_interval (the lobby does).  The
 * same span bounds a stalled output: a peer that takes nothing of a
 * backlog for twice as long is closed (server.c's event callback), as one
 * that says nothing is.
 */
void
server_ws_set_ping(struct conn *conn, int seconds)
{
	if (conn->state == CONN_WS)
		conn_timeouts(conn, seconds, 2 * seconds);
}

/*
 * wire.c: a connection without a socket for the HTTP and WebSocket
 * layers (see wire.h).  It defines what server_http.c and server_ws.c
 * call in server_io.c, server.c, server_file.c and dialect.c, so the
 * suites link those two files and util.c, and none of the others.
 *
 * The transport keeps the connection's input and output in evbuffers, as
 * server_io.c does for a plain socket.  Bytes the client sent wait in a
 * "socket" buffer until the connection reads (not while a request is
 * held).  An iteration is what one turn of the worker's loop does: read
 * what waits (server.c's server_read), answer a held request, then the
 * flush (server_io.c's conn_io_flush and server.c's server_write): the
 * output goes to the result, and a closing connection whose output
 * drained is closed.  server_close drops what is still in the output, as
 * conn_io_close does.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "roomd.h"
#include "wire.h"

#define WIRE_SEEDS	8	/* random chunkings per input */
#define WIRE_SPLIT_MAX	700	/* inputs up to this get every split in two */
#define WIRE_ITER_MAX	64	/* iterations after the input, at most */

static struct roomd	 wire_env;
struct roomd		*env = &wire_env;

/* The run in progress: its log, its output, its client's unread bytes. */
static struct wire_buf	 wlog, wout;
static struct evbuffer	*wsocket;

static void	wire_http(struct conn *, struct http_req *, const char *);
static int	wire_ws_accept(struct conn *, struct http_req *, const char *);
static void	wire_ws_open(struct conn *, struct http_req *, const char *);
static void	wire_ws_message(struct conn *, int, const char *, size_t);
static void	wire_ws_close(struct conn *);

static const struct dialect wire_dialect = {
	.name = "wire",
	.id = 6,
	.default_mount = "/wire",
	.http = wire_http,
	.ws_accept = wire_ws_accept,
	.ws_open = wire_ws_open,
	.ws_message = wire_ws_message,
	.ws_close = wire_ws_close,
};

static const struct dialect wsonly_dialect = {
	.name = "wsonly",
	.id = 7,
	.default_mount = "/wsonly",
	.ws_accept = wire_ws_accept,
	.ws_open = wire_ws_open,
	.ws_message = wire_ws_message,
	.ws_close = wire_ws_close,
};

/* ------------------------------------------------------------------ */
/* Byte strings */

void
wire_add(struct wire_buf *b, const void *p, size_t n)
{
	uint8_t	*q;

	q = realloc(b->p, b->len + n + 1);
	assert_non_null(q);
	if (n > 0)
		memcpy(q + b->len, p, n);
	b->p = q;
	b->len += n;
	b->p[b->len] = '\0';
}

void
wire_adds(struct wire_buf *b, const char *s)
{
	wire_add(b, s, strlen(s));
}

void
wire_addf(struct wire_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	wire_add(b, s, (size_t)n);
	free(s);
}

void
wire_buf_free(struct wire_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

/* ------------------------------------------------------------------ */
/* The environment and the routing */

int
wire_setup(void **state)
{
	struct roomd_config	*c = &env->conf;

	/* No arena: stats.c counts nothing without one. */
	memset(env, 0, sizeof(*env));
	env->slot = 0;
	c->max_header_bytes = WIRE_MAX_HEADER;
	c->max_body_bytes = WIRE_MAX_BODY;
	c->max_message_bytes = WIRE_MAX_MESSAGE;
	c->idle_timeout = 60;
	c->ping_interval = 30;
	snprintf(c->allowed_origins, sizeof(c->allowed_origins), "%s",
	    WIRE_ORIGIN);
	snprintf(c->mounts[0].path, sizeof(c->mounts[0].path), "/wire");
	c->mounts[0].dialect = &wire_dialect;
	snprintf(c->mounts[1].path, sizeof(c->mounts[1].path), "/wsonly");
	c->mounts[1].dialect = &wsonly_dialect;
	c->nmounts = 2;
	*state = calloc(1, sizeof(struct wire_case));
	return *state != NULL ? 0 : -1;
}

int
wire_teardown(void **state)
{
	struct wire_case	*wc = *state;

	wire_buf_free(&wc->in);
	wire_buf_free(&wc->want);
	free(wc);
	memset(env, 0, sizeof(*env));
	return 0;
}

/* The mounts do not nest here: the first whose path is a whole-segment
 * prefix of path serves it. */
const struct mount *
dialect_route(const char *path, const char **sub)
{
	const struct mount	*m;
	size_t			 len;
	int			 i;

	for (i = 0; i < env->conf.nmounts; i++) {
		m = &env->conf.mounts[i];
		len = strlen(m->path);
		if (strncmp(path, m->path, len) == 0 &&
		    (path[len] == '\0' || path[len] == '/')) {
			*sub = path + len;
			return m;
		}
	}
	return NULL;
}

void
server_file_serve(struct conn *conn, struct http_req *req)
{
	wire_addf(&wlog, "file %s\n", req->path);
	server_http_error(conn, 404, "not_found", "no such file");
}

/* The server API (api.c) is not under test here: no connection comes on
 * its listener. */
void
api_http(struct conn *conn, struct http_req *req)
{
	wire_addf(&wlog, "api %s\n", req->path);
	server_http_error(conn, 404, "not_found", "no API here");
}

/* ------------------------------------------------------------------ */
/* The test dialects */

static void
wire_cancel(void *arg)
{
	wire_adds(&wlog, "hold cancelled\n");
}

static void
wire_http(struct conn *conn, struct http_req *req, const char *sub)
{
	struct wire_buf	 b = { NULL, 0 };

	wire_addf(&wlog, "http %s %s\n", server_http_method(req), req->path);
	if (strcmp(sub, "/hold") == 0) {
		server_http_hold(conn, wire_cancel, NULL);
		return;
	}
	wire_addf(&b, "%s path=%s sub=%s query=%s body=", server_http_method(
	    req), req->path, sub, req->query ? req->query : "(none)");
	if (req->body_len > 0)
		wire_add(&b, req->body, req->body_len);
	server_http_respond(conn, 200, "text/plain", (const char *)b.p, b.len,
	    NULL);
	wire_buf_free(&b);
}

/* An iteration's end: the held request's answer has come. */
static void
wire_answer_held(struct conn *conn)
{
	static const char	 body[] = "held and answered";

	if (!conn->held || conn->closed)
		return;
	wire_adds(&wlog, "held answered\n");
	server_http_respond(conn, 200, "text/plain", body, sizeof(body) - 1,
	    NULL);
	server_http_resume(conn);
}

static int
wire_ws_accept(struct conn *conn, struct http_req *req, const char *sub)
{
	return strcmp(sub, "/deny") == 0 ? 401 : 0;
}

static void
wire_ws_open(struct conn *conn, struct http_req *req, const char *sub)
{
	wire_addf(&wlog, "open %s\n", sub[0] != '\0' ? sub : "/");
}

static void
wire_ws_message(struct conn *conn, int binary, const char *msg, size_t len)
{
	wire_addf(&wlog, "message %s %zu\n", binary ? "binary" : "text", len);
	if (!binary && len == 8 && memcmp(msg, "close-me", 8) == 0)
		server_ws_close(conn, 1000, "bye");
	else if (!binary && len == 7 && memcmp(msg, "ping-me", 7) == 0)
		server_ws_ping(conn);
	else
		server_ws_send(conn, binary, msg, len);
}

static void
wire_ws_close(struct conn *conn)
{
	wire_adds(&wlog, "ws_close\n");
}

/* ------------------------------------------------------------------ */
/* The worker (server.c) */

void
server_close(struct conn *conn, const char *reason)
{
	if (conn->closed)
		return;
	/* Not why: the same end may come by another path in other
	 * chunks ("WebSocket closed" now, or "closed" once the output is
	 * written). */
	wire_adds(&wlog, "closed\n");
	if (conn->held && conn->hold_cancel != NULL)
		conn->hold_cancel(conn->hold_arg);
	if (conn->ws != NULL && conn->mount->dialect->ws_close != NULL)
		conn->mount->dialect->ws_close(conn);
	/* conn_io_close: what waits in the output is dropped. */
	if (conn->out != NULL && evbuffer_get_length(conn->out) > 0)
		wire_addf(&wlog, "dropped %zu bytes\n",
		    evbuffer_get_length(conn->out));
	conn->closed = 1;
	conn->out_queued = 0;
}

int
server_message_allowed(struct conn *conn)
{
	return 1;
}

/* server_read: input arrived. */
static void
wire_read(struct conn *conn)
{
	struct evbuffer	*in;

	if (conn->state == CONN_HTTP) {
		server_http_read(conn);
		if (!conn->closed && conn->ws != NULL &&
		    (in = conn_in(conn)) != NULL && evbuffer_get_length(in) > 0)
			server_ws_read(conn);
	} else if (conn->ws != NULL)
		server_ws_read(conn);
	else if ((in = conn_in(conn)) != NULL)
		evbuffer_drain(in, evbuffer_get_length(in));
}

/* server_write: the output drained. */
static void
wire_write(struct conn *conn)
{
	if (conn->state == CONN_CLOSING &&
	    (conn->ws == NULL || conn->peer_closed))
		server_close(conn, "closed");
}

/* The flush: write the output out, then tell the worker it drained. */
static void
wire_flush(struct conn *conn)
{
	size_t	 n;

	if (!conn->out_queued || conn->closed)
		return;
	conn->out_queued = 0;
	if (conn->io_failed) {
		server_close(conn, "out of memory");
		return;
	}
	if (conn->out != NULL && (n = evbuffer_get_length(conn->out)) > 0) {
		wire_add(&wout, evbuffer_pullup(conn->out, -1), n);
		evbuffer_drain(conn->out, n);
	}
	wire_write(conn);
}

/*
 * One turn of the loop: read what the client sent unless reading is
 * off, answer a held request, flush.  Returns 1 if anything was done.
 */
static int
wire_iterate(struct conn *conn)
{
	int	 did = 0;

	if (!conn->closed && !conn->no_read &&
	    evbuffer_get_length(wsocket) > 0) {
		if (conn->in == NULL)
			conn->in = evbuffer_new();
		assert_non_null(conn->in);
		evbuffer_add_buffer(conn->in, wsocket);
		wire_read(conn);
		if (!conn->closed)
			conn_in_trim(conn);
		did = 1;
	}
	if (conn->held && !conn->closed) {
		wire_answer_held(conn);
		did = 1;
	}
	if (conn->out_queued && !conn->closed) {
		wire_flush(conn);
		did = 1;
	}
	return did;
}

/* ------------------------------------------------------------------ */
/* The transport (server_io.c) */

struct evbuffer *
conn_in(struct conn *conn)
{
	return conn->in;
}

void
conn_in_trim(struct conn *conn)
{
	if (conn->in != NULL && evbuffer_get_length(conn->in) == 0) {
		evbuffer_free(conn->in);
		conn->in = NULL;
	}
}

struct evbuffer *
conn_out(struct conn *conn)
{
	if (conn->closed)
		return NULL;
	if (conn->out == NULL && (conn->out = evbuffer_new()) == NULL)
		conn->io_failed = 1;
	conn->out_queued = 1;
	return conn->out;
}

size_t
conn_out_len(struct conn *conn)
{
	if (conn->closed || conn->out == NULL)
		return 0;
	return evbuffer_get_length(conn->out);
}

void
conn_io_flush_later(struct conn *conn)
{
	if (!conn->closed)
		conn->out_queued = 1;
}

void
conn_reading(struct conn *conn, int on)
{
	if (!conn->closed)
		conn->no_read = !on;
}

void
conn_timeouts(struct conn *conn, int idle, int stall)
{
	if (conn->closed)
		return;
	conn->idle = idle;
	conn->stall = stall;
}

/* ------------------------------------------------------------------ */
/* Runs */

static const char *
wire_state(const struct conn *conn)
{
	if (conn->closed)
		return "closed";
	switch (conn->state) {
	case CONN_HTTP:
		return "http";
	case CONN_WS:
		return "websocket";
	default:
		return "closing";
	}
}

struct wire_result *
wire_run(const void *in, size_t len, const size_t *chunks, size_t nchunks)
{
	struct wire_result	*r;
	struct conn		*conn;
	const uint8_t		*p = in;
	size_t			 k, n;
	int			 i;

	assert_non_null(conn = calloc(1, sizeof(*conn)));
	assert_non_null(wsocket = evbuffer_new());
	wlog.len = wout.len = 0;
	wire_adds(&wlog, "");
	wire_adds(&wout, "");
	server_http_start(conn);
	for (k = 0; len > 0; k++) {
		n = k < nchunks && chunks[k] < len ? chunks[k] : len;
		evbuffer_add(wsocket, p, n);
		p += n;
		len -= n;
		wire_iterate(conn);
	}
	for (i = 0; i < WIRE_ITER_MAX && wire_iterate(conn); i++)
		;
	/* What a closed connection did not read is gone with it (and how
	 * much of it a WebSocket took first depends on the chunks). */
	if (conn->closed)
		wire_adds(&wlog, "end: closed\n");
	else
		wire_addf(&wlog, "end: %s, %zu bytes unread\n",
		    wire_state(conn), evbuffer_get_length(wsocket) +
		    (conn->in != NULL ? evbuffer_get_length(conn->in) : 0));
	/* server_flush frees a connection. */
	server_ws_free(conn);
	if (conn->req != NULL)
		server_http_free(conn->req);
	if (conn->in != NULL)
		evbuffer_free(conn->in);
	if (conn->out != NULL)
		evbuffer_free(conn->out);
	free(conn);
	evbuffer_free(wsocket);
	wsocket = NULL;
	assert_non_null(r = calloc(1, sizeof(*r)));
	r->out = (char *)wout.p;
	r->outlen = wout.len;
	r->log = (char *)wlog.p;
	wout.p = wlog.p = NULL;
	wout.len = wlog.len = 0;
	return r;
}

void
wire_result_free(struct wire_result *r)
{
	if (r == NULL)
		return;
	free(r->out);
	free(r->log);
	free(r);
}

void
wire_print(const char *what, const void *buf, size_t len)
{
	const uint8_t	*p = buf;
	size_t		 i;

	fprintf(stderr, "%s (%zu bytes):\n\t\"", what, len);
	for (i = 0; i < len; i++) {
		if (p[i] == '\n')
			fprintf(stderr, "\\n\"\n\t\"");
		else if (p[i] == '\r')
			fprintf(stderr, "\\r");
		else if (p[i] == '"' || p[i] == '\\')
			fprintf(stderr, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			fprintf(stderr, "\\x%02x", p[i]);
		else
			fputc(p[i], stderr);
	}
	fprintf(stderr, "\"\n");
}

/* splitmix64, for the random chunkings. */
static uint64_t
wire_random(uint64_t *state)
{
	uint64_t	 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Chunks of 1 to 2 * mean - 1 bytes, mean between 2 and 33. */
static size_t
wire_random_chunks(uint64_t seed, size_t len, size_t *chunks)
{
	uint64_t	 st = seed;
	size_t		 n = 0, left = len, mean, c;

	mean = 2 + wire_random(&st) % 32;
	while (left > 0) {
		c = 1 + wire_random(&st) % (2 * mean - 1);
		chunks[n++] = c < left ? c : left;
		left -= chunks[n - 1];
	}
	return n;
}

static int
wire_same(const struct wire_result *a, const struct wire_result *b)
{
	return a->outlen == b->outlen && memcmp(a->out, b->out, a->outlen) ==
	    0 && strcmp(a->log, b->log) == 0;
}

/* Run once in these chunks; fail if it differs from the whole run. */
static void
wire_compare(const struct wire_result *whole, const void *in, size_t len,
    const size_t *chunks, size_t nchunks, const char *how)
{
	struct wire_result	*r;

	r = wire_run(in, len, chunks, nchunks);
	if (wire_same(whole, r)) {
		wire_result_free(r);
		return;
	}
	fprintf(stderr, "fed %s, the result differs from the input "
	    "fed whole\n", how);
	wire_print("input", in, len);
	wire_print("output, fed whole", whole->out, whole->outlen);
	wire_print("output, fed in chunks", r->out, r->outlen);
	fprintf(stderr, "events, fed whole:\n%sevents, fed in chunks:"
	    "\n%s", whole->log, r->log);
	fail_msg("the result depends on how the input is chunked "
	    "(%s)", how);
}

struct wire_result *
wire_every_chunking(const void *in, size_t len)
{
	struct wire_result	*whole;
	size_t			*chunks, i, n;
	uint64_t		 seed;
	char			 how[64];

	whole = wire_run(in, len, NULL, 0);
	assert_non_null(chunks = calloc(len + 2, sizeof(*chunks)));
	for (i = 0; i < len; i++)
		chunks[i] = 1;
	wire_compare(whole, in, len, chunks, len, "one byte at a time");
	for (seed = 1; seed <= WIRE_SEEDS; seed++) {
		n = wire_random_chunks(seed, len, chunks);
		snprintf(how, sizeof(how), "in random chunks, seed %llu",
		    (unsigned long long)seed);
		wire_compare(whole, in, len, chunks, n, how);
	}
	for (i = 1; len <= WIRE_SPLIT_MAX && i < len; i++) {
		chunks[0] = i;
		snprintf(how, sizeof(how), "in two pieces, the first of %zu "
		    "bytes", i);
		wire_compare(whole, in, len, chunks, 1, how);
	}
	free(chunks);
	return whole;
}

void
wire_expect(const struct wire_buf *in, const struct wire_buf *want,
    const char *log)
{
	struct wire_result	*r;

	r = wire_every_chunking(in->p, in->len);
	assert_wire_output(r, want);
	if (strcmp(r->log, log) != 0) {
		fprintf(stderr, "events:\n%sexpected:\n%s", r->log, log);
		fail_msg("the events are not those expected");
	}
	wire_result_free(r);
}

void
wire_assert_output(const struct wire_result *r, const struct wire_buf *want,
    const char *file, int line)
{
	if (r->outlen == want->len && memcmp(r->out, want->p, want->len) == 0)
		return;
	wire_print("roomd wrote", r->out, r->outlen);
	wire_print("expected", want->p, want->len);
	fprintf(stderr, "events:\n%s", r->log);
	_fail(file, line);
}

/* ------------------------------------------------------------------ */
/* What clients send and what roomd answers */

void
wire_client_frame(struct wire_buf *b, int first, const void *data,
    size_t len, uint32_t key)
{
	const uint8_t	*p = data;
	uint8_t		 h[14], m[4];
	size_t		 n = 0, i;
	uint8_t		 bit = key != 0 ? 0x80 : 0;

	h[n++] = (uint8_t)first;
	if (len < 126)
		h[n++] = bit | (uint8_t)len;
	else if (len < 65536) {
		h[n++] = bit | 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = bit | 127;
		for (i = 0; i < 8; i++)
			h[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	for (i = 0; key != 0 && i < 4; i++)
		h[n++] = m[i] = (uint8_t)(key >> (24 - 8 * i));
	wire_add(b, h, n);
	for (i = 0; i < len; i++) {
		h[0] = key != 0 ? p[i] ^ m[i % 4] : p[i];
		wire_add(b, h, 1);
	}
}

void
wire_server_frame(struct wire_buf *b, int opcode, const void *data,
    size_t len)
{
	uint8_t	 h[10];
	size_t	 n = 0, i;

	h[n++] = 0x80 | (uint8_t)opcode;
	if (len < 126)
		h[n++] = (uint8_t)len;
	else if (len < 65536) {
		h[n++] = 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = 127;
		for (i = 0; i < 8; i++)
			h[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	wire_add(b, h, n);
	wire_add(b, data, len);
}

void
wire_server_close(struct wire_buf *b, int code, const char *reason)
{
	struct wire_buf	 body = { NULL, 0 };
	uint8_t		 c[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	if (code != 0) {
		wire_add(&body, c, 2);
		wire_adds(&body, reason);
	}
	wire_server_frame(b, 8, body.p, body.len);
	wire_buf_free(&body);
}

void
wire_handshake(struct wire_buf *b, const char *path, const char *extra)
{
	wire_addf(b, "GET %s HTTP/1.1\r\n"
	    "Host: wire.example\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "%s\r\n", path, extra != NULL ? extra : "");
}

void
wire_switching(struct wire_buf *b)
{
	wire_addf(b, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "X-Roomd-Worker: 0/%d\r\n\r\n", (int)getpid());
}

static const char *
wire_reason(int status)
{
	static const struct {
		int		 status;
		const char	*text;
	} reasons[] = {
		{ 200, "OK" }, { 204, "No Content" }, { 400, "Bad Request" },
		{ 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 408, "Request Timeout" },
		{ 413, "Payload Too Large" }, { 426, "Upgrade Required" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
	};
	size_t	 i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	fail_msg("no reason phrase for %d in wire.c", status);
	return NULL;
}

void
wire_response(struct wire_buf *b, int status, int keep, const char *extra,
    const char *type, const char *body, int head)
{
	wire_addf(b, "HTTP/1.1 %d %s\r\n"
	    "Server: roomd/%s\r\n"
	    "X-Roomd-Worker: 0/%d\r\n"
	    "Connection: %s\r\n"
	    "Access-Control-Allow-Origin: *\r\n%s", status,
	    wire_reason(status), PACKAGE_VERSION, (int)getpid(),
	    keep ? "keep-alive" : "close", extra != NULL ? extra : "");
	if (type != NULL)
		wire_addf(b, "Content-Type: %s\r\n", type);
	if (status != 204 && status != 304)
		wire_addf(b, "Content-Length: %zu\r\n", body ? strlen(body) :
		    0);
	wire_adds(b, "\r\n");
	if (body != NULL && !head)
		wire_adds(b, body);
}

void
wire_error(struct wire_buf *b, int status, int keep, const char *code,
    const char *message)
{
	struct wire_buf	 body = { NULL, 0 };

	wire_addf(&body, "{\"error\":\"%s\",\"message\":\"%s\"}", code,
	    message);
	wire_response(b, status, keep, NULL, "application/json",
	    (const char *)body.p, 0);
	wire_buf_free(&body);
}

/* One frame at p as a line of text; its length, or 0 if it is cut. */
static size_t
wire_frame_line(struct wire_buf *s, const uint8_t *p, size_t avail)
{
	static const char *const names[16] = { "continuation", "text",
	    "binary", NULL, NULL, NULL, NULL, NULL, "close", "ping", "pong" };
	uint64_t	 len;
	size_t		 hdr = 2, k;
	int		 op;

	if (avail < 2)
		return 0;
	op = p[0] & 0x0f;
	len = p[1] & 0x7f;
	if (len >= 126) {
		hdr = len == 126 ? 4 : 10;
		if (avail < hdr)
			return 0;
		for (len = 0, k = 2; k < hdr; k++)
			len = len << 8 | p[k];
	}
	if ((p[1] & 0x80) || avail - hdr < len)
		return 0;
	if (names[op] == NULL || (p[0] & 0x70) || !(p[0] & 0x80))
		wire_addf(s, "odd frame %02x\n", p[0]);
	else if (op == 2)
		wire_addf(s, "binary: %llu bytes\n", (unsigned long long)len);
	else if (op == 8 && len >= 2)
		wire_addf(s, "close: %u %.*s\n", (unsigned)p[hdr] << 8 |
		    p[hdr + 1], (int)len - 2, p + hdr + 2);
	else
		wire_addf(s, "%s: %.*s\n", names[op], (int)len, p + hdr);
	return hdr + (size_t)len;
}

char *
wire_frames(const struct wire_result *r)
{
	struct wire_buf	 s = { NULL, 0 };
	const char	*end;
	const uint8_t	*p;
	size_t		 off, n;

	if (strncmp(r->out, "HTTP/1.1 101 ", 13) != 0 ||
	    (end = strstr(r->out, "\r\n\r\n")) == NULL)
		return NULL;
	wire_adds(&s, "");
	p = (const uint8_t *)r->out;
	for (off = (size_t)(end + 4 - r->out); off < r->outlen; off += n)
		if ((n = wire_frame_line(&s, p + off, r->outlen - off)) == 0) {
			wire_adds(&s, "partial or masked frame\n");
			break;
		}
	return (char *)s.p;
}

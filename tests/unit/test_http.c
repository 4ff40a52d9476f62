/*
 * test_http.c: cmocka unit tests for src/server_http.c, fed bytes without
 * a socket (tests/unit/wire.c).
 *
 * Every input is fed whole, one byte at a time, in random chunks of
 * several seeds and (short ones) split in two at every offset; each way
 * must give the same bytes back and the same events (wire_expect), and
 * those are compared with exactly what roomd should write.
 *
 * Covered: a GET, a HEAD, an OPTIONS preflight, a POST with a
 * Content-Length body and one with a chunked body, percent-decoded
 * paths; pipelined requests, with Connection: close among them, behind a
 * held request, and HTTP/1.0; the header limit (size and count: 431),
 * the body limit (declared and chunked: 413), a malformed request line,
 * a bad target and a bad percent-escape (400); the WebSocket upgrade with
 * its 101 and Sec-WebSocket-Accept, and each way it is refused (426 for
 * the version, 400 for the key, the method or another protocol, 401 from
 * the dialect, 403 for a foreign Origin, 404 where nothing is mounted);
 * a plain request where only WebSockets are served (426); the static
 * files where nothing is mounted.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <http_parser.h>

#include "roomd.h"
#include "wire.h"

/* What the /wire dialect answers, keep-alive or not. */
static void
echo(struct wire_buf *want, int keep, const char *method, const char *path,
    const char *sub, const char *query, const char *body)
{
	struct wire_buf	 b = { NULL, 0 };

	wire_addf(&b, "%s path=%s sub=%s query=%s body=%s", method, path, sub,
	    query, body);
	wire_response(want, 200, keep, NULL, "text/plain", (const char *)b.p,
	    strcmp(method, "HEAD") == 0);
	wire_buf_free(&b);
}


static void
http_get(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/hello?x=1&y=%41 HTTP/1.1\r\n"
	    "Host: wire.example\r\n\r\n");
	echo(&c->want, 1, "GET", "/wire/hello", "/hello", "x=1&y=%41", "");
	wire_expect(&c->in, &c->want, "http GET /wire/hello\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_get_percent_decoded(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/a%20b%2Fc HTTP/1.1\r\nHost: h\r\n\r\n");
	echo(&c->want, 1, "GET", "/wire/a b/c", "/a b/c", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/a b/c\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_head_has_no_body(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "HEAD /wire/x HTTP/1.1\r\nHost: h\r\n\r\n");
	echo(&c->want, 1, "HEAD", "/wire/x", "/x", "(none)", "");
	wire_expect(&c->in, &c->want, "http HEAD /wire/x\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_options_preflight(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "OPTIONS /wire/x HTTP/1.1\r\nHost: h\r\n"
	    "Origin: https://elsewhere.example\r\n"
	    "Access-Control-Request-Method: POST\r\n\r\n");
	wire_response(&c->want, 204, 1, "Access-Control-Allow-Methods: GET, "
	    "POST, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: "
	    "Authorization, Content-Type\r\nAccess-Control-Max-Age: 600\r\n",
	    NULL, NULL, 0);
	wire_expect(&c->in, &c->want, "end: http, 0 bytes unread\n");
}

static void
http_post_content_length(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "POST /wire/rooms HTTP/1.1\r\nHost: h\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 17\r\n\r\n{\"name\":\"lobby\"}\n");
	echo(&c->want, 1, "POST", "/wire/rooms", "/rooms", "(none)",
	    "{\"name\":\"lobby\"}\n");
	wire_expect(&c->in, &c->want, "http POST /wire/rooms\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_post_chunked(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "POST /wire/c HTTP/1.1\r\nHost: h\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n");
	echo(&c->want, 1, "POST", "/wire/c", "/c", "(none)", "hello, world");
	wire_expect(&c->in, &c->want, "http POST /wire/c\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_pipelined(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/1 HTTP/1.1\r\nHost: h\r\n\r\n"
	    "POST /wire/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
	    "DELETE /wire/3?q HTTP/1.1\r\nHost: h\r\n\r\n"
	    "GET /elsewhere HTTP/1.1\r\nHost: h\r\n\r\n"
	    "GET /wire/5 HTTP/1.1\r\nHost: h\r\n\r\n");
	echo(&c->want, 1, "GET", "/wire/1", "/1", "(none)", "");
	echo(&c->want, 1, "POST", "/wire/2", "/2", "(none)", "abc");
	echo(&c->want, 1, "DELETE", "/wire/3", "/3", "q", "");
	wire_error(&c->want, 404, 1, "not_found", "no such file");
	echo(&c->want, 1, "GET", "/wire/5", "/5", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/1\nhttp POST /wire/2\n"
	    "http DELETE /wire/3\nfile /elsewhere\nhttp GET /wire/5\n"
	    "end: http, 0 bytes unread\n");
}

/* What follows a request with Connection: close is never read. */
static void
http_pipelined_connection_close(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/1 HTTP/1.1\r\nHost: h\r\n\r\n"
	    "GET /wire/2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	    "GET /wire/3 HTTP/1.1\r\nHost: h\r\n\r\n");
	echo(&c->want, 1, "GET", "/wire/1", "/1", "(none)", "");
	echo(&c->want, 0, "GET", "/wire/2", "/2", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/1\nhttp GET /wire/2\n"
	    "closed\n"
	    "end: closed\n");
}

static void
http_10_closes(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/old HTTP/1.0\r\n\r\n");
	echo(&c->want, 0, "GET", "/wire/old", "/old", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/old\nclosed\n"
	    "end: closed\n");
}

/* A held request is answered later; the next waits for it. */
static void
http_pipelined_behind_held(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/hold HTTP/1.1\r\nHost: h\r\n\r\n"
	    "GET /wire/after HTTP/1.1\r\nHost: h\r\n\r\n");
	wire_response(&c->want, 200, 1, NULL, "text/plain", "held and answered",
	    0);
	echo(&c->want, 1, "GET", "/wire/after", "/after", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/hold\nheld answered\n"
	    "http GET /wire/after\nend: http, 0 bytes unread\n");
}

static void
http_header_too_large(void **state)
{
	struct wire_case	*c = *state;
	char		 v[WIRE_MAX_HEADER];

	memset(v, 'v', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	wire_addf(&c->in, "GET /wire/x HTTP/1.1\r\nHost: h\r\nX-Big: %s\r\n\r\n"
	    "GET /wire/y HTTP/1.1\r\n\r\n", v);
	wire_error(&c->want, 431, 0, "headers_too_large",
	    "Request Header Fields Too Large");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

/* Just under the limit passes: what counts is the URL, names, values. */
static void
http_header_at_limit(void **state)
{
	struct wire_case	*c = *state;
	char		 v[WIRE_MAX_HEADER];
	size_t		 n;

	/* "/wire/x" + "Host" + "h" + "X-Big" + v = WIRE_MAX_HEADER */
	n = WIRE_MAX_HEADER - strlen("/wire/x") - strlen("Host") - 1 -
	    strlen("X-Big");
	memset(v, 'v', n);
	v[n] = '\0';
	wire_addf(&c->in, "GET /wire/x HTTP/1.1\r\nHost: h\r\n"
	    "X-Big: %s\r\n\r\n",
	    v);
	echo(&c->want, 1, "GET", "/wire/x", "/x", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/x\n"
	    "end: http, 0 bytes unread\n");
}

/* A request of n headers "A: b". */
static void
many_headers(struct wire_buf *in, int n)
{
	int	 i;

	in->len = 0;
	wire_adds(in, "GET /wire/x HTTP/1.1\r\n");
	for (i = 0; i < n; i++)
		wire_adds(in, "A: b\r\n");
	wire_adds(in, "\r\n");
}

/* 100 headers are served (HTTP_MAX_HEADERS); 102 are refused. */
static void
http_too_many_headers(void **state)
{
	struct wire_case	*c = *state;

	many_headers(&c->in, 100);
	echo(&c->want, 1, "GET", "/wire/x", "/x", "(none)", "");
	wire_expect(&c->in, &c->want, "http GET /wire/x\n"
	    "end: http, 0 bytes unread\n");
	many_headers(&c->in, 102);
	c->want.len = 0;
	wire_error(&c->want, 431, 0, "headers_too_large",
	    "Request Header Fields Too Large");
	wire_expect(&c->in, &c->want, "closed\nend: closed\n");
}

/*
 * The 101st header was let through: headers were counted as the next one
 * began, so the last one never was.
 */
static void
http_101_headers_refused(void **state)
{
	struct wire_case	*c = *state;

	many_headers(&c->in, 101);
	wire_error(&c->want, 431, 0, "headers_too_large",
	    "Request Header Fields Too Large");
	wire_expect(&c->in, &c->want, "closed\nend: closed\n");
}

static void
http_body_too_large_declared(void **state)
{
	struct wire_case	*c = *state;

	wire_addf(&c->in, "POST /wire/x HTTP/1.1\r\nHost: h\r\n"
	    "Content-Length: %d\r\n\r\n", WIRE_MAX_BODY + 1);
	wire_error(&c->want, 413, 0, "body_too_large", "Payload Too Large");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_body_at_limit(void **state)
{
	struct wire_case	*c = *state;
	char		 body[WIRE_MAX_BODY + 1];

	memset(body, 'b', WIRE_MAX_BODY);
	body[WIRE_MAX_BODY] = '\0';
	wire_addf(&c->in, "POST /wire/x HTTP/1.1\r\nHost: h\r\n"
	    "Content-Length: %d\r\n\r\n%s", WIRE_MAX_BODY, body);
	echo(&c->want, 1, "POST", "/wire/x", "/x", "(none)", body);
	wire_expect(&c->in, &c->want, "http POST /wire/x\n"
	    "end: http, 0 bytes unread\n");
}

static void
http_body_too_large_chunked(void **state)
{
	struct wire_case	*c = *state;
	char		 part[WIRE_MAX_BODY / 2 + 1];

	memset(part, 'c', sizeof(part) - 1);
	part[sizeof(part) - 1] = '\0';
	wire_addf(&c->in, "POST /wire/x HTTP/1.1\r\nHost: h\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n%zx\r\n%s\r\n"
	    "1\r\nc\r\n0\r\n\r\n", strlen(part), part, strlen(part), part);
	wire_error(&c->want, 413, 0, "body_too_large", "Payload Too Large");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_bad_request_line(void **state)
{
	static const struct {
		const char		*line;
		enum http_errno		 e;
	} cases[] = {
		{ "G@T /wire/x HTTP/1.1\r\n", HPE_INVALID_METHOD },
		{ "GET /wire/x HTTP/1.1 extra\r\n", HPE_INVALID_VERSION },
		{ "GET /wire/x HTTP/x.1\r\n", HPE_INVALID_VERSION },
		{ "GET /wire/ x HTTP/1.1\r\n", HPE_INVALID_CONSTANT },
		{ "GET\r\n", HPE_INVALID_METHOD },
		{ "GET /wire/\x01 HTTP/1.1\r\n", HPE_INVALID_URL },
	};
	struct wire_case	*c = *state;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_addf(&c->in, "%sHost: h\r\n\r\n", cases[i].line);
		wire_error(&c->want, 400, 0, "bad_request",
		    http_errno_description(cases[i].e));
		print_message("%s", cases[i].line);
		wire_expect(&c->in, &c->want, "closed\n"
		    "end: closed\n");
	}
}

/* A target that is not a path, or a path with a bad or NUL escape. */
static void
http_bad_target(void **state)
{
	static const char *const targets[] = {
		"http://h/wire/x", "*", "/wire/%zz", "/wire/%4", "/wire/%00",
	};
	struct wire_case	*c = *state;
	size_t		 i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_addf(&c->in, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n",
		    targets[i]);
		wire_error(&c->want, 400, 0, "bad_request",
		    http_errno_description(HPE_CB_headers_complete));
		print_message("%s\n", targets[i]);
		wire_expect(&c->in, &c->want, "closed\n"
		    "end: closed\n");
	}
}

static void
http_upgrade(void **state)
{
	struct wire_case	*c = *state;

	wire_handshake(&c->in, "/wire/room?x=1", "Origin: " WIRE_ORIGIN "\r\n");
	wire_switching(&c->want);
	wire_expect(&c->in, &c->want, "open /room\n"
	    "end: websocket, 0 bytes unread\n");
}

/* The accept value for another key (RFC 6455's algorithm, by hand). */
static void
http_upgrade_accept_key(void **state)
{
	struct wire_case	*c = *state;
	struct wire_result	*r;

	wire_adds(&c->in, "GET /wsonly HTTP/1.1\r\nHost: h\r\n"
	    "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
	    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n");
	r = wire_every_chunking(c->in.p, c->in.len);
	assert_non_null(strstr(r->out, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_non_null(strstr(r->out,
	    "\r\nSec-WebSocket-Accept: C/0nmHhBztSRGR1CwL6Tf4ZjwpY=\r\n"));
	assert_string_equal(r->log, "open /\nend: websocket, 0 bytes unread\n");
	wire_result_free(r);
}

static void
http_upgrade_bad_version(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/r HTTP/1.1\r\nHost: h\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 8\r\n\r\n");
	wire_response(&c->want, 426, 0, "Sec-WebSocket-Version: 13\r\n",
	    "application/json", "{\"error\":\"bad_version\",\"message\":"
	    "\"WebSocket version 13 is required\"}", 0);
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_upgrade_bad_key(void **state)
{
	static const char *const keys[] = {
		"", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ",
		"!!!!!!!!!!!!!!!!!!!!!!==",
	};
	struct wire_case	*c = *state;
	size_t		 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_addf(&c->in, "GET /wire/r HTTP/1.1\r\nHost: h\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: %s\r\n"
		    "Sec-WebSocket-Version: 13\r\n\r\n", keys[i]);
		wire_error(&c->want, 400, 0, "bad_request", "missing or "
		    "malformed Sec-WebSocket-Key");
		print_message("key \"%s\"\n", keys[i]);
		wire_expect(&c->in, &c->want, "closed\n"
		    "end: closed\n");
	}
}

/*
 * A key of 21 base64 digits and three pads was taken: EVP_DecodeBlock
 * decodes 24 characters to 18 octets, pads or not, so the length check
 * passed.  Such a key is no base64 of 16 octets.
 */
static void
http_upgrade_key_with_three_pads_refused(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/r HTTP/1.1\r\nHost: h\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ===\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n");
	wire_error(&c->want, 400, 0, "bad_request", "missing or "
	    "malformed Sec-WebSocket-Key");
	wire_expect(&c->in, &c->want, "closed\nend: closed\n");
}

/* The dialect refuses (401), or nothing is mounted there (404). */
static void
http_upgrade_refused(void **state)
{
	struct wire_case	*c = *state;

	wire_handshake(&c->in, "/wire/deny", NULL);
	wire_error(&c->want, 401, 0, "unauthorized",
	    "missing, invalid or expired credentials");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
	c->in.len = c->want.len = 0;
	wire_handshake(&c->in, "/nothing/here", NULL);
	wire_error(&c->want, 404, 0, "not_found", "no such path");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_upgrade_foreign_origin(void **state)
{
	struct wire_case	*c = *state;

	wire_handshake(&c->in, "/wire/r", "Origin: https://evil.example\r\n");
	wire_error(&c->want, 403, 0, "forbidden_origin",
	    "this Origin may not open a WebSocket here");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
	/* Origins compare without case. */
	c->in.len = c->want.len = 0;
	wire_handshake(&c->in, "/wire/r", "Origin: HTTPS://OK.example\r\n");
	wire_switching(&c->want);
	wire_expect(&c->in, &c->want, "open /r\n"
	    "end: websocket, 0 bytes unread\n");
}

static void
http_upgrade_post(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "POST /wire/r HTTP/1.1\r\nHost: h\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n");
	wire_error(&c->want, 400, 0, "bad_request",
	    "cannot upgrade to a WebSocket here");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_upgrade_other_protocol(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wire/r HTTP/1.1\r\nHost: h\r\n"
	    "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
	    "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
	wire_error(&c->want, 400, 0, "bad_request", "unsupported upgrade");
	wire_expect(&c->in, &c->want, "closed\n"
	    "end: closed\n");
}

static void
http_websocket_only_mount(void **state)
{
	static const char body[] = "{\"error\":\"upgrade_required\","
	    "\"message\":\"this path takes a WebSocket\"}";
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wsonly/x HTTP/1.1\r\nHost: h\r\n\r\n");
	wire_response(&c->want, 426, 1, "Upgrade: websocket\r\n",
	    "application/json", body, 0);
	wire_expect(&c->in, &c->want, "end: http, 0 bytes unread\n");
}

/* /wirex is not under /wire: the whole segment must match. */
static void
http_static_files(void **state)
{
	struct wire_case	*c = *state;

	wire_adds(&c->in, "GET /wirex HTTP/1.1\r\nHost: h\r\n\r\n");
	wire_error(&c->want, 404, 1, "not_found", "no such file");
	wire_expect(&c->in, &c->want, "file /wirex\n"
	    "end: http, 0 bytes unread\n");
}

#define T(f)	cmocka_unit_test_setup_teardown(f, wire_setup, wire_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(http_get),
		T(http_get_percent_decoded),
		T(http_head_has_no_body),
		T(http_options_preflight),
		T(http_post_content_length),
		T(http_post_chunked),
		T(http_pipelined),
		T(http_pipelined_connection_close),
		T(http_10_closes),
		T(http_pipelined_behind_held),
		T(http_header_too_large),
		T(http_header_at_limit),
		T(http_too_many_headers),
		T(http_101_headers_refused),
		T(http_body_too_large_declared),
		T(http_body_at_limit),
		T(http_body_too_large_chunked),
		T(http_bad_request_line),
		T(http_bad_target),
		T(http_upgrade),
		T(http_upgrade_accept_key),
		T(http_upgrade_bad_version),
		T(http_upgrade_bad_key),
		T(http_upgrade_key_with_three_pads_refused),
		T(http_upgrade_refused),
		T(http_upgrade_foreign_origin),
		T(http_upgrade_post),
		T(http_upgrade_other_protocol),
		T(http_websocket_only_mount),
		T(http_static_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

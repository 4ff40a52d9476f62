/*
 * test_ws.c: cmocka unit tests for src/server_ws.c (RFC 6455 framing on
 * wslay), fed bytes without a socket (tests/unit/wire.c).
 *
 * Each input is a client's handshake on /wire/r followed by its frames,
 * fed whole, one byte at a time, in random chunks of several seeds and
 * (short ones) split in two at every offset, so the frames also arrive in
 * the read that completes the handshake.  Every way must give the same
 * bytes back and the same events, and those are compared with exactly
 * what roomd should write; on a mismatch the frames roomd wrote are
 * decoded (wire_frames) to say what differs.
 *
 * Covered: masked text and binary messages of 7-bit and 16-bit lengths;
 * fragmented messages with pings between the fragments; pings and pongs;
 * close frames with a code and reason, without a body, with a one-byte
 * body, with codes a peer may not send and with a reason that is not
 * UTF-8; frames after a close; invalid UTF-8 in a text message (1007),
 * also across fragments; an unmasked frame (1002); a message over
 * max_message_bytes whole or in fragments (1009); reserved opcodes and
 * reserved bits, long or fragmented control frames, a continuation with
 * no message and a message inside another (1002); the server's own close
 * (1000) and ping.
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

#include "roomd.h"
#include "wire.h"

#define FIN		0x80
#define CONT		0x0
#define TEXT		0x1
#define BINARY		0x2
#define CLOSE		0x8
#define PING		0x9
#define PONG		0xa
#define KEY		0x37fa213dU

/* A test's case starts with the handshake and its answer. */
static int
setup(void **state)
{
	struct wire_case	*c;

	if (wire_setup(state) != 0)
		return -1;
	c = *state;
	wire_handshake(&c->in, "/wire/r", NULL);
	wire_switching(&c->want);
	return 0;
}

/* A whole masked frame from the client. */
static void
send_frame(struct wire_case *c, int first, const void *data, size_t len)
{
	wire_client_frame(&c->in, first, data, len, KEY);
}

static void
send_text(struct wire_case *c, int first, const char *s)
{
	send_frame(c, first, s, strlen(s));
}

static void
send_close(struct wire_case *c, int code, const char *reason)
{
	struct wire_buf	 b = { NULL, 0 };
	uint8_t		 h[2] = { (uint8_t)(code >> 8), (uint8_t)code };

	wire_add(&b, h, 2);
	wire_adds(&b, reason);
	send_frame(c, FIN | CLOSE, b.p, b.len);
	wire_buf_free(&b);
}

static void
want_frame(struct wire_case *c, int opcode, const char *s)
{
	wire_server_frame(&c->want, opcode, s, strlen(s));
}

/* Run every chunking: the output must be c->want, the events log. */
static void
expect(struct wire_case *c, const char *log)
{
	struct wire_result	*r;
	char			*frames;

	r = wire_run(c->in.p, c->in.len, NULL, 0);
	if (r->outlen != c->want.len || memcmp(r->out, c->want.p,
	    r->outlen) != 0) {
		frames = wire_frames(r);
		fprintf(stderr, "frames roomd wrote:\n%s", frames != NULL ?
		    frames : "(no 101 answer)\n");
		free(frames);
	}
	wire_result_free(r);
	wire_expect(&c->in, &c->want, log);
}

static void
ws_text(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "hello");
	send_text(c, FIN | TEXT, "");
	send_text(c, FIN | TEXT, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
	want_frame(c, TEXT, "hello");
	want_frame(c, TEXT, "");
	want_frame(c, TEXT, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
	expect(c, "open /r\nmessage text 5\nmessage text 0\n"
	    "message text 15\nend: websocket, 0 bytes unread\n");
}

static void
ws_binary(void **state)
{
	static const uint8_t	 bin[] = { 0x00, 0xff, 0x80, '\n', 0xc3 };
	struct wire_case		*c = *state;

	send_frame(c, FIN | BINARY, bin, sizeof(bin));
	wire_server_frame(&c->want, BINARY, bin, sizeof(bin));
	expect(c, "open /r\nmessage binary 5\n"
	    "end: websocket, 0 bytes unread\n");
}

/* 125 fits the 7-bit length, 126 and up take 16 bits. */
static void
ws_lengths(void **state)
{
	static const size_t	 lens[] = { 125, 126, 127, 300,
	    WIRE_MAX_MESSAGE };
	struct wire_case		*c = *state;
	struct wire_buf		 log = { NULL, 0 };
	char			 msg[WIRE_MAX_MESSAGE + 1];
	size_t			 i;

	wire_adds(&log, "open /r\n");
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(msg, 'a' + (int)i, lens[i]);
		msg[lens[i]] = '\0';
		send_text(c, FIN | TEXT, msg);
		want_frame(c, TEXT, msg);
		wire_addf(&log, "message text %zu\n", lens[i]);
	}
	wire_adds(&log, "end: websocket, 0 bytes unread\n");
	expect(c, (const char *)log.p);
	wire_buf_free(&log);
}

/* Pings between fragments are answered first, in order. */
static void
ws_fragmented_with_pings(void **state)
{
	static const uint8_t	 b1[] = { 1, 2 }, b2[] = { 3 };
	static const uint8_t	 b12[] = { 1, 2, 3 };
	struct wire_case		*c = *state;

	send_text(c, TEXT, "Hel");
	send_text(c, FIN | PING, "p1");
	send_text(c, CONT, "lo, ");
	send_text(c, FIN | PING, "p2");
	send_text(c, FIN | PONG, "unasked");
	send_text(c, FIN | CONT, "world");
	send_frame(c, BINARY, b1, sizeof(b1));
	send_frame(c, CONT, "", 0);
	send_frame(c, FIN | CONT, b2, sizeof(b2));
	want_frame(c, PONG, "p1");
	want_frame(c, PONG, "p2");
	want_frame(c, TEXT, "Hello, world");
	wire_server_frame(&c->want, BINARY, b12, sizeof(b12));
	expect(c, "open /r\nmessage text 12\nmessage binary 3\n"
	    "end: websocket, 0 bytes unread\n");
}

static void
ws_ping(void **state)
{
	struct wire_case	*c = *state;
	char		 p[126];

	memset(p, 'p', 125);
	p[125] = '\0';
	send_text(c, FIN | PING, "");
	send_text(c, FIN | PING, "abc");
	send_text(c, FIN | PING, p);
	want_frame(c, PONG, "");
	want_frame(c, PONG, "abc");
	want_frame(c, PONG, p);
	expect(c, "open /r\nend: websocket, 0 bytes unread\n");
}

/* The close is echoed (code and reason), and the connection ends. */
static void
ws_close_with_code(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "last");
	send_close(c, 1000, "bye");
	want_frame(c, TEXT, "last");
	wire_server_close(&c->want, 1000, "bye");
	expect(c, "open /r\nmessage text 4\nclosed\nws_close\n"
	    "end: closed\n");
}

static void
ws_close_codes_echoed(void **state)
{
	static const int	 codes[] = { 1001, 1003, 1011, 3000, 4999 };
	struct wire_case		*c = *state;
	size_t			 i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_handshake(&c->in, "/wire/r", NULL);
		wire_switching(&c->want);
		send_close(c, codes[i], "reason");
		wire_server_close(&c->want, codes[i], "reason");
		print_message("close %d\n", codes[i]);
		expect(c, "open /r\nclosed\nws_close\nend: closed\n");
	}
}

/* An empty close is answered with an empty one (1005 is never sent). */
static void
ws_close_without_code(void **state)
{
	struct wire_case	*c = *state;

	send_frame(c, FIN | CLOSE, "", 0);
	wire_server_close(&c->want, 0, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

/* Nothing after a close is read as a message. */
static void
ws_frames_after_close(void **state)
{
	struct wire_case	*c = *state;

	send_close(c, 1000, "");
	send_text(c, FIN | TEXT, "too late");
	send_text(c, FIN | PING, "too late");
	wire_server_close(&c->want, 1000, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

static void
ws_close_one_byte(void **state)
{
	struct wire_case	*c = *state;

	send_frame(c, FIN | CLOSE, "\x03", 1);
	wire_server_close(&c->want, 1002, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

/* Codes a peer may not send (RFC 6455, 7.4) are a protocol error. */
static void
ws_close_bad_code(void **state)
{
	static const int	 codes[] = { 0, 999, 1004, 1005, 1006, 1015,
	    2999, 5000 };
	struct wire_case		*c = *state;
	size_t			 i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_handshake(&c->in, "/wire/r", NULL);
		wire_switching(&c->want);
		send_close(c, codes[i], "");
		wire_server_close(&c->want, 1002, "");
		print_message("close %d\n", codes[i]);
		expect(c, "open /r\nclosed\nws_close\nend: closed\n");
	}
}

static void
ws_close_reason_not_utf8(void **state)
{
	struct wire_case	*c = *state;

	send_close(c, 1000, "bad \xc3\x28 reason");
	wire_server_close(&c->want, 1007, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

/*
 * Invalid UTF-8 in a text message: wslay fails the connection with 1007
 * (RFC 6455, 8.1) and nothing after it is read.
 */
static void
ws_invalid_utf8(void **state)
{
	static const char *const bad[] = {
		"\xc3\x28", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
		"abc\xe2\x82",
	};
	struct wire_case		*c = *state;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_handshake(&c->in, "/wire/r", NULL);
		wire_switching(&c->want);
		send_text(c, FIN | TEXT, "fine");
		send_text(c, FIN | TEXT, bad[i]);
		send_text(c, FIN | TEXT, "unread");
		want_frame(c, TEXT, "fine");
		wire_server_close(&c->want, 1007, "");
		print_message("case %zu\n", i);
		expect(c, "open /r\nmessage text 4\nclosed\nws_close\n"
		    "end: closed\n");
	}
}

/* UTF-8 is checked on the whole message, not on each fragment. */
static void
ws_utf8_across_fragments(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, TEXT, "\xe2\x82");
	send_text(c, FIN | CONT, "\xac");
	send_text(c, TEXT, "ok");
	send_text(c, FIN | CONT, "\xe2\x82");
	want_frame(c, TEXT, "\xe2\x82\xac");
	wire_server_close(&c->want, 1007, "");
	expect(c, "open /r\nmessage text 3\nclosed\nws_close\nend: closed\n");
}

static void
ws_unmasked(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "masked");
	wire_client_frame(&c->in, FIN | TEXT, "plain", 5, 0);
	want_frame(c, TEXT, "masked");
	wire_server_close(&c->want, 1002, "");
	expect(c, "open /r\nmessage text 6\nclosed\nws_close\n"
	    "end: closed\n");
}

static void
ws_oversized(void **state)
{
	struct wire_case	*c = *state;
	char		 msg[WIRE_MAX_MESSAGE + 2];

	memset(msg, 'o', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	send_text(c, FIN | TEXT, msg);
	wire_server_close(&c->want, 1009, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

static void
ws_oversized_fragments(void **state)
{
	struct wire_case	*c = *state;
	char		 half[WIRE_MAX_MESSAGE / 2 + 1];

	memset(half, 'f', sizeof(half) - 1);
	half[sizeof(half) - 1] = '\0';
	send_text(c, TEXT, half);
	send_text(c, CONT, half);
	send_text(c, FIN | CONT, "!");
	wire_server_close(&c->want, 1009, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

/* A 64-bit length: over the limit (1009) or past 2^63 (1002), known from
 * the header and the first octets, before the rest could come. */
static void
ws_64bit_lengths(void **state)
{
	static const struct {
		uint64_t	 len;
		int		 code;
	} cases[] = {
		{ 70000, 1009 },
		{ (uint64_t)1 << 63, 1002 },
		{ UINT64_MAX, 1002 },
	};
	struct wire_case	*c = *state;
	uint8_t		 h[14 + 8];
	size_t		 i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_handshake(&c->in, "/wire/r", NULL);
		wire_switching(&c->want);
		h[0] = FIN | BINARY;
		h[1] = 0x80 | 127;
		for (k = 0; k < 8; k++)
			h[2 + k] = (uint8_t)(cases[i].len >> (56 - 8 * k));
		memset(h + 10, 0x5a, sizeof(h) - 10);	/* key, payload */
		wire_add(&c->in, h, sizeof(h));
		wire_server_close(&c->want, cases[i].code, "");
		print_message("length %llu\n",
		    (unsigned long long)cases[i].len);
		expect(c, "open /r\nclosed\nws_close\nend: closed\n");
	}
}

/* A keep-alive request, then the upgrade on the same connection. */
static void
ws_upgrade_after_request(void **state)
{
	struct wire_case	*c = *state;

	c->in.len = c->want.len = 0;
	wire_adds(&c->in, "GET /wire/first HTTP/1.1\r\nHost: h\r\n\r\n");
	wire_handshake(&c->in, "/wire/r", NULL);
	send_text(c, FIN | TEXT, "hi");
	wire_response(&c->want, 200, 1, NULL, "text/plain", "GET "
	    "path=/wire/first sub=/first query=(none) body=", 0);
	wire_switching(&c->want);
	want_frame(c, TEXT, "hi");
	expect(c, "http GET /wire/first\nopen /r\nmessage text 2\n"
	    "end: websocket, 0 bytes unread\n");
}

/* The server closes in the middle of the client's fragmented message. */
static void
ws_server_close_mid_message(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "close-me");
	send_text(c, TEXT, "part");
	send_text(c, FIN | PING, "p");
	send_text(c, FIN | CONT, "rest");
	send_close(c, 1000, "");
	wire_server_close(&c->want, 1000, "bye");
	expect(c, "open /r\nmessage text 8\nclosed\nws_close\n"
	    "end: closed\n");
}

/* Reserved opcodes and bits, bad control frames, bad continuations. */
static void
ws_protocol_errors(void **state)
{
	static const struct {
		int		 first[2];
		const char	*what;
	} cases[] = {
		{ { FIN | 0x3, -1 }, "opcode 3" },
		{ { FIN | 0x7, -1 }, "opcode 7" },
		{ { FIN | 0xb, -1 }, "opcode 11" },
		{ { FIN | 0xf, -1 }, "opcode 15" },
		{ { FIN | 0x40 | TEXT, -1 }, "RSV1" },
		{ { FIN | 0x20 | TEXT, -1 }, "RSV2" },
		{ { FIN | 0x10 | BINARY, -1 }, "RSV3" },
		{ { PING, -1 }, "a fragmented ping" },
		{ { CLOSE, -1 }, "a fragmented close" },
		{ { FIN | CONT, -1 }, "a continuation without a message" },
		{ { TEXT, FIN | TEXT }, "a message inside a message" },
		{ { BINARY, FIN | 0x3 }, "a reserved opcode inside a message" },
	};
	struct wire_case		*c = *state;
	size_t			 i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c->in.len = c->want.len = 0;
		wire_handshake(&c->in, "/wire/r", NULL);
		wire_switching(&c->want);
		for (k = 0; k < 2 && cases[i].first[k] != -1; k++)
			send_text(c, cases[i].first[k], "xy");
		send_text(c, FIN | TEXT, "unread");
		wire_server_close(&c->want, 1002, "");
		print_message("%s\n", cases[i].what);
		expect(c, "open /r\nclosed\nws_close\nend: closed\n");
	}
}

static void
ws_control_too_long(void **state)
{
	struct wire_case	*c = *state;
	char		 p[127];

	memset(p, 'p', 126);
	p[126] = '\0';
	send_text(c, FIN | PING, p);
	wire_server_close(&c->want, 1002, "");
	expect(c, "open /r\nclosed\nws_close\nend: closed\n");
}

/* The server closes (1000 "bye"); the client's close ends it. */
static void
ws_server_close(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "close-me");
	send_text(c, FIN | TEXT, "ignored");
	wire_server_close(&c->want, 1000, "bye");
	expect(c, "open /r\nmessage text 8\nend: closing, 0 bytes unread\n");
	send_close(c, 1000, "");
	expect(c, "open /r\nmessage text 8\nclosed\nws_close\n"
	    "end: closed\n");
}

static void
ws_server_ping(void **state)
{
	struct wire_case	*c = *state;

	send_text(c, FIN | TEXT, "ping-me");
	send_text(c, FIN | PONG, "");
	send_text(c, FIN | TEXT, "after");
	want_frame(c, PING, "");
	want_frame(c, TEXT, "after");
	expect(c, "open /r\nmessage text 7\nmessage text 5\n"
	    "end: websocket, 0 bytes unread\n");
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, wire_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(ws_text),
		T(ws_binary),
		T(ws_lengths),
		T(ws_fragmented_with_pings),
		T(ws_ping),
		T(ws_close_with_code),
		T(ws_close_codes_echoed),
		T(ws_close_without_code),
		T(ws_frames_after_close),
		T(ws_close_one_byte),
		T(ws_close_bad_code),
		T(ws_close_reason_not_utf8),
		T(ws_invalid_utf8),
		T(ws_utf8_across_fragments),
		T(ws_unmasked),
		T(ws_oversized),
		T(ws_oversized_fragments),
		T(ws_64bit_lengths),
		T(ws_upgrade_after_request),
		T(ws_server_close_mid_message),
		T(ws_protocol_errors),
		T(ws_control_too_long),
		T(ws_server_close),
		T(ws_server_ping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_dialect.c: each dialect's message handler (src/dialect_*.c), with
 * three members in one room, reached through the real HTTP and WebSocket
 * layers, and the arena checked after every message.
 *
 * Input: byte 0 picks the dialect (canvas, chat, classroom, echo, lobby,
 * screenshare, in dialect.c's order).  The harness then sets the room up
 * as a client would (canvas: REST create and two joins; lobby: createRoom
 * and two joins by code; screenshare: CREATE_ROOM and two JOIN_ROOM; chat,
 * classroom and echo: three connections), as members 0, 1 and 2.  The
 * rest is one operation per line:
 *   DIGIT text	member DIGIT (modulo the members) sends text
 *   bDIGIT text	the same as a binary message
 *   cDIGIT		member DIGIT sends close 1000 and hangs up
 *   dDIGIT		member DIGIT hangs up without a close frame
 *   rDIGIT		member DIGIT connects again the way it first did
 *   wTARGET	a new member opens a WebSocket at TARGET
 *   aTOKEN		a new member opens /classroom with Authorization:
 *			Bearer TOKEN (the secret is "fuzz-secret")
 *   hMETHOD TARGET BODY	an HTTP request on a connection of its own
 *   t		the once-a-second timers of every room (fanout_tick)
 * Tokens, codes and ids come from a fixed pseudo-random sequence, so an
 * input may name them (FUZZ_VERBOSE=1 shows what the server sent).  After
 * every operation the loop settles, the arena is checked and every frame
 * the server sent is checked against RFC 6455.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomd.h"
#include "fuzz.h"

#define DF_MAX_MEMBERS	8
#define DF_MAX_OPS	256

struct member {
	int	 fz;		/* the client, -1 once it hung up */
	char	 target[512];
	char	 headers[512];
};

static struct member	 members[DF_MAX_MEMBERS];
static int		 nmembers;

static void
dialect_tune(struct roomd_config *c)
{
	/* Small limits, so that short inputs reach them, and timers that
	 * act at once when the t operation runs them. */
	c->max_message_bytes = 8192;
	c->max_body_bytes = 4096;
	c->room_log_max_bytes = 16384;
	c->room_max_members = 6;
	c->lobby_grace = 0;
	c->lobby_migration = 1;
	c->lobby_snapshot_max_bytes = 2048;
	c->chat_history = 5;
	snprintf(c->classroom_jwt_secret, sizeof(c->classroom_jwt_secret),
	    "fuzz-secret");
	c->classroom_open_rooms = 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_init(dialect_tune);
	return 0;
}

static void __attribute__((noreturn))
setup_failed(const char *what)
{
	fprintf(stderr, "fuzz: setting the room up failed: %s\n", what);
	abort();
}

/* A new member with a WebSocket at target; -1 if there is no room. */
static int
member_open(const char *target, const char *headers)
{
	struct member	*m;
	int		 fz;

	if (nmembers == DF_MAX_MEMBERS)
		return -1;
	fz = fz_ws_open(target, headers);
	m = &members[nmembers];
	m->fz = fz;
	snprintf(m->target, sizeof(m->target), "%s", target);
	snprintf(m->headers, sizeof(m->headers), "%s", headers ? headers : "");
	return nmembers++;
}

static void
member_send(int i, int opcode, const char *text, size_t len)
{
	if (i < nmembers && members[i].fz != -1)
		fz_ws_send(members[i].fz, opcode, text, len);
	fz_settle();
}

/* An HTTP request on a new connection; returns the client, still open. */
static int
http(const char *method, const char *target, const char *body, size_t blen)
{
	char	 head[1024];
	int	 c, n;

	if ((c = fz_connect()) == -1)
		return -1;
	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: fuzz\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", method, target, blen);
	if (n > 0 && (size_t)n < sizeof(head)) {
		fz_send(c, head, (size_t)n);
		fz_send(c, body, blen);
	}
	fz_settle();
	return c;
}

/* POST a canvas body; the member token from the answer. */
static void
canvas_token(const char *target, const char *body, char *token, size_t len)
{
	int	 c = http("POST", target, body, strlen(body));

	if (fz_rx_value(c, "token", token, len) == -1)
		setup_failed(target);
	fz_close(c);
	fz_settle();
}

static void
setup_canvas(void)
{
	static const char *const names[] = { "bob", "cat" };
	char	 token[64], target[256], body[64];
	int	 i;

	canvas_token("/canvas/rooms", "{\"host\":\"ann\",\"roomId\":\"r1\"}",
	    token, sizeof(token));
	snprintf(target, sizeof(target), "/canvas/rooms/r1/ws?token=%s", token);
	member_open(target, NULL);
	for (i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"%s\"}", names[i]);
		canvas_token("/canvas/rooms/r1/join", body, token,
		    sizeof(token));
		snprintf(target, sizeof(target),
		    "/canvas/rooms/r1/ws?token=%s", token);
		member_open(target, NULL);
	}
}

/* The first member makes the room and says so with key; the others join
 * by sending join with the value in place of %s. */
static void
setup_by_message(const char *target, const char *create, const char *key,
    const char *join0, const char *join1)
{
	char	 value[128], msg[256];

	member_open(target, NULL);
	member_send(0, 1, create, strlen(create));
	if (members[0].fz == -1 ||
	    fz_rx_value(members[0].fz, key, value, sizeof(value)) == -1)
		setup_failed(create);
	member_open(target, NULL);
	snprintf(msg, sizeof(msg), join0, value);
	member_send(1, 1, msg, strlen(msg));
	member_open(target, NULL);
	snprintf(msg, sizeof(msg), join1, value);
	member_send(2, 1, msg, strlen(msg));
}

static void
setup(int dialect)
{
	switch (dialect) {
	case 0:
		setup_canvas();
		break;
	case 1:
		member_open("/chat?name=ann", NULL);
		member_open("/chat?name=bob", NULL);
		member_open("/chat?name=cat", NULL);
		break;
	case 2:
		member_open("/classroom?name=ann&room=r1", NULL);
		member_open("/classroom?name=bob&room=r1", NULL);
		member_open("/classroom?name=cat&room=r1", NULL);
		break;
	case 3:
		member_open("/echo", NULL);
		member_open("/echo", NULL);
		member_open("/echo", NULL);
		break;
	case 4:
		setup_by_message("/lobby", "{\"type\":\"createRoom\"}",
		    "roomCode", "{\"type\":\"joinRoom\",\"data\":"
		    "{\"roomCode\":\"%s\"}}", "{\"type\":\"joinRoom\",\"data\":"
		    "{\"roomCode\":\"%s\",\"canHost\":true}}");
		break;
	default:
		setup_by_message("/ws", "{\"type\":\"CREATE_ROOM\",\"username\":"
		    "\"ann\"}", "roomid", "{\"type\":\"JOIN_ROOM\",\"roomid\":"
		    "\"%s\",\"username\":\"bob\"}", "{\"type\":\"JOIN_ROOM\","
		    "\"roomid\":\"%s\",\"username\":\"cat\"}");
		break;
	}
	if (nmembers != 3)
		setup_failed("three members");
	for (int i = 0; i < nmembers; i++)
		if (members[i].fz == -1)
			setup_failed(members[i].target);
}

static int
member_of(const char *p, size_t len)
{
	return len > 0 && nmembers > 0 ? (int)((unsigned char)(p[0] - '0') %
	    (unsigned)nmembers) : 0;
}

/* hMETHOD TARGET BODY */
static void
op_http(const char *p, size_t len)
{
	char		 method[16], target[512];
	const char	*sp, *sp2, *body;
	size_t		 n;
	int		 c;

	if ((sp = memchr(p, ' ', len)) == NULL || (n = (size_t)(sp - p)) == 0 ||
	    n >= sizeof(method))
		return;
	memcpy(method, p, n);
	method[n] = '\0';
	sp++;
	len -= n + 1;
	sp2 = memchr(sp, ' ', len);
	n = sp2 ? (size_t)(sp2 - sp) : len;
	if (n == 0 || n >= sizeof(target) || memchr(sp, '\r', n) ||
	    memchr(sp, '\0', n) || memchr(method, '\r', strlen(method)))
		return;
	memcpy(target, sp, n);
	target[n] = '\0';
	body = sp2 ? sp2 + 1 : sp + n;
	c = http(method, target, body, sp2 ? len - n - 1 : 0);
	fz_close(c);
	fz_settle();
}

static void
op_run(const char *p, size_t len)
{
	char	 buf[600];
	int	 i;

	if (len == 0)
		return;
	if (p[0] >= '0' && p[0] <= '9') {
		member_send(member_of(p, len), 1, p + 1, len - 1);
		return;
	}
	i = member_of(p + 1, len - 1);
	switch (p[0]) {
	case 'b':
		member_send(i, 2, p + 2 < p + len ? p + 2 : p + len,
		    len > 2 ? len - 2 : 0);
		break;
	case 'c':
		member_send(i, 8, "\x03\xe8", 2);
		/* FALLTHROUGH */
	case 'd':
		if (i < nmembers && members[i].fz != -1) {
			fz_close(members[i].fz);
			members[i].fz = -1;
		}
		fz_settle();
		break;
	case 'r':
		if (i < nmembers && members[i].fz == -1)
			members[i].fz = fz_ws_open(members[i].target,
			    members[i].headers[0] ? members[i].headers : NULL);
		break;
	case 'w':
		if (len - 1 < 512 && memchr(p + 1, '\0', len - 1) == NULL &&
		    memchr(p + 1, '\r', len - 1) == NULL) {
			snprintf(buf, sizeof(buf), "%.*s", (int)(len - 1), p + 1);
			member_open(buf[0] == '/' ? buf : "/", NULL);
		}
		break;
	case 'a':
		if (len - 1 < 512 && memchr(p + 1, '\0', len - 1) == NULL &&
		    memchr(p + 1, '\r', len - 1) == NULL) {
			snprintf(buf, sizeof(buf), "Authorization: Bearer "
			    "%.*s\r\n", (int)(len - 1), p + 1);
			member_open("/classroom", buf);
		}
		break;
	case 'h':
		op_http(p + 1, len - 1);
		break;
	case 't':
		fanout_tick();
		fz_settle();
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p, *end, *nl;
	char		 when[64];
	int		 op = 0;

	if (size < 1)
		return 0;
	fz_begin();
	nmembers = 0;
	setup(data[0] % 6);
	fz_ws_verify_all();
	fz_check("after the set-up");
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end && op < DF_MAX_OPS) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		op_run(p, (size_t)(nl - p));
		fz_ws_verify_all();
		snprintf(when, sizeof(when), "after operation %d", ++op);
		fz_check(when);
		p = nl + 1;
	}
	fz_end();
	return 0;
}

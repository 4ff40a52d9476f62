/*
 * fuzz_worker.c: this process as one roomd worker, for the harnesses.
 *
 * It links the daemon's objects as they are.  fz_init() does what
 * server_main() does before its loop (server_init), minus the listening
 * sockets, signals and the doorbell mesh (there is one worker); a client
 * is one end of a socketpair whose other end goes through the listener's
 * accept path (server_accept_fd), so every byte takes the path a TCP
 * client's would.
 *
 * Randomness is made deterministic (RAND_bytes and uuid_generate_random
 * are replaced here and reset for every input), so an input always
 * produces the same tokens, room codes and ids and a crash replays.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>
#include <uuid/uuid.h>

#include "roomd.h"
#include "shm.h"
#include "fuzz.h"

#ifndef FUZZ_HTDOCS
#define FUZZ_HTDOCS	"htdocs"
#endif
#define FZ_ARENA_SIZE	ARENA_MIN_SIZE
#define FZ_SETTLE_MAX	20000	/* loop iterations before giving up */

static struct roomd	 fz_env;
struct roomd		*env = &fz_env;
static struct arena	 fz_arena;	/* env->arena */
int			 fz_verbose;

static uint8_t		*pristine;	/* the arena's header when new */
static struct fz_client	 clients[FZ_MAX_CLIENTS];
static size_t		 nclients;
static uint64_t		 fz_rng;

/* splitmix64: a fixed sequence per input. */
static uint64_t
fz_random(void)
{
	uint64_t	 z = (fz_rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int
RAND_bytes(unsigned char *buf, int num)
{
	int	 i;

	for (i = 0; i < num; i++)
		buf[i] = (unsigned char)fz_random();
	return 1;
}

void
uuid_generate_random(uuid_t out)
{
	RAND_bytes(out, 16);
	out[6] = (out[6] & 0x0f) | 0x40;
	out[8] = (out[8] & 0x3f) | 0x80;
}

void
fz_init(void (*tune)(struct roomd_config *))
{
	struct roomd_config	*c = &env->conf;
	char			 err[1024];

	fz_verbose = getenv("FUZZ_VERBOSE") != NULL;
	signal(SIGPIPE, SIG_IGN);
	log_init(1, fz_verbose);
	log_setproc("worker 0");
	env->arena = &fz_arena;
	config_defaults(c);
	c->workers = 1;
	snprintf(c->htdocs, sizeof(c->htdocs), "%s", FUZZ_HTDOCS);
	if (config_finish(c, err, sizeof(err)) == -1 ||
	    config_mount(c, "echo", "/echo", err, sizeof(err)) == -1)
		fatalx("fuzz: %s", err);
	if (tune != NULL)
		tune(c);
	env->nworkers = 1;
	env->slot = 0;
	env->foreground = 1;
	/* As server_main() sets up its loop. */
	server_init();
}

/*
 * A fresh arena for every input.  It is made once; after that the bytes
 * the last input used are zeroed and the header as arena_open() wrote it
 * is put back, which leaves the mapping exactly as a new one (mmap gives
 * zeroes) for a fraction of the cost of mapping and faulting in a new
 * one each time.
 */
void
fz_begin(void)
{
	struct arena_hdr	*h;
	char			 err[256];
	int			 reattached;

	fz_rng = 0x726f6f6d64ULL;
	if (pristine == NULL) {
		if (arena_open(env->arena, NULL, FZ_ARENA_SIZE, &reattached,
		    err, sizeof(err)) != 0)
			fatalx("fuzz: arena_open: %s", err);
		h = env->arena->hdr;
		if ((pristine = malloc(h->hdr_size)) == NULL)
			fatal("fuzz: malloc");
		memcpy(pristine, env->arena->base, h->hdr_size);
		return;
	}
	h = env->arena->hdr;
	if (h->top < h->hdr_size || h->top > env->arena->size)
		fatalx("fuzz: arena top %llu out of bounds",
		    (unsigned long long)h->top);
	memset(env->arena->base + h->hdr_size, 0, h->top - h->hdr_size);
	memcpy(env->arena->base, pristine, ((struct arena_hdr *)pristine)->
	    hdr_size);
}

/*
 * shm/arena.c is compiled with calloc and free renamed to these.  Its
 * checker takes a 16 MiB array of room references on every call; under
 * AddressSanitizer poisoning and faulting that in costs about 14 ms, which
 * would cut a harness that checks after every message to a few dozen
 * inputs a second.  So the large array is made once and kept (it is
 * reachable, so no leak); the checker reads only the entries that
 * shm_room_list() wrote, so not zeroing it again changes nothing.
 */
void	*fz_big_calloc(size_t, size_t);
void	 fz_big_free(void *);
static void	*fz_big;
static size_t	 fz_big_size;

void *
fz_big_calloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		return NULL;
	if (n * size < (1U << 20))
		return calloc(n, size);
	if (fz_big == NULL || fz_big_size < n * size) {
		free(fz_big);
		if ((fz_big = calloc(n, size)) == NULL)
			return NULL;
		fz_big_size = n * size;
	}
	return fz_big;
}

void
fz_big_free(void *p)
{
	if (p != NULL && p != fz_big)
		free(p);
}

void
fz_check(const char *when)
{
	char	 err[512];

	if (arena_check(env->arena, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: arena invariant broken %s: %s\n", when,
		    err);
		abort();
	}
}

/* With every connection gone, no room may count one or point at one. */
static void
fz_check_idle(void)
{
	struct shm_room_ref	 refs[256];
	struct shm_room		*r;
	struct shm_member	*m;
	size_t			 i, n, k;
	int			 bad = 0;

	/* A closed connection waits for the flush, which fz_quiet() saw
	 * was not due: only open ones can be left. */
	if (server_conn_next(NULL) != NULL) {
		fprintf(stderr, "fuzz: a connection outlived its closed "
		    "peer\n");
		abort();
	}
	if (stats_get(STAT_CONNECTIONS_OPEN) != 0)
		bad = fprintf(stderr, "fuzz: open connection gauge is %lld\n",
		    (long long)stats_get(STAT_CONNECTIONS_OPEN));
	for (i = 0; i < STATS_DIALECTS; i++)
		if (stats_dget((unsigned)i, STAT_D_WEBSOCKETS_OPEN) != 0)
			bad = fprintf(stderr, "fuzz: dialect %zu counts %lld "
			    "open WebSockets\n", i, (long long)stats_dget(
			    (unsigned)i, STAT_D_WEBSOCKETS_OPEN));
	n = shm_room_list(env->arena, ROOM_ALL_DIALECTS, refs, 256);
	for (i = 0; i < n; i++) {
		if (shm_room_lock(env->arena, &refs[i], &r) != 0)
			continue;
		if (r->conns != 0)
			bad = fprintf(stderr, "fuzz: room %s counts %llu "
			    "connections after all closed\n", r->id,
			    (unsigned long long)r->conns);
		for (k = 0; k < r->nmembers; k++) {
			m = shm_member_at(env->arena, r, k);
			if (m->mid != 0 && m->slots != 0)
				bad = fprintf(stderr, "fuzz: room %s member %s "
				    "still has a connection\n", r->id, m->name);
		}
		shm_room_unlock(env->arena, r);
	}
	if (bad)
		abort();
}

void
fz_end(void)
{
	size_t	 i;

	for (i = 0; i < nclients; i++)
		fz_close((int)i);
	fz_settle();
	fz_check_idle();
	fz_check("after every connection closed");
	for (i = 0; i < nclients; i++) {
		free(clients[i].rx);
		memset(&clients[i], 0, sizeof(clients[i]));
	}
	nclients = 0;
}

struct fz_client *
fz_client(int i)
{
	return i >= 0 && (size_t)i < nclients ? &clients[i] : NULL;
}

size_t
fz_nclients(void)
{
	return nclients;
}

int
fz_connect(void)
{
	struct fz_client	*c;
	struct sockaddr_in	 sin;
	size_t			 i;
	int			 sv[2];

	/* A closed client's slot is taken again: its connection is gone
	 * once the loop settled, and so a long input cannot run out. */
	for (i = 0; i < nclients && clients[i].fd != -1; i++)
		;
	if (i == FZ_MAX_CLIENTS)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		fatal("fuzz: socketpair");
	c = &clients[i];
	if (c->rx == NULL && (c->rx = malloc(FZ_RX_MAX)) == NULL)
		fatal("fuzz: malloc");
	c->fd = sv[0];
	c->rxlen = c->rxoff = 0;
	c->ws = c->lost = c->close_seen = 0;
	if (i == nclients)
		nclients++;
	/* As if listener 0 had accepted it from a loopback address. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(40000 + (uint16_t)i);
	server_accept_fd(sv[1], (struct sockaddr *)&sin, sizeof(sin), 0);
	return (int)i;
}

void
fz_close(int i)
{
	struct fz_client	*c = fz_client(i);

	if (c != NULL && c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Read what the server wrote to every client; 1 if anything came. */
static int
fz_drain(void)
{
	struct fz_client	*c;
	char			 scratch[16384];
	ssize_t			 n;
	size_t			 i;
	int			 got = 0;

	for (i = 0; i < nclients; i++) {
		c = &clients[i];
		while (c->fd != -1) {
			if (c->rxlen < FZ_RX_MAX - 1)
				n = read(c->fd, c->rx + c->rxlen,
				    FZ_RX_MAX - 1 - c->rxlen);
			else
				n = read(c->fd, scratch, sizeof(scratch));
			if (n <= 0)
				break;
			got = 1;
			if (c->rxlen >= FZ_RX_MAX - 1)
				c->lost = 1;
			if (fz_verbose && !c->ws)
				fprintf(stderr, "fuzz: client %zu got %.*s\n",
				    i, (int)n, c->rxlen < FZ_RX_MAX - 1 ?
				    c->rx + c->rxlen : scratch);
			if (c->rxlen < FZ_RX_MAX - 1)
				c->rxlen += (size_t)n;
		}
		if (c->rx != NULL)
			c->rx[c->rxlen] = '\0';
	}
	return got;
}

/* Nothing left for the worker to do: no event, no byte, no flush. */
static int
fz_quiet(void)
{
	struct conn	*conn;
	struct pollfd	 pfd;

	/* A flush that is due is an active event (server_flush_later). */
	if (event_base_get_num_events(server_base(),
	    EVENT_BASE_COUNT_ACTIVE) > 0)
		return 0;
	for (conn = server_conn_next(NULL); conn != NULL;
	    conn = server_conn_next(conn)) {
		pfd.fd = conn_fd(conn);
		pfd.events = POLLIN;
		if (conn_out_len(conn) > 0)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, 0) > 0)
			return 0;
	}
	return 1;
}

void
fz_settle(void)
{
	int	 i;

	for (i = 0; i < FZ_SETTLE_MAX; i++) {
		event_base_loop(server_base(), EVLOOP_NONBLOCK);
		if (!fz_drain() && fz_quiet())
			return;
	}
	fprintf(stderr, "fuzz: the worker does not settle after %d loop "
	    "iterations\n", FZ_SETTLE_MAX);
	abort();
}

void
fz_send(int i, const void *buf, size_t len)
{
	struct fz_client	*c = fz_client(i);
	const char		*p = buf;
	ssize_t			 n;
	int			 tries = 0;

	while (c != NULL && c->fd != -1 && len > 0 && tries < 1000) {
		if ((n = write(c->fd, p, len)) > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return;		/* the server closed its end */
		fz_settle();
		tries++;
	}
}

/* Send in pieces whose sizes cycle through sizes[] (0: all the rest). */
void
fz_send_chunked(int i, const uint8_t *buf, size_t len, const uint8_t *sizes,
    size_t nsizes)
{
	size_t	 k = 0, n;

	while (len > 0) {
		n = nsizes == 0 || sizes[k % nsizes] == 0 ? len :
		    sizes[k % nsizes];
		if (n > len)
			n = len;
		fz_send(i, buf, n);
		fz_settle();
		buf += n;
		len -= n;
		k++;
	}
}

int
fz_rx_value(int i, const char *key, char *out, size_t outlen)
{
	struct fz_client	*c = fz_client(i);
	char			 pat[128];
	const char		*p, *last = NULL;
	size_t			 n;

	if (c == NULL || c->rxlen == 0)
		return -1;
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	for (p = c->rx; (p = memmem(p, c->rxlen - (size_t)(p - c->rx), pat,
	    strlen(pat))) != NULL; p++)
		last = p + strlen(pat);
	if (last == NULL)
		return -1;
	for (n = 0; last[n] != '"' && last[n] != '\0'; n++)
		;
	if (n >= outlen)
		return -1;
	memcpy(out, last, n);
	out[n] = '\0';
	return 0;
}

int
fz_ws_open(const char *target, const char *extra)
{
	char	 req[2048];
	char	*end;
	int	 i, n;

	if ((i = fz_connect()) == -1)
		return -1;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n"
	    "Host: fuzz\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "%s\r\n", target, extra ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return -1;
	fz_send(i, req, (size_t)n);
	fz_settle();
	if (strncmp(clients[i].rx, "HTTP/1.1 101 ", 13) != 0 ||
	    (end = strstr(clients[i].rx, "\r\n\r\n")) == NULL) {
		fz_close(i);
		fz_settle();
		return -1;
	}
	clients[i].ws = 1;
	clients[i].rxoff = (size_t)(end + 4 - clients[i].rx);
	return i;
}

size_t
fz_ws_frame(uint8_t *out, size_t cap, int first, const void *data,
    size_t len, uint32_t mask)
{
	const uint8_t	*p = data;
	uint8_t		 key[4];
	size_t		 n = 0, i;

	if (cap < len + 14)
		return 0;
	out[n++] = (uint8_t)first;
	if (len < 126)
		out[n++] = 0x80 | (uint8_t)len;
	else if (len < 65536) {
		out[n++] = 0x80 | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	for (i = 0; i < 4; i++)
		out[n++] = key[i] = (uint8_t)(mask >> (24 - 8 * i));
	for (i = 0; i < len; i++)
		out[n++] = p[i] ^ key[i % 4];
	return n;
}

void
fz_ws_send(int i, int opcode, const void *data, size_t len)
{
	uint8_t	*frame;
	size_t	 n;

	if ((frame = malloc(len + 14)) == NULL)
		fatal("fuzz: malloc");
	n = fz_ws_frame(frame, len + 14, 0x80 | opcode, data, len, 0x37fa213d);
	fz_send(i, frame, n);
	free(frame);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int
fz_utf8(const uint8_t *p, size_t len)
{
	size_t		 i = 0, n, k;
	uint32_t	 cp, min;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 1; cp = p[i] & 0x1f; min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 2; cp = p[i] & 0x0f; min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 3; cp = p[i] & 0x07; min = 0x10000;
		} else
			return 0;
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static int
fz_close_code_ok(unsigned code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 &&
	    code <= 1014) || (code >= 3000 && code <= 4999);
}

static void __attribute__((noreturn))
fz_ws_fail(int i, size_t off, const char *what)
{
	struct fz_client	*c = &clients[i];
	size_t			 k, n = c->rxlen - off < 32 ? c->rxlen - off : 32;

	fprintf(stderr, "fuzz: client %d: the server sent %s; frame bytes:",
	    i, what);
	for (k = 0; k < n; k++)
		fprintf(stderr, " %02x", (uint8_t)c->rx[off + k]);
	fprintf(stderr, "\n");
	abort();
}

void
fz_ws_verify(int i)
{
	struct fz_client	*c = fz_client(i);
	const uint8_t		*p;
	uint64_t		 len;
	size_t			 off, hdr, avail, k;
	int			 op;

	if (c == NULL || !c->ws || c->lost)
		return;
	for (off = c->rxoff; off < c->rxlen; off += hdr + (size_t)len) {
		p = (const uint8_t *)c->rx + off;
		avail = c->rxlen - off;
		if (avail < 2)
			break;
		op = p[0] & 0x0f;
		if (c->close_seen)
			fz_ws_fail(i, off, "a frame after its close frame");
		if ((p[0] & 0x70) != 0)
			fz_ws_fail(i, off, "reserved bits");
		if (op != 1 && op != 2 && op != 8 && op != 9 && op != 10)
			fz_ws_fail(i, off, "a reserved opcode");
		if (!(p[0] & 0x80))
			fz_ws_fail(i, off, "a fragment (roomd sends whole "
			    "messages)");
		if (p[1] & 0x80)
			fz_ws_fail(i, off, "a masked frame");
		len = p[1] & 0x7f;
		hdr = 2;
		if (len == 126) {
			if (avail < 4)
				break;
			len = (uint64_t)p[2] << 8 | p[3];
			hdr = 4;
			if (len < 126)
				fz_ws_fail(i, off, "a length not in its "
				    "shortest form");
		} else if (len == 127) {
			if (avail < 10)
				break;
			for (len = 0, k = 0; k < 8; k++)
				len = len << 8 | p[2 + k];
			hdr = 10;
			if (len < 65536 || len >> 63)
				fz_ws_fail(i, off, "a bad 64-bit length");
		}
		if (op >= 8 && len > 125)
			fz_ws_fail(i, off, "a control frame over 125 bytes");
		if (avail - hdr < len)
			break;
		if (op == 1 && !fz_utf8(p + hdr, (size_t)len))
			fz_ws_fail(i, off, "a text frame that is not UTF-8");
		if (fz_verbose)
			fprintf(stderr, "fuzz: client %d frame %d: %.*s\n", i,
			    op, op == 2 ? 0 : (int)len, p + hdr);
		if (op == 8) {
			if (len == 1)
				fz_ws_fail(i, off, "a one-byte close body");
			if (len >= 2 && !fz_close_code_ok((unsigned)p[hdr] << 8 |
			    p[hdr + 1]))
				fz_ws_fail(i, off, "an invalid close code");
			if (len > 2 && !fz_utf8(p + hdr + 2, (size_t)len - 2))
				fz_ws_fail(i, off, "a close reason that is "
				    "not UTF-8");
			c->close_seen = 1;
		}
	}
	/* Keep only the unchecked tail. */
	if (off > 0 && off <= c->rxlen) {
		memmove(c->rx, c->rx + off, c->rxlen - off);
		c->rxlen -= off;
		c->rx[c->rxlen] = '\0';
	}
	c->rxoff = 0;
}

void
fz_ws_verify_all(void)
{
	size_t	 i;

	for (i = 0; i < nclients; i++)
		fz_ws_verify((int)i);
}

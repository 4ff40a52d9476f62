/*
 * loadgen.c: the load generator of tests/bench.
 *
 * One C program, plain epoll and a few threads, that speaks WebSocket over
 * loopback to roomd's canvas dialect (and to the Node peer in
 * tests/bench/peers, which speaks the same wire format) and to nchan (a
 * WebSocket subscriber per member, a WebSocket pubsub connection per
 * publisher).  It opens N members spread over R rooms and over the
 * source addresses 127.0.0.2, 127.0.0.3, ... (bind before connect, so
 * 50k connections do not run out of ports), publishes actions at a fixed
 * rate or as fast as its window allows, embeds the send time in every
 * action and records, for each action a member receives, its latency in
 * a log-linear histogram.  At the end it prints one line "RESULT {json}":
 * deliveries per second, latency p50/p99/max, and the CPU seconds that
 * the server's processes (the given pids and their children, from /proc)
 * used per delivery.
 *
 * A delivery is one action arriving at one member.  With -m 32 a publish
 * carries 32 actions, and a member receives them in one frame: 32
 * deliveries.
 *
 * Modes (-M): fanout (W1, W2, W3, W6, W9), catchup (W4), idle (W5), storm
 * (W7) and raw (the cost of one small write() to a loopback TCP socket,
 * the floor of any server's cost per delivery).  See usage() below.
 *
 * Cluster runs (-p with several addresses): member i talks to address
 * i % naddrs (the publishers to the first one, catch-up joiners to the
 * last one), -c takes one group of pids per address separated by "/",
 * and the result adds, per address, the deliveries and the server CPU per
 * delivery, and the latency of the deliveries that crossed from the
 * publisher's address to another ("cross_p50_us", "cross_p99_us").
 * -e names processes that serve neither address alone (the Redis that
 * the servers share): fanout reports their CPU time as "other_cpu_s",
 * apart from the servers'.
 * -P socketio speaks Socket.IO 4 (Engine.IO 4 over a WebSocket) to the
 * peer in tests/bench/peers/sio.js: "join" a room, "pub" to it, "a" back.
 *
 * With -z every member offers permessage-deflate (RFC 7692) and inflates
 * the compressed messages it gets; "wire_bytes" in the result counts the
 * octets of the frames members read while measuring (headers and
 * payloads, compressed or not; no handshakes), against "bytes", the
 * octets of the messages they got.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>

#define LG_MAXTHREADS	8
#define LG_MAXPIDS	64
#define LG_MAXROOMS	1024
#define LG_MAXADDRS	8
#define LG_INFLIGHT	256	/* handshakes under way at once */
#define LG_WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum proto { P_CANVAS, P_NCHAN, P_SOCKETIO };
enum mode { M_FANOUT, M_CATCHUP, M_IDLE, M_STORM, M_RAW };
enum cstate { C_FREE, C_HANDSHAKE, C_OPEN, C_CLOSED };

/* A log-linear histogram of nanoseconds, 1/64 precision. */
#define H_SUB		64
#define H_BUCKETS	(128 + 57 * H_SUB)
struct hist {
	uint64_t	 b[H_BUCKETS];
	uint64_t	 n, max;
};

struct conn {
	int		 fd;
	int		 th;
	int		 addr;		/* index in opt.addr */
	int		 room;
	int		 publisher;
	int		 noread;
	_Atomic int	 state;
	char		 accept[32];
	char		*rbuf;		/* unparsed input */
	size_t		 rlen, rcap;
	char		*msg;		/* a fragmented message being joined */
	size_t		 mlen, mcap;
	int		 mtext;
	int		 pmd;		/* permessage-deflate negotiated */
	int		 mz;		/* the message being read is compressed */
	_Atomic uint64_t pointer;	/* last canvas pointer received */
	_Atomic uint64_t got;		/* actions received */
	uint64_t	 published;	/* publishes sent (a publisher) */
	char		 tok[72];	/* canvas token, kept for reconnects */
	uint64_t	 t_start;	/* storm/catch-up: when it connected */
	uint64_t	 t_first;	/* ... and got its first message */
	int		 opened;
	int		 reconnect;
};

struct thr {
	pthread_t	 tid;
	int		 ep;
	struct hist	 lat;		/* delivery latency */
	struct hist	 xlat;		/* ... to another address than the
					 * publisher's */
	struct hist	 rec;		/* storm: reconnect to first message */
	_Atomic uint64_t deliveries, frames, bytes, gaps, dups, errors;
	_Atomic uint64_t wire;		/* octets read while measuring */
	z_stream	 z;		/* -z: raw inflate, reset per message */
	int		 zinit;
	unsigned char	*zbuf;
	size_t		 zcap;
};

static struct {
	enum proto	 proto;
	enum mode	 mode;
	char		 host[64];	/* = addr[0] */
	int		 port;
	struct {
		char	 host[64];
		int	 port;
	}		 addr[LG_MAXADDRS];
	int		 naddrs;
	char		 prefix[128];
	int		 n, rooms, batch, size, threads, addrs, window;
	int		 storm, noread, joinall, place_worker, deflate;
	double		 rate, duration, warmup;
	uint64_t	 log_len;
	pid_t		 pids[LG_MAXPIDS];
	int		 pgroup[LG_MAXPIDS];	/* the address of each pid */
	int		 npids, ngroups;
	pid_t		 workers[LG_MAXPIDS];
	int		 nworkers;
	pid_t		 epids[LG_MAXPIDS];	/* -e: e.g. Redis, apart */
	int		 nepids;
	int		 place;		/* 0 none, 1 same, 2 cross */
} opt;

static struct conn	*conns;
static int		 nconns;
static struct thr	 thr[LG_MAXTHREADS];
static _Atomic int	 measuring, quitting;
static _Atomic int	 n_open, n_failed, n_closed, n_joined;
static _Atomic uint64_t	 deliv_addr[LG_MAXADDRS];
static char		 rid[LG_MAXROOMS][72];
static char		 rtok[LG_MAXROOMS][72];
static uint64_t		 pubseq;
static rlim_t		 nofile;

static void	usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr,
"usage: loadgen [-J] [-M mode] [-P proto] [-a addrs] [-b actions] [-c pids]\n"
"    [-d secs] [-e pids] [-L log] [-m bytes] [-n members]\n"
"    [-p host:port[,...]] [-r rooms]\n"
"    [-R rate] [-s storm] [-T threads] [-u prefix] [-W window] [-w secs]\n"
"    [-x] [-z] [-X same|cross -k workerpids]\n"
"  -M fanout|catchup|idle|storm|raw  (default fanout)\n"
"  -P canvas|nchan|socketio  protocol (the Node ws peer speaks canvas)\n"
"  -p host:port,...  servers; member i uses the (i %% count)th\n"
"  -n members, -r rooms, -b actions per publish, -m bytes per action\n"
"  -R publishes/s over all rooms (0: as fast as the window allows)\n"
"  -W publishes in flight per room when -R 0; -d measure secs, -w warm-up\n"
"  -c pid,...[/pid,...]  server processes whose CPU (and children's) is\n"
"     counted, one group per server address\n"
"  -e pid,...  other processes (e.g. Redis) whose CPU fanout reports\n"
"     apart, as other_cpu_s, not in the server's\n"
"  -L log length for catchup; -s members that drop and reconnect (storm)\n"
"  -x one member never reads; -J join every member as a guest (canvas)\n"
"  -z offer permessage-deflate and inflate what comes compressed\n"
"  -X same|cross -k wpid,...  keep members on the publisher's worker or\n"
"     on another one (found from /proc/net/tcp and the workers' fds)\n");
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
hist_add(struct hist *h, uint64_t v)
{
	int	 k, i;

	if (v < 128)
		i = (int)v;
	else {
		k = 63 - __builtin_clzll(v);
		i = 128 + (k - 7) * H_SUB + (int)((v >> (k - 6)) & (H_SUB - 1));
	}
	h->b[i]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static uint64_t
hist_value(int i)
{
	int	 k;

	if (i < 128)
		return (uint64_t)i;
	k = (i - 128) / H_SUB + 7;
	return (uint64_t)(H_SUB + (i - 128) % H_SUB) << (k - 6);
}

static uint64_t
hist_pct(const struct hist *h, double p)
{
	uint64_t	 want, seen = 0;
	int		 i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(p / 100.0 * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want)
			return hist_value(i);
	}
	return h->max;
}

static void
hist_merge(struct hist *to, const struct hist *from)
{
	int	 i;

	for (i = 0; i < H_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->n += from->n;
	if (from->max > to->max)
		to->max = from->max;
}

/* /proc: the CPU ticks and memory of the server's processes. */
static int
pids_expand(pid_t *out, int max, int group)
{
	char	 path[64], buf[4096], *p, *e;
	int	 n = 0, i, j;
	FILE	*fp;

	for (i = 0; i < opt.npids && n < max; i++) {
		if (group >= 0 && opt.pgroup[i] != group)
			continue;
		for (j = 0; j < n && out[j] != opt.pids[i]; j++)
			;
		if (j == n)
			out[n++] = opt.pids[i];
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		    out[i], out[i]);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), fp) != NULL)
			for (p = buf; *p != '\0' && n < max; p = e) {
				long	 v = strtol(p, &e, 10);
				int	 k;

				if (e == p)
					break;
				/* Each process once, however it was named. */
				for (k = 0; k < n && out[k] != (pid_t)v; k++)
					;
				if (k == n)
					out[n++] = (pid_t)v;
			}
		fclose(fp);
	}
	return n;
}

/* utime + stime of one process, in clock ticks (0 if it is gone). */
static double
pid_ticks(pid_t pid)
{
	char		 path[64], buf[1024], *s;
	unsigned long	 ut, st;
	double		 sum = 0;
	int		 j;
	FILE		*fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), fp) != NULL &&
	    (s = strrchr(buf, ')')) != NULL) {
		/* Fields 14 and 15 (utime, stime); s is at the end of
		 * field 2, and each space skipped starts one. */
		for (j = 0; j < 12 && s != NULL; j++)
			s = strchr(s + 1, ' ');
		if (s != NULL && sscanf(s, " %lu %lu", &ut, &st) == 2)
			sum = (double)(ut + st);
	}
	fclose(fp);
	return sum;
}

/* CPU seconds of the server's processes of one group (-1: all). */
static double
server_cpu_of(int group)
{
	pid_t		 p[LG_MAXPIDS];
	double		 sum = 0;
	int		 n, i;

	n = pids_expand(p, LG_MAXPIDS, group);
	for (i = 0; i < n; i++)
		sum += pid_ticks(p[i]);
	return sum / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of the -e processes (not counted as the server's). */
static double
extra_cpu(void)
{
	double	 sum = 0;
	int	 i;

	for (i = 0; i < opt.nepids; i++)
		sum += pid_ticks(opt.epids[i]);
	return sum / (double)sysconf(_SC_CLK_TCK);
}

static double
server_cpu(void)
{
	return server_cpu_of(-1);
}

/* Sum of one /proc/PID/status field (kB) over the server, in bytes. */
static uint64_t
server_mem(const char *field)
{
	pid_t		 p[LG_MAXPIDS];
	char		 path[64], line[256];
	size_t		 flen = strlen(field);
	uint64_t	 sum = 0;
	int		 n, i;
	FILE		*fp;

	n = pids_expand(p, LG_MAXPIDS, -1);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/status", p[i]);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		while (fgets(line, sizeof(line), fp) != NULL)
			if (strncmp(line, field, flen) == 0)
				sum += strtoull(line + flen + 1, NULL, 10) *
				    1024;
		fclose(fp);
	}
	return sum;
}

/* Plain HTTP, blocking, for creating and joining canvas rooms. */
static int
http_post(int a, const char *path, const char *body, char *out,
    size_t outlen)
{
	struct sockaddr_in	 sa;
	char			 req[1024];
	size_t			 len = 0;
	ssize_t			 r;
	int			 fd, code = -1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(opt.addr[a].port);
	inet_pton(AF_INET, opt.addr[a].host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		err(1, "connect %s:%d", opt.addr[a].host, opt.addr[a].port);
	snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", path, opt.addr[a].host,
	    strlen(body), body);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		err(1, "write");
	while (len + 1 < outlen &&
	    (r = read(fd, out + len, outlen - len - 1)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(fd);
	sscanf(out, "HTTP/1.%*d %d", &code);
	return code;
}

/* The string value of "key" in a flat JSON reply. */
static int
json_str(const char *s, const char *key, char *out, size_t outlen)
{
	char	 k[64];
	size_t	 i = 0;

	snprintf(k, sizeof(k), "\"%s\":\"", key);
	if ((s = strstr(s, k)) == NULL)
		return -1;
	for (s += strlen(k); *s != '"' && *s != '\0' && i + 1 < outlen; s++)
		out[i++] = *s;
	out[i] = '\0';
	return 0;
}

static char	 reply[1 << 20];	/* a join reply lists every guest */

static void
rooms_create(void)
{
	char	 path[256], body[128];
	int	 r, code;

	for (r = 0; r < opt.rooms; r++) {
		if (opt.proto != P_CANVAS) {
			snprintf(rid[r], sizeof(rid[r]), "b%d_%d", getpid(), r);
			continue;
		}
		snprintf(path, sizeof(path), "%s/rooms", opt.prefix);
		snprintf(body, sizeof(body), "{\"host\":\"h%d\"}", r);
		code = http_post(0, path, body, reply, sizeof(reply));
		if (code != 201 || json_str(reply, "roomId", rid[r],
		    sizeof(rid[r])) == -1 || json_str(reply, "token", rtok[r],
		    sizeof(rtok[r])) == -1)
			errx(1, "creating a room: HTTP %d: %.200s", code, reply);
	}
}

/* A guest's own token (-J), else the host's, shared. */
static void
member_token(struct conn *c, int i, char *tok, size_t len)
{
	char	 path[256], body[128];
	int	 code;

	if (!opt.joinall || c->publisher) {
		snprintf(tok, len, "%s", rtok[c->room]);
		return;
	}
	snprintf(path, sizeof(path), "%s/rooms/%s/join", opt.prefix,
	    rid[c->room]);
	snprintf(body, sizeof(body), "{\"name\":\"g%d\"}", i);
	code = http_post(c->addr, path, body, reply, sizeof(reply));
	if (code != 200 || json_str(reply, "token", tok, len) == -1)
		errx(1, "joining: HTTP %d: %.200s", code, reply);
}

static void
ws_key(char *key, char *accept)
{
	unsigned char	 raw[16], dig[20];
	char		 cat[128];
	unsigned int	 dlen;
	EVP_MD_CTX	*md;

	RAND_bytes(raw, sizeof(raw));
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	snprintf(cat, sizeof(cat), "%s%s", key, LG_WS_GUID);
	md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha1(), NULL);
	EVP_DigestUpdate(md, cat, strlen(cat));
	EVP_DigestFinal_ex(md, dig, &dlen);
	EVP_MD_CTX_free(md);
	EVP_EncodeBlock((unsigned char *)accept, dig, sizeof(dig));
}

/* Write all of buf to a nonblocking socket, waiting when it is full. */
static int
write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	struct pollfd	 pfd;
	ssize_t		 r;

	while (len > 0) {
		r = write(fd, p, len);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, 1000) == 0 && quitting)
				return -1;
		} else
			return -1;
	}
	return 0;
}

/* Send one masked client frame. */
static int
ws_send(struct conn *c, int op, const char *data, size_t len)
{
	unsigned char	 hdr[14], mask[4], *buf;
	size_t		 h = 0, i;
	int		 rc;

	hdr[h++] = 0x80 | (unsigned char)op;
	if (len < 126)
		hdr[h++] = 0x80 | (unsigned char)len;
	else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			hdr[h++] = (unsigned char)((uint64_t)len >>
			    (56 - 8 * i));
	}
	RAND_bytes(mask, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;
	if ((buf = malloc(h + len)) == NULL)
		err(1, "malloc");
	memcpy(buf, hdr, h);
	for (i = 0; i < len; i++)
		buf[h + i] = (unsigned char)data[i] ^ mask[i & 3];
	rc = write_all(c->fd, buf, h + len);
	free(buf);
	return rc;
}

/*
 * One action: {"x":"@<send time ns>#aaaa"} padded to opt.size bytes.
 * Returns its length.
 */
static size_t
action(char *p, uint64_t t)
{
	int	 n, pad;

	n = sprintf(p, "{\"x\":\"@%" PRIu64 "#", t);
	pad = opt.size - n - 2;
	if (pad > 0) {
		memset(p + n, 'a', (size_t)pad);
		n += pad;
	}
	memcpy(p + n, "\"}", 2);
	return (size_t)n + 2;
}

/* A publish of opt.batch actions as one JSON array (for Socket.IO, the
 * argument of a "pub" event to the room). */
static size_t
publish_body(char *p, uint64_t t, int room)
{
	size_t	 len = 1;
	int	 i;

	if (opt.proto == P_SOCKETIO)
		len = (size_t)sprintf(p, "42[\"pub\",\"%s\",[", rid[room]);
	else
		p[0] = '[';
	for (i = 0; i < opt.batch; i++) {
		if (i > 0)
			p[len++] = ',';
		len += action(p + len, t);
	}
	p[len++] = ']';
	if (opt.proto == P_SOCKETIO)
		p[len++] = ']';
	return len;
}

/*
 * Socket.IO's own packets, answered here: the Engine.IO open packet
 * ("0{...}": connect to the main namespace), the namespace's connect
 * ("40{...}": now join the room; an event sent before it would close the
 * connection), a ping ("2": pong "3") and the peer's "joined".  Returns 1
 * for those, 0 for an event to count.
 */
static int
sio_control(struct conn *c, const char *d, size_t len)
{
	char	 join[128];
	int	 n;

	if (len >= 2 && d[0] == '4' && d[1] == '0') {
		n = snprintf(join, sizeof(join), "42[\"join\",\"%s\"]",
		    rid[c->room]);
		ws_send(c, 0x1, join, (size_t)n);
		return 1;
	}
	if (len >= 1 && d[0] == '0') {
		ws_send(c, 0x1, "40", 2);
		return 1;
	}
	if (len == 1 && d[0] == '2') {
		ws_send(c, 0x1, "3", 1);
		return 1;
	}
	if (len >= 10 && memcmp(d, "42[\"joined\"", 10) == 0) {
		atomic_fetch_add(&n_joined, 1);
		return 1;
	}
	return 0;
}

/* A text message arrived: count its actions, their latency, pointers. */
static void
on_message(struct thr *t, struct conn *c, const char *d, size_t len)
{
	const char	*p = d, *e = d + len, *q;
	uint64_t	 ts, now = now_ns(), n = 0, ptr;
	int		 meas = atomic_load(&measuring);
	int		 cross = c->addr != conns[c->room].addr;

	if (opt.proto == P_SOCKETIO && sio_control(c, d, len))
		return;
	if (c->t_start != 0 && c->t_first == 0) {
		c->t_first = now;
		if (meas && c->reconnect)
			hist_add(&t->rec, now - c->t_start);
	}
	if (meas) {
		atomic_fetch_add(&t->frames, 1);
		atomic_fetch_add(&t->bytes, len);
	}
	while ((q = memchr(p, '@', (size_t)(e - p))) != NULL) {
		p = q + 1;
		ts = 0;
		while (p < e && isdigit((unsigned char)*p))
			ts = ts * 10 + (uint64_t)(*p++ - '0');
		if (p >= e || *p != '#')
			continue;
		n++;
		if (meas && ts != 0 && ts <= now) {
			hist_add(&t->lat, now - ts);
			if (cross)
				hist_add(&t->xlat, now - ts);
		}
		if (opt.proto != P_CANVAS)
			continue;
		/* ,"pointer":N} follows the action's value. */
		if ((q = memmem(p, (size_t)(e - p), "\"pointer\":", 10)) ==
		    NULL)
			continue;
		ptr = strtoull(q + 10, NULL, 10);
		if (ptr == c->pointer + 1 || c->pointer == 0)
			;
		else if (ptr <= c->pointer)
			atomic_fetch_add(&t->dups, 1);
		else
			atomic_fetch_add(&t->gaps, 1);
		c->pointer = ptr;
	}
	if (memmem(d, len, "\"error\"", 7) != NULL) {
		atomic_fetch_add(&t->errors, 1);
		if (atomic_load(&t->errors) < 5)
			fprintf(stderr, "loadgen: server said %.*s\n",
			    (int)(len < 200 ? len : 200), d);
	}
	c->got += n;
	if (meas) {
		atomic_fetch_add(&t->deliveries, n);
		atomic_fetch_add(&deliv_addr[c->addr], n);
	}
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1) {
		epoll_ctl(thr[c->th].ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	if (c->state == C_OPEN)
		atomic_fetch_add(&n_open, -1);
	else if (c->state == C_HANDSHAKE)
		atomic_fetch_add(&n_failed, 1);
	c->state = C_CLOSED;
	atomic_fetch_add(&n_closed, 1);
}

/* Parse the handshake reply; 1 if done, 0 if more is needed, -1. */
static int
conn_handshake(struct conn *c)
{
	char	*end, *a;

	c->rbuf[c->rlen] = '\0';
	if ((end = strstr(c->rbuf, "\r\n\r\n")) == NULL)
		return c->rlen > 8192 ? -1 : 0;
	if (strncmp(c->rbuf, "HTTP/1.1 101", 12) != 0 ||
	    (a = strcasestr(c->rbuf, "\r\nSec-WebSocket-Accept:")) == NULL)
		return -1;
	for (a += 23; *a == ' '; a++)
		;
	if (strncmp(a, c->accept, strlen(c->accept)) != 0)
		return -1;
	*end = '\0';
	c->pmd = opt.deflate && strcasestr(c->rbuf,
	    "\r\nSec-WebSocket-Extensions: permessage-deflate") != NULL;
	end += 4;
	c->rlen -= (size_t)(end - c->rbuf);
	memmove(c->rbuf, end, c->rlen);
	c->state = C_OPEN;
	atomic_fetch_add(&n_open, 1);
	if (c->noread)
		epoll_ctl(thr[c->th].ep, EPOLL_CTL_DEL, c->fd, NULL);
	return 1;
}

/* A whole message: inflated first if it came compressed (each on its own:
 * roomd takes no context over between messages). */
static void
on_payload(struct thr *t, struct conn *c, const char *d, size_t len)
{
	static const unsigned char tail[4] = { 0, 0, 0xff, 0xff };
	size_t	 out = 0;
	int	 rc, pass;

	if (!c->mz) {
		on_message(t, c, d, len);
		return;
	}
	if (!t->zinit) {
		if (inflateInit2(&t->z, -15) != Z_OK)
			errx(1, "inflateInit2");
		t->zinit = 1;
	} else
		inflateReset(&t->z);
	t->z.next_in = (unsigned char *)(uintptr_t)d;
	t->z.avail_in = (unsigned)len;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {	/* the 00 00 ff ff the sender dropped */
			t->z.next_in = (unsigned char *)(uintptr_t)tail;
			t->z.avail_in = 4;
		}
		do {
			if (t->zcap - out < 65536) {
				t->zcap = t->zcap ? 2 * t->zcap : 1 << 20;
				if ((t->zbuf = realloc(t->zbuf, t->zcap)) ==
				    NULL)
					err(1, "realloc");
			}
			t->z.next_out = t->zbuf + out;
			t->z.avail_out = (unsigned)(t->zcap - out);
			rc = inflate(&t->z, Z_SYNC_FLUSH);
			out = t->zcap - t->z.avail_out;
			if (rc == Z_STREAM_END)
				pass = 2;
			else if (rc != Z_OK && rc != Z_BUF_ERROR) {
				atomic_fetch_add(&t->errors, 1);
				return;
			}
		} while (rc != Z_STREAM_END && (t->z.avail_in > 0 ||
		    t->z.avail_out == 0));
	}
	on_message(t, c, (const char *)t->zbuf, out);
}

/* Take whole frames out of rbuf. */
static int
conn_frames(struct thr *t, struct conn *c)
{
	unsigned char	*b;
	uint64_t	 plen;
	size_t		 h, off = 0;
	int		 op, fin, i;

	while (c->rlen - off >= 2) {
		b = (unsigned char *)c->rbuf + off;
		fin = b[0] & 0x80;
		op = b[0] & 0x0f;
		plen = b[1] & 0x7f;
		h = 2;
		if (plen == 126) {
			if (c->rlen - off < 4)
				break;
			plen = ((uint64_t)b[2] << 8) | b[3];
			h = 4;
		} else if (plen == 127) {
			if (c->rlen - off < 10)
				break;
			for (plen = 0, i = 0; i < 8; i++)
				plen = (plen << 8) | b[2 + i];
			h = 10;
		}
		if (c->rlen - off < h + plen)
			break;
		if (op == 0x8)
			return -1;
		if (op == 0x9)
			ws_send(c, 0xa, (char *)b + h, (size_t)plen);
		else if (op == 0x1 || op == 0x2 || op == 0x0) {
			if (op != 0) {
				c->mtext = op == 1;
				c->mz = c->pmd && (b[0] & 0x40);
			}
			if (fin && c->mlen == 0)
				on_payload(t, c, (char *)b + h, (size_t)plen);
			else {
				if (c->mlen + plen > c->mcap) {
					c->mcap = (c->mlen + plen) * 2;
					if ((c->msg = realloc(c->msg,
					    c->mcap)) == NULL)
						err(1, "realloc");
				}
				memcpy(c->msg + c->mlen, b + h, plen);
				c->mlen += plen;
				if (fin) {
					on_payload(t, c, c->msg, c->mlen);
					c->mlen = 0;
				}
			}
		}
		off += h + plen;
	}
	if (atomic_load(&measuring))
		atomic_fetch_add(&t->wire, off);
	c->rlen -= off;
	if (c->rlen > 0 && off > 0)
		memmove(c->rbuf, c->rbuf + off, c->rlen);
	return 0;
}

static void
conn_read(struct thr *t, struct conn *c)
{
	ssize_t	 r;

	for (;;) {
		if (c->rcap - c->rlen < 65536 / 2) {
			c->rcap = c->rcap == 0 ? 65536 : c->rcap * 2;
			if ((c->rbuf = realloc(c->rbuf, c->rcap + 1)) == NULL)
				err(1, "realloc");
		}
		r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (r <= 0) {
			conn_close(c);
			return;
		}
		c->rlen += (size_t)r;
		if (c->state == C_HANDSHAKE) {
			switch (conn_handshake(c)) {
			case -1:
				c->rbuf[c->rlen < 200 ? c->rlen : 200] = '\0';
				if (atomic_load(&n_failed) < 3)
					fprintf(stderr, "loadgen: handshake "
					    "refused: %s\n", c->rbuf);
				conn_close(c);
				return;
			case 0:
				continue;
			}
			if (c->noread)
				return;
		}
		if (conn_frames(t, c) == -1) {
			conn_close(c);
			return;
		}
		/* Keep a small buffer for the many idle members. */
		if (c->rlen == 0 && c->rcap > 65536) {
			free(c->rbuf);
			c->rbuf = NULL;
			c->rcap = 0;
		}
		if ((size_t)r < c->rcap / 2)
			break;
	}
}

static void *
thr_main(void *arg)
{
	struct thr		*t = arg;
	struct epoll_event	 ev[256];
	int			 n, i;

	while (!atomic_load(&quitting)) {
		n = epoll_wait(t->ep, ev, 256, 100);
		for (i = 0; i < n; i++)
			conn_read(t, ev[i].data.ptr);
	}
	return NULL;
}

/* Open connection i: connect from 127.0.0.(2 + i % addrs), handshake. */
static int
conn_open(int i, uint64_t pointer)
{
	struct conn		*c = &conns[i];
	struct sockaddr_in	 sa, src;
	struct epoll_event	 ev;
	char			 req[1024], key[32], tok[80], path[512];
	int			 on = 1, small = 4096;

	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on,
	    sizeof(on));
	if (c->noread)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small,
		    sizeof(small));
	memset(&src, 0, sizeof(src));
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000002 + (uint32_t)(i % opt.addrs));
	if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
		warn("bind 127.0.0.%d", 2 + i % opt.addrs);
		goto fail;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(opt.addr[c->addr].port);
	inet_pton(AF_INET, opt.addr[c->addr].host, &sa.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		warn("connect");
		goto fail;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (opt.proto == P_CANVAS) {
		if (c->opened == 0)
			member_token(c, i, c->tok, sizeof(c->tok));
		snprintf(tok, sizeof(tok), "%s", c->tok);
		if (pointer > 0)
			snprintf(path, sizeof(path), "%s/rooms/%s/ws?token=%s"
			    "&pointer=%" PRIu64, opt.prefix, rid[c->room], tok,
			    pointer);
		else
			snprintf(path, sizeof(path), "%s/rooms/%s/ws?token=%s",
			    opt.prefix, rid[c->room], tok);
	} else if (opt.proto == P_SOCKETIO)
		snprintf(path, sizeof(path),
		    "/socket.io/?EIO=4&transport=websocket");
	else
		snprintf(path, sizeof(path), "%s/%s", c->publisher ?
		    "/pubsub" : "/sub", rid[c->room]);
	ws_key(key, c->accept);
	if (opt.proto == P_CANVAS)
		c->opened = 1;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
	    path, opt.addr[c->addr].host, opt.addr[c->addr].port, key,
	    opt.deflate ?
	    "Sec-WebSocket-Extensions: permessage-deflate; "
	    "client_max_window_bits\r\n" : "");
	c->rlen = 0;
	c->mlen = 0;
	c->state = C_HANDSHAKE;
	if (write(c->fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto fail;
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	if (epoll_ctl(thr[c->th].ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
	return 0;
 fail:
	close(c->fd);
	c->fd = -1;
	c->state = C_CLOSED;
	atomic_fetch_add(&n_failed, 1);
	return -1;
}

/* Wait until open + failed reaches want, or secs pass. */
static int
wait_open(int want, double secs)
{
	uint64_t	 end = now_ns() + (uint64_t)(secs * 1e9);

	while (atomic_load(&n_open) + atomic_load(&n_failed) < want) {
		if (now_ns() > end)
			return -1;
		usleep(2000);
	}
	return 0;
}

/* Open conns[from..to), with at most LG_INFLIGHT handshakes at once. */
static void
open_range(int from, int to)
{
	uint64_t	 stuck;
	int		 i, done, base;

	base = atomic_load(&n_open) + atomic_load(&n_failed);
	for (i = from; i < to; i++) {
		/* A server that stops answering handshakes ends it. */
		stuck = now_ns() + 20000000000ULL;
		while (i - from - (atomic_load(&n_open) +
		    atomic_load(&n_failed) - base) >= LG_INFLIGHT) {
			if (now_ns() > stuck) {
				fprintf(stderr, "loadgen: no handshake "
				    "answered for 20 s: stopped at %d of %d "
				    "connections\n", i, to);
				done = atomic_load(&n_open) +
				    atomic_load(&n_failed) - base;
				atomic_fetch_add(&n_failed, to - from - done);
				return;
			}
			usleep(200);
		}
		conn_open(i, 0);
	}
	wait_open(base + (to - from), 60);
}

/* The worker that holds the server end of each member's connection. */
static int
place_find(int *which)
{
	char		 line[512], path[300], link[64];
	unsigned int	 la, lp, ra, rp;
	unsigned long	 inode;
	struct dirent	*de;
	DIR		*d;
	FILE		*fp;
	int		 i, w, nfound = 0;
	struct { unsigned int a, p; unsigned long inode; } *map;
	size_t		 nmap = 0, cap = 1024;

	if ((map = malloc(cap * sizeof(*map))) == NULL)
		err(1, "malloc");
	if ((fp = fopen("/proc/net/tcp", "r")) == NULL)
		err(1, "/proc/net/tcp");
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, " %*d: %x:%x %x:%x %*x %*x:%*x %*x:%*x %*x "
		    "%*d %*d %lu", &la, &lp, &ra, &rp, &inode) != 5)
			continue;
		if ((int)lp != opt.port || inode == 0)
			continue;
		if (nmap == cap && (map = realloc(map, (cap *= 2) *
		    sizeof(*map))) == NULL)
			err(1, "realloc");
		map[nmap].a = ra;
		map[nmap].p = rp;
		map[nmap++].inode = inode;
	}
	fclose(fp);
	for (i = 0; i < nconns; i++)
		which[i] = -1;
	for (w = 0; w < opt.nworkers; w++) {
		snprintf(path, sizeof(path), "/proc/%d/fd", opt.workers[w]);
		if ((d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			char	 fdp[300 + 256];
			ssize_t	 l;
			size_t	 k;

			snprintf(fdp, sizeof(fdp), "%s/%s", path, de->d_name);
			if ((l = readlink(fdp, link, sizeof(link) - 1)) <= 0)
				continue;
			link[l] = '\0';
			if (sscanf(link, "socket:[%lu]", &inode) != 1)
				continue;
			for (k = 0; k < nmap; k++) {
				struct sockaddr_in	 sa;
				socklen_t		 sl = sizeof(sa);

				if (map[k].inode != inode)
					continue;
				for (i = 0; i < nconns; i++) {
					if (conns[i].fd == -1 ||
					    getsockname(conns[i].fd,
					    (struct sockaddr *)&sa, &sl) == -1)
						continue;
					if (ntohs(sa.sin_port) == map[k].p &&
					    sa.sin_addr.s_addr == map[k].a) {
						which[i] = w;
						nfound++;
					}
				}
			}
		}
		closedir(d);
	}
	free(map);
	return nfound;
}

static void
setup_nofile(int want)
{
	struct rlimit	 rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	nofile = rl.rlim_cur;
	if ((rlim_t)want + 64 > nofile)
		fprintf(stderr, "loadgen: RLIMIT_NOFILE is %llu (the hard "
		    "limit): fewer than %d connections will open\n",
		    (unsigned long long)nofile, want);
}

/* Socket.IO: wait until the members that opened have joined their room. */
static void
sio_wait_joined(int want)
{
	uint64_t	 end = now_ns() + 30000000000ULL;

	while (atomic_load(&n_joined) < want - atomic_load(&n_failed) &&
	    now_ns() < end)
		usleep(2000);
	if (atomic_load(&n_joined) < want - atomic_load(&n_failed))
		fprintf(stderr, "loadgen: only %d of %d members joined\n",
		    atomic_load(&n_joined), want);
}

/*
 * Members: conns[0..rooms) are the publishers (members too), the rest
 * are spread over the rooms.  With -X the members are over-opened and
 * only those on the wanted worker are kept.
 */
static void
members_open(void)
{
	int	*which, i, j, pw, keep = 0, want = opt.n;

	if (opt.place)
		nconns = opt.rooms + (opt.n - opt.rooms) * 3;
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].room = i % opt.rooms;
		conns[i].publisher = i < opt.rooms;
		conns[i].addr = conns[i].publisher ? 0 : i % opt.naddrs;
		conns[i].th = i % opt.threads;
		conns[i].noread = opt.noread && i == nconns - 1;
	}
	open_range(0, nconns);
	if (opt.proto == P_SOCKETIO)
		sio_wait_joined(nconns);
	if (!opt.place)
		return;
	if ((which = calloc((size_t)nconns, sizeof(int))) == NULL)
		err(1, "calloc");
	place_find(which);
	pw = which[0];
	if (pw == -1)
		errx(1, "-X: the publisher's worker was not found");
	for (i = opt.rooms, j = 0; i < nconns; i++) {
		int ok = opt.place == 1 ? which[i] == pw :
		    which[i] != -1 && which[i] != pw;
		if (ok && keep < want - opt.rooms)
			keep++;
		else if (conns[i].state == C_OPEN) {
			shutdown(conns[i].fd, SHUT_RDWR);
			j++;
		}
	}
	while (atomic_load(&n_open) > keep + opt.rooms)
		usleep(1000);
	fprintf(stderr, "loadgen: -X %s: publisher on worker %d, %d members "
	    "kept, %d closed\n", opt.place == 1 ? "same" : "cross", pw, keep,
	    j);
	free(which);
}

static char *
pubbuf(void)
{
	char	*b;

	if ((b = malloc((size_t)opt.batch * ((size_t)opt.size + 48) + 16)) ==
	    NULL)
		err(1, "malloc");
	return b;
}

/* Publish for secs: at opt.rate, or with a window of acks. */
static void
publish_for(double secs, char *buf)
{
	uint64_t	 start = now_ns(), end, next, gap = 0, t;
	size_t		 len;
	int		 r, sent;

	end = start + (uint64_t)(secs * 1e9);
	if (opt.rate > 0)
		gap = (uint64_t)(1e9 / opt.rate);
	next = start;
	r = 0;
	while ((t = now_ns()) < end) {
		struct conn	*p = &conns[r];

		if (opt.rate > 0) {
			if (t < next) {
				struct timespec ts = { 0, (long)(next - t) };
				if (next - t > 50000)
					nanosleep(&ts, NULL);
				continue;
			}
			next += gap;
		} else {
			sent = 0;
			/* The publisher's own count: with several rooms,
			 * pubseq / rooms is behind a room already published
			 * in this round, and a member that got all of it
			 * would look ahead of it. */
			while (p->state == C_OPEN && p->published >=
			    atomic_load(&p->got) / (uint64_t)opt.batch +
			    (uint64_t)opt.window && now_ns() < end) {
				if (++sent > 1000) {
					usleep(10);
					sent = 0;
				}
			}
		}
		if (p->state == C_OPEN) {
			len = publish_body(buf, now_ns(), p->room);
			ws_send(p, 0x1, buf, len);
			p->published++;
			pubseq++;
		}
		r = (r + 1) % opt.rooms;
	}
}

static void
report(const char *mode, double secs, double cpu, const char *extra)
{
	struct hist	 lat, rec, xlat;
	uint64_t	 d = 0, f = 0, b = 0, g = 0, u = 0, e = 0, w = 0;
	int		 i;

	memset(&lat, 0, sizeof(lat));
	memset(&rec, 0, sizeof(rec));
	memset(&xlat, 0, sizeof(xlat));
	for (i = 0; i < opt.threads; i++) {
		hist_merge(&lat, &thr[i].lat);
		hist_merge(&xlat, &thr[i].xlat);
		hist_merge(&rec, &thr[i].rec);
		d += thr[i].deliveries;
		f += thr[i].frames;
		b += thr[i].bytes;
		g += thr[i].gaps;
		u += thr[i].dups;
		e += thr[i].errors;
		w += thr[i].wire;
	}
	printf("RESULT {\"mode\":\"%s\",\"proto\":\"%s\",\"members\":%d,"
	    "\"open\":%d,\"failed\":%d,\"rooms\":%d,\"batch\":%d,"
	    "\"nofile\":%llu,\"secs\":%.3f,\"publishes\":%" PRIu64 ","
	    "\"deliveries\":%" PRIu64 ",\"deliveries_per_s\":%.0f,"
	    "\"frames\":%" PRIu64 ",\"bytes\":%" PRIu64 ","
	    "\"wire_bytes\":%" PRIu64 ",\"deflate\":%d,"
	    "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
	    "\"server_cpu_s\":%.2f,\"cpu_us_per_delivery\":%.3f,"
	    "\"reconnect_p50_us\":%.1f,\"reconnect_p99_us\":%.1f,"
	    "\"reconnect_max_us\":%.1f,\"reconnects\":%" PRIu64 ","
	    "\"gaps\":%" PRIu64 ",\"dups\":%" PRIu64 ",\"errors\":%" PRIu64
	    ",\"addrs\":%d,\"cross_deliveries\":%" PRIu64 ","
	    "\"cross_p50_us\":%.1f,\"cross_p99_us\":%.1f"
	    "%s}\n", mode, opt.proto == P_CANVAS ? "canvas" :
	    opt.proto == P_NCHAN ? "nchan" : "socketio", opt.n,
	    atomic_load(&n_open), atomic_load(&n_failed), opt.rooms,
	    opt.batch, (unsigned long long)nofile, secs, pubseq, d,
	    secs > 0 ? (double)d / secs : 0,
	    f, b, w, opt.deflate, hist_pct(&lat, 50) / 1e3, hist_pct(&lat, 99) / 1e3,
	    lat.max / 1e3, cpu, d > 0 ? cpu * 1e6 / (double)d : 0,
	    hist_pct(&rec, 50) / 1e3, hist_pct(&rec, 99) / 1e3,
	    rec.max / 1e3, rec.n, g, u, e, opt.naddrs, xlat.n,
	    hist_pct(&xlat, 50) / 1e3, hist_pct(&xlat, 99) / 1e3, extra);
	fflush(stdout);
}

/* ,"by_addr":[{"deliveries":D,"cpu_s":C,"cpu_us_per_delivery":X},...] */
static void
by_addr(char *out, size_t len, const double *cpu)
{
	size_t		 o;
	uint64_t	 d;
	int		 a;

	o = (size_t)snprintf(out, len, ",\"by_addr\":[");
	for (a = 0; a < opt.naddrs && o < len; a++) {
		d = atomic_load(&deliv_addr[a]);
		o += (size_t)snprintf(out + o, len - o, "%s{\"addr\":\"%s:%d\","
		    "\"deliveries\":%" PRIu64 ",\"cpu_s\":%.2f,"
		    "\"cpu_us_per_delivery\":%.3f}", a ? "," : "",
		    opt.addr[a].host, opt.addr[a].port, d, cpu[a],
		    d > 0 ? cpu[a] * 1e6 / (double)d : 0);
	}
	if (o < len)
		snprintf(out + o, len - o, "]");
}

static void
run_fanout(void)
{
	char		*buf = pubbuf(), extra[256 + 160 * LG_MAXADDRS];
	double		 cpu0, cpu1, gcpu[LG_MAXADDRS], e0, e1;
	uint64_t	 t0, t1, m0, m1;
	size_t		 o;
	int		 a;

	members_open();
	publish_for(opt.warmup, buf);
	m0 = server_mem("RssAnon:");
	e0 = extra_cpu();
	cpu0 = server_cpu();
	for (a = 0; a < opt.naddrs; a++)
		gcpu[a] = server_cpu_of(a);
	t0 = now_ns();
	atomic_store(&measuring, 1);
	publish_for(opt.duration, buf);
	usleep(200000);		/* the last deliveries */
	atomic_store(&measuring, 0);
	t1 = now_ns();
	cpu1 = server_cpu();
	for (a = 0; a < opt.naddrs; a++)
		gcpu[a] = server_cpu_of(a) - gcpu[a];
	e1 = extra_cpu();
	m1 = server_mem("RssAnon:");
	o = (size_t)snprintf(extra, sizeof(extra), ",\"rss_anon_before\":%"
	    PRIu64 ",\"rss_anon_after\":%" PRIu64, m0, m1);
	if (opt.nepids > 0)
		o += (size_t)snprintf(extra + o, sizeof(extra) - o,
		    ",\"other_cpu_s\":%.2f", e1 - e0);
	if (opt.naddrs > 1)
		by_addr(extra + o, sizeof(extra) - o, gcpu);
	report("fanout", (double)(t1 - t0) / 1e9 - 0.2, cpu1 - cpu0, extra);

	free(buf);
}

/* W4: fill a log of opt.log_len actions, then opt.n joiners read it. */
static void
run_catchup(void)
{
	char		*buf, extra[256];
	uint64_t	 t0, t1, want, bytes = 0, dl = 0, sent;
	double		 cpu0, cpu1;
	int		 i, done, saved = opt.batch, fill;

	nconns = 1;
	conns[0].fd = -1;
	conns[0].room = 0;
	conns[0].publisher = 1;
	open_range(0, 1);
	if (conns[0].state != C_OPEN)
		errx(1, "the publisher did not open");
	/* Canvas takes big batches; nchan buffers one message per action. */
	fill = opt.proto == P_CANVAS ? 1000 : 1;
	opt.batch = fill;
	buf = pubbuf();
	/* Filling is bounded by -d too; the log is then what got in. */
	t0 = now_ns();
	for (sent = 0; sent < opt.log_len && now_ns() - t0 <
	    (uint64_t)(opt.duration * 1e9); sent += (uint64_t)opt.batch) {
		if (opt.log_len - sent < (uint64_t)fill)
			opt.batch = (int)(opt.log_len - sent);
		while (sent - conns[0].got >= 8 * (uint64_t)fill &&
		    conns[0].state == C_OPEN)
			usleep(50);
		ws_send(&conns[0], 0x1, buf, publish_body(buf, 0, 0));
		pubseq++;
	}
	for (t0 = now_ns(); conns[0].got < sent &&
	    conns[0].state == C_OPEN && now_ns() - t0 < 60000000000ULL;)
		usleep(1000);
	if (sent < opt.log_len)
		fprintf(stderr, "loadgen: filling stopped after %.0f s at %"
		    PRIu64 " actions\n", opt.duration, sent);
	opt.log_len = conns[0].got;
	fprintf(stderr, "loadgen: log of %" PRIu64 " actions in place\n",
	    conns[0].got);
	opt.batch = saved;
	/* The joiners. */
	nconns = opt.n + 1;
	for (i = 1; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].room = 0;
		conns[i].addr = opt.naddrs - 1;	/* a host that never saw it */
		conns[i].th = i % opt.threads;
	}
	cpu0 = server_cpu();
	t0 = now_ns();
	atomic_store(&measuring, 1);
	for (i = 1; i < nconns; i++)
		conns[i].t_start = t0;
	open_range(1, nconns);
	want = opt.log_len;
	for (;;) {
		for (done = 0, i = 1; i < nconns; i++)
			if (conns[i].got >= want || conns[i].state == C_CLOSED)
				done++;
		if (done == opt.n || now_ns() - t0 > (uint64_t)(opt.duration *
		    1e9))
			break;
		usleep(1000);
	}
	t1 = now_ns();
	for (i = 1; i < nconns; i++)
		if (conns[i].t_first > t1)
			t1 = conns[i].t_first;
	atomic_store(&measuring, 0);
	cpu1 = server_cpu();
	for (i = 0; i < opt.threads; i++) {
		bytes += thr[i].bytes;
		dl += thr[i].deliveries;
	}
	snprintf(extra, sizeof(extra), ",\"log\":%" PRIu64 ",\"complete\":%d,"
	    "\"actions_per_s\":%.0f,\"mb_per_s\":%.2f", opt.log_len, done,
	    (double)dl / ((double)(t1 - t0) / 1e9),
	    (double)bytes / 1e6 / ((double)(t1 - t0) / 1e9));
	report("catchup", (double)(t1 - t0) / 1e9, cpu1 - cpu0, extra);
	free(buf);
}

/* W5: N idle members; memory growth of the server per member. */
static void
run_idle(void)
{
	char		 extra[256];
	uint64_t	 a0, a1, s0, s1;
	int		 warm = opt.n < 100 ? opt.n : 100;

	/* A first few, so per-process start-up costs are not counted. */
	nconns = warm;
	members_open();
	sleep(1);
	a0 = server_mem("RssAnon:");
	s0 = server_mem("RssShmem:");
	nconns = opt.n;
	open_range(warm, nconns);
	sleep(2);
	a1 = server_mem("RssAnon:");
	s1 = server_mem("RssShmem:");
	snprintf(extra, sizeof(extra), ",\"measured\":%d,\"rss_anon_delta\":%"
	    PRId64 ",\"rss_shmem_delta\":%" PRId64 ",\"anon_per_conn\":%.0f",
	    atomic_load(&n_open) - warm, (int64_t)(a1 - a0),
	    (int64_t)(s1 - s0), (double)(int64_t)(a1 - a0) /
	    (atomic_load(&n_open) - warm > 0 ? atomic_load(&n_open) - warm :
	    1));
	report("idle", 0, 0, extra);
	/* The run script reads the arena now; wait for its word. */
	if (opt.duration > 0)
		usleep((useconds_t)(opt.duration * 1e6));
}

/* W7: opt.storm members drop at once and reconnect with their pointer. */
static void
run_storm(void)
{
	char		*buf = pubbuf(), extra[256];
	uint64_t	 t0, t1;
	uint64_t	*saved;
	double		 cpu0, cpu1;
	int		 i, k = opt.storm, first = opt.rooms, closed0, bad = 0;

	members_open();
	if (k > nconns - first)
		k = nconns - first;
	publish_for(opt.warmup, buf);
	if ((saved = calloc((size_t)nconns, sizeof(*saved))) == NULL)
		err(1, "calloc");
	cpu0 = server_cpu();
	atomic_store(&measuring, 1);
	t0 = now_ns();
	closed0 = atomic_load(&n_closed);
	/* Drop: the reading thread sees EOF and closes. */
	for (i = first; i < first + k; i++)
		shutdown(conns[i].fd, SHUT_RDWR);
	while (atomic_load(&n_closed) - closed0 < k &&
	    now_ns() - t0 < 10000000000ULL)
		usleep(500);
	/* Reconnect with the last pointer, while publishing goes on. */
	for (i = first; i < first + k; i++) {
		conns[i].reconnect = 1;
		conns[i].t_first = 0;
		conns[i].t_start = now_ns();
		saved[i] = conns[i].pointer;
		conn_open(i, conns[i].pointer);
		if (i % 64 == 0)
			publish_for(0.0005, buf);
	}
	publish_for(opt.duration, buf);
	usleep(300000);
	atomic_store(&measuring, 0);
	t1 = now_ns();
	cpu1 = server_cpu();
	for (i = first; i < first + k; i++)
		if (conns[i].state != C_OPEN || conns[i].t_first == 0)
			bad++;
	snprintf(extra, sizeof(extra), ",\"storm\":%d,\"not_back\":%d", k,
	    bad);
	report("storm", (double)(t1 - t0) / 1e9, cpu1 - cpu0, extra);
	free(saved);
	free(buf);
}

/*
 * The floor: what one write() of a small frame to a loopback TCP socket
 * costs the writer, over opt.n sockets, one write per frame.  With -R,
 * a round (a frame to every socket, as a server's fan-out of one
 * publish) starts every 1/rate s, and the reader measures each frame's
 * latency from the start of its round: the fan-out latency that a
 * server writing once per member cannot go below.
 */

/* The reader's side of raw: one frame is opt.size * opt.batch + 4 bytes,
 * its first 8 the start of its round (now_ns). */
struct raw_in {
	size_t		 off;		/* into the current frame */
	unsigned char	 stamp[8];
};

static void
raw_read(struct raw_in *in, const unsigned char *p, size_t n, size_t flen,
    struct hist *h)
{
	uint64_t	 t0, now = now_ns();
	size_t		 k;

	while (n > 0) {
		if (in->off < sizeof(in->stamp)) {
			k = sizeof(in->stamp) - in->off;
			if (k > n)
				k = n;
			memcpy(in->stamp + in->off, p, k);
		}
		k = flen - in->off;
		if (k > n)
			k = n;
		in->off += k;
		p += k;
		n -= k;
		if (in->off == flen) {
			memcpy(&t0, in->stamp, sizeof(t0));
			if (t0 != 0 && now > t0)
				hist_add(h, now - t0);
			in->off = 0;
		}
	}
}
static void
run_raw(void)
{
	struct sockaddr_in	 sa;
	socklen_t		 sl = sizeof(sa);
	struct timespec		 c0, c1;
	char			 frame[65536], rb[65536];
	uint64_t		 writes = 0, t0;
	int			 lfd, *w, *r, i, n = opt.n, on = 1;
	size_t			 flen = (size_t)opt.size * (size_t)opt.batch + 4;
	pid_t			 kid;
	cpu_set_t		 cpus;
	int			 first = -1, last = -1, pfd[2];
	struct hist		*h;
	uint64_t		 round = 0, next;

	if (flen > sizeof(frame))
		flen = sizeof(frame);
	if (flen < 8)
		flen = 8;
	memset(frame, 'a', flen);
	if ((h = calloc(1, sizeof(*h))) == NULL || pipe(pfd) == -1)
		err(1, "raw");
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(0x7f000001);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(lfd, 4096) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) == -1)
		err(1, "raw: listen");
	w = calloc((size_t)n, sizeof(int));
	r = calloc((size_t)n, sizeof(int));
	for (i = 0; i < n; i++) {
		w[i] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(w[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		if (connect(w[i], (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
		    (r[i] = accept(lfd, NULL, NULL)) == -1)
			err(1, "raw: connect");
	}
	/*
	 * A reader process drains the other ends, as clients would.  Given
	 * two CPUs or more (taskset), the writer keeps the first and the
	 * reader takes the last, as server and load generator do.
	 */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 &&
	    CPU_COUNT(&cpus) >= 2) {
		for (first = 0; !CPU_ISSET(first, &cpus); first++)
			;
		for (last = CPU_SETSIZE - 1; !CPU_ISSET(last, &cpus); last--)
			;
	}
	if ((kid = fork()) == 0) {
		if (last >= 0) {
			CPU_ZERO(&cpus);
			CPU_SET(last, &cpus);
			sched_setaffinity(0, sizeof(cpus), &cpus);
		}
		int			 ep = epoll_create1(0);
		struct epoll_event	 ev, evs[256];
		struct raw_in		*in = calloc((size_t)n, sizeof(*in));
		ssize_t			 got;

		close(pfd[0]);
		for (i = 0; i < n; i++) {
			close(w[i]);
			ev.events = EPOLLIN;
			ev.data.u32 = (uint32_t)i;
			epoll_ctl(ep, EPOLL_CTL_ADD, r[i], &ev);
		}
		for (;;) {
			int k = epoll_wait(ep, evs, 256, 2000);
			if (k <= 0)
				break;
			for (i = 0; i < k; i++) {
				uint32_t j = evs[i].data.u32;

				if ((got = read(r[j], rb, sizeof(rb))) <= 0)
					goto done;
				raw_read(&in[j], (unsigned char *)rb,
				    (size_t)got, flen, h);
			}
		}
done:
		if (write(pfd[1], h, sizeof(*h)) != (ssize_t)sizeof(*h))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	for (i = 0; i < n; i++)
		close(r[i]);
	if (first >= 0) {
		CPU_ZERO(&cpus);
		CPU_SET(first, &cpus);
		sched_setaffinity(0, sizeof(cpus), &cpus);
	}
	t0 = now_ns();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	while ((next = now_ns()) - t0 < (uint64_t)(opt.duration * 1e9)) {
		memcpy(frame, &next, sizeof(next));
		for (i = 0; i < n; i++)
			if (write(w[i], frame, flen) == (ssize_t)flen)
				writes++;
		if (opt.rate > 0) {
			/* The next round on time, not after a pause: a
			 * round that ran late starts the next at once. */
			next = t0 + (uint64_t)((double)++round * 1e9 /
			    opt.rate);
			while (now_ns() < next)
				usleep((useconds_t)((next - now_ns()) / 1000 +
				    1));
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	for (i = 0; i < n; i++)
		close(w[i]);
	close(lfd);
	if (read(pfd[0], h, sizeof(*h)) != (ssize_t)sizeof(*h))
		memset(h, 0, sizeof(*h));
	close(pfd[0]);
	waitpid(kid, NULL, 0);
	printf("RESULT {\"mode\":\"raw\",\"sockets\":%d,\"frame_bytes\":%zu,"
	    "\"writes\":%" PRIu64 ",\"cpu_us_per_write\":%.3f,"
	    "\"frames_read\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f,"
	    "\"max_us\":%.1f}\n", n, flen,
	    writes, ((double)(c1.tv_sec - c0.tv_sec) * 1e9 +
	    (double)(c1.tv_nsec - c0.tv_nsec)) / 1e3 / (double)writes,
	    h->n, hist_pct(h, 50) / 1e3, hist_pct(h, 99) / 1e3,
	    (double)h->max / 1e3);
	free(h);
	free(w);
	free(r);
}

static int
parse_pids(char *s, pid_t *out)
{
	char	*p;
	int	 n = 0;

	for (p = strtok(s, ","); p != NULL && n < LG_MAXPIDS;
	    p = strtok(NULL, ","))
		out[n++] = (pid_t)atoi(p);
	return n;
}

/* -c pid,pid/pid,...: one group of pids per server address. */
static int
parse_pid_groups(char *s)
{
	char	*g, *p, *gs = NULL, *ps = NULL;
	int	 n = 0, grp = 0;

	for (g = strtok_r(s, "/", &gs); g != NULL; g = strtok_r(NULL, "/",
	    &gs), grp++)
		for (p = strtok_r(g, ",", &ps); p != NULL && n < LG_MAXPIDS;
		    p = strtok_r(NULL, ",", &ps)) {
			opt.pgroup[n] = grp;
			opt.pids[n++] = (pid_t)atoi(p);
		}
	opt.ngroups = grp;
	return n;
}

int
main(int argc, char *argv[])
{
	char	*colon, *p;
	int	 ch, i;

	opt.proto = P_CANVAS;
	opt.mode = M_FANOUT;
	snprintf(opt.addr[0].host, sizeof(opt.addr[0].host), "127.0.0.1");
	opt.addr[0].port = 8080;
	opt.naddrs = 1;
	snprintf(opt.prefix, sizeof(opt.prefix), "/canvas");
	opt.n = 1000;
	opt.rooms = 1;
	opt.batch = 1;
	opt.size = 32;
	opt.threads = 1;
	opt.addrs = 8;
	opt.window = 4;
	opt.rate = 100;
	opt.duration = 5;
	opt.warmup = 1;
	opt.log_len = 1000;
	opt.storm = 0;
	while ((ch = getopt(argc, argv, "JM:P:a:b:c:d:e:k:L:m:n:p:r:R:s:T:u:W:z"
	    "w:xX:")) != -1) {
		switch (ch) {
		case 'J':
			opt.joinall = 1;
			break;
		case 'M':
			if (strcmp(optarg, "fanout") == 0)
				opt.mode = M_FANOUT;
			else if (strcmp(optarg, "catchup") == 0)
				opt.mode = M_CATCHUP;
			else if (strcmp(optarg, "idle") == 0)
				opt.mode = M_IDLE;
			else if (strcmp(optarg, "storm") == 0)
				opt.mode = M_STORM;
			else if (strcmp(optarg, "raw") == 0)
				opt.mode = M_RAW;
			else
				usage();
			break;
		case 'P':
			if (strcmp(optarg, "canvas") == 0)
				opt.proto = P_CANVAS;
			else if (strcmp(optarg, "nchan") == 0)
				opt.proto = P_NCHAN;
			else if (strcmp(optarg, "socketio") == 0)
				opt.proto = P_SOCKETIO;
			else
				usage();
			break;
		case 'a':
			opt.addrs = atoi(optarg);
			break;
		case 'b':
			opt.batch = atoi(optarg);
			break;
		case 'c':
			opt.npids = parse_pid_groups(optarg);
			break;
		case 'd':
			opt.duration = atof(optarg);
			break;
		case 'e':
			opt.nepids = parse_pids(optarg, opt.epids);
			break;
		case 'k':
			opt.nworkers = parse_pids(optarg, opt.workers);
			break;
		case 'L':
			opt.log_len = strtoull(optarg, NULL, 10);
			break;
		case 'm':
			opt.size = atoi(optarg);
			break;
		case 'n':
			opt.n = atoi(optarg);
			break;
		case 'p':
			opt.naddrs = 0;
			for (p = strtok(optarg, ","); p != NULL &&
			    opt.naddrs < LG_MAXADDRS; p = strtok(NULL, ",")) {
				if ((colon = strrchr(p, ':')) == NULL)
					usage();
				*colon = '\0';
				snprintf(opt.addr[opt.naddrs].host,
				    sizeof(opt.addr[0].host), "%s", p);
				opt.addr[opt.naddrs++].port = atoi(colon + 1);
			}
			break;
		case 'r':
			opt.rooms = atoi(optarg);
			break;
		case 'R':
			opt.rate = atof(optarg);
			break;
		case 's':
			opt.storm = atoi(optarg);
			break;
		case 'T':
			opt.threads = atoi(optarg);
			break;
		case 'u':
			snprintf(opt.prefix, sizeof(opt.prefix), "%s", optarg);
			break;
		case 'W':
			opt.window = atoi(optarg);
			break;
		case 'w':
			opt.warmup = atof(optarg);
			break;
		case 'x':
			opt.noread = 1;
			break;
		case 'z':
			opt.deflate = 1;
			break;
		case 'X':
			opt.place = strcmp(optarg, "same") == 0 ? 1 :
			    strcmp(optarg, "cross") == 0 ? 2 : -1;
			if (opt.place == -1)
				usage();
			break;
		default:
			usage();
		}
	}
	if (opt.n < 1 || opt.rooms < 1 || opt.rooms > LG_MAXROOMS ||
	    opt.rooms > opt.n || opt.batch < 1 || opt.size < 24 ||
	    opt.size > 4096 || opt.threads < 1 ||
	    opt.threads > LG_MAXTHREADS || opt.addrs < 1 || opt.addrs > 250 ||
	    opt.window < 1 || (opt.place && opt.nworkers < 2) ||
	    opt.naddrs < 1)
		usage();
	/* The first address is the one of the single-server modes. */
	snprintf(opt.host, sizeof(opt.host), "%s", opt.addr[0].host);
	opt.port = opt.addr[0].port;
	signal(SIGPIPE, SIG_IGN);
	if (opt.mode == M_RAW) {
		setup_nofile(opt.n * 2);
		run_raw();
		return 0;
	}
	setup_nofile(opt.mode == M_CATCHUP ? opt.n + 1 : opt.place ? opt.n * 3
	    : opt.n);
	/* Stay under the limit: sockets for HTTP and a few files too. */
	if ((rlim_t)opt.n + 100 > nofile && (opt.mode == M_IDLE ||
	    opt.mode == M_FANOUT)) {
		opt.n = (int)nofile - 100;
		fprintf(stderr, "loadgen: only %d members, for RLIMIT_NOFILE "
		    "%llu\n", opt.n, (unsigned long long)nofile);
	}
	nconns = opt.mode == M_CATCHUP ? opt.n + 1 : opt.n;
	if ((conns = calloc((size_t)(opt.place ? opt.n * 3 + opt.rooms :
	    nconns), sizeof(*conns))) == NULL)
		err(1, "calloc");
	for (i = 0; i < opt.threads; i++) {
		if ((thr[i].ep = epoll_create1(0)) == -1)
			err(1, "epoll_create1");
		pthread_create(&thr[i].tid, NULL, thr_main, &thr[i]);
	}
	rooms_create();
	switch (opt.mode) {
	case M_FANOUT:
		run_fanout();
		break;
	case M_CATCHUP:
		run_catchup();
		break;
	case M_IDLE:
		run_idle();
		break;
	case M_STORM:
		run_storm();
		break;
	default:
		break;
	}
	atomic_store(&quitting, 1);
	for (i = 0; i < opt.threads; i++)
		pthread_join(thr[i].tid, NULL);
	return 0;
}

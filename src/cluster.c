/*
 * cluster.c: the links to Redis in cluster mode (roomd.conf's cluster
 * line, and a cluster_shard line for each further primary).  Each process
 * has its own blocking hiredis connection to each shard, with a connect
 * and a command timeout, for the engine's steps (the room.c transactions,
 * which hold a room's lock for a round trip or two); it is dropped on any
 * error and made again at the next call, at most once per
 * CLUSTER_RETRY_MS.  Each shard's keeper (cluster_keeper.c, a process
 * of the master's) holds the host's session on it and renews its lease,
 * listens to every room's channel there, and reaps the sessions of dead
 * hosts (cluster_keep).  The shards are independent: each has its own
 * sessions, leases and rooms.
 *
 * What every process must see of the sessions (their names, the ends of
 * their leases, the links' counters) is in a small shared mapping made
 * before the workers fork.  Nothing here knows the arena: room.c's mirror
 * does.
 */
#include "config.h"

#include <sys/mman.h>

#include <poll.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "roomd.h"
#include "cluster_lib.h"

#define CLUSTER_RETRY_MS	500	/* between attempts to connect */
#define CLUSTER_TIMEOUT_MS	1000	/* connect and each command */
#define CLUSTER_LOG_EVERY	10	/* seconds between repeated warnings */
#define CLUSTER_PREFIX		cluster_prefix()

struct shard_shared {
	uint64_t	 gen;		/* odd while the session changes */
	char		 session[96];	/* "<host>/<incarnation>", "" if none */
	int64_t		 lease_end;	/* monotonic ms */
	int64_t		 down_since;	/* monotonic ms the keeper lost it */
	int64_t		 suspect;	/* a call failed; the keeper looks */
	char		 primary[128];	/* where the keeper is connected */
	int64_t		 lag_ms;	/* the last renewal's round trip */
	int		 replicas;	/* online, at the last renewal; -1 */
	uint64_t	 joins;		/* sessions this host has had */
	pid_t		 keeper;	/* cluster_keeper.c's process */
};

struct cluster_shared {
	struct shard_shared shard[CLUSTER_SHARDS_MAX];
	uint64_t	 reconnects;
	uint64_t	 errors;
	uint64_t	 commits;
	uint64_t	 applied;	/* entries from other hosts */
	uint64_t	 gaps;		/* filled from the log */
	uint64_t	 reaped;	/* members of dead hosts */
	uint64_t	 fenced;
	struct {			/* the Redis room lock each worker */
		int	 shard;		/* may hold, for the master to give */
		char	 key[200];	/* back if the worker dies */
		char	 token[32];
	}		 held[ROOMD_MAX_WORKERS];
};

/* This process's side of a shard. */
struct link {
	redisContext	*rc;		/* the engine's link */
	int64_t		 next_try;
	int		 ever;		/* links made by this process */
	int		 unread;	/* replies of cluster_send not read */
	redisContext	*sub;		/* the master's subscriber */
	int64_t		 sub_next_try;
	int64_t		 renew_at;	/* the master's next renewal */
	int64_t		 reaped_at, checked_at;
	int		 checking;	/* room_mirror_check's pass */
};

static struct cluster_shared	*sh;
static struct link		 links[CLUSTER_SHARDS_MAX];
static time_t			 warned_at;
static int			 keeping = -1;	/* a keeper's shard */

int64_t
cluster_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "<cluster_prefix>:", the start of every key. */
const char *
cluster_prefix(void)
{
	static char	 p[72];

	if (p[0] == '\0')
		snprintf(p, sizeof(p), "%s:", env->conf.cluster_prefix[0] ?
		    env->conf.cluster_prefix : "roomd");
	return p;
}

int
cluster_enabled(void)
{
	return env->conf.cluster[0] != '\0';
}

int
cluster_shards(void)
{
	return cluster_enabled() ? 1 + env->conf.ncluster_shards : 0;
}

static const char *
cluster_url(int shard)
{
	return shard == 0 ? env->conf.cluster :
	    env->conf.cluster_shard[shard - 1];
}

/* FNV-1a: stable across hosts, builds and restarts. */
int
cluster_shard_in(const char *tag, int n)
{
	uint32_t	 h = 2166136261u;

	if (n < 2)
		return 0;
	for (; *tag != '\0'; tag++)
		h = (h ^ (uint8_t)*tag) * 16777619u;
	return (int)(h % (uint32_t)n);
}

int
cluster_shard_of(const char *tag)
{
	return cluster_shard_in(tag, cluster_shards());
}

/* A warning at most once per CLUSTER_LOG_EVERY seconds (per process). */
static void
cluster_warn(const char *what, const char *why)
{
	time_t	 now = time(NULL);

	if (sh != NULL)
		__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
	if (now - warned_at < CLUSTER_LOG_EVERY)
		return;
	warned_at = now;
	log_warnx("cluster: %s: %s", what, why);
}

static redisContext *
cluster_dial(const char *host, int port)
{
	struct timeval	 tv = { CLUSTER_TIMEOUT_MS / 1000,
			    (CLUSTER_TIMEOUT_MS % 1000) * 1000 };
	redisContext	*c;

	c = redisConnectWithTimeout(host, port, tv);
	if (c == NULL)
		return NULL;
	if (c->err) {
		cluster_warn(host, c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

/* Ask the sentinels of url for their primary. */
static int
cluster_sentinel(const char *url, char *host, size_t hostlen, int *port)
{
	char		 buf[512], shost[128], name[128];
	const char	*slash = strchr(url + 11, '/');
	char		*p, *save = NULL;
	redisContext	*c;
	redisReply	*r;
	int		 sport, found = -1;

	snprintf(buf, sizeof(buf), "%.*s", (int)(slash - url - 11), url + 11);
	snprintf(name, sizeof(name), "%s", slash + 1);
	for (p = strtok_r(buf, ",", &save); p != NULL && found == -1;
	    p = strtok_r(NULL, ",", &save)) {
		if (cluster_split(p, shost, sizeof(shost), &sport) == -1 ||
		    (c = cluster_dial(shost, sport)) == NULL)
			continue;
		r = redisCommand(c, "SENTINEL get-master-addr-by-name %s",
		    name);
		if (r != NULL && r->type == REDIS_REPLY_ARRAY &&
		    r->elements == 2 && r->element[0]->type ==
		    REDIS_REPLY_STRING && r->element[1]->type ==
		    REDIS_REPLY_STRING) {
			snprintf(host, hostlen, "%s", r->element[0]->str);
			*port = atoi(r->element[1]->str);
			found = 0;
		}
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
	}
	if (found == -1)
		cluster_warn(url, "no sentinel names a primary");
	return found;
}

/* A reply that is an error, or none: say why, return -1. */
static int
cluster_failed(redisReply *r, const char *what)
{
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_ERROR) {
		cluster_warn(what, r->str);
		freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

/* Log in, and check that this is a primary. */
static int
cluster_hello(redisContext *c, const char *url)
{
	const char	*at, *pw = url + 9;
	char		 buf[256];
	redisReply	*r;

	if (strncmp(url, "redis://:", 9) == 0 &&
	    (at = strchr(pw, '@')) != NULL) {
		snprintf(buf, sizeof(buf), "%.*s", (int)(at - pw), pw);
		r = redisCommand(c, "AUTH %s", buf);
		if (r == NULL || cluster_failed(r, "AUTH") == -1)
			return -1;
	}
	r = redisCommand(c, "ROLE");
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		if (r == NULL || r->type != REDIS_REPLY_ERROR)
			cluster_warn(url, "the answer to ROLE is not Redis's");
		return cluster_failed(r, "ROLE") == 0 ? -1 : -1;
	}
	if (strcmp(r->element[0]->str, "master") != 0) {
		cluster_warn(url, "not a primary");
		freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

/* The interface version of a library's text (lib.lua's "roomd library
 * N" line), 0 without one. */
static long
cluster_lib_version(const char *text)
{
	static const char	 tag[] = "-- roomd library ";
	const char		*p = strstr(text, tag);

	return p == NULL ? 0 : strtol(p + sizeof(tag) - 1, NULL, 10);
}

/*
 * The library, loaded unless exactly its text is there already; never in
 * place of a library of a higher version (a host of a newer roomd loaded
 * it: this host's calls could be misread), which is refused until this
 * host is upgraded.
 */
static int
cluster_library(redisContext *c)
{
	redisReply	*r, *lib, *k, *v;
	size_t		 i, j;
	long		 theirs = 0, ours = cluster_lib_version(cluster_lib);
	char		 why[160];
	int		 same = 0;

	r = redisCommand(c, "FUNCTION LIST LIBRARYNAME roomd WITHCODE");
	if (r == NULL)
		return -1;
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		lib = r->element[i];
		for (j = 0; lib->type == REDIS_REPLY_ARRAY && j + 1 <
		    lib->elements; j += 2) {
			k = lib->element[j];
			v = lib->element[j + 1];
			if (k->type != REDIS_REPLY_STRING || v->type !=
			    REDIS_REPLY_STRING || strcmp(k->str,
			    "library_code") != 0)
				continue;
			same = v->len == sizeof(cluster_lib) - 1 &&
			    memcmp(v->str, cluster_lib, v->len) == 0;
			theirs = cluster_lib_version(v->str);
		}
	}
	freeReplyObject(r);
	if (same)
		return 0;
	if (theirs > ours) {
		snprintf(why, sizeof(why), "Redis has the library of a newer "
		    "roomd (version %ld; this one's is %ld): not replaced, "
		    "upgrade this host", theirs, ours);
		cluster_warn("FUNCTION LOAD", why);
		return -1;
	}
	r = redisCommand(c, "FUNCTION LOAD REPLACE %b", cluster_lib,
	    sizeof(cluster_lib) - 1);
	return cluster_failed(r, "FUNCTION LOAD");
}

/*
 * A new link to the primary of url, logged in and with the library, or
 * NULL; where it is connected, into where ("host:port").
 */
redisContext *
cluster_connect(const char *url, char *where, size_t len)
{
	const char	*p;
	char		 host[100];
	int		 port;
	redisContext	*c;

	if (strncmp(url, "sentinel://", 11) == 0) {
		if (cluster_sentinel(url, host, sizeof(host), &port) == -1)
			return NULL;
	} else {
		p = url + 8;
		if (*p == ':')
			p = strchr(p, '@') + 1;
		if (cluster_split(p, host, sizeof(host), &port) == -1)
			return NULL;
	}
	if ((c = cluster_dial(host, port)) == NULL)
		return NULL;
	if (cluster_hello(c, url) == -1 || cluster_library(c) == -1) {
		redisFree(c);
		return NULL;
	}
	snprintf(where, len, "%s:%d", host, port & 0xffff);
	return c;
}

static redisContext *
cluster_open(int shard)
{
	char		 where[128];
	redisContext	*c;

	c = cluster_connect(cluster_url(shard), where, sizeof(where));
	if (c != NULL && env->slot < 0 && sh != NULL)
		snprintf(sh->shard[shard].primary, sizeof(sh->shard[0].primary),
		    "%s", where);
	return c;
}

/*
 * Between commands a link has nothing to read: if it has, Redis closed it
 * (a restart, a timeout) and the next command would fail.  Such a link is
 * made again before the command instead of failing it.
 */
static int
cluster_stale(redisContext *c)
{
	struct pollfd	 pfd = { c->fd, POLLIN, 0 };

	return poll(&pfd, 1, 0) > 0;
}

/* Read (and drop) the replies of cluster_send: -1 if the link failed. */
static int
cluster_drain(struct link *l)
{
	void	*r;

	for (; l->unread > 0; l->unread--) {
		if (redisGetReply(l->rc, &r) != REDIS_OK)
			return -1;
		freeReplyObject(r);
	}
	return 0;
}

/*
 * A call to shard failed (no answer within the timeout, a link lost, no
 * link made), the keeper's or another's: until the shard's keeper has had
 * an answer again, no other process calls it, and the keeper is woken to
 * ask now.  A shard that hangs costs a worker one timeout at most, not
 * one per call.
 */
static void
cluster_suspect(int shard)
{
	struct shard_shared	*ss;
	int64_t			 zero = 0;
	pid_t			 keeper;

	if (sh == NULL)
		return;
	ss = &sh->shard[shard];
	if (__atomic_compare_exchange_n(&ss->suspect, &zero, cluster_ms(), 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) && shard != keeping &&
	    (keeper = __atomic_load_n(&ss->keeper, __ATOMIC_ACQUIRE)) > 0)
		kill(keeper, SIGUSR2);
}

static int
cluster_suspected(int shard)
{
	return sh != NULL && shard != keeping &&
	    __atomic_load_n(&sh->shard[shard].suspect, __ATOMIC_ACQUIRE) != 0;
}

static redisContext *
cluster_link(int shard)
{
	struct link	*l = &links[shard];
	int64_t		 now;

	if (cluster_suspected(shard)) {
		if (l->rc != NULL) {
			redisFree(l->rc);
			l->rc = NULL;
			l->unread = 0;
		}
		return NULL;
	}
	if (l->rc != NULL && l->unread > 0 && cluster_drain(l) == -1)
		cluster_warn("link", l->rc->errstr[0] ? l->rc->errstr :
		    "lost");
	else if (l->rc != NULL && !cluster_stale(l->rc))
		return l->rc;
	if (l->rc != NULL) {
		redisFree(l->rc);
		l->rc = NULL;
		l->unread = 0;
		l->next_try = 0;
	}
	now = cluster_ms();
	if (now < l->next_try)
		return NULL;
	l->next_try = now + CLUSTER_RETRY_MS;
	if ((l->rc = cluster_open(shard)) == NULL)
		cluster_suspect(shard);
	else if (sh != NULL && l->ever++ > 0)
		__atomic_add_fetch(&sh->reconnects, 1, __ATOMIC_RELAXED);
	return l->rc;
}

/* The link failed: it is made again at the next call. */
static void
cluster_drop(int shard, const char *why)
{
	cluster_warn("link", why[0] != '\0' ? why : "lost");
	redisFree(links[shard].rc);
	links[shard].rc = NULL;
	links[shard].unread = 0;
	cluster_suspect(shard);
}

/*
 * A command whose reply nobody waits for: it is written now, and its reply
 * read before the link's next command.  0, or -1 if it could not be sent.
 */
int
cluster_send(int shard, const char *fmt, ...)
{
	redisContext	*c;
	va_list		 ap;
	int		 done = 0, rc;

	if ((c = cluster_link(shard)) == NULL)
		return -1;
	va_start(ap, fmt);
	rc = redisvAppendCommand(c, fmt, ap);
	va_end(ap);
	while (rc == REDIS_OK && !done)
		rc = redisBufferWrite(c, &done);
	if (rc != REDIS_OK) {
		cluster_drop(shard, c->errstr);
		return -1;
	}
	links[shard].unread++;
	return 0;
}

redisReply *
cluster_callv(int shard, int argc, const char **argv, const size_t *lens)
{
	redisContext	*c;
	redisReply	*r;

	if ((c = cluster_link(shard)) == NULL)
		return NULL;
	r = redisCommandArgv(c, argc, argv, lens);
	if (r == NULL) {
		cluster_drop(shard, c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "READONLY", 8) == 0 ||
		    strncmp(r->str, "ERR Function not found", 22) == 0) {
			/* A demoted primary, or a library gone (FLUSHALL):
			 * find the primary again and load it. */
			redisFree(c);
			links[shard].rc = NULL;
			links[shard].next_try = 0;
		}
		if (strncmp(r->str, "FENCED", 6) == 0 && sh != NULL)
			__atomic_add_fetch(&sh->fenced, 1, __ATOMIC_RELAXED);
	}
	return r;
}

int
cluster_wait_replicas(int shard)
{
	redisReply	*r;
	int		 ok;

	if (env->conf.cluster_wait <= 0)
		return 0;
	if ((r = cluster_cmd(shard, "WAIT %d %d", env->conf.cluster_wait,
	    CLUSTER_TIMEOUT_MS / 2)) == NULL)
		return -1;
	ok = r->type == REDIS_REPLY_INTEGER && r->integer >=
	    env->conf.cluster_wait;
	if (!ok)
		cluster_warn("WAIT", "too few replicas acknowledged");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

redisReply *
cluster_cmd(int shard, const char *fmt, ...)
{
	redisContext	*c;
	redisReply	*r;
	va_list		 ap;

	if ((c = cluster_link(shard)) == NULL)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL)
		cluster_drop(shard, c->errstr);
	return r;
}

/*
 * The session.  Only the master writes it; everyone reads it with the
 * generation around the copy, as a seqlock.
 */
int
cluster_session(int shard, char *buf, size_t len)
{
	struct shard_shared	*ss;
	uint64_t		 g;

	if (sh == NULL)
		return -1;
	ss = &sh->shard[shard];
	do {
		g = __atomic_load_n(&ss->gen, __ATOMIC_ACQUIRE);
		snprintf(buf, len, "%s", ss->session);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((g & 1) || g != __atomic_load_n(&ss->gen, __ATOMIC_ACQUIRE));
	/* Renewed every quarter of the lease: a lease with less than half
	 * left means the host is cut off (cluster_cut_off). */
	return buf[0] != '\0' && cluster_ms() < __atomic_load_n(&ss->lease_end,
	    __ATOMIC_ACQUIRE) - (int64_t)env->conf.cluster_lease * 500 ? 0 :
	    -1;
}

static void
cluster_set_session(int shard, const char *s, int64_t lease_end)
{
	struct shard_shared	*ss = &sh->shard[shard];

	__atomic_add_fetch(&ss->gen, 1, __ATOMIC_ACQ_REL);
	snprintf(ss->session, sizeof(ss->session), "%s", s);
	__atomic_store_n(&ss->lease_end, lease_end, __ATOMIC_RELEASE);
	__atomic_add_fetch(&ss->gen, 1, __ATOMIC_ACQ_REL);
}

void
cluster_count(int what, uint64_t n)
{
	uint64_t	*p;

	if (sh == NULL)
		return;
	switch (what) {
	case CLUSTER_COMMITS:
		p = &sh->commits;
		break;
	case CLUSTER_APPLIED:
		p = &sh->applied;
		break;
	case CLUSTER_GAPS:
		p = &sh->gaps;
		break;
	default:
		p = &sh->reaped;
		break;
	}
	__atomic_add_fetch(p, n, __ATOMIC_RELAXED);
}

/*
 * Clients are closed (1012) once the lease has been lost for half its
 * term: the lease ended, or the master could not renew it that long.
 */
static int
cluster_shard_cut_off(int shard)
{
	static uint64_t		 seen[CLUSTER_SHARDS_MAX]; /* sessions known */
	struct shard_shared	*ss = &sh->shard[shard];
	uint64_t		 joins;
	int64_t			 now, end, half, down;

	/* A new session: this host's presence was under the old one, which
	 * the other hosts reap; its clients must come again. */
	joins = __atomic_load_n(&ss->joins, __ATOMIC_ACQUIRE);
	if (seen[shard] != joins) {
		int	 first = seen[shard] == 0;

		seen[shard] = joins;
		if (!first)
			return 1;
	}
	now = cluster_ms();
	end = __atomic_load_n(&ss->lease_end, __ATOMIC_ACQUIRE);
	down = __atomic_load_n(&ss->down_since, __ATOMIC_ACQUIRE);
	half = (int64_t)env->conf.cluster_lease * 500;
	return end == 0 ? down != 0 && now - down > half : now > end - half;
}

unsigned
cluster_cut_off(void)
{
	unsigned	 mask = 0;
	int		 i;

	for (i = 0; sh != NULL && i < cluster_shards(); i++)
		if (cluster_shard_cut_off(i))
			mask |= 1U << i;
	return mask;
}

int
cluster_shards_up(int *down)
{
	struct cluster_status	 st;
	int			 i, up = 0;

	*down = -1;
	for (i = 0; i < cluster_shards(); i++) {
		cluster_status(i, &st);
		if (st.up)
			up++;
		else if (*down == -1)
			*down = i;
	}
	return up;
}

void
cluster_status(int shard, struct cluster_status *st)
{
	struct shard_shared	*ss;

	memset(st, 0, sizeof(*st));
	if (sh == NULL)
		return;
	ss = &sh->shard[shard];
	st->up = ss->session[0] != '\0' && cluster_ms() < ss->lease_end;
	st->suspect = __atomic_load_n(&ss->suspect, __ATOMIC_ACQUIRE) != 0;
	snprintf(st->session, sizeof(st->session), "%s", ss->session);
	snprintf(st->primary, sizeof(st->primary), "%s", ss->primary);
	st->lease_left_ms = ss->lease_end - cluster_ms();
	st->lag_ms = ss->lag_ms;
	st->replicas = ss->replicas;
	st->keeper = ss->keeper;
	st->reconnects = sh->reconnects;
	st->errors = sh->errors;
	st->commits = sh->commits;
	st->applied = sh->applied;
	st->gaps = sh->gaps;
	st->reaped = sh->reaped;
	st->fenced = sh->fenced;
}

/*
 * The master.
 */
void
cluster_init(void)
{
	int	 i;

	if (!cluster_enabled())
		return;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fatal("%s: mmap", __func__);
	memset(sh, 0, sizeof(*sh));
	for (i = 0; i < CLUSTER_SHARDS_MAX; i++)
		sh->shard[i].replicas = -1;
	/* The first join, subscription and catch-up of every shard, before
	 * any worker serves; then the keepers go on with links of their
	 * own. */
	for (i = 0; i < cluster_shards(); i++)
		cluster_keep(i);
}

/* In a new process: the links it inherited are another's (each process
 * makes its own), but those of shard keep (-1: none), which the first
 * keeper of a shard takes over from the master. */
void
cluster_forked(int keep)
{
	int	 i;

	for (i = 0; i < CLUSTER_SHARDS_MAX; i++) {
		if (i == keep)
			continue;
		if (links[i].rc != NULL)
			redisFree(links[i].rc);
		if (links[i].sub != NULL)
			redisFree(links[i].sub);
		memset(&links[i], 0, sizeof(links[i]));
	}
}

/* This process keeps shard: it calls it even while it is suspect. */
void
cluster_keeping(int shard)
{
	keeping = shard;
}

/* The master: shard's keeper is pid now (0: none), for status. */
void
cluster_set_keeper(int shard, pid_t pid)
{
	if (sh != NULL)
		sh->shard[shard].keeper = pid;
}

static const char *
cluster_host(char *buf, size_t len)
{
	if (env->conf.cluster_host[0] != '\0')
		snprintf(buf, len, "%s", env->conf.cluster_host);
	else if (gethostname(buf, len) == -1)
		snprintf(buf, len, "roomd");
	buf[len - 1] = '\0';
	return buf;
}

/*
 * Is this Redis the shard roomd.conf says?  The first host to join a shard
 * writes its place and the count ("1/3"); a host whose list differs is
 * refused there, for it would look for rooms where they are not.
 */
static int
cluster_shard_claim(int shard)
{
	char		 mine[32];
	redisReply	*r;
	int		 ok;

	snprintf(mine, sizeof(mine), "%d/%d", shard, cluster_shards());
	if ((r = cluster_cmd(shard, "SET %sshard %s NX GET", CLUSTER_PREFIX,
	    mine)) == NULL)
		return -1;
	ok = r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_STRING &&
	    strcmp(r->str, mine) == 0);
	if (!ok && r->type == REDIS_REPLY_STRING) {
		char	 why[160];

		if (strncmp(r->str, "moving ", 7) == 0)
			snprintf(why, sizeof(why), "rooms are being moved "
			    "(%s): roomd -R has not finished", r->str);
		else
			snprintf(why, sizeof(why), "this Redis is shard %s "
			    "(place/count) to the other hosts, not %s", r->str,
			    mine);
		cluster_warn(cluster_url(shard), why);
	} else if (!ok)
		cluster_warn("shard", r->type == REDIS_REPLY_ERROR ? r->str :
		    "a reply of the wrong shape");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

/*
 * The replicas online of shard's primary, as a renewal counted them.  A
 * change is said once: a cluster_wait larger than the count refuses
 * every change (WAIT times out), and a smaller one lets a failover
 * promote a replica that had not yet received an acknowledged change
 * (roomd.conf(5)).
 */
static void
cluster_replicas_seen(int shard, int n)
{
	struct shard_shared	*ss = &sh->shard[shard];
	int			 w = env->conf.cluster_wait;

	if (n == ss->replicas)
		return;
	ss->replicas = n;
	if (w > n)
		log_warnx("cluster: %s has %d replica%s online, fewer than "
		    "cluster_wait %d: changes are refused until more are back",
		    ss->primary, n, n == 1 ? "" : "s", w);
	else if (w > 0 && w < n)
		log_warnx("cluster: cluster_wait %d counts fewer than the %d "
		    "replicas of %s: a failover may lose acknowledged changes",
		    w, n, ss->primary);
	else if (w > 0)
		log_info("cluster: %s has %d replica%s online, as cluster_wait "
		    "asks", ss->primary, n, n == 1 ? "" : "s");
}

/* Join shard as a new session, or renew the lease of ours. */
static void
cluster_lease(int shard)
{
	struct shard_shared	*ss = &sh->shard[shard];
	char			 host[65], s[96], k1[160], k2[160];
	long long		 lease_ms = (long long)env->conf.cluster_lease *
				    1000;
	int64_t			 sent = cluster_ms();
	redisReply		*r;
	int			 have = ss->session[0] != '\0';

	cluster_host(host, sizeof(host));
	snprintf(k1, sizeof(k1), "%sleases", CLUSTER_PREFIX);
	snprintf(k2, sizeof(k2), "%shost:%s", CLUSTER_PREFIX, host);
	if (have)
		r = cluster_cmd(shard, "FCALL roomd_host_renew 2 %s %s %s %lld",
		    k1, k2, ss->session, lease_ms);
	else if (cluster_shard_claim(shard) == -1)
		return;
	else
		r = cluster_cmd(shard, "FCALL roomd_host_join 2 %s %s %s %lld",
		    k1, k2, host, lease_ms);
	if (r == NULL)
		return;
	ss->lag_ms = cluster_ms() - sent;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER) {
		if (!have) {
			snprintf(s, sizeof(s), "%s/%lld", host,
			    r->element[0]->integer);
			cluster_set_session(shard, s, sent + lease_ms);
			__atomic_add_fetch(&ss->joins, 1, __ATOMIC_ACQ_REL);
			log_info("cluster: joined %s as %s", ss->primary, s);
		} else {
			__atomic_store_n(&ss->lease_end, sent + lease_ms,
			    __ATOMIC_RELEASE);
			if (r->elements >= 3 && r->element[2]->type ==
			    REDIS_REPLY_INTEGER)
				cluster_replicas_seen(shard,
				    (int)r->element[2]->integer);
		}
		links[shard].renew_at = sent + lease_ms / 4;
		__atomic_store_n(&ss->suspect, 0, __ATOMIC_RELEASE);
	} else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "FENCED",
	    6) == 0) {
		log_warnx("cluster: session %s fenced (%s); joining again",
		    ss->session, r->str);
		cluster_set_session(shard, "", 0);
		links[shard].renew_at = 0;
	} else
		cluster_warn("lease", r->type == REDIS_REPLY_ERROR ? r->str :
		    "a reply of the wrong shape");
	freeReplyObject(r);
}

/* The subscriber: every room's channel of the shard. */
static void
cluster_subscribe(int shard)
{
	struct link	*l = &links[shard];
	redisReply	*r;
	int64_t		 now = cluster_ms();

	if (l->sub != NULL || now < l->sub_next_try)
		return;
	l->sub_next_try = now + CLUSTER_RETRY_MS;
	if ((l->sub = cluster_open(shard)) == NULL)
		return;
	r = redisCommand(l->sub, "PSUBSCRIBE %s{*}", CLUSTER_PREFIX);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		if (r != NULL)
			freeReplyObject(r);
		redisFree(l->sub);
		l->sub = NULL;
		return;
	}
	freeReplyObject(r);
	/* What was published while nobody listened. */
	l->checked_at = cluster_ms();
	l->checking = room_mirror_check(shard, 1);
}

int
cluster_sub_fd(int shard)
{
	return shard < cluster_shards() && links[shard].sub != NULL ?
	    links[shard].sub->fd : -1;
}

/* The subscriber's socket is readable: apply what came. */
void
cluster_sub_read(int shard)
{
	struct link	*l = &links[shard];
	redisReply	*r;
	void		*v;

	if (l->sub == NULL)
		return;
	if (redisBufferRead(l->sub) != REDIS_OK) {
		cluster_warn("subscriber", l->sub->errstr);
		redisFree(l->sub);
		l->sub = NULL;
		return;
	}
	while (l->sub != NULL && redisGetReplyFromReader(l->sub, &v) ==
	    REDIS_OK && v != NULL) {
		r = v;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[2]->type == REDIS_REPLY_STRING &&
		    r->element[3]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[0]->str, "pmessage") == 0)
			room_mirror_message(r->element[2]->str,
			    r->element[3]->str, r->element[3]->len);
		freeReplyObject(r);
	}
}

static void
cluster_session_drop(int shard, const char *s)
{
	const char	*slash = strrchr(s, '/');
	char		 host[96];
	redisReply	*r;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(host))
		return;
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = '\0';
	/* (hiredis's formats have no %.*s) */
	r = cluster_cmd(shard, "FCALL roomd_session_drop 3 %sleases "
	    "%ssess:%s %shost:%s %s", CLUSTER_PREFIX, CLUSTER_PREFIX, s,
	    CLUSTER_PREFIX, host, s);
	if (r != NULL)
		freeReplyObject(r);
}

/* Reap the sessions whose lease ran out: their presence in each room. */
static void
cluster_reap(int shard)
{
	redisReply	*list, *rooms;
	size_t		 i, j;

	list = cluster_cmd(shard, "FCALL roomd_reap_list 1 %sleases 16",
	    CLUSTER_PREFIX);
	if (list == NULL || list->type != REDIS_REPLY_ARRAY) {
		if (list != NULL)
			freeReplyObject(list);
		return;
	}
	for (i = 0; i < list->elements; i++) {
		const char *s = list->element[i]->str;

		if (list->element[i]->type != REDIS_REPLY_STRING)
			continue;
		rooms = cluster_cmd(shard, "SMEMBERS %ssess:%s",
		    CLUSTER_PREFIX, s);
		for (j = 0; rooms != NULL && rooms->type ==
		    REDIS_REPLY_ARRAY && j < rooms->elements; j++)
			if (rooms->element[j]->type == REDIS_REPLY_STRING)
				room_mirror_reap(shard,
				    rooms->element[j]->str, s);
		if (rooms != NULL)
			freeReplyObject(rooms);
		cluster_session_drop(shard, s);
	}
	freeReplyObject(list);
	room_mirror_lost_all(shard);
}

void
cluster_keep(int shard)
{
	struct shard_shared	*ss = &sh->shard[shard];
	struct link		*l = &links[shard];
	int64_t			 now = cluster_ms();

	/* A call of another process failed: ask at once whether the shard
	 * answers (a renewal), and say so. */
	if (ss->session[0] == '\0' || now >= l->renew_at ||
	    __atomic_load_n(&ss->suspect, __ATOMIC_ACQUIRE) != 0)
		cluster_lease(shard);
	if (l->rc == NULL && ss->down_since == 0)
		ss->down_since = now;
	else if (l->rc != NULL)
		ss->down_since = 0;
	cluster_subscribe(shard);
	if (now - l->reaped_at >= 1000 && l->rc != NULL) {
		l->reaped_at = now;
		cluster_reap(shard);
	}
	if (l->checking)
		l->checking = room_mirror_check(shard, 0);
	else if (now - l->checked_at >= 5000 && l->rc != NULL) {
		l->checked_at = now;
		l->checking = room_mirror_check(shard, 1);
	}
}

int
cluster_checking(int shard)
{
	return links[shard].checking;
}

/* The host stops: end its lease on shard now, so other hosts reap at
 * once. */
void
cluster_leave(int shard)
{
	char		 host[65];
	redisReply	*r;

	if (sh == NULL || sh->shard[shard].session[0] == '\0')
		return;
	cluster_host(host, sizeof(host));
	r = cluster_cmd(shard, "FCALL roomd_host_leave 2 %sleases %shost:%s %s",
	    CLUSTER_PREFIX, CLUSTER_PREFIX, host, sh->shard[shard].session);
	if (r != NULL)
		freeReplyObject(r);
	cluster_set_session(shard, "", 0);
}

/* A keeper's timeout for ppoll: a quarter of the lease, at most 1 s. */
int
cluster_tick_ms(void)
{
	int	 ms = env->conf.cluster_lease * 250;

	return !cluster_enabled() || ms > 1000 ? 1000 : ms < 50 ? 50 : ms;
}

/*
 * A worker notes the room lock it asks Redis for, so that the master can
 * give it back at once if the worker dies holding it (instead of the
 * other hosts waiting for its lease to run out).
 */
void
cluster_hold(int shard, const char *key, const char *token)
{
	if (sh == NULL || env->slot < 0 || env->slot >= ROOMD_MAX_WORKERS)
		return;
	sh->held[env->slot].shard = shard;
	snprintf(sh->held[env->slot].token, sizeof(sh->held[0].token), "%s",
	    key != NULL ? token : "");
	snprintf(sh->held[env->slot].key, sizeof(sh->held[0].key), "%s",
	    key != NULL ? key : "");
}

/* What a dead worker held, taken out of the shared map by the master
 * (so that the slot's next worker is not mistaken for it) and given back
 * by a helper (cluster_helper), which has this copy. */
static struct {
	int	 shard;
	char	 key[200];
	char	 token[32];
}		 dead_held;

int
cluster_slot_dead(int slot)
{
	if (sh == NULL || slot < 0 || slot >= ROOMD_MAX_WORKERS ||
	    sh->held[slot].key[0] == '\0')
		return 0;
	dead_held.shard = sh->held[slot].shard;
	memcpy(dead_held.key, sh->held[slot].key, sizeof(dead_held.key));
	memcpy(dead_held.token, sh->held[slot].token,
	    sizeof(dead_held.token));
	sh->held[slot].key[0] = '\0';
	return 1;
}

void
cluster_slot_release(void)
{
	char		 session[96];
	redisReply	*r;
	int		 shard = dead_held.shard;

	if (dead_held.key[0] == '\0')
		return;
	if (cluster_session(shard, session, sizeof(session)) == 0 &&
	    (r = cluster_cmd(shard, "FCALL roomd_txn_unlock 1 %s %s %s",
	    dead_held.key, session, dead_held.token)) != NULL)
		freeReplyObject(r);
	dead_held.key[0] = '\0';
}

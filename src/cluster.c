/*
 * cluster.c: the link to Redis in cluster mode (roomd.conf's cluster
 * line).  Each process has its own blocking hiredis connection, with a
 * connect and a command timeout, for the engine's steps (the room.c
 * transactions, which hold a room's lock for a round trip or two); it is
 * dropped on any error and made again at the next call, at most once per
 * CLUSTER_RETRY_MS.  The master also holds the host's session and renews
 * its lease, listens to every room's channel (one subscriber per host,
 * polled in its loop), and reaps the sessions of dead hosts.
 *
 * What every process must see of the session (its name, the end of its
 * lease, the link's counters) is in a small shared mapping made before the
 * workers fork.  Nothing here knows the arena: room.c's mirror does.
 */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
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

struct cluster_shared {
	uint64_t	 gen;		/* odd while the session changes */
	char		 session[96];	/* "<host>/<incarnation>", "" if none */
	int64_t		 lease_end;	/* monotonic ms */
	int64_t		 down_since;	/* monotonic ms the master lost it */
	char		 primary[128];	/* where the master is connected */
	uint64_t	 reconnects;
	uint64_t	 errors;
	uint64_t	 commits;
	uint64_t	 applied;	/* entries from other hosts */
	uint64_t	 gaps;		/* filled from the log */
	uint64_t	 reaped;	/* members of dead hosts */
	uint64_t	 fenced;
	int64_t		 lag_ms;	/* the last renewal's round trip */
	uint64_t	 joins;		/* sessions this host has had */
	struct {			/* the Redis room lock each worker */
		char	 key[200];	/* may hold, for the master to give */
		char	 token[32];	/* back if the worker dies */
	}		 held[ROOMD_MAX_WORKERS];
};

static struct cluster_shared	*sh;
static redisContext		*rc;		/* this process's link */
static int64_t			 rc_next_try;
static int			 rc_ever;	/* links made by this process */
static redisContext		*sub;		/* the master's subscriber */
static int64_t			 sub_next_try;
static int64_t			 renew_at;	/* the master's next renewal */
static time_t			 warned_at;

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

/* The library, loaded unless exactly its text is there already (a load
 * starts a new server life: doc/cluster.txt). */
static int
cluster_library(redisContext *c)
{
	redisReply	*r, *lib;
	size_t		 i, j;
	int		 same = 0;

	r = redisCommand(c, "FUNCTION LIST LIBRARYNAME roomd WITHCODE");
	if (r == NULL)
		return -1;
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		lib = r->element[i];
		for (j = 0; lib->type == REDIS_REPLY_ARRAY && j + 1 <
		    lib->elements; j += 2)
			if (lib->element[j]->type == REDIS_REPLY_STRING &&
			    strcmp(lib->element[j]->str, "library_code") ==
			    0 && lib->element[j + 1]->type ==
			    REDIS_REPLY_STRING && lib->element[j + 1]->len ==
			    sizeof(cluster_lib) - 1 && memcmp(lib->element[j +
			    1]->str, cluster_lib, sizeof(cluster_lib) - 1) == 0)
				same = 1;
	}
	freeReplyObject(r);
	if (same)
		return 0;
	r = redisCommand(c, "FUNCTION LOAD REPLACE %b", cluster_lib,
	    sizeof(cluster_lib) - 1);
	return cluster_failed(r, "FUNCTION LOAD");
}

/* A new link to the primary, logged in and with the library, or NULL. */
static redisContext *
cluster_open(void)
{
	const char	*url = env->conf.cluster, *p;
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
	if (env->slot < 0 && sh != NULL)
		snprintf(sh->primary, sizeof(sh->primary), "%s:%d", host,
		    port & 0xffff);
	return c;
}

static redisContext *
cluster_link(void)
{
	int64_t	 now;

	if (rc != NULL)
		return rc;
	now = cluster_ms();
	if (now < rc_next_try)
		return NULL;
	rc_next_try = now + CLUSTER_RETRY_MS;
	if ((rc = cluster_open()) != NULL && sh != NULL && rc_ever++ > 0)
		__atomic_add_fetch(&sh->reconnects, 1, __ATOMIC_RELAXED);
	return rc;
}

redisReply *
cluster_callv(int argc, const char **argv, const size_t *lens)
{
	redisContext	*c;
	redisReply	*r;

	if ((c = cluster_link()) == NULL)
		return NULL;
	r = redisCommandArgv(c, argc, argv, lens);
	if (r == NULL) {
		cluster_warn("link", c->errstr[0] ? c->errstr : "lost");
		redisFree(rc);
		rc = NULL;
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "READONLY", 8) == 0 ||
		    strncmp(r->str, "ERR Function not found", 22) == 0) {
			/* A demoted primary, or a library gone (FLUSHALL):
			 * find the primary again and load it. */
			redisFree(rc);
			rc = NULL;
			rc_next_try = 0;
		}
		if (strncmp(r->str, "FENCED", 6) == 0 && sh != NULL)
			__atomic_add_fetch(&sh->fenced, 1, __ATOMIC_RELAXED);
	}
	return r;
}

int
cluster_wait_replicas(void)
{
	redisReply	*r;
	int		 ok;

	if (env->conf.cluster_wait <= 0)
		return 0;
	if ((r = cluster_cmd("WAIT %d %d", env->conf.cluster_wait,
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
cluster_cmd(const char *fmt, ...)
{
	redisContext	*c;
	redisReply	*r;
	va_list		 ap;

	if ((c = cluster_link()) == NULL)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		cluster_warn("link", c->errstr[0] ? c->errstr : "lost");
		redisFree(rc);
		rc = NULL;
	}
	return r;
}

/*
 * The session.  Only the master writes it; everyone reads it with the
 * generation around the copy, as a seqlock.
 */
int
cluster_session(char *buf, size_t len)
{
	uint64_t	 g;

	if (sh == NULL)
		return -1;
	do {
		g = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE);
		snprintf(buf, len, "%s", sh->session);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((g & 1) || g != __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE));
	/* Renewed every quarter of the lease: a lease with less than half
	 * left means the host is cut off (cluster_cut_off). */
	return buf[0] != '\0' && cluster_ms() < __atomic_load_n(&sh->lease_end,
	    __ATOMIC_ACQUIRE) - (int64_t)env->conf.cluster_lease * 500 ? 0 :
	    -1;
}

static void
cluster_set_session(const char *s, int64_t lease_end)
{
	__atomic_add_fetch(&sh->gen, 1, __ATOMIC_ACQ_REL);
	snprintf(sh->session, sizeof(sh->session), "%s", s);
	__atomic_store_n(&sh->lease_end, lease_end, __ATOMIC_RELEASE);
	__atomic_add_fetch(&sh->gen, 1, __ATOMIC_ACQ_REL);
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
int
cluster_cut_off(void)
{
	static uint64_t	 seen;		/* the sessions this worker knew */
	uint64_t	 joins;
	int64_t		 now, end, half;

	if (sh == NULL)
		return 0;
	/* A new session: this host's presence was under the old one, which
	 * the other hosts reap; its clients must come again. */
	joins = __atomic_load_n(&sh->joins, __ATOMIC_ACQUIRE);
	if (seen != joins) {
		int	 first = seen == 0;

		seen = joins;
		if (!first)
			return 1;
	}
	now = cluster_ms();
	end = __atomic_load_n(&sh->lease_end, __ATOMIC_ACQUIRE);
	half = (int64_t)env->conf.cluster_lease * 500;
	return end == 0 ? now - __atomic_load_n(&sh->down_since,
	    __ATOMIC_ACQUIRE) > half && sh->down_since != 0 : now > end - half;
}

void
cluster_status(struct cluster_status *st)
{
	memset(st, 0, sizeof(*st));
	if (sh == NULL)
		return;
	st->up = sh->session[0] != '\0' && cluster_ms() < sh->lease_end;
	snprintf(st->session, sizeof(st->session), "%s", sh->session);
	snprintf(st->primary, sizeof(st->primary), "%s", sh->primary);
	st->lease_left_ms = sh->lease_end - cluster_ms();
	st->reconnects = sh->reconnects;
	st->errors = sh->errors;
	st->commits = sh->commits;
	st->applied = sh->applied;
	st->gaps = sh->gaps;
	st->reaped = sh->reaped;
	st->fenced = sh->fenced;
	st->lag_ms = sh->lag_ms;
}

/*
 * The master.
 */
void
cluster_init(void)
{
	if (!cluster_enabled())
		return;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED |
	    MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fatal("%s: mmap", __func__);
	memset(sh, 0, sizeof(*sh));
	cluster_master_tick();
}

/* In a new worker: the master's links are not ours. */
void
cluster_forked(void)
{
	if (rc != NULL) {
		redisFree(rc);
		rc = NULL;
	}
	if (sub != NULL) {
		redisFree(sub);
		sub = NULL;
	}
	rc_next_try = 0;
	rc_ever = 0;
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

/* Join as a new session, or renew the lease of ours. */
static void
cluster_lease(void)
{
	char		 host[65], s[96], k1[160], k2[160];
	long long	 lease_ms = (long long)env->conf.cluster_lease * 1000;
	int64_t		 sent = cluster_ms();
	redisReply	*r;
	int		 have = sh->session[0] != '\0';

	cluster_host(host, sizeof(host));
	snprintf(k1, sizeof(k1), "%sleases", CLUSTER_PREFIX);
	snprintf(k2, sizeof(k2), "%shost:%s", CLUSTER_PREFIX, host);
	if (have)
		r = cluster_cmd("FCALL roomd_host_renew 2 %s %s %s %lld", k1,
		    k2, sh->session, lease_ms);
	else
		r = cluster_cmd("FCALL roomd_host_join 2 %s %s %s %lld", k1,
		    k2, host, lease_ms);
	if (r == NULL)
		return;
	sh->lag_ms = cluster_ms() - sent;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
		if (!have) {
			snprintf(s, sizeof(s), "%s/%lld", host,
			    r->element[0]->integer);
			cluster_set_session(s, sent + lease_ms);
			__atomic_add_fetch(&sh->joins, 1, __ATOMIC_ACQ_REL);
			log_info("cluster: joined as %s", s);
		} else
			__atomic_store_n(&sh->lease_end, sent + lease_ms,
			    __ATOMIC_RELEASE);
		renew_at = sent + lease_ms / 4;
	} else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "FENCED",
	    6) == 0) {
		log_warnx("cluster: session %s fenced (%s); joining again",
		    sh->session, r->str);
		cluster_set_session("", 0);
		renew_at = 0;
	} else
		cluster_warn("lease", r->type == REDIS_REPLY_ERROR ? r->str :
		    "a reply of the wrong shape");
	freeReplyObject(r);
}

/* The subscriber: every room's channel of the shard. */
static void
cluster_subscribe(void)
{
	redisReply	*r;
	int64_t		 now = cluster_ms();

	if (sub != NULL || now < sub_next_try)
		return;
	sub_next_try = now + CLUSTER_RETRY_MS;
	if ((sub = cluster_open()) == NULL)
		return;
	r = redisCommand(sub, "PSUBSCRIBE %s{*}", CLUSTER_PREFIX);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		if (r != NULL)
			freeReplyObject(r);
		redisFree(sub);
		sub = NULL;
		return;
	}
	freeReplyObject(r);
	/* What was published while nobody listened. */
	room_mirror_check_all();
}

int
cluster_sub_fd(void)
{
	return sub != NULL ? sub->fd : -1;
}

/* The subscriber's socket is readable: apply what came. */
void
cluster_sub_read(void)
{
	redisReply	*r;
	void		*v;

	if (sub == NULL)
		return;
	if (redisBufferRead(sub) != REDIS_OK) {
		cluster_warn("subscriber", sub->errstr);
		redisFree(sub);
		sub = NULL;
		return;
	}
	while (sub != NULL && redisGetReplyFromReader(sub, &v) == REDIS_OK &&
	    v != NULL) {
		r = v;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
		    r->element[2]->type == REDIS_REPLY_STRING &&
		    r->element[3]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[0]->str, "pmessage") == 0)
			room_mirror_message(r->element[2]->str,
			    r->element[3]->str, r->element[3]->len);
		freeReplyObject(r);
	}
}

/* Reap the sessions whose lease ran out: their presence in each room. */
static void
cluster_reap(void)
{
	redisReply	*list, *rooms;
	size_t		 i, j;

	list = cluster_cmd("FCALL roomd_reap_list 1 %sleases 16",
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
		rooms = cluster_cmd("SMEMBERS %ssess:%s", CLUSTER_PREFIX, s);
		for (j = 0; rooms != NULL && rooms->type ==
		    REDIS_REPLY_ARRAY && j < rooms->elements; j++)
			room_mirror_reap(rooms->element[j]->str, s);
		if (rooms != NULL)
			freeReplyObject(rooms);
		cluster_session_drop(s);
	}
	freeReplyObject(list);
	room_mirror_lost_all();
}

void
cluster_session_drop(const char *s)
{
	const char	*slash = strrchr(s, '/');
	char		 host[96];
	redisReply	*r;

	if (slash == NULL || (size_t)(slash - s) >= sizeof(host))
		return;
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = '\0';
	/* (hiredis's formats have no %.*s) */
	r = cluster_cmd("FCALL roomd_session_drop 3 %sleases %ssess:%s "
	    "%shost:%s %s", CLUSTER_PREFIX, CLUSTER_PREFIX, s, CLUSTER_PREFIX,
	    host, s);
	if (r != NULL)
		freeReplyObject(r);
}

/* The master's loop calls this often (at least 4 times a lease). */
void
cluster_master_tick(void)
{
	static int64_t	 reaped_at, checked_at;
	int64_t		 now = cluster_ms();

	if (!cluster_enabled())
		return;
	if (sh->session[0] == '\0' || now >= renew_at)
		cluster_lease();
	if (rc == NULL && sh->down_since == 0)
		sh->down_since = now;
	else if (rc != NULL)
		sh->down_since = 0;
	cluster_subscribe();
	if (now - reaped_at >= 1000 && rc != NULL) {
		reaped_at = now;
		cluster_reap();
	}
	if (now - checked_at >= 5000 && rc != NULL) {
		checked_at = now;
		room_mirror_check_all();
	}
}

/* The master stops: end the lease now, so other hosts reap at once. */
void
cluster_leave(void)
{
	char		 host[65];
	redisReply	*r;

	if (sh == NULL || sh->session[0] == '\0')
		return;
	cluster_host(host, sizeof(host));
	r = cluster_cmd("FCALL roomd_host_leave 2 %sleases %shost:%s %s",
	    CLUSTER_PREFIX, CLUSTER_PREFIX, host, sh->session);
	if (r != NULL)
		freeReplyObject(r);
	cluster_set_session("", 0);
}

/* The master's timeout for ppoll: a quarter of the lease, at most 1 s. */
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
cluster_hold(const char *key, const char *token)
{
	if (sh == NULL || env->slot < 0 || env->slot >= ROOMD_MAX_WORKERS)
		return;
	snprintf(sh->held[env->slot].token, sizeof(sh->held[0].token), "%s",
	    key != NULL ? token : "");
	snprintf(sh->held[env->slot].key, sizeof(sh->held[0].key), "%s",
	    key != NULL ? key : "");
}

void
cluster_slot_dead(int slot)
{
	char		 session[96];
	redisReply	*r;

	if (sh == NULL || slot < 0 || slot >= ROOMD_MAX_WORKERS ||
	    sh->held[slot].key[0] == '\0')
		return;
	if (cluster_session(session, sizeof(session)) == 0 &&
	    (r = cluster_cmd("FCALL roomd_txn_unlock 1 %s %s %s",
	    sh->held[slot].key, session, sh->held[slot].token)) != NULL)
		freeReplyObject(r);
	sh->held[slot].key[0] = '\0';
}

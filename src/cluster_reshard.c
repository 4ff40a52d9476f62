/*
 * cluster_reshard.c: roomd -R OLD: the list of shards changed, and the
 * rooms whose shard changed are moved, offline (no host may hold a lease
 * on any of the servers), from where OLD's list put them to where the
 * configuration's puts them.  Servers are told apart by their run_id,
 * whatever the two files call them.
 *
 * Every step can be run again.  The shards' claims (P:shard) say
 * "moving F/N T/M" from the first write to the last, so that no host
 * starts on a cluster half moved; a room is copied (each key with its
 * TTL) before it is deleted from the old server, in one MULTI with its
 * place in the shard's sets.  The presence of hosts that died before the
 * move goes with the room, and their sessions with it: the new shard's
 * keepers reap those members, and their leave is announced once.  A room
 * keeps its epoch (room_adopt) unless its old server's life had changed
 * since it was last written.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "roomd.h"

#define SERVERS_MAX	(2 * CLUSTER_SHARDS_MAX)
#define SCAN_COUNT	"1000"

struct session {		/* a dead host's, on an old server */
	char		*name;
	char		*score;		/* its lease's end */
	redisReply	*bases;		/* the rooms where it is present */
};

struct server {
	const char	*url;
	char		 where[128];
	char		 runid[48];
	redisContext	*c;
	int		 from, to;	/* the place in OLD, in NEW; -1 */
	char		 moving[80];	/* its claim while rooms move */
	char		 life[80];	/* an old server's (roomd_life) */
	int		 queued;	/* commands sent, replies not read */
	struct session	*sess;
	size_t		 nsess;
};

struct reshard {
	struct server	 s[SERVERS_MAX];
	int		 n, nold, nnew;
	const char	*p;		/* the prefix of every key */
	size_t		 plen;
	int		 moved, stayed;
};

/* A room key of a server: its base "P{dialect:id}" is key[0..blen). */
struct rkey {
	char		*key;
	size_t		 blen;
};

static int
say(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "roomd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return -1;
}

/* A command's reply, or NULL having said why (an error reply too). */
static redisReply *
rs_vcmd(struct server *sv, const char *fmt, va_list ap)
{
	redisReply	*r;
	int		 w = (int)strcspn(fmt, " ");

	r = redisvCommand(sv->c, fmt, ap);
	if (r == NULL) {
		say("%s: %.*s: %s", sv->where, w, fmt, sv->c->errstr);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		say("%s: %.*s: %s", sv->where, w, fmt, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static redisReply *
rs_cmd(struct server *sv, const char *fmt, ...)
{
	va_list		 ap;
	redisReply	*r;

	va_start(ap, fmt);
	r = rs_vcmd(sv, fmt, ap);
	va_end(ap);
	return r;
}

/* A command whose reply is not needed: 0 or -1. */
static int
rs_do(struct server *sv, const char *fmt, ...)
{
	va_list		 ap;
	redisReply	*r;

	va_start(ap, fmt);
	r = rs_vcmd(sv, fmt, ap);
	va_end(ap);
	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

static const char *
shard_url(const struct roomd_config *c, int i)
{
	return i == 0 ? c->cluster : c->cluster_shard[i - 1];
}

/* Connect to url, place i of the old (old) or the new list. */
static int
rs_add(struct reshard *rs, const char *url, int old, int i)
{
	struct server	*sv = &rs->s[rs->n];
	redisReply	*r;
	const char	*id;
	int		 j;

	memset(sv, 0, sizeof(*sv));
	sv->url = url;
	sv->from = sv->to = -1;
	if ((sv->c = cluster_connect(url, sv->where, sizeof(sv->where))) ==
	    NULL)
		return say("%s: no Redis primary answers there (the log line "
		    "above says why)", url);
	if ((r = rs_cmd(sv, "INFO server")) == NULL) {
		redisFree(sv->c);
		return -1;
	}
	id = r->type == REDIS_REPLY_STRING ? strstr(r->str, "run_id:") : NULL;
	if (id != NULL)
		snprintf(sv->runid, sizeof(sv->runid), "%.40s", id + 7);
	freeReplyObject(r);
	if (id == NULL) {
		redisFree(sv->c);
		return say("%s: INFO server has no run_id", sv->where);
	}
	for (j = 0; j < rs->n; j++) {
		if (strcmp(rs->s[j].runid, sv->runid) != 0)
			continue;
		redisFree(sv->c);
		if ((old ? rs->s[j].from : rs->s[j].to) != -1)
			return say("%s and %s are the same Redis, listed twice "
			    "in the %s list", rs->s[j].url, url, old ? "old" :
			    "new");
		rs->s[j].to = i;
		return 0;
	}
	if (old)
		sv->from = i;
	else
		sv->to = i;
	rs->n++;
	return 0;
}

static void
place(char *buf, size_t len, int i, int n)
{
	if (i < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%d/%d", i, n);
}

/* A SCAN pattern: the prefix, glob's characters escaped, then tail. */
static void
pattern(const struct reshard *rs, char *buf, size_t len, const char *tail)
{
	const char	*q;
	size_t		 n = 0;

	for (q = rs->p; *q != '\0' && n + 3 < len; q++) {
		if (strchr("*?[]\\", *q) != NULL)
			buf[n++] = '\\';
		buf[n++] = *q;
	}
	snprintf(buf + n, len - n, "%s", tail);
}

/*
 * Call fn for each key of sv matching the prefix and then tail, a SCAN
 * page at a time: 0, or -1 having said why (or fn's -1).
 */
static int
rs_scan(struct reshard *rs, struct server *sv, const char *tail,
    int (*fn)(const redisReply *, void *), void *arg)
{
	char		 match[160], cursor[32] = "0";
	redisReply	*r, *keys;
	size_t		 i;
	int		 rc = 0;

	pattern(rs, match, sizeof(match), tail);
	do {
		if ((r = rs_cmd(sv, "SCAN %s MATCH %s COUNT " SCAN_COUNT,
		    cursor, match)) == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return say("%s: SCAN: a reply of the wrong shape",
			    sv->where);
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		keys = r->element[1];
		for (i = 0; rc == 0 && i < keys->elements; i++)
			if (keys->element[i]->type == REDIS_REPLY_STRING)
				rc = fn(keys->element[i], arg);
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	return rc;
}

static int
found(const redisReply *key, void *arg)
{
	(void)key;
	*(int *)arg = 1;
	return 1;		/* enough */
}

/*
 * Is sv's claim one this move may go on from: none (a new server with no
 * key of roomd, or an old one never joined), its place in the old list or
 * the new, or this move's own mark?  0, or -1 having said why.
 */
static int
rs_claim(struct reshard *rs, struct server *sv)
{
	char		 was[32], will[32], key[96];
	redisReply	*r;
	int		 ok, any = 0;

	place(was, sizeof(was), sv->from, rs->nold);
	place(will, sizeof(will), sv->to, rs->nnew);
	snprintf(sv->moving, sizeof(sv->moving), "moving %s %s", was, will);
	snprintf(key, sizeof(key), "%sshard", rs->p);
	if ((r = rs_cmd(sv, "GET %s", key)) == NULL)
		return -1;
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		if (sv->from != -1)
			return 0;
		if (rs_scan(rs, sv, "*", found, &any) == -1)
			return -1;
		return any ? say("%s: it has keys of roomd (%s...) but no "
		    "shard claim: not a server of this cluster, nor a new "
		    "one", sv->url, rs->p) : 0;
	}
	ok = r->type == REDIS_REPLY_STRING && (strcmp(r->str,
	    sv->moving) == 0 || (sv->from != -1 && strcmp(r->str, was) ==
	    0) || (sv->to != -1 && strcmp(r->str, will) == 0));
	if (!ok)
		say("%s: this Redis is shard %s to the hosts, not %s in the old "
		    "list (%s in the new)", sv->url, r->type ==
		    REDIS_REPLY_STRING ? r->str : "(not a string)", was, will);
	freeReplyObject(r);
	return ok ? 0 : -1;
}

/* No host may hold a lease: 0, or -1 having named one. */
static int
rs_idle(struct reshard *rs, struct server *sv)
{
	redisReply	*t, *r;
	long long	 now;
	int		 rc = 0;

	if ((t = rs_cmd(sv, "TIME")) == NULL)
		return -1;
	if (t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
	    t->element[0]->type != REDIS_REPLY_STRING ||
	    t->element[1]->type != REDIS_REPLY_STRING) {
		freeReplyObject(t);
		return say("%s: TIME: a reply of the wrong shape", sv->where);
	}
	now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) /
	    1000;
	freeReplyObject(t);
	if ((r = rs_cmd(sv, "ZRANGE %sleases (%lld +inf BYSCORE WITHSCORES",
	    rs->p, now)) == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || (r->elements >= 2 &&
	    (r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)))
		rc = say("%s: ZRANGE: a reply of the wrong shape", sv->where);
	else if (r->elements >= 2)
		rc = say("%s: host session %s holds a lease for %lld ms more: "
		    "stop every host of the cluster first (a killed host's "
		    "lease runs out by itself)", sv->url, r->element[0]->str,
		    atoll(r->element[1]->str) - now);
	freeReplyObject(r);
	return rc;
}

static int
elem_cmp(const void *a, const void *b)
{
	const redisReply	*x = *(redisReply * const *)a;
	const redisReply	*y = *(redisReply * const *)b;
	int			 c;

	c = memcmp(x->str, y->str, x->len < y->len ? x->len : y->len);
	if (c != 0 || x->len == y->len)
		return c;
	return x->len < y->len ? -1 : 1;
}

/* Is s in set, a set's members sorted by sort_set? */
static int
has(const redisReply *set, const char *s, size_t len)
{
	redisReply	 key, *k = &key;

	if (set->type != REDIS_REPLY_ARRAY || set->elements == 0)
		return 0;
	key.str = (char *)s;
	key.len = len;
	return bsearch(&k, set->element, set->elements, sizeof(*set->element),
	    elem_cmp) != NULL;
}

/* Sort a set's members for has(): 0, or -1 if it is not a set's. */
static int
sort_set(redisReply *set)
{
	size_t	 i;

	if (set->type != REDIS_REPLY_ARRAY)
		return -1;
	for (i = 0; i < set->elements; i++)
		if (set->element[i]->type != REDIS_REPLY_STRING)
			return -1;
	if (set->elements > 1)
		qsort(set->element, set->elements, sizeof(*set->element),
		    elem_cmp);
	return 0;
}

/* The sessions on sv (all dead: rs_idle) and where each is present. */
static int
rs_sessions(struct reshard *rs, struct server *sv)
{
	redisReply	*r;
	size_t		 i;

	if ((r = rs_cmd(sv, "ZRANGE %sleases 0 -1 WITHSCORES", rs->p)) ==
	    NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY || (r->elements & 1)) {
		freeReplyObject(r);
		return say("%s: ZRANGE: a reply of the wrong shape", sv->where);
	}
	if ((sv->sess = calloc(r->elements / 2 + 1, sizeof(*sv->sess))) ==
	    NULL)
		fatal("%s", __func__);
	for (i = 0; i < r->elements; i += 2) {
		struct session	*s = &sv->sess[sv->nsess++];

		if ((s->name = strdup(r->element[i]->str)) == NULL ||
		    (s->score = strdup(r->element[i + 1]->str)) == NULL)
			fatal("%s", __func__);
		s->bases = rs_cmd(sv, "SMEMBERS %ssess:%s", rs->p, s->name);
		if (s->bases == NULL || sort_set(s->bases) == -1) {
			freeReplyObject(r);
			return s->bases == NULL ? -1 : say("%s: SMEMBERS: a "
			    "reply of the wrong shape", sv->where);
		}
	}
	freeReplyObject(r);
	return 0;
}

/* Gather the room keys of a server: "P{dialect:id}:suffix". */
struct gather {
	struct reshard	*rs;
	struct rkey	*v;
	size_t		 n, cap;
};

static int
gather_key(const redisReply *key, void *arg)
{
	struct gather	*g = arg;
	const char	*colon = strrchr(key->str, ':'), *tag, *dc;
	size_t		 blen = colon != NULL ? (size_t)(colon - key->str) : 0;

	/* A key of the prefix that is no room's ("P{dialect:id}:suffix",
	 * as room_base makes them) is left where it is. */
	tag = key->str + g->rs->plen + 1;
	dc = blen > g->rs->plen + 2 ? memchr(tag, ':', blen - g->rs->plen -
	    2) : NULL;
	if (dc == NULL || key->str[blen - 1] != '}' || tag[-1] != '{' ||
	    dc - tag >= 64 || blen - g->rs->plen - 2 > ROOM_ID_MAX + 64) {
		say("%s: not a room's key: left where it is", key->str);
		return 0;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 256;
		if ((g->v = reallocarray(g->v, g->cap, sizeof(*g->v))) == NULL)
			fatal("%s", __func__);
	}
	if ((g->v[g->n].key = strdup(key->str)) == NULL)
		fatal("%s", __func__);
	g->v[g->n++].blen = blen;
	return 0;
}

static int
rkey_cmp(const void *a, const void *b)
{
	const struct rkey	*x = a, *y = b;
	size_t			 n = x->blen < y->blen ? x->blen : y->blen;
	int			 c = memcmp(x->key, y->key, n);

	if (c != 0 || x->blen == y->blen)
		return c != 0 ? c : strcmp(x->key, y->key);
	return x->blen < y->blen ? -1 : 1;
}

/* Queue a command on sv's link (redisAppendCommand): 0 or -1. */
static int
rs_queue(struct server *sv, int *queued, const char *fmt, ...)
{
	va_list	 ap;
	int	 rc;

	va_start(ap, fmt);
	rc = redisvAppendCommand(sv->c, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return say("%s: %s", sv->where, sv->c->errstr);
	(*queued)++;
	return 0;
}

/*
 * The replies of the n commands queued on sv, into r[0..n) (the caller
 * frees them with rs_free_replies); -1, having said why, if a reply is
 * missing or is an error (the others are read all the same).
 */
static int
rs_replies(struct server *sv, redisReply **r, int n)
{
	void	*p;
	int	 i, rc = 0;

	for (i = 0; i < n; i++) {
		r[i] = NULL;
		if (sv->c->err == 0 && redisGetReply(sv->c, &p) == REDIS_OK)
			r[i] = p;
		if (r[i] == NULL)
			rc = say("%s: %s", sv->where, sv->c->errstr[0] ?
			    sv->c->errstr : "no reply");
		else if (r[i]->type == REDIS_REPLY_ERROR)
			rc = say("%s: %s", sv->where, r[i]->str);
	}
	return rc;
}

static void
rs_free_replies(redisReply **r, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (r[i] != NULL)
			freeReplyObject(r[i]);
}

/* A room of a batch to move: its keys v[0..n), from sv to to. */
struct move {
	char		 base[ROOM_ID_MAX + 160];
	char		 dialect[64], id[ROOM_ID_MAX + 8];
	struct rkey	*v;
	size_t		 n;
	struct server	*to;
	redisReply	**r;		/* DUMP, PTTL of each key; the sets */
	int		 inrooms, inlost;
};

#define BATCH_ROOMS	64

/* Read: each key's dump and TTL, the room's place in the sets. */
static int
batch_read(struct reshard *rs, struct server *sv, struct move *m, int k)
{
	redisReply	*r;
	size_t		 i;
	int		 j, q = 0, rc = 0;

	for (j = 0; j < k; j++) {
		for (i = 0; i < m[j].n; i++)
			if (rs_queue(sv, &q, "DUMP %s", m[j].v[i].key) == -1 ||
			    rs_queue(sv, &q, "PTTL %s", m[j].v[i].key) == -1)
				return -1;
		if (rs_queue(sv, &q, "SISMEMBER %srooms:%s %s", rs->p,
		    m[j].dialect, m[j].id) == -1 || rs_queue(sv, &q,
		    "SISMEMBER %slost %s", rs->p, m[j].base) == -1)
			return -1;
	}
	for (j = 0; j < k; j++) {
		if ((m[j].r = calloc(2 * m[j].n + 2, sizeof(*m[j].r))) == NULL)
			fatal("%s", __func__);
		if (rs_replies(sv, m[j].r, (int)(2 * m[j].n + 2)) == -1)
			rc = -1;
		r = m[j].r[2 * m[j].n];
		m[j].inrooms = r != NULL && r->type == REDIS_REPLY_INTEGER &&
		    r->integer == 1;
		r = m[j].r[2 * m[j].n + 1];
		m[j].inlost = r != NULL && r->type == REDIS_REPLY_INTEGER &&
		    r->integer == 1;
	}
	return rc;
}

/*
 * Write each room to its new server.  A key gone since the scan (a lock's
 * lease, a closed room's minute) is not copied.  A room keeps its epoch if
 * its meta was of the old server's present life (room_adopt); the dead
 * sessions present in it come with it.
 */
static int
batch_write(struct reshard *rs, struct server *sv, struct move *m, int k)
{
	struct session	*s;
	redisReply	*rep, *dump, *ttl;
	long long	 ms;
	size_t		 i, blen;
	int		 j, n, rc = 0;

	for (j = 0; j < rs->n; j++)
		rs->s[j].queued = 0;
	for (j = 0; j < k; j++) {
		struct server	*to = m[j].to;

		for (i = 0; i < m[j].n; i++) {
			dump = m[j].r[2 * i];
			ttl = m[j].r[2 * i + 1];
			ms = ttl->type == REDIS_REPLY_INTEGER ? ttl->integer :
			    -2;
			if (dump->type != REDIS_REPLY_STRING || ms == -2)
				continue;
			if (rs_queue(to, &to->queued, "RESTORE %s %lld %b "
			    "REPLACE", m[j].v[i].key, ms < 0 ? 0 : ms,
			    dump->str, dump->len) == -1)
				return -1;
			if (m[j].v[i].blen + 5 == strlen(m[j].v[i].key) &&
			    strcmp(m[j].v[i].key + m[j].v[i].blen, ":meta") ==
			    0 && rs_queue(to, &to->queued, "FCALL "
			    "roomd_room_adopt 1 %s %s", m[j].v[i].key,
			    sv->life) == -1)
				return -1;
		}
		if ((m[j].inrooms && rs_queue(to, &to->queued, "SADD "
		    "%srooms:%s %s", rs->p, m[j].dialect, m[j].id) == -1) ||
		    (m[j].inlost && rs_queue(to, &to->queued, "SADD %slost %s",
		    rs->p, m[j].base) == -1))
			return -1;
		blen = strlen(m[j].base);
		for (i = 0; i < sv->nsess; i++) {
			s = &sv->sess[i];
			if (has(s->bases, m[j].base, blen) && (rs_queue(to,
			    &to->queued, "ZADD %sleases NX %s %s", rs->p,
			    s->score, s->name) == -1 || rs_queue(to,
			    &to->queued, "SADD %ssess:%s %s", rs->p, s->name,
			    m[j].base) == -1))
				return -1;
		}
	}
	for (j = 0; j < rs->n; j++)
		for (n = 0; n < rs->s[j].queued; n++) {
			if (rs_replies(&rs->s[j], &rep, 1) == -1)
				rc = -1;
			if (rep != NULL)
				freeReplyObject(rep);
		}
	return rc;
}

/* Copied: now gone from sv, in one MULTI. */
static int
batch_delete(struct reshard *rs, struct server *sv, struct move *m, int k)
{
	redisReply	*rep;
	size_t		 i, blen;
	int		 j, n, q = 0, rc = 0;

	if (rs_queue(sv, &q, "MULTI") == -1)
		return -1;
	for (j = 0; j < k; j++) {
		blen = strlen(m[j].base);
		for (i = 0; i < m[j].n; i++)
			if (rs_queue(sv, &q, "DEL %s", m[j].v[i].key) == -1)
				return -1;
		if (rs_queue(sv, &q, "SREM %srooms:%s %s", rs->p,
		    m[j].dialect, m[j].id) == -1 || rs_queue(sv, &q,
		    "SREM %slost %s", rs->p, m[j].base) == -1)
			return -1;
		for (i = 0; i < sv->nsess; i++)
			if (has(sv->sess[i].bases, m[j].base, blen) &&
			    rs_queue(sv, &q, "SREM %ssess:%s %s", rs->p,
			    sv->sess[i].name, m[j].base) == -1)
				return -1;
	}
	if (rs_queue(sv, &q, "EXEC") == -1)
		return -1;
	for (n = 0; n < q; n++) {
		if (rs_replies(sv, &rep, 1) == -1)
			rc = -1;
		if (n == q - 1 && rc == 0 && rep->type != REDIS_REPLY_ARRAY)
			rc = say("%s: EXEC: the rooms were copied, but not "
			    "deleted here", sv->where);
		if (rep != NULL)
			freeReplyObject(rep);
	}
	return rc;
}

/* Move the k rooms of m from sv: three round trips for them all. */
static int
rs_batch(struct reshard *rs, struct server *sv, struct move *m, int k)
{
	int	 j, rc;

	rc = batch_read(rs, sv, m, k);
	if (rc == 0)
		rc = batch_write(rs, sv, m, k);
	if (rc == 0)
		rc = batch_delete(rs, sv, m, k);
	for (j = 0; j < k; j++) {
		if (m[j].r != NULL) {
			rs_free_replies(m[j].r, (int)(2 * m[j].n + 2));
			free(m[j].r);
			m[j].r = NULL;
		}
	}
	if (rc == 0)
		rs->moved += k;
	return rc;
}

static struct server *
server_to(struct reshard *rs, int shard)
{
	int	 i;

	for (i = 0; i < rs->n; i++)
		if (rs->s[i].to == shard)
			return &rs->s[i];
	return NULL;
}

/* Move every room of the old server sv whose new shard is elsewhere. */
static int
rs_server(struct reshard *rs, struct server *sv)
{
	struct gather	 g = { rs, NULL, 0, 0 };
	struct move	*m;
	redisReply	*r;
	char		 tagbuf[ROOM_ID_MAX + 80];
	size_t		 i, j;
	int		 k = 0, rc = 0;

	if ((r = rs_cmd(sv, "FCALL roomd_life 0")) == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING)
		snprintf(sv->life, sizeof(sv->life), "%s", r->str);
	freeReplyObject(r);
	if (sv->life[0] == '\0')
		return say("%s: roomd_life: a reply of the wrong shape",
		    sv->where);
	if (rs_sessions(rs, sv) == -1 ||
	    rs_scan(rs, sv, "{*", gather_key, &g) == -1)
		rc = -1;
	if (g.n > 0)
		qsort(g.v, g.n, sizeof(*g.v), rkey_cmp);
	if ((m = calloc(BATCH_ROOMS, sizeof(*m))) == NULL)
		fatal("%s", __func__);
	for (i = 0; rc == 0 && i < g.n; i = j) {
		struct move	*mv = &m[k];
		const char	*tag, *colon;

		for (j = i + 1; j < g.n && g.v[j].blen == g.v[i].blen &&
		    memcmp(g.v[j].key, g.v[i].key, g.v[i].blen) == 0; j++)
			;
		/* The tag is between the braces: "dialect:id". */
		snprintf(mv->base, sizeof(mv->base), "%.*s", (int)g.v[i].blen,
		    g.v[i].key);
		tag = mv->base + rs->plen + 1;
		colon = strchr(tag, ':');
		snprintf(mv->dialect, sizeof(mv->dialect), "%.*s",
		    (int)(colon - tag), tag);
		snprintf(mv->id, sizeof(mv->id), "%.*s", (int)(mv->base +
		    g.v[i].blen - 1 - (colon + 1)), colon + 1);
		snprintf(tagbuf, sizeof(tagbuf), "%s:%s", mv->dialect, mv->id);
		mv->to = server_to(rs, cluster_shard_in(tagbuf, rs->nnew));
		if (mv->to == sv) {
			rs->stayed++;
			continue;
		}
		mv->v = g.v + i;
		mv->n = j - i;
		if (++k == BATCH_ROOMS) {
			rc = rs_batch(rs, sv, m, k);
			k = 0;
		}
	}
	if (rc == 0 && k > 0)
		rc = rs_batch(rs, sv, m, k);
	free(m);
	for (i = 0; i < g.n; i++)
		free(g.v[i].key);
	free(g.v);
	return rc;
}

/* A server left out of the new list keeps nothing of roomd's. */
static int
forget(const redisReply *key, void *arg)
{
	struct server	*sv = arg;

	return rs_do(sv, "DEL %b", key->str, key->len);
}

static void
rs_free(struct reshard *rs)
{
	struct server	*sv;
	size_t		 j;
	int		 i;

	for (i = 0; i < rs->n; i++) {
		sv = &rs->s[i];
		for (j = 0; j < sv->nsess; j++) {
			free(sv->sess[j].name);
			free(sv->sess[j].score);
			if (sv->sess[j].bases != NULL)
				freeReplyObject(sv->sess[j].bases);
		}
		free(sv->sess);
		if (sv->c != NULL)
			redisFree(sv->c);
	}
}

static int
rs_run(struct reshard *rs, const struct roomd_config *old,
    const struct roomd_config *new)
{
	struct server	*sv;
	char		 claim[32];
	int		 i, left;

	for (i = 0; i < rs->nold; i++)
		if (rs_add(rs, shard_url(old, i), 1, i) == -1)
			return -1;
	for (i = 0; i < rs->nnew; i++)
		if (rs_add(rs, shard_url(new, i), 0, i) == -1)
			return -1;
	/* Check everything before the first write. */
	for (i = 0; i < rs->n; i++)
		if (rs_claim(rs, &rs->s[i]) == -1 || rs_idle(rs,
		    &rs->s[i]) == -1)
			return -1;
	for (i = 0; i < rs->n; i++)
		if (rs_do(&rs->s[i], "SET %sshard %s", rs->p,
		    rs->s[i].moving) == -1)
			return -1;
	for (i = 0; i < rs->n; i++)
		if (rs->s[i].from != -1 && rs_server(rs, &rs->s[i]) == -1)
			return -1;
	for (i = 0; i < rs->n; i++) {
		sv = &rs->s[i];
		if (sv->to != -1) {
			place(claim, sizeof(claim), sv->to, rs->nnew);
			if (rs_do(sv, "SET %sshard %s", rs->p, claim) == -1)
				return -1;
			continue;
		}
		/* Retired: once its rooms are gone (a key that was no
		 * room's was named above), nothing of roomd's stays on it:
		 * the dead sessions, the hosts' incarnations, the claim. */
		left = 0;
		if (rs_scan(rs, sv, "{*", found, &left) == -1)
			return -1;
		if (left)
			return say("%s: keys of rooms are left on it: its "
			    "claim stays \"%s\"", sv->url, sv->moving);
		if (rs_scan(rs, sv, "*", forget, sv) == -1)
			return -1;
	}
	return 0;
}

int
cluster_reshard(const struct roomd_config *old, const struct roomd_config *new)
{
	static struct reshard	 rs;
	int			 rc;

	if (old->cluster[0] == '\0' || new->cluster[0] == '\0')
		return say("%s has no cluster line", old->cluster[0] == '\0' ?
		    "the old configuration (-R)" : "the configuration (-c)");
	if (strcmp(old->cluster_prefix, new->cluster_prefix) != 0)
		return say("the cluster_prefix lines differ (\"%s\", \"%s\"): "
		    "roomd -R moves rooms, not prefixes", old->cluster_prefix,
		    new->cluster_prefix);
	memset(&rs, 0, sizeof(rs));
	rs.p = cluster_prefix();
	rs.plen = strlen(rs.p);
	rs.nold = 1 + old->ncluster_shards;
	rs.nnew = 1 + new->ncluster_shards;
	rc = rs_run(&rs, old, new);
	rs_free(&rs);
	if (rc == 0)
		printf("roomd: moved %d rooms, %d stayed, to %d shard%s\n",
		    rs.moved, rs.stayed, rs.nnew, rs.nnew == 1 ? "" : "s");
	return rc;
}

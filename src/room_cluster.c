/*
 * room_cluster.c: the engine in cluster mode, and what its files share
 * (room_cluster.h: keys, shards, replies).  Redis (cluster.c, the
 * functions of redis/) holds every room; each host's arena holds a
 * mirror of the rooms it serves, and the code above room.c cannot tell.
 *
 * A transaction is what a room lock held: room_lock takes the room's lock
 * in Redis too (txn_lock) and brings the mirror up to date with the
 * entries it lacks, so a dialect decides on the room as every host has
 * it; what the dialect changes goes to the arena through its journal as
 * in single-host mode, and also into a list of what to publish; a commit
 * (txn_commit, at room_unlock, and at each room_append so that an append
 * is acknowledged only once Redis has it) sends the change as one log
 * entry, which every other host's master applies to its own mirror.  The
 * entry's text (below, "Bodies") is the engine's own: Redis only stores
 * and publishes it, with its header in front and the presence counts at
 * the end.
 *
 * Presence: a member's worker bits are this host's; ROOM_SLOT_ELSEWHERE
 * says another host has a connection of it.  A host that dies is reaped
 * by another one (reap_presence); the members it leaves present nowhere
 * go to the room's lost set, and the next transaction on that room hands
 * each to its dialect's member_lost, once.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "roomd.h"
#include "room_cluster.h"

void
buf_add(struct buf *b, const void *p, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t	 cap = b->cap ? b->cap * 2 : 256;

		while (cap < b->len + len + 1)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			fatal("%s", __func__);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void __attribute__((format(printf, 2, 3)))
buf_printf(struct buf *b, const char *fmt, ...)
{
	char	 tmp[256];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_add(b, tmp, n < 0 ? 0 : (size_t)n >= sizeof(tmp) ?
	    sizeof(tmp) - 1 : (size_t)n);
}

void
push64(uint64_t **v, size_t *n, uint64_t x)
{
	size_t	 i;

	for (i = 0; i < *n; i++)
		if ((*v)[i] == x)
			return;
	if ((*v = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
		fatal("%s", __func__);
	(*v)[(*n)++] = x;
}

/* "roomd:{dialect:id}" */
void
room_base(char *buf, size_t len, const struct dialect *d, const char *id)
{
	snprintf(buf, len, "%s{%s:%s}", P, d->name, id);
}

/* The shard that holds a room. */
int
shard_of(const struct dialect *d, const char *id)
{
	char	 tag[ROOM_ID_MAX + 40];

	if (cluster_shards() < 2)
		return 0;
	snprintf(tag, sizeof(tag), "%s:%s", d->name, id);
	return cluster_shard_of(tag);
}

int
room_shard(struct room *room)
{
	return cluster_enabled() ? shard_of(room->dialect, room->r->id) : 0;
}

/* The keys of a room, in the order given by the suffixes. */
int
room_keys(const char *base, const char **names, char keys[][200], int n)
{
	int	 i;

	for (i = 0; i < n; i++) {
		if (names[i] == NULL)	/* the caller's */
			keys[i][0] = '\0';
		else if (names[i][0] == '@')	/* a shard key */
			snprintf(keys[i], 200, "%s%s", P, names[i] + 1);
		else
			snprintf(keys[i], 200, "%s:%s", base, names[i]);
	}
	return n;
}

/* Is reply r the error code? */
int
reply_is(const redisReply *r, const char *code)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, code, strlen(code)) == 0;
}

int
reply_failed(redisReply *r, const char *what)
{
	if (r == NULL)
		return ROOM_EUNAVAIL;
	if (r->type == REDIS_REPLY_ERROR) {
		if (strncmp(r->str, "NOROOM", 6) != 0 &&
		    strncmp(r->str, "EXISTS", 6) != 0)
			log_warnx("cluster: %s: %s", what, r->str);
		return strncmp(r->str, "NOROOM", 6) == 0 ? ROOM_ENOENT :
		    strncmp(r->str, "EXISTS", 6) == 0 ? ROOM_EEXIST :
		    ROOM_EUNAVAIL;
	}
	log_warnx("cluster: %s: a reply of the wrong shape", what);
	return ROOM_EUNAVAIL;
}

uint64_t
reply_int(const redisReply *r, size_t i)
{
	const redisReply	*e = r->element[i];

	if (e->type == REDIS_REPLY_INTEGER)
		return (uint64_t)e->integer;
	if (e->type == REDIS_REPLY_STRING)
		return strtoull(e->str, NULL, 10);
	return 0;
}

/* An array reply of at least n elements, whose listed ones are arrays. */
int
reply_shaped(const redisReply *r, size_t n, const int *arrays)
{
	size_t	 i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < n)
		return 0;
	for (i = 0; arrays != NULL && arrays[i] >= 0; i++)
		if (r->element[arrays[i]]->type != REDIS_REPLY_ARRAY)
			return 0;
	return 1;
}

void
room_key_set(struct room *room, char *base, size_t len)
{
	room_base(base, len, room->dialect, room->r->id);
}

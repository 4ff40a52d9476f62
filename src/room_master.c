/*
 * room_master.c: what a host's master does for the engine in cluster
 * mode: it applies the entries other hosts publish to its copies, reaps
 * dead hosts' presence, and hands lost members to their dialects.
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

#define CHECK_SLICE_MS	10	/* of a pass of room_mirror_check */
#define CHECK_ROOMS_MAX	65536	/* the rooms of one pass */

static void	lost_room(const struct dialect *, const char *);

/* "dialect:id" or "roomd:{dialect:id}" into its dialect and id. */
static const struct dialect *
room_name_parse(const char *s, char *id, size_t idlen)
{
	char		 name[32];
	const char	*colon;
	size_t		 n;

	if (strncmp(s, P, strlen(P)) == 0 && s[strlen(P)] == '{')
		s += strlen(P) + 1;
	if ((colon = strchr(s, ':')) == NULL || (size_t)(colon - s) >=
	    sizeof(name))
		return NULL;
	memcpy(name, s, (size_t)(colon - s));
	name[colon - s] = '\0';
	snprintf(id, idlen, "%s", colon + 1);
	n = strlen(id);
	if (n > 0 && id[n - 1] == '}')
		id[n - 1] = '\0';
	return dialect_find(name);
}

/* Lock a local mirror without a transaction: NULL if there is none. */
static struct room *
mirror_lock(const struct dialect *d, const char *id)
{
	struct shm_room_ref	 ref;
	struct shm_room		*sr;

	if (d == NULL || shm_room_find(room_arena(), d->id, id, &ref) != 0 ||
	    shm_room_lock(room_arena(), &ref, &sr) != 0)
		return NULL;
	return room_new(sr, (const struct room_ref *)&ref);
}

void
room_mirror_message(const char *name, const char *msg, size_t len)
{
	const struct dialect	*d;
	struct room		*room;
	char			 id[ROOM_ID_MAX + 2];
	int			 rc;

	if ((d = room_name_parse(name, id, sizeof(id))) == NULL ||
	    (room = mirror_lock(d, id)) == NULL)
		return;		/* not a room this host serves */
	rc = mirror_apply(room, msg, len);
	/* A gap, or an entry of another epoch: Redis says which room is
	 * the live one.  (A late entry of a room deleted and made again
	 * since, say its close, must not cost the new copy its clients.) */
	if (rc == -1 || rc == -3)
		mirror_catch_up(room);
	else if (rc == -2)
		mirror_drop(room);
	else if (rc == 0)
		room_unlock(room);
}

/* A pass of room_mirror_check: the rooms listed at its start. */
static struct room_ref	*check_refs;
static size_t		 check_n, check_i;

int
room_mirror_check(int shard, int start)
{
	struct room	*room;
	struct shm_room	*sr;
	int64_t		 until = cluster_ms() + CHECK_SLICE_MS;

	if (start) {
		free(check_refs);
		check_i = check_n = 0;
		if ((check_refs = calloc(CHECK_ROOMS_MAX,
		    sizeof(*check_refs))) == NULL)
			return 0;
		check_n = shm_room_list(room_arena(), ROOM_ALL_DIALECTS,
		    (struct shm_room_ref *)check_refs, CHECK_ROOMS_MAX);
	}
	while (check_i < check_n && cluster_ms() < until) {
		/* A room deleted since the list is not locked. */
		if (shm_room_lock(room_arena(), (const struct shm_room_ref *)
		    &check_refs[check_i], &sr) == 0) {
			room = room_new(sr, &check_refs[check_i]);
			if (room_shard(room) == shard)
				mirror_catch_up(room);
			else
				room_unlock(room);
		}
		check_i++;
	}
	if (check_i < check_n)
		return 1;
	free(check_refs);
	check_refs = NULL;
	check_i = check_n = 0;
	return 0;
}

void
room_mirror_reap(int shard, const char *base, const char *s)
{
	redisReply	*r;

	r = cluster_cmd(shard, "FCALL roomd_reap_presence 8 %s:meta %s:log %s:pres "
	    "%s:lock %s:lost %sleases %ssess:%s %slost %s 0", base, base,
	    base, base, base, P, P, s, P, s);
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		log_info("cluster: %lld members of %s lost with %s",
		    r->integer, base, s);
	else if (r->type == REDIS_REPLY_ERROR && !reply_is(r, "BUSY") &&
	    !reply_is(r, "ALIVE"))
		log_warnx("cluster: reap_presence %s: %s", base, r->str);
	freeReplyObject(r);
}

/* Hand the room's lost members to its dialect, once: the commit removes
 * them from the lost set. */
static void
lost_room(const struct dialect *d, const char *id)
{
	struct room_ref		 ref;
	struct room		*room;
	struct room_member	 m;
	struct room_txn		*tx;
	size_t			 i;

	if (room_find(d, id, &ref) != 0 || room_lock(&ref, &room) != 0)
		return;
	tx = room->tx;
	for (i = 0; tx != NULL && i < tx->nlost; i++) {
		if (room_member_by_mid(room, tx->lost[i], &m) == 0 &&
		    !m.connected && d->member_lost != NULL) {
			d->member_lost(room, &m);
			cluster_count(CLUSTER_REAPED, 1);
		}
		push64(&tx->done, &tx->ndone, tx->lost[i]);
	}
	if (tx != NULL)
		tx->force = 1;
	room_unlock(room);
}

void
room_mirror_lost_all(int shard)
{
	const struct dialect	*d;
	redisReply		*r;
	char			 id[ROOM_ID_MAX + 2];
	size_t			 i;

	if ((r = cluster_cmd(shard, "SMEMBERS %slost", P)) == NULL)
		return;
	for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    (d = room_name_parse(r->element[i]->str, id,
		    sizeof(id))) != NULL)
			lost_room(d, id);
	freeReplyObject(r);
}

int
rcl_presence_end(const struct dialect *d, const char *id,
    const uint64_t *mids, size_t n, char *was, size_t len)
{
	static const char *names[] = { "meta", "log", "pres", "lock", "lost",
				    "@leases", "@lost" };
	static int	 said;
	char		 base[160], keys[7][200], session[96], (*num)[24];
	const char	**argv;
	redisReply	*r;
	size_t		 i;
	int		 shard = shard_of(d, id), up, rc = -1;

	up = cluster_session(shard, session, sizeof(session)) == 0;
	if (was[0] == '\0') {
		/* Without a session (a master that reattached its arena and
		 * has not joined yet), the reaping of the old session does
		 * it. */
		if (session[0] == '\0')
			return 0;
		snprintf(was, len, "%s", session);
	}
	/* The session the members were present in has ended: its reaping
	 * lets them go. */
	if (session[0] != '\0' && strcmp(session, was) != 0)
		return 0;
	if (!up)
		return -1;
	argv = calloc(12 + n, sizeof(*argv));
	num = calloc(n, sizeof(*num));
	if (argv == NULL || num == NULL) {
		free(argv);
		free(num);
		return -1;
	}
	room_base(base, sizeof(base), d, id);
	room_keys(base, names, keys, 7);
	argv[0] = "FCALL";
	argv[1] = "roomd_presence_end";
	argv[2] = "7";
	for (i = 0; i < 7; i++)
		argv[3 + i] = keys[i];
	argv[10] = was;
	argv[11] = "0";
	for (i = 0; i < n; i++) {
		snprintf(num[i], sizeof(num[i]), "%llu",
		    (unsigned long long)mids[i]);
		argv[12 + i] = num[i];
	}
	r = cluster_callv(shard, (int)(12 + n), argv, NULL);
	free(argv);
	free(num);
	if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
		rc = 0;
		/* The lost members go to their dialect now, not at the next
		 * keeper's sweep; whoever comes first does it, once. */
		if (r->integer > 0)
			lost_room(d, id);
	} else if (reply_is(r, "FENCED"))
		rc = 0;		/* its reaping does it */
	else if (r != NULL && !reply_is(r, "BUSY") && !said) {
		said = 1;	/* a helper says it once */
		log_warnx("cluster: presence_end %s: %s (trying again)", base,
		    r->type == REDIS_REPLY_ERROR ? r->str :
		    "a reply of the wrong shape");
	}
	if (r != NULL)
		freeReplyObject(r);
	return rc;
}

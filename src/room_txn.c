/*
 * room_txn.c: transactions in cluster mode: the room's lock in Redis
 * (txn_lock), the change noted as the dialect makes it, and the commit
 * of it as one log entry (txn_commit).
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

static struct room_txn *
txn_get(struct room *room)
{
	if (room->tx == NULL && (room->tx = calloc(1, sizeof(*room->tx))) ==
	    NULL)
		fatal("%s", __func__);
	return room->tx;
}

static void
txn_free(struct room *room)
{
	struct room_txn	*tx = room->tx;

	if (tx == NULL)
		return;
	free(tx->mids);
	free(tx->pres);
	free(tx->kicks);
	free(tx->lost);
	free(tx->done);
	free(tx);
	room->tx = NULL;
}

static void
txn_clear(struct room_txn *tx)
{
	tx->nmids = tx->npres = tx->nkicks = tx->ndone = 0;
	tx->words = tx->force = tx->keep = 0;
	tx->close = NULL;
}

static redisReply *
txn_lock_call(struct room *room, struct room_txn *tx)
{
	static const char *names[] = { "meta", "log", "lock", "lost",
				    "@leases" };
	char		 base[160], keys[5][200], px[16], after[32], max[16];
	const char	*argv[13];
	int		 i;

	room_key_set(room, base, sizeof(base));
	room_keys(base, names, keys, 5);
	snprintf(px, sizeof(px), "%d", LOCK_PX);
	snprintf(after, sizeof(after), "%llu",
	    (unsigned long long)room->r->cver);
	snprintf(max, sizeof(max), "%d", CATCH_UP_MAX);
	argv[0] = "FCALL";
	argv[1] = "roomd_txn_lock";
	argv[2] = "5";
	for (i = 0; i < 5; i++)
		argv[3 + i] = keys[i];
	argv[8] = tx->session;
	argv[9] = tx->token;
	argv[10] = px;
	argv[11] = after;
	argv[12] = max;
	return cluster_callv(room_shard(room), 13, argv, NULL);
}

/* Wait a little for a busy lock: 1, 2, 4... ms, at most 32. */
static void
lock_backoff(int *ms)
{
	struct timespec	 ts = { 0, (long)*ms * 1000000L };

	nanosleep(&ts, NULL);
	if (*ms < 32)
		*ms *= 2;
}

/*
 * Take the room's lock in Redis and bring the mirror up to date.  The
 * local lock is held.  0, ROOM_ENOENT (the room is gone: the mirror is
 * dropped and room freed), or ROOM_EUNAVAIL.
 */
int
rcl_lock(struct room *room)
{
	static unsigned long	 counter;
	static const int	 arrays[] = { 4, 5, -1 };
	struct room_txn		*tx = txn_get(room);
	redisReply		*r;
	char			 key[200];
	int64_t			 until = cluster_ms() + LOCK_WAIT_MS;
	int			 ms = 1, rc, shard = room_shard(room);
	size_t			 i;

	if (cluster_session(shard, tx->session, sizeof(tx->session)) == -1)
		return ROOM_EUNAVAIL;
	snprintf(tx->token, sizeof(tx->token), "%ld.%lu", (long)getpid(),
	    ++counter);
	room_key_set(room, key, sizeof(key) - 5);
	strcat(key, ":lock");
	cluster_hold(shard, key, tx->token);
	while ((r = txn_lock_call(room, tx)) != NULL && reply_is(r, "BUSY") &&
	    cluster_ms() < until) {
		freeReplyObject(r);
		lock_backoff(&ms);
	}
	if (r != NULL && reply_is(r, "OOM")) {
		/* Redis takes no writes: the room can still be read. */
		freeReplyObject(r);
		cluster_hold(0, NULL, NULL);
		return mirror_read_only(room);
	}
	if (!reply_shaped(r, 6, arrays)) {
		cluster_hold(0, NULL, NULL);
		rc = reply_failed(r, "txn_lock");
		if (r != NULL)
			freeReplyObject(r);
		if (rc == ROOM_ENOENT)
			room_delete_local(room, "room deleted", 0);
		return rc == ROOM_ENOENT ? rc : ROOM_EUNAVAIL;
	}
	tx->locked = 1;
	rc = reply_int(r, 0) == room->r->cepoch && reply_int(r, 3) == 1 ?
	    mirror_apply_list(room, r->element[4]) : -2;
	for (i = 0; rc == 0 && i < r->element[5]->elements; i++)
		push64(&tx->lost, &tx->nlost, reply_int(r->element[5], i));
	freeReplyObject(r);
	if (rc == 1)
		return ROOM_ENOENT;	/* closed: freed */
	if (rc != 0) {
		rcl_release(room);
		mirror_drop(room);
		return RCL_RELOADED;
	}
	tx->seq0 = room->r->committed;
	return 0;
}

int
rcl_writable(struct room *room)
{
	return room->tx == NULL || room->tx->locked;
}

/* Give the Redis lock back without a change. */
void
rcl_release(struct room *room)
{
	struct room_txn	*tx = room->tx;
	char		 base[160];

	if (tx == NULL || !tx->locked)
		return;
	/* Nothing waits for the answer: if it is lost, the lock's lease
	 * ends it. */
	room_key_set(room, base, sizeof(base));
	cluster_send(room_shard(room), "FCALL roomd_txn_unlock 1 %s:lock %s "
	    "%s", base, tx->session, tx->token);
	tx->locked = 0;
	cluster_hold(0, NULL, NULL);
}

/* The records appended since the last commit, into the body. */
struct rec_out {
	struct buf	*b;
	uint64_t	 n;
};

static int
body_rec(const struct room_rec *rec, void *arg)
{
	struct rec_out	*o = arg;

	buf_printf(o->b, "R %d %llu %zu\n", rec->type,
	    (unsigned long long)rec->target, rec->len);
	buf_add(o->b, rec->data, rec->len);
	buf_add(o->b, "\n", 1);
	o->n++;
	return 0;
}

static void
hex(struct buf *b, const uint8_t *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		buf_printf(b, "%02x", p[i]);
}

/* "role authorities joined token uid name" */
static void
member_line(struct buf *b, struct room *room, const struct shm_member *m)
{
	buf_printf(b, "%llu %llu %u %s %s ", (unsigned long long)m->role,
	    (unsigned long long)m->authorities, m->joined, m->token, m->uid);
	buf_printf(b, "%s", shm_member_name(room_arena(), m));
}

struct commit {
	struct buf	 body, words, args[4];	/* ups, rms, pres, done */
	uint64_t	 nrecs;
	size_t		 n[4];
};

/* Arguments travel as one buffer of NUL-terminated strings per list. */
static void
arg_add(struct commit *c, int list, const char *s, size_t len)
{
	buf_add(&c->args[list], s, len);
	buf_add(&c->args[list], "", 1);
}

static void
commit_members(struct room *room, struct commit *c)
{
	struct room_txn		*tx = room->tx;
	struct shm_member	*m;
	struct buf		 line = { NULL, 0, 0 };
	char			 mid[32];
	size_t			 i;

	for (i = 0; i < tx->nmids; i++) {
		snprintf(mid, sizeof(mid), "%llu",
		    (unsigned long long)tx->mids[i]);
		m = shm_member_by_mid(room_arena(), room->r, tx->mids[i]);
		if (m == NULL) {
			buf_printf(&c->body, "X %s\n", mid);
			arg_add(c, 1, mid, strlen(mid));
			c->n[1]++;
			continue;
		}
		line.len = 0;
		member_line(&line, room, m);
		buf_printf(&c->body, "M %s %zu\n", mid, line.len);
		buf_add(&c->body, line.p, line.len);
		buf_add(&c->body, "\n", 1);
		arg_add(c, 0, mid, strlen(mid));
		arg_add(c, 0, line.p, line.len);
		c->n[0]++;
	}
	free(line.p);
}

static void
commit_build(struct room *room, struct commit *c)
{
	struct room_txn	*tx = room->tx;
	struct shm_room	*r = room->r;
	struct rec_out	 o = { &c->body, 0 };
	char		 s[32];
	size_t		 i;
	int		 k;

	room_read(room, tx->seq0, body_rec, &o);
	c->nrecs = o.n;
	commit_members(room, c);
	if (tx->words) {
		for (k = 0; k < 8; k++)
			buf_printf(&c->words, "%s%llu", k ? " " : "",
			    (unsigned long long)r->dstate[k]);
		buf_printf(&c->words, " %llu ", (unsigned long long)(r->flags &
		    (ROOM_F_PASSWORD | ROOM_F_CLOSING)));
		hex(&c->words, r->salt, sizeof(r->salt));
		buf_add(&c->words, " ", 1);
		hex(&c->words, r->secret, sizeof(r->secret));
		buf_printf(&c->words, " %llu", (unsigned long long)r->keep_from);
		buf_printf(&c->body, "W %s\n", c->words.p);
	}
	buf_printf(&c->body, "N %llu\n", (unsigned long long)r->next_mid);
	for (i = 0; i < tx->nkicks; i++)
		buf_printf(&c->body, "K %llu\n",
		    (unsigned long long)tx->kicks[i]);
	if (tx->close != NULL) {
		buf_printf(&c->body, "C %zu\n", strlen(tx->close));
		buf_printf(&c->body, "%s\n", tx->close);
	}
	for (i = 0; i < tx->npres; i++) {
		snprintf(s, sizeof(s), "%llu",
		    (unsigned long long)tx->pres[i].mid);
		arg_add(c, 2, s, strlen(s));
		arg_add(c, 2, tx->pres[i].here ? "1" : "0", 1);
		c->n[2]++;
	}
	for (i = 0; i < tx->ndone; i++) {
		snprintf(s, sizeof(s), "%llu", (unsigned long long)tx->done[i]);
		arg_add(c, 3, s, strlen(s));
		c->n[3]++;
	}
}

/* argv for txn_commit: 10 keys, 10 fixed arguments, then the lists. */
static redisReply *
commit_call(struct room *room, struct commit *c, int release)
{
	static const char *names[] = { "meta", "log", "members", "pres",
				    "lock", "lost", "@leases", NULL, "@lost",
				    NULL };
	struct room_txn	*tx = room->tx;
	char		 base[160], keys[10][200], num[7][32], keep[32];
	const char	**argv, *p;
	size_t		*lens, n, i, k, cap;
	redisReply	*r;
	int		 list;

	room_key_set(room, base, sizeof(base));
	room_keys(base, names, keys, 10);
	snprintf(keys[7], 200, "%ssess:%s", P, tx->session);
	snprintf(keys[9], 200, "%srooms:%s", P, room->dialect->name);
	cap = 32 + c->n[0] * 2 + c->n[1] + c->n[2] * 2 + c->n[3];
	if ((argv = calloc(cap, sizeof(*argv))) == NULL ||
	    (lens = calloc(cap, sizeof(*lens))) == NULL)
		fatal("%s", __func__);
	n = 0;
	argv[n++] = "FCALL";
	argv[n++] = "roomd_txn_commit";
	argv[n++] = "10";
	for (i = 0; i < 10; i++)
		argv[n++] = keys[i];
	argv[n++] = tx->session;
	argv[n++] = tx->token;
	argv[n++] = release ? "1" : "0";
	argv[n++] = room->r->flags & ROOM_F_RELAY ? "1000" : "0";
	lens[n] = c->body.len;
	argv[n++] = c->body.p != NULL ? c->body.p : "";
	snprintf(num[0], 32, "%llu", (unsigned long long)c->nrecs);
	argv[n++] = num[0];
	argv[n++] = tx->close != NULL ? "1" : "0";
	argv[n++] = c->words.p != NULL ? c->words.p : "";
	snprintf(keep, sizeof(keep), "%llu", (unsigned long long)tx->keep_ver);
	argv[n++] = tx->keep ? keep : "";
	snprintf(num[1], 32, "%llu", (unsigned long long)room->r->next_mid);
	argv[n++] = num[1];
	for (list = 0; list < 4; list++) {
		snprintf(num[2 + list], 32, "%zu", c->n[list]);
		argv[n++] = num[2 + list];
		p = c->args[list].p;
		k = list == 0 || list == 2 ? 2 * c->n[list] : c->n[list];
		for (i = 0; i < k; i++) {
			/* a member line may hold any byte but NUL */
			argv[n++] = p;
			p += strlen(p) + 1;
		}
	}
	for (i = 0; i < n; i++)
		if (lens[i] == 0)
			lens[i] = strlen(argv[i]);
	r = cluster_callv(room_shard(room), (int)n, argv, lens);
	free(argv);
	free(lens);
	return r;
}

static void
commit_free(struct commit *c)
{
	int	 i;

	free(c->body.p);
	free(c->words.p);
	for (i = 0; i < 4; i++)
		free(c->args[i].p);
}

/*
 * Commit what the transaction changed so far.  0, or ROOM_EUNAVAIL with
 * the local journal rolled back to the last commit (Redis has nothing).
 */
static int
txn_commit(struct room *room, int release)
{
	static const int arrays[] = { 3, -1 };
	struct room_txn	*tx = room->tx;
	struct commit	 c;
	redisReply	*r;
	size_t		 i;
	int		 ok;

	memset(&c, 0, sizeof(c));
	commit_build(room, &c);
	r = commit_call(room, &c, release);
	ok = reply_shaped(r, 4, arrays) && reply_int(r, 0) == room->r->cver + 1 &&
	    (c.nrecs == 0 || reply_int(r, 1) == tx->seq0 + 1) &&
	    reply_int(r, 2) == room->r->cepoch;
	if (ok) {
		shm_tx_set(room_arena(), &room->r->lock, &room->r->cver,
		    reply_int(r, 0));
		if (c.nrecs > 0) {
			tx->recs_first = reply_int(r, 1);
			tx->recs_ver = reply_int(r, 0);
		}
		for (i = 0; i + 1 < r->element[3]->elements; i += 2)
			mirror_presence(room, reply_int(r->element[3], i),
			    reply_int(r->element[3], i + 1));
		cluster_count(CLUSTER_COMMITS, 1);
	} else if (reply_shaped(r, 4, arrays))
		log_warnx("cluster: room %s: the commit does not follow the "
		    "mirror", room->r->id);
	else
		reply_failed(r, "txn_commit");
	if (r != NULL)
		freeReplyObject(r);
	commit_free(&c);
	if (ok && cluster_wait_replicas(room_shard(room)) == -1)
		ok = 0;		/* written, but not acknowledged */
	if (release || !ok) {
		tx->locked = 0;
		cluster_hold(0, NULL, NULL);
	}
	txn_clear(tx);
	tx->seq0 = room->r->committed;
	return ok ? 0 : ROOM_EUNAVAIL;
}

static int
txn_dirty(const struct room_txn *tx, uint64_t seq0, uint64_t committed)
{
	return tx->nmids || tx->npres || tx->nkicks || tx->ndone || tx->words ||
	    tx->force || tx->close != NULL || committed != seq0;
}

int
rcl_unlock(struct room *room)
{
	struct room_txn	*tx = room->tx;
	int		 rc = 0;

	if (tx == NULL)
		return 0;
	if (tx->locked && txn_dirty(tx, tx->seq0, room->r->committed))
		rc = txn_commit(room, 1);
	else if (!tx->locked && txn_dirty(tx, tx->seq0, room->r->committed))
		rc = ROOM_EUNAVAIL;	/* read only: undone here */
	else
		rcl_release(room);
	txn_free(room);
	return rc;
}

int
rcl_commit(struct room *room)
{
	struct arena	*a = room_arena();
	int		 rc;

	if (room->tx == NULL || !room->tx->locked)
		return ROOM_EUNAVAIL;
	rc = txn_commit(room, 0);
	if (rc == 0)
		shm_tx_commit(a, &room->r->lock);
	else
		shm_tx_abort(a, &room->r->lock);
	shm_tx_begin(a, &room->r->lock);
	return rc;
}

int
rcl_close(struct room *room, const char *reason)
{
	if (room->tx == NULL || !room->tx->locked)
		return ROOM_EUNAVAIL;
	room->tx->close = reason;
	return txn_commit(room, 1);
}

void
rcl_kick(struct room *room, uint64_t mid)
{
	struct room_txn	*tx = room->tx;

	if (tx != NULL)
		push64(&tx->kicks, &tx->nkicks, mid);
}

void
rcl_dirty_member(struct room *room, uint64_t mid)
{
	if (room->tx != NULL)
		push64(&room->tx->mids, &room->tx->nmids, mid);
}

void
rcl_dirty_room(struct room *room)
{
	if (room->tx != NULL)
		room->tx->words = 1;
}

/*
 * The room's log keeps every record from seq on (room_keep_from): every
 * mirror hears of it with the words, and Redis keeps the log from the
 * entry of seq on.  That entry is the next commit's, or the last one with
 * records in this transaction; one of an earlier transaction is not known
 * here, and Redis then keeps every entry from now on.
 */
void
rcl_keep_from(struct room *room, uint64_t seq)
{
	struct room_txn	*tx = room->tx;

	if (tx == NULL)
		return;
	tx->words = tx->keep = 1;
	if (seq > tx->seq0)
		tx->keep_ver = room->r->cver + 1;
	else if (tx->recs_ver != 0 && seq >= tx->recs_first)
		tx->keep_ver = tx->recs_ver;
	else
		tx->keep_ver = 0;
}

void
rcl_presence(struct room *room, uint64_t mid, int here)
{
	struct room_txn	*tx = room->tx;
	size_t		 i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->npres; i++)
		if (tx->pres[i].mid == mid) {
			tx->pres[i].here = here;
			return;
		}
	if ((tx->pres = reallocarray(tx->pres, tx->npres + 1,
	    sizeof(*tx->pres))) == NULL)
		fatal("%s", __func__);
	tx->pres[tx->npres++] = (struct presence){ mid, here };
}

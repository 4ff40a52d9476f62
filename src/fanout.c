/*
 * fanout.c: a worker's side of rooms.  It keeps the worker's view of the
 * rooms its connections joined (struct lroom), the doorbells waiting for
 * the end of the loop iteration, and delivers what a room's log gained to
 * this worker's connections, in one of two ways:
 *
 * - history rooms (canvas): a member has a cursor, the last record it was
 *   sent, and is sent what follows as one message written by the
 *   dialect's frame_add, shared by every member at the same cursor and
 *   cut at about output_buffer_bytes; a member whose output is full is
 *   "behind" and catches up as its socket drains.
 * - relay rooms (the others): each record is a message for an audience;
 *   the log is read once per worker and trimmed behind the slowest; a
 *   member whose output is full is closed, for a relay has no history.
 *
 * The engine (room.c) tells the fan-out of a change through fanout_pend
 * and fanout_room_gone; in the master, which has no connections, a
 * doorbell is rung at once.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "roomd.h"

#define LROOM_BUCKETS	1024
#define PENDING_MAX	256
#define FRAME_CACHE	8	/* distinct cursors served from one read */

/* A doorbell waiting for the end of the iteration, and who gets it. */
struct pending {
	struct doorbell		 db;
	uint64_t		 slots;		/* other workers to ring */
	int			 local;		/* notify this worker too */
};

static LIST_HEAD(, lroom)	 lrooms[LROOM_BUCKETS];
static struct pending		 pending[PENDING_MAX];
static int			 npending;
static struct event		*retry_ev;

static struct lroom *
lroom_find(uint64_t rid)
{
	struct lroom	*lr;

	LIST_FOREACH(lr, &lrooms[rid % LROOM_BUCKETS], entry)
		if (lr->ref.rid == rid)
			return lr;
	return NULL;
}

static struct lroom *
lroom_get(struct room *room)
{
	struct lroom	*lr;

	if ((lr = lroom_find(room_ref(room).rid)) != NULL)
		return lr;
	if ((lr = calloc(1, sizeof(*lr))) == NULL)
		return NULL;
	lr->ref = room_ref(room);
	lr->dialect = room_dialect(room);
	lr->shard = room_shard(room);
	lr->seen = room_committed(room);
	LIST_INIT(&lr->conns);
	LIST_INSERT_HEAD(&lrooms[lr->ref.rid % LROOM_BUCKETS], lr, entry);
	room_seen(room, lr->seen);
	return lr;
}

/* Ring the slots now; those whose inbox is full stay in *slots. */
static void
fanout_ring(const struct doorbell *db, uint64_t *slots)
{
	int	 s;

	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		if ((*slots & (1ULL << s)) && proc_ring(s, db) == 0) {
			*slots &= ~(1ULL << s);
			stats_add(STAT_DOORBELLS, 1);
		}
}

void
fanout_pend(const struct doorbell *db, uint64_t slots, int local)
{
	struct pending	*p;
	struct doorbell	 now;
	int		 i;

	if (env->slot < 0) {
		now = *db;
		now.from = UINT32_MAX;
		fanout_ring(&now, &slots);
		return;
	}
	slots &= ~(1ULL << env->slot);
	for (i = 0; i < npending; i++) {
		p = &pending[i];
		if (db->type == DOORBELL_APPEND && p->db.type == db->type &&
		    p->db.rid == db->rid) {
			if (db->seq > p->db.seq)
				p->db.seq = db->seq;
			p->slots |= slots;
			p->local |= local;
			return;
		}
	}
	if (npending == PENDING_MAX)
		fanout_flush();
	if (npending == PENDING_MAX) {
		/* Every inbox is full: members catch up on the next change. */
		log_warnx("%s: doorbell for room %llu dropped", __func__,
		    (unsigned long long)db->rid);
		return;
	}
	p = &pending[npending++];
	p->db = *db;
	p->db.from = (uint32_t)env->slot;
	p->slots = slots;
	p->local = local;
	server_flush_later();
}

void
fanout_room_gone(uint64_t rid, int code, const char *reason)
{
	struct lroom	*lr;
	struct conn	*conn;

	if ((lr = lroom_find(rid)) == NULL)
		return;
	while ((conn = LIST_FIRST(&lr->conns)) != NULL) {
		LIST_REMOVE(conn, room_entry);
		conn->room = NULL;
		server_ws_close(conn, code, reason);
	}
	LIST_REMOVE(lr, entry);
	free(lr);
}

void
fanout_unavailable(struct conn *conn)
{
	server_parting(conn);
	server_ws_close(conn, 1012, "the cluster is unavailable; try again");
}

int
fanout_attach(struct room *room, struct conn *conn, uint64_t mid)
{
	struct lroom	*lr;

	if ((lr = lroom_get(room)) == NULL)
		return ROOM_ENOSPC;
	conn->cursor = room_committed(room);
	room_conn_count(room, 1);
	room_member_here(room, mid, 1);
	LIST_INSERT_HEAD(&lr->conns, conn, room_entry);
	conn->room = lr;
	conn->mid = mid;
	return 0;
}

/* Has this worker another connection of member mid in the room? */
static int
lroom_has_member(struct lroom *lr, uint64_t mid)
{
	struct conn	*conn;

	if (lr == NULL)
		return 0;
	LIST_FOREACH(conn, &lr->conns, room_entry)
		if (conn->mid == mid)
			return 1;
	return 0;
}

int
fanout_detach(struct conn *conn, int delete_if_empty, int *present)
{
	struct lroom	*lr = conn->room;
	struct room_ref	 ref;
	struct room	*room;
	int		 left, here;

	if (present != NULL)
		*present = 0;
	if (lr == NULL)
		return -1;
	ref = lr->ref;
	LIST_REMOVE(conn, room_entry);
	conn->room = NULL;
	here = lroom_has_member(lr, conn->mid);
	if (LIST_EMPTY(&lr->conns)) {
		LIST_REMOVE(lr, entry);
		free(lr);
	}
	if (room_lock(&ref, &room) != 0)
		return -1;
	if (room_ref(room).rid != ref.rid) {
		/* Cluster mode: the copy it was counted in was made again
		 * (room_lock's retry), without it. */
		room_unlock(room);
		return -1;
	}
	left = room_conn_count(room, -1);
	here = room_member_here(room, conn->mid, here);
	if (present != NULL)
		*present = here == 1;
	/* In cluster mode only a room without members goes at once: one
	 * whose members are moving between hosts (connected to none for a
	 * moment, after a failover say) expires as any room without
	 * connections. */
	if (left == 0 && delete_if_empty && (!cluster_enabled() ||
	    room_member_count(room) == 0))
		room_delete(room, "last connection closed");
	else
		room_unlock(room);
	return left;
}

/*
 * History rooms.  A message holds the records after "after", cut after
 * the first that takes it past output_buffer_bytes (*more then says there
 * is more); NULL if there is none and an empty one was not asked for.
 */
struct history_build {
	const struct dialect	*d;
	struct evbuffer		*buf;
	int			 n;
	uint64_t		 last;
};

static int
history_rec(const struct room_rec *rec, void *arg)
{
	struct history_build	*b = arg;

	b->d->frame_add(b->buf, rec, b->n++);
	b->last = rec->seq;
	return evbuffer_get_length(b->buf) >= env->conf.output_buffer_bytes;
}

static struct ws_frame *
history_frame(struct lroom *lr, uint64_t after, int empty_ok, uint64_t *upto,
    int *more)
{
	struct history_build	 b = { lr->dialect, NULL, 0, 0 };
	struct room		*room;

	*more = 0;
	if (room_lock_view(&lr->ref, &room) != 0)
		return NULL;
	*upto = room_committed(room);
	if (*upto > after || empty_ok) {
		b.buf = evbuffer_new();
		room_read(room, after, history_rec, &b);
		b.d->frame_add(b.buf, NULL, b.n);
		if (b.n > 0 && b.last < *upto) {
			*upto = b.last;
			*more = 1;
		}
	}
	room_unlock(room);
	return b.buf != NULL ? server_ws_frame_seal(b.buf, 0) : NULL;
}

void
fanout_catch_up(struct conn *conn, int empty_ok)
{
	struct ws_frame	*frame;
	uint64_t	 upto;
	int		 more;

	if (conn->room == NULL || conn->state != CONN_WS)
		return;
	if (server_output_full(conn)) {
		conn->behind = 1;
		return;
	}
	frame = history_frame(conn->room, conn->cursor, empty_ok, &upto,
	    &more);
	conn->behind = more;
	if (frame == NULL)
		return;
	server_ws_frame_send(conn, frame);
	server_ws_frame_free(frame);
	conn->cursor = upto;
}

void
fanout_drained(struct conn *conn)
{
	if (conn->behind && conn->room != NULL && !conn->room->dialect->relay)
		fanout_catch_up(conn, 0);
}

/* The log grew: one message per distinct cursor, shared. */
static void
history_notify(struct lroom *lr)
{
	struct {
		uint64_t	 after, upto;
		struct ws_frame	*frame;
		int		 more;
	} cache[FRAME_CACHE];
	struct conn	*conn;
	int		 n = 0, i;

	LIST_FOREACH(conn, &lr->conns, room_entry) {
		if (conn->state != CONN_WS)
			continue;
		if (server_output_full(conn)) {
			conn->behind = 1;
			continue;
		}
		for (i = 0; i < n && cache[i].after != conn->cursor; i++)
			;
		if (i == n) {
			if (n == FRAME_CACHE) {
				fanout_catch_up(conn, 0);
				continue;
			}
			cache[n].after = conn->cursor;
			cache[n].frame = history_frame(lr, conn->cursor, 0,
			    &cache[n].upto, &cache[n].more);
			n++;
		}
		if (cache[i].frame != NULL) {
			server_ws_frame_send(conn, cache[i].frame);
			conn->cursor = cache[i].upto;
			conn->behind = cache[i].more;
		}
	}
	for (i = 0; i < n; i++)
		server_ws_frame_free(cache[i].frame);
}

/* Relay rooms: records copied out of the log, delivered after unlocking. */
struct relay_batch {
	struct relay_rec {
		uint64_t	 seq;
		uint64_t	 target;
		int		 aud;
		struct ws_frame	*frame;
		char		*data;		/* AUD_TAG: for relay_match */
		size_t		 len;
	}		*recs;
	size_t		 n, cap;
};

static int
relay_collect(const struct room_rec *rec, void *arg)
{
	struct relay_batch	*b = arg;
	struct relay_rec	*x;
	struct evbuffer		*buf;

	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		void *p = reallocarray(b->recs, cap, sizeof(*b->recs));

		if (p == NULL)
			return 1;
		b->recs = p;
		b->cap = cap;
	}
	x = &b->recs[b->n++];
	x->seq = rec->seq;
	x->aud = rec->type;
	x->target = rec->target;
	x->frame = NULL;
	x->data = NULL;
	x->len = 0;
	if (rec->type == AUD_TAG && rec->len > 0 &&
	    (x->data = malloc(rec->len)) != NULL) {
		memcpy(x->data, rec->data, rec->len);
		x->len = rec->len;
	}
	if (rec->len > 0 && (buf = evbuffer_new()) != NULL) {
		evbuffer_add(buf, rec->data, rec->len);
		x->frame = server_ws_frame_seal(buf, 0);
	}
	return 0;
}

static int
relay_matches(const struct relay_rec *x, struct conn *conn)
{
	struct room_rec	 rec = { x->seq, x->target, x->data, x->len, x->aud };

	switch (x->aud) {
	case AUD_TAG:
		return conn->mount->dialect->relay_match != NULL &&
		    conn->mount->dialect->relay_match(conn, &rec);
	case AUD_ALL:
		return 1;
	case AUD_ALL_BUT:
	case AUD_CLOSE_ALL_BUT:
		return conn->mid != x->target;
	case AUD_MEMBER:
	case AUD_CLOSE_MEMBER:
		return conn->mid == x->target;
	}
	return 0;
}

static void
relay_deliver(struct lroom *lr, const struct relay_rec *x)
{
	struct conn	*conn, *next;

	for (conn = LIST_FIRST(&lr->conns); conn != NULL; conn = next) {
		next = LIST_NEXT(conn, room_entry);
		if (conn->cursor >= x->seq || !relay_matches(x, conn))
			continue;
		if (x->frame != NULL) {
			if (server_output_full(conn)) {
				server_ws_close(conn, 1008, "output buffer "
				    "full: reading too slowly");
				continue;
			}
			server_ws_frame_send(conn, x->frame);
		}
		if (x->aud == AUD_CLOSE_MEMBER || x->aud == AUD_CLOSE_ALL_BUT)
			server_ws_close(conn, 1000, "closed");
	}
}

/* Read the new records once for this worker, then hand each to the
 * local members it is for. */
static void
relay_notify(struct lroom *lr)
{
	struct relay_batch	 b = { NULL, 0, 0 };
	struct room		*room;
	struct conn		*conn;
	size_t			 i;
	uint64_t		 upto;

	if (room_lock_view(&lr->ref, &room) != 0)
		return;
	room_read(room, lr->seen, relay_collect, &b);
	upto = room_committed(room);
	room_seen(room, upto);
	lr->seen = upto;
	room_unlock(room);
	for (i = 0; i < b.n; i++) {
		relay_deliver(lr, &b.recs[i]);
		server_ws_frame_free(b.recs[i].frame);
		free(b.recs[i].data);
	}
	LIST_FOREACH(conn, &lr->conns, room_entry)
		if (conn->cursor < upto)
			conn->cursor = upto;
	free(b.recs);
}

static void
fanout_notify(struct lroom *lr)
{
	if (lr->dialect->relay)
		relay_notify(lr);
	else if (lr->dialect->frame_add != NULL)
		history_notify(lr);
}

void
fanout_doorbell(const struct doorbell *db)
{
	struct lroom	*lr;
	struct conn	*conn, *next;

	switch (db->type) {
	case DOORBELL_APPEND:
		if (lroom_find(db->rid) != NULL)
			fanout_pend(db, 0, 1);
		break;
	case DOORBELL_CLOSE_ROOM:
		/* seq 1: the room is to be loaded again (cluster mode) */
		if (db->seq == 1)
			fanout_room_gone(db->rid, 1012, "room reloaded");
		else
			fanout_room_gone(db->rid, 1000, "room deleted");
		break;
	case DOORBELL_KICK:
		if ((lr = lroom_find(db->rid)) == NULL)
			break;
		for (conn = LIST_FIRST(&lr->conns); conn != NULL; conn = next) {
			next = LIST_NEXT(conn, room_entry);
			if (conn->mid == db->seq)
				server_ws_close(conn, 1008, "kicked by the "
				    "administrator");
		}
		break;
	default:
		log_warnx("%s: doorbell of unknown type %u", __func__,
		    db->type);
	}
}

void
fanout_tick(void)
{
	struct lroom	*lr, *next;
	size_t		 b;

	for (b = 0; b < LROOM_BUCKETS; b++)
		for (lr = LIST_FIRST(&lrooms[b]); lr != NULL; lr = next) {
			next = LIST_NEXT(lr, entry);
			if (lr->dialect->tick != NULL)
				lr->dialect->tick(&lr->ref);
		}
}

static void
fanout_retry(evutil_socket_t fd, short events, void *arg)
{
	fanout_flush();
}

/*
 * End of the loop iteration: deliver to this worker's members of each room
 * that changed, and ring each other interested worker once per room.  A
 * full inbox keeps its doorbell for a retry shortly after.
 */
void
fanout_flush(void)
{
	struct timeval	 tv = { 0, 2000 };
	struct pending	*p;
	struct lroom	*lr;
	int		 i, kept = 0;

	for (i = 0; i < npending; i++) {
		p = &pending[i];
		if (p->local && p->db.type == DOORBELL_KICK) {
			p->local = 0;
			fanout_doorbell(&p->db);
		}
		if (p->local && (lr = lroom_find(p->db.rid)) != NULL) {
			p->local = 0;
			fanout_notify(lr);
		}
		fanout_ring(&p->db, &p->slots);
		if (p->slots != 0)
			pending[kept++] = *p;
	}
	npending = kept;
	if (kept > 0) {
		if (retry_ev == NULL)
			retry_ev = evtimer_new(server_base(), fanout_retry,
			    NULL);
		evtimer_add(retry_ev, &tv);
	}
}

/*
 * room.c: the room engine.  Every dialect goes through this API for rooms,
 * members and op logs; it is the only code above shm/ that touches them.
 * It also carries each change to the members it concerns: to this
 * worker's connections through the dialect's room_notify, and to other
 * workers by ringing their doorbells (proc.c).
 *
 * A struct room is a room held locked: room_lock() or room_create() take
 * the lock, room_unlock() commits and releases it.  Fan-out waits until the
 * end of the loop iteration (room_flush, run by server.c), so many appends
 * to one room in one iteration ring each worker once.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>
#include <openssl/rand.h>

#include "roomd.h"

#define LROOM_BUCKETS	1024
#define PENDING_MAX	256

struct room {
	struct shm_room		*r;
	struct shm_room_ref	 ref;
	const struct dialect	*dialect;
	int			 appended;
};

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

static struct arena *
A(void)
{
	return &env->arena;
}

static struct room *
room_new(struct shm_room *r, const struct shm_room_ref *ref)
{
	struct room	*room;

	if ((room = calloc(1, sizeof(*room))) == NULL)
		fatal("%s", __func__);
	room->r = r;
	room->ref = *ref;
	room->dialect = dialect_find_id((unsigned)r->dialect);
	return room;
}

/*
 * Create a room with a unique id; it comes back locked, so its creator can
 * add the first member before anyone can find it.  Returns 0 or SHM_E*.
 */
int
room_create(const struct dialect *d, const char *id, struct room **out)
{
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	const uint64_t		*addr = server_client_addr();
	int			 rc, counted = 0;

	/* max_rooms_per_ip: SHM_ELIMIT, which each dialect answers in its
	 * own way; the address's count drops when the room is deleted. */
	if (addr != NULL && env->conf.max_rooms_per_ip > 0) {
		rc = shm_ip_room_add(A(), addr,
		    (uint64_t)env->conf.max_rooms_per_ip);
		if (rc < 0)
			return rc;
		counted = rc == 0;
	}
	rc = shm_room_create_locked(A(), d->id, id, util_now() +
	    (uint64_t)env->conf.room_ttl, &ref, &r);
	if (rc != 0) {
		if (counted)
			shm_ip_room_del(A(), addr);
		return rc;
	}
	if (counted) {
		shm_tx_set(A(), &r->lock, &r->creator[0], addr[0]);
		shm_tx_set(A(), &r->lock, &r->creator[1], addr[1]);
	}
	if (d->relay)
		shm_tx_set(A(), &r->lock, &r->flags, r->flags | ROOM_F_RELAY);
	*out = room_new(r, &ref);
	return 0;
}

/*
 * join_failures_per_minute: has the client whose request runs given this
 * room's password wrongly that often within the minute?  The count is per
 * address and room, in the arena, so it holds across workers.
 */
int
room_password_blocked(struct room *room)
{
	const uint64_t	*addr = server_client_addr();
	int		 max = env->conf.join_failures_per_minute;

	return addr != NULL && max > 0 && room_has_password(room) &&
	    shm_ip_fails(A(), addr, room->ref.rid, util_now()) >=
	    (uint64_t)max;
}

void
room_password_failed(struct room *room)
{
	const uint64_t	*addr = server_client_addr();

	if (addr != NULL && env->conf.join_failures_per_minute > 0)
		shm_ip_fail_add(A(), addr, room->ref.rid, util_now());
}

/*
 * Create a room with a random id of len characters from alphabet, written
 * to id (len + 1 bytes), retrying while the id is taken.
 */
int
room_create_unique(const struct dialect *d, const char *alphabet, size_t len,
    char *id, struct room **out)
{
	unsigned char	 raw[ROOM_ID_MAX];
	size_t		 i, n = strlen(alphabet);
	int		 tries, rc = SHM_EEXIST;

	if (len == 0 || len > ROOM_ID_MAX)
		return SHM_EINVAL;
	for (tries = 0; tries < 64 && rc == SHM_EEXIST; tries++) {
		if (RAND_bytes(raw, (int)len) != 1)
			return SHM_EINVAL;
		for (i = 0; i < len; i++)
			id[i] = alphabet[raw[i] % n];
		id[len] = '\0';
		rc = room_create(d, id, out);
	}
	return rc;
}

int
room_find(const struct dialect *d, const char *id, struct shm_room_ref *ref)
{
	return shm_room_find(A(), d->id, id, ref);
}

size_t
room_list(const struct dialect *d, struct shm_room_ref *refs, size_t max)
{
	return shm_room_list(A(), d->id, refs, max);
}

int
room_lock(const struct shm_room_ref *ref, struct room **out)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = shm_room_lock(A(), ref, &r)) != 0)
		return rc;
	*out = room_new(r, ref);
	return 0;
}

/* Queue a doorbell for the end of the iteration, merging appends. */
static void
room_pend(const struct doorbell *db, uint64_t slots, int local)
{
	struct pending	*p;
	int		 i;

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
		room_flush();
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

static uint64_t
room_slots(struct shm_room *r)
{
	uint64_t	 mask = 0;
	int		 s;

	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		if (r->slot_conns[s] > 0)
			mask |= 1ULL << s;
	return mask;
}

void
room_unlock(struct room *room)
{
	struct doorbell	 db;
	uint64_t	 slots = 0;

	if (room->appended) {
		memset(&db, 0, sizeof(db));
		db.type = DOORBELL_APPEND;
		db.rid = room->ref.rid;
		db.off = room->ref.off;
		db.seq = room->r->committed;
		slots = room_slots(room->r);
	}
	shm_room_unlock(A(), room->r);
	if (room->appended)
		room_pend(&db, slots, 1);
	free(room);
}

static struct lroom *
lroom_find(uint64_t rid)
{
	struct lroom	*lr;

	LIST_FOREACH(lr, &lrooms[rid % LROOM_BUCKETS], entry)
		if (lr->ref.rid == rid)
			return lr;
	return NULL;
}

/* Close this worker's connections to a room that no longer exists. */
static void
lroom_close(uint64_t rid, const char *reason)
{
	struct lroom	*lr;
	struct conn	*conn;

	if ((lr = lroom_find(rid)) == NULL)
		return;
	while ((conn = LIST_FIRST(&lr->conns)) != NULL) {
		LIST_REMOVE(conn, room_entry);
		conn->room = NULL;
		server_ws_close(conn, 1000, reason);
	}
	LIST_REMOVE(lr, entry);
	free(lr);
}

/*
 * Delete a locked room: its log and members go, and every member, on any
 * worker, gets a close frame with the reason.
 */
void
room_delete(struct room *room, const char *reason)
{
	struct doorbell	 db;
	uint64_t	 slots = room_slots(room->r);

	memset(&db, 0, sizeof(db));
	db.type = DOORBELL_CLOSE_ROOM;
	db.rid = room->ref.rid;
	db.off = room->ref.off;
	shm_room_delete_locked(A(), room->r);
	log_debug("room %llu deleted: %s", (unsigned long long)db.rid, reason);
	lroom_close(db.rid, reason);
	if (slots & ~(1ULL << env->slot))
		room_pend(&db, slots, 0);
	free(room);
}

const char *
room_id(struct room *room)
{
	return room->r->id;
}

uint64_t
room_committed(struct room *room)
{
	return room->r->committed;
}

uint64_t
room_log_bytes(struct room *room)
{
	return room->r->log_bytes;
}

int
room_has_password(struct room *room)
{
	return (room->r->flags & ROOM_F_PASSWORD) != 0;
}

/* Keep only a salted SHA-256 of a room password. */
int
room_set_password(struct room *room, const char *pw)
{
	struct shm_room	*r = room->r;

	if (RAND_bytes(r->salt, sizeof(r->salt)) != 1)
		return SHM_EINVAL;
	util_sha256(r->salt, sizeof(r->salt), pw, strlen(pw), r->secret);
	shm_tx_set(A(), &r->lock, &r->flags, r->flags | ROOM_F_PASSWORD);
	return 0;
}

/* 1 if pw opens the room (any pw opens a room without a password). */
int
room_check_password(struct room *room, const char *pw)
{
	struct shm_room	*r = room->r;
	uint8_t		 md[ROOM_SECRET_LEN];
	unsigned	 diff = 0;
	size_t		 i;

	if (!room_has_password(room))
		return 1;
	if (pw == NULL)
		return 0;
	util_sha256(r->salt, sizeof(r->salt), pw, strlen(pw), md);
	for (i = 0; i < sizeof(md); i++)
		diff |= md[i] ^ r->secret[i];
	return diff == 0;
}

static void
member_copy(struct room_member *out, const struct shm_member *m)
{
	out->mid = m->mid;
	out->role = m->role;
	out->authorities = m->authorities;
	out->locator = m->locator;
	out->joined = m->joined;
	out->cursor = m->cursor;
	memcpy(out->name, m->name, sizeof(out->name));
	memcpy(out->token, m->token, sizeof(out->token));
	memcpy(out->uid, m->uid, sizeof(out->uid));
}

/* Add a member with a fresh secret token and uuid.  SHM_E* on failure. */
int
room_member_add(struct room *room, const char *name, uint64_t role,
    struct room_member *out)
{
	return room_member_add_id(room, name, role, NULL, NULL, out);
}

/* The same with a given uuid and token (NULL: make them). */
int
room_member_add_id(struct room *room, const char *name, uint64_t role,
    const char *uid, const char *token, struct room_member *out)
{
	struct shm_member	 in, *m;
	int			 rc;

	if (strlen(name) > MEMBER_NAME_MAX || (uid != NULL && strlen(uid) !=
	    MEMBER_UID_LEN) || (token != NULL && strlen(token) !=
	    MEMBER_TOKEN_LEN))
		return SHM_EINVAL;
	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "%s", name);
	in.role = role;
	in.joined = util_now();
	if (token != NULL)
		memcpy(in.token, token, MEMBER_TOKEN_LEN);
	else if (util_token(in.token, sizeof(in.token)) == -1)
		return SHM_EINVAL;
	if (uid != NULL)
		memcpy(in.uid, uid, MEMBER_UID_LEN);
	else
		util_uuid(in.uid);
	rc = shm_member_add_locked(A(), room->r, &in,
	    env->conf.room_max_members, &m);
	if (rc == 0)
		member_copy(out, m);
	return rc;
}

int
room_member_by_name(struct room *room, const char *name,
    struct room_member *out)
{
	struct shm_member	*m = shm_member_by_name(A(), room->r, name);

	if (m == NULL)
		return SHM_ENOENT;
	member_copy(out, m);
	return 0;
}

int
room_member_by_token(struct room *room, const char *token,
    struct room_member *out)
{
	struct shm_member	*m = shm_member_by_token(A(), room->r, token);

	if (m == NULL)
		return SHM_ENOENT;
	member_copy(out, m);
	return 0;
}

static int
member_out(struct shm_member *m, struct room_member *out)
{
	if (m == NULL)
		return SHM_ENOENT;
	if (out != NULL)
		member_copy(out, m);
	return 0;
}

int
room_member_by_mid(struct room *room, uint64_t mid, struct room_member *out)
{
	return member_out(shm_member_by_mid(A(), room->r, mid), out);
}

int
room_member_by_uid(struct room *room, const char *uid,
    struct room_member *out)
{
	return member_out(shm_member_by_uid(A(), room->r, uid), out);
}

/* The member with this uuid, if token is its token (constant time). */
int
room_member_check(struct room *room, const char *uid, const char *token,
    struct room_member *out)
{
	struct shm_member	*m = shm_member_by_uid(A(), room->r, uid);
	unsigned		 diff = 0;
	size_t			 i;

	if (m == NULL || strlen(token) != MEMBER_TOKEN_LEN)
		return SHM_ENOENT;
	for (i = 0; i < MEMBER_TOKEN_LEN; i++)
		diff |= (unsigned)(m->token[i] ^ token[i]);
	return diff == 0 ? member_out(m, out) : SHM_ENOENT;
}

int
room_member_remove(struct room *room, uint64_t mid)
{
	struct shm_member	*m = shm_member_by_mid(A(), room->r, mid);

	if (m == NULL)
		return SHM_ENOENT;
	shm_member_remove_locked(A(), room->r, m);
	return 0;
}

/* Set a member's role and authorities (seen by every worker at once). */
int
room_member_set(struct room *room, uint64_t mid, uint64_t role,
    uint64_t authorities)
{
	struct shm_member	*m = shm_member_by_mid(A(), room->r, mid);

	if (m == NULL)
		return SHM_ENOENT;
	if (m->role != role)
		shm_member_set_locked(A(), room->r, m, &m->role, role);
	if (m->authorities != authorities)
		shm_member_set_locked(A(), room->r, m, &m->authorities,
		    authorities);
	return 0;
}

size_t
room_member_count(struct room *room)
{
	size_t		 n = 0;
	uint64_t	 i;

	for (i = 0; i < room->r->nmembers; i++)
		n += shm_member_at(A(), room->r, i)->mid != 0;
	return n;
}

/* Eight words of room state in the arena that belong to the dialect. */
uint64_t
room_dget(struct room *room, int i)
{
	return room->r->dstate[i & 7];
}

void
room_dset(struct room *room, int i, uint64_t v)
{
	if (room->r->dstate[i & 7] != v)
		shm_tx_set(A(), &room->r->lock, &room->r->dstate[i & 7], v);
}

/* Records from seq on stay in a relay room's log (a saved state). */
void
room_keep_from(struct room *room, uint64_t seq)
{
	shm_tx_set(A(), &room->r->lock, &room->r->keep_from, seq);
}

/* When a room without connections is reaped (unix time; 0: never). */
void
room_set_expires(struct room *room, uint64_t t)
{
	shm_room_set_expiry_locked(A(), room->r, t);
}

struct read_one {
	uint64_t	 seq;
	char		*buf;
	size_t		 len;
};

static int
read_one_rec(const struct shm_rec *rec, const void *data, void *arg)
{
	struct read_one	*o = arg;

	if (rec->seq == o->seq && (o->buf = malloc(rec->len + 1)) != NULL) {
		memcpy(o->buf, data, rec->len);
		o->buf[rec->len] = '\0';
		o->len = rec->len;
	}
	return 1;
}

/* A copy of record seq (the caller frees it), or SHM_ENOENT. */
int
room_read_one(struct room *room, uint64_t seq, char **buf, size_t *len)
{
	struct read_one	 o = { seq, NULL, 0 };

	if (seq == 0)
		return SHM_ENOENT;
	shm_log_read_locked(A(), room->r, seq - 1, read_one_rec, &o);
	if (o.buf == NULL)
		return SHM_ENOENT;
	*buf = o.buf;
	*len = o.len;
	return 0;
}

/* When a room of this dialect, left without connections now, expires. */
uint64_t
room_idle_expiry(unsigned dialect, void *arg)
{
	const struct dialect	*d = dialect_find_id(dialect);

	return util_now() + (uint64_t)(d != NULL && d->idle_ttl != NULL ?
	    d->idle_ttl() : env->conf.room_ttl);
}

/* Once a second: the dialects' timers, for rooms this worker serves. */
void
room_tick(void)
{
	struct lroom	*lr, *next;
	size_t		 b;

	for (b = 0; b < LROOM_BUCKETS; b++)
		for (lr = LIST_FIRST(&lrooms[b]); lr != NULL; lr = next) {
			next = LIST_NEXT(lr, entry);
			if (lr->dialect->tick != NULL)
				lr->dialect->tick(lr);
		}
}

void
room_set_closing(struct room *room)
{
	shm_tx_set(A(), &room->r->lock, &room->r->flags,
	    room->r->flags | ROOM_F_CLOSING);
}

int
room_closing(struct room *room)
{
	return (room->r->flags & ROOM_F_CLOSING) != 0;
}

/*
 * Publish a message to an audience of a relay room.  Each worker delivers
 * it to its own members in log order; the log is trimmed behind the
 * slowest worker that has members here.
 */
int
room_publish(struct room *room, enum room_audience aud, uint64_t mid,
    const char *text, size_t len)
{
	struct shm_room		*r = room->r;
	struct shm_rec_in	 rec = { text, (uint32_t)len, (uint16_t)aud, mid };
	uint64_t		 last, upto;
	int			 s, rc;

	rc = shm_log_append_locked(A(), r, &rec, 1,
	    env->conf.room_log_max_bytes, &last);
	if (rc != 0)
		return rc;
	room->appended = 1;
	STATS_DADD(A(), r->dialect, SD_APPENDS, 1);
	for (upto = last, s = 0; s < ROOMD_MAX_WORKERS; s++)
		if (r->slot_conns[s] > 0 && r->slot_seq[s] < upto)
			upto = r->slot_seq[s];
	if (r->keep_from != 0 && upto >= r->keep_from)
		upto = r->keep_from - 1;
	shm_log_trim_locked(A(), r, upto);
	return 0;
}

int
room_publish_json(struct room *room, enum room_audience aud, uint64_t mid,
    struct json_object *obj)
{
	const char	*text;
	size_t		 len;
	int		 rc;

	text = json_text(obj, &len);
	rc = room_publish(room, aud, mid, text, len);
	json_object_put(obj);
	return rc;
}

/* Records copied out of a relay room's log, delivered after unlocking. */
struct relay_batch {
	struct relay_rec {
		uint64_t	 seq;
		uint64_t	 target;
		int		 aud;
		struct evbuffer	*frame;
	}		*recs;
	size_t		 n, cap;
};

static int
relay_collect(const struct shm_rec *rec, const void *data, void *arg)
{
	struct relay_batch	*b = arg;
	struct relay_rec	*x;

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
	if (rec->len > 0) {
		x->frame = evbuffer_new();
		evbuffer_add(x->frame, data, rec->len);
		server_ws_frame_seal(x->frame, 0);
	}
	return 0;
}

static int
relay_matches(const struct relay_rec *x, struct conn *conn)
{
	switch (x->aud) {
	case AUD_TAG:
		return conn->mount->dialect->relay_match != NULL &&
		    conn->mount->dialect->relay_match(conn, x->target, x->seq);
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

/*
 * A relay room's log grew: read the new records once for this worker,
 * then hand each to the local members it is for.  A member whose output
 * is full is closed: a relay has no history to catch up from.
 */
void
room_relay_notify(struct lroom *lr)
{
	struct relay_batch	 b = { NULL, 0, 0 };
	struct room		*room;
	struct conn		*conn, *next;
	size_t			 i;
	uint64_t		 upto;

	if (room_lock(&lr->ref, &room) != 0)
		return;
	shm_log_read_locked(A(), room->r, lr->seen, relay_collect, &b);
	upto = room->r->committed;
	if (room->r->slot_seq[env->slot] < upto)
		shm_tx_set(A(), &room->r->lock, &room->r->slot_seq[env->slot],
		    upto);
	lr->seen = upto;
	room_unlock(room);
	for (i = 0; i < b.n; i++) {
		struct relay_rec *x = &b.recs[i];

		for (conn = LIST_FIRST(&lr->conns); conn != NULL; conn = next) {
			next = LIST_NEXT(conn, room_entry);
			if (conn->cursor >= x->seq || !relay_matches(x, conn))
				continue;
			if (x->frame != NULL) {
				if (server_output_full(conn)) {
					server_ws_close(conn, 1008, "output "
					    "buffer full: reading too slowly");
					continue;
				}
				server_ws_frame_send(conn, x->frame);
			}
			if (x->aud == AUD_CLOSE_MEMBER ||
			    x->aud == AUD_CLOSE_ALL_BUT)
				server_ws_close(conn, 1000, "closed");
		}
		if (x->frame != NULL)
			evbuffer_free(x->frame);
	}
	LIST_FOREACH(conn, &lr->conns, room_entry)
		if (conn->cursor < upto)
			conn->cursor = upto;
	free(b.recs);
}

/* Call fn for each member, in the order they joined. */
void
room_members(struct room *room, void (*fn)(const struct room_member *,
    void *), void *arg)
{
	struct room_member	 copy;
	uint64_t		 i;

	for (i = 0; i < room->r->nmembers; i++) {
		struct shm_member *m = shm_member_at(A(), room->r, i);

		if (m->mid == 0)
			continue;
		member_copy(&copy, m);
		fn(&copy, arg);
	}
}

int
room_append(struct room *room, const struct shm_rec_in *recs, size_t n,
    uint64_t *last)
{
	int	 rc;

	rc = shm_log_append_locked(A(), room->r, recs, n,
	    env->conf.room_log_max_bytes, last);
	if (rc == 0) {
		room->appended = 1;
		STATS_DADD(A(), room->r->dialect, SD_APPENDS, n);
	}
	return rc;
}

void
room_read(struct room *room, uint64_t after, shm_log_fn fn, void *arg)
{
	shm_log_read_locked(A(), room->r, after, fn, arg);
}

/*
 * A connection of this worker joins a room as member mid: the room counts
 * it on this slot (so appends ring this worker), the member's locator
 * points at it, and it enters the worker's view of the room.
 */
int
room_attach(struct room *room, struct conn *conn, uint64_t mid)
{
	struct shm_member	*m;
	struct lroom		*lr;

	if ((lr = lroom_find(room->ref.rid)) == NULL) {
		if ((lr = calloc(1, sizeof(*lr))) == NULL)
			return SHM_ENOSPC;
		lr->ref = room->ref;
		lr->dialect = room->dialect;
		lr->seen = room->r->committed;
		LIST_INIT(&lr->conns);
		LIST_INSERT_HEAD(&lrooms[lr->ref.rid % LROOM_BUCKETS], lr,
		    entry);
		if (room->r->slot_seq[env->slot] < lr->seen)
			shm_tx_set(A(), &room->r->lock,
			    &room->r->slot_seq[env->slot], lr->seen);
	}
	conn->cursor = room->r->committed;
	shm_room_conn_locked(A(), room->r, (unsigned)env->slot, 1, 0);
	if ((m = shm_member_by_mid(A(), room->r, mid)) != NULL)
		shm_member_set_locked(A(), room->r, m, &m->locator,
		    MEMBER_LOCATOR(env->slot, conn->id));
	LIST_INSERT_HEAD(&lr->conns, conn, room_entry);
	conn->room = lr;
	conn->mid = mid;
	return 0;
}

/*
 * A connection leaves its room.  Returns the connections the room has
 * left, or -1 if the room is gone.  With delete_if_empty, a room left
 * without connections is deleted.
 */
int
room_detach(struct conn *conn, int delete_if_empty)
{
	struct lroom		*lr = conn->room;
	struct shm_room_ref	 ref;
	struct shm_member	*m;
	struct room		*room;
	int			 left;

	if (lr == NULL)
		return -1;
	ref = lr->ref;
	LIST_REMOVE(conn, room_entry);
	conn->room = NULL;
	if (LIST_EMPTY(&lr->conns)) {
		LIST_REMOVE(lr, entry);
		free(lr);
	}
	if (room_lock(&ref, &room) != 0)
		return -1;
	left = shm_room_conn_locked(A(), room->r, (unsigned)env->slot, -1,
	    room_idle_expiry((unsigned)room->r->dialect, NULL));
	m = shm_member_by_mid(A(), room->r, conn->mid);
	if (m != NULL && m->locator == MEMBER_LOCATOR(env->slot, conn->id))
		shm_member_set_locked(A(), room->r, m, &m->locator, 0);
	if (left == 0 && delete_if_empty)
		room_delete(room, "last connection closed");
	else
		room_unlock(room);
	return left;
}

/* A doorbell from another worker. */
void
room_doorbell(const struct doorbell *db)
{
	struct lroom	*lr;
	struct conn	*conn;

	switch (db->type) {
	case DOORBELL_APPEND:
		if (lroom_find(db->rid) != NULL)
			room_pend(db, 0, 1);
		break;
	case DOORBELL_CLOSE_ROOM:
		lroom_close(db->rid, "room deleted");
		break;
	case DOORBELL_KICK:
		if ((lr = lroom_find(db->rid)) != NULL)
			LIST_FOREACH(conn, &lr->conns, room_entry)
				if (conn->mid == db->seq)
					server_ws_close(conn, 1008, "kicked by "
					    "the administrator");
		break;
	default:
		log_warnx("%s: doorbell of unknown type %u", __func__,
		    db->type);
	}
}

static void
room_retry(evutil_socket_t fd, short events, void *arg)
{
	room_flush();
}

/*
 * End of the loop iteration: notify this worker's members of each room
 * that changed, and ring each other interested worker once per room.  A
 * full inbox keeps its doorbell for a retry shortly after.
 */
void
room_flush(void)
{
	struct timeval	 tv = { 0, 2000 };
	struct pending	*p;
	struct lroom	*lr;
	int		 i, s, kept = 0;

	for (i = 0; i < npending; i++) {
		p = &pending[i];
		if (p->local && (lr = lroom_find(p->db.rid)) != NULL) {
			p->local = 0;
			if (lr->dialect->room_notify != NULL)
				lr->dialect->room_notify(lr);
		}
		for (s = 0; s < ROOMD_MAX_WORKERS; s++)
			if ((p->slots & (1ULL << s)) &&
			    proc_ring(s, &p->db) == 0) {
				p->slots &= ~(1ULL << s);
				STATS_ADD(A(), ST_DOORBELLS, 1);
			}
		if (p->slots != 0)
			pending[kept++] = *p;
	}
	npending = kept;
	if (kept > 0) {
		if (retry_ev == NULL)
			retry_ev = evtimer_new(server_base(), room_retry, NULL);
		evtimer_add(retry_ev, &tv);
	}
}

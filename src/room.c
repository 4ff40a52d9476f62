/*
 * room.c: the room engine.  Every dialect goes through this API for rooms,
 * members, their presence and op logs; with fanout.c and the master it is
 * the only code that sees the shared-memory arena (shm/), and nothing above
 * it can tell where a room is kept.  It runs in workers and in the master
 * alike (roomctl close and kick, the sweep of a dead worker's members) and
 * calls no socket code: what changed reaches connections through fanout.c.
 *
 * A struct room is a room held locked: room_lock() or room_create() take
 * the lock, room_unlock() commits and releases it.  Fan-out waits until the
 * end of the loop iteration (fanout_flush), so many appends to one room in
 * one iteration ring each worker once.
 *
 * Presence: a member's record holds a bit for each worker slot where it
 * has a connection.  Each worker sets and clears its own bit; the master
 * clears a dead worker's bits, and a member left with none is passed to
 * its dialect's member_lost once, under the same lock.
 *
 * Cluster mode (a cluster line in roomd.conf): the arena holds this host's
 * copies of rooms that Redis keeps, and every call that changes a room
 * also notes the change for room_cluster.c, which takes the room's lock in
 * Redis with room_lock and commits there at room_append and room_unlock;
 * a change Redis refuses is rolled back here (ROOM_EUNAVAIL).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "roomd.h"
#include "room_engine.h"

/* The engine's names and the arena's must agree. */
_Static_assert(ROOM_ID_MAX == SHM_ID_MAX, "room id size");
_Static_assert(MEMBER_NAME_MAX == SHM_NAME_MAX, "member name size");
_Static_assert(MEMBER_TOKEN_LEN == SHM_TOKEN_LEN, "member token size");
_Static_assert(MEMBER_UID_LEN == SHM_UID_LEN, "member uid size");
_Static_assert(ROOMD_MAX_WORKERS == ARENA_MAX_SLOTS, "worker slots");
_Static_assert(ROOMD_ARENA_MIN == ARENA_MIN_SIZE, "arena size");
_Static_assert((int)ROOM_ENOSPC == (int)SHM_ENOSPC &&
    (int)ROOM_EEXIST == (int)SHM_EEXIST && (int)ROOM_ENOENT ==
    (int)SHM_ENOENT && (int)ROOM_ELIMIT == (int)SHM_ELIMIT &&
    (int)ROOM_EINVAL == (int)SHM_EINVAL && (int)ROOM_ESTATE ==
    (int)SHM_ESTATE, "error codes");
_Static_assert(sizeof(struct room_ref) == sizeof(struct shm_room_ref) &&
    offsetof(struct room_ref, rid) == offsetof(struct shm_room_ref, rid),
    "room references");
_Static_assert(sizeof(struct room_rec_in) == sizeof(struct shm_rec_in) &&
    offsetof(struct room_rec_in, len) == offsetof(struct shm_rec_in, len) &&
    offsetof(struct room_rec_in, type) == offsetof(struct shm_rec_in,
    type) && offsetof(struct room_rec_in, target) ==
    offsetof(struct shm_rec_in, target), "records to append");

#define A()	room_arena()

static const struct shm_room_ref *
SREF(const struct room_ref *ref)
{
	return (const struct shm_room_ref *)ref;
}

struct room *
room_new(struct shm_room *r, const struct room_ref *ref)
{
	struct room	*room;

	if ((room = calloc(1, sizeof(*room))) == NULL)
		fatal("%s", __func__);
	room->r = r;
	room->ref = *ref;
	room->dialect = dialect_find_id((unsigned)r->dialect);
	return room;
}

const char *
room_strerror(int rc)
{
	if (rc == ROOM_EUNAVAIL)
		return "the cluster is unavailable";
	return shm_strerror(rc);
}

uint64_t
room_epoch(struct room *room)
{
	if (room != NULL && room->r->cepoch != 0)
		return room->r->cepoch;		/* Redis's, in cluster mode */
	return arena_epoch(A());
}

uint64_t
room_key(struct room *room)
{
	return room->r->cepoch != 0 ? room->r->cepoch : room->ref.rid;
}

int
room_create(const struct dialect *d, const char *id, const uint64_t *addr,
    struct room **out)
{
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	int			 rc, counted = 0;

	/* max_rooms_per_ip (in cluster mode, per host): the address's count
	 * drops when the room is deleted (shm_room_delete_locked). */
	if (addr != NULL && env->conf.max_rooms_per_ip > 0) {
		rc = shm_ip_room_add(A(), addr,
		    (uint64_t)env->conf.max_rooms_per_ip);
		if (rc < 0)
			return rc;
		counted = rc == 0;
	}
	if (cluster_enabled())
		rc = rcl_create(d, id, out);
	else if ((rc = shm_room_create_locked(A(), d->id, id, util_now() +
	    (uint64_t)env->conf.room_ttl, &ref, &r)) == 0) {
		if (room_relays(d, id))
			shm_tx_set(A(), &r->lock, &r->flags, r->flags |
			    ROOM_F_RELAY);
		*out = room_new(r, (const struct room_ref *)&ref);
	}
	if (rc != 0) {
		if (counted)
			shm_ip_room_del(A(), addr);
		return rc;
	}
	r = (*out)->r;
	if (counted) {
		shm_tx_set(A(), &r->lock, &r->creator[0], addr[0]);
		shm_tx_set(A(), &r->lock, &r->creator[1], addr[1]);
	}
	webhook_room(d, WEBHOOK_ROOM_CREATED, id, NULL);
	return 0;
}

int
room_create_unique(const struct dialect *d, const char *alphabet, size_t len,
    const uint64_t *addr, char *id, struct room **out)
{
	unsigned char	 raw[ROOM_ID_MAX];
	size_t		 i, n = strlen(alphabet);
	int		 tries, rc = ROOM_EEXIST;

	if (len == 0 || len > ROOM_ID_MAX || n == 0)
		return ROOM_EINVAL;
	for (tries = 0; tries < 64 && rc == ROOM_EEXIST; tries++) {
		if (RAND_bytes(raw, (int)len) != 1)
			return ROOM_EINVAL;
		for (i = 0; i < len; i++)
			id[i] = alphabet[raw[i] % n];
		id[len] = '\0';
		rc = room_create(d, id, addr, out);
	}
	return rc;
}

int
room_password_blocked(struct room *room, const uint64_t *addr)
{
	int	 max = env->conf.join_failures_per_minute;

	return addr != NULL && max > 0 && room_has_password(room) &&
	    shm_ip_fails(A(), addr, room->ref.rid, util_now()) >=
	    (uint64_t)max;
}

void
room_password_failed(struct room *room, const uint64_t *addr)
{
	if (addr != NULL && env->conf.join_failures_per_minute > 0)
		shm_ip_fail_add(A(), addr, room->ref.rid, util_now());
}

int
room_find(const struct dialect *d, const char *id, struct room_ref *ref)
{
	int	 rc;

	rc = shm_room_find(A(), d->id, id, (struct shm_room_ref *)ref);
	if (rc != ROOM_ENOENT || !cluster_enabled())
		return rc;
	/* Not mirrored here yet. */
	if ((rc = rcl_open(d, id)) != 0)
		return rc;
	return shm_room_find(A(), d->id, id, (struct shm_room_ref *)ref);
}

size_t
room_list(const struct dialect *d, struct room_ref *refs, size_t max)
{
	if (cluster_enabled())
		return rcl_list(d, refs, max);
	return shm_room_list(A(), d != NULL ? d->id : ROOM_ALL_DIALECTS,
	    (struct shm_room_ref *)refs, max);
}

int
room_lock(const struct room_ref *ref, struct room **out)
{
	const struct dialect	*d;
	struct room_ref		 fresh;
	struct shm_room		*r;
	char			 id[ROOM_ID_MAX + 1];
	int			 rc;

	if ((rc = shm_room_lock(A(), SREF(ref), &r)) != 0)
		return rc;
	*out = room_new(r, ref);
	if (!cluster_enabled())
		return 0;
	d = (*out)->dialect;
	snprintf(id, sizeof(id), "%s", r->id);
	if ((rc = rcl_lock(*out)) == 0)
		return 0;
	if (rc == ROOM_EUNAVAIL)
		room_unlock(*out);
	*out = NULL;
	/* Its mirror could not follow and was dropped: once more, from a
	 * fresh one (the room's connections here were closed with it). */
	if (rc == RCL_RELOADED && d != NULL && room_find(d, id, &fresh) == 0 &&
	    shm_room_lock(A(), SREF(&fresh), &r) == 0) {
		*out = room_new(r, &fresh);
		if ((rc = rcl_lock(*out)) == 0)
			return 0;
		if (rc == ROOM_EUNAVAIL)
			room_unlock(*out);
		*out = NULL;
	}
	return rc == RCL_RELOADED ? ROOM_EUNAVAIL : rc;
}

int
room_find_lock(const struct dialect *d, const char *id, struct room_ref *ref,
    struct room **out)
{
	int	 rc, tries;

	for (tries = 0; tries < 2; tries++) {
		if ((rc = room_find(d, id, ref)) != 0)
			return rc;
		/* Cluster mode: the copy found may have been dropped since,
		 * to be made again (another epoch): find it once more. */
		if ((rc = room_lock(ref, out)) != ROOM_ENOENT ||
		    !cluster_enabled())
			break;
	}
	return rc;
}

int
room_lock_view(const struct room_ref *ref, struct room **out)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = shm_room_lock(A(), SREF(ref), &r)) != 0)
		return rc;
	*out = room_new(r, ref);
	return 0;
}

/* The worker slots with connections to the room. */
uint64_t
room_slots(struct shm_room *r)
{
	uint64_t	 mask = 0;
	int		 s;

	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		if (r->slot_conns[s] > 0)
			mask |= 1ULL << s;
	return mask;
}

static void
room_doorbell_init(struct doorbell *db, struct room *room, int type,
    uint64_t seq)
{
	memset(db, 0, sizeof(*db));
	db->type = (uint32_t)type;
	db->rid = room->ref.rid;
	db->off = room->ref.off;
	db->seq = seq;
}

void
room_unlock(struct room *room)
{
	struct doorbell	 db;
	uint64_t	 slots = 0;
	size_t		 i;

	/* Cluster mode: Redis first; what it refused is undone here. */
	if (room->tx != NULL && rcl_unlock(room) != 0)
		shm_tx_abort(A(), &room->r->lock);

	if (room->appended) {
		room_doorbell_init(&db, room, DOORBELL_APPEND,
		    room->r->committed);
		slots = room_slots(room->r);
	}
	if (!room->swept)
		shm_room_unlock(A(), room->r);
	if (room->appended)
		fanout_pend(&db, slots, 1);
	for (i = 0; i < room->nkicks; i++)
		fanout_pend(&room->kicks[i].db, room->kicks[i].slots, 1);
	free(room->kicks);
	free(room);
}

void
room_delete(struct room *room, const char *reason)
{
	if (room->tx != NULL && rcl_close(room, reason) != 0)
		log_warnx("room %s: deleted here only: %s", room->r->id,
		    room_strerror(ROOM_EUNAVAIL));
	webhook_room(room->dialect, WEBHOOK_ROOM_DELETED, room->r->id, reason);
	room_delete_local(room, reason, 0);
}

void
room_delete_local(struct room *room, const char *reason, int reload)
{
	struct doorbell	 db;
	uint64_t	 slots = room_slots(room->r);

	room_doorbell_init(&db, room, DOORBELL_CLOSE_ROOM, reload != 0);
	shm_room_delete_locked(A(), room->r);
	log_debug("room %llu deleted: %s", (unsigned long long)db.rid, reason);
	fanout_room_gone(db.rid, reload ? 1012 : 1000, reason);
	fanout_pend(&db, slots, 0);
	free(room->kicks);	/* its connections are closed anyway */
	rcl_unlock(room);	/* frees the transaction */
	free(room);
}

/* Pended at room_unlock: pending may flush the fan-out's table, which
 * locks the rooms it delivers to, this one among them. */
void
room_kick(struct room *room, uint64_t mid)
{
	room_kick_local(room, mid);
	rcl_kick(room, mid);
}

void
room_kick_local(struct room *room, uint64_t mid)
{
	struct room_kick	*k;

	k = reallocarray(room->kicks, room->nkicks + 1, sizeof(*k));
	if (k == NULL)
		fatal("%s", __func__);
	room->kicks = k;
	k = &room->kicks[room->nkicks++];
	room_doorbell_init(&k->db, room, DOORBELL_KICK, mid);
	k->slots = room_slots(room->r);
}

struct room_ref
room_ref(struct room *room)
{
	return room->ref;
}

const char *
room_id(struct room *room)
{
	return room->r->id;
}

const struct dialect *
room_dialect(struct room *room)
{
	return room->dialect;
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

uint64_t
room_conns(struct room *room)
{
	return room->r->conns;
}

int
room_has_password(struct room *room)
{
	return (room->r->flags & ROOM_F_PASSWORD) != 0;
}

/* Store len bytes at p, inside the locked room r, through the lock's
 * journal: shm_tx_set stores whole words, and p need not be aligned. */
void
room_tx_bytes(struct shm_room *r, void *p, const void *src, size_t len)
{
	uintptr_t	 from = (uintptr_t)p, to = from + len, at;
	uint8_t		 word[8];
	uint64_t	 w, old;
	int		 k;

	for (at = from & ~(uintptr_t)7; at < to; at += 8) {
		memcpy(word, (void *)at, sizeof(word));
		memcpy(&old, word, sizeof(old));
		for (k = 0; k < 8; k++)
			if (at + k >= from && at + k < to)
				word[k] = ((const uint8_t *)src)[at + k - from];
		memcpy(&w, word, sizeof(w));
		if (w != old)
			shm_tx_set(A(), &r->lock, (uint64_t *)at, w);
	}
}

int
room_set_password(struct room *room, const char *pw)
{
	struct shm_room	*r = room->r;
	uint8_t		 salt[sizeof(r->salt)], secret[sizeof(r->secret)];

	if (!rcl_writable(room))
		return ROOM_EUNAVAIL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return ROOM_EINVAL;
	util_sha256(salt, sizeof(salt), pw, strlen(pw), secret);
	room_tx_bytes(r, r->salt, salt, sizeof(salt));
	room_tx_bytes(r, r->secret, secret, sizeof(secret));
	shm_tx_set(A(), &r->lock, &r->flags, r->flags | ROOM_F_PASSWORD);
	rcl_dirty_room(room);
	return 0;
}

int
room_check_password(struct room *room, const char *pw)
{
	struct shm_room	*r = room->r;
	uint8_t		 md[SHM_SECRET_LEN];
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
	const char	*name = shm_member_name(A(), m);
	size_t		 len = strnlen(name, MEMBER_NAME_MAX);

	out->mid = m->mid;
	out->role = m->role;
	out->authorities = m->authorities;
	out->joined = m->joined;
	out->connected = m->slots != 0;
	memcpy(out->name, name, len);
	out->name[len] = '\0';
	memcpy(out->token, m->token, sizeof(out->token));
	memcpy(out->uid, m->uid, sizeof(out->uid));
}

static int
member_out(struct shm_member *m, struct room_member *out)
{
	if (m == NULL)
		return ROOM_ENOENT;
	if (out != NULL)
		member_copy(out, m);
	return 0;
}

int
room_member_add(struct room *room, const char *name, uint64_t role,
    struct room_member *out)
{
	return room_member_add_id(room, name, role, NULL, NULL, out);
}

int
room_member_add_id(struct room *room, const char *name, uint64_t role,
    const char *uid, const char *token, struct room_member *out)
{
	struct shm_member	 in, *m;
	int			 rc;

	if (!rcl_writable(room))
		return ROOM_EUNAVAIL;
	if (strlen(name) > MEMBER_NAME_MAX || (uid != NULL && strlen(uid) !=
	    MEMBER_UID_LEN) || (token != NULL && strlen(token) !=
	    MEMBER_TOKEN_LEN))
		return ROOM_EINVAL;
	memset(&in, 0, sizeof(in));
	in.role = role;
	in.joined = (uint32_t)util_now();
	if (token != NULL)
		memcpy(in.token, token, MEMBER_TOKEN_LEN);
	else if (util_token(in.token, sizeof(in.token)) == -1)
		return ROOM_EINVAL;
	if (uid != NULL)
		memcpy(in.uid, uid, MEMBER_UID_LEN);
	else
		util_uuid(in.uid);
	rc = shm_member_add_locked(A(), room->r, &in, name,
	    env->conf.room_max_members, &m);
	if (rc == 0) {
		member_copy(out, m);
		rcl_dirty_member(room, m->mid);
		/* Cluster mode: a join is answered, so Redis has it first. */
		if (room->tx != NULL && rcl_commit(room) != 0)
			return ROOM_EUNAVAIL;
	}
	return rc;
}

int
room_member_by_name(struct room *room, const char *name,
    struct room_member *out)
{
	return member_out(shm_member_by_name(A(), room->r, name), out);
}

int
room_member_by_token(struct room *room, const char *token,
    struct room_member *out)
{
	return member_out(shm_member_by_token(A(), room->r, token), out);
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

int
room_member_check(struct room *room, const char *uid, const char *token,
    struct room_member *out)
{
	struct shm_member	*m = shm_member_by_uid(A(), room->r, uid);
	unsigned		 diff = 0;
	size_t			 i;

	if (m == NULL || strlen(token) != MEMBER_TOKEN_LEN)
		return ROOM_ENOENT;
	for (i = 0; i < MEMBER_TOKEN_LEN; i++)
		diff |= (unsigned)(m->token[i] ^ token[i]);
	return diff == 0 ? member_out(m, out) : ROOM_ENOENT;
}

int
room_member_remove(struct room *room, uint64_t mid)
{
	if (!rcl_writable(room))
		return ROOM_EUNAVAIL;
	rcl_dirty_member(room, mid);
	return room_member_remove_local(room, mid);
}

int
room_member_remove_local(struct room *room, uint64_t mid)
{
	struct shm_member	*m = shm_member_by_mid(A(), room->r, mid);

	if (m == NULL)
		return ROOM_ENOENT;
	shm_member_remove_locked(A(), room->r, m);
	return 0;
}

int
room_member_set(struct room *room, uint64_t mid, uint64_t role,
    uint64_t authorities)
{
	struct shm_member	*m = shm_member_by_mid(A(), room->r, mid);

	if (!rcl_writable(room))
		return ROOM_EUNAVAIL;
	if (m == NULL)
		return ROOM_ENOENT;
	if (m->role != role)
		shm_member_set_locked(A(), room->r, m, &m->role, role);
	if (m->authorities != authorities)
		shm_member_set_locked(A(), room->r, m, &m->authorities,
		    authorities);
	rcl_dirty_member(room, mid);
	return 0;
}

int
room_member_here(struct room *room, uint64_t mid, int here)
{
	struct shm_member	*m = shm_member_by_mid(A(), room->r, mid);
	uint64_t		 bit, slots;

	if (m == NULL)
		return ROOM_ENOENT;
	if (env->slot < 0)
		return m->slots != 0;
	bit = SHM_SLOT_BIT(env->slot);
	slots = here ? m->slots | bit : m->slots & ~bit;
	if (((slots & ~ROOM_SLOT_ELSEWHERE) != 0) !=
	    ((m->slots & ~ROOM_SLOT_ELSEWHERE) != 0))
		rcl_presence(room, mid, here);	/* this host's presence */
	if (slots != m->slots)
		shm_member_set_locked(A(), room->r, m, &m->slots, slots);
	return slots != 0;
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

struct member_place {
	uint64_t	 mid;
	uint64_t	 i;
};

static int
member_place_cmp(const void *a, const void *b)
{
	const struct member_place	*x = a, *y = b;

	return x->mid < y->mid ? -1 : x->mid > y->mid;
}

/* In the order of their ids, which is the order they joined: a newcomer
 * may have taken the place of a member who left. */
void
room_members(struct room *room, void (*fn)(const struct room_member *,
    void *), void *arg)
{
	struct room_member	 copy;
	struct member_place	*places;
	uint64_t		 i, n = 0;

	if ((places = calloc(room->r->nmembers + 1, sizeof(*places))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < room->r->nmembers; i++) {
		struct shm_member *m = shm_member_at(A(), room->r, i);

		if (m->mid != 0) {
			places[n].mid = m->mid;
			places[n++].i = i;
		}
	}
	qsort(places, n, sizeof(*places), member_place_cmp);
	for (i = 0; i < n; i++) {
		struct shm_member *m = shm_member_at(A(), room->r,
		    places[i].i);

		/* fn may have removed it */
		if (places[i].i >= room->r->nmembers ||
		    m->mid != places[i].mid)
			continue;
		member_copy(&copy, m);
		fn(&copy, arg);
	}
	free(places);
}

uint64_t
room_dget(struct room *room, int i)
{
	return room->r->dstate[i & 7];
}

void
room_dset(struct room *room, int i, uint64_t v)
{
	if (room->r->dstate[i & 7] != v) {
		shm_tx_set(A(), &room->r->lock, &room->r->dstate[i & 7], v);
		rcl_dirty_room(room);
	}
}

int
room_relays(const struct dialect *d, const char *id)
{
	return d->relay && (d->room_relays == NULL || d->room_relays(id));
}

void
room_keep_from(struct room *room, uint64_t seq)
{
	shm_tx_set(A(), &room->r->lock, &room->r->keep_from, seq);
	rcl_keep_from(room, seq);
}

void
room_set_expires(struct room *room, uint64_t t)
{
	shm_room_set_expiry_locked(A(), room->r, t);
}

uint64_t
room_idle_expiry(const struct dialect *d)
{
	return util_now() + (uint64_t)(d != NULL && d->idle_ttl != NULL ?
	    d->idle_ttl() : env->conf.room_ttl);
}

void
room_set_closing(struct room *room)
{
	shm_tx_set(A(), &room->r->lock, &room->r->flags,
	    room->r->flags | ROOM_F_CLOSING);
	rcl_dirty_room(room);
}

int
room_closing(struct room *room)
{
	return (room->r->flags & ROOM_F_CLOSING) != 0;
}

/* Trim a relay room's log behind the slowest worker that has members
 * there, and never from keep_from on. */
void
room_trim(struct shm_room *r, uint64_t upto)
{
	int	 s;

	for (s = 0; s < ROOMD_MAX_WORKERS; s++)
		if (r->slot_conns[s] > 0 && r->slot_seq[s] < upto)
			upto = r->slot_seq[s];
	if (r->keep_from != 0 && upto >= r->keep_from)
		upto = r->keep_from - 1;
	shm_log_trim_locked(A(), r, upto);
}

int
room_append(struct room *room, const struct room_rec_in *recs, size_t n,
    uint64_t *last)
{
	int	 rc;

	if (room->r->cepoch != 0 && room->tx == NULL)
		return ROOM_EINVAL;	/* a view (room_lock_view) */
	if (!rcl_writable(room))
		return ROOM_EUNAVAIL;
	rc = shm_log_append_locked(A(), room->r,
	    (const struct shm_rec_in *)recs, n, env->conf.room_log_max_bytes,
	    last);
	if (rc == 0 && room->tx != NULL && rcl_commit(room) != 0)
		return ROOM_EUNAVAIL;	/* Redis has not got it */
	if (rc == 0 && room->tx == NULL) {
		/* Kept now, as in cluster mode: what the dialect does next
		 * (a relay of it to another room) may rely on it. */
		shm_tx_commit(A(), &room->r->lock);
		shm_tx_begin(A(), &room->r->lock);
	}
	if (rc == 0) {
		room->appended = 1;
		stats_dadd((unsigned)room->r->dialect, STAT_D_APPENDS,
		    (int64_t)n);
	}
	return rc;
}

int
room_publish(struct room *room, enum room_audience aud, uint64_t mid,
    const char *text, size_t len)
{
	struct room_rec_in	 rec = { text, (uint32_t)len, (uint16_t)aud,
				    mid };
	uint64_t		 last;
	int			 rc;

	if ((rc = room_append(room, &rec, 1, &last)) == 0)
		room_trim(room->r, last);
	return rc;
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

void
room_seen(struct room *room, uint64_t seq)
{
	struct shm_room	*r = room->r;

	if (env->slot >= 0 && r->slot_seq[env->slot] < seq)
		shm_tx_set(A(), &r->lock, &r->slot_seq[env->slot], seq);
}

struct read_ctx {
	room_read_fn	 fn;
	void		*arg;
};

static int
read_rec(const struct shm_rec *rec, const void *data, void *arg)
{
	struct read_ctx	*c = arg;
	struct room_rec	 out = { rec->seq, rec->target, data, rec->len,
			    rec->type };

	return c->fn(&out, c->arg);
}

void
room_crash_point(const char *site)
{
	(void)site;
	SHM_CRASH(site);
}

void
room_read(struct room *room, uint64_t after, room_read_fn fn, void *arg)
{
	struct read_ctx	 c = { fn, arg };

	shm_log_read_locked(A(), room->r, after, read_rec, &c);
}

struct read_one {
	uint64_t	 seq;
	char		*buf;
	size_t		 len;
};

static int
read_one_rec(const struct room_rec *rec, void *arg)
{
	struct read_one	*o = arg;

	if (rec->seq == o->seq && (o->buf = malloc(rec->len + 1)) != NULL) {
		memcpy(o->buf, rec->data, rec->len);
		o->buf[rec->len] = '\0';
		o->len = rec->len;
	}
	return 1;
}

int
room_read_one(struct room *room, uint64_t seq, char **buf, size_t *len)
{
	struct read_one	 o = { seq, NULL, 0 };

	if (seq == 0)
		return ROOM_ENOENT;
	room_read(room, seq - 1, read_one_rec, &o);
	if (o.buf == NULL)
		return ROOM_ENOENT;
	*buf = o.buf;
	*len = o.len;
	return 0;
}

int
room_conn_count(struct room *room, int delta)
{
	int		 n;
	uint64_t	 i;

	if (env->slot < 0)		/* the master has no connections */
		n = (int)room->r->conns;
	else
		n = shm_room_conn_locked(A(), room->r, (unsigned)env->slot,
		    delta, room_idle_expiry(room->dialect));
	/* Cluster mode: a member connected to another host counts. */
	for (i = 0; room->r->cepoch != 0 && i < room->r->nmembers; i++) {
		const struct shm_member *m = shm_member_at(A(), room->r, i);

		n += m->mid != 0 && (m->slots & ROOM_SLOT_ELSEWHERE) != 0;
	}
	return n;
}

static uint64_t
slot_dead_expiry(unsigned dialect, void *arg)
{
	return room_idle_expiry(dialect_find_id(dialect));
}

/* Cluster mode: the members whose last connection here went with the
 * worker, for rcl_presence_end once the sweep is done: a job of a helper
 * process, kept by the master until the helper has done it. */
struct lost_here {
	const struct dialect	*dialect;	/* NULL: told */
	char			 id[ROOM_ID_MAX + 1];
	uint64_t		 mid;
	char			 session[96];	/* it was present in */
};
struct lost_job {
	struct lost_here	*lost;
	size_t			 n;
};
static struct lost_job	*job;

#define LOST_BATCH	1000	/* members of a room in one call */

/* Under the sweep's lock: a member gone with its worker, to its dialect. */
static void
slot_dead_lost(struct shm_room *r, const struct shm_room_ref *ref,
    struct shm_member *m, void *arg)
{
	struct room		*room;
	struct room_member	 copy;
	struct lost_here	*l;

	if (cluster_enabled()) {
		/* After the sweep: Redis must hear of it first. */
		if (job == NULL && (job = calloc(1, sizeof(*job))) == NULL)
			fatal("%s", __func__);
		if ((l = reallocarray(job->lost, job->n + 1,
		    sizeof(*l))) == NULL)
			fatal("%s", __func__);
		job->lost = l;
		l += job->n++;
		l->dialect = dialect_find_id((unsigned)r->dialect);
		snprintf(l->id, sizeof(l->id), "%s", r->id);
		l->session[0] = '\0';
		l->mid = m->mid;
		return;
	}
	room = room_new(r, (const struct room_ref *)ref);
	room->swept = 1;
	member_copy(&copy, m);
	if (room->dialect != NULL && room->dialect->member_lost != NULL)
		room->dialect->member_lost(room, &copy);
	room_unlock(room);	/* rings; the sweep keeps the lock */
}

/* The members of lost[0..n) still to tell of, of the first one's room
 * (the sweep lists a room's members together), at most LOST_BATCH; the
 * count of entries that run covers. */
static size_t
lost_batch(struct lost_here *lost, size_t n, uint64_t *mids, size_t *nmids)
{
	size_t	 i;

	*nmids = 0;
	for (i = 0; i < n && *nmids < LOST_BATCH &&
	    lost[i].dialect == lost[0].dialect &&
	    strcmp(lost[i].id, lost[0].id) == 0; i++)
		mids[(*nmids)++] = lost[i].mid;
	return i;
}

/*
 * What a dead worker leaves in Redis: the lock it held, and the members
 * it was the last connection of on this host (rcl_presence_end, a room's
 * members at a time).  What Redis could not be told (it does not answer,
 * or refuses writes) is tried again every quarter of a second for as
 * long as the session the members were present in lives: once that has
 * ended, its reaping lets them go.  A Redis out of memory keeps the
 * session alive, so no deadline would do.  The helper goes with the
 * master, which forks it again if it dies before it is done: telling
 * twice changes nothing.  (The master, if it could not fork one, tries
 * once.)
 */
static void
slot_dead_tell(void *arg)
{
	struct lost_job	*j = arg;
	struct timespec	 ts = { 0, 250 * 1000000L };
	uint64_t	 mids[LOST_BATCH];
	size_t		 i, k, nmids, run, left;

	cluster_slot_release();
	for (;;) {
		for (i = left = 0; i < j->n; i += run) {
			if (j->lost[i].dialect == NULL) {
				run = 1;
				continue;
			}
			run = lost_batch(j->lost + i, j->n - i, mids, &nmids);
			if (rcl_presence_end(j->lost[i].dialect, j->lost[i].id,
			    mids, nmids, j->lost[i].session,
			    sizeof(j->lost[i].session)) == -1) {
				left += run;
				continue;
			}
			for (k = 0; k < run; k++)
				j->lost[i + k].dialect = NULL;
		}
		if (left == 0 || !cluster_helping())
			break;
		nanosleep(&ts, NULL);
	}
	if (left > 0)
		log_warnx("cluster: %zu members lost with a worker not let go: "
		    "Redis did not take it; the end of this host's session "
		    "will", left);
}

static void
slot_dead_done(void *arg)
{
	struct lost_job	*j = arg;

	free(j->lost);
	free(j);
}

void
room_slot_dead(int slot)
{
	struct shm_slot_dead	 sd = { slot_dead_expiry, slot_dead_lost,
				    NULL, 0 };
	int			 held = 0;

	if (cluster_enabled()) {
		if (SHM_SLOT_BIT(slot) == ROOM_SLOT_ELSEWHERE)
			return;		/* not a worker's: other hosts' */
		sd.keep = ROOM_SLOT_ELSEWHERE;
		held = cluster_slot_dead(slot);
	}
	shm_room_slot_dead_fn(A(), (unsigned)slot, &sd);
	/* Redis hears of it from a helper process, so that a shard that
	 * hangs holds up no master. */
	if (held && job == NULL && (job = calloc(1, sizeof(*job))) == NULL)
		fatal("%s", __func__);
	if (job != NULL)
		cluster_helper("cluster: a worker gone", slot_dead_tell,
		    slot_dead_done, job);
	job = NULL;
}

/* A room expires (under its lock, in the master): webhooks hear of it.
 * In cluster mode only this host's mirror goes (Redis expires rooms). */
static void
reap_gone(struct shm_room *r, void *arg)
{
	if (r->cepoch == 0)
		webhook_room(dialect_find_id((unsigned)r->dialect),
		    WEBHOOK_ROOM_DELETED, r->id, "expired");
}

void
room_reap(void)
{
	shm_room_reap_fn(A(), util_now(), reap_gone, NULL);
}

int
room_addr_conn_add(const uint64_t addr[2], uint64_t max)
{
	return shm_ip_conn_add(A(), addr, (unsigned)env->slot, max);
}

void
room_addr_conn_del(const uint64_t addr[2])
{
	shm_ip_conn_del(A(), addr, (unsigned)env->slot);
}

void
room_usage(uint64_t *rooms, uint64_t *used, uint64_t *size,
    uint64_t *recoveries)
{
	shm_usage(A(), used, size);
	*rooms = A()->hdr->nrooms;
	*recoveries = A()->hdr->recoveries;
}

int
room_check(char *err, size_t errlen)
{
	return arena_check_live(A(), err, errlen);
}

/*
 * Lookups across rooms.  Kept apart from the rest: they lock every room
 * of a dialect in turn, which the per-room functions above never do.
 */

int
room_member_find(const struct dialect *d, const char *uid, const char *token,
    struct room_ref *ref, struct room_member *out)
{
	struct room_ref		*refs = NULL, *p;
	struct room_member	 m;
	struct room		*room;
	size_t			 max = 256, n, i;
	int			 rc = ROOM_ENOENT;

	/* A list that came back full may have left rooms out: grow it. */
	for (;;) {
		if ((p = reallocarray(refs, max, sizeof(*refs))) == NULL) {
			free(refs);
			return ROOM_ENOSPC;
		}
		refs = p;
		if ((n = room_list(d, refs, max)) < max)
			break;
		max *= 2;
	}
	for (i = 0; i < n && rc == ROOM_ENOENT; i++) {
		if (room_lock(&refs[i], &room) != 0)
			continue;	/* deleted meanwhile */
		if (room_member_check(room, uid, token, &m) == 0) {
			*ref = refs[i];
			if (out != NULL)
				*out = m;
			rc = 0;
		}
		room_unlock(room);
	}
	free(refs);
	return rc;
}

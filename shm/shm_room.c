/*
 * shm_room.c: the room index and each room's member table.
 *
 * The index is a hash of (dialect, room id) chained through the room slots,
 * guarded by the index lock.  A room's own fields and members are guarded
 * by the room's lock; a room critical section is one transaction, begun by
 * shm_room_lock() and committed by shm_room_unlock().  Lock order: room,
 * then index, then allocator (doc/locking.txt).  At the end, the table of
 * per-address counters (connections, rooms created, wrong passwords),
 * under a leaf lock of its own.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "shm.h"

/* The first member table is a 512-byte block: 3 members.  It doubles as
 * it fills (the allocator's classes are powers of two), so a table is
 * never more than half empty. */
#define MEMBERS_INITIAL	3

_Static_assert(sizeof(struct shm_member) == 128, "a member is 128 bytes");
_Static_assert(SHM_NAME_INLINE >= (int)sizeof(shm_off) + 1,
    "a long name's offset fits the name field");

static unsigned
room_hash(unsigned dialect, const char *id)
{
	uint32_t	 h = 2166136261u ^ dialect;

	while (*id != '\0') {
		h ^= (uint8_t)*id++;
		h *= 16777619u;
	}
	return h % ARENA_BUCKETS;
}

static struct shm_room *
room_of(struct arena *a, shm_off off)
{
	return SHM_PTR(a, off);
}

static shm_off
room_lookup_locked(struct arena *a, unsigned dialect, const char *id)
{
	shm_off		 off;
	struct shm_room	*r;

	for (off = a->hdr->buckets[room_hash(dialect, id)]; off != 0;
	    off = r->hnext) {
		r = room_of(a, off);
		if (r->dialect == dialect && strcmp(r->id, id) == 0)
			return off;
	}
	return 0;
}

/*
 * Create a room of a dialect with a unique id.  expires is the unix time
 * after which it is reaped if no connection has opened.  Returns 0 and a
 * reference, SHM_EEXIST, SHM_EINVAL or SHM_ENOSPC.
 */
int
shm_room_create(struct arena *a, unsigned dialect, const char *id,
    uint64_t expires, struct shm_room_ref *ref)
{
	return shm_room_create_locked(a, dialect, id, expires, ref, NULL);
}

/*
 * The slot is locked before it is linked into the index, so nobody sees
 * the room before its creator has finished setting it up.  Taking a room
 * lock under the index lock is against the lock order, but it cannot
 * deadlock: the slot is unreachable, so at most a holder of a stale
 * reference has it, briefly, and that one never waits for the index.
 */
int
shm_room_create_locked(struct arena *a, unsigned dialect, const char *id,
    uint64_t expires, struct shm_room_ref *ref, struct shm_room **locked)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*il = &h->index_lock;
	struct shm_room		*r;
	shm_off			 off, members;
	unsigned		 b;
	int			 rc = 0;

	if (strlen(id) == 0 || strlen(id) > SHM_ID_MAX)
		return SHM_EINVAL;
	if (shm_lock(a, il) != 0)
		return SHM_ESTATE;
	shm_tx_begin(a, il);
	if (room_lookup_locked(a, dialect, id) != 0) {
		rc = SHM_EEXIST;
		goto out;
	}
	if ((off = shm_room_slot_alloc(a, il)) == 0 ||
	    (members = shm_tx_alloc(a, il, MEMBERS_INITIAL *
	    sizeof(struct shm_member))) == 0) {
		shm_tx_abort(a, il);
		shm_unlock(a, il);
		return SHM_ENOSPC;
	}
	/* The slot is unreachable until it is linked into a bucket, so its
	 * fields (all but the lock) are written directly. */
	r = room_of(a, off);
	memset(&r->rid, 0, sizeof(*r) - offsetof(struct shm_room, rid));
	r->dialect = dialect;
	strncpy(r->id, id, SHM_ID_MAX);
	r->created = r->expires = expires;
	r->members = members;
	r->cap = shm_block_size(a, members) / sizeof(struct shm_member);
	memset(SHM_PTR(a, members), 0, r->cap * sizeof(struct shm_member));
	r->next_mid = 1;
	r->rid = h->next_rid;
	b = room_hash(dialect, id);
	r->hnext = h->buckets[b];
	if (locked != NULL) {
		if (shm_lock(a, &r->lock) != 0) {
			shm_tx_abort(a, il);
			shm_unlock(a, il);
			return SHM_ESTATE;
		}
		shm_tx_begin(a, &r->lock);
		*locked = r;
	}
	shm_tx_set(a, il, &h->next_rid, h->next_rid + 1);
	SHM_CRASH("room_create");
	shm_tx_set(a, il, &h->buckets[b], off);
	shm_tx_set(a, il, &h->nrooms, h->nrooms + 1);
	ref->off = off;
	ref->rid = r->rid;
out:
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	return rc;
}

int
shm_room_find(struct arena *a, unsigned dialect, const char *id,
    struct shm_room_ref *ref)
{
	struct shm_lock	*il = &a->hdr->index_lock;
	shm_off		 off;

	if (shm_lock(a, il) != 0)
		return SHM_ESTATE;
	off = room_lookup_locked(a, dialect, id);
	if (off != 0) {
		ref->off = off;
		ref->rid = room_of(a, off)->rid;
	}
	shm_unlock(a, il);
	return off != 0 ? 0 : SHM_ENOENT;
}

size_t
shm_room_list(struct arena *a, unsigned dialect, struct shm_room_ref *refs,
    size_t max)
{
	struct shm_lock	*il = &a->hdr->index_lock;
	struct shm_room	*r;
	shm_off		 off;
	size_t		 n = 0, steps = 0, most;
	unsigned	 b;

	if (shm_lock(a, il) != 0)
		return 0;
	/* Listing serves roomctl too: a damaged index (arena_check would
	 * say so) ends the walk instead of a worker. */
	most = (a->hdr->top - a->hdr->hdr_size) / sizeof(*r);
	for (b = 0; b < ARENA_BUCKETS && n < max; b++)
		for (off = a->hdr->buckets[b]; off != 0 && n < max;
		    off = r->hnext) {
			if (off < a->hdr->hdr_size || off >= a->hdr->top ||
			    ++steps > most)
				break;
			r = room_of(a, off);
			if (r->magic != ROOM_MAGIC)
				break;
			if (dialect != ROOM_ALL_DIALECTS && r->dialect != dialect)
				continue;
			refs[n].off = off;
			refs[n++].rid = r->rid;
		}
	shm_unlock(a, il);
	return n;
}

/*
 * Lock a room found earlier and begin its transaction.  Returns
 * SHM_ENOENT if the room was deleted meanwhile (its slot may hold another
 * room by now: the rid tells).
 */
int
shm_room_lock(struct arena *a, const struct shm_room_ref *ref,
    struct shm_room **rp)
{
	struct shm_room	*r;

	if (ref->off < a->hdr->hdr_size || ref->off >= a->hdr->top)
		return SHM_ENOENT;
	r = room_of(a, ref->off);
	if (r->magic != ROOM_MAGIC)
		return SHM_ENOENT;
	if (shm_lock(a, &r->lock) != 0)
		return SHM_ESTATE;
	if (r->rid != ref->rid || r->rid == 0 || (r->flags & ROOM_F_DEAD)) {
		shm_unlock(a, &r->lock);
		return SHM_ENOENT;
	}
	shm_tx_begin(a, &r->lock);
	*rp = r;
	return 0;
}

void
shm_room_unlock(struct arena *a, struct shm_room *r)
{
	shm_tx_commit(a, &r->lock);
	shm_unlock(a, &r->lock);
}

/*
 * Delete a locked room and release its lock.  Everything is one
 * transaction of the room's lock: it is marked dead (so nobody can lock
 * it any more), and the commit then unlinks it from the index and frees its
 * member table, its log chunks, its members' long names and, last, its
 * slot.  Each of those steps zeroes its journal entry as it completes, so
 * after a crash the next owner either rolls the whole deletion back or
 * finishes it.
 */
void
shm_room_delete_locked(struct arena *a, struct shm_room *r)
{
	shm_off		 off = SHM_OFF(a, r);

	shm_tx_set(a, &r->lock, &r->flags, r->flags | ROOM_F_DEAD);
	shm_tx_free(a, &r->lock, off | SHM_UNLINK);
	shm_tx_free(a, &r->lock, r->members);
	if (r->log_head != 0)
		shm_tx_free(a, &r->lock, r->log_head | SHM_CHAIN);
	if (r->names != 0)
		shm_tx_free(a, &r->lock, r->names | SHM_CHAIN);
	shm_room_slot_free(a, &r->lock, off);
	/* Its creator's count drops in a transaction of its own: a crash
	 * between the two leaves the count one low, never one high, so
	 * nobody is locked out by a room that is gone. */
	if (r->creator[0] != 0 || r->creator[1] != 0)
		shm_ip_room_del(a, r->creator);
	SHM_CRASH("room_delete");
	shm_room_unlock(a, r);
}

void
shm_room_unlink(struct arena *a, uint64_t *slot)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*il = &h->index_lock;
	struct shm_room		*r;
	shm_off			 off, *pp;

	if (shm_lock(a, il) != 0)
		return;
	if (*slot == 0) {
		shm_unlock(a, il);
		return;
	}
	off = *slot & ~SHM_RELEASE_FLAGS;
	r = room_of(a, off);
	shm_tx_begin(a, il);
	for (pp = &h->buckets[room_hash((unsigned)r->dialect, r->id)];
	    *pp != 0 && *pp != off; pp = &room_of(a, *pp)->hnext)
		;
	if (*pp == off) {
		shm_tx_set(a, il, pp, r->hnext);
		shm_tx_set(a, il, &h->nrooms, h->nrooms - 1);
	}
	SHM_CRASH("room_unlink");
	shm_tx_set(a, il, slot, 0);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
}

/*
 * Count a connection opening (delta 1) or closing (-1) on a worker slot.
 * When the last one closes the room gets the expiry time given.  Returns
 * the room's open connections after the change.
 */
int
shm_room_conn_locked(struct arena *a, struct shm_room *r, unsigned slot,
    int delta, uint64_t expires)
{
	uint64_t	*sc = &r->slot_conns[slot % ARENA_MAX_SLOTS];

	if (delta < 0 && *sc == 0)
		return (int)r->conns;
	shm_tx_set(a, &r->lock, sc, *sc + (uint64_t)(int64_t)delta);
	shm_tx_set(a, &r->lock, &r->conns, r->conns + (uint64_t)(int64_t)delta);
	if (delta > 0 && (r->expires != 0 || !(r->flags & ROOM_F_OPENED))) {
		shm_tx_set(a, &r->lock, &r->expires, 0);
		shm_tx_set(a, &r->lock, &r->flags, r->flags | ROOM_F_OPENED);
	}
	if (r->conns == 0)
		shm_tx_set(a, &r->lock, &r->expires, expires);
	return (int)r->conns;
}

int
shm_room_set_expiry_locked(struct arena *a, struct shm_room *r, uint64_t t)
{
	shm_tx_set(a, &r->lock, &r->expires, t);
	return 0;
}

/*
 * A worker slot died: its connections are gone.  Forget them in every
 * room, and let rooms left with no connection expire at the time given,
 * so clients have that long to reconnect.
 */
static uint64_t
expires_const(unsigned dialect, void *arg)
{
	return *(uint64_t *)arg;
}

void
shm_room_slot_dead(struct arena *a, unsigned slot, uint64_t expires)
{
	struct shm_slot_dead	 sd = { expires_const, NULL, &expires, 0 };

	shm_room_slot_dead_fn(a, slot, &sd);
}

/*
 * Lock every room in turn and call fn on it; fn returns 1 if it released
 * the lock itself (by deleting the room).
 */
static void
room_each(struct arena *a, int (*fn)(struct arena *, struct shm_room *,
    const struct shm_room_ref *, void *), void *arg)
{
	struct shm_room_ref	*refs;
	struct shm_room		*r;
	size_t			 i, n, max = a->hdr->nrooms + 64;

	if ((refs = calloc(max, sizeof(*refs))) == NULL)
		return;
	n = shm_room_list(a, ROOM_ALL_DIALECTS, refs, max);
	for (i = 0; i < n; i++)
		if (shm_room_lock(a, &refs[i], &r) == 0 &&
		    !fn(a, r, &refs[i], arg))
			shm_room_unlock(a, r);
	free(refs);
}

struct slot_dead {
	unsigned			 slot;
	const struct shm_slot_dead	*sd;
};

static int
slot_dead_room(struct arena *a, struct shm_room *r,
    const struct shm_room_ref *ref, void *arg)
{
	struct slot_dead	*x = arg;
	unsigned		 slot = x->slot;
	uint64_t		 j;

	if (r->slot_conns[slot] > 0) {
		shm_tx_set(a, &r->lock, &r->conns,
		    r->conns - r->slot_conns[slot]);
		shm_tx_set(a, &r->lock, &r->slot_conns[slot], 0);
		if (r->conns == 0)
			shm_tx_set(a, &r->lock, &r->expires,
			    x->sd->expires((unsigned)r->dialect, x->sd->arg));
	}
	for (j = 0; j < r->nmembers; j++) {
		struct shm_member *m = shm_member_at(a, r, j);

		if (m->mid == 0 || !(m->slots & SHM_SLOT_BIT(slot)))
			continue;
		shm_tx_reserve(a, &r->lock, 1);
		shm_member_set_locked(a, r, m, &m->slots,
		    m->slots & ~SHM_SLOT_BIT(slot));
		if ((m->slots & ~x->sd->keep) == 0 && x->sd->lost != NULL) {
			/* The loser's changes get a journal of their own. */
			shm_tx_reserve(a, &r->lock, SHM_TX_UNDO);
			x->sd->lost(r, ref, m, x->sd->arg);
			m = shm_member_at(a, r, j);	/* the table may move */
		}
	}
	return 0;
}

void
shm_room_slot_dead_fn(struct arena *a, unsigned slot,
    const struct shm_slot_dead *sd)
{
	struct slot_dead	 x = { slot % ARENA_MAX_SLOTS, sd };

	room_each(a, slot_dead_room, &x);
	shm_ip_slot_dead(a, slot);
}

struct reap {
	uint64_t	 now;
	void		(*gone)(struct shm_room *, void *);
	void		*arg;
};

static int
reap_room(struct arena *a, struct shm_room *r, const struct shm_room_ref *ref,
    void *arg)
{
	struct reap	*x = arg;

	if (r->conns == 0 && r->expires != 0 && r->expires <= x->now) {
		if (x->gone != NULL)
			x->gone(r, x->arg);
		shm_room_delete_locked(a, r);
		return 1;
	}
	return 0;
}

/* Delete every room with no connection whose expiry time has passed. */
void
shm_room_reap(struct arena *a, uint64_t now)
{
	shm_room_reap_fn(a, now, NULL, NULL);
}

void
shm_room_reap_fn(struct arena *a, uint64_t now,
    void (*gone)(struct shm_room *, void *), void *arg)
{
	struct reap	 x = { now, gone, arg };

	room_each(a, reap_room, &x);
	shm_ip_reap(a, now);
}

struct shm_member *
shm_member_at(struct arena *a, struct shm_room *r, size_t i)
{
	return (struct shm_member *)SHM_PTR(a, r->members) + i;
}

static int
members_grow_locked(struct arena *a, struct shm_room *r)
{
	shm_off		 off;
	uint64_t	 cap;

	off = shm_tx_alloc(a, &r->lock, 2 * r->cap * sizeof(struct shm_member));
	if (off == 0)
		return SHM_ENOSPC;
	cap = shm_block_size(a, off) / sizeof(struct shm_member);
	memcpy(SHM_PTR(a, off), SHM_PTR(a, r->members),
	    r->cap * sizeof(struct shm_member));
	memset((struct shm_member *)SHM_PTR(a, off) + r->cap, 0,
	    (cap - r->cap) * sizeof(struct shm_member));
	shm_tx_free(a, &r->lock, r->members);
	shm_tx_set(a, &r->lock, &r->members, off);
	shm_tx_set(a, &r->lock, &r->cap, cap);
	return 0;
}

/* The long name block of a member, 0 if its name is inline. */
static shm_off
member_name_block(const struct shm_member *m)
{
	shm_off		 off;

	if (m->name[SHM_NAME_INLINE - 1] != SHM_NAME_LONG)
		return 0;
	memcpy(&off, m->name, sizeof(off));
	return off;
}

const char *
shm_member_name(struct arena *a, const struct shm_member *m)
{
	shm_off		 off = member_name_block(m);

	if (off == 0)
		return m->name;
	return ((struct shm_name *)SHM_PTR(a, off))->name;
}

/*
 * Add a member unless max members are present; see shm.h.  The slot is
 * free (mid 0) and nobody reads a free slot, so it is filled directly; a
 * long name goes into a fresh block, linked at the head of the room's
 * chain of names.  The journaled stores that publish both are the chain
 * head and, last, the mid: a crash before either rolls back to a free
 * slot, and the block, taken in this transaction, goes back.
 */
int
shm_member_add_locked(struct arena *a, struct shm_room *r,
    const struct shm_member *in, const char *name, uint64_t max,
    struct shm_member **out)
{
	struct shm_member	*m = NULL;
	struct shm_name		*nb;
	uint64_t		 i, live = 0;
	shm_off			 noff = 0;
	size_t			 len = strlen(name);
	int			 rc;

	if (len > SHM_NAME_MAX)
		return SHM_EINVAL;
	for (i = 0; i < r->nmembers; i++) {
		struct shm_member *x = shm_member_at(a, r, i);

		/* A slot freed in this transaction is not reused in it:
		 * a rollback must find the old member there intact. */
		if (x->mid != 0)
			live++;
		else if (m == NULL && !shm_tx_touched(a, &r->lock, &x->mid))
			m = x;
	}
	if (live >= max)
		return SHM_ELIMIT;
	if (len >= SHM_NAME_INLINE) {
		if ((noff = shm_tx_alloc(a, &r->lock, sizeof(*nb) + len + 1))
		    == 0)
			return SHM_ENOSPC;
		nb = SHM_PTR(a, noff);
		nb->next = r->names;
		memcpy(nb->name, name, len + 1);
	}
	if (m == NULL) {
		if (r->nmembers == r->cap &&
		    (rc = members_grow_locked(a, r)) != 0) {
			/* Nothing published: the block goes back at the
			 * commit (or with the rollback). */
			shm_tx_free(a, &r->lock, noff);
			return rc;
		}
		m = shm_member_at(a, r, r->nmembers);
		shm_tx_set(a, &r->lock, &r->nmembers, r->nmembers + 1);
	}
	/* A slot with mid 0 is free: fill it, then publish it by its mid. */
	m->role = in->role;
	m->authorities = in->authorities;
	m->slots = in->slots;
	m->joined = in->joined;
	memcpy(m->token, in->token, sizeof(m->token));
	m->token[SHM_TOKEN_LEN] = '\0';
	memcpy(m->uid, in->uid, sizeof(m->uid));
	m->uid[SHM_UID_LEN] = '\0';
	memset(m->name, 0, sizeof(m->name));
	if (noff != 0) {
		memcpy(m->name, &noff, sizeof(noff));
		m->name[SHM_NAME_INLINE - 1] = SHM_NAME_LONG;
		shm_tx_set(a, &r->lock, &r->names, noff);
		SHM_CRASH("member_name");
	} else
		memcpy(m->name, name, len);
	shm_tx_set(a, &r->lock, &r->next_mid, r->next_mid + 1);
	SHM_CRASH("member_add");
	shm_tx_set(a, &r->lock, &m->mid, r->next_mid - 1);
	*out = m;
	return 0;
}

static struct shm_member *
member_find(struct arena *a, struct shm_room *r, int (*match)(
    struct arena *, const struct shm_member *, const void *),
    const void *arg)
{
	uint64_t	 i;

	for (i = 0; i < r->nmembers; i++) {
		struct shm_member *m = shm_member_at(a, r, i);

		if (m->mid != 0 && match(a, m, arg))
			return m;
	}
	return NULL;
}

static int
match_name(struct arena *a, const struct shm_member *m, const void *arg)
{
	return strcmp(shm_member_name(a, m), arg) == 0;
}

static int
match_token(struct arena *a, const struct shm_member *m, const void *arg)
{
	const char	*t = arg;
	unsigned	 diff = 0;
	size_t		 i;

	/* Constant time over the token's length. */
	if (strlen(t) != SHM_TOKEN_LEN)
		return 0;
	for (i = 0; i < SHM_TOKEN_LEN; i++)
		diff |= (unsigned)(m->token[i] ^ t[i]);
	return diff == 0;
}

static int
match_mid(struct arena *a, const struct shm_member *m, const void *arg)
{
	return m->mid == *(const uint64_t *)arg;
}

struct shm_member *
shm_member_by_name(struct arena *a, struct shm_room *r, const char *name)
{
	return member_find(a, r, match_name, name);
}

struct shm_member *
shm_member_by_token(struct arena *a, struct shm_room *r, const char *token)
{
	return member_find(a, r, match_token, token);
}

static int
match_uid(struct arena *a, const struct shm_member *m, const void *arg)
{
	return strcmp(m->uid, arg) == 0;
}

struct shm_member *
shm_member_by_uid(struct arena *a, struct shm_room *r, const char *uid)
{
	return member_find(a, r, match_uid, uid);
}

struct shm_member *
shm_member_by_mid(struct arena *a, struct shm_room *r, uint64_t mid)
{
	return member_find(a, r, match_mid, &mid);
}

void
shm_member_set_locked(struct arena *a, struct shm_room *r,
    struct shm_member *m, uint64_t *field, uint64_t value)
{
	(void)m;
	shm_tx_set(a, &r->lock, field, value);
}

/*
 * Free the slot (mid 0); a long name's block is unlinked from the room's
 * chain and freed at commit.  The slot's name field is left as it is: a
 * rollback finds the member whole, and nobody reads a free slot.
 */
void
shm_member_remove_locked(struct arena *a, struct shm_room *r,
    struct shm_member *m)
{
	shm_off		 noff = member_name_block(m);
	uint64_t	*pp;

	if (noff != 0) {
		for (pp = &r->names; *pp != 0 && *pp != noff;
		    pp = &((struct shm_name *)SHM_PTR(a, *pp))->next)
			;
		if (*pp == noff) {
			shm_tx_set(a, &r->lock, pp,
			    ((struct shm_name *)SHM_PTR(a, noff))->next);
			shm_tx_free(a, &r->lock, noff);
		}
	}
	shm_tx_set(a, &r->lock, &m->mid, 0);
}

/*
 * The per-address table: IPT_ENTRIES counters on IPT_BUCKETS hash chains,
 * linked by index + 1, under the ip lock.  Every entry of one address is
 * on the chain its address hashes to, so a sum over worker slots walks one
 * chain.  Every store goes through the ip lock's journal, so a process
 * killed inside leaves nothing half-linked; an entry whose count drops to
 * zero goes back on the free list at once.
 */
#define IPT_FAIL_WINDOW	60	/* seconds */

static struct shm_ipent *
ipt_at(struct arena *a, uint64_t i)
{
	return &a->hdr->ip[(i - 1) % IPT_ENTRIES];
}

static unsigned
ipt_hash(const uint64_t addr[2])
{
	uint64_t	 h = addr[0] * 0x9e3779b97f4a7c15ULL ^ addr[1];

	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 29;
	return (unsigned)(h % IPT_BUCKETS);
}

static int
ipt_lock(struct arena *a)
{
	if (shm_lock(a, &a->hdr->ip_lock) != 0)
		return SHM_ESTATE;
	shm_tx_begin(a, &a->hdr->ip_lock);
	return 0;
}

static void
ipt_unlock(struct arena *a)
{
	shm_tx_commit(a, &a->hdr->ip_lock);
	shm_unlock(a, &a->hdr->ip_lock);
}

static int
ipt_match(const struct shm_ipent *e, const uint64_t addr[2])
{
	return e->addr[0] == addr[0] && e->addr[1] == addr[1];
}

/* The entry of (addr, kind), 0 if none; *link is the word naming it. */
static uint64_t
ipt_find(struct arena *a, const uint64_t addr[2], uint64_t kind,
    uint64_t **link)
{
	uint64_t		*pp = &a->hdr->ip_buckets[ipt_hash(addr)];
	struct shm_ipent	*e;
	unsigned		 n;

	for (n = 0; *pp != 0 && n < IPT_ENTRIES; n++, pp = &e->next) {
		e = ipt_at(a, *pp);
		if (ipt_match(e, addr) && e->kind == kind)
			break;
	}
	*link = pp;
	return n < IPT_ENTRIES ? *pp : 0;
}

static uint64_t
ipt_sum(struct arena *a, const uint64_t addr[2], unsigned type)
{
	struct shm_ipent	*e;
	uint64_t		 i, sum = 0;
	unsigned		 n = 0;

	for (i = a->hdr->ip_buckets[ipt_hash(addr)]; i != 0 &&
	    n++ < IPT_ENTRIES; i = e->next) {
		e = ipt_at(a, i);
		if (ipt_match(e, addr) && IPT_TYPE(e->kind) == type)
			sum += e->count;
	}
	return sum;
}

/* Unlink the entry *link names and put it on the free list. */
static void
ipt_remove(struct arena *a, uint64_t *link)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*lk = &h->ip_lock;
	uint64_t		 i = *link;
	struct shm_ipent	*e = ipt_at(a, i);

	shm_tx_set(a, lk, link, e->next);
	shm_tx_set(a, lk, &e->count, 0);
	shm_tx_set(a, lk, &e->kind, 0);
	shm_tx_set(a, lk, &e->next, h->ip_free);
	shm_tx_set(a, lk, &h->ip_free, i);
	shm_tx_set(a, lk, &h->ip_inuse, h->ip_inuse - 1);
}

/*
 * Add delta to the counter of (addr, kind), making its entry or freeing
 * it at zero.  Returns 0, or 1 if the table is full (nothing counted).
 */
static int
ipt_add(struct arena *a, const uint64_t addr[2], uint64_t kind,
    int64_t delta, uint64_t stamp)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*lk = &h->ip_lock;
	struct shm_ipent	*e;
	uint64_t		*link, *head, i;

	if ((i = ipt_find(a, addr, kind, &link)) == 0) {
		if (delta <= 0)
			return 0;
		if ((i = h->ip_free) == 0) {
			__atomic_add_fetch(&h->ip_full, 1, __ATOMIC_RELAXED);
			return 1;
		}
		e = ipt_at(a, i);
		head = &h->ip_buckets[ipt_hash(addr)];
		shm_tx_set(a, lk, &h->ip_free, e->next);
		shm_tx_set(a, lk, &e->addr[0], addr[0]);
		shm_tx_set(a, lk, &e->addr[1], addr[1]);
		shm_tx_set(a, lk, &e->kind, kind);
		shm_tx_set(a, lk, &e->count, 0);
		shm_tx_set(a, lk, &e->stamp, stamp);
		SHM_CRASH("ip_insert");
		shm_tx_set(a, lk, &e->next, *head);
		shm_tx_set(a, lk, head, i);
		shm_tx_set(a, lk, &h->ip_inuse, h->ip_inuse + 1);
		link = head;
	}
	e = ipt_at(a, i);
	if (delta < 0 && e->count <= (uint64_t)-delta)
		ipt_remove(a, link);
	else
		shm_tx_set(a, lk, &e->count, e->count + (uint64_t)delta);
	return 0;
}

/* Count one of type for addr unless max (0: no limit) are counted. */
static int
ipt_take(struct arena *a, const uint64_t addr[2], unsigned type,
    uint64_t kind, uint64_t max)
{
	int	 rc;

	if (ipt_lock(a) != 0)
		return SHM_ESTATE;
	if (max != 0 && ipt_sum(a, addr, type) >= max)
		rc = SHM_ELIMIT;
	else
		rc = ipt_add(a, addr, kind, 1, 0);
	ipt_unlock(a);
	return rc;
}

static void
ipt_give(struct arena *a, const uint64_t addr[2], uint64_t kind)
{
	if (ipt_lock(a) != 0)
		return;
	ipt_add(a, addr, kind, -1, 0);
	ipt_unlock(a);
}

int
shm_ip_conn_add(struct arena *a, const uint64_t addr[2], unsigned slot,
    uint64_t max)
{
	return ipt_take(a, addr, IPT_CONNS, IPT_KIND(IPT_CONNS,
	    slot % ARENA_MAX_SLOTS), max);
}

void
shm_ip_conn_del(struct arena *a, const uint64_t addr[2], unsigned slot)
{
	ipt_give(a, addr, IPT_KIND(IPT_CONNS, slot % ARENA_MAX_SLOTS));
}

int
shm_ip_room_add(struct arena *a, const uint64_t addr[2], uint64_t max)
{
	return ipt_take(a, addr, IPT_ROOMS, IPT_KIND(IPT_ROOMS, 0), max);
}

void
shm_ip_room_del(struct arena *a, const uint64_t addr[2])
{
	ipt_give(a, addr, IPT_KIND(IPT_ROOMS, 0));
}

uint64_t
shm_ip_fails(struct arena *a, const uint64_t addr[2], uint64_t rid,
    uint64_t now)
{
	struct shm_ipent	*e;
	uint64_t		*link, i, n = 0;

	if (ipt_lock(a) != 0)
		return 0;
	if ((i = ipt_find(a, addr, IPT_KIND(IPT_FAILS, rid), &link)) != 0) {
		e = ipt_at(a, i);
		if (e->stamp + IPT_FAIL_WINDOW > now)
			n = e->count;
	}
	ipt_unlock(a);
	return n;
}

/* A wrong password: the count starts over once its minute has passed. */
int
shm_ip_fail_add(struct arena *a, const uint64_t addr[2], uint64_t rid,
    uint64_t now)
{
	uint64_t	 kind = IPT_KIND(IPT_FAILS, rid), *link, i;
	int		 rc;

	if (ipt_lock(a) != 0)
		return SHM_ESTATE;
	if ((i = ipt_find(a, addr, kind, &link)) != 0 &&
	    ipt_at(a, i)->stamp + IPT_FAIL_WINDOW <= now)
		ipt_remove(a, link);
	rc = ipt_add(a, addr, kind, 1, now);
	ipt_unlock(a);
	return rc;
}

uint64_t
shm_ip_count(struct arena *a, const uint64_t addr[2], unsigned type)
{
	uint64_t	 n;

	if (ipt_lock(a) != 0)
		return 0;
	n = ipt_sum(a, addr, type);
	ipt_unlock(a);
	return n;
}

/* Remove every entry fn picks, committing as the journal fills. */
static void
ipt_sweep(struct arena *a, int (*fn)(const struct shm_ipent *, void *),
    void *arg)
{
	struct arena_hdr	*h = a->hdr;
	uint64_t		*pp;
	unsigned		 b, n;

	if (ipt_lock(a) != 0)
		return;
	for (b = 0; b < IPT_BUCKETS; b++)
		for (pp = &h->ip_buckets[b], n = 0; *pp != 0 &&
		    n < IPT_ENTRIES; n++) {
			if (!fn(ipt_at(a, *pp), arg)) {
				pp = &ipt_at(a, *pp)->next;
				continue;
			}
			shm_tx_reserve(a, &h->ip_lock, 6);
			ipt_remove(a, pp);
		}
	ipt_unlock(a);
}

static int
ipt_of_slot(const struct shm_ipent *e, void *arg)
{
	return e->kind == IPT_KIND(IPT_CONNS, *(unsigned *)arg);
}

void
shm_ip_slot_dead(struct arena *a, unsigned slot)
{
	slot %= ARENA_MAX_SLOTS;
	ipt_sweep(a, ipt_of_slot, &slot);
}

static int
ipt_stale(const struct shm_ipent *e, void *arg)
{
	return IPT_TYPE(e->kind) == IPT_FAILS &&
	    e->stamp + IPT_FAIL_WINDOW <= *(uint64_t *)arg;
}

void
shm_ip_reap(struct arena *a, uint64_t now)
{
	ipt_sweep(a, ipt_stale, &now);
}

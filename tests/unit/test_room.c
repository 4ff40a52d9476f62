/*
 * test_room.c: cmocka unit tests of the room engine: the real room.c,
 * fanout.c and stats.c over an anonymous in-process arena, with the
 * daemon around them replaced by tests/unit/room_seams.c (doorbells are
 * recorded, connections are fakes that record their frames and closes,
 * two test dialects: a history one and a relay one).
 *
 * Covered: creating, finding, listing and locking rooms; members and
 * their lookups, limits and order; the op log read from every cursor and
 * its byte limit; delivery to this worker's connections in history rooms
 * (one shared frame per cursor, cut at output_buffer_bytes, catch-up of a
 * connection that was behind) and relay rooms (every audience, a slow
 * member closed); presence across connections and worker slots; a member
 * lost with its last worker reported once; deleting rooms and kicking
 * members; room passwords and their per-address block; the append
 * counters; relay log trimming; reaping; one append reaching a connection
 * of another worker (a forked child playing that worker); a password
 * change rolled back when its worker dies; room_kick with the doorbell
 * table full.
 *
 * One process plays several workers by switching env->slot when only the
 * arena's state matters (connections counted per slot, presence bits,
 * doorbells rung); fanout.c's lists of rooms and connections are
 * per-process, so a test that needs two of them forks.  Children never
 * call cmocka: they report by exit status, under alarm(), so a deadlock
 * fails the test instead of hanging the suite.
 *
 * A lock holds a journal of a few dozen changes (shm.h, SHM_TX_UNDO) and
 * the process aborts past it, so tests that make many changes take the
 * lock once per change or few.
 *
 * Each test runs against a fresh arena and ends with arena_check, so the
 * engine's leaks and double frees in the arena show up there; a room a
 * failed test left locked is rolled back and released first.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "roomd.h"
#include "shm.h"
#include "room_seams.h"

#define ARENA_SIZE	(8UL << 20)

/* ------------------------------------------------------------------ */
/* Fixture: env with the configuration's defaults, worker slot 0 */

static int
setup(void **state)
{
	char	 err[256];
	int	 re;

	if ((env = calloc(1, sizeof(*env))) == NULL)
		return -1;
	config_defaults(&env->conf);
	env->nworkers = 4;
	env->slot = 0;
	if ((env->arena = calloc(1, sizeof(*env->arena))) == NULL)
		return -1;
	if (arena_open(env->arena, NULL, ARENA_SIZE, &re, err,
	    sizeof(err)) != 0) {
		print_error("arena_open: %s\n", err);
		return -1;
	}
	seam_clear();
	return 0;
}

/*
 * A test that failed while it (or a child that died) held a room would
 * hang the teardown on that lock: roll its changes back and let it go.
 * Returns the rooms released.
 */
static int
release_held_rooms(void)
{
	struct room_ref	 refs[256];
	struct shm_room	*r;
	size_t		 i, n;
	int		 held = 0, rc;

	n = room_list(NULL, refs, 256);
	for (i = 0; i < n; i++) {
		r = SHM_PTR(env->arena, refs[i].off);
		rc = pthread_mutex_trylock(&r->lock.mtx);
		if (rc == 0)
			pthread_mutex_unlock(&r->lock.mtx);
		else if (rc == EBUSY || rc == EOWNERDEAD) {
			shm_tx_abort(env->arena, &r->lock);
			if (rc == EOWNERDEAD)
				pthread_mutex_consistent(&r->lock.mtx);
			shm_unlock(env->arena, &r->lock);
			held++;
		}
	}
	return held;
}

static int
teardown(void **state)
{
	char	 err[256];
	int	 rc, held;

	env->slot = 0;
	if ((held = release_held_rooms()) != 0)
		print_error("%d room(s) left locked\n", held);
	seam_reset();
	rc = arena_check(env->arena, err, sizeof(err));
	if (rc != 0)
		print_error("arena_check: %s\n", err);
	arena_close(env->arena);
	free(env->arena);
	free(env);
	env = NULL;
	return rc == 0 && held == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Helpers */

static struct room *
create(const struct dialect *d, const char *id)
{
	struct room	*room;

	assert_int_equal(room_create(d, id, NULL, &room), ROOM_OK);
	return room;
}

static struct room *
relock(const struct room_ref *ref)
{
	struct room	*room;

	assert_int_equal(room_lock(ref, &room), ROOM_OK);
	return room;
}

static uint64_t
add(struct room *room, const char *name)
{
	struct room_member	 m;

	assert_int_equal(room_member_add(room, name, 0, &m), ROOM_OK);
	return m.mid;
}

/* Is the room's lock held (by this thread)? */
static int
is_locked(const struct room_ref *ref)
{
	struct shm_room	*r = SHM_PTR(env->arena, ref->off);

	if (pthread_mutex_trylock(&r->lock.mtx) == EBUSY)
		return 1;
	pthread_mutex_unlock(&r->lock.mtx);
	return 0;
}

static void
append(struct room *room, const char *text)
{
	struct room_rec_in	 rec = { text, (uint32_t)strlen(text), 0, 0 };
	uint64_t		 last;

	assert_int_equal(room_append(room, &rec, 1, &last), ROOM_OK);
	assert_int_equal(last, room_committed(room));
}

/* This worker (env->slot) counts a connection of member mid. */
static void
conn_on_slot(const struct room_ref *ref, int slot, uint64_t mid)
{
	struct room	*room;
	int		 saved = env->slot;

	env->slot = slot;
	room = relock(ref);
	assert_true(room_conn_count(room, 1) > 0);
	if (mid != 0)
		assert_int_equal(room_member_here(room, mid, 1), 1);
	room_unlock(room);
	env->slot = saved;
}

static int
connected(const struct room_ref *ref, uint64_t mid)
{
	struct room		*room = relock(ref);
	struct room_member	 m;

	assert_int_equal(room_member_by_mid(room, mid, &m), ROOM_OK);
	room_unlock(room);
	return m.connected;
}

/* Records read by room_read, as "seq:type:target:data;..." */
struct collect {
	char	 text[1024];
	int	 n;
	int	 stop_after;	/* 0: never stop */
};

static int
collect_rec(const struct room_rec *rec, void *arg)
{
	struct collect	*c = arg;
	size_t		 len = strlen(c->text);

	snprintf(c->text + len, sizeof(c->text) - len, "%llu:%d:%llu:%.*s;",
	    (unsigned long long)rec->seq, rec->type,
	    (unsigned long long)rec->target, (int)rec->len,
	    (const char *)rec->data);
	c->n++;
	return c->stop_after != 0 && c->n >= c->stop_after;
}

/* Members listed by room_members, as "name,name," */
static void
member_name(const struct room_member *m, void *arg)
{
	char	*names = arg;
	size_t	 len = strlen(names);

	snprintf(names + len, 256 - len, "%s,", m->name);
}

static int
is_hex(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL)
			return 0;
	return s[len] == '\0';
}

/* ------------------------------------------------------------------ */
/* Rooms */

static void
test_room_create_returns_the_room_locked_and_refuses_a_taken_or_bad_id(
    void **state)
{
	struct room	*room, *other;
	struct room_ref	 ref, refs[8];
	char		 id[ROOM_ID_MAX + 2];

	room = create(&seam_hist, "abc");
	ref = room_ref(room);
	assert_true(is_locked(&ref));
	assert_string_equal(room_id(room), "abc");
	assert_ptr_equal(room_dialect(room), &seam_hist);
	assert_int_equal(room_committed(room), 0);
	assert_int_equal(room_log_bytes(room), 0);
	assert_int_equal(room_conns(room), 0);
	assert_int_equal(room_member_count(room), 0);
	assert_int_equal(room_create(&seam_hist, "abc", NULL, &other),
	    ROOM_EEXIST);
	room_unlock(room);
	assert_false(is_locked(&ref));
	assert_int_equal(room_create(&seam_hist, "abc", NULL, &other),
	    ROOM_EEXIST);

	/* An id is per dialect. */
	room_unlock(create(&seam_relay, "abc"));

	/* 1 to ROOM_ID_MAX bytes. */
	assert_int_equal(room_create(&seam_hist, "", NULL, &other),
	    ROOM_EINVAL);
	memset(id, 'x', ROOM_ID_MAX + 1);
	id[ROOM_ID_MAX + 1] = '\0';
	assert_int_equal(room_create(&seam_hist, id, NULL, &other),
	    ROOM_EINVAL);
	id[ROOM_ID_MAX] = '\0';
	room_unlock(create(&seam_hist, id));
	room_unlock(create(&seam_hist, "a"));
	assert_int_equal(room_list(NULL, refs, 8), 4);
}

static void
test_room_create_counts_rooms_per_address_up_to_max_rooms_per_ip(
    void **state)
{
	uint64_t	 addr[2] = { 0x0a000001, 4 }, other[2] = { 0x0a000002,
			    4 };
	struct room	*room;
	struct room_ref	 ref;

	env->conf.max_rooms_per_ip = 2;
	assert_int_equal(room_create(&seam_hist, "r1", addr, &room), ROOM_OK);
	room_unlock(room);
	/* A taken id does not use up the count. */
	assert_int_equal(room_create(&seam_hist, "r1", addr, &room),
	    ROOM_EEXIST);
	assert_int_equal(room_create(&seam_hist, "r2", addr, &room), ROOM_OK);
	room_unlock(room);
	assert_int_equal(room_create(&seam_hist, "r3", addr, &room),
	    ROOM_ELIMIT);
	/* Not for another address, nor for none. */
	assert_int_equal(room_create(&seam_hist, "r3", other, &room), ROOM_OK);
	room_unlock(room);
	assert_int_equal(room_create(&seam_hist, "r4", NULL, &room), ROOM_OK);
	room_unlock(room);
	/* Deleting one of its rooms lets it make another. */
	assert_int_equal(room_find(&seam_hist, "r1", &ref), ROOM_OK);
	room_delete(relock(&ref), "test");
	assert_int_equal(room_create(&seam_hist, "r2", addr, &room),
	    ROOM_EEXIST);
	assert_int_equal(room_create(&seam_hist, "r5", addr, &room), ROOM_OK);
	room_unlock(room);
}

static void
test_room_create_unique_makes_ids_of_the_alphabet_and_length_asked(
    void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	char		 id[ROOM_ID_MAX + 2];
	int		 i;

	for (i = 0; i < 32; i++) {
		assert_int_equal(room_create_unique(&seam_hist, "ab7", 10,
		    NULL, id, &room), ROOM_OK);
		assert_int_equal(strlen(id), 10);
		assert_int_equal(strspn(id, "ab7"), 10);
		assert_string_equal(room_id(room), id);
		room_unlock(room);
		assert_int_equal(room_find(&seam_hist, id, &ref), ROOM_OK);
	}
	assert_int_equal(room_create_unique(&seam_hist, "xyz", ROOM_ID_MAX,
	    NULL, id, &room), ROOM_OK);
	assert_int_equal(strlen(id), ROOM_ID_MAX);
	room_unlock(room);
	assert_int_equal(room_create_unique(&seam_hist, "ab", 0, NULL, id,
	    &room), ROOM_EINVAL);
	assert_int_equal(room_create_unique(&seam_hist, "ab", ROOM_ID_MAX + 1,
	    NULL, id, &room), ROOM_EINVAL);

	/* With every id taken it gives up: ROOM_EEXIST. */
	assert_int_equal(room_create_unique(&seam_hist, "q", 3, NULL, id,
	    &room), ROOM_OK);
	assert_string_equal(id, "qqq");
	room_unlock(room);
	assert_int_equal(room_create_unique(&seam_hist, "q", 3, NULL, id,
	    &room), ROOM_EEXIST);
}

static void
test_room_create_unique_refuses_an_empty_alphabet(void **state)
{
	struct room_ref	 refs[4];
	struct room	*room;
	char		 id[8];

	assert_int_equal(room_create_unique(&seam_hist, "", 4, NULL, id,
	    &room), ROOM_EINVAL);
	assert_int_equal(room_list(NULL, refs, 4), 0);
}

static void
test_room_find_finds_a_room_by_its_dialect_and_id(void **state)
{
	struct room	*room;
	struct room_ref	 ref, found;

	room = create(&seam_hist, "here");
	ref = room_ref(room);
	room_unlock(room);
	assert_int_equal(room_find(&seam_hist, "here", &found), ROOM_OK);
	assert_int_equal(found.rid, ref.rid);
	assert_int_equal(found.off, ref.off);
	assert_int_equal(room_find(&seam_relay, "here", &found), ROOM_ENOENT);
	assert_int_equal(room_find(&seam_hist, "there", &found), ROOM_ENOENT);
	room = relock(&found);
	assert_string_equal(room_id(room), "here");
	room_delete(room, "test");
	assert_int_equal(room_find(&seam_hist, "here", &found), ROOM_ENOENT);
}

static int
has_rid(const struct room_ref *refs, size_t n, uint64_t rid)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (refs[i].rid == rid)
			return 1;
	return 0;
}

static void
test_room_list_lists_the_rooms_of_one_dialect_or_of_all(void **state)
{
	struct room_ref	 refs[16], made[5];
	struct room	*room;
	const char	*ids[5] = { "h1", "h2", "h3", "r1", "r2" };
	size_t		 n;
	int		 i;

	assert_int_equal(room_list(NULL, refs, 16), 0);
	for (i = 0; i < 5; i++) {
		room = create(i < 3 ? &seam_hist : &seam_relay, ids[i]);
		made[i] = room_ref(room);
		room_unlock(room);
	}
	n = room_list(&seam_hist, refs, 16);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++)
		assert_true(has_rid(refs, n, made[i].rid));
	n = room_list(&seam_relay, refs, 16);
	assert_int_equal(n, 2);
	for (i = 3; i < 5; i++)
		assert_true(has_rid(refs, n, made[i].rid));
	n = room_list(NULL, refs, 16);
	assert_int_equal(n, 5);
	for (i = 0; i < 5; i++)
		assert_true(has_rid(refs, n, made[i].rid));
	/* At most max. */
	assert_int_equal(room_list(NULL, refs, 2), 2);
	assert_int_equal(room_list(&seam_hist, refs, 1), 1);
}

static void
test_room_lock_of_a_deleted_room_fails_even_when_another_room_took_its_slot(
    void **state)
{
	struct room	*room;
	struct room_ref	 old, new;

	room = create(&seam_hist, "first");
	old = room_ref(room);
	room_delete(room, "test");
	assert_int_equal(room_lock(&old, &room), ROOM_ENOENT);

	room = create(&seam_hist, "second");
	new = room_ref(room);
	room_unlock(room);
	/* Room slots are reused: the new room is where the old one was. */
	assert_int_equal(new.off, old.off);
	assert_int_not_equal(new.rid, old.rid);
	assert_int_equal(room_lock(&old, &room), ROOM_ENOENT);
	room = relock(&new);
	assert_string_equal(room_id(room), "second");
	room_unlock(room);
	/* And the same id again: still not the old room. */
	room = relock(&new);
	room_delete(room, "test");
	room = create(&seam_hist, "first");
	room_unlock(room);
	assert_int_equal(room_lock(&old, &room), ROOM_ENOENT);
	assert_int_equal(room_lock(&new, &room), ROOM_ENOENT);
}

/* ------------------------------------------------------------------ */
/* Members */

static void
test_room_member_add_gives_fresh_ids_and_stops_at_room_max_members(
    void **state)
{
	struct room		*room;
	struct room_member	 a, b, c, d;
	char			 name[MEMBER_NAME_MAX + 2];

	env->conf.room_max_members = 3;
	room = create(&seam_hist, "m");
	assert_int_equal(room_member_add(room, "alice", MEMBER_ROLE_HOST, &a),
	    ROOM_OK);
	assert_int_equal(a.mid, 1);
	assert_int_equal(a.role, MEMBER_ROLE_HOST);
	assert_int_equal(a.authorities, 0);
	assert_int_equal(a.connected, 0);
	assert_string_equal(a.name, "alice");
	assert_int_equal(strlen(a.token), MEMBER_TOKEN_LEN);
	assert_true(is_hex(a.token, MEMBER_TOKEN_LEN));
	assert_int_equal(strlen(a.uid), MEMBER_UID_LEN);
	assert_true(a.joined >= util_now() - 5 && a.joined <= util_now());
	assert_int_equal(room_member_add(room, "bob", 0, &b), ROOM_OK);
	assert_int_equal(b.mid, 2);
	assert_string_not_equal(a.token, b.token);
	assert_string_not_equal(a.uid, b.uid);
	assert_int_equal(room_member_add(room, "carol", 0, &c), ROOM_OK);
	assert_int_equal(c.mid, 3);
	assert_int_equal(room_member_add(room, "dave", 0, &d), ROOM_ELIMIT);
	assert_int_equal(room_member_count(room), 3);

	/* A place freed is taken again, by a new member id. */
	assert_int_equal(room_member_remove(room, b.mid), ROOM_OK);
	assert_int_equal(room_member_add(room, "dave", 0, &d), ROOM_OK);
	assert_int_equal(d.mid, 4);
	assert_int_equal(room_member_add(room, "erin", 0, &d), ROOM_ELIMIT);

	/* Names of up to MEMBER_NAME_MAX bytes. */
	env->conf.room_max_members = 10;
	memset(name, 'n', MEMBER_NAME_MAX + 1);
	name[MEMBER_NAME_MAX + 1] = '\0';
	assert_int_equal(room_member_add(room, name, 0, &d), ROOM_EINVAL);
	name[MEMBER_NAME_MAX] = '\0';
	assert_int_equal(room_member_add(room, name, 0, &d), ROOM_OK);
	assert_string_equal(d.name, name);
	assert_int_equal(room_member_count(room), 4);
	room_unlock(room);
}

static void
test_room_member_lookups_find_a_member_by_name_token_uid_and_mid(
    void **state)
{
	const char		*uid = "0f8fad5b-d9cb-469f-a165-70867728950e";
	const char		*token = "00112233445566778899aabbccddeeff";
	struct room		*room;
	struct room_member	 a, b, m;

	room = create(&seam_relay, "look");
	assert_int_equal(room_member_add(room, "alice", 0, &a), ROOM_OK);
	assert_int_equal(room_member_add_id(room, "bob", 2, uid, token, &b),
	    ROOM_OK);
	assert_string_equal(b.uid, uid);
	assert_string_equal(b.token, token);

	assert_int_equal(room_member_by_name(room, "bob", &m), ROOM_OK);
	assert_int_equal(m.mid, b.mid);
	assert_int_equal(m.role, 2);
	assert_int_equal(room_member_by_token(room, token, &m), ROOM_OK);
	assert_int_equal(m.mid, b.mid);
	assert_int_equal(room_member_by_uid(room, uid, &m), ROOM_OK);
	assert_int_equal(m.mid, b.mid);
	assert_string_equal(m.name, "bob");
	assert_int_equal(room_member_by_mid(room, a.mid, &m), ROOM_OK);
	assert_string_equal(m.name, "alice");
	assert_string_equal(m.token, a.token);
	assert_int_equal(room_member_by_token(room, a.token, &m), ROOM_OK);
	assert_int_equal(m.mid, a.mid);
	assert_int_equal(room_member_by_uid(room, a.uid, &m), ROOM_OK);
	assert_int_equal(m.mid, a.mid);
	/* The copy is optional. */
	assert_int_equal(room_member_by_name(room, "alice", NULL), ROOM_OK);

	assert_int_equal(room_member_by_name(room, "carol", &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_token(room,
	    "ffffffffffffffffffffffffffffffff", &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_uid(room,
	    "00000000-0000-0000-0000-000000000000", &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_mid(room, 99, &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_mid(room, 0, &m), ROOM_ENOENT);

	/* A uid and a token of the wrong length are refused. */
	assert_int_equal(room_member_add_id(room, "c", 0, "short", token, &m),
	    ROOM_EINVAL);
	assert_int_equal(room_member_add_id(room, "c", 0, uid, "abc", &m),
	    ROOM_EINVAL);
	room_unlock(room);
}

static void
test_room_member_check_needs_the_uid_and_its_own_token(void **state)
{
	const char		*uid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
	const char		*token = "0123456789abcdef0123456789abcdef";
	char			 wrong[MEMBER_TOKEN_LEN + 1];
	struct room		*room;
	struct room_member	 a, b, m;

	room = create(&seam_hist, "check");
	assert_int_equal(room_member_add(room, "alice", 0, &a), ROOM_OK);
	assert_int_equal(room_member_add_id(room, "bob", 0, uid, token, &b),
	    ROOM_OK);
	memset(&m, 0, sizeof(m));
	assert_int_equal(room_member_check(room, uid, token, &m), ROOM_OK);
	assert_int_equal(m.mid, b.mid);
	assert_string_equal(m.name, "bob");

	/* One character off, the last or the first. */
	memcpy(wrong, token, sizeof(wrong));
	wrong[MEMBER_TOKEN_LEN - 1] = 'e';
	assert_int_equal(room_member_check(room, uid, wrong, &m), ROOM_ENOENT);
	memcpy(wrong, token, sizeof(wrong));
	wrong[0] = '1';
	assert_int_equal(room_member_check(room, uid, wrong, &m), ROOM_ENOENT);
	/* Another member's token, a prefix, a longer one, an empty one. */
	assert_int_equal(room_member_check(room, uid, a.token, &m),
	    ROOM_ENOENT);
	assert_int_equal(room_member_check(room, uid, "0123456789abcdef", &m),
	    ROOM_ENOENT);
	assert_int_equal(room_member_check(room, uid,
	    "0123456789abcdef0123456789abcdef0", &m), ROOM_ENOENT);
	assert_int_equal(room_member_check(room, uid, "", &m), ROOM_ENOENT);
	/* The token of a member under another uid. */
	assert_int_equal(room_member_check(room, a.uid, token, &m),
	    ROOM_ENOENT);
	assert_int_equal(room_member_check(room, a.uid, a.token, &m), ROOM_OK);
	assert_int_equal(m.mid, a.mid);
	assert_int_equal(room_member_check(room,
	    "00000000-0000-0000-0000-000000000000", token, &m), ROOM_ENOENT);
	room_unlock(room);
}

static void
test_room_member_set_and_remove_change_what_every_lookup_sees(void **state)
{
	struct room		*room;
	struct room_member	 a, b, m;
	struct room_ref		 ref;

	room = create(&seam_hist, "set");
	ref = room_ref(room);
	assert_int_equal(room_member_add(room, "alice", 0, &a), ROOM_OK);
	assert_int_equal(room_member_add(room, "bob", 0, &b), ROOM_OK);
	assert_int_equal(room_member_set(room, a.mid, MEMBER_ROLE_HOST, 0x6),
	    ROOM_OK);
	assert_int_equal(room_member_set(room, 77, 1, 1), ROOM_ENOENT);
	room_unlock(room);

	/* Committed: seen under a new lock. */
	room = relock(&ref);
	assert_int_equal(room_member_by_mid(room, a.mid, &m), ROOM_OK);
	assert_int_equal(m.role, MEMBER_ROLE_HOST);
	assert_int_equal(m.authorities, 0x6);
	assert_int_equal(room_member_by_mid(room, b.mid, &m), ROOM_OK);
	assert_int_equal(m.role, 0);
	assert_int_equal(m.authorities, 0);
	assert_int_equal(room_member_set(room, a.mid, 0, 0x1), ROOM_OK);
	assert_int_equal(room_member_by_name(room, "alice", &m), ROOM_OK);
	assert_int_equal(m.role, 0);
	assert_int_equal(m.authorities, 0x1);

	assert_int_equal(room_member_count(room), 2);
	assert_int_equal(room_member_remove(room, a.mid), ROOM_OK);
	assert_int_equal(room_member_count(room), 1);
	assert_int_equal(room_member_remove(room, a.mid), ROOM_ENOENT);
	assert_int_equal(room_member_by_mid(room, a.mid, &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_name(room, "alice", &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_token(room, a.token, &m),
	    ROOM_ENOENT);
	assert_int_equal(room_member_by_uid(room, a.uid, &m), ROOM_ENOENT);
	assert_int_equal(room_member_check(room, a.uid, a.token, &m),
	    ROOM_ENOENT);
	room_unlock(room);

	room = relock(&ref);
	assert_int_equal(room_member_count(room), 1);
	assert_int_equal(room_member_by_name(room, "bob", &m), ROOM_OK);
	assert_int_equal(room_member_remove(room, b.mid), ROOM_OK);
	assert_int_equal(room_member_count(room), 0);
	room_unlock(room);
}

static void
test_room_members_lists_the_members_in_the_order_they_joined(void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	char		 names[256] = "";
	uint64_t	 alice;

	room = create(&seam_hist, "order");
	ref = room_ref(room);
	alice = add(room, "alice");
	add(room, "bob");
	add(room, "carol");
	room_members(room, member_name, names);
	assert_string_equal(names, "alice,bob,carol,");
	assert_int_equal(room_member_remove(room, alice), ROOM_OK);
	room_unlock(room);

	/* dave joins after bob and carol, in alice's old place. */
	room = relock(&ref);
	add(room, "dave");
	names[0] = '\0';
	room_members(room, member_name, names);
	assert_string_equal(names, "bob,carol,dave,");
	room_unlock(room);
}

/* ------------------------------------------------------------------ */
/* The op log */

static void
test_room_read_after_each_cursor_gives_exactly_the_later_records_in_order(
    void **state)
{
	struct room_rec_in	 batch[3] = {
		{ "r2", 2, 5, 20 }, { "r3", 2, 6, 30 }, { "r4", 2, 7, 40 } };
	struct room_rec_in	 one = { "r1", 2, 4, 10 };
	struct room_rec_in	 five = { "r5", 2, 8, 50 };
	const char		*all = "1:4:10:r1;2:5:20:r2;3:6:30:r3;"
				    "4:7:40:r4;5:8:50:r5;";
	struct collect		 c;
	struct room		*room;
	struct room_ref		 ref;
	uint64_t		 last, after;
	const char		*p;
	int			 i;

	room = create(&seam_hist, "log");
	ref = room_ref(room);
	assert_int_equal(room_append(room, &one, 1, &last), ROOM_OK);
	assert_int_equal(last, 1);
	room_unlock(room);
	room = relock(&ref);
	assert_int_equal(room_append(room, batch, 3, &last), ROOM_OK);
	assert_int_equal(last, 4);
	assert_int_equal(room_append(room, &five, 1, &last), ROOM_OK);
	assert_int_equal(last, 5);
	assert_int_equal(room_committed(room), 5);
	assert_true(room_log_bytes(room) >= 10);
	room_unlock(room);

	room = relock(&ref);
	for (after = 0; after <= 6; after++) {
		memset(&c, 0, sizeof(c));
		room_read(room, after, collect_rec, &c);
		assert_int_equal(c.n, after >= 5 ? 0 : 5 - (int)after);
		/* The suffix of all after the first "after" records. */
		for (p = all, i = 0; i < (int)after && *p != '\0'; i++)
			p = strchr(p, ';') + 1;
		assert_string_equal(c.text, p);
	}
	/* The reader stops when fn says so. */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	room_read(room, 1, collect_rec, &c);
	assert_string_equal(c.text, "2:5:20:r2;3:6:30:r3;");
	room_unlock(room);
}

static void
test_room_read_one_copies_one_record_or_fails_with_enoent(void **state)
{
	struct room	*room;
	char		*buf;
	size_t		 len;

	room = create(&seam_hist, "one");
	assert_int_equal(room_read_one(room, 1, &buf, &len), ROOM_ENOENT);
	append(room, "first");
	append(room, "second");
	append(room, "third");
	assert_int_equal(room_read_one(room, 2, &buf, &len), ROOM_OK);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "second");	/* NUL-terminated */
	free(buf);
	assert_int_equal(room_read_one(room, 3, &buf, &len), ROOM_OK);
	assert_string_equal(buf, "third");
	free(buf);
	assert_int_equal(room_read_one(room, 1, &buf, &len), ROOM_OK);
	assert_string_equal(buf, "first");
	free(buf);
	assert_int_equal(room_read_one(room, 0, &buf, &len), ROOM_ENOENT);
	assert_int_equal(room_read_one(room, 4, &buf, &len), ROOM_ENOENT);
	room_unlock(room);
}

static void
test_room_append_past_room_log_max_bytes_fails_and_appends_nothing(
    void **state)
{
	static char		 big[200];
	struct room_rec_in	 recs[8];
	struct room		*room;
	struct room_ref		 ref;
	struct collect		 c;
	uint64_t		 bytes, appends, last = 99;
	size_t			 i;

	env->conf.room_log_max_bytes = 1024;
	memset(big, 'b', sizeof(big));
	for (i = 0; i < 8; i++) {
		recs[i].data = big;
		recs[i].len = sizeof(big);
		recs[i].type = 0;
		recs[i].target = 0;
	}
	room = create(&seam_hist, "full");
	ref = room_ref(room);
	append(room, "x");
	bytes = room_log_bytes(room);
	appends = stats_dget(seam_hist.id, STAT_D_APPENDS);
	/* 8 * 200 bytes: over the limit as a batch. */
	assert_int_equal(room_append(room, recs, 8, &last), ROOM_ELIMIT);
	assert_int_equal(last, 99);
	assert_int_equal(room_committed(room), 1);
	assert_int_equal(room_log_bytes(room), bytes);
	assert_int_equal(stats_dget(seam_hist.id, STAT_D_APPENDS), appends);
	room_unlock(room);

	room = relock(&ref);
	assert_int_equal(room_committed(room), 1);
	memset(&c, 0, sizeof(c));
	room_read(room, 0, collect_rec, &c);
	assert_string_equal(c.text, "1:0:0:x;");
	/* Up to the limit it goes in. */
	assert_int_equal(room_append(room, recs, 2, &last), ROOM_OK);
	assert_int_equal(last, 3);
	room_unlock(room);
}

static void
test_room_append_counts_its_records_for_the_rooms_dialect(void **state)
{
	struct room_rec_in	 recs[3] = { { "a", 1, 0, 0 }, { "b", 1, 0, 0 },
				    { "c", 1, 0, 0 } };
	struct room		*hist, *relay;
	uint64_t		 last;

	assert_int_equal(stats_dget(seam_hist.id, STAT_D_APPENDS), 0);
	hist = create(&seam_hist, "h");
	assert_int_equal(room_append(hist, recs, 3, &last), ROOM_OK);
	assert_int_equal(room_append(hist, recs, 1, &last), ROOM_OK);
	room_unlock(hist);
	assert_int_equal(stats_dget(seam_hist.id, STAT_D_APPENDS), 4);
	assert_int_equal(stats_dget(seam_relay.id, STAT_D_APPENDS), 0);

	relay = create(&seam_relay, "r");
	assert_int_equal(room_publish(relay, AUD_ALL, 0, "hi", 2), ROOM_OK);
	room_unlock(relay);
	assert_int_equal(stats_dget(seam_relay.id, STAT_D_APPENDS), 1);
	assert_int_equal(stats_dget(seam_hist.id, STAT_D_APPENDS), 4);
}

/* ------------------------------------------------------------------ */
/* Delivery: history rooms */

static void
test_history_delivery_sends_each_conn_one_frame_of_the_records_after_its_cursor(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct fake_conn	*b = seam_conn(&seam_hist_mount);
	struct fake_conn	*c = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	uint64_t		 m1, m2, m3;

	room = create(&seam_hist, "canvas");
	ref = room_ref(room);
	m1 = add(room, "one");
	m2 = add(room, "two");
	m3 = add(room, "three");
	assert_int_equal(fanout_attach(room, &a->c, m1), ROOM_OK);
	assert_int_equal(fanout_attach(room, &c->c, m3), ROOM_OK);
	assert_int_equal(a->c.cursor, 0);
	append(room, "a");
	assert_int_equal(fanout_attach(room, &b->c, m2), ROOM_OK);
	assert_int_equal(b->c.cursor, 1);
	assert_int_equal(b->c.mid, m2);
	assert_int_equal(room_conns(room), 3);
	room_unlock(room);

	room = relock(&ref);
	append(room, "b");
	append(room, "c");
	room_unlock(room);
	/* Nothing is sent before the end of the iteration... */
	assert_int_equal(a->nframes, 0);
	assert_true(seam_flush_later_calls > 0);
	fanout_flush();
	/* ...then one frame each. */
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "[1:a,2:b,3:c]");
	assert_int_equal(c->nframes, 1);
	assert_string_equal(c->frames[0], "[1:a,2:b,3:c]");
	assert_int_equal(b->nframes, 1);
	assert_string_equal(b->frames[0], "[2:b,3:c]");
	/* a and c, at one cursor, shared one frame: 3 + 2 records. */
	assert_int_equal(seam_frame_adds, 5);
	assert_int_equal(a->c.cursor, 3);
	assert_int_equal(b->c.cursor, 3);
	assert_false(a->c.behind);
	/* No other worker has connections: no doorbell. */
	assert_int_equal(seam_nrings, 0);

	/* Nothing new, nothing sent. */
	fanout_flush();
	assert_int_equal(a->nframes, 1);
	room = relock(&ref);
	append(room, "d");
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 2);
	assert_string_equal(a->frames[1], "[4:d]");
	assert_string_equal(b->frames[1], "[4:d]");
	assert_string_equal(c->frames[1], "[4:d]");
}

static void
test_appends_in_one_iteration_ring_each_other_worker_once_with_the_last_seq(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	struct doorbell		 db;
	uint64_t		 m;

	room = create(&seam_hist, "ring");
	ref = room_ref(room);
	m = add(room, "one");
	assert_int_equal(fanout_attach(room, &a->c, m), ROOM_OK);
	room_unlock(room);
	conn_on_slot(&ref, 2, 0);
	conn_on_slot(&ref, 5, 0);

	room = relock(&ref);
	append(room, "a");
	room_unlock(room);
	room = relock(&ref);
	append(room, "b");
	room_unlock(room);
	assert_int_equal(seam_nrings, 0);
	fanout_flush();
	assert_int_equal(seam_rung(2, DOORBELL_APPEND, &db), 1);
	assert_int_equal(db.rid, ref.rid);
	assert_int_equal(db.off, ref.off);
	assert_int_equal(db.seq, 2);
	assert_int_equal(db.from, 0);
	assert_int_equal(seam_rung(5, DOORBELL_APPEND, NULL), 1);
	assert_int_equal(seam_rung_slots(DOORBELL_APPEND),
	    (1ULL << 2) | (1ULL << 5));
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "[1:a,2:b]");
	assert_int_equal(stats_get(STAT_DOORBELLS), 2);

	/* A full inbox keeps its doorbell until a later flush. */
	seam_clear();
	seam_full_slots = 1ULL << 5;
	room = relock(&ref);
	append(room, "c");
	room_unlock(room);
	fanout_flush();
	assert_int_equal(seam_rung(2, DOORBELL_APPEND, NULL), 1);
	assert_int_equal(seam_rung(5, DOORBELL_APPEND, NULL), 0);
	seam_full_slots = 0;
	fanout_flush();
	assert_int_equal(seam_rung(5, DOORBELL_APPEND, &db), 1);
	assert_int_equal(db.seq, 3);
	assert_int_equal(seam_rung(2, DOORBELL_APPEND, NULL), 1);
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "[3:c]");
}

static void
test_history_conn_with_full_output_is_behind_and_catches_up_when_drained(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct fake_conn	*b = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;

	room = create(&seam_hist, "slow");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "a")), ROOM_OK);
	assert_int_equal(fanout_attach(room, &b->c, add(room, "b")), ROOM_OK);
	room_unlock(room);

	a->full = 1;
	room = relock(&ref);
	append(room, "x");
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 0);
	assert_true(a->c.behind);
	assert_int_equal(a->c.cursor, 0);
	assert_int_equal(b->nframes, 1);
	assert_string_equal(b->frames[0], "[1:x]");

	room = relock(&ref);
	append(room, "y");
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 0);
	/* Still full: draining some is not enough. */
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 0);
	assert_true(a->c.behind);

	a->full = 0;
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "[1:x,2:y]");
	assert_false(a->c.behind);
	assert_int_equal(a->c.cursor, 2);
	/* Caught up: a drain sends nothing more. */
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 1);
	assert_int_equal(b->nframes, 2);
	assert_string_equal(b->frames[1], "[2:y]");

	/* fanout_catch_up sends an empty message only when asked. */
	fanout_catch_up(&a->c, 0);
	assert_int_equal(a->nframes, 1);
	fanout_catch_up(&a->c, 1);
	assert_int_equal(a->nframes, 2);
	assert_string_equal(a->frames[1], "[]");
}

static void
test_history_frame_is_cut_at_about_output_buffer_bytes(void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	char			 text[16];
	int			 i;

	/* Each record adds 10 bytes ("[1:rec-001", ",2:rec-002"): a frame
	 * ends with the record that takes it to 20 bytes or more. */
	env->conf.output_buffer_bytes = 20;
	room = create(&seam_hist, "cut");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "a")), ROOM_OK);
	for (i = 1; i <= 5; i++) {
		snprintf(text, sizeof(text), "rec-%03d", i);
		append(room, text);
	}
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "[1:rec-001,2:rec-002]");
	assert_true(a->c.behind);
	assert_int_equal(a->c.cursor, 2);
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 2);
	assert_string_equal(a->frames[1], "[3:rec-003,4:rec-004]");
	assert_true(a->c.behind);
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 3);
	assert_string_equal(a->frames[2], "[5:rec-005]");
	assert_false(a->c.behind);
	assert_int_equal(a->c.cursor, 5);
	fanout_drained(&a->c);
	assert_int_equal(a->nframes, 3);

	/* One record bigger than the buffer still goes, alone. */
	room = relock(&ref);
	append(room, "a-record-of-more-than-twenty-bytes");
	append(room, "z");
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 4);
	assert_string_equal(a->frames[3],
	    "[6:a-record-of-more-than-twenty-bytes]");
	fanout_drained(&a->c);
	assert_string_equal(a->frames[4], "[7:z]");
}

static void
test_history_conns_at_more_cursors_than_the_frame_cache_each_get_their_records(
    void **state)
{
	struct fake_conn	*f[10];
	struct room		*room;
	struct room_ref		 ref;
	char			 text[16], want[16];
	size_t			 len;
	int			 i;

	room = create(&seam_hist, "many");
	ref = room_ref(room);
	room_unlock(room);
	/* One lock each: a lock's journal holds a few dozen changes. */
	for (i = 0; i < 10; i++) {
		room = relock(&ref);
		f[i] = seam_conn(&seam_hist_mount);
		snprintf(text, sizeof(text), "m%d", i);
		assert_int_equal(fanout_attach(room, &f[i]->c, add(room, text)),
		    ROOM_OK);
		snprintf(text, sizeof(text), "r%d", i + 1);
		append(room, text);
		room_unlock(room);
	}
	fanout_flush();
	for (i = 0; i < 10; i++) {
		assert_int_equal(f[i]->nframes, 1);
		assert_int_equal(f[i]->c.cursor, 10);
		/* From the record after its cursor to the last. */
		snprintf(want, sizeof(want), "[%d:r%d", i + 1, i + 1);
		assert_memory_equal(f[i]->frames[0], want, strlen(want));
		len = strlen(f[i]->frames[0]);
		assert_true(len >= 7);
		assert_string_equal(f[i]->frames[0] + len - 7, "10:r10]");
	}
	assert_string_equal(f[8]->frames[0], "[9:r9,10:r10]");
}

/* ------------------------------------------------------------------ */
/* Delivery: relay rooms */

struct relay_fx {
	struct room_ref		 ref;
	struct fake_conn	*a, *b, *c;	/* members 1, 2, 3 */
	uint64_t		 m1, m2, m3;
};

/* A relay room with three members, one connection each; a and c are
 * tagged 5, b 6. */
static void
relay_room(struct relay_fx *x)
{
	struct room	*room;

	x->a = seam_conn(&seam_relay_mount);
	x->b = seam_conn(&seam_relay_mount);
	x->c = seam_conn(&seam_relay_mount);
	x->a->tag = x->c->tag = 5;
	x->b->tag = 6;
	room = create(&seam_relay, "relay");
	x->ref = room_ref(room);
	x->m1 = add(room, "one");
	x->m2 = add(room, "two");
	x->m3 = add(room, "three");
	assert_int_equal(fanout_attach(room, &x->a->c, x->m1), ROOM_OK);
	assert_int_equal(fanout_attach(room, &x->b->c, x->m2), ROOM_OK);
	assert_int_equal(fanout_attach(room, &x->c->c, x->m3), ROOM_OK);
	room_unlock(room);
}

static void
publish(const struct room_ref *ref, enum room_audience aud, uint64_t mid,
    const char *text)
{
	struct room	*room = relock(ref);

	assert_int_equal(room_publish(room, aud, mid, text, strlen(text)),
	    ROOM_OK);
	room_unlock(room);
	fanout_flush();
}

static void
test_relay_aud_all_reaches_every_member_and_only_what_came_after_it_joined(
    void **state)
{
	struct relay_fx		 x;
	struct fake_conn	*d = seam_conn(&seam_relay_mount);
	struct room		*room;

	relay_room(&x);
	publish(&x.ref, AUD_ALL, 0, "hello");
	assert_int_equal(x.a->nframes, 1);
	assert_string_equal(x.a->frames[0], "hello");
	assert_int_equal(x.b->nframes, 1);
	assert_string_equal(x.b->frames[0], "hello");
	assert_int_equal(x.c->nframes, 1);
	assert_string_equal(x.c->frames[0], "hello");

	room = relock(&x.ref);
	assert_int_equal(fanout_attach(room, &d->c, add(room, "four")),
	    ROOM_OK);
	room_unlock(room);
	publish(&x.ref, AUD_ALL, 0, "again");
	assert_int_equal(d->nframes, 1);
	assert_string_equal(d->frames[0], "again");
	assert_int_equal(x.a->nframes, 2);
	assert_string_equal(x.a->frames[1], "again");
	assert_int_equal(x.a->ncloses + x.b->ncloses + x.c->ncloses, 0);
}

static void
test_relay_aud_all_but_reaches_every_member_but_the_target(void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	publish(&x.ref, AUD_ALL_BUT, x.m2, "not two");
	assert_int_equal(x.a->nframes, 1);
	assert_string_equal(x.a->frames[0], "not two");
	assert_int_equal(x.b->nframes, 0);
	assert_int_equal(x.c->nframes, 1);
	assert_int_equal(x.a->ncloses + x.b->ncloses + x.c->ncloses, 0);
}

static void
test_relay_aud_member_reaches_only_the_target(void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	publish(&x.ref, AUD_MEMBER, x.m2, "just two");
	assert_int_equal(x.a->nframes, 0);
	assert_int_equal(x.b->nframes, 1);
	assert_string_equal(x.b->frames[0], "just two");
	assert_int_equal(x.c->nframes, 0);
	assert_int_equal(x.a->ncloses + x.b->ncloses + x.c->ncloses, 0);
}

static void
test_relay_aud_close_member_sends_then_closes_the_target_with_1000(
    void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	publish(&x.ref, AUD_CLOSE_MEMBER, x.m2, "bye");
	assert_int_equal(x.b->nframes, 1);
	assert_string_equal(x.b->frames[0], "bye");
	assert_int_equal(x.b->ncloses, 1);
	assert_int_equal(x.b->close_code, 1000);
	assert_int_equal(x.a->nframes + x.c->nframes, 0);
	assert_int_equal(x.a->ncloses + x.c->ncloses, 0);

	/* With nothing to say, just the close. */
	publish(&x.ref, AUD_CLOSE_MEMBER, x.m1, "");
	assert_int_equal(x.a->nframes, 0);
	assert_int_equal(x.a->ncloses, 1);
	assert_int_equal(x.a->close_code, 1000);
	assert_int_equal(x.c->ncloses, 0);
}

static void
test_relay_aud_close_all_but_sends_then_closes_all_but_the_target_with_1000(
    void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	publish(&x.ref, AUD_CLOSE_ALL_BUT, x.m2, "all out");
	assert_int_equal(x.a->nframes, 1);
	assert_string_equal(x.a->frames[0], "all out");
	assert_int_equal(x.a->ncloses, 1);
	assert_int_equal(x.a->close_code, 1000);
	assert_int_equal(x.c->nframes, 1);
	assert_int_equal(x.c->ncloses, 1);
	assert_int_equal(x.c->close_code, 1000);
	assert_int_equal(x.b->nframes, 0);
	assert_int_equal(x.b->ncloses, 0);
}

static void
test_relay_aud_tag_reaches_the_members_relay_match_picks(void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	publish(&x.ref, AUD_TAG, 5, "tag five");
	assert_int_equal(seam_relay_matches, 3);
	assert_string_equal(seam_relay_text, "6 tag five");
	assert_int_equal(x.a->nframes, 1);
	assert_string_equal(x.a->frames[0], "tag five");
	assert_int_equal(x.c->nframes, 1);
	assert_int_equal(x.b->nframes, 0);
	publish(&x.ref, AUD_TAG, 6, "tag six");
	assert_int_equal(x.b->nframes, 1);
	assert_string_equal(x.b->frames[0], "tag six");
	assert_int_equal(x.a->nframes, 1);
	publish(&x.ref, AUD_TAG, 7, "nobody");
	assert_int_equal(x.a->nframes + x.b->nframes + x.c->nframes, 3);
	assert_int_equal(x.a->ncloses + x.b->ncloses + x.c->ncloses, 0);
}

static void
test_relay_member_with_full_output_is_closed_with_1008(void **state)
{
	struct relay_fx	 x;

	relay_room(&x);
	x.b->full = 1;
	publish(&x.ref, AUD_ALL, 0, "fast");
	assert_int_equal(x.b->nframes, 0);
	assert_int_equal(x.b->ncloses, 1);
	assert_int_equal(x.b->close_code, 1008);
	assert_int_equal(x.a->nframes, 1);
	assert_int_equal(x.c->nframes, 1);
	assert_int_equal(x.a->ncloses + x.c->ncloses, 0);
}

static void
test_relay_records_are_delivered_in_log_order(void **state)
{
	struct relay_fx	 x;
	struct room	*room;

	relay_room(&x);
	room = relock(&x.ref);
	assert_int_equal(room_publish(room, AUD_ALL, 0, "1", 1), ROOM_OK);
	assert_int_equal(room_publish(room, AUD_MEMBER, x.m1, "2", 1),
	    ROOM_OK);
	assert_int_equal(room_publish(room, AUD_ALL_BUT, x.m1, "3", 1),
	    ROOM_OK);
	assert_int_equal(room_publish(room, AUD_ALL, 0, "4", 1), ROOM_OK);
	room_unlock(room);
	fanout_flush();
	assert_int_equal(x.a->nframes, 3);
	assert_string_equal(x.a->frames[0], "1");
	assert_string_equal(x.a->frames[1], "2");
	assert_string_equal(x.a->frames[2], "4");
	assert_int_equal(x.b->nframes, 3);
	assert_string_equal(x.b->frames[0], "1");
	assert_string_equal(x.b->frames[1], "3");
	assert_string_equal(x.b->frames[2], "4");
}

/* n records of 1000 bytes, one lock each (a lock's journal holds a few
 * dozen changes), then one more, left locked. */
static struct room *
publish_big(const struct room_ref *ref, int n)
{
	static char	 big[1000];
	struct room	*room;
	int		 i;

	memset(big, 'p', sizeof(big));
	for (i = 0; i <= n; i++) {
		room = relock(ref);
		assert_int_equal(room_publish(room, AUD_ALL, 0, big,
		    sizeof(big)), ROOM_OK);
		if (i == n)
			break;
		room_unlock(room);
	}
	return room;
}

static int
readable(struct room *room, uint64_t seq)
{
	char	*buf;
	size_t	 len;

	if (room_read_one(room, seq, &buf, &len) != 0)
		return 0;
	free(buf);
	return 1;
}

static void
test_relay_log_is_kept_for_the_slowest_worker_and_from_keep_from(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_relay_mount);
	struct room		*room;
	struct room_ref		 ref;
	uint64_t		 bytes;

	/* 64 KiB chunks: 1000-byte records fill a few. */
	room = create(&seam_relay, "trim");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "a")), ROOM_OK);
	room_unlock(room);
	conn_on_slot(&ref, 3, 0);	/* worker 3 reads nothing yet */

	room = publish_big(&ref, 299);
	room_unlock(room);
	fanout_flush();			/* this worker read it all */
	assert_int_equal(a->nframes, 300);
	room = publish_big(&ref, 0);
	assert_true(readable(room, 1));
	bytes = room_log_bytes(room);
	assert_true(bytes >= 301 * 1000);
	room_unlock(room);
	fanout_flush();

	/* Worker 3 catches up: the next publish trims behind it. */
	env->slot = 3;
	room = relock(&ref);
	room_seen(room, room_committed(room));
	room_unlock(room);
	env->slot = 0;
	room = relock(&ref);
	room_keep_from(room, 250);
	room_unlock(room);
	room = publish_big(&ref, 0);
	assert_false(readable(room, 1));
	assert_true(readable(room, 250));
	assert_true(readable(room, 302));
	assert_true(room_log_bytes(room) < bytes);
	room_unlock(room);
	fanout_flush();

	/* Everyone keeps reading: still nothing from 250 on goes. */
	env->slot = 3;
	room = relock(&ref);
	room_seen(room, room_committed(room));
	room_unlock(room);
	env->slot = 0;
	room = publish_big(&ref, 199);
	room_unlock(room);
	fanout_flush();
	env->slot = 3;
	room = relock(&ref);
	room_seen(room, room_committed(room));
	room_unlock(room);
	env->slot = 0;
	room = publish_big(&ref, 0);
	assert_true(readable(room, 250));
	assert_true(readable(room, 400));
	assert_false(readable(room, 100));
	assert_int_equal(room_committed(room), 503);
	room_unlock(room);
}

/* ------------------------------------------------------------------ */
/* Presence */

static void
test_member_with_two_conns_here_stays_connected_until_both_detach(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct fake_conn	*b = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	uint64_t		 m;
	int			 present = -1;

	room = create(&seam_hist, "two");
	ref = room_ref(room);
	m = add(room, "m");
	assert_int_equal(fanout_attach(room, &a->c, m), ROOM_OK);
	assert_int_equal(fanout_attach(room, &b->c, m), ROOM_OK);
	assert_int_equal(room_conns(room), 2);
	room_unlock(room);
	assert_true(connected(&ref, m));

	assert_int_equal(fanout_detach(&a->c, 1, &present), 1);
	assert_int_equal(present, 1);
	assert_null(a->c.room);
	assert_true(connected(&ref, m));

	assert_int_equal(fanout_detach(&b->c, 0, &present), 0);
	assert_int_equal(present, 0);
	assert_false(connected(&ref, m));
	/* Not asked to, so the room stays. */
	room = relock(&ref);
	assert_int_equal(room_conns(room), 0);
	room_unlock(room);
	/* A second detach is a no-op. */
	assert_int_equal(fanout_detach(&b->c, 0, &present), -1);
	assert_int_equal(present, 0);
}

static void
test_fanout_detach_of_the_last_conn_deletes_the_room_when_asked(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	int			 present = -1;

	room = create(&seam_hist, "last");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "m")), ROOM_OK);
	room_unlock(room);
	assert_int_equal(fanout_detach(&a->c, 1, &present), 0);
	assert_int_equal(present, 0);
	assert_int_equal(room_lock(&ref, &room), ROOM_ENOENT);
	assert_int_equal(room_find(&seam_hist, "last", &ref), ROOM_ENOENT);
	/* Detached first: not closed by the deletion. */
	assert_int_equal(a->ncloses, 0);
}

static void
test_member_here_on_two_slots_stays_connected_until_both_clear(
    void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	uint64_t	 m;

	room = create(&seam_relay, "slots");
	ref = room_ref(room);
	m = add(room, "m");
	room_unlock(room);
	assert_false(connected(&ref, m));

	env->slot = 1;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 1), 1);
	room_unlock(room);
	env->slot = 2;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 1), 1);
	assert_int_equal(room_member_here(room, 99, 1), ROOM_ENOENT);
	room_unlock(room);

	env->slot = 1;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 0), 1);
	/* Twice is the same. */
	assert_int_equal(room_member_here(room, m, 0), 1);
	room_unlock(room);
	assert_true(connected(&ref, m));

	/* The master answers for nobody: it only reads. */
	env->slot = -1;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 0), 1);
	room_unlock(room);

	env->slot = 2;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 0), 0);
	room_unlock(room);
	assert_false(connected(&ref, m));
	env->slot = -1;
	room = relock(&ref);
	assert_int_equal(room_member_here(room, m, 1), 0);
	room_unlock(room);
}

/* ------------------------------------------------------------------ */
/* A member lost with its worker */

static void
lost_publish_and_remove(struct room *room, const struct room_member *m)
{
	char	 text[MEMBER_NAME_MAX + 8];

	snprintf(text, sizeof(text), "lost %s", m->name);
	assert_int_equal(room_publish(room, AUD_ALL_BUT, m->mid, text,
	    strlen(text)), ROOM_OK);
	assert_int_equal(room_member_remove(room, m->mid), ROOM_OK);
}

static void
test_member_lost_is_reported_once_when_its_last_slot_dies(void **state)
{
	struct room		*room;
	struct room_ref		 ref;
	struct room_member	 m;
	struct collect		 c;
	struct doorbell		 db;
	char			 want[64];
	uint64_t		 lost, other, idle;

	room = create(&seam_relay, "lost");
	ref = room_ref(room);
	lost = add(room, "lost");
	other = add(room, "other");
	idle = add(room, "idle");	/* never connected */
	room_unlock(room);
	conn_on_slot(&ref, 1, lost);
	conn_on_slot(&ref, 2, lost);
	conn_on_slot(&ref, 3, other);
	seam_clear();
	seam_lost_fn = lost_publish_and_remove;

	env->slot = -1;			/* the master */
	room_slot_dead(1);
	assert_int_equal(seam_nlost, 0);
	assert_true(connected(&ref, lost));
	assert_int_equal(seam_nrings, 0);

	room_slot_dead(2);
	assert_int_equal(seam_nlost, 1);
	assert_int_equal(seam_lost[0].rid, ref.rid);
	assert_int_equal(seam_lost[0].m.mid, lost);
	assert_string_equal(seam_lost[0].m.name, "lost");
	assert_int_equal(seam_lost[0].m.connected, 0);
	assert_true(seam_lost[0].locked);
	assert_false(is_locked(&ref));

	/* What member_lost did is committed: the record, the removal. */
	room = relock(&ref);
	assert_int_equal(room_member_by_mid(room, lost, &m), ROOM_ENOENT);
	assert_int_equal(room_member_by_mid(room, idle, &m), ROOM_OK);
	assert_int_equal(room_member_count(room), 2);
	assert_int_equal(room_committed(room), 1);
	assert_int_equal(room_conns(room), 1);
	memset(&c, 0, sizeof(c));
	room_read(room, 0, collect_rec, &c);
	snprintf(want, sizeof(want), "1:%d:%llu:lost lost;", AUD_ALL_BUT,
	    (unsigned long long)lost);
	assert_string_equal(c.text, want);
	room_unlock(room);
	/* Rung now (the master has no iteration) to the slot left. */
	assert_int_equal(seam_rung(3, DOORBELL_APPEND, &db), 1);
	assert_int_equal(db.rid, ref.rid);
	assert_int_equal(db.seq, 1);
	assert_int_equal(db.from, UINT32_MAX);
	assert_int_equal(seam_rung_slots(DOORBELL_APPEND), 1ULL << 3);

	room_slot_dead(2);
	room_slot_dead(1);
	assert_int_equal(seam_nlost, 1);
	room_slot_dead(3);
	assert_int_equal(seam_nlost, 2);
	assert_int_equal(seam_lost[1].m.mid, other);
}

static void
test_member_lost_in_a_dialect_without_member_lost_just_disconnects(
    void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	uint64_t	 m;

	room = create(&seam_hist, "quiet");
	ref = room_ref(room);
	m = add(room, "m");
	room_unlock(room);
	conn_on_slot(&ref, 5, m);
	env->slot = -1;
	room_slot_dead(5);
	assert_int_equal(seam_nlost, 0);
	assert_false(connected(&ref, m));
	room = relock(&ref);
	assert_int_equal(room_conns(room), 0);
	assert_int_equal(room_member_count(room), 1);
	room_unlock(room);
	assert_int_equal(seam_nrings, 0);
}

static void
test_member_lost_that_stays_is_not_reported_again(void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	uint64_t	 m;

	room = create(&seam_relay, "stay");
	ref = room_ref(room);
	m = add(room, "m");
	room_unlock(room);
	conn_on_slot(&ref, 4, m);
	env->slot = -1;
	room_slot_dead(4);
	assert_int_equal(seam_nlost, 1);
	assert_false(connected(&ref, m));
	room_slot_dead(4);
	room_slot_dead(0);
	assert_int_equal(seam_nlost, 1);
	/* Back on a worker and lost again: reported again. */
	conn_on_slot(&ref, 4, m);
	room_slot_dead(4);
	assert_int_equal(seam_nlost, 2);
	assert_int_equal(seam_lost[1].m.mid, m);
}

/* ------------------------------------------------------------------ */
/* Deleting rooms, kicking members */

static void
test_room_delete_rings_close_room_to_the_slots_with_conns_and_closes_local_conns(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct fake_conn	*b = seam_conn(&seam_hist_mount);
	struct fake_conn	*other = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref, keep, gone;
	struct doorbell		 db;

	room = create(&seam_hist, "keep");
	keep = room_ref(room);
	assert_int_equal(fanout_attach(room, &other->c, add(room, "o")),
	    ROOM_OK);
	room_unlock(room);
	room = create(&seam_hist, "doomed");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "a")), ROOM_OK);
	assert_int_equal(fanout_attach(room, &b->c, add(room, "b")), ROOM_OK);
	room_unlock(room);
	conn_on_slot(&ref, 2, 0);
	conn_on_slot(&ref, 6, 0);
	conn_on_slot(&keep, 7, 0);

	room = relock(&ref);
	room_delete(room, "closed by the test");
	assert_false(is_locked(&ref));
	assert_int_equal(a->ncloses, 1);
	assert_int_equal(a->close_code, 1000);
	assert_string_equal(a->close_reason, "closed by the test");
	assert_null(a->c.room);
	assert_int_equal(b->ncloses, 1);
	assert_int_equal(b->close_code, 1000);
	assert_string_equal(b->close_reason, "closed by the test");
	assert_int_equal(other->ncloses, 0);
	assert_int_equal(room_find(&seam_hist, "doomed", &gone), ROOM_ENOENT);

	fanout_flush();
	assert_int_equal(seam_rung(2, DOORBELL_CLOSE_ROOM, &db), 1);
	assert_int_equal(db.rid, ref.rid);
	assert_int_equal(seam_rung(6, DOORBELL_CLOSE_ROOM, NULL), 1);
	assert_int_equal(seam_rung_slots(DOORBELL_CLOSE_ROOM),
	    (1ULL << 2) | (1ULL << 6));

	/* Another worker's doorbell closes this worker's conns too. */
	seam_clear();
	db.rid = keep.rid;
	db.off = keep.off;
	db.from = 7;
	fanout_doorbell(&db);
	assert_int_equal(other->ncloses, 1);
	assert_int_equal(other->close_code, 1000);
}

static void
test_room_kick_rings_kick_with_the_member_id_and_closes_its_local_conns(
    void **state)
{
	struct relay_fx	 x;
	struct room	*room;
	struct doorbell	 db;

	relay_room(&x);
	conn_on_slot(&x.ref, 1, x.m2);
	conn_on_slot(&x.ref, 3, x.m1);
	room = relock(&x.ref);
	room_kick(room, x.m2);
	room_unlock(room);
	assert_int_equal(x.b->ncloses, 0);
	fanout_flush();
	assert_int_equal(seam_rung(1, DOORBELL_KICK, &db), 1);
	assert_int_equal(db.seq, x.m2);
	assert_int_equal(db.rid, x.ref.rid);
	assert_int_equal(seam_rung(3, DOORBELL_KICK, NULL), 1);
	assert_int_equal(seam_rung(0, DOORBELL_KICK, NULL), 0);
	assert_int_equal(x.b->ncloses, 1);
	assert_int_equal(x.b->close_code, 1008);
	assert_int_equal(x.a->ncloses + x.c->ncloses, 0);

	/* A kick from another worker. */
	db.seq = x.m3;
	db.from = 1;
	fanout_doorbell(&db);
	assert_int_equal(x.c->ncloses, 1);
	assert_int_equal(x.c->close_code, 1008);
	assert_int_equal(x.a->ncloses, 0);
}

static void
test_room_reap_deletes_the_rooms_without_conns_whose_expiry_passed(
    void **state)
{
	struct room	*room;
	struct room_ref	 old, live, fresh;
	uint64_t	 mid;

	room = create(&seam_hist, "old");
	old = room_ref(room);
	room_set_expires(room, util_now() - 1);
	room_unlock(room);
	room = create(&seam_hist, "live");
	live = room_ref(room);
	room_set_expires(room, util_now() - 1);
	mid = add(room, "m");
	room_unlock(room);
	conn_on_slot(&live, 2, mid);
	room = create(&seam_hist, "fresh");
	fresh = room_ref(room);
	room_unlock(room);

	env->slot = -1;
	room_reap();
	assert_int_equal(room_lock(&old, &room), ROOM_ENOENT);
	room_unlock(relock(&live));
	room_unlock(relock(&fresh));

	/* The last connection leaving starts the idle time again. */
	env->slot = 2;
	room = relock(&live);
	assert_int_equal(room_conn_count(room, -1), 0);
	assert_int_equal(room_member_here(room, mid, 0), 0);
	room_unlock(room);
	env->slot = -1;
	room_reap();
	room = relock(&live);
	assert_int_equal(room_conns(room), 0);
	room_set_expires(room, util_now() - 1);
	room_unlock(room);
	room_reap();
	assert_int_equal(room_lock(&live, &room), ROOM_ENOENT);
	room_unlock(relock(&fresh));
}

static void
test_in_the_master_room_kick_and_room_delete_ring_at_once(void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	struct doorbell	 db;
	uint64_t	 m;

	room = create(&seam_relay, "admin");
	ref = room_ref(room);
	m = add(room, "m");
	room_unlock(room);
	conn_on_slot(&ref, 1, m);
	conn_on_slot(&ref, 2, 0);

	env->slot = -1;
	room = relock(&ref);
	room_kick(room, m);
	room_unlock(room);
	assert_int_equal(seam_rung(1, DOORBELL_KICK, &db), 1);
	assert_int_equal(db.seq, m);
	assert_int_equal(db.from, UINT32_MAX);
	assert_int_equal(seam_rung(2, DOORBELL_KICK, NULL), 1);

	room = relock(&ref);
	room_delete(room, "closed by the administrator");
	assert_int_equal(seam_rung(1, DOORBELL_CLOSE_ROOM, &db), 1);
	assert_int_equal(db.rid, ref.rid);
	assert_int_equal(db.from, UINT32_MAX);
	assert_int_equal(seam_rung(2, DOORBELL_CLOSE_ROOM, NULL), 1);
	assert_int_equal(seam_nrings, 4);
}

static void
test_a_doorbell_for_a_room_this_worker_does_not_serve_is_ignored(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref, other;
	struct doorbell		 db;

	room = create(&seam_hist, "served");
	ref = room_ref(room);
	assert_int_equal(fanout_attach(room, &a->c, add(room, "a")), ROOM_OK);
	room_unlock(room);
	room = create(&seam_hist, "elsewhere");
	other = room_ref(room);
	append(room, "x");
	room_unlock(room);
	fanout_flush();
	seam_clear();

	memset(&db, 0, sizeof(db));
	db.from = 3;
	db.rid = other.rid;
	db.off = other.off;
	db.seq = 1;
	db.type = DOORBELL_APPEND;
	fanout_doorbell(&db);
	db.type = DOORBELL_KICK;
	fanout_doorbell(&db);
	db.type = DOORBELL_CLOSE_ROOM;
	fanout_doorbell(&db);
	fanout_flush();
	assert_int_equal(a->nframes + a->ncloses, 0);
	assert_int_equal(seam_nrings, 0);
	/* An unknown type is warned about. */
	db.type = 99;
	fanout_doorbell(&db);
	assert_int_equal(seam_warnings, 1);

	/* The one it serves is delivered. */
	room = relock(&ref);
	append(room, "y");
	room_unlock(room);
	fanout_flush();
	seam_clear();
	db.type = DOORBELL_APPEND;
	db.rid = ref.rid;
	db.off = ref.off;
	fanout_doorbell(&db);
	fanout_flush();
	assert_int_equal(a->nframes, 0);	/* it had it already */
	assert_int_equal(a->c.cursor, 1);
}

/*
 * A worker's doorbells wait in a table of its fan-out until the end of the
 * iteration; when it is full, the next one flushes it first, which
 * delivers to this worker's connections and so locks their rooms.
 * room_kick is called with its room locked: with the table full and an
 * append to that room waiting, it must not wait for its own lock.  A
 * child does it, under alarm().
 */
static void
test_room_kick_in_a_worker_with_the_doorbell_table_full_does_not_deadlock(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_hist_mount);
	struct fake_conn	*b = seam_conn(&seam_hist_mount);
	struct room		*room;
	struct room_ref		 ref;
	struct room_rec_in	 rec = { "x", 1, 0, 0 };
	uint64_t		 m, n, last;
	pid_t			 pid;
	int			 i, status;

	room = create(&seam_hist, "kick");
	ref = room_ref(room);
	m = add(room, "m");
	n = add(room, "n");
	assert_int_equal(fanout_attach(room, &a->c, m), ROOM_OK);
	assert_int_equal(fanout_attach(room, &b->c, n), ROOM_OK);
	room_unlock(room);
	if ((pid = fork()) == 0) {
		alarm(5);
		if (room_lock(&ref, &room) != 0 ||
		    room_append(room, &rec, 1, &last) != 0)
			_exit(2);
		room_unlock(room);	/* an append waits */
		if (room_lock(&ref, &room) != 0)
			_exit(3);
		for (i = 0; i < 300; i++)
			room_kick(room, m);
		room_unlock(room);
		fanout_flush();
		if (a->ncloses != 1 || b->ncloses != 0 || b->nframes != 1)
			_exit(4);
		_exit(0);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("the child died of signal %d (SIGALRM: deadlock)",
		    WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------ */
/* Passwords */

static void
test_room_password_opens_the_room_only_with_the_right_one(void **state)
{
	struct room	*room;
	struct room_ref	 ref;

	room = create(&seam_hist, "pw");
	ref = room_ref(room);
	assert_false(room_has_password(room));
	assert_true(room_check_password(room, "anything"));
	assert_true(room_check_password(room, NULL));
	assert_int_equal(room_set_password(room, "s3cret"), ROOM_OK);
	room_unlock(room);

	room = relock(&ref);
	assert_true(room_has_password(room));
	assert_true(room_check_password(room, "s3cret"));
	assert_false(room_check_password(room, "s3cre"));
	assert_false(room_check_password(room, "s3cret "));
	assert_false(room_check_password(room, "S3cret"));
	assert_false(room_check_password(room, ""));
	assert_false(room_check_password(room, NULL));
	/* A new password replaces the old. */
	assert_int_equal(room_set_password(room, "other"), ROOM_OK);
	assert_false(room_check_password(room, "s3cret"));
	assert_true(room_check_password(room, "other"));
	room_unlock(room);
}

/* A worker dies in the middle of changing the password: the next to lock
 * the room finds the old one, as with any change it did not commit. */
static void
test_room_password_set_by_a_worker_that_dies_before_unlocking_is_undone(
    void **state)
{
	struct room	*room;
	struct room_ref	 ref;
	pid_t		 pid;
	int		 status;

	room = create(&seam_hist, "pw");
	ref = room_ref(room);
	assert_int_equal(room_set_password(room, "old"), ROOM_OK);
	room_unlock(room);

	if ((pid = fork()) == 0) {
		alarm(10);
		if (room_lock(&ref, &room) != 0)
			_exit(2);
		if (room_set_password(room, "new") != 0)
			_exit(3);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	room = relock(&ref);
	assert_true(room_has_password(room));
	assert_false(room_check_password(room, "new"));
	assert_true(room_check_password(room, "old"));
	room_unlock(room);
}

static void
test_room_password_blocked_after_join_failures_per_minute_from_one_address(
    void **state)
{
	uint64_t	 addr[2] = { 0xc0a80001, 4 }, other[2] = { 0xc0a80002,
			    4 };
	struct room	*room, *second;
	struct room_ref	 ref;
	int		 i;

	env->conf.join_failures_per_minute = 3;
	second = create(&seam_hist, "second");
	ref = room_ref(second);
	assert_int_equal(room_set_password(second, "pw"), ROOM_OK);
	room_unlock(second);
	room = create(&seam_hist, "pw");
	assert_int_equal(room_set_password(room, "pw"), ROOM_OK);
	for (i = 0; i < 3; i++) {
		assert_false(room_password_blocked(room, addr));
		assert_false(room_check_password(room, "wrong"));
		room_password_failed(room, addr);
	}
	assert_true(room_password_blocked(room, addr));
	/* Not another address, and never an exempt one (NULL). */
	assert_false(room_password_blocked(room, other));
	for (i = 0; i < 10; i++)
		room_password_failed(room, NULL);
	assert_false(room_password_blocked(room, NULL));
	room_unlock(room);
	/* Per room: the address may still try another. */
	second = relock(&ref);
	assert_false(room_password_blocked(second, addr));
	room_unlock(second);
}

static void
test_room_password_blocked_needs_a_password_and_a_limit(void **state)
{
	uint64_t	 addr[2] = { 0xc0a80001, 4 };
	struct room	*room;
	int		 i;

	env->conf.join_failures_per_minute = 1;
	room = create(&seam_hist, "open");
	room_password_failed(room, addr);
	room_password_failed(room, addr);
	/* Without a password there is nothing to guess. */
	assert_false(room_password_blocked(room, addr));
	assert_int_equal(room_set_password(room, "pw"), ROOM_OK);
	assert_true(room_password_blocked(room, addr));
	/* join_failures_per_minute 0: no limit. */
	env->conf.join_failures_per_minute = 0;
	for (i = 0; i < 5; i++)
		room_password_failed(room, addr);
	assert_false(room_password_blocked(room, addr));
	room_unlock(room);
}

/* ------------------------------------------------------------------ */
/* Two workers: a forked child plays worker 1 */

static int
read_full(int fd, void *buf, size_t len)
{
	ssize_t	 n;
	size_t	 off = 0;

	while (off < len) {
		n = read(fd, (char *)buf + off, len - off);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Worker 1: attach a conn, wait for the doorbell, deliver.  Exit
 * statuses: 0 delivered; 2.. which step failed. */
static void __attribute__((noreturn))
worker_one(const struct room_ref *ref, uint64_t mid, int in, int out)
{
	struct fake_conn	*b;
	struct room		*room;
	struct doorbell		 db;

	alarm(10);
	env->slot = 1;
	b = seam_conn(&seam_relay_mount);
	if (room_lock(ref, &room) != 0)
		_exit(2);
	if (fanout_attach(room, &b->c, mid) != 0)
		_exit(3);
	room_unlock(room);
	if (write(out, "r", 1) != 1)
		_exit(4);
	if (read_full(in, &db, sizeof(db)) != 0)
		_exit(5);
	if (db.type != DOORBELL_APPEND || db.rid != ref->rid || db.from != 0)
		_exit(6);
	fanout_doorbell(&db);
	if (b->nframes != 0)	/* not before the end of the iteration */
		_exit(7);
	fanout_flush();
	if (b->nframes != 1 || strcmp(b->frames[0], "across") != 0)
		_exit(8);
	/* The doorbell is not rung back to worker 0. */
	if (seam_nrings != 0)
		_exit(9);
	_exit(0);
}

static void
test_an_append_reaches_a_conn_on_another_worker_through_its_doorbell(
    void **state)
{
	struct fake_conn	*a = seam_conn(&seam_relay_mount);
	struct room		*room;
	struct room_ref		 ref;
	struct doorbell		 db;
	uint64_t		 m1, m2;
	int			 to_child[2], from_child[2], status;
	char			 c;
	pid_t			 pid;

	room = create(&seam_relay, "across");
	ref = room_ref(room);
	m1 = add(room, "zero");
	m2 = add(room, "one");
	room_unlock(room);

	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	/* No room in this process's fan-out yet: the child starts empty. */
	if ((pid = fork()) == 0) {
		close(to_child[1]);
		close(from_child[0]);
		worker_one(&ref, m2, to_child[0], from_child[1]);
	}
	assert_true(pid > 0);
	close(to_child[0]);
	close(from_child[1]);
	assert_int_equal(read(from_child[0], &c, 1), 1);

	room = relock(&ref);
	assert_int_equal(fanout_attach(room, &a->c, m1), ROOM_OK);
	assert_int_equal(room_conns(room), 2);
	assert_int_equal(room_publish(room, AUD_ALL, 0, "across", 6),
	    ROOM_OK);
	room_unlock(room);
	fanout_flush();
	assert_int_equal(a->nframes, 1);
	assert_string_equal(a->frames[0], "across");
	assert_int_equal(seam_rung(1, DOORBELL_APPEND, &db), 1);
	assert_int_equal(seam_nrings, 1);
	assert_int_equal(write(to_child[1], &db, sizeof(db)),
	    (ssize_t)sizeof(db));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(to_child[1]);
	close(from_child[0]);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Its connection is still counted (the child did not detach). */
	assert_true(connected(&ref, m2));
}

/* ------------------------------------------------------------------ */

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_room_create_returns_the_room_locked_and_refuses_a_taken_or_bad_id),
		T(test_room_create_counts_rooms_per_address_up_to_max_rooms_per_ip),
		T(test_room_create_unique_makes_ids_of_the_alphabet_and_length_asked),
		T(test_room_create_unique_refuses_an_empty_alphabet),
		T(test_room_find_finds_a_room_by_its_dialect_and_id),
		T(test_room_list_lists_the_rooms_of_one_dialect_or_of_all),
		T(test_room_lock_of_a_deleted_room_fails_even_when_another_room_took_its_slot),
		T(test_room_member_add_gives_fresh_ids_and_stops_at_room_max_members),
		T(test_room_member_lookups_find_a_member_by_name_token_uid_and_mid),
		T(test_room_member_check_needs_the_uid_and_its_own_token),
		T(test_room_member_set_and_remove_change_what_every_lookup_sees),
		T(test_room_members_lists_the_members_in_the_order_they_joined),
		T(test_room_read_after_each_cursor_gives_exactly_the_later_records_in_order),
		T(test_room_read_one_copies_one_record_or_fails_with_enoent),
		T(test_room_append_past_room_log_max_bytes_fails_and_appends_nothing),
		T(test_room_append_counts_its_records_for_the_rooms_dialect),
		T(test_history_delivery_sends_each_conn_one_frame_of_the_records_after_its_cursor),
		T(test_appends_in_one_iteration_ring_each_other_worker_once_with_the_last_seq),
		T(test_history_conn_with_full_output_is_behind_and_catches_up_when_drained),
		T(test_history_frame_is_cut_at_about_output_buffer_bytes),
		T(test_history_conns_at_more_cursors_than_the_frame_cache_each_get_their_records),
		T(test_relay_aud_all_reaches_every_member_and_only_what_came_after_it_joined),
		T(test_relay_aud_all_but_reaches_every_member_but_the_target),
		T(test_relay_aud_member_reaches_only_the_target),
		T(test_relay_aud_close_member_sends_then_closes_the_target_with_1000),
		T(test_relay_aud_close_all_but_sends_then_closes_all_but_the_target_with_1000),
		T(test_relay_aud_tag_reaches_the_members_relay_match_picks),
		T(test_relay_member_with_full_output_is_closed_with_1008),
		T(test_relay_records_are_delivered_in_log_order),
		T(test_relay_log_is_kept_for_the_slowest_worker_and_from_keep_from),
		T(test_member_with_two_conns_here_stays_connected_until_both_detach),
		T(test_fanout_detach_of_the_last_conn_deletes_the_room_when_asked),
		T(test_member_here_on_two_slots_stays_connected_until_both_clear),
		T(test_member_lost_is_reported_once_when_its_last_slot_dies),
		T(test_member_lost_in_a_dialect_without_member_lost_just_disconnects),
		T(test_member_lost_that_stays_is_not_reported_again),
		T(test_room_delete_rings_close_room_to_the_slots_with_conns_and_closes_local_conns),
		T(test_room_kick_rings_kick_with_the_member_id_and_closes_its_local_conns),
		T(test_room_reap_deletes_the_rooms_without_conns_whose_expiry_passed),
		T(test_in_the_master_room_kick_and_room_delete_ring_at_once),
		T(test_a_doorbell_for_a_room_this_worker_does_not_serve_is_ignored),
		T(test_room_kick_in_a_worker_with_the_doorbell_table_full_does_not_deadlock),
		T(test_room_password_opens_the_room_only_with_the_right_one),
		T(test_room_password_set_by_a_worker_that_dies_before_unlocking_is_undone),
		T(test_room_password_blocked_after_join_failures_per_minute_from_one_address),
		T(test_room_password_blocked_needs_a_password_and_a_limit),
		T(test_an_append_reaches_a_conn_on_another_worker_through_its_doorbell),
	};

	return cmocka_run_group_tests_name("room", tests, NULL, NULL);
}

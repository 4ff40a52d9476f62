/*
 * test_shm.c: cmocka unit tests for shm/, the shared-memory arena.
 *
 * Covered: the size-class allocator and its transactions (allocation on
 * behalf of another lock, frees at commit, reuse, usage accounting, a full
 * arena); rooms (create, find, list, delete, duplicates, bad ids, stale
 * references); member tables (growth, lookups, limits, slot reuse); the op
 * log (sequences, reading from every cursor, big batches, limits, freeing a
 * multi-chunk log); connection counting, dead worker slots and reaping;
 * robust-lock recovery after a real process dies inside a critical
 * section, at every SHM_CRASH() site in shm/; reattaching a named arena.
 *
 * The suite links its own copy of shm/ built with ROOMD_CRASH_POINTS, so a
 * forked child with ROOMD_CRASH_AT=<site> in its environment is killed
 * with SIGKILL at that site.  Children never call cmocka: they report by
 * exit status, and the parent checks.  Anonymous arenas are MAP_SHARED, so
 * children forked by a test share them.  Named objects and temporary files
 * are removed by the teardown functions even when a test fails.
 *
 * Each crash case is checked against a reference: the same world is built
 * in a second arena, where the operation runs to completion in this
 * process.  After recovery the victim's logical state (a text snapshot of
 * every room, member and record, and the bytes in use) must equal either
 * the state before the operation or the reference state after it; then a
 * child under alarm() checks that rooms can still be created, found and
 * deleted (a deadlock fails the test rather than hanging it).
 *
 * Most checks end with arena_check(), which walks every structure and
 * compares the bytes held by rooms with the allocator's count, so leaks
 * and double frees show up there.
 *
 * Run: make tests/unit/test_shm && ./tests/unit/test_shm; set
 * TEST_SHM_FILTER to a cmocka pattern (e.g. "crash_at_*") to run a subset.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
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

#include "shm.h"

#define MEMBER_ROLE_HOST	0x1	/* a role bit, as a dialect would set */

#define MiB		(1UL << 20)
#define ARENA_SIZE	(16 * MiB)	/* most tests */
#define CRASH_ARENA	(8 * MiB)	/* each of the two arenas of a crash case */
#define CHILD_TIMEOUT	10		/* seconds before a stuck child dies */

#define STR_(x)		#x
#define STR(x)		STR_(x)

typedef unsigned long long ull;

/* ------------------------------------------------------------------ */
/* Fixtures */

struct crash_case;

struct fx {
	struct arena		 a;	/* the arena under test */
	struct arena		 b;	/* a second handle, or the reference */
	char			 name[64];	/* named shm object, or "" */
	char			 file[64];	/* temporary file, or "" */
	const struct crash_case	*cc;
	char			*snap[4];	/* snapshots, freed by teardown */
	void			*buf;		/* a big buffer, freed by teardown */
};

static unsigned	fx_serial;

static int
fx_new(void **state, size_t size)
{
	struct fx	*f;
	char		 err[256];
	int		 re;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	if (size != 0 && arena_open(&f->a, NULL, size, &re, err,
	    sizeof(err)) != 0) {
		print_error("arena_open: %s\n", err);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
setup_arena(void **state)
{
	return fx_new(state, ARENA_SIZE);
}

static int
setup_small_arena(void **state)
{
	return fx_new(state, ARENA_MIN_SIZE);
}

/* No arena yet: a unique name for a shm object, which teardown removes. */
static int
setup_named(void **state)
{
	struct fx	*f;

	if (fx_new(state, 0) != 0)
		return -1;
	f = *state;
	snprintf(f->name, sizeof(f->name), "/roomd-test-%ld-%u",
	    (long)getpid(), ++fx_serial);
	arena_unlink(f->name);	/* in case a killed run left one */
	return 0;
}

/* A crash case: the case comes in as the initial state. */
static int
setup_crash(void **state)
{
	const struct crash_case	*cc = *state;
	struct fx		*f;
	char			 err[256];
	int			 re;

	if (fx_new(state, CRASH_ARENA) != 0)
		return -1;
	f = *state;
	f->cc = cc;
	if (arena_open(&f->b, NULL, CRASH_ARENA, &re, err, sizeof(err)) != 0) {
		print_error("arena_open: %s\n", err);
		arena_close(&f->a);
		free(f);
		return -1;
	}
	return 0;
}

/*
 * After a failed assertion this process may still hold a lock.  A held
 * robust mutex is on the thread's robust list, which glibc links through
 * the mutexes themselves, so unmapping it would leave that list pointing
 * into freed memory and break every later test.  Unlock whatever is ours:
 * pthread_mutex_unlock refuses (EPERM) a robust mutex this thread does not
 * hold; one it did release is taken back and released with shm_unlock, so
 * that shm/'s own count of the locks this process holds stays right.
 */
static void
unlock_if_held(struct arena *a, struct shm_lock *lk)
{
	if (pthread_mutex_unlock(&lk->mtx) == 0 &&
	    pthread_mutex_lock(&lk->mtx) == 0)
		shm_unlock(a, lk);
}

/* The arena locks, and every room slot's, found by walking the blocks
 * carved from the bottom of the arena up to top. */
static void
unlock_held(struct arena *a)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_block	*b;
	struct shm_room		*r;
	uint64_t		 off, size;
	unsigned		 c;

	if (a->base == NULL)
		return;
	unlock_if_held(a, &h->index_lock);
	unlock_if_held(a, &h->alloc_lock);
	for (off = h->hdr_size; off < h->top && h->top <= a->size;
	    off += size) {
		b = SHM_PTR(a, off);
		c = SHM_BLOCK_CLASS(b->tag);
		if (c == SHM_CLASS_ROOM) {
			size = ROOM_SLOT_SIZE;
			r = (struct shm_room *)(b + 1);
			if (r->magic == ROOM_MAGIC)
				unlock_if_held(a, &r->lock);
		} else if (c < ARENA_NCLASSES)
			size = (uint64_t)64 << c;
		else
			break;
	}
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	size_t		 i;

	shm_recovery_hook = NULL;
	unsetenv("ROOMD_CRASH_AT");
	unlock_held(&f->a);
	unlock_held(&f->b);
	arena_close(&f->a);
	arena_close(&f->b);
	if (f->name[0] != '\0')
		arena_unlink(f->name);
	if (f->file[0] != '\0')
		unlink(f->file);
	for (i = 0; i < sizeof(f->snap) / sizeof(f->snap[0]); i++)
		free(f->snap[i]);
	free(f->buf);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers */

#define assert_arena_ok(a) do {						\
	char	 ck_err_[256] = "";					\
	int	 ck_rc_ = arena_check((a), ck_err_, sizeof(ck_err_));	\
									\
	if (ck_rc_ != 0)						\
		print_error("arena_check: %s\n", ck_err_);		\
	assert_int_equal(ck_rc_, 0);					\
} while (0)

static uint64_t
used_bytes(struct arena *a)
{
	uint64_t	 used, size;

	shm_usage(a, &used, &size);
	return used;
}

static struct shm_room_ref
create_room(struct arena *a, unsigned dialect, const char *id,
    uint64_t expires)
{
	struct shm_room_ref	 ref;

	memset(&ref, 0, sizeof(ref));
	assert_int_equal(shm_room_create(a, dialect, id, expires, &ref), 0);
	assert_int_not_equal(ref.off, 0);
	assert_int_not_equal(ref.rid, 0);
	return ref;
}

static struct shm_room *
lock_room(struct arena *a, const struct shm_room_ref *ref)
{
	struct shm_room	*r = NULL;

	assert_int_equal(shm_room_lock(a, ref, &r), 0);
	assert_non_null(r);
	return r;
}

static void
delete_room(struct arena *a, const struct shm_room_ref *ref)
{
	shm_room_delete_locked(a, lock_room(a, ref));
}

static void
member_init(struct shm_member *m, unsigned i, uint64_t slots)
{
	memset(m, 0, sizeof(*m));
	m->role = i == 0 ? MEMBER_ROLE_HOST : 0;
	m->authorities = 0x10 + i;
	m->slots = slots;
	m->joined = 1700000000 + i;
	snprintf(m->token, sizeof(m->token), "%08x%08x%08x%08x", i + 1,
	    (i + 1) * 2654435761u, ~i, 0xc0ffee00u ^ i);
	snprintf(m->uid, sizeof(m->uid), "%08x-0000-4000-8000-%012x", i, i);
}

/* One lock hold: add a member; 0 or an SHM_E* code.  Cmocka-free. */
static int
add_member(struct arena *a, const struct shm_room_ref *ref, const char *name,
    unsigned i, uint64_t max, uint64_t slots, uint64_t *mid)
{
	struct shm_member	 in, *out = NULL;
	struct shm_room		*r;
	int			 rc;

	member_init(&in, i, slots);
	if ((rc = shm_room_lock(a, ref, &r)) != 0)
		return rc;
	rc = shm_member_add_locked(a, r, &in, name, max, &out);
	if (rc == 0 && mid != NULL)
		*mid = out->mid;
	shm_room_unlock(a, r);
	return rc;
}

/* One lock hold: count a connection on a slot.  Cmocka-free. */
static int
conn(struct arena *a, const struct shm_room_ref *ref, unsigned slot,
    int delta, uint64_t expires)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = shm_room_lock(a, ref, &r)) != 0)
		return rc;
	rc = shm_room_conn_locked(a, r, slot, delta, expires);
	shm_room_unlock(a, r);
	return rc;
}

/*
 * Records are generated from their sequence number, so a reader can check
 * every byte: type and target derive from seq, payload byte i is
 * rec_byte(seq, i).  The length is chosen by the writer.
 */
static uint8_t
rec_byte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

static uint32_t
rec_len_varied(uint64_t seq)
{
	return (uint32_t)((seq * 397) % 2001);
}

/*
 * Make n inputs for sequences first.. with the given lengths (len == NULL:
 * every record is fixed_len bytes).  Returns the inputs; *bufp holds the
 * payloads.  Cmocka-free: NULL when out of memory.
 */
static struct shm_rec_in *
recs_make(uint64_t first, size_t n, const uint32_t *len, uint32_t fixed_len,
    uint8_t **bufp)
{
	struct shm_rec_in	*in;
	uint8_t			*buf, *p;
	size_t			 i, j, total = 0;

	for (i = 0; i < n; i++)
		total += len != NULL ? len[i] : fixed_len;
	in = calloc(n == 0 ? 1 : n, sizeof(*in));
	buf = malloc(total == 0 ? 1 : total);
	if (in == NULL || buf == NULL) {
		free(in);
		free(buf);
		return NULL;
	}
	for (i = 0, p = buf; i < n; i++) {
		uint64_t seq = first + i;

		in[i].len = len != NULL ? len[i] : fixed_len;
		in[i].type = (uint16_t)seq;
		in[i].target = seq ^ 0x5a5aULL;
		in[i].data = p;
		for (j = 0; j < in[i].len; j++)
			p[j] = rec_byte(seq, j);
		p += in[i].len;
	}
	*bufp = buf;
	return in;
}

/* Append a batch to a locked room.  Cmocka-free. */
static int
append_locked(struct arena *a, struct shm_room *r, size_t n,
    const uint32_t *len, uint32_t fixed_len, uint64_t max_bytes,
    uint64_t *last)
{
	struct shm_rec_in	*in;
	uint8_t			*buf;
	int			 rc;

	if ((in = recs_make(r->committed + 1, n, len, fixed_len, &buf)) == NULL)
		return SHM_ENOSPC;
	rc = shm_log_append_locked(a, r, in, n, max_bytes, last);
	free(in);
	free(buf);
	return rc;
}

/* One lock hold: append a batch.  Cmocka-free. */
static int
append(struct arena *a, const struct shm_room_ref *ref, size_t n,
    const uint32_t *len, uint32_t fixed_len, uint64_t *last)
{
	struct shm_room	*r;
	uint64_t	 dummy;
	int		 rc;

	if ((rc = shm_room_lock(a, ref, &r)) != 0)
		return rc;
	rc = append_locked(a, r, n, len, fixed_len, UINT64_MAX,
	    last != NULL ? last : &dummy);
	shm_room_unlock(a, r);
	return rc;
}

/* Reading back: every record after a cursor, checked byte by byte. */
struct readback {
	uint64_t	 next;		/* sequence expected next */
	uint64_t	 count;
	uint64_t	 stop_after;	/* return nonzero after this many */
	const uint32_t	*len;		/* expected lengths by seq, or NULL */
	uint32_t	 fixed_len;	/* ... else every record's length */
	int		 bad;
	char		 why[160];
};

static int
readback_fn(const struct shm_rec *rec, const void *data, void *arg)
{
	struct readback	*rb = arg;
	const uint8_t	*p = data;
	uint32_t	 want = 0;
	size_t		 i;

	if (rec->seq == rb->next)
		want = rb->len != NULL ? rb->len[rec->seq] : rb->fixed_len;
	if (rec->seq != rb->next)
		snprintf(rb->why, sizeof(rb->why), "seq %llu, expected %llu",
		    (ull)rec->seq, (ull)rb->next);
	else if (rec->len != want)
		snprintf(rb->why, sizeof(rb->why), "seq %llu: len %u, "
		    "expected %u", (ull)rec->seq, rec->len, want);
	else if (rec->type != (uint16_t)rec->seq ||
	    rec->target != (rec->seq ^ 0x5a5aULL))
		snprintf(rb->why, sizeof(rb->why), "seq %llu: type/target "
		    "%u/%llu", (ull)rec->seq, rec->type, (ull)rec->target);
	else if (rec->flags != 0)
		snprintf(rb->why, sizeof(rb->why), "seq %llu: flags %u",
		    (ull)rec->seq, rec->flags);
	else {
		for (i = 0; i < rec->len; i++)
			if (p[i] != rec_byte(rec->seq, i))
				break;
		if (i < rec->len)
			snprintf(rb->why, sizeof(rb->why), "seq %llu: payload "
			    "byte %zu differs", (ull)rec->seq, i);
	}
	if (rb->why[0] != '\0') {
		rb->bad = 1;
		return 1;
	}
	rb->next++;
	rb->count++;
	return rb->stop_after != 0 && rb->count >= rb->stop_after;
}

/* Read a locked room's log after a cursor; all of it must check out. */
static void
check_log_after(struct arena *a, struct shm_room *r, uint64_t after,
    const uint32_t *len, uint32_t fixed_len)
{
	struct readback	 rb;

	memset(&rb, 0, sizeof(rb));
	rb.next = after + 1;
	rb.len = len;
	rb.fixed_len = fixed_len;
	shm_log_read_locked(a, r, after, readback_fn, &rb);
	if (rb.bad)
		fail_msg("reading after %llu: %s", (ull)after, rb.why);
	assert_int_equal(rb.count, after < r->committed ?
	    r->committed - after : 0);
}

static size_t
log_chunks(struct arena *a, struct shm_room *r)
{
	struct shm_chunk	*c;
	shm_off			 off;
	size_t			 n = 0;

	for (off = r->log_head; off != 0; off = c->next, n++)
		c = SHM_PTR(a, off);
	return n;
}

/* Fork a child that sets ROOMD_CRASH_AT=site (if any) and runs op. */
static int
run_child(struct arena *a, const char *site, int (*op)(struct arena *))
{
	pid_t	 pid, w;
	int	 status = 0;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		alarm(CHILD_TIMEOUT);
		if (site != NULL)
			setenv("ROOMD_CRASH_AT", site, 1);
		_exit(op(a) == 0 ? 0 : 3);
	}
	assert_true(pid > 0);
	while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	assert_int_equal(w, pid);
	return status;
}

/* The helpers below name the caller's line in their messages. */
#define assert_killed_by_sigkill(st)	killed_by_sigkill((st), __LINE__)
#define assert_child_ok(st, what)	child_ok((st), (what), __LINE__)

static void
killed_by_sigkill(int status, int line)
{
	if (WIFEXITED(status))
		fail_msg("line %d: the child exited with %d instead of being "
		    "killed (crash site not reached?)", line,
		    WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	if (WTERMSIG(status) != SIGKILL)
		fail_msg("line %d: the child died of signal %d, not SIGKILL",
		    line, WTERMSIG(status));
}

static void
child_ok(int status, const char *what, int line)
{
	if (WIFSIGNALED(status))
		fail_msg("line %d: %s: the child died of signal %d%s", line,
		    what, WTERMSIG(status), WTERMSIG(status) == SIGALRM ?
		    " (stuck for " STR(CHILD_TIMEOUT) " s: a deadlock?)" : "");
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("line %d: %s: the child exited with %d", line, what,
		    WEXITSTATUS(status));
}

/* Every lock can be taken again: none was left unrecoverable. */
static void
assert_locks_usable(struct arena *a, const struct shm_room_ref *refs,
    size_t n)
{
	struct shm_room	*r;
	size_t		 i;
	int		 rc;

	assert_int_equal(shm_lock(a, &a->hdr->index_lock), 0);
	shm_unlock(a, &a->hdr->index_lock);
	assert_int_equal(shm_lock(a, &a->hdr->alloc_lock), 0);
	shm_unlock(a, &a->hdr->alloc_lock);
	for (i = 0; i < n; i++) {
		rc = shm_room_lock(a, &refs[i], &r);
		if (rc == 0)
			shm_room_unlock(a, r);
		else
			assert_int_equal(rc, SHM_ENOENT);
	}
}

/* ------------------------------------------------------------------ */
/* Snapshots: the logical state of an arena as text, for comparison. */

struct strbuf {
	char	*p;
	size_t	 len, cap;
	int	 oom;
};

static void sb_printf(struct strbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*np;

	if (sb->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(sb->p == NULL ? NULL : sb->p + sb->len,
		    sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			sb->oom = 1;
			return;
		}
		if (sb->len + (size_t)n < sb->cap) {
			sb->len += (size_t)n;
			return;
		}
		if ((np = realloc(sb->p, 2 * sb->cap + (size_t)n + 4096))
		    == NULL) {
			sb->oom = 1;
			return;
		}
		sb->p = np;
		sb->cap = 2 * sb->cap + (size_t)n + 4096;
	}
}

static uint64_t
fnv64(const void *p, size_t n)
{
	const uint8_t	*s = p;
	uint64_t	 h = 14695981039346656037ULL;

	while (n-- > 0) {
		h ^= *s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static int
snap_rec(const struct shm_rec *rec, const void *data, void *arg)
{
	sb_printf(arg, "  rec %llu type %u flags %u target %llu len %u "
	    "data %016llx\n", (ull)rec->seq, rec->type, rec->flags,
	    (ull)rec->target, rec->len, (ull)fnv64(data, rec->len));
	return 0;
}

/* Cmocka-free; NULL when out of memory.  The caller frees. */
static char *
snapshot(struct arena *a)
{
	struct shm_room_ref	 refs[256];
	struct strbuf		 sb;
	struct shm_room		*r;
	size_t			 i, j, n;
	int			 rc;

	memset(&sb, 0, sizeof(sb));
	n = shm_room_list(a, ROOM_ALL_DIALECTS, refs, 256);
	for (i = 0; i < n; i++) {
		if ((rc = shm_room_lock(a, &refs[i], &r)) != 0) {
			sb_printf(&sb, "room #%zu: lock: %s\n", i,
			    shm_strerror(rc));
			continue;
		}
		sb_printf(&sb, "room %llu:%s rid %llu flags %llx created %llu "
		    "expires %llu conns %llu nmembers %llu cap %llu next_mid "
		    "%llu committed %llu log_bytes %llu\n",
		    (ull)r->dialect, r->id, (ull)r->rid, (ull)r->flags,
		    (ull)r->created, (ull)r->expires, (ull)r->conns,
		    (ull)r->nmembers, (ull)r->cap, (ull)r->next_mid,
		    (ull)r->committed, (ull)r->log_bytes);
		for (j = 0; j < ARENA_MAX_SLOTS; j++)
			if (r->slot_conns[j] != 0)
				sb_printf(&sb, "  slot %zu conns %llu\n", j,
				    (ull)r->slot_conns[j]);
		for (j = 0; j < r->nmembers; j++) {
			struct shm_member *m = shm_member_at(a, r, j);

			if (m->mid == 0)
				continue;
			sb_printf(&sb, "  member [%zu] mid %llu role %llu auth "
			    "%llx slots %llx joined %llu name %s "
			    "token %s uid %s\n", j, (ull)m->mid, (ull)m->role,
			    (ull)m->authorities,
			    (ull)m->slots, (ull)m->joined,
			    shm_member_name(a, m), m->token,
			    m->uid);
		}
		shm_log_read_locked(a, r, 0, snap_rec, &sb);
		shm_room_unlock(a, r);
	}
	sb_printf(&sb, "arena used %llu nrooms %llu next_rid %llu\n",
	    (ull)used_bytes(a), (ull)a->hdr->nrooms, (ull)a->hdr->next_rid);
	if (shm_lock(a, &a->hdr->ip_lock) == 0) {
		for (i = 0; i < IPT_BUCKETS; i++)
			for (j = a->hdr->ip_buckets[i]; j != 0 &&
			    j <= IPT_ENTRIES; j = a->hdr->ip[j - 1].next) {
				struct shm_ipent *e = &a->hdr->ip[j - 1];

				sb_printf(&sb, "address %llx/%llu kind %llx "
				    "count %llu stamp %llu\n", (ull)e->addr[0],
				    (ull)e->addr[1], (ull)e->kind,
				    (ull)e->count, (ull)e->stamp);
			}
		sb_printf(&sb, "addresses in use %llu\n",
		    (ull)a->hdr->ip_inuse);
		shm_unlock(a, &a->hdr->ip_lock);
	}
	if (sb.oom) {
		free(sb.p);
		return NULL;
	}
	return sb.p;
}

static int
has_line(const char *text, const char *line, size_t len)
{
	const char	*p, *e;
	size_t		 n;

	for (p = text; *p != '\0'; p = e + 1) {
		e = strchr(p, '\n');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == len && memcmp(p, line, len) == 0)
			return 1;
		if (e == NULL)
			break;
	}
	return 0;
}

/* Print the lines only in x (-) and only in y (+), one message each. */
static void
print_diff(const char *what, const char *x, const char *y)
{
	const char	*t[2] = { x, y }, *u[2] = { y, x }, *p, *e;
	size_t		 n;
	int		 k;

	print_message("--- %s (-) vs. now (+):\n", what);
	for (k = 0; k < 2; k++)
		for (p = t[k]; *p != '\0'; p = e + 1) {
			e = strchr(p, '\n');
			n = e != NULL ? (size_t)(e - p) : strlen(p);
			if (!has_line(u[k], p, n))
				print_message("%c%.*s\n", k == 0 ? '-' : '+',
				    (int)n, p);
			if (e == NULL)
				break;
		}
}

/* ------------------------------------------------------------------ */
/* The checker itself: it passes on sound arenas and catches faults. */

static void
test_arena_check_passes_on_a_sound_arena(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;

	assert_arena_ok(a);		/* empty */
	ref = create_room(a, 1, "one", 0);
	assert_arena_ok(a);		/* one untouched room */
	assert_int_equal(add_member(a, &ref, "ann", 0, 10, 0, NULL), 0);
	assert_int_equal(append(a, &ref, 2, NULL, 10, NULL), 0);
	assert_arena_ok(a);
}

static void
test_arena_check_detects_faults(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_lock		*il = &a->hdr->index_lock;
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	char			 err[256];
	shm_off			 off;

	/* A block allocated and never linked anywhere is a leak. */
	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	off = shm_tx_alloc(a, il, 100);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	assert_int_not_equal(off, 0);
	err[0] = '\0';
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "allocator counts"));
	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	shm_tx_free(a, il, off);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	assert_arena_ok(a);

	/* A room whose connection count disagrees with its slots. */
	ref = create_room(a, 1, "one", 0);
	r = lock_room(a, &ref);
	r->conns = 1;
	shm_room_unlock(a, r);
	err[0] = '\0';
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	r = lock_room(a, &ref);
	r->conns = 0;
	shm_room_unlock(a, r);
	assert_non_null(strstr(err, "connections"));
	assert_arena_ok(a);

	/* A long name off its room's chain, and one on it twice. */
	assert_int_equal(add_member(a, &ref, "a name too long for the record",
	    0, 10, 0, NULL), 0);
	assert_int_equal(add_member(a, &ref, "another name too long for it",
	    1, 10, 0, NULL), 0);
	assert_arena_ok(a);
	r = lock_room(a, &ref);
	off = r->names;
	r->names = ((struct shm_name *)SHM_PTR(a, off))->next;
	shm_room_unlock(a, r);
	err[0] = '\0';
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "on no chain"));
	r = lock_room(a, &ref);
	r->names = off;
	memcpy(shm_member_at(a, r, 1)->name, shm_member_at(a, r, 0)->name,
	    sizeof(off));
	shm_room_unlock(a, r);
	err[0] = '\0';
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "share a name block"));
	r = lock_room(a, &ref);
	memcpy(shm_member_at(a, r, 1)->name, &off, sizeof(off));
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static void
test_room_list_survives_a_damaged_index(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 one, two, refs[8];
	struct shm_room		*r;
	shm_off			 saved;

	one = create_room(a, 1, "one", 0);
	two = create_room(a, 1, "two", 0);
	assert_int_equal(shm_room_list(a, ROOM_ALL_DIALECTS, refs, 8), 2);

	/* A cycle: listing another dialect's rooms must still end. */
	r = SHM_PTR(a, one.off);
	saved = r->hnext;
	r->hnext = one.off;
	assert_true(shm_room_list(a, 2, refs, 8) == 0);
	/* A link out of the heap, then one to something not a room. */
	r->hnext = a->hdr->top + 4096;
	assert_true(shm_room_list(a, ROOM_ALL_DIALECTS, refs, 8) <= 2);
	r->hnext = a->hdr->hdr_size;
	assert_true(shm_room_list(a, ROOM_ALL_DIALECTS, refs, 8) <= 2);
	r->hnext = saved;
	assert_int_equal(shm_room_list(a, ROOM_ALL_DIALECTS, refs, 8), 2);
	delete_room(a, &one);
	delete_room(a, &two);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Alslots */

static void
test_alloc_size_class_boundaries(void **state)
{
	size_t	 hdr = sizeof(struct shm_block);
	int	 c;

	(void)state;
	assert_int_equal(hdr, 16);
	assert_int_equal(shm_size_class(0), 0);
	assert_int_equal(shm_size_class(1), 0);
	for (c = 0; c < ARENA_NCLASSES; c++) {
		size_t cap = ((size_t)64 << c) - hdr;

		assert_int_equal(shm_size_class(cap), c);
		assert_int_equal(shm_size_class(cap - 1), c);
		if (c > 0)	/* the smallest size of class c */
			assert_int_equal(shm_size_class(((size_t)32 << c) -
			    hdr + 1), c);
		assert_int_equal(shm_size_class(cap + 1),
		    c + 1 < ARENA_NCLASSES ? c + 1 : -1);
	}
	/* The largest class is 32 MiB, header included. */
	assert_int_equal(shm_size_class(32 * MiB - hdr), ARENA_NCLASSES - 1);
	assert_int_equal(shm_size_class(32 * MiB - hdr + 1), -1);
	assert_int_equal(shm_size_class(64 * MiB), -1);
}

/*
 * The contract (shm.h, shm_alloc.c): shm_tx_alloc returns 0 when n is
 * larger than the largest class.  Sizes near SIZE_MAX must not wrap.
 */
static void
test_alloc_size_class_rejects_sizes_that_wrap(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	struct shm_lock	*il = &a->hdr->index_lock;
	uint64_t	 u0 = used_bytes(a);
	shm_off		 off;

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	off = shm_tx_alloc(a, il, SIZE_MAX);
	if (off != 0)	/* give it back before failing */
		shm_tx_abort(a, il);
	else
		shm_tx_commit(a, il);
	shm_unlock(a, il);
	assert_int_equal(off, 0);
	assert_int_equal(used_bytes(a), u0);

	assert_int_equal(shm_size_class((size_t)UINT32_MAX + 1), -1);
	assert_int_equal(shm_size_class(SIZE_MAX / 2), -1);
	assert_int_equal(shm_size_class(SIZE_MAX - 15), -1);
	assert_int_equal(shm_size_class(SIZE_MAX), -1);
}

/*
 * shm_tx_alloc on behalf of a held lock (here the index lock) records the
 * block in that lock's transaction; aborting the transaction returns it.
 */
static void
test_alloc_tx_alloc_records_block_in_holder_tx(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	struct shm_lock	*il = &a->hdr->index_lock;
	uint64_t	 u0 = used_bytes(a), top0 = a->hdr->top;
	shm_off		 o1, o2;
	int		 i;

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	assert_int_equal(il->tx.state, SHM_TX_ACTIVE);
	o1 = shm_tx_alloc(a, il, 48);
	assert_int_not_equal(o1, 0);
	assert_int_equal(o1 % 16, 0);
	assert_int_equal(shm_block_size(a, o1), 48);
	assert_int_equal(il->tx.alloc[0], o1);
	assert_int_equal(used_bytes(a), u0 + 64);
	o2 = shm_tx_alloc(a, il, 1000);
	assert_int_not_equal(o2, 0);
	assert_int_equal(shm_block_size(a, o2), 1024 - 16);
	assert_int_equal(il->tx.alloc[1], o2);
	assert_true(o2 >= o1 + 48 || o2 + 1008 <= o1);
	assert_int_equal(used_bytes(a), u0 + 64 + 1024);
	assert_int_equal(a->hdr->top, top0 + 64 + 1024);
	memset(SHM_PTR(a, o1), 0xa5, 48);
	memset(SHM_PTR(a, o2), 0x5a, 1008);
	/* The allocator's own lock is free again between allocations. */
	assert_int_equal(a->hdr->alloc_lock.tx.state, SHM_TX_IDLE);

	shm_tx_abort(a, il);
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		assert_int_equal(il->tx.alloc[i], 0);
	assert_int_equal(il->tx.state, SHM_TX_IDLE);
	shm_unlock(a, il);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
}

/* Blocks queued with shm_tx_free go back at commit and are reused. */
static void
test_alloc_freed_blocks_are_reused(void **state)
{
	/* One size per class, so each class's free list has one block. */
	static const size_t sizes[] = { 1, 49, 500, 5000, 70000, 300000 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	struct shm_lock	*il = &a->hdr->index_lock;
	uint64_t	 u0 = used_bytes(a), total = 0, top1;
	shm_off		 off[N], again[N];
	size_t		 i, j;

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	for (i = 0; i < N; i++) {
		int c = shm_size_class(sizes[i]);

		assert_true(c >= 0);
		off[i] = shm_tx_alloc(a, il, sizes[i]);
		assert_int_not_equal(off[i], 0);
		assert_int_equal(shm_block_size(a, off[i]),
		    ((size_t)64 << c) - 16);
		assert_true(shm_block_size(a, off[i]) >= sizes[i]);
		total += (uint64_t)64 << c;
		for (j = 0; j < i; j++)
			assert_int_not_equal(off[i], off[j]);
	}
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	assert_int_equal(used_bytes(a), u0 + total);
	top1 = a->hdr->top;

	/* Freed at commit, not before. */
	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	for (i = 0; i < N; i++)
		shm_tx_free(a, il, off[i]);
	assert_int_equal(used_bytes(a), u0 + total);
	shm_tx_commit(a, il);
	assert_int_equal(il->tx.state, SHM_TX_IDLE);
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		assert_int_equal(il->tx.release[i], 0);
	shm_unlock(a, il);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);

	/* The same sizes again take the same blocks, not fresh ones. */
	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	for (i = 0; i < N; i++)
		again[i] = shm_tx_alloc(a, il, sizes[i]);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	for (i = 0; i < N; i++)
		assert_int_equal(again[i], off[i]);
	assert_int_equal(a->hdr->top, top1);
	assert_int_equal(used_bytes(a), u0 + total);

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	for (i = 0; i < N; i++)
		shm_tx_free(a, il, again[i]);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
}

/* Blocks taken inside a room's transaction go back when it aborts. */
static void
test_alloc_room_tx_abort_returns_blocks(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "abort", 0);
	struct shm_room		*r;
	uint64_t		 u0 = used_bytes(a);
	shm_off			 o[3];
	int			 i;

	r = lock_room(a, &ref);
	for (i = 0; i < 3; i++) {
		o[i] = shm_tx_alloc(a, &r->lock, 100 << (3 * i));
		assert_int_not_equal(o[i], 0);
		assert_int_equal(r->lock.tx.alloc[i], o[i]);
	}
	assert_true(used_bytes(a) > u0);
	shm_tx_abort(a, &r->lock);
	assert_int_equal(used_bytes(a), u0);
	shm_tx_begin(a, &r->lock);
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	/* The next allocation of the first size reuses the first block. */
	r = lock_room(a, &ref);
	assert_int_equal(shm_tx_alloc(a, &r->lock, 100), o[0]);
	shm_tx_abort(a, &r->lock);
	shm_tx_begin(a, &r->lock);
	shm_room_unlock(a, r);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
}

/* A 4 MiB arena filled with rooms: SHM_ENOSPC and nothing changes. */
static void
test_alloc_arena_full_of_rooms(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 first = { 0, 0 }, ref;
	uint64_t		 used, nrooms, next_rid, size;
	char			 id[32];
	int			 i, rc = 0;

	for (i = 0; i < 100000; i++) {
		snprintf(id, sizeof(id), "room-%05d", i);
		if ((rc = shm_room_create(a, 1, id, 100, &ref)) != 0)
			break;
		if (i == 0)
			first = ref;
	}
	assert_int_equal(rc, SHM_ENOSPC);
	assert_true(i > 100);
	shm_usage(a, &used, &size);
	assert_true(used <= size);
	assert_true(a->hdr->top <= a->hdr->size);
	assert_int_equal(a->hdr->nrooms, (uint64_t)i);

	/* Failing again changes nothing. */
	nrooms = a->hdr->nrooms;
	next_rid = a->hdr->next_rid;
	assert_int_equal(shm_room_create(a, 1, "one-more", 100, &ref),
	    SHM_ENOSPC);
	assert_int_equal(used_bytes(a), used);
	assert_int_equal(a->hdr->nrooms, nrooms);
	assert_int_equal(a->hdr->next_rid, next_rid);
	assert_int_equal(shm_room_find(a, 1, "one-more", &ref), SHM_ENOENT);
	assert_int_equal(shm_room_find(a, 1, id, &ref), SHM_ENOENT);
	assert_arena_ok(a);

	/* Deleting a room makes room for one more. */
	delete_room(a, &first);
	assert_true(used_bytes(a) < used);
	ref = create_room(a, 1, "one-more", 100);
	assert_int_equal(ref.off, first.off);
	assert_int_equal(shm_room_find(a, 1, "one-more", &ref), 0);
	assert_int_equal(used_bytes(a), used);
	assert_arena_ok(a);
}

/* A 4 MiB arena filled by one room's log: SHM_ENOSPC, nothing appended. */
static void
test_alloc_arena_full_of_log(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	uint64_t		 base = used_bytes(a), used, committed, bytes;
	uint64_t		 last = 0;
	int			 i, rc = 0;

	ref = create_room(a, 1, "log", 0);
	for (i = 0; i < 1000; i++)
		if ((rc = append(a, &ref, 16, NULL, 4000, &last)) != 0)
			break;
	assert_int_equal(rc, SHM_ENOSPC);
	assert_true(i > 10);
	used = used_bytes(a);

	r = lock_room(a, &ref);
	committed = r->committed;
	bytes = r->log_bytes;
	assert_int_equal(committed, (uint64_t)i * 16);
	assert_int_equal(last, committed);
	/* A single record may still fit in the tail; a batch that needs a
	 * chunk does not, and leaves no trace. */
	assert_int_equal(append_locked(a, r, 64, NULL, 4000, UINT64_MAX,
	    &last), SHM_ENOSPC);
	assert_int_equal(r->committed, committed);
	assert_int_equal(r->log_bytes, bytes);
	assert_int_equal(used_bytes(a), used);
	check_log_after(a, r, 0, NULL, 4000);
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	delete_room(a, &ref);
	assert_int_equal(used_bytes(a), base);
	assert_arena_ok(a);
	ref = create_room(a, 1, "log", 0);
	assert_int_equal(append(a, &ref, 16, NULL, 4000, &last), 0);
	assert_int_equal(last, 16);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Rooms */

static int
ref_in(const struct shm_room_ref *refs, size_t n,
    const struct shm_room_ref *ref)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (refs[i].off == ref->off && refs[i].rid == ref->rid)
			return 1;
	return 0;
}

static void
test_room_create_find_list_delete(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 refs[10], other, got, list[32];
	struct shm_room		*r;
	uint64_t		 u0 = used_bytes(a);
	char			 id[16];
	size_t			 i, n;

	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "r%zu", i);
		refs[i] = create_room(a, 7, id, 1000 + i);
		assert_int_equal(a->hdr->nrooms, i + 1);
		assert_arena_ok(a);
	}
	other = create_room(a, 9, "elsewhere", 5);
	assert_arena_ok(a);
	assert_true(used_bytes(a) > u0);

	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "r%zu", i);
		memset(&got, 0, sizeof(got));
		assert_int_equal(shm_room_find(a, 7, id, &got), 0);
		assert_int_equal(got.off, refs[i].off);
		assert_int_equal(got.rid, refs[i].rid);
		assert_int_equal(shm_room_find(a, 9, id, &got), SHM_ENOENT);
		r = lock_room(a, &got);
		assert_string_equal(r->id, id);
		assert_int_equal(r->dialect, 7);
		assert_int_equal(r->created, 1000 + i);
		assert_int_equal(r->expires, 1000 + i);
		assert_int_equal(r->committed, 0);
		assert_int_equal(r->conns, 0);
		assert_int_equal(r->next_mid, 1);
		shm_room_unlock(a, r);
		for (n = 0; n < i; n++)
			assert_int_not_equal(refs[n].rid, refs[i].rid);
	}
	assert_int_equal(shm_room_find(a, 7, "r10", &got), SHM_ENOENT);

	n = shm_room_list(a, 7, list, 32);
	assert_int_equal(n, 10);
	for (i = 0; i < 10; i++)
		assert_true(ref_in(list, n, &refs[i]));
	assert_false(ref_in(list, n, &other));
	assert_int_equal(shm_room_list(a, 9, list, 32), 1);
	assert_int_equal(list[0].off, other.off);
	assert_int_equal(shm_room_list(a, ROOM_ALL_DIALECTS, list, 32), 11);
	assert_int_equal(shm_room_list(a, 7, list, 3), 3);
	assert_int_equal(shm_room_list(a, 8, list, 32), 0);

	delete_room(a, &refs[4]);
	assert_int_equal(shm_room_find(a, 7, "r4", &got), SHM_ENOENT);
	assert_int_equal(shm_room_lock(a, &refs[4], &r), SHM_ENOENT);
	assert_int_equal(a->hdr->nrooms, 10);
	n = shm_room_list(a, 7, list, 32);
	assert_int_equal(n, 9);
	assert_false(ref_in(list, n, &refs[4]));
	assert_arena_ok(a);

	for (i = 0; i < 10; i++)
		if (i != 4) {
			delete_room(a, &refs[i]);
			assert_arena_ok(a);
		}
	delete_room(a, &other);
	assert_int_equal(a->hdr->nrooms, 0);
	assert_int_equal(shm_room_list(a, ROOM_ALL_DIALECTS, list, 32), 0);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
}

#define NDIALECTS	40

/* 3..22, then 20 spread over the whole range (not ROOM_ALL_DIALECTS). */
static unsigned
dialect_at(unsigned i)
{
	return i < 20 ? 3 + i : 3 + (i - 19) * 0x4000u * 0x199u;
}

static void
test_room_duplicate_id_per_dialect(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 one, two, dup, got, list[4];
	struct shm_room		*r;
	uint64_t		 used, rid;
	unsigned		 i, d;

	one = create_room(a, 1, "lobby", 10);
	used = used_bytes(a);
	rid = a->hdr->next_rid;
	memset(&dup, 0, sizeof(dup));
	assert_int_equal(shm_room_create(a, 1, "lobby", 10, &dup), SHM_EEXIST);
	assert_int_equal(dup.off, 0);
	assert_int_equal(used_bytes(a), used);
	assert_int_equal(a->hdr->nrooms, 1);
	assert_int_equal(a->hdr->next_rid, rid);
	assert_arena_ok(a);

	two = create_room(a, 2, "lobby", 20);
	assert_int_not_equal(two.off, one.off);
	assert_int_not_equal(two.rid, one.rid);
	assert_int_equal(a->hdr->nrooms, 2);
	assert_int_equal(shm_room_create(a, 2, "lobby", 10, &dup), SHM_EEXIST);
	assert_int_equal(shm_room_find(a, 1, "lobby", &got), 0);
	assert_int_equal(got.off, one.off);
	assert_int_equal(shm_room_find(a, 2, "lobby", &got), 0);
	assert_int_equal(got.off, two.off);
	assert_arena_ok(a);

	/* Once deleted, the id may be used again. */
	delete_room(a, &one);
	assert_int_equal(shm_room_find(a, 2, "lobby", &got), 0);
	one = create_room(a, 1, "lobby", 10);
	assert_int_equal(a->hdr->nrooms, 2);
	assert_arena_ok(a);

	/* The same id in dialects near and far apart (some of which may
	 * well share an index bucket): each is its own room. */
	for (i = 0; i < NDIALECTS; i++) {
		d = dialect_at(i);
		assert_int_equal(shm_room_create(a, d, "lobby", d, &dup), 0);
		assert_int_equal(shm_room_create(a, d, "lobby", d, &got),
		    SHM_EEXIST);
	}
	for (i = 0; i < NDIALECTS; i++) {
		d = dialect_at(i);
		assert_int_equal(shm_room_find(a, d, "lobby", &got), 0);
		r = lock_room(a, &got);
		assert_int_equal(r->dialect, d);
		assert_int_equal(r->expires, d);
		shm_room_unlock(a, r);
		assert_int_equal(shm_room_list(a, d, list, 4), 1);
		assert_int_equal(list[0].off, got.off);
	}
	assert_int_equal(a->hdr->nrooms, 2 + NDIALECTS);
	assert_arena_ok(a);
}

static void
test_room_invalid_ids(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref, got;
	struct shm_room		*r;
	char			 id[SHM_ID_MAX + 2];
	uint64_t		 u0 = used_bytes(a);

	assert_int_equal(shm_room_create(a, 1, "", 0, &ref), SHM_EINVAL);
	memset(id, 'a', SHM_ID_MAX + 1);
	id[SHM_ID_MAX + 1] = '\0';
	assert_int_equal(strlen(id), 65);
	assert_int_equal(shm_room_create(a, 1, id, 0, &ref), SHM_EINVAL);
	assert_int_equal(a->hdr->nrooms, 0);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);

	/* 64 characters is the longest id. */
	id[SHM_ID_MAX] = '\0';
	ref = create_room(a, 1, id, 0);
	assert_int_equal(shm_room_find(a, 1, id, &got), 0);
	assert_int_equal(got.off, ref.off);
	r = lock_room(a, &got);
	assert_int_equal(strlen(r->id), SHM_ID_MAX);
	assert_string_equal(r->id, id);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

/* In a child: find "held" and lock it; its host must be there already. */
static int
op_find_held(struct arena *a)
{
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	int			 rc;

	if ((rc = shm_room_find(a, 1, "held", &ref)) != 0 ||
	    (rc = shm_room_lock(a, &ref, &r)) != 0)
		return rc;
	rc = shm_member_by_name(a, r, "host") != NULL ? 0 : 1;
	shm_room_unlock(a, r);
	return rc;
}

/*
 * shm_room_create_locked returns the room locked with its transaction
 * begun, so nobody can use it before the creator has set it up.
 */
static void
test_room_create_locked(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref, got;
	struct shm_room		*r = NULL, *r2;
	struct shm_member	 in, *m;
	pid_t			 pid;
	int			 status;

	assert_int_equal(shm_room_create_locked(a, 1, "held", 77, &ref, &r),
	    0);
	assert_non_null(r);
	assert_ptr_equal(r, SHM_PTR(a, ref.off));
	assert_int_equal(r->rid, ref.rid);
	assert_string_equal(r->id, "held");
	assert_int_equal(r->lock.tx.state, SHM_TX_ACTIVE);
	assert_int_equal(r->lock.owner_pid, (uint64_t)getpid());
	/* The index lock is free again; only the room's is held. */
	assert_int_equal(shm_room_find(a, 1, "held", &got), 0);
	assert_int_equal(got.off, ref.off);

	/* A child looking for the room waits until it is ready. */
	fflush(NULL);
	if ((pid = fork()) == 0) {
		alarm(CHILD_TIMEOUT);
		_exit(op_find_held(a) == 0 ? 0 : 3);
	}
	assert_true(pid > 0);
	usleep(100 * 1000);
	member_init(&in, 0, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, "host", 10, &m), 0);
	shm_room_unlock(a, r);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_child_ok(status, "finding a room while its creator holds it");

	/* Failures hand back no lock. */
	r2 = NULL;
	assert_int_equal(shm_room_create_locked(a, 1, "held", 0, &got, &r2),
	    SHM_EEXIST);
	assert_null(r2);
	assert_int_equal(shm_room_create_locked(a, 1, "", 0, &got, &r2),
	    SHM_EINVAL);
	assert_null(r2);
	r = lock_room(a, &ref);
	assert_int_equal(r->expires, 77);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

/* A reference kept across a delete and a reuse of the slot is refused. */
static void
test_room_stale_ref_after_slot_reuse(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 old, fresh, got;
	struct shm_room		*r;

	old = create_room(a, 1, "first", 0);
	assert_int_equal(add_member(a, &old, "ann", 0, 10, 0, NULL), 0);
	delete_room(a, &old);
	assert_int_equal(shm_room_lock(a, &old, &r), SHM_ENOENT);
	assert_arena_ok(a);

	fresh = create_room(a, 1, "second", 0);
	assert_int_equal(fresh.off, old.off);	/* the slot was reused */
	assert_int_not_equal(fresh.rid, old.rid);
	assert_int_equal(shm_room_lock(a, &old, &r), SHM_ENOENT);
	assert_arena_ok(a);

	r = lock_room(a, &fresh);
	assert_string_equal(r->id, "second");
	assert_int_equal(r->nmembers, 0);
	assert_null(shm_member_by_name(a, r, "ann"));
	shm_room_unlock(a, r);
	assert_int_equal(shm_room_find(a, 1, "first", &got), SHM_ENOENT);

	/* Offsets that are no room at all. */
	got.off = 0;
	got.rid = fresh.rid;
	assert_int_equal(shm_room_lock(a, &got, &r), SHM_ENOENT);
	got.off = a->hdr->size + 4096;
	assert_int_equal(shm_room_lock(a, &got, &r), SHM_ENOENT);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Members */

#define NMEMBERS	30

static void
test_member_add_grows_table_and_finds(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "members", 0);
	struct shm_member	 want, *m;
	struct shm_room		*r;
	uint64_t		 mid, cap0, table0, grew = 0, prev;
	char			 name[32];
	unsigned		 i;

	r = lock_room(a, &ref);
	cap0 = r->cap;
	table0 = r->members;
	assert_true(cap0 >= 3);
	assert_true(cap0 < NMEMBERS);
	assert_int_equal(r->nmembers, 0);
	shm_room_unlock(a, r);

	for (i = 0; i < NMEMBERS; i++) {
		snprintf(name, sizeof(name), "member-%02u", i);
		r = lock_room(a, &ref);
		prev = r->cap;
		shm_room_unlock(a, r);
		assert_int_equal(add_member(a, &ref, name, i, 100,
		    SHM_SLOT_BIT(i % 3), &mid), 0);
		assert_int_equal(mid, i + 1);
		r = lock_room(a, &ref);
		assert_int_equal(r->nmembers, i + 1);
		assert_true(r->nmembers <= r->cap);
		if (r->cap != prev) {
			assert_true(r->cap >= 2 * prev);
			grew++;
		}
		shm_room_unlock(a, r);
		if (i % 7 == 0)
			assert_arena_ok(a);
	}
	assert_true(grew >= 2);
	assert_arena_ok(a);

	r = lock_room(a, &ref);
	assert_true(r->cap >= NMEMBERS);
	assert_int_not_equal(r->members, table0);
	assert_int_equal(r->next_mid, NMEMBERS + 1);
	for (i = 0; i < NMEMBERS; i++) {
		snprintf(name, sizeof(name), "member-%02u", i);
		member_init(&want, i, SHM_SLOT_BIT(i % 3));
		m = shm_member_by_name(a, r, name);
		assert_non_null(m);
		assert_int_equal(m->mid, i + 1);
		assert_ptr_equal(m, shm_member_at(a, r, i));
		assert_string_equal(m->token, want.token);
		assert_string_equal(m->uid, want.uid);
		assert_int_equal(m->role, want.role);
		assert_int_equal(m->authorities, want.authorities);
		assert_int_equal(m->joined, want.joined);
		assert_int_equal(m->slots, want.slots);
		assert_int_equal(m->slots, SHM_SLOT_BIT(i % 3));
		assert_ptr_equal(shm_member_by_token(a, r, want.token), m);
		assert_ptr_equal(shm_member_by_mid(a, r, i + 1), m);
	}
	assert_null(shm_member_by_name(a, r, "nobody"));
	assert_null(shm_member_by_mid(a, r, 0));
	assert_null(shm_member_by_mid(a, r, NMEMBERS + 1));
	assert_null(shm_member_by_token(a, r, ""));
	assert_null(shm_member_by_token(a, r,
	    "00000000000000000000000000000000"));
	/* A prefix of a real token is no match. */
	member_init(&want, 3, 0);
	want.token[SHM_TOKEN_LEN - 1] = '\0';
	assert_null(shm_member_by_token(a, r, want.token));

	/* A field set under the lock sticks. */
	m = shm_member_by_mid(a, r, 5);
	shm_member_set_locked(a, r, m, &m->authorities, 77);
	shm_room_unlock(a, r);
	r = lock_room(a, &ref);
	assert_int_equal(shm_member_by_mid(a, r, 5)->authorities, 77);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static void
test_member_limit_and_slot_reuse(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "limit", 0);
	struct shm_member	*m;
	struct shm_room		*r;
	uint64_t		 mid, used, prev_mid = 0;
	char			 name[32];
	unsigned		 i;

	for (i = 0; i < NMEMBERS; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		assert_int_equal(add_member(a, &ref, name, i, NMEMBERS, 0,
		    &mid), 0);
		assert_true(mid > prev_mid);
		prev_mid = mid;
	}
	used = used_bytes(a);
	assert_int_equal(add_member(a, &ref, "late", 99, NMEMBERS, 0, &mid),
	    SHM_ELIMIT);
	assert_int_equal(add_member(a, &ref, "late", 99, 5, 0, &mid),
	    SHM_ELIMIT);
	r = lock_room(a, &ref);
	assert_int_equal(r->nmembers, NMEMBERS);
	assert_int_equal(r->next_mid, NMEMBERS + 1);
	assert_null(shm_member_by_name(a, r, "late"));
	assert_int_equal(used_bytes(a), used);

	/* Remove the member in slot 10 (mid 11). */
	m = shm_member_at(a, r, 10);
	assert_int_equal(m->mid, 11);
	shm_member_remove_locked(a, r, m);
	shm_room_unlock(a, r);
	r = lock_room(a, &ref);
	assert_null(shm_member_by_mid(a, r, 11));
	assert_null(shm_member_by_name(a, r, "m10"));
	assert_int_equal(r->nmembers, NMEMBERS);	/* slots stay */
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	/* Re-adding takes the freed slot and a new, larger mid. */
	assert_int_equal(add_member(a, &ref, "newcomer", 40, NMEMBERS, 0,
	    &mid), 0);
	assert_int_equal(mid, NMEMBERS + 1);
	r = lock_room(a, &ref);
	m = shm_member_by_name(a, r, "newcomer");
	assert_ptr_equal(m, shm_member_at(a, r, 10));
	assert_int_equal(m->mid, NMEMBERS + 1);
	assert_int_equal(r->nmembers, NMEMBERS);
	assert_null(shm_member_by_mid(a, r, 11));
	shm_room_unlock(a, r);
	assert_int_equal(used_bytes(a), used);
	assert_int_equal(add_member(a, &ref, "late", 99, NMEMBERS, 0, &mid),
	    SHM_ELIMIT);

	/* Two more removals: the lowest free slot is used first. */
	r = lock_room(a, &ref);
	shm_member_remove_locked(a, r, shm_member_by_mid(a, r, 20));
	shm_member_remove_locked(a, r, shm_member_by_mid(a, r, 3));
	shm_room_unlock(a, r);
	assert_int_equal(add_member(a, &ref, "again-1", 41, NMEMBERS, 0, &mid),
	    0);
	assert_int_equal(mid, NMEMBERS + 2);
	assert_int_equal(add_member(a, &ref, "again-2", 42, NMEMBERS, 0, &mid),
	    0);
	assert_int_equal(mid, NMEMBERS + 3);
	r = lock_room(a, &ref);
	assert_ptr_equal(shm_member_by_name(a, r, "again-1"),
	    shm_member_at(a, r, 2));
	assert_ptr_equal(shm_member_by_name(a, r, "again-2"),
	    shm_member_at(a, r, 19));
	assert_int_equal(r->next_mid, NMEMBERS + 4);
	shm_room_unlock(a, r);
	assert_int_equal(used_bytes(a), used);
	assert_arena_ok(a);
}

/* The bytes of the block holding a long name of len bytes. */
static uint64_t
name_block_bytes(size_t len)
{
	int	 c = shm_size_class(sizeof(struct shm_name) + len + 1);

	assert_true(c >= 0);
	return (uint64_t)64 << c;
}

/* The bytes of a locked room's member table block. */
static uint64_t
table_bytes(struct arena *a, struct shm_room *r)
{
	return shm_block_size(a, r->members) + sizeof(struct shm_block);
}

/* Name i of length len: a letter of its own, then quotes, backslashes,
 * slashes and two-byte UTF-8, so no name is a prefix of another. */
static void
name_make(char *buf, unsigned i, size_t len)
{
	static const char	 fill[] = "q\"\\/\xc3\xa9 ";
	size_t			 j;

	for (j = 0; j < len; j++)
		buf[j] = j == 0 ? (char)('A' + i) : fill[j % (sizeof(fill) - 1)];
	buf[len] = '\0';
}

/*
 * Names up to SHM_NAME_INLINE - 1 bytes stay in the member record; longer
 * ones (to SHM_NAME_MAX) get a block of their own on the room's chain.
 * Either way a member is found by its whole name and nothing else, and
 * removing it or deleting the room gives every byte back.
 */
static void
test_member_long_and_short_names(void **state)
{
	static const size_t	 lens[] = { 0, 1, SHM_NAME_INLINE - 1,
				    SHM_NAME_INLINE, 40, 47, 48, 111, 112,
				    SHM_NAME_MAX };
#define NLENS	(sizeof(lens) / sizeof(lens[0]))
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;
	struct shm_member	*m;
	struct shm_room		*r;
	char			 names[NLENS][SHM_NAME_MAX + 2];
	char			 other[SHM_NAME_MAX + 2];
	uint64_t		 u0, base, blocks = 0, mid, mids[NLENS];
	size_t			 i;

	u0 = used_bytes(a);
	ref = create_room(a, 1, "names", 0);
	r = lock_room(a, &ref);
	base = used_bytes(a) - table_bytes(a, r);
	shm_room_unlock(a, r);
	for (i = 0; i < NLENS; i++) {
		name_make(names[i], (unsigned)i, lens[i]);
		assert_int_equal(add_member(a, &ref, names[i], (unsigned)i,
		    100, SHM_SLOT_BIT(1), &mids[i]), 0);
		if (lens[i] >= SHM_NAME_INLINE)
			blocks += name_block_bytes(lens[i]);
		r = lock_room(a, &ref);
		assert_int_equal(used_bytes(a), base + table_bytes(a, r) +
		    blocks);
		shm_room_unlock(a, r);
		assert_arena_ok(a);
	}
	/* One byte too many is refused and takes nothing. */
	name_make(other, 30, SHM_NAME_MAX + 1);
	assert_int_equal(add_member(a, &ref, other, 30, 100, 0, &mid),
	    SHM_EINVAL);

	r = lock_room(a, &ref);
	assert_true(r->cap > 3);	/* the table grew under long names */
	assert_int_equal(used_bytes(a), base + table_bytes(a, r) + blocks);
	for (i = 0; i < NLENS; i++) {
		assert_non_null(m = shm_member_by_name(a, r, names[i]));
		assert_int_equal(m->mid, mids[i]);
		assert_string_equal(shm_member_name(a, m), names[i]);
		assert_int_equal(m->name[SHM_NAME_INLINE - 1] == SHM_NAME_LONG,
		    lens[i] >= SHM_NAME_INLINE);
		assert_ptr_equal(shm_member_by_mid(a, r, mids[i]), m);
		assert_ptr_equal(shm_member_by_token(a, r, m->token), m);
		/* A name one byte shorter or longer is another name. */
		if (lens[i] > 1) {
			snprintf(other, sizeof(other), "%.*s",
			    (int)lens[i] - 1, names[i]);
			assert_null(shm_member_by_name(a, r, other));
		}
		if (lens[i] < SHM_NAME_MAX) {
			memcpy(other, names[i], lens[i]);
			memcpy(other + lens[i], "x", 2);
			assert_null(shm_member_by_name(a, r, other));
		}
	}
	shm_room_unlock(a, r);

	/* Removing the shortest long name and the longest: their blocks go
	 * back at commit, the other names stay where they were. */
	r = lock_room(a, &ref);
	shm_member_remove_locked(a, r, shm_member_by_mid(a, r, mids[3]));
	shm_member_remove_locked(a, r, shm_member_by_mid(a, r,
	    mids[NLENS - 1]));
	shm_room_unlock(a, r);
	blocks -= name_block_bytes(lens[3]) + name_block_bytes(lens[NLENS - 1]);
	assert_arena_ok(a);
	r = lock_room(a, &ref);
	assert_int_equal(used_bytes(a), base + table_bytes(a, r) + blocks);
	assert_null(shm_member_by_name(a, r, names[3]));
	assert_null(shm_member_by_name(a, r, names[NLENS - 1]));
	for (i = 0; i < NLENS; i++)
		if (i != 3 && i != NLENS - 1)
			assert_string_equal(shm_member_name(a,
			    shm_member_by_mid(a, r, mids[i])), names[i]);
	shm_room_unlock(a, r);

	/* A long name in a freed slot, a short one in the other. */
	name_make(other, 20, 100);
	assert_int_equal(add_member(a, &ref, other, 20, 100, 0, &mid), 0);
	assert_int_equal(add_member(a, &ref, "short", 21, 100, 0, NULL), 0);
	blocks += name_block_bytes(100);
	r = lock_room(a, &ref);
	assert_ptr_equal(shm_member_by_name(a, r, other), shm_member_at(a, r,
	    3));
	assert_ptr_equal(shm_member_by_name(a, r, "short"),
	    shm_member_at(a, r, NLENS - 1));
	assert_int_equal(used_bytes(a), base + table_bytes(a, r) + blocks);
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	delete_room(a, &ref);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
#undef NLENS
}

/* One block of n bytes taken for nobody (a filler), or 0. */
static shm_off
filler_take(struct arena *a, size_t n)
{
	struct shm_lock	*il = &a->hdr->index_lock;
	shm_off		 off;

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	off = shm_tx_alloc(a, il, n);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
	return off;
}

static void
filler_give(struct arena *a, shm_off off)
{
	struct shm_lock	*il = &a->hdr->index_lock;

	assert_int_equal(shm_lock(a, il), 0);
	shm_tx_begin(a, il);
	shm_tx_free(a, il, off);
	shm_tx_commit(a, il);
	shm_unlock(a, il);
}

/*
 * A full arena: a long name's block is taken but the full member table
 * cannot grow.  The add fails with SHM_ENOSPC and leaves nothing behind:
 * the block goes back at the commit.
 */
static void
test_member_long_name_arena_full(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "full", 0);
	struct shm_room		*r;
	shm_off			*fill, small;
	uint64_t		 used, cap, nmembers, next_mid;
	size_t			 n = 0, most = ARENA_MIN_SIZE / 64, table;
	char			 name[40];
	unsigned		 i;

	assert_non_null(fill = f->buf = calloc(most, sizeof(*fill)));
	r = lock_room(a, &ref);
	cap = r->cap;
	table = 2 * cap * sizeof(struct shm_member);
	shm_room_unlock(a, r);
	for (i = 0; i < cap; i++) {
		name_make(name, i, 5);
		assert_int_equal(add_member(a, &ref, name, i, 100, 0, NULL), 0);
	}
	/* No block of the grown table's size is left, nor a small one but
	 * the last, given back. */
	while (n < most && (fill[n] = filler_take(a, table)) != 0)
		n++;
	while (n < most && (fill[n] = filler_take(a, 40)) != 0)
		n++;
	assert_true(n > 0 && n < most);
	small = fill[--n];
	filler_give(a, small);

	used = used_bytes(a);
	r = lock_room(a, &ref);
	nmembers = r->nmembers;
	next_mid = r->next_mid;
	shm_room_unlock(a, r);
	name_make(name, 30, 39);	/* a 64-byte block */
	assert_int_equal(add_member(a, &ref, name, 30, 100, 0, NULL),
	    SHM_ENOSPC);
	assert_int_equal(used_bytes(a), used);
	r = lock_room(a, &ref);
	assert_int_equal(r->nmembers, nmembers);
	assert_int_equal(r->next_mid, next_mid);
	assert_int_equal(r->cap, cap);
	assert_int_equal(r->names, 0);
	assert_null(shm_member_by_name(a, r, name));
	shm_room_unlock(a, r);
	/* The name block is free again: a filler takes it. */
	assert_int_equal(filler_take(a, 40), small);
	filler_give(a, small);

	while (n > 0)
		filler_give(a, fill[--n]);
	assert_arena_ok(a);
	/* With room again, the same member joins. */
	assert_int_equal(add_member(a, &ref, name, 30, 100, 0, NULL), 0);
	assert_arena_ok(a);
}

/* Long names added, removed and rolled back within one lock hold. */
static void
test_member_long_names_in_one_hold(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;
	struct shm_member	 in, *m;
	struct shm_room		*r;
	char			 na[64], nb[64], nc[64], nd[80];
	uint64_t		 u0, u1;

	name_make(na, 0, 30);
	name_make(nb, 1, 50);
	name_make(nc, 2, 60);
	name_make(nd, 3, 70);
	u0 = used_bytes(a);
	ref = create_room(a, 1, "hold", 0);
	u1 = used_bytes(a);

	/* A added, B added, A removed: A's block, taken and freed in the
	 * same transaction, goes back once. */
	r = lock_room(a, &ref);
	member_init(&in, 0, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, na, 10, &m), 0);
	member_init(&in, 1, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, nb, 10, &m), 0);
	shm_member_remove_locked(a, r, shm_member_by_name(a, r, na));
	shm_room_unlock(a, r);
	assert_arena_ok(a);
	assert_int_equal(used_bytes(a), u1 + name_block_bytes(50));
	r = lock_room(a, &ref);
	assert_null(shm_member_by_name(a, r, na));
	assert_non_null(shm_member_by_name(a, r, nb));

	/* C added, then the transaction aborted: nothing of C is left. */
	member_init(&in, 2, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, nc, 10, &m), 0);
	shm_tx_abort(a, &r->lock);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
	assert_int_equal(used_bytes(a), u1 + name_block_bytes(50));
	r = lock_room(a, &ref);
	assert_null(shm_member_by_name(a, r, nc));

	/* B removed and D added in one hold: D does not take B's slot. */
	shm_member_remove_locked(a, r, shm_member_by_name(a, r, nb));
	member_init(&in, 3, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, nd, 10, &m), 0);
	assert_ptr_not_equal(m, shm_member_at(a, r, 1));
	shm_room_unlock(a, r);
	assert_arena_ok(a);
	assert_int_equal(used_bytes(a), u1 + name_block_bytes(70));
	r = lock_room(a, &ref);
	assert_null(shm_member_by_name(a, r, nb));
	assert_string_equal(shm_member_name(a, shm_member_by_name(a, r, nd)),
	    nd);

	/* A long name added in the hold that deletes the room. */
	member_init(&in, 4, 0);
	assert_int_equal(shm_member_add_locked(a, r, &in, na, 10, &m), 0);
	shm_room_delete_locked(a, r);
	assert_int_equal(used_bytes(a), u0);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Op log */

#define LOG_RECS	240

static void
test_log_sequences_and_read_from_every_cursor(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "log", 0);
	struct shm_room		*r;
	struct readback		 rb;
	uint32_t		 len[LOG_RECS + 1];
	uint64_t		 last, seq = 0, after;
	size_t			 n;

	for (n = 0; n <= LOG_RECS; n++)
		len[n] = rec_len_varied(n);
	/* Five single records, then batches of growing size. */
	for (n = 0; n < 5; n++) {
		assert_int_equal(append(a, &ref, 1, &len[seq + 1], 0, &last), 0);
		assert_int_equal(last, ++seq);
	}
	for (n = 2; seq + n <= LOG_RECS; n++) {
		assert_int_equal(append(a, &ref, n, &len[seq + 1], 0, &last), 0);
		assert_int_equal(last, seq + n);
		seq += n;
	}
	assert_true(seq > 200);
	assert_arena_ok(a);

	r = lock_room(a, &ref);
	assert_int_equal(r->committed, seq);
	assert_true(log_chunks(a, r) >= 2);
	for (after = 0; after <= seq + 2; after++)
		check_log_after(a, r, after, len, 0);

	/* Reading stops when the callback says so. */
	memset(&rb, 0, sizeof(rb));
	rb.next = 11;
	rb.len = len;
	rb.stop_after = 3;
	shm_log_read_locked(a, r, 10, readback_fn, &rb);
	assert_false(rb.bad);
	assert_int_equal(rb.count, 3);
	assert_int_equal(rb.next, 14);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

/* One batch larger than a 64 KiB chunk, into an empty log and a tail. */
static void
test_log_batch_larger_than_a_chunk(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "big", 0);
	struct shm_chunk	*c;
	struct shm_room		*r;
	uint64_t		 last, after;
	const uint64_t		 rec = sizeof(struct shm_rec) + 2000;

	assert_int_equal(append(a, &ref, 100, NULL, 2000, &last), 0);
	assert_int_equal(last, 100);
	r = lock_room(a, &ref);
	assert_int_not_equal(r->log_head, 0);
	assert_int_equal(r->log_head, r->log_tail);
	c = SHM_PTR(a, r->log_head);
	assert_int_equal(c->first_seq, 1);
	assert_int_equal(c->nrec, 100);
	assert_int_equal(c->used, 100 * rec);
	assert_true(c->cap >= 100 * rec);
	assert_int_equal(r->log_bytes, 100 * rec);
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	/* A second one: part of it goes into the tail, the rest into a new
	 * chunk, and the sequence runs on. */
	assert_int_equal(append(a, &ref, 100, NULL, 2000, &last), 0);
	assert_int_equal(last, 200);
	r = lock_room(a, &ref);
	assert_int_equal(log_chunks(a, r), 2);
	c = SHM_PTR(a, r->log_tail);
	assert_true(c->first_seq > 101);
	assert_int_equal(c->first_seq + c->nrec - 1, 200);
	for (after = 0; after <= 200; after += 7)
		check_log_after(a, r, after, NULL, 2000);
	check_log_after(a, r, 199, NULL, 2000);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

/* A record larger than the largest class is SHM_ELIMIT; nothing lands. */
static void
test_log_record_too_large_for_any_class(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "huge", 0);
	struct shm_rec_in	 in[2];
	struct shm_room		*r;
	struct shm_chunk	*tail;
	uint64_t		 last = 0, used, bytes, tail_used;
	const uint32_t		 huge = 32 * MiB, big = 20 * MiB;
	int			 i;

	assert_int_equal(append(a, &ref, 3, NULL, 100, &last), 0);
	assert_non_null(f->buf = calloc(1, huge));
	used = used_bytes(a);

	r = lock_room(a, &ref);
	bytes = r->log_bytes;
	tail = SHM_PTR(a, r->log_tail);
	tail_used = tail->used;
	memset(in, 0, sizeof(in));
	in[0].data = f->buf;
	in[0].len = huge;
	assert_int_equal(shm_log_append_locked(a, r, in, 1, UINT64_MAX,
	    &last), SHM_ELIMIT);
	/* A batch whose first record fits the tail fails whole. */
	in[0].len = 8;
	in[1].data = f->buf;
	in[1].len = huge;
	assert_int_equal(shm_log_append_locked(a, r, in, 2, UINT64_MAX,
	    &last), SHM_ELIMIT);
	/* Within the largest class but beyond this 16 MiB arena. */
	in[1].len = big;
	assert_int_equal(shm_log_append_locked(a, r, in, 2, UINT64_MAX,
	    &last), SHM_ENOSPC);
	assert_int_equal(r->committed, 3);
	assert_int_equal(r->log_bytes, bytes);
	assert_int_equal(tail->used, tail_used);
	assert_int_equal(tail->nrec, 3);
	for (i = 0; i < SHM_TX_BLOCKS; i++)
		assert_int_equal(r->lock.tx.alloc[i], 0);
	check_log_after(a, r, 0, NULL, 100);
	shm_room_unlock(a, r);
	assert_int_equal(used_bytes(a), used);
	assert_arena_ok(a);
	assert_int_equal(append(a, &ref, 1, NULL, 100, &last), 0);
	assert_int_equal(last, 4);
}

static void
test_log_max_bytes_limit(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "capped", 0);
	struct shm_room		*r;
	uint64_t		 last = 0, used;
	const uint64_t		 rec = sizeof(struct shm_rec) + 104;

	r = lock_room(a, &ref);
	assert_int_equal(append_locked(a, r, 10, NULL, 100, 10 * rec, &last),
	    0);
	assert_int_equal(last, 10);
	assert_int_equal(r->log_bytes, 10 * rec);	/* padded to 8 */
	used = used_bytes(a);

	assert_int_equal(append_locked(a, r, 1, NULL, 100, 11 * rec - 1,
	    &last), SHM_ELIMIT);
	assert_int_equal(append_locked(a, r, 3, NULL, 100, 12 * rec, &last),
	    SHM_ELIMIT);
	assert_int_equal(append_locked(a, r, 0, NULL, 100, UINT64_MAX, &last),
	    SHM_EINVAL);
	assert_int_equal(r->committed, 10);
	assert_int_equal(r->log_bytes, 10 * rec);
	assert_int_equal(((struct shm_chunk *)SHM_PTR(a, r->log_tail))->nrec,
	    10);
	assert_int_equal(used_bytes(a), used);
	assert_int_equal(last, 10);

	/* Exactly at the limit is allowed. */
	assert_int_equal(append_locked(a, r, 2, NULL, 100, 12 * rec, &last),
	    0);
	assert_int_equal(last, 12);
	check_log_after(a, r, 0, NULL, 100);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static void
test_log_delete_room_with_multichunk_log(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref, got;
	struct shm_room		*r;
	uint64_t		 base = used_bytes(a), last;
	int			 i;

	ref = create_room(a, 1, "long", 0);
	assert_int_equal(add_member(a, &ref, "ann", 0, 10, 0, NULL), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(append(a, &ref, 30, NULL, 2000, &last), 0);
	assert_int_equal(last, 240);
	r = lock_room(a, &ref);
	assert_true(log_chunks(a, r) >= 3);
	check_log_after(a, r, 0, NULL, 2000);
	shm_room_unlock(a, r);
	assert_true(used_bytes(a) > base + 3 * 64 * 1024);
	assert_arena_ok(a);

	delete_room(a, &ref);
	assert_int_equal(used_bytes(a), base);
	assert_int_equal(shm_room_find(a, 1, "long", &got), SHM_ENOENT);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Connections, dead slots, reaping */

static void
test_conn_counting_over_slots(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "conns", 500);
	static const unsigned	 slots[] = { 0, 3, 3, 7, 63, 3 };
	struct shm_room		*r;
	uint64_t		 sum;
	size_t			 i;

	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
		assert_int_equal(conn(a, &ref, slots[i], 1, 900), (int)i + 1);
	r = lock_room(a, &ref);
	assert_int_equal(r->conns, 6);
	assert_int_equal(r->slot_conns[0], 1);
	assert_int_equal(r->slot_conns[3], 3);
	assert_int_equal(r->slot_conns[7], 1);
	assert_int_equal(r->slot_conns[63], 1);
	for (sum = 0, i = 0; i < ARENA_MAX_SLOTS; i++)
		sum += r->slot_conns[i];
	assert_int_equal(sum, r->conns);
	assert_int_equal(r->expires, 0);	/* connected: no expiry */
	assert_true(r->flags & ROOM_F_OPENED);
	shm_room_unlock(a, r);
	assert_arena_ok(a);

	/* Closing on a slot with none open changes nothing. */
	assert_int_equal(conn(a, &ref, 5, -1, 900), 6);
	assert_int_equal(conn(a, &ref, 3, -1, 900), 5);
	assert_int_equal(conn(a, &ref, 0, -1, 900), 4);
	assert_int_equal(conn(a, &ref, 0, -1, 900), 4);
	assert_int_equal(conn(a, &ref, 3, -1, 900), 3);
	assert_int_equal(conn(a, &ref, 3, -1, 900), 2);
	assert_int_equal(conn(a, &ref, 7, -1, 900), 1);
	r = lock_room(a, &ref);
	assert_int_equal(r->expires, 0);
	assert_int_equal(r->slot_conns[63], 1);
	shm_room_unlock(a, r);
	/* The last one out sets the expiry given. */
	assert_int_equal(conn(a, &ref, 63, -1, 900), 0);
	r = lock_room(a, &ref);
	assert_int_equal(r->conns, 0);
	assert_int_equal(r->expires, 900);
	assert_true(r->flags & ROOM_F_OPENED);
	shm_room_unlock(a, r);
	/* Coming back clears it again. */
	assert_int_equal(conn(a, &ref, 1, 1, 950), 1);
	r = lock_room(a, &ref);
	assert_int_equal(r->expires, 0);
	assert_int_equal(shm_room_set_expiry_locked(a, r, 1234), 0);
	shm_room_unlock(a, r);
	r = lock_room(a, &ref);
	assert_int_equal(r->expires, 1234);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static void
test_slot_dead_clears_slot_and_sets_expiry(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 mixed, only, idle, other;
	struct shm_member	*m;
	struct shm_room		*r;
	uint64_t		 loc[6];
	unsigned		 i;

	mixed = create_room(a, 1, "mixed", 100);
	only = create_room(a, 1, "only-slot-3", 100);
	idle = create_room(a, 2, "idle", 100);
	other = create_room(a, 2, "slot-1", 100);
	/* mixed: members on slots 3, 3, 0, 3, none, 1. */
	loc[0] = SHM_SLOT_BIT(3);
	loc[1] = SHM_SLOT_BIT(3);
	loc[2] = SHM_SLOT_BIT(0);
	loc[3] = SHM_SLOT_BIT(3);
	loc[4] = 0;
	loc[5] = SHM_SLOT_BIT(1);
	for (i = 0; i < 6; i++) {
		char name[8];

		snprintf(name, sizeof(name), "p%u", i);
		assert_int_equal(add_member(a, &mixed, name, i, 10, loc[i],
		    NULL), 0);
		if (loc[i] != 0)
			assert_true(conn(a, &mixed,
			    (unsigned)__builtin_ctzll(loc[i]), 1, 0) > 0);
	}
	assert_int_equal(add_member(a, &only, "q", 0, 10,
	    SHM_SLOT_BIT(3), NULL), 0);
	assert_int_equal(conn(a, &only, 3, 1, 0), 1);
	assert_int_equal(conn(a, &only, 3, 1, 0), 2);
	assert_int_equal(add_member(a, &other, "s", 0, 10,
	    SHM_SLOT_BIT(1), NULL), 0);
	assert_int_equal(conn(a, &other, 1, 1, 0), 1);
	assert_arena_ok(a);

	shm_room_slot_dead(a, 3, 5000);
	assert_arena_ok(a);

	r = lock_room(a, &mixed);
	assert_int_equal(r->slot_conns[3], 0);
	assert_int_equal(r->slot_conns[0], 1);
	assert_int_equal(r->slot_conns[1], 1);
	assert_int_equal(r->conns, 2);
	assert_int_equal(r->expires, 0);	/* still connected */
	for (i = 0; i < 6; i++) {
		m = shm_member_at(a, r, i);
		assert_int_equal(m->mid, i + 1);	/* members stay */
		if (loc[i] != 0 && __builtin_ctzll(loc[i]) == 3)
			assert_int_equal(m->slots, 0);
		else
			assert_int_equal(m->slots, loc[i]);
	}
	shm_room_unlock(a, r);

	r = lock_room(a, &only);
	assert_int_equal(r->conns, 0);
	assert_int_equal(r->slot_conns[3], 0);
	assert_int_equal(r->expires, 5000);
	assert_int_equal(shm_member_by_name(a, r, "q")->slots, 0);
	shm_room_unlock(a, r);

	r = lock_room(a, &idle);		/* untouched */
	assert_int_equal(r->expires, 100);
	shm_room_unlock(a, r);
	r = lock_room(a, &other);		/* another slot: untouched */
	assert_int_equal(r->conns, 1);
	assert_int_equal(r->expires, 0);
	assert_int_equal(shm_member_by_name(a, r, "s")->slots,
	    SHM_SLOT_BIT(1));
	shm_room_unlock(a, r);

	/* Again: nothing left on slot 3, nothing changes. */
	shm_room_slot_dead(a, 3, 9999);
	r = lock_room(a, &only);
	assert_int_equal(r->expires, 5000);
	shm_room_unlock(a, r);
	r = lock_room(a, &mixed);
	assert_int_equal(r->conns, 2);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static int
op_slot_dead_2(struct arena *a)
{
	shm_room_slot_dead(a, 2, 777);
	return 0;
}

/*
 * A worker slot dies with a crowd in one room.  shm_room_slot_dead must
 * forget every connection it had, however many.
 */
static void
test_slot_dead_with_many_members_on_the_slot(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref = create_room(a, 1, "crowd", 0);
	struct shm_room		*r;
	char			 name[16];
	unsigned		 i;
	int			 status;
	const unsigned		 crowd = 40;

	for (i = 0; i < crowd; i++) {
		snprintf(name, sizeof(name), "c%u", i);
		assert_int_equal(add_member(a, &ref, name, i, 100,
		    SHM_SLOT_BIT(2), NULL), 0);
		assert_int_equal(conn(a, &ref, 2, 1, 0), (int)i + 1);
	}
	assert_arena_ok(a);

	/* In a child, since a failure here may abort(). */
	status = run_child(a, NULL, op_slot_dead_2);
	if (WIFSIGNALED(status))
		fail_msg("shm_room_slot_dead with %u members on the slot died "
		    "of signal %d", crowd, WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	r = lock_room(a, &ref);
	assert_int_equal(r->conns, 0);
	assert_int_equal(r->slot_conns[2], 0);
	assert_int_equal(r->expires, 777);
	for (i = 0; i < crowd; i++)
		assert_int_equal(shm_member_at(a, r, i)->slots, 0);
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

static void
test_reap_deletes_only_expired_empty_rooms(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 never, left, busy, later, got;
	struct shm_room		*r;
	uint64_t		 u0 = used_bytes(a), last;

	never = create_room(a, 1, "never-opened", 1000);
	left = create_room(a, 1, "left-empty", 0);
	busy = create_room(a, 2, "busy", 1000);
	later = create_room(a, 2, "later", 3000);
	assert_int_equal(append(a, &left, 50, NULL, 3000, &last), 0);
	assert_int_equal(conn(a, &left, 4, 1, 0), 1);
	assert_int_equal(conn(a, &left, 4, -1, 2000), 0);
	assert_int_equal(conn(a, &busy, 5, 1, 0), 1);
	/* Connected, yet with an expiry time in the past: not reaped. */
	r = lock_room(a, &busy);
	assert_int_equal(shm_room_set_expiry_locked(a, r, 10), 0);
	shm_room_unlock(a, r);

	shm_room_reap(a, 999);
	assert_int_equal(a->hdr->nrooms, 4);
	assert_arena_ok(a);

	shm_room_reap(a, 1000);
	assert_int_equal(a->hdr->nrooms, 3);
	assert_int_equal(shm_room_find(a, 1, "never-opened", &got), SHM_ENOENT);
	assert_int_equal(shm_room_lock(a, &never, &r), SHM_ENOENT);
	assert_int_equal(shm_room_find(a, 1, "left-empty", &got), 0);
	assert_arena_ok(a);

	shm_room_reap(a, 2500);
	assert_int_equal(a->hdr->nrooms, 2);
	assert_int_equal(shm_room_find(a, 1, "left-empty", &got), SHM_ENOENT);
	assert_int_equal(shm_room_find(a, 2, "later", &got), 0);
	assert_arena_ok(a);

	shm_room_reap(a, UINT64_MAX);
	assert_int_equal(a->hdr->nrooms, 1);
	assert_int_equal(shm_room_find(a, 2, "later", &got), SHM_ENOENT);
	assert_int_equal(shm_room_find(a, 2, "busy", &got), 0);
	assert_int_equal(got.off, busy.off);
	assert_arena_ok(a);

	delete_room(a, &busy);
	assert_int_equal(used_bytes(a), u0);
	(void)later;
}

/* ------------------------------------------------------------------ */
/* The per-address table */

static const uint64_t	 addr_a[2] = { 0xc0000201, 4 };	/* 192.0.2.1 */
static const uint64_t	 addr_b[2] = { 0x20010db800000000ULL, 6 };

static void
test_ip_connections_over_slots_and_a_dead_slot(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;

	/* The limit is over all slots together. */
	assert_int_equal(shm_ip_conn_add(a, addr_a, 0, 3), 0);
	assert_int_equal(shm_ip_conn_add(a, addr_a, 1, 3), 0);
	assert_int_equal(shm_ip_conn_add(a, addr_a, 0, 3), 0);
	assert_int_equal(shm_ip_conn_add(a, addr_a, 1, 3), SHM_ELIMIT);
	assert_int_equal(shm_ip_conn_add(a, addr_a, 5, 3), SHM_ELIMIT);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 3);
	/* Another address, and no limit at all. */
	assert_int_equal(shm_ip_conn_add(a, addr_b, 0, 3), 0);
	assert_int_equal(shm_ip_conn_add(a, addr_a, 2, 0), 0);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 4);
	assert_int_equal(a->hdr->ip_inuse, 4);
	shm_ip_conn_del(a, addr_a, 2);
	assert_int_equal(a->hdr->ip_inuse, 3);
	assert_arena_ok(a);

	/* Slot 0 dies: its two connections from a and one from b go. */
	shm_ip_slot_dead(a, 0);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 1);
	assert_int_equal(shm_ip_count(a, addr_b, IPT_CONNS), 0);
	assert_int_equal(a->hdr->ip_inuse, 1);
	/* A close counted nowhere any more changes nothing. */
	shm_ip_conn_del(a, addr_a, 0);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 1);
	shm_ip_conn_del(a, addr_a, 1);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 0);
	assert_int_equal(a->hdr->ip_inuse, 0);
	assert_int_equal(a->hdr->ip_free != 0, 1);
	assert_arena_ok(a);
}

/* Make a room created by addr, as room.c does. */
static struct shm_room_ref
ip_room(struct arena *a, const char *id, const uint64_t addr[2])
{
	struct shm_room_ref	 ref;
	struct shm_room		*r;

	assert_int_equal(shm_room_create_locked(a, 1, id, 0, &ref, &r), 0);
	shm_tx_set(a, &r->lock, &r->creator[0], addr[0]);
	shm_tx_set(a, &r->lock, &r->creator[1], addr[1]);
	shm_room_unlock(a, r);
	return ref;
}

static void
test_ip_rooms_follow_their_rooms(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 r1, r2;

	assert_int_equal(shm_ip_room_add(a, addr_a, 2), 0);
	r1 = ip_room(a, "one", addr_a);
	assert_int_equal(shm_ip_room_add(a, addr_a, 2), 0);
	r2 = ip_room(a, "two", addr_a);
	assert_int_equal(shm_ip_room_add(a, addr_a, 2), SHM_ELIMIT);
	assert_int_equal(shm_ip_room_add(a, addr_b, 2), 0);
	shm_ip_room_del(a, addr_b);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_ROOMS), 2);
	assert_arena_ok(a);
	/* Deleted or reaped, a room gives its creator's place back. */
	delete_room(a, &r1);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_ROOMS), 1);
	shm_room_reap(a, 1);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_ROOMS), 1);
	{
		struct shm_room	*r = lock_room(a, &r2);

		shm_room_set_expiry_locked(a, r, 5);
		shm_room_unlock(a, r);
	}
	shm_room_reap(a, 6);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_ROOMS), 0);
	assert_int_equal(a->hdr->ip_inuse, 0);
	assert_arena_ok(a);
}

static void
test_ip_wrong_passwords_per_minute(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	int		 i;

	for (i = 0; i < 3; i++)
		assert_int_equal(shm_ip_fail_add(a, addr_a, 7, 1000 + i), 0);
	assert_int_equal(shm_ip_fail_add(a, addr_a, 8, 1000), 0);
	assert_int_equal(shm_ip_fails(a, addr_a, 7, 1030), 3);
	assert_int_equal(shm_ip_fails(a, addr_a, 8, 1030), 1);
	assert_int_equal(shm_ip_fails(a, addr_b, 7, 1030), 0);
	/* The minute starts at the first failure and then ends. */
	assert_int_equal(shm_ip_fails(a, addr_a, 7, 1059), 3);
	assert_int_equal(shm_ip_fails(a, addr_a, 7, 1060), 0);
	assert_int_equal(shm_ip_fail_add(a, addr_a, 7, 1061), 0);
	assert_int_equal(shm_ip_fails(a, addr_a, 7, 1062), 1);
	assert_arena_ok(a);
	/* Reaping drops whole minutes gone by, nothing younger. */
	shm_ip_reap(a, 1100);
	assert_int_equal(a->hdr->ip_inuse, 1);
	assert_int_equal(shm_ip_fails(a, addr_a, 7, 1100), 1);
	shm_ip_reap(a, 1121);
	assert_int_equal(a->hdr->ip_inuse, 0);
	assert_arena_ok(a);
}

static void
test_ip_table_full_counts_nothing(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	uint64_t	 addr[2] = { 0, 4 }, full0 = a->hdr->ip_full;
	unsigned	 i;

	for (i = 0; i < IPT_ENTRIES; i++) {
		addr[0] = 0x0a000000 + i;
		assert_int_equal(shm_ip_conn_add(a, addr, 0, 1), 0);
	}
	assert_int_equal(a->hdr->ip_inuse, IPT_ENTRIES);
	assert_int_equal(a->hdr->ip_free, 0);
	/* Full: a new address is let through, uncounted; old ones still
	 * count and refuse. */
	addr[0] = 0x0b000000;
	assert_int_equal(shm_ip_conn_add(a, addr, 0, 1), 1);
	assert_int_equal(shm_ip_count(a, addr, IPT_CONNS), 0);
	assert_int_equal(a->hdr->ip_full, full0 + 1);
	addr[0] = 0x0a000005;
	assert_int_equal(shm_ip_conn_add(a, addr, 1, 1), SHM_ELIMIT);
	assert_arena_ok(a);
	shm_ip_conn_del(a, addr, 0);
	addr[0] = 0x0b000000;
	assert_int_equal(shm_ip_conn_add(a, addr, 0, 1), 0);
	assert_arena_ok(a);
	shm_ip_slot_dead(a, 0);
	assert_int_equal(a->hdr->ip_inuse, 0);
	assert_arena_ok(a);
}

/* A child that dies holding the address lock mid-insert. */
static int
op_ip_three_new(struct arena *a)
{
	uint64_t	 addr[2] = { 0x0c000001, 4 };
	int		 i, rc;

	for (i = 0; i < 3; i++) {
		addr[0] += (uint64_t)i;
		if ((rc = shm_ip_conn_add(a, addr, 2, 0)) != 0)
			return rc;
	}
	return 0;
}

static void
test_ip_killed_holder_rolls_back(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	uint64_t	 rec0;

	assert_int_equal(shm_ip_conn_add(a, addr_a, 1, 0), 0);
	rec0 = a->hdr->recoveries;
	assert_killed_by_sigkill(run_child(a, "ip_insert", op_ip_three_new));
	assert_arena_ok(a);
	assert_true(a->hdr->recoveries > rec0);
	assert_int_equal(a->hdr->ip_inuse, 1);
	assert_int_equal(shm_ip_count(a, addr_a, IPT_CONNS), 1);
	/* The lock works and the table takes the same entries again. */
	assert_child_ok(run_child(a, NULL, op_ip_three_new),
	    "three new addresses after the repair");
	assert_int_equal(a->hdr->ip_inuse, 4);
	assert_arena_ok(a);
}

/* ------------------------------------------------------------------ */
/* Recovery after a process dies holding locks */

/*
 * The world every crash case starts from (cmocka-free, so children may
 * build one too):
 *   1:alpha  a full initial member table (alice, bob, carol, dave, erin
 *            and more if it holds more), 1 connection on slot 1, 3 small
 *            records in a chunk with plenty of room;
 *   1:beta   2 members, 90 records of 2000 bytes over two chunks;
 *   2:alpha  2 members, the second with a long name (kept apart from
 *            its record), 1 record.
 */
static const char *const alpha_names[] = {
	"alice", "bob", "carol", "dave", "erin"
};
static const uint64_t world_addr[2] = { 0xc0000201, 4 };	/* 192.0.2.1 */
#define LONG_NAME_ZACH	"Zachariah \"Zach\" Long-Name \\ of the second alpha"
#define LONG_NAME_ZED	"Zedekiah, a guest whose name does not fit the record"

static int
crash_world(struct arena *a)
{
	struct shm_room_ref	 alpha, beta, alpha2;
	struct shm_room		*r;
	char			 name[16];
	unsigned		 i;
	int			 rc, full = 0;

	if ((rc = shm_room_create(a, 1, "alpha", 1000, &alpha)) != 0 ||
	    (rc = shm_room_create(a, 1, "beta", 1000, &beta)) != 0 ||
	    (rc = shm_room_create(a, 2, "alpha", 1000, &alpha2)) != 0)
		return rc;
	for (i = 0; i < 5 || !full; i++) {
		if (i < 5)
			snprintf(name, sizeof(name), "%s", alpha_names[i]);
		else
			snprintf(name, sizeof(name), "extra%u", i);
		if ((rc = add_member(a, &alpha, name, i, 100,
		    SHM_SLOT_BIT(1), NULL)) != 0)
			return rc;
		if ((rc = shm_room_lock(a, &alpha, &r)) != 0)
			return rc;
		full = r->nmembers == r->cap;
		shm_room_unlock(a, r);
	}
	if ((rc = conn(a, &alpha, 1, 1, 0)) != 1 ||
	    (rc = append(a, &alpha, 3, NULL, 40, NULL)) != 0)
		return rc < 0 ? rc : SHM_EINVAL;
	if ((rc = add_member(a, &beta, "bruce", 10, 100, 0, NULL)) != 0 ||
	    (rc = add_member(a, &beta, "betty", 11, 100, 0, NULL)) != 0)
		return rc;
	for (i = 0; i < 3; i++)
		if ((rc = append(a, &beta, 30, NULL, 2000, NULL)) != 0)
			return rc;
	if ((rc = add_member(a, &alpha2, "zoe", 20, 100, 0, NULL)) != 0 ||
	    (rc = add_member(a, &alpha2, LONG_NAME_ZACH, 21, 100, 0,
	    NULL)) != 0 || (rc = append(a, &alpha2, 1, NULL, 8, NULL)) != 0)
		return rc;
	if ((rc = shm_ip_conn_add(a, world_addr, 1, 0)) != 0 ||
	    (rc = shm_ip_room_add(a, world_addr, 0)) != 0)
		return rc < 0 ? rc : SHM_ENOSPC;
	return 0;
}

/* The operations a crash case interrupts; all cmocka-free. */

static int
lock_by_id(struct arena *a, unsigned dialect, const char *id,
    struct shm_room **rp)
{
	struct shm_room_ref	 ref;
	int			 rc;

	if ((rc = shm_room_find(a, dialect, id, &ref)) != 0)
		return rc;
	return shm_room_lock(a, &ref, rp);
}

static int
op_create_gamma(struct arena *a)
{
	struct shm_room_ref	 ref;

	return shm_room_create(a, 1, "gamma", 2000, &ref);
}

/* Create gamma locked; the creator sets it up before anyone can see it. */
static int
op_create_locked_gamma(struct arena *a)
{
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	int			 rc;

	if ((rc = shm_room_create_locked(a, 1, "gamma", 2000, &ref, &r)) != 0)
		return rc;
	shm_room_set_expiry_locked(a, r, 2500);
	shm_room_unlock(a, r);
	return 0;
}

/*
 * After a repair the arena must still work: create a room (which takes
 * any slot freed by the repair), then find, lock and delete it.  Run in a
 * child under alarm(), so a deadlock fails the test instead of hanging it.
 */
static int
op_smoke(struct arena *a)
{
	struct shm_room_ref	 ref, got;
	struct shm_room		*r;
	uint64_t		 last;
	int			 rc;

	if ((rc = shm_room_create_locked(a, 3, "smoke", 1, &ref, &r)) != 0)
		return rc;
	rc = append_locked(a, r, 1, NULL, 8, UINT64_MAX, &last);
	shm_room_unlock(a, r);
	if (rc != 0)
		return rc;
	if ((rc = shm_room_find(a, 3, "smoke", &got)) != 0 ||
	    (rc = shm_room_lock(a, &got, &r)) != 0)
		return rc;
	shm_room_delete_locked(a, r);
	return shm_room_find(a, 3, "smoke", &got) == SHM_ENOENT ? 0 : 1;
}

static int
op_delete_beta(struct arena *a)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = lock_by_id(a, 1, "beta", &r)) != 0)
		return rc;
	shm_room_delete_locked(a, r);
	return 0;
}

/* Add a member to alpha, whose table is full: the table grows. */
static int
op_grow_alpha(struct arena *a)
{
	struct shm_member	 in, *out;
	struct shm_room		*r;
	int			 rc;

	if ((rc = lock_by_id(a, 1, "alpha", &r)) != 0)
		return rc;
	member_init(&in, 5, SHM_SLOT_BIT(2));
	rc = shm_member_add_locked(a, r, &in, "frank", 100, &out);
	shm_room_unlock(a, r);
	return rc;
}

static int
op_add_beta(struct arena *a)
{
	struct shm_member	 in, *out;
	struct shm_room		*r;
	int			 rc;

	if ((rc = lock_by_id(a, 1, "beta", &r)) != 0)
		return rc;
	member_init(&in, 12, 0);
	rc = shm_member_add_locked(a, r, &in, "zed", 100, &out);
	shm_room_unlock(a, r);
	return rc;
}

/* Beta gets a member whose name is kept in a block of its own. */
static int
op_add_beta_long(struct arena *a)
{
	struct shm_member	 in, *out;
	struct shm_room		*r;
	int			 rc;

	if ((rc = lock_by_id(a, 1, "beta", &r)) != 0)
		return rc;
	member_init(&in, 12, 0);
	rc = shm_member_add_locked(a, r, &in, LONG_NAME_ZED, 100, &out);
	shm_room_unlock(a, r);
	return rc;
}

/* The long-named member of 2:alpha leaves: its name block goes too. */
static int
op_remove_long(struct arena *a)
{
	struct shm_member	*m;
	struct shm_room		*r;
	int			 rc;

	if ((rc = lock_by_id(a, 2, "alpha", &r)) != 0)
		return rc;
	if ((m = shm_member_by_name(a, r, LONG_NAME_ZACH)) == NULL)
		rc = SHM_ENOENT;
	else
		shm_member_remove_locked(a, r, m);
	shm_room_unlock(a, r);
	return rc;
}

static int
op_delete_alpha2(struct arena *a)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = lock_by_id(a, 2, "alpha", &r)) != 0)
		return rc;
	shm_room_delete_locked(a, r);
	return 0;
}

/* Several changes to alpha in one hold, none of which allocates. */
static int
op_edit_alpha(struct arena *a)
{
	struct shm_member	*m;
	struct shm_room		*r;
	uint64_t		 last;
	int			 rc;

	if ((rc = lock_by_id(a, 1, "alpha", &r)) != 0)
		return rc;
	if ((m = shm_member_by_name(a, r, "carol")) != NULL)
		shm_member_set_locked(a, r, m, &m->authorities, 3);
	shm_room_conn_locked(a, r, 2, 1, 0);
	shm_tx_set(a, &r->lock, &r->flags, r->flags | ROOM_F_PASSWORD);
	rc = append_locked(a, r, 2, NULL, 16, UINT64_MAX, &last);
	shm_room_unlock(a, r);
	return rc;
}

/* A batch of three: two fit alpha's tail, the third needs a new chunk. */
static int
op_append_alpha(struct arena *a)
{
	static const uint32_t	 len[3] = { 16, 24, 130000 };
	struct shm_room		*r;
	uint64_t		 last;
	int			 rc;

	if ((rc = lock_by_id(a, 1, "alpha", &r)) != 0)
		return rc;
	rc = append_locked(a, r, 3, len, 0, UINT64_MAX, &last);
	shm_room_unlock(a, r);
	return rc;
}

/* A connection from a new address: a new entry of the address table. */
static int
op_ip_insert(struct arena *a)
{
	static const uint64_t	 addr[2] = { 0x20010db800000001ULL, 6 };

	return shm_ip_conn_add(a, addr, 3, 0);
}

enum outcome { ROLLED_BACK, DONE, EITHER };

struct crash_case {
	const char	*name;
	const char	*site;
	int		(*op)(struct arena *);
	enum outcome	 expect;
};

static struct crash_case crash_cases[] = {
	{ "crash_at_alloc_in_room_create", "alloc", op_create_gamma,
	    ROLLED_BACK },
	{ "crash_at_free_after_member_table_grew", "free", op_grow_alpha,
	    DONE },
	{ "crash_at_tx_commit_of_room_edit", "tx_commit", op_edit_alpha,
	    ROLLED_BACK },
	{ "crash_at_tx_freeing_after_member_table_grew", "tx_freeing",
	    op_grow_alpha, DONE },
	{ "crash_at_tx_freeing_in_room_delete", "tx_freeing", op_delete_beta,
	    DONE },
	{ "crash_at_room_create", "room_create", op_create_gamma,
	    ROLLED_BACK },
	{ "crash_at_room_create_locked", "room_create",
	    op_create_locked_gamma, ROLLED_BACK },
	{ "crash_at_room_unlink", "room_unlink", op_delete_beta, EITHER },
	{ "crash_at_room_delete", "room_delete", op_delete_beta, EITHER },
	{ "crash_at_member_add", "member_add", op_add_beta, ROLLED_BACK },
	{ "crash_at_member_add_with_table_growth", "member_add",
	    op_grow_alpha, ROLLED_BACK },
	{ "crash_at_log_append", "log_append", op_append_alpha, ROLLED_BACK },
	{ "crash_at_ip_insert", "ip_insert", op_ip_insert, ROLLED_BACK },
	{ "crash_at_alloc_of_long_name", "alloc", op_add_beta_long,
	    ROLLED_BACK },
	{ "crash_at_member_name", "member_name", op_add_beta_long,
	    ROLLED_BACK },
	{ "crash_at_member_add_with_long_name", "member_add",
	    op_add_beta_long, ROLLED_BACK },
	{ "crash_at_tx_commit_of_long_name_removal", "tx_commit",
	    op_remove_long, ROLLED_BACK },
	{ "crash_at_tx_freeing_of_long_name_removal", "tx_freeing",
	    op_remove_long, DONE },
	{ "crash_at_free_of_long_name", "free", op_remove_long, DONE },
	{ "crash_at_tx_freeing_in_delete_with_long_names", "tx_freeing",
	    op_delete_alpha2, DONE },
};
#define NCRASH	(sizeof(crash_cases) / sizeof(crash_cases[0]))
_Static_assert(NCRASH == 20, "main() lists crash cases 0..19: keep it so");

/* Build the world in both arenas; snap[0] is before, snap[1] after op. */
static void
crash_prepare(struct fx *f, int (*op)(struct arena *))
{
	assert_int_equal(crash_world(&f->a), 0);
	assert_int_equal(crash_world(&f->b), 0);
	assert_arena_ok(&f->a);
	assert_non_null(f->snap[0] = snapshot(&f->a));
	assert_non_null(f->snap[2] = snapshot(&f->b));
	assert_string_equal(f->snap[0], f->snap[2]);
	free(f->snap[2]);
	f->snap[2] = NULL;
	if (op != NULL) {
		assert_int_equal(op(&f->b), 0);
		assert_arena_ok(&f->b);
		assert_non_null(f->snap[1] = snapshot(&f->b));
		assert_string_not_equal(f->snap[0], f->snap[1]);
	}
}

/* After recovery: the state is before (or after, as allowed). */
static void
assert_outcome(struct fx *f, enum outcome expect)
{
	const char	*now;
	int		 same_before, same_after;

	assert_non_null(f->snap[3] = snapshot(&f->a));
	now = f->snap[3];
	same_before = strcmp(now, f->snap[0]) == 0;
	same_after = f->snap[1] != NULL && strcmp(now, f->snap[1]) == 0;
	if (expect == ROLLED_BACK && !same_before) {
		print_diff("state before the operation", f->snap[0], now);
		fail_msg("the operation was not rolled back");
	}
	if (expect == DONE && !same_after) {
		print_diff("state after the operation", f->snap[1], now);
		fail_msg("the operation was not completed");
	}
	if (expect == EITHER && !same_before && !same_after) {
		print_diff("state before the operation", f->snap[0], now);
		print_diff("state after the operation", f->snap[1], now);
		fail_msg("the operation half happened");
	}
}

/*
 * Table-driven: for each SHM_CRASH() site, a child runs an operation that
 * passes through it and is killed there.  The parent then recovers by
 * taking locks (arena_check takes them all) and checks the arena is sound,
 * no lock is left unusable, and the operation fully happened or did not.
 */
static void
test_crash_site(void **state)
{
	struct fx		*f = *state;
	const struct crash_case	*cc = f->cc;
	struct shm_room_ref	 refs[8];
	uint64_t		 rec0;
	size_t			 n;

	crash_prepare(f, cc->op);
	n = shm_room_list(&f->a, ROOM_ALL_DIALECTS, refs, 8);
	assert_int_equal(n, 3);
	rec0 = f->a.hdr->recoveries;

	assert_killed_by_sigkill(run_child(&f->a, cc->site, cc->op));
	assert_arena_ok(&f->a);
	assert_locks_usable(&f->a, refs, n);
	assert_true(f->a.hdr->recoveries > rec0);
	assert_outcome(f, cc->expect);
	assert_arena_ok(&f->a);
	assert_child_ok(run_child(&f->a, NULL, op_smoke),
	    "creating, finding and deleting a room after the repair");
	assert_arena_ok(&f->a);
}

/*
 * Where shm/ is: $ROOMD_SRC/shm, else next to this file as the compiler
 * named it, which is relative to the build directory, the one holding
 * tests/unit/test_shm (this program).  0, or -1 if it cannot be told.
 */
static int
shm_source_dir(char *dir, size_t len)
{
	const char	*src = getenv("ROOMD_SRC");
	char		 exe[512], *p;
	ssize_t		 n;
	int		 k;

	if (src != NULL)
		k = snprintf(dir, len, "%s/shm", src);
	else if (__FILE__[0] == '/')
		k = snprintf(dir, len, "%s", __FILE__);
	else {
		if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0)
			return -1;
		exe[n] = '\0';
		if ((p = strstr(exe, "/tests/unit/test_shm")) == NULL)
			return -1;
		*p = '\0';
		k = snprintf(dir, len, "%s/%s", exe, __FILE__);
	}
	if (k < 0 || (size_t)k >= len)
		return -1;
	if (src == NULL) {
		if ((p = strstr(dir, "tests/unit/test_shm.c")) == NULL)
			return -1;
		snprintf(p, len - (size_t)(p - dir), "shm");
	}
	return 0;
}

/* Every SHM_CRASH() site in the shm/ sources has a case in the table. */
static void
test_crash_table_covers_every_site(void **state)
{
	static const char *const files[] = {
		"arena.c", "shm_alloc.c", "shm_lock.c", "shm_room.c",
		"shm_log.c"
	};
	char		 dir[1024], path[1100], line[512], site[64], *p, *q;
	size_t		 i, j, found = 0;
	FILE		*fp;

	(void)state;
	if (shm_source_dir(dir, sizeof(dir)) != 0) {
		print_message("cannot tell where shm/ is: set ROOMD_SRC\n");
		skip();
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if ((fp = fopen(path, "r")) == NULL) {
			print_message("cannot read %s: set ROOMD_SRC\n", path);
			skip();
		}
		while (fgets(line, sizeof(line), fp) != NULL) {
			if ((p = strstr(line, "SHM_CRASH(\"")) == NULL ||
			    (q = strchr(p + 11, '"')) == NULL)
				continue;
			snprintf(site, sizeof(site), "%.*s", (int)(q - p - 11),
			    p + 11);
			found++;
			for (j = 0; j < NCRASH; j++)
				if (strcmp(crash_cases[j].site, site) == 0)
					break;
			if (j == NCRASH) {
				fclose(fp);
				fail_msg("%s: no crash case for site %s", path,
				    site);
			}
		}
		fclose(fp);
	}
	assert_true(found >= 9);
}

static char	 hook_what[32];
static uint64_t	 hook_pid;
static int	 hook_calls;

static void
recovery_hook(const char *what, uint64_t pid)
{
	snprintf(hook_what, sizeof(hook_what), "%s", what);
	hook_pid = pid;
	hook_calls++;
}

/* Many changes to alpha in one hold, then the process is killed. */
static int
op_change_alpha_then_die(struct arena *a)
{
	static const uint32_t	 len[2] = { 32, 100000 };
	struct shm_member	 in, *out;
	struct shm_room		*r;
	uint64_t		 last;

	if (lock_by_id(a, 1, "alpha", &r) != 0)
		return 1;
	shm_tx_set(a, &r->lock, &r->expires, 999);
	shm_tx_set(a, &r->lock, &r->flags, r->flags | ROOM_F_PASSWORD);
	if (append_locked(a, r, 2, len, 0, UINT64_MAX, &last) != 0)
		return 2;
	member_init(&in, 5, 0);
	if (shm_member_add_locked(a, r, &in, "frank", 100, &out) != 0)
		return 3;
	shm_member_set_locked(a, r, out, &out->authorities, last);
	shm_room_conn_locked(a, r, 9, 1, 0);
	shm_member_remove_locked(a, r, shm_member_by_name(a, r, "alice"));
	raise(SIGKILL);
	return 4;
}

/*
 * A child takes alpha's lock, changes many things (a new log chunk and a
 * bigger member table among them) and is killed.  The parent takes the
 * same lock: it gets it, sees exactly the state from before, and the
 * blocks the child took are back.
 */
static void
test_recovery_killed_room_lock_holder_rolls_back(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	struct shm_room	*r;
	uint64_t	 rec0, used0, committed0, next_mid0;
	pid_t		 pid;
	int		 status;

	assert_int_equal(crash_world(a), 0);
	assert_non_null(f->snap[0] = snapshot(a));
	used0 = used_bytes(a);
	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	committed0 = r->committed;
	next_mid0 = r->next_mid;
	shm_room_unlock(a, r);
	rec0 = a->hdr->recoveries;
	hook_calls = 0;
	shm_recovery_hook = recovery_hook;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		alarm(CHILD_TIMEOUT);
		_exit(op_change_alpha_then_die(a));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_killed_by_sigkill(status);
	/* The child died holding alpha's lock with its changes in place. */
	assert_true(used_bytes(a) > used0);

	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	assert_int_equal(hook_calls, 1);
	assert_string_equal(hook_what, "room");
	assert_int_equal(hook_pid, (uint64_t)pid);
	assert_int_equal(a->hdr->recoveries, rec0 + 1);
	assert_int_equal(r->committed, committed0);
	assert_int_equal(r->expires, 0);
	assert_false(r->flags & ROOM_F_PASSWORD);
	assert_int_equal(r->conns, 1);
	assert_int_equal(r->slot_conns[9], 0);
	assert_int_equal(r->next_mid, next_mid0);
	assert_null(shm_member_by_name(a, r, "frank"));
	assert_non_null(shm_member_by_name(a, r, "alice"));
	assert_int_equal(r->lock.tx.state, SHM_TX_ACTIVE);	/* ours */
	check_log_after(a, r, 0, NULL, 40);
	shm_room_unlock(a, r);
	assert_int_equal(used_bytes(a), used0);
	assert_arena_ok(a);
	assert_non_null(f->snap[3] = snapshot(a));
	if (strcmp(f->snap[0], f->snap[3]) != 0) {
		print_diff("state before the child", f->snap[0], f->snap[3]);
		fail_msg("the dead child's changes were not rolled back");
	}
	/* Later lock holders see a healthy lock. */
	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	shm_room_unlock(a, r);
	assert_int_equal(a->hdr->recoveries, rec0 + 1);
}

/* Remove bob and add mallory (who takes bob's slot) in one hold; die. */
static int
op_replace_bob_then_die(struct arena *a)
{
	struct shm_member	 in, *out, *bob;
	struct shm_room		*r;

	if (lock_by_id(a, 1, "alpha", &r) != 0)
		return 1;
	if ((bob = shm_member_by_name(a, r, "bob")) == NULL)
		return 2;
	shm_member_remove_locked(a, r, bob);
	member_init(&in, 66, SHM_SLOT_BIT(4));
	if (shm_member_add_locked(a, r, &in, "mallory", 100, &out) != 0)
		return 3;
	raise(SIGKILL);
	return 4;
}

/*
 * A member removed and a new one added in the same critical section (the
 * new one may well take the slot just freed).  If the holder dies, the
 * rollback must bring the removed member back exactly as it was.
 */
static void
test_recovery_member_removed_and_replaced_in_one_hold(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_member	 bob_was, bob_now, *bob;
	struct shm_room		*r;
	int			 mallory;

	assert_int_equal(crash_world(a), 0);
	assert_non_null(f->snap[0] = snapshot(a));
	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	bob_was = *shm_member_by_name(a, r, "bob");
	shm_room_unlock(a, r);

	assert_killed_by_sigkill(run_child(a, NULL, op_replace_bob_then_die));

	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	bob = shm_member_by_mid(a, r, bob_was.mid);
	if (bob != NULL)
		bob_now = *bob;
	mallory = shm_member_by_name(a, r, "mallory") != NULL;
	shm_room_unlock(a, r);
	assert_non_null(bob);
	assert_string_equal(bob_now.name, "bob");
	assert_string_equal(bob_now.token, bob_was.token);
	assert_string_equal(bob_now.uid, bob_was.uid);
	assert_int_equal(bob_now.slots, bob_was.slots);
	assert_int_equal(bob_now.joined, bob_was.joined);
	assert_false(mallory);
	assert_arena_ok(a);
	assert_non_null(f->snap[3] = snapshot(a));
	assert_string_equal(f->snap[0], f->snap[3]);
}

static int
op_lock_alpha(struct arena *a)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = lock_by_id(a, 1, "alpha", &r)) != 0)
		return rc;
	shm_room_unlock(a, r);
	return 0;
}

/*
 * A crash while repairing a crash.  The first child dies after committing
 * a member-table growth, before freeing the old table (FREEING).  The
 * second takes that lock, starts finishing the frees, and dies in the
 * allocator's commit.  The parent must still end with the growth done and
 * the old table freed exactly once.
 */
static void
test_recovery_crash_while_finishing_frees(void **state)
{
	struct fx	*f = *state;

	crash_prepare(f, op_grow_alpha);
	assert_killed_by_sigkill(run_child(&f->a, "tx_freeing",
	    op_grow_alpha));
	assert_killed_by_sigkill(run_child(&f->a, "tx_commit", op_lock_alpha));
	assert_arena_ok(&f->a);
	assert_outcome(f, DONE);
}

static struct shm_room_ref beta_ref;	/* for op_lock_beta_ref */

static int
op_lock_beta_ref(struct arena *a)
{
	struct shm_room	*r;
	int		 rc;

	if ((rc = shm_room_lock(a, &beta_ref, &r)) == 0)
		shm_room_unlock(a, r);
	return rc;
}

/*
 * The same for a deletion.  The first child commits beta's deletion and
 * dies before any of its steps (FREEING).  The second, holding a reference
 * to beta, takes beta's lock, starts finishing the deletion and dies in
 * the index commit of the unlink step.  The parent, holding the same
 * reference, takes beta's lock first (before any index lock): the
 * deletion must complete, once, and the index must not keep the room.
 */
static void
test_recovery_crash_while_finishing_room_delete(void **state)
{
	struct fx	*f = *state;
	struct shm_room	*r;

	crash_prepare(f, op_delete_beta);
	assert_int_equal(shm_room_find(&f->a, 1, "beta", &beta_ref), 0);
	assert_killed_by_sigkill(run_child(&f->a, "tx_freeing",
	    op_delete_beta));
	assert_killed_by_sigkill(run_child(&f->a, "tx_commit",
	    op_lock_beta_ref));
	assert_int_equal(shm_room_lock(&f->a, &beta_ref, &r), SHM_ENOENT);
	assert_arena_ok(&f->a);
	assert_outcome(f, DONE);
	assert_child_ok(run_child(&f->a, NULL, op_smoke),
	    "creating, finding and deleting a room after the repair");
}

/* ------------------------------------------------------------------ */
/* Named arenas: reattaching */

static void
test_reattach_named_arena(void **state)
{
	struct fx		*f = *state;
	struct shm_room_ref	 ref, got;
	struct shm_room		*r;
	char			 err[256] = "";
	uint64_t		 last, used;
	int			 re = -1;

	assert_int_equal(arena_open(&f->a, f->name, 8 * MiB, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 0);
	assert_int_equal(f->a.hdr->generation, 0);
	assert_int_equal(f->a.hdr->size, 8 * MiB);
	ref = create_room(&f->a, 3, "kept", 4321);
	assert_int_equal(add_member(&f->a, &ref, "keeper", 1, 10,
	    SHM_SLOT_BIT(0), NULL), 0);
	assert_int_equal(append(&f->a, &ref, 50, NULL, 3000, &last), 0);
	used = used_bytes(&f->a);
	arena_close(&f->a);
	assert_null(f->a.base);

	re = -1;
	assert_int_equal(arena_open(&f->a, f->name, 8 * MiB, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
	assert_int_equal(f->a.hdr->generation, 1);
	assert_int_equal(used_bytes(&f->a), used);
	assert_int_equal(shm_room_find(&f->a, 3, "kept", &got), 0);
	assert_int_equal(got.off, ref.off);
	assert_int_equal(got.rid, ref.rid);
	r = lock_room(&f->a, &got);
	assert_int_equal(r->expires, 4321);
	assert_int_equal(r->committed, 50);
	assert_non_null(shm_member_by_name(&f->a, r, "keeper"));
	check_log_after(&f->a, r, 0, NULL, 3000);
	shm_room_unlock(&f->a, r);
	assert_arena_ok(&f->a);

	/* A second handle at once: the same memory, the generation bumped. */
	re = -1;
	assert_int_equal(arena_open(&f->b, f->name, 8 * MiB, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
	assert_int_equal(f->b.hdr->generation, 2);
	assert_int_equal(f->a.hdr->generation, 2);
	assert_int_equal(append(&f->b, &ref, 1, NULL, 3000, &last), 0);
	assert_int_equal(last, 51);
	r = lock_room(&f->a, &ref);
	assert_int_equal(r->committed, 51);
	check_log_after(&f->a, r, 0, NULL, 3000);
	shm_room_unlock(&f->a, r);
	assert_arena_ok(&f->b);
}

static void
test_reattach_size_mismatch(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "";
	int		 re = -1;

	assert_int_equal(arena_open(&f->a, f->name, 4 * MiB, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 0);
	(void)create_room(&f->a, 1, "still-here", 0);
	arena_close(&f->a);

	err[0] = '\0';
	assert_int_equal(arena_open(&f->a, f->name, 8 * MiB, &re, err,
	    sizeof(err)), SHM_ELAYOUT);
	assert_int_equal(re, 0);
	assert_null(f->a.base);
	assert_true(strlen(err) > 0);
	assert_non_null(strstr(err, "bytes"));

	/* Nothing was harmed: the right size still reattaches. */
	assert_int_equal(arena_open(&f->a, f->name, 4 * MiB, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
	assert_int_equal(f->a.hdr->nrooms, 1);
	assert_arena_ok(&f->a);
}

/* The right file size but a header that disagrees. */
static void
test_reattach_header_mismatch(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "";
	int		 re = -1;

	assert_int_equal(arena_open(&f->a, f->name, 4 * MiB, &re, err,
	    sizeof(err)), 0);
	f->a.hdr->layout = ARENA_LAYOUT + 1;
	arena_close(&f->a);
	err[0] = '\0';
	assert_int_equal(arena_open(&f->a, f->name, 4 * MiB, &re, err,
	    sizeof(err)), SHM_EHEADER);
	assert_null(f->a.base);
	assert_non_null(strstr(err, "layout"));

	/* Put the layout back and claim another size in the header. */
	assert_int_equal(arena_open(&f->b, f->name, 5 * MiB, &re, err,
	    sizeof(err)), SHM_ELAYOUT);	/* file is 4 MiB */
	{
		int		 fd = shm_open(f->name, O_RDWR, 0600);
		struct arena_hdr *h;

		assert_true(fd >= 0);
		h = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
		close(fd);
		assert_true(h != MAP_FAILED);
		h->layout = ARENA_LAYOUT;
		h->size = 8 * MiB;
		munmap(h, 4 * MiB);
	}
	err[0] = '\0';
	assert_int_equal(arena_open(&f->a, f->name, 4 * MiB, &re, err,
	    sizeof(err)), SHM_EHEADER);
	assert_null(f->a.base);
	assert_true(strlen(err) > 0);
}

static void
test_reattach_garbage_file(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "", *buf;
	ssize_t		 n;
	int		 fd, re = -1;
	size_t		 i;

	snprintf(f->file, sizeof(f->file), "/tmp/roomd-test-XXXXXX");
	assert_true((fd = mkstemp(f->file)) >= 0);
	assert_non_null(f->buf = buf = malloc(ARENA_MIN_SIZE));
	for (i = 0; i < ARENA_MIN_SIZE; i++)
		buf[i] = (char)(0xa5 ^ (i * 13));
	n = write(fd, buf, ARENA_MIN_SIZE);
	close(fd);
	assert_int_equal(n, ARENA_MIN_SIZE);

	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), SHM_EHEADER);
	assert_int_equal(re, 0);
	assert_null(f->a.base);
	assert_non_null(strstr(err, "magic"));

	/* Left as it was. */
	assert_true((fd = open(f->file, O_RDONLY)) >= 0);
	memset(buf, 0, 4096);
	n = read(fd, buf, 4096);
	close(fd);
	assert_int_equal(n, 4096);
	for (i = 0; i < 4096; i++)
		assert_int_equal((uint8_t)buf[i], (uint8_t)(0xa5 ^ (i * 13)));

	/* An empty file is made into an arena. */
	assert_int_equal(truncate(f->file, 0), 0);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 0);
	assert_arena_ok(&f->a);
}

static void
test_arena_open_below_minimum(void **state)
{
	struct arena	 a;
	char		 err[256] = "";
	int		 re = -1;

	(void)state;
	assert_int_equal(arena_open(&a, NULL, ARENA_MIN_SIZE - 4096, &re, err,
	    sizeof(err)), SHM_EINVAL);
	assert_null(a.base);
	assert_true(strlen(err) > 0);
	assert_int_equal(arena_open(&a, NULL, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 0);
	assert_int_equal(a.hdr->magic, ARENA_MAGIC);
	assert_int_equal(a.hdr->layout, ARENA_LAYOUT);
	assert_int_equal(a.hdr->generation, 0);
	assert_int_equal(a.hdr->hdr_size % 4096, 0);
	assert_int_equal(used_bytes(&a), a.hdr->hdr_size);
	arena_close(&a);
	assert_string_equal(shm_strerror(SHM_ELAYOUT),
	    "the arena has another layout");
	assert_string_equal(shm_strerror(SHM_EHEADER),
	    "the arena's header is bad");
	assert_string_equal(shm_strerror(12345), "unknown error");
}

/* ------------------------------------------------------------------ */
/* Reattaching: the checker alone, the epoch, replacing, claiming */

/* A lock word naming a thread that no longer exists (nor can: past any
 * pid_max) and never marked dead: a fault alone, never a wait. */
static void
test_arena_check_alone_reports_a_stale_lock(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	char			 err[256] = "";

	ref = create_room(a, 1, "stale", 0);
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), 0);
	a->hdr->index_lock.mtx.__data.__lock = 0x3ffffffe;
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "room index lock held by thread "
	    "1073741822, which is gone"));
	a->hdr->index_lock.mtx.__data.__lock = 0;
	r = SHM_PTR(a, ref.off);
	r->lock.mtx.__data.__lock = 0x3ffffffe;
	err[0] = '\0';
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "room lock held by thread"));
	r->lock.mtx.__data.__lock = 0;
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), 0);
	assert_arena_ok(a);
}

/* A holder killed inside its critical section: the kernel marks the lock,
 * and the checker alone repairs it on its way instead of reporting it. */
static void
test_arena_check_alone_repairs_a_dead_holder(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	struct shm_room	*r;
	char		 err[256] = "";
	uint64_t	 rec0, used0;
	pid_t		 pid;
	int		 status;

	assert_int_equal(crash_world(a), 0);
	used0 = used_bytes(a);
	rec0 = a->hdr->recoveries;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		alarm(CHILD_TIMEOUT);
		_exit(op_change_alpha_then_die(a));
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_killed_by_sigkill(status);
	assert_true(used_bytes(a) > used0);
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), 0);
	assert_true(a->hdr->recoveries > rec0);
	assert_int_equal(used_bytes(a), used0);
	assert_int_equal(lock_by_id(a, 1, "alpha", &r), 0);
	assert_null(shm_member_by_name(a, r, "frank"));
	shm_room_unlock(a, r);
	assert_arena_ok(a);
}

/*
 * The checker's room list starts at the header's room count and grows:
 * with the count saying 0, all 300 rooms are still walked (the message
 * counts them), and with the count back the arena is sound.
 */
static void
test_arena_check_room_list_grows_past_the_count(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	char		 err[256] = "", id[32];
	uint64_t	 n;
	int		 i;

	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "grow-%d", i);
		(void)create_room(a, 1 + i % 3, id, 0);
	}
	assert_arena_ok(a);
	n = a->hdr->nrooms;
	assert_int_equal(n, 300);
	a->hdr->nrooms = 0;
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_string_equal(err, "index counts 0 rooms, found 300");
	a->hdr->nrooms = n;
	assert_int_equal(arena_check_live(a, err, sizeof(err)), 0);
	assert_arena_ok(a);
}

/* Two rooms sharing one member table: the bitmap sees it reached twice. */
static void
test_arena_check_block_reached_twice(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 one, two;
	struct shm_room		*r1, *r2;
	char			 err[256] = "";
	shm_off			 keep;

	one = create_room(a, 1, "one", 0);
	two = create_room(a, 1, "two", 0);
	r1 = SHM_PTR(a, one.off);
	r2 = SHM_PTR(a, two.off);
	keep = r2->members;
	r2->members = r1->members;
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reached twice"));
	/* Live, blocks may move between rooms meanwhile: not a fault. */
	assert_int_equal(arena_check_live(a, err, sizeof(err)), 0);
	r2->members = keep;
	assert_arena_ok(a);
}

/* A free block dropped from its free list changes no count: only the walk
 * of the whole heap can find it. */
static void
test_arena_check_heap_walk_finds_a_lost_free_block(void **state)
{
	struct fx		*f = *state;
	struct arena		*a = &f->a;
	struct shm_room_ref	 ref;
	struct shm_room		*r;
	char			 err[256] = "";
	shm_off			 head;
	int			 c;

	ref = create_room(a, 1, "gone", 0);
	r = lock_room(a, &ref);
	c = shm_size_class(shm_block_size(a, r->members));
	shm_room_delete_locked(a, r);
	assert_true(c >= 0);
	assert_int_not_equal(head = a->hdr->freelist[c], 0);
	a->hdr->freelist[c] = ((struct shm_block *)SHM_PTR(a, head))->next;
	assert_int_equal(arena_check(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is free but on no free list"));
	a->hdr->freelist[c] = head;
	assert_arena_ok(a);
}

/* A damaged header never makes the checker follow anything. */
static void
test_arena_check_bad_header_numbers(void **state)
{
	struct fx	*f = *state;
	struct arena	*a = &f->a;
	char		 err[256] = "";
	uint64_t	 top;

	(void)create_room(a, 1, "one", 0);
	top = a->hdr->top;
	a->hdr->top = a->hdr->size + 4096;
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "outside the arena"));
	a->hdr->top = top;
	a->hdr->buckets[7] = a->hdr->size - 8;
	assert_int_equal(arena_check_alone(a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "room index: bad room"));
	a->hdr->buckets[7] = 0;
	assert_arena_ok(a);
}

static void
test_arena_epoch_fresh_kept_and_replaced(void **state)
{
	struct fx		*f = *state;
	struct arena		 c;
	struct shm_room_ref	 got;
	char			 err[256] = "", aside[256], *p;
	uint64_t		 e, e2;
	int			 re = -1, fd;

	snprintf(f->file, sizeof(f->file), "/tmp/roomd-test-XXXXXX");
	assert_true((fd = mkstemp(f->file)) >= 0);
	close(fd);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 0);
	e = arena_epoch(&f->a);
	assert_true(e >= 1 && e < ARENA_EPOCH_MAX);
	/* Another fresh arena draws another epoch (1 in 2^48 to collide). */
	assert_int_equal(arena_open(&c, NULL, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	e2 = arena_epoch(&c);
	arena_close(&c);
	assert_true(e2 >= 1 && e2 < ARENA_EPOCH_MAX && e2 != e);
	(void)create_room(&f->a, 1, "lost", 0);
	arena_close(&f->a);

	/* Reattached: the same epoch. */
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
	assert_int_equal(arena_epoch(&f->a), e);

	/* Replaced: moved aside, empty, the next epoch. */
	assert_int_equal(arena_replace(&f->a, f->file, aside, sizeof(aside),
	    err, sizeof(err)), 0);
	assert_true(strncmp(aside, f->file, strlen(f->file)) == 0);
	p = aside + strlen(f->file);
	assert_true(strncmp(p, ".untrusted.", 11) == 0);
	assert_int_equal(access(aside, F_OK), 0);
	assert_int_equal(unlink(aside), 0);
	assert_int_equal(arena_epoch(&f->a), e + 1);
	assert_int_equal(f->a.hdr->nrooms, 0);
	assert_int_equal(shm_room_find(&f->a, 1, "lost", &got), SHM_ENOENT);
	assert_arena_ok(&f->a);
	arena_close(&f->a);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
	assert_int_equal(arena_epoch(&f->a), e + 1);
}

/* An arena whose header is bad: refused by arena_open, replaced by
 * arena_replace_bad with the next epoch (or a random one if the epoch word
 * is no epoch). */
static void
test_arena_replace_bad_header(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "", aside[256];
	uint64_t	 e;
	int		 re = -1, fd;

	snprintf(f->file, sizeof(f->file), "/tmp/roomd-test-XXXXXX");
	assert_true((fd = mkstemp(f->file)) >= 0);
	close(fd);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	e = arena_epoch(&f->a);
	(void)create_room(&f->a, 1, "lost", 0);
	f->a.hdr->magic ^= 1;
	arena_close(&f->a);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), SHM_EHEADER);
	assert_null(f->a.base);
	assert_int_equal(arena_replace_bad(&f->a, f->file, ARENA_MIN_SIZE,
	    aside, sizeof(aside), err, sizeof(err)), 0);
	assert_int_equal(access(aside, F_OK), 0);
	assert_int_equal(arena_epoch(&f->a), e + 1);
	assert_int_equal(f->a.hdr->nrooms, 0);
	assert_arena_ok(&f->a);

	/* Again, with an epoch word that is no epoch: a random one. */
	f->a.hdr->layout = ARENA_LAYOUT + 1;
	f->a.hdr->epoch = ARENA_EPOCH_MAX + 5;
	arena_close(&f->a);
	assert_int_equal(unlink(aside), 0);
	assert_int_equal(arena_replace_bad(&f->a, f->file, ARENA_MIN_SIZE,
	    aside, sizeof(aside), err, sizeof(err)), 0);
	assert_int_equal(unlink(aside), 0);
	assert_true(arena_epoch(&f->a) >= 1 &&
	    arena_epoch(&f->a) < ARENA_EPOCH_MAX);
	arena_close(&f->a);
	assert_int_equal(arena_open(&f->a, f->file, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	assert_int_equal(re, 1);
}

/* A named (shm) arena replaced is unlinked, not moved. */
static void
test_arena_replace_named(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "", aside[256] = "x";
	int		 re = -1;

	assert_int_equal(arena_open(&f->a, f->name, ARENA_MIN_SIZE, &re, err,
	    sizeof(err)), 0);
	f->a.hdr->epoch = ARENA_EPOCH_MAX - 1;	/* no room left to count */
	assert_int_equal(arena_replace(&f->a, f->name, aside, sizeof(aside),
	    err, sizeof(err)), 0);
	assert_string_equal(aside, "");
	assert_true(arena_epoch(&f->a) >= 1 && arena_epoch(&f->a) <
	    ARENA_EPOCH_MAX - 1);
	assert_arena_ok(&f->a);
}

static void
test_arena_claim_is_exclusive(void **state)
{
	struct fx	*f = *state;
	char		 err[256] = "";
	int		 fd, fd2;

	assert_true((fd = arena_claim(f->name, 0, err, sizeof(err))) >= 0);
	assert_int_equal(arena_claim(f->name, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "in use by another roomd"));
	close(fd);
	assert_true((fd2 = arena_claim(f->name, 0, err, sizeof(err))) >= 0);
	close(fd2);
}

/* ------------------------------------------------------------------ */

#define T(f)		cmocka_unit_test_setup_teardown(f, setup_arena, \
			    teardown)
#define T_SMALL(f)	cmocka_unit_test_setup_teardown(f, \
			    setup_small_arena, teardown)
#define T_NAMED(f)	cmocka_unit_test_setup_teardown(f, setup_named, \
			    teardown)
#define T_CRASH(f)	cmocka_unit_test_prestate_setup_teardown(f, \
			    setup_crash, teardown, NULL)
#define CRASH(i)	{ .name = crash_cases[i].name, \
			  .test_func = test_crash_site, \
			  .setup_func = setup_crash, \
			  .teardown_func = teardown, \
			  .initial_state = &crash_cases[i] }

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_arena_check_passes_on_a_sound_arena),
		T(test_arena_check_detects_faults),
		T(test_room_list_survives_a_damaged_index),
		cmocka_unit_test(test_alloc_size_class_boundaries),
		T(test_alloc_size_class_rejects_sizes_that_wrap),
		T(test_alloc_tx_alloc_records_block_in_holder_tx),
		T(test_alloc_freed_blocks_are_reused),
		T(test_alloc_room_tx_abort_returns_blocks),
		T_SMALL(test_alloc_arena_full_of_rooms),
		T_SMALL(test_alloc_arena_full_of_log),

		T(test_room_create_find_list_delete),
		T(test_room_duplicate_id_per_dialect),
		T(test_room_invalid_ids),
		T(test_room_stale_ref_after_slot_reuse),
		T(test_room_create_locked),

		T(test_member_add_grows_table_and_finds),
		T(test_member_limit_and_slot_reuse),
		T(test_member_long_and_short_names),
		T(test_member_long_names_in_one_hold),
		T_SMALL(test_member_long_name_arena_full),

		T(test_log_sequences_and_read_from_every_cursor),
		T(test_log_batch_larger_than_a_chunk),
		T(test_log_record_too_large_for_any_class),
		T(test_log_max_bytes_limit),
		T(test_log_delete_room_with_multichunk_log),

		T(test_conn_counting_over_slots),
		T(test_slot_dead_clears_slot_and_sets_expiry),
		T(test_slot_dead_with_many_members_on_the_slot),
		T(test_reap_deletes_only_expired_empty_rooms),

		T(test_ip_connections_over_slots_and_a_dead_slot),
		T(test_ip_rooms_follow_their_rooms),
		T(test_ip_wrong_passwords_per_minute),
		T(test_ip_table_full_counts_nothing),
		T(test_ip_killed_holder_rolls_back),

		T(test_recovery_killed_room_lock_holder_rolls_back),
		T(test_recovery_member_removed_and_replaced_in_one_hold),
		T_CRASH(test_recovery_crash_while_finishing_frees),
		T_CRASH(test_recovery_crash_while_finishing_room_delete),
		cmocka_unit_test(test_crash_table_covers_every_site),
		CRASH(0), CRASH(1), CRASH(2), CRASH(3), CRASH(4), CRASH(5),
		CRASH(6), CRASH(7), CRASH(8), CRASH(9), CRASH(10), CRASH(11),
		CRASH(12), CRASH(13), CRASH(14), CRASH(15), CRASH(16),
		CRASH(17), CRASH(18), CRASH(19),

		T_NAMED(test_reattach_named_arena),
		T_NAMED(test_reattach_size_mismatch),
		T_NAMED(test_reattach_header_mismatch),
		T_NAMED(test_reattach_garbage_file),
		cmocka_unit_test(test_arena_open_below_minimum),

		T(test_arena_check_alone_reports_a_stale_lock),
		T(test_arena_check_alone_repairs_a_dead_holder),
		T(test_arena_check_room_list_grows_past_the_count),
		T(test_arena_check_block_reached_twice),
		T(test_arena_check_heap_walk_finds_a_lost_free_block),
		T(test_arena_check_bad_header_numbers),
		T_NAMED(test_arena_epoch_fresh_kept_and_replaced),
		T_NAMED(test_arena_replace_named),
		T_NAMED(test_arena_replace_bad_header),
		T_NAMED(test_arena_claim_is_exclusive),
	};

	/* TEST_SHM_FILTER=pattern runs only the matching tests. */
	if (getenv("TEST_SHM_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_SHM_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * arena.c: making, reattaching and checking the shared-memory arena.
 *
 * The header is written last on creation (magic after everything else), so
 * a half-made arena is never mistaken for a good one.  A named arena that
 * already exists is reattached only when its magic, layout and size match;
 * otherwise the caller gets a message saying which did not.  What is inside
 * is trusted only after the checker has walked it (arena_check_alone, run
 * by the master before it forks); an arena that fails is replaced by a
 * fresh one with the next epoch (arena_replace), and so is one whose header
 * is bad (arena_replace_bad).
 */
#include "config.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

static int	arena_init(struct arena *, size_t, char *, size_t);
static int	arena_is_shm(const char *);

const char *
shm_strerror(int e)
{
	switch (e) {
	case SHM_OK:		return "ok";
	case SHM_ENOSPC:	return "the shared memory arena is full";
	case SHM_EEXIST:	return "already exists";
	case SHM_ENOENT:	return "not found";
	case SHM_ELIMIT:	return "a configured limit was reached";
	case SHM_EINVAL:	return "invalid argument";
	case SHM_ESTATE:	return "a shared lock could not be recovered";
	case SHM_ELAYOUT:	return "the arena has another layout";
	case SHM_EHEADER:	return "the arena's header is bad";
	}
	return "unknown error";
}

static int
arena_map(struct arena *a, int fd, size_t size, char *err, size_t errlen)
{
	int	 flags = MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0);

	a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (a->base == MAP_FAILED) {
		snprintf(err, errlen, "mmap %zu bytes: %s", size,
		    strerror(errno));
		a->base = NULL;
		return -1;
	}
	a->size = size;
	a->hdr = (struct arena_hdr *)a->base;
	return 0;
}

/* "/name" is a POSIX shared memory object; anything else a file. */
static int
arena_is_shm(const char *path)
{
	return path[0] == '/' && strchr(path + 1, '/') == NULL;
}

static int
arena_fd(const char *path)
{
	if (arena_is_shm(path))
		return shm_open(path, O_RDWR | O_CREAT, 0600);
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
}

/* A random epoch, 1 .. ARENA_EPOCH_MAX - 1; the clock if there is none. */
static uint64_t
arena_new_epoch(void)
{
	uint64_t	 v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	v %= ARENA_EPOCH_MAX - 1;
	return v + 1;
}

uint64_t
arena_epoch(const struct arena *a)
{
	return a->hdr->epoch;
}

static int
arena_reattach(struct arena *a, size_t size, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;

	if (h->magic != ARENA_MAGIC) {
		snprintf(err, errlen, "not a roomd arena (bad magic)");
		return SHM_EHEADER;
	}
	if (h->layout != ARENA_LAYOUT) {
		snprintf(err, errlen, "arena layout %llu, this roomd "
		    "needs layout %d", (unsigned long long)h->layout,
		    ARENA_LAYOUT);
		return SHM_EHEADER;
	}
	if (h->size != size) {
		snprintf(err, errlen, "arena header says %llu bytes, the "
		    "file and the configuration %zu",
		    (unsigned long long)h->size, size);
		return SHM_EHEADER;
	}
	h->generation++;
	return 0;
}

int
arena_open(struct arena *a, const char *path, size_t size, int *reattached,
    char *err, size_t errlen)
{
	struct stat	 st;
	int		 fd, rc;

	memset(a, 0, sizeof(*a));
	*reattached = 0;
	if (size < ARENA_MIN_SIZE) {
		snprintf(err, errlen, "arena size %zu is below the minimum %lu",
		    size, ARENA_MIN_SIZE);
		return SHM_EINVAL;
	}
	if (path == NULL) {
		if (arena_map(a, -1, size, err, errlen) == -1)
			return SHM_ENOSPC;
		return arena_init(a, size, err, errlen);
	}
	if ((fd = arena_fd(path)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return SHM_EINVAL;
	}
	if (fstat(fd, &st) == -1 || (st.st_size == 0 &&
	    ftruncate(fd, (off_t)size) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return SHM_EINVAL;
	}
	if (st.st_size != 0 && (size_t)st.st_size != size) {
		snprintf(err, errlen, "%s is %lld bytes, the configuration "
		    "asks for %zu", path, (long long)st.st_size, size);
		close(fd);
		return SHM_ELAYOUT;
	}
	rc = arena_map(a, fd, size, err, errlen);
	close(fd);
	if (rc == -1)
		return SHM_ENOSPC;
	if (st.st_size != 0) {
		if ((rc = arena_reattach(a, size, err, errlen)) != 0)
			arena_close(a);
		else
			*reattached = 1;
		return rc;
	}
	return arena_init(a, size, err, errlen);
}

static int
arena_init(struct arena *a, size_t size, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	uint64_t		 i;

	memset(h, 0, sizeof(*h));
	h->layout = ARENA_LAYOUT;
	h->size = size;
	h->hdr_size = (sizeof(*h) + 4095) & ~(uint64_t)4095;
	h->top = h->hdr_size;
	h->next_rid = 1;
	h->epoch = arena_new_epoch();
	for (i = 0; i < IPT_ENTRIES; i++)
		h->ip[i].next = i + 1 < IPT_ENTRIES ? i + 2 : 0;
	h->ip_free = 1;
	if (shm_lock_init(&h->alloc_lock) != 0 ||
	    shm_lock_init(&h->index_lock) != 0 ||
	    shm_lock_init(&h->ip_lock) != 0) {
		snprintf(err, errlen, "cannot make a robust shared mutex");
		arena_close(a);
		return SHM_ESTATE;
	}
	__atomic_store_n(&h->magic, ARENA_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

void
arena_close(struct arena *a)
{
	if (a->base != NULL)
		munmap(a->base, a->size);
	a->base = NULL;
	a->hdr = NULL;
}

int
arena_unlink(const char *path)
{
	if (path == NULL)
		return 0;
	if (arena_is_shm(path))
		return shm_unlink(path);
	return unlink(path);
}

/*
 * flock() on the arena's own file: the lock lives as long as the open file
 * description, which the workers inherit, so it is free again only when
 * every process of the master that took it is gone, however they died.
 */
int
arena_claim(const char *path, int wait, char *err, size_t errlen)
{
	struct timespec	 nap = { 0, 100 * 1000 * 1000 };
	int		 fd, tries = wait * 10;

	if ((fd = arena_fd(path)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || tries-- <= 0) {
			snprintf(err, errlen, "%s: %s", path,
			    errno == EWOULDBLOCK ? "in use by another roomd" :
			    strerror(errno));
			close(fd);
			return -1;
		}
		nanosleep(&nap, NULL);
	}
	return fd;
}

/* Rename a file aside under a name nothing else has. */
static int
arena_aside(const char *path, char *aside, size_t asidelen)
{
	long long	 now = (long long)time(NULL);
	int		 i;

	for (i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(aside, asidelen, "%s.untrusted.%lld", path,
			    now);
		else
			snprintf(aside, asidelen, "%s.untrusted.%lld.%d", path,
			    now, i);
		if (renameat2(AT_FDCWD, path, AT_FDCWD, aside,
		    RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

/* The epoch after old, if old is one an arena could have; else random. */
static uint64_t
arena_next_epoch(uint64_t old)
{
	return old != 0 && old < ARENA_EPOCH_MAX - 1 ? old + 1 :
	    arena_new_epoch();
}

/* Move path aside and make a fresh arena of size there, with epoch. */
static int
arena_fresh(struct arena *a, const char *path, size_t size, uint64_t epoch,
    char *aside, size_t asidelen, char *err, size_t errlen)
{
	int	 rc, reattached;

	aside[0] = '\0';
	if (arena_is_shm(path) ? shm_unlink(path) == -1 :
	    arena_aside(path, aside, asidelen) == -1) {
		snprintf(err, errlen, "%s: cannot move it aside: %s", path,
		    strerror(errno));
		aside[0] = '\0';
		return SHM_EINVAL;
	}
	if ((rc = arena_open(a, path, size, &reattached, err, errlen)) != 0)
		return rc;
	if (reattached) {
		arena_close(a);
		snprintf(err, errlen, "%s: made again by someone else", path);
		return SHM_EEXIST;
	}
	a->hdr->epoch = epoch;
	return 0;
}

int
arena_replace(struct arena *a, const char *path, char *aside,
    size_t asidelen, char *err, size_t errlen)
{
	/* The header passed the magic, layout and size tests, but the epoch
	 * word may be as damaged as the rest: then a random one. */
	uint64_t	 epoch = arena_next_epoch(a->hdr->epoch);
	size_t		 size = a->size;

	arena_close(a);
	return arena_fresh(a, path, size, epoch, aside, asidelen, err, errlen);
}

int
arena_replace_bad(struct arena *a, const char *path, size_t size,
    char *aside, size_t asidelen, char *err, size_t errlen)
{
	struct arena_hdr	 h;
	int			 fd;

	/* Whatever the header holds is only a hint: read it, never map it. */
	memset(&h, 0, sizeof(h));
	fd = arena_is_shm(path) ? shm_open(path, O_RDONLY, 0) :
	    open(path, O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
			h.epoch = 0;
		close(fd);
	}
	memset(a, 0, sizeof(*a));
	return arena_fresh(a, path, size, arena_next_epoch(h.epoch), aside,
	    asidelen, err, errlen);
}

/*
 * The checker: every fault names what it found where.  It reads the arena
 * as something that may be damaged: every offset is bounded before it is
 * followed and every walk is bounded in length, so a bad arena gives a
 * message, never a crash or a hang.  In a quiet arena (nobody else at work)
 * it also keeps a bitmap of the blocks it reached, one bit per 64 bytes of
 * the heap (blocks are 64-byte multiples from hdr_size), which catches a
 * block reached twice and, in a last walk of the whole heap, a block in
 * use that nothing reaches or a free one on no free list.
 */

enum check_mode {
	CHECK_LIVE,		/* other processes at work: no totals */
	CHECK_QUIET,		/* nobody else changes it: totals too */
	CHECK_ALONE		/* nobody else has it: a held lock is stale */
};

struct check {
	struct arena	*a;
	int		 mode;
	uint8_t		*seen;		/* quiet modes: blocks reached */
	uint64_t	 nbits;
	uint64_t	 bytes;		/* of the blocks rooms hold */
};

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(err, errlen, __VA_ARGS__);			\
		return -1;						\
	}								\
} while (0)

#define CLASS_BYTES(c)	((c) == SHM_CLASS_ROOM ? ROOM_SLOT_SIZE : \
			    (uint64_t)64 << (c))

/*
 * Alone, the word of a mutex tells whether an earlier process holds it: 0
 * is free, the kernel's FUTEX_OWNER_DIED bit means its owner died and
 * shm_lock() will repair it; anything else is a lock that nobody will
 * ever release (the arena outlived a machine that stopped, or is
 * garbage), which the checker reports rather than wait for.  The word is
 * glibc's (__data.__lock, a futex): roomd runs on Linux with glibc.
 */
static int
check_stale(struct check *ck, struct shm_lock *lk, const char *what,
    char *err, size_t errlen)
{
	unsigned	 word;

	if (ck->mode != CHECK_ALONE)
		return 0;
	word = (unsigned)__atomic_load_n(&lk->mtx.__data.__lock,
	    __ATOMIC_ACQUIRE);
	CHECK(word == 0 || (word & 0x40000000U) != 0,
	    "%s lock held by thread %u, which is gone", what,
	    word & 0x3fffffffU);
	return 0;
}

static int
check_lock(struct check *ck, struct shm_lock *lk, const char *what,
    char *err, size_t errlen)
{
	if (check_stale(ck, lk, what, err, errlen) == -1)
		return -1;
	CHECK(shm_lock(ck->a, lk) == 0, "cannot take the %s lock", what);
	return 0;
}

/* The bit of the block whose header starts at boff; -1 if none. */
static int
check_mark(struct check *ck, uint64_t boff, char *err, size_t errlen)
{
	uint64_t	 i = (boff - ck->a->hdr->hdr_size) / 64;

	if (ck->seen == NULL)
		return 0;
	CHECK(i < ck->nbits, "block %llu past the heap's end",
	    (unsigned long long)boff);
	CHECK(!(ck->seen[i / 8] & (1U << (i % 8))),
	    "block %llu reached twice", (unsigned long long)boff);
	ck->seen[i / 8] |= 1U << (i % 8);
	return 0;
}

/* A block in use at off (its data; the header is just before), of class
 * want (or any size class for ~0U), inside the heap. */
static int
check_block(struct check *ck, shm_off off, unsigned want, char *err,
    size_t errlen)
{
	struct arena_hdr	*h = ck->a->hdr;
	struct shm_block	*b;
	uint64_t		 top = __atomic_load_n(&h->top,
				    __ATOMIC_ACQUIRE), boff;
	unsigned		 c;

	boff = off - sizeof(*b);
	CHECK(off >= h->hdr_size + sizeof(*b) && off < top &&
	    (boff - h->hdr_size) % 64 == 0, "block %llu out of bounds",
	    (unsigned long long)off);
	b = SHM_PTR(ck->a, boff);
	CHECK(SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED,
	    "block %llu is not marked in use", (unsigned long long)off);
	c = SHM_BLOCK_CLASS(b->tag);
	CHECK(want == ~0U ? c < ARENA_NCLASSES : c == want,
	    "block %llu has class %u", (unsigned long long)off, c);
	CHECK(boff + CLASS_BYTES(c) <= top, "block %llu runs past the top",
	    (unsigned long long)off);
	ck->bytes += CLASS_BYTES(c);
	return check_mark(ck, boff, err, errlen);
}

static int
check_log(struct check *ck, struct shm_room *r, char *err, size_t errlen)
{
	struct arena		*a = ck->a;
	struct shm_chunk	*c;
	shm_off			 off, last = 0;
	uint64_t		 seq = 0, n = 0;

	for (off = r->log_head; off != 0; off = c->next) {
		if (check_block(ck, off, ~0U, err, errlen) == -1)
			return -1;
		c = SHM_PTR(a, off);
		CHECK(c->used <= c->cap && c->cap + sizeof(*c) <=
		    shm_block_size(a, off), "room %s: chunk overflows", r->id);
		CHECK(seq == 0 || c->first_seq == seq + 1,
		    "room %s: log skips from %llu to %llu", r->id,
		    (unsigned long long)seq, (unsigned long long)c->first_seq);
		if (c->nrec > 0)
			seq = c->first_seq + c->nrec - 1;
		CHECK(++n <= a->hdr->size / 64, "room %s: log cycle", r->id);
		last = off;
	}
	CHECK(last == r->log_tail, "room %s: log tail is not the last chunk",
	    r->id);
	CHECK(seq == r->committed, "room %s: committed %llu, log ends at %llu",
	    r->id, (unsigned long long)r->committed, (unsigned long long)seq);
	return 0;
}

static int
check_off_cmp(const void *x, const void *y)
{
	shm_off	 a = *(const shm_off *)x, b = *(const shm_off *)y;

	return a < b ? -1 : a > b;
}

/*
 * The room's chain of long names: each a block in use holding a
 * terminated name, named by exactly one live member whose name is long,
 * and every such member's block on the chain.
 */
static int
check_names(struct check *ck, struct shm_room *r, char *err, size_t errlen)
{
	struct arena		*a = ck->a;
	struct shm_name		*nb;
	shm_off			 off, *offs = NULL, *hit;
	uint64_t		 i, n = 0, cap = 0, longs = 0;
	uint8_t			*used = NULL;
	int			 rc = -1;

#define NCHECK(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(err, errlen, __VA_ARGS__);			\
		goto out;						\
	}								\
} while (0)
	for (off = r->names; off != 0; off = nb->next) {
		if (check_block(ck, off, ~0U, err, errlen) == -1)
			goto out;
		nb = SHM_PTR(a, off);
		NCHECK(memchr(nb->name, '\0', shm_block_size(a, off) -
		    sizeof(*nb)) != NULL, "room %s: long name not terminated",
		    r->id);
		NCHECK(n < a->hdr->size / 64, "room %s: cycle of names", r->id);
		if (n == cap) {
			shm_off *p = reallocarray(offs, cap ? 2 * cap : 64,
			    sizeof(*offs));

			NCHECK(p != NULL, "out of memory");
			offs = p;
			cap = cap ? 2 * cap : 64;
		}
		offs[n++] = off;
	}
	if (n > 0) {
		qsort(offs, n, sizeof(*offs), check_off_cmp);
		NCHECK((used = calloc(n, 1)) != NULL, "out of memory");
	}
	for (i = 0; i < r->nmembers; i++) {
		struct shm_member *m = shm_member_at(a, r, i);

		if (m->mid == 0 || m->name[SHM_NAME_INLINE - 1] !=
		    SHM_NAME_LONG)
			continue;
		memcpy(&off, m->name, sizeof(off));
		hit = n > 0 ? bsearch(&off, offs, n, sizeof(*offs),
		    check_off_cmp) : NULL;
		NCHECK(hit != NULL, "room %s: member %llu's name is on no "
		    "chain", r->id, (unsigned long long)m->mid);
		NCHECK(!used[hit - offs], "room %s: two members share a "
		    "name block", r->id);
		used[hit - offs] = 1;
		longs++;
	}
	NCHECK(longs == n, "room %s: %llu long names, %llu members with one",
	    r->id, (unsigned long long)n, (unsigned long long)longs);
	rc = 0;
#undef NCHECK
out:
	free(offs);
	free(used);
	return rc;
}

static int
check_room(struct check *ck, struct shm_room *r, char *err, size_t errlen)
{
	struct arena	*a = ck->a;
	uint64_t	 sum = 0, i;

	CHECK(r->rid != 0 && !(r->flags & ROOM_F_DEAD), "bad room %llu",
	    (unsigned long long)SHM_OFF(a, r));
	CHECK(memchr(r->id, '\0', sizeof(r->id)) != NULL,
	    "room id not terminated");
	/* The checker holds the room lock with a transaction just begun; a
	 * journal with entries would mean someone else wrote under it. */
	CHECK(r->lock.tx.nundo == 0, "room %s: journal not empty", r->id);
	for (i = 0; i < ARENA_MAX_SLOTS; i++)
		sum += r->slot_conns[i];
	CHECK(sum == r->conns, "room %s: %llu connections, slots say %llu",
	    r->id, (unsigned long long)r->conns, (unsigned long long)sum);
	CHECK(r->nmembers <= r->cap && r->cap <= a->hdr->size /
	    sizeof(struct shm_member), "room %s: members past capacity",
	    r->id);
	if (check_block(ck, r->members, ~0U, err, errlen) == -1)
		return -1;
	CHECK(r->cap * sizeof(struct shm_member) <=
	    shm_block_size(a, r->members), "room %s: member table too small",
	    r->id);
	for (i = 0; i < r->nmembers; i++) {
		struct shm_member *m = shm_member_at(a, r, i);

		if (m->mid == 0)
			continue;
		CHECK(m->mid < r->next_mid, "room %s: member id %llu not yet "
		    "issued", r->id, (unsigned long long)m->mid);
		CHECK(m->name[SHM_NAME_INLINE - 1] == SHM_NAME_LONG ||
		    m->name[SHM_NAME_INLINE - 1] == '\0',
		    "room %s: member name not terminated", r->id);
		CHECK(m->token[SHM_TOKEN_LEN] == '\0' &&
		    m->uid[SHM_UID_LEN] == '\0', "room %s: member token or "
		    "uid not terminated", r->id);
	}
	if (check_names(ck, r, err, errlen) == -1)
		return -1;
	return check_log(ck, r, err, errlen);
}

static int
check_ref_add(struct shm_room_ref **refs, size_t n, size_t *cap,
    size_t first, shm_off off, uint64_t rid)
{
	struct shm_room_ref	*p;
	size_t			 want = *cap ? *cap * 2 : first;

	if (n == *cap) {
		if ((p = reallocarray(*refs, want, sizeof(*p))) == NULL)
			return -1;
		*refs = p;
		*cap = want;
	}
	(*refs)[n].off = off;
	(*refs)[n].rid = rid;
	return 0;
}

/*
 * Collect the rooms of the index, under its lock, into *refs (sized from
 * the room count and grown as needed), checking each slot before its
 * chain is followed.
 */
static int
check_index(struct check *ck, struct shm_room_ref **refs, size_t *np,
    char *err, size_t errlen)
{
	struct arena		*a = ck->a;
	struct arena_hdr	*h = a->hdr;
	struct shm_room		*r;
	struct shm_block	*b;
	uint64_t		 top, most;
	size_t			 n = 0, cap = 0, first;
	shm_off			 off;
	unsigned		 i;
	int			 rc = 0;

	if (check_lock(ck, &h->index_lock, "room index", err, errlen) == -1)
		return -1;
	top = __atomic_load_n(&h->top, __ATOMIC_ACQUIRE);
	most = (top - h->hdr_size) / ROOM_SLOT_SIZE;
	first = (h->nrooms < most ? h->nrooms : most) + 64;
	for (i = 0; i < ARENA_BUCKETS && rc == 0; i++)
		for (off = h->buckets[i]; off != 0 && rc == 0;
		    off = r->hnext) {
			b = SHM_PTR(a, off - sizeof(*b));
			r = SHM_PTR(a, off);
			if (off < h->hdr_size + sizeof(*b) || off +
			    sizeof(*r) > top || (off - sizeof(*b) -
			    h->hdr_size) % 64 != 0 || b->tag !=
			    (SHM_BLOCK_USED | SHM_CLASS_ROOM) ||
			    r->magic != ROOM_MAGIC) {
				snprintf(err, errlen, "room index: bad room "
				    "%llu in bucket %u",
				    (unsigned long long)off, i);
				rc = -1;
			} else if (n >= most) {
				snprintf(err, errlen, "room index: more "
				    "rooms than slots (a cycle)");
				rc = -1;
			} else if (check_ref_add(refs, n++, &cap, first, off,
			    r->rid) == -1) {
				snprintf(err, errlen, "out of memory");
				rc = -1;
			}
		}
	shm_unlock(a, &h->index_lock);
	*np = n;
	return rc;
}

static int
check_freelists(struct check *ck, uint64_t *free_room, char *err,
    size_t errlen)
{
	struct arena_hdr	*h = ck->a->hdr;
	struct shm_block	*b;
	shm_off			 off;
	uint64_t		 n;
	unsigned		 c;

	for (c = 0; c <= ARENA_NCLASSES; c++) {
		unsigned want = c == ARENA_NCLASSES ? SHM_CLASS_ROOM : c;

		off = c == ARENA_NCLASSES ? h->room_free : h->freelist[c];
		for (n = 0; off != 0; off = b->next, n++) {
			CHECK(off >= h->hdr_size && off + CLASS_BYTES(want) <=
			    h->top && (off - h->hdr_size) % 64 == 0,
			    "free list %u: block out of bounds", want);
			b = SHM_PTR(ck->a, off);
			CHECK(b->tag == (SHM_BLOCK_FREE | want),
			    "free list %u: block %llu has tag %llx", want,
			    (unsigned long long)off,
			    (unsigned long long)b->tag);
			CHECK(n < h->size / 64, "free list %u: cycle", want);
			if (check_mark(ck, off, err, errlen) == -1)
				return -1;
			/* A free room slot keeps its mutex for the next room. */
			if (want == SHM_CLASS_ROOM && check_stale(ck,
			    &((struct shm_room *)(b + 1))->lock, "free room",
			    err, errlen) == -1)
				return -1;
		}
		if (c == ARENA_NCLASSES)
			*free_room = n;
	}
	return 0;
}

/* The address table: every entry on one list, each chain hashed right. */
static int
check_iptable(struct arena *a, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_ipent	*e;
	uint64_t		 i, chained = 0, nfree = 0;
	unsigned		 b;

	CHECK(h->ip_lock.tx.state == SHM_TX_IDLE,
	    "address table: a transaction left open");
	for (b = 0; b < IPT_BUCKETS; b++)
		for (i = h->ip_buckets[b]; i != 0; i = e->next) {
			CHECK(i <= IPT_ENTRIES && ++chained <= IPT_ENTRIES,
			    "address table: bad link or cycle in chain %u", b);
			e = &h->ip[i - 1];
			CHECK(e->count > 0 && IPT_TYPE(e->kind) >= IPT_CONNS &&
			    IPT_TYPE(e->kind) <= IPT_FAILS, "address table: "
			    "entry %llu in use with count %llu kind %llx",
			    (unsigned long long)i, (unsigned long long)e->count,
			    (unsigned long long)e->kind);
		}
	for (i = h->ip_free; i != 0; i = h->ip[i - 1].next)
		CHECK(i <= IPT_ENTRIES && ++nfree <= IPT_ENTRIES,
		    "address table: bad link or cycle in the free list");
	CHECK(chained == h->ip_inuse && chained + nfree == IPT_ENTRIES,
	    "address table: %llu chained, %llu free, %llu counted in use",
	    (unsigned long long)chained, (unsigned long long)nfree,
	    (unsigned long long)h->ip_inuse);
	return 0;
}

/*
 * The byte count of live blocks must match the allocator's, which catches
 * leaks; that part assumes no other process is changing the arena.
 */
static int
check_totals(struct check *ck, uint64_t nrooms, uint64_t free_room,
    char *err, size_t errlen)
{
	struct arena_hdr	*h = ck->a->hdr;

	CHECK(h->nrooms == nrooms, "index counts %llu rooms, found %llu",
	    (unsigned long long)h->nrooms, (unsigned long long)nrooms);
	CHECK(h->room_slots == nrooms + free_room, "%llu room slots carved, "
	    "%llu in use and %llu free", (unsigned long long)h->room_slots,
	    (unsigned long long)nrooms, (unsigned long long)free_room);
	CHECK(ck->bytes == h->used, "allocator counts %llu bytes in use, "
	    "rooms hold %llu", (unsigned long long)h->used,
	    (unsigned long long)ck->bytes);
	return 0;
}

/* Every block from the header to the top: in use and reached, or free
 * and on its list.  Quiet modes only, with the allocator lock held. */
static int
check_heap(struct check *ck, char *err, size_t errlen)
{
	struct arena_hdr	*h = ck->a->hdr;
	struct shm_block	*b;
	uint64_t		 off, i, used = 0;
	unsigned		 c;

	for (off = h->hdr_size; off < h->top; off += CLASS_BYTES(c)) {
		b = SHM_PTR(ck->a, off);
		c = SHM_BLOCK_CLASS(b->tag);
		CHECK((SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED ||
		    SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_FREE) &&
		    (c < ARENA_NCLASSES || c == SHM_CLASS_ROOM) &&
		    off + CLASS_BYTES(c) <= h->top, "heap: bad block at %llu "
		    "(tag %llx)", (unsigned long long)off,
		    (unsigned long long)b->tag);
		i = (off - h->hdr_size) / 64;
		CHECK(ck->seen[i / 8] & (1U << (i % 8)),
		    "heap: block at %llu is %s but %s", (unsigned long long)off,
		    SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED ? "in use" :
		    "free", SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED ?
		    "no room holds it" : "on no free list");
		if (SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED)
			used += CLASS_BYTES(c);
	}
	CHECK(off == h->top, "heap: blocks end at %llu, the top is %llu",
	    (unsigned long long)off, (unsigned long long)h->top);
	CHECK(used == h->used, "heap: %llu bytes in use, the allocator "
	    "counts %llu", (unsigned long long)used,
	    (unsigned long long)h->used);
	return 0;
}

/*
 * The header's own numbers, before anything is followed.  Each word is
 * read once, used before top, which live processes cannot make look wrong
 * (top grows first); room slots are counted before top grows, so they are
 * compared only in a quiet arena.
 */
static int
check_header(struct arena *a, int mode, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	uint64_t		 slots, used, top;

	CHECK(h->magic == ARENA_MAGIC && h->layout == ARENA_LAYOUT &&
	    h->size == a->size, "bad arena header");
	CHECK(h->hdr_size == ((sizeof(*h) + 4095) & ~(uint64_t)4095),
	    "header size %llu", (unsigned long long)h->hdr_size);
	slots = __atomic_load_n(&h->room_slots, __ATOMIC_ACQUIRE);
	used = __atomic_load_n(&h->used, __ATOMIC_ACQUIRE);
	top = __atomic_load_n(&h->top, __ATOMIC_ACQUIRE);
	CHECK(top >= h->hdr_size && top <= h->size,
	    "allocator top %llu outside the arena", (unsigned long long)top);
	CHECK(used <= top - h->hdr_size, "allocator counts %llu bytes "
	    "in use, more than it carved", (unsigned long long)used);
	CHECK(mode == CHECK_LIVE || slots <= (top - h->hdr_size) /
	    ROOM_SLOT_SIZE, "%llu room slots: more than fit",
	    (unsigned long long)slots);
	return 0;
}

static int
arena_check_mode(struct arena *a, int mode, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	struct check		 ck;
	struct shm_room_ref	*refs = NULL;
	struct shm_room		*r;
	uint64_t		 free_room = 0, nrooms = 0;
	size_t			 i, n = 0;
	int			 rc;

	memset(&ck, 0, sizeof(ck));
	ck.a = a;
	ck.mode = mode;
	if (check_header(a, mode, err, errlen) == -1)
		return -1;
	if (mode != CHECK_LIVE && (check_lock(&ck, &h->alloc_lock,
	    "allocator", err, errlen) == -1 || check_lock(&ck, &h->ip_lock,
	    "address table", err, errlen) == -1))
		return -1;
	if (mode != CHECK_LIVE) {
		/* Taken once: repaired if its owner died, and free. */
		shm_unlock(a, &h->ip_lock);
		shm_unlock(a, &h->alloc_lock);
		ck.nbits = (h->top - h->hdr_size) / 64;
		if ((ck.seen = calloc(ck.nbits / 8 + 1, 1)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	rc = check_index(&ck, &refs, &n, err, errlen);
	for (i = 0; i < n && rc == 0; i++) {
		r = SHM_PTR(a, refs[i].off);
		if ((rc = check_stale(&ck, &r->lock, "room", err, errlen)) != 0)
			break;
		if (shm_room_lock(a, &refs[i], &r) != 0)
			continue;	/* deleted meanwhile */
		if ((rc = check_mark(&ck, refs[i].off - sizeof(struct
		    shm_block), err, errlen)) == 0)
			rc = check_room(&ck, r, err, errlen);
		ck.bytes += ROOM_SLOT_SIZE;
		shm_room_unlock(a, r);
		nrooms++;
	}
	free(refs);
	if (rc == 0 && (check_lock(&ck, &h->index_lock, "room index", err,
	    errlen) != 0 || check_lock(&ck, &h->alloc_lock, "allocator", err,
	    errlen) != 0))
		rc = -1;	/* neither is held: both were checked above */
	else if (rc == 0) {
		rc = check_freelists(&ck, &free_room, err, errlen);
		/* With other processes at work, rooms and blocks come and go
		 * between the walks: totals are compared in a quiet arena. */
		if (rc == 0 && mode != CHECK_LIVE)
			rc = check_totals(&ck, nrooms, free_room, err, errlen);
		if (rc == 0 && mode != CHECK_LIVE)
			rc = check_heap(&ck, err, errlen);
		shm_unlock(a, &h->alloc_lock);
		shm_unlock(a, &h->index_lock);
	}
	free(ck.seen);
	if (rc == 0) {
		if (check_lock(&ck, &h->ip_lock, "address table", err, errlen)
		    == -1)
			return -1;
		rc = check_iptable(a, err, errlen);
		shm_unlock(a, &h->ip_lock);
	}
	return rc;
}

/* Every structure, and the totals: for an arena nobody else changes. */
int
arena_check(struct arena *a, char *err, size_t errlen)
{
	return arena_check_mode(a, CHECK_QUIET, err, errlen);
}

/*
 * Every structure, but not the totals (rooms, room slots, bytes), which
 * processes changing the arena meanwhile make differ for a moment: for a
 * running daemon.
 */
int
arena_check_live(struct arena *a, char *err, size_t errlen)
{
	return arena_check_mode(a, CHECK_LIVE, err, errlen);
}

/*
 * Every structure and the totals, by a process that knows nobody else has
 * the arena: a master reattaching, holding arena_claim().  Each lock is
 * taken once, so one whose owner died is repaired on the way; one still
 * held is a fault.
 */
int
arena_check_alone(struct arena *a, char *err, size_t errlen)
{
	return arena_check_mode(a, CHECK_ALONE, err, errlen);
}

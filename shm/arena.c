/*
 * arena.c: making, reattaching and checking the shared-memory arena.
 *
 * The header is written last on creation (magic after everything else), so
 * a half-made arena is never mistaken for a good one.  A named arena that
 * already exists is reattached only when its magic, layout and size match;
 * otherwise the caller gets a message saying which did not.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm.h"

static int	arena_init(struct arena *, size_t, char *, size_t);

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

static int
arena_reattach(struct arena *a, size_t size, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;

	if (h->magic != ARENA_MAGIC) {
		snprintf(err, errlen, "not a roomd arena (bad magic)");
		return SHM_ELAYOUT;
	}
	if (h->layout != ARENA_LAYOUT) {
		snprintf(err, errlen, "arena layout %llu, this roomd "
		    "needs layout %d", (unsigned long long)h->layout,
		    ARENA_LAYOUT);
		return SHM_ELAYOUT;
	}
	if (h->size != size) {
		snprintf(err, errlen, "arena is %llu bytes, the "
		    "configuration asks for %zu", (unsigned long long)h->size,
		    size);
		return SHM_ELAYOUT;
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
	if (path[0] == '/' && strchr(path + 1, '/') == NULL)
		fd = shm_open(path, O_RDWR | O_CREAT, 0600);
	else
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
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
	if (path[0] == '/' && strchr(path + 1, '/') == NULL)
		return shm_unlink(path);
	return unlink(path);
}

/* The checker: every fault names what it found where. */

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		snprintf(err, errlen, __VA_ARGS__);			\
		return -1;						\
	}								\
} while (0)

static int
check_block(struct arena *a, shm_off off, uint64_t *bytes, char *err,
    size_t errlen)
{
	struct shm_block	*b;

	CHECK(off >= a->hdr->hdr_size + sizeof(*b) && off < a->hdr->top &&
	    off % 8 == 0, "block %llu out of bounds", (unsigned long long)off);
	b = SHM_PTR(a, off - sizeof(*b));
	CHECK(SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED,
	    "block %llu is not marked in use", (unsigned long long)off);
	*bytes += shm_block_size(a, off) + sizeof(*b);
	return 0;
}

static int
check_log(struct arena *a, struct shm_room *r, uint64_t *bytes, char *err,
    size_t errlen)
{
	struct shm_chunk	*c;
	shm_off			 off, last = 0;
	uint64_t		 seq = 0, n = 0;

	for (off = r->log_head; off != 0; off = c->next) {
		if (check_block(a, off, bytes, err, errlen) == -1)
			return -1;
		c = SHM_PTR(a, off);
		CHECK(c->used <= c->cap && c->cap + sizeof(*c) <=
		    shm_block_size(a, off), "room %s: chunk overflows", r->id);
		CHECK(seq == 0 || c->first_seq == seq + 1,
		    "room %s: log skips from %llu to %llu", r->id,
		    (unsigned long long)seq, (unsigned long long)c->first_seq);
		if (c->nrec > 0)
			seq = c->first_seq + c->nrec - 1;
		CHECK(++n < (1ULL << 32), "room %s: log cycle", r->id);
		last = off;
	}
	CHECK(last == r->log_tail, "room %s: log tail is not the last chunk",
	    r->id);
	CHECK(seq == r->committed, "room %s: committed %llu, log ends at %llu",
	    r->id, (unsigned long long)r->committed, (unsigned long long)seq);
	return 0;
}

static int
check_room(struct arena *a, struct shm_room *r, unsigned bucket,
    uint64_t *bytes, char *err, size_t errlen)
{
	uint64_t	 sum = 0, i, live = 0;

	CHECK(r->magic == ROOM_MAGIC && r->rid != 0 && !(r->flags &
	    ROOM_F_DEAD), "bad room in bucket %u", bucket);
	CHECK(memchr(r->id, '\0', sizeof(r->id)) != NULL,
	    "room id not terminated");
	/* The checker holds the room lock with a transaction just begun; a
	 * journal with entries would mean someone else wrote under it. */
	CHECK(r->lock.tx.nundo == 0, "room %s: journal not empty", r->id);
	for (i = 0; i < ARENA_MAX_SLOTS; i++)
		sum += r->slot_conns[i];
	CHECK(sum == r->conns, "room %s: %llu connections, slots say %llu",
	    r->id, (unsigned long long)r->conns, (unsigned long long)sum);
	CHECK(r->nmembers <= r->cap, "room %s: members past capacity", r->id);
	if (check_block(a, r->members, bytes, err, errlen) == -1)
		return -1;
	CHECK(r->cap * sizeof(struct shm_member) <=
	    shm_block_size(a, r->members), "room %s: member table too small",
	    r->id);
	for (i = 0; i < r->nmembers; i++) {
		struct shm_member *m = shm_member_at(a, r, i);

		if (m->mid == 0)
			continue;
		live++;
		CHECK(m->mid < r->next_mid, "room %s: member id %llu not yet "
		    "issued", r->id, (unsigned long long)m->mid);
		CHECK(memchr(m->name, '\0', sizeof(m->name)) != NULL,
		    "room %s: member name not terminated", r->id);
	}
	*bytes += ROOM_SLOT_SIZE;
	return check_log(a, r, bytes, err, errlen);
}

static int
check_freelists(struct arena *a, uint64_t *free_room, char *err,
    size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_block	*b;
	shm_off			 off;
	uint64_t		 n;
	unsigned		 c;

	for (c = 0; c <= ARENA_NCLASSES; c++) {
		unsigned want = c == ARENA_NCLASSES ? SHM_CLASS_ROOM : c;

		off = c == ARENA_NCLASSES ? h->room_free : h->freelist[c];
		for (n = 0; off != 0; off = b->next, n++) {
			CHECK(off >= h->hdr_size && off < h->top,
			    "free list %u: block out of bounds", want);
			b = SHM_PTR(a, off);
			CHECK(b->tag == (SHM_BLOCK_FREE | want),
			    "free list %u: block %llu has tag %llx", want,
			    (unsigned long long)off,
			    (unsigned long long)b->tag);
			CHECK(n < h->size / 64, "free list %u: cycle", want);
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
 * Check every structure.  Each lock is taken once on the way, so a lock
 * left by a dead owner is repaired first.  The byte count of live blocks
 * must match the allocator's, which catches leaks; that part assumes no
 * other process is changing the arena meanwhile.
 */
static int
check_totals(struct arena *a, uint64_t nrooms, uint64_t free_room,
    uint64_t bytes, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;

	if (h->nrooms != nrooms)
		snprintf(err, errlen, "index counts %llu rooms, found %llu",
		    (unsigned long long)h->nrooms, (unsigned long long)nrooms);
	else if (h->room_slots != nrooms + free_room)
		snprintf(err, errlen, "%llu room slots carved, %llu in use and "
		    "%llu free", (unsigned long long)h->room_slots,
		    (unsigned long long)nrooms, (unsigned long long)free_room);
	else if (bytes != h->used)
		snprintf(err, errlen, "allocator counts %llu bytes in use, "
		    "rooms hold %llu", (unsigned long long)h->used,
		    (unsigned long long)bytes);
	else
		return 0;
	return -1;
}

static int
arena_check_mode(struct arena *a, int totals, char *err, size_t errlen)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_room_ref	*refs;
	struct shm_room		*r;
	uint64_t		 bytes = 0, free_room = 0, nrooms = 0;
	size_t			 i, n, max = 1 << 20;
	int			 rc = 0;

	CHECK(h->magic == ARENA_MAGIC && h->layout == ARENA_LAYOUT,
	    "bad arena header");
	if ((refs = calloc(max, sizeof(*refs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = shm_room_list(a, ROOM_ALL_DIALECTS, refs, max);
	for (i = 0; i < n && rc == 0; i++) {
		if (shm_room_lock(a, &refs[i], &r) != 0)
			continue;
		rc = check_room(a, r, (unsigned)i, &bytes, err, errlen);
		shm_room_unlock(a, r);
		nrooms++;
	}
	free(refs);
	if (rc != 0)
		return rc;
	if (shm_lock(a, &h->index_lock) != 0 || shm_lock(a, &h->alloc_lock)
	    != 0) {
		snprintf(err, errlen, "cannot take the arena locks");
		return -1;
	}
	rc = check_freelists(a, &free_room, err, errlen);
	/* With other processes at work, rooms and blocks come and go
	 * between the walks: totals are compared only in a quiet arena. */
	if (rc == 0 && totals)
		rc = check_totals(a, nrooms, free_room, bytes, err, errlen);
	shm_unlock(a, &h->alloc_lock);
	shm_unlock(a, &h->index_lock);
	if (rc == 0) {
		if (shm_lock(a, &h->ip_lock) != 0) {
			snprintf(err, errlen, "cannot take the address lock");
			return -1;
		}
		rc = check_iptable(a, err, errlen);
		shm_unlock(a, &h->ip_lock);
	}
	return rc;
}

/* Every structure, and the totals: for an arena nobody else changes. */
int
arena_check(struct arena *a, char *err, size_t errlen)
{
	return arena_check_mode(a, 1, err, errlen);
}

/*
 * Every structure, but not the totals (rooms, room slots, bytes), which
 * processes changing the arena meanwhile make differ for a moment: for a
 * running daemon.
 */
int
arena_check_live(struct arena *a, char *err, size_t errlen)
{
	return arena_check_mode(a, 0, err, errlen);
}

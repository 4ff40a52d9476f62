/*
 * shm_alloc.c: the size-class allocator inside the arena.
 *
 * Blocks are powers of two from 64 bytes up, each with a 16-byte header;
 * freed blocks go on their class's free list and fresh ones come from a
 * bump pointer.  Room slots have a pool of their own so that a slot's
 * mutex is initialized once and stays a mutex for the arena's life.
 *
 * Every allocation happens on behalf of a transaction of another lock: the
 * offset is written into that transaction's alloc[] inside the allocator's
 * own transaction, so a crash either leaves the block free or recorded
 * where the owner's rollback will find it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "shm.h"

#define CLASS_SIZE(c)	((uint64_t)64 << (c))

int
shm_size_class(size_t n)
{
	uint64_t	 total = n + sizeof(struct shm_block);
	int		 c;

	if (n > CLASS_SIZE(ARENA_NCLASSES - 1))
		return -1;	/* also keeps total from wrapping */
	for (c = 0; c < ARENA_NCLASSES; c++)
		if (CLASS_SIZE(c) >= total)
			return c;
	return -1;
}

static uint64_t *
shm_tx_slot(uint64_t *v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (v[i] == 0)
			return &v[i];
	abort();	/* more blocks in one transaction than designed for */
}

static uint64_t
shm_block_bytes(uint64_t tag)
{
	return SHM_BLOCK_CLASS(tag) == SHM_CLASS_ROOM ? ROOM_SLOT_SIZE :
	    CLASS_SIZE(SHM_BLOCK_CLASS(tag));
}

/* Take a block of class c (or a room slot) inside the allocator's tx. */
static shm_off
shm_take_locked(struct arena *a, unsigned c)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*al = &h->alloc_lock;
	uint64_t		*head, size;
	struct shm_block	*b;
	shm_off			 off;

	head = c == SHM_CLASS_ROOM ? &h->room_free : &h->freelist[c];
	size = c == SHM_CLASS_ROOM ? ROOM_SLOT_SIZE : CLASS_SIZE(c);
	if ((off = *head) != 0) {
		b = SHM_PTR(a, off);
		shm_tx_set(a, al, head, b->next);
		shm_tx_set(a, al, &b->tag, SHM_BLOCK_USED | c);
	} else {
		if (h->top + size > h->size)
			return 0;
		off = h->top;
		b = SHM_PTR(a, off);
		b->tag = SHM_BLOCK_USED | c;
		b->next = 0;
		if (c == SHM_CLASS_ROOM) {
			struct shm_room *r = (void *)(b + 1);

			memset(r, 0, sizeof(*r));
			r->magic = ROOM_MAGIC;
			if (shm_lock_init(&r->lock) != 0)
				return 0;
			shm_tx_set(a, al, &h->room_slots, h->room_slots + 1);
		}
		shm_tx_set(a, al, &h->top, h->top + size);
	}
	shm_tx_set(a, al, &h->used, h->used + size);
	return off;
}

static shm_off
shm_take(struct arena *a, struct shm_lock *lk, unsigned c)
{
	struct shm_lock	*al = &a->hdr->alloc_lock;
	uint64_t	*slot;
	shm_off		 off;

	slot = shm_tx_slot(lk->tx.alloc, SHM_TX_BLOCKS);
	if (shm_lock(a, al) != 0)
		return 0;
	shm_tx_begin(a, al);
	off = shm_take_locked(a, c);
	if (off != 0) {
		shm_tx_set(a, al, slot, off + sizeof(struct shm_block));
		SHM_CRASH("alloc");
	}
	shm_tx_commit(a, al);
	shm_unlock(a, al);
	return off == 0 ? 0 : off + sizeof(struct shm_block);
}

/*
 * Allocate n bytes for the transaction of lk (held by the caller).
 * Returns the offset of the usable area, or 0 when the arena is full or n
 * is larger than the largest class.
 */
shm_off
shm_tx_alloc(struct arena *a, struct shm_lock *lk, size_t n)
{
	int	 c;

	if ((c = shm_size_class(n)) < 0)
		return 0;
	return shm_take(a, lk, (unsigned)c);
}

shm_off
shm_room_slot_alloc(struct arena *a, struct shm_lock *lk)
{
	return shm_take(a, lk, SHM_CLASS_ROOM);
}

void
shm_tx_free(struct arena *a, struct shm_lock *lk, shm_off off)
{
	(void)a;
	if (off != 0)
		*shm_tx_slot(lk->tx.release, SHM_TX_BLOCKS) = off;
}

void
shm_room_slot_free(struct arena *a, struct shm_lock *lk, shm_off off)
{
	shm_tx_free(a, lk, off);
}

/*
 * Return the block named by *slot and zero *slot, as one allocator
 * transaction.  A slot with SHM_CHAIN set names a chain of log chunks
 * linked by their first word: one chunk is freed per call and *slot
 * advances to the next, so callers loop until *slot is 0.
 */
void
shm_release(struct arena *a, uint64_t *slot)
{
	struct arena_hdr	*h = a->hdr;
	struct shm_lock		*al = &h->alloc_lock;
	struct shm_block	*b;
	uint64_t		 v, *head, next = 0;
	shm_off			 off;
	unsigned		 c;

	if (shm_lock(a, al) != 0)
		return;
	/* Read the slot under the lock: repairing the lock may change it. */
	if ((v = *slot) == 0) {
		shm_unlock(a, al);
		return;
	}
	off = v & ~SHM_RELEASE_FLAGS;
	shm_tx_begin(a, al);
	b = SHM_PTR(a, off - sizeof(*b));
	if (v & SHM_CHAIN) {
		next = *(shm_off *)SHM_PTR(a, off);
		if (next != 0)
			next |= SHM_CHAIN;
	}
	if (SHM_BLOCK_STATE(b->tag) == SHM_BLOCK_USED) {
		c = SHM_BLOCK_CLASS(b->tag);
		head = c == SHM_CLASS_ROOM ? &h->room_free : &h->freelist[c];
		shm_tx_set(a, al, &b->tag, SHM_BLOCK_FREE | c);
		shm_tx_set(a, al, &b->next, *head);
		shm_tx_set(a, al, head, off - sizeof(*b));
		shm_tx_set(a, al, &h->used, h->used - shm_block_bytes(b->tag));
		SHM_CRASH("free");
	}
	shm_tx_set(a, al, slot, next);
	shm_tx_commit(a, al);
	shm_unlock(a, al);
}

size_t
shm_block_size(struct arena *a, shm_off off)
{
	struct shm_block	*b = SHM_PTR(a, off - sizeof(*b));

	return shm_block_bytes(b->tag) - sizeof(*b);
}

void
shm_usage(struct arena *a, uint64_t *used, uint64_t *size)
{
	*used = __atomic_load_n(&a->hdr->used, __ATOMIC_RELAXED) +
	    a->hdr->hdr_size;
	*size = a->hdr->size;
}
